"""Excel functions of the sheetdl add-in, one module for every xlwings runtime.

Excel names: ``=SHEETDL.ADAM_STEP(...)`` under xlwings Server and Lite (the
SHEETDL namespace), ``=SHEETDL_ADAM_STEP(...)`` in classic xlwings on Windows
(VBA has no namespaces). Python names are the plain ones below; importing this module
changes nothing. Each runtime's entry point applies its own decorators with
``decorate``: ``addin/classic.py`` (the classic add-in's UDF module) and the xlwings
Server project's ``custom_functions``.

Policy, the same on every runtime:
- numeric arguments arrive as 2-D float arrays; an empty or error cell is NaN
  and is refused with a message naming the argument and the cell (except in
  ``ratings``, where a blank is an unrated movie, and in ``velocity``, where an
  all-empty range means "no momentum buffer yet", torch's first step);
- results are 2-D; a result that would hold ±inf or NaN is refused with a
  message ("the result overflowed ... lower lr") instead of returning numbers
  Excel cannot show (Office.js cannot carry inf at all);
- a bad argument raises UdfError (a ValueError and an xlwings XlwingsError), whose
  message Excel shows in the cell (#VALUE! with the message under Office.js,
  which xlwings Server sends as HTTP 400 so Excel does not retry).
"""
from __future__ import annotations


import numpy as np

from ..lessons import collab as collab_lesson, conv as conv_lesson, graddesc as graddesc_lesson
from ..lessons import mlp as mlp_lesson
from ..lessons.collab import model as collab
from ..lessons.conv import model as conv
from ..lessons.mlp import model as mlp
from ..lessons.graddesc import compiled
from . import kernels
from ..math import dropout as inverted_dropout
from ..math import optim, presets
from ..lessons.data import EXCEL_MAX_ROWS
from ..sheet.formulas import ADDIN_NAMESPACE as NAMESPACE, addin_function, out_of_range

try:  # xlwings shows an XlwingsError's message in the cell (Server: HTTP 400, no retry)
    from xlwings import XlwingsError as _ShownError
except Exception:  # xlwings not installed: plain calls, e.g. from Python or the tests
    _ShownError = Exception


class UdfError(ValueError, _ShownError):
    """A bad argument or an overflowing result, with a message for the cell."""


# --------------------------------------------------------------------------- checks

def _matrix(value, name: str, allow_nan: bool = False) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):  # text, a blank given as "", ragged rows
        a = _blanks_as_nan(value)
        if a is None:
            raise UdfError(f"{name} must be a range of numbers") from None
    if a.ndim == 0:
        a = a.reshape(1, 1)
    elif a.ndim == 1:
        a = a.reshape(1, -1)
    if a.size == 0:
        raise UdfError(f"{name} is empty")
    if not allow_nan and not np.all(np.isfinite(a)):
        r, c = np.argwhere(~np.isfinite(a))[0]
        raise UdfError(f"{name} has an empty, error or non-finite cell at row {r + 1}, "
                         f"column {c + 1} of the range")
    return a


def _blanks_as_nan(value) -> np.ndarray | None:
    """A range whose blanks arrive as "" or None and whose error cells as "#N/A"-like text
    (as the runtimes send them), with NaN for each, which the callers then refuse or read
    as unrated; None if anything else in it is not a number or the rows are ragged."""
    def cell(c):
        if c is None or (isinstance(c, str) and (not c.strip() or c.startswith("#"))):
            return np.nan
        if isinstance(c, dict) and c.get("type") == "Error":  # Office.js's, passed raw
            return np.nan
        return float(c)

    seq = (list, tuple, np.ndarray)
    if not isinstance(value, seq) or isinstance(value, np.ndarray) and value.ndim == 0:
        value = [[value]]  # one cell, given as a scalar
    elif not any(isinstance(row, seq) for row in value):
        value = [value]  # one row, as xlwings Server passes a single row of cells
    try:
        rows = [[cell(c) for c in (row if isinstance(row, seq) else [row])] for row in value]
        return np.asarray(rows, dtype=float)
    except (TypeError, ValueError):
        return None


