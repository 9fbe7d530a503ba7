"""The file writer: cells as shared formulas, read back alike by IronCalc, LibreOffice and
openpyxl; the package around them; atomic, reproducible files."""
import os
import re
import stat
import zipfile

import ironcalc
import numpy as np
import openpyxl
import pytest

from sheetdl.sheet import workbook as book
from sheetdl.lessons import data
from sheetdl.lessons.graddesc import layout as graddesc
from sheetdl.verification import libreoffice, verifier
from sheetdl.write import xlsx
from conftest import named_values
from torch_reference import torch_trace


def _course_lesson(n=40, epochs=3):
    x, y = data.synthetic_line(n, 2)
    # the course preset restarts b and a at each epoch: its b and a columns are broken into
    # stretches of shared formulas, the hardest case of the layout
    return graddesc.make_lesson(x, y, preset="course", epochs=epochs,
                                optimizers=("momentum", "adam"))


def test_long_columns_are_shared_formulas_that_engines_expand_to_the_layouts_text(tmp_path):
    built = graddesc.build(_course_lesson())
    path = xlsx.write(built, tmp_path / "g.xlsx")
    names = {s.name: i + 1 for i, s in enumerate(built.sheets)}
    with zipfile.ZipFile(path) as z:
        xml = z.read(f"xl/worksheets/sheet{names['adam']}.xml").decode()
    masters = re.findall(r'<f t="shared" ref="([A-Z]+)(\d+):\1(\d+)" si="\d+">', xml)
    children = xml.count('<f t="shared" si=')
    assert masters and children > 10 * len(masters)
    # each cell's formula as IronCalc expands the shared ones, against each cell's template
    model = ironcalc.load_from_xlsx(str(path), "en", "UTC")
    sheet = next(s for s in built.sheets if s.name == "adam")
    si = names["adam"] - 1
    compared = 0
    for run in [item for item in sheet.rows() if isinstance(item, book.Run)]:
        for row, cells in run.rows():
            for col, formula, value, _ in cells:
                if isinstance(formula, str):
                    # IronCalc prints its implicit intersection (@INDEX) where the file has none
                    shown = model.get_cell_formula(si, row + 1, col + 1).replace("@", "")
                    assert shown == formula, (row, col)
                    compared += 1
    assert compared > 1000
    # openpyxl expands them too
    from openpyxl.utils import column_index_from_string

    ws = openpyxl.load_workbook(path)["adam"]
    for letters, first, last in masters:
        col = column_index_from_string(letters)
        assert ws.cell(int(last), col).value == \
            model.get_cell_formula(si, int(last), col).replace("@", "")


def test_libreoffice_recalculates_the_shared_formulas_as_torch_does(tmp_path, soffice):
    x, y = data.course_points()
    lesson = graddesc.make_lesson(x, y, epochs=3, optimizers=("adam", "sgd"))
    path = xlsx.write(graddesc.build(lesson), tmp_path / "g.xlsx")
    out, = libreoffice.recalculate([path], tmp_path / "lo")
    wb = openpyxl.load_workbook(out, data_only=True)
    for kind in ("adam", "sgd"):
        opt = lesson.optimizers[kind]
        b, a, loss = torch_trace(kind, opt, x, y, 3, lesson.b_init, lesson.a_init)
        np.testing.assert_allclose(named_values(wb, "b_trace", kind), b, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(named_values(wb, "loss_trace", kind), loss, rtol=1e-9,
                                   atol=1e-12)


def test_the_course_preset_restarts_survive_recalculation(tmp_path, soffice):
    lesson = _course_lesson()
    path = xlsx.write(graddesc.build(lesson), tmp_path / "g.xlsx")
    report = verifier.verify(path)
    assert report.ok, report.summary()
    out, = libreoffice.recalculate([path], tmp_path / "lo")
    wb = openpyxl.load_workbook(out, data_only=True)
    ic = verifier.recalculated(path)
    for kind in ("momentum", "adam"):
        np.testing.assert_allclose(named_values(wb, "b_trace", kind),
                                   ic.values("b_trace", kind), rtol=1e-9, atol=1e-12)


def test_a_workbook_gets_the_usual_file_mode(tmp_path):
    x, y = data.course_points()
    path = xlsx.write(graddesc.build(graddesc.make_lesson(x, y, epochs=1,
                                                          optimizers=("sgd",))),
                      tmp_path / "g.xlsx")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["g.xlsx"]  # no temporary left


def test_cells_of_every_kind_read_back(tmp_path):
    rows = [(0, [(0, None, "  padded  ", None), (1, None, 2.5, "num"), (2, None, 7, "int"),
                 (3, None, None, "input"), (4, None, "a & b < c", "bold")]),
            (2, [(0, "=B1*2", 5.0, None), (1, '=IF(B1>1,"big","")', "big", None),
                 (2, "=1/0", "#DIV/0!", None), (3, "=B1>1", True, None)]),
            (3, [(0, book.ArrayFormula("MMULT(B1:C1,TRANSPOSE(B1:C1))", 3, 0), 55.25, None)])]
    sheet = book.Sheet("s", book.static_rows(rows), heights={1: 30.0, 6: 18.0})
    path = xlsx.write(book.Book([sheet], {}, "t", {}), tmp_path / "c.xlsx")
    model = ironcalc.load_from_xlsx(str(path), "en", "UTC")
    assert model.get_cell_value(0, 1, 1) == "  padded  "
    assert model.get_cell_value(0, 1, 5) == "a & b < c"
    assert model.get_cell_value(0, 3, 2) == "big" and model.get_cell_value(0, 3, 4) is True
    model.evaluate()
    assert model.get_cell_value(0, 3, 1) == 5.0 and model.get_cell_value(0, 4, 1) == 55.25
    ws = openpyxl.load_workbook(path)["s"]
    assert ws.row_dimensions[2].height == 30 and ws.row_dimensions[7].height == 18
    assert ws["C1"].value == 7 and ws["B1"].number_format == "0.000000"


def test_a_value_that_is_not_a_number_names_its_cell(tmp_path):
    sheet = book.Sheet("s", book.static_rows([(4, [(2, None, float("inf"), None)])]))
    with pytest.raises(ValueError, match=r"s!C5"):
        xlsx.write(book.Book([sheet], {}, "t", {}), tmp_path / "c.xlsx")
    assert not list(tmp_path.iterdir())


def test_long_work_reports_its_stages_with_totals(tmp_path):
    """A bar that says what it is doing: build reports "zipping" once every row is written
    (its bar used to stop seconds before the file existed); verify reports loading,
    evaluating, comparing with the number of cells it will compare (a percentage and the
    time left) and replaying, in that order, and the cells it then counts reach that total."""
    from sheetdl.verification import verifier

    events = []
    x, y = data.course_points()
    path = xlsx.write(graddesc.build(graddesc.make_lesson(x, y, optimizers=["sgd"], epochs=1)),
                      tmp_path / "g.xlsx", on_row=lambda n: events.append("row"),
                      on_phase=lambda stage: events.append(stage))
    assert events[-1] == "zipping" and events.count("zipping") == 1 and "row" in events
    stages, counted = [], []
    verifier.verify(path, on_cells=counted.append,
                    on_phase=lambda stage, total=None: stages.append((stage, total)))
    assert [s for s, _ in stages] == ["loading", "evaluating", "comparing", "replaying"]
    total = dict(stages)["comparing"]
    assert total and sum(counted) == total
