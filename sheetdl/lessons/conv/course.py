"""``sheetdl build conv --preset course``: the course's conv-example.xlsx, laid out again and
corrected.

The fast.ai course-v3 sheet runs one MNIST "7" (28×28) forward through two 3×3 kernels
(Conv1, no ReLU, no bias), a second layer of two maps each over both Conv1 maps (Conv2), a
2×2 max-pool and one dense output. This sheet has its image and weights
(``course_v3.json``, read from the course file) and the same network, with every cell a
plain formula (SUMPRODUCT, MAX) instead of the course's one-cell array formulas, and the
course's slips corrected, each said in a note where it happens:

- Conv2 is 24×24: the course's is 24 rows × 25 columns, its 25th column reading an empty
  column past Conv1;
- the max-pool is 12×12, a compact block, where the course spreads it over every other row
  and column and carries a 13th column from Conv2's extra one;
- the dense layer has the course's weights at the same places, less that 13th column, so
  the output is the course's less that column's share.

Its Conv1 maps, Conv2 maps (less the 25th column) and pools are the course file's cached
values (tested); it trains nothing, as the course's does not: ``sheetdl build conv`` trains.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...sheet.formulas import about_page
from ...sheet.workbook import SEQUENTIAL, Book, Sheet, ref, static_rows
from ..softmax.model import seqsum
from .model import POOL, TAP

DATA = Path(__file__).with_name("course_v3.json")
#: the course's maps: two in each layer
MAPS = 2
#: the sheet's rows: a title, a line of notes, then a band of rows per map (its title, then
#: the maps), a gap between the bands
TITLE_ROW, NOTE_ROW, FIRST_BAND, BAND_GAP = 0, 1, 3, 2
#: columns between two regions of a band
REGION_GAP = 1
#: a pixel's column width (an image's cell about square) and a kernel tap's (its number)
PIXEL_WIDTH, TAP_WIDTH = 1.75, 6.5
HIDDEN = "general|;;;"  # the colour is the picture; the value is in the formula bar
#: what the course's own sheet caches as its output, for the note that says why ours differs
COURSE_OUTPUT_CELL = "EN4"


@dataclass(frozen=True)
class Course:
    """The course's input and weights (``course_v3.json``)."""

    image: np.ndarray   # (28, 28)
    conv1: np.ndarray   # (2, 3, 3): Conv1's kernels
    conv2: np.ndarray   # (2, 2, 3, 3): Conv2's kernels, [output map, Conv1 map it reads]
    dense: np.ndarray   # (2, 12, 13): the course's dense weights on the pool's grid
    source: str

    @property
    def side(self) -> int:
        return self.image.shape[0]


@lru_cache(maxsize=1)
def course() -> Course:
    d = json.loads(DATA.read_text(encoding="utf-8"))
    return Course(*(np.array(d[k], float) for k in ("image", "conv1", "conv2", "dense")),
                  d["source"])