def _missing(value) -> bool:
    """Not given: None (omitted), "" (an empty argument or cell) or NaN (empty cell)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and np.isnan(value))


def _number(value, name: str, positive: bool = False, default=None) -> float:
    if _missing(value):
        if default is None:
            raise UdfError(f"{name} is required")
        return float(default)
    cells = np.asarray(value, dtype=object).reshape(-1)
    if cells.size != 1:  # the first of several would be taken without a word
        raise UdfError(f"{name} must be one cell, got {cells.size} cells")
    if isinstance(cells[0], (bool, np.bool_)):  # Excel's TRUE is no 1 in arithmetic here
        raise UdfError(f"{name} must be a number, got {str(bool(cells[0])).upper()}")
    try:
        v = float(cells[0])
    except (TypeError, ValueError, OverflowError):
        shown = repr(cells[0])
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise UdfError(f"{name} must be a number, got {shown}") from None
    if not np.isfinite(v) or (positive and v <= 0):
        raise UdfError(f"{name} must be a {'positive ' if positive else ''}finite number, "
                         f"got {v}")
    bad = out_of_range(name, v)  # the range torch checks, as the sheets' validation does
    if bad:
        raise UdfError(f"{name} {v:g}: {bad}")
    return v


def _whole(value, name: str, default=None, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole-number argument (epochs, factors, a seed, a step)."""
    v = _number(value, name, default=default)
    if v != int(v) or v < minimum or (maximum is not None and v > maximum):
        top = f" to {maximum:,}" if maximum is not None else ""
        raise UdfError(f"{name} must be a whole number from {minimum}{top}, got {v:g}")
    return int(v)


def _flag(value, name: str, default: bool = False) -> bool:
    """TRUE/FALSE as Excel passes it (a bool), or as text or 1/0: "FALSE" is not true."""
    if _missing(value):
        return default
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    if isinstance(value, str):
        text = value.strip().upper()
        if text in ("TRUE", "FALSE"):
            return text == "TRUE"
        raise UdfError(f"{name} must be TRUE or FALSE, got {value!r}")
    if value in (0, 1):
        return bool(value)
    raise UdfError(f"{name} must be TRUE or FALSE, got {value!r}")


def _optimizer(value) -> str:
    """An optimizer's name, as the registry spells it."""
    kind = str(value).strip().lower()
    if kind not in optim.REGISTRY:
        raise UdfError(f"optimizer must be one of {', '.join(optim.NAMES)}, got {value!r}")
    return kind


def _preset(value) -> str:
    name = str(value).strip().lower()
    if name not in presets.PRESETS:
        raise UdfError(f"preset must be one of {', '.join(presets.PRESETS)}, got {value!r}")
    return name


def _budget(nbytes: float, what: str) -> None:
    """Refuse, before allocating, a call whose memory would pass ``MAX_CALL_BYTES``."""
    if nbytes > MAX_CALL_BYTES:
        raise UdfError(f"{what} would take about {nbytes / 2**20:,.0f} MB, past the "
                       f"{MAX_CALL_BYTES // 2**20:,} MB a call may use")


def _same_shape(ref: np.ndarray, **others) -> None:
    for name, a in others.items():
        if a.shape != ref.shape:
            raise UdfError(f"{name} is {a.shape[0]}×{a.shape[1]} but params is "
                             f"{ref.shape[0]}×{ref.shape[1]}")


def _finite(result: np.ndarray, what: str = "the result") -> np.ndarray:
    if not np.all(np.isfinite(result)):
        r, c = np.argwhere(~np.isfinite(result))[0]
        raise UdfError(f"{what} overflowed (inf or NaN) at row {r + 1}, column {c + 1}: "
                         "lower lr")
    return result


def _on(backend, *arrays):
    if isinstance(backend, np.ndarray):
        backend = backend.reshape(-1)[0]
    name = None if _missing(backend) else str(backend).strip().lower()
    if name not in (None, "numpy", "cupy"):
        raise UdfError(f'backend must be "numpy" or "cupy" (or empty), got {backend!r}')
    xp = kernels.backend(name)
    return xp, [xp.asarray(a) for a in arrays]


def _host(a) -> np.ndarray:
    return a.get() if hasattr(a, "get") else np.asarray(a)


# --------------------------------------------------------------------------- functions

def softmax(logits, backend=None):
    """Softmax of each row of logits (the row max is subtracted first)."""
    z = _matrix(logits, "logits")
    xp, (z,) = _on(backend, z)
    return _finite(_host(kernels.softmax(z, axis=1)))


def cross_entropy(logits, targets):
    """Mean cross-entropy of logits (one row per example) against 0-based target classes."""
    z = _matrix(logits, "logits")
    t = _matrix(targets, "targets").reshape(-1)
    if t.size != z.shape[0]:
        raise UdfError(f"targets has {t.size} values for {z.shape[0]} rows of logits")
    if np.any(t != np.round(t)) or t.min() < 0 or t.max() >= z.shape[1]:
        raise UdfError(f"targets must be whole numbers from 0 to {z.shape[1] - 1}")
    return float(kernels.cross_entropy(z, t.astype(np.int64)))


