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

import re
from dataclasses import dataclass, field

import numpy as np

from . import linear, presets
from .book import FORBIDDEN, Book, Chart, Series, Sheet, area, col_name, ref, static_rows
from .data import EXCEL_MAX_ROWS
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

# Explanations of each hyperparameter, shown as the input cell's note and validation message.
HYPER_HELP = {
    "lr": "learning rate η: the step size",
    "momentum": "μ: how much of the previous velocity is kept",
    "dampening": "τ: the new gradient enters the buffer as (1 − τ)·g",
    "beta1": "β₁: decay of the first moment m (mean of g)",
    "beta2": "β₂: decay of the second moment v (mean of g²)",
    "alpha": "α: decay of the mean square v",
    "eps": "ε: keeps the denominator away from zero",
    "weight_decay": "λ: pulls parameters toward 0",
    "lr_decay": "lr_t = lr / (1 + (t − 1)·lr_decay)",
    "momentum_decay": "ψ: μ_t = β₁(1 − ½·0.96^(t·ψ))",
    "initial_accumulator_value": "starting value of the squared-gradient accumulator",
    "b_init": "starting intercept b",
    "a_init": "starting slope a",
    "fd_h": "h of the central finite differences",
}

VALIDATION = {
    "lr": {"validate": "decimal", "criteria": ">", "value": 0},
    "momentum": {"validate": "decimal", "criteria": "between", "minimum": 0, "maximum": 1},
    "dampening": {"validate": "decimal", "criteria": "between", "minimum": 0, "maximum": 1},
    "beta1": {"validate": "decimal", "criteria": "between", "minimum": 0, "maximum": 0.999999999999},
    "beta2": {"validate": "decimal", "criteria": "between", "minimum": 0, "maximum": 0.999999999999},
    "alpha": {"validate": "decimal", "criteria": "between", "minimum": 0, "maximum": 1},
    "eps": {"validate": "decimal", "criteria": ">=", "value": 0},
    "weight_decay": {"validate": "decimal", "criteria": ">=", "value": 0},
    "lr_decay": {"validate": "decimal", "criteria": ">=", "value": 0},
    "momentum_decay": {"validate": "decimal", "criteria": ">=", "value": 0},
    "initial_accumulator_value": {"validate": "decimal", "criteria": ">=", "value": 0},
    "fd_h": {"validate": "decimal", "criteria": ">", "value": 0},
}


@dataclass
class Column:
    key: str
    header: str
    note: str
    formula: str | list[str] | None  # one template, or (first step, later steps)
    per_param: bool = True
    style: str = "general"
    init: str | None = None  # step-0 formula (e.g. "=b_init") or None for a value


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


def make_lesson(x, y, *, optimizers=DEFAULT_OPTIMIZERS, preset=DEFAULT_PRESET, epochs=5,
                b_init=1.0, a_init=1.0, drop_last_update=None, data_label=None,
                **overrides) -> Lesson:
    """Resolve options (preset, then explicit overrides) and run the reference math."""
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
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for kind, opt in opts.items():
            lesson.traces[kind] = linear.train(opt, lesson.x, lesson.y, epochs=epochs,
                                               b_init=lesson.b_init, a_init=lesson.a_init,
                                               drop_last_update=drop_last_update)
    return lesson


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


