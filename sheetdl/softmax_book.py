"""Layout of the softmax lesson: softmax and cross-entropy cell by cell, then
softmax regression trained full batch, one block of rows per step.

Data flows one way: options → ``softmax.train`` → this layout → ``xlsx.write``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import presets, schedules, softmax
from .blocks import (FinderRun, Group, Layout, TraceTable, add_finder_sheet, interleave,
                     run_finder)
from .book import Book, Sheet, col_name, ref, static_rows
from .data import EXCEL_MAX_ROWS, DataError, is_number
from .formulas import (HYPER_HELP, conventions, input_rows, input_validations, schedule_inputs,
                       status_cell)
from .optim import Optimizer

CLASSES = ["cat", "dog", "plane", "fish", "building"]
#: The course's entropy_example.xlsx logits (target dog), then examples of our own.
EXAMPLES = [
    ("course image", [-4.885225, 2.597473, 0.591665, -2.068945, -4.568679], 1),
    ("huge logits", [1000.0, 0.0, -1000.0, 5.0, 3.0], 0),
    ("huge, wrong", [-1000.0, 999.0, 1000.0, 0.0, 0.0], 1),
    ("all equal", [0.5, 0.5, 0.5, 0.5, 0.5], 3),
]
#: Learning rates that train the default data visibly in 50 steps, measured.
LESSON_LR = {"sgd": 0.5, "momentum": 0.1, "nesterov": 0.1, "rmsprop": 0.02, "adam": 0.05,
             "adamw": 0.05, "adagrad": 0.3, "adamax": 0.05, "nadam": 0.05}
TOP = 6  # sheet row of block 0 on the train sheet


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
    import csv

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: no data rows")
    header = None
    try:
        [float(c) for c in rows[0][:-1]]
    except ValueError:
        header, rows = rows[0], rows[1:]
    if not rows:
        raise DataError(f"{path}: no data rows")
    width = len(rows[0])
    if width < 2:
        raise DataError(f"{path}: need at least one feature column and a label column")
    X, raw = [], []
    for n, r in enumerate(rows, start=2 if header else 1):
        if len(r) != width:
            raise DataError(f"{path}, line {n}: {len(r)} columns, expected {width}")
        try:
            vals = [float(c) for c in r[:-1]]
        except ValueError:
            bad = next(i for i, c in enumerate(r[:-1]) if not is_number(c))
            raise DataError(f"{path}, line {n}, column {bad + 1}: {r[bad].strip()!r} is not "
                            "a number") from None
        if not all(np.isfinite(vals)):
            raise DataError(f"{path}, line {n}: features must be finite numbers")
        X.append(vals)
        raw.append(r[-1].strip())
    names = sorted(set(raw), key=lambda s: (not is_number(s), float(s) if is_number(s) else 0, s))
    labels = np.array([names.index(s) for s in raw])
    features = header[:-1] if header else [f"x{j + 1}" for j in range(width - 1)]
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
    if TOP + (steps + 1) * height > EXCEL_MAX_ROWS:
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

def softmax_sheet() -> Sheet:
    k = len(CLASSES)
    z = np.array([e[1] for e in EXAMPLES])
    t = np.array([e[2] for e in EXAMPLES])
    r = softmax.softmax_rows(z, t)
    groups = [("logits z", "the scores a model outputs (any real numbers)", r.logits, None),
              ("max", "m = max(z): subtracting it keeps EXP finite (EXP overflows past "
               "709.78); softmax does not change", r.max, None),
              ("z − m", "shifted logits, all ≤ 0", r.shifted, "={z}-{max}"),
              ("exp(z − m)", "each between 0 and 1", r.exp, "=EXP({shifted})"),
              ("Σ exp", "the normaliser", r.sum, None),
              ("p = softmax", "p = exp(z − m)/Σ exp(z − m): sums to 1", r.probs, "={exp}/{sum}"),
              ("one-hot y", "1 for the target class", r.onehot, "=IF({target}={c},1,0)"),
              ("log p", "log-softmax with LN: (z − m) − LN(Σ exp). Excel's LOG is base 10: "
               "using it divides the loss by ln 10 ≈ 2.3026 and no longer matches torch",
               r.logp, "={shifted}-LN({sum})"),
              ("loss", "cross-entropy −Σ y·log p = −log p[target]: torch's F.cross_entropy "
               "for one example", r.loss, None),
              ("∂loss/∂z = p − y", "the gradient of the loss for each logit", r.grad,
               "={p}-{onehot}")]
    col = {"name": 0, "target": 1}
    c = 2
    keys = ["z", "max", "shifted", "exp", "sum", "p", "onehot", "logp", "loss", "grad"]
    for key, (title, _, arr, _) in zip(keys, groups):
        col[key] = c
        c += (k if np.ndim(arr) == 2 else 1)
    rows_out = [(0, [(0, None, "Softmax and cross-entropy, one cell at a time", "title")]),
                (1, [(0, None, "Each block of columns is one stage. Subtracting the row max "
                      "first keeps logits of ±1000 finite; LN, not LOG, makes the loss torch's.",
                      "subtitle")])]
    header, sub, notes = [(0, None, "example", "header"), (1, None, "target", "header")], [], []
    for key, (title, note, arr, _) in zip(keys, groups):
        header.append((col[key], None, title, "header"))
        notes.append((3, col[key], note))
        if np.ndim(arr) == 2:
            sub += [(col[key] + j, None, CLASSES[j], "label") for j in range(k)]
    rows_out.append((3, header))
    rows_out.append((4, sub))
    first = 5
    for i, (name, _, target) in enumerate(EXAMPLES):
        row = first + i
        R = row + 1
        cells = [(0, None, name, "bold"), (1, None, target, "input")]

        def at(key, j=None):
            return f"{col_name(col[key] + (j or 0))}{R}"

        def span(key):
            return f"{at(key, 0)}:{at(key, k - 1)}"

        for j in range(k):
            cells.append((col["z"] + j, None, float(r.logits[i, j]), "input"))
        cells.append((col["max"], f"=MAX({span('z')})", float(r.max[i]), "general"))
        for j in range(k):
            cells.append((col["shifted"] + j, f"={at('z', j)}-{at('max')}", float(r.shifted[i, j]), "general"))
            cells.append((col["exp"] + j, f"=EXP({at('shifted', j)})", float(r.exp[i, j]), "general"))
        cells.append((col["sum"], f"=SUM({span('exp')})", float(r.sum[i]), "general"))
        for j in range(k):
            cells.append((col["p"] + j, f"={at('exp', j)}/{at('sum')}", float(r.probs[i, j]), "general"))
            cells.append((col["onehot"] + j, f"=IF({at('target')}={j},1,0)", float(r.onehot[i, j]), "int"))
            cells.append((col["logp"] + j, f"={at('shifted', j)}-LN({at('sum')})", float(r.logp[i, j]), "general"))
            cells.append((col["grad"] + j, f"={at('p', j)}-{at('onehot', j)}", float(r.grad[i, j]), "general"))
        cells.append((col["loss"], f"=-SUMPRODUCT({span('onehot')},{span('logp')})", float(r.loss[i]), "summary"))
        notes.append((row, col["loss"], f"With base-10 LOG (the course sheet's habit) this cell "
                      f"would show {r.loss_log10[i]:.6g}, the loss divided by ln 10: a different "
                      "number from torch's cross-entropy, and its gradient is off by the same "
                      "factor."))
        rows_out.append((row, sorted(cells)))
    return Sheet("softmax", static_rows(rows_out), widths={0: 14, 1: 8}, freeze=(5, 2),
                 notes=notes)


def data_sheet(lesson: Lesson) -> Sheet:
    d = lesson.X.shape[1]
    rows = [(0, [(j, None, name, "header") for j, name in enumerate(lesson.feature_names)]
             + [(d, None, "label", "header"), (d + 1, None, "class", "header"),
                (d + 3, None, f"Data: {lesson.data_label}. Named X (features) and labels "
                 "(0-based class numbers).", "subtitle")])]
    for i in range(len(lesson.X)):
        rows.append((i + 1, [(j, None, float(lesson.X[i, j]), None) for j in range(d)]
                     + [(d, None, int(lesson.labels[i]), "int"),
                        (d + 1, None, lesson.class_names[lesson.labels[i]], None)]))
    return Sheet("data", static_rows(rows), widths={j: 12 for j in range(d + 2)}, freeze=(1, 0))


def train_sheet(lesson: Lesson, sheet_name: str = "train",
                finder: "FinderRun | None" = None) -> tuple[Sheet, dict]:
    """The training sheet; with ``finder``, the lr finder's (its lesson trained under
    the lrfind schedule, the finder's columns beside the trace table)."""
    X, labels, tr = lesson.X, lesson.labels, lesson.trace
    n, d = X.shape
    k = len(lesson.class_names)
    group = Group("W | b", k, d + 1, lambda i, j: i * d + j if j < d else k * d + i,
                  list(lesson.class_names), list(lesson.feature_names) + ["bias"])
    lay = Layout(lesson.opt, [group], lesson_rows=n,
                 scalars=[("loss", "loss", "mean cross-entropy over all examples, before "
                           "this step's update"),
                          ("accuracy", "accuracy", "share of examples whose target has the "
                           "largest logit")], top=TOP, schedule=lesson.schedule)
    # Columns of the example band: target, z (k), max, e (k), Σ, p (k), loss_i, correct, dz (k)
    ec = {"y": 1, "z": 2, "max": 2 + k, "e": 3 + k, "sum": 3 + 2 * k, "p": 4 + 2 * k,
          "loss": 4 + 3 * k, "correct": 5 + 3 * k, "dz": 6 + 3 * k}
    band_titles = [("y", "target"), ("z", "logits z = W·x + b"), ("max", "max z"),
                   ("e", "exp(z − max)"), ("sum", "Σ exp"), ("p", "p = softmax(z)"),
                   ("loss", "loss = LN(Σ) − (z_y − max)"), ("correct", "correct"),
                   ("dz", "∂L/∂z = (p − y)/N")]
    data_x = lambda i: f"data!$A${i + 2}:${col_name(d - 1)}${i + 2}"
    data_col = lambda j: f"data!${col_name(j)}$2:${col_name(j)}${n + 1}"
    lab_cell = lambda i: f"data!${col_name(d)}${i + 2}"

    def example_cells(block: int, st: softmax.Step) -> dict[int, list]:
        r0 = lay.block_row(block)
        rows: dict[int, list] = {r0 + 2: [(ec[key] + (j if key in "z e p dz" else 0), None,
                                            (title if j == 0 else lesson.class_names[j]) if key in ("z", "e", "p", "dz") else title,
                                            "label")
                                           for key, title in band_titles
                                           for j in (range(k) if key in ("z", "e", "p", "dz") else [0])]}
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
                              float(st.logits[i, c]), "general"))
            cells.append((ec["max"], f"=MAX({zs})", float(st.max[i]), "general"))
            for c in range(k):
                cells.append((ec["e"] + c, f"=EXP({a('z', c)}-{a('max')})", float(st.exp[i, c]), "general"))
            cells.append((ec["sum"], f"=SUM({a('e', 0)}:{a('e', k - 1)})", float(st.sum[i]), "general"))
            for c in range(k):
                cells.append((ec["p"] + c, f"={a('e', c)}/{a('sum')}", float(st.probs[i, c]), "general"))
            target = f"INDEX({zs},1,{a('y')}+1)"
            cells.append((ec["loss"], f"=LN({a('sum')})-({target}-{a('max')})", float(st.loss_i[i]), "general"))
            cells.append((ec["correct"], f"=IF({target}={a('max')},1,0)", float(st.correct[i]), "int"))
            for c in range(k):
                cells.append((ec["dz"] + c, f"=({a('p', c)}-IF({a('y')}={c},1,0))/ROWS(labels)",
                              float(st.dlogits[i, c]), "general"))
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
    trace_col = max(lay.width(), ec["dz"] + k) + 1
    scheduled = lesson.schedule is not None and lesson.schedule.scheduled
    last_block = lesson.steps
    if finder is not None:
        hyper, hvals = hyper + list(finder.inputs()), {**hvals, **finder.inputs()}
    table = TraceTable(lay, tr, TOP, trace_col, sheet_name, "step", "loss",
                       ("accuracy", "accuracy"), finder)

    def rows():
        title = (f"{sheet_name}: softmax regression, {lesson.kind}, {lesson.steps} full-batch "
                 f"steps on {n} examples, {k} classes"
                 + (": the lr finder, lr growing each step from the same start" if finder else ""))
        convention = conventions(lesson.kind, lesson.opt, lesson.follows)
        if scheduled:
            convention += " " + lesson.schedule.describe() + "."
        yield from input_rows(
            title, convention, hyper, hvals,
            "Change a yellow cell (a hyperparameter, or a starting weight in the 'start' block) "
            "and every step below recomputes. One block per step.",
            None if finder else (trace_col, *status_cell("loss_trace",
                                                         [s.loss for s in tr.steps])))
        pending = table.rows()
        notes_sink = notes
        for block in range(0, lesson.steps + 1):
            if block == 0:
                cells = lay.cells(0, theta=tr.theta[0], grad=None, shown=None,
                                  init_state=tr.initial_state, notes=notes_sink)
            else:
                st = tr.steps[block - 1]
                r0 = lay.block_row(block)
                loss_range = f"{col_name(ec['loss'])}{r0 + 4}:{col_name(ec['loss'])}{r0 + 3 + n}"
                corr_range = f"{col_name(ec['correct'])}{r0 + 4}:{col_name(ec['correct'])}{r0 + 3 + n}"
                cells = lay.cells(block, theta=tr.theta[block - 1],
                                  grad=softmax.pack(st.grad_W, st.grad_b),
                                  shown=tr.shown[block - 1], init_state=None,
                                  grad_formula=grad_formula(block),
                                  scalar_cells=[("loss", f"=AVERAGE({loss_range})", st.loss),
                                                ("accuracy", f"=AVERAGE({corr_range})", st.accuracy)]
                                  + lay.schedule_cells(block, tr.shown[block - 1]),
                                  notes=notes_sink)
                for row, extra in example_cells(block, st).items():
                    cells.setdefault(row, []).extend(extra)
            yield from interleave(cells, pending)
        for r in sorted(pending):
            yield r, pending[r]

    notes: list = [(2, i, f"{h}: {HYPER_HELP.get(h, h)}") for i, h in enumerate(hyper)]
    validations = input_validations(hyper, 3)
    sn = sheet_name
    names = {h: f"{sn}!{ref(3, i, True)}" for i, h in enumerate(hyper)}
    names["W_init"] = f"{sn}!" + lay.area(0, group, "new", cols=(0, d - 1))
    names["bias_init"] = f"{sn}!" + lay.area(0, group, "new", cols=(d, d))
    names["W_final"] = f"{sn}!" + lay.area(last_block, group, "new", cols=(0, d - 1))
    names["bias_final"] = f"{sn}!" + lay.area(last_block, group, "new", cols=(d, d))
    names.update(table.names())
    notes += table.notes()
    charts = table.charts("mean cross-entropy per step", "loss", "loss", "loss_trace")
    widths = table.widths()
    sheet = Sheet(sn, rows, widths=widths, freeze=(5, 1), notes=notes,
                  validations=validations, charts=charts)
    return sheet, names