def sgd_step(params, grads, lr, weight_decay=0.0, backend=None):
    """One torch.optim.SGD step: params − lr·(grads + weight_decay·params)."""
    p, g = _matrix(params, "params"), _matrix(grads, "grads")
    _same_shape(p, grads=g)
    lr, wd = _number(lr, "lr", positive=True), _number(weight_decay, "weight_decay", default=0)
    xp, (p, g) = _on(backend, p, g)
    with np.errstate(all="ignore"):
        return _finite(_host(kernels.sgd_step(p, g, lr, wd)))


def momentum_step(params, grads, velocity, lr, momentum=0.9, dampening=0.0, nesterov=False):
    """One torch SGD-with-momentum step; returns new params and velocity side by side.

    An all-empty velocity range is torch's first step (the buffer becomes the gradient).
    """
    p, g = _matrix(params, "params"), _matrix(grads, "grads")
    v = _matrix(velocity, "velocity", allow_nan=True)
    _same_shape(p, grads=g, velocity=v)
    first = bool(np.all(np.isnan(v)))
    if not first:
        v = _matrix(velocity, "velocity")
    new, buf = kernels.momentum_step(
        p, g, np.nan_to_num(v), _number(lr, "lr", positive=True),
        _number(momentum, "momentum", default=0.9), _number(dampening, "dampening", default=0),
        _flag(nesterov, "nesterov"), first=first)
    return _finite(np.hstack([new, buf]))


def rmsprop_step(params, grads, square_avg, lr, alpha=0.99, eps=1e-8):
    """One torch.optim.RMSprop step; returns new params and square_avg side by side."""
    p, g, v = (_matrix(params, "params"), _matrix(grads, "grads"),
               _matrix(square_avg, "square_avg"))
    _same_shape(p, grads=g, square_avg=v)
    new, v = kernels.rmsprop_step(p, g, v, _number(lr, "lr", positive=True),
                                  _number(alpha, "alpha", default=0.99),
                                  _number(eps, "eps", default=1e-8))
    return _finite(np.hstack([new, v]))


def adam_step(params, grads, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999,
              eps=1e-8, weight_decay=0.0, backend=None):
    """One torch.optim.Adam step at 1-based step; returns new params, exp_avg and
    exp_avg_sq side by side."""
    p, g = _matrix(params, "params"), _matrix(grads, "grads")
    m, v = _matrix(exp_avg, "exp_avg"), _matrix(exp_avg_sq, "exp_avg_sq")
    _same_shape(p, grads=g, exp_avg=m, exp_avg_sq=v)
    t = _whole(step, "step")
    xp, arrays = _on(backend, p, g, m, v)
    new, m, v = kernels.adam_step(*arrays, t, _number(lr, "lr", positive=True),
                                  _number(beta1, "beta1", default=0.9),
                                  _number(beta2, "beta2", default=0.999),
                                  _number(eps, "eps", default=1e-8),
                                  _number(weight_decay, "weight_decay", default=0))
    return _finite(np.hstack([_host(new), _host(m), _host(v)]))


TRAIN_HEADER = ["step", "epoch", "x", "y", "b", "a", "pred", "loss", "dL/db", "dL/da",
                "new b", "new a"]