def _optimizer_columns(opt: Optimizer) -> list[Column]:
    """The state and update columns of one optimizer, matching ``opt.update``'s ``shown``."""
    decoupled = getattr(opt, "decoupled_weight_decay", False)
    P = "{p}*(1-lr*weight_decay)" if decoupled else "{p}"
    cols: list[Column] = []
    if not decoupled:
        cols.append(Column("grad", "g", "g = ∂L/∂θ + λ·θ: the gradient with coupled (L2) "
                           "weight decay, torch's weight_decay.", "={g}+weight_decay*{p}"))
    decay_note = (" Decoupled weight decay (AdamW): θ·(1 − lr·λ) replaces θ."
                  if decoupled else "")
    name = opt.name

    def new(formula: str, math: str) -> Column:
        return Column("new", "new", f"θ_new = {math}.{decay_note}", formula, style="num",
                      init="={p}_init")

    if name == "sgd":
        cols.append(new(f"={P}-lr*{{grad}}", "θ − lr·g"))
    elif name == "momentum":
        rest = "momentum*{buf@prev}+(1-dampening)*{grad}"
        if opt.dampen_first_step:
            cols.append(Column("buf", "buf", "velocity buf_t = μ·buf_{t−1} + (1 − τ)·g, buf₀ = 0 "
                               "(with τ = μ this is the course's moving average).",
                               "=" + rest, init="0"))
        else:
            cols.append(Column("buf", "buf", "velocity (torch's momentum_buffer): buf₁ = g on "
                               "the first step, then buf_t = μ·buf_{t−1} + (1 − τ)·g.",
                               ["={grad}", "=" + rest], init="0"))
        if opt.nesterov:
            cols.append(Column("direction", "g+μ·buf", "Nesterov: step along g + μ·buf",
                               "={grad}+momentum*{buf}"))
            cols.append(new(f"={P}-lr*{{direction}}", "θ − lr·(g + μ·buf)"))
        else:
            cols.append(new(f"={P}-lr*{{buf}}", "θ − lr·buf"))
    elif name == "rmsprop":
        cols.append(Column("square_avg", "v", "mean square v_t = α·v_{t−1} + (1 − α)·g²",
                           "=alpha*{square_avg@prev}+(1-alpha)*{grad}^2",
                           init="=initial_accumulator_value"))
        v = "{square_avg@prev}" if opt.lagged else "{square_avg}"
        v_note = "v_{t−1} (the previous row's: the course's lagged rule)" if opt.lagged else "v_t"
        if opt.centered:
            cols.append(Column("grad_avg", "ḡ", "centered: running mean ḡ_t = α·ḡ_{t−1} + (1 − α)·g",
                               "=alpha*{grad_avg@prev}+(1-alpha)*{grad}", init="0"))
            v, v_note = f"({v}-{{grad_avg}}^2)", f"({v_note} − ḡ²)"
        if opt.eps_in_sqrt:
            cols.append(Column("denom", "denom", f"√({v_note} + ε): ε inside the root (Keras)",
                               f"=SQRT({v}+eps)"))
        else:
            cols.append(Column("denom", "denom", f"√{v_note} + ε: ε outside the root (torch)",
                               f"=SQRT({v})+eps"))
        if opt.use_momentum:
            cols.append(Column("buf", "buf", "buf_t = μ·buf_{t−1} + g/denom",
                               "=momentum*{buf@prev}+{grad}/{denom}", init="0"))
            cols.append(new(f"={P}-lr*{{buf}}", "θ − lr·buf"))
        else:
            cols.append(new(f"={P}-lr*{{grad}}/{{denom}}", "θ − lr·g/denom"))
    elif name == "adam":
        cols += [
            Column("exp_avg", "m", "first moment m_t = β₁·m_{t−1} + (1 − β₁)·g",
                   "=beta1*{exp_avg@prev}+(1-beta1)*{grad}", init="0"),
            Column("exp_avg_sq", "v", "second moment v_t = β₂·v_{t−1} + (1 − β₂)·g²",
                   "=beta2*{exp_avg_sq@prev}+(1-beta2)*{grad}^2", init="0"),
        ]
        v = "{exp_avg_sq}"
        if opt.amsgrad:
            cols.append(Column("max_exp_avg_sq", "v̄", "AMSGrad: v̄_t = max(v̄_{t−1}, v_t)",
                               "=MAX({max_exp_avg_sq@prev},{exp_avg_sq})", init="0"))
            v = "{max_exp_avg_sq}"
        if opt.bias_correction:
            cols += [
                Column("beta1_pow", "β₁ᵗ", "β₁ᵗ as a running product β₁ᵗ⁻¹·β₁ (it underflows "
                       "to 0 quietly where 0.9^7000 is #NUM! in LibreOffice)",
                       "={beta1_pow@prev}*beta1", per_param=False, init="1"),
                Column("beta2_pow", "β₂ᵗ", "β₂ᵗ as a running product β₂ᵗ⁻¹·β₂",
                       "={beta2_pow@prev}*beta2", per_param=False, init="1"),
            ]
            if opt.eps_on_uncorrected:
                cols.append(Column("lr_t", "lr_t", "Keras: lr_t = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ), and ε "
                                   "is added to the uncorrected √v",
                                   "=lr*SQRT(1-{beta2_pow})/(1-{beta1_pow})", per_param=False))
                cols.append(new(f"={P}-{{lr_t}}*{{exp_avg}}/(SQRT({v})+eps)",
                                "θ − lr_t·m/(√v + ε)"))
            else:
                cols += [
                    Column("m_hat", "m̂", "bias-corrected m̂ = m/(1 − β₁ᵗ)",
                           "={exp_avg}/(1-{beta1_pow})"),
                    Column("v_hat", "v̂", "bias-corrected v̂ = v/(1 − β₂ᵗ)",
                           f"={v}/(1-{{beta2_pow}})"),
                ]
                cols.append(new(f"={P}-lr*{{m_hat}}/(SQRT({{v_hat}})+eps)",
                                "θ − lr·m̂/(√v̂ + ε)"))
        else:
            cols.append(new(f"={P}-lr*{{exp_avg}}/(SQRT({v})+eps)",
                            "θ − lr·m/(√v + ε), no bias correction (the course sheet)"))
    elif name == "adagrad":
        cols += [
            Column("clr", "lr_t", "lr_t = lr/(1 + (t − 1)·lr_decay)",
                   "=lr/(1+({step}-1)*lr_decay)", per_param=False),
            Column("sum", "Σg²", "accumulated squares s_t = s_{t−1} + g²",
                   "={sum@prev}+{grad}^2", init="=initial_accumulator_value"),
        ]
        denom = "SQRT({sum}+eps)" if opt.eps_in_sqrt else "(SQRT({sum})+eps)"
        cols.append(new(f"={P}-{{clr}}*{{grad}}/{denom}", "θ − lr_t·g/(√s + ε)"))
    elif name == "adamax":
        u = ("=MAX(beta2*{exp_inf@prev},ABS({grad})+eps)" if opt.eps_in_max
             else "=MAX(beta2*{exp_inf@prev},ABS({grad}))")
        cols += [
            Column("exp_avg", "m", "m_t = β₁·m_{t−1} + (1 − β₁)·g",
                   "=beta1*{exp_avg@prev}+(1-beta1)*{grad}", init="0"),
            Column("exp_inf", "u", "infinity norm u_t = max(β₂·u_{t−1}, |g| + ε)" if opt.eps_in_max
                   else "infinity norm u_t = max(β₂·u_{t−1}, |g|) (Keras: ε added below)", u,
                   init="0"),
            Column("beta1_pow", "β₁ᵗ", "β₁ᵗ as a running product", "={beta1_pow@prev}*beta1",
                   per_param=False, init="1"),
            Column("clr", "lr_t", "lr_t = lr/(1 − β₁ᵗ)", "=lr/(1-{beta1_pow})", per_param=False),
        ]
        denom = "{exp_inf}" if opt.eps_in_max else "({exp_inf}+eps)"
        cols.append(new(f"={P}-{{clr}}*{{exp_avg}}/{denom}", "θ − lr_t·m/u"))
    elif name == "nadam":
        cols += [
            Column("mu", "μ_t", "μ_t = β₁(1 − ½·0.96^(t·ψ)), written with EXP and LN",
                   "=beta1*(1-0.5*EXP({step}*momentum_decay*LN(0.96)))", per_param=False),
            Column("mu_next", "μ_t+1", "μ_{t+1}, the next step's momentum coefficient",
                   "=beta1*(1-0.5*EXP(({step}+1)*momentum_decay*LN(0.96)))", per_param=False),
            Column("mu_product", "Πμ", "running product Π_t = Π_{t−1}·μ_t",
                   "={mu_product@prev}*{mu}", per_param=False, init="1"),
            Column("exp_avg", "m", "m_t = β₁·m_{t−1} + (1 − β₁)·g",
                   "=beta1*{exp_avg@prev}+(1-beta1)*{grad}", init="0"),
            Column("exp_avg_sq", "v", "v_t = β₂·v_{t−1} + (1 − β₂)·g²",
                   "=beta2*{exp_avg_sq@prev}+(1-beta2)*{grad}^2", init="0"),
            Column("beta2_pow", "β₂ᵗ", "β₂ᵗ as a running product", "={beta2_pow@prev}*beta2",
                   per_param=False, init="1"),
            Column("denom", "denom", "d = √(v/(1 − β₂ᵗ)) + ε",
                   "=SQRT({exp_avg_sq}/(1-{beta2_pow}))+eps"),
        ]
        cols.append(new(f"={P}-lr*(1-{{mu}})/(1-{{mu_product}})*{{grad}}/{{denom}}"
                        f"-lr*{{mu_next}}/(1-{{mu_product}}*{{mu_next}})*{{exp_avg}}/{{denom}}",
                        "θ − lr(1 − μ_t)/(1 − Π_t)·g/d − lr·μ_{t+1}/(1 − Π_t·μ_{t+1})·m/d"))
    else:  # pragma: no cover - OPTIMIZERS and this layout list the same names
        raise ValueError(f"no layout for optimizer {name!r}")
    return cols


