"""``sheetdl verify``: recalculate a workbook with IronCalc and check it.

(a) Any .xlsx/.xlsm: every formula cell's recalculated value against the value
    cached in the file. Volatile cells (RAND, RANDBETWEEN, OFFSET, ...) and the
    cells computed from them are reported as volatile, not as failures; cells
    using functions IronCalc does not know are reported as unsupported.
(b) sheetdl workbooks: the traces (b_trace, a_trace, loss_trace) against the
    reference math replayed from the workbook's own named inputs and data.

The file is loaded once: every cell's cached value is read from the model as loaded,
then the model is recalculated and read again (loading is half of IronCalc's time on
a large file, and one model holds half the memory of two). Which cells hold formulas,
and whether any is volatile, comes from the sheet XML (``formula_scan``), where a
shared formula's text is written once, rather than from IronCalc one cell at a time;
a constant reads back as it was, so comparing every cell compares every formula.

The stages have a module each: ``workbook`` refuses a hostile file and loads it,
``formula_scan`` reads the sheet XML, this module compares cells, ``replay/`` replays
each lesson's traces, ``report`` holds what was found.
"""
from __future__ import annotations

import bisect
import itertools
import math
import operator
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from ..write import xlsx
from . import charts, formula_scan
from .replay import REPLAYS, replay
from .report import (ATOL, RTOL, EngineDifference, Mismatch, Report, Reports, TraceCheck,
                     VerifyError, close_enough, tolerance)
from .workbook import REF, Workbook, cell_name, check_container, col_number, load, recalculated

#: What ``sheetdl.verification.verifier`` offers: verify a file, or recalculate it and read
#: its names; the report's classes.
__all__ = ["verify", "recalculated", "tolerance", "Report", "Reports", "TraceCheck", "Mismatch",
           "EngineDifference", "VerifyError", "RTOL", "ATOL"]


VOLATILE = re.compile(r"\b(RAND|RANDBETWEEN|RANDARRAY|OFFSET|INDIRECT|NOW|TODAY|CELL|INFO)\(",
                      re.IGNORECASE)


def _volatile(formula: str) -> bool:
    """VOLATILE.search, after a test of plain substrings ten times quicker that rules out
    most formulas (a large sheet has millions)."""
    low = formula.lower()
    return ("rand" in low or "offset(" in low or "indirect(" in low or "now(" in low
            or "today(" in low or "cell(" in low or "info(" in low) \
        and VOLATILE.search(formula) is not None


# IronCalc lowercases the functions it does not know (after any _xlfn. prefix).
_UNKNOWN_FUNCTION = re.compile(r"(?<![A-Za-z0-9_.])(?:_xl\w+\.)*([a-z][a-z0-9_.]*)\(")


def _uses_sumxmy2(formula: str) -> bool:
    return re.search(r"\bSUMX(MY2|2MY2|2PY2)\(", formula, re.IGNORECASE) is not None


def _approximate_match(formula: str) -> bool:
    """A MATCH with two arguments, or with a third of 1 or -1."""
    for m in re.finditer(r"\bMATCH\(", formula, re.IGNORECASE):
        depth, args, i = 1, 1, m.end()
        while i < len(formula) and depth:
            ch = formula[i]
            depth += ch == "("
            depth -= ch == ")"
            if ch == "," and depth == 1:
                args += 1
                third = formula[i + 1:].lstrip()
                if args == 3 and third[:1] not in ("1", "-"):
                    break
            i += 1
        else:
            return True
    return False


#: Cases where IronCalc computes differently from Excel: a mismatch in such a cell
#: is the engine's, not the workbook's. Each is (does this formula have it?, why).
ENGINE_DIFFERS = [
    (_uses_sumxmy2, "SUMXMY2 and kin: Excel skips pairs with a blank cell, IronCalc (like "
     "LibreOffice) reads the blank as 0"),
    (_approximate_match, "approximate MATCH (match type 1 or omitted) on unsorted data: the "
     "result is undefined and engines differ"),
]


#: IronCalc carries an overflow inside one formula as ±inf: =1/(1+EXP(1000)) gives 0 there,
#: #NUM! in Excel and LibreOffice, whose value the cache holds. Such a cell, and whatever
#: reads it, differs for the engine's reason, not the workbook's.
CARRIED_OVERFLOW = ("IronCalc carries an overflow inside a formula (=1/(1+EXP(1000)) is 0 "
                    "there) where Excel and LibreOffice show #NUM!, the cached value")


