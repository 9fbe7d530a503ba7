"""`sheetdl verify` on every course workbook: what each report says, pinned.

The numbers are IronCalc's verdicts on the course's own files (cached by
Excel); a change here means verify's classification changed.
"""
import pytest

from sheetdl.verification import verifier as verify
from conftest import FASTAI

# file, formula cells, agree, volatile (incl. computed from one), engine differences, first volatile
REPORTS = [
    ("course-v3/broadcasting.xlsx", 51, 51, 0, [], None),
    ("course-v3/collab_filter.xlsx", 10879, 8165, 2713, ["bias!V42"], "movielens_emb!M3"),
    ("course-v3/conv-example.xlsx", 4025, 4025, 0, [], None),
    ("course-v3/emb_results.xlsx", 32, 32, 0, [], None),
    ("course-v3/emb_sizing.xlsx", 34, 34, 0, [], None),
    ("course-v3/entropy_example.xlsx", 75, 67, 5,
     ["log_entropy!H2", "log_entropy!H3", "log_entropy!H6"], "log_entropy!I2"),
    ("course-v3/graddesc.xlsm", 1623, 1565, 58, [], "data!B5"),
    ("course-v3/mom_bias.xlsx", 598, 498, 100, [], "Sheet1 (3)!B4"),
    ("course-v3/style_loss.xlsx", 22, 22, 0, [], None),
    ("courses-dl1-2016/collab_filter.xlsx", 3666, 952, 2713, ["bias!V42"], "movielens_emb!M3"),
    ("courses-dl1-2016/conv-example.xlsx", 2865, 2865, 0, [], None),
    ("courses-dl1-2016/entropy_example.xlsx", 28, 11, 17, [], "softmax!B2"),
    ("courses-dl1-2016/graddesc.xlsm", 2365, 2307, 58, [], "data!B6"),
    ("courses-dl1-2016/layers_example.xlsx", 124, 70, 54, [], "random!B5"),
]


def test_every_course_workbook_is_covered():
    on_disk = sorted(str(p.relative_to(FASTAI)) for p in FASTAI.glob("*/*.xls*"))
    assert on_disk == sorted(r[0] for r in REPORTS)


@pytest.mark.parametrize("name,cells,agree,volatile,engine,first_volatile", REPORTS,
                         ids=[r[0] for r in REPORTS])
def test_course_workbook_report(name, cells, agree, volatile, engine, first_volatile):
    path = FASTAI / name
    r = verify.verify(path)
    assert r.ok and not r.mismatches and not r.unsupported, r.summary()
    assert r.formula_cells == cells
    assert len(r.volatile) == volatile
    assert sorted(f"{d.sheet}!{d.cell}" for d in r.engine_differs) == engine
    assert r.formula_cells - len(r.volatile) - len(r.engine_differs) == agree
    if first_volatile:
        assert r.volatile[0] == first_volatile
    assert f"{agree} agree" in r.summary()


def test_collab_filter_sumxmy2_is_explained_not_failed():
    """openpyxl cannot even open this file (its pivot cache); verify reads it and
    explains the one cell where IronCalc's SUMXMY2 differs from Excel's."""
    path = FASTAI / "course-v3" / "collab_filter.xlsx"
    r = verify.verify(path)
    [d] = r.engine_differs
    assert d.cached == pytest.approx(0.3194674135586278, rel=1e-15)
    assert d.recalculated == pytest.approx(0.8575717167207558, rel=1e-12)
    assert "blank" in d.reason


def test_a_file_written_without_calculating_says_so(tmp_path, soffice):
    """Before: an openpyxl workbook (formulas, no cached values: the most common way Python
    writes xlsx) FAILED with "cached 0.0, recalculated 3.0". Now its cells are listed as
    holding no value, errors the recalculation finds are named, and the same file saved
    by LibreOffice (which stores the values) verifies cell by cell."""
    import openpyxl

    from sheetdl.verification import libreoffice

    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"], ws["A2"], ws["A3"], ws["A4"], ws["A5"] = 1, 2, "=A1+A2", "=A3*0", "=1/0"
    path = tmp_path / "openpyxl.xlsx"
    wb.save(path)
    report = verify.verify(path)
    assert report.ok and not report.mismatches, report.summary()
    assert report.uncached == ["Sheet!A3", "Sheet!A4", "Sheet!A5 (#DIV/0!)"]
    assert "3 hold no cached value" in report.summary()
    saved = libreoffice.recalculate([path], tmp_path / "lo")[0]
    again = verify.verify(saved)
    assert again.ok and again.uncached == [] and again.formula_cells == 3
    # a wrong cached value still fails, beside cells that hold none
    ws["B1"] = "=A1*10"
    wb.save(path)
    import zipfile
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"]
    parts["xl/worksheets/sheet1.xml"] = sheet.replace(
        b'<c r="B1"><f>A1*10</f><v />', b'<c r="B1"><f>A1*10</f><v>11</v>')
    assert parts["xl/worksheets/sheet1.xml"] != sheet
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    report = verify.verify(path)
    assert not report.ok and [m.cell for m in report.mismatches] == ["B1"]
    assert report.uncached == ["Sheet!A3", "Sheet!A4", "Sheet!A5 (#DIV/0!)"]
