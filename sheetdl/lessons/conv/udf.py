"""``sheetdl build conv --udf``: the conv lesson as calls to the add-in, for data the formula
sheet cannot hold (28×28 MNIST digits by the hundred: the sheet stops at 3,000,000 cells).

The train sheet is three array calls of ``SHEETDL.CONV_TRAIN`` on the data sheet's images
(``X``, ``y_index``), each with its values cached: the loss and accuracy per step, the
trained kernels and biases, the trained dense layer. The add-in recomputes them when a
yellow input or a pixel changes; ``sheetdl verify`` replays them from the seeded start the
call draws. A call takes the lesson's sizes, lr, optimizer, seed, dropout and starting
kernels, not the other hyperparameters or a schedule (refused by the options' check).
"""
from __future__ import annotations

import numpy as np

from ...math import dropout as inverted_dropout
from ...math import presets
from ...sheet.formulas import (INPUT_ROW, STATUS_ROW, about_page, addin_function, addin_note,
                               conventions, input_notes, input_rows, input_validations)
from ...sheet.workbook import ArrayFormula, Book, Chart, Series, Sheet, area, col_name, ref
from . import LEARNING_RATES
from . import layout
from . import model as conv

#: the row of the call tables' headers: under the inputs, the hint and the status
TABLE_ROW = STATUS_ROW + 2
#: columns between the trace and the layer tables, and between those and the chart
GAP = 1


def make_lesson(images, labels, classes, *, kernels, optimizer, steps, seed, kernel_init,
                data_label, lr=None, dropout=0.0) -> layout.Lesson:
    """The lesson a --udf workbook shows: the call's sizes checked (as conv_train checks
    them) before its reference training runs."""
    images = np.asarray(images, float)
    labels = np.asarray(labels, int)
    n, h, w = images.shape
    if len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} labels")
    sides = (conv.CALL_MIN_SIDE, conv.CALL_MAX_SIDE)
    if not (sides[0] <= h <= sides[1] and sides[0] <= w <= sides[1]):
        raise ValueError(f"images of {h}×{w}: with --udf each side must be from {sides[0]} to "
                         f"{sides[1]} pixels")
    if not 2 <= len(classes) <= conv.CALL_MAX_CLASSES:
        raise ValueError(f"--classes must be from 2 to {conv.CALL_MAX_CLASSES}, got "
                         f"{len(classes)}")
    if not 1 <= kernels <= conv.CALL_MAX_KERNELS:
        raise ValueError(f"--kernels must be from 1 to {conv.CALL_MAX_KERNELS} with --udf, got "
                         f"{kernels}")
    if steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    inverted_dropout.check_p(dropout)
    shape = conv.Shape(h, w, kernels, len(classes))
    if conv.call_work(steps, n, shape) > conv.CALL_MAX_WORK:
        raise ValueError(f"{steps:,} steps × {n:,} images of {h}×{w} × {kernels} kernels is past "
                         f"the {conv.CALL_MAX_WORK:,} a SHEETDL.CONV_TRAIN call may take; use "
                         "fewer --steps or --images")
    opt, follows = presets.resolve("torch", optimizer,
                                   lr=LEARNING_RATES[optimizer] if lr is None else lr)
    theta0 = conv.init_params(shape, seed, kernel_init)
    lesson = layout.Lesson(images, labels, list(classes), shape, optimizer, opt, follows,
                           "torch", steps, theta0, data_label, kernel_init, dropout=dropout)
    if dropout:
        lesson.masks = inverted_dropout.draw(steps, n, shape.features, dropout, seed)
    with np.errstate(all="ignore"):
        lesson.trace = conv.train(opt, shape, images, labels, theta0, steps,
                                  masks=lesson.masks, dropout=dropout)
    return lesson


def _call(lesson: layout.Lesson, flavour: str, output: str, seed: int) -> str:
    sh = lesson.shape
    dropout = "dropout" if lesson.dropout else '""'
    return (f'={addin_function("conv_train", flavour)}(X,y_index,{sh.kernels},{lesson.steps},'
            f'lr,"{lesson.kind}",{seed},"{output}",{dropout},"{lesson.kernel_init}",'
            f'{sh.height})')


