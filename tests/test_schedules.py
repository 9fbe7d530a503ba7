"""Learning-rate schedules in cells: the lr column against torch.optim.lr_scheduler, the
parameter traces against torch.optim under a schedule, both engines on every schedule,
and the schedule redrawn when an input changes."""
import math

import numpy as np
import openpyxl
import pytest
import torch

from conftest import named_values
from sheetdl.lessons.collab import model as collab, layout as collab_book
from sheetdl.lessons.graddesc import layout as graddesc
from sheetdl.verification import libreoffice, verifier as verify
from sheetdl.math import schedules
from sheetdl.lessons.softmax import model as softmax, layout as softmax_book
from sheetdl.write import xlsx
from torch_reference import torch_scheduler, torch_trace

KINDS = graddesc.ALL_OPTIMIZERS
EPOCHS = 3


def random_settings(rng, kind: str) -> dict:
    """Random schedule options (None = the framework's default, sometimes)."""
    pick = lambda v: v if rng.random() < 0.8 else None
    if kind == "onecycle":
        return {"pct_start": pick(float(rng.uniform(0.15, 0.6))),
                "div": pick(float(rng.uniform(5, 40))),
                "div_final": pick(float(10 ** rng.uniform(1, 5)))}
    if kind == "cosine":
        return {"lr_min": float(rng.choice([0.0, rng.uniform(1e-4, 1e-3)]))}
    if kind == "step":
        return {"step_size": int(rng.integers(1, 9)), "gamma": float(rng.uniform(0.3, 0.95))}
    return {"gamma": float(rng.uniform(0.9, 0.999))}


def test_reference_schedules_equal_torch_schedulers():
    """The reference math itself, many random settings, against torch's schedulers."""
    rng = np.random.default_rng(6)
    for case in range(60):
        kind = ("onecycle", "cosine", "step", "exp")[case % 4]
        steps = int(rng.integers(12, 400))
        opt_kind = ("momentum", "adam", "sgd")[case % 3]
        sched = schedules.make(kind, steps=steps, optimizer=opt_kind, lr=0.05,
                               lr_max=float(rng.uniform(0.01, 1.0)), **random_settings(rng, kind))
        p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        o = (torch.optim.Adam([p], lr=0.05) if opt_kind == "adam" else
             torch.optim.SGD([p], lr=0.05, momentum=0.9 if opt_kind == "momentum" else 0.0))
        s = torch_scheduler(o, sched)
        lrs, moms = [], []
        for _ in range(steps):
            g = o.param_groups[0]
            lrs.append(g["lr"])
            moms.append(g["betas"][0] if "betas" in g else g["momentum"])
            o.step()
            s.step()
        mine = [sched.lr_at(t) for t in range(1, steps + 1)]
        np.testing.assert_allclose(mine, lrs, rtol=1e-12, atol=1e-18, err_msg=f"{kind} {case}")
        if sched.cycles:
            np.testing.assert_allclose([sched.momentum_at(t) for t in range(1, steps + 1)],
                                       moms, rtol=1e-12, err_msg=f"{kind} momentum {case}")
        assert np.ptp(lrs) > 0  # a schedule that moved


def graddesc_case(kind: str, sched_kind: str, seed: int):
    rng = np.random.default_rng(100 * seed + KINDS.index(kind))
    n = int(rng.integers(6, 12))
    x = np.round(rng.uniform(-2, 2, n), 3)
    y = np.round(1.5 * x - 0.5 + rng.normal(0, 0.3, n), 3)
    lr = float(np.exp(rng.uniform(np.log(0.005), np.log(0.05))))
    h = {"lr": lr, "weight_decay": float(rng.choice([0.0, 0.03])),
         "beta2": float(rng.uniform(0.9, 0.999)), "momentum": 0.9}
    if kind == "nesterov":
        h["dampening"] = 0.0
    if kind == "rmsprop":
        h["momentum"] = 0.0
    opts = {"lr_max": float(lr * rng.uniform(1, 4)), **random_settings(rng, sched_kind)}
    return graddesc.make_lesson(x, y, optimizers=(kind,), preset="torch", epochs=EPOCHS,
                                b_init=float(rng.normal()), a_init=float(rng.normal()),
                                schedule=sched_kind, schedule_options=opts, **h)


