"""The sheetdl command as a user runs it: real processes, real files."""
import json
import os
import subprocess
import sys

import openpyxl
import pytest

from conftest import ROOT
from sheetdl.write import xlsx

COURSE_XLSM = os.path.join(os.path.dirname(__file__), "data", "fastai", "course-v3",
                           "graddesc.xlsm")


def sheetdl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sheetdl.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(
                              os.path.abspath(__file__)))))


def test_build_then_verify_json(tmp_path):
    out = tmp_path / "g.xlsx"
    r = sheetdl("build", "graddesc", "--rows", 40, "--seed", 7, "--epochs", 2,
                "--optimizers", "sgd,nadam", "--preset", "keras", "-o", out)
    assert r.returncode == 0, r.stderr
    r = sheetdl("verify", out, "--json")
    assert r.returncode == 0, r.stdout
    [report] = json.loads(r.stdout)
    assert report["ok"] and report["lesson"] == "graddesc"
    assert {t["sheet"] for t in report["traces"]} == {"sgd", "nadam"}
    assert all(t["steps"] == 80 for t in report["traces"])


def test_user_csv_and_its_errors(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("x,y\n1,3\n2,5.5\n3,7\n")
    out = tmp_path / "mine.xlsx"
    r = sheetdl("build", "graddesc", "--data", good, "--lr", 0.01, "-o", out)
    assert r.returncode == 0, r.stderr
    ws = openpyxl.load_workbook(out)["data"]
    assert [ws["A4"].value, ws["B4"].value] == [3, 7]
    for body, expect in [("x,y\n1,2\n3,oops\n", "line 3, column y: 'oops' is not a number"),
                         ("1,2\n3,nan\n", "line 2, column y: nan is not a finite number"),
                         ("1\n", "line 1: expected two columns"),
                         ("x,y\n", "no data rows")]:
        bad = tmp_path / "bad.csv"
        bad.write_text(body)
        r = sheetdl("build", "graddesc", "--data", bad, "-o", tmp_path / "bad.xlsx")
        assert r.returncode == 2 and expect in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert str(bad) in r.stderr
    assert not (tmp_path / "bad.xlsx").exists()


@pytest.mark.parametrize("args,expect", [
    (["--optimizers", "sgd,adadelta"], "unknown optimizer 'adadelta'"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--rows", "0"], "--rows must be at least 1"),
    (["--lr", "inf"], "--lr must be a finite number"),
])
def test_bad_arguments_are_named(tmp_path, args, expect):
    r = sheetdl("build", "graddesc", *args, "-o", tmp_path / "x.xlsx")
    assert r.returncode == 2 and expect in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_edited_workbook_is_not_overwritten_without_force(tmp_path):
    out = tmp_path / "g.xlsx"
    assert sheetdl("build", "graddesc", "-o", out).returncode == 0
    assert xlsx.untouched(out)
    assert sheetdl("build", "graddesc", "--lr", 0.02, "-o", out).returncode == 0  # untouched: ok
    wb = openpyxl.load_workbook(out)
    wb["sgd"]["A4"] = 0.00002  # a person changes lr and saves
    wb.save(out)
    edited = out.read_bytes()
    r = sheetdl("build", "graddesc", "-o", out)
    assert r.returncode == 2 and "changed since sheetdl wrote it" in r.stderr
    assert out.read_bytes() == edited
    r = sheetdl("build", "graddesc", "-o", out, "--force")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "g.xlsx.bak").read_bytes() == edited
    assert xlsx.untouched(out)


def edit(path, lr):
    wb = openpyxl.load_workbook(path)
    wb["sgd"]["A4"] = lr
    wb.save(path)
    return path.read_bytes()


def test_a_second_forced_build_keeps_both_backups(tmp_path):
    """Before: the second --force replaced the first backup, so the first edit was lost."""
    out = tmp_path / "g.xlsx"
    assert sheetdl("build", "graddesc", "-o", out).returncode == 0
    first = edit(out, 0.00002)
    r = sheetdl("build", "graddesc", "-o", out, "--force")
    assert r.returncode == 0 and r.stderr.count("kept a backup") == 1, r.stderr
    second = edit(out, 0.00003)
    r = sheetdl("build", "graddesc", "-o", out, "--force")
    assert r.returncode == 0 and f"as {tmp_path / 'g.xlsx.2.bak'}" in r.stderr, r.stderr
    assert (tmp_path / "g.xlsx.bak").read_bytes() == first
    assert (tmp_path / "g.xlsx.2.bak").read_bytes() == second


def test_a_backup_is_never_written_through_a_link_or_into_a_folder(tmp_path):
    """Before: NAME.bak a symlink to precious.txt made --force replace precious.txt with
    a workbook; NAME.bak a folder took the backup inside and said so twice."""
    out = tmp_path / "g.xlsx"
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    assert sheetdl("build", "graddesc", "-o", out).returncode == 0
    edited = edit(out, 0.00002)
    (tmp_path / "g.xlsx.bak").symlink_to(precious)
    (tmp_path / "g.xlsx.2.bak").mkdir()
    r = sheetdl("build", "graddesc", "-o", out, "--force")
    assert r.returncode == 0 and r.stderr.count("kept a backup") == 1, r.stderr
    assert precious.read_text() == "keep me"
    assert list((tmp_path / "g.xlsx.2.bak").iterdir()) == []
    assert (tmp_path / "g.xlsx.3.bak").read_bytes() == edited


def test_build_is_deterministic(tmp_path):
    a, b = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    for out in (a, b):
        assert sheetdl("build", "graddesc", "--rows", 30, "--seed", 3, "-o", out).returncode == 0
    assert a.read_bytes() == b.read_bytes()


def test_verify_reports_bad_files(tmp_path):
    text = tmp_path / "notes.xlsx"
    text.write_text("not a workbook")
    r = sheetdl("verify", text)
    assert r.returncode == 1  # checked, and it fails
    assert f"{text}: ERROR" in r.stdout and "not a zip archive" in r.stdout
    r = sheetdl("verify", text, tmp_path / "missing.xlsx")
    assert r.returncode == 2  # a file that is not there is a command-line mistake, as in build
    assert f"{text}: ERROR" in r.stdout and "missing.xlsx: no such file" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_verify_course_workbook_from_the_command_line():
    r = sheetdl("verify", COURSE_XLSM)
    assert r.returncode == 0, r.stdout
    assert "1565 agree" in r.stdout and "58 volatile" in r.stdout and "data!B5" in r.stdout


def test_list_names_lessons_optimizers_presets():
    r = sheetdl("list")
    assert r.returncode == 0
    assert "graddesc" in r.stdout and "nadam" in r.stdout and "course" in r.stdout


def test_verify_into_a_closed_pipe_is_quiet(tmp_path):
    """`sheetdl verify F | head -1`: the reader leaves early; no traceback, exit 0."""
    path = ROOT / "workbooks" / "lrfind.xlsx"
    p = subprocess.Popen([sys.executable, "-m", "sheetdl.cli", "verify", str(path), str(path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    p.stdout.close()  # as head does once it has its line
    err = p.stderr.read().decode()
    assert p.wait() == 0 and "Traceback" not in err, err
