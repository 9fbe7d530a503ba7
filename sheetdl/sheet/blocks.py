"""Full-batch training laid out as one block of rows per step.

A block is ``height`` rows. Its first two rows hold scalars (labels, then
values): the step number, the lesson's loss and accuracy, and the optimizer's
per-step scalars (β₁ᵗ, lr_t, ...). Below, the lesson's own band (examples,
predictions) and one band per parameter group, where the group's matrices θ,
g, optimizer state and new θ stand side by side. Block 0 holds the initial
values (new θ = the init, states at their start), so a token ``{key@prev}``
is the same cell one block up, whatever the step.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..math import lrfind, schedules
from .workbook import Chart, Series, Sheet, area, col_name, number_format, ref
from .formulas import (INPUT_ROW, Column, Template, finder_chart, finder_columns, finder_status,
    finder_summary, fit_headers, fit_inputs, optimizer_columns, renamer, schedule_columns,
    schedule_keys, status_cell)
from ..math.optim import Optimizer

#: Rows of a block's scalar labels and values, from the block's top.
SCALAR_LABEL_ROW, SCALAR_ROW = 0, 1

# The first screen of a block lesson (A1:T40, issue 11): rows 1–6 inputs and status; from
# row 7 the trace table (A–D, continuing down), the charts from column F and the model at
# a chosen step beside and below them. The blocks start under all of it.
SCREEN_ROW = 6                  # row 7: the trace table's header, the charts' top
TRACE_COL = 0
CHART_COL = 5                   # F
CHART_WIDTH, CHART_HEIGHT = 400, 288
ROW_PX, COL_PX = 20, 75         # a default row; a column of width 10
CHART_ROWS = -(-CHART_HEIGHT // ROW_PX)
CHART_COLS = -(-CHART_WIDTH // COL_PX)
PANEL_COL = CHART_COL + CHART_COLS  # the model panel, right of the first chart
BELOW_CHART = SCREEN_ROW + CHART_ROWS + 1  # the row under the first chart
SCREEN_ROWS = 40


def blocks_top(*bottoms: int) -> int:
    """The sheet row of block 0: under the first screen and everything placed on it
    (``bottoms``: the last row each part uses), after a blank row."""
    return max(SCREEN_ROWS, *bottoms) + 2


def across_blocks(lay: "Layout", steps: int, rows: tuple[int, int],
                  cols: tuple[int, int]) -> str:
    """The same block-relative cells (``rows``, ``cols``: first and last) of every step's
    block, as space-separated A1 ranges: one conditional format colours them all."""
    (r0, r1), (c0, c1) = rows, cols
    return " ".join(f"{ref(lay.block_row(b) + r0, c0)}:{ref(lay.block_row(b) + r1, c1)}"
                    for b in range(1, steps + 1))


def at_step(lay: "Layout", row_in_block: int, col: int, show: str, steps: int) -> str:
    """A formula showing the cell at (``row_in_block``, ``col``) of the block whose step is
    in cell ``show`` (1..steps): INDEX down the column, one block height at a time, so a
    learner can pick a step without OFFSET or INDIRECT."""
    c = col_name(col)
    first = lay.block_row(1) + row_in_block + 1
    last = lay.block_row(steps) + row_in_block + 1
    return f"=INDEX(${c}${first}:${c}${last},({show}-1)*{lay.height}+1)"


def step_picker(row: int, col: int, steps: int, what: str) -> tuple[list, tuple]:
    """A panel's yellow "show step" cell at (``row``, ``col`` + 1), its label before it and
    its hint after: (the row's cells, the cell's validation, 1 to ``steps``)."""
    cells = [(col, None, "show step", "label"), (col + 1, None, steps, "input"),
             (col + 2, None, f"of {steps}: type a step to see {what} then", "subtitle")]
    rule = {"validate": "integer", "criteria": "between", "minimum": 1, "maximum": steps,
            "input_title": "show step", "input_message": f"a step from 1 to {steps}",
            "error_message": f"a whole step number, 1 to {steps}"}
    return cells, (row, col + 1, rule)


@dataclass
class Group:
    """A parameter matrix of the sheet: element (i, j) is θ[index(i, j)]."""

    name: str
    rows: int
    cols: int
    index: Callable[[int, int], int]
    row_labels: list[str]
    col_labels: list[str]
    band: int = 0   # block-relative row of element row 0 (set by the layout)
    #: inputs this group reads under another name (discriminative rates: lr → lr_layer1)
    inputs: dict[str, str] = field(default_factory=dict)
    #: steps at the start the optimizer skips this group (as torch does a parameter with
    #: no grad), while the named input ``freeze_steps`` is the step it last skips
    frozen: int = 0

    @property
    def own_steps(self) -> bool:
        """Whether its per-step optimizer quantities (β₁ᵗ...) are its own, not the
        shared ones: a frozen group counts its own steps, a renamed input changes them."""
        return bool(self.frozen or self.inputs)


#: the input naming the last step a frozen group is skipped
FREEZE_STEPS = "freeze_steps"
#: what a frozen group's intermediates show while the optimizer skips it
FROZEN = "frozen"
def for_group(group: Group, column: Column, texts: list[str]) -> list[str]:
    """``column``'s [first step, later steps] templates as ``group`` reads them: its inputs
    renamed and, when frozen, each wrapped so that through step ``freeze_steps`` a state
    keeps its value (θ its own, an intermediate shows "frozen") and the group's own step
    count, ``{step} − freeze_steps``, drives everything after."""
    if group.inputs:
        texts = list(map(renamer(group.inputs), texts))
    if not group.frozen:
        return texts
    first, rest = (t.replace("{step}", f"({{step}}-{FREEZE_STEPS})")[1:] for t in texts)
    body = rest if first == rest else f"IF({{step}}={FREEZE_STEPS}+1,{first},{rest})"
    kept = ("{p}" if column.key == "new" else
            f"{{{column.key}@prev}}" if column.init is not None else f'"{FROZEN}"')
    wrapped = f"=IF({{step}}<={FREEZE_STEPS},{kept},{body})"
    return [wrapped, wrapped]


@dataclass
class Quantity:
    key: str
    title: str
    note: str
    column: Column | None  # None for θ and the raw gradient, which the layout writes


@dataclass
class Layout:
    opt: Optimizer
    groups: list[Group]
    lesson_rows: int               # rows of the lesson band, starting at row 3
    scalars: list[tuple[str, str, str]]  # lesson scalars (key, label, note), after "step"
    top: int = 0                   # sheet row of block 0
    schedule: object = None        # a schedules.Schedule: lr (and momentum) per step
    quantities: list[Quantity] = field(default_factory=list)
    scalar_columns: list[Column] = field(default_factory=list)
    scalar_col: dict[str, int] = field(default_factory=dict)
    matrix_col: dict[tuple[str, str], int] = field(default_factory=dict)
    height: int = 0
    #: number formats by quantity or scalar key (``book.number_format``), else General
    formats: dict[str, str] = field(default_factory=dict)
    #: what a block is, in its label and its count's header: "step", or "epoch" (collab)
    counter: str = "step"

    def __post_init__(self):
        self.scalars = list(self.scalars) + [(c.key, c.header, c.note)
                                             for c in schedule_columns(self.schedule)]
        cols = optimizer_columns(schedules.adapt(self.opt, self.schedule),
                                 schedule_keys(self.schedule))
        self.quantities = [Quantity("p", "θ", "the parameters at the start of this step: "
                                    "the previous block's new θ", None),
                           Quantity("g", "∂L/∂θ", "the gradient of the loss", None)]
        self.quantities += [Quantity(c.key, c.header, c.note, c) for c in cols if c.per_param]
        self.scalar_columns = [c for c in cols if not c.per_param]
        keys = ["step"] + [k for k, _, _ in self.scalars] + [c.key for c in self.scalar_columns]
        keys += [f"{c.key}|{g.name}" for g in self.groups if g.own_steps
                 for c in self.scalar_columns]
        self.scalar_col = {k: 1 + i for i, k in enumerate(keys)}
        row = 3 + self.lesson_rows + (1 if self.lesson_rows else 0)
        for g in self.groups:
            g.band = row + 2  # a title row and a column-label row first
            for q, quantity in enumerate(self.quantities):
                self.matrix_col[(g.name, quantity.key)] = 1 + q * (g.cols + 1)
            row = g.band + g.rows + 1
        self.height = row + 1

    def width(self) -> int:
        return max(1 + len(self.quantities) * (g.cols + 1) for g in self.groups)

    def block_row(self, block: int) -> int:
        return self.top + block * self.height

    def cell(self, block: int, group: Group, key: str, i: int, j: int) -> str:
        return ref(self.block_row(block) + group.band + i,
                   self.matrix_col[(group.name, key)] + j)

    def scalar(self, block: int, key: str, absolute: bool = False) -> str:
        return ref(self.block_row(block) + SCALAR_ROW, self.scalar_col[key], absolute)

    def area(self, block: int, group: Group, key: str, rows=None, cols=None) -> str:
        r0, r1 = rows or (0, group.rows - 1)
        c0, c1 = cols or (0, group.cols - 1)
        base = self.matrix_col[(group.name, key)]
        top = self.block_row(block) + group.band
        return f"{ref(top + r0, base + c0, True)}:{ref(top + r1, base + c1, True)}"

    # -- templates -----------------------------------------------------------------

    def _resolver(self, group: Group | None, i: int, owner: Group | None = None):
        """Tokens for element row i of ``group``, or for the scalar row if None (there,
        ``owner``'s own per-step quantities where it has them)."""
        here = SCALAR_ROW if group is None else group.band + i
        coupled = any(q.key == "grad" for q in self.quantities)
        owner = owner or group

        def resolve(key: str, prev: bool) -> tuple[int, int]:
            back = -self.height if prev else 0
            if owner is not None and f"{key}|{owner.name}" in self.scalar_col:
                return self.scalar_col[f"{key}|{owner.name}"], SCALAR_ROW - here + back
            if key in self.scalar_col:
                return self.scalar_col[key], SCALAR_ROW - here + back
            if key == "grad" and not coupled:
                key = "g"
            return self.matrix_col[(group.name, key)], back  # j is added by the caller

        return resolve

    def templates(self, group: Group, i: int, j: int, column: Column) -> list[Template]:
        resolve = self._resolver(group, i)

        def shifted(key, prev):
            col, drow = resolve(key, prev)
            return (col + j, drow) if key not in self.scalar_col else (col, drow)

        texts = column.formula if isinstance(column.formula, list) else [column.formula] * 2
        return [Template(t, shifted) for t in for_group(group, column, texts)]

    def scalar_templates(self, column: Column, owner: Group | None = None) -> list[Template]:
        """``column``'s per-step templates, shared or ``owner``'s own copy."""
        texts = column.formula if isinstance(column.formula, list) else [column.formula] * 2
        if owner is not None:
            texts = for_group(owner, column, texts)
        return [Template(t, self._resolver(None, 0, owner)) for t in texts]

    def own_scalars(self):
        """(group, column, its key) of each group's own per-step quantities."""
        return [(g, c, f"{c.key}|{g.name}") for g in self.groups if g.own_steps
                for c in self.scalar_columns]


    def schedule_cells(self, block: int, shown: dict) -> list[tuple[str, str, float]]:
        """(key, formula, value) of block ``block``'s scheduled lr and momentum."""
        row = self.block_row(block) + SCALAR_ROW
        return [(c.key, Template(c.formula, self._resolver(None, 0)).render(row),
                 float(shown[c.key])) for c in schedule_columns(self.schedule)]

    # -- cells ---------------------------------------------------------------------

    def set_formats(self, trace) -> None:
        """Pick each quantity's number format from its values over the whole ``trace``
        (``.theta`` and ``.shown``); the lesson sets the gradient's, ``formats["g"]``."""
        with np.errstate(all="ignore"):
            self.formats["p"] = self.formats["new"] = number_format(trace.theta)
            for q in self.quantities:
                if q.key not in ("p", "g", "new") and trace.shown:
                    self.formats[q.key] = number_format([sh[q.key] for sh in trace.shown])
            for c in self.scalar_columns:
                if trace.shown:
                    self.formats[c.key] = number_format([sh[c.key] for sh in trace.shown])
            for _, c, key in self.own_scalars():
                if trace.shown:
                    self.formats[key] = number_format([sh[key] for sh in trace.shown])

    def start_validations(self) -> list[tuple[int, int, dict]]:
        """Validation of block 0's yellow starting values (when they are inputs there)."""
        rule = {"validate": "decimal", "criteria": "between", "minimum": -1e6, "maximum": 1e6,
                "input_title": "starting value",
                "input_message": "a starting parameter; every step recomputes from it"}
        return [(self.block_row(0) + g.band + i, self.matrix_col[(g.name, "new")] + j, rule)
                for g in self.groups for i in range(g.rows) for j in range(g.cols)]

    def style(self, key: str, base: str = "general") -> str:
        fmt = self.formats.get(key)
        return f"{base}|{fmt}" if fmt else base

    def cells(self, block: int, *, theta: np.ndarray | None, grad: np.ndarray | None,
              shown: dict | None, init_state: dict | None, grad_formula=None,
              scalar_cells=(), notes: list | None = None, init_ref=None) -> dict[int, list]:
        """Cells of one block by sheet row. Block 0 (``theta`` = the initial θ,
        ``init_state``) holds the start; block t ≥ 1 (``theta`` = θ before the
        step, ``grad`` the raw gradient, ``shown`` the optimizer's
        intermediates) one step. ``grad_formula(group, i, j)`` is the lesson's
        gradient formula; ``scalar_cells`` its (key, formula, value) scalars;
        ``init_ref(group, i, j)`` the cell holding a starting value, when the start is an
        input elsewhere (block 0 then reads it)."""
        r0 = self.block_row(block)
        rows: dict[int, list] = {}

        def put(row, col, formula, value, style):
            rows.setdefault(r0 + row, []).append((col, formula, value, style))

        first = block == 1
        put(SCALAR_LABEL_ROW, 0, None, f"{self.counter} {block}" if block else "start", "bold")
        own = {key: (g, c) for g, c, key in self.own_scalars()}
        for key, col in self.scalar_col.items():
            label = {"step": self.counter}.get(key) or next(
                (lbl for k, lbl, _ in self.scalars if k == key), None) or next(
                (c.header for c in self.scalar_columns if c.key == key), None) or (
                f"{own[key][1].header} ({own[key][0].name})")
            put(SCALAR_LABEL_ROW, col, None, label, "label")
        if block == 0:
            put(SCALAR_ROW, self.scalar_col["step"], None, 0, "int")
            for c in self.scalar_columns:
                if c.init is not None:
                    put(SCALAR_ROW, self.scalar_col[c.key], None, float(c.init), "general")
            for key, (g, c) in own.items():
                if c.init is not None:
                    put(SCALAR_ROW, self.scalar_col[key], None, float(c.init), "general")
        else:
            put(SCALAR_ROW, self.scalar_col["step"], "=" + self.scalar(block - 1, "step") + "+1",
                block, "int")
            for key, formula, value in scalar_cells:
                put(SCALAR_ROW, self.scalar_col[key], formula, value, self.style(key, "summary"))
            for c in self.scalar_columns:
                t = self.scalar_templates(c)[0 if first else 1]
                put(SCALAR_ROW, self.scalar_col[c.key], t.render(r0 + SCALAR_ROW),
                    float(shown[c.key]), self.style(c.key))
            for key, (g, c) in own.items():
                t = self.scalar_templates(c, g)[0 if first else 1]
                value = FROZEN if block <= g.frozen and c.init is None else float(shown[key])
                put(SCALAR_ROW, self.scalar_col[key], t.render(r0 + SCALAR_ROW), value,
                    self.style(key))
        for g in self.groups:
            for q in self.quantities:
                base = self.matrix_col[(g.name, q.key)]
                title = {"p": "θ", "g": "∂L/∂θ", "new": "new θ"}.get(q.key, q.title)
                put(g.band - 2, base, None, f"{title} ({g.name})", "header_span")
                for j in range(1, g.cols):  # centred across the matrix's columns
                    put(g.band - 2, base + j, None, None, "header_span")
                if notes is not None and block == 1:
                    notes.append((r0 + g.band - 2, base, q.note))
                for j, lbl in enumerate(g.col_labels):
                    put(g.band - 1, base + j, None, lbl, "label")
            if g.frozen and block:
                # why these cells do not move, in words that follow the yellow input
                put(g.band - 2, 0, f'=IF({FREEZE_STEPS}>0,"frozen through step "&'
                    f'{FREEZE_STEPS},"not frozen")', f"frozen through step {g.frozen}", "bold")
                if notes is not None and block == 1:
                    notes.append((r0 + g.band - 2, 0, f"{g.name} is frozen (fastai's freeze) "
                                  "through step freeze_steps: torch.optim skips a parameter "
                                  "with no gradient, so its new θ is its θ, its optimizer "
                                  "state keeps its value and the rest shows \"frozen\". From "
                                  "the step after, it trains with its own step count, so "
                                  "Adam's bias correction starts again at 1, as torch's "
                                  "state does."))
            for i in range(g.rows):
                put(g.band + i, 0, None, g.row_labels[i], "bold")
                for j in range(g.cols):
                    idx = g.index(i, j)
                    for q in self.quantities:
                        col = self.matrix_col[(g.name, q.key)] + j
                        row = g.band + i
                        if block == 0:
                            if q.key == "new" and init_ref is not None:
                                put(row, col, "=" + init_ref(g, i, j), float(theta[idx]),
                                    self.style("new", "num"))
                            elif q.key == "new":
                                put(row, col, None, float(theta[idx]), "input")
                            elif q.column is not None and q.column.init is not None:
                                v = init_state[q.key]
                                v = float(v[idx]) if np.ndim(v) else float(v)
                                if q.column.init.startswith("="):
                                    put(row, col, q.column.init, v, "general")
                                else:
                                    put(row, col, None, float(q.column.init), "general")
                            continue
                        if q.key == "p":
                            put(row, col, "=" + self.cell(block - 1, g, "new", i, j),
                                float(theta[idx]), self.style("p", "num"))
                        elif q.key == "g":
                            put(row, col, grad_formula(g, i, j), float(grad[idx]),
                                self.style("g"))
                        else:
                            t = self.templates(g, i, j, q.column)[0 if first else 1]
                            skipped = (block <= g.frozen and q.key != "new"
                                       and q.column.init is None)
                            put(row, col, t.render(r0 + row),
                                FROZEN if skipped else float(shown[q.key][idx]),
                                self.style(q.key, "num" if q.key == "new" else "general"))
        return rows


def interleave(block_rows: dict[int, list], pending: dict[int, list]):
    """Yield a block's rows in order, first emitting (and merging) the rows of ``pending``
    (cells beside the blocks, such as a trace table) that come before or on them."""
    for row in sorted(block_rows):
        while pending and min(pending) < row:
            r = min(pending)
            yield r, pending.pop(r)
        yield row, sorted(block_rows[row] + pending.pop(row, []), key=lambda c: c[0])


def stream_blocks(lay: "Layout", trace, beside: list[dict[int, list]], step_cells: Callable,
                  *, notes: list, init_ref=None):
    """Every block's rows in order: block 0 the start (θ₀ and the optimizer's initial
    state; ``init_ref`` as in ``Layout.cells``), block t ≥ 1 ``step_cells(t)``; the cells
    of ``beside`` (by row: the trace table, a panel) merged into the rows they share, the
    rest after the last block."""
    pending: dict[int, list] = {}
    for part in beside:
        for row, cells in part.items():
            pending.setdefault(row, []).extend(cells)
    for block in range(len(trace.steps) + 1):
        cells = step_cells(block) if block else lay.cells(
            0, theta=trace.theta[0], grad=None, shown=None, init_state=trace.initial_state,
            notes=notes, init_ref=init_ref)
        yield from interleave(cells, pending)
    for r in sorted(pending):
        yield r, sorted(pending[r], key=lambda c: c[0])


def finder_table(result, steps: int, *, top: int, step_col: int, loss_col: int, lr_col: int,
                 first_col: int, sheet: str, summary_col: int, chart_at: tuple[int, int]):
    """The lr finder beside a block layout's trace table (one row per step from ``top``,
    headers on ``top - 1``): its bookkeeping columns from ``first_col``, its summary at
    ``summary_col`` and its chart at ``chart_at``, with the sheet-scoped names and notes.
    Returns (cells by row, names, chart, notes, widths, status cell)."""
    cols = finder_columns()
    where = {"step": step_col, "loss": loss_col, "lr": lr_col}
    where.update({c.key: first_col + i for i, c in enumerate(cols)})
    resolve = lambda key, prev: (where[key], -1 if prev else 0)
    compiled = [(c, [Template(t, resolve) for t in (c.formula if isinstance(c.formula, list)
                                                      else [c.formula] * 2)]) for c in cols]
    s_col = summary_col
    rows: dict[int, list] = {top - 1: [(where[c.key], None, c.header, "header") for c in cols]
                             + [(s_col, None, "finder", "header")]}
    # slope and "smoothed used" are "" outside the window: scientific suits what remains
    fmt = {c.key: c.style if c.style == "int" else
           f"general|{number_format(getattr(result, c.key))}"
           for c in cols if c.key not in ("smooth_in", "slope")}
    for t in range(steps):
        cells = []
        for c, (first, later) in compiled:
            v = getattr(result, c.key)[t]
            cells.append((where[c.key], (later if t else first).render(top + t),
                          v.item() if hasattr(v, "item") else v,
                          fmt.get(c.key, "general|0.000E+00")))
        rows[top + t] = cells
    last = top + steps - 1
    col_area = lambda key: f"{ref(top, where[key], True)}:{ref(last, where[key], True)}"
    summary, names = finder_summary(result, steps, s_col, top, col_area)
    status = finder_status(result, s_col, top, col_area)
    for row, cells in summary.items():
        rows.setdefault(row, []).extend(cells)
    names.update({"lr_trace": col_area("lr"), "loss_trace": col_area("loss"),
                  "smooth_loss_trace": col_area("smooth")})
    chart = finder_chart(sheet, *chart_at, top, last, where, width=CHART_WIDTH + 80,
                         height=CHART_HEIGHT)
    notes = [(top - 1, where[c.key], c.note) for c in cols]
    widths = fit_headers({s_col: 30, s_col + 1: 12}, [(where[c.key], c.header) for c in cols])
    return rows, names, chart, notes, widths, status


@dataclass
class FinderRun:
    """The lr finder of a block lesson: a copy of the lesson trained under the lrfind
    schedule, and what ``lrfind.analyse`` makes of it."""

    lesson: object
    result: lrfind.Finder
    smooth_beta: float
    stop_factor: float

    def inputs(self) -> dict[str, float]:
        """The finder's own named inputs."""
        return {"smooth_beta": self.smooth_beta, "stop_factor": self.stop_factor}

    def table(self, top: int, trace_col: int, sheet: str):
        """``finder_table`` beside a trace table whose columns from ``trace_col`` are step,
        loss, a metric and lr: the chart right of it, the summary right of the chart
        (both on the first screen), the bookkeeping columns after the summary."""
        summary_col = CHART_COL + CHART_COLS + 2
        return finder_table(self.result, len(self.result.smooth), top=top, step_col=trace_col,
                            loss_col=trace_col + 1, lr_col=trace_col + 3,
                            first_col=summary_col + 3, sheet=sheet, summary_col=summary_col,
                            chart_at=(SCREEN_ROW, CHART_COL))


def run_finder(lesson, train: Callable, *, steps_field: str, block_height: int, top: int,
               max_rows: int, steps=None, lr_min=None, lr_max=None, smooth_beta=None,
               stop_factor=None) -> FinderRun:
    """Train a copy of ``lesson`` (its ``steps_field`` set to the finder's steps) with
    ``train(schedule, steps)``, which returns a trace of ``steps`` and ``shown``."""
    steps, beta, stop = lrfind.settings(steps, smooth_beta, stop_factor)
    if top + (steps + 1) * block_height > max_rows:
        raise ValueError(f"{steps} lr finder steps are past Excel's {max_rows:,} rows; "
                         "use fewer --lrfind-steps")
    sched = schedules.make("lrfind", steps=steps, optimizer=lesson.kind, lr=lesson.opt.lr,
                           preset=lesson.preset, lr_min=lr_min, lr_max=lr_max)
    run = dataclasses.replace(lesson, **{steps_field: steps}, schedule=sched, trace=None,
                              finder=None)
    with np.errstate(all="ignore"):
        run.trace = train(sched, steps)
    result = lrfind.analyse([sh["lr"] for sh in run.trace.shown],
                            [st.loss for st in run.trace.steps], beta, stop)
    return FinderRun(run, result, beta, stop)


def training_sheet(name: str, rows, lay: "Layout", table: "TraceTable", inputs: list[str],
                   names: dict[str, str], *, notes, validations, charts,
                   unique_names: bool) -> Sheet:
    """A block lesson's training sheet: columns sized for the blocks, the trace table and
    the input labels, column A frozen; with ``unique_names`` (a finder sheet beside it),
    its formulas read the inputs through workbook-unique names."""
    widths = {c: 10 for c in range(lay.width() + 1)}
    widths.update(table.widths())
    heights = fit_inputs(inputs, widths)
    widths[0] = 12
    sheet = Sheet(name, rows, widths=widths, heights=heights, freeze=(0, 1), notes=notes,
                  validations=validations, charts=charts)
    if unique_names:
        use_unique_names(sheet, names, inputs)
    return sheet


def use_unique_names(sheet, names: dict[str, str], inputs: list[str]) -> None:
    """Make ``sheet``'s formulas read ``inputs`` (and ``finder_stop``) through names unique in
    the workbook, ``<sheet>_<input>``: with a finder sheet beside the train sheet, both
    define ``lr``..., and Google Sheets keeps one name per spreadsheet. The torch-named
    names stay for verify and other tools."""
    keys = [h for h in [*inputs, "finder_stop"] if h in names]
    unique = {h: f"{sheet.name}_{h}" for h in keys}
    rename = renamer(unique)
    rows = sheet.rows
    sheet.rows = lambda: ((r, [(c, rename(f) if isinstance(f, str) else f, v, st)
                               for c, f, v, st in cells]) for r, cells in rows())
    target = lambda h: names[h] if "!" in names[h] else f"{sheet.name}!{names[h]}"
    sheet.book_names.update({unique[h]: target(h) for h in keys})


def add_finder_sheet(lesson, train_sheet: Callable, sheets: list, meta: dict,
                     steps_field: str) -> None:
    """Append the lesson's finder sheet (names scoped to it) and its replay metadata."""
    if lesson.finder is None:
        return
    run = lesson.finder.lesson
    sheet, names = train_sheet(run, "lrfind", lesson.finder)
    sheet.names = {k: v.split("!", 1)[1] for k, v in names.items()}
    sheets.append(sheet)
    meta["lrfind"] = {"sheet": "lrfind", "steps": getattr(run, steps_field),
                      "schedule": run.schedule.options()}


@dataclass
class TraceTable:
    """The trace beside a block lesson's blocks: from ``top``, one row per step with its
    number (``counter``), loss, a metric and, under a schedule, lr, each a formula reading
    the block's scalar; on a finder sheet the finder's columns and summary beside it."""

    lay: Layout
    trace: object              # .steps (with .loss and the metric) and .shown per step
    top: int
    col: int
    sheet: str
    counter: str               # "step" or "epoch"
    loss_header: str
    metric: tuple[str, str]    # (scalar key, header)
    finder: FinderRun | None = None
    metric_style: str | None = None  # the metric's number format (e.g. percent)
    #: more per-step columns after the metric: (scalar key, header, the step's attribute)
    extras: tuple[tuple[str, str, str], ...] = ()

    def __post_init__(self):
        self.scheduled = self.lay.schedule is not None and self.lay.schedule.scheduled
        self.steps = len(self.trace.steps)
        self.last = self.top + self.steps - 1
        self.finder_parts = (self.finder.table(self.top, self.col, self.sheet)
                             if self.finder is not None else None)

    def rows(self) -> dict[int, list]:
        """Fresh cells by row (``interleave`` consumes them)."""
        col, key = self.col, self.metric[0]
        rows: dict[int, list] = {self.top - 1: [(col, None, self.counter, "header"),
                                                (col + 1, None, self.loss_header, "header"),
                                                (col + 2, None, self.metric[1], "header")]}
        rows[self.top - 1] += [(col + 3 + k, None, header, "header")
                               for k, (_, header, _) in enumerate(self.extras)]
        if self.scheduled:
            rows[self.top - 1].append((self.lr_col, None, "lr", "header"))
        steps = self.trace.steps
        loss_style = self.lay.style("loss", "summary")
        metric_style = self.metric_style or self.lay.style(key, "summary")
        lr_style = (f"summary|{number_format([sh['lr'] for sh in self.trace.shown])}"
                    if self.scheduled else None)
        for t, st in enumerate(steps, start=1):
            cells = rows.setdefault(self.top + t - 1, [])
            cells += [(col, None, t, "int"),
                      (col + 1, "=" + self.lay.scalar(t, "loss"), st.loss, loss_style),
                      (col + 2, "=" + self.lay.scalar(t, key), getattr(st, key), metric_style)]
            cells += [(col + 3 + k, "=" + self.lay.scalar(t, extra), getattr(st, attr),
                       self.lay.style(extra, "summary"))
                      for k, (extra, _, attr) in enumerate(self.extras)]
            if self.scheduled:
                cells.append((self.lr_col, "=" + self.lay.scalar(t, "lr"),
                              float(self.trace.shown[t - 1]["lr"]), lr_style))
        if self.finder_parts is not None:
            for row, cells in self.finder_parts[0].items():
                rows.setdefault(row, []).extend(cells)
        return rows

    @property
    def lr_col(self) -> int:
        return self.col + 3 + len(self.extras)

    def steps_formula(self) -> str:
        """The count of step rows, for the derived ``steps`` input: ROWS over the step
        numbers, which no formula depends on, so the schedule reading it makes no cycle."""
        return f"=ROWS({ref(self.top, self.col, True)}:{ref(self.last, self.col, True)})"

    def status(self, hyper: list[str], data_problem: str | None = None,
               also: tuple[str, str] | None = None) -> tuple[str, str]:
        """The status cell over this table's loss column (``status_cell``, ``also`` its
        clause after "training fine"), naming the inputs ``hyper`` as the yellow cells to
        change; on a finder sheet, the finder's."""
        if self.finder_parts is not None:
            return self.finder_parts[5]
        col, losses = self.col + 1, [s.loss for s in self.trace.steps]
        return status_cell(f"{ref(self.top, col, True)}:{ref(self.last, col, True)}", losses,
                           (ref(self.top, col), losses[0]), (ref(self.last, col), losses[-1]),
                           inputs=[(ref(INPUT_ROW, i), h) for i, h in enumerate(hyper)],
                           data_problem=data_problem, also=also, counter=self.counter)

    def cell(self, step: int, extra: int = -1) -> str:
        """Step ``step``'s (1-based) loss cell, or its ``extras[extra]`` cell."""
        return ref(self.top + step - 1, self.col + 1 if extra < 0 else self.col + 3 + extra)

    def metric_cell(self, step: int) -> str:
        """Step ``step``'s (1-based) metric cell (dead ReLUs, accuracy...)."""
        return ref(self.top + step - 1, self.col + 2)

    def names(self) -> dict[str, str]:
        """loss_trace, the metric's trace, each extra's, lr_trace and the finder's, as
        ``sheet!range``."""
        a = lambda c: area(self.sheet, self.top, c, self.last)
        names = {"loss_trace": a(self.col + 1), f"{self.metric[0]}_trace": a(self.col + 2)}
        names.update({f"{extra}_trace": a(self.col + 3 + k)
                      for k, (extra, _, _) in enumerate(self.extras)})
        if self.scheduled:
            names["lr_trace"] = a(self.lr_col)
        if self.finder_parts is not None:
            names.update({k: f"{self.sheet}!{v}" for k, v in self.finder_parts[1].items()})
        return names

    def charts(self, title: str, y_title: str, series: str, trace_name: str,
               at: list[tuple[int, int]], also: list[tuple[str, str]] = ()) -> list[Chart]:
        """The finder's chart on a finder sheet; else ``trace_name`` per step at ``at[0]``
        (with the (series, trace name) pairs ``also``) and, under a schedule, the lr at
        ``at[1]``."""
        if self.finder_parts is not None:
            return [self.finder_parts[2]]
        steps_area = area(self.sheet, self.top, self.col, self.last)
        names = self.names()
        # x is the step number: a scatter chart gives it a numeric axis (0, 20, 40...),
        # where a line chart's category labels run together in LibreOffice
        size = {"width": CHART_WIDTH, "height": CHART_HEIGHT, "scatter": True}
        charts = [Chart(*at[0], f"{self.sheet}: {title}", self.counter, y_title,
                        [Series(series, steps_area, names[trace_name])]
                        + [Series(name, steps_area, names[trace]) for name, trace in also],
                        **size)]
        if self.scheduled:
            charts.append(Chart(*at[1], f"{self.sheet}: learning rate per {self.counter}",
                                self.counter, "lr", [Series("lr", steps_area,
                                                            names["lr_trace"])], **size))
        return charts

    def notes(self) -> list:
        return self.finder_parts[3] if self.finder_parts is not None else []

    def widths(self) -> dict[int, float]:
        widths = {i: 10 for i in range(self.lr_col + self.scheduled)}
        widths[0] = 12
        if self.finder_parts is not None:
            widths.update(self.finder_parts[4])
        headers = ([self.counter, self.loss_header, self.metric[1]]
                   + [header for _, header, _ in self.extras] + ["lr"] * self.scheduled)
        return fit_headers(widths, [(self.col + i, h) for i, h in enumerate(headers)])
