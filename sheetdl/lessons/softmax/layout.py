"""Layout of the softmax lesson: softmax and cross-entropy cell by cell, then
softmax regression trained full batch, one block of rows per step.

Data flows one way: options → ``softmax.train`` → this layout → ``xlsx.write``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...math import fullbatch, lrfind, presets, schedules
from . import LEARNING_RATES as LESSON_LR
from . import model as softmax
from ...sheet.blocks import (BELOW_CHART, CHART_COL, PANEL_COL, SCREEN_ROW, TRACE_COL, FinderRun,
    Group, Layout, TraceTable, across_blocks, add_finder_sheet, at_step, blocks_top, run_finder,
    stream_blocks, step_picker, training_sheet)
from ...sheet.workbook import (DIVERGING, SEQUENTIAL, Book, Chart, Series, Sheet, area, col_name,
    number_format, number_style, ref, static_rows)
from ..data import (EXCEL_MAX_ROWS, DataError, check_label, csv_rows, is_header, is_number,
                    not_a_number, number, read_text)
from ...sheet.formulas import (FINDER_HINT, INPUT_ROW, PLAIN, about_page, conventions, fit_headers,
    input_notes, input_rows, lr_input, input_validations, schedule_inputs)
from ...math.optim import Optimizer

CLASSES = ["cat", "dog", "plane", "fish", "building"]
#: The course's entropy_example.xlsx logits (target dog), then examples of our own.
EXAMPLES = [
    ("course image", [-4.885225, 2.597473, 0.591665, -2.068945, -4.568679], 1),
    ("huge logits", [1000.0, 0.0, -1000.0, 5.0, 3.0], 0),
    ("huge, wrong", [-1000.0, 999.0, 1000.0, 0.0, 0.0], 1),
    ("all equal", [0.5, 0.5, 0.5, 0.5, 0.5], 3),
]
#: The data sheet's first empty, non-numeric or unknown cell ("" when all are fine).
DATA_PROBLEM = "data_problem"


def blocks_start(steps: int, n: int, k: int, finder: bool = False) -> int:
    """Row of block 0 on the train sheet: under the trace table (one row per step) and,
    beside it, the model panel (its weights at a chosen step, the starting weights and
    the examples' probabilities)."""
    return blocks_top(SCREEN_ROW + steps, 0 if finder else _panel_rows(n, k)[-1])


def _panel_rows(n: int, k: int) -> tuple[int, int, int, int]:
    """First rows of the panel's parts: the step picker, the weights at that step, the
    starting weights, the examples; and the last row it uses."""
    pick = SCREEN_ROW
    at = pick + 1
    start = at + 3 + k
    examples = start + 3 + k
    return pick, at, start, examples, examples + n


@dataclass
class Lesson:
    X: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    feature_names: list[str]
    kind: str
    opt: Optimizer
    follows: str
    preset: str
    steps: int
    W0: np.ndarray
    b0: np.ndarray
    data_label: str
    trace: softmax.Trace = field(default=None)
    schedule: schedules.Schedule | None = None
    finder: "FinderRun | None" = None


def load_iris():
    try:
        from sklearn.datasets import load_iris as _load
    except ImportError:
        raise DataError("--data iris needs scikit-learn: pip install scikit-learn") from None
    d = _load()
    return (np.asarray(d.data, float), np.asarray(d.target, int), list(d.target_names),
            ["sepal length", "sepal width", "petal length", "petal width"])


def read_csv(path) -> tuple:
    """Columns feature..., label; a header line names the features. Labels may be text."""

    path = Path(path)
    text = read_text(path)
    # (line number, cells), blank lines skipped but counted, so errors name the real line
    rows = [(n, r) for n, r in csv_rows(text)
            if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: no data rows")
    header = header_line = None
    if is_header(rows[0][1][:-1]):
        (header_line, header), rows = rows[0], rows[1:]
    if not rows:
        raise DataError(f"{path}: no data rows")
    width = len(rows[0][1])
    if width < 2:
        raise DataError(f"{path}: need at least one feature column and a label column")
    X, raw = [], []
    for n, r in rows:
        if len(r) != width:
            raise DataError(f"{path}, line {n}: {len(r)} columns, expected {width}")
        try:
            vals = [number(c) for c in r[:-1]]
        except ValueError:
            bad = next(i for i, c in enumerate(r[:-1]) if not is_number(c))
            raise DataError(f"{path}, line {n}, column {bad + 1}: {not_a_number(r[bad])}") \
                from None
        if not all(np.isfinite(vals)):
            raise DataError(f"{path}, line {n}: features must be finite numbers")
        X.append(vals)
        raw.append(check_label(r[-1].strip(), f"{path}, line {n}, column {width}"))
    names = sorted(set(raw), key=lambda s: (not is_number(s), number(s) if is_number(s) else 0, s))
    labels = np.array([names.index(s) for s in raw])
    features = ([check_label(h.strip(), f"{path}, line {header_line}", empty=True) or f"x{j + 1}"
                 for j, h in enumerate(header[:-1])]
                if header
                else [f"x{j + 1}" for j in range(width - 1)])
    return np.array(X), labels, names, features


def make_lesson(X, labels, class_names=None, feature_names=None, *, optimizer="sgd",
                preset="torch", steps=50, seed=0, data_label="", schedule="constant",
                schedule_options=None, **overrides) -> Lesson:
    X = np.asarray(X, float)
    labels = np.asarray(labels, int)
    if steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    k = int(labels.max()) + 1
    if k < 2:
        raise ValueError("softmax needs at least two classes in the labels")
    class_names = class_names or [f"class {c}" for c in range(k)]
    feature_names = feature_names or [f"x{j + 1}" for j in range(X.shape[1])]
    height = _layout_height(X.shape[0], k)
    if blocks_start(steps, X.shape[0], k) + (steps + 1) * height > EXCEL_MAX_ROWS:
        raise ValueError(f"{steps} steps × {height} rows per step is past Excel's "
                         f"{EXCEL_MAX_ROWS:,} rows; use fewer --steps or less data")
    if overrides.get("lr") is None:
        overrides["lr"] = LESSON_LR[optimizer]
    opt, follows = presets.resolve(preset, optimizer, **overrides)
    rng = np.random.default_rng(seed)
    W0 = np.round(rng.normal(0.0, 0.1, (k, X.shape[1])), 4)
    b0 = np.zeros(k)
    lesson = Lesson(X, labels, class_names, feature_names, optimizer, opt, follows, preset,
                    steps, W0, b0, data_label)
    lesson.schedule = schedules.for_lesson(schedule, schedule_options, steps, optimizer, opt.lr,
                                           preset)
    with np.errstate(all="ignore"):
        lesson.trace = softmax.train(opt, X, labels, W0, b0, steps, lesson.schedule)
    return lesson


def _layout_height(n: int, k: int) -> int:
    return 3 + n + 1 + 2 + k + 1 + 1


# --------------------------------------------------------------------------- sheets

#: The softmax sheet: its column headers, then a block per example from this row (0-based),
#: a first row with the example's name and target, a row per class, a blank row.
SOFTMAX_TOP = 4
SOFTMAX_BLOCK = 1 + len(CLASSES) + 1


def softmax_sheet() -> Sheet:
    """Softmax and cross-entropy for each of ``EXAMPLES``: a block per example whose
    columns are the stages from logit to gradient, one row per class (as the course's
    entropy_example.xlsx lays out its one example), and beside it the example's max,
    Σ exp and loss. Four examples fit one screen."""
    k = len(CLASSES)
    z = np.array([e[1] for e in EXAMPLES])
    t = np.array([e[2] for e in EXAMPLES])
    r = softmax.softmax_rows(z, t)
    # (key, header, its note, values for the number format); one column per stage
    stages = [("z", "logit z", "the scores a model outputs (any real numbers)", r.logits),
              ("shifted", "z − m", "shifted logits, all ≤ 0: m = max(z), beside the block; "
               "subtracting it keeps EXP finite (EXP overflows past 709.78) and does not "
               "change softmax", r.shifted),
              ("exp", "exp(z − m)", "each between 0 and 1", r.exp),
              ("p", "p = softmax", "p = exp(z − m)/Σ exp(z − m): sums to 1", r.probs),
              ("onehot", "one-hot y", "1 for the target class", r.onehot),
              ("logp", "log p", "log-softmax with LN: (z − m) − LN(Σ exp). Excel's LOG is base "
               "10: using it divides the loss by ln 10 ≈ 2.3026 and no longer matches torch",
               r.logp),
              ("grad", "∂loss/∂z = p − y", "the gradient of the loss for each logit", r.grad)]
    col = {key: 1 + i for i, (key, *_) in enumerate(stages)}
    label_col = col["grad"] + 2
    value_col = label_col + 1
    scalar_fmt = {"max": number_style("general", r.max), "sum": number_style("general", r.sum),
                  "loss": "summary|" + number_style("general", r.loss).split("|")[1]}
    rows_out = [(0, [(0, None, "Softmax and cross-entropy, one cell at a time", "title")]),
                (1, [(0, None, "Each block is one example: a row per class, a column per stage "
                      "from the logit to the gradient; beside it the example's max, Σ exp and "
                      "loss. The log is LN (natural), not Excel's LOG (base 10), so the loss "
                      "is torch's cross-entropy.", "subtitle")]),
                (2, [(0, None, "Try it: pick another target in column B, or type new logits in "
                      "the yellow cells, and follow each stage to the loss.", "subtitle")]),
                (SOFTMAX_TOP - 1, [(0, None, "class", "header")]
                 + [(col[key], None, header, "header") for key, header, _, _ in stages])]
    notes = [(SOFTMAX_TOP - 1, col[key], note) for key, _, note, _ in stages]
    validations = []
    for i, (name, _, target) in enumerate(EXAMPLES):
        top = SOFTMAX_TOP + i * SOFTMAX_BLOCK
        first, last = top + 2, top + 1 + k  # the class rows, 1-based
        # z − m and log p span −2000 to 0 over the examples: each block gets the digits
        # its own values need (−0.136, not −0.1); the other stages share one format
        fmt = {key: number_style("general", arr[i] if key in ("shifted", "logp") else arr)
               for key, _, _, arr in stages}
        target_ref = f"$B${top + 1}"

        def span(key):
            return f"{col_name(col[key])}{first}:{col_name(col[key])}{last}"

        def scalar(j):  # the value beside the block: max, Σ exp, loss
            return f"${col_name(value_col)}${first + j}"

        rows_out.append((top, [(0, None, name, "bold"), (1, None, CLASSES[target], "input"),
                               (2, None, "← the target class", "subtitle")]))
        notes.append((top, 1, "The target class, picked from the list: its one-hot column is "
                      "1, the others 0. A name not in the list is refused; if one gets in "
                      "anyway, the loss shows #N/A instead of a silent 0."))
        validations.append((top, 1, {"validate": "list", "source": list(CLASSES),
                                     "input_title": "target class",
                                     "input_message": "the true class of this example",
                                     "error_message": "pick a class from the list: "
                                                      + ", ".join(CLASSES)}))
        for j in range(k):
            R = first + j
            at = lambda key: f"{col_name(col[key])}{R}"  # noqa: E731
            cells = [(0, None, CLASSES[j], "label"),
                     (col["z"], None, float(r.logits[i, j]), "input"),
                     (col["shifted"], f"={at('z')}-{scalar(0)}", float(r.shifted[i, j]),
                      fmt["shifted"]),
                     (col["exp"], f"=EXP({at('shifted')})", float(r.exp[i, j]), fmt["exp"]),
                     (col["p"], f"={at('exp')}/{scalar(1)}", float(r.probs[i, j]), fmt["p"]),
                     (col["onehot"], f"=IF({target_ref}=$A{R},1,0)", float(r.onehot[i, j]),
                      "int"),
                     (col["logp"], f"={at('shifted')}-LN({scalar(1)})", float(r.logp[i, j]),
                      fmt["logp"]),
                     (col["grad"], f"={at('p')}-{at('onehot')}", float(r.grad[i, j]),
                      fmt["grad"])]
            if j < 3:
                label, formula, value, style = [
                    ("max m", f"=MAX({span('z')})", r.max[i], scalar_fmt["max"]),
                    ("Σ exp(z − m)", f"=SUM({span('exp')})", r.sum[i], scalar_fmt["sum"]),
                    ("loss", f"=IF(SUM({span('onehot')})=1,-SUMPRODUCT({span('onehot')},"
                     f"{span('logp')}),NA())", r.loss[i], scalar_fmt["loss"])][j]
                cells += [(label_col, None, label, "bold"),
                          (value_col, formula, float(value), style)]
            rows_out.append((R - 1, cells))
        notes.append((first + 1, value_col, f"With base-10 LOG (the course sheet's habit) "
                      f"this cell would show {r.loss_log10[i]:.6g}, the loss divided by ln 10: "
                      "a different number from torch's cross-entropy, and its gradient is off "
                      "by the same factor."))
        validations += [(first - 1 + j, col["z"], {"validate": "decimal", "criteria": "between",
                                                   "minimum": -1e300, "maximum": 1e300,
                                                   "input_title": "logit",
                                                   "input_message": "any real number"})
                        for j in range(k)]
    widths = {0: 14, 1: 11, label_col: 14, value_col: 11}
    widths.update({c: 12 for c in range(2, label_col)})
    fit_headers(widths, [(col[key], header) for key, header, _, _ in stages])
    return Sheet("softmax", static_rows(rows_out), widths=widths, notes=notes,
                 validations=validations)


def data_sheet(lesson: Lesson) -> Sheet:
    """Features and each example's class as yellow inputs (the class from a list of the
    classes), the 0-based label the formulas read derived from it, and a check column
    whose last cell (``data_problem``) names the first empty, non-numeric or unknown cell."""
    n, d = lesson.X.shape
    k = len(lesson.class_names)
    label, cls, check, side = d, d + 1, d + 2, d + 4
    classes = f"${col_name(side)}$6:${col_name(side)}${5 + k}"
    rows = [(0, [(j, None, name, "header") for j, name in enumerate(lesson.feature_names)]
             + [(label, None, "label", "header"), (cls, None, "class", "header"),
                (check, None, "first problem", "header"),
                (side, None, f"Data: {lesson.data_label}. The yellow cells are inputs: edit a "
                 "feature or pick another class and the train sheet retrains.", "bold")]),
            (1, [(side, None, "label is the class's 0-based number (the named range labels "
                  "the formulas read); X names the features.", "subtitle")]),
            (2, [(side, None, f"To add or remove examples, rebuild: sheetdl build softmax "
                  f"--data flowers.csv (columns feature...,label). Rows 2–{n + 1} are read.",
                  "subtitle")]),
            (4, [(side, None, "classes", "header")])]
    rows += [(5 + c, [(side, None, name, "bold")]) for c, name in enumerate(lesson.class_names)]
    for i in range(n):
        r = i + 2
        cells = [(j, None, float(lesson.X[i, j]), "input") for j in range(d)]
        cells += [(label, f"=MATCH({col_name(cls)}{r},{classes},0)-1", int(lesson.labels[i]),
                   "int"),
                  (cls, None, lesson.class_names[lesson.labels[i]], "input")]
        here = f'IF(ISNUMBER({col_name(label)}{r}),"","data!{col_name(cls)}{r}")'
        for j in reversed(range(d)):
            here = f'IF(ISNUMBER({col_name(j)}{r}),{here},"data!{col_name(j)}{r}")'
        prev = f"{col_name(check)}{r - 1}"
        cells.append((check, f"={here}" if i == 0 else f'=IF({prev}<>"",{prev},{here})', "",
                      None))
        rows.append((i + 1, cells))
    validations = [(1, cls, n, cls, {"validate": "list", "source": f"={classes}",
                                     "input_title": "class", "input_message": "pick the class",
                                     "error_message": "pick one of the classes listed on the "
                                                      "right"}),
                   (1, 0, n, d - 1, {"validate": "decimal", "criteria": "between",
                                     "minimum": -1e300, "maximum": 1e300,
                                     "input_title": "feature", "input_message": "a number",
                                     "error_message": "features must be numbers"})]
    widths = {j: 12 for j in range(d + 3)}
    widths[check] = 13
    return Sheet("data", static_rows(rows),
                 widths=widths, freeze=(1, 0), validations=validations,
                 notes=[(0, check, "Empty while every feature is a number and every class is "
                         "in the list; else the first cell that is not. A blank is not read "
                         "as 0 here: the train sheet's status points at it.")])


def train_sheet(lesson: Lesson, sheet_name: str = "train",
                finder: "FinderRun | None" = None) -> tuple[Sheet, dict]:
    """The training sheet; with ``finder``, the lr finder's (its lesson trained under
    the lrfind schedule, the finder's columns beside the trace table).

    First screen: inputs and status; the trace table (step, loss, accuracy) down
    column A; the loss chart; and the model panel: W | b at a step the learner picks,
    the yellow starting W | b, and every example's probabilities at that step. The
    blocks, one per step, follow below."""
    X, labels, tr = lesson.X, lesson.labels, lesson.trace
    n, d = X.shape
    k = len(lesson.class_names)
    steps = lesson.steps
    top = blocks_start(steps, n, k, finder is not None)
    group = Group("W | b", k, d + 1, lambda i, j: i * d + j if j < d else k * d + i,
                  list(lesson.class_names), list(lesson.feature_names) + ["bias"])
    lay = Layout(lesson.opt, [group], lesson_rows=n,
                 scalars=[("loss", "loss", "mean cross-entropy over all examples, before "
                           "this step's update"),
                          ("accuracy", "accuracy", "share of examples whose target has the "
                           "largest logit")], top=top, schedule=lesson.schedule)
    with np.errstate(all="ignore"):
        lay.set_formats(tr)
        lay.formats.update(
            g=number_format([softmax.pack(st.grad_W, st.grad_b) for st in tr.steps]),
            loss=number_format([st.loss for st in tr.steps]), accuracy="0.0%")
        band_fmt = {key: "general|" + number_format([getattr(st, attr) for st in tr.steps])
                    for key, attr in (("z", "logits"), ("max", "max"), ("e", "exp"),
                                      ("sum", "sum"), ("p", "probs"), ("loss", "loss_i"),
                                      ("dz", "dlogits"))}
    # Columns of the example band: target, z (k), max, e (k), Σ, p (k), loss_i, correct, dz (k)
    ec = {"y": 1, "z": 2, "max": 2 + k, "e": 3 + k, "sum": 3 + 2 * k, "p": 4 + 2 * k,
          "loss": 4 + 3 * k, "correct": 5 + 3 * k, "dz": 6 + 3 * k}
    band_titles = [("y", "target"), ("z", "logits z = W·x + b"), ("max", "max z"),
                   ("e", "exp(z − max)"), ("sum", "Σ exp"), ("p", "p = softmax(z)"),
                   ("loss", "loss"), ("correct", "correct"),
                   ("dz", "∂L/∂z = (p − y)/N")]
    data_x = lambda i: f"data!$A${i + 2}:${col_name(d - 1)}${i + 2}"
    data_col = lambda j: f"data!${col_name(j)}$2:${col_name(j)}${n + 1}"
    lab_cell = lambda i: f"data!${col_name(d)}${i + 2}"
    wide = ("z", "e", "p", "dz")
    #: a per-class column's label, "p(A)", as the panel's: every column says its class; the
    #: rule in full ("p = softmax(z)") is the note of its first column
    short = {"z": "z", "e": "exp", "p": "p", "dz": "∂L/∂z"}

    def example_cells(block: int, st: softmax.Step) -> dict[int, list]:
        r0 = lay.block_row(block)
        rows: dict[int, list] = {r0 + 2: [
            (ec[key] + j, None, f"{short[key]}({lesson.class_names[j]})" if key in wide
             else title, "label")
            for key, title in band_titles for j in (range(k) if key in wide else [0])]}
        if block == 1:
            notes.extend((r0 + 2, ec[key], title) for key, title in band_titles if key in wide)
            notes.append((r0 + 2, ec["loss"], "loss = LN(Σ exp) − (z_y − max z): the "
                          "cross-entropy −log p(target), from the max-shifted logits so that "
                          "no EXP overflows"))
        for i in range(n):
            R = r0 + 3 + i
            a = lambda key, j=0: f"{col_name(ec[key] + j)}{R + 1}"
            zs = f"{a('z', 0)}:{a('z', k - 1)}"
            cells = [(0, None, f"example {i + 1}", None),
                     (ec["y"], f"={lab_cell(i)}", int(labels[i]), "int")]
            for c in range(k):
                w = lay.area(block, group, "p", rows=(c, c), cols=(0, d - 1)).replace("$", "")
                bcell = lay.cell(block, group, "p", c, d)
                cells.append((ec["z"] + c, f"=SUMPRODUCT({data_x(i)},{w})+{bcell}",
                              float(st.logits[i, c]), band_fmt["z"]))
            cells.append((ec["max"], f"=MAX({zs})", float(st.max[i]), band_fmt["max"]))
            for c in range(k):
                cells.append((ec["e"] + c, f"=EXP({a('z', c)}-{a('max')})", float(st.exp[i, c]),
                              band_fmt["e"]))
            cells.append((ec["sum"], f"=SUM({a('e', 0)}:{a('e', k - 1)})", float(st.sum[i]),
                          band_fmt["sum"]))
            for c in range(k):
                cells.append((ec["p"] + c, f"={a('e', c)}/{a('sum')}", float(st.probs[i, c]),
                              band_fmt["p"]))
            target = f"INDEX({zs},1,{a('y')}+1)"
            cells.append((ec["loss"], f"=LN({a('sum')})-({target}-{a('max')})",
                          float(st.loss_i[i]), band_fmt["loss"]))
            cells.append((ec["correct"], f"=IF({target}={a('max')},1,0)", float(st.correct[i]),
                          "int"))
            for c in range(k):
                cells.append((ec["dz"] + c, f"=({a('p', c)}-IF({a('y')}={c},1,0))/ROWS(labels)",
                              float(st.dlogits[i, c]), band_fmt["dz"]))
            rows[R] = cells
        return rows

    def grad_formula(block):
        r0 = lay.block_row(block)
        dz = lambda c: f"{col_name(ec['dz'] + c)}{r0 + 4}:{col_name(ec['dz'] + c)}{r0 + 3 + n}"

        def f(g, i, j):
            if j < d:
                return f"=SUMPRODUCT({dz(i)},{data_col(j)})"
            return f"=SUM({dz(i)})"
        return f

    hyper, hvals = schedule_inputs(lesson.opt, lesson.schedule)
    scheduled = lesson.schedule is not None and lesson.schedule.scheduled
    if finder is not None:
        hyper, hvals = hyper + list(finder.inputs()), {**hvals, **finder.inputs()}
    table = TraceTable(lay, tr, SCREEN_ROW + 1, TRACE_COL, sheet_name, "step", "loss",
                       ("accuracy", "accuracy"), finder, metric_style="summary|0.0%")
    panel, start_ref, panel_notes, panel_validations, panel_colours = (
        ({}, None, [], [], ([], [])) if finder else
        _model_panel(lesson, lay, group, first_example=3, p_col=ec["p"]))
    status = table.status(hyper, DATA_PROBLEM)

    def rows():
        title = (f"{sheet_name}: softmax regression, {lesson.kind}, {steps} full-batch "
                 f"steps on {n} examples, {k} classes"
                 + (": the lr finder, lr growing each step from the same start" if finder else ""))
        sentence = ("Softmax regression: logits z = W·x + b, probabilities p = softmax(z), loss "
                    "= cross-entropy; each block below is one full-batch step. "
                    + PLAIN[lesson.kind])
        if scheduled:
            sentence += " " + lesson.schedule.describe() + "."
        yield from input_rows(
            title, sentence, hyper, hvals, FINDER_HINT if finder else
            f"Change a yellow cell ({lr_input(lesson.schedule)}, or a starting weight) and "
            "every step recomputes; pick a step in the panel to see the model then. One block "
            f"per step, from row {top + 1}.", status,
            derived={"steps": table.steps_formula()})
        def step_cells(block):
            st = tr.steps[block - 1]
            r0 = lay.block_row(block)
            loss_range = f"{col_name(ec['loss'])}{r0 + 4}:{col_name(ec['loss'])}{r0 + 3 + n}"
            corr_range = (f"{col_name(ec['correct'])}{r0 + 4}:"
                          f"{col_name(ec['correct'])}{r0 + 3 + n}")
            cells = lay.cells(block, theta=tr.theta[block - 1],
                              grad=softmax.pack(st.grad_W, st.grad_b),
                              shown=tr.shown[block - 1], init_state=None,
                              grad_formula=grad_formula(block),
                              scalar_cells=[("loss", f"=AVERAGE({loss_range})", st.loss),
                                            ("accuracy", f"=AVERAGE({corr_range})",
                                             st.accuracy)]
                              + lay.schedule_cells(block, tr.shown[block - 1]),
                              notes=notes)
            for row, extra in example_cells(block, st).items():
                cells.setdefault(row, []).extend(extra)
            return cells

        yield from stream_blocks(lay, tr, [table.rows(), panel], step_cells, notes=notes,
                                 init_ref=start_ref)

    notes = input_notes(hyper, conventions(lesson.kind, lesson.opt, lesson.follows))
    notes += panel_notes
    validations = input_validations(hyper, INPUT_ROW) + panel_validations + \
        (lay.start_validations() if start_ref is None else [])
    sn = sheet_name
    names = {h: f"{sn}!{ref(INPUT_ROW, i, True)}" for i, h in enumerate(hyper)}
    if start_ref is None:
        names["W_init"] = f"{sn}!" + lay.area(0, group, "new", cols=(0, d - 1))
        names["bias_init"] = f"{sn}!" + lay.area(0, group, "new", cols=(d, d))
    else:
        names.update(_start_names(sn, lesson))
    names["W_final"] = f"{sn}!" + lay.area(steps, group, "new", cols=(0, d - 1))
    names["bias_final"] = f"{sn}!" + lay.area(steps, group, "new", cols=(d, d))
    names.update(table.names())
    notes += table.notes()
    charts = table.charts("mean cross-entropy per step", "loss", "loss", "loss_trace",
                          at=[(SCREEN_ROW, CHART_COL), (BELOW_CHART, CHART_COL)])
    if finder is None and not scheduled:
        charts.append(Chart(BELOW_CHART, CHART_COL, f"{sn}: accuracy per step", "step",
                            "accuracy", [Series("accuracy", area(sn, table.top, TRACE_COL,
                                                                 table.last),
                                                names["accuracy_trace"])],
                            width=charts[0].width, height=charts[0].height, scatter=True,
                            y_range=(0, 1)))
    sheet = training_sheet(sn, rows, lay, table, hyper, names, notes=notes,
                           validations=validations, charts=charts,
                           unique_names=finder is not None or lesson.finder is not None)
    # every block's probabilities white → red, as the panel's
    sheet.color_scales.append((across_blocks(lay, steps, (3, 2 + n), (ec["p"], ec["p"] + k - 1)),
                               SEQUENTIAL))
    sheet.color_scales += panel_colours[0]
    sheet.highlights += panel_colours[1]
    return sheet, names


def _start_names(sheet: str, lesson: Lesson) -> dict[str, str]:
    """W_init and bias_init: the panel's yellow starting weights."""
    k, d = lesson.W0.shape
    _, _, start, _, _ = _panel_rows(len(lesson.X), k)
    first = start + 2
    return {"W_init": f"{sheet}!{ref(first, PANEL_COL + 1, True)}:"
                      f"{ref(first + k - 1, PANEL_COL + d, True)}",
            "bias_init": f"{sheet}!{ref(first, PANEL_COL + d + 1, True)}:"
                         f"{ref(first + k - 1, PANEL_COL + d + 1, True)}"}


def _model_panel(lesson: Lesson, lay: Layout, group: Group, first_example: int, p_col: int):
    """The model at a glance, right of the loss chart: a yellow step picker, W | b used at
    that step, the yellow starting W | b (block 0 reads them), and each example's target,
    probabilities and predicted class at that step, each an INDEX into that step's block.
    ``first_example`` is the block row of example 1 and ``p_col`` the column of its first
    probability. Returns (cells by row, init_ref for block 0, notes, validations, (colour
    scales, highlights)): W | b blue < 0 < red, probabilities white → red, a misclassified
    example's row red."""
    tr, steps = lesson.trace, lesson.steps
    n, d = lesson.X.shape
    k = len(lesson.class_names)
    pick, at, start, examples, _ = _panel_rows(n, k)
    c0 = PANEL_COL
    show = ref(pick, c0 + 1, True)
    theta_fmt = lay.style("p", "num")
    rows: dict[int, list] = {}
    put = lambda r, c, f, v, st: rows.setdefault(r, []).append((c, f, v, st))
    picker, picker_rule = step_picker(pick, c0, steps, "the model")
    rows.setdefault(pick, []).extend(picker)
    W_then, b_then = softmax.unpack(tr.theta[steps - 1], k, d)
    for top, title, W, b in ((at, "W | b used at that step", W_then, b_then),
                             (start, "starting W | b (yellow)",
                              lesson.W0, lesson.b0)):
        put(top, c0, None, title, "header_span")
        for j in range(1, d + 2):
            put(top, c0 + j, None, None, "header_span")
        for j, label in enumerate(group.col_labels):
            put(top + 1, c0 + 1 + j, None, label, "label")
        for i, name in enumerate(lesson.class_names):
            put(top + 2 + i, c0, None, name, "bold")
            for j in range(d + 1):
                v = float(W[i, j] if j < d else b[i])
                if top == start:
                    put(top + 2 + i, c0 + 1 + j, None, v, "input")
                else:
                    col = lay.matrix_col[(group.name, "p")] + j
                    put(top + 2 + i, c0 + 1 + j, at_step(lay, group.band + i, col, show, steps),
                        v, theta_fmt)
    classes = f"{ref(at + 2, c0, True)}:{ref(at + 1 + k, c0, True)}"
    st = tr.steps[steps - 1]
    probs = [f"p({c})" for c in lesson.class_names]
    for j, h in enumerate(["example", "target"] + probs + ["predicted"]):
        put(examples, c0 + j, None, h, "header")
    p_fmt = "percent"  # a probability reads best as a share
    for i in range(n):
        r = examples + 1 + i
        put(r, c0, None, f"example {i + 1}", None)
        put(r, c0 + 1, f"=INDEX({classes},data!${col_name(d)}${i + 2}+1)",
            lesson.class_names[int(lesson.labels[i])], None)
        for c in range(k):
            put(r, c0 + 2 + c, at_step(lay, first_example + i, p_col + c, show, steps),
                float(st.probs[i, c]), p_fmt)
        ps = f"{ref(r, c0 + 2)}:{ref(r, c0 + 1 + k)}"
        predicted = (lesson.class_names[int(np.argmax(st.probs[i]))]
                     if np.all(np.isfinite(st.probs[i])) else math.nan)  # #NUM! once overflowed
        put(r, c0 + 2 + k, f"=INDEX({classes},MATCH(MAX({ps}),{ps},0))", predicted, None)
    init_ref = lambda g, i, j: ref(start + 2 + i, c0 + 1 + j)
    notes = [(pick, c0 + 1, f"Any step from 1 to {steps}: the weights, probabilities and "
              "predictions beside are that step's block, read with INDEX.")]
    validations = [picker_rule]
    for i in range(k):
        for j in range(d + 1):
            validations.append((start + 2 + i, c0 + 1 + j, {
                "validate": "decimal", "criteria": "between", "minimum": -1e6,
                "maximum": 1e6, "input_title": "starting weight",
                "input_message": "a starting weight; every step recomputes from it"}))
    put(at + 2 + k, c0, None, "colour: weights blue < 0 < red", "subtitle")
    put(start + 2 + k, c0, None, "below: p white → red; red: misclassified", "subtitle")
    weights = f"{ref(at + 2, c0 + 1)}:{ref(at + 1 + k, c0 + 1 + d)}"
    table = f"{ref(examples + 1, c0 + 2)}:{ref(examples + n, c0 + 1 + k)}"
    # target and predicted each red where they differ
    column = lambda c: f"{ref(examples + 1, c)}:{ref(examples + n, c)}"
    target, predicted = c0 + 1, c0 + 2 + k
    wrong = [(column(target), "!=", (f"${col_name(predicted)}{examples + 2}",)),
             (column(predicted), "!=", (f"${col_name(target)}{examples + 2}",))]
    return rows, init_ref, notes, validations, ([(weights, DIVERGING), (table, SEQUENTIAL)],
                                                wrong)


def about_sheet(lesson: Lesson) -> Sheet:
    return about_page(
        "sheetdl · softmax, cross-entropy and softmax regression",
        ["Open the softmax sheet: a block per example, a row per class, each stage of "
         "softmax and cross-entropy a column, from the logits to the loss and its gradient.",
         "Pick another target in its yellow list, or type new logits: every stage recomputes. "
         f"Then open train and change the yellow {lr_input(lesson.schedule)} on row 4.",
         "Watch train's loss and accuracy charts, and type a step in its 'show step' cell to "
         "see the weights and every example's probabilities at that step."],
        ["softmax: the course's five-class example and examples with logits of ±1000, every "
         "stage a column; LN (natural log) as torch uses, never base-10 LOG.",
         f"train: softmax regression (logits = W·x + b) on {lesson.data_label}, trained by "
         f"{lesson.kind} with full-batch steps; preset {lesson.preset}. Each step is a block: "
         "the examples (logits, probabilities, loss, ∂L/∂z), then θ, ∂L/∂θ (SUMPRODUCT), "
         "the "
         "optimizer state and the new θ. The trace table in column A charts the loss.",
         "data: the features and each example's class; the label column is the 0-based class "
         "number the formulas read.",
         "Defined names: X, labels, W_init, bias_init, the hyperparameters under torch's "
         "names, loss_trace (loss at each step, before its update), W_final, bias_final."])


def make_finder(lesson: Lesson, steps=None, lr_min=None, lr_max=None, smooth_beta=None,
                stop_factor=None) -> FinderRun:
    train = lambda sched, steps: softmax.train(lesson.opt, lesson.X, lesson.labels, lesson.W0,
                                               lesson.b0, steps, sched)
    height = _layout_height(lesson.X.shape[0], len(lesson.class_names))
    top = blocks_start(lrfind.settings(steps, None, None)[0], lesson.X.shape[0],
                       len(lesson.class_names), finder=True)
    return run_finder(lesson, train, steps_field="steps", block_height=height, top=top,
                      max_rows=EXCEL_MAX_ROWS, steps=steps, lr_min=lr_min, lr_max=lr_max,
                      smooth_beta=smooth_beta, stop_factor=stop_factor)


def build(lesson: Lesson) -> Book:
    train, names = train_sheet(lesson)
    n, d = lesson.X.shape
    names["X"] = f"data!$A$2:${col_name(d - 1)}${n + 1}"
    names["labels"] = f"data!${col_name(d)}$2:${col_name(d)}${n + 1}"
    names[DATA_PROBLEM] = f"data!${col_name(d + 2)}${n + 1}"
    meta = {"lesson": "softmax", "format": 1, "preset": lesson.preset, "steps": lesson.steps,
            "optimizer": lesson.kind, "options": lesson.opt.options(),
            **fullbatch.diverged(lesson.trace), **fullbatch.unsteady(lesson.trace),
            "classes": len(lesson.class_names)}
    if lesson.schedule is not None and lesson.schedule.scheduled:
        meta["schedule"] = lesson.schedule.options()
    sheets = [about_sheet(lesson), softmax_sheet(), data_sheet(lesson), train]
    add_finder_sheet(lesson, train_sheet, sheets, meta, "steps")
    return Book(sheets, names, f"sheetdl softmax ({lesson.preset})", meta)
