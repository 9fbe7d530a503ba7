"""Spreadsheet formulas of the optimizers, shared by every lesson.

``optimizer_columns(opt)`` lists the state and update columns of one
optimizer, each a formula template matching ``opt.update``'s ``shown``
values. In a template ``{key}`` is this step's cell of quantity ``key`` (for
per-parameter quantities, the same parameter element), ``{key@prev}`` the
previous step's, ``{p}`` the parameter, ``{g}`` the raw gradient, ``{grad}``
the gradient after coupled weight decay, ``{step}`` the step number. A lesson
places quantities on its sheet and gives ``Template`` a resolver from
(key, previous?) to a column and a row offset; rendering a row is then a join.
"""
from __future__ import annotations

import re
from typing import Callable

from ..math import lrfind, optim, schedules
from .workbook import FORBIDDEN, Chart, Series, area, col_name, ref
from ..math.optim import Column, Optimizer

# Each named input's explanation, shown as its cell's note and validation message: the
# optimizers' hyperparameters are declared beside their rules (``optim.HYPERPARAMETERS``).
HYPER_HELP = {
    **{name: h.help for name, h in optim.HYPERPARAMETERS.items()},
    "b_init": "starting intercept b",
    "a_init": "starting slope a",
    "fd_h": "h of the central finite differences",
    "dropout": "p of dropout: the share of activations the masks zero; kept ones are scaled "
               "by 1/(1 − p), as torch's inverted dropout",
    "lr_layer1": "layer 1's own learning rate (discriminative rates: fastai's slice(lo, hi) "
                 "over the layer groups; lr is layer 2's)",
    "freeze_steps": "the last step layer 1 is frozen: the optimizer skips it (no update, no "
                    "state, as torch with requires_grad off) until the step after",
    "bn_momentum": "batch norm's momentum m: running statistics ← (1 − m)·running + m·the "
                   "batch's (torch's 0.1)",
    "bn_eps": "batch norm's ε, added to σ² under the square root (torch's 1e-5)",
    "smooth_beta": "β of the lr finder's smoothed loss (fastai's 0.98)",
    "stop_factor": "the lr finder stops once the smoothed loss passes this × its minimum",
    **schedules.HELP,
}

VALIDATION = {
    **{name: h.validation for name, h in optim.HYPERPARAMETERS.items()},
    "fd_h": {"validate": "decimal", "criteria": ">", "value": 0},
    "dropout": {"validate": "decimal", "criteria": "between", "minimum": 0,
                "maximum": 0.999999999999},
    "lr_layer1": {"validate": "decimal", "criteria": ">", "value": 0},
    "freeze_steps": {"validate": "integer", "criteria": ">=", "value": 0},
    "bn_momentum": {"validate": "decimal", "criteria": "between", "minimum": 0, "maximum": 1},
    "bn_eps": {"validate": "decimal", "criteria": ">", "value": 0},
    "smooth_beta": {"validate": "decimal", "criteria": "between", "minimum": 0,
                    "maximum": 0.999999999999},
    "stop_factor": {"validate": "decimal", "criteria": ">", "value": 1},
    "steps": {"validate": "integer", "criteria": ">=", "value": 2},
    **schedules.VALIDATION,
}


def optimizer_columns(opt: Optimizer, scheduled=()) -> list[Column]:
    """The state and update columns of one optimizer, matching ``opt.update``'s ``shown``.

    ``scheduled`` names hyperparameters a schedule sets per step (``lr``, ``beta1``,
    ``momentum``): their bare names become tokens ``{lr}``..., so each step reads its
    own row's value instead of the named input.
    """
    cols = opt.columns()
    if scheduled:
        bare = re.compile(r"(?<![{\w])(" + "|".join(map(re.escape, scheduled)) + r")\b")
        swap = lambda t: bare.sub(r"{\1}", t) if t else t
        for c in cols:
            c.formula = [swap(t) for t in c.formula] if isinstance(c.formula, list) \
                else swap(c.formula)
    return cols


