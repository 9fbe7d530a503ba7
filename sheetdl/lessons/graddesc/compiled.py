"""The per-sample training loop, compiled: the graddesc sheet's rows at machine speed.

``train`` returns what ``linear.train`` returns, bit for bit, about 50× sooner on a
long run. Nothing in it is a new copy of the math: the optimizer's step is lowered
from its formula templates (``formulas.optimizer_columns``, the text the sheet's
cells hold) by ``expr``, in the sheet's order of operations, and the model's
forward pass is ``linear.forward`` itself; numba compiles the loop once per
optimizer layout (options and schedule) and keeps it for the process.

The reference loop ``linear.train`` runs instead where numba is not installed, where
the run needs what the loop does not model (the course's per-epoch annealing), and
where any intermediate of any step is not finite (an overflow is #NUM! in a sheet,
and the reference reproduces it): the fallback is the reference itself, so a
result never depends on which of the two ran.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ...math import expr, lower, memory, schedules
from . import model as linear
from ...sheet.formulas import optimizer_columns
from ...math.optim import Optimizer

#: Below this many steps the reference loop is as quick as compiling (once a process).
MIN_STEPS = 2_000


#: Whether numba is there to compile the loop (a name of this module, so tests can say no).
available = lower.numba_available


def train(opt: Optimizer, x, y, *, epochs: int | None = None, b_init: float, a_init: float,
          drop_last_update: bool = False, schedule=None, anneal=None,
          steps: int | None = None, force: bool = False) -> linear.Trace:
    """``linear.train``'s trace, from the compiled loop where it applies (see the module's
    docstring); ``force`` compiles even a short run (for tests)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    total = len(x) * epochs if steps is None else steps
    reference = lambda: linear.train(opt, x, y, epochs=epochs, b_init=b_init, a_init=a_init,
                                     drop_last_update=drop_last_update, schedule=schedule,
                                     anneal=anneal, steps=steps)
    if anneal is not None or len(x) == 0 or not available() or (total < MIN_STEPS
                                                                 and not force):
        return reference()
    try:
        trace = _run(opt, x, y, total, float(b_init), float(a_init), drop_last_update, schedule)
    except expr.FormulaError:  # a rule the loop cannot lower: never the case for the registry's
        return reference()
    return trace if trace is not None else reference()


