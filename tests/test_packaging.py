"""The wheel a person installs: it carries every file of the package that git tracks (the
xlwings Server project, the course's conv data), and an installed copy, away from the
checkout, builds and verifies a lesson."""
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT

pytest.importorskip("hatchling", reason="building the wheel offline needs hatchling")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation",
                        "--no-deps", "--no-index", "-q", "-w", str(out), str(ROOT)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (path,) = out.glob("sheetdl-*.whl")
    return path


def test_the_wheel_carries_every_tracked_file_of_the_package(wheel):
    tracked = subprocess.run(["git", "ls-files", "sheetdl"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    with zipfile.ZipFile(wheel) as z:
        inside = set(z.namelist())
    missing = [f for f in tracked if f not in inside]
    assert not missing, missing
    assert "sheetdl/lessons/conv/course_v3.json" in inside
    assert not [f for f in inside if f.startswith(("tests/", "workbooks/"))]


def test_an_installed_copy_builds_and_verifies_away_from_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                        "--target", str(site), str(wheel)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import sheetdl\n"
              "assert sheetdl.__file__.startswith(sys.argv[1]), sheetdl.__file__\n"
              "for lesson, opts in (('conv', {'preset': 'course'}), ('mlp', {'steps': 3})):\n"
              "    r = sheetdl.verify(sheetdl.build(lesson, f'{lesson}.xlsx', **opts))\n"
              "    assert r.ok, r.summary()\n"
              "print('ok', sheetdl.__file__)\n")
    r = subprocess.run([sys.executable, "-c", script, str(site)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.startswith("ok " + str(site)), r.stderr[-2000:]
