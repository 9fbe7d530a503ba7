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
    #: torch's ``BatchNorm1d`` on z1, before the ReLU: layer 1 then has no bias (β does its
    #: work, and b1's gradient would be rounding noise that Adam blows up to ±lr a step)
    batchnorm: bool = False

    @property
    def size(self) -> int:
        """Parameters: W1 (h·d), b1 (h) or γ and β (h each), W2 (h), b2 (1)."""
        return self.hidden * (self.features + 2 + self.batchnorm) + 1

    def pack(self, W1, b1, W2, b2, gamma=None, beta=None) -> np.ndarray:
        """θ in torch's ``parameters()`` order: W1, b1, W2, b2; with batch norm W1, γ, β,
        W2, b2 (``b1`` ignored)."""
        middle = [gamma, beta] if self.batchnorm else [b1]
        return np.concatenate([np.ravel(v) for v in [W1, *middle, W2, b2]]).astype(float)

    def parts(self, theta) -> dict[str, np.ndarray]:
        """W1 (h, d), b1 (h; zeros under batch norm), gamma and beta (h; None without),
        W2 (1, h), b2 (1,) as views of θ."""
        h, d = self.hidden, self.features
        W1 = theta[:h * d].reshape(h, d)
        at = h * d
        if self.batchnorm:
            gamma, beta, b1 = theta[at:at + h], theta[at + h:at + 2 * h], np.zeros(h)
            at += 2 * h
        else:
            gamma = beta = None
            b1 = theta[at:at + h]
            at += h
        return {"W1": W1, "b1": b1, "gamma": gamma, "beta": beta,
                "W2": theta[at:at + h].reshape(1, h), "b2": theta[-1:]}

    def unpack(self, theta):
        """(W1, b1, W2, b2) of a network without batch norm."""
        p = self.parts(theta)
        return p["W1"], p["b1"], p["W2"], p["b2"]


@dataclass(frozen=True)
class BatchNorm:
    """torch's ``BatchNorm1d`` settings: the running statistics' momentum and ε."""

    momentum: float = 0.1
    eps: float = 1e-5


@dataclass
class Normalised:
    """Batch norm's forward at one step, per unit (h,) or per example and unit (N, h)."""

    mean: np.ndarray      # (h,)   μ, the batch mean of z1
    centered: np.ndarray  # (N, h) z1 − μ
    var: np.ndarray       # (h,)   σ², the biased batch variance, mean (z1 − μ)²
    sd: np.ndarray        # (h,)   √(σ² + ε)
    xhat: np.ndarray      # (N, h) (z1 − μ)/√(σ² + ε)
    out: np.ndarray       # (N, h) γ·x̂ + β, what the ReLU reads


def normalise(z1, gamma, beta, eps: float) -> Normalised:
    n = z1.shape[0]
    mean = seqsum(z1, axis=0) / n
    centered = z1 - mean[None, :]
    var = seqsum(centered * centered, axis=0) / n
    sd = np.sqrt(var + eps)
    xhat = centered / sd[None, :]
    return Normalised(mean, centered, var, sd, xhat, gamma[None, :] * xhat + beta[None, :])