def _carried_overflow(wb: Workbook, model, key, mm) -> bool:
    """A cell cached #NUM! that IronCalc computes as a number, with an EXP in its formula
    or in one it reads up to ``OVERFLOW_DEPTH`` cells back (EXP → SUM → LN). IronCalc keeps
    the overflow as ±inf and carries it on; which cell shows it depends on its evaluation
    order, which a conditional format on the sheet changes (measured: with one, the EXP
    cell agreed with its #NUM! cache and its reader =H1/J1 did not), so the reader is a
    root too. LibreOffice, the tests' second engine, still has to match the cache exactly."""
    if not (mm.cached == "#NUM!" and isinstance(mm.recalculated, (int, float))
            and not isinstance(mm.recalculated, bool)):
        return False
    if "EXP(" in mm.formula.upper():
        return True
    frontier, seen = [(key[0], mm.formula)], set()
    for _ in range(OVERFLOW_DEPTH):
        nxt = []
        for si, formula in frontier:
            for dep in _dependencies(wb, si, formula):
                if dep in seen:
                    continue
                seen.add(dep)
                f = model.get_cell_formula(*dep) or ""
                if "EXP(" in f.upper():
                    return True
                if f:
                    nxt.append((dep[0], f))
        frontier = nxt
    return False


#: how many cells back ``_carried_overflow`` looks for the EXP
OVERFLOW_DEPTH = 3


def _dependencies(wb: Workbook, si: int, formula: str) -> list[tuple[int, int, int]]:
    """Cells a formula reads, by A1 reference or defined name (sheet-qualified or not)."""
    deps = []
    text = re.sub(r'"[^"]*"', "", formula)
    for m in REF.finditer(text):
        deps += wb.cells(m.group(0), si)
    for word in set(re.findall(r"(?<![A-Za-z0-9_.$!'])([A-Za-z_][A-Za-z0-9_.]*)(?![(!\w])", text)):
        target = wb.name_formula(word, si)
        if target:
            deps += wb.cells(target, si)
    return deps


def verify(path: str | os.PathLike, rtol: float = RTOL, atol: float = ATOL,
           on_cells=None, on_phase=None) -> Report:
    """Recalculate ``path`` and check it; ``on_cells(n)`` hears of every ``n`` cells
    compared (for a progress bar: every listed cell where the XML was scanned, else
    every formula cell); ``on_phase(name, total)`` of each stage: "loading",
    "evaluating", "comparing" (``total`` the cells to compare) and "replaying". A
    tolerance that is no number from 0 to 1 is a ValueError."""
    phase = on_phase or (lambda name, total=None: None)
    rtol, atol = tolerance("rtol", rtol), tolerance("atol", atol)
    path = Path(path)
    check_container(path)
    phase("loading")
    model = load(path)
    wb = Workbook(model)
    report = Report(path=str(path))

    formulas: dict[tuple[int, int, int], str] = {}
    volatile_roots: set[tuple[int, int, int]] = set()
    unsupported_roots: set[tuple[int, int, int]] = set()
    pending: list[Mismatch] = []
    pending_keys: list[tuple[int, int, int]] = []
    scanned = formula_scan.scan(path, len(wb.sheets))
    if scanned is not None and not any(_volatile(f) for f in scanned.texts):
        keys, cached = _cached_values(model)  # constants too: they cannot change
        report.formula_cells = scanned.count
    else:
        keys, cached = _cached_formula_values(model, volatile_roots, formulas)
        report.formula_cells = len(keys) + len(volatile_roots)
    meta = xlsx.read_meta(path)
    if meta is not None and not isinstance(meta, dict):
        raise VerifyError(f"{path}: its sheetdl metadata (docProps/custom.xml) is not what "
                          f"sheetdl writes (a JSON {type(meta).__name__}, not an object); "
                          "not replayed")
    if meta is not None and not isinstance(meta.get("lesson", ""), str):
        raise VerifyError(f"{path}: its sheetdl metadata (docProps/custom.xml) is not what "
                          f"sheetdl writes (lesson {meta['lesson']!r}); not replayed")
    report.charts = charts.check(path, wb, sheetdl=meta is not None)
    traces = None
    if meta and meta.get("udf") and meta.get("lesson") in REPLAYS:
        # No engine here computes the add-in's calls: a --udf workbook's traces are
        # checked as cached, the numbers it shows (the model before it recalculates),
        # against the reference math.
        traces = replay(wb, meta, path, rtol, atol)
    phase("evaluating")
    try:
        model.evaluate()
    except BaseException as e:
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise VerifyError(f"{path}: IronCalc could not recalculate it: {e}") from None
    phase("comparing", len(keys))
    for lo in range(0, len(keys), CHUNK):
        chunk = list(zip(*(keys[lo:lo + CHUNK, i].tolist() for i in range(3))))
        before = cached.chunk(lo, lo + CHUNK)
        after = list(itertools.starmap(model.get_cell_value, chunk))
        # most cells come back as they were: found by C loops, not one Python step a cell
        changed = set(itertools.compress(range(len(chunk)), map(operator.ne, before, after)))
        changed.update(itertools.compress(range(len(chunk)), map(
            operator.is_not, map(type, before), map(type, after))))
        for i in sorted(changed):
            _check_cell(model, wb, report, chunk[i], before[i], after[i], rtol, atol,
                        formulas, pending, pending_keys, unsupported_roots)
        if on_cells is not None:
            on_cells(len(chunk))
    phase("replaying")
    return _finish(path, model, wb, report, meta, traces, formulas, volatile_roots,
                   unsupported_roots, pending, pending_keys, rtol, atol)


