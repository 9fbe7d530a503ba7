"""The graddesc model: pred = b + a·x, loss = (pred − y)², one sample per step.

``train`` runs an optimizer over the data in order for several epochs and
returns every intermediate of every step as arrays, the numbers a workbook row
shows. Parameters are the vector θ = (b, a).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .optim import Optimizer


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

    @property
    def b_trace(self):
        return self.shown["new"][:, 0]

    @property
    def a_trace(self):
        return self.shown["new"][:, 1]


def train(opt: Optimizer, x, y, *, epochs: int, b_init: float, a_init: float,
          drop_last_update: bool = False) -> Trace:
    """Per-sample steps over (x, y) in order, ``epochs`` times.

    ``drop_last_update`` reproduces the course's VBA: each epoch after the
    first starts from the last row's *input* parameters, not its outputs;
    optimizer state carries over in full.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(x)
    steps = n * epochs
    params = np.array([b_init, a_init], dtype=float)
    state = opt.init(params)
    initial = {"new": params.copy(), **{k: v for k, v in state.items() if k != "t"}}
    xs, ys = np.tile(x, epochs), np.tile(y, epochs)
    cols = {k: np.empty(steps) for k in ("b", "a", "pred", "err", "loss", "grad_b", "grad_a")}
    shown: dict[str, list] = {}
    previous_inputs = params
    for i in range(steps):
        if drop_last_update and i > 0 and i % n == 0:
            params = previous_inputs
        previous_inputs = params
        pred, err, loss, gb, ga = forward(params[0], params[1], xs[i], ys[i])
        for k, v in zip(cols, (params[0], params[1], pred, err, loss, gb, ga)):
            cols[k][i] = v
        params, state, step_shown = opt.update(params, np.array([gb, ga]), state)
        for k, v in step_shown.items():
            shown.setdefault(k, []).append(v)
    return Trace(x=xs, y=ys, **cols, shown={k: np.asarray(v) for k, v in shown.items()},
                 initial=initial)
