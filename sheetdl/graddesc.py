"""Layout of the graddesc lesson: y = b + a·x fitted one sample per row.

Data flows one way: options → ``linear.train`` (the reference math) → this
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

from . import linear, lrfind, presets, schedules
from .book import ArrayFormula, Book, Chart, Series, Sheet, area, ref, static_rows
from .data import EXCEL_MAX_ROWS
from .formulas import (HYPER_HELP, Column, Template, conventions, finder_chart,
                       finder_columns, finder_summary, input_rows,
                       input_validations, optimizer_columns, schedule_columns, schedule_inputs,
                       schedule_keys,
                       status_cell)
from .optim import Optimizer

DEFAULT_OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw")
ALL_OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "adagrad",
                  "adamax", "nadam")
DEFAULT_PRESET = "torch"

#: Learning rates that train visibly in 5 epochs on the course's data (x up to 99),
#: measured per optimizer; framework defaults such as torch SGD's 1e-3 diverge there.
LESSON_LR = {"sgd": 1e-4, "momentum": 1e-5, "nesterov": 1e-5, "rmsprop": 0.1, "adam": 0.3,
             "adamw": 0.3, "adagrad": 1.0, "adamax": 0.3, "nadam": 0.3}
#: The course sheet's own learning rates (adam after the lr was set to 0.1 by hand).
COURSE_LR = {"sgd": 1e-4, "momentum": 1e-4, "rmsprop": 0.02, "adam": 0.1}

HEADER_ROW, INIT_ROW, FIRST_STEP_ROW = 5, 6, 7
LABEL_ROW, INPUT_ROW = 2, 3
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
    udf: bool = False
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
            lesson.traces[kind] = linear.train(opt, lesson.x, lesson.y, epochs=epochs,
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
        Column("step", "step", "t: the update number. Row 7 is step 0, the starting point.",
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
               "MSELoss computes for one sample)", "={err}^2", per_param=False),
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
        Column("step", "step", "t: the update number. Row 7 is step 0, the starting point.",
               "={step@prev}+1", per_param=False, style="int"),
        Column("b", "b", "b before this step: the previous row's new b.", None, per_param=False,
               style="num"),
        Column("a", "a", "a before this step: the previous row's new a.", None, per_param=False,
               style="num"),
        Column("loss", "loss", "full-batch loss L = Σ(b + a·x − y)²/n over all the data",
               f"=SUMPRODUCT({e}^2)/ROWS(x)", per_param=False),
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
    epoch_lr_area = f"{ref(INIT_ROW, s_col + 6, True)}:{ref(INIT_ROW + lesson.epochs - 1, s_col + 6, True)}"

    def compile_(c: Column, p: str | None):
        texts = c.formula if isinstance(c.formula, list) else [c.formula, c.formula]
        return [Template(t.replace(EPOCH_LR, epoch_lr_area), _resolver(where, p)) if t else None
                for t in texts]

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
            init_cells.append((colno, f"={p}_init", trace.initial["new"][PARAMS.index(p)], "num"))
            continue
        start = trace.initial[c.key]
        start = float(start[PARAMS.index(p)]) if p else float(start)
        if c.init.startswith("="):
            init_cells.append((colno, c.init, start, c.style))
        else:
            init_cells.append((colno, None, float(c.init), c.style))
    init_cells.insert(0, (where["step"], None, 0, "int"))

    loss_col = where["loss"]
    last_row = FIRST_STEP_ROW + steps - 1
    col_area = lambda key: f"{ref(FIRST_STEP_ROW, where[key], True)}:{ref(last_row, where[key], True)}"
    finder_names = {}
    if finder:
        summary, finder_names = finder_summary(finder.result, steps, s_col, INIT_ROW, col_area)
    else:
        summary = _epoch_summary(lesson, kind, trace, s_col, where, anneal)
    summary_header = (("finder", "") if finder else
                      ("epoch", "mean loss", "b at end", "a at end")
                      + (("proxy √v_b+√v_a", "best proxy", "epoch lr") if anneal else ()))

    placed_style = {colno: c.style for c, p, colno in placed}
    hyper = _hyper_names(kind, opt, sched, anneal, finder)
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
    if sched is not None and sched.scheduled:
        convention += " " + sched.describe() + "."
    if anneal is not None:
        convention += (" Schedule: the course's adam_ann annealing: lr ÷ anneal_factor when the "
                       "epoch-end proxy √v_b + √v_a passes anneal_ratio × its best so far.")
    status = None if finder else (s_col, *status_cell("loss_trace", trace.loss))

    def rows():
        hint = ("Change a yellow input: every row below recomputes (no macros). "
                "Hover a header for its math." + (
                    " Preset course: each epoch restarts from the last row's inputs, "
                    "dropping its update, as the course's VBA did."
                    if lesson.drop_last_update and not finder else ""))
        yield from input_rows(title, convention, hyper, hyper_values, hint, status)
        header = [(colno, None, (f"{c.header} {p}" if p else c.header), "header")
                  for c, p, colno in placed]
        header += [(s_col + i, None, h, "header") for i, h in enumerate(summary_header) if h]
        yield HEADER_ROW, header
        yield INIT_ROW, list(init_cells) + summary.get(INIT_ROW, [])
        for i in range(steps):
            row = FIRST_STEP_ROW + i
            later = 0 if i == 0 else 1
            epoch_start = i > 0 and i % n == 0
            cells = []
            for colno, tmpl in templates.items():
                if lesson.drop_last_update and epoch_start and colno in drop_templates \
                        and not finder:
                    formula = drop_templates[colno].render(row)
                else:
                    formula = tmpl[later].render(row)
                v = values[colno][i]
                cells.append((colno, formula, v.item() if hasattr(v, "item") else v,
                               placed_style[colno]))
            yield row, cells + summary.get(row, [])

    notes = [(HEADER_ROW, colno, c.note + (f" ({p})" if p else "")) for c, p, colno in placed]
    notes += [(LABEL_ROW, i, f"{h}: {HYPER_HELP[h]}") for i, h in enumerate(hyper)]
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
    names["b_trace"] = col_area("new_b")
    names["a_trace"] = col_area("new_a")
    names["loss_trace"] = col_area("loss")
    if "lr" in where:
        names["lr_trace"] = col_area("lr")
    if finder:
        names["smooth_loss_trace"] = col_area("smooth")
        names.update(finder_names)

    positive = bool(np.all(np.isfinite(trace.loss)) and np.all(trace.loss > 0))
    chart_col = s_col + len(summary_header) + 1
    step_area = area(sheet_name, FIRST_STEP_ROW, where["step"], last_row)
    if finder:
        charts = [finder_chart(sheet_name, 1, chart_col, FIRST_STEP_ROW, last_row, where)]
    else:
        ep_first, ep_last = INIT_ROW, INIT_ROW + lesson.epochs - 1
        charts = [
            Chart(1, chart_col, f"{kind}: mean loss per epoch", "epoch", "mean loss",
                  [Series("mean loss", area(sheet_name, ep_first, s_col, ep_last),
                          area(sheet_name, ep_first, s_col + 1, ep_last))], log_y=positive),
            Chart(17, chart_col, f"{kind}: loss per step", "step", "loss",
                  [Series("loss", step_area,
                          area(sheet_name, FIRST_STEP_ROW, loss_col, last_row))], log_y=positive),
        ]
        if "lr" in where:
            charts.append(Chart(33, chart_col, f"{kind}: learning rate per step", "step", "lr",
                                [Series("lr", step_area,
                                        area(sheet_name, FIRST_STEP_ROW, where["lr"], last_row))]))
    widths = {i: 11 for i in range(n_cols)}
    widths.update({i: max(11, min(26, len(h) + 2)) for i, h in enumerate(hyper)})
    widths.update({s_col + i: 11 for i in range(len(summary_header))})
    if finder:
        widths[s_col] = 30
    return Sheet(name=sheet_name, rows=rows, widths=widths, freeze=(FIRST_STEP_ROW - 1, 2),
                 notes=notes, validations=validations, charts=charts, names=names)


def _epoch_summary(lesson: Lesson, kind: str, trace, s_col: int, where: dict,
                   anneal) -> dict[int, list]:
    """Epoch e's summary sits on row INIT_ROW + e: mean loss, b and a at its end, and
    under annealing the proxy, its best and the epoch's lr."""
    n = len(lesson.x)
    epoch_loss = trace.loss.reshape(lesson.epochs, n).mean(axis=1)
    out = {}
    for e in range(lesson.epochs):
        first, last = FIRST_STEP_ROW + e * n, FIRST_STEP_ROW + (e + 1) * n - 1
        row = INIT_ROW + e
        cells = [
            (s_col, None, e + 1, "int"),
            (s_col + 1, f"=AVERAGE({ref(first, where['loss'])}:{ref(last, where['loss'])})",
             float(epoch_loss[e]), "summary"),
            (s_col + 2, f"={ref(last, where['new_b'])}", float(trace.b_trace[(e + 1) * n - 1]),
             "summary"),
            (s_col + 3, f"={ref(last, where['new_a'])}", float(trace.a_trace[(e + 1) * n - 1]),
             "summary"),
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



UDF_FUNCTION = "SHEETDL_TRAIN_LINEAR"
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
    call = (f'={UDF_FUNCTION}(x,y,"{kind}",lr,{lesson.epochs},"{lesson.preset}",b_init,a_init,'
            f'{arg("momentum")},{arg("beta1")},{arg("beta2")},{arg("eps")},{arg("weight_decay")})')
    top = HEADER_ROW
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
            "(README: Excel add-in); the values shown are cached, computed by sheetdl's "
            "reference math.")
        header = [(0, ArrayFormula(call, last, cols - 1), UDF_HEADER[0], "header")]
        header += [(j, None, h, "header") for j, h in enumerate(UDF_HEADER) if j]
        header += [(s_col + i, None, h, "header")
                   for i, h in enumerate(("epoch", "mean loss", "b at end", "a at end"))]
        yield top, header
        for i in range(steps):
            row = top + 1 + i
            cells = [(j, None, float(table[i, j]), "int" if j < 2 else "general")
                     for j in range(cols)]
            if i < lesson.epochs:
                first, end = top + 1 + i * n, top + (i + 1) * n
                cells += [(s_col, None, i + 1, "int"),
                          (s_col + 1, f"=AVERAGE({ref(first, 7)}:{ref(end, 7)})",
                           float(epoch_loss[i]), "summary"),
                          (s_col + 2, f"={ref(end, 10)}", float(trace.b_trace[(i + 1) * n - 1]),
                           "summary"),
                          (s_col + 3, f"={ref(end, 11)}", float(trace.a_trace[(i + 1) * n - 1]),
                           "summary")]
            yield row, cells

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
    rows = [(0, [(0, None, "x", "header"), (1, None, "y", "header"),
                 (3, None, f"Data: {lesson.data_label}. Named ranges x and y; "
                  "edit a value and every optimizer sheet retrains.", "subtitle")])]
    rows += [(i + 1, [(0, None, float(xv), None), (1, None, float(yv), None)])
             for i, (xv, yv) in enumerate(zip(lesson.x, lesson.y))]
    return Sheet("data", static_rows(rows), widths={0: 10, 1: 10}, freeze=(1, 0))