# --------------------------------------------------------------------------- templates

_TOKEN = re.compile(r"\{(\w+)(@prev)?\}")


class _Template:
    """A formula template compiled against a column map: render(row) is a join."""

    def __init__(self, text: str, where: dict[str, int], param: str | None):
        if FORBIDDEN.search(text):
            raise ValueError(f"formula template {text!r} uses a function sheetdl does not emit")
        self.parts: list = []
        pos = 0
        for m in _TOKEN.finditer(text):
            self.parts.append(text[pos:m.start()])
            key, prev = m.group(1), bool(m.group(2))
            if key in ("b_init", "a_init"):  # never reached: init uses names directly
                raise AssertionError(key)
            if key == "p":
                key = param
            elif key == "g" or (key == "grad" and f"grad_{param}" not in where):
                key = f"dl_{param}"  # no coupled decay: g is the raw gradient
            elif f"{key}_{param}" in where:
                key = f"{key}_{param}"
            self.parts.append((col_name(where[key]), -1 if prev else 0))
            pos = m.end()
        self.parts.append(text[pos:])

    def render(self, row: int) -> str:
        r1 = row + 1
        return "".join(p if isinstance(p, str) else f"{p[0]}{r1 + p[1]}" for p in self.parts)


def _init_formula(text: str, param: str | None) -> str:
    return text.replace("{p}", param or "")


