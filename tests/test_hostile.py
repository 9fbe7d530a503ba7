"""Hostile and broken input: each gives a clear error naming the file, sheet, cell
or argument, a non-zero exit status and no traceback; nothing is lost."""
import os
import re
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import openpyxl
import pytest

from sheetdl.lessons.collab import layout as collab_book
from sheetdl.lessons.softmax import model as softmax, layout as softmax_book
from sheetdl.verification import verifier as verify, workbook
from sheetdl.write import xlsx
from conftest import ROOT

WORKBOOK = ROOT / "workbooks" / "graddesc.xlsx"
LOL = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
       + b"".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">'
                  .replace("&lol0;", "&lol;").encode()
                  for i in range(1, 10)) + b"]>")


def run(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "sheetdl.cli", *map(str, args)], cwd=cwd,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    return r


def rewrite(src, dst, edit):
    """Copy a workbook, passing each member's bytes through edit(name, data)."""
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as d:
        for info in z.infolist():
            data = edit(info.filename, z.read(info))
            if data is not None:
                d.writestr(info, data)
    return dst


def test_truncated_zip(tmp_path):
    bad = tmp_path / "cut.xlsx"
    bad.write_bytes(WORKBOOK.read_bytes()[: WORKBOOK.stat().st_size // 2])
    r = run("verify", bad)
    assert r.returncode == 1 and f"{bad}: ERROR" in r.stdout and "truncated" in r.stdout


def test_zip_bomb_is_refused_before_unpacking(tmp_path):
    """1.1 GiB of zeros in one member (about 1 MB packed)."""
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
            block = b"\0" * (1 << 24)
            for _ in range(70):
                f.write(block)
    assert bomb.stat().st_size < 5_000_000
    r = run("verify", bomb)
    assert r.returncode == 1
    assert "xl/worksheets/sheet1.xml would unpack to 1,174,405,120 bytes" in r.stdout


@pytest.mark.parametrize("member", ["xl/worksheets/sheet3.xml", "xl/workbook.xml",
                                    "docProps/custom.xml"])
def test_xml_entity_bomb_is_refused(tmp_path, member):
    def edit(name, data):
        if name != member:
            return data
        body = data.split(b"?>", 1)[1]
        return LOL + body.replace(b"<sheetData>", b"<sheetData><row r=\"999\"><c r=\"A999\" "
                                  b"t=\"inlineStr\"><is><t>&lol9;</t></is></c></row>", 1)
    bad = rewrite(WORKBOOK, tmp_path / "lol.xlsx", edit)
    t0 = time.perf_counter()
    r = run("verify", bad)
    assert time.perf_counter() - t0 < 60
    assert r.returncode == 1 and f"member {member} declares a DTD or XML entities" in r.stdout


def test_unknown_function_is_reported_not_failed(tmp_path):
    import xlsxwriter

    path = tmp_path / "odd.xlsx"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("calc")
    ws.write_number("A1", 2)
    ws.write_formula("A2", "=A1*3", None, 6)
    ws.write_formula("A3", "=_xlfn.NOSUCHFN(A1)", None, 7)
    wb.close()
    r = verify.verify(path)
    assert r.ok and r.unsupported and list(r.unsupported.values()) == [["calc!A3"]]
    assert "IronCalc does not know" in r.summary()


def test_wrong_typed_named_input(tmp_path):
    """lr on the sgd sheet holds text: verify names the cell and the name."""
    def edit(name, data):
        if name == "xl/worksheets/sheet3.xml":  # sgd
            data, n = re.subn(rb'<c r="A4" s="(\d+)"><v>[^<]*</v></c>',
                              rb'<c r="A4" s="\1" t="inlineStr"><is><t>fast</t></is></c>', data)
            assert n == 1
        return data
    bad = rewrite(WORKBOOK, tmp_path / "typed.xlsx", edit)
    r = run("verify", bad)
    assert r.returncode == 1
    assert "sgd!A4 (named lr) holds 'fast', not a finite number" in r.stdout


def test_missing_named_input(tmp_path):
    def edit(name, data):
        if name == "xl/workbook.xml":
            data, n = re.subn(rb'<definedName name="beta2" localSheetId="\d+">[^<]*</definedName>',
                              b"", data, count=1)
            assert n == 1
        return data
    bad = rewrite(WORKBOOK, tmp_path / "unnamed.xlsx", edit)
    r = run("verify", bad)
    assert r.returncode == 1 and "has no defined name 'beta2'" in r.stdout


@pytest.mark.parametrize("body,expect", [
    ("x,y\n1,2\n,5\n", "line 3, column x: '' is not a number"),
    ("x,y\n1,2\n3,inf\n", "line 3, column y: inf is not a finite number"),
    ("x,y\n1,2\nNaN,4\n", "line 3, column x: nan is not a finite number"),
    ("x,y\n1,2\n3,seven\n", "line 3, column y: 'seven' is not a number"),
])
def test_bad_graddesc_csv(tmp_path, body, expect):
    f = tmp_path / "d.csv"
    f.write_text(body)
    r = run("build", "graddesc", "--data", f, "-o", tmp_path / "o.xlsx")
    assert r.returncode == 2 and expect in r.stderr and str(f) in r.stderr, r.stderr
    assert not (tmp_path / "o.xlsx").exists()


def test_bad_softmax_and_collab_csv(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("a,b,label\n1,2,x\n3,,y\n")
    r = run("build", "softmax", "--data", f, "-o", tmp_path / "o.xlsx")
    assert r.returncode == 2 and "line 3, column 2: '' is not a number" in r.stderr
    f.write_text("a,b,label\n\n1,2,x\n\n3,q,y\n")  # blank lines count: the bad one is line 5
    r = run("build", "softmax", "--data", f, "-o", tmp_path / "o.xlsx")
    assert r.returncode == 2 and "line 5, column 2: 'q' is not a number" in r.stderr
    f.write_text("user,item,rating\nu,i,inf\n")
    r = run("build", "collab", "--data", f, "-o", tmp_path / "o.xlsx")
    assert r.returncode == 2 and "line 2, column rating: inf is not a finite number" in r.stderr


def test_sizes_past_excel_are_refused():
    X, labels = softmax.synthetic_blobs(1000, 3, 2)
    with pytest.raises(ValueError, match="past Excel's 1,048,576 rows"):
        softmax_book.make_lesson(X, labels, steps=2000)
    R = np.full((3, 20_000), 3.0)
    with pytest.raises(ValueError, match="past Excel's 16,384"):
        collab_book.make_lesson(R, ["a", "b", "c"], [str(i) for i in range(20_000)])
    r = run("build", "graddesc", "--rows", 300_000, "--epochs", 4, "-o", "/dev/null/x.xlsx")
    assert r.returncode == 2 and "past Excel's 1,048,576 rows" in r.stderr


def test_overflowing_learning_rate_says_so(tmp_path):
    out = tmp_path / "d.xlsx"
    r = run("build", "graddesc", "--optimizers", "sgd,adam", "--lr", 0.01, "-o", out)
    assert r.returncode == 0
    assert "sheet sgd: training diverged at step" in r.stderr
    assert "sheet adam" not in r.stderr
    report = verify.verify(out)
    assert report.ok, report.summary()
    wb = verify.recalculated(out)
    status = {sheet: wb.model.get_cell_value(wb.index[sheet], 6, 1) for sheet in ("sgd", "adam")}
    assert status["sgd"].startswith("OVERFLOWED: the loss is #NUM! from step ")
    assert status["adam"].startswith("training fine: the loss fell")


def _build_until_writing(out):
    """A long build of ``out``, returned once its temporary file exists (writing has begun):
    a trigger on the file, not on a guess of how long the build takes."""
    proc = subprocess.Popen([sys.executable, "-m", "sheetdl.cli", "build", "graddesc", "--rows",
                             "40000", "-o", str(out)], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for _ in range(1200):
        if list(out.parent.glob(f".{out.name}.*.tmp")) or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be interrupted"
    return proc


def test_killed_build_leaves_the_previous_file_intact_and_the_next_build_cleans_up(tmp_path):
    out = tmp_path / "g.xlsx"
    assert run("build", "graddesc", "-o", out).returncode == 0
    before = out.read_bytes()
    proc = _build_until_writing(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert out.read_bytes() == before
    assert verify.verify(out).ok
    assert xlsx.untouched(out)
    left = list(tmp_path.glob(".g.xlsx.*.tmp"))
    assert left  # SIGKILL cannot be caught: the next build removes what it left
    assert run("build", "graddesc", "-o", out).returncode == 0
    assert not list(tmp_path.glob(".g.xlsx.*.tmp"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_terminated_build_removes_its_temporary_file(tmp_path, sig):
    """Before: SIGTERM or SIGHUP left the .tmp file behind."""
    out = tmp_path / "g.xlsx"
    proc = _build_until_writing(out)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert f"sheetdl: terminated by {signal.Signals(sig).name}" in err
    assert "Traceback" not in err
    assert not list(tmp_path.glob(".g.xlsx.*.tmp")) and not out.exists()


def test_schedule_input_edited_to_nonsense_is_named(tmp_path):
    """A step-schedule sheet whose `step_size` input was set to 0 (its formulas divide by
    it): verify names the sheet and the input instead of crashing."""
    import dataclasses

    from sheetdl.lessons import data
    from sheetdl.lessons.graddesc import layout as graddesc

    x, y = data.course_points()
    lesson = graddesc.make_lesson(x, y, optimizers=("sgd",), schedule="step")
    lesson.schedules["sgd"] = dataclasses.replace(lesson.schedules["sgd"], step_size=0)
    path = xlsx.write(graddesc.build(lesson), tmp_path / "edited.xlsx")
    r = subprocess.run([sys.executable, "-m", "sheetdl.cli", "verify", str(path)],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "sheet sgd: its schedule inputs cannot be replayed: --step-size must be a whole " \
        "number" in r.stdout


# --------------------------------------------------------------------------- round two (issue 14)

def test_a_named_pipe_is_refused_as_input_and_as_output(tmp_path):
    """Reading or writing a FIFO would block forever; both are refused at once."""
    pipe = tmp_path / "p.xlsx"
    os.mkfifo(pipe)
    r = subprocess.run([sys.executable, "-m", "sheetdl.cli", "verify", str(pipe)], timeout=60,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 1 and f"{pipe}: ERROR not a regular file" in r.stdout
    r = subprocess.run([sys.executable, "-m", "sheetdl.cli", "build", "lrfind", "-o", str(pipe)],
                       timeout=60, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2 and "not a regular file" in r.stderr


def test_forged_metadata_is_one_line_and_the_next_file_is_still_verified(tmp_path):
    forged = rewrite(WORKBOOK, tmp_path / "forged.xlsx", lambda name, data: re.sub(
        rb'"sheets":\{.*?\}\}\}', b'"sheets":{"sgd":{"optimizer":"sgd"}}', data)
        if name == "docProps/custom.xml" else data)
    r = run("verify", forged, ROOT / "workbooks" / "lrfind.xlsx")
    assert r.returncode == 1
    assert f"{forged}: ERROR" in r.stdout and "its sheetdl metadata" in r.stdout, r.stdout
    assert "lrfind.xlsx: OK" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["serve", "--port", "70000"], "70000 is not a port (1–65535)"),
    (["build", "collab", "--y-range", "0,inf"], "--y-range needs finite LOW,HIGH"),
    (["build", "softmax", "--seed", "-1"], "--seed must be 0 or more"),
    (["verify", "--rtol", "nan", str(WORKBOOK)], "--rtol must be a number from 0 to 1, got nan"),
    (["verify", "--rtol", "1e300", str(WORKBOOK)], "--rtol must be a number from 0 to 1"),
])
def test_bad_numbers_name_their_flag(args, message):
    r = run(*args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


@pytest.mark.parametrize("args", [["-o", "a.xlsx", "-o", "b.xlsx"],
                                  ["--out=a.xlsx", "-o", "b.xlsx"],
                                  ["--lr-min", "1e-5", "--lr-min=1e-4", "-o", "a.xlsx"]])
def test_a_flag_given_twice_is_refused(tmp_path, args):
    """Before: -o a.xlsx -o b.xlsx wrote b.xlsx alone, without a word about a.xlsx."""
    r = run("build", "lrfind", *args, cwd=tmp_path)
    assert r.returncode == 2 and "given twice; give it once" in r.stderr, r.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("call,message", [
    (lambda u: u.train_linear([[1], [2]], [[3], [4]], "sgd", [[0.1, 0.2]]),
     "lr must be one cell, got 2 cells"),
    (lambda u: u.train_linear([[1], [2]], [[3], [4]], "sgd", True),
     "lr must be a number, got TRUE"),
    (lambda u: u.collab_train([[1, 2], [3, None]], [[2, 50]]), "factors must be one cell, got 2"),
    (lambda u: u.train_linear([[1], [2]], [[3], [4]], "sgd", 10**4299),
     "lr must be a number, got 1000000000000000000000000000000000000..."),
])
def test_a_scalar_argument_is_one_number_cell(call, message):
    """Before: a two-cell lr or factors took its first cell, and TRUE read as 1."""
    from sheetdl.addin import udfs

    with pytest.raises(udfs.UdfError, match=re.escape(message)):
        call(udfs)


@pytest.mark.parametrize("rtol", [-1, float("nan"), "x", None, True, 1e300, float("inf")])
def test_the_apis_tolerance_is_checked_as_the_clis(rtol):
    """Before: rtol=-1 or nan gave a Report with no mismatches, 'x' was blamed on the
    file's metadata and 1e300 printed NumPy's overflow warning."""
    import sheetdl

    with pytest.raises(ValueError, match=r"^rtol must be a number from 0 to 1, got "):
        sheetdl.verify(WORKBOOK, rtol=rtol)
    with pytest.raises(ValueError, match=r"^atol must be a number from 0 to 1, got "):
        verify.verify(WORKBOOK, atol=rtol)
    assert sheetdl.verify(WORKBOOK, rtol=1).ok


def test_output_path_faults_are_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = run("build", "lrfind", "-o", afile / "x.xlsx")
    assert r.returncode == 2 and f"{afile} is a file, not a folder" in r.stderr
    r = run("build", "lrfind", "-o", tmp_path / ("n" * 252 + ".xlsx"))
    assert r.returncode == 2 and "cannot write: File name too long" in r.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_utf16_csv_says_so(tmp_path):
    csv = tmp_path / "u16.csv"
    csv.write_bytes("x1,label\n1,a\n2,b\n".encode("utf-16"))
    for lesson in ("softmax", "collab", "graddesc"):
        r = run("build", lesson, "--data", csv, "-o", tmp_path / "o.xlsx")
        assert r.returncode == 2 and f"{csv}: not a UTF-8 text file (it looks like UTF-16" \
            in r.stderr, (lesson, r.stderr)


def test_one_far_formula_does_not_walk_the_whole_sheet(tmp_path):
    """A 5 KB file with one formula at XFD1048576: verify used to walk the 1.7e10-cell
    dimension box; it now reads only the cells the file lists (a timeout guards the test)."""
    import xlsxwriter

    path = tmp_path / "far.xlsx"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet()
    ws.write_number("A1", 2)
    ws.write_formula("XFD1048576", "=A1*3", None, 6)
    wb.close()
    r = subprocess.run([sys.executable, "-m", "sheetdl.cli", "verify", str(path)], timeout=120,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0 and "1 formula cells recalculated" in r.stdout, r.stdout


@pytest.mark.parametrize("call,message", [
    (lambda u: u.train_linear([[1], [2]], [[1], [2]], "sgd", 0.01, 0.5),
     "epochs must be a whole number from 1"),                         # was KeyError
    (lambda u: u.collab_train([[1, 2], [3, ""]], 0.5),
     "factors must be a whole number"),  # was IndexError
    (lambda u: u.sgd_step("", [[1]], 0.1), "params has an empty, error or non-finite cell"),
    (lambda u: u.sgd_step([["a"]], [[1]], 0.1), "params must be a range of numbers"),  # ValueError
    (lambda u: u.sgd_step([[1, 2], [3]], [[1]], 0.1), "params must be a range of numbers"),
    (lambda u: u.adam_step([[1]], [[1]], [[0]], [[0]], 1, 0.1, 2), "beta1 2: must be at least 0 "
                                                                    "and below 1"),
    (lambda u: u.adam_step([[1]], [[1]], [[0]], [[0]], 1, 0.1, 0.9, 0.999, -1),
     "eps -1: must be at least 0"),
    (lambda u: u.rmsprop_step([[1]], [[1]], [[0]], 0.1, 2), "alpha 2: must be at least 0"),
    (lambda u: u.sgd_step([[1]], [[1]], 0), "lr must be a positive finite number"),
    (lambda u: u.momentum_step([[1]], [[1]], [[0]], 0.1, 0.9, 0, "maybe"),
     "nesterov must be TRUE or FALSE"),
])
def test_udf_arguments_are_checked_as_torch_checks_them(call, message):
    from sheetdl.addin import udfs

    with pytest.raises(udfs.UdfError, match=re.escape(message)):
        call(udfs)


def test_nesterov_false_as_text_is_false():
    """Before, nesterov="FALSE" was read as True (a non-empty string)."""
    from sheetdl.addin import udfs

    # torch.optim.SGD: buf = 0.9·0.5 + 1 = 1.45; plain θ − 0.1·buf, Nesterov θ − 0.1·(g + 0.9·buf)
    step = lambda flag: udfs.momentum_step([[1.0]], [[1.0]], [[0.5]], 0.1, 0.9, 0, flag)
    np.testing.assert_allclose(step("FALSE"), [[1 - 0.1 * 1.45, 1.45]], rtol=1e-15)
    np.testing.assert_allclose(step("TRUE"), [[1 - 0.1 * (1 + 0.9 * 1.45), 1.45]], rtol=1e-15)


def test_an_edit_saved_during_a_long_build_is_not_overwritten(tmp_path):
    """The "changed since written" check runs again at the rename: before, it ran only
    before the write, and an edit saved meanwhile was lost without --force or a .bak."""
    import openpyxl

    out = tmp_path / "g.xlsx"
    assert run("build", "lrfind", "-o", out).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "sheetdl.cli", "build", "graddesc", "--rows",
                             "20000", "-o", str(out)], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".g.xlsx.*.tmp")):  # the build is writing
        assert proc.poll() is None and time.monotonic() < deadline, "the build never started"
        time.sleep(0.05)
    wb = openpyxl.load_workbook(out)
    wb["lrfind"]["A1"] = "my notes"  # a person saves an edit meanwhile
    wb.save(out)
    edited = out.read_bytes()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "changed since sheetdl wrote it" in err, err
    assert out.read_bytes() == edited
    assert not list(tmp_path.glob("*.tmp"))


def _same(cached, lo) -> bool:
    error = lambda v: isinstance(v, str) and v.startswith("#")
    if error(cached) or error(lo):
        return error(cached) and error(lo)
    if isinstance(cached, (int, float)) and isinstance(lo, (int, float)):
        return abs(cached - lo) <= 1e-12 + 1e-9 * max(abs(cached), abs(lo))
    return cached == lo


def test_overflowing_builds_cache_what_the_engines_compute(tmp_path, soffice):
    """Before: build softmax --lr 1e308 wrote 1,577 cells cached 0.367 that every engine
    shows as #NUM! (NumPy's exp(−inf) = 0 came back from an overflow a sheet never does),
    and its own verify failed; likewise graddesc with x = 1e300. Now each verifies, and
    LibreOffice's recalculation equals every cached value, #NUM! included."""
    from sheetdl.verification import libreoffice

    big = tmp_path / "big.csv"
    big.write_text("x,y\n1e300,2\n2,4\n3,6\n")
    builds = [["softmax", "--lr", "1e308"], ["collab", "--lr", "1e308", "--optimizer", "sgd"],
              ["mlp", "--lr", "1e308", "--optimizer", "sgd", "--steps", "10"],
              ["graddesc", "--data", str(big)]]
    paths = []
    for i, args in enumerate(builds):
        out = tmp_path / f"b{i}.xlsx"
        r = run("build", *args, "-o", out)
        assert r.returncode == 0, r.stderr
        report = verify.verify(out)
        assert report.ok, report.summary()
        paths.append(out)
    for path, lo_path in zip(paths, libreoffice.recalculate(paths, tmp_path / "lo")):
        formulas = openpyxl.load_workbook(path)
        cached = openpyxl.load_workbook(path, data_only=True)
        lo = openpyxl.load_workbook(lo_path, data_only=True)
        errors, compared = 0, 0
        for ws in formulas.worksheets:
            for row in ws.iter_rows():
                for c in row:
                    if isinstance(c.value, str) and c.value.startswith("="):
                        want = cached[ws.title][c.coordinate].value
                        got = lo[ws.title][c.coordinate].value
                        assert _same(want, got), (path.name, ws.title, c.coordinate, c.value,
                                                  want, got)
                        compared += 1
                        errors += isinstance(want, str) and want.startswith("#")
        assert errors > 0 and compared > errors, (path.name, errors, compared)


def test_tiny_values_train_in_libreoffice_as_in_the_reference(tmp_path, soffice):
    """Before: an mlp CSV of 1e-320 (or 1e-200) values built and verified, and LibreOffice
    showed 2,467 #NUM! cells, as graddesc did with 1e-100: LibreOffice gives #NUM! for a
    power whose result underflows (Adam's and RMSProp's g^2 once g < 1.5e-154), where
    the reference's g*g goes quietly to a subnormal or 0. Squares are products now."""
    from sheetdl.verification import libreoffice

    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (20, 2)).tolist()
    sub, tiny = tmp_path / "sub.csv", tmp_path / "tiny.csv"
    sub.write_text("a,b,y\n" + "".join(f"{p * 1e-320!r},{q * 1e-320!r},{(p - 2 * q) * 1e-320!r}\n"
                                       for p, q in x))
    tiny.write_text("".join(f"{p * 1e-100!r},{(3 * p + q) * 1e-100!r}\n" for p, q in x))
    paths = []
    for lesson, data in [("mlp", sub), ("graddesc", tiny)]:
        out = tmp_path / f"{lesson}.xlsx"
        assert run("build", lesson, "--data", data, "-o", out).returncode == 0
        assert verify.verify(out).ok
        paths.append(out)
    for path, lo_path in zip(paths, libreoffice.recalculate(paths, tmp_path / "lo")):
        cached, lo = workbook.load(path), workbook.load(lo_path)
        compared = 0
        for key in cached.get_all_cells():
            if cached.get_cell_formula(*key):
                want, got = cached.get_cell_value(*key), lo.get_cell_value(*key)
                assert _same(want, got), (path.name, key, cached.get_cell_formula(*key), want, got)
                compared += 1
        assert compared > 10_000


@pytest.mark.parametrize("book,old,new", [
    ("softmax.xlsx", rb'"steps":50', rb'"steps":1000000000'),
    ("collab.xlsx", rb'"epochs":20', rb'"epochs":1e9'),
    ("graddesc.xlsx", rb'"epochs":5', rb'"epochs":1000000000'),
    ("mlp.xlsx", rb'"steps":100', rb'"steps":1000000000'),
    ("conv.xlsx", rb'"steps":40', rb'"steps":1000000000'),
])
def test_forged_sizes_are_refused_before_any_work(tmp_path, book, old, new):
    """Before: "epochs": 1e9 asked for 216 GiB and softmax "steps": 1e9 ran 55 s, then a
    SystemError. The metadata is the file's word: a size no sheet can hold is refused."""
    forged = rewrite(ROOT / "workbooks" / book, tmp_path / book,
                     lambda name, data: data.replace(old, new) if name == "docProps/custom.xml"
                     else data)
    t0 = time.perf_counter()
    r = run("verify", forged)
    assert r.returncode == 1 and "its sheetdl metadata asks for" in r.stdout, r.stdout
    assert time.perf_counter() - t0 < 60


@pytest.mark.parametrize("new", [rb'"image":[8,8,8]', rb'"image":"8x8"', rb'"image":[100000,8]',
                                 rb'"image":[8,true]'])
def test_forged_conv_image_sizes_are_refused(tmp_path, new):
    """A conv workbook's image size is the metadata's word: anything but two sides sheetdl
    writes is one line, no traceback, nothing allocated."""
    forged = rewrite(ROOT / "workbooks" / "conv.xlsx", tmp_path / "conv.xlsx",
                     lambda name, data: data.replace(rb'"image":[8,8]', new)
                     if name == "docProps/custom.xml" else data)
    r = run("verify", forged)
    assert r.returncode == 1 and "not a size sheetdl writes" in r.stdout, r.stdout
    assert "Traceback" not in r.stdout + r.stderr


@pytest.mark.parametrize("old,new,message", [
    (rb'"epochs":20', rb'"epochs":1000000000', "its sheetdl metadata asks for 1000000000 steps"),
    (rb'"factors":5', rb'"factors":-3', "its sheetdl metadata asks for -3 factors"),
    (rb'"factors":5', rb'"factors":1000000000000', "its sheetdl metadata asks for a replay of"),
    (rb'"epochs":20', rb'"epochs":"20000000"', "its sheetdl metadata asks for '20000000' steps"),
    (rb'"factors":5', rb'"factors":true', "its sheetdl metadata asks for True factors"),
    (rb'"lesson":"collab"', rb'"lesson":["collab"]',
     "is not what sheetdl writes (lesson ['collab'])"),
    (rb'<vt:lpwstr>{', rb'<vt:lpwstr>[{', None),
])
def test_forged_udf_collab_metadata_is_refused_before_any_work(tmp_path, old, new, message):
    """Before: a collab --udf workbook's replay had no bound (epochs 1e9 ran on and on), and
    metadata that is JSON but not an object was a traceback."""
    built = tmp_path / "cu.xlsx"
    assert run("build", "collab", "--udf", "-o", built).returncode == 0
    if message is None:  # a list around the object: the last chunk closes it
        message = "its sheetdl metadata (docProps/custom.xml) is not what sheetdl writes (a " \
                  "JSON list, not an object)"

        def edit(data):
            data = data.replace(old, new, 1)
            last = list(re.finditer(rb'name="sheetdl\.\d{4}"><vt:lpwstr>[^<]*(</vt:lpwstr>)',
                                    data))[-1]
            return data[:last.start(1)] + b"]" + data[last.start(1):]
    else:
        assert old in zipfile.ZipFile(built).read("docProps/custom.xml")
        edit = lambda data: data.replace(old, new)
    forged = rewrite(built, tmp_path / "forged.xlsx",
                     lambda name, data: edit(data) if name == "docProps/custom.xml" else data)
    r = run("verify", forged)
    assert r.returncode == 1 and message in r.stdout, r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_ratings_csv_is_read_sparse_first_and_a_repeated_pair_is_refused(tmp_path):
    """Before: 30,000 distinct users and items built a 7.8 GB dense matrix (38 s) before
    the size check, 2M rows read in quadratic time, and a repeated (user, item) pair
    silently replaced the earlier rating."""
    f = tmp_path / "big.csv"
    f.write_text("user,item,rating\n" + "".join(f"u{i},m{i},3\n" for i in range(30_000)))
    r = run("build", "collab", "--data", f, "-o", tmp_path / "c.xlsx")
    assert r.returncode == 2 and "30,000 users × 30,000 items is a 900,000,000-cell" in r.stderr
    from sheetdl.lessons.collab import model as collab

    many = tmp_path / "many.csv"  # 200,000 ratings of 400 × 500: linear time, well under 10 s
    many.write_text("user,item,rating\n" + "".join(
        f"u{i % 400},m{(i // 400) % 500},{1 + i % 5}\n" for i in range(200_000)))
    t0 = time.perf_counter()
    R, users, items = collab.read_csv(many)
    assert R.shape == (400, 500) and np.isfinite(R).sum() == 200_000
    assert time.perf_counter() - t0 < 10
    f.write_text("user,item,rating\nann,m1,4\nbob,m1,3\nann,m1,5\n")
    r = run("build", "collab", "--data", f, "-o", tmp_path / "c.xlsx")
    assert r.returncode == 2
    assert "line 4: user 'ann' rates item 'm1' again (first on line 2)" in r.stderr


@pytest.mark.parametrize("lesson,text,message", [
    ("softmax", 'a,b,label\n1,2,"cat\ndog"\n3,4,x\n', "holds a line break"),
    ("softmax", "a,b,label\n1,2," + "c" * 40_000 + "\n3,4,x\n", "a label of 40,000 characters"),
    ("collab", 'user,item,rating\n"ann\nlee",m1,4\nbob,m2,3\n', "holds a line break"),
    ("mlp", "x" * 300 + ",y\n1,2\n3,4\n", "a label of 300 characters"),
])
def test_labels_that_would_change_silently_are_refused(tmp_path, lesson, text, message):
    """Before: a class name with a line break lost it, and one over 32,767 characters was
    cut, without a word."""
    f = tmp_path / "d.csv"
    f.write_text(text)
    r = run("build", lesson, "--data", f, "-o", tmp_path / "o.xlsx")
    assert r.returncode == 2 and message in r.stderr and "d.csv, line" in r.stderr, r.stderr


@pytest.mark.parametrize("lesson,text,where", [
    ("graddesc", "x,y\n1_000,2\n3,4\n", "line 2, column x: '1_000'"),
    ("graddesc", "1_000,2\n3,4\n", "line 1, column x: '1_000'"),  # no header: data
    ("lrfind", "x,y\n1,\u0661\u0662\n3,4\n", "line 2, column y: '\u0661\u0662'"),
    ("softmax", "a,b,label\n\uff14,2,x\n3,4,y\n", "line 2, column 1: '\uff14'"),
    ("mlp", "a,b,y\n1,2,3\n1,2,\u0663\n", "line 3, column 3: '\u0663'"),
    ("collab", "user,item,rating\nann,m1,4_5\n", "line 2, column rating: '4_5'"),
])
def test_numbers_are_what_a_spreadsheet_reads_as_numbers(tmp_path, lesson, text, where):
    """Before: Python's float() read 1_000, ١٢ and ４ as 1000, 12 and 4, which Excel
    shows as text: the sheet would hold a label where the reference held a number."""
    f = tmp_path / "d.csv"
    f.write_text(text, encoding="utf-8")
    r = run("build", lesson, "--data", f, "-o", tmp_path / "o.xlsx")
    assert r.returncode == 2, r.stderr
    assert f"d.csv, {where} is not a number a spreadsheet reads" in r.stderr, r.stderr


@pytest.mark.parametrize("lesson,text,where", [
    ("softmax", "a,b,label\n1,2,\n2,1,b\n", "line 2, column 3"),
    ("collab", "user,item,rating\n,m1,4\nbob,m1,3\n", "line 2, column user"),
    ("collab", "user,item,rating\nann, ,4\nbob,m1,3\n", "line 2, column item"),
])
def test_an_empty_label_is_refused(tmp_path, lesson, text, where):
    """Before: a softmax row with no label built and verified, and LibreOffice showed
    2,638 #N/A cells ("input data!D2 is empty")."""
    f = tmp_path / "d.csv"
    f.write_text(text)
    r = run("build", lesson, "--data", f, "-o", tmp_path / "o.xlsx")
    assert r.returncode == 2 and f"d.csv, {where}: an empty label" in r.stderr, r.stderr


def test_formulas_past_excels_limit_are_refused(tmp_path):
    """Before: --factors 1000 wrote 15,321-character formulas, which Excel cannot open."""
    r = run("build", "collab", "--factors", "1000", "-o", tmp_path / "c.xlsx")
    assert r.returncode == 2 and "past Excel's 8,192; use fewer --factors" in r.stderr
    from sheetdl.sheet.workbook import Book, Sheet, static_rows

    long = "=" + "+".join(["A1"] * 3000)
    book = Book([Sheet("s", static_rows([(0, [(0, None, 1.0, None), (1, long, 3000.0, None)])]))],
                {}, "t", {})
    with pytest.raises(ValueError, match=r"s!B1: a formula of 9,000 characters"):
        xlsx.write(book, tmp_path / "t.xlsx")
    assert not list(tmp_path.glob(".t.xlsx.*"))


def test_an_interrupt_the_moment_a_temporary_file_appears_leaves_none(tmp_path, monkeypatch):
    """Before: the temporary files were made before the ``try`` that removes them, so a
    SIGTERM seen just as the second appeared (the moment a watcher sees a file) left both
    behind. The interrupt is raised where that signal was handled: the first call after
    the second file exists."""
    from sheetdl.lessons import data
    from sheetdl.lessons.graddesc import layout as graddesc

    out = tmp_path / "g.xlsx"
    x, y = data.course_points()
    book = graddesc.build(graddesc.make_lesson(x, y, optimizers=("sgd",)))
    xlsx.write(book, out)
    before = out.read_bytes()
    real_close, closed = os.close, []

    def close_then_interrupt(fd):
        real_close(fd)
        closed.append(fd)
        if len(list(tmp_path.glob(".g.xlsx.*.tmp"))) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "close", close_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        xlsx.write(book, out)
    monkeypatch.undo()
    assert closed and not list(tmp_path.glob(".g.xlsx.*"))
    assert out.read_bytes() == before


def test_stale_temp_cleanup_touches_only_its_own_dead_writers(tmp_path):
    """A longer name's temp file (.a.xlsx.999999.xlsx.PID...) is not this name's, even if
    its second part reads like a dead pid; a dead writer's own temp is removed."""
    live = os.getpid()
    other = tmp_path / f".a.xlsx.999999.xlsx.{live}.abcdefgh.tmp"
    other.write_text("a concurrent write of a.xlsx.999999.xlsx")
    dead = tmp_path / ".a.xlsx.999999.abcdefgh.tmp"  # pid 999999 runs no process here
    dead.write_text("left by a killed build")
    mine = tmp_path / f".a.xlsx.{live}.abcdefgh.tmp"
    mine.write_text("a write in progress")
    assert xlsx.remove_stale_temps(tmp_path / "a.xlsx") == [dead]
    assert other.exists() and mine.exists() and not dead.exists()


def test_a_name_as_long_as_the_system_allows_is_written(tmp_path):
    """Before: a legal 245-byte output name gave "File name too long": the temporary
    file's name added 22 bytes. Two long names that begin alike get temporary files of
    their own, and a dead writer's is still found and removed."""
    name = "é" * 100 + "a" * 41 + ".xlsx"  # 246 bytes
    assert len(name.encode()) == 246
    r = run("build", "lrfind", "-o", tmp_path / name)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert openpyxl.load_workbook(tmp_path / name, read_only=True).sheetnames
    twin = name[:-6] + "b.xlsx"
    dead = tmp_path / f".{xlsx._temp_stem(name)}.999999.abcdefgh.tmp"
    dead.write_text("left by a killed build")
    other = tmp_path / f".{xlsx._temp_stem(twin)}.999999.abcdefgh.tmp"
    other.write_text("left by a killed build of the other name")
    assert len(dead.name.encode()) <= 255 and dead != other
    assert xlsx.remove_stale_temps(tmp_path / name) == [dead]
    assert other.exists()


def test_the_cli_keeps_an_ignored_hangup_ignored_and_restores_its_handlers():
    from sheetdl import cli

    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        assert cli.main(["list"]) == 0
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def test_cells_hold_num_in_place_too():
    from sheetdl.math.cells import cells

    a = cells([1e308, 1.0])
    alias = a
    with np.errstate(all="ignore"):
        a += a
    assert np.isnan(alias[0]) and alias[1] == 2.0


def test_mlp_predict_overflow_is_a_message_not_a_number():
    """Before: MLP_PREDICT(-10, W1 = 1e308, ...) returned 0.5 where the sheet shows #NUM!."""
    from sheetdl.addin import udfs

    with pytest.raises(udfs.UdfError, match="overflowed"):
        udfs.mlp_predict([[-10.0]], [[1e308]], [0.0], [1.0], [0.5])


@pytest.mark.parametrize("header", ["=cmd|' /C calc'!A0", "'[evil.xlsx]s'!A1", "=train!A1",
                                    "x!A1"])
def test_a_header_shaped_like_a_reference_stays_text_in_charts(tmp_path, header):
    """Before: XlsxWriter took a series name shaped like Sheet!A1 as a reference, so an
    mlp CSV's target header became a link (to another workbook, or to a command), with
    XlsxWriter's raw UserWarning printed; verify did not read charts and said OK."""
    f = tmp_path / "d.csv"
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (12, 2))
    f.write_text(f'a,b,"{header}"\n' + "".join(f"{p},{q},{p - 2 * q}\n" for p, q in x))
    out = tmp_path / "o.xlsx"
    r = run("build", "mlp", "--data", f, "-o", out)
    assert r.returncode == 0 and "Warning" not in r.stderr, r.stderr
    with zipfile.ZipFile(out) as z:
        charts = [z.read(n).decode() for n in z.namelist() if n.startswith("xl/charts/chart")]
    names = [re.findall(r"<c:tx>(.*?)</c:tx>", c) for c in charts]
    assert any(f"<c:v>{header}</c:v>".replace("'", "&apos;") in n or f"<c:v>{header}</c:v>" in n
               for c in names for n in c), names
    assert not any("<c:strRef>" in n for c in names for n in c)
    refs = {f for c in charts for f in re.findall(r"<c:f>(.*?)</c:f>", c)}
    assert refs and all(re.fullmatch(r"train!\$[A-Z]+\$\d+:\$[A-Z]+\$\d+", f) for f in refs)
    assert verify.verify(out).charts == []


@pytest.mark.parametrize("old,new,message", [
    (rb"<c:tx><c:v>[^<]*</c:v></c:tx>", rb"<c:tx><c:strRef><c:f>'[evil.xlsx]s'!A1</c:f>"
     rb"</c:strRef></c:tx>", "series name \"'[evil.xlsx]s'!A1\" refers to another workbook"),
    (rb"<c:tx><c:v>[^<]*</c:v></c:tx>", rb"<c:tx><c:strRef><c:f>train!A1</c:f></c:strRef>"
     rb"</c:tx>", "takes a series name from a cell; sheetdl writes names as text"),
    (rb"train!\$A\$(\d+):", rb"nosuch!$A$\1:", "a sheet 'nosuch' this workbook does not have"),
    (rb"(train!\$A\$\d+:\$A\$)\d+", rb"\g<1>99999", "reaches past the cells sheet 'train' fills"),
])
def test_verify_reads_the_charts_references(tmp_path, old, new, message):
    """A chart edited to reach out of the workbook (or past what a sheetdl sheet fills)
    fails verification, naming the chart and the reference; the cells are untouched."""
    src = tmp_path / "m.xlsx"
    assert run("build", "mlp", "-o", src).returncode == 0
    assert verify.verify(src).ok
    out = rewrite(src, tmp_path / "edited.xlsx", lambda name, data: re.sub(old, new, data)
                  if name.startswith("xl/charts/chart") else data)
    report = verify.verify(out)
    assert not report.ok and not report.mismatches
    assert any(message in c and c.startswith("chart") for c in report.charts), report.charts
    r = run("verify", out)
    assert r.returncode == 1 and "FAILED" in r.stdout and message in r.stdout


def test_a_chart_linking_outside_through_its_relationships_fails(tmp_path):
    src = tmp_path / "m.xlsx"
    assert run("build", "mlp", "-o", src).returncode == 0
    link = (b'<Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/'
            b'2006/relationships/package" Target="file:///etc/evil.xlsx" TargetMode="External"/>')

    def edit(name, data):
        if name == "xl/charts/_rels/chart1.xml.rels":
            return data.replace(b"</Relationships>", link + b"</Relationships>")
        return data
    names = zipfile.ZipFile(src).namelist()
    if "xl/charts/_rels/chart1.xml.rels" not in names:  # a chart with no relationships yet
        link_part = (b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://'
                     b'schemas.openxmlformats.org/package/2006/relationships">' + link
                     + b"</Relationships>")
        out = rewrite(src, tmp_path / "linked.xlsx", lambda name, data: data)
        with zipfile.ZipFile(out, "a") as z:
            z.writestr("xl/charts/_rels/chart1.xml.rels", link_part)
    else:
        out = rewrite(src, tmp_path / "linked.xlsx", edit)
    report = verify.verify(out)
    assert report.charts == ["chart1.xml.rels: links to 'file:///etc/evil.xlsx' outside the "
                             "workbook"]


def test_a_chart_of_another_program_may_draw_empty_cells(tmp_path):
    """Only sheetdl workbooks are held to their sheets' filled cells: a chart Excel made
    over a whole column is fine, a chart reaching into another workbook is not."""
    wb = openpyxl.Workbook()
    ws = wb.active
    for i in range(5):
        ws.append([i, i * i])
    chart = openpyxl.chart.LineChart()
    chart.add_data(openpyxl.chart.Reference(ws, min_col=2, min_row=1, max_row=400))
    ws.add_chart(chart, "D2")
    path = tmp_path / "third.xlsx"
    wb.save(path)
    assert verify.verify(path).ok
    out = rewrite(path, tmp_path / "linked.xlsx", lambda name, data: data.replace(
        b"'Sheet'!$B$1", b"'[other.xlsx]Sheet'!$B$1") if name.startswith("xl/charts/") else data)
    assert verify.verify(out).charts[0].endswith("refers to another workbook")


def test_too_many_shared_strings_are_refused_before_loading(tmp_path, monkeypatch):
    """Before: 3,000,000 shared strings (a 7.9 MB file) took IronCalc to 2.05 GB."""
    monkeypatch.setattr("sheetdl.verification.workbook.MAX_SHARED_STRINGS", 1000)
    wb = openpyxl.Workbook()
    wb.active["A1"], wb.active["B1"] = "s0", '=A1&"!"'
    src = tmp_path / "one.xlsx"
    wb.save(src)

    def shared(n):
        """``src`` with its text in a table of ``n`` shared strings, as Excel writes it."""
        table = (b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                 + b"".join(b"<si><t>s%d</t></si>" % i for i in range(n)) + b"</sst>")

        def edit(name, data):
            if name == "xl/worksheets/sheet1.xml":
                data = data.replace(b'<c r="A1" t="inlineStr"><is><t>s0</t></is></c>',
                                    b'<c r="A1" t="s"><v>0</v></c>')
                return re.sub(rb'<c r="B1"><f>(.*?)</f><v ?/>',
                              rb'<c r="B1" t="str"><f>\1</f><v>s0!</v>', data)
            if name == "xl/_rels/workbook.xml.rels":
                return data.replace(b"</Relationships>", b'<Relationship Id="rId99" Type="'
                                    b"http://schemas.openxmlformats.org/officeDocument/2006/"
                                    b'relationships/sharedStrings" Target="sharedStrings.xml"/>'
                                    b"</Relationships>")
            if name == "[Content_Types].xml":
                return data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" '
                                    b'ContentType="application/vnd.openxmlformats-officedocument'
                                    b'.spreadsheetml.sharedStrings+xml"/></Types>')
            return data
        out = rewrite(src, tmp_path / f"strings{n}.xlsx", edit)
        with zipfile.ZipFile(out, "a") as z:
            z.writestr("xl/sharedStrings.xml", table)
        return out
    with pytest.raises(verify.VerifyError, match=r"strings1001.xlsx: member xl/sharedStrings.xml "
                       r"holds more than 1,000 shared strings; refusing"):
        verify.verify(shared(1001))
    report = verify.verify(shared(1000))
    assert report.ok and report.formula_cells == 1, report.summary()
    assert workbook.load(shared(1000)).get_cell_value(0, 1, 2) == "s0!"
