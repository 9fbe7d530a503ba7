"""The course's adam_ann annealing as formulas, and the learning-rate finder."""
import math
import os
import subprocess
import sys

import numpy as np
import openpyxl
import pytest

from conftest import ROOT, named_values
from sheetdl.lessons import data
from sheetdl.lessons.graddesc import layout as graddesc
from sheetdl.verification import libreoffice, verifier as verify
from sheetdl.write import xlsx

# --------------------------------------------------------------------------- annealing


def vba_adam_ann(x, y, epochs, lr, beta1=0.9, beta2=0.95):
    """adam_ann's Run macro transcribed from the VBA (fastai-workbooks.md §1.4), with
    its hidden warm-up left out: per epoch, paste the last row's state, divide lr by 4
    if avg_grad2/prev_grad2 > 2, keep prev_grad2 the best avg_grad2, recompute the
    epoch. The course's sheet: no bias correction, no ε, and each epoch restarts from
    the last row's inputs. Returns the lr of each epoch and the final b, a."""
    b = a = 1.0
    m, v = [0.0, 0.0], [0.0, 0.0]
    prev_grad2, lrs = None, []
    for epoch in range(epochs):
        if epoch > 0:
            avg_grad2 = math.sqrt(v[0]) + math.sqrt(v[1])
            if prev_grad2 is not None and avg_grad2 / prev_grad2 > 2:
                lr = lr / 4
            if prev_grad2 is None or avg_grad2 < prev_grad2:
                prev_grad2 = avg_grad2
        lrs.append(lr)
        for i, (xi, yi) in enumerate(zip(x, y)):
            inputs = (b, a)
            g = [2 * (a * xi + b - yi)]
            g.append(g[0] * xi)
            for j in range(2):
                m[j] = beta1 * m[j] + (1 - beta1) * g[j]
                v[j] = beta2 * v[j] + (1 - beta2) * g[j] ** 2
            b, a = b - lr * m[0] / math.sqrt(v[0]), a - lr * m[1] / math.sqrt(v[1])
        b, a = inputs  # the VBA carries the last row's inputs, dropping its update
    return lrs, b, a


@pytest.fixture(scope="module")
def annealed(tmp_path_factory):
    x, y = data.course_points()
    lesson = graddesc.make_lesson(x, y, optimizers=("adam",), preset="course", epochs=25,
                                  schedule="anneal", lr=1.0, beta2=0.95)
    path = xlsx.write(graddesc.build(lesson), tmp_path_factory.mktemp("ann") / "ann.xlsx")
    return path, lesson


def epoch_lrs(wb, n):
    return wb.values("lr_trace", "adam")[::n]


def test_annealing_column_reproduces_the_course_macro(annealed, course_dir):
    path, lesson = annealed
    report = verify.verify(path)
    assert report.ok, report.summary()
    wb = verify.recalculated(path)
    n = len(lesson.x)
    want_lrs, b, a = vba_adam_ann(lesson.x, lesson.y, 25, 1.0)
    np.testing.assert_array_equal(epoch_lrs(wb, n), want_lrs)
    # the last row's inputs b, a (what a 26th epoch would start from; verify has checked
    # the sheet against this reference trace)
    np.testing.assert_allclose([lesson.traces["adam"].b[-1], lesson.traces["adam"].a[-1]],
                               [b, a], rtol=1e-12)
    # lr 1 → 1/256 in four ÷4 steps, ending at the course's saved learning rate
    assert len(set(want_lrs)) == 5
    saved = openpyxl.load_workbook(course_dir / "graddesc.xlsm", data_only=True)["adam_ann"]
    assert epoch_lrs(wb, n)[-1] == saved["D2"].value
    assert abs(b - saved["C1"].value) < 0.05 and abs(a - saved["C2"].value) < 0.01


def test_annealing_follows_a_changed_lr_input(annealed):
    path, lesson = annealed
    wb = verify.recalculated(path)
    si = wb.index["adam"]
    wb.model.set_user_input(si, 4, 1, "0.5")  # B4 = lr
    wb.model.evaluate()
    want_lrs, _, _ = vba_adam_ann(lesson.x, lesson.y, 25, 0.5)
    np.testing.assert_array_equal(epoch_lrs(wb, len(lesson.x)), want_lrs)
    assert want_lrs[-1] < 0.5


def test_annealing_agrees_in_libreoffice(annealed, soffice, tmp_path):
    path, _ = annealed
    out, = libreoffice.recalculate([path], tmp_path)
    lo = openpyxl.load_workbook(out, data_only=True)
    ic = verify.recalculated(path)
    for name in ("lr_trace", "b_trace", "a_trace"):
        np.testing.assert_allclose(named_values(lo, name, "adam"), ic.values(name, "adam"),
                                   rtol=1e-9)


