"""A convolutional network and its backprop, trained full batch:
images → 3×3 convolution (K kernels, a bias each) → ReLU → 2×2 max-pool → flatten →
dense layer to C classes → softmax → cross-entropy.

Every quantity is computed in the order the sheet's formulas compute it (a SUMPRODUCT
over a window row by row, sums left to right), so the workbook's cached values and
``sheetdl verify``'s replay are these numbers. Shapes and packing follow torch's
``nn.Conv2d(1, K, 3)`` then ``nn.Linear(K·P·Q, C)``: θ holds conv.weight (K, 1, 3, 3),
conv.bias (K), linear.weight (C, K·P·Q) over ``flatten`` of the (K, P, Q) pooled maps,
and linear.bias (C), the order of ``model.parameters()``.

Max-pool's gradient goes to the window's first maximum in row-major order (top-left,
top-right, bottom-left, bottom-right), equal meaning equal to ``TIE_DECIMALS`` decimals:
torch's CPU kernel routes an exact tie to the first maximum, so with ties (an all-zero
window after the ReLU, integer images and kernels) the sheet routes as torch.
An odd map's last row or column is dropped, as ``F.max_pool2d`` floors.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...math import cells, fullbatch
from ...math import dropout as inverted_dropout
from ...math.optim import Optimizer
from ..softmax.model import SoftmaxRows, seqsum, softmax_rows

#: the kernel's side: a 3×3 convolution, as the course's sheet
TAP = 3
#: What one SHEETDL.CONV_TRAIN call (and a ``--udf`` workbook of its calls) takes: a 3×3
#: kernel and a 2×2 pool need 4 pixels a side; past 64 a call is a job; and its work,
#: steps × images × pixels × kernels × (9 + classes), before any of it is done
CALL_MIN_SIDE, CALL_MAX_SIDE, CALL_MAX_KERNELS, CALL_MAX_CLASSES = 4, 64, 16, 10
CALL_MAX_WORK = 2_000_000_000
#: the max-pool's side and stride
POOL = 2
#: Decimals to which a pool window's cells are compared with its max to find where the
#: gradient goes. Spreadsheets compare numbers with a tolerance (IronCalc to 15 significant
#: digits, LibreOffice to 2⁻⁴⁸ relative), so cells a few ulps apart, as sums of the same
#: numbers in another order are, would tie in one engine and not in another; ROUND to 9
#: decimals makes the tie the same everywhere. Cells equal in exact arithmetic then route to
#: the first, as torch routes an exact tie; only values closer than 1e-9 but not equal route
#: otherwise than torch's (whose own choice there depends on its summation order).
TIE_DECIMALS = 9


@dataclass(frozen=True)
class Shape:
    height: int
    width: int
    kernels: int
    classes: int

    @property
    def conv(self) -> tuple[int, int]:
        """A feature map's rows and columns: a 3×3 kernel fits H − 2 times down."""
        return self.height - TAP + 1, self.width - TAP + 1

    @property
    def pooled(self) -> tuple[int, int]:
        """The pooled map's rows and columns (floored, as ``F.max_pool2d``)."""
        return self.conv[0] // POOL, self.conv[1] // POOL

    @property
    def features(self) -> int:
        """Inputs of the dense layer: K pooled maps, flattened."""
        p, q = self.pooled
        return self.kernels * p * q

    @property
    def size(self) -> int:
        k, c = self.kernels, self.classes
        return k * TAP * TAP + k + c * self.features + c

    def offsets(self) -> dict[str, int]:
        """Where each of torch's parameters starts in θ."""
        k, c = self.kernels, self.classes
        return {"K": 0, "kb": k * TAP * TAP, "Wd": k * TAP * TAP + k,
                "bd": k * TAP * TAP + k + c * self.features}

    def pack(self, K, kb, Wd, bd) -> np.ndarray:
        return np.concatenate([np.ravel(K), np.ravel(kb), np.ravel(Wd), np.ravel(bd)]
                              ).astype(float)

    def unpack(self, theta):
        o, k, c = self.offsets(), self.kernels, self.classes
        return (theta[:o["kb"]].reshape(k, TAP, TAP), theta[o["kb"]:o["Wd"]],
                theta[o["Wd"]:o["bd"]].reshape(c, self.features), theta[o["bd"]:])


