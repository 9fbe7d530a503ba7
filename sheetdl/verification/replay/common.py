"""What every lesson's replay does: read named inputs as numbers, rebuild a sheet's
optimizer and schedule from them, bound the work its metadata asks for, and compare a
trace of the reference math with the recalculated cells."""
from __future__ import annotations

import contextlib
import itertools
import math

import numpy as np

from ...lessons.data import EXCEL_MAX_ROWS
from ..report import TraceCheck, VerifyError, close_enough
from ..workbook import Workbook, cell_name


#: A replay's work (steps × examples × parameters) past which the metadata cannot be a
#: sheet's: a workbook holds at most 1,048,576 rows of ~16k cells.
MAX_REPLAY_WORK = 20_000_000_000


def numbers(wb: Workbook, name: str, si: int | None, path) -> list[float]:
    where = f"sheet {wb.sheets[si]}" if si is not None else "the workbook"
    formula = wb.names.get((si, name.lower()))
    if formula is None:
        raise VerifyError(f"{path}: {where} has no defined name {name!r}; a sheetdl "
                          "workbook needs it to be replayed")
    cells = wb.cells(formula, si if si is not None else 0)
    if not cells:
        raise VerifyError(f"{path}: defined name {name!r} on {where} points at {formula!r}, "
                          "not at cells")
    out = list(itertools.starmap(wb.model.get_cell_value, cells))
    if set(map(type, out)) == {float} and all(map(math.isfinite, out)):
        return out  # every cell a number: the common case, checked by C loops
    for (s, r, c), v in zip(cells, out):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise VerifyError(f"{path}: {wb.sheets[s]}!{cell_name(r, c)} (named {name}) holds "
                              f"{v!r}, not a finite number")
    return [float(v) for v in out]


def compare(wb: Workbook, sheet_label: str, name: str, si, want, rtol, atol) -> TraceCheck:
    """Recalculated cells of defined ``name`` against the reference ``want``."""
    formula = wb.name_formula(name, si)
    cells = wb.cells(formula or "", si or 0)
    want = np.ravel(want)
    worst, worst_cell, ok = 0.0, "", len(cells) == len(want)
    if not ok:
        worst_cell = f"{len(cells)} cells for {len(want)} values"
    got = list(itertools.starmap(wb.model.get_cell_value, cells))
    if ok and set(map(type, got)) == {float}:
        g, w = np.array(got), want.astype(float)
        if np.isfinite(w).all():
            with np.errstate(all="ignore"):
                scale = np.maximum(np.abs(g), np.abs(w))
                diff = np.abs(g - w)
                rel = np.where(g == w, 0.0, diff / scale)  # scale 0 only where g == w == 0
            if (diff <= atol + rtol * scale).all():  # else the cell-by-cell account below
                worst = float(rel.max(initial=0.0))
                cell = cells[int(np.argmax(rel))] if worst > 0 else None
                return TraceCheck(sheet_label, name, len(want), worst, "" if cell is None else
                                  f"{wb.sheets[cell[0]]}!{cell_name(cell[1], cell[2])}", True)
    for cell, g, w in zip(cells, got, want):
        w = float(w)
        if not math.isfinite(w):
            same = isinstance(g, str) and g.startswith("#")
            rel = 0.0 if same else math.inf
        else:
            same, rel = close_enough(g, w, rtol, atol)
        if rel > worst or not same:
            worst = max(worst, rel)
            worst_cell = f"{wb.sheets[cell[0]]}!{cell_name(cell[1], cell[2])}"
        ok = ok and same
    return TraceCheck(sheet_label, name, len(want), worst, worst_cell, ok)


def examples(wb: Workbook, target: str, path) -> tuple[np.ndarray, np.ndarray]:
    """(X as examples × features, the named targets) of a full-batch lesson."""
    t = np.array(numbers(wb, target, None, path))
    X = np.array(numbers(wb, "X", None, path))
    if len(t) == 0 or len(X) % len(t):
        raise VerifyError(f"{path}: names X ({len(X)} cells) and {target} ({len(t)} cells) "
                          "do not describe the same examples")
    return X.reshape(len(t), -1), t


def train_and_finder(wb: Workbook, meta: dict, path, steps, replay_sheet) -> list:
    """``replay_sheet(schedule spec, steps, sheet index)`` for the train sheet (index None:
    its names are workbook-scoped) and, when the workbook has one, its lr finder sheet."""
    checks = replay_sheet(meta.get("schedule"), steps, None)
    if meta.get("lrfind"):
        f = meta["lrfind"]
        checks += replay_sheet(f["schedule"], f["steps"], sheet_index(wb, f["sheet"], path))
    return checks