def test_annealing_needs_a_second_moment():
    with pytest.raises(ValueError, match="sgd does not keep"):
        graddesc.make_lesson(np.arange(4.0), np.arange(4.0), optimizers=("sgd",),
                             schedule="anneal")


# --------------------------------------------------------------------------- lr finder


def fastai_lr_find(opt, x, y, steps, lr_min, lr_max, b=1.0, a=1.0):
    """fastai's LRFinder + Recorder, transcribed: SchedExp lr = start·(end/start)^(i/N) for
    i = train_iter; AvgSmoothLoss val = lerp(loss, val, β), smooth = val/(1 − β^count);
    after each batch best = min, stop when smooth > 4·best; lr_find trims
    lrs[N//10:-5]; steep = lrs[argmin of Δloss/Δlog lr], minimum = lrs[argmin loss]/10."""
    params = np.array([b, a])
    state = opt.init(params)
    val, best, lrs, smooths = 0.0, math.inf, [], []
    for i in range(steps):
        lr = lr_min * (lr_max / lr_min) ** (i / steps)
        loss = float(np.mean((params[0] + params[1] * x - y) ** 2))
        g = np.array([2 * np.mean(params[0] + params[1] * x - y),
                      2 * np.mean((params[0] + params[1] * x - y) * x)])
        params, state, _ = opt.replace(lr=lr).update(params, g, state)
        val = loss + 0.98 * (val - loss)
        smooth = val / (1 - 0.98 ** (i + 1))
        lrs.append(lr)
        smooths.append(smooth)
        best = min(best, smooth)
        if smooth > 4 * best:
            break
    L, S = np.array(lrs[steps // 10:-5]), np.array(smooths[steps // 10:-5])
    grads = (S[1:] - S[:-1]) / (np.log(L[1:]) - np.log(L[:-1]))
    return len(lrs), np.array(smooths), L[np.argmin(grads)], L[np.argmin(S)] / 10


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_finder_matches_fastai_and_brackets_the_measured_lesson_lr(kind, tmp_path):
    x, y = data.course_points()
    lesson = graddesc.make_lesson(x, y, optimizers=(), lrfind_optimizer=kind)
    path = xlsx.write(graddesc.build(lesson), tmp_path / "f.xlsx")
    report = verify.verify(path)
    assert report.ok, report.summary()
    wb = verify.recalculated(path)
    stop, smooth, steep, minimum = fastai_lr_find(lesson.finder.opt, x, y, 100, 1e-7, 10.0)
    assert wb.values("finder_stop", "lrfind")[0] == stop
    np.testing.assert_allclose(wb.values("smooth_loss_trace", "lrfind")[:stop], smooth,
                               rtol=1e-10)
    got_steep, got_min = wb.values("lr_suggested", "lrfind")
    assert got_steep == pytest.approx(steep, rel=1e-12)
    assert got_min == pytest.approx(minimum, rel=1e-12)
    # the finder recovers the learning rates measured by hand for the lesson's sheets
    assert min(got_steep, got_min) <= graddesc.LESSON_LR[kind] <= max(got_steep, got_min)


def test_finder_stop_moves_with_lr_max_and_agrees_in_libreoffice(soffice, tmp_path):
    x, y = data.course_points()
    lesson = graddesc.make_lesson(x, y, optimizers=(), lrfind_optimizer="sgd")
    assert lesson.finder.result.stop_step < 100  # sgd diverges inside the range
    path = xlsx.write(graddesc.build(lesson), tmp_path / "f.xlsx")
    out, = libreoffice.recalculate([path], tmp_path / "lo")
    lo = openpyxl.load_workbook(out, data_only=True)
    ic = verify.recalculated(path)
    for name in ("finder_stop", "lr_suggested", "lr_trace"):
        np.testing.assert_allclose(named_values(lo, name, "lrfind"), ic.values(name, "lrfind"),
                                   rtol=1e-9)
    n = lesson.finder.result.stop_step
    np.testing.assert_allclose(named_values(lo, "smooth_loss_trace", "lrfind")[:n],
                               ic.values("smooth_loss_trace", "lrfind")[:n], rtol=1e-9)
    # the status (A6) says it in words, alike in both engines
    si = ic.index["lrfind"]
    assert lo["lrfind"]["A6"].value == ic.model.get_cell_value(si, 6, 1) == (
        f"the loss blew up after step {n}: try the suggested lrs (D13, D14) on a training sheet")
    # a smaller lr_max stretches the range: the stop comes later (or not at all)
    hyper = graddesc._hyper_names("sgd", lesson.finder.opt, lesson.finder.schedule,
                                  finder=lesson.finder)
    ic.model.set_user_input(si, 4, hyper.index("lr_max") + 1, "0.01")
    ic.model.evaluate()
    assert ic.values("finder_stop", "lrfind")[0] > n


def test_finder_summary_is_empty_not_wrong_when_it_stops_at_once(tmp_path):
    x, y = data.course_points()
    lesson = graddesc.make_lesson(x, y, optimizers=(), lrfind_optimizer="sgd",
                                  lrfind_options={"lr_min": 0.1, "lr_max": 10.0, "steps": 20})
    assert lesson.finder.result.stop_step < 8 and lesson.finder.result.lr_steep == ""
    path = xlsx.write(graddesc.build(lesson), tmp_path / "f.xlsx")
    assert verify.verify(path).ok
    wb = verify.recalculated(path)
    si = wb.index["lrfind"]
    col = wb.cells(wb.name_formula("lr_suggested", si), si)
    assert [wb.model.get_cell_value(*c) for c in col] == ["", ""]


def test_cli_builds_the_finder_and_refuses_what_it_cannot_do(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "sheetdl.cli", *a], cwd=tmp_path,
                                    capture_output=True, text=True,
                                    env={"PYTHONPATH": str(ROOT)})
    r = run("build", "lrfind", "-o", "f.xlsx", "--optimizer", "adam", "--steps", "60",
            "--lr-min", "1e-5", "--lr-max", "3")
    assert r.returncode == 0, r.stderr
    wb = verify.recalculated(tmp_path / "f.xlsx")
    lr = wb.values("lr_trace", "lrfind")
    assert len(lr) == 60 and lr[0] == 1e-5 and lr[-1] == pytest.approx(3 * (1e-5 / 3) ** (1 / 60))
    r = run("build", "graddesc", "-o", "g.xlsx", "--lrfind", "--optimizers", "adam,sgd")
    assert r.returncode == 0, r.stderr
    assert verify.recalculated(tmp_path / "g.xlsx").index.keys() >= {"adam", "sgd", "lrfind"}
    for args, message in [
            (("build", "lrfind", "-o", "x.xlsx", "--lr-min", "5", "--lr-max", "1"),
             "0 < --lr-min < --lr-max"),
            (("build", "lrfind", "-o", "x.xlsx", "--schedule", "onecycle"),
             "--schedule is a flag of graddesc, softmax, collab, mlp and conv, not lrfind"),
            (("build", "graddesc", "-o", "x.xlsx", "--schedule", "anneal"), "does not keep"),
            (("build", "softmax", "-o", "x.xlsx", "--schedule", "anneal"),
             "--schedule anneal is graddesc's"),
            (("build", "graddesc", "-o", "x.xlsx", "--udf", "--schedule", "cosine"),
             "constant-lr"),
            (("build", "graddesc", "-o", "x.xlsx", "--schedule", "onecycle", "--pct-start", "2"),
             "--pct-start 2: must be at least 0 and at most 1")]:
        r = run(*args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_softmax_and_collab_finder_sheets(soffice, tmp_path):
    """--lrfind on the block lessons: the finder's lr is fastai's exponential schedule (torch's
    LambdaLR reproduces the losses), its bookkeeping replays, and LibreOffice agrees."""
    import torch

    from sheetdl.lessons.collab import model as collab, layout as collab_book
    from sheetdl.lessons.softmax import model as softmax, layout as softmax_book

    X, labels = softmax.synthetic_blobs(12, 3, 2, 5)
    sm = softmax_book.make_lesson(X, labels, optimizer="adam", steps=5)
    sm.finder = softmax_book.make_finder(sm, steps=40, lr_min=1e-4, lr_max=3.0)
    R, users, movies = collab.synthetic_ratings(5, 6, seed=3)
    cl = collab_book.make_lesson(R, users, movies, factors=2, optimizer="momentum", epochs=4)
    cl.finder = collab_book.make_finder(cl, steps=30, lr_min=1e-3)
    paths = [xlsx.write(softmax_book.build(sm), tmp_path / "sm.xlsx"),
             xlsx.write(collab_book.build(cl), tmp_path / "cl.xlsx")]
    for path in paths:
        report = verify.verify(path)
        assert report.ok, report.summary()
        assert {c.name for c in report.traces if c.sheet == "lrfind"} >= {
            "lr_trace", "loss_trace", "smooth_loss_trace", "lr_suggested"}
    # torch: the same start, Adam under LambdaLR(lr_min·(lr_max/lr_min)^(i/N))
    torch.set_default_dtype(torch.float64)
    try:
        k, d = sm.W0.shape
        theta = torch.nn.Parameter(torch.cat([torch.tensor(sm.W0).ravel(), torch.tensor(sm.b0)]))
        o = torch.optim.Adam([theta], lr=1e-4)
        s = torch.optim.lr_scheduler.LambdaLR(o, lambda i: (3.0 / 1e-4) ** (i / 40))
        losses = []
        for _ in range(40):
            o.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                torch.tensor(X) @ theta[:k * d].reshape(k, d).T + theta[k * d:],
                torch.tensor(labels))
            loss.backward()
            o.step()
            s.step()
            losses.append(loss.item())
    finally:
        torch.set_default_dtype(torch.float32)
    ic = verify.recalculated(paths[0])
    np.testing.assert_allclose(ic.values("loss_trace", "lrfind"), losses, rtol=1e-9)
    outs = libreoffice.recalculate(paths, tmp_path / "lo")
    for path, out in zip(paths, outs):
        lo, ic = openpyxl.load_workbook(out, data_only=True), verify.recalculated(path)
        for name in ("lr_trace", "smooth_loss_trace", "lr_suggested", "finder_stop"):
            np.testing.assert_allclose(named_values(lo, name, "lrfind"),
                                       ic.values(name, "lrfind"), rtol=1e-9,
                                       err_msg=f"{path.name} {name}")
        assert lo["lrfind"]["A6"].value == ic.model.get_cell_value(ic.index["lrfind"], 6, 1)


def test_a_finder_whose_loss_overflows_builds_and_verifies(tmp_path):
    """Before: `sheetdl build lrfind --lr-max 100` was an OverflowError traceback: Python's
    float power raises where the sheet shows #NUM!."""
    r = subprocess.run([sys.executable, "-m", "sheetdl.cli", "build", "lrfind", "--lr-max",
                        "100", "-o", str(tmp_path / "f.xlsx")], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    report = verify.verify(tmp_path / "f.xlsx")
    assert report.ok, report.summary()
    wb = verify.recalculated(tmp_path / "f.xlsx")
    assert wb.model.get_cell_value(wb.index["lrfind"], 6, 1).startswith(
        f"the loss blew up after step {wb.values('finder_stop', 'lrfind')[0]:g}")


def test_finder_status_says_whether_the_loss_blew_up(tmp_path):
    """Before: a finder sheet had no status, and its hint spoke of an lr input it does not
    have. A softmax finder whose loss never blows up suggested an lr from a curve that had
    not turned, with nothing to say so."""
    from sheetdl.lessons.softmax import model as softmax, layout as softmax_book

    X, labels = softmax.synthetic_blobs(12, 3, 2, 5)
    sm = softmax_book.make_lesson(X, labels, optimizer="sgd", steps=5)
    sm.finder = softmax_book.make_finder(sm, steps=40, lr_min=1e-4, lr_max=0.01)
    wb = verify.recalculated(xlsx.write(softmax_book.build(sm), tmp_path / "sm.xlsx"))
    si = wb.index["lrfind"]
    stop = lambda: wb.values("finder_stop", "lrfind")[0]
    assert stop() == 40  # the smoothed loss only fell
    assert wb.model.get_cell_value(si, 6, 1).startswith(
        "the loss never blew up, up to lr_max: the suggested lrs come from a curve")
    assert wb.model.get_cell_value(si, 5, 1).startswith("Change a yellow input (lr_min or lr_max")
    lr_max = next(c for c in range(1, 20) if wb.model.get_cell_value(si, 3, c) == "lr_max")
    wb.model.set_user_input(si, 4, lr_max, "1e6")
    wb.model.evaluate()
    assert stop() < 40
    assert wb.model.get_cell_value(si, 6, 1).startswith(f"the loss blew up after step {stop():g}")
    lr_min = next(c for c in range(1, 20) if wb.model.get_cell_value(si, 3, c) == "lr_min")
    wb.model.set_user_input(si, 4, lr_min, "1e5")
    wb.model.evaluate()
    assert wb.model.get_cell_value(si, 6, 1) == \
        "the loss blew up within the first steps: lower the yellow lr_min"
    # and the summary says no step was used, where it said "steps used 5 to -3"
    where = next((r, c) for r in range(1, 40) for c in range(1, 40)
                 if wb.model.get_cell_value(si, r, c) == "steps used")
    used = next(v for c in range(where[1] + 1, where[1] + 6)
                if (v := wb.model.get_cell_value(si, where[0], c)) not in ("", None))
    assert used == f"none: it stopped after step {stop():g}"
