"""The Excel side: the demo .xlsm and the install steps (Lite: test_lite.py)."""
import subprocess
import sys
import zipfile

import numpy as np
import openpyxl
import pytest

from sheetdl.addin import install as addin, udfs
from sheetdl.verification import verifier as verify
from sheetdl.write import xlsx
from conftest import ROOT

DEMO = ROOT / "addin" / "sheetdl.xlsm"


def test_demo_is_reproduced_byte_for_byte(tmp_path):
    pytest.importorskip("xlwings")
    out = xlsx.write(addin.demo_book(), tmp_path / "sheetdl.xlsm")
    assert out.read_bytes() == DEMO.read_bytes(), "run `sheetdl addin build --force` and commit"


def test_demo_carries_the_xlwings_vba_and_conf():
    pytest.importorskip("xlwings")
    with zipfile.ZipFile(DEMO) as z:
        assert z.read("xl/vbaProject.bin") == addin.vba_project()
    wb = openpyxl.load_workbook(DEMO, keep_vba=True)
    conf = {r[0].value: r[1].value for r in wb["xlwings.conf"].iter_rows(max_col=2)}
    assert conf["UDF Modules"] == "sheetdl.addin.classic" and conf["Interpreter_Win"] == "python"


def test_demo_calls_sit_beside_their_formula_sheets():
    report = verify.verify(DEMO)
    assert report.ok, report.summary()
    assert set(report.unsupported) == {"sheetdl_train_linear", "sheetdl_softmax"}
    wb = openpyxl.load_workbook(DEMO, data_only=True)
    calls = wb["calls"]
    header = [c.value for c in calls[4]]
    assert header[:12] == udfs.TRAIN_HEADER and header[13] == "new b − sgd!new b"
    recalc = verify.recalculated(DEMO)
    new_b_call = [calls.cell(5 + i, 11).value for i in range(58)]
    # the call's cached trajectory is the formula sheet as IronCalc recalculates it ...
    np.testing.assert_array_equal(new_b_call, recalc.values("b_trace", "sgd"))
    # ... and torch.optim's, from the sheet's own inputs (not the add-in's own numbers)
    from sheetdl.lessons import data
    from sheetdl.math import presets
    from torch_reference import torch_trace

    x, y = data.course_points()
    opt, _ = presets.resolve("torch", "sgd", lr=recalc.values("lr", "sgd")[0])
    b, _, _ = torch_trace("sgd", opt, x, y, 2, recalc.values("b_init", "sgd")[0],
                          recalc.values("a_init", "sgd")[0])
    np.testing.assert_allclose(new_b_call, b, rtol=1e-9, atol=1e-12)


def test_install_elsewhere_prints_the_steps():
    r = subprocess.run([sys.executable, "-m", "sheetdl.cli", "addin", "install"],
                       capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)})
    assert r.returncode == 0
    assert "xlwings addin install" in r.stdout
    assert '"UDF Modules",\n     "sheetdl.addin.classic"' in r.stdout
