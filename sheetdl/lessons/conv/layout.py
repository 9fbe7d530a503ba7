"""Layout of the conv lesson: a convolutional network trained full batch, one block per
step, every step of forward and backward a formula.

A block holds one table row per image (its label; the pooled maps flattened as torch's
``flatten``; the logits, the max-shifted softmax and the cross-entropy; ∂L/∂logits; and
the finite-difference check of kernel 1's top-left tap), then per image its picture and
maps side by side, each drawn as a heatmap: the image, each kernel's ReLU feature map,
its 2×2 max-pool, which cell of each window the gradient goes to, ∂L/∂pool and ∂L/∂z
(the routed, ReLU-masked gradient). Below, the kernels, their biases and the dense layer
with ∂L/∂θ, the optimizer's state and the new θ.

Data flows one way: options → ``conv.train`` → this layout → ``xlsx.write``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...math import dropout as inverted_dropout
from ...math import fullbatch, presets, schedules
from ...math.optim import Optimizer
from ...sheet.blocks import (BELOW_CHART, CHART_COL, CHART_HEIGHT, CHART_ROWS, CHART_WIDTH,
                             PANEL_COL, SCREEN_ROW,
                             TRACE_COL, Group, Layout, TraceTable, at_step, blocks_top,
                             step_picker, stream_blocks, training_sheet)
from ...sheet import masks
from ...sheet.formulas import (INPUT_ROW, PLAIN, about_page, conventions, input_notes,
                               input_rows, input_validations, lr_input, optimizer_columns,
                               schedule_inputs)
from ...sheet.workbook import (DIVERGING, SEQUENTIAL, Book, Chart, Series, Sheet, area, col_name,
                               number_format, ref, static_rows)
from ..data import EXCEL_MAX_COLS, EXCEL_MAX_ROWS
from . import LEARNING_RATES
from . import model as conv
from .model import POOL, TAP

#: h of the finite-difference check: the loss is smooth in a tap between ReLU kinks and
#: pool switches, so the central difference's error is rounding, ~ε·L/h, plus the rare
#: image whose ±h crosses a kink
FD_H = 1e-4
#: Sizes a sheet can show and recalculate: a 28×28 MNIST digit at most, up to 8 kernels,
#: 32 images (a kernel's gradient writes out one SUMPRODUCT per image) and 10 classes
#: (a nudged loss writes out one EXP per class)
MIN_SIDE, MAX_SIDE = 4, 28
MAX_KERNELS, MAX_IMAGES, MAX_CLASSES = 8, 32, 10
#: Formula cells a build may write: beyond this the sheet is too slow to recalculate.
MAX_CELLS = 3_000_000
#: Column width and row height (points) of a map's cells, about square on screen
PIXEL_WIDTH, PIXEL_HEIGHT = 4.3, 30
#: Column width of the maps sheet: a cell about as wide as a default row is high, so a
#: map looks like an image
MAP_PIXEL = 2.7
#: The maps sheet's pickers: row 4, step then image
PICK_ROW, STEP_COL, IMAGE_COL = 3, 6, 14
#: Row of the image's title; the image starts under it
IMAGE_ROW = 5
#: kernels the panel shows: it is 9 columns wide, a kernel 3 and a gap
PANEL_KERNELS = 2


@dataclass
class Lesson:
    images: np.ndarray        # (N, H, W)
    labels: np.ndarray        # (N,) 0-based
    classes: list[str]
    shape: conv.Shape
    kind: str
    opt: Optimizer
    follows: str
    preset: str
    steps: int
    theta0: np.ndarray
    data_label: str
    kernel_init: str = "random"
    fd_h: float = FD_H
    dropout: float = 0.0
    masks: np.ndarray | None = None  # (steps, N, F) dropout masks, when dropout > 0
    trace: conv.Trace = field(default=None)
    schedule: schedules.Schedule | None = None


def _spans(widths) -> dict[str, int]:
    """Each key's first column, the keys laid left to right from column 1 (column A holds
    the row labels); ``end`` is the first column after them."""
    cols, c = {}, 1
    for key, w in widths:
        cols[key] = c
        c += w
    cols["end"] = c
    return cols


def table_columns(shape: conv.Shape, dropout: bool = False) -> dict[str, int]:
    """The per-image table: label, flat (F), with dropout its mask and the dropped features
    (F each), logits z (C), max, exp (C), Σ, p (C), loss, correct, ∂L/∂z (C); then the
    finite difference: kernel 1's pooled map with the tap ± h (P·Q each), their logits (C
    each) and losses."""
    c, f = shape.classes, shape.features
    pq = shape.pooled[0] * shape.pooled[1]
    dropped = [("mask", f), ("dropped", f)] if dropout else []
    return _spans([("y", 1), ("flat", f), *dropped, ("z", c), ("max", 1), ("e", c), ("sum", 1),
                   ("p", c), ("loss", 1), ("correct", 1), ("dz", c), ("gap", 1),
                   ("fd_flat+", pq), ("fd_flat-", pq), ("fd_z+", c), ("fd_z-", c),
                   ("fd_loss+", 1), ("fd_loss-", 1)])


MAP_KINDS = ("a", "pool", "which", "dpool", "dz")


def map_columns(shape: conv.Shape, first: int) -> dict[tuple[str, int], int]:
    """First column of each map of an image's strip, from ``first``: the image, then per
    kind (``MAP_KINDS``) one map per kernel, a blank column after each."""
    hc, wc = shape.conv
    q = shape.pooled[1]
    width = {"a": wc, "pool": q, "which": q, "dpool": q, "dz": POOL * q}
    cols, c = {("image", 0): first}, first + shape.width + 1
    for kind in MAP_KINDS:
        for k in range(shape.kernels):
            cols[(kind, k)] = c
            c += width[kind] + 1
    cols[("end", 0)] = c
    return cols


def _groups(lesson: Lesson) -> tuple[Group, Group, Group]:
    """The kernels as the course draws them, 3×3 each, stacked; their biases; the dense
    layer as torch's Linear.weight (classes × features) with its bias as a last column."""
    sh = lesson.shape
    k, c, f = sh.kernels, sh.classes, sh.features
    p, q = sh.pooled
    o = sh.offsets()
    kernels = Group("kernels", TAP * k, TAP, lambda i, j: i * TAP + j,
                    [f"k{i // TAP + 1} row {i % TAP + 1}" for i in range(TAP * k)],
                    [f"col {j + 1}" for j in range(TAP)])
    bias = Group("kernel bias", k, 1, lambda i, j: o["kb"] + i,
                 [f"kernel {i + 1}" for i in range(k)], ["b"])
    feature = [f"k{i + 1} ({r + 1},{s + 1})" for i in range(k) for r in range(p)
               for s in range(q)]
    dense = Group("dense", c, f + 1,
                  lambda i, j: o["Wd"] + i * f + j if j < f else o["bd"] + i,
                  [f"class {name}" for name in lesson.classes], feature + ["bias"])
    return kernels, bias, dense


