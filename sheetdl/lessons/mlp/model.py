"""A two-layer network ŷ = W2·relu(W1·x + b1) + b2 and its backprop, trained full batch.

Every quantity of the chain rule is computed here in the order the sheet's formulas
compute it (sums left to right, as SUMPRODUCT and SUM run), so the cached values of
the workbook and ``sheetdl verify``'s replay are these numbers. Shapes follow torch's
``nn.Linear``: W1 is hidden × features, W2 outputs × hidden; θ packs W1 row by row, b1,
W2, b2, the order of ``nn.Sequential(Linear, ReLU, Linear).parameters()``.

The loss is torch's ``MSELoss``: the mean over examples of (ŷ − y)², one output. With
dropout p on the hidden layer (``mask``), ŷ reads a1·mask/(1 − p), torch's training mode;
the eval-mode prediction, beside it, reads a1 itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...math import dropout as inverted_dropout
from ...math import fullbatch
from ...math.cells import like_a_sheet
from ...math.optim import Optimizer
from ..softmax.model import seqsum


@dataclass(frozen=True)
class Shape:
    features: int
    hidden: int

    @property
    def size(self) -> int:
        """Parameters: W1 (h·d), b1 (h), W2 (h), b2 (1)."""
        return self.hidden * (self.features + 2) + 1

    def pack(self, W1, b1, W2, b2) -> np.ndarray:
        return np.concatenate([np.ravel(W1), np.ravel(b1), np.ravel(W2), np.ravel(b2)]
                              ).astype(float)

    def unpack(self, theta):
        h, d = self.hidden, self.features
        W1 = theta[:h * d].reshape(h, d)
        b1 = theta[h * d:h * d + h]
        W2 = theta[h * d + h:h * d + 2 * h].reshape(1, h)
        return W1, b1, W2, theta[-1:]


@dataclass
class Step:
    """Forward and backward at one parameter value; per-example arrays are (N, ·)."""

    z1: np.ndarray       # (N, h)  W1·x + b1
    a1: np.ndarray       # (N, h)  relu(z1)
    yhat: np.ndarray     # (N,)    W2·a1 + b2
    err: np.ndarray      # (N,)    ŷ − y
    loss_i: np.ndarray   # (N,)    (ŷ − y)²
    dyhat: np.ndarray    # (N,)    ∂L/∂ŷ = 2(ŷ − y)/N
    da1: np.ndarray      # (N, h)  ∂L/∂a1 = ∂L/∂ŷ · W2
    mask: np.ndarray     # (N, h)  1 where z1 > 0 (relu's derivative; 0 at the kink, as torch)
    dz1: np.ndarray      # (N, h)  ∂L/∂z1 = ∂L/∂a1 · mask
    active: np.ndarray   # (h,)    examples on which each unit is active
    dead: float          # units active on no example (NaN once z1 overflows)
    loss: float
    grad: np.ndarray     # ∂L/∂θ, packed as θ
    fd_plus: np.ndarray  # (N,)    each example's loss with W1[0, 0] + h
    fd_minus: np.ndarray  # (N,)   ... and with W1[0, 0] − h
    fd: float            # (mean fd_plus − mean fd_minus)/(2h): ∂L/∂W1[0, 0] numerically
    kept: np.ndarray     # (N, h)  a1·mask/(1 − p), what layer 2 reads (a1 without dropout)
    yhat_eval: np.ndarray  # (N,)  W2·a1 + b2: the network in eval mode (ŷ without dropout)
    loss_eval_i: np.ndarray  # (N,) (ŷ_eval − y)²
    loss_eval: float     # their mean: the loss with dropout switched off


def forward(shape: Shape, X, theta, mask=None, dropout: float = 0.0):
    """(z1, a1, kept, ŷ): z1 = x·W1ᵀ + b1, a1 = max(0, z1), kept = a1·mask/(1 − p) (a1
    without a mask), ŷ = kept·W2ᵀ + b2, sums left to right."""
    W1, b1, W2, b2 = shape.unpack(theta)
    z1 = seqsum(X[:, None, :] * W1[None, :, :], axis=2) + b1[None, :]
    a1 = np.maximum(0.0, z1)
    kept = inverted_dropout.apply(a1, mask, dropout)
    return z1, a1, kept, seqsum(kept * W2[0][None, :], axis=1) + b2[0]


def predict(shape: Shape, X, theta) -> np.ndarray:
    """ŷ for each row of X, #NUM! (NaN) where the sheet's would overflow."""
    X = np.asarray(X, float)
    return like_a_sheet(lambda wrap: forward(shape, X, wrap(theta))[3])