def train_linear(x, y, optimizer="sgd", lr=None, epochs=1, preset="torch", b_init=1.0,
                 a_init=1.0, momentum=None, beta1=None, beta2=None, eps=None,
                 weight_decay=None):
    """The whole graddesc trajectory (one sample per step) as a table with a header row."""
    xs = _matrix(x, "x").reshape(-1)
    ys = _matrix(y, "y").reshape(-1)
    if xs.size != ys.size:
        raise UdfError(f"x has {xs.size} values and y has {ys.size}")
    # one row per step and a header: bound the work before it is done
    e = _whole(epochs, "epochs", maximum=max(1, (EXCEL_MAX_ROWS - 1) // xs.size))
    kind = _optimizer(optimizer)
    # the trace's 12 columns as arrays, then as the lists and JSON the answer is made of
    _budget(xs.size * e * TABLE_BYTES_PER_VALUE * len(TRAIN_HEADER),
            f"{xs.size:,} rows × {e:,} epochs")
    given = {"lr": lr, "momentum": momentum, "beta1": beta1, "beta2": beta2, "eps": eps,
             "weight_decay": weight_decay}
    given = {k: _number(v, k) for k, v in given.items() if not _missing(v)}
    given.setdefault("lr", graddesc_lesson.LEARNING_RATES[kind])
    opt, _ = presets.resolve(_preset(preset), kind, **given)
    with np.errstate(all="ignore"):
        tr = compiled.train(opt, xs, ys, epochs=e, b_init=_number(b_init, "b_init", default=1),
                            a_init=_number(a_init, "a_init", default=1))
    steps = np.arange(1, tr.loss.size + 1)
    table = np.column_stack([steps, (steps - 1) // xs.size + 1, tr.x, tr.y, tr.b, tr.a,
                             tr.pred, tr.loss, tr.grad_b, tr.grad_a, tr.b_trace, tr.a_trace])
    _finite(table, "training")
    return [TRAIN_HEADER] + table.tolist()


def collab_predict(user_factors, movie_factors, user_bias, movie_bias, y_min=None, y_max=None):
    """Predicted ratings: user factors (users × f) · movie factors (f × movies) + biases,
    squashed into (y_min, y_max) by a sigmoid when both are given."""
    U, V = _matrix(user_factors, "user_factors"), _matrix(movie_factors, "movie_factors")
    bu = _matrix(user_bias, "user_bias").reshape(-1)
    bm = _matrix(movie_bias, "movie_bias").reshape(-1)
    if U.shape[1] != V.shape[0]:
        raise UdfError(f"user_factors has {U.shape[1]} factors, movie_factors {V.shape[0]} rows")
    if bu.size != U.shape[0] or bm.size != V.shape[1]:
        raise UdfError("user_bias needs one value per user and movie_bias one per movie")
    with np.errstate(all="ignore"):
        return _finite(collab.predict(U, bu, V, bm, _range(y_min, y_max)))


def _range(y_min, y_max):
    if _missing(y_min) and _missing(y_max):
        return None
    lo, hi = _number(y_min, "y_min"), _number(y_max, "y_max")
    if not lo < hi:
        raise UdfError(f"y_min must be below y_max, got {lo} and {hi}")
    return lo, hi


def collab_train(ratings, factors=5, epochs=20, lr=None, weight_decay=0.0, seed=0,
                 optimizer="adam", y_min=0.0, y_max=5.5):
    """Train matrix factorisation on a ratings range (blank = unrated), full batch, as the
    collab workbook does; returns epoch, MSE and RMSE per epoch with a header row."""
    R = _matrix(ratings, "ratings", allow_nan=True)
    if not np.isfinite(R).any():
        raise UdfError("ratings has no ratings")
    kind = _optimizer(optimizer)
    # the factors and optimizer state are a few arrays of (users + movies) × factors
    f = _whole(factors, "factors", maximum=max(1, MAX_PARAMETERS // (R.shape[0] + R.shape[1])))
    shape = collab.Shape(R.shape[0], R.shape[1], f)
    opt, _ = presets.resolve("torch", kind,
                             lr=_number(lr, "lr", positive=True,
                                        default=collab_lesson.LEARNING_RATES[kind]),
                             weight_decay=_number(weight_decay, "weight_decay", default=0))
    theta0 = collab.init_params(shape, _whole(seed, "seed", default=0, minimum=0))
    n_epochs = _whole(epochs, "epochs", maximum=MAX_EPOCHS)
    if n_epochs * R.size > MAX_WORK:
        raise UdfError(f"{n_epochs:,} epochs × {R.size:,} ratings cells is past the "
                       f"{MAX_WORK:,} a call may take; use fewer epochs")
    y_range = _range(y_min, y_max)
    with np.errstate(all="ignore"):
        if R.size * f > DENSE_LIMIT:  # the formula-shaped math would not fit in memory
            users, movies = np.nonzero(np.isfinite(R))
            _, losses = collab.train_sparse(opt, users, movies, R[users, movies], theta0, shape,
                                            n_epochs, y_range)
        else:
            losses = collab.train(opt, R, theta0, shape, n_epochs, y_range,
                                  keep=lambda st: st.loss).steps
    table = np.array([[t + 1, loss, np.sqrt(loss)] for t, loss in enumerate(losses)])
    _finite(table, "training")
    return [["epoch", "MSE", "RMSE"]] + table.tolist()


def mlp_train(x, y, hidden=6, steps=100, lr=None, optimizer="adam", seed=0, weight_decay=None,
              output="loss", dropout=None, batchnorm=None, lr_layer1=None, freeze_steps=None,
              bn_momentum=None, bn_eps=None):
    """Train ŷ = W2·relu(W1·x + b1) + b2 full batch on x (examples × features) and y, from
    torch's nn.Linear start drawn with ``seed``, as the mlp workbook does. ``output``
    "loss": step, MSE and dead ReLUs per step, with a header row; "params": the trained
    network, one row per unit (W1 | b1 | W2) and a last row with b2 in its W2 column.
    ``dropout`` p: inverted dropout on the hidden units with the masks the workbook draws
    (``sheetdl build mlp --dropout p --seed seed``); "loss" then adds the eval-mode MSE.
    ``batchnorm`` TRUE: torch's BatchNorm1d on z1 (``bn_momentum``, default 0.1, ``bn_eps``,
    default 1e-5; layer 1 without a bias), as ``--batchnorm``; "params" then gives
    W1 | γ | β | W2 per unit, "loss" the eval-mode MSE (running statistics).
    ``lr_layer1``: layer 1's own rate (``--lr LO:HI``); ``freeze_steps`` N: only layer 2
    trains for the first N steps (``--freeze-steps``)."""
    X = _matrix(x, "x")
    ys = _matrix(y, "y").reshape(-1)
    if X.shape[0] != ys.size:
        if X.shape[1] == ys.size and X.shape[0] == 1:  # a row of 1-feature examples
            X = X.T
        else:
            raise UdfError(f"x has {X.shape[0]} examples (rows) and y has {ys.size} values")
    kind = _optimizer(optimizer)
    h = _whole(hidden, "hidden", maximum=max(1, MAX_PARAMETERS // (X.shape[1] + 2)))
    n_steps = _whole(steps, "steps", maximum=MAX_EPOCHS)
    if n_steps * X.size * h > MAX_WORK:
        raise UdfError(f"{n_steps:,} steps × {X.shape[0]:,} examples × {h:,} units is past "
                       f"the {MAX_WORK:,} a call may take; use fewer steps or units")
    p = 0.0 if _missing(dropout) else _number(dropout, "dropout")  # checked by its rule
    # one step's intermediates (z1, a1, the mask, their gradients: ~16 examples × units
    # arrays), with dropout every step's masks, and the answer's columns a step
    _budget(X.shape[0] * h * 16 * 8 + (n_steps * X.shape[0] * h * 8 if p else 0)
            + n_steps * 4 * TABLE_BYTES_PER_VALUE,
            f"{X.shape[0]:,} examples × {h:,} units × {n_steps:,} steps")
    what = str(output).strip().lower()
    if what not in ("loss", "params"):
        raise UdfError(f'output must be "loss" or "params", got {output!r}')
    given = {"lr": _number(lr, "lr", positive=True, default=mlp_lesson.LEARNING_RATES[kind])}
    if not _missing(weight_decay):  # else the optimizer's own (adamw: 0.01), as the lesson
        given["weight_decay"] = _number(weight_decay, "weight_decay")
    opt, _ = presets.resolve("torch", kind, **given)
    bn = _flag(batchnorm, "batchnorm")
    if bn and X.shape[0] < 2:
        raise UdfError("batchnorm needs at least 2 examples: one has no batch variance")
    given_bn = {k: v for k, v in (("bn_momentum", bn_momentum), ("bn_eps", bn_eps))
                if not _missing(v)}
    if given_bn and not bn:
        raise UdfError(f"{' and '.join(given_bn)} set batch norm: give batchnorm TRUE too")
    norm = mlp.BatchNorm(**{k[3:]: _number(v, k) for k, v in given_bn.items()}) if bn else None
    shape = mlp.Shape(X.shape[1], h, bn)
    seed = _whole(seed, "seed", default=0, minimum=0)
    theta0 = mlp.init_params(shape, seed)
    lr1 = None if _missing(lr_layer1) else _number(lr_layer1, "lr_layer1", positive=True)
    frozen = _whole(freeze_steps, "freeze_steps", default=0, minimum=0, maximum=n_steps - 1)
    masks = inverted_dropout.draw(n_steps, X.shape[0], h, p, seed) if p else None
    with np.errstate(all="ignore"):
        tr = mlp.train(opt, shape, X, ys, theta0, n_steps, masks=masks, dropout=p, norm=norm,
                       keep=lambda st: (st.loss, st.dead, st.loss_eval),
                       groups=mlp.param_groups(shape, opt, lr1, frozen))
    evaluated = masks is not None or bn
    if what == "params":
        final = shape.parts(tr.theta[-1])
        middle = [final["gamma"], final["beta"]] if bn else [final["b1"]]
        table = np.column_stack([final["W1"], *middle, final["W2"][0]])
        b2 = final["b2"]
        last = np.full((1, table.shape[1]), np.nan)
        last[0, -1] = b2[0]
        _finite(table, "training")
        return table.tolist() + [["" if np.isnan(v) else float(v) for v in last[0]]]
    table = np.array([[t + 1, loss, dead] + [eval_loss] * evaluated
                      for t, (loss, dead, eval_loss) in enumerate(tr.steps)])
    _finite(table, "training")
    return [["step", "MSE", "dead ReLUs"] + ["eval MSE"] * evaluated] + table.tolist()


def mlp_predict(x, W1, b1, W2, b2):
    """ŷ = W2·relu(W1·x + b1) + b2 for each example (row) of x: W1 is units × features
    (torch's Linear.weight), b1 and W2 one value per unit, b2 one value."""
    X = _matrix(x, "x")
    w1 = _matrix(W1, "W1")
    if w1.shape[1] == 1 and X.shape[0] == 1 and X.shape[1] > 1:  # a row of 1-feature examples
        X = X.T
    bias1 = _matrix(b1, "b1").reshape(-1)
    w2 = _matrix(W2, "W2").reshape(-1)
    bias2 = _matrix(b2, "b2").reshape(-1)
    h, d = w1.shape
    if X.shape[1] != d:
        raise UdfError(f"x has {X.shape[1]} features (columns) but W1 has {d}")
    if bias1.size != h or w2.size != h or bias2.size != 1:
        raise UdfError(f"W1 has {h} units: b1 and W2 need {h} values each and b2 one")
    if X.size * h > MAX_WORK:  # the N × units × features temporaries
        raise UdfError(f"{X.shape[0]:,} examples × {d:,} features × {h:,} units is past the "
                       f"{MAX_WORK:,} a call may take")

    shape = mlp.Shape(d, h)
    return _finite(mlp.predict(shape, X, shape.pack(w1, bias1, w2, bias2)).reshape(-1, 1))


#: conv_train's sizes (the model's, which a --udf conv workbook is held to as well)
CONV_MIN_SIDE, CONV_MAX_SIDE = conv.CALL_MIN_SIDE, conv.CALL_MAX_SIDE
CONV_MAX_KERNELS, CONV_MAX_CLASSES = conv.CALL_MAX_KERNELS, conv.CALL_MAX_CLASSES


def _images(images, height, name: str = "images"):
    """(N, H, W) from one image per row (its pixels row by row), H from ``height`` or the
    square the pixel count makes."""
    X = _matrix(images, name)
    pixels = X.shape[1]
    if _missing(height):
        side = int(round(pixels ** 0.5))
        if side * side != pixels:
            raise UdfError(f"{name} has {pixels} pixels a row, not a square: give height")
        h = side
    else:
        h = _whole(height, "height", minimum=CONV_MIN_SIDE, maximum=CONV_MAX_SIDE)
        if pixels % h:
            raise UdfError(f"{name} has {pixels} pixels a row, not a multiple of height {h}")
    w = pixels // h
    if not (CONV_MIN_SIDE <= h <= CONV_MAX_SIDE and CONV_MIN_SIDE <= w <= CONV_MAX_SIDE):
        raise UdfError(f"images of {h}×{w}: each side must be from {CONV_MIN_SIDE} to "
                       f"{CONV_MAX_SIDE}")
    return X.reshape(X.shape[0], h, w)


def conv_train(images, labels, kernels=2, steps=40, lr=None, optimizer="adam", seed=0,
               output="loss", dropout=None, kernel_init="random", height=None):
    """Train the conv lesson's network full batch: 3×3 convolution with ``kernels`` kernels
    and biases → ReLU → 2×2 max-pool → dense → softmax → cross-entropy, from the start
    ``sheetdl build conv`` draws with ``seed`` (``kernel_init`` "edges": the 2022 course's
    edge filters first). ``images``: one image per row, pixels row by row (``height`` when
    not square); ``labels``: each image's class, 0 to C − 1. ``output`` "loss": step, loss
    and accuracy per step; "kernels": each kernel's 9 taps and its bias; "dense": each
    class's weights over the flattened pooled maps and its bias. ``dropout`` p: the
    workbook's masks from ``seed``."""

    X = _images(images, height)
    n = X.shape[0]
    ys = _matrix(labels, "labels").reshape(-1)
    if ys.size != n:
        raise UdfError(f"images has {n} rows and labels {ys.size} values")
    if not np.all((ys == np.round(ys)) & (ys >= 0)):
        raise UdfError("labels must be whole class numbers from 0")
    classes = int(ys.max()) + 1
    if not 2 <= classes <= CONV_MAX_CLASSES:
        raise UdfError(f"labels name {classes} classes; 2 to {CONV_MAX_CLASSES} are taken")
    k = _whole(kernels, "kernels", maximum=CONV_MAX_KERNELS)
    n_steps = _whole(steps, "steps", maximum=MAX_EPOCHS)
    kind = _optimizer(optimizer)
    what = str(output).strip().lower()
    if what not in ("loss", "kernels", "dense"):
        raise UdfError(f'output must be "loss", "kernels" or "dense", got {output!r}')
    init = str(kernel_init).strip().lower()
    if init not in ("random", "edges"):
        raise UdfError(f'kernel_init must be "random" or "edges", got {kernel_init!r}')
    shape = conv.Shape(X.shape[1], X.shape[2], k, classes)
    pixels = X.shape[1] * X.shape[2]
    if conv.call_work(n_steps, n, shape) > conv.CALL_MAX_WORK:
        raise UdfError(f"{n_steps:,} steps × {n:,} images of {pixels:,} pixels × {k} kernels is "
                       f"past the {conv.CALL_MAX_WORK:,} a call may take; use fewer steps or "
                       "images")
    p = 0.0 if _missing(dropout) else _number(dropout, "dropout")
    # one step's intermediates (windows, maps, routes and their gradients: ~40 arrays of
    # images × kernels × pixels), with dropout every step's masks, and the answer's rows
    _budget(n * k * pixels * 40 * 8 + (n_steps * n * shape.features * 8 if p else 0)
            + n_steps * 3 * TABLE_BYTES_PER_VALUE,
            f"{n:,} images × {pixels:,} pixels × {k} kernels × {n_steps:,} steps")
    opt, _ = presets.resolve("torch", kind, lr=_number(
        lr, "lr", positive=True, default=conv_lesson.LEARNING_RATES[kind]))
    seed = _whole(seed, "seed", default=0, minimum=0)
    theta0 = conv.init_params(shape, seed, init)
    masks = inverted_dropout.draw(n_steps, n, shape.features, p, seed) if p else None
    with np.errstate(all="ignore"):
        tr = conv.train(opt, shape, X, ys.astype(int), theta0, n_steps, masks=masks, dropout=p,
                        keep=lambda st: (st.loss, st.accuracy))
    if what == "loss":
        table = np.array([[t + 1, loss, acc] for t, (loss, acc) in enumerate(tr.steps)])
        _finite(table, "training")
        return [["step", "loss", "accuracy"]] + table.tolist()
    K, kb, Wd, bd = shape.unpack(tr.theta[-1])
    table = (np.column_stack([K.reshape(k, -1), kb]) if what == "kernels"
             else np.column_stack([Wd, bd]))
    return _finite(table, "training").tolist()


def conv_predict(images, kernels, kernel_bias, dense, dense_bias, height=None):
    """Class probabilities of each image (one per row, as conv_train takes them) under the
    conv network with ``kernels`` (one per row, its 9 taps row by row), their biases, the
    dense weights (one row per class, over the flattened pooled maps) and biases: what the
    conv workbook's K_final, kb_final, Wd_final and bd_final hold."""

    X = _images(images, height)
    K = _matrix(kernels, "kernels")
    if K.shape[1] != conv.TAP ** 2:
        raise UdfError(f"kernels must have {conv.TAP ** 2} columns (the 3×3 taps), got "
                       f"{K.shape[1]}")
    kb = _matrix(kernel_bias, "kernel_bias").reshape(-1)
    Wd = _matrix(dense, "dense")
    bd = _matrix(dense_bias, "dense_bias").reshape(-1)
    shape = conv.Shape(X.shape[1], X.shape[2], K.shape[0], Wd.shape[0])
    if kb.size != shape.kernels:
        raise UdfError(f"{shape.kernels} kernels need {shape.kernels} biases, got {kb.size}")
    if Wd.shape[1] != shape.features or bd.size != shape.classes:
        raise UdfError(f"dense must be classes × {shape.features} (the pooled features of "
                       f"{shape.kernels} kernel(s)) with one bias per class, got "
                       f"{Wd.shape[0]} × {Wd.shape[1]} and {bd.size} biases")
    if X.shape[0] * X.shape[1] * X.shape[2] * shape.kernels * conv.TAP ** 2 > MAX_WORK:
        raise UdfError(f"{X.shape[0]:,} images is past the {MAX_WORK:,} a call may take")
    _budget(X.size * shape.kernels * 40 * 8, f"{X.shape[0]:,} images × {shape.kernels} kernels")
    theta = shape.pack(K.reshape(-1, conv.TAP, conv.TAP), kb, Wd, bd)
    with np.errstate(all="ignore"):
        return _finite(conv.predict(shape, X, theta))


#: collab_train's bounds, checked before any allocation: parameters (a few float64 arrays
#: of them, ~80 MB each at the limit), epochs, and epochs × ratings cells of work
MAX_PARAMETERS = 10_000_000
MAX_EPOCHS = EXCEL_MAX_ROWS - 1
MAX_WORK = 2_000_000_000

#: the memory one call may use, estimated from its arguments before any allocation: two
#: calls run at once (server_guard.RUNNING), so the server stays under 2 GB
MAX_CALL_BYTES = 640 * 2**20
#: a returned number: 8 bytes in an array, 32 as a Python float in a list, ~20 as JSON
TABLE_BYTES_PER_VALUE = 60

#: users × movies × factors above which collab_train uses the sparse path
DENSE_LIMIT = 2_000_000

PUBLIC = ["softmax", "cross_entropy", "sgd_step", "momentum_step", "rmsprop_step", "adam_step",
          "train_linear", "collab_predict", "collab_train", "mlp_train", "mlp_predict",
          "conv_train", "conv_predict"]


# --------------------------------------------------------------------------- decorators

_ARRAYS = {"logits", "targets", "params", "grads", "velocity", "square_avg", "exp_avg",
           "exp_avg_sq", "x", "y", "user_factors", "movie_factors", "user_bias", "movie_bias",
           "ratings", "W1", "b1", "W2", "b2", "images", "labels", "kernels", "kernel_bias",
           "dense", "dense_bias"}


def _off_the_loop(f):
    """``f`` as a coroutine that runs it in a worker thread: xlwings Server awaits a
    coroutine function, so a long call (train_linear on a million rows) no longer blocks
    the event loop, and every other request is answered meanwhile."""
    import asyncio
    import functools
    import inspect

    @functools.wraps(f)
    async def threaded(*args, **kwargs):
        return await asyncio.to_thread(f, *args, **kwargs)

    # xlwings reads argument names and defaults from the signature, not __wrapped__
    threaded.__signature__ = inspect.signature(f)
    return threaded


def _as_json(f):
    """``f`` returning what JSON holds: lists of rows, floats; an array of one dimension is
    one row, as xlwings writes it."""
    import functools
    import inspect

    def plain(result):
        if isinstance(result, np.ndarray):
            return result.tolist() if result.ndim != 1 else [result.tolist()]
        return float(result) if isinstance(result, np.generic) else result

    if inspect.iscoroutinefunction(f):
        @functools.wraps(f)
        async def converted(*args, **kwargs):
            return plain(await f(*args, **kwargs))
    else:
        @functools.wraps(f)
        def converted(*args, **kwargs):
            return plain(f(*args, **kwargs))
    converted.__signature__ = inspect.signature(f)
    return converted


#: The xlwings runtimes: classic (Windows desktop, VBA wrappers named SHEETDL_NAME),
#: xlwings Server and xlwings Lite (Office.js custom functions, SHEETDL.NAME)
RUNTIMES = ("classic", "server", "lite")


def excel_name(name: str, runtime: str) -> str:
    """How a formula calls public function ``name`` under ``runtime``."""
    return addin_function(name, "classic" if runtime == "classic" else "office")


def decorate(func, arg, ret, runtime: str) -> dict:
    """Apply a runtime's xlwings decorators to every public function.

    Classic xlwings names functions SHEETDL_NAME (VBA has no namespaces) and converts
    each array argument to a 2-D array. The Office.js runtimes put them in the SHEETDL
    namespace and pass arrays through as the JSON lists they arrive as (xlwings cleans
    every cell of an argument and of the result in Python otherwise: a 100,000-cell call
    spent ~90% of its time there); ``_matrix`` reads them in one NumPy call, names the
    argument of a text cell, and the result goes back as plain lists. xlwings Server runs
    each call in a worker thread; Lite (Pyodide, one thread) calls it directly.
    """
    import functools
    import inspect

    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    office = runtime != "classic"
    out = {}
    for name in PUBLIC:
        f = globals()[name]
        if runtime == "server":
            f = _off_the_loop(f)
        if runtime == "classic":
            f = functools.wraps(f)(lambda *a, _f=f: _f(*a))
            f.__name__ = excel_name(name, runtime)
            f.__signature__ = inspect.signature(globals()[name])
        if office:
            f = ret("raw")(_as_json(f))
        wrapped = f
        for p in reversed(inspect.signature(globals()[name]).parameters):
            if p in _ARRAYS:
                # no dtype here: a text cell would make the conversion itself fail (HTTP
                # 500); _matrix reads the cells and names the argument instead
                wrapped = arg(p, "raw")(wrapped) if office else arg(p, np.array, ndim=2)(wrapped)
        wrapped = func(namespace=NAMESPACE)(wrapped) if office else func(wrapped)
        out[name if office else wrapped.__name__] = wrapped
    return out
