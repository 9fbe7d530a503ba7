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
"""
from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import operator
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..lessons.graddesc import compiled, model as linear
from ..math import optim
from ..write import xlsx
from . import formula_scan
from ..lessons.data import EXCEL_MAX_ROWS

RTOL, ATOL = 1e-9, 1e-12
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
_REF = re.compile(r"(?:(?:'((?:[^']|'')+)'|([A-Za-z_][\w.]*))!)?\$?([A-Z]{1,3})\$?(\d+)"
                  r"(?::\$?([A-Z]{1,3})\$?(\d+))?")
#: Refused before parsing: a member or a whole workbook unpacking past these (zip
#: bombs). A 100,000-row sheetdl sheet unpacks to about 300 MB.
MAX_MEMBER_BYTES = 1 << 30
MAX_TOTAL_BYTES = 4 << 30
MAX_LISTED = 50
#: A replay's work (steps × examples × parameters) past which the metadata cannot be a
#: sheet's: a workbook holds at most 1,048,576 rows of ~16k cells.
MAX_REPLAY_WORK = 20_000_000_000


class VerifyError(Exception):
    """The file cannot be verified; the message names the file and the reason."""


@dataclass
class Mismatch:
    sheet: str
    cell: str
    formula: str
    cached: object
    recalculated: object


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


def _carried_overflow(mm) -> bool:
    return mm.cached == "#NUM!" and isinstance(mm.recalculated, (int, float)) \
        and not isinstance(mm.recalculated, bool) and "EXP(" in mm.formula.upper()


@dataclass
class EngineDifference:
    sheet: str
    cell: str
    formula: str
    cached: object
    recalculated: object
    reason: str


@dataclass
class TraceCheck:
    sheet: str
    name: str
    steps: int
    max_rel_error: float
    worst_cell: str
    ok: bool


@dataclass
class Report:
    path: str
    formula_cells: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    volatile: list[str] = field(default_factory=list)
    unsupported: dict[str, list[str]] = field(default_factory=dict)
    engine_differs: list[EngineDifference] = field(default_factory=list)
    #: cells computed from one IronCalc does not know (not compared)
    from_unsupported: list[str] = field(default_factory=list)
    traces: list[TraceCheck] = field(default_factory=list)
    lesson: str | None = None
    max_rel_error: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches and all(t.ok for t in self.traces)

    def to_json(self) -> dict:
        return {
            "path": self.path, "ok": self.ok, "engine": "ironcalc", "lesson": self.lesson,
            "formula_cells": self.formula_cells, "max_rel_error": self.max_rel_error,
            "mismatches": [m.__dict__ for m in self.mismatches],
            "volatile": self.volatile, "unsupported": self.unsupported,
            "engine_differs": [d.__dict__ for d in self.engine_differs],
            "from_unsupported": self.from_unsupported,
            "traces": [t.__dict__ for t in self.traces],
        }

    def summary(self) -> str:
        lines = [f"{self.path}: {'OK' if self.ok else 'FAILED'}"
                 + (f" (sheetdl {self.lesson} workbook)" if self.lesson else "")]
        agree = self.formula_cells - len(self.mismatches) - len(self.volatile) - sum(
            len(v) for v in self.unsupported.values()) - len(self.engine_differs) - len(
            self.from_unsupported)
        lines.append(f"  {self.formula_cells} formula cells recalculated by IronCalc; "
                     f"{agree} agree with their cached values "
                     f"(largest relative difference {self.max_rel_error:.2g})")
        if self.mismatches:
            lines.append(f"  {len(self.mismatches)} differ from their cached values:")
            for m in self.mismatches[:MAX_LISTED]:
                lines.append(f"    {m.sheet}!{m.cell} ={m.formula.lstrip('=')}: cached "
                             f"{m.cached!r}, recalculated {m.recalculated!r}")
        if self.volatile:
            shown = ", ".join(self.volatile[:MAX_LISTED])
            more = (f" and {len(self.volatile) - MAX_LISTED} more"
                    if len(self.volatile) > MAX_LISTED else "")
            lines.append(f"  {len(self.volatile)} volatile (RAND, RANDBETWEEN, OFFSET... or "
                         f"computed from one), not compared: {shown}{more}")
        for fn, cells in sorted(self.unsupported.items()):
            lines.append(f"  {len(cells)} use {fn.upper()}, which IronCalc does not know, not "
                         f"compared: {', '.join(cells[:MAX_LISTED])}")
        if self.from_unsupported:
            lines.append(f"  {len(self.from_unsupported)} computed from those, not compared: "
                         f"{', '.join(self.from_unsupported[:MAX_LISTED])}")
        for d in self.engine_differs[:MAX_LISTED]:
            lines.append(f"  {d.sheet}!{d.cell} ={d.formula.lstrip('=')}: cached {d.cached!r}, "
                         f"IronCalc {d.recalculated!r}; not a failure: {d.reason}")
        for t in self.traces:
            at = f" at {t.worst_cell}" if t.worst_cell else ""
            lines.append(f"  {t.sheet}!{t.name}: {t.steps} values vs reference math, largest "
                         f"relative error {t.max_rel_error:.2g}{at} "
                         f"{'ok' if t.ok else 'FAILED'}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        """A short table for Jupyter: the verdict, then one row per replayed trace."""
        from html import escape

        rows = "".join(f"<tr><td>{escape(t.sheet)}!{escape(t.name)}</td><td>{t.steps}</td>"
                       f"<td>{t.max_rel_error:.2g}</td><td>{'ok' if t.ok else 'FAILED'}</td></tr>"
                       for t in self.traces)
        head = (f"<b>{escape(self.path)}: {'OK' if self.ok else 'FAILED'}</b> — "
                f"{self.formula_cells:,} formula cells recalculated, "
                f"{len(self.mismatches)} differ from their cached values")
        table = ("<table><tr><th>trace</th><th>values</th><th>largest relative error</th>"
                 f"<th></th></tr>{rows}</table>") if rows else ""
        return head + table


class Reports(list):
    """The reports of several files: ``ok`` when every one is."""

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self)

    @property
    def mismatches(self) -> list[Mismatch]:
        return [m for r in self for m in r.mismatches]

    def _repr_html_(self) -> str:
        return "<br>".join(r._repr_html_() for r in self)


def _is_error(v) -> bool:
    return isinstance(v, str) and v.startswith("#")


def _close(a, b, rtol=RTOL, atol=ATOL) -> tuple[bool, float]:
    if _is_error(a) and _is_error(b):
        # An overflow is #NUM! in Excel and may be #DIV/0! in IronCalc: both say
        # the value is not a number, which is what the cached value says.
        return True, 0.0
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b, 0.0
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if a == b:
            return True, 0.0
        if math.isnan(a) or math.isnan(b):
            return False, math.inf
        diff = abs(a - b)
        scale = max(abs(a), abs(b))
        return diff <= atol + rtol * scale, diff / scale if scale else math.inf
    return a == b, 0.0 if a == b else math.inf


def _check_container(path: Path) -> None:
    if not path.exists():
        raise VerifyError(f"{path}: no such file")
    if path.is_dir():
        raise VerifyError(f"{path}: is a folder, not a workbook")
    if not path.is_file():  # a named pipe would block the read forever
        raise VerifyError(f"{path}: not a regular file")
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            total = 0
            for info in z.infolist():
                total += info.file_size
                if info.file_size > MAX_MEMBER_BYTES:
                    raise VerifyError(f"{path}: member {info.filename} would unpack to "
                                      f"{info.file_size:,} bytes (limit {MAX_MEMBER_BYTES:,}); "
                                      "refusing: a zip bomb, or a sheet too large to check")
                if info.filename.endswith((".xml", ".rels", ".vml")):
                    with z.open(info) as member:
                        head = member.read(4096)
                    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
                        raise VerifyError(f"{path}: member {info.filename} declares a DTD or XML "
                                          "entities, which no spreadsheet needs; refusing (an "
                                          "entity-expansion bomb?)")
            if total > MAX_TOTAL_BYTES:
                raise VerifyError(f"{path}: would unpack to {total:,} bytes in all (limit "
                                  f"{MAX_TOTAL_BYTES:,}); refusing (zip bomb?)")
    except zipfile.BadZipFile:
        raise VerifyError(f"{path}: not an .xlsx/.xlsm workbook (not a zip archive, or "
                          "truncated)") from None
    if "xl/workbook.xml" not in names:
        raise VerifyError(f"{path}: a zip archive but not a workbook (no xl/workbook.xml)")


def _load(path: Path):
    import ironcalc

    try:
        return ironcalc.load_from_xlsx(str(path), "en", "UTC")
    except BaseException as e:  # the Rust side raises WorkbookError, or panics
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        if "specified file not found" in str(e):
            return _load_without_notes(path, e)
        raise VerifyError(f"{path}: IronCalc cannot read it: {e}") from None


def _load_without_notes(path: Path, first_error):
    """IronCalc looks for cell notes where Excel and XlsxWriter put them (xl/comments1.xml)
    and fails on openpyxl's xl/comments/comment1.xml. Notes play no part in the numbers:
    load a copy whose sheets no longer point at them."""
    import ironcalc

    with tempfile.TemporaryDirectory(prefix="sheetdl-verify-") as tmp:
        copy = Path(tmp) / path.name
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(copy, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if re.fullmatch(r"xl/worksheets/_rels/sheet\d+\.xml\.rels", info.filename):
                    data = re.sub(rb'<Relationship [^>]*Type="[^"]*/(comments|vmlDrawing)"'
                                  rb"[^>]*/>", b"", data)
                dst.writestr(info, data)
        try:
            return ironcalc.load_from_xlsx(str(copy), "en", "UTC")
        except BaseException as e:
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            raise VerifyError(f"{path}: IronCalc cannot read it: {first_error}") from None


def _col_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def _cell_name(row: int, col: int) -> str:
    from ..sheet.workbook import col_name

    return f"{col_name(col - 1)}{row}"


class _Workbook:
    """A recalculated IronCalc model plus name and reference resolution."""

    def __init__(self, model):
        self.model = model
        self.sheets = [s["name"] for s in model.get_worksheets_properties()]
        self.index = {n.lower(): i for i, n in enumerate(self.sheets)}
        self.names: dict[tuple[int | None, str], str] = {}
        for d in model.get_defined_name_list():
            self.names[(d["scope"], d["name"].lower())] = d["formula"]

    def name_formula(self, name: str, sheet: int | None) -> str | None:
        return self.names.get((sheet, name.lower())) or self.names.get((None, name.lower()))

    def values(self, name: str, sheet: str | None = None) -> np.ndarray:
        """Recalculated values of a defined name (errors and text become NaN)."""
        si = None if sheet is None else self.index[sheet.lower()]
        formula = self.name_formula(name, si)
        if formula is None:
            raise KeyError(f"no defined name {name!r}" + (f" on sheet {sheet}" if sheet else ""))
        out = []
        for c in self.cells(formula, si or 0):
            v = self.model.get_cell_value(*c)
            out.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                       else math.nan)
        return np.array(out)

    def cells(self, formula: str, default_sheet: int) -> list[tuple[int, int, int]]:
        """Cells of an area reference such as ``adam!$E$8:$E$152``."""
        m = _REF.fullmatch(formula.strip().lstrip("="))
        if not m:
            return []
        sheet_name = (m.group(1) or "").replace("''", "'") or m.group(2)
        si = self.index.get(sheet_name.lower()) if sheet_name else default_sheet
        if si is None:
            return []
        c1, r1 = _col_number(m.group(3)), int(m.group(4))
        c2, r2 = (_col_number(m.group(5)), int(m.group(6))) if m.group(5) else (c1, r1)
        return [(si, r, c) for r in range(r1, r2 + 1) for c in range(c1, c2 + 1)]


def recalculated(path: str | os.PathLike) -> _Workbook:
    """Load ``path`` in IronCalc and recalculate every formula."""
    path = Path(path)
    _check_container(path)
    wb = _Workbook(_load(path))
    wb.model.evaluate()
    return wb


def _dependencies(wb: _Workbook, si: int, formula: str) -> list[tuple[int, int, int]]:
    """Cells a formula reads, by A1 reference or defined name (sheet-qualified or not)."""
    deps = []
    text = re.sub(r'"[^"]*"', "", formula)
    for m in _REF.finditer(text):
        deps += wb.cells(m.group(0), si)
    for word in set(re.findall(r"(?<![A-Za-z0-9_.$!'])([A-Za-z_][A-Za-z0-9_.]*)(?![(!\w])", text)):
        target = wb.name_formula(word, si)
        if target:
            deps += wb.cells(target, si)
    return deps


def verify(path: str | os.PathLike, rtol: float = RTOL, atol: float = ATOL,
           on_cells=None) -> Report:
    """Recalculate ``path`` and check it; ``on_cells(n)`` hears of every ``n`` cells
    compared (for a progress bar: every listed cell where the XML was scanned, else
    every formula cell)."""
    path = Path(path)
    _check_container(path)
    model = _load(path)
    wb = _Workbook(model)
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
    traces = None
    if meta and meta.get("udf") and meta.get("lesson") in REPLAYS:
        # No engine here computes the add-in's calls: a --udf workbook's traces are
        # checked as cached, the numbers it shows (the model before it recalculates),
        # against the reference math.
        traces = _replay(wb, meta, path, rtol, atol)
    try:
        model.evaluate()
    except BaseException as e:
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise VerifyError(f"{path}: IronCalc could not recalculate it: {e}") from None
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
    same, rel = _close(before, after, rtol, atol)
    if same:
        report.max_rel_error = max(report.max_rel_error, rel)
        return
    sheet = wb.sheets[si]
    unknown = [fn for fn in _UNKNOWN_FUNCTION.findall(f.lstrip("="))]
    if unknown and after == "#NAME?":
        for fn in sorted(set(unknown)):
            report.unsupported.setdefault(fn, []).append(f"{sheet}!{_cell_name(r, c)}")
        unsupported_roots.add(key)
        return
    formulas[key] = f
    pending.append(Mismatch(sheet, _cell_name(r, c), f, before, after))
    pending_keys.append(key)


def _finish(path, model, wb, report, meta, traces, formulas, volatile_roots,
            unsupported_roots, pending, pending_keys, rtol, atol) -> "Report":
    """Sort the pending mismatches (volatile, from unsupported functions, carried overflow,
    engine differences, real), then replay the lesson's traces."""
    overflow_roots = {k for k, mm in zip(pending_keys, pending) if _carried_overflow(mm)}
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
        report.from_unsupported = sorted((f"{wb.sheets[k[0]]}!{_cell_name(k[1], k[2])}"
                                          for k in beyond), key=_sort_key)
        tainted = tainted | beyond
    overflowed = set()
    if overflow_roots:
        pending_set = set(pending_keys)
        overflowed = _reaching(wb, model, overflow_roots, [k for k in every if k in pending_set],
                               formulas, arrays)
    for key, mm in zip(pending_keys, pending):
        if key in tainted:
            continue
        reason = CARRIED_OVERFLOW if key in overflowed else next(
            (why for applies, why in ENGINE_DIFFERS if applies(mm.formula)), None)
        if reason:
            report.engine_differs.append(EngineDifference(**mm.__dict__, reason=reason))
        else:
            report.mismatches.append(mm)
    volatile_cells = {f"{wb.sheets[k[0]]}!{_cell_name(k[1], k[2])}"
                      for k in tainted | volatile_roots} - set(report.from_unsupported)
    report.volatile = sorted(volatile_cells, key=_sort_key)

    if meta and meta.get("lesson") in REPLAYS:
        # the lr finder alone is a graddesc lesson with no optimizer sheets
        report.lesson = "lrfind" if meta["lesson"] == "graddesc" and not meta.get("sheets") \
            and meta.get("lrfind") else meta["lesson"]
        report.traces = traces if traces is not None else _replay(wb, meta, path, rtol, atol)
    return report


