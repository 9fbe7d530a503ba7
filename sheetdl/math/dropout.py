"""Inverted dropout with masks drawn at build time, shared by the lessons that offer it.

torch's ``F.dropout(x, p, training=True)`` zeroes each activation with chance p and
scales the kept ones by 1/(1 − p), so the layer's expected output is unchanged and eval
mode is the identity. A sheet cannot draw the masks itself without RAND(), which redraws
at every recalculation (the course's dropout sheet), so the masks are drawn once from the
seed and written as 0/1 input cells; the backward pass uses the same mask and scale.
"""
from __future__ import annotations

import numpy as np


def draw(steps: int, rows: int, units: int, p: float, seed: int) -> np.ndarray:
    """(steps, rows, units) of 0s and 1s, each 0 with chance ``p``, from ``seed``."""
    rng = np.random.default_rng([seed, 1])
    return (rng.random((steps, rows, units)) >= p).astype(float)


def apply(x: np.ndarray, mask: np.ndarray | None, p: float) -> np.ndarray:
    """x · mask / (1 − p), in the sheet's order of operations; x itself without a mask."""
    return x if mask is None else x * mask / (1 - p)


def check_p(p: float) -> float:
    if not 0 <= p < 1:
        raise ValueError(f"--dropout must be at least 0 and below 1, got {p}")
    return p
