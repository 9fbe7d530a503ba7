"""NumPy arrays that compute as a spreadsheet does when a number overflows.

A spreadsheet has no infinity: a result past ±1.8e308 is #NUM!, 1/0 is #DIV/0!, and an
error stays an error through every later formula, comparisons included. NumPy instead
carries ±inf and can come back from it: exp(−inf) = 0, m/inf = 0, max(0, −inf) = 0,
and inf > 0 is True. A lesson's reference math that ran on plain arrays would then cache
0.0 where every engine shows #NUM!, and ``sheetdl verify`` would fail its own workbook.

``Cells`` is an ndarray whose every ufunc result (arithmetic, exp, sqrt, maximum, sums,
comparisons) turns ±inf into NaN, the writer's #NUM!, and whose comparisons are NaN
where an operand is. Finite results are untouched: the operations and their order are
NumPy's own, so finite values stay bit for bit what plain arrays give.

``like_a_sheet`` runs a computation on plain arrays, at full speed, and only when a
floating-point overflow, division by zero or invalid operation happened does it run it
again on ``Cells``: the rare diverged run pays for the semantics, the rest does not.
"""
from __future__ import annotations

import math

import numpy as np

_COMPARISONS = {np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal}


class Cells(np.ndarray):
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [x.view(np.ndarray) if isinstance(x, Cells) else x for x in inputs]
        outs = ()
        if "out" in kwargs:
            outs = tuple(o.view(np.ndarray) if isinstance(o, Cells) else o for o in kwargs["out"])
            kwargs["out"] = outs
        result = getattr(ufunc, method)(*plain, **kwargs)
        for o in outs:  # in place (a += b): the buffer itself must hold #NUM!, not inf
            if isinstance(o, np.ndarray) and np.issubdtype(o.dtype, np.floating):
                o[np.isinf(o)] = np.nan
        if ufunc in _COMPARISONS and method == "__call__":
            unknown = np.zeros(np.shape(result), bool)
            for x in plain:
                if np.issubdtype(np.asarray(x).dtype, np.floating):
                    unknown = unknown | np.isnan(x)
            result = np.where(unknown, np.nan, result)
        elif isinstance(result, np.ndarray) and np.issubdtype(result.dtype, np.floating):
            result = np.where(np.isinf(result), np.nan, result)
        elif isinstance(result, float) and np.isinf(result):
            return np.nan
        if isinstance(result, np.ndarray) and result.ndim:
            return result.view(Cells)
        return result


def like_a_sheet(compute):
    """``compute(wrap)``, where ``wrap(a)`` makes the arrays the computation starts from:
    plain float arrays first, ``Cells`` if that raised a floating-point error."""
    try:
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            return compute(lambda a: np.asarray(a, dtype=float))
    except FloatingPointError:
        with np.errstate(all="ignore"):
            return compute(cells)


def cells(a) -> Cells:
    """``a`` as float ``Cells`` (a copy only where the dtype changes)."""
    return np.asarray(a, dtype=float).view(Cells)


def plain(a) -> np.ndarray:
    """Back to a plain ndarray, for callers that index or compare as usual."""
    return np.asarray(a).view(np.ndarray)


def _libm(ufunc, scalar):
    """``ufunc`` with each finite result replaced by the C library's (``scalar``): NumPy's
    SIMD exp and log on AVX-512 machines round some results one ulp apart from libm's, and
    a workbook's cached values must be the same bytes on every machine. Non-finite results,
    the floating-point flags and ``Cells`` semantics stay NumPy's."""
    def apply(x):
        result = ufunc(x)
        if np.ndim(result) == 0:
            return scalar(float(x)) if np.isfinite(result) else result
        finite = np.isfinite(result)
        result[finite] = [scalar(v) for v in np.asarray(x, float)[finite].tolist()]
        return result
    return apply


exp = _libm(np.exp, math.exp)
log = _libm(np.log, math.log)
