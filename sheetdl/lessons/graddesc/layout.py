"""Layout of the graddesc lesson: y = b + a·x fitted one sample per row.

Data flows one way: options → ``compiled.train`` (the reference math, compiled) → this
layout → ``xlsx.write``. Each optimizer sheet is

    row 1   title;  row 2  the conventions and where frameworks differ
    row 3-4 named input cells (yellow): hyperparameters, b_init, a_init
    row 6   column headers, each with a note giving its math
    row 7   step 0: the initial parameters and optimizer state
    row 8+  one per-sample step per row, every intermediate a formula

and to the right an epoch summary with charts. A column is a formula template
in which ``{key}`` is this row's cell of column ``key`` (for per-parameter
columns, of the same parameter) and ``{key@prev}`` the previous row's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import LEARNING_RATES as LESSON_LR
from . import compiled, model as linear
from ...math import lrfind, optim, presets, schedules
from ...sheet.workbook import (ArrayFormula, Book, Chart, Run, RunColumn, Series, Sheet, area,
    number_style, ref, static_rows)
from ...math.cells import cells
from ..data import EXCEL_MAX_ROWS
from ...sheet.formulas import addin_function, addin_note
from ...sheet.formulas import (FINDER_HINT, HYPER_HELP, INPUT_ROW, LABEL_ROW, PLAIN, Column,
    Template, about_page, conventions, finder_chart, finder_columns, finder_status,
    finder_summary, fit_headers, fit_inputs, input_notes, input_rows, input_validations, lr_input,
    optimizer_columns, renamer, schedule_columns, schedule_inputs, schedule_keys, status_cell)
from ...math.optim import Optimizer

DEFAULT_OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw")
ALL_OPTIMIZERS = optim.NAMES
DEFAULT_PRESET = presets.DEFAULT

#: The course sheet's own learning rates (adam after the lr was set to 0.1 by hand).
COURSE_LR = {"sgd": 1e-4, "momentum": 1e-4, "rmsprop": 0.02, "adam": 0.1}

# The first screen (A1:T40, issue 11): rows 1–6 title, plain sentence, inputs, hint and
# status; from row 7 the results box (A–D) and the charts (from column E) side by side;
# then the step table, whose first steps fill the rest of the screen.
BOX_ROW, BOX_COL, BOX_VALUE_COL = 6, 0, 3
CHART_ROW, CHART_COL = 6, 4
CHART_WIDTH, CHART_HEIGHT = 400, 288
ROW_PX, COL_PX = 20, 82  # a default row; a column of width 11
CHART_ROWS = -(-CHART_HEIGHT // ROW_PX)
CHART_COLS = -(-CHART_WIDTH // COL_PX)
HEADER_ROW = CHART_ROW + CHART_ROWS + 1
INIT_ROW, FIRST_STEP_ROW = HEADER_ROW + 1, HEADER_ROW + 2
UDF_TOP = 5  # the --udf sheet: inputs, then one array call from row 6
FD_H = 0.01

PARAMS = ("b", "a")

@dataclass
class Finder:
    """The lr finder sheet: one optimizer trained from the same start while lr grows."""

    kind: str
    opt: Optimizer
    follows: str
    schedule: schedules.Schedule
    smooth_beta: float = 0.98
    stop_factor: float = 4.0
    trace: linear.Trace | None = None
    result: lrfind.Finder | None = None


@dataclass
class Lesson:
    """Everything the graddesc workbook is built from."""

    x: np.ndarray
    y: np.ndarray
    optimizers: dict[str, Optimizer]
    follows: dict[str, str]
    preset: str
    epochs: int
    b_init: float
    a_init: float
    drop_last_update: bool = False
    data_label: str = "the course's 29 points, y = 2x + 30"
    traces: dict[str, linear.Trace] = field(default_factory=dict)
    #: write each optimizer's table as one add-in call (SHEETDL_TRAIN_LINEAR)
    udf: str | None = None  # the --udf flavour (formulas.UDF_FLAVOURS), or formulas
    #: each optimizer sheet's lr schedule (absent: a constant lr)
    schedules: dict[str, schedules.Schedule] = field(default_factory=dict)
    #: the course's adam_ann annealing, on every optimizer sheet
    anneal: schedules.Anneal | None = None
    finder: Finder | None = None


def make_lesson(x, y, *, optimizers=DEFAULT_OPTIMIZERS, preset=DEFAULT_PRESET, epochs=5,
                b_init=1.0, a_init=1.0, drop_last_update=None, data_label=None,
                schedule="constant", schedule_options=None, lrfind_optimizer=None,
                lrfind_options=None, **overrides) -> Lesson:
    """Resolve options (preset, then explicit overrides) and run the reference math.

    ``schedule`` is a kind from ``schedules.KINDS`` or ``"anneal"`` (the course's
    adam_ann rule), with ``schedule_options`` (lr_max, pct_start, div, div_final,
    step_size, gamma, lr_min, cycle_momentum, anneal_ratio, anneal_factor).
    ``lrfind_optimizer`` adds an lr finder sheet (``lrfind_options``: steps,
    lr_min, lr_max, smooth_beta, stop_factor).
    """
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    unknown = [o for o in optimizers if o not in ALL_OPTIMIZERS]
    if unknown:
        raise ValueError(f"unknown optimizer {unknown[0]!r} in --optimizers; choose from "
                         f"{', '.join(ALL_OPTIMIZERS)}")
    if len(set(optimizers)) != len(optimizers):
        raise ValueError("--optimizers names an optimizer twice")
    steps = len(x) * epochs
    if FIRST_STEP_ROW + steps > EXCEL_MAX_ROWS:
        raise ValueError(f"{len(x)} rows × {epochs} epochs = {steps} steps: past Excel's "
                         f"{EXCEL_MAX_ROWS:,} rows per sheet; use fewer --rows or --epochs")
    if drop_last_update is None:
        drop_last_update = presets.DROPS_LAST_UPDATE.get(preset, False)
    lr_table = COURSE_LR if preset == "course" else {}
    opts, follows = {}, {}
    for kind in optimizers:
        given = dict(overrides)
        if given.get("lr") is None:
            given["lr"] = lr_table.get(kind, LESSON_LR[kind])
        opts[kind], follows[kind] = presets.resolve(preset, kind, **given)
    lesson = Lesson(x=np.asarray(x, float), y=np.asarray(y, float), optimizers=opts,
                    follows=follows, preset=preset, epochs=epochs, b_init=float(b_init),
                    a_init=float(a_init), drop_last_update=drop_last_update)
    if data_label:
        lesson.data_label = data_label
    sopts = dict(schedule_options or {})
    ratio, factor = sopts.pop("anneal_ratio", None), sopts.pop("anneal_factor", None)
    if schedule == "anneal":
        lesson.anneal = schedules.Anneal(2.0 if ratio is None else ratio,
                                         4.0 if factor is None else factor)
        lacking = [k for k in optimizers if k not in schedules.Anneal.MOMENT]
        if lacking:
            raise ValueError(f"--schedule anneal watches the second moment v, which {lacking[0]} "
                             f"does not keep; use it with {', '.join(schedules.Anneal.MOMENT)}")
    elif schedule != "constant":
        for kind, opt in opts.items():
            lesson.schedules[kind] = schedules.make(schedule, steps=steps, optimizer=kind,
                                                    lr=opt.lr, preset=preset, **sopts)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for kind, opt in opts.items():
            lesson.traces[kind] = compiled.train(opt, lesson.x, lesson.y, epochs=epochs,
                                                 b_init=lesson.b_init, a_init=lesson.a_init,
                                                 drop_last_update=drop_last_update,
                                                 schedule=lesson.schedules.get(kind),
                                                 anneal=lesson.anneal)
    if lrfind_optimizer:
        lesson.finder = make_finder(lesson, lrfind_optimizer, overrides, **(lrfind_options or {}))
    return lesson


def make_finder(lesson: Lesson, kind: str, overrides: dict, *, steps=None, lr_min=None,
                lr_max=None, smooth_beta=None, stop_factor=None) -> Finder:
    if kind not in ALL_OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r} for the lr finder; choose from "
                         f"{', '.join(ALL_OPTIMIZERS)}")
    steps, smooth_beta, stop_factor = lrfind.settings(steps, smooth_beta, stop_factor)
    if FIRST_STEP_ROW + steps > EXCEL_MAX_ROWS:
        raise ValueError(f"{steps} lr finder steps: past Excel's {EXCEL_MAX_ROWS:,} rows")
    given = {k: v for k, v in overrides.items() if k != "lr"}
    opt, follows = presets.resolve(lesson.preset, kind, lr=LESSON_LR[kind], **given)
    sched = schedules.make("lrfind", steps=steps, optimizer=kind, lr=opt.lr,
                           preset=lesson.preset, lr_min=lr_min, lr_max=lr_max)
    f = Finder(kind, opt, follows, sched, smooth_beta, stop_factor)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        f.trace = linear.train_full_batch(opt, lesson.x, lesson.y, steps=steps,
                                          b_init=lesson.b_init, a_init=lesson.a_init,
                                          schedule=sched)
        f.result = lrfind.analyse(f.trace.lr, f.trace.loss, f.smooth_beta, f.stop_factor)
    return f


# --------------------------------------------------------------------------- columns

def _base_columns(kind: str) -> list[Column]:
    cols = [
        Column("step", "step", f"t: the update number. Row {INIT_ROW + 1} is step 0, the "
               "starting point.",
               "={step@prev}+1", per_param=False, style="int"),
        Column("epoch", "epoch", "epoch = INT((t − 1) / n) + 1, n = ROWS(x) samples per epoch.",
               "=INT(({step}-1)/ROWS(x))+1", per_param=False, style="int"),
        Column("x", "x", "This step's sample: x = INDEX(x, MOD(t − 1, n) + 1), in data order.",
               "=INDEX(x,MOD({step}-1,ROWS(x))+1)", per_param=False),
        Column("y", "y", "The sample's target, from the same data row as x.",
               "=INDEX(y,MOD({step}-1,ROWS(x))+1)", per_param=False),
        Column("b", "b", "b before this step: the previous row's new b.", None, per_param=False,
               style="num"),
        Column("a", "a", "a before this step: the previous row's new a.", None, per_param=False,
               style="num"),
        Column("pred", "pred", "prediction ŷ = b + a·x", "={b}+{a}*{x}", per_param=False),
        Column("err", "err", "error e = ŷ − y", "={pred}-{y}", per_param=False),
        Column("loss", "loss", "loss L = e² (the per-sample squared error torch's "
               "MSELoss computes for one sample)", "={err}*{err}", per_param=False),
        Column("dl_b", "dL/db", "∂L/∂b = 2e", "=2*{err}", per_param=False),
        Column("dl_a", "dL/da", "∂L/∂a = 2e·x = (∂L/∂b)·x", "={dl_b}*{x}", per_param=False),
    ]
    if kind == "sgd":
        cols += [
            Column("fd_b", "est dL/db", "Central finite difference "
                   "(L(b + h) − L(b − h)) / 2h: exact for a quadratic up to rounding, so it "
                   "checks the analytic dL/db. (The course used a forward difference, off by h.)",
                   "=(({b}+fd_h+{a}*{x}-{y})^2-({b}-fd_h+{a}*{x}-{y})^2)/(2*fd_h)",
                   per_param=False),
            Column("fd_a", "est dL/da", "Central finite difference (L(a + h) − L(a − h)) / 2h.",
                   "=(({b}+({a}+fd_h)*{x}-{y})^2-({b}+({a}-fd_h)*{x}-{y})^2)/(2*fd_h)",
                   per_param=False),
        ]
    return cols


def _finder_base_columns() -> list[Column]:
    """The finder steps full batch: a per-sample loss is too noisy for its 4× stop rule
    (on the course's data the smoothed loss passes 4× its best at step 2)."""
    e = "({b}+{a}*x-y)"
    return [
        Column("step", "step", f"t: the update number. Row {INIT_ROW + 1} is step 0, the "
               "starting point.",
               "={step@prev}+1", per_param=False, style="int"),
        Column("b", "b", "b before this step: the previous row's new b.", None, per_param=False,
               style="num"),
        Column("a", "a", "a before this step: the previous row's new a.", None, per_param=False,
               style="num"),
        Column("loss", "loss", "full-batch loss L = Σ(b + a·x − y)²/n over all the data",
               f"=SUMPRODUCT({e},{e})/ROWS(x)", per_param=False),
        Column("dl_b", "dL/db", "∂L/∂b = 2·Σ(b + a·x − y)/n", f"=2*SUMPRODUCT({e})/ROWS(x)",
               per_param=False),
        Column("dl_a", "dL/da", "∂L/∂a = 2·Σ(b + a·x − y)·x/n", f"=2*SUMPRODUCT({e},x)/ROWS(x)",
               per_param=False),
    ]


EPOCH_LR = "EPOCH_LR"  # stands for the annealing table's lr column until it is placed


def _lr_columns(sched: schedules.Schedule | None,
                anneal: schedules.Anneal | None) -> list[Column]:
    """The per-step lr (and cycled momentum) columns; under annealing, the lr of the
    step's epoch from the annealing table."""
    if anneal is not None:
        return [Column("lr", "lr", "this step's lr: its epoch's lr from the annealing table "
                       "to the right (the course's adam_ann rule, as formulas)",
                       f"=INDEX({EPOCH_LR},{{epoch}})", per_param=False)]
    return schedule_columns(sched)


def _sheet_columns(kind: str, opt: Optimizer, sched, anneal, finder: bool) -> list[Column]:
    """Every column of an optimizer sheet (or the finder's), in order."""
    base = _finder_base_columns() if finder else _base_columns(kind)
    # the lr columns follow the step counters: step (and epoch on optimizer sheets)
    after = 1 + [c.key for c in base].index("step" if finder else "epoch")
    scheduled = ("lr",) if anneal is not None else schedule_keys(sched)
    return (base[:after] + _lr_columns(sched, anneal) + base[after:]
            + optimizer_columns(schedules.adapt(opt, sched), scheduled)
            + (finder_columns() if finder else []))


# --------------------------------------------------------------------------- sheets

def _resolver(where: dict[str, int], param: str | None):
    """Tokens of a row-per-step sheet: same row, or the row above for @prev."""

    def resolve(key: str, prev: bool) -> tuple[int, int]:
        if key == "p":
            key = param
        elif key == "g" or (key == "grad" and f"grad_{param}" not in where):
            key = f"dl_{param}"  # no coupled decay: g is the raw gradient
        elif f"{key}_{param}" in where:
            key = f"{key}_{param}"
        return where[key], -1 if prev else 0

    return resolve


def _hyper_names(kind: str, opt: Optimizer, sched=None, anneal=None, finder=None) -> list[str]:
    names = schedule_inputs(opt, sched)[0]
    if anneal is not None:
        names += ["anneal_ratio", "anneal_factor"]
    if finder is not None:
        names += ["smooth_beta", "stop_factor"]
    elif kind == "sgd":
        names.append("fd_h")
    return names + ["b_init", "a_init"]


def optimizer_sheet(lesson: Lesson, kind: str, finder: Finder | None = None) -> Sheet:
    """An optimizer's sheet, or with ``finder`` the lr finder's."""
    if finder is not None:
        opt, trace, sched, anneal = finder.opt, finder.trace, finder.schedule, None
        follows, sheet_name = finder.follows, "lrfind"
    else:
        opt, trace = lesson.optimizers[kind], lesson.traces[kind]
        sched, anneal = lesson.schedules.get(kind), lesson.anneal
        follows, sheet_name = lesson.follows[kind], kind
    n, steps = len(lesson.x), len(trace.loss)
    columns = _sheet_columns(kind, opt, sched, anneal, finder is not None)

    # Place columns: per-parameter columns take two adjacent cells (b then a).
    where: dict[str, int] = {}
    placed: list[tuple[Column, str | None, int]] = []
    col = 0
    for c in columns:
        if c.per_param:
            for p in PARAMS:
                where[f"{c.key}_{p}"] = col
                placed.append((c, p, col))
                col += 1
        else:
            where[c.key] = col
            placed.append((c, None, col))
            col += 1
    n_cols = col
    s_col = n_cols + 1  # the summary table, after one blank column
    epoch_lr_area = (f"{ref(INIT_ROW, s_col + 6, True)}:"
                     f"{ref(INIT_ROW + lesson.epochs - 1, s_col + 6, True)}")

    hyper = _hyper_names(kind, opt, sched, anneal, finder)
    # Formulas read each input through a name unique in the workbook (adam_lr); the
    # torch-named sheet-scoped names (lr) stay for verify and other tools.
    unique = {h: f"{sheet_name}_{h}" for h in hyper}
    if finder:
        unique.update(finder_stop=f"{sheet_name}_finder_stop")
    rename = renamer(unique)

    def compile_(c: Column, p: str | None):
        texts = c.formula if isinstance(c.formula, list) else [c.formula, c.formula]
        return [Template(rename(t.replace(EPOCH_LR, epoch_lr_area)), _resolver(where, p))
                if t else None for t in texts]

    templates = {}
    for c, p, colno in placed:
        if c.key in ("b", "a"):
            templates[colno] = [Template(f"={{new_{c.key}@prev}}", _resolver(where, None))] * 2
        else:
            templates[colno] = compile_(c, p)
    drop_templates = {where[k]: Template(f"={{{k}@prev}}", _resolver(where, None)) for k in PARAMS}

    # Cached values come from the reference math, column by column.
    found = finder.result if finder else None
    values: dict[int, np.ndarray] = {}
    for c, p, colno in placed:
        if c.key in ("step", "epoch"):
            t = np.arange(1, steps + 1)
            values[colno] = t if c.key == "step" else (t - 1) // n + 1
        elif c.key in ("x", "y", "b", "a", "pred", "err", "loss", "lr"):
            values[colno] = getattr(trace, c.key)
        elif c.key in ("dl_b", "dl_a"):
            values[colno] = trace.grad_b if c.key == "dl_b" else trace.grad_a
        elif c.key in ("fd_b", "fd_a"):
            with np.errstate(over="ignore", invalid="ignore"):
                fd = linear.finite_difference(trace.b, trace.a, trace.x, trace.y, FD_H)
            values[colno] = fd[0] if c.key == "fd_b" else fd[1]
        elif found is not None and hasattr(found, c.key):
            values[colno] = getattr(found, c.key)
        else:
            v = trace.shown[c.key]
            values[colno] = v[:, PARAMS.index(p)] if (p and v.ndim == 2) else v

    init_cells: list = []
    for c, p, colno in placed:
        if c.init is None:
            continue
        if c.key == "new":
            init_cells.append((colno, rename(f"={p}_init"), trace.initial["new"][PARAMS.index(p)],
                               "num"))
            continue
        start = trace.initial[c.key]
        start = float(start[PARAMS.index(p)]) if p else float(start)
        if c.init.startswith("="):
            init_cells.append((colno, rename(c.init), start, c.style))
        else:
            init_cells.append((colno, None, float(c.init), c.style))
    init_cells.insert(0, (where["step"], None, 0, "int"))

    loss_col = where["loss"]
    last_row = FIRST_STEP_ROW + steps - 1
    col_area = lambda key: (f"{ref(FIRST_STEP_ROW, where[key], True)}:"
                            f"{ref(last_row, where[key], True)}")
    finder_names = {}
    if finder:
        box, finder_names = finder_summary(finder.result, steps, BOX_COL, BOX_ROW, col_area,
                                           BOX_VALUE_COL)
        summary = {}
    else:
        summary = _epoch_summary(lesson, kind, trace, s_col, where, anneal)
        box = _results_box(lesson, trace, where, last_row)
    summary_header = (("finder", "") if finder else
                      ("epoch", "mean loss", "b at end", "a at end")
                      + (("proxy √v_b+√v_a", "best proxy", "epoch lr") if anneal else ()))

    headers = [(colno, f"{c.header} {p}" if p else c.header) for c, p, colno in placed]
    headers += [(s_col + i, h) for i, h in enumerate(summary_header) if h]
    placed_style = {colno: c.style if c.style == "int" else number_style(c.style, values[colno])
                    for c, p, colno in placed}
    hyper_values = {**schedule_inputs(opt, sched)[1], "fd_h": FD_H, "b_init": lesson.b_init,
                    "a_init": lesson.a_init}
    if anneal is not None:
        hyper_values.update(anneal_ratio=anneal.ratio, anneal_factor=anneal.factor)
    if finder is not None:
        hyper_values.update(smooth_beta=finder.smooth_beta, stop_factor=finder.stop_factor)
        title = (f"lr finder ({kind}): lr grows from lr_min to lr_max over {steps} full-batch "
                 "steps from the same start; where does the loss fall fastest?")
    else:
        title = (f"{kind}: fit y = b + a·x one sample per row, {lesson.epochs} epoch"
                 f"{'s' if lesson.epochs != 1 else ''} × {n} samples = {steps} steps")
    convention = conventions(kind, opt, follows)
    sentence = PLAIN[kind]
    if sched is not None and sched.scheduled:
        convention += " " + sched.describe() + "."
        sentence += " " + sched.describe() + "."
    if anneal is not None:
        convention += (" Schedule: the course's adam_ann annealing: lr ÷ anneal_factor when the "
                       "epoch-end proxy √v_b + √v_a passes anneal_ratio × its best so far.")
        sentence += " The lr is divided by 4 whenever training turns unsteady (the course's rule)."
    if finder:
        sentence = ("The lr finder: the same start trained with an lr that grows every step; "
                    "the best lr is where the loss falls fastest, before it blows up.")
    if finder:
        status = finder_status(finder.result, BOX_COL, BOX_ROW, col_area, BOX_VALUE_COL)
    else:
        start_loss, end_loss = box[BOX_ROW + 2][3], box[BOX_ROW + 3][3]
        status = status_cell(
            col_area("loss"), trace.loss,
            (ref(BOX_ROW + 2, BOX_VALUE_COL), start_loss[2]),
            (ref(BOX_ROW + 3, BOX_VALUE_COL), end_loss[2]),
            inputs=[(ref(INPUT_ROW, i), h) for i, h in enumerate(hyper)],
            data_problem=DATA_PROBLEM, also=_far_from_best_fit(box))

    def rows():
        hint = FINDER_HINT if finder else (
            f"Change a yellow input (try {lr_input(sched)}) and every row recomputes, no "
            "macros; the status "
            "below and the charts follow. Hover a header for its math." + (
                " Preset course: each epoch restarts from the last row's inputs, dropping its "
                "update, as the course's VBA did." if lesson.drop_last_update else ""))
        named = lambda cells: [(c, rename(f) if isinstance(f, str) else f, v, st)
                               for c, f, v, st in cells]
        yield from input_rows(title, sentence, hyper, hyper_values, hint, status,
                              derived={"steps": f"=ROWS({col_area('step')})"})
        for row in sorted(box):
            yield row, named(box[row])
        yield HEADER_ROW, [(colno, None, text, "header") for colno, text in headers]
        yield INIT_ROW, list(init_cells) + named(summary.get(INIT_ROW, []))
        # Each column's formulas in stretches of one template: the first step's own, then
        # the later steps'; under the course preset b and a restart at each epoch's start.
        restarts = range(n, steps, n) if lesson.drop_last_update and not finder else ()
        columns = []
        for colno, (first, later) in templates.items():
            stretches = [(0, 1, first)]
            if colno in drop_templates:
                for start in restarts:
                    stretches += [(stretches[-1][1], start, later), (start, start + 1,
                                                                     drop_templates[colno])]
            stretches.append((stretches[-1][1], steps, later))
            columns.append(RunColumn(colno, values[colno], placed_style[colno],
                                     [s for s in stretches if s[1] > s[0]]))
        beside = {row: named(cells) for row, cells in summary.items()
                  if FIRST_STEP_ROW <= row < FIRST_STEP_ROW + steps}
        yield Run(FIRST_STEP_ROW, steps, columns, beside)

    notes = [(HEADER_ROW, colno, c.note + (f" ({p})" if p else "")) for c, p, colno in placed]
    if not finder:
        notes.append((BOX_ROW + 4, BOX_COL, "The best fit is the least-squares line through "
                      "the data, the lowest mean loss any b and a can reach: the truth the "
                      "optimizer is after (for the course's data y = 2x + 30, so b = 30, "
                      "a = 2, loss 0)."))
    notes += input_notes(hyper, convention)
    if not finder:
        notes.append((HEADER_ROW, s_col + 1, "mean loss over the epoch's steps (each step's "
                      "loss is measured before its update)"))
    if anneal is not None:
        notes.append((HEADER_ROW, s_col + 4, "the VBA's avg_grad2: √v of b plus √v of a at the "
                      "epoch's last step"))
        notes.append((HEADER_ROW, s_col + 6, "epochs 1 and 2 run at lr; then lr_e = lr_{e−1} ÷ "
                      "anneal_factor if proxy_{e−1} > anneal_ratio × best_{e−2}, else lr_{e−1}"))
    validations = input_validations(hyper, INPUT_ROW)
    for _, i, rule in validations:
        rule["error_message"] = f"{hyper[i]} must be a number in its valid range"

    names = {h: ref(INPUT_ROW, i, True) for i, h in enumerate(hyper)}
    book_names = {unique[h]: f"{sheet_name}!{names[h]}" for h in hyper}
    names["b_trace"] = col_area("new_b")
    names["a_trace"] = col_area("new_a")
    names["loss_trace"] = col_area("loss")
    if "lr" in where:
        names["lr_trace"] = col_area("lr")
    if finder:
        names["smooth_loss_trace"] = col_area("smooth")
        names.update(finder_names)
        book_names[unique["finder_stop"]] = f"{sheet_name}!{finder_names['finder_stop']}"

    positive = bool(np.all(np.isfinite(trace.loss)) and np.all(trace.loss > 0))
    step_area = area(sheet_name, FIRST_STEP_ROW, where["step"], last_row)
    # with an lr chart, three charts share about the room of two (a column less each, the
    # same gap), so the third is on a laptop's first screen too
    chart_cols = CHART_COLS - 1 if "lr" in where and not finder else CHART_COLS
    width = chart_cols * COL_PX - (CHART_COLS * COL_PX - CHART_WIDTH)
    chart_at = lambda i: (CHART_ROW, CHART_COL + i * chart_cols)
    # the step charts are scatter charts: a numeric x axis (0, 20, 40...), where a line
    # chart's category labels run together in LibreOffice
    if finder:
        charts = [finder_chart(sheet_name, *chart_at(0), FIRST_STEP_ROW, last_row, where,
                               width=2 * CHART_WIDTH, height=CHART_HEIGHT)]
    else:
        ep_first, ep_last = INIT_ROW, INIT_ROW + lesson.epochs - 1
        charts = [
            Chart(*chart_at(0), f"{kind}: loss per step", "step", "loss",
                  [Series("loss", step_area,
                          area(sheet_name, FIRST_STEP_ROW, loss_col, last_row))], log_y=positive,
                  width=width, height=CHART_HEIGHT, scatter=True),
            Chart(*chart_at(1), f"{kind}: mean loss per epoch", "epoch", "mean loss",
                  [Series("mean loss", area(sheet_name, ep_first, s_col, ep_last),
                          area(sheet_name, ep_first, s_col + 1, ep_last))], log_y=positive,
                  width=width, height=CHART_HEIGHT),
        ]
        if "lr" in where:
            charts.append(Chart(*chart_at(2), f"{kind}: learning rate per step", "step", "lr",
                                [Series("lr", step_area,
                                        area(sheet_name, FIRST_STEP_ROW, where["lr"], last_row))],
                                width=width, height=CHART_HEIGHT, scatter=True))
    widths = {i: 11 for i in range(n_cols)}
    widths[BOX_COL] = 14  # the box's labels ("after 5 epochs")
    heights = fit_inputs(hyper, widths)
    widths.update({s_col + i: 11 for i in range(len(summary_header))})
    if finder:
        widths[BOX_VALUE_COL] = max(widths.get(BOX_VALUE_COL, 11), 12)
    fit_headers(widths, headers)
    # No rows frozen: the first screen is a whole, and frozen rows 1–23 would leave a
    # laptop screen a few rows to scroll; step and epoch stay in view to the right.
    return Sheet(name=sheet_name, rows=rows, widths=widths, heights=heights, freeze=(0, 2),
                 notes=notes, validations=validations, charts=charts, names=names,
                 book_names=book_names)


#: The data sheet's first empty or non-numeric cell ("" when all are numbers).
DATA_PROBLEM = "data_problem"


def _results_box(lesson: Lesson, trace, where: dict, last_row: int) -> dict[int, list]:
    """Where training got, beside the charts: b, a and the mean loss over all the data at
    the start, at the end, and for the least-squares best fit (the truth to aim for)."""
    x, y = cells(lesson.x), cells(lesson.y)  # a sum that overflows is #NUM!, as in the sheet
    r = lambda i: BOX_ROW + 2 + i
    cell = lambda i, j: ref(r(i), BOX_COL + 1 + j)
    with np.errstate(all="ignore"):
        xm, ym = x.mean(), y.mean()
        a_best = float(np.sum((x - xm) * (y - ym)) / np.sum((x - xm) ** 2))
        b_best = float(ym - a_best * xm)
        fits = [(lesson.b_init, lesson.a_init),
                (float(trace.b_trace[-1]), float(trace.a_trace[-1])), (b_best, a_best)]
        losses = [float(np.sum((b + a * x - y) ** 2) / len(x)) for b, a in fits]
    formulas = [("=b_init", "=a_init"),
                (f"={ref(last_row, where['new_b'])}", f"={ref(last_row, where['new_a'])}"),
                (f"=AVERAGE(y)-{cell(2, 1)}*AVERAGE(x)",
                 "=SUMPRODUCT(x-AVERAGE(x),y-AVERAGE(y))/SUMPRODUCT((x-AVERAGE(x))^2)")]
    labels = ["start", f"after {lesson.epochs} epoch{'s' if lesson.epochs != 1 else ''}",
              "best fit"]
    b_style = number_style("summary", [f[0] for f in fits])
    a_style = number_style("summary", [f[1] for f in fits])
    loss_style = number_style("summary", losses)
    box = {BOX_ROW: [(BOX_COL, None, "Where training got (loss: the mean over all the data)",
                      "bold")],
           BOX_ROW + 1: [(BOX_COL + 1 + j, None, h, "header")
                         for j, h in enumerate(("b", "a", "mean loss"))]}
    for i, (label, (fb, fa), (b, a), loss) in enumerate(zip(labels, formulas, fits, losses)):
        style = "truth" if i == 2 else "bold"
        box[r(i)] = [(BOX_COL, None, label, style),
                     (BOX_COL + 1, fb, b, b_style), (BOX_COL + 2, fa, a, a_style),
                     (BOX_COL + 3, f"=SUMPRODUCT(({cell(i, 0)}+{cell(i, 1)}*x-y)^2)/ROWS(x)",
                      loss, loss_style)]
    return box


#: "far from the best fit": more than this share of the way from the start's loss down to
#: the best fit's is still to go
FAR_SHARE = 0.01


def _far_from_best_fit(box: dict) -> tuple[str, str]:
    """The status's clause after "training fine" when the loss fell but is still far above
    the best fit's (the default sgd ends at b = 1.3 where the best fit has b = 30), as (a
    text formula, the text it shows now): a learner should not read "fine" as "done"."""
    start, end, best = (ref(BOX_ROW + 2 + i, BOX_VALUE_COL) for i in range(3))
    s, e, b = (box[BOX_ROW + 2 + i][3][2] for i in range(3))
    text = (f"; still far from the best fit (row {BOX_ROW + 5}): more epochs, or another lr")
    # no best fit when every x is the same (its slope is #DIV/0!): then nothing to say, and
    # the IF must not read the error (AND would: it does not stop at its first FALSE)
    formula = f'IF(ISNUMBER({best}),IF({end}-{best}>{FAR_SHARE}*({start}-{best}),"{text}",""),"")'
    return formula, text if np.isfinite(b) and e - b > FAR_SHARE * (s - b) else ""


def _epoch_summary(lesson: Lesson, kind: str, trace, s_col: int, where: dict,
                   anneal) -> dict[int, list]:
    """Epoch e's summary sits on row INIT_ROW + e: mean loss, b and a at its end, and
    under annealing the proxy, its best and the epoch's lr."""
    n = len(lesson.x)
    epoch_loss = trace.loss.reshape(lesson.epochs, n).mean(axis=1)
    ends = np.arange(1, lesson.epochs + 1) * n - 1
    loss_style = number_style("summary", epoch_loss)
    b_style = number_style("summary", trace.b_trace[ends])
    a_style = number_style("summary", trace.a_trace[ends])
    out = {}
    for e in range(lesson.epochs):
        first, last = FIRST_STEP_ROW + e * n, FIRST_STEP_ROW + (e + 1) * n - 1
        row = INIT_ROW + e
        cells = [
            (s_col, None, e + 1, "int"),
            (s_col + 1, f"=AVERAGE({ref(first, where['loss'])}:{ref(last, where['loss'])})",
             float(epoch_loss[e]), loss_style),
            (s_col + 2, f"={ref(last, where['new_b'])}", float(trace.b_trace[(e + 1) * n - 1]),
             b_style),
            (s_col + 3, f"={ref(last, where['new_a'])}", float(trace.a_trace[(e + 1) * n - 1]),
             a_style),
        ]
        if anneal is not None:
            v = schedules.Anneal.MOMENT[kind]
            proxy = ref(row, s_col + 4)
            cells.append((s_col + 4, f"=SQRT({ref(last, where[v + '_b'])})+SQRT("
                          f"{ref(last, where[v + '_a'])})", float(trace.epoch_proxy[e]), "summary"))
            cells.append((s_col + 5, f"={proxy}" if e == 0 else
                          f"=MIN({ref(row - 1, s_col + 5)},{proxy})", float(trace.epoch_best[e]),
                          "summary"))
            if e == 0:
                lr_f = "=lr"
            elif e == 1:
                lr_f = f"={ref(row - 1, s_col + 6)}"
            else:
                lr_f = (f"={ref(row - 1, s_col + 6)}/IF({ref(row - 1, s_col + 4)}>anneal_ratio*"
                        f"{ref(row - 2, s_col + 5)},anneal_factor,1)")
            cells.append((s_col + 6, lr_f, float(trace.lr[e * n]), "summary"))
        out[row] = cells
    return out



UDF_HEADER = ["step", "epoch", "x", "y", "b", "a", "pred", "loss", "dL/db", "dL/da",
              "new b", "new a"]  # the columns SHEETDL_TRAIN_LINEAR returns


def udf_sheet(lesson: Lesson, kind: str) -> Sheet:
    """The whole trajectory as one array call to the add-in, with cached values, so a
    1,000,000-row lesson opens at once and recomputes in the add-in's time."""
    opt = lesson.optimizers[kind]
    trace = lesson.traces[kind]
    n, steps = len(lesson.x), len(trace.loss)
    hyper = [h for h in opt.hyperparameters] + ["b_init", "a_init"]
    values = {**opt.hyper(), "b_init": lesson.b_init, "a_init": lesson.a_init}
    arg = lambda h: h if h in hyper else '""'
    call = (f'={addin_function("train_linear", lesson.udf)}(x,y,"{kind}",lr,{lesson.epochs},'
            f'"{lesson.preset}",b_init,a_init,'
            f'{arg("momentum")},{arg("beta1")},{arg("beta2")},{arg("eps")},{arg("weight_decay")})')
    top = UDF_TOP
    last = top + steps
    cols = len(UDF_HEADER)
    t = np.arange(1, steps + 1)
    table = np.column_stack([t, (t - 1) // n + 1, trace.x, trace.y, trace.b, trace.a, trace.pred,
                             trace.loss, trace.grad_b, trace.grad_a, trace.b_trace, trace.a_trace])
    s_col = cols + 1
    epoch_loss = trace.loss.reshape(lesson.epochs, n).mean(axis=1)

    def rows():
        yield from input_rows(
            f"{kind}: the whole trajectory is one call to the sheetdl add-in ({steps:,} steps)",
            conventions(kind, opt, lesson.follows[kind]), hyper, values,
            f"Rows {top + 1}.. are one array formula, {call}. It needs the sheetdl add-in "
            f"(README: Excel add-in, --udf {lesson.udf}); the values shown are cached, computed "
            "by sheetdl's reference math.")
        header = [(0, ArrayFormula(call, last, cols - 1), UDF_HEADER[0], "header")]
        header += [(j, None, h, "header") for j, h in enumerate(UDF_HEADER) if j]
        header += [(s_col + i, None, h, "header")
                   for i, h in enumerate(("epoch", "mean loss", "b at end", "a at end"))]
        yield top, header
        beside = {}
        for i in range(min(lesson.epochs, steps)):
            first, end = top + 1 + i * n, top + (i + 1) * n
            beside[top + 1 + i] = [
                (s_col, None, i + 1, "int"),
                (s_col + 1, f"=AVERAGE({ref(first, 7)}:{ref(end, 7)})", float(epoch_loss[i]),
                 "summary"),
                (s_col + 2, f"={ref(end, 10)}", float(trace.b_trace[(i + 1) * n - 1]),
                 "summary"),
                (s_col + 3, f"={ref(end, 11)}", float(trace.a_trace[(i + 1) * n - 1]),
                 "summary")]
        # the array call's cached values: plain numbers, a column at a time
        yield Run(top + 1, steps, [RunColumn(j, table[:, j].astype(int) if j < 2 else table[:, j],
                                             "int" if j < 2 else "general")
                                   for j in range(cols)], beside)

    names = {h: ref(INPUT_ROW, i, True) for i, h in enumerate(hyper)}
    names["b_trace"] = f"{ref(top + 1, 10, True)}:{ref(last, 10, True)}"
    names["a_trace"] = f"{ref(top + 1, 11, True)}:{ref(last, 11, True)}"
    names["loss_trace"] = f"{ref(top + 1, 7, True)}:{ref(last, 7, True)}"
    validations = input_validations(hyper, INPUT_ROW)
    widths = {i: max(11, min(26, len(h) + 2)) for i, h in enumerate(hyper)}
    return Sheet(name=kind, rows=rows, widths=widths, freeze=(top + 1, 0),
                 validations=validations, names=names,
                 notes=[(LABEL_ROW, i, f"{h}: {HYPER_HELP[h]}") for i, h in enumerate(hyper)])


def data_sheet(lesson: Lesson) -> Sheet:
    """x and y as yellow inputs, and a check column whose last cell (``data_problem``)
    names the first empty or non-numeric cell, for the status cells."""
    n = len(lesson.x)
    rows = [(0, [(0, None, "x", "header"), (1, None, "y", "header"),
                 (2, None, "first problem", "header"),
                 (4, None, f"Data: {lesson.data_label}. The yellow cells are the named "
                  "ranges x and y: edit a value and every optimizer sheet retrains.", "bold")]),
            (1, [(4, None, f"To add or remove points, rebuild: sheetdl build graddesc --data "
                  f"points.csv (two columns x,y). The sheets read rows 2–{n + 1} only.",
                  "subtitle")]),
            (2, [(4, None, "The check column names the first empty or non-numeric cell; "
                  "every sheet's status then points here.", "subtitle")])]
    # ROW() names the cell in the text, so one formula shifted down the column (a shared
    # formula) serves every row
    where = {"x": 0, "y": 1, "check": 2}
    resolve = lambda key, prev: (where[key], -1 if prev else 0)
    here = ('IF(ISNUMBER({x}),IF(ISNUMBER({y}),"","data!B"&ROW({y})),'
            '"data!A"&ROW({x}))')
    check = [Template("=" + here, resolve),
             Template('=IF({check@prev}<>"",{check@prev},' + here + ")", resolve)]
    header, *notes = rows  # the notes right of the data share its first rows
    run = Run(1, n, [RunColumn(0, np.asarray(lesson.x, float), "input"),
                     RunColumn(1, np.asarray(lesson.y, float), "input"),
                     RunColumn(2, [""] * n, None, [(0, 1, check[0]), (1, n, check[1])])],
              beside={r: cells for r, cells in notes if r <= n})
    below = [(r, cells) for r, cells in notes if r > n]
    number = {"validate": "decimal", "criteria": "between", "minimum": -1e300, "maximum": 1e300,
              "input_title": "data", "input_message": "a number; every sheet retrains",
              "error_message": "x and y must be numbers"}
    return Sheet("data", lambda: iter([header, run, *below]), widths={0: 10, 1: 10, 2: 13},
                 freeze=(1, 0), validations=[(1, 0, n, 1, number)],
                 notes=[(0, 2, "Empty while every x and y is a number; else the first cell "
                         "that is not. A blank is not read as 0 here.")])


def compare_sheet(lesson: Lesson) -> Sheet:
    kinds = list(lesson.optimizers)
    n = len(lesson.x)
    cells = [(0, [(0, None, "Mean loss per epoch, every optimizer (values are formulas "
                   "pointing at each sheet's epoch summary).", "title")]),
             (2, [(0, None, "epoch", "header")] + [(i + 1, None, k, "header")
                                                    for i, k in enumerate(kinds)])]
    summary_col = {k: summary_column(lesson, k) for k in kinds}
    first = UDF_TOP + 1 if lesson.udf else INIT_ROW  # the epoch summary's first row
    losses = {k: lesson.traces[k].loss.reshape(lesson.epochs, n).mean(axis=1) for k in kinds}
    loss_style = number_style("summary", list(losses.values()))
    for e in range(lesson.epochs):
        row = [(0, None, e + 1, "int")]
        for i, k in enumerate(kinds):
            row.append((i + 1, f"={k}!{ref(first + e, summary_col[k] + 1, True)}",
                        float(losses[k][e]), loss_style))
        cells.append((3 + e, row))
    end = 3 + lesson.epochs + 1
    last = first + lesson.epochs - 1
    for r, label, j, attr in ((end, "b at end", 2, "b_trace"), (end + 1, "a at end", 3, "a_trace")):
        ends = [float(getattr(lesson.traces[k], attr)[-1]) for k in kinds]
        cells.append((r, [(0, None, label, "bold")] + [
            (i + 1, f"={k}!{ref(last, summary_col[k] + j, True)}", v,
             number_style("summary", ends)) for i, (k, v) in enumerate(zip(kinds, ends))]))
    positive = all(np.all(np.isfinite(t.loss)) and np.all(t.loss > 0)
                   for t in lesson.traces.values())
    chart = Chart(2, len(kinds) + 2, "Mean loss per epoch", "epoch", "mean loss",
                  [Series(k, area("compare", 3, 0, 2 + lesson.epochs),
                          area("compare", 3, i + 1, 2 + lesson.epochs))
                   for i, k in enumerate(kinds)], log_y=positive, width=640, height=360)
    return Sheet("compare", static_rows(cells), widths={i: 12 for i in range(len(kinds) + 1)},
                 charts=[chart])


def summary_column(lesson: Lesson, kind: str) -> int:
    """The column where ``kind``'s sheet puts its epoch summary (after one blank)."""
    if lesson.udf:
        return len(UDF_HEADER) + 1
    columns = _sheet_columns(kind, lesson.optimizers[kind], lesson.schedules.get(kind),
                             lesson.anneal, finder=False)
    return sum(2 if c.per_param else 1 for c in columns) + 1


def _compares(lesson: Lesson) -> bool:
    """A compare sheet puts optimizers side by side: only with two or more."""
    return len(lesson.optimizers) > 1


def about_sheet(lesson: Lesson) -> Sheet:
    first = next(iter(lesson.optimizers), None)
    if first is None:  # the lr finder alone
        title = "sheetdl · the learning-rate finder, one spreadsheet row per step"
        start = ["Open the lrfind sheet: the chart shows the loss against a learning rate "
                 "that grows every step; the box beside it says where it stops and which lr "
                 "it suggests.",
                 "Change a yellow cell on row 4 (lr_min or lr_max, say) and every row "
                 "recomputes; the status on row 6 says whether the loss blew up inside the "
                 "range, as it must for the suggestion to mean anything.",
                 "Watch the chart: the suggested lr sits where the loss falls fastest, before "
                 "it blows up."]
    else:
        title = "sheetdl · gradient descent, one spreadsheet row per step"
        start = [f"Open the {first} sheet: row 2 says what {first} does, the box says where "
                 "training got next to the best possible fit, and the charts show the loss "
                 "falling step by step.",
                 f"Change the yellow {lr_input(lesson.schedules.get(first))} on row 4 (try "
                 "10× smaller or larger): every row "
                 "recomputes and the status on row 6 says whether training still works.",
                 "Watch the loss chart and the compare sheet: each optimizer sheet trains the "
                 "same data from the same start." if _compares(lesson) else
                 "Watch the loss chart; build with several optimizers (--optimizer sgd,adam) "
                 "to see them side by side on a compare sheet."]
    details = [
        (f"Model: pred = b + a·x, loss = (pred − y)², one sample per step (batch size 1), "
         f"{lesson.epochs} epochs over {lesson.data_label}, in data order." if lesson.optimizers
         else f"Model: pred = b + a·x on {lesson.data_label}; the finder's loss is the mean of "
         "(pred − y)² over all the data, one full-batch step per row."),
        f"Preset: {lesson.preset}. Each sheet's conventions (and where other frameworks differ) "
        "are the note on its row 2.",
        "Yellow cells are inputs: change one and the sheet retrains in Excel, LibreOffice or "
        "Google Sheets. No macros, no Solver, no volatile functions. steps is derived from the "
        "rows, not an input.",
        ("Each row's b and a are the previous row's new b and new a, across epoch boundaries "
         "too." if lesson.optimizers else "Each row's b and a are the previous row's new b "
         "and new a."),
        "Every formula cell also stores its value, computed by sheetdl's NumPy reference math; "
        "`sheetdl verify FILE` recalculates all formulas and checks them against it.",
        "Sheets: " + "; ".join(
            ["data (x, y)"] + ([", ".join(lesson.optimizers)] if lesson.optimizers else [])
            + (["compare (all optimizers' mean loss per epoch)"] if _compares(lesson) else [])
            + (["lrfind (the learning-rate finder: lr grows each full-batch step from the same "
                "start; where it stops and the suggested lr are formulas beside the chart)"]
               if lesson.finder else [])) + ".",
        "Defined names: x, y (workbook); on each sheet its inputs under torch's names (lr, "
        "beta1, ..., for tools such as sheetdl verify) and b_trace, a_trace, loss_trace; the "
        "formulas themselves use the workbook-wide names sheet_input (adam_lr), so a copy in "
        "Google Sheets, with one namespace of names, computes the same.",
    ]
    if lesson.udf:
        details.insert(0, addin_note("train_linear", lesson.udf))
    if lesson.schedules or lesson.anneal:
        details.append("Each optimizer sheet's lr column is a schedule computed from the step "
                       "number and named inputs (row 2 says which); lr_trace names it.")
    return about_page(title, start, details)


def build(lesson: Lesson) -> Book:
    sheets = [about_sheet(lesson), data_sheet(lesson)]
    sheet_of = udf_sheet if lesson.udf else optimizer_sheet
    sheets += [sheet_of(lesson, k) for k in lesson.optimizers]
    if lesson.finder is not None:
        sheets.append(optimizer_sheet(lesson, lesson.finder.kind, lesson.finder))
    if _compares(lesson):
        sheets.append(compare_sheet(lesson))
    n = len(lesson.x)
    meta = {
        "lesson": "graddesc", "format": 1, "preset": lesson.preset, "epochs": lesson.epochs,
        "samples": n, "drop_last_update": lesson.drop_last_update, "udf": lesson.udf or False,
        "sheets": {k: {"optimizer": k, "options": opt.options()}
                   for k, opt in lesson.optimizers.items()},
    }
    for k, sched in lesson.schedules.items():
        meta["sheets"][k]["schedule"] = sched.options()
    if lesson.anneal is not None:
        for k in lesson.optimizers:
            meta["sheets"][k]["schedule"] = {"kind": "anneal"}
    if lesson.finder is not None:
        f = lesson.finder
        meta["lrfind"] = {"sheet": "lrfind", "optimizer": f.kind, "options": f.opt.options(),
                          "schedule": f.schedule.options()}
    diverged = {}
    for k, t in lesson.traces.items():
        bad = ~(np.isfinite(t.loss) & np.isfinite(t.b_trace) & np.isfinite(t.a_trace))
        if bad.any():
            diverged[k] = int(np.argmax(bad)) + 1
    if diverged:
        meta["diverged"] = diverged
    return Book(sheets=sheets, names={"x": area("data", 1, 0, n), "y": area("data", 1, 1, n),
                                      DATA_PROBLEM: f"data!$C${n + 1}"},
                title=f"sheetdl graddesc ({lesson.preset})", meta=meta)
