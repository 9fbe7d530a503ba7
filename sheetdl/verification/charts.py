"""The references a workbook's charts hold: each must name cells of this workbook.

A chart reads its series, categories and (sometimes) its names from cells: ``<c:f>`` in
``xl/charts/chartN.xml``. A reference to another workbook (``'[evil.xlsx]s'!A1``, or
``[1]s!A1`` through an external link) or to a sheet that is not there makes the file
reach outside itself when it is opened; recalculating cells never sees it, so it is read
here. A sheetdl workbook is held to more: its charts draw from cells its own sheets fill,
and it writes every series name and title as text, so a name read from a cell is a
name that came from somewhere else (a CSV header shaped like a reference, once).
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

from defusedxml import ElementTree as ET

from .workbook import col_number

_CHART = re.compile(r"xl/charts/chart[^/]*\.xml")
_CHART_RELS = re.compile(r"xl/charts/_rels/[^/]+\.rels")
_SHEET_PREFIX = re.compile(r"(?:'((?:[^']|'')+)'|([^'!]+))!(.+)")
_AREA = re.compile(r"\$?([A-Z]{1,3})?\$?(\d+)?(?::\$?([A-Z]{1,3})?\$?(\d+)?)?")


def check(path: Path, wb, sheetdl: bool) -> list[str]:
    """What is wrong with the charts of ``path`` (whose recalculated model is ``wb``):
    one line each, naming the chart part and the reference."""
    problems: list[str] = []
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if _CHART_RELS.fullmatch(name):
                problems += _external_parts(z, name)
            elif _CHART.fullmatch(name):
                with z.open(name) as member:
                    for where, ref in _references(member):
                        why = _problem(ref, where, wb, sheetdl)
                        if why is not None:
                            problems.append(f"{name.rsplit('/', 1)[-1]}: {where} {ref!r} {why}")
    return problems


def _external_parts(z: zipfile.ZipFile, name: str) -> list[str]:
    """A chart's relationships that leave the package (external data, a linked file)."""
    root = ET.fromstring(z.read(name))
    return [f"{name.rsplit('/', 1)[-1]}: links to {rel.get('Target')!r} outside the workbook"
            for rel in root if rel.get("TargetMode", "").lower() == "external"]


def _references(member):
    """(what the reference is for, its text) of every ``<f>`` in a chart part, streamed:
    ``series name`` where it names a series or a title, ``data`` elsewhere."""
    path: list[str] = []
    for event, elem in ET.iterparse(member, events=("start", "end")):
        local = elem.tag.rpartition("}")[2]
        if event == "start":
            path.append(local)
            continue
        path.pop()
        if local == "f":
            yield ("series name" if "tx" in path else "data"), (elem.text or "").strip()
        if local in ("ser", "title"):
            elem.clear()  # a chart part may be large: keep one series at a time


def _problem(ref: str, where: str, wb, sheetdl: bool) -> str | None:
    if "[" in ref:
        return "refers to another workbook"
    if sheetdl and where == "series name":
        return "takes a series name from a cell; sheetdl writes names as text"
    for area in _areas(ref):
        m = _SHEET_PREFIX.fullmatch(area)
        if m is None:
            return "names no sheet"
        sheet = (m.group(1) or "").replace("''", "'") or m.group(2)
        si = wb.index.get(sheet.lower())
        if si is None:
            return f"refers to a sheet {sheet!r} this workbook does not have"
        cells = _AREA.fullmatch(m.group(3))
        if cells is None or not any(cells.groups()):
            return "is not a range of cells"
        if sheetdl and not _inside(wb, si, cells.groups()):
            return f"reaches past the cells sheet {sheet!r} fills"
    return None


def _areas(ref: str) -> list[str]:
    """The areas of a reference: ``(s!A1:A3,s!C1:C3)`` is two."""
    ref = ref[1:-1] if ref.startswith("(") and ref.endswith(")") else ref
    areas, start, quoted = [], 0, False
    for i, ch in enumerate(ref):
        if ch == "'":
            quoted = not quoted
        elif ch == "," and not quoted:
            areas.append(ref[start:i])
            start = i + 1
    return areas + [ref[start:]]


def _inside(wb, si: int, groups) -> bool:
    c1, r1, c2, r2 = groups
    if None in (c1, r1) or (c2 is None) != (r2 is None):
        return False  # a whole row or column: no sheetdl chart draws one
    min_row, max_row, min_col, max_col = wb.model.get_sheet_dimensions(si)
    rows = (int(r1), int(r2 or r1))
    cols = (col_number(c1), col_number(c2 or c1))
    return (min_row <= min(rows) and max(rows) <= max_row
            and min_col <= min(cols) and max(cols) <= max_col)