@dataclass
class Step:
    """Forward and backward at one parameter value; per-example arrays are (N, ·)."""

    z1: np.ndarray       # (N, h)  W1·x + b1
    a1: np.ndarray       # (N, h)  relu(z1), or relu(γ·x̂ + β) under batch norm
    yhat: np.ndarray     # (N,)    W2·a1 + b2
    err: np.ndarray      # (N,)    ŷ − y
    loss_i: np.ndarray   # (N,)    (ŷ − y)²
    dyhat: np.ndarray    # (N,)    ∂L/∂ŷ = 2(ŷ − y)/N
    da1: np.ndarray      # (N, h)  ∂L/∂a1 = ∂L/∂ŷ · W2
    mask: np.ndarray     # (N, h)  1 where the ReLU's input > 0 (0 at the kink, as torch)
    dz1: np.ndarray      # (N, h)  ∂L/∂z1 = ∂L/∂a1 · mask (through batch norm under it)
    active: np.ndarray   # (h,)    examples on which each unit is active
    dead: float          # units active on no example (NaN once z1 overflows)
    loss: float
    grad: np.ndarray     # ∂L/∂θ, packed as θ
    fd_plus: np.ndarray  # (N,)    each example's loss with W1[0, 0] + h
    fd_minus: np.ndarray  # (N,)   ... and with W1[0, 0] − h
    fd: float            # (mean fd_plus − mean fd_minus)/(2h): ∂L/∂W1[0, 0] numerically
    kept: np.ndarray     # (N, h)  a1·mask/(1 − p), what layer 2 reads (a1 without dropout)
    yhat_eval: np.ndarray  # (N,)  the network in eval mode: no dropout, running statistics
    loss_eval_i: np.ndarray  # (N,) (ŷ_eval − y)²
    loss_eval: float     # their mean
    # batch norm only (None without)
    bn: Normalised | None = None
    dbn: np.ndarray | None = None     # (N, h) ∂L/∂(γ·x̂ + β) = ∂L/∂a1 · mask
    dxhat: np.ndarray | None = None   # (N, h) ∂L/∂x̂ = ∂L/∂(γ·x̂ + β) · γ
    sum_dxhat: np.ndarray | None = None       # (h,) Σ_i ∂L/∂x̂
    sum_dxhat_xhat: np.ndarray | None = None  # (h,) Σ_i ∂L/∂x̂ · x̂
    a1_eval: np.ndarray | None = None  # (N, h) relu(γ·(z1 − running mean)/√(running var + ε) + β)
    running_mean: np.ndarray | None = None  # (h,) after this step's batch
    running_var: np.ndarray | None = None   # (h,) after this step's batch (unbiased σ²)
    fd_mean: tuple | None = None    # (μ, μ) of unit 1 with W1[0, 0] ± h
    fd_var: tuple | None = None     # (σ², σ²) of unit 1 with W1[0, 0] ± h
    fd_z: tuple | None = None       # ((N,), (N,)) unit 1's z1 with W1[0, 0] ± h
    fd_centered: tuple | None = None  # ... minus its nudged batch mean


def forward(shape: Shape, X, theta, mask=None, dropout: float = 0.0, eps: float = 1e-5):
    """(z1, a1, kept, ŷ, batch norm's forward or None): z1 = x·W1ᵀ + b1 (no b1 under batch
    norm), a1 = max(0, z1) or max(0, γ·x̂ + β), kept = a1·mask/(1 − p) (a1 without a
    mask), ŷ = kept·W2ᵀ + b2, sums left to right."""
    p = shape.parts(theta)
    z1 = seqsum(X[:, None, :] * p["W1"][None, :, :], axis=2)
    bn = None
    if shape.batchnorm:
        bn = normalise(z1, p["gamma"], p["beta"], eps)
        a1 = np.maximum(0.0, bn.out)
    else:
        z1 = z1 + p["b1"][None, :]
        a1 = np.maximum(0.0, z1)
    kept = inverted_dropout.apply(a1, mask, dropout)
    return z1, a1, kept, seqsum(kept * p["W2"][0][None, :], axis=1) + p["b2"][0], bn


def predict(shape: Shape, X, theta) -> np.ndarray:
    """ŷ for each row of X, #NUM! (NaN) where the sheet's would overflow."""
    X = np.asarray(X, float)
    return like_a_sheet(lambda wrap: forward(shape, X, wrap(theta))[3])