def compare_sheet(lesson: Lesson) -> Sheet:
    kinds = list(lesson.optimizers)
    n = len(lesson.x)
    cells = [(0, [(0, None, "Mean loss per epoch, every optimizer (values are formulas "
                   "pointing at each sheet's epoch summary).", "title")]),
             (2, [(0, None, "epoch", "header")] + [(i + 1, None, k, "header")
                                                    for i, k in enumerate(kinds)])]
    summary_col = {k: summary_column(lesson, k) for k in kinds}
    for e in range(lesson.epochs):
        row = [(0, None, e + 1, "int")]
        for i, k in enumerate(kinds):
            loss = float(lesson.traces[k].loss.reshape(lesson.epochs, n)[e].mean())
            row.append((i + 1, f"={k}!{ref(INIT_ROW + e, summary_col[k] + 1, True)}", loss,
                        "summary"))
        cells.append((3 + e, row))
    end = 3 + lesson.epochs + 1
    cells.append((end, [(0, None, "b at end", "bold")] + [
        (i + 1, f"={k}!{ref(INIT_ROW + lesson.epochs - 1, summary_col[k] + 2, True)}",
         float(lesson.traces[k].b_trace[-1]), "summary") for i, k in enumerate(kinds)]))
    cells.append((end + 1, [(0, None, "a at end", "bold")] + [
        (i + 1, f"={k}!{ref(INIT_ROW + lesson.epochs - 1, summary_col[k] + 3, True)}",
         float(lesson.traces[k].a_trace[-1]), "summary") for i, k in enumerate(kinds)]))
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