def about_sheet(lesson: Lesson) -> Sheet:
    lines = [("sheetdl · softmax, cross-entropy and softmax regression", "title"),
             ("softmax: the course's five-class example and examples with logits of ±1000, every "
              "stage a column; LN (natural log) as torch uses, never base-10 LOG.", None),
             (f"train: softmax regression (logits = W·x + b) on {lesson.data_label}, trained by "
              f"{lesson.kind} with full-batch steps; preset {lesson.preset}. Each step is a block: "
              "the examples (logits, probabilities, loss, ∂L/∂z), then θ, ∂L/∂θ (SUMPRODUCT), the "
              "optimizer state and the new θ. The trace table on the right charts the loss.", None),
             ("Defined names: X, labels, W_init, bias_init, the hyperparameters under torch's "
              "names, loss_trace (loss at each step, before its update), W_final, bias_final.",
              None)]
    return Sheet("about", static_rows([(i, [(0, None, t, s or "text")])
                                       for i, (t, s) in enumerate(lines)]), widths={0: 120})


def make_finder(lesson: Lesson, steps=None, lr_min=None, lr_max=None, smooth_beta=None,
                stop_factor=None) -> FinderRun:
    train = lambda sched, steps: softmax.train(lesson.opt, lesson.X, lesson.labels, lesson.W0,
                                               lesson.b0, steps, sched)
    height = _layout_height(lesson.X.shape[0], len(lesson.class_names))
    return run_finder(lesson, train, steps_field="steps", block_height=height, top=TOP,
                      max_rows=EXCEL_MAX_ROWS, steps=steps, lr_min=lr_min, lr_max=lr_max,
                      smooth_beta=smooth_beta, stop_factor=stop_factor)