def _replay(wb: "_Workbook", meta: dict, path, rtol, atol) -> list:
    try:
        return REPLAYS[meta["lesson"]](wb, meta, path, rtol, atol)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        # docProps/custom.xml is the file's word, not ours: a forged or damaged one
        raise VerifyError(f"{path}: its sheetdl metadata (docProps/custom.xml) is not "
                          f"what sheetdl writes ({type(e).__name__}: {e}); not replayed") \
            from None


def _formula_cells(model, si: int):
    """(row, col) of sheet ``si``'s formula cells, among the cells the file lists."""
    for s, r, c in sorted(model.get_all_cells()):
        if s == si and model.get_cell_formula(si, r, c):
            yield r, c


def _sort_key(cell: str):
    sheet, _, ref = cell.rpartition("!")
    m = re.match(r"([A-Z]+)(\d+)", ref)
    return (sheet, int(m.group(2)), _col_number(m.group(1))) if m else (sheet, 0, 0)


def _array_members(path: Path, sheets: list[str]) -> dict:
    """{(sheet index, row, col) of an array formula's member: its anchor key}.

    IronCalc reports a formula only on an array formula's first cell; the
    others must be traced through it. Read from the sheet XML with defusedxml.
    """
    from defusedxml import ElementTree as SafeET

    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
          "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships"}
    rel_ns = "{http://schemas.openxmlformats.org/package/2006/relationships}"
    out: dict = {}
    try:
        with zipfile.ZipFile(path) as z:
            book = SafeET.fromstring(z.read("xl/workbook.xml"))
            rels = SafeET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
            target = {r.get("Id"): r.get("Target") for r in rels.iter(f"{rel_ns}Relationship")}
            for sheet in book.iter(f"{{{ns['m']}}}sheet"):
                name = sheet.get("name")
                rid = sheet.get(f"{{{ns['r']}}}id")
                part = target.get(rid, "").lstrip("/")
                part = part if part.startswith("xl/") else f"xl/{part}"
                if name not in sheets or part not in z.namelist():
                    continue
                si = sheets.index(name)
                for _, el in SafeET.iterparse(z.open(part)):
                    if el.tag == f"{{{ns['m']}}}f" and el.get("t") == "array" and el.get("ref"):
                        m = _REF.fullmatch(el.get("ref"))
                        if m:
                            c1, r1 = _col_number(m.group(3)), int(m.group(4))
                            c2, r2 = ((_col_number(m.group(5)), int(m.group(6))) if m.group(5)
                                      else (c1, r1))
                            for r in range(r1, r2 + 1):
                                for c in range(c1, c2 + 1):
                                    if (r, c) != (r1, c1):
                                        out[(si, r, c)] = (si, r1, c1)
                    if el.tag == f"{{{ns['m']}}}row":
                        el.clear()
    except Exception:  # a part we cannot read only loses this refinement
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


