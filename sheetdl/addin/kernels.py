"""Array kernels behind the add-in, written once against the array API standard.

Each function takes arrays of any array-API library (NumPy, CuPy,
array-api-strict) and computes with that library's namespace, so the same code
runs on a GPU. The formulas and their order of operations are those of
``sheetdl.optim`` (the workbooks' reference math), so on NumPy the results are
the same to the last bit.

``backend("cupy")`` (or ``SHEETDL_BACKEND=cupy``) selects CuPy when it and a GPU
are present and otherwise falls back to NumPy with one warning.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
from array_api_compat import array_namespace

_warned = False
#: NumPy fast path: elements per block, small enough for the temporaries of one
#: block to stay in cache, so a step reads and writes each array about once.
BLOCK = 1 << 15
#: threads for large element-wise steps (NumPy's ufuncs run without the GIL)
THREADS = max(1, min(8, os.cpu_count() or 1))


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


def sgd_step(params, grads, lr: float, weight_decay: float = 0.0):
    """θ − lr·(g + λθ): torch.optim.SGD without momentum."""
    if isinstance(params, np.ndarray) and params.size > BLOCK:
        return _blocked(_sgd_block, (params, grads), 1, lr=lr, weight_decay=weight_decay)[0]
    g = grads + weight_decay * params
    return params - lr * g


def momentum_step(params, grads, velocity, lr: float, momentum: float, dampening: float = 0.0,
                  nesterov: bool = False, weight_decay: float = 0.0, first: bool = False):
    """torch's momentum: buf = g on the first step (``first``), else μ·buf + (1 − τ)·g;
    θ − lr·buf, or θ − lr·(g + μ·buf) with Nesterov. Returns (θ, buf)."""
    g = grads + weight_decay * params
    buf = g if first else momentum * velocity + (1.0 - dampening) * g
    direction = g + momentum * buf if nesterov else buf
    return params - lr * direction, buf


def rmsprop_step(params, grads, square_avg, lr: float, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0):
    """v = αv + (1 − α)g²; θ − lr·g/(√v + ε): torch.optim.RMSprop. Returns (θ, v)."""
    xp = array_namespace(params, grads, square_avg)
    g = grads + weight_decay * params
    v = alpha * square_avg + (1.0 - alpha) * (g * g)
    return params - lr * g / (xp.sqrt(v) + eps), v


def adam_step(params, grads, exp_avg, exp_avg_sq, step: int, lr: float = 1e-3,
              beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
              weight_decay: float = 0.0):
    """torch.optim.Adam at 1-based ``step`` (coupled L2). Returns (θ, m, v).

    m = β₁m + (1 − β₁)g; v = β₂v + (1 − β₂)g²; θ − lr·m̂/(√v̂ + ε).
    """
    b1p, b2p = beta1 ** step, beta2 ** step
    if isinstance(params, np.ndarray) and params.size > BLOCK:
        return _blocked(_adam_block, (params, grads, exp_avg, exp_avg_sq), 3, lr=lr,
                        beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                        bc1=1.0 - b1p, bc2=1.0 - b2p)
    xp = array_namespace(params, grads, exp_avg, exp_avg_sq)
    g = grads + weight_decay * params
    m = beta1 * exp_avg + (1.0 - beta1) * g
    v = beta2 * exp_avg_sq + (1.0 - beta2) * (g * g)
    m_hat = m / (1.0 - b1p)
    v_hat = v / (1.0 - b2p)
    return params - lr * m_hat / (xp.sqrt(v_hat) + eps), m, v


# --------------------------------------------------------------------------- NumPy fast path

def _blocked(kernel, arrays, n_out, **k):
    """Run ``kernel`` over cache-sized blocks, writing into fresh outputs.

    NumPy releases the GIL in ufuncs, so one thread per core each takes a
    contiguous share of the blocks; the steps are element-wise, so the result
    is the same to the bit however the work is split."""
    n = arrays[0].size
    flat = [np.ascontiguousarray(a, dtype=float).reshape(-1) for a in arrays]
    outs = [np.empty(n) for _ in range(n_out)]

    def run(lo: int, hi: int) -> None:
        tmp = [np.empty(BLOCK) for _ in range(3)]
        for start in range(lo, hi, BLOCK):
            stop = min(start + BLOCK, hi)
            kernel([a[start:stop] for a in flat], [o[start:stop] for o in outs],
                   [t[:stop - start] for t in tmp], **k)

    workers = min(THREADS, max(1, n // (4 * BLOCK)))
    if workers == 1:
        run(0, n)
    else:
        from concurrent.futures import ThreadPoolExecutor

        bounds = [n * i // workers // BLOCK * BLOCK for i in range(workers)] + [n]
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, bounds[:-1], bounds[1:]))
    return [o.reshape(arrays[0].shape) for o in outs]


def _sgd_block(ins, outs, tmp, lr, weight_decay):
    p, g = ins
    (new,), (t, _, _) = outs, tmp
    np.multiply(p, weight_decay, out=t)
    np.add(g, t, out=t)                 # g + λθ
    np.multiply(t, lr, out=t)
    np.subtract(p, t, out=new)


def _adam_block(ins, outs, tmp, lr, beta1, beta2, eps, weight_decay, bc1, bc2):
    p, g0, m0, v0 = ins
    new, m, v = outs
    g, t, u = tmp
    np.multiply(p, weight_decay, out=g)
    np.add(g0, g, out=g)                # g + λθ
    np.multiply(m0, beta1, out=m)
    np.multiply(g, 1.0 - beta1, out=t)
    np.add(m, t, out=m)                 # β₁m + (1 − β₁)g
    np.multiply(g, g, out=t)
    np.multiply(t, 1.0 - beta2, out=t)
    np.multiply(v0, beta2, out=v)
    np.add(v, t, out=v)                 # β₂v + (1 − β₂)g²
    np.divide(v, bc2, out=u)
    np.sqrt(u, out=u)
    np.add(u, eps, out=u)               # √v̂ + ε
    np.divide(m, bc1, out=t)            # m̂
    np.multiply(t, lr, out=t)
    np.divide(t, u, out=t)
    np.subtract(p, t, out=new)
