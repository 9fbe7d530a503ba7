"""The graddesc workbook: structure, retraining from inputs, the course's own
numbers, reproducibility."""
import numpy as np
import openpyxl
import pytest

from sheetdl.lessons import data
from sheetdl.lessons.graddesc import layout as graddesc, model as linear
from sheetdl.math import presets
from sheetdl.verification import verifier as verify
from sheetdl.write import xlsx
from conftest import ROOT


@pytest.fixture(scope="module")
def default_book(tmp_path_factory):
    x, y = data.course_points()
    path = tmp_path_factory.mktemp("g") / "graddesc.xlsx"
    xlsx.write(graddesc.build(graddesc.make_lesson(x, y)), path)
    return path


def test_default_workbook_verifies(default_book):
    report = verify.verify(default_book)
    assert report.ok, report.summary()
    assert report.formula_cells > 10_000
    assert not report.volatile and not report.unsupported
    assert {(t.sheet, t.name) for t in report.traces} == {
        (k, n) for k in graddesc.DEFAULT_OPTIMIZERS for n in ("b_trace", "a_trace", "loss_trace")}


def test_committed_workbooks_are_reproduced_byte_for_byte(tmp_path):
    """`sheetdl build` in a fresh folder writes exactly the committed workbooks/."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "sheetdl.cli", "build"], cwd=tmp_path,
                       capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    built = sorted(p.name for p in (tmp_path / "workbooks").iterdir())
    assert built == sorted(p.name for p in (ROOT / "workbooks").glob("*.xlsx"))
    for name in built:
        assert (tmp_path / "workbooks" / name).read_bytes() == \
            (ROOT / "workbooks" / name).read_bytes(), \
            f"workbooks/{name} is stale: run `sheetdl build` and commit it"


def test_structure_names_notes_and_freeze(default_book):
    wb = openpyxl.load_workbook(default_book)
    assert wb.sheetnames == ["about", "data", *graddesc.DEFAULT_OPTIMIZERS, "compare"]
    assert wb.defined_names["x"].attr_text == "data!$A$2:$A$30"
    adam = wb["adam"]
    local = {n: d.attr_text for n, d in adam.defined_names.items()}
    for name in ("lr", "beta1", "beta2", "eps", "weight_decay", "b_init", "a_init",
                 "b_trace", "a_trace", "loss_trace"):
        assert name in local, name
    assert adam.freeze_panes == "C1"  # step and epoch stay in view; no rows frozen
    headers = [c for c in adam[graddesc.HEADER_ROW + 1] if c.value]
    assert all(c.comment is not None for c in headers[:-4]), "every column header has a note"
    assert adam["B4"].value == 0.9  # beta1 input, torch default
    assert len(adam.data_validations.dataValidation) >= 7
    # every step row's b is the previous row's new b, across the epoch boundary too
    new_b = local["b_trace"].split("!")[1].split(":")[0].replace("$", "")
    col = "".join(ch for ch in new_b if ch.isalpha())
    step = lambda t: graddesc.FIRST_STEP_ROW + t  # 1-based row of step t
    assert adam[f"E{step(30)}"].value == f"={col}{step(29)}"   # step 30: first of epoch 2
    assert adam[f"E{step(1)}"].value == f"={col}{step(0)}"
    assert adam[f"{col}{step(0)}"].value == "=adam_b_init"
    assert len(adam._charts) == 2 and len(wb["compare"]._charts) == 1


def test_changing_lr_retrains_the_sheet(default_book):
    """Set a new lr in the input cell, recalculate: the traces follow the reference
    math at the new lr (and differ from the old ones)."""
    wb = verify.recalculated(default_book)
    si = wb.index["sgd"]
    old = wb.values("b_trace", "sgd")
    wb.model.set_user_input(si, 4, 1, "0.00005")  # A4 = lr
    wb.model.evaluate()
    new = wb.values("b_trace", "sgd")
    x, y = data.course_points()
    opt, _ = presets.resolve("torch", "sgd", lr=5e-5)
    want = linear.train(opt, x, y, epochs=5, b_init=1, a_init=1)
    np.testing.assert_allclose(new, want.b_trace, rtol=1e-12)
    assert not np.allclose(new, old)


def test_course_preset_reproduces_the_course_macro_run(course_dir, tmp_path):
    """Reset + one Run of the course's basic sheet is 5 epochs of SGD at lr 1e-4
    with each epoch's last update dropped; its saved C1/C2 are the result."""
    cached = openpyxl.load_workbook(course_dir / "graddesc.xlsm", data_only=True)["basic"]
    x, y = data.course_points()
    lesson = graddesc.make_lesson(x, y, optimizers=("sgd",), preset="course", epochs=6)
    path = xlsx.write(graddesc.build(lesson), tmp_path / "course.xlsx")
    wb = verify.recalculated(path)
    row = graddesc.FIRST_STEP_ROW + 29 * 5 + 1  # step 146, 1-based
    b_inputs = [wb.model.get_cell_value(wb.index["sgd"], row, 5)]  # its b and a (E, F)
    a_inputs = [wb.model.get_cell_value(wb.index["sgd"], row, 6)]
    assert b_inputs[0] == cached["C1"].value and a_inputs[0] == cached["C2"].value
    # the macro's loss history (C38..C42) is √SSE of epochs 2..6
    loss = wb.values("loss_trace", "sgd").reshape(6, 29)
    history = [cached[f"C{r}"].value for r in range(38, 43)]
    np.testing.assert_allclose(np.sqrt(loss.sum(axis=1))[1:], history, rtol=1e-13)