def forward_backward(shape: Shape, X, y, theta, fd_h: float, mask=None,
                     dropout: float = 0.0, norm: BatchNorm | None = None,
                     running=None) -> Step:
    """One forward and backward pass, every intermediate kept.

    Forward: z1 = x·W1ᵀ + b1, a1 = max(0, z1), ŷ = a1·W2ᵀ + b2, L = mean (ŷ − y)².
    Backward (the chain rule, one factor per column of the sheet):
    ∂L/∂ŷ = 2(ŷ − y)/N; ∂L/∂W2 = Σ_i ∂L/∂ŷ_i·a1_i; ∂L/∂b2 = Σ_i ∂L/∂ŷ_i;
    ∂L/∂a1 = ∂L/∂ŷ·W2; ∂L/∂z1 = ∂L/∂a1·[z1 > 0]; ∂L/∂W1 = Σ_i ∂L/∂z1_i·x_iᵀ;
    ∂L/∂b1 = Σ_i ∂L/∂z1_i. With dropout (``mask`` (N, h), rate p) layer 2 reads
    a1·mask/(1 − p), so ∂L/∂a1 = ∂L/∂ŷ·W2·mask/(1 − p), the same mask on the way back.

    Batch norm (``shape.batchnorm``, settings ``norm``, ``running`` the (mean, var) the
    step starts from): x̂ = (z1 − μ)/√(σ² + ε) with the batch's μ and biased σ², a1 =
    max(0, γ·x̂ + β). Back through it: g = ∂L/∂a1·[γ·x̂ + β > 0]; ∂L/∂γ = Σ_i g·x̂,
    ∂L/∂β = Σ_i g; ∂L/∂x̂ = g·γ; ∂L/∂z1 = (∂L/∂x̂ − Σ∂L/∂x̂/N − x̂·Σ(∂L/∂x̂·x̂)/N)/√(σ² + ε),
    the two sums because every example's z1 moves μ and σ². The running statistics move
    as torch's: mean ← (1 − m)·mean + m·μ, var ← (1 − m)·var + m·σ²·N/(N − 1).

    Eval mode (``yhat_eval``) is the network at the same weights with dropout off and, under
    batch norm, the running statistics the step starts from in place of the batch's.

    The finite difference nudges W1[0, 0] by ±h: only unit 0's activation moves (under
    batch norm through its nudged μ and σ²), so ŷ moves by W2[0]·Δa1 and each example's
    loss is recomputed from that.
    """
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    n = X.shape[0]
    p = shape.parts(theta)
    W2, b2 = p["W2"], p["b2"]
    norm = norm or BatchNorm()
    z1, a1, kept, yhat, bn = forward(shape, X, theta, mask, dropout, norm.eps)
    err = yhat - y
    loss_i = err ** 2
    dyhat = 2.0 * err / n
    da1 = inverted_dropout.apply(dyhat[:, None] * W2[0][None, :], mask, dropout)
    relu_in = z1 if bn is None else bn.out
    relu_mask = (relu_in > 0).astype(float)  # NaN, #NUM!, where z1 overflowed (cells.Cells)
    extra = {}
    if bn is None:
        dz1 = da1 * relu_mask
    else:
        dbn = da1 * relu_mask
        dxhat = dbn * p["gamma"][None, :]
        s1, s2 = seqsum(dxhat, axis=0), seqsum(dxhat * bn.xhat, axis=0)
        dz1 = (dxhat - s1[None, :] / n - bn.xhat * s2[None, :] / n) / bn.sd[None, :]
        mean0, var0 = running
        m = norm.momentum
        a1_eval = np.maximum(0.0, p["gamma"][None, :] * (z1 - mean0[None, :])
                             / np.sqrt(var0 + norm.eps)[None, :] + p["beta"][None, :])
        extra = dict(bn=bn, dbn=dbn, dxhat=dxhat, sum_dxhat=s1, sum_dxhat_xhat=s2,
                     a1_eval=a1_eval, running_mean=(1 - m) * mean0 + m * bn.mean,
                     running_var=(1 - m) * var0 + m * bn.var * n / (n - 1))
    gW1 = seqsum(dz1.T[:, None, :] * X.T[None, :, :], axis=2)   # (h, d)
    gW2 = seqsum(dyhat[None, :] * kept.T, axis=1)                # (h,)
    gb2 = seqsum(dyhat)
    if bn is None:
        grad = shape.pack(gW1, seqsum(dz1.T, axis=1), gW2, [gb2])
    else:
        grad = shape.pack(gW1, None, gW2, [gb2], gamma=seqsum((dbn * bn.xhat).T, axis=1),
                          beta=seqsum(dbn.T, axis=1))
    active = seqsum(relu_mask.T, axis=1)
    dead = float(np.sum(active == 0)) if np.all(np.isfinite(active)) else np.nan
    unit0 = None if mask is None else mask[:, 0]
    if bn is None:
        nudged = lambda sign: z1[:, 0] + sign * fd_h * X[:, 0]
    else:
        fz = tuple(z1[:, 0] + sign * fd_h * X[:, 0] for sign in (1.0, -1.0))
        fmean = tuple(seqsum(z) / n for z in fz)
        fc = tuple(z - mu for z, mu in zip(fz, fmean))
        fvar = tuple(seqsum(c * c) / n for c in fc)
        extra.update(fd_z=fz, fd_mean=fmean, fd_centered=fc, fd_var=fvar)
        g0, b0 = p["gamma"][0], p["beta"][0]
        nudged = lambda sign: (g0 * fc[sign < 0] / np.sqrt(fvar[sign < 0] + norm.eps) + b0)
    moved = lambda sign: (yhat + W2[0, 0] * (inverted_dropout.apply(
        np.maximum(0.0, nudged(sign)), unit0, dropout) - kept[:, 0]) - y) ** 2
    fd_plus, fd_minus = moved(1.0), moved(-1.0)
    fd = (seqsum(fd_plus) / n - seqsum(fd_minus) / n) / (2 * fd_h)
    if mask is None and bn is None:
        yhat_eval, loss_eval_i = yhat, loss_i
    else:
        a_eval = a1 if bn is None else extra["a1_eval"]
        yhat_eval = seqsum(a_eval * W2[0][None, :], axis=1) + b2[0]
        loss_eval_i = (yhat_eval - y) ** 2
    return Step(z1, a1, yhat, err, loss_i, dyhat, da1, relu_mask, dz1, active, dead,
                float(seqsum(loss_i) / n), grad, fd_plus, fd_minus, float(fd),
                kept, yhat_eval, loss_eval_i, float(seqsum(loss_eval_i) / n), **extra)