def about_sheet(lesson: Lesson) -> Sheet:
    lines = [
        ("sheetdl · gradient descent, one spreadsheet row per step", "title"),
        (f"Model: pred = b + a·x, loss = (pred − y)², one sample per step (batch size 1), "
         f"{lesson.epochs} epochs over {lesson.data_label}, in data order." if lesson.optimizers
         else f"Model: pred = b + a·x on {lesson.data_label}; the finder's loss is the mean of "
         "(pred − y)² over all the data, one full-batch step per row.", None),
        (f"Preset: {lesson.preset}. Every optimizer sheet states the conventions it follows "
         "in row 2 and where other frameworks differ.", None),
        ("Yellow cells are inputs with names (lr, beta1, ...): change one and the sheet retrains "
         "in Excel, LibreOffice or Google Sheets. No macros, no Solver, no volatile functions.", None),
        ("Each row's b and a are the previous row's new b and new a, across epoch boundaries too.",
         None),
        ("Every formula cell also stores its value, computed by sheetdl's NumPy reference math; "
         "`sheetdl verify FILE` recalculates all formulas and checks them against it.", None),
        ("Sheets: " + "; ".join(
            ["data (x, y)"] + ([", ".join(lesson.optimizers),
                                "compare (all optimizers' mean loss per epoch)"]
                               if lesson.optimizers else [])
            + (["lrfind (the learning-rate finder: lr grows each full-batch step from the same "
                "start; where it stops and the suggested lr are formulas beside the table)"]
               if lesson.finder else [])) + ".", None),
        ("Defined names: x, y (workbook); on each optimizer sheet its hyperparameters under "
         "torch's names, b_init, a_init, and b_trace, a_trace, loss_trace (one cell per step).",
         None),
    ]
    if lesson.schedules or lesson.anneal:
        lines.append(("Each optimizer sheet's lr column is a schedule computed from the step "
                      "number and named inputs (row 2 says which); lr_trace names it.", None))
    return Sheet("about", static_rows([(i, [(0, None, t, s or "text")])
                                       for i, (t, s) in enumerate(lines)]), widths={0: 120})


def build(lesson: Lesson) -> Book:
    sheets = [about_sheet(lesson), data_sheet(lesson)]
    sheet_of = udf_sheet if lesson.udf else optimizer_sheet
    sheets += [sheet_of(lesson, k) for k in lesson.optimizers]
    if lesson.finder is not None:
        sheets.append(optimizer_sheet(lesson, lesson.finder.kind, lesson.finder))
    if lesson.optimizers:
        sheets.append(compare_sheet(lesson))
    n = len(lesson.x)
    meta = {
        "lesson": "graddesc", "format": 1, "preset": lesson.preset, "epochs": lesson.epochs,
        "samples": n, "drop_last_update": lesson.drop_last_update, "udf": lesson.udf,
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
    return Book(sheets=sheets, names={"x": area("data", 1, 0, n), "y": area("data", 1, 1, n)},
                title=f"sheetdl graddesc ({lesson.preset})", meta=meta)
