"""The command line and the Python API a newcomer meets: per-lesson flags and help, errors
that say why in one line, progress only on a terminal, Ctrl-C, `import sheetdl`, and every
command line of the README run as pasted in an empty folder."""
import os
import re
import signal
import subprocess
import sys
import time

import openpyxl
import numpy as np
import pytest

import sheetdl
from conftest import ROOT
from sheetdl import options
from sheetdl.verification import verifier

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
ENV.pop("SHEETDL_PROGRESS", None)


def sheetdl_cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "sheetdl.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env or ENV, timeout=600)


@pytest.mark.parametrize("lesson,has,lacks", [
    ("graddesc", ["--epochs", "(default 5)", "--init-b", "--schedule", "examples:"],
     ["--steps ", "--users"]),
    ("softmax", ["--steps", "(default 50)", "--lrfind-steps", "examples:"],
     ["--epochs", "--rows", "--udf", "--init-b"]),
    ("collab", ["--epochs", "(default 20)", "--factors", "(default 5)", "--udf"],
     ["--steps ", "--rows"]),
    ("lrfind", ["--steps", "(default 100)", "--lr-max", "--smooth-beta"],
     ["--schedule", "--epochs", "--lrfind "]),
    ("conv", ["--kernels", "(default 2)", "--steps", "(default 40)", "--kernel-init",
              "--schedule", "--udf", "examples:"],
     ["--epochs", "--hidden", "--lrfind", "--smooth-beta", "--rows"]),
])
def test_each_lesson_offers_its_own_flags_with_defaults(lesson, has, lacks):
    r = sheetdl_cli("build", lesson, "--help")
    assert r.returncode == 0
    shown = " ".join(r.stdout.split()) + " "  # argparse wraps lines
    for text in has:
        assert text in shown, (lesson, text)
    for text in lacks:
        assert text not in shown, (lesson, text)
    assert r.stdout.startswith(f"usage: sheetdl build {lesson} [options]")


@pytest.mark.parametrize("args,message", [
    (["softmax", "--epochs", "3"], "--epochs is a flag of graddesc and collab, not softmax"),
    (["collab", "--steps", "3"], "--steps is a flag of lrfind, softmax, mlp and conv, not collab"),
    (["softmax", "--udf"], "--udf is a flag of graddesc, collab and conv, not softmax"),
    (["softmax", "--gamma", "0.5"], "--gamma has no effect without --schedule step or"),
    (["graddesc", "--lr-max", "0.5"], "--lr-max has no effect without --schedule onecycle or "
                                      "--lrfind"),
    (["collab", "--lrfind-steps", "5"], "--lrfind-steps has no effect without --lrfind"),
    (["graddesc", "--optimizer", "sgd", "--beta2", "0.9"], "--beta2 has no effect: sgd has no"),
    (["softmax", "--optimizer", "adam", "--nesterov"], "--nesterov has no effect: adam"),
    (["graddesc", "--seed", "3"], "--seed seeds the synthetic data of --rows"),
    (["collab", "--data", "r.csv", "--users", "5"], "--users picks from the synthetic"),
    (["graddesc", "--lr", "-1"], "--lr -1: must be above 0"),
    (["graddesc", "--optimizer", "adam", "--beta1", "1"], "--beta1 1: must be at least 0 and "
                                                          "below 1"),
    (["graddesc", "--eps=-1e-8", "--optimizer", "adam"], "--eps -1e-08: must be at least 0"),
    (["graddesc", "-o", "my.csv"], "-o my.csv: sheetdl writes Excel workbooks"),
    (["softmax", "--optimizer", "sgd,adam"], "softmax trains one optimizer"),
    (["graddesc", "--optimizer", "adma"], "unknown optimizer 'adma'"),
    (["graddesc", "--optimzer", "adam"], "did you mean --optimizer?"),
    (["graddesc", "--lr", "abc"],
     "argument --lr: 'abc' is not a number (mlp also takes LO:HI, two rates)"),
    (["softmx"], "invalid choice: 'softmx'"),
    (["graddesc", "--epoch", "3"], "unrecognized arguments: --epoch 3; did you mean --epochs?"),
    (["lrfind", "--lr", "5"], "--lr has no effect on lrfind: the finder sweeps the lr itself"),
])
def test_a_useless_or_wrong_flag_is_one_line_that_says_why(tmp_path, args, message):
    r = sheetdl_cli("build", *args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert message in lines[0], r.stderr
    assert len(lines) == 2 and lines[1].startswith("(see: sheetdl build") and \
        lines[1].endswith("--help)"), r.stderr
    assert "usage:" not in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir()), "nothing is written"