def _rows(shape: conv.Shape, n: int) -> dict[str, int]:
    """Block-relative rows: the table's labels and first image, the first strip's title
    (a strip is a title row and H map rows per image), and the band's height."""
    strips = 4 + n
    return {"labels": 2, "table": 3, "strips": strips, "strip": shape.height + 1,
            "band": 1 + n + n * (shape.height + 1)}


def blocks_start(lesson: Lesson) -> int:
    scheduled = lesson.schedule is not None and lesson.schedule.scheduled
    lr_chart = BELOW_CHART + 2 * CHART_ROWS + 1 if scheduled else 0
    return blocks_top(SCREEN_ROW + lesson.steps, _panel_rows(lesson)[-1], lr_chart)


def _panel_rows(lesson: Lesson) -> tuple[int, int, int, int]:
    """The panel's step picker, its kernels' header, its images' header and last row."""
    pick = SCREEN_ROW
    kernels = pick + 2
    images = kernels + TAP + 3
    return pick, kernels, images, images + len(lesson.images)


def cell_count(shape: conv.Shape, n: int, steps: int, matrices: int,
               dropout: bool = False) -> int:
    """Formula cells of a build, near enough to bound it before anything is computed:
    per step the table, the strips and ``matrices`` copies of every parameter."""
    hc, wc = shape.conv
    p, q = shape.pooled
    table = table_columns(shape, dropout)["end"]
    strip = shape.height * shape.width + shape.kernels * (hc * wc + 3 * p * q
                                                          + POOL * p * POOL * q)
    return steps * (n * (table + strip) + matrices * shape.size)


def make_lesson(images, labels, classes, *, kernels=2, optimizer="adam", preset="torch",
                steps=40, seed=0, kernel_init="random", data_label="", schedule="constant",
                schedule_options=None, theta0=None, dropout=0.0, masks=None,
                **overrides) -> Lesson:
    """A lesson on ``images`` (N × H × W, values as they are) with 0-based ``labels`` of
    ``classes``; ``theta0`` (packed as ``conv.Shape.pack``) replaces the seeded start;
    ``dropout`` p drops pooled features by ``masks`` (steps × N × F), drawn from ``seed``
    unless given."""
    images = np.asarray(images, float)
    labels = np.asarray(labels, int)
    if images.ndim != 3:
        raise ValueError(f"images must be N × H × W, got shape {images.shape}")
    n, h, w = images.shape
    if len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} labels")
    if not 1 <= n <= MAX_IMAGES:
        raise ValueError(f"--images must be from 1 to {MAX_IMAGES}, got {n}")
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise ValueError(f"images of {h}×{w}: each side must be from {MIN_SIDE} to {MAX_SIDE} "
                         "pixels")
    if not 2 <= len(classes) <= MAX_CLASSES:
        raise ValueError(f"--classes must be from 2 to {MAX_CLASSES}, got {len(classes)}")
    if labels.min() < 0 or labels.max() >= len(classes):
        raise ValueError(f"labels must be 0 to {len(classes) - 1}")
    if not 1 <= kernels <= MAX_KERNELS:
        raise ValueError(f"--kernels must be from 1 to {MAX_KERNELS}, got {kernels}")
    if steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    inverted_dropout.check_p(dropout)
    shape = conv.Shape(h, w, kernels, len(classes))
    if overrides.get("lr") is None:
        overrides["lr"] = LEARNING_RATES[optimizer]
    opt, follows = presets.resolve(preset, optimizer, **overrides)
    # θ, ∂L/∂θ and each per-parameter column of the optimizer is a matrix of every group
    matrices = 2 + sum(c.per_param for c in optimizer_columns(opt))
    end = map_columns(shape, max(table_columns(shape, dropout > 0)["end"],
                                 1 + matrices * (shape.features + 2)) + 1)[("end", 0)]
    if end > EXCEL_MAX_COLS:
        raise ValueError(f"{h}×{w} images with {kernels} kernels need {end:,} columns, past "
                         f"Excel's {EXCEL_MAX_COLS:,}")
    cells = cell_count(shape, n, steps, matrices, dropout=dropout > 0)
    if cells > MAX_CELLS:
        raise ValueError(f"{steps} steps × {n} images of {h}×{w} × {kernels} kernels is about "
                         f"{cells:,} formula cells, past the {MAX_CELLS:,} a sheet "
                         "recalculates in reasonable time; use fewer --steps, --images or "
                         "--kernels")
    theta0 = conv.init_params(shape, seed, kernel_init) if theta0 is None else \
        np.asarray(theta0, float)
    lesson = Lesson(images, labels, list(classes), shape, optimizer, opt, follows, preset,
                    steps, theta0, data_label, kernel_init, dropout=dropout)
    if dropout:
        lesson.masks = inverted_dropout.draw(steps, n, shape.features, dropout, seed) \
            if masks is None else np.asarray(masks, float).reshape(steps, n, shape.features)
    lesson.schedule = schedules.for_lesson(schedule, schedule_options, steps, optimizer, opt.lr,
                                           preset)
    rows = blocks_start(lesson) + (steps + 1) * _layout(lesson).height
    if rows > EXCEL_MAX_ROWS:
        raise ValueError(f"{steps} steps need {rows:,} rows, past Excel's {EXCEL_MAX_ROWS:,}; "
                         "use fewer --steps or --images")
    with np.errstate(all="ignore"):
        lesson.trace = conv.train(opt, shape, images, labels, theta0, steps, lesson.schedule,
                                  lesson.fd_h, masks=lesson.masks, dropout=dropout)
    return lesson


def _layout(lesson: Lesson, groups=None) -> Layout:
    """The block layout over ``groups`` (``_groups``, whose rows it sets)."""
    return Layout(lesson.opt, list(groups or _groups(lesson)),
                  lesson_rows=_rows(lesson.shape, len(lesson.images))["band"],
                  scalars=[("loss", "loss", "mean cross-entropy over all images, before this "
                            "step's update (torch's F.cross_entropy)"),
                           ("accuracy", "accuracy", "share of images whose label has the "
                            "largest logit"),
                           ("fd", "fd check", "∂L/∂K₁[1,1], kernel 1's top-left tap, by the "
                            "central finite difference (L(tap + h) − L(tap − h))/(2h), "
                            "h = fd_h, from the nudged losses of the table: it should match "
                            "the backprop value beside it"),
                           ("analytic", "backprop", "∂L/∂K₁[1,1] by the chain rule: the "
                            "first cell of ∂L/∂θ (kernels) below")],
                  top=blocks_start(lesson), schedule=lesson.schedule)


def class_names(lesson: Lesson) -> str:
    """The data sheet's column of class names (``classes``), beside the pixels and the
    class numbers."""
    c = col_name(1 + lesson.shape.height * lesson.shape.width + 2)
    return f"data!${c}$2:${c}${1 + lesson.shape.classes}"


