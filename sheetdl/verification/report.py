"""What ``verify`` found: the report of one workbook, and the comparison of two values."""
from __future__ import annotations

import math
from dataclasses import dataclass, field


RTOL, ATOL = 1e-9, 1e-12


def tolerance(name: str, value) -> float:
    """``value`` as a tolerance, or a ValueError naming ``name``. Past 1, a relative
    tolerance would pass any two values of one sign (and overflow on the largest)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not (0 <= value <= 1):
        raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
    return float(value)


MAX_LISTED = 50


class VerifyError(ValueError):
    """The file cannot be verified; the message names the file and the reason."""


class MissingWorkbook(VerifyError, FileNotFoundError):
    """There is no file at the path: a VerifyError, and what ``open`` would have raised."""


@dataclass
class Mismatch:
    sheet: str
    cell: str
    formula: str
    cached: object
    recalculated: object


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
    #: formula cells the file stores with no value (written without calculating, as
    #: openpyxl does): recalculated, but with nothing to compare against; not failures
    uncached: list[str] = field(default_factory=list)
    #: chart references that reach outside the workbook (or, in a sheetdl workbook,
    #: outside the cells its sheets fill): each a failure
    charts: list[str] = field(default_factory=list)
    lesson: str | None = None
    max_rel_error: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.charts and all(t.ok for t in self.traces)

    def to_json(self) -> dict:
        return {
            "path": self.path, "ok": self.ok, "engine": "ironcalc", "lesson": self.lesson,
            "formula_cells": self.formula_cells, "max_rel_error": self.max_rel_error,
            "mismatches": [m.__dict__ for m in self.mismatches],
            "volatile": self.volatile, "unsupported": self.unsupported,
            "engine_differs": [d.__dict__ for d in self.engine_differs],
            "from_unsupported": self.from_unsupported,
            "traces": [t.__dict__ for t in self.traces], "charts": self.charts,
            "uncached": self.uncached,
        }

    def summary(self) -> str:
        lines = [f"{self.path}: {'OK' if self.ok else 'FAILED'}"
                 + (f" (sheetdl {self.lesson} workbook)" if self.lesson else "")]
        agree = self.formula_cells - len(self.mismatches) - len(self.volatile) - sum(
            len(v) for v in self.unsupported.values()) - len(self.engine_differs) - len(
            self.from_unsupported) - len(self.uncached)
        lines.append(f"  {self.formula_cells} formula cells recalculated by IronCalc; "
                     f"{agree} agree with their cached values "
                     f"(largest relative difference {self.max_rel_error:.2g})")
        if self.mismatches:
            lines.append(f"  {len(self.mismatches)} differ from their cached values:")
            for m in self.mismatches[:MAX_LISTED]:
                lines.append(f"    {m.sheet}!{m.cell} ={m.formula.lstrip('=')}: cached "
                             f"{m.cached!r}, recalculated {m.recalculated!r}")
        if self.uncached:
            more = (f" and {len(self.uncached) - MAX_LISTED} more"
                    if len(self.uncached) > MAX_LISTED else "")
            lines.append(f"  {len(self.uncached)} hold no cached value (the file was written "
                         "without calculating, as openpyxl writes formulas), so there is "
                         "nothing to compare; open and save it in Excel or LibreOffice to "
                         f"store the values: {', '.join(self.uncached[:MAX_LISTED])}{more}")
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
        if self.charts:
            lines.append(f"  {len(self.charts)} chart reference"
                         f"{'s' if len(self.charts) > 1 else ''} FAILED:")
            lines += [f"    {c}" for c in self.charts[:MAX_LISTED]]
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


def is_error(v) -> bool:
    return isinstance(v, str) and v.startswith("#")


def close_enough(a, b, rtol=RTOL, atol=ATOL) -> tuple[bool, float]:
    if is_error(a) and is_error(b):
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
