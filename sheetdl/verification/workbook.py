"""A workbook as IronCalc holds it: refused when hostile, loaded, its names and references
resolved to cells."""
from __future__ import annotations

import math
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .report import MissingWorkbook, VerifyError

REF = re.compile(r"(?:(?:'((?:[^']|'')+)'|([A-Za-z_][\w.]*))!)?\$?([A-Z]{1,3})\$?(\d+)"
                 r"(?::\$?([A-Z]{1,3})\$?(\d+))?")


#: Refused before parsing: a member or a whole workbook unpacking past these (zip
#: bombs). A 100,000-row sheetdl sheet unpacks to about 300 MB.
MAX_MEMBER_BYTES = 1 << 30
MAX_TOTAL_BYTES = 4 << 30

#: IronCalc holds about 700 bytes per shared string as it loads (3,000,000 strings, a
#: 7.9 MB file, took 2.05 GB): past this many, the file is refused before it is loaded.
#: sheetdl writes its text inline, so none of its workbooks comes near.
MAX_SHARED_STRINGS = 1_000_000


def check_container(path: Path) -> None:
    if not path.exists():
        raise MissingWorkbook(f"{path}: no such file")
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
                    if b"<sst" in head or b":sst" in head:
                        _check_shared_strings(path, z, info)
            if total > MAX_TOTAL_BYTES:
                raise VerifyError(f"{path}: would unpack to {total:,} bytes in all (limit "
                                  f"{MAX_TOTAL_BYTES:,}); refusing (zip bomb?)")
    except zipfile.BadZipFile:
        raise VerifyError(f"{path}: not an .xlsx/.xlsm workbook (not a zip archive, or "
                          "truncated)") from None
    if "xl/workbook.xml" not in names:
        raise VerifyError(f"{path}: a zip archive but not a workbook (no xl/workbook.xml)")


def _check_shared_strings(path: Path, z: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Refuse a shared-string table too large for IronCalc to load in bounded memory,
    counting its ``<si>`` items as the member streams (a prefixed ``<x:si>`` too)."""
    count, tail = 0, b""
    with z.open(info) as member:
        while chunk := member.read(1 << 22):
            data = tail + chunk
            count += sum(data.count(needle) for needle in (b"<si>", b"<si ", b":si>", b":si "))
            # a needle split between two reads is counted once: the 3 bytes kept cannot
            # hold a whole one
            tail = data[-3:]
            if count > MAX_SHARED_STRINGS:
                raise VerifyError(f"{path}: member {info.filename} holds more than "
                                  f"{MAX_SHARED_STRINGS:,} shared strings; refusing: loading "
                                  "them would take gigabytes (IronCalc holds ~700 bytes each)")


def load(path: Path):
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


def col_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def cell_name(row: int, col: int) -> str:
    from ..sheet.workbook import col_name

    return f"{col_name(col - 1)}{row}"


class Workbook:
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
        m = REF.fullmatch(formula.strip().lstrip("="))
        if not m:
            return []
        sheet_name = (m.group(1) or "").replace("''", "'") or m.group(2)
        si = self.index.get(sheet_name.lower()) if sheet_name else default_sheet
        if si is None:
            return []
        c1, r1 = col_number(m.group(3)), int(m.group(4))
        c2, r2 = (col_number(m.group(5)), int(m.group(6))) if m.group(5) else (c1, r1)
        return [(si, r, c) for r in range(r1, r2 + 1) for c in range(c1, c2 + 1)]


def recalculated(path: str | os.PathLike) -> Workbook:
    """Load ``path`` in IronCalc and recalculate every formula."""
    path = Path(path)
    check_container(path)
    wb = Workbook(load(path))
    wb.model.evaluate()
    return wb