def _numbers(wb: _Workbook, name: str, si: int | None, path) -> list[float]:
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
            raise VerifyError(f"{path}: {wb.sheets[s]}!{_cell_name(r, c)} (named {name}) holds "
                              f"{v!r}, not a finite number")
    return [float(v) for v in out]


def _compare(wb: _Workbook, sheet_label: str, name: str, si, want, rtol, atol) -> TraceCheck:
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
                                  f"{wb.sheets[cell[0]]}!{_cell_name(cell[1], cell[2])}", True)
    for cell, g, w in zip(cells, got, want):
        w = float(w)
        if not math.isfinite(w):
            same = isinstance(g, str) and g.startswith("#")
            rel = 0.0 if same else math.inf
        else:
            same, rel = _close(g, w, rtol, atol)
        if rel > worst or not same:
            worst = max(worst, rel)
            worst_cell = f"{wb.sheets[cell[0]]}!{_cell_name(cell[1], cell[2])}"
        ok = ok and same
    return TraceCheck(sheet_label, name, len(want), worst, worst_cell, ok)


def _replay_softmax(wb: _Workbook, meta: dict, path, rtol, atol) -> list[TraceCheck]:
    X, labels = _examples(wb, "labels", path)
    if np.any(labels != np.round(labels)) or labels.min() < 0:
        raise VerifyError(f"{path}: labels must be whole numbers from 0")
    return _train_and_finder(wb, meta, path, meta["steps"], lambda sspec, steps, si: (
        _replay_softmax_sheet(wb, meta, sspec, steps, si, X, labels, path, rtol, atol)))