def test_newcomer_paths_are_one_line_and_documented(tmp_path):
    """python -m sheetdl works; sheetdl list --json parses; verify, addin and bench --help
    describe the command and show examples; an unwritable -o names the target, not the
    temporary file beside it; bench --plot without matplotlib says so before running."""
    import importlib.util
    import json

    r = subprocess.run([sys.executable, "-m", "sheetdl", "--version"], capture_output=True,
                       text=True, env=ENV)
    assert r.returncode == 0 and r.stdout.strip() == f"sheetdl {sheetdl.__version__}"
    listed = json.loads(sheetdl_cli("list", "--json").stdout)
    assert "conv" in listed["lessons"] and "adam" in listed["optimizers"]
    for command in ("verify", "addin", "bench"):
        text = sheetdl_cli(command, "--help").stdout
        assert "examples:" in text and len(text.split("\n\n")[1]) > 60, text
    bad = sheetdl_cli("build", "graddesc", "-o", "/proc/sheetdl-test.xlsx")
    assert bad.returncode == 2 and "/proc/sheetdl-test.xlsx: cannot write" in bad.stderr, \
        bad.stderr
    assert ".tmp" not in bad.stderr
    if importlib.util.find_spec("matplotlib") is None:
        plot = sheetdl_cli("bench", "--plot", tmp_path / "p.png")
        assert plot.returncode == 2 and "nothing was run" in plot.stderr
        assert not (tmp_path / "p.png").exists()


def test_did_you_mean_a_lesson():
    r = sheetdl_cli("build", "softmx")
    assert "did you mean softmax?" in r.stderr


def test_version():
    r = sheetdl_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"sheetdl {sheetdl.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", sheetdl.__version__)


def test_the_old_optimizers_spelling_still_builds(tmp_path):
    out = tmp_path / "g.xlsx"
    r = sheetdl_cli("build", "graddesc", "--optimizers", "sgd,nadam", "--epochs", 1, "-o", out)
    assert r.returncode == 0, r.stderr
    assert openpyxl.load_workbook(out, read_only=True).sheetnames[2:4] == ["sgd", "nadam"]


def test_force_before_the_lesson_counts(tmp_path):
    out = tmp_path / "g.xlsx"
    assert sheetdl_cli("build", "lrfind", "-o", out).returncode == 0
    out.write_bytes(out.read_bytes() + b"")  # unchanged bytes: still untouched
    wb = openpyxl.load_workbook(out)
    wb.save(out)  # a person saves it: now it is changed
    assert sheetdl_cli("build", "lrfind", "-o", out).returncode == 2
    r = sheetdl_cli("build", "--force", "lrfind", "-o", out)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "g.xlsx.bak").exists()


@pytest.mark.parametrize("force", ["no", 1, "False"])
def test_the_api_takes_force_as_a_bool_only(tmp_path, force):
    """Before: force='no' replaced an edited workbook (any truthy value counted)."""
    out = tmp_path / "g.xlsx"
    sheetdl.build("lrfind", out)
    openpyxl.load_workbook(out).save(out)
    edited = out.read_bytes()
    with pytest.raises(sheetdl.OptionError, match="force must be True or False"):
        sheetdl.build("lrfind", out, force=force)
    assert out.read_bytes() == edited


def test_a_third_csv_column_is_refused_not_dropped(tmp_path):
    csv = tmp_path / "three.csv"
    csv.write_text("x,y,z\n1,2,3\n2,4,5\n")
    r = sheetdl_cli("build", "graddesc", "--data", csv, "-o", tmp_path / "g.xlsx")
    assert r.returncode == 2 and "line 1: expected two columns x,y, found 3" in r.stderr
    csv.write_text("x,y,\n1,2,\n2,4,\n3,7,\n")  # a trailing empty column is fine
    assert sheetdl_cli("build", "graddesc", "--data", csv, "-o", tmp_path / "g.xlsx",
                       "--lr", "0.01").returncode == 0


def test_verify_reads_a_workbook_openpyxl_saved_and_names_the_lrfind_lesson(tmp_path):
    """openpyxl moves the notes to xl/comments/comment1.xml, which IronCalc cannot find; it
    also drops every cached value: verify says so (once it said every cell FAILED), and the
    traces, replayed from the recalculation, still check out."""
    path = tmp_path / "f.xlsx"
    path.write_bytes((ROOT / "workbooks" / "lrfind.xlsx").read_bytes())
    r = sheetdl_cli("verify", path)
    assert r.returncode == 0 and "(sheetdl lrfind workbook)" in r.stdout
    openpyxl.load_workbook(path).save(path)
    r = sheetdl_cli("verify", path)
    assert "Zip Error" not in r.stdout and "ERROR" not in r.stdout, r.stdout
    assert r.returncode == 0 and "hold no cached value (the file was written without" in r.stdout
    assert "differ from their cached values" not in r.stdout and "FAILED" not in r.stdout