_TOKEN = re.compile(r"\{(\w+)(@prev)?\}")

#: resolve(key, previous) → (column, row offset from the row being rendered)
Resolver = Callable[[str, bool], tuple[int, int]]


class Template:
    """A formula template compiled once; ``render(row)`` fills in cell addresses."""

    def __init__(self, text: str, resolve: Resolver):
        if FORBIDDEN.search(text):
            raise ValueError(f"formula template {text!r} uses a function sheetdl does not emit")
        self.parts: list = []
        pos = 0
        for m in _TOKEN.finditer(text):
            self.parts.append(text[pos:m.start()])
            col, drow = resolve(m.group(1), bool(m.group(2)))
            self.parts.append((col_name(col), drow))
            pos = m.end()
        self.parts.append(text[pos:])

    def render(self, row: int) -> str:
        """The formula for 0-based ``row``."""
        r1 = row + 1
        return "".join(p if isinstance(p, str) else f"{p[0]}{r1 + p[1]}" for p in self.parts)


def schedule_inputs(opt: Optimizer, sched) -> tuple[list[str], dict[str, float]]:
    """The named inputs of a sheet trained under ``sched``: the optimizer's
    hyperparameters less those the schedule sets per step, then the schedule's."""
    names, values = list(opt.hyperparameters), opt.hyper()
    if sched is not None and sched.scheduled:
        names = [h for h in names if not sched.sets(h)]
        names += sched.inputs() + ["steps"]
        values = {**values, **sched.values()}
    return names, values


def schedule_columns(sched) -> list[Column]:
    """The per-step lr (and cycled momentum) a schedule adds: columns of a row-per-step
    sheet, scalars of a block layout. Their formulas read ``{step}`` and named inputs."""
    if sched is None or not sched.scheduled:
        return []
    cols = [Column("lr", "lr", sched.describe().removeprefix("Schedule: ") + ", computed "
                   "from the step number t and the named schedule inputs", sched.lr_formula(),
                   per_param=False)]
    if sched.cycles:
        label = "β₁" if sched.cycles == "beta1" else "μ"
        cols.append(Column(sched.cycles, label, f"{label} this step: cycled mom_max → mom_min "
                           "→ mom_max opposite to the lr", sched.momentum_formula(),
                           per_param=False))
    return cols


def schedule_keys(sched) -> tuple[str, ...]:
    """Hyperparameters a schedule sets per step, for ``optimizer_columns(scheduled=)``."""
    return tuple(c.key for c in schedule_columns(sched))


def conventions(kind: str, opt: Optimizer, follows: str) -> str:
    o = opt.options()
    bits = []
    if "eps_in_sqrt" in o:
        bits.append("ε inside √" if o["eps_in_sqrt"]
                    else "ε outside √ (torch; Keras puts it inside)")
    if "bias_correction" in o:
        if not o["bias_correction"]:
            bits.append("no bias correction (the course sheet; torch and Keras correct)")
        elif o["eps_on_uncorrected"]:
            bits.append("ε on the uncorrected √v (Keras; torch corrects v first)")
        else:
            bits.append("bias-corrected m̂, v̂, ε after the correction (torch)")
        if o["amsgrad"]:
            bits.append("AMSGrad")
    if "dampen_first_step" in o:
        bits.append("first step buf = g (torch skips dampening once)" if not o["dampen_first_step"]
                    else "dampening from the first step (the course's EMA)")
    if "lagged" in o and o["lagged"]:
        bits.append("divides by the previous row's v, as the course sheet does")
    bits.append("weight decay decoupled (θ·(1 − lr·λ))" if o.get("decoupled_weight_decay")
                else "weight decay coupled (g + λθ, torch's L2)")
    return f"Preset: {follows}. " + "; ".join(bits) + "."