def data_sheet(lesson: Lesson) -> Sheet:
    """One image per row: its label, then its pixels row by row (yellow inputs); the
    class names beside."""
    n, h, w = lesson.images.shape
    side = 1 + h * w + 1
    rows = [(0, [(0, None, "label", "header")]
             + [(1 + i * w + j, None, f"({i + 1},{j + 1})", "header")
                for i in range(h) for j in range(w)]
             + [(side, None, "class", "header"), (side + 1, None, "name", "header"),
                (side + 3, None, f"Data: {lesson.data_label}. The yellow cells are inputs: "
                 "edit a pixel or a label and the train sheet retrains.", "bold")])]
    for i in range(n):
        cells = [(0, None, int(lesson.labels[i]), "input")]
        cells += [(1 + j, None, float(v), "input") for j, v in
                  enumerate(lesson.images[i].ravel())]
        rows.append((1 + i, cells))
    for c, name in enumerate(lesson.classes):
        rows.append((1 + c, [(side, None, c, "int"), (side + 1, None, name, None)]))
    rows.append((2, [(side + 3, None, "Each row is one image, its label (0-based, a row of "
                      "the class table) then its pixels row by row: torch's (N, 1, H, W) "
                      "flattened. X names the pixels, y_index the labels.", "subtitle")]))
    validations = [(1, 1, n, h * w, {"validate": "decimal", "criteria": "between",
                                     "minimum": -1e6, "maximum": 1e6, "input_title": "pixel",
                                     "input_message": "a pixel value"}),
                   (1, 0, n, 0, {"validate": "integer", "criteria": "between", "minimum": 0,
                                 "maximum": len(lesson.classes) - 1, "input_title": "label",
                                 "input_message": f"a class, 0 to {len(lesson.classes) - 1}"})]
    widths = {j: 6 for j in range(1 + h * w)}
    widths.update({0: 7, side + 1: 10})
    return Sheet("data", static_rows(rows), widths=widths, freeze=(1, 1),
                 validations=validations,
                 color_scales=[(f"B2:{col_name(h * w)}{n + 1}", SEQUENTIAL)])


BAND_TITLES = {
    "y": "label", "flat": "flatten(pool): torch's order, kernel by kernel, row by row",
    "mask": "dropout mask (the masks sheet)", "dropped": "flat · mask / (1 − p)",
    "z": "logits z = Wd·flat + bd", "max": "max", "e": "exp(z − max)", "sum": "Σ",
    "p": "p = softmax(z)", "loss": "loss", "correct": "correct",
    "dz": "∂L/∂z = (p − onehot)/N",
    "fd_flat+": "kernel 1 pooled, tap + h", "fd_flat-": "kernel 1 pooled, tap − h",
    "fd_z+": "z, tap + h", "fd_z-": "z, tap − h", "fd_loss+": "L, tap + h",
    "fd_loss-": "L, tap − h",
}
BAND_NOTES = {
    "y": "the image's class (0-based), read from the data sheet",
    "flat": "the pooled maps of the strip below, one after another (kernel 1's rows, then "
            "kernel 2's...): torch's flatten of (K, P, Q), the dense layer's input",
    "mask": "this step's dropout mask of the image's features, 1 kept, 0 dropped: drawn once "
            "at build time from the seed (the masks sheet; yellow, edit one to see its effect). "
            "The course's dropout sheet used RAND(), which redraws at every recalculation",
    "dropped": "inverted dropout, as torch: a kept feature is scaled by 1/(1 − p) so its "
               "expected value is unchanged (the course's sheet did not rescale). The dense "
               "layer reads these; back through them the gradient takes the same mask and "
               "scale",
    "z": "one logit per class: SUMPRODUCT of the flattened features with the class's row "
         "of Wd, plus its bias",
    "max": "the largest logit, subtracted before EXP so that large logits do not overflow "
           "(torch does the same)",
    "loss": "cross-entropy: LN(Σ) − (z_label − max) = −log p_label; the step's loss is the "
            "mean over images (torch's F.cross_entropy)",
    "correct": "1 where the label's logit is the largest",
    "dz": "the chain rule starts here: ∂L/∂z_c = (p_c − [c = label])/N. ∂L/∂Wd = SUMPRODUCT "
          "of this column with a flattened feature's column, ∂L/∂bd its SUM",
    "fd_flat+": "kernel 1's pooled map with its top-left tap nudged up by h = fd_h: each "
                "pre-activation moves by h times its window's top-left pixel, so a pooled "
                "cell is MAX(0, the four moved pre-activations)",
    "fd_loss+": "this image's loss with the tap + h; fd check = (mean L₊ − mean L₋)/(2h)",
}
MAP_TITLES = {"image": "image", "a": "relu(conv) k", "pool": "pool k", "which": "route k",
              "dpool": "∂L/∂pool k", "dz": "∂L/∂conv k"}
MAP_NOTES = {
    "image": "the image, read from the data sheet (a heatmap: white low, red high)",
    "a": "the feature map: each cell MAX(0, SUMPRODUCT(the 3×3 window of the image under "
         "it, the kernel) + the kernel's bias), the convolution and the ReLU in one formula",
    "pool": "2×2 max-pool: each cell the MAX of a window of the feature map, stride 2 (an "
            "odd map's last row or column is dropped, as F.max_pool2d floors)",
    "which": "where max-pool's gradient goes: 1 top-left, 2 top-right, 3 bottom-left, 4 "
             "bottom-right, the first cell equal to the window's max (compared ROUNDed to 9 "
             "decimals: spreadsheets compare with a tolerance that differs between them, and "
             "the same sum added in another order can differ in its last digit). With ties (a "
             "window all 0 after the ReLU) it is the first in row-major order: torch's CPU "
             "kernel routes an exact tie there too",
    "dpool": "∂L/∂pool = Σ_c ∂L/∂z_c · Wd[c, this feature]: back through the dense layer",
    "dz": "back through the pool and the ReLU: ∂L/∂pool at the window's routed cell where "
          "the feature map is > 0, else 0. ∂L/∂kernel[u,v] = Σ over images of SUMPRODUCT(this "
          "map, the image shifted by (u,v)); ∂L/∂bias = its SUM over images",
}