# --------------------------------------------------------------------------- progress, Ctrl-C

def test_progress_shows_on_a_terminal_only(tmp_path):
    quiet = sheetdl_cli("build", "lrfind", "-o", tmp_path / "a.xlsx")
    assert quiet.returncode == 0 and quiet.stderr == ""
    shown = sheetdl_cli("build", "lrfind", "-o", tmp_path / "b.xlsx",
                        env={**ENV, "SHEETDL_PROGRESS": "1"})
    assert shown.returncode == 0 and "writing b.xlsx" in shown.stderr and "rows" in shown.stderr
    r = sheetdl_cli("verify", tmp_path / "b.xlsx", env={**ENV, "SHEETDL_PROGRESS": "1"})
    assert r.returncode == 0 and "verifying b.xlsx" in r.stderr


def test_ctrl_c_is_one_line_and_leaves_no_temporary_file(tmp_path):
    # a shell's background job starts with SIGINT ignored, and Python keeps it ignored: the
    # child gets the default action back, as a terminal's foreground process has it
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen([sys.executable, "-m", "sheetdl.cli", "build", "graddesc", "--rows",
                             "30000", "-o", str(tmp_path / "big.xlsx")], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=restore)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".big.xlsx.*.tmp")):  # interrupt once it is writing
        assert proc.poll() is None and time.monotonic() < deadline, "the build never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip() == "sheetdl: interrupted"
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the Python API

def test_build_and_verify_from_python(tmp_path):
    path = sheetdl.build("graddesc", tmp_path / "g.xlsx", optimizer=["sgd", "adam"], epochs=2,
                         lr=0.01)
    assert path == tmp_path / "g.xlsx"
    report = sheetdl.verify(path)
    assert isinstance(report, sheetdl.Report) and report.ok, report
    # the options took effect: IronCalc reads the traces and the lr back from the file
    wb = verifier.recalculated(path)
    assert len(wb.values("loss_trace", "adam")) == 2 * 29
    assert wb.values("lr", "sgd")[0] == 0.01
    html = report._repr_html_()
    assert "OK" in html and "adam!loss_trace" in html and "<table>" in html
    both = sheetdl.verify(path, ROOT / "workbooks" / "lrfind.xlsx")
    assert isinstance(both, sheetdl.Reports) and both.ok and len(both) == 2


@pytest.mark.parametrize("lesson,kwargs,message", [
    ("softmax", {"epochs": 3}, "--epochs is a flag of graddesc and collab, not softmax"),
    ("softmax", {"epochz": 3}, "unknown option 'epochz'; did you mean epochs?"),
    ("graddesc", {"gamma": 0.5}, "--gamma has no effect"),
    ("collab", {"lr": float("nan")}, "--lr must be a finite number"),
    ("mlpp", {}, "unknown lesson 'mlpp'"),
    # before: each was accepted, the default list built or the out= path dropped
    ("graddesc", {"optimizer": []}, "optimizer: an empty list; name at least one"),
    ("lrfind", {"out": "other.xlsx"}, "the output is given twice"),
])
def test_the_api_raises_the_cli_message_instead_of_exiting(tmp_path, lesson, kwargs, message):
    with pytest.raises(sheetdl.OptionError, match=re.escape(message)):
        sheetdl.build(lesson, tmp_path / "x.xlsx", **kwargs)
    assert not list(tmp_path.iterdir())


def test_the_api_keeps_an_edited_workbook(tmp_path):
    path = sheetdl.build("lrfind", tmp_path / "f.xlsx")
    wb = openpyxl.load_workbook(path)
    wb.save(path)
    with pytest.raises(ValueError, match="changed since sheetdl wrote it"):
        sheetdl.build("lrfind", path)
    assert sheetdl.build("lrfind", path, force=True) == path


# --------------------------------------------------------------------------- the README

README = (ROOT / "README.md").read_text()


def test_readme_flag_tables_are_the_registry():
    assert options.flag_table() in README
    assert options.defaults_table() in README


def readme_commands() -> list[str]:
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        lines += [ln.split("  #")[0].strip() for ln in block.splitlines()
                  if ln.startswith("sheetdl ")]
    return lines