def _examples(wb: _Workbook, target: str, path) -> tuple[np.ndarray, np.ndarray]:
    """(X as examples × features, the named targets) of a full-batch lesson."""
    t = np.array(_numbers(wb, target, None, path))
    X = np.array(_numbers(wb, "X", None, path))
    if len(t) == 0 or len(X) % len(t):
        raise VerifyError(f"{path}: names X ({len(X)} cells) and {target} ({len(t)} cells) "
                          "do not describe the same examples")
    return X.reshape(len(t), -1), t


def _train_and_finder(wb: _Workbook, meta: dict, path, steps, replay_sheet) -> list:
    """``replay_sheet(schedule spec, steps, sheet index)`` for the train sheet (index None:
    its names are workbook-scoped) and, when the workbook has one, its lr finder sheet."""
    checks = replay_sheet(meta.get("schedule"), steps, None)
    if meta.get("lrfind"):
        f = meta["lrfind"]
        checks += replay_sheet(f["schedule"], f["steps"], _sheet_index(wb, f["sheet"], path))
    return checks


def _bounded_work(path, work: int, steps: int | None = None) -> None:
    """Refuse metadata that asks for more replay than any sheet could show, before any
    array is allocated (docProps/custom.xml is the file's word, not ours)."""
    if steps is not None and not (isinstance(steps, int) and 0 < steps <= EXCEL_MAX_ROWS):
        raise VerifyError(f"{path}: its sheetdl metadata asks for {steps!r} steps; a sheet "
                          f"holds at most {EXCEL_MAX_ROWS:,}: not replayed")
    if work > MAX_REPLAY_WORK:
        raise VerifyError(f"{path}: its sheetdl metadata asks for a replay of {work:,} "
                          "operations, more than any sheet holds: not replayed")


