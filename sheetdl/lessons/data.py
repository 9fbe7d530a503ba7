"""Data for the lessons: the course's points, seeded synthetic data, CSV files."""
from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np

#: The 29 points hard-coded in every optimizer sheet of the course's graddesc.xlsm (y = 2x + 30).
COURSE_X = [14, 86, 28, 51, 28, 29, 72, 62, 84, 15, 42, 62, 47, 35, 9, 38, 44, 99, 13, 21,
            28, 20, 8, 64, 99, 70, 27, 17, 8]

#: Excel's sheet size; a lesson row past it cannot exist.
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLS = 16_384
#: The longest formula Excel opens, in characters.
EXCEL_MAX_FORMULA = 8_192


class DataError(ValueError):
    """Bad input data; the message names the file, line and column."""


def course_points() -> tuple[np.ndarray, np.ndarray]:
    x = np.array(COURSE_X, dtype=float)
    return x, 2.0 * x + 30.0


def synthetic_line(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x uniform in [1, 100) rounded to 0.01, y = 2x + 30 + N(0, 5²) rounded to 0.01.

    Rounded so the data sheet reads well; seeded so builds are reproducible.
    """
    if rows < 1:
        raise DataError(f"--rows must be at least 1, got {rows}")
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(1.0, 100.0, rows), 2)
    y = np.round(2.0 * x + 30.0 + rng.normal(0.0, 5.0, rows), 2)
    return x, y


def read_xy_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Two numeric columns x, y; one optional header line."""
    path = Path(path)
    text = read_text(path)
    xs, ys = [], []
    for lineno, row in csv_rows(text):
        if not row or all(not c.strip() for c in row):
            continue
        width = len(row) - next((i for i, c in enumerate(reversed(row)) if c.strip()), 0)
        if width != 2:  # a third column is an error, not silently dropped
            raise DataError(f"{path}, line {lineno}: expected two columns x,y, found {width}")
        try:
            values = [number(row[0]), number(row[1])]
        except ValueError:
            if lineno == 1 and not xs and is_header(row):
                continue
            bad = 1 if is_number(row[0]) else 0
            raise DataError(f"{path}, line {lineno}, column {'xy'[bad]}: "
                            f"{not_a_number(row[bad])}") from None
        for col, v in zip("xy", values):
            if not math.isfinite(v):
                raise DataError(f"{path}, line {lineno}, column {col}: {v} is not a finite number")
        xs.append(values[0])
        ys.append(values[1])
    if not xs:
        raise DataError(f"{path}: no data rows")
    return np.array(xs), np.array(ys)


def csv_rows(text: str):
    """(line number, cells) of each CSV record. A quoted cell may span lines: it keeps its
    line break (so a label check can refuse it, rather than the break silently vanishing)
    and the number is the line the record ends on."""
    reader = csv.reader(io.StringIO(text, newline=""))
    for row in reader:
        yield reader.line_num, row


def read_text(path: Path) -> str:
    """A CSV file's text, or a one-line DataError naming the file (missing, a folder, a
    pipe or device, not UTF-8: a UTF-16 export from Excel says so)."""
    try:
        if not path.is_file():
            raise DataError(f"{path}: " + ("no such file" if not path.exists()
                                             else "not a regular file"))
        return path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        hint = " (it looks like UTF-16: save it as CSV UTF-8)" \
            if path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise DataError(f"{path}: not a UTF-8 text file{hint}") from None


#: The longest label (a class, user, item or column name) a sheet shows: a data-validation
#: list and a chart legend take 255 characters, well under a cell's 32,767.
MAX_LABEL = 255


def check_label(text: str, where: str, empty: bool = False) -> str:
    """``text`` as a label, or a DataError naming ``where``: a line break would split a
    validation list and a header, an overlong name cannot be shown whole, and an empty
    one (unless ``empty``: a header cell with a default) leaves a cell the formulas
    that look labels up find empty (#N/A in every engine)."""
    if not text and not empty:
        raise DataError(f"{where}: an empty label; every row needs one")
    if any(ch in text for ch in "\r\n") or any(ord(ch) < 32 for ch in text):
        raise DataError(f"{where}: {text[:40]!r} holds a line break or control character; "
                        "labels must be one line")
    if len(text) > MAX_LABEL:
        raise DataError(f"{where}: a label of {len(text):,} characters; at most {MAX_LABEL}")
    return text


#: A number as a spreadsheet reads one typed in a cell: ASCII digits, an optional sign,
#: point and exponent. Python's float() takes more (1_000, ١٢, ４), which Excel shows as
#: text: the sheet would hold a label where the reference math held a number.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
#: Read as numbers so that the readers' finiteness checks name them as such.
_NOT_FINITE = {"inf", "infinity", "nan"}


def number(text: str) -> float:
    """``text`` as the number a spreadsheet reads, or a ValueError."""
    s = text.strip()
    if _NUMBER.fullmatch(s) or s.lower().lstrip("+-") in _NOT_FINITE:
        return float(s)
    raise ValueError(f"{s!r} is not a number")


def is_number(s: str) -> bool:
    try:
        number(s)
        return True
    except ValueError:
        return False


def _python_number(text: str) -> bool:
    """Whether Python's float() takes ``text``: more than a spreadsheet does."""
    try:
        float(text)
        return True
    except ValueError:
        return False


def is_header(cells: list[str]) -> bool:
    """Whether a first line is a header: some cell no number even to Python's float().
    A line of 1_000 or ١٢ is data with numbers a sheet cannot read, refused as such, not
    a header dropped without a word."""
    return not all(map(_python_number, cells))


def not_a_number(text: str) -> str:
    """Why ``text`` is refused: a reader's message, with a hint where Python would have
    taken it."""
    s = text.strip()
    if not _python_number(s):
        return f"{s!r} is not a number"
    return f"{s!r} is not a number a spreadsheet reads (it would show as text): use digits 0-9"
