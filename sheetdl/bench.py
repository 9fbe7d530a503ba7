"""``sheetdl bench``: ratios against the alternatives, each measured in one run.

These machines are shared and noisy, so absolute times drift; a ratio taken
between two measurements of the same run holds. Every time is the median of
``repeats`` runs. Writers and engines run in child processes so each peak
memory is its own. Rows whose tool is missing say so instead of a number.
"""
from __future__ import annotations

import inspect
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import progress

QUICK = {"build_rows": 2_000, "kernel_n": 1_000_000, "train_rows": 20_000, "collab": (60, 80, 8),
         "softmax_cells": 10_000, "train_udf_rows": 10_000, "repeats": 3}
FULL = {"build_rows": 100_000, "kernel_n": 10_000_000, "train_rows": 1_000_000,
        "collab": (610, 2000, 20), "softmax_cells": 100_000, "train_udf_rows": 100_000,
        "repeats": 3}


@dataclass
class Row:
    area: str
    what: str
    ours: float | None          # seconds
    theirs: float | None        # seconds of the alternative
    alternative: str
    target: str
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """How many times faster ours is (alternative time / our time)."""
        if not self.ours or not self.theirs:
            return None
        return self.theirs / self.ours


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _child(code: str, *args, python=sys.executable, timeout=3600) -> dict:
    """Run ``code`` in a fresh process; it prints one JSON line. Adds its peak memory."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve, so a child would
    # report its parent's peak; the high-water mark of its own memory map resets.
    wrapper = (code + "\nimport json, re\n"
               "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())\n"
               "print(json.dumps(dict(RESULT, peak_mb=int(hwm.group(1)) / 1024 if hwm else None)))")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    r = subprocess.run([python, "-c", wrapper, *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip()[-800:])
    return json.loads(r.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- writing

WRITE_SHEETDL = """
import sys, time
from sheetdl.lessons import data
from sheetdl.lessons.graddesc import layout as graddesc
from sheetdl.write import xlsx
x, y = data.synthetic_line(int(sys.argv[1]), 0)
t0 = time.perf_counter()
lesson = graddesc.make_lesson(x, y, optimizers=("adam",), epochs=1)
xlsx.write(graddesc.build(lesson), sys.argv[2])
RESULT = {"seconds": time.perf_counter() - t0}
"""

# The default lesson: five optimizer sheets, a data sheet and a comparison.
WRITE_DEFAULT = """
import sys, time
from sheetdl.lessons import data
from sheetdl.lessons.graddesc import layout as graddesc
from sheetdl.write import xlsx
x, y = data.synthetic_line(int(sys.argv[1]), 0)
t0 = time.perf_counter()
xlsx.write(graddesc.build(graddesc.make_lesson(x, y, epochs=1)), sys.argv[2])
RESULT = {"seconds": time.perf_counter() - t0}
"""

# The same cells, values and formulas, written by the alternatives. The cell stream
# comes from the same layout, built before the clock starts.
WRITE_ALTERNATIVE = """
import sys, time
from sheetdl.lessons import data
from sheetdl.lessons.graddesc import layout as graddesc
x, y = data.synthetic_line(int(sys.argv[1]), 0)
from sheetdl.sheet.workbook import cell_rows
book = graddesc.build(graddesc.make_lesson(x, y, optimizers=("adam",), epochs=1))
sheets = [(s.name, list(cell_rows(s.rows))) for s in book.sheets]
which, out = sys.argv[3], sys.argv[2]
t0 = time.perf_counter()
if which == "xlsxwriter":
    import xlsxwriter
    wb = xlsxwriter.Workbook(out, {"constant_memory": True})
    for name, rows in sheets:
        ws = wb.add_worksheet(name)
        for r, cells in rows:
            for c, f, v, _ in cells:
                if f is None:
                    ws.write(r, c, v) if v is not None else None
                else:
                    ws.write_formula(r, c, f, None, v if isinstance(v, (int, float, str)) else 0)
    wb.close()