def _replay_mlp(wb: _Workbook, meta: dict, path, rtol, atol) -> list[TraceCheck]:
    X, y = _examples(wb, "y", path)
    return _train_and_finder(wb, meta, path, meta["steps"], lambda sspec, steps, si: (
        _replay_mlp_sheet(wb, meta, sspec, steps, si, X, y, path, rtol, atol)))


def _replay_mlp_sheet(wb, meta, sspec, steps, si, X, y, path, rtol, atol):
    """One training sheet of the mlp lesson, from its named start and inputs."""
    from ..lessons.mlp import model as mlp

    label = "train" if si is None else wb.sheets[si]
    part = {name: np.array(_numbers(wb, name, si, path))
            for name in ("W1_init", "b1_init", "W2_init", "b2_init")}
    shape = mlp.Shape(X.shape[1], len(part["b1_init"]))
    if (part["W1_init"].size, part["W2_init"].size, part["b2_init"].size) != \
            (shape.hidden * shape.features, shape.hidden, 1):
        raise VerifyError(f"{path}: names W1_init, W2_init and b2_init do not fit "
                          f"{shape.hidden} hidden units of {shape.features} features")
    kind = meta["optimizer"]
    hyper = _sheet_hyper(wb, optim.OPTIMIZERS[kind], sspec, si, path)
    sched = _schedule(wb, sspec, si, path, hyper.get("lr"))
    opt = optim.make(kind, **meta["options"], **hyper)
    theta0 = shape.pack(*(part[n] for n in ("W1_init", "b1_init", "W2_init", "b2_init")))
    _bounded_work(path, steps * X.shape[0] * shape.size, steps)
    with np.errstate(all="ignore"):
        tr = mlp.train(opt, shape, X, y, theta0, steps, sched,
                       _numbers(wb, "fd_h", si, path)[0])
    W1, b1, W2, b2 = shape.unpack(tr.theta[-1])
    want = {"loss_trace": [s.loss for s in tr.steps], "dead_trace": [s.dead for s in tr.steps],
            "W1_final": W1, "b1_final": b1, "W2_final": W2, "b2_final": b2}
    if sched is not None:
        want["lr_trace"] = [s["lr"] for s in tr.shown]
    if sspec and sspec.get("kind") == "lrfind":
        want.update(_finder_want(wb, si, path, want["lr_trace"], want["loss_trace"]))
    return [_compare(wb, label, name, si, w, rtol, atol) for name, w in want.items()]


