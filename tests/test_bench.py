"""sheetdl bench measures; it enforces no speed (these machines are noisy). The test
checks that each row's ratio is computed from the two times measured in the run."""
import json
import math

from sheetdl import bench


def test_kernel_rows_are_measured_ratios(monkeypatch):
    monkeypatch.setitem(bench.QUICK, "kernel_n", 200_000)
    monkeypatch.setitem(bench.QUICK, "train_rows", 2_000)
    monkeypatch.setitem(bench.QUICK, "collab", (20, 30, 4))
    monkeypatch.setitem(bench.QUICK, "repeats", 1)
    report = bench.run(only=["kernels"])
    rows = [r for r in report["rows"] if r["area"] == "kernels"]
    assert {r["what"].split(",")[0] for r in rows} >= {"adam_step", "sgd_step", "train_linear",
                                                      "collab_train"}
    for r in rows:
        assert r["ours"] > 0 and r["theirs"] > 0
        assert math.isclose(r["ratio"], r["theirs"] / r["ours"])
    gpu = [r for r in report["rows"] if r["area"] == "gpu"]
    assert len(gpu) == 1 and gpu[0]["note"]
    text = bench.table(report)
    assert "| kernels | adam_step, 200,000 float64 parameters, in place (out=) |" in text
    json.dumps(report, default=str)


def test_conv_rows_are_measured_ratios(monkeypatch, soffice):
    """The conv area: verify of the default conv workbook against LibreOffice's
    recalculation of it, and the reference math and SHEETDL.CONV_TRAIN against torch CPU,
    each timed in the run."""
    monkeypatch.setitem(bench.QUICK, "repeats", 1)
    rows = [r for r in bench.run(only=["conv"])["rows"] if r["area"] == "conv"]
    assert [r["what"].split(" of ")[0] for r in rows][:1] == ["sheetdl verify"]
    assert len(rows) == 3 and rows[2]["what"].startswith("SHEETDL.CONV_TRAIN")
    for r in rows:
        assert r["ours"] > 0 and r["theirs"] > 0
        assert math.isclose(r["ratio"], r["theirs"] / r["ours"])
    assert rows[0]["extra"]["peak_mb"] > 0


def test_the_child_processes_import_what_they_time():
    """The writing and verify rows run their code in fresh processes: its imports must
    work there, outside the package (a relative import did not, and only `sheetdl bench`
    in CI would have said so)."""
    import subprocess
    import sys

    from conftest import ROOT

    for code in (bench.WRITE_SHEETDL, bench.WRITE_DEFAULT, bench.WRITE_ALTERNATIVE,
                 bench.VERIFY_SHEETDL):
        imports = "\n".join(line for line in code.splitlines()
                            if line.startswith(("from ", "import ")))
        r = subprocess.run([sys.executable, "-c", imports], capture_output=True, text=True,
                           env={"PYTHONPATH": str(ROOT)})
        assert r.returncode == 0, r.stderr