else:
    from openpyxl import Workbook
    wb = Workbook(write_only=True)
    for name, rows in sheets:
        ws = wb.create_sheet(name)
        last = -1
        for r, cells in rows:
            while last < r - 1:
                ws.append([]); last += 1
            line = [None] * (max(c for c, *_ in cells) + 1) if cells else []
            for c, f, v, _ in cells:
                line[c] = f if f is not None else v
            ws.append(line); last = r
    wb.save(out)
RESULT = {"seconds": time.perf_counter() - t0}
"""


def bench_writing(rows: int, folder: Path, repeats: int) -> list[Row]:
    def run(code, *args):
        res = [_child(code, rows, folder / "w.xlsx", *args) for _ in range(repeats)]
        return statistics.median(r["seconds"] for r in res), max(r["peak_mb"] for r in res)

    ours, ours_mb = run(WRITE_SHEETDL)
    xw, xw_mb = run(WRITE_ALTERNATIVE, "xlsxwriter")
    op, op_mb = run(WRITE_ALTERNATIVE, "openpyxl")
    default = _child(WRITE_DEFAULT, rows, folder / "d.xlsx")
    cells = f"graddesc adam sheet, {rows:,} rows"
    return [
        Row("writing", f"sheetdl build graddesc, {rows:,} rows: the five optimizer sheets "
            f"and the data (peak {default['peak_mb']:.0f} MB)", default["seconds"], None, "—",
            "well under a minute at 100,000 rows"),
        Row("writing", f"sheetdl build ({cells}, cached values, layout included)", ours, xw,
            "plain XlsxWriter constant-memory loop, same cells and values",
            "—", extra={"peak_mb": ours_mb, "alternative_peak_mb": xw_mb}),
        Row("writing", f"sheetdl build ({cells})", ours, op,
            "openpyxl write_only, same formulas, no values", "≥ 5× faster, peak < 300 MB",
            extra={"peak_mb": ours_mb, "alternative_peak_mb": op_mb}),
    ]


# --------------------------------------------------------------------------- recalculation

UNO_SCRIPT = r"""
import json, subprocess, sys, time, tempfile, os
import uno
from com.sun.star.beans import PropertyValue
path, port, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
profile = tempfile.mkdtemp()
proc = subprocess.Popen(["soffice", f"-env:UserInstallation=file://{profile}", "--headless",
                         "--norestore", f"--accept=socket,host=127.0.0.1,port={port};urp;"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
local = uno.getComponentContext()
resolver = local.ServiceManager.createInstanceWithContext(
    "com.sun.star.bridge.UnoUrlResolver", local)
for _ in range(120):
    try:
        ctx = resolver.resolve(
            f"uno:socket,host=127.0.0.1,port={port};urp;StarOffice.ComponentContext")
        break
    except Exception:
        time.sleep(0.5)
desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
hidden = PropertyValue(); hidden.Name = "Hidden"; hidden.Value = True
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(path), "_blank", 0, (hidden,))
    doc.calculateAll()
    times.append(time.perf_counter() - t0)
    doc.close(True)
proc.terminate()
times.sort()
print(json.dumps({"seconds": times[len(times) // 2]}))
"""


VERIFY_SHEETDL = """
import sys, time
from sheetdl.verification import verifier
t0 = time.perf_counter()
report = verifier.verify(sys.argv[1])
assert report.ok, report.summary()
RESULT = {"seconds": time.perf_counter() - t0}
"""


def _uno_python() -> str | None:
    for py in ("/usr/bin/python3", shutil.which("python3")):
        if py and subprocess.run([py, "-c", "import uno"], capture_output=True).returncode == 0:
            return py
    return None


def bench_recalculation(rows: int, folder: Path, repeats: int) -> list[Row]:
    from .lessons import data
    from .lessons.graddesc import layout as graddesc
    from .verification import libreoffice
    from .write import xlsx

    x, y = data.synthetic_line(rows, 0)
    path = xlsx.write(graddesc.build(graddesc.make_lesson(x, y, optimizers=("adam",), epochs=1)),
                      folder / "recalc.xlsx")
    runs = [_child(VERIFY_SHEETDL, path) for _ in range(repeats)]
    ours = statistics.median(r["seconds"] for r in runs)
    peak = {"peak_mb": max(r["peak_mb"] for r in runs)}
    out = []
    if libreoffice.soffice():
        fresh = median_time(lambda: libreoffice.recalculate([path], folder / "lo"), repeats)
        out.append(Row("recalculation", f"sheetdl verify (IronCalc + replay), {rows:,} rows",
                       ours, fresh, "LibreOffice headless, fresh process (convert-to xlsx)",
                       "≥ 5× faster, < 1 GB", extra=peak))
        py = _uno_python()
        if py:
            import socket

            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            r = subprocess.run([py, "-c", UNO_SCRIPT, str(path), str(port), str(repeats)],
                               capture_output=True, text=True, timeout=3600)
            try:
                warm, why = json.loads(r.stdout.strip().splitlines()[-1])["seconds"], ""
            except (IndexError, ValueError, KeyError):
                warm, why = None, "UNO run failed: " + (r.stderr.strip()[-200:] or "no output")
            out.append(Row("recalculation", f"sheetdl verify, {rows:,} rows", ours, warm,
                           "LibreOffice warm process over UNO (load + calculateAll)", "—",
                           note=why))
        else:
            out.append(Row("recalculation", "sheetdl verify", ours, None,
                           "LibreOffice warm process over UNO", "—",
                           note="not measured: python3-uno is not installed"))
    else:
        out.append(Row("recalculation", "sheetdl verify", ours, None, "LibreOffice", "≥ 3×",
                       note="not measured: LibreOffice is not installed"))
    return out


# --------------------------------------------------------------------------- conv

VERIFY_CONV = """
import sys, time
from sheetdl.verification import verifier
t0 = time.perf_counter()
report = verifier.verify(sys.argv[1])
assert report.ok, report.summary()
RESULT = {"seconds": time.perf_counter() - t0}
"""


def bench_conv(folder: Path, repeats: int) -> list[Row]:
    """The default conv workbook: verify (IronCalc + replay) against LibreOffice's
    recalculation of it, and the reference math's 40 steps against torch CPU's."""
    from .lessons.conv import layout as conv_book, model as conv
    from .math import optim
    from .verification import libreoffice
    from .write import xlsx

    images, labels, names = conv.glyph_images(6, 3, 0)
    lesson = conv_book.make_lesson(images, labels, names)
    path = xlsx.write(conv_book.build(lesson), folder / "conv.xlsx")
    runs = [_child(VERIFY_CONV, path) for _ in range(repeats)]
    ours = statistics.median(r["seconds"] for r in runs)
    peak = {"peak_mb": max(r["peak_mb"] for r in runs)}
    fresh = median_time(lambda: libreoffice.recalculate([path], folder / "lo"), repeats) \
        if libreoffice.soffice() else None
    rows = [Row("conv", "sheetdl verify of the default conv workbook", ours, fresh,
                "LibreOffice headless, fresh process (convert-to xlsx)", "—",
                note="" if fresh else "not measured: LibreOffice is not installed",
                extra=peak)]
    from .addin import udfs

    opt = optim.make("adam", lr=0.01)
    math = median_time(lambda: conv.train(opt, lesson.shape, images, labels, lesson.theta0,
                                          lesson.steps), repeats)
    torch_time = _torch_conv(lesson, repeats)
    torch_note = "" if _has_torch() else "not measured: torch is not installed"
    rows.append(Row("conv", f"conv reference math, {lesson.steps} full-batch adam steps "
                    "(every intermediate kept)", math, torch_time,
                    "torch CPU autograd + torch.optim.Adam, float64", "—", note=torch_note))
    one_call = median_time(lambda: udfs.conv_train(images.reshape(len(images), -1), labels,
                                                   lesson.shape.kernels, lesson.steps), repeats)
    rows.append(Row("conv", f"SHEETDL.CONV_TRAIN: the same {lesson.steps} steps in one call "
                    "(losses and accuracies only)", one_call, torch_time,
                    "torch CPU autograd + torch.optim.Adam, float64", "—", note=torch_note))
    return rows


def _has_torch() -> bool:
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def _torch_conv(lesson, repeats: int) -> float | None:
    if not _has_torch():
        return None
    import torch
    import torch.nn.functional as F

    def train():
        params = [torch.tensor(v, dtype=torch.float64, requires_grad=True)
                  for v in lesson.shape.unpack(lesson.theta0)]
        K, kb, Wd, bd = params
        opt = torch.optim.Adam(params, lr=0.01)
        x = torch.tensor(lesson.images)[:, None]
        y = torch.tensor(lesson.labels)
        for _ in range(lesson.steps):
            opt.zero_grad()
            maps = F.max_pool2d(F.relu(F.conv2d(x, K[:, None], kb)), 2)
            F.cross_entropy(F.linear(torch.flatten(maps, 1), Wd, bd), y).backward()
            opt.step()
    return median_time(train, repeats)


# --------------------------------------------------------------------------- kernels

def bench_kernels(n: int, train_rows: int, collab_size, repeats: int) -> list[Row]:
    from .lessons.collab import model as collab
    from .lessons import data
    from .addin import kernels, udfs

    rng = np.random.default_rng(0)
    p, g, m = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n) * 0.1
    v = np.abs(rng.normal(size=n))
    src7, dst7 = np.empty(7 * n), np.empty(7 * n)
    src3, dst3 = np.empty(3 * n), np.empty(3 * n)
    floor7 = median_time(lambda: np.copyto(dst7, src7), repeats)
    floor3 = median_time(lambda: np.copyto(dst3, src3), repeats)
    # a training loop steps its arrays in place, as torch.optim does (out=): the rows with
    # targets; a call that returns fresh arrays (as the add-in's UDFs) also pays the
    # system for new memory, zeroed page by page
    P, M, V = p.copy(), m.copy(), v.copy()
    adam_call = lambda: kernels.adam_step(P, g, M, V, 3, 1e-3, 0.9, 0.999, 1e-8, 0.01,  # noqa: E731
                                          out=(P, M, V))
    sgd_call = lambda: kernels.sgd_step(P, g, 1e-3, 0.01, out=P)  # noqa: E731
    adam_fresh = lambda: kernels.adam_step(p, g, m, v, 3, 1e-3, 0.9, 0.999, 1e-8, 0.01)  # noqa: E731
    # a training loop steps many times: the compiled loop's load from its cache and the first
    # touch of fresh output memory happen once, so two warm-up calls are not timed
    for call in (adam_call, sgd_call, adam_fresh) * 2:
        call()
    adam = median_time(adam_call, repeats)
    sgd = median_time(sgd_call, repeats)
    fresh = median_time(adam_fresh, repeats)
    rows = [
        Row("kernels", f"adam_step, {n:,} float64 parameters, in place (out=)", adam, floor7,
            "NumPy copy of the same bytes (4 arrays read, 3 written): the bandwidth floor",
            "≥ 0.6"),
        Row("kernels", f"adam_step, {n:,} float64 parameters, into fresh arrays", fresh,
            floor7, "the same copy floor", "—"),
        Row("kernels", f"sgd_step, {n:,} float64 parameters, in place (out=)", sgd, floor3,
            "NumPy copy of the same bytes (2 read, 1 written)", "≥ 0.5"),
    ]
    from .lessons.graddesc import compiled
    from .math import optim

    # the functions themselves: with XLWINGS_LICENSE_KEY set, udfs wraps them for the server
    train_linear, collab_train = map(inspect.unwrap, (udfs.train_linear, udfs.collab_train))
    x, y = data.synthetic_line(train_rows, 0)
    x, y = x / 100, y / 100
    cols = (x.reshape(-1, 1), y.reshape(-1, 1))
    # the compiled loop is compiled once per machine (kept in its cache): not timed here
    train_linear(cols[0][:3000], cols[1][:3000], "sgd", 0.01, 1)
    train_linear(cols[0][:3000], cols[1][:3000], "adam", 0.01, 1)
    trained = {k: median_time(lambda: compiled.train(optim.make(k, lr=0.01), x, y, epochs=1,
                                                     b_init=1.0, a_init=1.0), 3)
               for k in ("sgd", "adam")}
    ours = median_time(lambda: train_linear(*cols, "sgd", 0.01, 1), 1)

    def plain_loop():
        b = a = 1.0
        out = []
        for xi, yi in zip(x.tolist(), y.tolist()):
            err = b + a * xi - yi
            gb = 2.0 * err
            b, a = b - 0.01 * gb, a - 0.01 * gb * xi
            out.append((b, a, err * err))
        return out

    def plain_adam():
        b = a = 1.0
        mb = ma = vb = va = 0.0
        p1 = p2 = 1.0
        out = []
        for xi, yi in zip(x.tolist(), y.tolist()):
            err = b + a * xi - yi
            gb = 2.0 * err
            ga = gb * xi
            mb, ma = 0.9 * mb + 0.1 * gb, 0.9 * ma + 0.1 * ga
            vb, va = 0.999 * vb + 0.001 * (gb * gb), 0.999 * va + 0.001 * (ga * ga)
            p1, p2 = p1 * 0.9, p2 * 0.999
            b = b - 0.01 * (mb / (1 - p1)) / ((vb / (1 - p2)) ** 0.5 + 1e-8)
            a = a - 0.01 * (ma / (1 - p1)) / ((va / (1 - p2)) ** 0.5 + 1e-8)
            out.append((b, a, err * err))
        return out

    loop, loop_adam = median_time(plain_loop, 1), median_time(plain_adam, 1)
    rows += [
        Row("kernels", f"train_linear's training (compiled.train: every trace and optimizer "
            f"column as arrays), {train_rows:,} rows, sgd", trained["sgd"], loop,
            "plain Python loop of the same SGD math", "≥ 30× faster"),
        Row("kernels", f"train_linear's training, {train_rows:,} rows, adam", trained["adam"],
            loop_adam, "plain Python loop of the same Adam math", "≥ 30× faster"),
        Row("kernels", f"SHEETDL.TRAIN_LINEAR, {train_rows:,} rows, sgd: the training and its "
            "12-column table as the Python lists Excel receives", ours, loop,
            "plain Python loop of the same SGD math", "—"),
    ]
    try:
        import torch

        # torch takes ~0.26 ms a step here: compare on at most 100,000 rows, both sides
        m_rows = min(train_rows, 100_000)
        xs, ys = x[:m_rows], y[:m_rows]

        def torch_steps():
            b = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
            a = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
            opt = torch.optim.SGD([b, a], lr=0.01)
            for xi, yi in zip(xs.tolist(), ys.tolist()):
                opt.zero_grad()
                ((b + a * xi - yi) ** 2).backward()
                opt.step()

        ours_m = median_time(lambda: train_linear(xs.reshape(-1, 1), ys.reshape(-1, 1), "sgd",
                                                  0.01, 1), 1)
        rows.append(Row("kernels", f"train_linear, {m_rows:,} rows, sgd", ours_m,
                        median_time(torch_steps, 1), "torch CPU, the same per-sample steps", "—"))
    except ImportError:
        rows.append(Row("kernels", "train_linear", ours, None, "torch CPU", "—",
                        note="not measured: torch is not installed"))
    users, movies, factors = collab_size
    R, _, _ = collab.synthetic_ratings(users, movies, blank=0.9, seed=0)
    epochs = 20
    # the sparse pass is compiled once per machine (kept in numba's cache): not timed here
    collab_train(R[:, :400], factors, 1, 0.05, 0.0, 0, "adam", 0, 5.5)
    ours = median_time(lambda: collab_train(R, factors, epochs, 0.05, 0.0, 0, "adam", 0, 5.5),
                       1)
    try:
        import torch

        def torch_collab():
            uu, mm = np.nonzero(np.isfinite(R))
            target = torch.tensor(R[uu, mm])
            uu, mm = torch.tensor(uu), torch.tensor(mm)
            shape = collab.Shape(users, movies, factors)
            U, bu, V, bm = (torch.tensor(a.copy(), requires_grad=True)
                            for a in shape.unpack(collab.init_params(shape, 0)))
            opt = torch.optim.Adam([U, bu, V, bm], lr=0.05)
            for _ in range(epochs):
                opt.zero_grad()
                raw = (U[uu] * V.T[mm]).sum(1) + bu[uu] + bm[mm]
                loss = ((torch.sigmoid(raw) * 5.5 - target) ** 2).mean()
                loss.backward()
                opt.step()

        rows.append(Row("kernels", f"collab_train, {users}×{movies} ratings (10% observed), "
                        f"{factors} factors, {epochs} epochs", ours, median_time(torch_collab, 1),
                        "torch CPU, the same model and epochs", "no slower (ratio ≥ 1)"))
    except ImportError:
        pass
    return rows


# --------------------------------------------------------------------------- add-in end to end

def bench_addin(cells: int, train_rows: int, folder: Path) -> list[Row]:
    import importlib.util

    from .verification import libreoffice
    from .write import xlsx
    from .sheet.workbook import Book, Sheet, static_rows

    def unmeasured(why: str) -> list[Row]:
        return [Row("add-in", "through xlwings Server", None, None, "LibreOffice", "≥ 100×",
                    note=f"not measured: {why}")]

    # looked up, not imported: importing it sets XLWINGS_ON_SERVER for this whole process
    if importlib.util.find_spec("xlwings_server") is None:
        return unmeasured("xlwings Server is not installed")
    import socket
    import urllib.request

    k = 5
    n = cells // k
    z = np.random.default_rng(0).normal(size=(n, k)).round(4)
    # the equivalent formula sheet: each row's softmax with max subtraction
    rows = []
    for i in range(n):
        r1 = i + 1
        cells_row = [(j, None, float(z[i, j]), None) for j in range(k)]
        cells_row.append((k, f"=MAX(A{r1}:E{r1})", float(z[i].max()), None))
        e = np.exp(z[i] - z[i].max())
        for j in range(k):
            cells_row.append((k + 1 + j, f"=EXP({chr(65 + j)}{r1}-F{r1})", float(e[j]), None))
        cells_row.append((2 * k + 1, f"=SUM(G{r1}:K{r1})", float(e.sum()), None))
        for j in range(k):
            cells_row.append((2 * k + 2 + j, f"={chr(71 + j)}{r1}/L{r1}", float(e[j] / e.sum()),
                              None))
        rows.append((i, cells_row))
    path = xlsx.write(Book([Sheet("softmax", static_rows(rows))], {}, "bench", {}),
                      folder / "softmax_formulas.xlsx")
    lo = median_time(lambda: libreoffice.recalculate([path], folder / "lo2"), 1) \
        if libreoffice.soffice() else None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ,
               XLWINGS_LICENSE_KEY=os.environ.get("XLWINGS_LICENSE_KEY", "noncommercial"),
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-m", "sheetdl.cli", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(base + "/xlwings/custom-functions-meta", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:  # installed but broken: no point in waiting
                    return unmeasured("sheetdl serve exited at once")
                time.sleep(0.5)

        def call(name, args):
            body = json.dumps({"client": "Office.js", "func_name": name, "args": args,
                               "caller_address": "[B.xlsx]S!A1", "session_id": "bench",
                               "culture_info_name": "en-US", "date_format": "M/d/yyyy",
                               "version": "0.37.8", "runtime": "1.4"}).encode()
            req = urllib.request.Request(base + "/xlwings/custom-functions-call", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=600) as r:
                return json.loads(r.read())

        server_softmax = median_time(lambda: call("softmax", [z.tolist(), None]), 3)
        floor = _json_echo_floor([z.tolist(), None], 3)
        x = np.round(np.random.default_rng(1).uniform(0, 1, train_rows), 4)
        y = np.round(2 * x + 0.3, 4)
        # the first call in a server process loads numba and the compiled loop once
        call("train_linear", [[[v] for v in x[:3000].tolist()], [[v] for v in y[:3000].tolist()],
                              [["sgd"]], [[0.01]], [[1]], None, None, None, None, None, None,
                              None, None])
        server_train = median_time(lambda: call("train_linear", [[[v] for v in x.tolist()],
                                                                 [[v] for v in y.tolist()],
                                                                 [["sgd"]], [[0.01]], [[1]],
                                                                 None, None, None, None, None,
                                                                 None, None, None]), 1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    from .lessons.graddesc import layout as graddesc

    lesson = graddesc.make_lesson(x, y, optimizers=("sgd",), epochs=1, lr=0.01)
    tpath = xlsx.write(graddesc.build(lesson), folder / "train_formulas.xlsx")
    lo_train = median_time(lambda: libreoffice.recalculate([tpath], folder / "lo3"), 1) \
        if libreoffice.soffice() else None
    return [
        Row("add-in", f"SHEETDL.SOFTMAX on {cells:,} cells through sheetdl serve (HTTP, "
            "127.0.0.1)", server_softmax, floor, "the same JSON over loopback HTTP to a bare "
            "server that parses it and answers as much: the floor", "within 3× (ratio ≥ 0.33)"),
        Row("add-in", f"SHEETDL.SOFTMAX on {cells:,} cells through xlwings Server (HTTP, "
            "127.0.0.1)", server_softmax, lo, "LibreOffice recalculating the formula sheet "
            "(fresh process)", "≥ 100× faster"),
        Row("add-in", f"SHEETDL.TRAIN_LINEAR on {train_rows:,} rows through xlwings Server",
            server_train, lo_train, "LibreOffice recalculating the graddesc sgd sheet",
            "≥ 100× faster"),
    ]


def _json_echo_floor(args, repeats: int) -> float:
    """Seconds for the add-in's request body over loopback HTTP to a server that only parses
    the JSON and answers with a body of the same numbers: what any HTTP add-in costs."""
    import threading
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            out = json.dumps({"result": body["args"][0]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        def call():
            body = json.dumps({"client": "Office.js", "func_name": "softmax", "args": args,
                               "caller_address": "[B.xlsx]S!A1"}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{server.server_port}/", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=600) as r:
                return json.loads(r.read())
        return median_time(call, repeats)
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- scaling

def bench_scaling(base_rows: int, base_n: int, folder: Path, factors=(1, 10, 100)) -> list[dict]:
    from .addin import kernels

    points = []
    for f in factors:
        rows = base_rows * f
        res = _child(WRITE_SHEETDL, rows, folder / "s.xlsx")
        n = base_n * f
        rng = np.random.default_rng(0)
        arrays = [rng.normal(size=n) for _ in range(3)] + [np.abs(rng.normal(size=n))]
        t = median_time(lambda: kernels.adam_step(*arrays, 3, 1e-3, 0.9, 0.999, 1e-8, 0.0), 3)
        points.append({"scale": f, "build_rows": rows, "build_s": res["seconds"],
                       "build_peak_mb": res["peak_mb"], "adam_n": n, "adam_s": t})
    return points


# --------------------------------------------------------------------------- report

def machine() -> str:
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    return (f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB, "
            f"Python {platform.python_version()}, NumPy {np.__version__}")


def gpu_row() -> Row:
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return Row("gpu", "adam_step on CuPy", None, None, "NumPy", "—",
                       note="a GPU is present: run the kernels with SHEETDL_BACKEND=cupy")
    except Exception:
        pass
    return Row("gpu", "adam_step on CuPy", None, None, "NumPy", "—",
               note="not measured: no CuPy and GPU on this machine")


#: the benchmark areas, in the order they run (``--only`` picks among them)
AREAS = ("writing", "recalculation", "conv", "kernels", "add-in", "scaling")


def run(full: bool = False, plot: str | None = None, only: list[str] | None = None) -> dict:
    cfg = FULL if full else QUICK
    rows: list[Row] = []
    scaling: list[dict] = []
    areas = [a for a in AREAS if not only or a in only]
    with tempfile.TemporaryDirectory(prefix="sheetdl-bench-") as tmp, \
            progress.bar("bench", total=len(areas), unit=" areas") as bar:
        folder = Path(tmp)
        measure = {
            "writing": lambda: bench_writing(cfg["build_rows"], folder, cfg["repeats"]),
            "recalculation": lambda: bench_recalculation(cfg["build_rows"], folder,
                                                         min(cfg["repeats"], 3)),
            "conv": lambda: bench_conv(folder, min(cfg["repeats"], 3)),
            "kernels": lambda: bench_kernels(cfg["kernel_n"], cfg["train_rows"], cfg["collab"],
                                             cfg["repeats"]),
            "add-in": lambda: bench_addin(cfg["softmax_cells"], cfg["train_udf_rows"], folder),
        }
        for area in areas:
            bar.set_description(f"bench: {area}")
            if area == "scaling":
                # 10×, 100×, 1000× a small base: builds of 1k-100k rows, kernels of 100k-10M
                scaling = bench_scaling(100, 10_000, folder,
                                        factors=(10, 100, 1000) if full else (10, 100))
            else:
                rows += measure[area]()
            bar.update(1)
        rows.append(gpu_row())
    report = {"machine": machine(), "mode": "full" if full else "quick",
              "rows": [dict(r.__dict__, ratio=r.ratio) for r in rows], "scaling": scaling}
    if plot and scaling:
        report["plot"] = write_plot(scaling, plot)
    return report


def write_plot(points: list[dict], path: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "not written: matplotlib is not installed (pip install matplotlib)"
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].loglog([p["build_rows"] for p in points], [p["build_s"] for p in points], "o-")
    axes[0].set(xlabel="rows", ylabel="seconds", title="sheetdl build graddesc (adam)")
    axes[1].loglog([p["adam_n"] for p in points], [p["adam_s"] for p in points], "o-")
    axes[1].set(xlabel="parameters", ylabel="seconds", title="adam_step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def table(report: dict) -> str:
    lines = [f"sheetdl bench ({report['mode']}) on {report['machine']}", "",
             "| area | ours | alternative | ours (s) | theirs (s) | ratio (×faster) | target |",
             "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        fmt = lambda v: "—" if v is None else f"{v:.3g}"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        note = f" ({r['note']})" if r["note"] else ""
        extra = r.get("extra", {})
        mem = (f"; peak {extra['peak_mb']:.0f} MB" if "peak_mb" in extra else "") + (
            f" vs {extra['alternative_peak_mb']:.0f} MB" if "alternative_peak_mb" in extra
            else "")
        lines.append(f"| {r['area']} | {r['what']}{mem} | {r['alternative']}{note} | "
                     f"{fmt(r['ours'])} | {fmt(r['theirs'])} | {ratio} | {r['target']} |")
    if report["scaling"]:
        lines += ["", "| scale | build rows | build s | build peak MB | adam n | adam s |",
                  "|---|---|---|---|---|---|"]
        for p in report["scaling"]:
            lines.append(f"| {p['scale']}× | {p['build_rows']:,} | {p['build_s']:.2f} | "
                         f"{p['build_peak_mb']:.0f} | {p['adam_n']:,} | {p['adam_s']:.4f} |")
    if report.get("plot"):
        lines += ["", f"plot: {report['plot']}"]
    return "\n".join(lines)