CASES = [(k, "onecycle") for k in KINDS] + [(k, s) for k in ("sgd", "momentum", "adam")
                                            for s in ("step", "exp", "cosine")]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("schedules")
    out = {}
    for i, (kind, sched_kind) in enumerate(CASES):
        lesson = graddesc_case(kind, sched_kind, i)
        path = xlsx.write(graddesc.build(lesson), folder / f"{kind}-{sched_kind}.xlsx")
        want = torch_trace(kind, lesson.optimizers[kind], lesson.x, lesson.y, EPOCHS,
                           lesson.b_init, lesson.a_init, lesson.schedules[kind])
        out[(kind, sched_kind)] = (path, lesson, want)
    return out


@pytest.mark.parametrize("kind,sched_kind", CASES)
def test_graddesc_schedule_matches_torch_through_ironcalc(built, kind, sched_kind):
    path, lesson, (b, a, loss, lrs) = built[(kind, sched_kind)]
    report = verify.verify(path)
    assert report.ok, report.summary()
    assert any(c.name == "lr_trace" and c.ok for c in report.traces)
    wb = verify.recalculated(path)
    np.testing.assert_allclose(wb.values("lr_trace", kind), lrs, rtol=1e-12, atol=1e-18)
    for name, want in (("b_trace", b), ("a_trace", a), ("loss_trace", loss)):
        np.testing.assert_allclose(wb.values(name, kind), want, rtol=1e-9, atol=1e-12,
                                   err_msg=f"{kind} {sched_kind} {name}")
    assert np.ptp(lrs) > 0


def test_every_schedule_agrees_in_libreoffice(built, soffice, tmp_path):
    """IronCalc's values (checked above) and LibreOffice's, for every schedule and lesson."""
    paths = {key: built[key][0] for key in [("adam", "onecycle"), ("momentum", "onecycle"),
                                           ("sgd", "step"), ("adam", "exp"), ("sgd", "cosine")]}
    extra = {}
    for sched_kind in ("onecycle", "cosine"):
        X, labels = softmax.synthetic_blobs(12, 3, 2, 1)
        sm = softmax_book.make_lesson(X, labels, optimizer="adam", steps=8,
                                      schedule=sched_kind, schedule_options={"lr_max": 0.2})
        extra[("softmax", sched_kind)] = xlsx.write(softmax_book.build(sm),
                                                    tmp_path / f"softmax-{sched_kind}.xlsx")
        R, users, movies = collab.synthetic_ratings(5, 6, seed=2)
        cl = collab_book.make_lesson(R, users, movies, factors=2, optimizer="momentum",
                                     epochs=6, schedule=sched_kind)
        extra[("collab", sched_kind)] = xlsx.write(collab_book.build(cl),
                                                   tmp_path / f"collab-{sched_kind}.xlsx")
    everything = {**paths, **extra}
    outputs = libreoffice.recalculate(list(everything.values()), tmp_path / "lo")
    for (what, sched_kind), path, out in zip(everything, everything.values(), outputs):
        assert verify.verify(path).ok
        sheet = "train" if what in ("softmax", "collab") else what
        scoped = None if sheet == "train" else sheet
        ic = verify.recalculated(path)
        lo = openpyxl.load_workbook(out, data_only=True)
        for name in ("lr_trace", "loss_trace"):
            np.testing.assert_allclose(named_values(lo, name, scoped), ic.values(name, scoped),
                                       rtol=1e-9, err_msg=f"{what} {sched_kind} {name}")