def forward_backward(shape: Shape, X, y, theta, fd_h: float, mask=None,
                     dropout: float = 0.0) -> Step:
    """One forward and backward pass, every intermediate kept.

    Forward: z1 = x·W1ᵀ + b1, a1 = max(0, z1), ŷ = a1·W2ᵀ + b2, L = mean (ŷ − y)².
    Backward (the chain rule, one factor per column of the sheet):
    ∂L/∂ŷ = 2(ŷ − y)/N; ∂L/∂W2 = Σ_i ∂L/∂ŷ_i·a1_i; ∂L/∂b2 = Σ_i ∂L/∂ŷ_i;
    ∂L/∂a1 = ∂L/∂ŷ·W2; ∂L/∂z1 = ∂L/∂a1·[z1 > 0]; ∂L/∂W1 = Σ_i ∂L/∂z1_i·x_iᵀ;
    ∂L/∂b1 = Σ_i ∂L/∂z1_i. With dropout (``mask`` (N, h), rate p) layer 2 reads
    a1·mask/(1 − p), so ∂L/∂a1 = ∂L/∂ŷ·W2·mask/(1 − p), the same mask on the way back.

    The finite difference nudges W1[0, 0] by ±h: only unit 0's activation moves, so
    ŷ moves by W2[0]·Δa1 and each example's loss is recomputed from that.
    """
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    n = X.shape[0]
    W1, b1, W2, b2 = shape.unpack(theta)
    z1, a1, kept, yhat = forward(shape, X, theta, mask, dropout)
    err = yhat - y
    loss_i = err ** 2
    dyhat = 2.0 * err / n
    da1 = inverted_dropout.apply(dyhat[:, None] * W2[0][None, :], mask, dropout)
    relu_mask = (z1 > 0).astype(float)  # NaN, #NUM!, where z1 overflowed (cells.Cells)
    dz1 = da1 * relu_mask
    gW1 = seqsum(dz1.T[:, None, :] * X.T[None, :, :], axis=2)   # (h, d)
    gb1 = seqsum(dz1.T, axis=1)
    gW2 = seqsum(dyhat[None, :] * kept.T, axis=1)                # (h,)
    gb2 = seqsum(dyhat)
    active = seqsum(relu_mask.T, axis=1)
    dead = float(np.sum(active == 0)) if np.all(np.isfinite(active)) else np.nan
    unit0 = None if mask is None else mask[:, 0]
    moved = lambda sign: (yhat + W2[0, 0] * (inverted_dropout.apply(
        np.maximum(0.0, z1[:, 0] + sign * fd_h * X[:, 0]), unit0, dropout)
        - kept[:, 0]) - y) ** 2
    fd_plus, fd_minus = moved(1.0), moved(-1.0)
    fd = (seqsum(fd_plus) / n - seqsum(fd_minus) / n) / (2 * fd_h)
    yhat_eval = yhat if mask is None else seqsum(a1 * W2[0][None, :], axis=1) + b2[0]
    loss_eval_i = loss_i if mask is None else (yhat_eval - y) ** 2
    return Step(z1, a1, yhat, err, loss_i, dyhat, da1, relu_mask, dz1, active, dead,
                float(seqsum(loss_i) / n),
                shape.pack(gW1, gb1, gW2, [gb2]), fd_plus, fd_minus, float(fd),
                kept, yhat_eval, loss_eval_i, float(seqsum(loss_eval_i) / n))


Trace = fullbatch.Trace


def train(opt: Optimizer, shape: Shape, X, y, theta0, steps: int, schedule=None,
          fd_h: float = 1e-4, keep=None, masks=None, dropout: float = 0.0) -> Trace:
    """Full-batch steps: each runs forward and backward on every example, then updates θ
    (``keep``: see ``fullbatch.train``); ``masks`` (steps, N, h): each step's dropout mask
    of the hidden units, kept ones scaled by 1/(1 − ``dropout``)."""
    per_step = iter(masks) if masks is not None else None

    def step(theta):
        mask = next(per_step) if per_step is not None else None
        st = forward_backward(shape, X, y, theta, fd_h, mask, dropout)
        return st, st.grad

    return fullbatch.train(opt, theta0, steps, step, schedule, keep)


def init_params(shape: Shape, seed: int) -> np.ndarray:
    """torch's ``nn.Linear`` default: weights and biases uniform in ±1/√fan_in, drawn from
    a seeded NumPy generator (W1, b1, W2, b2) and rounded to 4 decimals to read well."""
    rng = np.random.default_rng(seed)
    d, h = shape.features, shape.hidden
    u = lambda size, fan_in: rng.uniform(-1.0, 1.0, size) / np.sqrt(fan_in)
    return np.round(shape.pack(u((h, d), d), u(h, d), u((1, h), h), u(1, h)), 4)


def curve(points: int = 25, lo: float = -3.0, hi: float = 3.0):
    """The default data: y = sin(x) at evenly spaced x, rounded to 3 decimals."""
    x = np.round(np.linspace(lo, hi, points), 3)
    return x[:, None], np.round(np.sin(x), 3)