def _conv(maps: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """Σ over input maps of SUMPRODUCT(3×3 window, kernel), in the sheet's order:
    ``maps`` (M, H, W), ``kernels`` (M, 3, 3) → (H − 2, W − 2)."""
    h, w = maps.shape[1] - TAP + 1, maps.shape[2] - TAP + 1
    win = np.lib.stride_tricks.sliding_window_view(maps, (TAP, TAP), axis=(1, 2))[:, :h, :w]
    per_map = seqsum(win.reshape(len(maps), h, w, TAP * TAP)
                     * kernels.reshape(len(maps), 1, 1, TAP * TAP), axis=-1)
    return seqsum(np.moveaxis(per_map, 0, -1), axis=-1)


def forward(c: Course) -> dict[str, np.ndarray]:
    """Every map of the sheet: conv1 (2, 26, 26), conv2 (2, 24, 24), pool (2, 12, 12), the
    dense weights it uses (2, 12, 12) and the output."""
    conv1 = np.stack([_conv(c.image[None], c.conv1[k][None]) for k in range(MAPS)])
    conv2 = np.stack([_conv(conv1, c.conv2[k]) for k in range(MAPS)])
    p = conv2.shape[1] // POOL
    pool = conv2[:, :POOL * p, :POOL * p].reshape(MAPS, p, POOL, p, POOL).max(axis=(2, 4))
    dense = c.dense[:, :p, :p]
    output = seqsum(np.array([seqsum((dense[k] * pool[k]).ravel()) for k in range(MAPS)]))
    return {"conv1": conv1, "conv2": conv2, "pool": pool, "dense": dense,
            "output": np.array(output)}


@dataclass(frozen=True)
class Regions:
    """Where each region of a band starts, left to right, each after the one before and a
    gap: the image, Conv1's kernel, Conv1's map, Conv2's kernels, Conv2's map, the pool,
    the dense weights and the output."""

    image: int
    kernel1: int
    conv1: int
    kernel2: int
    conv2: int
    pool: int
    dense: int
    output: int

    @classmethod
    def for_sizes(cls, side: int) -> Regions:
        c1, c2 = side - TAP + 1, side - 2 * (TAP - 1)
        widths = [side, TAP, c1, TAP, c2, c2 // POOL, c2 // POOL, 1]
        starts, at = [], 0
        for w in widths:
            starts.append(at)
            at += w + REGION_GAP
        return cls(*starts)


def band_top(k: int, side: int) -> int:
    """The first row of map ``k``'s band (under its title row)."""
    return FIRST_BAND + 1 + k * (side + BAND_GAP + 1)


def _block(top: int, left: int, rows: int, cols: int) -> str:
    return f"{ref(top, left)}:{ref(top + rows - 1, left + cols - 1)}"


def _absolute(top: int, left: int, rows: int, cols: int) -> str:
    return f"{ref(top, left, True)}:{ref(top + rows - 1, left + cols - 1, True)}"


NOTES = {
    "conv1": "Conv1: each cell is SUMPRODUCT of the 3×3 window of the image under it and the "
             "kernel on its left. The course writes {=SUM(A2:C4*$AD$11:$AF$13)}, a one-cell "
             "array formula; SUMPRODUCT is the same sum as a plain formula every spreadsheet "
             "computes. 26×26: a 3×3 kernel fits 28 − 2 times down and across (the 2022 "
             "version's label says 27 x 27). No bias and no ReLU, as in course-v3 (the 2022 "
             "version adds ReLU: MAX(0, ...)).",
    "conv2": "Conv2: each cell adds a SUMPRODUCT over each Conv1 map, with its own kernel per "
             "map (the two on the left): a second layer reads every map of the first. 24×24: "
             "the course's Conv2 is 24 rows × 25 columns, its 25th column (CK) reading an "
             "empty column past Conv1 (CK4 reads BF3:BH5; column BH is empty), so that column "
             "is left out here.",
    "pool": "Max-pool: the largest of each 2×2 block of Conv2, 12×12 side by side. The course "
            "puts each maximum in every other row and column, and a 13th column of them from "
            "Conv2's extra column.",
    "dense": "Dense weights: the course's weights, at the same places on the pool's grid, less "
             "their 13th column (it read the extra pool column). MNIST needs 10 sets of them, "
             "a softmax and a loss to train: sheetdl build conv has all three and trains.",
    "output": "One output: SUMPRODUCT of each map's weights and its pool, added. The course's "
              f"({COURSE_OUTPUT_CELL}) also counts the 13th pool column; with this 7, whose "
              "strokes stop short of the right edge, that column is all 0, so the two agree.",
}


def course_sheet(c: Course, values: dict[str, np.ndarray]) -> tuple[Sheet, dict[str, str]]:
    side = c.side
    c1, c2 = values["conv1"].shape[1], values["conv2"].shape[1]
    p = values["pool"].shape[1]
    at = Regions.for_sizes(side)
    rows: dict[int, list] = {}
    put = lambda r, col, f, v, style: rows.setdefault(r, []).append((col, f, v, style))
    scales: list[tuple[str, str]] = []
    notes: list[tuple[int, int, str]] = []
    names: dict[str, str] = {}
    name = lambda key, top, left, h, w: names.__setitem__(
        key, f"course!{_absolute(top, left, h, w)}")

    put(TITLE_ROW, 0, None, "The course's conv-example.xlsx (course-v3), every cell a plain "
        "formula, its slips corrected", "title")
    put(NOTE_ROW, 0, None, "Input → Conv1 (2 kernels) → Conv2 (2 maps, each over both Conv1 "
        "maps) → 2×2 max-pool → one dense output. Change a yellow kernel tap and every map "
        "recomputes. The notes on each title say what the course's sheet does differently.",
        "subtitle")
    image_top = band_top(0, side)
    for i in range(side):
        for j in range(side):
            put(image_top + i, at.image + j, None, float(c.image[i, j]), HIDDEN)
    scales.append((_block(image_top, at.image, side, side), SEQUENTIAL))
    name("course_image", image_top, at.image, side, side)
    put(image_top - 1, at.image, None, f"Input: {side}×{side}, the course's MNIST 7", "bold")

    k1_areas, c1_areas = [], []
    for k in range(MAPS):
        top = band_top(k, side)
        title = top - 1
        # Conv1's kernel k, a yellow input, and its map
        put(title, at.kernel1, None, f"kernel {k + 1}", "bold")
        for u in range(TAP):
            for v in range(TAP):
                put(top + u, at.kernel1 + v, None, float(c.conv1[k, u, v]), "input|0.00")
        k1_areas.append(_absolute(top, at.kernel1, TAP, TAP))
        name(f"conv1_kernel_{k + 1}", top, at.kernel1, TAP, TAP)
        put(title, at.conv1, None, f"Conv1 map {k + 1}: {c1}×{c1}", "bold")
        notes.append((title, at.conv1, NOTES["conv1"]))
        for i in range(c1):
            for j in range(c1):
                window = _block(image_top + i, at.image + j, TAP, TAP)
                put(top + i, at.conv1 + j, f"=SUMPRODUCT({window},{k1_areas[k]})",
                    float(values["conv1"][k, i, j]), HIDDEN)
        c1_areas.append((top, at.conv1))
        scales.append((_block(top, at.conv1, c1, c1), SEQUENTIAL))
        name(f"conv1_map_{k + 1}", top, at.conv1, c1, c1)
    for k in range(MAPS):
        top = band_top(k, side)
        title = top - 1
        kernels = []
        for m in range(MAPS):  # Conv2 map k's kernel over Conv1 map m, under its label
            k_top = top + m * (TAP + 2)
            put(k_top, at.kernel2, None, f"on map {m + 1}", "bold")
            for u in range(TAP):
                for v in range(TAP):
                    put(k_top + 1 + u, at.kernel2 + v, None, float(c.conv2[k, m, u, v]),
                        "input|0.00")
            kernels.append(_absolute(k_top + 1, at.kernel2, TAP, TAP))
            name(f"conv2_kernel_{k + 1}_{m + 1}", k_top + 1, at.kernel2, TAP, TAP)
        put(title, at.kernel2, None, f"kernels {k + 1}", "bold")
        put(title, at.conv2, None, f"Conv2 map {k + 1}: {c2}×{c2}", "bold")
        notes.append((title, at.conv2, NOTES["conv2"]))
        for i in range(c2):
            for j in range(c2):
                terms = [f"SUMPRODUCT({_block(c1_top + i, c1_left + j, TAP, TAP)},{kernels[m]})"
                         for m, (c1_top, c1_left) in enumerate(c1_areas)]
                put(top + i, at.conv2 + j, "=" + "+".join(terms),
                    float(values["conv2"][k, i, j]), HIDDEN)
        scales.append((_block(top, at.conv2, c2, c2), SEQUENTIAL))
        name(f"conv2_map_{k + 1}", top, at.conv2, c2, c2)
        put(title, at.pool, None, f"pool {k + 1}: {p}×{p}", "bold")
        notes.append((title, at.pool, NOTES["pool"]))
        for i in range(p):
            for j in range(p):
                window = _block(top + POOL * i, at.conv2 + POOL * j, POOL, POOL)
                put(top + i, at.pool + j, f"=MAX({window})", float(values["pool"][k, i, j]),
                    HIDDEN)
        scales.append((_block(top, at.pool, p, p), SEQUENTIAL))
        name(f"pool_{k + 1}", top, at.pool, p, p)
        put(title, at.dense, None, f"weights {k + 1}", "bold")
        notes.append((title, at.dense, NOTES["dense"]))
        for i in range(p):
            for j in range(p):
                put(top + i, at.dense + j, None, float(values["dense"][k, i, j]), HIDDEN)
        scales.append((_block(top, at.dense, p, p), SEQUENTIAL))
        name(f"dense_{k + 1}", top, at.dense, p, p)
    out_top = band_top(0, side)
    terms = [f"SUMPRODUCT({names[f'dense_{k + 1}'].split('!')[1]},"
             f"{names[f'pool_{k + 1}'].split('!')[1]})" for k in range(MAPS)]
    put(out_top - 1, at.output, None, "output", "bold")
    notes.append((out_top - 1, at.output, NOTES["output"]))
    put(out_top, at.output, "=" + "+".join(terms), float(values["output"]), "summary|0.00")
    name("course_output", out_top, at.output, 1, 1)
    pixel_regions = [(at.image, side), (at.conv1, c1), (at.conv2, c2), (at.pool, p),
                     (at.dense, p)]
    widths = {col: PIXEL_WIDTH for left, w in pixel_regions for col in range(left, left + w)}
    widths.update({col: TAP_WIDTH for left in (at.kernel1, at.kernel2)
                   for col in range(left, left + TAP)})
    widths[at.output] = 10
    return Sheet("course", static_rows(sorted(rows.items())), widths=widths,
                 color_scales=scales, notes=notes), names


def about_sheet(c: Course) -> Sheet:
    return about_page(
        "sheetdl · the course's convolution sheet, corrected",
        ["Open the course sheet: the course's MNIST 7, its two Conv1 kernels and maps, Conv2's "
         "maps (each reads both Conv1 maps), the max-pool and the dense weights, as heatmaps.",
         "Change a yellow kernel tap: every map after it recomputes, and the output with them.",
         "Compare with the course's conv-example.xlsx: the same numbers where the course is "
         "right, and a note on each title where it is not."],
        [f"Input and weights: {c.source}.",
         "Formulas: SUMPRODUCT and MAX only, no array formulas (the course's {=SUM(A*B)} needs "
         "Ctrl+Shift+Enter in older Excel and breaks when edited as a plain formula).",
         "Corrected: Conv2 24×24 (the course's has a 25th column reading an empty column), the "
         "pool 12×12 without the extra 13th column, the dense weights without theirs.",
         "This sheet runs forward only, as the course's does; `sheetdl build conv` is the "
         "network trained cell by cell (ReLU, biases, 10-class softmax, cross-entropy, any "
         "optimizer), and `--kernel-init edges` starts it at the 2022 course's edge filters.",
         "Defined names: course_image, conv1_kernel_1, conv1_kernel_2, conv1_map_1/2, "
         "conv2_kernel_K_M (Conv2 map K's kernel over Conv1 map M), conv2_map_1/2, pool_1/2, "
         "dense_1/2, course_output; `sheetdl verify` recomputes the maps from them."])


def build() -> Book:
    c = course()
    sheet, names = course_sheet(c, forward(c))
    meta = {"lesson": "conv", "format": 1, "preset": "course", "course": "v3"}
    return Book([about_sheet(c), sheet], names, "sheetdl conv (the course's sheet)", meta)
