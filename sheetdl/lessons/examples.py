"""Small CSV files in each lesson's ``--data`` format, the ones the README's examples name:
``sheetdl example-data DIR`` writes them, so every command there runs as pasted.

Each is made here from a rule (no course file is copied): points on a line, three
flowers with two measurements, nine ratings of three movies, and the conv lesson's glyphs.
"""
from __future__ import annotations

from pathlib import Path

from ..write.text import write_text

#: file name → (the lessons that read it, its text)
FILES: dict[str, tuple[str, str]] = {
    "points.csv": ("graddesc, lrfind, mlp",
                   "x,y\n" + "".join(f"{x},{2 * x + 30 + (0.5 if x % 2 else -0.5)}\n"
                                     for x in range(1, 13))),
    "flowers.csv": ("softmax",
                    "length,width,label\n" + "".join(
                        f"{length + d:.1f},{width + e:.1f},{label}\n"
                        for label, length, width in (("rose", 1.0, 0.5), ("tulip", 3.1, 2.0),
                                                     ("lily", 5.0, 1.0))
                        for d, e in ((0.0, 0.0), (0.2, -0.1), (-0.1, 0.1), (0.3, 0.2)))),
    "ratings.csv": ("collab",
                    "user,item,rating\nann,m1,4\nann,m2,3\nann,m3,5\nbob,m1,5\nbob,m3,2\n"
                    "cat,m2,4\ncat,m3,1\ndan,m1,2\ndan,m2,5\n"),
}


def _glyphs() -> str:
    from .conv.model import glyph_images

    images, labels, names = glyph_images(6, 3, 0)
    pixels = images.reshape(len(images), -1)
    head = "label," + ",".join(f"p{i + 1}" for i in range(pixels.shape[1]))
    rows = [f"{names[int(k)]}," + ",".join(f"{v:g}" for v in row)
            for k, row in zip(labels, pixels)]
    return "\n".join([head, *rows]) + "\n"


def files() -> dict[str, tuple[str, str]]:
    """Every example file: the fixed ones and glyphs.csv (the conv lesson's 8×8 images)."""
    return {**FILES, "glyphs.csv": ("conv", _glyphs())}


def write(folder: Path, force: bool = False) -> list[Path]:
    """Write the example files into ``folder`` (made if missing), each atomically. A file
    already there with other content is a person's: refused unless ``force``, before any
    is written. Returns the paths written (an identical file is left as it is)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    wanted = files()
    clash = [name for name, (_, text) in wanted.items()
             if (folder / name).exists() and (folder / name).read_bytes() != text.encode()]
    if clash and not force:
        raise ValueError(f"{folder / clash[0]} exists with other content; --force replaces "
                         "it")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (_, text) in wanted.items():
        path = folder / name
        if path.exists() and path.read_bytes() == text.encode():
            continue
        write_text(path, text)
        written.append(path)
    return written
