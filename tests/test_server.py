"""Tier 3: end to end through xlwings Server on 127.0.0.1, started by `sheetdl serve`,
with HTTP calls shaped exactly like Excel's Office.js runtime. Results are compared
with the formula workbooks recalculated by IronCalc.

sheetdl is free non-commercial teaching software, so its tests run xlwings Server
under the PolyForm Noncommercial terms (XLWINGS_LICENSE_KEY=noncommercial)."""
import importlib.util
import json
import os
import re
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
from conftest import ROOT, free_port, softmax_example
from officejs import GOOD, HOSTILE

# Only looked up, not imported: importing xlwings_server sets XLWINGS_ON_SERVER in this
# process, after which `import xlwings` (the add-in's tests) needs a license key.
if importlib.util.find_spec("xlwings_server") is None:
    pytest.skip("xlwings Server is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    env = dict(os.environ, XLWINGS_LICENSE_KEY="noncommercial", PYTHONPATH=str(ROOT))
    # the log goes to a file: a pipe nobody reads fills after 64 KB of log lines and the
    # server then blocks on its next one
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sheetdl.cli", "serve", "--port",
                                 str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(base + "/xlwings/custom-functions-meta", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"sheetdl serve exited: {log.read_text()}")
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


def test_plain_http_serves_no_manifest_excel_would_refuse(server):
    """Office loads add-ins over HTTPS only: over http /manifest says how to get one."""
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server + "/manifest", timeout=30)
    assert e.value.code == 404 and "sheetdl serve --https" in e.value.read().decode()


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


def in_flight(base) -> dict:
    with urllib.request.urlopen(base + "/sheetdl/calls", timeout=10) as r:
        return json.loads(r.read())


