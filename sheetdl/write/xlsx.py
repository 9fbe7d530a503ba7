"""Write a ``book.Book`` to .xlsx, atomically and reproducibly.

Two writers meet here. ``sheet_xml`` writes each sheet's cells, every formula with
its cached value (so viewers that do not calculate still show numbers), long
columns as shared formulas. XlsxWriter writes everything else: styles, column
widths, panes, notes, data validation, defined names, charts and the document's
properties, around a marker in each sheet. ``_package`` joins the two into one zip,
compressing every part once and storing the fingerprint last.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import tempfile
from pathlib import Path

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from . import sheet_xml
from ..sheet.workbook import DIVERGING, HIGHLIGHT, SEQUENTIAL, Book, Run, Sheet

#: Fixed document timestamp: the same inputs give the same bytes.
EPOCH = _dt.datetime(2024, 1, 1)
META_PREFIX = "sheetdl."
META_CHUNK = 250



class _Worksheet(Worksheet):
    """A worksheet whose cells ``sheet_xml`` writes: XlsxWriter writes the rest of the sheet
    (columns, panes, validation, notes, charts) around a marker the package step replaces
    with the cells."""

    cells_marker = ""
    cells_dimension = "A1"

    def _write_dimension(self) -> None:
        self._xml_empty_tag("dimension", [("ref", self.cells_dimension)])

    def _write_sheet_data(self) -> None:
        self.fh.write(f"<sheetData>{self.cells_marker}</sheetData>")

    _write_optimized_sheet_data = _write_sheet_data


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


def write(book: Book, path: str | Path, on_row=None, before_replace=None,
          on_phase=None) -> Path:
    """Write ``book`` to ``path`` via a temporary file in the same folder.

    A crash or kill mid-write leaves any previous file at ``path`` untouched.
    ``on_row(1)`` hears of each row written (for a progress bar); ``before_replace()``
    runs just before the rename and may raise to keep whatever is at ``path`` now;
    ``on_phase("zipping")`` hears when the rows are done and the parts are compressed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    temps: list[str] = []
    try:
        # the file, and XlsxWriter's package of the parts around the cells
        tmp, scratch = _new_temp(path, temps), _new_temp(path, temps)
        _write(book, tmp, scratch, on_row, on_phase)
        # the temporary file is private (0600); a workbook gets the usual umask's mode
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    finally:
        for t in temps:
            # best effort: the error on its way out (an interrupt) is the one to report
            with contextlib.suppress(OSError):
                os.unlink(t)
    return path


#: Bytes of the output's name a temporary file's name carries: with the dots, a pid and
#: eight random letters it stays within the 255 bytes a file name may have.
TEMP_STEM_BYTES = 200


def _temp_stem(name: str) -> str:
    """``name``, or for a name too long to carry whole, its first bytes and a hash of it
    (two long names that begin alike still get temporary files of their own)."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= TEMP_STEM_BYTES:
        return name
    import hashlib

    head = raw[:TEMP_STEM_BYTES - 9].decode("utf-8", "ignore")  # never half a character
    return f"{head}~{hashlib.sha256(raw).hexdigest()[:8]}"


def _new_temp(path: Path, temps: list[str]) -> str:
    """Create an empty private file ``.NAME.PID.XXXXXXXX.tmp`` beside ``path`` (NAME
    shortened by ``_temp_stem`` when it is long).

    Its name joins ``temps`` before the file exists: SIGTERM turns into an exception at any
    point of a build, and one arriving just after the file was made (the moment a watcher
    sees it) must still find it listed for removal."""
    while True:
        name = os.path.join(path.parent,
                            f".{_temp_stem(path.name)}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        temps.append(name)
        try:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return name
        except FileExistsError:  # a name this process's pid left before: try another
            temps.pop()


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove temporary files an earlier write of ``path`` left when it was killed outright
    (SIGKILL, a power cut): those named with the id of a process that no longer runs."""
    removed = []
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return removed
    # exactly what _new_temp makes for this name: .NAME.PID.XXXXXXXX.tmp, so a longer
    # name's temp (.NAME.2.xlsx.PID...) is never mistaken for one of ours
    stem = _temp_stem(path.name)
    ours = re.compile(re.escape(f".{stem}.") + r"(\d+)\.[A-Za-z0-9_]{8}\.tmp")
    for tmp in path.parent.glob(f".{glob_escape(stem)}.*.tmp"):
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