#: What each optimizer does differently, in one plain sentence: row 2 of its sheet.
PLAIN = {name: r.plain for name, r in optim.REGISTRY.items()}


_STRING = re.compile(r'("[^"]*")')


def renamer(names: dict[str, str]):
    """A function that rewrites the bare defined names ``names`` maps (``lr`` → ``adam_lr``)
    in a formula, outside string literals and {tokens}: sheets keep their torch-named
    inputs for tools, while formulas use names unique in the workbook, as Google
    Sheets (one namespace of names per spreadsheet) needs."""
    if not names:
        return lambda text: text
    bare = re.compile(r"(?<![{\w.!$])(" + "|".join(map(re.escape, sorted(names, key=len,
                                                                       reverse=True)))
                      + r")\b(?![({])")

    def rename(text):
        if not text:
            return text
        parts = _STRING.split(text)
        return "".join(p if i % 2 else bare.sub(lambda m: names[m.group(1)], p)
                       for i, p in enumerate(parts))
    return rename


def status_cell(loss_trace: str, losses, start: tuple[str, float], end: tuple[str, float],
                inputs: list[tuple[str, str]] = (), data_problem: str | None = None,
                advice: str = "lower lr", also: tuple[str, str] | None = None,
                counter: str = "step") -> tuple[str, str]:
    """A cell that says in words how training went, in one of four states:

    an input is empty or not a number (naming its cell, checked first, so a typo is
    never blamed on the lr); OVERFLOWED (#NUM! from step N); DIVERGING (the loss
    grew from ``start`` to ``end``, finite or not); training fine (it fell). The text
    names the two cells rather than printing their numbers: engines that sum in another
    order may round a displayed digit differently, and the text must be the same in all.
    ``inputs`` are (cell, label) pairs, ``data_problem`` a cell holding the first bad
    data cell's address or "", ``start``/``end`` (cell, value) pairs of the loss, ``also``
    (a text formula, the text it shows now) a clause after "training fine", ``counter``
    what a row of the trace is ("step", or "epoch" where the sheet counts epochs).
    Returns (formula, the text it shows now)."""
    import numpy as np

    (s_cell, s_val), (e_cell, e_val) = start, end
    losses = np.asarray(losses, float)
    steps = len(losses)
    finite = int(np.argmin(np.isfinite(losses))) if not np.all(np.isfinite(losses)) else steps
    grew = f"DIVERGING: the loss grew from {s_cell} to {e_cell}; {advice}"
    fell = f"training fine: the loss fell from {s_cell} to {e_cell}"
    if finite < steps or not np.isfinite(e_val):
        shown = (f"OVERFLOWED: the loss is #NUM! from {counter} {min(finite + 1, steps)}; "
                 f"{advice}")
    else:
        shown = grew if e_val > s_val else fell + (also[1] if also else "")
    fine = f'"{fell}"' + (f"&{also[0]}" if also else "")
    formula = (f'IF(OR(COUNT({loss_trace})<ROWS({loss_trace}),NOT(ISNUMBER({e_cell}))),'
               f'"OVERFLOWED: the loss is #NUM! from {counter} "&MIN(COUNT({loss_trace})+1,'
               f'ROWS({loss_trace}))&"; {advice}",IF({e_cell}>{s_cell},"{grew}",{fine}))')
    if data_problem:
        formula = (f'IF({data_problem}<>"","input "&{data_problem}&" is empty or not a '
                   f'number: fix it there",{formula})')
    for cell, label in reversed(list(inputs)):
        formula = (f'IF(NOT(ISNUMBER({cell})),"input {cell} ({label}) is empty or not a '
                   f'number",{formula})')
    return "=" + formula, shown


#: The add-in's functions as a formula names them, by ``--udf`` flavour: the Office.js
#: runtimes (xlwings Lite and Server, on Windows, Mac and the web) put them in a namespace,
#: SHEETDL.TRAIN_LINEAR; classic xlwings (Windows desktop, VBA) has none, SHEETDL_TRAIN_LINEAR.
ADDIN_NAMESPACE = "SHEETDL"
UDF_FLAVOURS = {"office": ".", "classic": "_"}