def bounded_work(path, work: int, steps: int | None = None) -> None:
    """Refuse metadata that asks for more replay than any sheet could show, before any
    array is allocated (docProps/custom.xml is the file's word, not ours)."""
    if steps is not None and not (isinstance(steps, int) and 0 < steps <= EXCEL_MAX_ROWS):
        raise VerifyError(f"{path}: its sheetdl metadata asks for {steps!r} steps; a sheet "
                          f"holds at most {EXCEL_MAX_ROWS:,}: not replayed")
    if work > MAX_REPLAY_WORK:
        raise VerifyError(f"{path}: its sheetdl metadata asks for a replay of {work:,} "
                          "operations, more than any sheet holds: not replayed")


def sheet_index(wb: Workbook, sheet: str, path) -> int:
    si = wb.index.get(sheet.lower())
    if si is None:
        raise VerifyError(f"{path}: sheet {sheet!r} is missing (sheetdl wrote it)")
    return si


def finder_want(wb, si, path, lr, loss) -> dict:
    from ...math import lrfind

    with named_inputs(wb, si, path):
        _, beta, stop = lrfind.settings(len(lr), numbers(wb, "smooth_beta", si, path)[0],
                                        numbers(wb, "stop_factor", si, path)[0])
    found = lrfind.analyse(lr, loss, beta, stop)
    out = {"smooth_loss_trace": found.smooth}
    if found.lr_steep != "" and found.lr_min10 != "":
        out["lr_suggested"] = [found.lr_steep, found.lr_min10]
    return out


def matrix(wb: Workbook, name: str, path, blanks: bool = False, si=None) -> np.ndarray:
    """A named rectangle as a matrix (sheet-scoped when ``si`` is given); blank or text
    cells become NaN only if ``blanks`` (workbook-scoped names only)."""
    formula = wb.name_formula(name, si)
    cells = wb.cells(formula or "", si or 0)
    if not cells:
        where = "the workbook" if si is None else f"sheet {wb.sheets[si]}"
        raise VerifyError(f"{path}: {where} has no defined name {name!r} over cells")
    rows = sorted({r for _, r, _ in cells})
    values = wb.values(name) if blanks else np.array(numbers(wb, name, si, path))
    return values.reshape(len(rows), -1)


def schedule(wb: Workbook, spec: dict | None, si, path, lr: float | None):
    """The sheet's schedule rebuilt from its metadata and its own named inputs."""
    if not spec or spec.get("kind") in (None, "constant", "anneal"):
        return None
    from ...math import schedules

    probe = schedules.Schedule(kind=spec["kind"], cycles=spec.get("cycles"))
    given = {k: numbers(wb, k, si, path)[0] for k in probe.inputs() + ["steps"]}
    for k in ("steps", "step_size"):  # whole numbers, or check() says which is not
        if k in given and given[k] == int(given[k]):
            given[k] = int(given[k])
    sched = schedules.Schedule(kind=spec["kind"], cycles=spec.get("cycles"),
                               convention=spec.get("convention", "torch"),
                               lr=1.0 if lr is None else lr, **given)
    with named_inputs(wb, si, path):
        schedules.check(sched)
    return sched


@contextlib.contextmanager
def named_inputs(wb: Workbook, si, path):
    """Turn a rule's ValueError about inputs edited into values it refuses (steps 0, a
    negative anneal_ratio...) into a VerifyError naming the sheet."""
    try:
        yield
    except VerifyError:  # a ValueError too, but already the one to report
        raise
    except ValueError as e:
        where = "the train sheet" if si is None else f"sheet {wb.sheets[si]}"
        raise VerifyError(f"{path}: {where}: its schedule inputs cannot be replayed: {e}") \
            from None


def sheet_hyper(wb: Workbook, cls, spec: dict | None, si, path) -> dict:
    """Named hyperparameters, less those the schedule sets per step."""
    from ...math import schedules

    kind = (spec or {}).get("kind")
    probe = schedules.Schedule(kind=kind, cycles=spec.get("cycles")) \
        if kind in schedules.Schedule.INPUTS else None
    return {h: numbers(wb, h, si, path)[0] for h in cls.hyperparameters
            if probe is None or not probe.sets(h)}


def dropout_masks(wb: Workbook, meta: dict, path, steps: int, rows: int, units: int,
                  what: str) -> tuple[np.ndarray | None, float]:
    """(masks (steps, rows, units), p) of a workbook built with dropout, else (None, 0):
    the named ``dropout`` rate and ``dropout_masks``, each mask a 0 or 1."""
    if not meta.get("dropout"):
        return None, 0.0
    p = numbers(wb, "dropout", None, path)[0]
    masks = np.array(numbers(wb, "dropout_masks", None, path))
    if masks.size != steps * rows * units or not np.isin(masks, (0.0, 1.0)).all():
        raise VerifyError(f"{path}: dropout_masks must hold a 0 or 1 for each of {steps} "
                          f"steps × {what}")
    if not 0 <= p < 1:
        raise VerifyError(f"{path}: dropout {p} is not a probability below 1")
    return masks.reshape(steps, rows, units), p
