"""Array kernels behind the add-in: each optimizer's one rule, on arrays of any library.

An optimizer step here is its formula templates lowered to array code
(``math.lower``), the same code as the workbooks' reference math: it takes arrays of
any array-API library (NumPy, CuPy, array-api-strict) and computes with that library's
namespace, so the same rule runs on a GPU and agrees with the sheets to the last bit.
NumPy arrays of ``COMPILED_FROM`` elements or more go through the rule's numba loop over
the elements instead (``lower.elementwise_function``): every column of an element is
computed in registers, one pass over memory, with the same operations in the same order.

``backend("cupy")`` (or ``SHEETDL_BACKEND=cupy``) selects CuPy when it and a GPU
are present and otherwise falls back to NumPy with one warning.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
from array_api_compat import array_namespace

from ..math import lower, optim

_warned = False
#: From this many elements a NumPy step runs the compiled loop: below it, NumPy's own
#: ufuncs on cache-resident arrays are as quick as the call into the loop.
COMPILED_FROM = 1 << 15


def backend(name: str | None = None):
    """The array module to compute with: NumPy, or CuPy when asked and usable."""
    global _warned
    name = (name or os.environ.get("SHEETDL_BACKEND") or "numpy").lower()
    if name == "numpy":
        return np
    if name != "cupy":
        raise ValueError(f"backend must be 'numpy' or 'cupy', got {name!r}")
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
        reason = "no GPU is visible"
    except Exception as e:  # ImportError, or CUDA present but unusable
        reason = f"CuPy is not usable here ({type(e).__name__}: {e})"
    if not _warned:
        warnings.warn(f"sheetdl: backend 'cupy' requested but {reason}; using NumPy",
                      RuntimeWarning, stacklevel=2)
        _warned = True
    return np


def _apply(kind: str, params, grads, state: dict, step: int, out=None, **hyper) -> dict:
    """One step of optimizer ``kind`` (torch's conventions) from ``state``, the previous
    step's carried quantities: every column's value by key. ``out`` maps keys of the
    per-parameter results to arrays to write them into (see ``_written``)."""
    opt = optim.make(kind, **optim.REGISTRY[kind].implies, **hyper)
    if type(params) is np.ndarray and params.size >= COMPILED_FROM and lower.numba_available():
        return _elementwise(opt, params, grads, state, step, out or {})
    fn, lowered = lower.array_function(lower.layout(opt))
    return _written(fn(params, grads, float(step), state,
                       *(float(getattr(opt, h)) for h in lowered.hyper),
                       array_namespace(params, grads)), out)


def _elementwise(opt, params, grads, state, step, out: dict) -> dict:
    """The compiled loop's outputs: the new parameters and the carried state, written
    into ``out``'s arrays where given (each element is read before it is written, so
    they may be the inputs themselves), else into new ones."""
    kernel, lowered = lower.elementwise_function(lower.layout(opt))
    flat = lambda a: np.ascontiguousarray(a, dtype=float).reshape(-1)  # noqa: E731
    p, g = flat(params), flat(grads)
    arrays = [flat(state[k]) for k in lowered.state if k in lowered.per_param]
    numbers = [float(state[k]) for k in lowered.state if k not in lowered.per_param]
    written = [k for k in lowered.outputs if k in lowered.per_param]
    shape = np.shape(params)
    for k, o in out.items():  # its shape and overlaps are checked by _keyed
        if not (type(o) is np.ndarray and o.dtype == np.float64 and o.flags.c_contiguous):
            raise ValueError(f"out for {k} must be a C-contiguous float64 NumPy array: the "
                             "compiled loop writes it element by element")
    outs = [out[k].reshape(-1) if k in out else np.empty_like(p) for k in written]
    scalars = kernel(p, g, float(step), *arrays, *numbers,
                     *(float(getattr(opt, h)) for h in lowered.hyper), *outs)
    result = {k: out[k] if k in out else o.reshape(shape) for k, o in zip(written, outs)}
    result.update(zip([k for k in lowered.outputs if k not in lowered.per_param], scalars))
    return result


def _written(result: dict, out: dict | None) -> dict:
    """``result`` with each array of ``out`` (key: array) holding its key's value in
    place, as torch's optimizers update their tensors: a training loop on large arrays
    then reuses its memory rather than asking the system for more every step."""
    for k, o in (out or {}).items():
        if o.shape != result[k].shape or o.dtype != result[k].dtype:
            raise ValueError(f"out for {k} is {o.dtype} of shape {o.shape}, not "
                             f"{result[k].dtype} of shape {result[k].shape}")
        o[...] = result[k]
        result[k] = o
    return result


def softmax(z, axis: int = -1):
    """exp(z − max) / Σ exp(z − max) along ``axis``: finite for any finite logits."""
    xp = array_namespace(z)
    shifted = z - xp.max(z, axis=axis, keepdims=True)
    e = xp.exp(shifted)
    return e / xp.sum(e, axis=axis, keepdims=True)


def log_softmax(z, axis: int = -1):
    xp = array_namespace(z)
    shifted = z - xp.max(z, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def cross_entropy(logits, targets):
    """Mean over rows of −log softmax(logits)[target]: torch's F.cross_entropy.

    ``targets`` holds 0-based class numbers, one per row.
    """
    xp = array_namespace(logits, targets)
    logp = log_softmax(logits, axis=1)
    k = logits.shape[1]
    onehot = xp.astype(xp.reshape(targets, (-1, 1)) == xp.reshape(xp.arange(k), (1, k)),
                       logits.dtype)
    return -xp.sum(onehot * logp) / logits.shape[0]


def sgd_step(params, grads, lr: float, weight_decay: float = 0.0, out=None):
    """θ − lr·(g + λθ): torch.optim.SGD without momentum. ``out``: an array to write θ
    into (``params`` itself updates in place, as torch does)."""
    return _apply("sgd", params, grads, {}, 1,
                  _keyed(None if out is None else (out,), grads, new=params),
                  lr=lr, weight_decay=weight_decay)["new"]


def momentum_step(params, grads, velocity, lr: float, momentum: float, dampening: float = 0.0,
                  nesterov: bool = False, weight_decay: float = 0.0, first: bool = False,
                  out=None):
    """torch's momentum: buf = g on the first step (``first``), else μ·buf + (1 − τ)·g;
    θ − lr·buf, or θ − lr·(g + μ·buf) with Nesterov. Returns (θ, buf), written into the
    arrays of ``out`` = (θ, buf) if given (``params`` and ``velocity`` themselves update
    in place)."""
    result = _apply("nesterov" if nesterov else "momentum", params, grads,
                    {"buf": velocity}, 1 if first else 2,
                    _keyed(out, grads, new=params, buf=velocity), lr=lr,
                    momentum=momentum, dampening=dampening, weight_decay=weight_decay)
    return result["new"], result["buf"]


def rmsprop_step(params, grads, square_avg, lr: float, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, out=None):
    """v = αv + (1 − α)g²; θ − lr·g/(√v + ε): torch.optim.RMSprop. Returns (θ, v),
    written into the arrays of ``out`` = (θ, v) if given."""
    result = _apply("rmsprop", params, grads, {"square_avg": square_avg}, 1,
                    _keyed(out, grads, new=params, square_avg=square_avg), lr=lr,
                    alpha=alpha, eps=eps, weight_decay=weight_decay)
    return result["new"], result["square_avg"]


def adam_step(params, grads, exp_avg, exp_avg_sq, step: int, lr: float = 1e-3,
              beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
              weight_decay: float = 0.0, out=None):
    """torch.optim.Adam at 1-based ``step`` (coupled L2). Returns (θ, m, v), written into
    the arrays of ``out`` = (θ, m, v) if given: ``(params, exp_avg, exp_avg_sq)``
    updates them in place, as torch.optim.Adam does, and reuses their memory.

    m = β₁m + (1 − β₁)g; v = β₂v + (1 − β₂)g²; θ − lr·m̂/(√v̂ + ε), with β₁ᵗ and β₂ᵗ the
    sheets' running products (the previous step's β^(t−1), times β).
    """
    state = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq,
             "beta1_pow": beta1 ** (step - 1), "beta2_pow": beta2 ** (step - 1)}
    result = _apply("adam", params, grads, state, step,
                    _keyed(out, grads, new=params, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq),
                    lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
    return result["new"], result["exp_avg"], result["exp_avg_sq"]


def _keyed(out, grads, **inputs) -> dict | None:
    """A step's ``out`` tuple by the keys of the results it receives (``inputs``: each
    key's input, ``new`` the parameters), checked: an array of the parameters' shape and
    dtype, sharing memory with no array the step still reads, except that it may be its
    own input itself (an in-place step reads each element just before writing it)."""
    if out is None:
        return None
    keys = list(inputs)
    if not isinstance(out, (tuple, list)) or len(out) != len(keys):
        raise ValueError(f"out must hold {len(keys)} arrays ({', '.join(keys)}), one for each")
    arrays = dict(zip(keys, out))
    params = inputs["new"]
    read = [("grads", grads)] + list(inputs.items())
    for k, o in arrays.items():
        if getattr(o, "shape", None) != params.shape or getattr(o, "dtype", None) != params.dtype:
            raise ValueError(f"out for {k} must be an array of params' shape {params.shape} "
                             f"and dtype {params.dtype}")
        if type(o) is not np.ndarray:
            continue  # other libraries' arrays say nothing of their memory here
        for role, other in read + [(f"out for {j}", a) for j, a in arrays.items() if j != k]:
            if type(other) is not np.ndarray or not np.may_share_memory(o, other):
                continue
            if role == k and o.__array_interface__ == other.__array_interface__:
                continue  # its own input, element for element
            raise ValueError(f"out for {k} shares memory with "
                             f"{'params' if role == 'new' else role}: it would be written "
                             "before it is read")
    return arrays
