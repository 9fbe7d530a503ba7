"""A worksheet's ``<sheetData>``: its cells, written directly as XML text.

The cells are the bulk of a large workbook (2.5 million formulas on a 100,000-row
Adam sheet), and XlsxWriter spends most of its time on each one. Here a cell is one
string built from pieces made once per column, and a column of a ``book.Run`` is
written as a *shared formula*: the formula text once per stretch of rows that
compute alike (``<f t="shared" ref="E9:E100008" si="0">…</f>``), then only
``<f t="shared" si="0"/>`` and the cached value. Excel, LibreOffice and IronCalc
expand a shared formula by shifting its relative references row by row, which is
what a template rendered at each row gives, and IronCalc loads such a sheet several
times faster. ``xlsx`` writes everything around the cells with XlsxWriter.
"""
from __future__ import annotations

import math
import re
from typing import Callable, Iterator

import numpy as np

from ..sheet.workbook import ArrayFormula, Run, col_name
from ..lessons.data import EXCEL_MAX_FORMULA

#: The error values a formula's cached result may be (stored with ``t="e"``).
ERRORS = frozenset({"#DIV/0!", "#N/A", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!"})
#: Rows of a run turned into text at a time: the arrays of one chunk stay small.
CHUNK = 4096

_ESCAPE = re.compile(r"[&<>]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")


def escape(text: str) -> str:
    """Text for an XML element: & < > escaped, control characters as Excel's _xHHHH_."""
    if _ESCAPE.search(text):
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: f"_x{ord(m.group()):04X}_", text)
    return text


def number_text(value: float) -> str:
    """The shortest text that reads back as the same float (whole numbers without .0)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)


def _result(value) -> tuple[str, str]:
    """A formula's cached value as (type attribute, <v> text): a number, text, an error
    or a boolean; a non-finite number is #NUM!, as every engine shows it."""
    if isinstance(value, bool):
        return ' t="b"', "1" if value else "0"
    if isinstance(value, str):
        return (' t="e"', value) if value in ERRORS else (' t="str"', escape(value))
    if value is None:
        return "", "0"
    if not math.isfinite(value):
        return ' t="e"', "#NUM!"
    return "", number_text(value)


class SheetData:
    """Streams one sheet's rows as XML to ``write``, keeping the sheet's extent.

    ``style_index(name)`` is the xf index of a writer style (``None`` for no style).
    """

    def __init__(self, write: Callable[[str], object], style_index: Callable[[str], int],
                 sheet: str, heights: dict[int, float] | None = None):
        self.write, self.style_index, self.sheet = write, style_index, sheet
        self.heights = heights or {}
        self.rows = self.cols = (None, None)
        self._shared = 0  # the next shared formula's si, per sheet
        self._last_row = -1

    # ------------------------------------------------------------------ extent
    def _extent(self, first_row: int, last_row: int, first_col: int, last_col: int) -> None:
        lo_r, hi_r = self.rows
        lo_c, hi_c = self.cols
        self.rows = (first_row if lo_r is None else min(lo_r, first_row),
                     last_row if hi_r is None else max(hi_r, last_row))
        self.cols = (first_col if lo_c is None else min(lo_c, first_col),
                     last_col if hi_c is None else max(hi_c, last_col))

    def dimension(self) -> str:
        """The ``<dimension ref>`` of what was written: A1 for an empty sheet."""
        if self.rows[0] is None:
            return "A1"
        first = f"{col_name(self.cols[0])}{self.rows[0] + 1}"
        last = f"{col_name(self.cols[1])}{self.rows[1] + 1}"
        return first if first == last else f"{first}:{last}"

    def _in_order(self, row: int) -> None:
        if row <= self._last_row:
            raise ValueError(f"{self.sheet}: row {row + 1} comes after row {self._last_row + 1}; "
                             "rows must be written in order")

    def _row_start(self, row: int) -> str:
        self._in_order(row)
        previous, self._last_row = self._last_row, row
        if not self.heights:
            return f'<row r="{row + 1}">'
        # rows with a height but no cells, between the last row and this one
        gap = "".join(self._empty_row(r) for r in sorted(self.heights) if previous < r < row)
        height = self.heights.get(row)
        attrs = "" if height is None else f' ht="{height:g}" customHeight="1"'
        return f'{gap}<row r="{row + 1}"{attrs}>'

    def _empty_row(self, row: int) -> str:
        return f'<row r="{row + 1}" ht="{self.heights[row]:g}" customHeight="1"/>'

    def finish(self) -> None:
        """Rows with a height below the last row with cells."""
        self.write("".join(self._empty_row(r) for r in sorted(self.heights)
                           if r > self._last_row))

    # ------------------------------------------------------------------ cells
    def _style(self, style) -> str:
        return "" if not style else f' s="{self.style_index(style)}"'

    def cell(self, row: int, col: int, formula, value, style) -> str:
        """One cell's XML (the caller keeps the extent)."""
        where = f"{_letters(col)}{row + 1}"
        s = self._style(style)
        if isinstance(formula, ArrayFormula):
            self._extent(row, formula.last_row, col, formula.last_col)
            t, v = _result(value)
            area = f"{where}:{_letters(formula.last_col)}{formula.last_row + 1}"
            return (f'<c r="{where}"{s}{t}><f t="array" ref="{area}">'
                    f"{escape(self._formula(formula.text, row, col))}</f><v>{v}</v></c>")
        if formula is not None:
            t, v = _result(value)
            return f'<c r="{where}"{s}{t}><f>{escape(self._formula(formula, row, col))}</f>' \
                   f"<v>{v}</v></c>"
        if value is None:
            return f'<c r="{where}"{s}/>'
        if isinstance(value, str):
            space = ' xml:space="preserve"' if value != value.strip() else ""
            return f'<c r="{where}"{s} t="inlineStr"><is><t{space}>{escape(value)}</t></is></c>'
        if not math.isfinite(value):
            raise ValueError(f"{self.sheet}!{where}: the value {value} is not a finite number")
        return f'<c r="{where}"{s}><v>{number_text(value)}</v></c>'

    def _formula(self, text: str, row: int, col: int) -> str:
        if len(text) > EXCEL_MAX_FORMULA:  # a layout's bug: say where
            raise ValueError(f"{self.sheet}!{col_name(col)}{row + 1}: a formula of "
                             f"{len(text):,} characters, past Excel's {EXCEL_MAX_FORMULA:,}")
        return text[1:] if text.startswith("=") else text

    def row(self, row: int, cells: list) -> None:
        """A row of ``(col, formula, value, style)`` cells, in column order."""
        if cells:
            self._extent(row, row, cells[0][0], cells[-1][0])
        self.write(self._row_start(row) + "".join([self.cell(row, *c) for c in cells])
                   + "</row>")

    def run(self, run: Run) -> Iterator[int]:
        """The rows of ``run``; yields the number of rows written after each chunk."""
        if run.length == 0:
            return
        cols = sorted(run.columns, key=lambda c: c.col)
        self._extent(run.first, run.first + run.length - 1, cols[0].col, cols[-1].col)
        segments = [self._segments(c, run) for c in cols]
        for lo in range(0, run.length, CHUNK):
            hi = min(lo + CHUNK, run.length)
            rows = range(run.first + lo, run.first + hi)
            texts = [self._column_text(c, seg, run, lo, hi) for c, seg in zip(cols, segments)]
            contents = list(map("".join, zip(*texts)))
            odd = [k for k, r in enumerate(rows) if r in run.beside] if run.beside else []
            for k in odd:  # rows with cells beside the run's: merged in column order
                r = rows[k]
                cells = [(c.col, t[k]) for c, t in zip(cols, texts)]
                cells += [(b[0], self.cell(r, *b)) for b in run.beside[r]]
                self._extent(r, r, min(b[0] for b in run.beside[r]),
                             max(b[0] for b in run.beside[r]))
                contents[k] = "".join(x for _, x in sorted(cells, key=lambda x: x[0]))
            if self.heights:
                self.write("".join([f"{self._row_start(r)}{body}</row>"
                                    for r, body in zip(rows, contents)]))
            else:
                self._in_order(rows[0])
                self.write("".join([f'<row r="{r + 1}">{body}</row>'
                                    for r, body in zip(rows, contents)]))
                self._last_row = rows[-1]
            yield hi - lo

    def _segments(self, column, run: Run) -> list[tuple[int, int, str, int | None]]:
        """(start, stop, formula text at start, si or None for a lone formula) per stretch
        of rows whose formulas come from one template."""
        out, covered = [], 0
        for start, stop, template in column.formulas or ():
            if start != covered or stop <= start:
                break
            text = self._formula(template.render(run.first + start), run.first + start,
                                 column.col)
            si = None
            if stop - start > 1:
                si, self._shared = self._shared, self._shared + 1
            out.append((start, stop, text, si))
            covered = stop
        if column.formulas and covered != run.length:
            raise ValueError(f"{self.sheet}: the formulas of column {col_name(column.col)} do "
                             f"not cover its {run.length:,} rows in order")
        return out

    def _column_text(self, column, segments, run: Run, lo: int, hi: int) -> list[str]:
        """Each row's XML of one column over rows ``lo``..``hi`` of the run."""
        letters = _letters(column.col)
        s = self._style(column.style)
        first = run.first + 1
        values = column.values[lo:hi]
        if isinstance(values, np.ndarray) and values.dtype.kind in "iuf" and (
                values.dtype.kind != "f" or np.isfinite(values).all()):
            # numbers: no type attribute, and repr reads back as the same float
            texts = list(map(str if values.dtype.kind in "iu" else float.__repr__,
                             values.tolist()))
            types = None
        else:
            pairs = [_result(v.item() if hasattr(v, "item") else v) for v in values]
            types, texts = [t for t, _ in pairs], [v for _, v in pairs]
        at = f'<c r="{letters}'
        if not segments:  # plain values
            if types is None:
                return [f'{at}{r}"{s}><v>{v}</v></c>' for r, v in zip(range(first + lo, first + hi),
                                                                       texts)]
            return [f'{at}{r}"{s}{t}><v>{v}</v></c>' for r, t, v in
                    zip(range(first + lo, first + hi), types, texts)]
        out = [""] * (hi - lo)
        for start, stop, text, si in segments:
            a, b = max(start, lo), min(stop, hi)
            if a >= b:
                continue
            f = f'<f t="shared" si="{si}"/>'
            rows = range(first + a, first + b)
            if types is None:
                out[a - lo:b - lo] = [f'{at}{r}"{s}>{f}<v>{v}</v></c>'
                                      for r, v in zip(rows, texts[a - lo:b - lo])]
            else:
                out[a - lo:b - lo] = [f'{at}{r}"{s}{t}>{f}<v>{v}</v></c>' for r, t, v in
                                      zip(rows, types[a - lo:b - lo], texts[a - lo:b - lo])]
            if a == start:  # the stretch's first cell holds the formula text
                t = "" if types is None else types[a - lo]
                area = f"{letters}{first + start}:{letters}{first + stop - 1}"
                master = (f"<f>{escape(text)}</f>" if si is None else
                          f'<f t="shared" ref="{area}" si="{si}">{escape(text)}</f>')
                out[a - lo] = f'{at}{first + a}"{s}{t}>{master}<v>{texts[a - lo]}</v></c>'
        return out


_LETTERS: dict[int, str] = {}


def _letters(col: int) -> str:
    """``col_name``, remembered: a sheet has few columns and many cells."""
    name = _LETTERS.get(col)
    if name is None:
        name = _LETTERS[col] = col_name(col)
    return name