def wait_for(predicate, what: str, timeout: float = 120.0):
    """Poll ``predicate`` until it holds: the order of events, not a guess at timing."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.02)
    pytest.fail(f"waited {timeout:g} s for {what}")


LONG_MLP = ("mlp_train", [[v / 100] for v in range(200)],
            [[float(np.sin(v / 100))] for v in range(200)], 64, 3_000, 0.01, "adam", 0, 0,
            "loss")


def test_a_long_call_does_not_block_the_others(server):
    """Each call runs off the event loop: a short call made while a long one runs is
    answered before the long one ends. The short call is sent once the server says the
    long one is running, so a loaded machine changes the timing, not the order."""
    import threading

    slow = {}
    worker = threading.Thread(target=lambda: slow.update(out=call(server, *LONG_MLP)))
    worker.start()
    wait_for(lambda: in_flight(server)["running"] >= 1, "the long call to start")
    status, out = call(server, "softmax", [[1.0, 2.0]], None)
    assert status == 200 and worker.is_alive(), "the short call waited for the long one"
    worker.join(timeout=600)
    assert slow["out"][0] == 200 and len(slow["out"][1]["result"]) == 3_001


def raw_call(base, body: bytes, headers=None, timeout=60):
    req = urllib.request.Request(base + "/xlwings/custom-functions-call", data=body,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


def envelope(name, args) -> bytes:
    return json.dumps({"client": "Office.js", "func_name": name, "args": args,
                       "version": "0.37.8", "runtime": "1.4"}).encode()


def test_no_malformed_argument_gets_a_500(server):
    """Before: 193 of 1,500 wrong-type calls answered 500 (IndexError and KeyError inside
    xlwings, a ValueError for an unknown preset, an OverflowError for 10**4299)."""
    bad = []
    for name, good in GOOD.items():
        status, out, _ = raw_call(server, envelope(name, good))
        assert status == 200, (name, out)
        for i in range(len(good)):
            for value in HOSTILE:
                args = list(good)
                args[i] = value
                status, out, _ = raw_call(server, envelope(name, args))
                if status not in (200, 400):
                    bad.append((name, i, value, status, out[:120]))
    assert not bad, f"{len(bad)} calls not answered 200 or 400, e.g. {bad[:5]}"


@pytest.mark.parametrize("body,status,message", [
    (b"[" * 5000 + b"]" * 5000, 400, "not a custom-functions call"),
    (json.dumps({"func_name": "softmax", "args": [[[1.0]]]}).encode(), 400,
     "not a custom-functions call"),
    (json.dumps({"func_name": "softmax", "args": [[[1.0]]], "client": "Office.js",
                 "version": 37, "runtime": "1.4"}).encode(), 400, "not a custom-functions"),
    (envelope("sgd_step", [[[1.0]], [[1.0]], [[0.1, 0.2]], None, None]), 400,
     "SGD_STEP argument 3 (lr) must be one cell, got 1×2"),
    (envelope("softmax", [[[10 ** 4299]], None]), 400, "a number too large for a cell"),
])
def test_a_malformed_call_is_a_400_that_says_why(server, body, status, message):
    got, out, _ = raw_call(server, body)
    assert got == status and message in out, (got, out)


def _whole_answer(s) -> bytes:
    """The status, headers and body of one answer: a single recv may hold only the headers
    (the body can come in its own segment on a loaded machine)."""
    s.settimeout(30)
    answer = b""
    while True:
        head, sep, body = answer.partition(b"\r\n\r\n")
        length = re.search(rb"content-length: (\d+)", head, re.I) if sep else None
        if length and len(body) >= int(length.group(1)):
            return answer
        more = s.recv(4096)
        if not more:
            return answer
        answer += more


def test_a_body_past_the_limit_is_refused_before_it_is_read(server):
    from sheetdl.addin.server_guard import MAX_BODY

    # the size is announced: refused from the header, no byte of the body sent
    with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1]))) as s:
        s.sendall(b"POST /xlwings/custom-functions-call HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                  % (MAX_BODY + 1))
        answer = _whole_answer(s)
    assert answer.startswith(b"HTTP/1.1 413") and b"at most 64 MB" in answer, answer[:300]
    # not announced (chunked): refused as it streams past the limit
    with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1]))) as s:
        s.sendall(b"POST /xlwings/custom-functions-call HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b" " * (1 << 20)
        try:
            for _ in range(MAX_BODY // len(chunk) + 2):
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:  # the server answered and closed while we were still sending
            pass
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # and text/plain is refused at once, from its header
    got, out, _ = raw_call(server, b"x" * 1000, headers={"Content-Type": "text/plain"})
    assert got == 415


def test_two_host_headers_are_a_400(server):
    with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1]))) as s:
        s.sendall(b"GET /sheetdl/calls HTTP/1.1\r\nHost: evil.example\r\n"
                  b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def server_rss_mb(base) -> float:
    """The resident memory of the process listening on ``base``'s port, from /proc."""
    port = int(base.rsplit(":", 1)[1])
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True,
                         text=True).stdout
    pid = int(out.split("pid=")[1].split(",")[0])
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def test_forty_parallel_heavy_calls_stay_bounded_and_none_is_a_500(server):
    """Before: 8 parallel 1 KB train_linear calls (29 points × 36,157 epochs) took the
    server to 1.9 GB and some answered 500; 40 in parallel all answered 500. Now two
    compute at once, the rest wait or get 503 with Retry-After, and the server's peak
    stays under 2 GB."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is needed to find the server's process")
    x, y = data.course_points()
    body = envelope("train_linear", [[[float(v)] for v in x], [[float(v)] for v in y],
                                     [["adam"]], [[0.1]], [[3_000]]] + [None] * 8)
    # each answer is 87,000 rows of 12 numbers: keep its status and headers only
    status_only = lambda _: (lambda a: (a[0], len(a[1]), a[2]))(
        raw_call(server, body, timeout=600))
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(status_only, range(40)))
    statuses = sorted(a[0] for a in answers)
    assert set(statuses) <= {200, 503}, statuses
    assert 200 in statuses
    assert all(a[2].get("Retry-After") == "1" for a in answers if a[0] == 503)
    peak = server_rss_mb(server)
    print(f"server peak after 40 parallel train_linear calls: {peak:.0f} MB")
    assert peak < 2048


def test_a_call_past_the_queue_gets_503_with_retry_after(tmp_path):
    """With one call computing and none allowed to wait, a second is told to come back."""
    import threading

    port = free_port()
    env = dict(os.environ, XLWINGS_LICENSE_KEY="noncommercial", PYTHONPATH=str(ROOT))
    with open(tmp_path / "serve.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sheetdl.cli", "serve", "--port",
                                 str(port), "--running", "1", "--waiting", "0"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base), "the server to start", 60)
        worker = threading.Thread(target=lambda: call(base, *LONG_MLP))
        worker.start()
        wait_for(lambda: in_flight(base)["running"] == 1, "the long call to start")
        status, out, headers = raw_call(base, envelope("softmax", [[[1.0, 2.0]], None]))
        assert status == 503 and headers.get("Retry-After") == "1", (status, out)
        assert "1 calls running and 0 waiting" in out
        worker.join(timeout=600)
        # the slot frees once the server has finished with the call, which may be just
        # after its client has the answer (or has given up waiting)
        wait_for(lambda: in_flight(base)["running"] == 0, "the long call to end")
        assert raw_call(base, envelope("softmax", [[[1.0, 2.0]], None]))[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _answers(base) -> bool:
    try:
        return in_flight(base) is not None
    except OSError:
        return False


def test_a_call_whose_client_hangs_up_is_cancelled(server):
    """The client leaves: the call stops at its next step instead of computing on."""
    body = envelope(LONG_MLP[0], [list(a) if isinstance(a, list) else None if a is None
                                  else [[a]] for a in LONG_MLP[1:]])
    body = body.replace(b"3000", b"150000")  # minutes: far longer than the test waits
    port = int(server.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /xlwings/custom-functions-call HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (len(body), body))
    wait_for(lambda: in_flight(server)["running"] >= 1, "the call to start")
    s.close()
    wait_for(lambda: in_flight(server)["running"] == 0, "the hung-up call to stop", 60)


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


def test_the_http_examples_of_the_docs_run_as_written(server, tmp_path):
    """docs/http.md's curl and Python examples, pointed at the test server, answer the row
    they promise (torch's first Adam step); and serve on a port in use says so in one line
    with a --port to try, before any banner."""
    import shutil

    doc = (ROOT / "docs" / "http.md").read_text()
    port = server.rsplit(":", 1)[1]
    want = [0.900000002, 2.099999998, 0.05, -0.05, 0.00025, 0.00025]
    (shell,) = re.findall(r"```sh\n(.*?)```", doc, re.S)
    (code,) = re.findall(r"```python\n(.*?)```", doc, re.S)
    if shutil.which("curl"):
        out = subprocess.run(shell.replace("8000", port), shell=True, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["result"][0] == pytest.approx(want, rel=1e-9)
    script = tmp_path / "call.py"
    script.write_text(code.replace("8000", port) + "\nimport sys; json.dump(rows, sys.stderr)\n")
    out = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stderr)[0] == pytest.approx(want, rel=1e-9)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "sheetdl.cli", "serve", "--port", str(taken)],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, XLWINGS_LICENSE_KEY="noncommercial",
                                    PYTHONPATH=str(ROOT)))
    assert r.returncode == 2 and f"127.0.0.1:{taken} is in use" in r.stderr, r.stderr
    assert "--port" in r.stderr and "sheetdl functions on" not in r.stdout + r.stderr