def train_sheet(lesson: layout.Lesson, flavour: str, seed: int) -> tuple[Sheet, dict]:
    sh, steps = lesson.shape, lesson.steps
    hyper = ["lr"] + (["dropout"] if lesson.dropout else [])
    values = {"lr": lesson.opt.lr, "dropout": lesson.dropout}
    K, kb, Wd, bd = sh.unpack(lesson.trace.theta[-1])
    trace = np.array([[t + 1, s.loss, s.accuracy] for t, s in enumerate(lesson.trace.steps)])
    kernels = np.column_stack([K.reshape(sh.kernels, -1), kb])
    dense = np.column_stack([Wd, bd])
    k_col = trace.shape[1] + GAP
    d_top = TABLE_ROW + 2 + sh.kernels + 1
    calls = {name: _call(lesson, flavour, name, seed) for name in ("loss", "kernels", "dense")}
    rows: dict[int, list] = {}
    put = lambda r, c, f, v, style: rows.setdefault(r, []).append((c, f, v, style))
    for r, cells in input_rows(
            f"train: the conv lesson in {len(calls)} calls to the sheetdl add-in ({steps} steps "
            f"on {len(lesson.images)} images of {sh.height}×{sh.width})",
            conventions(lesson.kind, lesson.opt, lesson.follows), hyper, values,
            f"The tables are array formulas, {calls['loss']} and its kernels and dense twins; "
            "they need the sheetdl add-in (README: Excel add-in). Change lr or a pixel and the "
            "add-in retrains; the values shown are cached, computed by sheetdl."):
        for c, f, v, style in cells:
            put(r, c, f, v, style)
    last = TABLE_ROW + steps
    put(TABLE_ROW, 0, ArrayFormula(calls["loss"], last, trace.shape[1] - 1), "step", "header")
    put(TABLE_ROW, 1, None, "loss", "header")
    put(TABLE_ROW, 2, None, "accuracy", "header")
    for i, (t, loss, acc) in enumerate(trace):
        put(TABLE_ROW + 1 + i, 0, None, int(t), "int")
        put(TABLE_ROW + 1 + i, 1, None, float(loss), "general")
        put(TABLE_ROW + 1 + i, 2, None, float(acc), "general|0%")
    for title_row, top, table, name in ((TABLE_ROW, TABLE_ROW + 1, kernels, "kernels"),
                                        (d_top - 1, d_top, dense, "dense")):
        put(title_row, k_col, None, f"trained {name}: " + (
            "each kernel's 9 taps row by row, then its bias" if name == "kernels" else
            "each class's weights over the flattened pooled maps, then its bias"), "bold")
        for i, row in enumerate(table):
            for j, v in enumerate(row):
                formula = ArrayFormula(calls[name], top + table.shape[0] - 1,
                                       k_col + table.shape[1] - 1) if (i, j) == (0, 0) else None
                put(top + i, k_col + j, formula, float(v), "general")
    names = {h: f"train!{ref(INPUT_ROW, i, True)}" for i, h in enumerate(hyper)}
    names["loss_trace"] = area("train", TABLE_ROW + 1, 1, last)
    names["accuracy_trace"] = area("train", TABLE_ROW + 1, 2, last)
    kt, dt = TABLE_ROW + 1, d_top
    names["K_final"] = (f"train!{ref(kt, k_col, True)}:"
                        f"{ref(kt + sh.kernels - 1, k_col + conv.TAP ** 2 - 1, True)}")
    names["kb_final"] = area("train", kt, k_col + conv.TAP ** 2, kt + sh.kernels - 1)
    names["Wd_final"] = (f"train!{ref(dt, k_col, True)}:"
                         f"{ref(dt + sh.classes - 1, k_col + sh.features - 1, True)}")
    names["bd_final"] = area("train", dt, k_col + sh.features, dt + sh.classes - 1)
    chart = Chart(TABLE_ROW, k_col + conv.TAP ** 2 + 1 + GAP, "train: mean cross-entropy per step",
                  "step", "loss", [Series("loss", area("train", TABLE_ROW + 1, 0, last),
                                          names["loss_trace"])], scatter=True)
    notes = input_notes(hyper, conventions(lesson.kind, lesson.opt, lesson.follows))
    return Sheet("train", lambda: iter(sorted(rows.items())),
                 widths={0: 8, 1: 12, 2: 10}, freeze=(TABLE_ROW + 1, 0), charts=[chart],
                 notes=notes, validations=input_validations(hyper, INPUT_ROW)), names


def about_sheet(lesson: layout.Lesson, flavour: str) -> Sheet:
    sh = lesson.shape
    return about_page(
        "sheetdl · the conv lesson as calls to the add-in",
        ["Open the train sheet: the loss and accuracy per step, the trained kernels and the "
         "dense layer, each one SHEETDL.CONV_TRAIN call with its values cached.",
         "With the sheetdl add-in loaded, change the yellow lr (or a pixel on the data sheet): "
         "the calls retrain.",
         "For every step as formulas, build without --udf (images up to 28×28, a few dozen)."],
        [addin_note("conv_train", flavour),
         f"The network: {sh.kernels} 3×3 kernel(s) with a bias each over {len(lesson.images)} "
         f"images of {sh.height}×{sh.width} ({lesson.data_label}) → ReLU → 2×2 max-pool → "
         f"dense to {sh.classes} classes → softmax → cross-entropy, {lesson.kind}, "
         f"{lesson.steps} full-batch steps, from the start the call draws from its seed.",
         "Defined names: X, y_index, classes, lr" + (", dropout" if lesson.dropout else "")
         + ", loss_trace, accuracy_trace, K_final, kb_final, Wd_final, bd_final; `sheetdl "
         "verify` replays the calls' cached values from them."])


def build(lesson: layout.Lesson, flavour: str, seed: int) -> Book:
    train, names = train_sheet(lesson, flavour, seed)
    n, h, w = lesson.images.shape
    names["X"] = f"data!$B$2:${col_name(h * w)}${n + 1}"
    names["y_index"] = f"data!$A$2:$A${n + 1}"
    names["classes"] = layout.class_names(lesson)
    meta = {"lesson": "conv", "format": 1, "preset": "torch", "steps": lesson.steps,
            "optimizer": lesson.kind, "options": lesson.opt.options(), "image": [h, w],
            "kernels": lesson.shape.kernels, "udf": flavour, "seed": seed,
            "kernel_init": lesson.kernel_init, "dropout": bool(lesson.dropout)}
    return Book([about_sheet(lesson, flavour), train, layout.data_sheet(lesson)], names,
                "sheetdl conv (add-in calls)", meta)
