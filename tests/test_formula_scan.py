"""formula_scan against IronCalc: the formula cells it counts in the sheet XML are the
cells IronCalc gives a formula, on every course workbook and every built-in one."""
import re
import zipfile

import openpyxl
import pytest

from sheetdl.verification import formula_scan, verifier as verify, workbook
from conftest import FASTAI, ROOT

FILES = sorted(FASTAI.glob("*/*.xls*")) + sorted((ROOT / "workbooks").glob("*.xlsx"))


def ironcalc_formulas(path):
    model = workbook.load(path)
    return [model.get_cell_formula(*k) for k in model.get_all_cells()
            if model.get_cell_formula(*k)], len(model.get_worksheets_properties())


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_count_is_ironcalcs(path):
    formulas, sheets = ironcalc_formulas(path)
    scanned = formula_scan.scan(path, sheets)
    if scanned is None:  # left to IronCalc: tags the scan cannot account for
        assert path.parent.parent == FASTAI, "sheetdl's own files must be scanned"
        assert b"<f ca=" in b"".join(zipfile.ZipFile(path).read(n) for n in
                                     zipfile.ZipFile(path).namelist() if "worksheets/s" in n)
        return
    assert scanned.count == len(formulas)
    # the texts are the formulas written out: a shared one's first cell, every other whole
    # (IronCalc prints a formula its own way: no _xlfn., an implicit intersection @, no
    # spaces or redundant parentheses)
    plain = lambda f: re.sub(r"_xlfn\.|[\s@()]", "", f.lstrip("=")).upper()  # noqa: E731
    held, texts = set(map(plain, formulas)), set(map(plain, scanned.texts))
    assert texts <= held, sorted(texts - held)[:5]
    assert any(verify._volatile(f) for f in formulas) == any(
        verify._volatile(t) for t in scanned.texts)


def test_most_course_files_are_scanned():
    scanned = [formula_scan.scan(p, len(workbook.load(p).get_worksheets_properties()))
               for p in FILES]
    assert sum(s is not None for s in scanned) >= len(FILES) - 2


def rewrite(path, out, change):
    with zipfile.ZipFile(path) as z, zipfile.ZipFile(out, "w") as w:
        for info in z.infolist():
            data = z.read(info)
            w.writestr(info, change(info.filename, data))
    return out


def small_book(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"], ws["A2"], ws["A3"] = 2, "=A1*3", "=SUM(A1:A2)"
    ws.conditional_formatting.add("A1:A3", openpyxl.formatting.rule.FormulaRule(
        formula=["A1>1"], fill=openpyxl.styles.PatternFill(bgColor="FFFF00")))
    path = tmp_path / "small.xlsx"
    wb.save(path)
    return path


def test_conditional_formats_and_rich_text_are_no_formulas(tmp_path):
    path = small_book(tmp_path)
    # an inline rich-text cell: its run properties hold <family>, which is no formula
    rich = (b'<c r="B1" t="inlineStr"><is><r><rPr><rFont val="Arial"/><family val="2"/></rPr>'
            b'<t>hi</t></r></is></c>')
    out = rewrite(path, tmp_path / "rich.xlsx", lambda name, data: data.replace(
        b'</c></row>', b'</c>' + rich + b'</row>', 1) if name.endswith("sheet1.xml") else data)
    assert b"<formula>" in zipfile.ZipFile(out).read("xl/worksheets/sheet1.xml")
    formulas, sheets = ironcalc_formulas(out)
    assert len(formulas) == 2
    assert formula_scan.scan(out, sheets).count == 2
    report = verify.verify(out)
    assert report.ok and report.formula_cells == 2


def test_prefixed_xml_is_left_to_ironcalc(tmp_path):
    """A sheet whose elements carry a namespace prefix is not counted by the scan: the
    verifier then asks IronCalc cell by cell."""
    path = small_book(tmp_path)

    def prefix(name, data):
        if not name.endswith("sheet1.xml"):
            return data
        return data.replace(b"<worksheet xmlns=", b"<x:worksheet xmlns:x=").replace(
            b"</worksheet>", b"</x:worksheet>")
    out = rewrite(path, tmp_path / "prefixed.xlsx", prefix)
    assert formula_scan.scan(out, 1) is None
    assert formula_scan.scan(path, 1).count == 2
    assert formula_scan.scan(path, 2) is None  # parts that are not the sheets IronCalc loaded


def test_chunks_cut_between_cells(monkeypatch):
    """A shared formula's text split across two reads would be lost: the scan cuts after
    the last whole cell, whatever the read size."""
    path = ROOT / "workbooks" / "graddesc.xlsx"
    whole = formula_scan.scan(path, len(openpyxl.load_workbook(path, read_only=True).sheetnames))
    monkeypatch.setattr(formula_scan, "CHUNK", 997)
    small = formula_scan.scan(path, len(openpyxl.load_workbook(path, read_only=True).sheetnames))
    assert (small.count, small.texts) == (whole.count, whole.texts)
    assert small.count == len(ironcalc_formulas(path)[0])


@pytest.mark.parametrize("hidden,cached", [
    (b"<![CDATA[NO]]><![CDATA[W()]]>", b"46000"),   # NOW() split across CDATA sections
    (b"RAND<!-- x -->()", b"0.5"),                  # RAND() around a comment
])
def test_markup_inside_a_formula_is_left_to_ironcalc(tmp_path, hidden, cached):
    """A byte search reads neither CDATA nor comments: such a sheet goes to IronCalc,
    which parses the XML and finds the volatile call a valid file holds."""
    path = small_book(tmp_path)
    out = rewrite(path, tmp_path / "hidden.xlsx", lambda name, data: re.sub(
        rb"<f>A1\*3</f><v ?/>", rb"<f>" + hidden + rb"</f><v>" + cached + rb"</v>", data)
        if name.endswith("sheet1.xml") else data)
    assert hidden in zipfile.ZipFile(out).read("xl/worksheets/sheet1.xml")
    assert formula_scan.scan(out, 1) is None
    report = verify.verify(out)
    assert report.ok and report.volatile == ["Sheet!A2", "Sheet!A3"], report.summary()


def test_padding_between_cells_is_read_once(tmp_path, monkeypatch):
    """Whitespace with no cell in it used to be carried into every following read (116 s
    for 992 MB); past what one cell can span, the scan leaves the sheet to IronCalc."""
    monkeypatch.setattr(formula_scan, "CHUNK", 4096)
    monkeypatch.setattr(formula_scan, "MAX_CELL_BYTES", 1024)
    path = small_book(tmp_path)
    pad = lambda n: lambda name, data: data.replace(  # noqa: E731
        b"</row>", b"</row>" + b" " * n, 1) if name.endswith("sheet1.xml") else data
    near = rewrite(path, tmp_path / "near.xlsx", pad(2048))
    assert formula_scan.scan(near, 1).count == 2
    far = rewrite(path, tmp_path / "far.xlsx", pad(3 * 4096))
    assert formula_scan.scan(far, 1) is None
    report = verify.verify(far)
    assert report.ok and report.formula_cells == 2