def _write(book: Book, filename: str, scratch: str, on_row=None, on_phase=None) -> None:
    """XlsxWriter writes the package around the cells into a scratch file; each sheet's cells
    stream into a temporary file of their own; ``_package`` then joins them into
    ``filename``, compressing each part once, with the fingerprint."""
    folder = os.path.dirname(os.path.abspath(filename))
    cells: dict[str, tempfile._TemporaryFileWrapper] = {}
    try:
        wb = xlsxwriter.Workbook(scratch, {"strings_to_numbers": False,
                                           "strings_to_formulas": False,
                                           "strings_to_urls": False})
        wb.set_properties({"title": book.title, "author": "sheetdl", "created": EPOCH,
                           "comments": "Generated by sheetdl; every formula cell carries its "
                                       "value."})
        meta = json.dumps(book.meta, sort_keys=True, separators=(",", ":"))
        for i in range(0, len(meta), META_CHUNK):
            wb.set_custom_property(f"{META_PREFIX}{i // META_CHUNK:04d}",
                                   meta[i:i + META_CHUNK], "text")
        if book.vba_project is not None:
            import io

            wb.add_vba_project(io.BytesIO(book.vba_project), is_stream=True)
        formats: dict[str, object] = {}

        def style_index(style: str) -> int:
            """A style name, or ``name|number format`` (``book.number_style``): its xf index."""
            if style not in formats:
                name, _, num_format = style.partition("|")
                spec = dict(STYLES[name])
                if num_format:
                    spec["num_format"] = num_format
                formats[style] = wb.add_format(spec)
            return formats[style]._get_xf_index()

        for number, sheet in enumerate(book.sheets):
            ws = wb.add_worksheet(sheet.name, worksheet_class=_Worksheet)
            ws.cells_marker = f"<!--sheetdl cells {number}-->"
            fh = tempfile.TemporaryFile("w+b", dir=folder,
                                        prefix=f".{os.path.basename(filename)}.cells.")
            cells[ws.cells_marker] = fh
            ws.cells_dimension = _write_cells(sheet, fh, style_index, on_row)
            _decorate(wb, ws, sheet)
        book_names = dict(book.names)
        for sheet in book.sheets:
            book_names.update(sheet.book_names)
        for name, target in book_names.items():
            wb.define_name(name, "=" + target)
        wb.close()
        if on_phase is not None:
            on_phase("zipping")
        _package(scratch, cells, filename)
    finally:
        for fh in cells.values():
            fh.close()


def _write_cells(sheet: Sheet, fh, style_index, on_row) -> str:
    """Stream ``sheet``'s cells to ``fh``; returns their extent (the dimension)."""
    data = sheet_xml.SheetData(lambda text: fh.write(text.encode()), style_index, sheet.name,
                               sheet.heights)
    for item in sheet.rows():
        if isinstance(item, Run):
            for n in data.run(item):
                if on_row is not None:
                    on_row(n)
        else:
            data.row(*item)
            if on_row is not None:
                on_row(1)
    data.finish()
    return data.dimension()


def _literal_names(chart):
    """``chart`` with every series name, title and axis title taken as text.

    XlsxWriter reads a name shaped like ``Sheet!A1`` as a reference, and a CSV's header is
    a series name: ``=cmd|' /C calc'!A0`` or ``'[evil.xlsx]s'!A1`` would become a link out
    of the workbook. Every name sheetdl gives a chart is text, so the one place XlsxWriter
    decides is replaced on this chart; a test builds such headers and reads the chart back."""
    if not callable(getattr(chart, "_process_names", None)):
        raise RuntimeError("this XlsxWriter has no Chart._process_names: chart names could be "
                           "read as references; install the XlsxWriter version setup lists")
    chart._process_names = lambda name, formula: (name, formula)
    return chart


#: the course's white-to-red scale, and a diverging one centred on 0
_COLOR_SCALES = {
    SEQUENTIAL: {"type": "2_color_scale", "min_color": "#FFFFFF", "max_color": "#F8696B"},
    DIVERGING: {"type": "3_color_scale", "min_color": "#5A8AC6", "mid_type": "num",
                "mid_value": 0, "mid_color": "#FFFFFF", "max_color": "#F8696B"},
}


