"""xlwings Lite: main.py carries the add-in's own modules, so each of its functions is the
add-in's function, answered through xlwings' Office.js path in a Python without numba,
IronCalc or sheetdl installed (the Pyodide situation)."""
import math
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from sheetdl.addin import lite, udfs
from sheetdl.lessons import data
from conftest import ROOT
from officejs import GOOD, HOSTILE

MAIN = ROOT / "addin" / "lite" / "main.py"
RUNNER = ROOT / "tests" / "officejs_runner.py"


def test_main_py_is_generated_from_the_package():
    assert MAIN.read_text(encoding="utf-8") == lite.main_py(), \
        "run `sheetdl addin lite` and commit addin/lite/"
    assert (MAIN.parent / "requirements.txt").read_text() == lite.requirements_txt()


def bigger_calls():
    """Calls long enough to take the compiled paths where numba is installed (train_linear
    past 2,000 steps, adam_step past 32,768 elements) and each lesson's options."""
    x, y = data.course_points()
    col = lambda v: [[float(a)] for a in v]
    rng = np.random.default_rng(3)
    p, g, m = (rng.normal(size=(40_000, 1)).tolist() for _ in range(3))
    v = np.abs(rng.normal(size=(40_000, 1))).tolist()
    t = np.linspace(-2, 2, 12)
    images = [[float((i * 7 + j * 3) % 5) / 4 for j in range(64)] for i in range(6)]
    return [
        ("train_linear", [col(x), col(y), [["adam"]], [[0.3]], [[100]], None, None, None, None,
                          None, None, None, None]),
        ("train_linear", [col(x), col(y), [["momentum"]], None, [[3]], [["course"]], None,
                          None, None, None, None, None, None]),
        ("adam_step", [p, g, m, v, [[3]], [[0.01]], None, None, None, [[0.01]], None]),
        ("mlp_train", [col(t), col(np.sin(t)), [[5]], [[30]], None, [["rmsprop"]], [[2]],
                       None, [["params"]], [[0.2]], [[True]], [[0.001]], [[5]], None, None]),
        ("mlp_train", [col(t), col(np.sin(t)), [[5]], [[30]], [[0.1]], None, None, None,
                       None, [[0.3]], None, [[0.01]], None, None, None]),
        ("conv_train", [images, [[0], [1], [2], [0], [1], [2]], [[2]], [[6]], None, [["sgd"]],
                        [[1]], [["kernels"]], [[0.25]], [["edges"]], None]),
        ("collab_train", [[[4.0, None, 3.0], [5.0, 1.0, None], [None, 2.0, 4.0]], [[2]], [[8]],
                          None, [[0.01]], [[1]], [["adamw"]], None, None]),
    ]


def hostile_calls():
    """Each good call with each argument in turn replaced by what a careless caller sends."""
    out = []
    for name, good in GOOD.items():
        for i in range(len(good)):
            for value in HOSTILE:
                out.append((name, good[:i] + [value] + good[i + 1:]))
    return out


def run(calls, *how):
    env = dict(os.environ, XLWINGS_LICENSE_KEY="noncommercial", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(RUNNER), *how], input=pickle.dumps(calls),
                       capture_output=True, env=env, cwd=ROOT / "tests", timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    return pickle.loads(r.stdout)


@pytest.fixture(scope="module")
def answers():
    calls = list(GOOD.items()) + bigger_calls() + hostile_calls()
    return calls, run(calls, "lite", str(MAIN)), run(calls, "installed")


def same(a, b) -> bool:
    """Equal answers: the same message, or the same cells with numbers to 1e-12."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)
    return a == b


def test_lite_runs_on_its_own_text_without_numba(answers):
    _, in_lite, installed = answers
    assert not in_lite["numba"] and installed["numba"]
    assert set(in_lite["loaders"]) == set(lite.bundled_modules())
    assert set(in_lite["loaders"].values()) == {"_Bundled"}  # not one from the checkout


def test_every_public_function_has_its_lite_twin(answers):
    _, in_lite, installed = answers
    assert in_lite["functions"] == sorted(udfs.excel_name(n, "lite") for n in udfs.PUBLIC)
    assert in_lite["functions"] == installed["functions"]


def test_every_answer_equals_the_add_ins(answers):
    calls, in_lite, installed = answers
    differ = [(name, args if len(str(args)) < 300 else "...", a, b)
              for (name, args), a, b in zip(calls, in_lite["answers"], installed["answers"])
              if not same(a, b)]
    assert not differ, f"{len(differ)} of {len(calls)} answers differ, e.g. {differ[:3]}"
    kinds = [a[0] for a in in_lite["answers"]]
    n_good = len(GOOD) + len(bigger_calls())
    assert kinds[:n_good] == ["value"] * n_good, in_lite["answers"][:n_good]
    assert kinds.count("error") > len(calls) // 3  # the hostile calls are mostly refused