def _sheet_index(wb: _Workbook, sheet: str, path) -> int:
    si = wb.index.get(sheet.lower())
    if si is None:
        raise VerifyError(f"{path}: sheet {sheet!r} is missing (sheetdl wrote it)")
    return si


def _replay_softmax_sheet(wb, meta, sspec, steps, si, X, labels, path, rtol, atol):
    """One training sheet (``si`` None: the workbook-scoped train sheet)."""
    from ..lessons.softmax import model as softmax

    label = "train" if si is None else wb.sheets[si]
    bias = np.array(_numbers(wb, "bias_init", si, path))
    W = np.array(_numbers(wb, "W_init", si, path)).reshape(len(bias), X.shape[1])
    kind = meta["optimizer"]
    hyper = _sheet_hyper(wb, optim.OPTIMIZERS[kind], sspec, si, path)
    sched = _schedule(wb, sspec, si, path, hyper.get("lr"))
    opt = optim.make(kind, **meta["options"], **hyper)
    _bounded_work(path, steps * X.size * len(bias), steps)
    with np.errstate(all="ignore"):
        tr = softmax.train(opt, X, labels.astype(int), W, bias, steps, sched)
    final_W, final_b = softmax.unpack(tr.theta[-1], len(bias), X.shape[1])
    want = {"loss_trace": [s.loss for s in tr.steps], "W_final": final_W, "bias_final": final_b}
    if sched is not None:
        want["lr_trace"] = [s["lr"] for s in tr.shown]
    if sspec and sspec.get("kind") == "lrfind":
        want.update(_finder_want(wb, si, path, want["lr_trace"], want["loss_trace"]))
    return [_compare(wb, label, name, si, w, rtol, atol) for name, w in want.items()]


def _finder_want(wb, si, path, lr, loss) -> dict:
    from ..math import lrfind

    with _named_inputs(wb, si, path):
        _, beta, stop = lrfind.settings(len(lr), _numbers(wb, "smooth_beta", si, path)[0],
                                        _numbers(wb, "stop_factor", si, path)[0])
    found = lrfind.analyse(lr, loss, beta, stop)
    out = {"smooth_loss_trace": found.smooth}
    if found.lr_steep != "" and found.lr_min10 != "":
        out["lr_suggested"] = [found.lr_steep, found.lr_min10]
    return out


