"""The conv lesson's flags, its help for the shared ones, its examples, and its build
from resolved options: everything ``sheetdl build conv`` needs, registered by ``LESSON``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import (DataError, check_label, csv_rows, is_header, is_number, not_a_number,
                    number, read_text)
from ..spec import Flag, LessonSpec
from . import course, layout, udf
from . import model as conv

NAME = "conv"
DEFAULT_IMAGES, DEFAULT_CLASSES, DEFAULT_KERNELS, DEFAULT_STEPS = 6, 3, 2, 40

FLAGS = (
    Flag("--kernels", f"3×3 kernels of the conv layer (1 to {layout.MAX_KERNELS})",
         lessons=(NAME,), type=int, default=DEFAULT_KERNELS, group="data"),
    Flag("--images", f"images trained on (1 to {layout.MAX_IMAGES}); with --data, its first N",
         lessons=(NAME,), type=int, default=DEFAULT_IMAGES, group="data"),
    Flag("--classes", f"classes of the built-in glyphs (2 to {len(conv.GLYPHS)}) or of "
         "digits (2 to 10)", lessons=(NAME,), type=int, default=DEFAULT_CLASSES, group="data"),
    Flag("--image-size", "a CSV's image size, H or HxW (default: a square from the pixel "
         "count)", lessons=(NAME,), type=str, group="data", metavar="HxW"),
    Flag("--kernel-init", "starting kernels: random (torch's ranges) or edges (the 2022 "
         "course's edge filters)", lessons=(NAME,), type=str, default="random",
         group="data", choices=("random", "edges")),
)
#: the shared flags conv takes, with its own help where the shared one would mislead
TAKES = {
    "--out": None, "--force": None,
    "--data": "digits (scikit-learn's 8×8 digits), or FILE.csv with one image per row: "
              "label, then its pixels row by row (default: built-in 8×8 glyphs)",
    "--seed": "seed of the glyphs' variants and of the starting weights (torch's ranges)",
    "--optimizer": "the training sheet's optimizer",
    "--steps": "full-batch steps, one block each",
    "--preset": "framework conventions; course lays out the course's conv-example.xlsx "
                "itself (its 28×28 7, two conv layers, max-pool, dense output), corrected and "
                "forward only, as conv-course.xlsx",
    "--lr": None, "--momentum": None, "--dampening": None, "--beta1": None,
    "--beta2": None, "--eps": None, "--alpha": None, "--weight-decay": None,
    "--nesterov": None, "--schedule": None,
    "--lr-max": "onecycle: the peak lr (default the lesson's lr)",
    "--lr-min": "cosine: the floor (default 0)",
    "--pct-start": None, "--div": None, "--div-final": None, "--step-size": None,
    "--gamma": None, "--cycle-momentum": None,
    "--dropout": "dropout p on the pooled features: masks drawn from --seed at build time (a "
                 "masks sheet of 0/1 inputs), kept ones scaled by 1/(1 − p) as torch",
    "--udf": "write the training as SHEETDL.CONV_TRAIN calls with cached values, for data the "
             "formula sheet cannot hold (images up to 64×64, hundreds of them); NAMES office "
             "(default) or classic, as for graddesc",
}
#: what a SHEETDL.CONV_TRAIN call takes besides the data: the rest is refused with --udf
UDF_TAKES = {"out", "force", "data", "seed", "optimizer", "steps", "lr", "dropout", "udf",
             "kernels", "images", "classes", "image_size", "kernel_init"}
DEFAULTS = {"--optimizer": "adam", "--steps": DEFAULT_STEPS, "--seed": 0}
EXAMPLES = ("sheetdl build conv --kernels 3 --steps 60",
            "sheetdl build conv --preset course",
            "sheetdl build conv --udf --images 200 --steps 100",
            "sheetdl build conv --optimizer sgd --kernel-init edges",
            "sheetdl build conv --dropout 0.25 --steps 60",
            "sheetdl build conv --data digits --images 12 --classes 4")


def read_csv(path, size: str | None = None):
    """One image per row: a label (a number or a name), then the pixels row by row; a
    header line is skipped. Returns (images, labels, class names)."""
    path = Path(path)
    rows = [(n, r) for n, r in csv_rows(read_text(path)) if any(c.strip() for c in r)]
    if rows and is_header(rows[0][1][1:]):
        rows = rows[1:]
    if not rows:
        raise DataError(f"{path}: no data rows")
    width = len(rows[0][1])
    pixels = width - 1
    h, w = image_size(size, pixels, path)
    raw, images = [], []
    for n, r in rows:
        if len(r) != width:
            raise DataError(f"{path}, line {n}: {len(r)} columns, expected {width}")
        bad = next((i for i, c in enumerate(r[1:], start=1) if not is_number(c)), None)
        if bad is not None:
            raise DataError(f"{path}, line {n}, column {bad + 1}: {not_a_number(r[bad])}")
        values = [number(c) for c in r[1:]]
        if not all(np.isfinite(values)):
            raise DataError(f"{path}, line {n}: pixels must be finite numbers")
        images.append(values)
        raw.append(check_label(r[0].strip(), f"{path}, line {n}, column 1"))
    names = sorted(set(raw), key=lambda s: (not is_number(s), number(s) if is_number(s) else 0,
                                            s))
    labels = np.array([names.index(s) for s in raw])
    return np.array(images).reshape(-1, h, w), labels, names


def image_size(size: str | None, pixels: int, where) -> tuple[int, int]:
    """(H, W) from ``--image-size`` ("8" or "8x6"), or the square that ``pixels`` is."""
    if size is None:
        side = int(round(pixels ** 0.5))
        if side * side != pixels:
            raise DataError(f"{where}: {pixels} pixels per image is not a square; give "
                            "--image-size HxW")
        return side, side
    parts = size.lower().replace("×", "x").split("x")
    if not all(p.strip().isdigit() for p in parts) or len(parts) > 2:
        raise DataError(f"--image-size {size!r}: give H or HxW, e.g. 8 or 8x6")
    h, w = (int(parts[0]), int(parts[-1]))
    if h * w != pixels:
        raise DataError(f"{where}: --image-size {h}x{w} is {h * w} pixels, each row has "
                        f"{pixels}")
    return h, w


def load_digits(images: int, classes: int):
    """The first ``images`` of scikit-learn's 8×8 digits whose class is below ``classes``,
    pixels scaled from 0..16 to 0..1."""
    try:
        from sklearn.datasets import load_digits as load
    except ImportError:
        raise DataError("--data digits needs scikit-learn (pip install scikit-learn)") from None
    d = load()
    keep = np.flatnonzero(d.target < classes)[:images]
    return d.images[keep] / 16.0, d.target[keep], [str(c) for c in range(classes)]


def _data(args):
    n, c = args.images, args.classes
    if args.data == "digits":
        if not 2 <= c <= 10:
            raise ValueError(f"--classes must be from 2 to 10 for digits, got {c}")
        images, labels, names = load_digits(n, c)
        return images, labels, names, f"the first {len(images)} of scikit-learn's digits 0–{c - 1}"
    if args.data:
        images, labels, names = read_csv(args.data, args.image_size)
        if len(set(labels[:n])) < 2:
            raise DataError(f"{args.data}: its first {min(n, len(labels))} images have one "
                            "label; a classifier needs at least two classes")
        return (images[:n], labels[:n], names,
                f"{Path(args.data).name} (its first {min(n, len(images))} images)")
    if not 2 <= c <= len(conv.GLYPHS):
        raise ValueError(f"--classes must be from 2 to {len(conv.GLYPHS)} for the built-in "
                         f"glyphs ({', '.join(conv.GLYPHS)}), got {c}")
    images, labels, names = conv.glyph_images(n, c, args.seed)
    return images, labels, names, (f"{n} built-in 8×8 glyphs of {', '.join(names)}, "
                                   f"shifted and faded (seed {args.seed})")


#: what --preset course takes: it lays out the course's sheet, which trains nothing
COURSE_TAKES = {"out", "force", "preset"}


def check(args, given: set[str]) -> None:
    if args.preset == "course":
        extra = sorted(given - COURSE_TAKES)
        if extra:
            flag = "--" + extra[0].replace("_", "-")
            raise ValueError(f"--preset course lays out the course's own sheet (its image, "
                             f"weights and forward pass), so it takes no {flag}; build conv "
                             "without --preset course to train")
    if args.udf:
        extra = sorted(given - UDF_TAKES)
        if extra:
            flag = "--" + extra[0].replace("_", "-")
            raise ValueError(f"--udf writes SHEETDL.CONV_TRAIN calls, which take lr, the "
                             f"optimizer, steps, seed, kernels, dropout and --kernel-init, not "
                             f"{flag}; leave it out, or build without --udf")
    if "image_size" in given and not (args.data and args.data != "digits"):
        raise ValueError("--image-size is the size of a CSV's images; give --data FILE.csv")
    if "classes" in given and args.data and args.data != "digits":
        raise ValueError("--classes picks from the glyphs or digits; a CSV's labels set its "
                         "classes")


def build(args):
    if args.preset == "course":
        return course.build()
    images, labels, names, label = _data(args)
    if args.udf:
        lesson = udf.make_lesson(images, labels, names, kernels=args.kernels,
                                 optimizer=args.optimizer[0], steps=args.steps, seed=args.seed,
                                 kernel_init=args.kernel_init, data_label=label, lr=args.lr,
                                 dropout=args.dropout or 0.0)
        return udf.build(lesson, args.udf, args.seed)
    overrides = {k: getattr(args, k) for k in ("lr", "momentum", "dampening", "beta1", "beta2",
                                               "eps", "alpha", "weight_decay", "nesterov")}
    schedule_options = {k: getattr(args, k) for k in (
        "lr_max", "lr_min", "pct_start", "div", "div_final", "step_size", "gamma")}
    schedule_options["cycle_momentum"] = args.cycle_momentum
    lesson = layout.make_lesson(
        images, labels, names, kernels=args.kernels, optimizer=args.optimizer[0],
        preset=args.preset, steps=args.steps, seed=args.seed, kernel_init=args.kernel_init,
        data_label=label, schedule=args.schedule, schedule_options=schedule_options,
        dropout=args.dropout or 0.0, **overrides)
    return layout.build(lesson)


LESSON = LessonSpec(
    name=NAME,
    summary="a convolutional network trained cell by cell: conv, ReLU, max-pool, softmax",
    build=build, replay=f"{__package__}.replay", examples=EXAMPLES, flags=FLAGS,
    takes=TAKES, defaults=DEFAULTS, check=check,
    file_stem=lambda args: "conv-course" if args.preset == "course" else NAME,
    built_in_data="digits")