def _run(opt, x, y, steps, b_init, a_init, drop_last_update, schedule):
    sched = schedule if schedule is not None and schedule.scheduled else None
    step_opt = schedules.adapt(opt, sched)
    keys = tuple(schedules.scheduled_values(step_opt, sched)) if sched else ()
    loop = _compile(lower.layout(step_opt), keys)
    hyper = np.array([float(getattr(step_opt, h)) for h in loop.hyper])
    if sched is not None:
        per_step = [sched.hyper_at(t) for t in range(1, steps + 1)]
        scheduled = np.array([[h[k] for k in keys] for h in per_step], dtype=float)
    else:
        scheduled = np.empty((steps, 0))
    params = np.array([b_init, a_init])
    state = step_opt.init(params)
    start = np.array([float(state[k]) if i is None else float(np.asarray(state[k])[i])
                      for k, i in loop.state])
    repeats = -(-steps // len(x))
    xs, ys = (x, y) if repeats == 1 and steps == len(x) else \
        (np.tile(x, repeats)[:steps], np.tile(y, repeats)[:steps])
    out = np.empty((steps, len(loop.outputs)))
    with memory.populated(out):  # the loop runs without the GIL, the pages are mapped beside
        failed = loop.fn(xs, ys, b_init, a_init, hyper, scheduled, start, len(x),
                         bool(drop_last_update), out)
    if failed >= 0:
        return None
    # views into one array: a parameter's b and a columns are side by side in it
    where = {name: i for i, name in enumerate(loop.outputs)}
    col = {name: out[:, i] for name, i in where.items()}
    shown = {}
    for key, per_param in loop.shown:
        shown[key] = out[:, where[f"{key}_b"]:where[f"{key}_b"] + 2] if per_param else col[key]
    if "grad" not in shown:  # decoupled decay: g is the raw gradient, as update shows it
        shown["grad"] = out[:, where["grad_b_raw"]:where["grad_b_raw"] + 2]
    for k in keys:
        shown[k] = scheduled[:, keys.index(k)]
    lr = shown["lr"] if "lr" in keys else np.full(steps, float(opt.lr))
    initial = {"new": params.copy(), **{k: v for k, v in state.items() if k != "t"}}
    return linear.Trace(x=xs, y=ys, b=col["b"], a=col["a"], pred=col["pred"], err=col["err"],
                        loss=col["loss"], grad_b=col["grad_b_raw"], grad_a=col["grad_a_raw"],
                        shown=shown, initial=initial, lr=lr)


@dataclass
class _Loop:
    fn: object
    hyper: list[str]                      # the named inputs, in the order fn takes them
    state: list[tuple[str, int | None]]   # where each q_ variable starts: opt.init's key[i]
    outputs: list[str]                    # out's columns
    shown: list[tuple[str, bool]]         # the optimizer's columns: key, per parameter?


@lru_cache(maxsize=64)
def _compile(layout: tuple, scheduled: tuple[str, ...]) -> _Loop:
    """The loop for a layout of columns (``lower.layout``), the scheduled hyperparameters
    read per step: generated source, compiled by numba. The values are the loop's
    arguments, so a new lr is not a new compilation."""
    source, hyper, state, outputs, shown = _source(lower.rebuild(layout), scheduled)
    return _Loop(_load(source).loop, hyper, state, outputs, shown)


def _load(source: str):
    """The loop's module: the forward pass (``linear.forward``'s own source) and ``source``,
    compiled by numba and kept (``lower.load``), so a changed rule or model is a new file."""
    text = ("# generated by sheetdl.lessons.graddesc.compiled from the formula templates; "
            "do not edit\n"
            "import math\nimport numba\n\n\n@numba.njit(cache=True)\n"
            + inspect.getsource(linear.forward) + "\n\n"
            + '@numba.njit(cache=True, error_model="numpy", nogil=True)\n' + source)
    return lower.load(text, "loop")


def _source(opt: Optimizer, scheduled: tuple[str, ...]):
    """Python source of the loop over steps, from ``opt``'s formula columns.

    Variables: ``c_KEY_P`` this step's value of column KEY for parameter P (b or a),
    ``c_KEY`` a per-step scalar, ``q_...`` the step before's; ``t…`` intermediates.
    ``ok`` is false at the step's end if any was not finite: each formula's value is
    and-ed into it, and each operand an operation may turn finite (``expr.python``).
    Returns the source and what the caller passes and reads."""
    columns = optimizer_columns(opt, scheduled)
    keys = {c.key for c in columns}
    hyper = list(opt.hyperparameters)
    hyper = [h for h in hyper if h not in scheduled]
    temps = [0]
    body: list[str] = []
    state: list[str] = []        # q_ variables the caller starts from opt.init
    start: list[tuple[str, int | None]] = []
    defined: set[str] = set()

    emitted: set[str] = set()

    def emit_into(lines):
        def emit(src: str) -> str:
            temps[0] += 1
            name = f"t{temps[0]}"
            lines.append(f"{name} = {src}")
            emitted.add(name)
            return name
        return emit

    def check_into(lines):
        def check(value: str) -> None:  # false for inf and NaN
            if value in emitted:  # the inputs are checked where they are made
                lines.append(f"ok &= {value} - {value} == 0.0")
        return check

    def resolver(param: str | None):
        def ref(tok: expr.Token) -> str:
            key = tok.key
            if key == "step":
                return "step"
            if key in scheduled and not tok.prev:
                return f"s_{key}"
            if key == "p":
                return f"p_{param}"
            if key == "g" or (key == "grad" and "grad" not in keys):
                return f"g_{param}"
            col = next((c for c in columns if c.key == key), None)
            if col is None:
                raise expr.FormulaError(f"{{{key}}} is no column of {opt.name}")
            var = f"{key}_{param}" if col.per_param else key
            if param is None and col.per_param:
                raise expr.FormulaError(f"scalar column reads per-parameter {{{key}}}")
            if tok.prev:
                if f"q_{var}" not in state:
                    state.append(f"q_{var}")
                    start.append((key, "ba".index(param) if col.per_param else None))
                return f"q_{var}"
            if var not in defined:
                raise expr.FormulaError(f"{{{key}}} is read before it is computed")
            return f"c_{var}"
        return ref

    def name(h: str) -> str:
        if h not in hyper:
            raise expr.FormulaError(f"{h} is no input of {opt.name}")
        return f"h_{h}"

    outputs, shown = [], []
    for c in columns:
        texts = c.formula if isinstance(c.formula, list) else [c.formula]
        trees = [expr.parse(t) for t in texts]
        for param in (("b", "a") if c.per_param else (None,)):
            var = f"{c.key}_{param}" if param else c.key
            branches = []
            for tree in trees:
                lines: list[str] = []
                # a value not finite anywhere in a formula reaches the formula's value
                # unless an operation absorbs it: those operands, and the value, are checked
                value = expr.python(tree, resolver(param), name, emit_into(lines),
                                    check_into(lines))
                lines.append(f"c_{var} = {value}")
                lines.append(f"ok &= c_{var} - c_{var} == 0.0")
                branches.append(lines)
            if len(branches) == 1:
                body += branches[0]
            else:  # the first step's own rule (torch's first momentum step), then the rest
                body.append("if i == 0:")
                body += ["    " + line for line in branches[0]]
                body.append("else:")
                body += ["    " + line for line in branches[1]]
            defined.add(var)
            outputs.append(var)
        shown.append((c.key, c.per_param))
    # a previous value the formulas read is this step's value at the step's end
    carry = [f"{q} = c_{q[2:]}" for q in state]
    fixed = ["b", "a", "pred", "err", "loss", "grad_b_raw", "grad_a_raw"]  # b, a side by side
    outputs = fixed + outputs
    lines = [
        "def loop(xs, ys, b_init, a_init, hyper, scheduled, start, n, drop_last_update, out):",
        *[f"    h_{h} = hyper[{i}]" for i, h in enumerate(hyper)],
        *[f"    {q} = start[{i}]" for i, q in enumerate(state)],
        "    p_b, p_a = b_init, a_init",
        "    in_b, in_a = b_init, a_init",
        "    for i in range(xs.shape[0]):",
        "        if drop_last_update and i > 0 and i % n == 0:",
        "            p_b, p_a = in_b, in_a",  # the course's VBA restarts from the last inputs
        "        in_b, in_a = p_b, p_a",
        "        step = float(i + 1)",
        *[f"        s_{k} = scheduled[i, {j}]" for j, k in enumerate(scheduled)],
        "        pred, err, loss, g_b, g_a = forward(p_b, p_a, xs[i], ys[i])",
        "        ok = (pred + err + loss + g_b + g_a) * 0.0 == 0.0",
        *["        " + line for line in body],
        "        if not ok:",  # some intermediate overflowed or is NaN: #NUM! in a sheet
        "            return i",
        *[f"        out[i, {j}] = {v}" for j, v in enumerate(
            ["p_b", "p_a", "pred", "err", "loss", "g_b", "g_a"]
            + [f"c_{o}" for o in outputs[len(fixed):]])],
        *["        " + line for line in carry],
        "        p_b, p_a = c_new_b, c_new_a",
        "    return -1",
    ]
    return "\n".join(lines) + "\n", hyper, start, outputs, shown