#: What recomputes a --udf workbook's calls, said on its about sheet.
UDF_RECOMPUTED_BY = {
    "office": "xlwings Lite (Excel on Windows, Mac and the web: paste addin/lite/main.py into "
              "its editor) or xlwings Server (sheetdl serve) recomputes them. Classic xlwings "
              "on Windows does not know these names: build with --udf classic for it.",
    "classic": "the classic xlwings add-in on Windows desktop Excel recomputes them once its "
               "functions are imported (xlwings ribbon → Import Functions, then save as .xlsm "
               "to keep them). xlwings Lite and Server do not know these names: build with "
               "--udf office for them.",
}


def addin_function(name: str, flavour: str) -> str:
    """How a ``--udf`` workbook of ``flavour`` calls the add-in's function ``name``."""
    return f"{ADDIN_NAMESPACE}{UDF_FLAVOURS[flavour]}{name.upper()}"


def addin_note(name: str, flavour: str) -> str:
    """The about sheet's line on what recomputes a --udf workbook."""
    call = addin_function(name, flavour)
    return (f"The big tables are one call each to the sheetdl add-in, {call} "
            f"(--udf {flavour}); the values shown are cached, computed by sheetdl. "
            + UDF_RECOMPUTED_BY[flavour] + " Elsewhere the cached values stay as they are.")


def out_of_range(name: str, value: float) -> str | None:
    """What is wrong with ``value`` for input ``name`` under its cell's validation rule (the
    same rule the CLI, the UDFs and the sheet apply), or None when it is fine."""
    rule = VALIDATION.get(name)
    if rule is None:
        return None
    if rule["criteria"] == "between":
        lo, hi = rule["minimum"], rule["maximum"]
        hi_text = "below 1" if hi == 0.999999999999 else f"at most {hi:g}"
        return None if lo <= value <= hi else f"must be at least {lo:g} and {hi_text}"
    limit, op = rule["value"], rule["criteria"]
    ok = value > limit if op == ">" else value >= limit
    return None if ok else f"must be {'above' if op == '>' else 'at least'} {limit:g}"


#: Inputs the layout fixes: shown as formulas, never yellow, so no edit can break the sheet.
DERIVED = frozenset({"steps"})


def input_validations(hyper: list[str], row: int,
                      fallback: str = "") -> list[tuple[int, int, dict]]:
    """Data validation for a row of named input cells, with each input's help as its message
    (none for the ``DERIVED`` ones, which are formulas)."""
    out = []
    for i, h in enumerate(hyper):
        if h in DERIVED:
            continue
        rule = dict(VALIDATION.get(h, {"validate": "decimal", "criteria": "between",
                                       "minimum": -1e300, "maximum": 1e300}))
        rule.update({"input_title": h[:32],
                     "input_message": HYPER_HELP.get(h, fallback or h)[:255]})
        out.append((row, i, rule))
    return out


#: The first rows of every training sheet (``input_rows``): the title (A1), a plain
#: sentence of what the sheet shows (A2, which carries the conventions note), the named
#: inputs' labels and yellow values (row 3 and 4), a hint (A5) and the status (A6).
TITLE_ROW, SENTENCE_ROW, LABEL_ROW, INPUT_ROW, HINT_ROW, STATUS_ROW = range(6)
#: The widest an input's column grows for its label; a longer label wraps onto two lines.
LABEL_WIDTH = 14


