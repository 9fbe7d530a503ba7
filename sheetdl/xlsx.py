"""Write a ``book.Book`` to .xlsx with XlsxWriter, atomically and reproducibly.

XlsxWriter stores each formula's cached value, so viewers that do not
calculate still show numbers. Its per-formula regex pass (29 ``re.sub`` calls
that prefix Excel 365 functions, ~80% of its write time) is skipped: sheetdl
emits no such functions, which ``book.FORBIDDEN`` guards where formulas are made.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import tempfile
from pathlib import Path

import xlsxwriter
from xlsxwriter.utility import xl_rowcol_to_cell as xl_rowcol
from xlsxwriter.worksheet import Worksheet

from .book import ArrayFormula, Book
from .data import EXCEL_MAX_FORMULA

#: Fixed document timestamp: the same inputs give the same bytes.
EPOCH = _dt.datetime(2024, 1, 1)
META_PREFIX = "sheetdl."
META_CHUNK = 250



class _PlainFormulaWorksheet(Worksheet):
    """A worksheet that stores formulas as given (minus the leading '=') and numbers
    exactly."""

    def _prepare_formula(self, formula, expand_future_functions=False):
        return formula[1:] if formula.startswith("=") else formula

    def _xml_number_element(self, number, attributes=[]) -> None:
        # XlsxWriter writes %.16G, which can drop the last bit of a float; repr is the
        # shortest text that reads back to the same float (as formula results are written).
        attr = "".join(f' {k}="{self._escape_attributes(v)}"' for k, v in attributes)
        text = repr(float(number)) if not float(number).is_integer() or abs(number) >= 1e16 \
            else str(int(number))
        self.fh.write(f"<c{attr}><v>{text}</v></c>")

    def _xml_formula_element(self, formula, result, attributes=[]) -> None:
        # XlsxWriter writes a cached "" untyped, which readers take for the number 0;
        # typed as a string it reads back as the empty text the formula gives.
        if result == "" and not any(k == "t" for k, _ in attributes):
            attributes = [*attributes, ("t", "str")]
        super()._xml_formula_element(formula, result, attributes)


STYLES = {
    "title": {"bold": True, "font_size": 14},
    "subtitle": {"italic": True, "font_color": "#444444"},
    "text": {},
    "bold": {"bold": True},
    "label": {"bold": True, "align": "center", "valign": "vcenter", "bg_color": "#DDEBF7",
              "border": 1, "text_wrap": True},
    "input": {"bg_color": "#FFF2CC", "font_color": "#0000FF", "border": 1, "align": "center",
              "num_format": "General"},
    "header": {"bold": True, "align": "center", "bg_color": "#D9D9D9", "border": 1,
               "text_wrap": True},
    "int": {"num_format": "0"},
    "num": {"num_format": "0.000000"},
    "general": {"num_format": "General"},
    "sci": {"num_format": "0.000E+00"},
    "summary": {"num_format": "General", "bg_color": "#E2EFDA"},
    # a header written over several columns: its text is centred across the blank cells
    # after it that carry the same style
    "header_span": {"bold": True, "align": "center_across", "bg_color": "#D9D9D9", "border": 1},
    # the same for a label over several columns (one quantity per hidden unit)
    "label_span": {"bold": True, "align": "center_across", "bg_color": "#DDEBF7", "border": 1},
    "percent": {"num_format": "0.0%"},
    "status": {"bold": True, "font_color": "#1F4E79"},
    "truth": {"bg_color": "#EDEDED", "italic": True},
}


def cached(value):
    """A cached value as XlsxWriter stores it: non-finite numbers become #NUM!."""
    if isinstance(value, float) and not math.isfinite(value):
        return "#NUM!"
    return value


def write(book: Book, path: str | Path, on_row=None, before_replace=None) -> Path:
    """Write ``book`` to ``path`` via a temporary file in the same folder.

    A crash or kill mid-write leaves any previous file at ``path`` untouched.
    ``on_row(1)`` hears of each row written (for a progress bar); ``before_replace()``
    runs just before the rename and may raise to keep whatever is at ``path`` now.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    os.close(fd)
    try:
        _write(book, tmp, on_row)
        _seal(tmp)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove temporary files an earlier write of ``path`` left when it was killed outright
    (SIGKILL, a power cut): those named with the id of a process that no longer runs."""
    removed = []
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return removed
    # exactly what mkstemp makes for this name: .NAME.PID.XXXXXXXX.tmp, so a longer
    # name's temp (.NAME.2.xlsx.PID...) is never mistaken for one of ours
    ours = re.compile(re.escape(f".{path.name}.") + r"(\d+)\.[A-Za-z0-9_]{8}\.tmp")
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        m = ours.fullmatch(tmp.name)
        if m is None or _alive(int(m.group(1))):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, another user's
        return True
    return True


