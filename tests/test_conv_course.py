"""`sheetdl build conv --preset course`: the course-v3 conv-example.xlsx laid out again, every
cell a plain formula. Its maps are the course file's cached values (less Conv2's off-by-one
25th column), torch's F.conv2d/max_pool2d on the same numbers, and IronCalc's and
LibreOffice's recalculation; a kernel typed over recomputes every map after it."""
import subprocess
import sys

import numpy as np
import openpyxl
import pytest
import torch
import torch.nn.functional as F
from openpyxl.utils import column_index_from_string as col

import sheetdl
from conftest import ROOT, named_values
from sheetdl.lessons.conv import course
from sheetdl.verification import libreoffice, verifier as verify

COURSE = ROOT / "tests" / "data" / "fastai" / "course-v3" / "conv-example.xlsx"


@pytest.fixture(scope="module")
def cached():
    """The course file's cells: (formulas, cached values) of sheet conv-example."""
    return (openpyxl.load_workbook(COURSE)["conv-example"],
            openpyxl.load_workbook(COURSE, data_only=True)["conv-example"])


def grid(ws, top, left, h, w, step=1):
    return np.array([[ws.cell(top + i * step, col(left) + j * step).value for j in range(w)]
                     for i in range(h)], float)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = sheetdl.build("conv", tmp_path_factory.mktemp("course") / "c.xlsx", preset="course")
    return path, verify.recalculated(path)


def test_the_data_is_the_course_files(cached):
    ws, _ = cached
    c = course.course()
    np.testing.assert_array_equal(c.image, grid(ws, 2, "A", 28, 28))
    np.testing.assert_array_equal(c.conv1, [grid(ws, 11, "AD", 3, 3), grid(ws, 38, "AD", 3, 3)])
    np.testing.assert_array_equal(c.conv2, [[grid(ws, 11, "BI", 3, 3), grid(ws, 15, "BI", 3, 3)],
                                            [grid(ws, 38, "BI", 3, 3), grid(ws, 42, "BI", 3, 3)]])
    np.testing.assert_array_equal(c.dense, [grid(ws, 4, "DN", 12, 13, 2),
                                            grid(ws, 33, "DN", 12, 13, 2)])
    # and the course's formulas are the network the sheet lays out: Conv2 map 1 reads both
    # Conv1 maps with its two kernels, and its 25th column reads past Conv1
    assert ws["BM4"].value.text == "=SUM(AH3:AJ5*$BI$11:$BK$13)+SUM(AH32:AJ34*$BI$15:$BK$17)"
    assert ws["CK4"].value.text.startswith("=SUM(BF3:BH5*") and ws["BH3"].value is None


def test_maps_equal_the_course_files_cached_values_and_torch(built, cached):
    path, wb = built
    assert verify.verify(path).ok
    _, values = cached
    conv1 = [grid(values, 3, "AH", 26, 26), grid(values, 32, "AH", 26, 26)]
    conv2 = [grid(values, 4, "BM", 24, 25), grid(values, 33, "BM", 24, 25)]
    pool = [grid(values, 4, "CM", 12, 13, 2), grid(values, 33, "CM", 12, 13, 2)]
    c = course.course()
    t = lambda a: torch.tensor(np.asarray(a, float))
    tc1 = F.conv2d(t(c.image)[None, None], t(c.conv1)[:, None])
    tc2 = F.conv2d(tc1, t(c.conv2))
    tpool = F.max_pool2d(tc2, 2)
    for k in range(2):
        got = {n: wb.values(f"{n}_{k + 1}").reshape(s)
               for n, s in (("conv1_map", (26, 26)), ("conv2_map", (24, 24)), ("pool", (12, 12)))}
        np.testing.assert_allclose(got["conv1_map"], conv1[k], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got["conv2_map"], conv2[k][:, :24], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got["pool"], pool[k][:, :12], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got["conv1_map"], tc1[0, k].numpy(), rtol=1e-12)
        np.testing.assert_allclose(got["conv2_map"], tc2[0, k].numpy(), rtol=1e-12)
        np.testing.assert_allclose(got["pool"], tpool[0, k].numpy(), rtol=1e-12)
    # the output leaves out the course's 13th pool column, all 0 for this 7: the same number
    assert not pool[0][:, 12].any() and not pool[1][:, 12].any()
    out = wb.values("course_output")[0]
    assert out == pytest.approx(values["EN4"].value, rel=1e-12)
    assert out == pytest.approx(float((t(c.dense[:, :, :12])[None] * tpool).sum()), rel=1e-12)


def test_libreoffice_recalculates_the_same_maps(built, soffice, tmp_path):
    path, wb = built
    lo = openpyxl.load_workbook(libreoffice.recalculate([path], tmp_path)[0], data_only=True)
    for name in ("conv1_map_1", "conv2_map_2", "pool_1", "pool_2", "course_output"):
        np.testing.assert_allclose(named_values(lo, name), wb.values(name), rtol=1e-12,
                                   err_msg=name)


def test_a_kernel_typed_over_recomputes_every_map_after_it(built):
    path, _ = built
    wb = verify.recalculated(path)
    si = wb.index["course"]
    cell = wb.name_formula("conv1_kernel_1", None).split("!")[1].split(":")[0].replace("$", "")
    row, column = int(cell.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")), col(cell.rstrip("0123456789"))
    wb.model.set_user_input(si, row, column, "-2")
    wb.model.evaluate()
    c = course.course()
    conv1 = c.conv1.copy()
    conv1[0, 0, 0] = -2
    want = course.forward(course.Course(c.image, conv1, c.conv2, c.dense, c.source))
    np.testing.assert_allclose(wb.values("conv1_map_1").reshape(26, 26), want["conv1"][0],
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wb.values("pool_2").reshape(12, 12), want["pool"][1],
                               rtol=1e-12, atol=1e-12)
    assert wb.values("course_output")[0] == pytest.approx(float(want["output"]), rel=1e-12)
    assert float(want["output"]) != pytest.approx(float(course.forward(c)["output"]))


def test_the_cli_writes_conv_course_and_refuses_training_flags(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "sheetdl", "build", "conv", *a],
                                    capture_output=True, text=True, cwd=tmp_path,
                                    env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    r = run("--preset", "course")
    assert r.returncode == 0 and (tmp_path / "workbooks" / "conv-course.xlsx").exists(), r.stderr
    assert not (tmp_path / "workbooks" / "conv.xlsx").exists()  # the lesson's own is kept
    r = run("--preset", "course", "--kernels", "3")
    assert r.returncode == 2
    assert "--preset course lays out the course's own sheet" in r.stderr
    assert "takes no --kernels" in r.stderr