@dataclass
class Step:
    """Forward and backward at one θ; per-image arrays lead with the image."""

    a: np.ndarray        # (N, K, Hc, Wc) relu(conv + bias)
    pool: np.ndarray     # (N, K, P, Q)   max of each 2×2 window of a
    which: np.ndarray    # (N, K, P, Q)   1..4: the window cell the gradient goes to
    flat: np.ndarray     # (N, F)         pool flattened (k, p, q), torch's flatten
    dropped: np.ndarray  # (N, F)         flat · mask / (1 − p): the dense layer's input
    soft: SoftmaxRows    # logits, max, exp, Σ, p, loss per image
    correct: np.ndarray  # (N,) 1 where the target's logit is the largest
    dlogits: np.ndarray  # (N, C) ∂L/∂logits = (p − onehot)/N
    dpool: np.ndarray    # (N, K, P, Q) ∂L/∂pool = Σ_c ∂L/∂logit_c · Wd[c, f]
    dz: np.ndarray       # (N, K, 2P, 2Q) ∂L/∂(conv + bias): dpool at the routed cell if a > 0
    loss: float
    accuracy: float
    grad: np.ndarray     # ∂L/∂θ, packed as θ
    fd_flat: np.ndarray  # (2, N, P·Q) kernel 1's pooled map with its top-left tap ± h
    fd_logits: np.ndarray  # (2, N, C) the logits from them
    fd_loss: np.ndarray  # (2, N) each image's loss with the tap + h, − h
    fd: float            # (mean loss₊ − mean loss₋)/(2h): ∂L/∂K[1,1,1] numerically


def call_work(steps: int, n: int, shape: Shape) -> int:
    """The work bound of one conv_train call (``CALL_MAX_WORK``)."""
    return steps * n * shape.height * shape.width * shape.kernels * (TAP ** 2 + shape.classes)


def windows(images, shape: Shape) -> np.ndarray:
    """(N, Hc, Wc, 9): each output cell's 3×3 input window, row by row."""
    hc, wc = shape.conv
    win = np.lib.stride_tricks.sliding_window_view(images, (TAP, TAP), axis=(1, 2))
    return win[:, :hc, :wc].reshape(len(images), hc, wc, TAP * TAP)


def _conv(images, K, kb, shape):
    """conv + bias per kernel, SUMPRODUCT(window, kernel) + b: (N, K, Hc, Wc)."""
    win = windows(images, shape)
    taps = K.reshape(shape.kernels, TAP * TAP)
    return seqsum(win[:, None] * taps[None, :, None, None, :], axis=-1) + kb[None, :, None, None]


def _pool_windows(a, shape):
    """(N, K, P, Q, 4): each pool window's cells TL, TR, BL, BR."""
    n, k = a.shape[:2]
    p, q = shape.pooled
    w = a[:, :, :POOL * p, :POOL * q].reshape(n, k, p, POOL, q, POOL)
    return w.transpose(0, 1, 2, 4, 3, 5).reshape(n, k, p, q, POOL * POOL)


def _unpool(per_window, shape):
    """(N, K, P, Q, 4) back to the (N, K, 2P, 2Q) cells they came from."""
    n, k, p, q, _ = per_window.shape
    return per_window.reshape(n, k, p, q, POOL, POOL).transpose(0, 1, 2, 4, 3, 5).reshape(
        n, k, POOL * p, POOL * q)


def _route(equal) -> np.ndarray:
    """1 to 4, the first window cell equal to its max, as the sheet's nested
    IF(TL=m,1,IF(TR=m,2,IF(BL=m,3,4))): #NUM! (NaN) once a cell it compares is #NUM!
    (``equal`` is then ``cells.Cells``' NaN), and the bottom-right never compared."""
    compared = POOL * POOL - 1
    hit = cells.plain(equal).astype(float)[..., :compared]
    found = hit == 1
    first = np.where(found.any(axis=-1), np.argmax(found, axis=-1), compared)
    unknown = np.cumsum(np.isnan(hit), axis=-1)
    read = np.minimum(first, compared - 1)[..., None]  # the last cell the IFs compared
    which = np.where(np.take_along_axis(unknown, read, axis=-1)[..., 0] > 0, np.nan, first + 1.0)
    return cells.cells(which) if isinstance(equal, cells.Cells) else which


def forward(shape: Shape, images, theta, mask=None, dropout: float = 0.0):
    """(a, pool, which, flat, dropped, logits); ``mask`` (N, F) of 0s and 1s drops pooled
    features, the kept ones scaled by 1/(1 − dropout) (torch's inverted dropout)."""
    K, kb, Wd, bd = shape.unpack(theta)
    a = np.maximum(0.0, _conv(images, K, kb, shape))
    win = _pool_windows(a, shape)
    pool = win.max(axis=-1)
    # the first cell equal to the max to TIE_DECIMALS (argmax of a boolean is its first
    # True): torch's CPU max_pool2d routes an exact tie to the first maximum too
    which = _route(np.round(win, TIE_DECIMALS) == np.round(pool, TIE_DECIMALS)[..., None])
    flat = pool.reshape(len(images), shape.features)
    dropped = inverted_dropout.apply(flat, mask, dropout)
    logits = seqsum(dropped[:, None, :] * Wd[None], axis=2) + bd[None, :]
    return a, pool, which, flat, dropped, logits