# --------------------------------------------------------------------------- sheets

def _hyper_names(kind: str, opt: Optimizer) -> list[str]:
    names = list(opt.hyperparameters)
    if kind == "sgd":
        names.append("fd_h")
    return names + ["b_init", "a_init"]


def _conventions(kind: str, opt: Optimizer, follows: str) -> str:
    o = opt.options()
    bits = []
    if "eps_in_sqrt" in o:
        bits.append("ε inside √" if o["eps_in_sqrt"] else "ε outside √ (torch; Keras puts it inside)")
    if kind in ("adam", "adamw"):
        if not o["bias_correction"]:
            bits.append("no bias correction (the course sheet; torch and Keras correct)")
        elif o["eps_on_uncorrected"]:
            bits.append("ε on the uncorrected √v (Keras; torch corrects v first)")
        else:
            bits.append("bias-corrected m̂, v̂, ε after the correction (torch)")
        if o["amsgrad"]:
            bits.append("AMSGrad")
    if kind in ("momentum", "nesterov"):
        bits.append("first step buf = g (torch skips dampening once)" if not o["dampen_first_step"]
                    else "dampening from the first step (the course's EMA)")
    if "lagged" in o and o["lagged"]:
        bits.append("divides by the previous row's v, as the course sheet does")
    bits.append("weight decay decoupled (θ·(1 − lr·λ))" if o.get("decoupled_weight_decay")
                else "weight decay coupled (g + λθ, torch's L2)")
    return f"Preset: {follows}. " + "; ".join(bits) + "."


