"""Tier 3: end to end through xlwings Server on 127.0.0.1, started by `sheetdl serve`,
with HTTP calls shaped exactly like Excel's Office.js runtime. Results are compared
with the formula workbooks recalculated by IronCalc.

sheetdl is free non-commercial teaching software, so its tests run xlwings Server
under the PolyForm Noncommercial terms (XLWINGS_LICENSE_KEY=noncommercial)."""
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from sheetdl.lessons import data
from sheetdl.lessons.softmax import layout as softmax_book
from sheetdl.verification import verifier as verify
from conftest import ROOT, softmax_example

# Only looked up, not imported: importing xlwings_server sets XLWINGS_ON_SERVER in this
# process, after which `import xlwings` (the add-in's tests) needs a license key.
if importlib.util.find_spec("xlwings_server") is None:
    pytest.skip("xlwings Server is not installed", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    env = dict(os.environ, XLWINGS_LICENSE_KEY="noncommercial", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "sheetdl.cli", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(base + "/xlwings/custom-functions-meta", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"sheetdl serve exited: {proc.stdout.read()}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("xlwings Server did not start in 60 s")
    yield base
    proc.terminate()
    proc.wait(timeout=20)


def call(base, name, *args, host=None):
    """POST /xlwings/custom-functions-call as Office.js does: each argument a 2-D array,
    an omitted optional argument null; ``host`` sets the Host header."""
    wrap = lambda a: None if a is None else (
        a if isinstance(a, list) and a and isinstance(a[0], list) else [[a]])
    body = {"client": "Office.js", "func_name": name, "args": [wrap(a) for a in args],
            "caller_address": "[Book1.xlsx]Sheet1!E2", "session_id": "test",
            "culture_info_name": "en-US", "date_format": "M/d/yyyy", "version": "0.37.8",
            "runtime": "1.4"}
    req = urllib.request.Request(base + "/xlwings/custom-functions-call",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          **({"Host": host} if host else {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_metadata_lists_every_function_in_the_sheetdl_namespace(server):
    with urllib.request.urlopen(server + "/xlwings/custom-functions-meta") as r:
        meta = json.loads(r.read())
    names = {f["name"] for f in meta["functions"]}
    from sheetdl.addin import udfs

    assert {f"SHEETDL.{name.upper()}" for name in udfs.PUBLIC} == names
    with urllib.request.urlopen(server + "/xlwings/custom-functions-code") as r:
        code = r.read().decode()
    assert "SHEETDL" in code or "custom-functions-call" in code


def test_train_linear_through_the_server_equals_the_workbook(server):
    wb = verify.recalculated(ROOT / "workbooks" / "graddesc.xlsx")
    x, y = data.course_points()
    status, out = call(server, "train_linear", [[v] for v in x], [[v] for v in y], "adam",
                       float(wb.values("lr", "adam")[0]), 5)
    assert status == 200, out
    table = np.array(out["result"][1:], dtype=float)
    assert out["result"][0][-2:] == ["new b", "new a"]
    np.testing.assert_allclose(table[:, 10], wb.values("b_trace", "adam"), rtol=1e-12)
    np.testing.assert_allclose(table[:, 11], wb.values("a_trace", "adam"), rtol=1e-12)


def test_softmax_through_the_server_equals_the_workbook(server):
    wb = verify.recalculated(ROOT / "workbooks" / "softmax.xlsx")
    z = [list(map(float, e[1])) for e in softmax_book.EXAMPLES]
    status, out = call(server, "softmax", z, None)
    assert status == 200, out
    si = wb.index["softmax"]
    want = [[wb.model.get_cell_value(si, *c) for c in softmax_example(wb, si, i)["p"]]
            for i in range(len(z))]
    np.testing.assert_allclose(np.array(out["result"], float), want, rtol=1e-13, atol=1e-300)


def test_collab_train_through_the_server_with_blank_cells(server):
    """Blank ratings arrive from Office.js as empty strings; they are unrated movies."""
    wb = verify.recalculated(ROOT / "workbooks" / "collab.xlsx")
    R = wb.values("ratings").reshape(15, 15)
    cells = [["" if np.isnan(v) else float(v) for v in row] for row in R]
    status, out = call(server, "collab_train", cells, 5, 20, 0.1, 0, 0, "adam", 0, 5.5)
    assert status == 200, out
    np.testing.assert_allclose(np.array(out["result"][1:], float)[:, 1], wb.values("loss_trace"),
                               rtol=1e-12)


def test_adam_step_through_the_server(server):
    status, out = call(server, "adam_step", [[1.0, 1.0]], [[0.5466666667, 0.0389333333]],
                       [[0.0, 0.0]], [[0.0, 0.0]], 1, 0.1, None, None, None, None, None)
    assert status == 200, out
    from sheetdl.addin import udfs

    # the direct call, which tier 1 ties to the workbook rows; the server must not change a bit
    want = udfs.adam_step([[1.0, 1.0]], [[0.5466666667, 0.0389333333]], [[0.0, 0.0]],
                          [[0.0, 0.0]], 1, 0.1)
    np.testing.assert_array_equal(np.array(out["result"], float), want)
    assert want.shape == (1, 6)


def test_a_bad_argument_is_a_message_excel_shows(server):
    status, out = call(server, "sgd_step", [[1.0, ""]], [[1.0, 2.0]], 0.1, None, None)
    assert status == 400
    assert "params has an empty, error or non-finite cell at row 1, column 2" in out
    status, out = call(server, "sgd_step", [[1e308]], [[1e308]], 10.0, None, None)
    assert status == 400 and "overflowed" in out


@pytest.mark.parametrize("fn,args,message", [
    ("train_linear", [[[1.0], [2.0]], [[3.0], [5.0]], "sgd", 0.01, 0.5],
     "epochs must be a whole number from 1"),
    ("train_linear", [[[1.0], [2.0]], [[3.0], [5.0]], "sgd", 0.01, 600_000],
     "epochs must be a whole number from 1 to 524,287"),  # more rows than Excel holds
    ("collab_train", [[[4.0, 3.0], [5.0, ""]], 1e9, 5, 0.1, 0, 0, "adam", 0, 5.5],
     "factors must be a whole number from 1 to"),
    ("collab_train", [[[4.0, 3.0], [5.0, ""]], 0.5, 5, 0.1, 0, 0, "adam", 0, 5.5],
     "factors must be a whole number"),
    ("adam_step", [[[1.0]], [[1.0]], [[0.0]], [[0.0]], 1, 0.1, 2.0, None, None, None, None],
     "beta1 2: must be at least 0 and below 1"),
])
def test_a_request_that_would_take_the_server_down_is_refused_at_once(server, fn, args,
                                                                     message):
    """Before: factors 1e9 grew the server to 24 GB, 60,000 epochs ran 90 s, and epochs 0.5
    and factors 0.5 answered 500 (KeyError, IndexError)."""
    status, out = call(server, fn, *args)
    assert status == 400 and message in out, (status, out)


@pytest.mark.parametrize("name,args,status,message", [
    ("lion_step", [[[1.0]]], 404, "sheetdl has no function 'lion_step'; it has softmax, "),
    ("sgd_step", [[[1.0]], [[1.0]]], 400, "SGD_STEP takes 3 to 5 arguments, got 2"),
    ("softmax", [[[1.0]], None, None], 400, "SOFTMAX takes 1 to 2 arguments, got 3"),
    ("mlp_predict", [[[1.0]], [[1.0]], [[0.0]], [[1.0]], [["x"]]], 400,
     "b2 must be a range of numbers"),
])
def test_unknown_functions_and_wrong_argument_counts_get_a_message(server, name, args, status,
                                                                    message):
    """Before: each answered HTTP 500 "An error occurred.", which Office.js retries."""
    got, out = call(server, name, *args)
    assert got == status and message in out, (got, out)


def test_only_loopback_host_names_are_answered(server):
    """A page that rebinds its DNS name to 127.0.0.1 sends its own name as Host: refused."""
    status, out = call(server, "softmax", [[1.0, 2.0]], None, host="evil.example")
    assert status == 403 and "Host 'evil.example' is not allowed" in out, (status, out)
    port = server.rsplit(":", 1)[1]
    status, out = call(server, "softmax", [[1.0, 2.0]], None, host=f"localhost:{port}")
    assert status == 200, out


def test_a_long_call_does_not_block_the_others(server):
    """Each call runs off the event loop: a short call made while a long one runs is
    answered before the long one ends."""
    import threading

    x = [[v / 100] for v in range(200)]
    y = [[np.sin(v / 100)] for v in range(200)]
    slow = {}
    worker = threading.Thread(target=lambda: slow.update(
        out=call(server, "mlp_train", x, y, 64, 20_000, 0.01, "adam", 0, 0, "loss")))
    worker.start()
    time.sleep(0.5)  # let the long call reach the server first
    status, out = call(server, "softmax", [[1.0, 2.0]], None)
    assert status == 200 and worker.is_alive(), "the short call waited for the long one"
    worker.join(timeout=300)
    assert slow["out"][0] == 200


def test_serve_without_a_license_key_states_the_terms():
    env = {k: v for k, v in os.environ.items() if k != "XLWINGS_LICENSE_KEY"}
    r = subprocess.run([sys.executable, "-m", "sheetdl.cli", "serve"], capture_output=True,
                       text=True, env=dict(env, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2
    assert "XLWINGS_LICENSE_KEY=noncommercial" in r.stderr and "PolyForm Noncommercial" in r.stderr
    assert "commercial use needs your own key" in r.stderr


def node_call(server, tmp_path, function_id, *args):
    """Call a function through the JavaScript the server serves to Excel, run by Node."""
    import shutil

    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is required in CI (.ci/run installs nodejs)")
        pytest.skip("node is not installed")
    code = tmp_path / "custom-functions.js"
    with urllib.request.urlopen(server + "/xlwings/custom-functions-code") as r:
        code.write_bytes(r.read())
    harness = ROOT / "tests" / "node" / "run_custom_function.js"
    out = subprocess.run([node, str(harness), str(code), server, function_id, json.dumps(args)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_served_javascript_under_node_equals_the_workbook(server, tmp_path):
    wb = verify.recalculated(ROOT / "workbooks" / "graddesc.xlsx")
    x, y = data.course_points()
    lr = float(wb.values("lr", "momentum")[0])
    out = node_call(server, tmp_path, "TRAIN_LINEAR", [[float(v)] for v in x],
                    [[float(v)] for v in y], [["momentum"]], [[lr]], [[5]],
                    None, None, None, None, None, None, None, None)
    assert "result" in out, out
    table = np.array(out["result"][1:], float)
    np.testing.assert_allclose(table[:, 10], wb.values("b_trace", "momentum"), rtol=1e-12)


def test_served_javascript_shows_the_message_of_a_bad_argument(server, tmp_path):
    out = node_call(server, tmp_path, "SGD_STEP", [[1.0, ""]], [[1.0, 2.0]], [[0.1]], None, None)
    assert out.get("code") == "#VALUE!"
    assert "params has an empty, error or non-finite cell at row 1, column 2" in out["error"]


ANSWERS = r'''
import asyncio, json, os, sys
import httpx
from xlwings_server.main import app
from sheetdl.addin.server_guard import Guard, answer_calls

body = json.dumps({"client": "Office.js", "func_name": sys.argv[1], "args": json.loads(sys.argv[2]),
                   "caller_address": "[Book1.xlsx]Sheet1!E2", "session_id": "t",
                   "culture_info_name": "en-US", "date_format": "M/d/yyyy",
                   "version": "0.37.8", "runtime": "1.4"})

async def post(asgi):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi),
                                 base_url="http://127.0.0.1") as client:
        r = await client.post("/xlwings/custom-functions-call", content=body,
                              headers={"Content-Type": "application/json"})
        return r.status_code, r.text

own = asyncio.run(post(app))                    # xlwings Server's own route
answer_calls(app)
ours = asyncio.run(post(Guard(app)))            # sheetdl serve's
first = app.router.routes[0]
body = "{not json"
bare = asyncio.run(post(app))                   # the route without the Guard in front
print(json.dumps([own, ours, [first.path, first.endpoint.__module__], bare[0]]))
'''


@pytest.mark.parametrize("name,args", [
    ("softmax", [[[1.5, -2.0, 0.25], [3.0, 3.0, -7.5]], None]),
    ("adam_step", [[[1.0, 2.0]], [[0.5, -0.5]], [[0.0, 0.0]], [[0.0, 0.0]], [[1]], None, None,
                   None, None, None, None]),
    ("sgd_step", [[["x", 1.0]], [[1.0, 1.0]], [[0.1]], None, None]),  # a 400 with its message
])
def test_sheetdl_serve_answers_as_xlwings_server_would(name, args):
    """sheetdl serve answers a call from xlwings Server's own endpoint, written by
    json.dumps instead of FastAPI's per-value encoder: the same status and the same
    values as xlwings Server's route answers."""
    env = dict(os.environ, XLWINGS_LICENSE_KEY="noncommercial", PYTHONPATH=str(ROOT),
               XLWINGS_PROJECT_DIR=str(ROOT / "sheetdl" / "addin" / "server_project"))
    r = subprocess.run([sys.executable, "-c", ANSWERS, name, json.dumps(args)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (own_status, own), (status, ours), route, bare = json.loads(
        r.stdout.strip().splitlines()[-1])
    assert bare == 400  # a body that is no JSON is the caller's error, not a 500
    assert route == ["/xlwings/custom-functions-call", "sheetdl.addin.server_guard"]
    assert status == own_status
    if status == 200:
        assert json.loads(ours) == json.loads(own) and "result" in json.loads(ours)
    else:
        assert status == 400 and "params must be a range of numbers" in ours and ours == own


def test_a_call_that_is_not_json_is_refused(server):
    """A web page may POST text/plain to 127.0.0.1 without a CORS preflight: such a body
    never reaches a function (xlwings Server's own route answers it 422 too)."""
    body = json.dumps({"func_name": "softmax", "args": [[[1.0, 2.0]], None]}).encode()
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        req = urllib.request.Request(server + "/xlwings/custom-functions-call", data=body,
                                     headers={"Content-Type": kind})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=60)
        assert e.value.code == 415 and b"application/json" in e.value.read()