def _matrix(wb: _Workbook, name: str, path, blanks: bool = False, si=None) -> np.ndarray:
    """A named rectangle as a matrix (sheet-scoped when ``si`` is given); blank or text
    cells become NaN only if ``blanks`` (workbook-scoped names only)."""
    formula = wb.name_formula(name, si)
    cells = wb.cells(formula or "", si or 0)
    if not cells:
        where = "the workbook" if si is None else f"sheet {wb.sheets[si]}"
        raise VerifyError(f"{path}: {where} has no defined name {name!r} over cells")
    rows = sorted({r for _, r, _ in cells})
    values = wb.values(name) if blanks else np.array(_numbers(wb, name, si, path))
    return values.reshape(len(rows), -1)


def _replay_collab(wb: _Workbook, meta: dict, path, rtol, atol) -> list[TraceCheck]:
    R = _matrix(wb, "ratings", path, blanks=True)
    if meta.get("udf"):  # one add-in call: the start is the seeded init, as collab_train makes it
        return _replay_collab_udf(wb, meta, R, path, rtol, atol)
    return _train_and_finder(wb, meta, path, meta["epochs"], lambda sspec, epochs, si: (
        _replay_collab_sheet(wb, meta, sspec, epochs, si, R, path, rtol, atol)))


def _replay_collab_sheet(wb, meta, sspec, epochs, si, R, path, rtol, atol):
    from ..lessons.collab import model as collab

    label = "train" if si is None else wb.sheets[si]
    m = lambda name: _matrix(wb, name, path, si=si)
    U, V = m("user_factors_init"), m("movie_factors_init")
    bu, bm = m("user_bias_init").ravel(), m("movie_bias_init").ravel()
    shape = collab.Shape(U.shape[0], V.shape[1], U.shape[1])
    if R.shape != (shape.users, shape.movies):
        raise VerifyError(f"{path}: ratings is {R.shape[0]}×{R.shape[1]} but the factors are "
                          f"for {shape.users} users × {shape.movies} movies")
    kind = meta["optimizer"]
    hyper = _sheet_hyper(wb, optim.OPTIMIZERS[kind], sspec, si, path)
    sched = _schedule(wb, sspec, si, path, hyper.get("lr"))
    y_range = None
    if meta.get("y_range"):
        y_range = (_numbers(wb, "y_min", si, path)[0], _numbers(wb, "y_max", si, path)[0])
    opt = optim.make(kind, **meta["options"], **hyper)
    _bounded_work(path, epochs * R.size * (shape.factors + 1), epochs)
    with np.errstate(all="ignore"):
        tr = collab.train(opt, R, collab.pack(U, bu, V, bm), shape, epochs, y_range, sched)
    Uf, buf, Vf, bmf = shape.unpack(tr.theta[-1])
    want = {"loss_trace": [s.loss for s in tr.steps], "user_factors_final": Uf,
            "movie_factors_final": Vf, "user_bias_final": buf, "movie_bias_final": bmf}
    if sched is not None:
        want["lr_trace"] = [s["lr"] for s in tr.shown]
    if sspec and sspec.get("kind") == "lrfind":
        want.update(_finder_want(wb, si, path, want["lr_trace"], want["loss_trace"]))
    return [_compare(wb, label, name, si, w, rtol, atol) for name, w in want.items()]


def _replay_collab_udf(wb, meta, R, path, rtol, atol) -> list[TraceCheck]:
    from ..lessons.collab import model as collab

    shape = collab.Shape(R.shape[0], R.shape[1], meta["factors"])
    hyper = {h: _numbers(wb, h, None, path)[0] for h in ("lr", "weight_decay")}
    y_range = ((_numbers(wb, "y_min", None, path)[0], _numbers(wb, "y_max", None, path)[0])
               if meta.get("y_range") else None)
    opt = optim.make(meta["optimizer"], **meta["options"], **hyper)
    with np.errstate(all="ignore"):
        tr = collab.train(opt, R, collab.init_params(shape, meta["seed"]), shape,
                          meta["epochs"], y_range)
    return [_compare(wb, "train", "loss_trace", None, [s.loss for s in tr.steps], rtol, atol)]