def input_rows(title: str, sentence: str, hyper: list[str], values: dict, hint: str,
               status: tuple | None = None, derived: dict | None = None) -> list[tuple[int, list]]:
    """The first rows of a training sheet (``TITLE_ROW`` to ``STATUS_ROW``), the status
    cell ``status`` = (formula, value) in A6, where nothing beside it cuts its text off.
    ``derived`` maps names whose value the layout fixes (``steps``) to a formula: they
    show as results, not yellow inputs."""
    derived = derived or {}
    rows = [(TITLE_ROW, [(0, None, title, "title")]),
            (SENTENCE_ROW, [(0, None, sentence, "subtitle")]),
            (LABEL_ROW, [(i, None, h, "label") for i, h in enumerate(hyper)]),
            (INPUT_ROW, [(i, derived[h], values[h], "summary") if h in derived else
                 (i, None, values[h], "input") for i, h in enumerate(hyper)]),
            (HINT_ROW, [(0, None, hint, "subtitle")])]
    if status:
        rows.append((STATUS_ROW, [(0, status[0], status[1], "status")]))
    return rows


def lr_input(schedule) -> str:
    """The yellow input a hint tells a learner to try first: lr, or lr_max where the
    schedule sets the lr each step (onecycle)."""
    return "lr_max" if schedule is not None and schedule.sets("lr") else "lr"


def input_notes(hyper: list[str], convention: str,
                fallback: str = "") -> list[tuple[int, int, str]]:
    """The notes of ``input_rows``: each input's meaning on its label, the optimizer's
    conventions on the sentence."""
    return [(LABEL_ROW, i, f"{h}: {HYPER_HELP.get(h, fallback or h)}")
            for i, h in enumerate(hyper)] + [(SENTENCE_ROW, 0, "Conventions. " + convention)]




def fit_inputs(hyper: list[str], widths: dict[int, float]) -> dict[int, float]:
    """Widen each input's column to its label, up to ``LABEL_WIDTH``; returns the row
    heights that let longer labels (initial_accumulator_value) wrap instead of
    stretching a column of the table below."""
    for i, h in enumerate(hyper):
        widths[i] = max(widths.get(i, 0), min(LABEL_WIDTH, len(h) + 2))
    return {LABEL_ROW: 30} if any(len(h) + 2 > LABEL_WIDTH for h in hyper) else {}


def fit_headers(widths: dict[int, float], headers) -> dict[int, float]:
    """Widen each column of ``headers`` ((column, text) pairs) to show its header on one
    line: a header row is one line high, and a header that wraps is cut off there."""
    for col, text in headers:
        widths[col] = max(widths.get(col, 0), len(text) + 2)
    return widths


def finder_columns() -> list[Column]:
    """The lr finder's bookkeeping, one column per quantity of ``lrfind.analyse``: each
    reads this step's ``{loss}``, ``{lr}`` and ``{step}`` and the row above (none on the
    first step, which has its own formula), and the sheet-scoped names ``smooth_beta``,
    ``stop_factor``, ``steps`` and ``finder_stop``."""
    return [
        Column("avg", "avg", "exponential average avg_t = β·avg_{t−1} + (1 − β)·L_t, β = "
               "smooth_beta (fastai's AvgSmoothLoss)",
               ["=(1-smooth_beta)*{loss}", "=smooth_beta*{avg@prev}+(1-smooth_beta)*{loss}"],
               per_param=False),
        Column("smooth_pow", "βᵗ", "βᵗ as a running product",
               ["=smooth_beta", "={smooth_pow@prev}*smooth_beta"], per_param=False),
        Column("smooth", "smoothed", "debiased smoothed loss avg_t/(1 − βᵗ)",
               "={avg}/(1-{smooth_pow})", per_param=False),
        Column("best", "best", "the lowest smoothed loss so far (carried once stopped)",
               ["={smooth}", "=IF({stopped@prev}=1,{best@prev},IF(ISNUMBER({smooth}),"
                "MIN({best@prev},{smooth}),{best@prev}))"], per_param=False),
        Column("stopped", "stopped", "1 from the step where the smoothed loss passes "
               "stop_factor × best (fastai stops there; the rows below show what it skips)",
               ["=IF(ISNUMBER({smooth}),IF({smooth}>stop_factor*{best},1,0),1)",
                "=IF({stopped@prev}=1,1,IF(ISNUMBER({smooth}),IF({smooth}>stop_factor*{best},"
                "1,0),1))"], per_param=False, style="int"),
        Column("in_window", "used", "1 where fastai's suggestion looks: after the first tenth "
               "of the steps and before the last 5 recorded", "=IF(AND({step}>INT(steps/10),"
               "{step}<=finder_stop-5),1,0)", per_param=False, style="int"),
        Column("smooth_in", "smoothed used", "the smoothed loss where used = 1, else empty",
               '=IF({in_window}=1,{smooth},"")', per_param=False),
        Column("slope", "slope", "d smoothed / d ln lr between this step and the one before, "
               "where both are used (fastai's steep)",
               ['=""', '=IF(AND({in_window}=1,{in_window@prev}=1),({smooth}-{smooth@prev})/'
                '(LN({lr})-LN({lr@prev})),"")'], per_param=False),
        Column("plot_loss", "plotted loss", "the loss through the stop, #N/A after it: the "
               "chart skips #N/A, so the divergence fastai never runs does not flatten it",
               "=IF({step}<=finder_stop,{loss},NA())", per_param=False),
        Column("plot_smooth", "plotted smoothed", "the smoothed loss through the stop, #N/A "
               "after it", "=IF({step}<=finder_stop,{smooth},NA())", per_param=False),
    ]