Trace = fullbatch.Trace


def param_groups(shape: Shape, opt: Optimizer, lr_layer1: float | None = None,
                 freeze_steps: int = 0) -> list[fullbatch.ParamGroup] | None:
    """torch's parameter groups, one per matrix of the sheet (θ's slices in order): layer 1
    (and batch norm, the body) at ``lr_layer1`` and frozen for ``freeze_steps``, layer 2 at
    ``opt``'s rate; None when every parameter trains alike."""
    if lr_layer1 is None and not freeze_steps:
        return None
    h, d = shape.hidden, shape.features
    body = opt if lr_layer1 is None else opt.replace(lr=lr_layer1)
    bounds = [("layer 1", 0, h * d + (0 if shape.batchnorm else h))]
    if shape.batchnorm:
        bounds.append(("batch norm", h * d, h * d + 2 * h))
    groups = [fullbatch.ParamGroup(name, a, b, body, freeze_steps) for name, a, b in bounds]
    return groups + [fullbatch.ParamGroup("layer 2", bounds[-1][2], shape.size, opt)]


def train(opt: Optimizer, shape: Shape, X, y, theta0, steps: int, schedule=None,
          fd_h: float = 1e-4, keep=None, masks=None, dropout: float = 0.0,
          norm: BatchNorm | None = None, groups=None) -> Trace:
    """Full-batch steps: each runs forward and backward on every example, then updates θ
    (``keep``: see ``fullbatch.train``); ``masks`` (steps, N, h): each step's dropout mask
    of the hidden units, kept ones scaled by 1/(1 − ``dropout``); under batch norm
    (``shape.batchnorm``) the running statistics start at torch's 0 and 1; ``groups``
    (``fullbatch.ParamGroup``) give layers their own rates or freeze them."""
    per_step = iter(masks) if masks is not None else None
    h = shape.hidden
    running = [(np.zeros(h), np.ones(h))]

    def step(theta):
        mask = next(per_step) if per_step is not None else None
        st = forward_backward(shape, X, y, theta, fd_h, mask, dropout, norm, running[0])
        if shape.batchnorm:
            running[0] = (st.running_mean, st.running_var)
        return st, st.grad

    return fullbatch.train(opt, theta0, steps, step, schedule, keep, groups)


def init_params(shape: Shape, seed: int) -> np.ndarray:
    """torch's ``nn.Linear`` default: weights and biases uniform in ±1/√fan_in, drawn from
    a seeded NumPy generator (W1, b1, W2, b2) and rounded to 4 decimals to read well; under
    batch norm γ = 1 and β = 0 (``BatchNorm1d``'s start) and b1 is drawn but not used, so
    a seed gives the same W1, W2 and b2 with batch norm or without."""
    rng = np.random.default_rng(seed)
    d, h = shape.features, shape.hidden
    u = lambda size, fan_in: rng.uniform(-1.0, 1.0, size) / np.sqrt(fan_in)
    W1, b1, W2, b2 = u((h, d), d), u(h, d), u((1, h), h), u(1, h)
    return np.round(shape.pack(W1, b1, W2, b2, gamma=np.ones(h), beta=np.zeros(h)), 4)


def curve(points: int = 25, lo: float = -3.0, hi: float = 3.0):
    """The default data: y = sin(x) at evenly spaced x, rounded to 3 decimals."""
    x = np.round(np.linspace(lo, hi, points), 3)
    return x[:, None], np.round(np.sin(x), 3)