def _schedule(wb: _Workbook, spec: dict | None, si, path, lr: float | None):
    """The sheet's schedule rebuilt from its metadata and its own named inputs."""
    if not spec or spec.get("kind") in (None, "constant", "anneal"):
        return None
    from ..math import schedules

    probe = schedules.Schedule(kind=spec["kind"], cycles=spec.get("cycles"))
    given = {k: _numbers(wb, k, si, path)[0] for k in probe.inputs() + ["steps"]}
    for k in ("steps", "step_size"):  # whole numbers, or check() says which is not
        if k in given and given[k] == int(given[k]):
            given[k] = int(given[k])
    sched = schedules.Schedule(kind=spec["kind"], cycles=spec.get("cycles"),
                               convention=spec.get("convention", "torch"),
                               lr=1.0 if lr is None else lr, **given)
    with _named_inputs(wb, si, path):
        schedules.check(sched)
    return sched


@contextlib.contextmanager
def _named_inputs(wb: _Workbook, si, path):
    """Turn a rule's ValueError about inputs edited into values it refuses (steps 0, a
    negative anneal_ratio...) into a VerifyError naming the sheet."""
    try:
        yield
    except ValueError as e:
        where = "the train sheet" if si is None else f"sheet {wb.sheets[si]}"
        raise VerifyError(f"{path}: {where}: its schedule inputs cannot be replayed: {e}") \
            from None


def _sheet_hyper(wb: _Workbook, cls, spec: dict | None, si, path) -> dict:
    """Named hyperparameters, less those the schedule sets per step."""
    from ..math import schedules

    kind = (spec or {}).get("kind")
    probe = schedules.Schedule(kind=kind, cycles=spec.get("cycles")) \
        if kind in schedules.Schedule.INPUTS else None
    return {h: _numbers(wb, h, si, path)[0] for h in cls.hyperparameters
            if probe is None or not probe.sets(h)}


def _replay_graddesc(wb: _Workbook, meta: dict, path, rtol, atol) -> list[TraceCheck]:
    from ..math import schedules

    x = np.array(_numbers(wb, "x", None, path))
    y = np.array(_numbers(wb, "y", None, path))
    if len(x) != len(y):
        raise VerifyError(f"{path}: names x and y cover {len(x)} and {len(y)} cells")
    checks = []
    sheets = dict(meta["sheets"])
    if meta.get("lrfind"):
        sheets[meta["lrfind"]["sheet"]] = meta["lrfind"]
    for sheet, spec in sheets.items():
        si = _sheet_index(wb, sheet, path)
        kind = spec["optimizer"]
        cls = optim.OPTIMIZERS[kind]
        sspec = spec.get("schedule")
        hyper = _sheet_hyper(wb, cls, sspec, si, path)
        sched = _schedule(wb, sspec, si, path, hyper.get("lr"))
        anneal = None
        if sspec and sspec.get("kind") == "anneal":
            with _named_inputs(wb, si, path):
                anneal = schedules.Anneal(_numbers(wb, "anneal_ratio", si, path)[0],
                                          _numbers(wb, "anneal_factor", si, path)[0])
        b_init = _numbers(wb, "b_init", si, path)[0]
        a_init = _numbers(wb, "a_init", si, path)[0]
        opt = optim.make(kind, **spec["options"], **hyper)
        finder = sheet == meta.get("lrfind", {}).get("sheet")
        epochs = meta["epochs"]
        _bounded_work(path, 0, sched.steps if finder else
                      epochs * len(x) if isinstance(epochs, int) else epochs)
        with np.errstate(all="ignore"):
            if finder:
                trace = linear.train_full_batch(opt, x, y, steps=sched.steps, b_init=b_init,
                                                a_init=a_init, schedule=sched)
            else:
                trace = compiled.train(opt, x, y, epochs=meta["epochs"], b_init=b_init,
                                       a_init=a_init, schedule=sched, anneal=anneal,
                                       drop_last_update=meta.get("drop_last_update", False))
        expected = {"b_trace": trace.b_trace, "a_trace": trace.a_trace, "loss_trace": trace.loss}
        if sched is not None or anneal is not None:
            expected["lr_trace"] = trace.lr
        if finder:
            expected.update(_finder_want(wb, si, path, trace.lr, trace.loss))
        checks += [_compare(wb, sheet, name, si, want, rtol, atol)
                   for name, want in expected.items()]
    return checks


#: Each lesson's replay of its traces, by the lesson its metadata names.
REPLAYS = {"graddesc": _replay_graddesc, "softmax": _replay_softmax, "collab": _replay_collab,
           "mlp": _replay_mlp}