def optimizer_sheet(lesson: Lesson, kind: str) -> Sheet:
    opt = lesson.optimizers[kind]
    trace = lesson.traces[kind]
    n, steps = len(lesson.x), len(trace.loss)
    columns = _base_columns(kind) + _optimizer_columns(opt)

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

    def compile_(c: Column, p: str | None):
        texts = c.formula if isinstance(c.formula, list) else [c.formula, c.formula]
        return [_Template(t, where, p) if t else None for t in texts]

    templates = {}
    for c, p, colno in placed:
        if c.key in ("b", "a"):
            templates[colno] = [_Template(f"={{new_{c.key}@prev}}", where, None)] * 2
        else:
            templates[colno] = compile_(c, p)
    drop_templates = {where[k]: _Template(f"={{{k}@prev}}", where, None) for k in PARAMS}

    # Cached values come from the reference math, column by column.
    values: dict[int, np.ndarray] = {}
    for c, p, colno in placed:
        if c.key in ("step", "epoch"):
            t = np.arange(1, steps + 1)
            values[colno] = t if c.key == "step" else (t - 1) // n + 1
        elif c.key in ("x", "y", "b", "a", "pred", "err", "loss"):
            values[colno] = getattr(trace, c.key)
        elif c.key in ("dl_b", "dl_a"):
            values[colno] = trace.grad_b if c.key == "dl_b" else trace.grad_a
        elif c.key in ("fd_b", "fd_a"):
            with np.errstate(over="ignore", invalid="ignore"):
                fd = linear.finite_difference(trace.b, trace.a, trace.x, trace.y, FD_H)
            values[colno] = fd[0] if c.key == "fd_b" else fd[1]
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

    # Epoch summary to the right of the table.
    s_col = n_cols + 1
    loss_col, nb_col, na_col = where["loss"], where["new_b"], where["new_a"]
    epoch_loss = trace.loss.reshape(lesson.epochs, n).mean(axis=1)

    def summary_cells(e: int) -> list:
        first, last = FIRST_STEP_ROW + e * n, FIRST_STEP_ROW + (e + 1) * n - 1
        return [
            (s_col, None, e + 1, "int"),
            (s_col + 1, f"=AVERAGE({ref(first, loss_col)}:{ref(last, loss_col)})",
             float(epoch_loss[e]), "summary"),
            (s_col + 2, f"={ref(last, nb_col)}", float(trace.b_trace[(e + 1) * n - 1]), "summary"),
            (s_col + 3, f"={ref(last, na_col)}", float(trace.a_trace[(e + 1) * n - 1]), "summary"),
        ]

    hyper = _hyper_names(kind, opt)
    hyper_values = {**opt.hyper(), "fd_h": FD_H, "b_init": lesson.b_init, "a_init": lesson.a_init}
    sheet_name = kind
    title = (f"{kind}: fit y = b + a·x one sample per row, {lesson.epochs} epoch"
             f"{'s' if lesson.epochs != 1 else ''} × {n} samples = {steps} steps")

    def rows():
        yield 0, [(0, None, title, "title")]
        yield 1, [(0, None, _conventions(kind, opt, lesson.follows[kind]), "subtitle")]
        yield LABEL_ROW, [(i, None, h, "label") for i, h in enumerate(hyper)]
        yield INPUT_ROW, [(i, None, hyper_values[h], "input") for i, h in enumerate(hyper)]
        yield 4, [(0, None, "Change a yellow input: every row below recomputes (no macros). "
                   "Hover a header for its math." + (
                       " Preset course: each epoch restarts from the last row's inputs, "
                       "dropping its update, as the course's VBA did."
                       if lesson.drop_last_update else ""), "subtitle")]
        header = [(colno, None, (f"{c.header} {p}" if p else c.header), "header")
                  for c, p, colno in placed]
        header += [(s_col + i, None, h, "header")
                   for i, h in enumerate(("epoch", "mean loss", "b at end", "a at end"))]
        yield HEADER_ROW, header
        init = list(init_cells)
        if lesson.epochs > 0:
            init += summary_cells(0)
        yield INIT_ROW, init
        for i in range(steps):
            row = FIRST_STEP_ROW + i
            later = 0 if i == 0 else 1
            epoch_start = i > 0 and i % n == 0
            cells = []
            for colno, tmpl in templates.items():
                if lesson.drop_last_update and epoch_start and colno in drop_templates:
                    formula = drop_templates[colno].render(row)
                else:
                    formula = tmpl[later].render(row)
                v = values[colno][i]
                cells.append((colno, formula, v.item() if hasattr(v, "item") else v,
                               placed_style[colno]))
            if i + 1 < lesson.epochs:  # epoch e's summary sits on row INIT_ROW + e
                cells += summary_cells(i + 1)
            yield row, cells

    placed_style = {colno: c.style for c, p, colno in placed}

    notes = [(HEADER_ROW, colno, c.note + (f" ({p})" if p else "")) for c, p, colno in placed]
    notes += [(LABEL_ROW, i, f"{h}: {HYPER_HELP[h]}") for i, h in enumerate(hyper)]
    notes.append((HEADER_ROW, s_col + 1, "mean loss over the epoch's steps (each step's loss "
                  "is measured before its update)"))
    validations = []
    for i, h in enumerate(hyper):
        rule = dict(VALIDATION.get(h, {"validate": "decimal", "criteria": "between",
                                       "minimum": -1e300, "maximum": 1e300}))
        rule.update({"input_title": h[:32], "input_message": HYPER_HELP[h][:255],
                     "error_message": f"{h} must be a number in its valid range"})
        validations.append((INPUT_ROW, i, rule))

    last_row = FIRST_STEP_ROW + steps - 1
    names = {h: ref(INPUT_ROW, i, True) for i, h in enumerate(hyper)}
    names["b_trace"] = f"{ref(FIRST_STEP_ROW, nb_col, True)}:{ref(last_row, nb_col, True)}"
    names["a_trace"] = f"{ref(FIRST_STEP_ROW, na_col, True)}:{ref(last_row, na_col, True)}"
    names["loss_trace"] = f"{ref(FIRST_STEP_ROW, loss_col, True)}:{ref(last_row, loss_col, True)}"

    positive = bool(np.all(np.isfinite(trace.loss)) and np.all(trace.loss > 0))
    ep_first, ep_last = INIT_ROW, INIT_ROW + lesson.epochs - 1
    chart_col = s_col + 5
    charts = [
        Chart(1, chart_col, f"{kind}: mean loss per epoch", "epoch", "mean loss",
              [Series("mean loss", area(sheet_name, ep_first, s_col, ep_last),
                      area(sheet_name, ep_first, s_col + 1, ep_last))], log_y=positive),
        Chart(17, chart_col, f"{kind}: loss per step", "step", "loss",
              [Series("loss", area(sheet_name, FIRST_STEP_ROW, where["step"], last_row),
                      area(sheet_name, FIRST_STEP_ROW, loss_col, last_row))], log_y=positive),
    ]
    widths = {i: 11 for i in range(n_cols)}
    widths.update({i: max(11, min(26, len(h) + 2)) for i, h in enumerate(hyper)})
    widths.update({s_col + i: 11 for i in range(4)})
    return Sheet(name=sheet_name, rows=rows, widths=widths, freeze=(FIRST_STEP_ROW - 1, 2),
                 notes=notes, validations=validations, charts=charts, names=names)


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
    columns = _base_columns(kind) + _optimizer_columns(lesson.optimizers[kind])
    return sum(2 if c.per_param else 1 for c in columns) + 1


