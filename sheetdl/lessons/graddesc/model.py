"""The graddesc model: pred = b + a·x, loss = (pred − y)², one sample per step.

``train`` runs an optimizer over the data in order for several epochs and
returns every intermediate of every step as arrays, the numbers a workbook row
shows. Parameters are the vector θ = (b, a).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...math.cells import like_a_sheet
from ...math.optim import Optimizer
from ...math.schedules import Anneal, Schedule, scheduled_values, stepping


def forward(b, a, x, y):
    """Prediction, error, loss and the analytic gradient of one sample.

    dL/db = 2·(b + a·x − y); dL/da = dL/db · x.
    """
    pred = b + a * x
    err = pred - y
    loss = err * err
    grad_b = 2.0 * err
    grad_a = grad_b * x
    return pred, err, loss, grad_b, grad_a


def finite_difference(b, a, x, y, h):
    """Central differences of the loss: exact for a quadratic up to rounding."""
    fd_b = ((b + h + a * x - y) ** 2 - (b - h + a * x - y) ** 2) / (2.0 * h)
    fd_a = ((b + (a + h) * x - y) ** 2 - (b + (a - h) * x - y) ** 2) / (2.0 * h)
    return fd_b, fd_a


@dataclass
class Trace:
    """Per-step arrays. ``shown[key]`` has shape (steps, 2) for per-parameter
    values (b, a) and (steps,) for per-step scalars; ``initial`` is step 0."""

    x: np.ndarray
    y: np.ndarray
    b: np.ndarray
    a: np.ndarray
    pred: np.ndarray
    err: np.ndarray
    loss: np.ndarray
    grad_b: np.ndarray
    grad_a: np.ndarray
    shown: dict[str, np.ndarray]
    initial: dict[str, object]
    #: the learning rate of each step, and per epoch the annealing proxy and its best
    lr: np.ndarray | None = None
    epoch_proxy: np.ndarray | None = None
    epoch_best: np.ndarray | None = None

    @property
    def b_trace(self):
        return self.shown["new"][:, 0]

    @property
    def a_trace(self):
        return self.shown["new"][:, 1]


def train(opt: Optimizer, x, y, *, epochs: int | None = None, b_init: float, a_init: float,
          drop_last_update: bool = False, schedule: Schedule | None = None,
          anneal: Anneal | None = None, steps: int | None = None) -> Trace:
    """Per-sample steps over (x, y) in order, ``epochs`` times (or ``steps`` steps).

    ``drop_last_update`` reproduces the course's VBA: each epoch after the
    first starts from the last row's *input* parameters, not its outputs;
    optimizer state carries over in full. ``schedule`` sets each step's lr
    (and a cycled momentum); ``anneal`` applies the course's per-epoch rule.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if steps is None:
        steps = len(x) * epochs
    # an overflow is #NUM! from there on, as in the sheet
    return like_a_sheet(lambda wrap: _train(opt, x, y, wrap([b_init, a_init]), steps,
                                            drop_last_update, schedule, anneal))


def _train(opt, x, y, params, steps, drop_last_update, schedule, anneal) -> Trace:
    n = len(x)
    state = opt.init(params)
    initial = {"new": params.copy(), **{k: v for k, v in state.items() if k != "t"}}
    order = np.arange(steps) % n
    xs, ys = x[order], y[order]
    cols = {k: np.empty(steps) for k in ("b", "a", "pred", "err", "loss", "grad_b", "grad_a")}
    shown: dict[str, list] = {}
    opt_at = stepping(opt, schedule)
    lr = np.empty(steps)
    epoch_lr, proxies, bests = opt.lr, [], []
    moment = Anneal.MOMENT[opt.name] if anneal is not None else None
    previous_inputs = params
    for i in range(steps):
        if i > 0 and i % n == 0:
            if drop_last_update:
                params = previous_inputs
            if anneal is not None:
                proxies.append(anneal.proxy(state[moment]))
                epoch_lr = anneal.next_lr(epoch_lr, proxies, bests)
        previous_inputs = params
        pred, err, loss, gb, ga = forward(params[0], params[1], xs[i], ys[i])
        for k, v in zip(cols, (params[0], params[1], pred, err, loss, gb, ga)):
            cols[k][i] = v
        step_opt = opt.replace(lr=epoch_lr) if anneal is not None else opt_at(i + 1)
        lr[i] = step_opt.lr
        params, state, step_shown = step_opt.update(params, np.array([gb, ga]), state)
        step_shown.update(scheduled_values(step_opt, schedule))
        for k, v in step_shown.items():
            shown.setdefault(k, []).append(v)
    if anneal is not None:
        proxies.append(anneal.proxy(state[moment]))
        anneal.next_lr(epoch_lr, proxies, bests)
    return Trace(x=xs, y=ys, **cols, shown={k: np.asarray(v) for k, v in shown.items()},
                 initial=initial, lr=lr,
                 epoch_proxy=np.asarray(proxies) if anneal is not None else None,
                 epoch_best=np.asarray(bests) if anneal is not None else None)


def train_full_batch(opt: Optimizer, x, y, *, steps: int, b_init: float, a_init: float,
                     schedule: Schedule | None = None) -> Trace:
    """Full-batch steps on the mean squared error over all of (x, y), as the lr
    finder's sheet computes them with SUMPRODUCT:

    L = Σ(b + a·x − y)²/n,  ∂L/∂b = 2·Σ(b + a·x − y)/n,  ∂L/∂a = 2·Σ(b + a·x − y)·x/n,

    summed in data order (as spreadsheet engines sum). ``x``, ``y``, ``pred`` and
    ``err`` of the returned trace are empty: no single sample belongs to a step.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(x)
    params = np.array([b_init, a_init], dtype=float)
    state = opt.init(params)
    initial = {"new": params.copy(), **{k: v for k, v in state.items() if k != "t"}}
    cols = {k: np.empty(steps) for k in ("b", "a", "loss", "grad_b", "grad_a")}
    shown: dict[str, list] = {}
    opt_at = stepping(opt, schedule)
    lr = np.empty(steps)
    xs, ys = x.tolist(), y.tolist()
    for i in range(steps):
        b, a = float(params[0]), float(params[1])
        err = [b + a * xi - yi for xi, yi in zip(xs, ys)]
        sq = ex = se = 0.0
        for e, xi in zip(err, xs):
            try:
                sq += e ** 2
            except OverflowError:  # Python's float power raises; the sheet shows #NUM!
                sq = math.inf
            se += e
            ex += e * xi
        for k, v in zip(cols, (b, a, sq / n, 2 * se / n, 2 * ex / n)):
            cols[k][i] = v
        step_opt = opt_at(i + 1)
        lr[i] = step_opt.lr
        params, state, step_shown = step_opt.update(
            params, np.array([cols["grad_b"][i], cols["grad_a"][i]]), state)
        for k, v in step_shown.items():
            shown.setdefault(k, []).append(v)
    empty = np.empty(0)
    return Trace(x=empty, y=empty, pred=empty, err=empty, **cols,
                 shown={k: np.asarray(v) for k, v in shown.items()}, initial=initial, lr=lr)