def predict(shape: Shape, images, theta) -> np.ndarray:
    """Class probabilities of each image."""
    images = np.asarray(images, float).reshape(-1, shape.height, shape.width)
    return cells.like_a_sheet(lambda wrap: softmax_rows(
        forward(shape, images, wrap(theta))[5], np.zeros(len(images), int)).probs)


def forward_backward(shape: Shape, images, labels, theta, fd_h: float, mask=None,
                     dropout: float = 0.0) -> Step:
    """One forward and backward pass, every intermediate kept.

    Backward, one chain-rule factor per region of the sheet: ∂L/∂logits = (p − onehot)/N;
    ∂L/∂Wd = Σ_n ∂L/∂logits_n · flat_nᵀ, ∂L/∂bd = Σ_n ∂L/∂logits_n; ∂L/∂pool = Wdᵀ·∂L/∂logits;
    the pool routes it to its window's first maximum and the ReLU passes it where a > 0:
    ∂L/∂z; ∂L/∂K[k,u,v] = Σ_n Σ_ij ∂L/∂z[n,k,i,j] · x[n, i+u, j+v]; ∂L/∂b_k = Σ ∂L/∂z[·,k].

    The finite difference nudges kernel 1's top-left tap by ±h: each of its
    pre-activations moves by ±h times its window's top-left pixel, so its pooled map is
    max(0, max over the window of (z ± h·x)); the logits and losses follow from it.
    """
    images = np.asarray(images, float)
    labels = np.asarray(labels, int)
    n, (p, q) = len(images), shape.pooled
    K, kb, Wd, bd = shape.unpack(theta)
    a, pool, which, flat, dropped, logits = forward(shape, images, theta, mask, dropout)
    soft = softmax_rows(logits, labels)
    correct = (logits[np.arange(n), labels] == soft.max).astype(float)
    dlogits = (soft.probs - soft.onehot) / n
    dflat = seqsum(dlogits[:, :, None] * Wd[None], axis=1)
    if mask is not None:  # back through the dropout: the same mask, the same scale
        dflat = inverted_dropout.apply(dflat, mask, dropout)
    dpool = dflat.reshape(n, shape.kernels, p, q)
    routed = np.arange(1, POOL * POOL + 1) == which[..., None]
    live = a[:, :, :POOL * p, :POOL * q] > 0
    # AND(route = pos, a > 0) as numbers: #NUM! (NaN, from cells.Cells' comparisons) in
    # either makes the cell #NUM!, as the sheet's IF(AND(...)) does
    both = _unpool(routed, shape) * live
    dz = np.where(np.isnan(both), np.nan,
                  np.where(both == 1, np.repeat(np.repeat(dpool, POOL, axis=2), POOL, axis=3),
                           0.0))
    hz, wz = POOL * p, POOL * q
    gK = np.empty((shape.kernels, TAP, TAP))
    for u in range(TAP):
        for v in range(TAP):
            x = images[:, u:u + hz, v:v + wz]
            per_image = seqsum((dz * x[:, None]).reshape(n, shape.kernels, -1), axis=2)
            gK[:, u, v] = seqsum(per_image, axis=0)
    gkb = seqsum(dz.transpose(1, 0, 2, 3).reshape(shape.kernels, -1), axis=1)
    gWd = seqsum(dlogits.T[:, None, :] * dropped.T[None, :, :], axis=2)
    gbd = seqsum(dlogits.T, axis=1)
    fd_flat, fd_logits, fd_loss = _finite_difference(shape, images, labels, K, kb, Wd, bd,
                                                     dropped, fd_h, mask, dropout)
    fd = (seqsum(fd_loss[0]) / n - seqsum(fd_loss[1]) / n) / (2 * fd_h)
    return Step(a, pool, which, flat, dropped, soft, correct, dlogits, dpool, dz,
                float(seqsum(soft.loss) / n), float(seqsum(correct) / n),
                shape.pack(gK, gkb, gWd, gbd), fd_flat, fd_logits, fd_loss, float(fd))


