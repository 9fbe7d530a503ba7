"""The masks sheet of a lesson with dropout: each step's 0/1 mask as yellow inputs.

One row per (step, example), step-major, one column per unit the dropout acts on; the
train sheet's mask columns read it, and the name ``dropout_masks`` covers it, so a
learner can flip one mask and watch that step change, and a replay reads the same masks.
"""
from __future__ import annotations

import numpy as np

from .workbook import SEQUENTIAL, Sheet, col_name, static_rows

SHEET = "masks"
NAME = "dropout_masks"


def masks_sheet(masks: np.ndarray, p: float, example: str, heads: list[str],
                acts_on: str) -> Sheet:
    """``masks`` (steps, examples, units); ``example`` names a row's example ("image"),
    ``heads`` the units, ``acts_on`` what the dropout drops ("the pooled features")."""
    steps, n, units = masks.shape
    rows = [(0, [(0, None, f"step · {example}", "header")]
             + [(1 + j, None, head, "header") for j, head in enumerate(heads)])]
    for t in range(steps):
        for i in range(n):
            rows.append((1 + t * n + i, [(0, None, f"step {t + 1} · {example} {i + 1}", None)]
                         + [(1 + j, None, int(v), "input") for j, v in enumerate(masks[t, i])]))
    last = steps * n
    rule = {"validate": "integer", "criteria": "between", "minimum": 0, "maximum": 1,
            "input_title": "dropout mask", "input_message": "1 keeps the unit, 0 drops it"}
    return Sheet(SHEET, static_rows(rows), widths={0: 18}, freeze=(1, 1),
                 validations=[(1, 1, last, units, rule)],
                 color_scales=[(f"B2:{col_name(units)}{last + 1}", SEQUENTIAL)],
                 notes=[(0, 0, f"Dropout p = {p:g} on {acts_on}: each row is one step's mask "
                         f"of one {example}, drawn from the seed when the workbook was built. "
                         "Kept units are scaled by 1/(1 − p) on the train sheet, as torch's "
                         "F.dropout in training mode.")])


def name_range(masks: np.ndarray) -> str:
    steps, n, units = masks.shape
    return f"{SHEET}!$B$2:${col_name(units)}${1 + steps * n}"


def cell(t: int, i: int, j: int, n: int) -> str:
    """The mask of unit ``j`` of example ``i`` at step ``t`` (0-based), absolute."""
    return f"{SHEET}!${col_name(1 + j)}${2 + t * n + i}"