#: Cells read and compared per pass (the Python objects of one pass at a time in memory).
CHUNK = 100_000


def _cached_values(model):
    """Every cell the file lists, as an (n, 3) array of (sheet, row, column) in that order,
    and its cached values (``_Values``). Only the cells the file lists: walking a sheet's
    dimension box would take hours for one formula placed at XFD1048576. IronCalc lists
    the cells as a Python tuple each (~100 bytes); they are packed into 24 and the list is
    gone before the model recalculates, which needs memory of its own."""
    cells = model.get_all_cells()
    cells.sort()
    return _packed(cells), _Values.read(model, cells)


def _cached_formula_values(model, volatile_roots: set, formulas: dict):
    """``_cached_values`` of the non-volatile formula cells only, asking IronCalc for each
    cell's formula (a microsecond a cell): for a file whose XML ``formula_scan`` cannot
    read, or that holds a volatile function."""
    cells = model.get_all_cells()
    cells.sort()
    kept = []
    for key in cells:
        f = model.get_cell_formula(*key)
        if not f:
            continue
        if _volatile(f):
            volatile_roots.add(key)
            formulas[key] = f
            continue
        kept.append(key)
    return _packed(kept), _Values.read(model, kept)


def _packed(cells: list) -> np.ndarray:
    return np.fromiter(itertools.chain.from_iterable(cells), dtype=np.int64,
                       count=3 * len(cells)).reshape(-1, 3)


class _Values:
    """Cells' values in 8 bytes each where they are numbers (a Python float costs 32),
    the others (text, booleans, errors) by position: 10 M cells fit in 80 MB."""

    def __init__(self, numbers: np.ndarray, where: list[int], what: list):
        self.numbers, self.where, self.what = numbers, where, what

    @classmethod
    def read(cls, model, cells: list) -> "_Values":
        numbers, where, what = np.empty(len(cells)), [], []
        for lo in range(0, len(cells), CHUNK):
            values = list(itertools.starmap(model.get_cell_value, cells[lo:lo + CHUNK]))
            for i in itertools.compress(range(len(values)), map(
                    operator.is_not, map(type, values), itertools.repeat(float))):
                where.append(lo + i)
                what.append(values[i])
                values[i] = math.nan
            numbers[lo:lo + len(values)] = values
        return cls(numbers, where, what)

    def chunk(self, lo: int, hi: int) -> list:
        """Values lo to hi, as Python objects."""
        out = self.numbers[lo:hi].tolist()
        first, last = bisect.bisect_left(self.where, lo), bisect.bisect_left(self.where, hi)
        for i, v in zip(self.where[first:last], self.what[first:last]):
            out[i - lo] = v
        return out


