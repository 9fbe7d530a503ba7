"""The formulas a workbook's sheet XML holds, read at the speed of unzipping it.

IronCalc hands a cell's formula over one call at a time: about a microsecond each,
3 s of a 100,000-row lesson sheet's verification. The file holds a shared formula's
text once per column run (``<f t="shared" ref=… si=…>text</f>``, then
``<f t="shared" si=…/>`` in every cell after), so the count of formula cells and the
text of every formula come from one pass of ``bytes.count`` and ``bytes.find`` over
the unzipped sheets, a chunk at a time, without parsing them.

The scan answers only for sheets written the usual way (an unprefixed root element, so
unprefixed cells, and every attributed <f> either shared or holding text): for any
other it answers None, and the verifier asks IronCalc cell by cell, as it always could.
"""
from __future__ import annotations

import html
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

#: Bytes unzipped per read: large enough that the per-chunk work is nothing,
#: small enough that a sheet never sits in memory whole.
CHUNK = 1 << 22

#: Bytes a cell may span: a formula holds at most 8,192 characters (Excel's limit), six
#: bytes each at worst when escaped. Past it, unscanned bytes are not a cell the scan
#: would read whole (a sheet padded with whitespace): it answers None rather than keep
#: re-reading them, which made it quadratic in the padding.
MAX_CELL_BYTES = 1 << 16

_WORKSHEET = re.compile(r"xl/worksheets/[^/]+\.xml")


@dataclass
class FormulaScan:
    count: int          # formula cells: an <f> each (an array formula's first cell only)
    texts: list[str]    # every formula text in the file (a shared formula's once)


def scan(path: Path, sheets: int) -> FormulaScan | None:
    """The formulas of ``path``'s worksheets, or None where the XML is not the usual
    kind or its worksheet parts are not the ``sheets`` IronCalc loaded."""
    count, texts = 0, []
    with zipfile.ZipFile(path) as z:
        parts = [n for n in z.namelist() if _WORKSHEET.fullmatch(n)]
        if len(parts) != sheets:
            return None
        for part in parts:
            with z.open(part) as member:
                found = _scan_part(member)
            if found is None:
                return None
            count += found[0]
            texts += found[1]
    return FormulaScan(count, texts)


def _scan_part(member) -> tuple[int, list[str]] | None:
    head = member.read(CHUNK)
    root = head.find(b"<worksheet")
    after_name = root + len(b"<worksheet")
    if root < 0 or head[after_name:after_name + 1] not in (b" ", b">", b"\n", b"\r", b"\t"):
        return None  # a prefixed root (<x:worksheet>): prefixed cells, which we do not count
    tagged = shared = plain = other = 0
    texts = []
    data = head
    while True:
        following = member.read(CHUNK)
        # Up to where the last cell (or row, or anything else beginning <c) begins: a cell
        # holds its <f>…</f> whole, so none is split between two reads; a '<' in a
        # formula's text is written &lt;, so no text looks like a cell beginning.
        cut = max(data.rfind(b"<c"), data.rfind(b"<row"), 0) if following else len(data)
        if len(data) - cut > CHUNK + MAX_CELL_BYTES:
            return None
        # CDATA sections and comments (<![CDATA[NO]]><![CDATA[W()]]>, RAND<!-- -->()) hide a
        # formula's text from a byte search: only an XML parser reads them, IronCalc's
        if data.find(b"<!", 0, cut) >= 0:
            return None
        tagged += data.count(b"<f ", 0, cut)
        shared += data.count(b'<f t="shared"', 0, cut)
        end = data.find(b"</f>", 0, cut)
        while end >= 0:
            tag = data.rfind(b"<f", 0, end)
            start = data.find(b">", tag) + 1
            if start == tag + len(b"<f>"):
                plain += 1
            elif not data.startswith(b'<f t="shared"', tag):
                other += 1  # an array formula's first cell, or one with other attributes
            texts.append(html.unescape(data[start:end].decode("utf-8", "replace")))
            end = data.find(b"</f>", end + 4, cut)
        if not following:
            break
        data = data[cut:] + following
    # An <f> with attributes and no text is a formula only as a shared one's copy; an
    # array formula's other cells carry an empty one too (<f ca="1"/>), which IronCalc
    # rightly counts as no formula. Tags written otherwise are left to IronCalc.
    if tagged != shared + other:
        return None
    # (after the cells, conditional formats' <formula> and validations' <formula1> are
    # no <f> and no </f>)
    return plain + shared + other, texts