def build(lesson: Lesson) -> Book:
    train, names = train_sheet(lesson)
    n, d = lesson.X.shape
    names["X"] = f"data!$A$2:${col_name(d - 1)}${n + 1}"
    names["labels"] = f"data!${col_name(d)}$2:${col_name(d)}${n + 1}"
    meta = {"lesson": "softmax", "format": 1, "preset": lesson.preset, "steps": lesson.steps,
            "optimizer": lesson.kind, "options": lesson.opt.options(),
            **_diverged(lesson.trace),
            "classes": len(lesson.class_names)}
    if lesson.schedule is not None and lesson.schedule.scheduled:
        meta["schedule"] = lesson.schedule.options()
    sheets = [about_sheet(lesson), softmax_sheet(), data_sheet(lesson), train]
    add_finder_sheet(lesson, train_sheet, sheets, meta, "steps")
    return Book(sheets, names, f"sheetdl softmax ({lesson.preset})", meta)


def _diverged(trace) -> dict:
    """{"diverged": {"train": first step whose loss or θ is not finite}}, or {}."""
    for t, (step, theta) in enumerate(zip(trace.steps, trace.theta[1:]), start=1):
        if not (np.isfinite(step.loss) and np.all(np.isfinite(theta))):
            return {"diverged": {"train": t}}
    return {}