def _check_cell(model, wb, report, key, before, after, rtol, atol, formulas, pending,
                pending_keys, unsupported_roots) -> None:
    """A cell whose recalculated value is not its cached one, to the letter: no formula
    of its own (an array formula's other cell), close enough, a function IronCalc does
    not know, or a mismatch (pending until the cells reading volatile or unknown
    functions are known)."""
    si, r, c = key
    f = model.get_cell_formula(si, r, c)
    if not f:
        # no formula of its own: an array formula's other cell, which IronCalc rewrites
        # from its first cell (checked there), as Excel does
        return
    same, rel = close_enough(before, after, rtol, atol)
    if same:
        report.max_rel_error = max(report.max_rel_error, rel)
        return
    sheet = wb.sheets[si]
    unknown = [fn for fn in _UNKNOWN_FUNCTION.findall(f.lstrip("="))]
    if unknown and after == "#NAME?":
        for fn in sorted(set(unknown)):
            report.unsupported.setdefault(fn, []).append(f"{sheet}!{cell_name(r, c)}")
        unsupported_roots.add(key)
        return
    formulas[key] = f
    pending.append(Mismatch(sheet, cell_name(r, c), f, before, after))
    pending_keys.append(key)


def _finish(path, model, wb, report, meta, traces, formulas, volatile_roots,
            unsupported_roots, pending, pending_keys, rtol, atol) -> "Report":
    """Sort the pending mismatches (volatile, from unsupported functions, carried overflow,
    engine differences, real), then replay the lesson's traces."""
    overflow_roots = {k for k, mm in zip(pending_keys, pending)
                      if _carried_overflow(wb, model, k, mm)}
    tainted: set = set()
    if volatile_roots or unsupported_roots or overflow_roots:
        arrays = _array_members(path, wb.sheets)
        every = [(si, r, c) for si in range(len(wb.sheets))
                 for r, c in _formula_cells(model, si)]
    if volatile_roots:
        # Whatever reads a volatile cell is volatile too, whether or not this
        # recalculation happened to draw the same random number.
        tainted = _reaching(wb, model, volatile_roots, every, formulas, arrays)
    if unsupported_roots:
        # IronCalc cannot compute these, so it cannot check what is computed from them.
        pending_set = set(pending_keys)
        beyond = _reaching(wb, model, unsupported_roots, [k for k in every if k in pending_set],
                           formulas, arrays) - unsupported_roots - tainted
        report.from_unsupported = sorted((f"{wb.sheets[k[0]]}!{cell_name(k[1], k[2])}"
                                          for k in beyond), key=_sort_key)
        tainted = tainted | beyond
    overflowed = set()
    if overflow_roots:
        pending_set = set(pending_keys)
        overflowed = _reaching(wb, model, overflow_roots, [k for k in every if k in pending_set],
                               formulas, arrays)
    # Read only when some cell differs, so a file that agrees costs nothing more; every
    # formula cell without a value is listed, those that happened to equal 0 too.
    uncached = _uncached(path, wb.sheets) - tainted if pending else set()
    if uncached & set(pending_keys):
        for key in sorted(uncached):
            value = model.get_cell_value(*key)
            error = f" ({value})" if isinstance(value, str) and value.startswith("#") else ""
            report.uncached.append(f"{wb.sheets[key[0]]}!{cell_name(key[1], key[2])}{error}")
    for key, mm in zip(pending_keys, pending):
        if key in tainted or key in uncached:
            continue
        reason = CARRIED_OVERFLOW if key in overflowed else next(
            (why for applies, why in ENGINE_DIFFERS if applies(mm.formula)), None)
        if reason:
            report.engine_differs.append(EngineDifference(**mm.__dict__, reason=reason))
        else:
            report.mismatches.append(mm)
    volatile_cells = {f"{wb.sheets[k[0]]}!{cell_name(k[1], k[2])}"
                      for k in tainted | volatile_roots} - set(report.from_unsupported)
    report.volatile = sorted(volatile_cells, key=_sort_key)

    if meta and meta.get("lesson") in REPLAYS:
        # the lr finder alone is a graddesc lesson with no optimizer sheets
        report.lesson = "lrfind" if meta["lesson"] == "graddesc" and not meta.get("sheets") \
            and meta.get("lrfind") else meta["lesson"]
        report.traces = traces if traces is not None else replay(wb, meta, path, rtol, atol)
    return report


def _formula_cells(model, si: int):
    """(row, col) of sheet ``si``'s formula cells, among the cells the file lists."""
    for s, r, c in sorted(model.get_all_cells()):
        if s == si and model.get_cell_formula(si, r, c):
            yield r, c


