"""Render the first screen (A1:T40) of every sheet of the given workbooks to PNG.

    python docs/screens.py workbooks/*.xlsx            # → docs/screens/<book>-<sheet>.png

This is how the README's pictures are made, so they show the committed files
as LibreOffice draws them. Each workbook is copied, the copy gets a print area
of A1:T40 on every sheet, fitted to one landscape page, LibreOffice headless
prints it to PDF (one page per sheet, charts included), and ``pdftoppm``
(Debian's poppler-utils) turns the pages into PNGs. The workbooks themselves
are not touched.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: The screen a learner sees at 100% zoom on a laptop: what issue 11 calls the first screen.
FIRST_SCREEN = "$A$1:$T$40"


def sheet_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        xml = z.read("xl/workbook.xml").decode()
    return [n.replace("&amp;", "&") for n in re.findall(r'<sheet name="([^"]+)"', xml)]


def with_print_areas(src: Path, dst: Path) -> list[str]:
    """Copy ``src`` to ``dst`` with every sheet's print area set to the first screen."""
    names = sheet_names(src)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "xl/workbook.xml":
                text = data.decode()
                areas = "".join(
                    f'<definedName name="_xlnm.Print_Area" localSheetId="{i}">'
                    f"'{n}'!{FIRST_SCREEN}</definedName>" for i, n in enumerate(names))
                text = re.sub(r'<definedName name="_xlnm\.Print_Area"[^>]*>[^<]*</definedName>',
                              "", text)
                if "<definedNames>" in text:
                    text = text.replace("<definedNames>", "<definedNames>" + areas, 1)
                else:
                    text = text.replace("</sheets>", f"</sheets><definedNames>{areas}"
                                        "</definedNames>", 1)
                data = text.encode()
            elif re.fullmatch(r"xl/worksheets/sheet\d+\.xml", info.filename):
                text = data.decode()
                text = re.sub(r"<pageSetup[^>]*/>", "", text)
                text = re.sub(r"<sheetPr>(.*?)</sheetPr>|<sheetPr/>", "", text, count=1)
                text = re.sub(r"(<worksheet[^>]*>)", r'\1<sheetPr><pageSetUpPr fitToPage="1"/>'
                              "</sheetPr>", text, count=1)
                setup = ('<pageSetup paperSize="9" orientation="landscape" fitToWidth="1" '
                         'fitToHeight="1"/>')
                # pageSetup goes after pageMargins (or before drawing/legacyDrawing)
                margins = ('<pageMargins left="0.2" right="0.2" top="0.2" bottom="0.2" '
                           'header="0" footer="0"/>')
                if "<pageMargins" in text:
                    text = re.sub(r"<pageMargins[^>]*/>", margins + setup, text, count=1)
                else:
                    text = re.sub(r"(<drawing |<legacyDrawing |</worksheet>)", setup + r"\1",
                                  text, count=1)
                data = text.encode()
            zout.writestr(info, data)
    return names


def render(book: Path, outdir: Path, dpi: int = 80) -> list[Path]:
    """PNGs of every sheet's first screen: ``outdir/<book>-<sheet>.png``."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None or shutil.which("pdftoppm") is None:
        raise SystemExit("needs LibreOffice (soffice) and pdftoppm (Debian: libreoffice-calc "
                         "poppler-utils)")
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sheetdl-screens-") as tmp:
        tmp = Path(tmp)
        copy = tmp / book.name
        names = with_print_areas(book, copy)
        profile = tmp / "profile"
        subprocess.run([soffice, f"-env:UserInstallation=file://{profile}", "--headless",
                        "--norestore", "--convert-to", "pdf", "--outdir", str(tmp), str(copy)],
                       check=True, capture_output=True, timeout=600,
                       env={"HOME": str(tmp), "PATH": "/usr/bin:/bin"})
        pdf = copy.with_suffix(".pdf")
        # A4 landscape is 11.69 × 8.27 in; A1:T40 is about twice as wide as tall, so the
        # fitted screen fills the width and about the top 60% of the page: keep that.
        width = round(11.69 * dpi)
        subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-x", "0", "-y", "0", "-W",
                        str(width), "-H", str(round(width * 0.6)), str(pdf), str(tmp / "page")],
                       check=True, timeout=600)
        pages = sorted(tmp.glob("page-*.png"), key=lambda p: int(p.stem.split("-")[-1]))
        if len(pages) != len(names):
            raise SystemExit(f"{book}: {len(pages)} pages for {len(names)} sheets")
        out = []
        for name, page in zip(names, pages):
            target = outdir / f"{book.stem}-{name}.png"
            shutil.copyfile(page, target)
            out.append(target)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("books", nargs="+", type=Path)
    p.add_argument("-o", "--outdir", type=Path, default=Path(__file__).parent / "screens")
    p.add_argument("--dpi", type=int, default=80)
    args = p.parse_args(argv)
    for book in args.books:
        for png in render(book, args.outdir, args.dpi):
            print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