def test_softmax_and_collab_schedules_match_torch(tmp_path):
    from torch_reference import softmax_torch_replay as torch_replay

    X, labels = softmax.synthetic_blobs(15, 3, 2, 4)
    for opt_kind in ("adam", "momentum", "nadam"):
        lesson = softmax_book.make_lesson(X, labels, optimizer=opt_kind, steps=12,
                                          schedule="onecycle", schedule_options={"lr_max": 0.3},
                                          momentum=0.9)
        path = xlsx.write(softmax_book.build(lesson), tmp_path / f"sm-{opt_kind}.xlsx")
        losses, W, b = torch_replay(lesson)
        wb = verify.recalculated(path)
        np.testing.assert_allclose(wb.values("loss_trace"), losses, rtol=1e-9)
        np.testing.assert_allclose(wb.values("W_final"), W.ravel(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(wb.values("bias_final"), b, rtol=1e-9, atol=1e-12)


def test_changing_a_schedule_input_redraws_the_schedule(built):
    """lr_max is a named input: set it in IronCalc and the lr column and training follow."""
    path, lesson, _ = built[("adam", "onecycle")]
    wb = verify.recalculated(path)
    before = wb.values("b_trace", "adam")
    si = wb.index["adam"]
    col = graddesc._hyper_names("adam", lesson.optimizers["adam"],
                                lesson.schedules["adam"]).index("lr_max")
    wb.model.set_user_input(si, 4, col + 1, "0.123")
    wb.model.evaluate()
    sched = schedules.Schedule(**{**lesson.schedules["adam"].__dict__, "lr_max": 0.123})
    want = [sched.lr_at(t) for t in range(1, sched.steps + 1)]
    np.testing.assert_allclose(wb.values("lr_trace", "adam"), want, rtol=1e-12)
    assert max(wb.values("lr_trace", "adam")) == pytest.approx(0.123, rel=0.02)
    assert np.max(np.abs(wb.values("b_trace", "adam") - before)) > 1e-3  # it retrained


def test_fastai_preset_follows_fit_one_cycle():
    """fastai's combined_cos, transcribed: pos = (t − 1)/N, phase 1 while pos < pct_start,
    SchedCos(start, end)(p) = start + (1 + cos(π(1 − p)))(end − start)/2; final lr_max/div_final."""
    def fastai_lr(t, n, lr_max, pct, div, div_final):
        pos = (t - 1) / n
        cos = lambda a, b, p: a + (1 + math.cos(math.pi * (1 - p))) * (b - a) / 2
        if pos < pct:
            return cos(lr_max / div, lr_max, pos / pct)
        return cos(lr_max, lr_max / div_final, (pos - pct) / (1 - pct))

    sched = schedules.make("onecycle", steps=200, optimizer="adam", lr=0.01, preset="fastai",
                           lr_max=0.01)
    assert (sched.pct_start, sched.div, sched.div_final) == (0.25, 25.0, 1e5)
    got = [sched.lr_at(t) for t in range(1, 201)]
    np.testing.assert_allclose(got, [fastai_lr(t, 200, 0.01, 0.25, 25.0, 1e5)
                                     for t in range(1, 201)], rtol=1e-15)
    assert got[0] == pytest.approx(0.01 / 25) and max(got) == pytest.approx(0.01, rel=1e-3)
    # fastai's last step is pos = (N − 1)/N < 1: close to, never at, lr_max/div_final
    assert 0.01 / 1e5 < got[-1] < 0.01 / 25 / 10 and got[-1] == min(got)
    # and the sheet computes the same, bit for bit in IronCalc
    x, y = np.arange(8.0), 2 * np.arange(8.0) + 1
    lesson = graddesc.make_lesson(x, y, optimizers=("adam",), preset="fastai", epochs=25,
                                  schedule="onecycle", schedule_options={"lr_max": 0.01})
    book = graddesc.build(lesson)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = xlsx.write(book, f"{d}/f.xlsx")
        assert verify.verify(path).ok
        np.testing.assert_allclose(verify.recalculated(path).values("lr_trace", "adam"), got,
                                   rtol=1e-14)


@pytest.mark.parametrize("bad,message", [
    ({"pct_start": 1.5}, "--pct-start must be between 0 and 1"),
    ({"pct_start": 0.001}, "leaves no warm-up step"),
    ({"gamma": -0.5}, "--gamma must be positive"),
])
def test_bad_schedule_settings_are_refused(bad, message):
    kind = "exp" if "gamma" in bad else "onecycle"
    with pytest.raises(ValueError, match=message):
        graddesc.make_lesson(np.arange(5.0), np.arange(5.0), optimizers=("sgd",),
                             schedule=kind, schedule_options=bad)