def _sort_key(cell: str):
    sheet, _, ref = cell.rpartition("!")
    m = re.match(r"([A-Z]+)(\d+)", ref)
    return (sheet, int(m.group(2)), col_number(m.group(1))) if m else (sheet, 0, 0)


_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
       "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships"}
_CELL, _F, _V, _ROW = (f"{{{_NS['m']}}}{tag}" for tag in ("c", "f", "v", "row"))


def _sheet_parts(z: zipfile.ZipFile, sheets: list[str]):
    """(sheet index, its worksheet part) of every sheet IronCalc loaded."""
    from defusedxml import ElementTree as SafeET

    rel_ns = "{http://schemas.openxmlformats.org/package/2006/relationships}"
    book = SafeET.fromstring(z.read("xl/workbook.xml"))
    rels = SafeET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
    target = {r.get("Id"): r.get("Target") for r in rels.iter(f"{rel_ns}Relationship")}
    for sheet in book.iter(f"{{{_NS['m']}}}sheet"):
        name = sheet.get("name")
        part = target.get(sheet.get(f"{{{_NS['r']}}}id"), "").lstrip("/")
        part = part if part.startswith("xl/") else f"xl/{part}"
        if name in sheets and part in z.namelist():
            yield sheets.index(name), part


def _array_members(path: Path, sheets: list[str]) -> dict:
    """{(sheet index, row, col) of an array formula's member: its anchor key}.

    IronCalc reports a formula only on an array formula's first cell; the
    others must be traced through it. Read from the sheet XML with defusedxml.
    """
    from defusedxml import ElementTree as SafeET

    out: dict = {}
    try:
        with zipfile.ZipFile(path) as z:
            for si, part in _sheet_parts(z, sheets):
                for _, el in SafeET.iterparse(z.open(part)):
                    if el.tag == _F and el.get("t") == "array" and el.get("ref"):
                        m = REF.fullmatch(el.get("ref"))
                        if m:
                            c1, r1 = col_number(m.group(3)), int(m.group(4))
                            c2, r2 = ((col_number(m.group(5)), int(m.group(6))) if m.group(5)
                                      else (c1, r1))
                            for r in range(r1, r2 + 1):
                                for c in range(c1, c2 + 1):
                                    if (r, c) != (r1, c1):
                                        out[(si, r, c)] = (si, r1, c1)
                    if el.tag == _ROW:
                        el.clear()
    except Exception:  # a part we cannot read only loses this refinement
        return out
    return out


def _uncached(path: Path, sheets: list[str]) -> set:
    """The formula cells that the file stores with no value at all (no ``<v>``, or an
    empty one): a program that writes formulas without calculating them (openpyxl) leaves
    them so, and IronCalc then reads their cached value as 0."""
    from defusedxml import ElementTree as SafeET

    out: set = set()
    try:
        with zipfile.ZipFile(path) as z:
            for si, part in _sheet_parts(z, sheets):
                for _, el in SafeET.iterparse(z.open(part)):
                    if el.tag == _CELL and el.find(_F) is not None:
                        v = el.find(_V)
                        m = REF.fullmatch(el.get("r", ""))
                        if (v is None or not (v.text or "").strip()) and m:
                            out.add((si, int(m.group(4)), col_number(m.group(3))))
                    elif el.tag == _ROW:
                        el.clear()
    except Exception:  # unreadable here: the cells stay mismatches, as before
        return out
    return out


def _reaching(wb, model, roots, keys, formulas, arrays=None) -> set:
    """Which of ``keys`` read, directly or through other formulas, a volatile root."""
    memo: dict = {k: True for k in roots}
    arrays = arrays or {}

    def depends(key, stack) -> bool:
        if key in memo:
            return memo[key]
        f = formulas.get(key)
        if f is None:
            f = model.get_cell_formula(*key)
            if not f and key in arrays:
                memo[key] = depends(arrays[key], stack)
                return memo[key]
            if not f:
                memo[key] = False
                return False
            formulas[key] = f
        if key in stack:
            return False
        stack.add(key)
        result = any(depends(d, stack) for d in _dependencies(wb, key[0], f))
        stack.discard(key)
        memo[key] = result
        return result

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 100_000))
    try:
        return {k for k in keys if depends(k, set())}
    finally:
        sys.setrecursionlimit(limit)