def _decorate(wb, ws, sheet: Sheet) -> None:
    """Everything of ``sheet`` but its cells: widths, panes, notes, validation, names, charts."""
    for col, width in sheet.widths.items():
        ws.set_column(col, col, width)
    if sheet.freeze:
        ws.freeze_panes(*sheet.freeze)
    for row, col, text in sheet.notes:
        ws.write_comment(row, col, text, {"x_scale": 2.2, "y_scale": 1.6})
    for *where, options in sheet.validations:
        row, col, last_row, last_col = where if len(where) == 4 else where * 2
        ws.data_validation(row, col, last_row, last_col, options)
    # highlights first: a rule added earlier has priority, so a misclassified row or a
    # prediction far off its rating keeps its fill inside a heatmap
    if sheet.highlights:
        marked = wb.add_format(HIGHLIGHT)
        for ranges, compare, bounds in sheet.highlights:
            limits = ({"minimum": bounds[0], "maximum": bounds[1]} if len(bounds) == 2
                      else {"value": bounds[0]})
            ws.conditional_format(ranges.split()[0], {"type": "cell", "criteria": compare,
                                                      **limits, "format": marked,
                                                      "multi_range": ranges})
    for ranges, kind in sheet.color_scales:
        ws.conditional_format(ranges.split()[0], {**_COLOR_SCALES[kind], "multi_range": ranges})
    for name, target in sheet.names.items():
        wb.define_name(f"{sheet.name}!{name}", f"={sheet.name}!{target}")
    for spec in sheet.charts:
        chart = _literal_names(wb.add_chart({"type": "scatter", "subtype": "straight"}
                                            if spec.log_x or spec.scatter else {"type": "line"}))
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
        if spec.y_range is not None:
            y_axis.update(min=spec.y_range[0], max=spec.y_range[1])
        chart.set_y_axis(y_axis)
        chart.set_legend({"position": "bottom" if len(spec.series) > 1 else "none"})
        chart.set_size({"width": spec.width, "height": spec.height})
        ws.insert_chart(spec.row, spec.col, chart)


#: zlib level of the parts: the default 6, except for cells past ``LARGE`` bytes of XML, where
#: compressing was half of a build; level 1 is three times quicker there, for a file about
#: a quarter larger.
COMPRESSION, LARGE_COMPRESSION, LARGE = 6, 1, 32 << 20


def _package(scratch: str, cells: dict, filename: str) -> None:
    """Copy the parts of ``scratch`` into ``filename``, each sheet's cells in place of its
    marker, and the custom properties last with the fingerprint of all the other parts."""
    import zipfile

    with zipfile.ZipFile(scratch) as src, zipfile.ZipFile(filename, "w") as dst:
        custom = None
        for info in src.infolist():
            part = zipfile.ZipInfo(info.filename, info.date_time)
            part.compress_type, part.external_attr = zipfile.ZIP_DEFLATED, info.external_attr
            data = src.read(info)
            if info.filename == _CUSTOM:
                custom = (part, data)
                continue
            marker = next((m for m in cells if info.filename.startswith("xl/worksheets/")
                           and m.encode() in data), None)
            fh = cells.get(marker)
            size = fh.seek(0, os.SEEK_END) if fh is not None else 0
            # a ZipInfo carries its own level (ZipFile's compresslevel does not reach it);
            # Python 3.13 renamed the attribute
            setattr(part, "compress_level" if hasattr(part, "compress_level")
                    else "_compresslevel", LARGE_COMPRESSION if size > LARGE else COMPRESSION)
            if marker is None:
                dst.writestr(part, data)
                continue
            head, tail = data.split(marker.encode())
            fh.seek(0)
            with dst.open(part, "w", force_zip64=True) as out:
                out.write(head)
                while chunk := fh.read(1 << 20):
                    out.write(chunk)
                out.write(tail)
        digest = _fingerprint(dst.infolist())
        if custom is not None:
            part, data = custom
            pid = data.count(b"<property ") + 2
            prop = (f'<property fmtid="{{D5CDD505-2E9C-101B-9397-08002B2CF9AE}}" '
                    f'pid="{pid}" name="{FINGERPRINT}"><vt:lpwstr>{digest}</vt:lpwstr>'
                    "</property>").encode()
            dst.writestr(part, data.replace(b"</Properties>", prop + b"</Properties>"))


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
    import zipfile

    with zipfile.ZipFile(path) as z:
        return _fingerprint(z.infolist())


def _fingerprint(infos) -> str:
    import hashlib

    h = hashlib.sha256()
    for info in sorted(infos, key=lambda i: i.filename):
        if info.filename != _CUSTOM:
            h.update(f"{info.filename}\0{info.CRC:08x}\0{info.file_size}\n".encode())
    return h.hexdigest()


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
