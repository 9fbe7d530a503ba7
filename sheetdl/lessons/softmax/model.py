"""Softmax, cross-entropy and softmax regression trained full batch.

Every sum runs left to right (a cumulative sum), the order of SUMPRODUCT and
of a written-out ``a*b+c*d`` in a sheet. The log-softmax subtracts the row
maximum first, as torch does, so logits of ±1000 stay finite.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...math import cells, fullbatch
from ...math.optim import Optimizer


def seqsum(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Sum along ``axis`` strictly left to right (NumPy's sum is pairwise)."""
    return np.cumsum(a, axis=axis).take(-1, axis=axis)


@dataclass
class SoftmaxRows:
    """Every column of the softmax sheet, one row per example."""

    logits: np.ndarray
    max: np.ndarray
    shifted: np.ndarray
    exp: np.ndarray
    sum: np.ndarray
    probs: np.ndarray
    onehot: np.ndarray
    logp: np.ndarray
    loss: np.ndarray
    grad: np.ndarray
    loss_log10: np.ndarray


def softmax_rows(logits, targets) -> SoftmaxRows:
    """log p = (z − max) − ln Σ exp(z − max); loss = −log p[target]; ∂loss/∂z = p − y.

    ``loss_log10`` is what Excel's base-10 LOG gives: the loss divided by ln 10.
    """
    z = np.asarray(logits, float)
    t = np.asarray(targets, int)
    mx = z.max(axis=1)
    shifted = z - mx[:, None]
    e = cells.exp(shifted)
    s = seqsum(e, axis=1)
    p = e / s[:, None]
    onehot = (np.arange(z.shape[1])[None, :] == t[:, None]).astype(float)
    logp = shifted - cells.log(s)[:, None]
    loss = -seqsum(onehot * logp, axis=1)
    return SoftmaxRows(z, mx, shifted, e, s, p, onehot, logp, loss, p - onehot,
                       loss / np.log(10.0))


def cross_entropy(logits, targets) -> float:
    """Mean cross-entropy over rows, torch's F.cross_entropy default."""
    return float(np.mean(softmax_rows(logits, targets).loss))


@dataclass
class Step:
    """Forward and backward of softmax regression at one parameter value."""

    logits: np.ndarray   # (N, k)
    max: np.ndarray      # (N,)
    exp: np.ndarray      # (N, k): exp(z − max)
    sum: np.ndarray      # (N,)
    probs: np.ndarray    # (N, k)
    loss_i: np.ndarray   # (N,)
    correct: np.ndarray  # (N,) 1 where the target has the largest logit
    dlogits: np.ndarray  # (N, k): (p − onehot)/N
    loss: float
    accuracy: float
    grad_W: np.ndarray   # (k, d)
    grad_b: np.ndarray   # (k,)


def forward_backward(X, labels, W, b) -> Step:
    """logits z = X·Wᵀ + b; loss = mean_i (ln Σ_c exp(z_ic − m_i) − (z_i,y − m_i)).

    ∂L/∂z = (softmax(z) − onehot)/N; ∂L/∂W = (∂L/∂z)ᵀ·X; ∂L/∂b = Σ_i ∂L/∂z_i.
    """
    X = np.asarray(X, float)
    n = X.shape[0]
    z = seqsum(X[:, None, :] * W[None, :, :], axis=2) + b[None, :]
    mx = z.max(axis=1)
    shifted = z - mx[:, None]
    e = cells.exp(shifted)
    s = seqsum(e, axis=1)
    p = e / s[:, None]
    rows = np.arange(n)
    z_target = shifted[rows, labels]
    loss_i = cells.log(s) - z_target
    correct = (z_target == 0.0).astype(float)
    onehot = np.zeros_like(p)
    onehot[rows, labels] = 1.0
    dz = (p - onehot) / n
    grad_W = seqsum(dz.T[:, None, :] * X.T[None, :, :], axis=2)  # (k, d): Σ_i dz_ic·x_ij
    grad_b = seqsum(dz.T, axis=1)
    return Step(z, mx, e, s, p, loss_i, correct, dz, float(seqsum(loss_i) / n),
                float(seqsum(correct) / n), grad_W, grad_b)


def pack(W, b) -> np.ndarray:
    """θ = W row by row, then b: the order of the sheet's parameter matrix."""
    return np.concatenate([np.asarray(W, float).ravel(), np.asarray(b, float)])


def unpack(theta, k: int, d: int):
    return theta[:k * d].reshape(k, d), theta[k * d:]


Trace = fullbatch.Trace


def train(opt: Optimizer, X, labels, W0, b0, steps: int, schedule=None) -> Trace:
    """Full-batch steps: each uses all examples, then updates θ once. ``schedule``
    (``schedules.Schedule``) sets each step's lr and cycled momentum; ``shown``
    then carries them under their names."""
    X = np.asarray(X, float)
    labels = np.asarray(labels, int)
    k, d = np.shape(W0)

    def step(theta):
        st = forward_backward(X, labels, *unpack(theta, k, d))
        return st, pack(st.grad_W, st.grad_b)

    return fullbatch.train(opt, pack(W0, b0), steps, step, schedule)


def synthetic_blobs(rows: int = 30, classes: int = 3, features: int = 2, seed: int = 0):
    """Gaussian blobs around seeded centres; values rounded to 0.01 to read well."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-2.0, 2.0, (classes, features))
    labels = np.arange(rows) % classes
    X = np.round(centres[labels] + rng.normal(0.0, 0.6, (rows, features)), 2)
    return X, labels