#: Rows of ``finder_summary``'s box, from its top, that ``finder_status`` reads.
STOP_ROW, STEEP_ROW, MIN10_ROW = 0, 6, 7

#: Row 5 of a finder sheet: what to change, and where the answer shows.
FINDER_HINT = ("Change a yellow input (lr_min or lr_max, say) and every step recomputes, no "
               "macros; the status below, the box of results and the chart follow. Hover a "
               "header for its math.")


def finder_summary(r, steps: int, s_col: int, top: int, col_area,
                   value_col: int | None = None) -> tuple[dict[int, list], dict]:
    """The finder's results, labels in column ``s_col`` and values in ``value_col``
    (default the next), each a formula over the step columns, by row from ``top``; and
    the names ``finder_stop`` and ``lr_suggested`` over them."""
    v_col = s_col + 1 if value_col is None else value_col
    stopped, lr_col, smooth_in, slope = (col_area("stopped"), col_area("lr"),
                                         col_area("smooth_in"), col_area("slope"))
    v = lambda x: "" if x == "" else float(x)
    at_min = ref(top + 4, v_col)
    # from the top: STOP_ROW first, STEEP_ROW and MIN10_ROW last
    rows = [
        ("stops after step", f"=IF(SUM({stopped})>0,ROWS({stopped})-SUM({stopped})+1,"
         f"ROWS({stopped}))", r.stop_step),
        ("lr there", f"=INDEX({lr_col},{ref(top, v_col)})", r.lr_at_stop),
        # the first tenth is skipped and the last 5 before the stop are left out: a finder
        # that stopped within them used no step ("11 to -3" said otherwise)
        ("steps used", f'=IF({ref(top, v_col)}-5<INT(steps/10)+1,"none: it stopped after step "'
         f'&{ref(top, v_col)},(INT(steps/10)+1)&" to "&({ref(top, v_col)}-5))',
         f"none: it stopped after step {r.stop_step}"
         if r.stop_step - 5 < lrfind.skip_start(steps) + 1 else
         f"{lrfind.skip_start(steps) + 1} to {r.stop_step - 5}"),
        ("lowest smoothed loss", f'=IF(COUNT({smooth_in})>0,MIN({smooth_in}),"")', v(r.min_loss)),
        ("lr at the lowest", f'=IF(COUNT({smooth_in})>0,INDEX({lr_col},MATCH(MIN({smooth_in}),'
         f'{smooth_in},0)),"")', v(r.lr_at_min)),
        ("steepest slope", f'=IF(COUNT({slope})>0,MIN({slope}),"")', v(r.min_slope)),
        ("suggested: steepest (lr_steep)", f'=IF(COUNT({slope})>0,INDEX({lr_col},MATCH(MIN('
         f'{slope}),{slope},0)-1),"")', v(r.lr_steep)),
        ("suggested: lowest ÷ 10 (lr_min)", f'=IF(COUNT({smooth_in})>0,{at_min}/10,"")',
         v(r.lr_min10)),
    ]
    cells = {top + i: [(s_col, None, label, "bold"),
                       (v_col, formula, value, "int" if i == 0 else "summary|0.000E+00")]
             for i, (label, formula, value) in enumerate(rows)}
    cells[top + 2][1] = cells[top + 2][1][:3] + ("summary",)  # "11 to 95" is text
    names = {"finder_stop": ref(top + STOP_ROW, v_col, True),
             "lr_suggested": f"{ref(top + STEEP_ROW, v_col, True)}:"
                             f"{ref(top + MIN10_ROW, v_col, True)}"}
    return cells, names