def _finite_difference(shape, images, labels, K, kb, Wd, bd, dropped, h, mask, dropout):
    """Kernel 1's pooled map (after dropout), the logits and each image's loss with
    K[1,1,1] ± h."""
    n, (p, q) = len(images), shape.pooled
    z = _conv(images, K[:1], kb[:1], Shape(shape.height, shape.width, 1, shape.classes))
    corner = images[:, :shape.conv[0], :shape.conv[1]][:, None]  # each window's top-left
    pq = p * q
    out_flat, out_logits, out_loss = [], [], []
    for sign in (1.0, -1.0):
        moved = _pool_windows(z + sign * h * corner, shape).max(axis=-1)
        f = np.maximum(0.0, moved).reshape(n, pq)
        if mask is not None:
            f = inverted_dropout.apply(f, mask[:, :pq], dropout)
        lg = seqsum(f[:, None, :] * Wd[None, :, :pq], axis=2)
        if shape.kernels > 1:
            lg = lg + seqsum(dropped[:, None, pq:] * Wd[None, :, pq:], axis=2)
        lg = lg + bd[None, :]
        m = lg.max(axis=1)
        s = seqsum(cells.exp(lg - m[:, None]), axis=1)
        out_flat.append(f)
        out_logits.append(lg)
        out_loss.append(cells.log(s) - (lg[np.arange(n), labels] - m))
    return np.array(out_flat), np.array(out_logits), np.array(out_loss)


Trace = fullbatch.Trace


def train(opt: Optimizer, shape: Shape, images, labels, theta0, steps: int, schedule=None,
          fd_h: float = 1e-4, keep=None, masks=None, dropout: float = 0.0) -> Trace:
    """Full-batch steps (``keep``: see ``fullbatch.train``); ``masks`` (steps, N, F): each
    step's dropout mask of the pooled features, kept ones scaled by 1/(1 − ``dropout``)."""
    images = np.asarray(images, float).reshape(-1, shape.height, shape.width)
    per_step = iter(masks) if masks is not None else None

    def step(theta):
        mask = next(per_step) if per_step is not None else None
        st = forward_backward(shape, images, labels, theta, fd_h, mask, dropout)
        return st, st.grad

    return fullbatch.train(opt, theta0, steps, step, schedule, keep)


#: the 2022 course's hand-set edge filters: a horizontal edge, then a vertical one
EDGES = (np.array([[1, 1, 1], [0, 0, 0], [-1, -1, -1]], float),
         np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], float))


def init_params(shape: Shape, seed: int, kernel_init: str = "random") -> np.ndarray:
    """torch's defaults for ``Conv2d`` and ``Linear``: uniform in ±1/√fan_in (fan_in 9 for a
    kernel, K·P·Q for the dense layer), drawn from a seeded NumPy generator in θ's order and
    rounded to 4 decimals to read well. ``kernel_init="edges"``: the first kernels are the
    course's edge filters (their biases 0), the rest as drawn."""
    rng = np.random.default_rng(seed)
    k, c, f = shape.kernels, shape.classes, shape.features
    u = lambda size, fan_in: rng.uniform(-1.0, 1.0, size) / np.sqrt(fan_in)
    K, kb = u((k, TAP, TAP), TAP * TAP), u(k, TAP * TAP)
    Wd, bd = u((c, f), f), u(c, f)
    if kernel_init == "edges":
        for i, edge in enumerate(EDGES[:k]):
            K[i], kb[i] = edge, 0.0
    return np.round(shape.pack(K, kb, Wd, bd), 4)


#: 8×8 glyphs of the built-in data, one per class: a zero, a one, a seven, a four
GLYPHS = {
    "0": ["..####..", ".#....#.", "#......#", "#......#",
          "#......#", "#......#", ".#....#.", "..####.."],
    "1": ["...##...", "..###...", ".#.##...", "...##...",
          "...##...", "...##...", "...##...", ".######."],
    "7": ["########", "......#.", ".....#..", "....#...",
          "...#....", "..#.....", "..#.....", "..#....."],
    "4": ["....##..", "...#.#..", "..#..#..", ".#...#..",
          "########", ".....#..", ".....#..", ".....#.."],
}


def _shift(picture, dy: int, dx: int) -> np.ndarray:
    """``picture`` moved down ``dy`` and right ``dx`` pixels, blank where it moved from."""
    out = np.zeros_like(picture)
    h, w = picture.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        picture[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def glyph_images(images: int, classes: int, seed: int):
    """The default data: ``images`` 8×8 pictures cycling through the first ``classes``
    glyphs, each shifted by up to a pixel, its ink faded and a little noise added (seeded),
    values 0..1 rounded to 2 decimals. Returns (images (N, 8, 8), labels, class names)."""
    rng = np.random.default_rng(seed)
    names = list(GLYPHS)[:classes]
    out, labels = [], []
    for i in range(images):
        label = i % classes
        ink = np.array([[ch == "#" for ch in row] for row in GLYPHS[names[label]]], float)
        dy, dx = (0, 0) if i < classes else rng.integers(-1, 2, size=2)
        ink = _shift(ink, dy, dx)
        picture = ink * rng.uniform(0.7, 1.0) + rng.uniform(0.0, 0.15, ink.shape)
        out.append(np.clip(np.round(picture, 2), 0.0, 1.0))
        labels.append(label)
    return np.array(out), np.array(labels), names