def _write(book: Book, filename: str, on_row=None) -> None:
    wb = xlsxwriter.Workbook(filename, {"constant_memory": True, "strings_to_numbers": False,
                                        "strings_to_formulas": False, "strings_to_urls": False})
    wb.set_properties({"title": book.title, "author": "sheetdl", "created": EPOCH,
                       "comments": "Generated by sheetdl; every formula cell carries its value."})
    meta = json.dumps(book.meta, sort_keys=True, separators=(",", ":"))
    for i in range(0, len(meta), META_CHUNK):
        wb.set_custom_property(f"{META_PREFIX}{i // META_CHUNK:04d}", meta[i:i + META_CHUNK],
                               "text")
    if book.vba_project is not None:
        import io

        wb.add_vba_project(io.BytesIO(book.vba_project), is_stream=True)
    formats: dict[str, object] = {}

    def fmt_of(style: str):
        """A style name, or ``name|number format`` (``book.number_style``), made once."""
        if style not in formats:
            name, _, num_format = style.partition("|")
            spec = dict(STYLES[name])
            if num_format:
                spec["num_format"] = num_format
            formats[style] = wb.add_format(spec)
        return formats[style]
    for sheet in book.sheets:
        ws = wb.add_worksheet(sheet.name, worksheet_class=_PlainFormulaWorksheet)
        for col, width in sheet.widths.items():
            ws.set_column(col, col, width)
        if sheet.freeze:
            ws.freeze_panes(*sheet.freeze)
        # Constant-memory mode flushes a row once the next one starts, and drops
        # notes written to flushed rows: each row's notes go in with its cells.
        notes_by_row: dict[int, list] = {}
        for row, col, text in sheet.notes:
            notes_by_row.setdefault(row, []).append((col, text))
        for row, cells in sheet.rows():
            if on_row is not None:
                on_row(1)
            if row in sheet.heights:
                ws.set_row(row, sheet.heights[row])
            for col, text in notes_by_row.pop(row, ()):
                ws.write_comment(row, col, text, {"x_scale": 2.2, "y_scale": 1.6})
            for col, formula, value, style in cells:
                f = fmt_of(style) if style else None
                if isinstance(formula, ArrayFormula):
                    ws.write_array_formula(row, col, formula.last_row, formula.last_col,
                                           formula.text, f, cached(value))
                elif formula is None:
                    if isinstance(value, str):
                        ws.write_string(row, col, value, f)
                    elif value is None:
                        ws.write_blank(row, col, None, f)
                    else:
                        ws.write_number(row, col, value, f)
                else:
                    if len(formula) > EXCEL_MAX_FORMULA:  # a layout's bug: say where
                        raise ValueError(f"{sheet.name}!{xl_rowcol(row, col)}: a formula of "
                                         f"{len(formula):,} characters, past Excel's "
                                         f"{EXCEL_MAX_FORMULA:,}")
                    ws.write_formula(row, col, formula, f, cached(value))
        if notes_by_row:
            raise ValueError(f"{sheet.name}: notes on rows without cells: {sorted(notes_by_row)}")
        for *where, options in sheet.validations:
            row, col, last_row, last_col = where if len(where) == 4 else where * 2
            ws.data_validation(row, col, last_row, last_col, options)
        for name, target in sheet.names.items():
            wb.define_name(f"{sheet.name}!{name}", f"={sheet.name}!{target}")
        for spec in sheet.charts:
            chart = wb.add_chart({"type": "scatter", "subtype": "straight"}
                                 if spec.log_x or spec.scatter else {"type": "line"})
            for s in spec.series:
                look = ({"marker": {"type": "circle", "size": 5}, "line": {"none": True}}
                        if s.markers else {"marker": {"type": "none"}})
                chart.add_series({"name": s.name, "categories": "=" + s.categories,
                                  "values": "=" + s.values, **look})
            chart.set_title({"name": spec.title})
            x_axis = {"name": spec.x_title}
            if spec.log_x:
                x_axis["log_base"] = 10
            y_axis = {"name": spec.y_title}
            if spec.scatter:  # axes at the plot's edges, not through x = 0 and y = 0
                x_axis.update(crossing="min", label_position="low")
                y_axis.update(crossing="min", label_position="low")
            chart.set_x_axis(x_axis)
            if spec.log_y:
                y_axis["log_base"] = 10
            chart.set_y_axis(y_axis)
            chart.set_legend({"position": "bottom" if len(spec.series) > 1 else "none"})
            chart.set_size({"width": spec.width, "height": spec.height})
            ws.insert_chart(spec.row, spec.col, chart)
    book_names = dict(book.names)
    for sheet in book.sheets:
        book_names.update(sheet.book_names)
    for name, target in book_names.items():
        wb.define_name(name, "=" + target)
    wb.close()


