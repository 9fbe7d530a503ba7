"""What a lesson's layout hands the writer: sheets of cells, names, charts, notes.

Rows are produced lazily, in order, so the writer can stream a 100,000-row
sheet in constant memory. A cell is a tuple ``(col, formula, value, style)``:
``formula`` is an A1 formula string starting with ``=`` or None for a plain
value, ``value`` the number or text shown (for a formula, its cached result).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

#: Functions some engines lack, treat as volatile or compute differently (LOG is
#: base 10 in Excel); no sheetdl formula uses them.
FORBIDDEN = re.compile(r"\b(RAND|RANDBETWEEN|OFFSET|INDIRECT|NOW|TODAY|LAMBDA|LET|SEQUENCE|"
                       r"FILTER|SORT|UNIQUE|XLOOKUP|LOG)\(")

@dataclass(frozen=True)
class ArrayFormula:
    """A formula whose result fills rows first_row..last_row × cols first..last; the
    cell holding it is the top-left one, and the other cells of the area carry
    their cached values as plain cells in their own rows."""

    text: str
    last_row: int
    last_col: int


Cell = tuple  # (col, formula | ArrayFormula | None, value, style | None)


@dataclass
class RunColumn:
    """One column of a ``Run``: a value per row (the cached results), and the formulas as
    ``(start, stop, template)`` stretches covering rows 0..length of the run in order,
    where ``template.render(row)`` is the formula at sheet row ``row`` and shifts its
    relative references with the row (a shared formula); ``formulas`` None for plain
    values."""

    col: int
    values: object  # a NumPy array, or a sequence of numbers and text
    style: str | None
    formulas: list[tuple[int, int, object]] | None = None


@dataclass
class Run:
    """Rows ``first`` .. ``first + length - 1`` that hold the same columns, one step a row:
    the writer turns each column into text at once and writes its formulas as shared
    formulas. ``beside`` holds other cells on those rows (a summary table), by row."""

    first: int
    length: int
    columns: list[RunColumn]
    beside: dict[int, list[Cell]] = field(default_factory=dict)

    def rows(self) -> Iterator[tuple[int, list[Cell]]]:
        """The run cell by cell, as ``(row, cells)`` (for tools that read cells one by one)."""
        for i in range(self.length):
            row = self.first + i
            cells = []
            for c in self.columns:
                formula = next((t.render(row) for a, b, t in c.formulas if a <= i < b), None) \
                    if c.formulas else None
                v = c.values[i]
                cells.append((c.col, formula, v.item() if hasattr(v, "item") else v, c.style))
            cells += self.beside.get(row, [])
            yield row, sorted(cells, key=lambda c: c[0])


#: A sheet's content, in row order: ``(row, cells)`` pairs and ``Run``s.
Rows = Callable[[], Iterator["tuple[int, list[Cell]] | Run"]]


def cell_rows(rows: Rows) -> Iterator[tuple[int, list[Cell]]]:
    """``rows()`` with every ``Run`` spelt out cell by cell."""
    for item in rows():
        if isinstance(item, Run):
            yield from item.rows()
        else:
            yield item


def col_name(col: int) -> str:
    """0-based column index to letters: 0 → A, 26 → AA."""
    name = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        name = chr(65 + rem) + name
    return name


def ref(row: int, col: int, absolute: bool = False) -> str:
    """0-based (row, col) to A1, e.g. (0, 0) → A1 or $A$1."""
    if absolute:
        return f"${col_name(col)}${row + 1}"
    return f"{col_name(col)}{row + 1}"


def area(sheet: str, first_row: int, col: int, last_row: int, last_col: int | None = None) -> str:
    """An absolute range on ``sheet``: ``adam!$E$8:$E$152``."""
    last_col = col if last_col is None else last_col
    return f"{sheet}!{ref(first_row, col, True)}:{ref(last_row, last_col, True)}"


@dataclass
class Series:
    name: str
    categories: str
    values: str
    #: points without a line (data), rather than a line without points (a trace)
    markers: bool = False


@dataclass
class Chart:
    row: int
    col: int
    title: str
    x_title: str
    y_title: str
    series: list[Series]
    log_y: bool = False
    width: int = 480
    height: int = 288
    #: a scatter chart with a log-scaled x axis (loss against learning rate)
    log_x: bool = False
    #: a scatter chart: x is a number (a feature, a step), not a category
    scatter: bool = False
    #: the y axis's range where the quantity has one (an accuracy: 0 to 1); else the engine's
    y_range: tuple[float, float] | None = None


#: a colour scale from white (the smallest value) to the course sheet's red (the largest)
SEQUENTIAL = "sequential"
#: blue for negative, white at 0, red for positive: a kernel, a gradient
DIVERGING = "diverging"
#: Excel's "light red fill with dark red text": a dead unit, a misclassified example
HIGHLIGHT = {"bg_color": "#FFC7CE", "font_color": "#9C0006"}


@dataclass
class Sheet:
    name: str
    rows: Rows
    widths: dict[int, float] = field(default_factory=dict)
    #: row heights in points, for rows whose text wraps
    heights: dict[int, float] = field(default_factory=dict)
    freeze: tuple[int, int] | None = None
    notes: list[tuple[int, int, str]] = field(default_factory=list)
    #: data validation: (row, col, options) for a cell, (row, col, last_row, last_col,
    #: options) for a block of cells
    validations: list[tuple] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    #: heatmaps: (space-separated A1 ranges, ``SEQUENTIAL`` or ``DIVERGING``), each a
    #: colour-scale conditional format over the union of its ranges
    color_scales: list[tuple[str, str]] = field(default_factory=list)
    #: cells that stand out, filled in ``HIGHLIGHT``'s light red: (space-separated A1 ranges,
    #: a comparison "==", "!=" or "not between", its bound(s) written for the first range's
    #: top-left cell, e.g. ("P9:P14", "==", ("0",))). A cell-value rule, not a formula
    #: rule: a formula rule on the sheet changes how IronCalc evaluates an overflow
    highlights: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    #: sheet-scoped defined names: name → absolute A1 reference on this sheet
    names: dict[str, str] = field(default_factory=dict)
    #: workbook-scoped names this sheet's formulas use: name → ``sheet!$A$1``
    book_names: dict[str, str] = field(default_factory=dict)


@dataclass
class Book:
    sheets: list[Sheet]
    #: workbook-scoped defined names: name → ``sheet!$A$1:$A$9``
    names: dict[str, str]
    title: str
    #: JSON-able description a verifier needs to replay the lesson
    meta: dict
    #: an Excel VBA project (vbaProject.bin) to embed; the file must then be .xlsm
    vba_project: bytes | None = None


def static_rows(rows: Iterable[tuple[int, list[Cell]]]) -> Rows:
    """Rows known up front (small sheets); cells given for one row in several pieces are
    merged, in column order."""
    merged: dict[int, list[Cell]] = {}
    for r, cells in rows:
        merged.setdefault(r, []).extend(cells)
    ordered = [(r, sorted(merged[r], key=lambda c: c[0])) for r in sorted(merged)]
    return lambda: iter(ordered)


#: The significant digits a column's number format shows: enough to see a value change
#: from step to step, few enough to read (the course sheets show 4–6 digits).
SIGNIFICANT = 4


def number_format(values) -> str:
    """An Excel number format suited to a column's magnitudes.

    Whole numbers get ``0``; values whose largest magnitude is between 0.001 and 10⁵
    and that span under four decades (ignoring the smallest tenth) get fixed decimals
    (``SIGNIFICANT`` digits of the largest, at least two of the small ones); anything
    else, tiny, huge or spanning many decades (a gradient that shrinks as training
    converges), is scientific.
    """
    import numpy as np

    try:
        v = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):  # a column with text ("" where a formula shows nothing)
        v = np.array([x for x in np.asarray(values, dtype=object).ravel()
                      if isinstance(x, (int, float))], dtype=float)
    v = np.abs(v[np.isfinite(v)])
    if v.size == 0 or np.all(v == np.round(v)) and v.max() < 1e9:
        return "0"
    v = v[v > 0]
    # a few tiny values (a weight that happens to be near 0) need not make the whole
    # column scientific: the smallest tenth may show fewer digits
    hi, lo = float(v.max()), float(np.percentile(v, 10))
    if not 1e-3 <= hi < 1e5 or hi / lo > 1e4:
        return "0.000E+00"
    decimals = max(SIGNIFICANT - 1 - int(np.floor(np.log10(hi))),
                   1 - int(np.floor(np.log10(lo))))
    decimals = min(max(decimals, 0), 6)
    return "0." + "0" * decimals if decimals else "0"


def number_style(base: str | None, values) -> str:
    """``base`` (a writer style such as ``general`` or ``summary``) with the number format
    ``number_format(values)`` picks: the ``name|format`` form the writer understands."""
    return f"{base or 'general'}|{number_format(values)}"