def test_every_readme_command_runs_as_pasted_in_an_empty_folder(tmp_path):
    """Each `sheetdl ...` line of the README's shell blocks, in order, in one empty folder:
    the files the examples name come from the README's own `sheetdl example-data .`."""
    commands = readme_commands()
    assert commands.index("sheetdl example-data .") < next(
        i for i, c in enumerate(commands) if ".csv" in c and "example-data" not in c)
    assert len(commands) >= 20
    bin_dir = os.path.dirname(sys.executable)
    for cmd in commands:
        if "--rows 1000000" in cmd:  # minutes by design; the --udf tests cover the path
            continue
        r = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True,
                           timeout=600, env={**ENV, "PATH": bin_dir + os.pathsep +
                                                    ENV.get("PATH", "")})
        assert r.returncode == 0, f"{cmd}\n{r.stderr}"
    first, *others = re.findall(r"```python\n(.*?)```", README, re.S)
    r = subprocess.run([sys.executable, "-c", first], cwd=tmp_path, capture_output=True,
                       text=True, env=ENV, timeout=600)
    assert r.returncode == 0 and r.stdout.startswith("True 0 "), r.stderr
    for code in others:  # every example runs as printed
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                           text=True, env=ENV, timeout=600)
        assert r.returncode == 0, f"{code}\n{r.stderr}"


def test_a_bouncing_loss_gets_a_hint_at_build_time(tmp_path):
    """Before: an lr too large for the data (finite, but the loss up on almost half the
    steps) built without a word. The count is the reference trace's, which the sheet's
    loss column holds (IronCalc checks it equals it)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = sheetdl.build("mlp", tmp_path / "m.xlsx", lr=1.0)
    (w,) = caught
    assert w.category is sheetdl.DivergenceWarning
    loss = verifier.recalculated(path).values("loss_trace")
    rose = int((np.diff(loss) > 0).sum())
    assert rose >= len(loss) // 4
    assert f"the loss rose on {rose} of {len(loss)} steps" in str(w.message)
    r = sheetdl_cli("build", "collab", "--optimizer", "sgd", "-o", tmp_path / "c.xlsx")
    assert r.returncode == 0 and "of 20 epochs: the lr may be too large" in r.stderr
    with warnings.catch_warnings(record=True) as caught:  # the defaults train steadily
        warnings.simplefilter("always")
        sheetdl.build("mlp", tmp_path / "d.xlsx")
    assert not caught


def test_the_api_warns_as_python_does_and_shows_only_itself(tmp_path):
    """Before: a diverging build printed its warning as text (catch_warnings saw none), a
    missing file was a VerifyError that no `except FileNotFoundError` caught, and
    dir(sheetdl) showed `annotations` and `Path`."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sheetdl.build("softmax", tmp_path / "d.xlsx", lr=1e308)
    assert [w.category for w in caught] == [sheetdl.DivergenceWarning]
    assert "training diverged at step" in str(caught[0].message)
    assert caught[0].filename == __file__  # points at the caller's line
    with pytest.raises(FileNotFoundError, match="nope.xlsx: no such file"):
        sheetdl.verify(tmp_path / "nope.xlsx")
    with pytest.raises(ValueError):
        sheetdl.verify(tmp_path / "d.xlsx", rtol=-1)
    assert issubclass(sheetdl.VerifyError, ValueError)
    assert dir(sheetdl) == sorted(sheetdl.__all__)
    assert "annotations" not in dir(sheetdl) and "Path" not in dir(sheetdl)


def test_example_data_writes_each_lessons_format_and_keeps_an_edited_file(tmp_path):
    """sheetdl example-data writes one file per --data format, each of which its lessons
    build from and verify; a second run keeps them; a file edited since is refused
    unless --force; a missing --data file's error names the columns and this command."""
    r = sheetdl_cli("example-data", tmp_path / "ex")
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "ex"
    for name, lesson in (("points.csv", "mlp"), ("flowers.csv", "softmax"),
                         ("ratings.csv", "collab"), ("glyphs.csv", "conv")):
        out = tmp_path / f"{lesson}.xlsx"
        b = sheetdl_cli("build", lesson, "--data", folder / name, "-o", out)
        assert b.returncode == 0, b.stderr
        assert verifier.verify(out).ok
    again = sheetdl_cli("example-data", folder)
    assert again.returncode == 0 and "kept" in again.stdout and "wrote" not in again.stdout
    (folder / "points.csv").write_text("x,y\n1,2\n")
    refused = sheetdl_cli("example-data", folder)
    assert refused.returncode == 2 and "exists with other content" in refused.stderr
    assert (folder / "points.csv").read_text() == "x,y\n1,2\n"
    assert sheetdl_cli("example-data", folder, "--force").returncode == 0
    assert (folder / "points.csv").read_text() != "x,y\n1,2\n"
    missing = sheetdl_cli("build", "collab", "--data", tmp_path / "nope.csv",
                          "-o", tmp_path / "n.xlsx")
    assert "columns user,item,rating" in missing.stderr and "example-data" in missing.stderr
    iris = sheetdl_cli("build", "softmax", "--data", "Iris", "-o", tmp_path / "i.xlsx")
    assert "did you mean --data iris" in iris.stderr