def about_sheet(lesson: Lesson) -> Sheet:
    lines = [
        ("sheetdl · gradient descent, one spreadsheet row per step", "title"),
        (f"Model: pred = b + a·x, loss = (pred − y)², one sample per step (batch size 1), "
         f"{lesson.epochs} epochs over {lesson.data_label}, in data order.", None),
        (f"Preset: {lesson.preset}. Every optimizer sheet states the conventions it follows "
         "in row 2 and where other frameworks differ.", None),
        ("Yellow cells are inputs with names (lr, beta1, ...): change one and the sheet retrains "
         "in Excel, LibreOffice or Google Sheets. No macros, no Solver, no volatile functions.", None),
        ("Each row's b and a are the previous row's new b and new a, across epoch boundaries too.",
         None),
        ("Every formula cell also stores its value, computed by sheetdl's NumPy reference math; "
         "`sheetdl verify FILE` recalculates all formulas and checks them against it.", None),
        ("Sheets: data (x, y); " + ", ".join(lesson.optimizers) + "; compare (all optimizers' "
         "mean loss per epoch).", None),
        ("Defined names: x, y (workbook); on each optimizer sheet its hyperparameters under "
         "torch's names, b_init, a_init, and b_trace, a_trace, loss_trace (one cell per step).",
         None),
    ]
    return Sheet("about", static_rows([(i, [(0, None, t, s or "text")])
                                       for i, (t, s) in enumerate(lines)]), widths={0: 120})


def build(lesson: Lesson) -> Book:
    sheets = [about_sheet(lesson), data_sheet(lesson)]
    sheets += [optimizer_sheet(lesson, k) for k in lesson.optimizers]
    sheets.append(compare_sheet(lesson))
    n = len(lesson.x)
    meta = {
        "lesson": "graddesc", "format": 1, "preset": lesson.preset, "epochs": lesson.epochs,
        "samples": n, "drop_last_update": lesson.drop_last_update,
        "sheets": {k: {"optimizer": k, "options": opt.options()}
                   for k, opt in lesson.optimizers.items()},
    }
    return Book(sheets=sheets, names={"x": area("data", 1, 0, n), "y": area("data", 1, 1, n)},
                title=f"sheetdl graddesc ({lesson.preset})", meta=meta)