def finder_status(r, s_col: int, top: int, col_area,
                  value_col: int | None = None) -> tuple[str, str]:
    """A finder sheet's status cell (A6): whether the loss blew up inside the lr range,
    and so whether the suggestions of ``finder_summary`` (placed as given here) can be
    trusted. A loss that never blows up suggests an lr from a curve that has not turned."""
    v_col = s_col + 1 if value_col is None else value_col
    steep, low = ref(top + STEEP_ROW, v_col), ref(top + MIN10_ROW, v_col)
    # no advice to raise lr_max: Adam's bounded steps and collab's sigmoid-bounded loss
    # may never blow up at any lr
    never = ("the loss never blew up, up to lr_max: the suggested lrs come from a curve that "
             "has not turned up; read the chart before trusting them")
    early = "the loss blew up within the first steps: lower the yellow lr_min"
    found = f": try the suggested lrs ({steep}, {low}) on a training sheet"
    formula = (f'=IF(SUM({col_area("stopped")})=0,"{never}",IF(COUNT({col_area("slope")})=0,'
               f'"{early}","the loss blew up after step "&{ref(top + STOP_ROW, v_col)}'
               f'&"{found}"))')
    value = (never if not r.stopped.any() else early if r.lr_steep == "" else
             f"the loss blew up after step {r.stop_step}{found}")
    return formula, value


def finder_chart(sheet: str, row: int, col: int, first: int, last: int, where: dict,
                 width: int = 640, height: int = 360) -> Chart:
    """Loss and smoothed loss against lr, log–log, over step rows ``first``..``last``, from
    the ``lr``, ``plot_loss`` and ``plot_smooth`` columns ``where`` places."""
    lr_area = area(sheet, first, where["lr"], last)
    return Chart(row, col, "lr finder: loss against learning rate", "lr (log)", "loss (log)",
                 [Series("loss", lr_area, area(sheet, first, where["plot_loss"], last)),
                  Series("smoothed", lr_area, area(sheet, first, where["plot_smooth"], last))],
                 log_y=True, log_x=True, width=width, height=height)


def about_page(title: str, start: list[str], details: list[str]):
    """The ``about`` sheet: a "start here" of three steps (look at this, change that yellow
    cell, watch this chart), then the details."""
    from .workbook import Sheet, static_rows

    rows = [(0, [(0, None, title, "title")]), (2, [(0, None, "Start here", "bold")])]
    rows += [(3 + i, [(0, None, f"{i + 1}. {line}", "text")]) for i, line in enumerate(start)]
    top = 4 + len(start)
    rows.append((top, [(0, None, "Details", "bold")]))
    rows += [(top + 1 + i, [(0, None, line, "text")]) for i, line in enumerate(details)]
    return Sheet("about", static_rows(rows), widths={0: 120})