class _Band:
    """The cells of one block's band: its table and its strips (formulas, values, notes)."""

    def __init__(self, lesson: Lesson, lay: Layout, groups):
        self.lesson, self.lay = lesson, lay
        self.kernels, self.bias, self.dense = groups
        sh = lesson.shape
        self.n = len(lesson.images)
        self.rows = _rows(sh, self.n)
        self.dropout = lesson.dropout > 0
        self.tc = table_columns(sh, self.dropout)
        #: the dense layer's input: the pooled features, after dropout where there is one
        self.dense_in = "dropped" if self.dropout else "flat"
        self.first_map = max(self.tc["end"], lay.width()) + 1
        self.mc = map_columns(sh, self.first_map)
        tr = lesson.trace
        with np.errstate(all="ignore"):
            fmt = lambda values: "general|" + number_format(values)
            s = tr.steps
            self.fmt = {"flat": fmt([x.flat for x in s]), "z": fmt([x.soft.logits for x in s]),
                        "max": fmt([x.soft.max for x in s]), "e": fmt([x.soft.exp for x in s]),
                        "sum": fmt([x.soft.sum for x in s]), "p": fmt([x.soft.probs for x in s]),
                        "loss": fmt([x.soft.loss for x in s]),
                        "dz": fmt([x.dlogits for x in s]),
                        "fd_flat": fmt([x.fd_flat for x in s]),
                        "fd_z": fmt([x.fd_logits for x in s]),
                        "fd_loss": fmt([x.fd_loss for x in s])}

    def table_row(self, block: int, i: int) -> int:
        return self.lay.block_row(block) + self.rows["table"] + i

    def strip_row(self, block: int, i: int) -> int:
        """The sheet row of image i's first map row."""
        return self.lay.block_row(block) + self.rows["strips"] + i * self.rows["strip"] + 1

    def at(self, block, i, key, j=0) -> str:
        return ref(self.table_row(block, i), self.tc[key] + j)

    def span(self, block, i, key, width) -> str:
        return f"{self.at(block, i, key)}:{self.at(block, i, key, width - 1)}"

    def column(self, block, key, j=0) -> str:
        c = col_name(self.tc[key] + j)
        return f"{c}{self.table_row(block, 0) + 1}:{c}{self.table_row(block, self.n - 1) + 1}"

    def map_cell(self, block, i, kind, k, r, c) -> str:
        return ref(self.strip_row(block, i) + r, self.mc[(kind, k)] + c)

    def map_area(self, block, i, kind, k, r0, c0, rows, cols) -> str:
        return (f"{self.map_cell(block, i, kind, k, r0, c0)}:"
                f"{self.map_cell(block, i, kind, k, r0 + rows - 1, c0 + cols - 1)}")

    def theta(self, block, group, i, j) -> str:
        return self.lay.cell(block, group, "p", i, j)

    def kernel(self, block, k) -> str:
        return self.lay.area(block, self.kernels, "p", rows=(TAP * k, TAP * k + TAP - 1)
                             ).replace("$", "")

    def wd_row(self, block, c, c0, c1) -> str:
        return self.lay.area(block, self.dense, "p", rows=(c, c), cols=(c0, c1)).replace("$", "")

    # -- the table ---------------------------------------------------------------------

    def table(self, block: int, st: conv.Step) -> dict[int, list]:
        sh, n, fmt = self.lesson.shape, self.n, self.fmt
        c, f = sh.classes, sh.features
        p, q = sh.pooled
        pq = p * q
        r0 = self.lay.block_row(block)
        labels = []
        for key, title in BAND_TITLES.items():
            if key not in self.tc:
                continue
            width = {"flat": f, "mask": f, "dropped": f, "z": c, "e": c, "p": c, "dz": c,
                     "fd_flat+": pq,
                     "fd_flat-": pq, "fd_z+": c, "fd_z-": c}.get(key, 1)
            labels += [(self.tc[key] + j, None, None if j else title,
                        "label_span" if width > 1 else "label") for j in range(width)]
        rows = {r0 + self.rows["labels"]: labels}
        s = st.soft
        for i in range(n):
            a = lambda key, j=0: self.at(block, i, key, j)
            zs = self.span(block, i, "z", c)
            target = f"INDEX({zs},1,{a('y')}+1)"
            cells = [(0, None, f"image {i + 1}", None),
                     (self.tc["y"], f"=data!$A${i + 2}", int(self.lesson.labels[i]), "int")]
            for j in range(f):
                k, rest = divmod(j, pq)
                cells.append((self.tc["flat"] + j,
                              "=" + self.map_cell(block, i, "pool", k, rest // q, rest % q),
                              float(st.flat[i, j]), fmt["flat"]))
            if self.dropout:
                t = block - 1
                for j in range(f):
                    cells.append((self.tc["mask"] + j,
                                  "=" + masks.cell(t, i, j, n),
                                  float(self.lesson.masks[t, i, j]), "int"))
                    cells.append((self.tc["dropped"] + j,
                                  f"={a('flat', j)}*{a('mask', j)}/(1-dropout)",
                                  float(st.dropped[i, j]), fmt["flat"]))
            flat = self.span(block, i, self.dense_in, f)
            for k in range(c):
                weights = self.wd_row(block, k, 0, f - 1)
                cells.append((self.tc["z"] + k, f"=SUMPRODUCT({flat},{weights})"
                              f"+{self.theta(block, self.dense, k, f)}", float(s.logits[i, k]),
                              fmt["z"]))
            cells.append((self.tc["max"], f"=MAX({zs})", float(s.max[i]), fmt["max"]))
            for k in range(c):
                cells.append((self.tc["e"] + k, f"=EXP({a('z', k)}-{a('max')})",
                              float(s.exp[i, k]), fmt["e"]))
            cells.append((self.tc["sum"], f"=SUM({self.span(block, i, 'e', c)})", float(s.sum[i]),
                          fmt["sum"]))
            for k in range(c):
                cells.append((self.tc["p"] + k, f"={a('e', k)}/{a('sum')}", float(s.probs[i, k]),
                              fmt["p"]))
            cells.append((self.tc["loss"], f"=LN({a('sum')})-({target}-{a('max')})",
                          float(s.loss[i]), fmt["loss"]))
            cells.append((self.tc["correct"], f"=IF({target}={a('max')},1,0)",
                          float(st.correct[i]), "int"))
            for k in range(c):
                cells.append((self.tc["dz"] + k, f"=({a('p', k)}-IF({a('y')}={k},1,0))/"
                              "ROWS(y_index)", float(st.dlogits[i, k]), fmt["dz"]))
            cells += self._finite_difference(block, i, st)
            rows[r0 + self.rows["table"] + i] = cells
        return rows

    def _finite_difference(self, block: int, i: int, st: conv.Step) -> list:
        sh, fmt = self.lesson.shape, self.fmt
        c, f = sh.classes, sh.features
        p, q = sh.pooled
        pq = p * q
        a = lambda key, j=0: self.at(block, i, key, j)
        kernel, b = self.kernel(block, 0), self.theta(block, self.bias, 0, 0)
        cells = []
        for s, sign in enumerate("+-"):
            for j in range(pq):
                r, cc = divmod(j, q)
                moved = []
                for dr in range(POOL):
                    for dc in range(POOL):
                        y, x = POOL * r + dr, POOL * cc + dc
                        win = self.map_area(block, i, "image", 0, y, x, TAP, TAP)
                        pixel = self.map_cell(block, i, "image", 0, y, x)
                        moved.append(f"SUMPRODUCT({win},{kernel})+{b}{sign}fd_h*{pixel}")
                kept = f"*{a('mask', j)}/(1-dropout)" if self.dropout else ""
                cells.append((self.tc[f"fd_flat{sign}"] + j, f"=MAX(0,{','.join(moved)}){kept}",
                              float(st.fd_flat[s, i, j]), fmt["fd_flat"]))
            nudged = self.span(block, i, f"fd_flat{sign}", pq)
            for k in range(c):
                others = (f"{self.at(block, i, self.dense_in, pq)}:"
                          f"{self.at(block, i, self.dense_in, f - 1)}")
                rest = "" if f == pq else (
                    f"+SUMPRODUCT({others},{self.wd_row(block, k, pq, f - 1)})")
                cells.append((self.tc[f"fd_z{sign}"] + k,
                              f"=SUMPRODUCT({nudged},{self.wd_row(block, k, 0, pq - 1)}){rest}"
                              f"+{self.theta(block, self.dense, k, f)}",
                              float(st.fd_logits[s, i, k]), fmt["fd_z"]))
            zs = self.span(block, i, f"fd_z{sign}", c)
            exps = "+".join(f"EXP({a(f'fd_z{sign}', k)}-MAX({zs}))" for k in range(c))
            cells.append((self.tc[f"fd_loss{sign}"], f"=LN({exps})-(INDEX({zs},1,{a('y')}+1)-"
                          f"MAX({zs}))", float(st.fd_loss[s, i]), fmt["fd_loss"]))
        return cells

    # -- the strips --------------------------------------------------------------------

    def strips(self, block: int, st: conv.Step) -> dict[int, list]:
        sh = self.lesson.shape
        h, w = sh.height, sh.width
        hc, wc = sh.conv
        p, q = sh.pooled
        c = sh.classes
        rows: dict[int, list] = {}
        put = lambda r, col, formula, value, style: rows.setdefault(r, []).append(
            (col, formula, value, style))
        for i in range(self.n):
            top = self.strip_row(block, i)
            put(top - 1, 0, None, f"image {i + 1}", "bold")
            # bold, not a boxed label: a title runs on over the blank cells of its map
            put(top - 1, self.mc[("image", 0)], None, MAP_TITLES["image"], "bold")
            for kind in MAP_KINDS:
                for k in range(sh.kernels):
                    put(top - 1, self.mc[(kind, k)], None, f"{MAP_TITLES[kind]}{k + 1}", "bold")
            img = self.mc[("image", 0)]
            for r in range(h):
                for j in range(w):
                    put(top + r, img + j, f"=data!{col_name(1 + r * w + j)}${i + 2}",
                        float(self.lesson.images[i, r, j]), "general")
            for k in range(sh.kernels):
                kernel, b = self.kernel(block, k), self.theta(block, self.bias, k, 0)
                for r in range(hc):
                    for j in range(wc):
                        win = self.map_area(block, i, "image", 0, r, j, TAP, TAP)
                        put(top + r, self.mc[("a", k)] + j,
                            f"=MAX(0,SUMPRODUCT({win},{kernel})+{b})", float(st.a[i, k, r, j]),
                            "general")
                for r in range(p):
                    for j in range(q):
                        win = self.map_area(block, i, "a", k, POOL * r, POOL * j, POOL, POOL)
                        m = self.map_cell(block, i, "pool", k, r, j)
                        put(top + r, self.mc[("pool", k)] + j, f"=MAX({win})",
                            float(st.pool[i, k, r, j]), "general")
                        tl, tr, bl = (self.map_cell(block, i, "a", k, POOL * r + dr, POOL * j + dc)
                                      for dr, dc in ((0, 0), (0, 1), (1, 0)))
                        put(top + r, self.mc[("which", k)] + j,
                            "=IF({0}={3},1,IF({1}={3},2,IF({2}={3},3,4)))".format(
                                *(f"ROUND({x},{conv.TIE_DECIMALS})" for x in (tl, tr, bl, m))),
                            float(st.which[i, k, r, j]), "int")
                        f = k * p * q + r * q + j
                        terms = "+".join(f"{self.at(block, i, 'dz', cc)}*"
                                         f"{self.theta(block, self.dense, cc, f)}"
                                         for cc in range(c))
                        if self.dropout:
                            terms = f"({terms})*{self.at(block, i, 'mask', f)}/(1-dropout)"
                        put(top + r, self.mc[("dpool", k)] + j, f"={terms}",
                            float(st.dpool[i, k, r, j]), "general")
                for r in range(POOL * p):
                    for j in range(POOL * q):
                        which = self.map_cell(block, i, "which", k, r // POOL, j // POOL)
                        dpool = self.map_cell(block, i, "dpool", k, r // POOL, j // POOL)
                        pos = 1 + POOL * (r % POOL) + j % POOL
                        a = self.map_cell(block, i, "a", k, r, j)
                        put(top + r, self.mc[("dz", k)] + j,
                            f"=IF(AND({which}={pos},SIGN({a})=1),{dpool},0)",
                            float(st.dz[i, k, r, j]), "general")
        return rows

    def heatmaps(self, block: int) -> list[tuple[str, str]]:
        """This block's colour scales: one per kind of map over all its images and kernels,
        so the maps of one step compare."""
        sh = self.lesson.shape
        hc, wc = sh.conv
        p, q = sh.pooled
        size = {"image": (sh.height, sh.width), "a": (hc, wc), "pool": (p, q),
                "dpool": (p, q), "dz": (POOL * p, POOL * q)}
        out = []
        for kind, (rows, cols) in size.items():
            kernels = [0] if kind == "image" else range(sh.kernels)
            ranges = " ".join(self.map_area(block, i, kind, k, 0, 0, rows, cols)
                              for i in range(self.n) for k in kernels)
            out.append((ranges, DIVERGING if kind in ("dpool", "dz") else SEQUENTIAL))
        return out

    def notes(self, block: int) -> list[tuple[int, int, str]]:
        r = self.lay.block_row(block)
        out = [(r + self.rows["labels"], self.tc[key], text) for key, text in BAND_NOTES.items()
               if key in self.tc]
        top = self.strip_row(block, 0) - 1
        out.append((top, self.mc[("image", 0)], MAP_NOTES["image"]))
        out += [(top, self.mc[(kind, 0)], MAP_NOTES[kind]) for kind in MAP_KINDS]
        return out

    def gradient(self, block: int):
        """``grad_formula`` of the layout: ∂L/∂θ from the band's columns and maps."""
        sh = self.lesson.shape
        p, q = sh.pooled
        hz, wz = POOL * p, POOL * q

        def formula(g, i, j):
            if g is self.kernels:
                k, u = divmod(i, TAP)
                return "=" + "+".join(
                    f"SUMPRODUCT({self.map_area(block, n, 'dz', k, 0, 0, hz, wz)},"
                    f"{self.map_area(block, n, 'image', 0, u, j, hz, wz)})"
                    for n in range(self.n))
            if g is self.bias:
                return "=SUM(" + ",".join(self.map_area(block, n, "dz", i, 0, 0, hz, wz)
                                          for n in range(self.n)) + ")"
            if j == sh.features:
                return f"=SUM({self.column(block, 'dz', i)})"
            return (f"=SUMPRODUCT({self.column(block, 'dz', i)},"
                    f"{self.column(block, self.dense_in, j)})")
        return formula


def train_sheet(lesson: Lesson, sheet_name: str = "train") -> tuple[Sheet, dict]:
    """The training sheet: inputs, status, trace table and charts on the first screen, the
    panel (kernels and each image's prediction at a chosen step) beside them, then one block
    per step."""
    tr, sh, steps = lesson.trace, lesson.shape, lesson.steps
    n = len(lesson.images)
    groups, lay, band = _frame(lesson)
    kernels = groups[0]
    with np.errstate(all="ignore"):
        lay.set_formats(tr)
        lay.formats.update(g=number_format([st.grad for st in tr.steps]),
                           loss=number_format([st.loss for st in tr.steps]), accuracy="0.0%",
                           fd=number_format([[st.fd, st.grad[0]] for st in tr.steps]))
        lay.formats["analytic"] = lay.formats["fd"]
    hyper, hvals = schedule_inputs(lesson.opt, lesson.schedule)
    hyper, hvals = hyper + ["fd_h"], {**hvals, "fd_h": lesson.fd_h}
    if lesson.dropout:
        hyper, hvals = hyper + ["dropout"], {**hvals, "dropout": lesson.dropout}
    scheduled = lesson.schedule is not None and lesson.schedule.scheduled
    table = TraceTable(lay, tr, SCREEN_ROW + 1, TRACE_COL, sheet_name, "step", "loss",
                       ("accuracy", "accuracy"), None, metric_style="summary|0.0%")
    panel, panel_notes, panel_validations = _panel(lesson, lay, band, sheet_name)
    notes = input_notes(hyper, conventions(lesson.kind, lesson.opt, lesson.follows))
    notes += panel_notes + band.notes(1)
    heatmaps = []

    def rows():
        k, (hc, wc), (p, q) = sh.kernels, sh.conv, sh.pooled
        title = (f"{sheet_name}: a convolutional network, {k} kernel{'s' * (k > 1)} of 3×3, "
                 f"{lesson.kind}, {steps} full-batch steps on {n} images of "
                 f"{sh.height}×{sh.width}")
        sentence = (f"image → conv 3×3 + bias → ReLU ({hc}×{wc} maps) → 2×2 max-pool ({p}×{q}) "
                    f"→ dense → softmax → cross-entropy; each block below is one step: forward, "
                    "then backprop, each map a heatmap. " + PLAIN[lesson.kind])
        if scheduled:
            sentence += " " + lesson.schedule.describe() + "."
        yield from input_rows(
            title, sentence, hyper, hvals,
            f"Change a yellow cell ({lr_input(lesson.schedule)}, a pixel on the data sheet, or "
            f"a starting kernel in the 'start' block at row {lay.top + 1}) and every step "
            "recomputes; type a step in the panel to see the network then. Step 1, worked out, "
            f"from row {lay.block_row(1) + 1}.",
            table.status(hyper), derived={"steps": table.steps_formula()})

        def step_cells(block):
            st = tr.steps[block - 1]
            scalars = [("loss", f"=AVERAGE({band.column(block, 'loss')})", st.loss),
                       ("accuracy", f"=AVERAGE({band.column(block, 'correct')})", st.accuracy),
                       ("fd", f"=(AVERAGE({band.column(block, 'fd_loss+')})-AVERAGE("
                              f"{band.column(block, 'fd_loss-')}))/(2*fd_h)", st.fd),
                       ("analytic", "=" + lay.cell(block, kernels, "g", 0, 0),
                        float(st.grad[0]))]
            cells = lay.cells(block, theta=tr.theta[block - 1], grad=st.grad,
                              shown=tr.shown[block - 1], init_state=None,
                              grad_formula=band.gradient(block),
                              scalar_cells=scalars + lay.schedule_cells(block,
                                                                        tr.shown[block - 1]),
                              notes=notes)
            for part in (band.table(block, st), band.strips(block, st)):
                for row, extra in part.items():
                    cells.setdefault(row, []).extend(extra)
            heatmaps.extend(band.heatmaps(block))
            return cells

        yield from stream_blocks(lay, tr, [table.rows(), panel], step_cells, notes=notes)

    validations = input_validations(hyper, INPUT_ROW) + panel_validations + lay.start_validations()
    sn = sheet_name
    names = {name: f"{sn}!{ref(INPUT_ROW, i, True)}" for i, name in enumerate(hyper)}
    kb, dense = groups[1], groups[2]
    f = sh.features
    for when, block in (("init", 0), ("final", steps)):
        names[f"K_{when}"] = f"{sn}!" + lay.area(block, kernels, "new")
        names[f"kb_{when}"] = f"{sn}!" + lay.area(block, kb, "new")
        names[f"Wd_{when}"] = f"{sn}!" + lay.area(block, dense, "new", cols=(0, f - 1))
        names[f"bd_{when}"] = f"{sn}!" + lay.area(block, dense, "new", cols=(f, f))
    names.update(table.names())
    charts = table.charts("mean cross-entropy per step", "loss", "loss", "loss_trace",
                          at=[(SCREEN_ROW, CHART_COL), (BELOW_CHART + CHART_ROWS + 1, CHART_COL)])
    charts.insert(1, Chart(BELOW_CHART, CHART_COL, f"{sn}: accuracy per step", "step",
                           "accuracy", [Series("accuracy", area(sn, table.top, TRACE_COL,
                                                                table.last),
                                               names["accuracy_trace"])],
                           scatter=True, width=400, height=288, y_range=(0, 1)))
    sheet = training_sheet(sn, rows, lay, table, hyper, names, notes=notes,
                           validations=validations, charts=charts, unique_names=False)
    sheet.color_scales = heatmaps
    for c in range(lay.width() + 1, band.first_map):
        sheet.widths.setdefault(c, 10)
    for c in range(band.first_map, band.mc[("end", 0)]):
        sheet.widths[c] = PIXEL_WIDTH
    for block in range(1, steps + 1):
        for i in range(n):
            for r in range(sh.height):
                sheet.heights[band.strip_row(block, i) + r] = PIXEL_HEIGHT
    sheet.color_scales.append((" ".join(lay.area(b, kernels, "p").replace("$", "")
                                        for b in range(1, steps + 1)), DIVERGING))
    pick, kernels_at = _panel_rows(lesson)[:2]
    sheet.color_scales += [(f"{ref(kernels_at + 1, PANEL_COL + 4 * k)}:"
                            f"{ref(kernels_at + TAP, PANEL_COL + 4 * k + TAP - 1)}", DIVERGING)
                           for k in range(min(sh.kernels, PANEL_KERNELS))]
    return sheet, names


def _panel(lesson: Lesson, lay: Layout, band: _Band, sheet: str):
    """Right of the charts: a yellow step picker; the kernels at that step (a heatmap);
    each image's label, predicted class and probabilities at that step, INDEXed from that
    step's block. Returns (cells by row, notes, validations)."""
    tr, steps, sh = lesson.trace, lesson.steps, lesson.shape
    pick, kernels_at, images_at, _ = _panel_rows(lesson)
    c0 = PANEL_COL
    show = ref(pick, c0 + 1, True)
    rows: dict[int, list] = {}
    put = lambda r, c, f, v, st: rows.setdefault(r, []).append((c, f, v, st))
    picker, picker_rule = step_picker(pick, c0, steps, "the network")
    rows.setdefault(pick, []).extend(picker)
    theta, st = tr.theta[steps - 1], tr.steps[steps - 1]
    kernels = band.kernels
    p_col = lay.matrix_col[(kernels.name, "p")]
    shown_kernels = min(sh.kernels, PANEL_KERNELS)
    for k in range(shown_kernels):
        put(kernels_at, c0 + 4 * k, None, f"kernel {k + 1}", "header")
        for u in range(TAP):
            for v in range(TAP):
                put(kernels_at + 1 + u, c0 + 4 * k + v,
                    at_step(lay, kernels.band + TAP * k + u, p_col + v, show, steps),
                    float(theta[kernels.index(TAP * k + u, v)]), lay.style("p", "num"))
    classes = lesson.classes
    shown = min(sh.classes, 6)
    heads = ["image", "label", "predicted"] + [f"p({c})" for c in classes[:shown]]
    for j, head in enumerate(heads):
        put(images_at, c0 + j, None, head, "header")
    names = class_names(lesson)
    for i in range(len(lesson.images)):
        r = images_at + 1 + i
        put(r, c0, None, f"image {i + 1}", "bold")
        put(r, c0 + 1, f"=INDEX({names},data!$A${i + 2}+1)", classes[lesson.labels[i]], None)
        ps = [at_step(lay, band.rows["table"] + i, band.tc["p"] + c, show, steps)
              for c in range(shown)]
        probs = st.soft.probs[i]
        first = ref(r, c0 + 3)
        last = ref(r, c0 + 2 + shown)
        predicted = (classes[int(np.argmax(probs[:shown]))]
                     if np.all(np.isfinite(probs[:shown])) else math.nan)  # #NUM! overflowed
        put(r, c0 + 2, f"=INDEX({names},MATCH(MAX({first}:{last}),{first}:{last},0))",
            predicted, None)
        for c in range(shown):
            put(r, c0 + 3 + c, ps[c], float(probs[c]), "general|0.000")
    notes = [(pick, c0 + 1, f"Any step from 1 to {steps}: the kernels and the probabilities "
              "beside are that step's block, read with INDEX: the network as it enters the "
              "step, before its update (the trained network is the last block's new θ, the "
              "names K_final...)."),
             (kernels_at, c0, "The 3×3 kernel at the shown step: red taps add the pixel under "
              "them, blue ones subtract it; watch them change as training proceeds."),
             (images_at, c0 + 3, "The softmax probability of each class at the shown step; "
              "the predicted class is the largest" + (
                  f" of the first {shown}" if shown < sh.classes else ""))]
    validations = [picker_rule]
    return rows, notes, validations


def _frame(lesson: Lesson):
    """(groups, layout, band) of the train sheet: where every cell of a block is."""
    groups = _groups(lesson)
    lay = _layout(lesson, groups)
    return groups, lay, _Band(lesson, lay, groups)


def maps_sheet(lesson: Lesson, train: str = "train") -> Sheet:
    """The learner's first look: for the step and image typed into the yellow cells, the
    image, each kernel, its ReLU feature map and its max-pool as heatmaps, the class
    probabilities and the loss chart. Each cell INDEXes the train sheet's block of that step
    (one block height per step, one strip per image), so nothing is computed twice."""
    groups, lay, band = _frame(lesson)
    kernels = groups[0]
    sh, steps, tr = lesson.shape, lesson.steps, lesson.trace
    n, (hc, wc), (p, q) = len(lesson.images), sh.conv, sh.pooled
    show, image = ref(PICK_ROW, STEP_COL, True), ref(PICK_ROW, IMAGE_COL, True)
    st, theta = tr.steps[steps - 1], tr.theta[steps - 1]
    rows: dict[int, list] = {}
    put = lambda r, c, f, v, style: rows.setdefault(r, []).append((c, f, v, style))
    scales: list[tuple[str, str]] = []

    def pick(row_in_block: int, col: int, per_image: int = 0) -> str:
        """The train cell at (row_in_block, col) of the shown step's block, ``per_image``
        rows further down for each image after the first."""
        c = col_name(col)
        first = lay.block_row(1) + row_in_block + 1
        last = lay.block_row(steps) + row_in_block + (n - 1) * per_image + 1
        shift = f"+({image}-1)*{per_image}" if per_image else ""
        return f"=INDEX({train}!${c}${first}:${c}${last},({show}-1)*{lay.height}+1{shift})"

    def heatmap(top, left, height, width, kind):
        scales.append((f"{ref(top, left)}:{ref(top + height - 1, left + width - 1)}", kind))

    put(0, 0, None, f"maps: what {sh.kernels} kernel{'s' * (sh.kernels > 1)} see in an "
        "image, at a step you pick", "title")
    put(1, 0, None, "Type a step and an image in the yellow cells: the image, each kernel, its "
        "feature map relu(conv + b) and its 2×2 max-pool show as they are at that step (read "
        f"from the {train} sheet's block), with the class probabilities. Red is high, blue "
        "negative.", "subtitle")
    put(PICK_ROW, 0, None, "show step", "bold")
    put(PICK_ROW, STEP_COL, None, steps, "input")
    put(PICK_ROW, STEP_COL + 2, None, f"of {steps}", None)
    put(PICK_ROW, IMAGE_COL - 4, None, "image", "bold")
    put(PICK_ROW, IMAGE_COL, None, 1, "input")
    put(PICK_ROW, IMAGE_COL + 2, None, f"of {n}", None)
    label = lesson.classes[lesson.labels[0]]
    put(IMAGE_ROW, 0, f'="image "&{image}&", label "&INDEX(classes,INDEX(y_index,{image})+1)',
        f"image 1, label {label}", "bold")
    hidden = "general|;;;"  # the colour is the picture; a cell's value is in the formula bar
    for r in range(sh.height):
        for j in range(sh.width):
            put(IMAGE_ROW + 1 + r, j, f"=INDEX(X,{image},{r * sh.width + j + 1})",
                float(lesson.images[0, r, j]), hidden)
    heatmap(IMAGE_ROW + 1, 0, sh.height, sh.width, SEQUENTIAL)
    band_top = IMAGE_ROW + sh.height + 2
    band_height = max(TAP, hc) + 2
    map_col, pool_col = TAP + 1, TAP + 1 + wc + 1
    p_col = lay.matrix_col[(kernels.name, "p")]
    strip = band.rows["strip"]
    in_strip = band.rows["strips"] + 1
    for k in range(sh.kernels):
        top = band_top + k * band_height
        put(top, 0, None, f"kernel {k + 1}", "bold")
        put(top, map_col, None, f"relu(conv) {k + 1}: {hc}×{wc}", "bold")
        put(top, pool_col, None, f"pool {k + 1}", "bold")
        for u in range(TAP):
            for v in range(TAP):
                put(top + 1 + u, v, pick(kernels.band + TAP * k + u, p_col + v),
                    float(theta[kernels.index(TAP * k + u, v)]), hidden)
        heatmap(top + 1, 0, TAP, TAP, DIVERGING)
        for r in range(hc):
            for j in range(wc):
                put(top + 1 + r, map_col + j, pick(in_strip + r, band.mc[("a", k)] + j, strip),
                    float(st.a[0, k, r, j]), hidden)
        heatmap(top + 1, map_col, hc, wc, SEQUENTIAL)
        for r in range(p):
            for j in range(q):
                put(top + 1 + r, pool_col + j, pick(in_strip + r, band.mc[("pool", k)] + j,
                                                    strip), float(st.pool[0, k, r, j]), hidden)
        heatmap(top + 1, pool_col, p, q, SEQUENTIAL)
    right = max(sh.width, pool_col + q) + 1
    put(IMAGE_ROW, right, None, "class", "header")
    put(IMAGE_ROW, right + 1, None, "p at step", "header")
    for c in range(sh.classes):
        put(IMAGE_ROW + 1 + c, right, f"=INDEX(classes,{c + 1})", lesson.classes[c], None)
        put(IMAGE_ROW + 1 + c, right + 1, pick(band.rows["table"], band.tc["p"] + c, 1),
            float(st.soft.probs[0, c]), "general|0.0%")
    heatmap(IMAGE_ROW + 1, right + 1, sh.classes, 1, SEQUENTIAL)
    top, last = SCREEN_ROW + 1, SCREEN_ROW + steps
    chart = Chart(IMAGE_ROW + sh.classes + 2, right, f"{train}: mean cross-entropy per step",
                  "step", "loss", [Series("loss", area(train, top, TRACE_COL, last),
                                          area(train, top, TRACE_COL + 1, last))],
                  scatter=True, width=CHART_WIDTH, height=CHART_HEIGHT)
    widths = {c: MAP_PIXEL for c in range(right)}
    widths.update({right: 10, right + 1: 10})
    rule = lambda title, top: {"validate": "integer", "criteria": "between", "minimum": 1,
                               "maximum": top, "input_title": title,
                               "input_message": f"1 to {top}",
                               "error_message": f"a whole number, 1 to {top}"}
    return Sheet("maps", static_rows(sorted(rows.items())), widths=widths, charts=[chart],
                 color_scales=scales,
                 validations=[(PICK_ROW, STEP_COL, rule("show step", steps)),
                              (PICK_ROW, IMAGE_COL, rule("image", n))],
                 notes=[(PICK_ROW, STEP_COL, "A step from 1 to the last: the network as it "
                         "enters that step, before its update."),
                        (band_top, map_col, MAP_NOTES["a"]), (band_top, pool_col,
                                                             MAP_NOTES["pool"])])


def masks_sheet(lesson: Lesson) -> Sheet:
    """The dropout masks, one row per (step, image), one column per pooled feature."""
    sh = lesson.shape
    p, q = sh.pooled
    heads = [f"k{k + 1} ({r + 1},{c + 1})" for k in range(sh.kernels) for r in range(p)
             for c in range(q)]
    return masks.masks_sheet(lesson.masks, lesson.dropout, "image", heads,
                             "the pooled features")


def about_sheet(lesson: Lesson) -> Sheet:
    sh = lesson.shape
    hc, wc = sh.conv
    p, q = sh.pooled
    return about_page(
        "sheetdl · a convolutional network trained cell by cell, no macros",
        ["Open the maps sheet: an image, each kernel, what it sees (its ReLU feature map) and "
         "the max-pool, as heatmaps; type a step and an image in its yellow cells and watch the "
         "kernels and maps change as the network trains. The train sheet has every formula.",
         f"Change the yellow {lr_input(lesson.schedule)} on row 4, a starting kernel in the "
         "'start' block, or a pixel on the data sheet: every step recomputes, forward and "
         "backward.",
         "Scroll right in a block: each image's strip shows the image, the feature maps, the "
         "max-pool, where the pool sends the gradient, and the gradients, as heatmaps."],
        [f"train: {sh.kernels} 3×3 kernel(s) with a bias each over {len(lesson.images)} "
         f"images of {sh.height}×{sh.width} ({lesson.data_label}) → ReLU ({hc}×{wc}) → 2×2 "
         f"max-pool ({p}×{q}) → flatten ({sh.features}) → dense to {sh.classes} classes → "
         f"softmax → cross-entropy (torch's nn.Conv2d(1, K, 3), F.relu, F.max_pool2d(2), "
         f"nn.Linear, F.cross_entropy); {lesson.kind} ({lesson.preset} preset), "
         f"{lesson.steps} full-batch steps, one block each. Kernels start "
         + ("as the 2022 course's edge filters." if lesson.kernel_init == "edges" else
            "at torch's default ranges, seeded."),
         "Max-pool's gradient goes to one cell of each window: the first (row by row) equal to "
         "its max, the cell torch's CPU kernel picks, so ties route as in torch; the ReLU then "
         "passes it only where the feature map is > 0 (torch's 0 at 0).",
         "The course's conv-example.xlsx runs forward only, with array formulas; here every "
         "cell is a plain formula (MAX, SUMPRODUCT, EXP, LN, INDEX) and the network trains.",
         "data: one image per row, label then pixels, yellow inputs; the class names beside.",
         "Defined names: X, y_index, classes, K_init, kb_init, Wd_init, bd_init, the "
         "hyperparameters under torch's names, fd_h, loss_trace (the mean loss at each step, "
         "before its update), accuracy_trace, K_final, kb_final, Wd_final, bd_final"
         + (", and dropout with dropout_masks (the masks sheet: one row per step and image)."
            if lesson.dropout else ".")])


def build(lesson: Lesson) -> Book:
    train, names = train_sheet(lesson)
    n, h, w = lesson.images.shape
    names["X"] = f"data!$B$2:${col_name(h * w)}${n + 1}"
    names["y_index"] = f"data!$A$2:$A${n + 1}"
    names["classes"] = class_names(lesson)
    meta = {"lesson": "conv", "format": 1, "preset": lesson.preset, "steps": lesson.steps,
            "optimizer": lesson.kind, "options": lesson.opt.options(),
            "image": [h, w], "kernels": lesson.shape.kernels,
            **fullbatch.diverged(lesson.trace), **fullbatch.unsteady(lesson.trace)}
    sheets = [about_sheet(lesson), maps_sheet(lesson), data_sheet(lesson), train]
    if lesson.dropout:
        meta["dropout"] = True
        sheets.append(masks_sheet(lesson))
        names[masks.NAME] = masks.name_range(lesson.masks)
    if lesson.schedule is not None and lesson.schedule.scheduled:
        meta["schedule"] = lesson.schedule.options()
    return Book(sheets, names,
                f"sheetdl conv ({lesson.preset})", meta)