def read_meta(path: str | Path) -> dict | None:
    """The lesson description stored by ``write``, or None for other workbooks."""
    import zipfile

    from defusedxml import DefusedXmlException
    from defusedxml import ElementTree as SafeET

    try:
        with zipfile.ZipFile(path) as z:
            if "docProps/custom.xml" not in z.namelist():
                return None
            info = z.getinfo("docProps/custom.xml")
            if info.file_size > 10_000_000:
                return None
            root = SafeET.fromstring(z.read(info))
    except (zipfile.BadZipFile, SafeET.ParseError, DefusedXmlException):
        return None
    chunks = {}
    for prop in root:
        name = prop.get("name", "")
        if name.startswith(META_PREFIX):
            chunks[name] = "".join(child.text or "" for child in prop)
    if not chunks:
        return None
    try:
        return json.loads("".join(chunks[k] for k in sorted(chunks)))
    except json.JSONDecodeError:
        return None


FINGERPRINT = "sheetdl-fingerprint"
_CUSTOM = "docProps/custom.xml"


def fingerprint(path: str | Path) -> str:
    """A hash of every zip member's name, CRC-32 and size except the custom
    properties that store it: any edit Excel or LibreOffice saves changes it.
    Read from the zip directory alone, so it costs milliseconds at any size."""
    import hashlib
    import zipfile

    h = hashlib.sha256()
    with zipfile.ZipFile(path) as z:
        for info in sorted(z.infolist(), key=lambda i: i.filename):
            if info.filename != _CUSTOM:
                h.update(f"{info.filename}\0{info.CRC:08x}\0{info.file_size}\n".encode())
    return h.hexdigest()


def _seal(filename: str) -> None:
    """Store the fingerprint in docProps/custom.xml by rewriting the zip."""
    import zipfile

    digest = fingerprint(filename)
    sealed = filename + ".seal"
    import shutil

    with zipfile.ZipFile(filename) as src, zipfile.ZipFile(sealed, "w") as dst:
        for info in src.infolist():
            copy = zipfile.ZipInfo(info.filename, info.date_time)
            copy.compress_type, copy.external_attr = info.compress_type, info.external_attr
            if info.filename != _CUSTOM:
                # Streamed: a 100,000-row sheet's XML is hundreds of MB unpacked.
                with src.open(info) as fin, dst.open(copy, "w", force_zip64=True) as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
                continue
            data = src.read(info)
            pid = data.count(b"<property ") + 2
            prop = (f'<property fmtid="{{D5CDD505-2E9C-101B-9397-08002B2CF9AE}}" '
                    f'pid="{pid}" name="{FINGERPRINT}"><vt:lpwstr>{digest}</vt:lpwstr>'
                    "</property>").encode()
            dst.writestr(copy, data.replace(b"</Properties>", prop + b"</Properties>"))
    os.replace(sealed, filename)


def stored_fingerprint(path: str | Path) -> str | None:
    """The fingerprint sheetdl stored when it wrote ``path``, if any."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            data = z.read(_CUSTOM) if _CUSTOM in z.namelist() else b""
    except (zipfile.BadZipFile, OSError):
        return None
    m = re.search(rb'name="' + FINGERPRINT.encode() + rb'"><vt:lpwstr>([0-9a-f]{64})<', data)
    return m.group(1).decode() if m else None


def untouched(path: str | Path) -> bool:
    """True when ``path`` is a sheetdl workbook nobody has changed since it was written."""
    stored = stored_fingerprint(path)
    try:
        return stored is not None and stored == fingerprint(path)
    except Exception:
        return False