@pytest.mark.parametrize("sheet,kind,state", [
    ("momentum", "momentum", {"buf": ("J33", "K33")}),
    ("rmsprop", "rmsprop", {"square_avg": ("J33", "K33")}),
    ("adam", "adam", {"exp_avg": ("J33", "K33"), "exp_avg_sq": ("L33", "M33")}),
])
def test_course_preset_reproduces_one_course_epoch(course_dir, sheet, kind, state):
    """From each course sheet's saved inputs and state, one epoch of the course
    preset gives the sheet's saved last-row outputs H32, I32."""
    ws = openpyxl.load_workbook(course_dir / "graddesc.xlsm", data_only=True)[sheet]
    opt, _ = presets.resolve("course", kind, lr=ws["D2"].value)
    params = np.array([ws["C1"].value, ws["C2"].value])
    st = opt.init(params)
    for key, (cb, ca) in state.items():
        st[key] = np.array([ws[cb].value, ws[ca].value])
    x, y = data.course_points()
    for xi, yi in zip(x, y):
        _, _, _, gb, ga = linear.forward(params[0], params[1], xi, yi)
        params, st, _ = opt.update(params, np.array([gb, ga]), st)
    np.testing.assert_allclose(params, [ws["H32"].value, ws["I32"].value], rtol=1e-14)


def test_verify_course_graddesc_names_the_volatile_cells(course_dir):
    report = verify.verify(course_dir / "graddesc.xlsm")
    assert report.ok, report.summary()
    assert report.formula_cells == 1623
    assert len(report.volatile) == 58
    assert all(c.startswith("data!") for c in report.volatile)
    assert "data!B5" in report.volatile and "data!C33" in report.volatile
    assert report.lesson is None and not report.traces


def test_verify_catches_a_wrong_cached_value(default_book, tmp_path):
    """Corrupt one cached value in the sheet XML: verify must name that cell."""
    import re
    import zipfile

    bad = tmp_path / "bad.xlsx"
    cell = f"G{graddesc.FIRST_STEP_ROW + 1}"  # step 1's prediction
    with zipfile.ZipFile(default_book) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "xl/worksheets/sheet3.xml":  # sgd
                body, n = re.subn(rb'(<c r="' + cell.encode() + rb'"[^>]*><f>[^<]*</f><v>)[^<]*',
                                  rb"\g<1>12345", body)
                assert n == 1
            dst.writestr(info, body)
    report = verify.verify(bad)
    assert not report.ok
    assert [(m.sheet, m.cell, m.cached) for m in report.mismatches] == [("sgd", cell, 12345.0)]


def test_synthetic_rows_beyond_excel_are_refused():
    x, y = data.synthetic_line(10, 0)
    with pytest.raises(ValueError, match="past Excel's 1,048,576 rows"):
        graddesc.make_lesson(np.resize(x, 300_000), np.resize(y, 300_000), epochs=4)


def test_every_optimizer_and_preset_builds_and_verifies(tmp_path):
    x, y = data.synthetic_line(12, 3)
    x, y = x / 50, y / 50
    for preset in presets.PRESETS:
        lesson = graddesc.make_lesson(x, y, optimizers=graddesc.ALL_OPTIMIZERS, preset=preset,
                                      epochs=2, lr=0.01)
        path = xlsx.write(graddesc.build(lesson), tmp_path / f"{preset}.xlsx")
        report = verify.verify(path)
        assert report.ok, report.summary()
        assert len(report.traces) == 3 * len(graddesc.ALL_OPTIMIZERS)
