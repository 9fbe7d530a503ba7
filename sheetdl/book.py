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
Rows = Callable[[], Iterator[tuple[int, list[Cell]]]]


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


@dataclass
class Sheet:
    name: str
    rows: Rows
    widths: dict[int, float] = field(default_factory=dict)
    freeze: tuple[int, int] | None = None
    notes: list[tuple[int, int, str]] = field(default_factory=list)
    validations: list[tuple[int, int, dict]] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    #: sheet-scoped defined names: name → absolute A1 reference on this sheet
    names: dict[str, str] = field(default_factory=dict)


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
    """Rows known up front (small sheets)."""
    rows = sorted(rows, key=lambda r: r[0])
    return lambda: iter(rows)
