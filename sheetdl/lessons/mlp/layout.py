"""Layout of the mlp lesson: a two-layer ReLU network trained full batch, one block per
step, every factor of the chain rule its own labelled column.

A block holds, per example: the inputs x and target y; the forward pass z1 = W1·x + b1,
a1 = MAX(0, z1), ŷ = W2·a1 + b2, the error and its square; the backward pass ∂L/∂ŷ,
∂L/∂a1 = ∂L/∂ŷ·W2, the ReLU mask [z1 > 0], ∂L/∂z1; and a finite-difference check of
W1[1,1]. With dropout, the masks (read from the masks sheet) and a1·mask/(1 − p) follow
a1, and an eval-mode ŷ and loss (no dropout) stand beside the training ones. Under the
examples, how many examples each unit is active on (0: a dead ReLU).
Below, the two layers' parameter matrices with ∂L/∂θ (SUMPRODUCT over the examples),
the optimizer's state and the new θ.

Data flows one way: options → ``mlp.train`` → this layout → ``xlsx.write``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...math import dropout as inverted_dropout
from ...math import fullbatch, lrfind, presets, schedules
from . import LEARNING_RATES as LESSON_LR
from . import model as mlp
from ...sheet.blocks import (BELOW_CHART, CHART_COL, CHART_ROWS, FREEZE_STEPS, PANEL_COL,
    SCREEN_ROW, TRACE_COL,
    FinderRun, Group, Layout, TraceTable, across_blocks, add_finder_sheet, at_step, blocks_top,
    run_finder,
    step_picker, stream_blocks, training_sheet)
from ...sheet import masks as masks_sheet
from ...sheet.workbook import (DIVERGING, SEQUENTIAL, Book, Chart, Series, Sheet, area,
    col_name, number_format, ref, static_rows)
from ..data import (EXCEL_MAX_COLS, EXCEL_MAX_ROWS, DataError, check_label, csv_rows, is_header,
                    is_number, not_a_number, number, read_text)
from ...sheet.formulas import (FINDER_HINT, INPUT_ROW, PLAIN, about_page, conventions, input_notes,
    input_rows, lr_input, input_validations, schedule_inputs)
from ...math.optim import Optimizer

#: The data sheet's first empty or non-numeric cell ("" when all are fine).
DATA_PROBLEM = "data_problem"
#: h of the finite-difference check. Between ReLU kinks the loss is quadratic in a weight,
#: so a central difference has no truncation error: what is left is rounding, ~ε·L/h, and
#: the chance that ±h pushes an example across its kink, which a small h keeps rare.
FD_H = 1e-4
#: The most hidden units: ŷ's formula writes out one product per unit, and a block is
#: five columns per unit wide.
MAX_HIDDEN = 64
#: Formula cells a build may write: beyond this the sheet is too slow to recalculate.
MAX_CELLS = 3_000_000


@dataclass
class Lesson:
    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target_name: str
    shape: mlp.Shape
    kind: str
    opt: Optimizer
    follows: str
    preset: str
    steps: int
    theta0: np.ndarray
    data_label: str
    fd_h: float = FD_H
    trace: mlp.Trace = field(default=None)
    schedule: schedules.Schedule | None = None
    finder: "FinderRun | None" = None
    dropout: float = 0.0
    masks: np.ndarray | None = None  # (steps, N, h) dropout masks, when dropout > 0
    norm: mlp.BatchNorm | None = None  # batch norm's settings, under --batchnorm
    lr_layer1: float | None = None     # layer 1's own rate (discriminative rates)
    freeze_steps: int = 0              # steps layer 1 is frozen at the start

    @property
    def evaluated(self) -> bool:
        """Whether eval mode differs from training: dropout off, running statistics."""
        return self.dropout > 0 or self.shape.batchnorm


def read_csv(path) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """Columns feature..., target, all numbers; a header line names them."""
    path = Path(path)
    # (line number, cells), blank lines skipped but counted, so errors name the real line
    rows = [(n, r) for n, r in csv_rows(read_text(path))
            if any(c.strip() for c in r)]
    header = header_line = None
    if rows and is_header(rows[0][1]):
        (header_line, header), rows = rows[0], rows[1:]
    if not rows:
        raise DataError(f"{path}: no data rows")
    width = len(rows[0][1])
    if width < 2:
        raise DataError(f"{path}: need at least one feature column and a target column")
    values = []
    for n, r in rows:
        if len(r) != width:
            raise DataError(f"{path}, line {n}: {len(r)} columns, expected {width}")
        bad = next((i for i, c in enumerate(r) if not is_number(c)), None)
        if bad is not None:
            raise DataError(f"{path}, line {n}, column {bad + 1}: {not_a_number(r[bad])}")
        v = [number(c) for c in r]
        if not all(np.isfinite(v)):
            raise DataError(f"{path}, line {n}: values must be finite numbers")
        values.append(v)
    if header is not None and len(header) != width:
        raise DataError(f"{path}, line {header_line}: the header names {len(header)} "
                        f"columns, the data has {width}")
    a = np.array(values)
    label = lambda h, default: check_label(h.strip(), f"{path}, line {header_line}",
                                               empty=True) or default
    names = [label(h, f"x{j + 1}") for j, h in enumerate(header[:-1])] if header else \
        [f"x{j + 1}" for j in range(width - 1)]
    return a[:, :-1], a[:, -1], names, label(header[-1], "y") if header else "y"


def _columns(d: int, h: int, dropout: bool = False, batchnorm: bool = False) -> dict[str, int]:
    """Block columns of the example band: x (d), y, z1 (h), with batch norm z1 − μ, x̂ and
    γ·x̂ + β (h each), a1 (h), with dropout its mask (h) and a1·mask/(1 − p) (h), ŷ, error,
    loss, in eval mode (dropout or batch norm) its a1 (batch norm), ŷ and loss, ∂L/∂ŷ, ∂L/∂a1
    (h), the ReLU mask (h), with batch norm ∂L/∂(γ·x̂ + β) and ∂L/∂x̂ (h each), ∂L/∂z1 (h),
    and the finite-difference columns (with batch norm unit 1's nudged z1, centred)."""
    normalised = [("c", h), ("xh", h), ("zb", h)] if batchnorm else []
    dropped = [("drop", h), ("kept", h)] if dropout else []
    evaluated = ([("ae", h)] if batchnorm else []) + (
        [("yev", 1), ("lev", 1)] if dropout or batchnorm else [])
    normalised_back = [("dzb", h), ("dxh", h)] if batchnorm else []
    nudged = [("fzp", 1), ("fzm", 1), ("fcp", 1), ("fcm", 1)] if batchnorm else []
    widths = ([("x", d), ("y", 1), ("z", h)] + normalised + [("a", h)] + dropped
              + [("yhat", 1), ("err", 1), ("loss", 1)] + evaluated
              + [("dy", 1), ("da", h), ("mask", h)] + normalised_back + [("dz", h)] + nudged
              + [("fdp", 1), ("fdm", 1)])
    cols, c = {}, 1
    for key, w in widths:
        cols[key] = c
        c += w
    cols["end"] = c
    return cols


@dataclass
class Groups:
    layer1: Group
    layer2: Group
    norm: Group | None = None  # batch norm's γ | β, one row per unit

    @property
    def all(self) -> list[Group]:
        return [self.layer1] + ([self.norm] if self.norm else []) + [self.layer2]


def _groups(lesson: Lesson) -> Groups:
    """Layer 1 as torch's weight (units × features) with b1 beside it (none under batch
    norm, whose γ | β follow as their own matrix); layer 2 shown as a column, one row per
    unit, so W2 stands on the same row as the unit it weighs, b2 under."""
    h, d = lesson.shape.hidden, lesson.shape.features
    units = [f"unit {j + 1}" for j in range(h)]
    weights = [f"W1 {name}" for name in lesson.feature_names]
    # the body (layer 1 and its batch norm) can have its own rate and be frozen
    body = dict(inputs={"lr": LR_LAYER1} if lesson.lr_layer1 is not None else {},
                frozen=lesson.freeze_steps)
    if lesson.shape.batchnorm:
        layer1 = Group("layer 1", h, d, lambda i, j: i * d + j, units, weights, **body)
        norm = Group("batch norm", h, 2, lambda i, j: h * d + j * h + i, units, ["γ", "β"],
                     **body)
        base = h * d + 2 * h
    else:
        layer1 = Group("layer 1", h, d + 1, lambda i, j: i * d + j if j < d else h * d + i,
                       units, weights + ["b1"], **body)
        norm, base = None, h * d + h
    layer2 = Group("layer 2", h + 1, 1, lambda i, j: base + i, units + ["b2"],
                   ["W2 | b2"])
    return Groups(layer1, layer2, norm)


#: the input holding layer 1's own learning rate
LR_LAYER1 = "lr_layer1"


#: the short name of each per-unit quantity, for its columns' labels ("a1 u3"); the whole
#: rule is the note of the quantity's first column
UNIT_LABEL = {"z": "z1", "c": "z1−μ", "xh": "x̂", "zb": "γx̂+β", "a": "a1", "drop": "mask",
              "kept": "kept", "ae": "a1 eval", "da": "∂L/∂a1", "mask": "relu'",
              "dzb": "∂L/∂γx̂+β", "dxh": "∂L/∂x̂", "dz": "∂L/∂z1"}


#: Batch norm's rows under the examples' "active on" row, in order: per unit, the batch
#: mean, variance and √(σ² + ε), the two sums of its backward pass, the running statistics
BN_ROWS = ("mean", "var", "sd", "s1", "s2", "rmean", "rvar")
BN_ROW_LABELS = {"mean": "batch mean μ", "var": "batch var σ²", "sd": "√(σ² + ε)",
                 "s1": "Σ ∂L/∂x̂", "s2": "Σ ∂L/∂x̂·x̂", "rmean": "running mean",
                 "rvar": "running var"}


def _lesson_rows(lesson: Lesson) -> int:
    """Rows of a block's example band: the examples, "active on", batch norm's rows."""
    return len(lesson.X) + 1 + (len(BN_ROWS) if lesson.shape.batchnorm else 0)


def _bn_row(lesson: Lesson, key: str) -> int:
    """Block-relative row of batch norm's row ``key``."""
    return 4 + len(lesson.X) + BN_ROWS.index(key)


def _panel_rows(lesson: Lesson) -> tuple[int, int, int, int]:
    """The panel's step picker, its unit table's header, its examples' header, and the
    last row it uses."""
    h, n = lesson.shape.hidden, len(lesson.X)
    pick = SCREEN_ROW
    units = pick + 1
    examples = units + h + 3
    return pick, units, examples, examples + n


def blocks_start(steps: int, lesson: Lesson, finder: bool = False) -> int:
    """Row of block 0: under the trace table (one row per step) and, on the train sheet, the
    panel and, under a schedule, the lr chart below the loss chart."""
    if finder:
        return blocks_top(SCREEN_ROW + steps)
    scheduled = lesson.schedule is not None and lesson.schedule.scheduled
    lr_chart = BELOW_CHART + 2 * CHART_ROWS + 1 if scheduled else 0
    return blocks_top(SCREEN_ROW + steps, _panel_rows(lesson)[-1], lr_chart)


def _layout_height(lesson: Lesson) -> int:
    return Layout(lesson.opt, _groups(lesson).all, _lesson_rows(lesson), []).height


def _scalars(lesson: Lesson) -> list[tuple[str, str, str]]:
    """The block's scalars after "step": (key, label, note)."""
    evaluated = [("loss_eval", "eval loss", "the mean squared error of the network in eval "
                  "mode (model.eval(): dropout off, batch norm from its running statistics), "
                  "at the same weights: the loss the network has on these examples as a "
                  "prediction. Training's loss, with units dropped, is usually above it")
                 ] if lesson.evaluated else []
    return [("loss", "loss", "mean squared error over all examples, before this step's "
             "update (torch's MSELoss)" + (", with this step's dropout masks" if lesson.dropout
                                           else ""))] + evaluated + [
        ("dead", "dead ReLUs", "units active on no example: relu'(z1) = 0 and a1 = 0 for every "
         "example, so no gradient reaches their W1, b1 or W2"),
        ("fd", "fd check", "∂L/∂W1₁₁ by the central finite difference (L(W1₁₁ + h) − "
         "L(W1₁₁ − h))/(2h), h = fd_h, from the two columns of nudged losses: it should match "
         "the backprop value beside it"),
        ("analytic", "backprop", "∂L/∂W1₁₁ by the chain rule: the first cell of ∂L/∂θ "
         "(layer 1) below")]


def make_lesson(X, y, feature_names=None, target_name="y", *, hidden=6, optimizer="adam",
                preset="torch", steps=100, seed=0, data_label="", schedule="constant",
                schedule_options=None, theta0=None, dropout=0.0, masks=None,
                batchnorm=False, bn_momentum=None, bn_eps=None, freeze_steps=0,
                **overrides) -> Lesson:
    """A lesson on examples ``X`` (N × features) and targets ``y``; ``theta0`` (packed as
    ``mlp.Shape.pack``) replaces the seeded torch-style start. ``dropout`` p drops hidden
    units by ``masks`` (steps × N × hidden), drawn from ``seed`` unless given;
    ``batchnorm`` puts torch's BatchNorm1d (``bn_momentum``, ``bn_eps``) on z1. ``lr`` as
    (lo, hi) gives layer 1 the rate lo and layer 2 hi (fastai's ``slice(lo, hi)`` over two
    layer groups); ``freeze_steps`` N trains only layer 2 for the first N steps."""
    X = np.asarray(X, float)
    if X.ndim == 1:
        X = X[:, None]
    y = np.asarray(y, float).ravel()
    n, d = X.shape
    if len(y) != n:
        raise ValueError(f"{n} examples but {len(y)} targets")
    if steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    if not 1 <= hidden <= MAX_HIDDEN:
        raise ValueError(f"--hidden must be from 1 to {MAX_HIDDEN}, got {hidden}")
    inverted_dropout.check_p(dropout)
    if not batchnorm and (bn_momentum is not None or bn_eps is not None):
        raise ValueError("--bn-momentum and --bn-eps set batch norm: give --batchnorm too")
    if batchnorm and n < 2:
        raise ValueError("--batchnorm needs at least 2 examples: one has no batch variance "
                         "(torch refuses it too)")
    given = {"momentum": bn_momentum, "eps": bn_eps}
    norm = mlp.BatchNorm(**{k: v for k, v in given.items() if v is not None}) \
        if batchnorm else None
    if norm is not None and not (0 <= norm.momentum <= 1 and norm.eps > 0):
        raise ValueError(f"--bn-momentum must be from 0 to 1 and --bn-eps above 0, got "
                         f"{norm.momentum:g} and {norm.eps:g}")
    shape = mlp.Shape(d, hidden, batchnorm)
    ec = _columns(d, hidden, dropout > 0, batchnorm)
    if 1 + ec["end"] > EXCEL_MAX_COLS:
        raise ValueError(f"{d} features × {hidden} units is past Excel's {EXCEL_MAX_COLS:,} "
                         "columns")
    cells = steps * (n * (ec["end"] + hidden) + 10 * shape.size)
    if cells > MAX_CELLS:
        raise ValueError(f"{steps} steps × {n} examples × {hidden} units is about {cells:,} "
                         f"formula cells, past the {MAX_CELLS:,} a sheet recalculates in "
                         "reasonable time; use fewer --steps, --hidden or examples")
    feature_names = list(feature_names or [f"x{j + 1}" for j in range(d)])
    lr_layer1 = None
    if isinstance(overrides.get("lr"), tuple):
        lr_layer1, overrides["lr"] = overrides["lr"]
        if schedule != "constant":
            raise ValueError("--lr LO:HI with --schedule: each layer group would need its own "
                             "scheduled lr column; use one --lr with a schedule")
    if not 0 <= freeze_steps < steps:
        raise ValueError(f"--freeze-steps must be from 0 to {steps - 1} (the steps less one, "
                         f"so the whole network trains at the end), got {freeze_steps}")
    if overrides.get("lr") is None:
        overrides["lr"] = LESSON_LR[optimizer]
    opt, follows = presets.resolve(preset, optimizer, **overrides)
    theta0 = mlp.init_params(shape, seed) if theta0 is None else np.asarray(theta0, float)
    lesson = Lesson(X, y, feature_names, target_name, shape, optimizer, opt, follows, preset,
                    steps, theta0, data_label, dropout=dropout, norm=norm, lr_layer1=lr_layer1,
                    freeze_steps=freeze_steps)
    if dropout:
        lesson.masks = inverted_dropout.draw(steps, n, hidden, dropout, seed) \
            if masks is None else np.asarray(masks, float).reshape(steps, n, hidden)
    lesson.schedule = schedules.for_lesson(schedule, schedule_options, steps, optimizer, opt.lr,
                                           preset)
    height = _layout_height(lesson)
    if blocks_start(steps, lesson) + (steps + 1) * height > EXCEL_MAX_ROWS:
        raise ValueError(f"{steps} steps × {height} rows per step is past Excel's "
                         f"{EXCEL_MAX_ROWS:,} rows; use fewer --steps or less data")
    with np.errstate(all="ignore"):
        lesson.trace = mlp.train(opt, shape, X, y, theta0, steps, lesson.schedule, lesson.fd_h,
                                 masks=lesson.masks, dropout=dropout, norm=norm,
                                 groups=mlp.param_groups(shape, opt, lr_layer1, freeze_steps))
    return lesson


# --------------------------------------------------------------------------- sheets

def data_sheet(lesson: Lesson) -> Sheet:
    """Features and target as yellow inputs, and a check column whose last cell
    (``data_problem``) names the first empty or non-numeric cell."""
    n, d = lesson.X.shape
    target, check, side = d, d + 1, d + 3
    rows = [(0, [(j, None, name, "header") for j, name in enumerate(lesson.feature_names)]
             + [(target, None, lesson.target_name, "header"),
                (check, None, "first problem", "header"),
                (side, None, f"Data: {lesson.data_label}. The yellow cells are inputs: edit a "
                 "value and the train sheet retrains.", "bold")]),
            (1, [(side, None, "X names the features, y the target the network learns.",
                  "subtitle")]),
            (2, [(side, None, "To add or remove examples, rebuild: sheetdl build mlp --data "
                  f"points.csv (columns feature...,target). Rows 2–{n + 1} are read.",
                  "subtitle")])]
    for i in range(n):
        r = i + 2
        cells = [(j, None, float(lesson.X[i, j]), "input") for j in range(d)]
        cells.append((target, None, float(lesson.y[i]), "input"))
        here = f'IF(ISNUMBER({col_name(target)}{r}),"","data!{col_name(target)}{r}")'
        for j in reversed(range(d)):
            here = f'IF(ISNUMBER({col_name(j)}{r}),{here},"data!{col_name(j)}{r}")'
        prev = f"{col_name(check)}{r - 1}"
        cells.append((check, f"={here}" if i == 0 else f'=IF({prev}<>"",{prev},{here})', "",
                      None))
        rows.append((i + 1, cells))
    validations = [(1, 0, n, d, {"validate": "decimal", "criteria": "between",
                                 "minimum": -1e300, "maximum": 1e300, "input_title": "value",
                                 "input_message": "a number",
                                 "error_message": "features and targets must be numbers"})]
    widths = {j: 12 for j in range(d + 2)}
    widths[check] = 13
    return Sheet("data", static_rows(rows), widths=widths, freeze=(1, 0),
                 validations=validations,
                 notes=[(0, check, "Empty while every cell is a number; else the first that "
                         "is not. A blank is not read as 0 here: the train sheet's status "
                         "points at it.")])


def train_sheet(lesson: Lesson, sheet_name: str = "train",
                finder: "FinderRun | None" = None) -> tuple[Sheet, dict]:
    """The training sheet; with ``finder``, the lr finder's (the lesson trained under the
    lrfind schedule, the finder's columns beside the trace table).

    First screen: inputs and status; the trace table (step, loss, dead ReLUs) down column
    A; the fit chart (the data and the network's ŷ at a step the learner picks) and the
    loss chart under it; right of them the panel: that step's units (W1, b1, W2 and how
    many examples each is active on) and every example's ŷ. The blocks follow below."""
    X, y, tr, shape = lesson.X, lesson.y, lesson.trace, lesson.shape
    n, d = X.shape
    h = shape.hidden
    steps = lesson.steps
    groups = _groups(lesson)
    layer1, layer2, norm_group = groups.layer1, groups.layer2, groups.norm
    lay = Layout(lesson.opt, groups.all, lesson_rows=_lesson_rows(lesson),
                 scalars=_scalars(lesson),
                 top=blocks_start(steps, lesson, finder is not None), schedule=lesson.schedule)
    dropout, bn = lesson.dropout > 0, lesson.shape.batchnorm
    ec = _columns(d, h, dropout, bn)
    with np.errstate(all="ignore"):
        lay.set_formats(tr)
        lay.formats.update(g=number_format([st.grad for st in tr.steps]),
                           loss=number_format([st.loss for st in tr.steps]), dead="0",
                           loss_eval=number_format([st.loss_eval for st in tr.steps]),
                           fd=number_format([[st.fd, st.grad[0]] for st in tr.steps]))
        lay.formats["analytic"] = lay.formats["fd"]
        band_fmt = {key: "general|" + number_format([getattr(st, attr) for st in tr.steps])
                    for key, attr in (("z", "z1"), ("a", "a1"), ("yhat", "yhat"), ("err", "err"),
                                      ("loss", "loss_i"), ("dy", "dyhat"), ("da", "da1"),
                                      ("dz", "dz1"), ("fdp", "fd_plus"), ("fdm", "fd_minus"),
                                      ("kept", "kept"), ("yev", "yhat_eval"),
                                      ("lev", "loss_eval_i"))
                    + ((("ae", "a1_eval"), ("dzb", "dbn"), ("dxh", "dxhat")) if bn else ())}
        if bn:
            for key, attr in (("c", "centered"), ("xh", "xhat"), ("zb", "out")):
                band_fmt[key] = "general|" + number_format([getattr(st.bn, attr)
                                                            for st in tr.steps])
            for key, part in (("fzp", 0), ("fzm", 1), ("fcp", 0), ("fcm", 1)):
                attr = "fd_z" if key.startswith("fz") else "fd_centered"
                band_fmt[key] = "general|" + number_format([getattr(st, attr)[part]
                                                            for st in tr.steps])
            unit_fmt = {key: "general|" + number_format([values(st) for st in tr.steps])
                        for key, values in (
                            ("mean", lambda st: st.bn.mean), ("var", lambda st: st.bn.var),
                            ("sd", lambda st: st.bn.sd), ("s1", lambda st: st.sum_dxhat),
                            ("s2", lambda st: st.sum_dxhat_xhat),
                            ("rmean", lambda st: st.running_mean),
                            ("rvar", lambda st: st.running_var))}
        band_fmt["x"] = band_fmt["y"] = "general|" + number_format(np.concatenate([X.ravel(), y]))
    # one-column titles stay short enough for their column; a per-unit title is centred
    # across its units' columns; each column's note gives the whole rule
    band_titles = [("x", None), ("y", lesson.target_name),
                   ("z", "z1 = W1·x" if bn else "z1 = W1·x + b1")]
    if bn:
        band_titles += [("c", "z1 − μ"), ("xh", "x̂ = (z1 − μ)/√(σ² + ε)"),
                        ("zb", "γ·x̂ + β")]
    band_titles += [("a", "a1 = relu(γ·x̂ + β)" if bn else "a1 = relu(z1)")]
    if dropout:
        band_titles += [("drop", "dropout mask (masks sheet)"), ("kept", "a1·mask/(1 − p)")]
    band_titles += [("yhat", "ŷ"), ("err", "ŷ − y"), ("loss", "(ŷ − y)²")]
    if bn:
        band_titles += [("ae", "a1 eval (running μ, σ²)")]
    if lesson.evaluated:
        band_titles += [("yev", "ŷ eval"), ("lev", "(ŷ eval − y)²")]
    band_titles += [("dy", "∂L/∂ŷ"),
                    ("da", "∂L/∂a1 = ∂L/∂ŷ·W2" + "·mask/(1 − p)" * dropout),
                    ("mask", "relu' = [γ·x̂ + β > 0]" if bn else "relu'(z1) = [z1 > 0]")]
    if bn:
        band_titles += [("dzb", "∂L/∂(γ·x̂ + β) = ∂L/∂a1·relu'"), ("dxh", "∂L/∂x̂ = ·γ"),
                        ("dz", "∂L/∂z1 = (∂L/∂x̂ − Σ∂L/∂x̂/N − x̂·Σ∂L/∂x̂·x̂/N)/√(σ² + ε)"),
                        ("fzp", "z1₁(W1₁₁ + h)"), ("fzm", "z1₁(W1₁₁ − h)"),
                        ("fcp", "− its μ"), ("fcm", "− its μ")]
    else:
        band_titles += [("dz", "∂L/∂z1 = ∂L/∂a1·relu'(z1)")]
    band_titles += [("fdp", "L(W1₁₁ + h)"), ("fdm", "L(W1₁₁ − h)")]
    per_unit = ("z", "c", "xh", "zb", "a", "drop", "kept", "ae", "da", "mask", "dzb", "dxh",
                "dz")
    band_notes = {
        "drop": "this step's dropout mask of the example's units, 1 kept, 0 dropped: drawn "
                "once at build time from the seed (the masks sheet; yellow, edit one to see its "
                "effect). The course's dropout sheet used RAND(), which redraws at every "
                "recalculation, and did not rescale",
        "kept": "inverted dropout, as torch's F.dropout in training mode: a kept unit is "
                "scaled by 1/(1 − p), so layer 2's input has the same expected value as without "
                "dropout and eval mode needs no change; a dropped unit is 0 and passes no "
                "gradient back",
        "yev": "the network in eval mode (model.eval(): dropout off, batch norm from its "
               "running statistics), at the same weights. This is the prediction the "
               "trained network makes",
        "c": "batch norm, step 1: each unit's z1 minus its mean μ over the batch (the row "
             "'batch mean μ' under the examples)",
        "xh": "normalised: (z1 − μ)/√(σ² + ε), σ² the batch's biased variance (mean of (z1 − "
              "μ)², as torch normalises with) and ε = bn_eps: each unit's x̂ has mean 0 and "
              "variance about 1 over the batch",
        "zb": "scaled and shifted by the unit's learned γ and β (the 'batch norm' matrix "
              "below, trained like every weight): γ·x̂ + β, what the ReLU reads. Layer 1 has "
              "no bias under batch norm (as nn.Linear(bias=False) before BatchNorm1d): β "
              "does its work",
        "ae": "eval mode: batch norm uses the running mean and variance the step starts with "
              "(the previous block's 'running' rows) in place of the batch's: "
              "relu(γ·(z1 − running mean)/√(running var + ε) + β)",
        "dzb": "back through the ReLU: ∂L/∂(γ·x̂ + β) = ∂L/∂a1·relu'. ∂L/∂γ = SUMPRODUCT of "
               "this with x̂, ∂L/∂β = its SUM",
        "dxh": "back through the scale: ∂L/∂x̂ = ∂L/∂(γ·x̂ + β)·γ; under the examples its sum "
               "and its SUMPRODUCT with x̂",
        "fzp": "unit 1's z1 with W1₁₁ nudged up by h: under batch norm the nudge moves the "
               "batch's μ and σ² too (the rows under), so every example's x̂ moves",
        "fzm": "... and nudged down",
        "fcp": "the nudged z1 minus the nudged batch mean",
        "fcm": "... for the nudge down",
        "lev": "the eval-mode squared error; their mean is the step's eval loss",
        "x": "the example's features, read from the data sheet",
        "z": "each unit's pre-activation: the features times the unit's row of W1 (a "
             "SUMPRODUCT; with one feature, the product), plus its bias b1",
        "a": "ReLU: MAX(0, z1). A unit whose z1 ≤ 0 outputs 0 and passes no gradient back",
        "yhat": "ŷ = W2·a1 + b2, the prediction: each unit's activation times its W2 weight, "
                "summed, plus b2",
        "err": "the error ŷ − y",
        "loss": "the squared error (ŷ − y)²; the step's loss is their mean (torch's MSELoss)",
        "dy": "∂L/∂ŷ = 2(ŷ − y)/N: the chain rule starts here, the derivative of "
              "mean((ŷ − y)²) with respect to this example's ŷ. ∂L/∂W2 = SUMPRODUCT of this "
              "column with a unit's a1 column; ∂L/∂b2 = its SUM",
        "da": "back through layer 2: ∂L/∂a1 = ∂L/∂ŷ · W2 for each unit"
              + (", then back through the dropout: × the same mask / (1 − p)" if dropout
                 else ""),
        "mask": "ReLU's derivative: 1 where its input > 0, else 0 (torch's convention at exactly "
                "0), as MAX(0, SIGN(·)): a comparison would call an input under 2.2e-16 zero in "
                "IronCalc",
        "dz": ("back through batch norm: ∂L/∂z1 = (∂L/∂x̂ − Σ∂L/∂x̂/N − x̂·Σ(∂L/∂x̂·x̂)/N)/"
               "√(σ² + ε). The two sums are there because each example's z1 also moves the "
               "batch's μ and σ², and so every other example's x̂. ∂L/∂W1 = SUMPRODUCT of this "
               "column with a feature's column" if bn else
               "back through the ReLU: ∂L/∂z1 = ∂L/∂a1 · relu'(z1). ∂L/∂W1 = SUMPRODUCT of "
               "this column with a feature's column; ∂L/∂b1 = its SUM"),
        "fdp": "L(W1₁₁ + h): this example's loss with W1₁₁ nudged up by h = fd_h: only unit "
               "1's activation "
               "changes, so ŷ moves by W2₁·Δa1",
        "fdm": "... and nudged down by h; the step's numeric ∂L/∂W1₁₁ is the difference of "
               "their means over 2h. Between ReLU kinks the loss is a quadratic in W1₁₁, so "
               "this central difference is exact up to rounding; make fd_h large (1) and an "
               "example crosses its kink: the two no longer agree",
    }
    data_cell = lambda i, j: f"data!${col_name(j)}${i + 2}"

    def band(block: int, st: mlp.Step, notes_out) -> dict[int, list]:
        r0 = lay.block_row(block)
        labels = []
        for key, title in band_titles:
            if key == "x":
                labels += [(ec["x"] + j, None, name, "label")
                           for j, name in enumerate(lesson.feature_names)]
            elif key in per_unit and h > 1:
                # each column says its unit, as the panel's rows do; the rule is the note
                labels += [(ec[key] + j, None, f"{UNIT_LABEL[key]} u{j + 1}", "label")
                           for j in range(h)]
            else:
                labels.append((ec[key], None, title, "label"))
            if notes_out is not None and key in band_notes:
                rule = f"{title}: " if key in per_unit and h > 1 else ""
                notes_out.append((r0 + 2, ec[key], rule + band_notes[key]))
        rows: dict[int, list] = {r0 + 2: labels}
        p1 = lambda i, j: lay.cell(block, layer1, "p", i, j)      # W1[i, j], b1[i] at j = d
        p2 = lambda i: lay.cell(block, layer2, "p", i, 0)         # W2[0, i], b2 at i = h
        gamma = lambda u: lay.cell(block, norm_group, "p", u, 0)
        beta = lambda u: lay.cell(block, norm_group, "p", u, 1)
        # a batch norm row's cell under column ``key`` (unit u), in this block or the last
        unit_row = lambda key, row, u=0, back=0: (
            f"{col_name(ec[key] + u)}{lay.block_row(block - back) + _bn_row(lesson, row) + 1}")
        for i in range(n):
            R = r0 + 3 + i
            a = lambda key, j=0: f"{col_name(ec[key] + j)}{R + 1}"
            cells = [(0, None, f"example {i + 1}", None)]
            cells += [(ec["x"] + j, f"={data_cell(i, j)}", float(X[i, j]), band_fmt["x"])
                      for j in range(d)]
            cells.append((ec["y"], f"={data_cell(i, d)}", float(y[i]), band_fmt["y"]))
            xs = f"{a('x', 0)}:{a('x', d - 1)}"
            for u in range(h):
                w = lay.area(block, layer1, "p", rows=(u, u), cols=(0, d - 1)).replace("$", "")
                dot = f"{a('x')}*{p1(u, 0)}" if d == 1 else f"SUMPRODUCT({xs},{w})"
                bias = "" if bn else f"+{p1(u, d)}"
                cells.append((ec["z"] + u, f"={dot}{bias}", float(st.z1[i, u]), band_fmt["z"]))
                if bn:
                    cells += [
                        (ec["c"] + u, f"={a('z', u)}-{unit_row('z', 'mean', u)}",
                         float(st.bn.centered[i, u]), band_fmt["c"]),
                        (ec["xh"] + u, f"={a('c', u)}/{unit_row('z', 'sd', u)}",
                         float(st.bn.xhat[i, u]), band_fmt["xh"]),
                        (ec["zb"] + u, f"={gamma(u)}*{a('xh', u)}+{beta(u)}",
                         float(st.bn.out[i, u]), band_fmt["zb"])]
                relu_in = a("zb" if bn else "z", u)
                cells.append((ec["a"] + u, f"=MAX(0,{relu_in})", float(st.a1[i, u]),
                              band_fmt["a"]))
            if dropout:
                for u in range(h):
                    cells.append((ec["drop"] + u, "=" + masks_sheet.cell(block - 1, i, u, n),
                                  float(lesson.masks[block - 1, i, u]), "int"))
                    cells.append((ec["kept"] + u, f"={a('a', u)}*{a('drop', u)}/(1-dropout)",
                                  float(st.kept[i, u]), band_fmt["kept"]))
            # written out, left to right: the order of the reference's sum
            into = "kept" if dropout else "a"
            terms = "+".join(f"{a(into, u)}*{p2(u)}" for u in range(h))
            cells.append((ec["yhat"], f"={terms}+{p2(h)}", float(st.yhat[i]), band_fmt["yhat"]))
            cells.append((ec["err"], f"={a('yhat')}-{a('y')}", float(st.err[i]), band_fmt["err"]))
            cells.append((ec["loss"], f"={a('err')}*{a('err')}", float(st.loss_i[i]),
                          band_fmt["loss"]))
            if bn:
                for u in range(h):
                    cells.append((ec["ae"] + u, f"=MAX(0,{gamma(u)}*({a('z', u)}-"
                                  f"{unit_row('z', 'rmean', u, 1)})/SQRT("
                                  f"{unit_row('z', 'rvar', u, 1)}+bn_eps)+{beta(u)})",
                                  float(st.a1_eval[i, u]), band_fmt["ae"]))
            if lesson.evaluated:
                terms = "+".join(f"{a('ae' if bn else 'a', u)}*{p2(u)}" for u in range(h))
                cells.append((ec["yev"], f"={terms}+{p2(h)}", float(st.yhat_eval[i]),
                              band_fmt["yev"]))
                cells.append((ec["lev"], f"=({a('yev')}-{a('y')})^2", float(st.loss_eval_i[i]),
                              band_fmt["lev"]))
            cells.append((ec["dy"], f"=2*{a('err')}/ROWS(y)", float(st.dyhat[i]), band_fmt["dy"]))
            for u in range(h):
                back = f"*{a('drop', u)}/(1-dropout)" if dropout else ""
                cells.append((ec["da"] + u, f"={a('dy')}*{p2(u)}{back}", float(st.da1[i, u]),
                              band_fmt["da"]))
                # SIGN, not "> 0": IronCalc's comparisons call |x| < 2.2e-16 equal to 0,
                # and a ReLU input that small (a kink tie, x = 0 under batch norm) is > 0
                cells.append((ec["mask"] + u, f"=MAX(0,SIGN({a('zb' if bn else 'z', u)}))",
                              float(st.mask[i, u]), "int"))
                if not bn:
                    cells.append((ec["dz"] + u, f"={a('da', u)}*{a('mask', u)}",
                                  float(st.dz1[i, u]), band_fmt["dz"]))
                    continue
                s1, s2 = unit_row("dxh", "s1", u), unit_row("dxh", "s2", u)
                cells += [
                    (ec["dzb"] + u, f"={a('da', u)}*{a('mask', u)}", float(st.dbn[i, u]),
                     band_fmt["dzb"]),
                    (ec["dxh"] + u, f"={a('dzb', u)}*{gamma(u)}", float(st.dxhat[i, u]),
                     band_fmt["dxh"]),
                    (ec["dz"] + u, f"=({a('dxh', u)}-{s1}/ROWS(y)-{a('xh', u)}*{s2}/ROWS(y))/"
                     f"{unit_row('z', 'sd', u)}", float(st.dz1[i, u]), band_fmt["dz"])]
            kept = f"*{a('drop')}/(1-dropout)" if dropout else ""
            for key, sign, value in (("fdp", "+", st.fd_plus[i]), ("fdm", "-", st.fd_minus[i])):
                if bn:
                    fz, fc = ("fzp", "fcp") if sign == "+" else ("fzm", "fcm")
                    part = 0 if sign == "+" else 1
                    cells += [(ec[fz], f"={a('z')}{sign}fd_h*{a('x')}",
                               float(st.fd_z[part][i]), band_fmt[fz]),
                              (ec[fc], f"={a(fz)}-{unit_row(fz, 'mean')}",
                               float(st.fd_centered[part][i]), band_fmt[fc])]
                    unit1 = (f"{gamma(0)}*{a(fc)}/SQRT({unit_row(fc, 'var')}+bn_eps)"
                             f"+{beta(0)}")
                else:
                    unit1 = f"{a('z')}{sign}fd_h*{a('x')}"
                cells.append((ec[key], f"=({a('yhat')}+{p2(0)}*(MAX(0,{unit1}){kept}-"
                              f"{a(into)})-{a('y')})^2", float(value), band_fmt[key]))
            rows[R] = cells
        R = r0 + 3 + n
        active = [(0, None, "active on", "bold")]
        for u in range(h):
            c = col_name(ec["mask"] + u)
            active.append((ec["mask"] + u, f"=SUM({c}{r0 + 4}:{c}{R})", float(st.active[u]),
                           "int"))
        rows[R] = active
        if bn:
            rows.update(bn_rows(block, st, r0, notes_out))
        if notes_out is not None:
            notes_out.append((R, 0, "How many examples each unit is active on (z1 > 0). A 0 is "
                              "a dead ReLU: its mask and a1 columns are all 0, so its ∂L/∂W1, "
                              "∂L/∂b1 and ∂L/∂W2 are exactly 0. Plain SGD then never moves it "
                              "again; momentum or Adam may carry it on for a while."))
        return rows

    def column(block, key, j=0):
        r0 = lay.block_row(block)
        c = col_name(ec[key] + j)
        return f"{c}{r0 + 4}:{c}{r0 + 3 + n}"

    bn_notes = {
        "mean": "each unit's batch mean μ of z1 over the examples (AVERAGE); under the nudged "
                "columns, the nudged z1's mean",
        "var": "the batch variance σ², biased (the mean of (z1 − μ)², SUMPRODUCT/N) as torch "
               "normalises with",
        "sd": "√(σ² + ε), ε = bn_eps: what x̂ divides by",
        "s1": "Σ over the examples of ∂L/∂x̂, for the backward pass through μ",
        "s2": "Σ over the examples of ∂L/∂x̂·x̂, for the backward pass through σ²",
        "rmean": "the running mean torch keeps for eval mode: (1 − m)·previous + m·μ, m = "
                 "bn_momentum (torch's momentum is the weight of the new batch, 0.1 by "
                 "default); it starts at 0 in the start block",
        "rvar": "the running variance: (1 − m)·previous + m·σ²·N/(N − 1), the unbiased "
                "variance, as torch; it starts at 1",
    }

    def bn_rows(block, st, r0, notes_out) -> dict[int, list]:
        """Batch norm's rows of block ``block`` (see ``BN_ROWS``)."""
        rows = {}
        ref_row = lambda key: r0 + _bn_row(lesson, key)
        here = lambda col, key, u=0: f"{col_name(ec[col] + u)}{ref_row(key) + 1}"
        prev = lambda col, key, u: (f"{col_name(ec[col] + u)}"
                                    f"{lay.block_row(block - 1) + _bn_row(lesson, key) + 1}")
        per_unit_cells = {
            "mean": lambda u: (f"=AVERAGE({column(block, 'z', u)})", st.bn.mean[u]),
            "var": lambda u: (f"=SUMPRODUCT({column(block, 'c', u)},{column(block, 'c', u)})"
                              "/ROWS(y)", st.bn.var[u]),
            "sd": lambda u: (f"=SQRT({here('z', 'var', u)}+bn_eps)", st.bn.sd[u]),
            "rmean": lambda u: (f"=(1-bn_momentum)*{prev('z', 'rmean', u)}+bn_momentum*"
                                f"{here('z', 'mean', u)}", st.running_mean[u]),
            "rvar": lambda u: (f"=(1-bn_momentum)*{prev('z', 'rvar', u)}+bn_momentum*"
                               f"{here('z', 'var', u)}*ROWS(y)/(ROWS(y)-1)",
                               st.running_var[u]),
            "s1": lambda u: (f"=SUM({column(block, 'dxh', u)})", st.sum_dxhat[u]),
            "s2": lambda u: (f"=SUMPRODUCT({column(block, 'dxh', u)},"
                             f"{column(block, 'xh', u)})", st.sum_dxhat_xhat[u]),
        }
        for key in BN_ROWS:
            col = "dxh" if key in ("s1", "s2") else "z"
            cells = [(0, None, BN_ROW_LABELS[key], "bold")]
            for u in range(h):
                formula, value = per_unit_cells[key](u)
                cells.append((ec[col] + u, formula, float(value), unit_fmt[key]))
            if key in ("mean", "var"):  # the nudged batch's, for the finite difference
                for part, (nz, nc) in enumerate((("fzp", "fcp"), ("fzm", "fcm"))):
                    if key == "mean":
                        cells.append((ec[nz], f"=AVERAGE({column(block, nz)})",
                                      float(st.fd_mean[part]), unit_fmt["mean"]))
                    else:
                        cells.append((ec[nc], f"=SUMPRODUCT({column(block, nc)},"
                                      f"{column(block, nc)})/ROWS(y)",
                                      float(st.fd_var[part]), unit_fmt["var"]))
            rows[ref_row(key)] = cells
            if notes_out is not None:
                notes_out.append((ref_row(key), 0, bn_notes[key]))
        return rows

    def bn_start() -> dict[int, list]:
        """The start block's running statistics: torch's 0 and 1."""
        if not bn:
            return {}
        r0 = lay.block_row(0)
        return {r0 + _bn_row(lesson, key): [(0, None, f"{BN_ROW_LABELS[key]} (start)", "bold")]
                + [(ec["z"] + u, None, value, "general") for u in range(h)]
                for key, value in (("rmean", 0.0), ("rvar", 1.0))}

    def grad_formula(block):
        def f(g, i, j):
            if g is norm_group:
                if j == 1:
                    return f"=SUM({column(block, 'dzb', i)})"
                return f"=SUMPRODUCT({column(block, 'dzb', i)},{column(block, 'xh', i)})"
            if g is layer1:
                if j == d:
                    return f"=SUM({column(block, 'dz', i)})"
                return f"=SUMPRODUCT({column(block, 'dz', i)},{column(block, 'x', j)})"
            if i == h:
                return f"=SUM({column(block, 'dy')})"
            layer2_in = column(block, "kept" if dropout else "a", i)
            return f"=SUMPRODUCT({column(block, 'dy')},{layer2_in})"
        return f

    hyper, hvals = schedule_inputs(lesson.opt, lesson.schedule)
    hyper, hvals = hyper + ["fd_h"], {**hvals, "fd_h": lesson.fd_h}
    if dropout:
        hyper, hvals = hyper + ["dropout"], {**hvals, "dropout": lesson.dropout}
    if lesson.lr_layer1 is not None:
        at = hyper.index("lr") + 1
        hyper.insert(at, LR_LAYER1)
        hvals = {**hvals, LR_LAYER1: lesson.lr_layer1}
    if lesson.freeze_steps:
        hyper += [FREEZE_STEPS]
        hvals = {**hvals, FREEZE_STEPS: lesson.freeze_steps}
    if bn:
        hyper += ["bn_momentum", "bn_eps"]
        hvals = {**hvals, "bn_momentum": lesson.norm.momentum, "bn_eps": lesson.norm.eps}
    scheduled = lesson.schedule is not None and lesson.schedule.scheduled
    if finder is not None:
        hyper, hvals = hyper + list(finder.inputs()), {**hvals, **finder.inputs()}
    table = TraceTable(lay, tr, SCREEN_ROW + 1, TRACE_COL, sheet_name, "step", "loss",
                       ("dead", "dead ReLUs"), finder, metric_style="summary|0",
                       extras=(("loss_eval", "eval loss", "loss_eval"),)
                       if lesson.evaluated and finder is None else ())
    panel, panel_notes, panel_validations, fit, panel_colours = (
        ({}, [], [], None, ([], [])) if finder else _panel(lesson, lay, groups, ec, sheet_name))
    dead_now, last_dead = table.metric_cell(steps), tr.steps[-1].dead
    dead = (f'IF({dead_now}>0,"; "&{dead_now}&" of {h} ReLUs dead at the last step (no '
            f'gradient reaches them)","")',
            f"; {last_dead:g} of {h} ReLUs dead at the last step (no gradient reaches them)"
            if last_dead > 0 else "")
    clauses = [dead] + ([_dropout_clause(table, tr)] if dropout else []) + (
        [(f'IF({FREEZE_STEPS}>0,"; layer 1 frozen through step "&{FREEZE_STEPS},"")',
          f"; layer 1 frozen through step {lesson.freeze_steps}")] if lesson.freeze_steps else [])
    also = ("&".join(f for f, _ in clauses), "".join(t for _, t in clauses)) if clauses else None
    status = table.status(hyper, DATA_PROBLEM, also)
    notes = input_notes(hyper, conventions(lesson.kind, lesson.opt, lesson.follows))
    notes += panel_notes

    def rows():
        title = (f"{sheet_name}: a neural network with {h} ReLU units, {lesson.kind}, {steps} "
                 f"full-batch steps on {n} examples"
                 + (": the lr finder, lr growing each step from the same start" if finder else ""))
        network = ("ŷ = W2·relu(γ·x̂ + β) + b2 with x̂ batch norm's W1·x" if bn else
                   "ŷ = W2·relu(W1·x + b1) + b2")
        if dropout:
            network += f", dropout {lesson.dropout:g} on relu's output"
        sentence = (f"{network}, loss = mean (ŷ − y)²; each block below is one "
                    "step: forward, then backprop, a column per chain-rule factor. "
                    + PLAIN[lesson.kind])
        if scheduled:
            sentence += " " + lesson.schedule.describe() + "."
        yield from input_rows(
            title, sentence, hyper, hvals, FINDER_HINT if finder else
            f"Change a yellow cell ({lr_input(lesson.schedule)}, or a starting weight in the "
            f"'start' block at row {lay.top + 1}) and every step recomputes; type a step in "
            "the panel to see the network's fit then. Step 1, worked out, from row "
            f"{lay.block_row(1) + 1}.", status,
            derived={"steps": table.steps_formula()})
        def step_cells(block):
            st = tr.steps[block - 1]
            active = lay.block_row(block) + 3 + n
            dead_row = (f"{col_name(ec['mask'])}{active + 1}:"
                        f"{col_name(ec['mask'] + h - 1)}{active + 1}")
            scalars = [("loss", f"=AVERAGE({column(block, 'loss')})", st.loss)]
            if lesson.evaluated:
                scalars.append(("loss_eval", f"=AVERAGE({column(block, 'lev')})", st.loss_eval))
            scalars += [("dead", f"=IF(ISNUMBER(SUM({dead_row})),COUNTIF({dead_row},0),"
                                 "NA())", st.dead),
                        ("fd", f"=(AVERAGE({column(block, 'fdp')})-AVERAGE("
                               f"{column(block, 'fdm')}))/(2*fd_h)", st.fd),
                        ("analytic", "=" + lay.cell(block, layer1, "g", 0, 0),
                         float(st.grad[0]))]
            cells = lay.cells(block, theta=tr.theta[block - 1], grad=st.grad,
                              shown=tr.shown[block - 1], init_state=None,
                              grad_formula=grad_formula(block),
                              scalar_cells=scalars + lay.schedule_cells(block,
                                                                        tr.shown[block - 1]),
                              notes=notes)
            for row, extra in band(block, st, notes if block == 1 else None).items():
                cells.setdefault(row, []).extend(extra)
            return cells

        yield from stream_blocks(lay, tr, [table.rows(), panel, bn_start()], step_cells,
                                 notes=notes)

    validations = input_validations(hyper, INPUT_ROW) + panel_validations + lay.start_validations()
    sn = sheet_name
    names = {name: f"{sn}!{ref(INPUT_ROW, i, True)}" for i, name in enumerate(hyper)}
    for when, block in (("init", 0), ("final", steps)):
        names[f"W1_{when}"] = f"{sn}!" + lay.area(block, layer1, "new", cols=(0, d - 1))
        if bn:
            names[f"bn_gamma_{when}"] = f"{sn}!" + lay.area(block, norm_group, "new", cols=(0, 0))
            names[f"bn_beta_{when}"] = f"{sn}!" + lay.area(block, norm_group, "new", cols=(1, 1))
        else:
            names[f"b1_{when}"] = f"{sn}!" + lay.area(block, layer1, "new", cols=(d, d))
        names[f"W2_{when}"] = f"{sn}!" + lay.area(block, layer2, "new", rows=(0, h - 1))
        names[f"b2_{when}"] = f"{sn}!" + lay.area(block, layer2, "new", rows=(h, h))
    if bn:
        last = lay.block_row(steps)
        for key, name in (("rmean", "bn_running_mean_final"), ("rvar", "bn_running_var_final")):
            row = last + _bn_row(lesson, key)
            names[name] = f"{sn}!" + f"{ref(row, ec['z'], True)}:{ref(row, ec['z'] + h - 1, True)}"
    names.update(table.names())
    notes += table.notes()
    scheduled_at = (BELOW_CHART + CHART_ROWS + 1, CHART_COL)
    charts = table.charts("mean squared error per step", "loss",
                          "training loss" if lesson.evaluated else "loss", "loss_trace",
                          at=[(BELOW_CHART, CHART_COL), scheduled_at],
                          also=[("eval loss", "loss_eval_trace")]
                          if lesson.evaluated and finder is None else [])
    if fit is not None:
        charts.insert(0, fit)
    sheet = training_sheet(sn, rows, lay, table, hyper, names, notes=notes,
                           validations=validations, charts=charts,
                           unique_names=finder is not None or lesson.finder is not None)
    # the example band can be wider than the parameter matrices, and layer 2's one-column
    # matrices need room for their titles ("∂L/∂θ (layer 2)")
    for c in range(lay.width() + 1, ec["end"]):
        sheet.widths.setdefault(c, 10)
    if dropout:  # "(ŷ eval − y)²" on one line
        sheet.widths[ec["lev"]] = max(sheet.widths.get(ec["lev"], 10), 13)
    # colour that carries meaning: the ReLU mask and the squared errors of every block
    # (red: active, large), and on the panel the weights and a dead unit
    examples = (3, 2 + n)
    sheet.color_scales += [
        (across_blocks(lay, steps, examples, (ec["mask"], ec["mask"] + h - 1)), SEQUENTIAL),
        (across_blocks(lay, steps, examples, (ec["loss"], ec["loss"])), SEQUENTIAL)]
    sheet.color_scales += panel_colours[0]
    sheet.highlights += panel_colours[1]
    for q in lay.quantities:
        sheet.widths[lay.matrix_col[(layer2.name, q.key)]] = 14
    return sheet, names


def _dropout_clause(table: TraceTable, tr) -> tuple[str, str]:
    """The status's dropout clause, comparing the last step's training and eval losses."""
    train, evaluated = table.cell(len(tr.steps)), table.cell(len(tr.steps), 0)
    above = "; dropout: training loss above eval loss, as expected"
    not_above = ("; dropout: training loss at or below eval loss (the masks dropped little "
                 "this step)")
    last = tr.steps[-1]
    return (f'IF({train}>{evaluated},"{above}","{not_above}")',
            above if last.loss > last.loss_eval else not_above)


def _panel(lesson: Lesson, lay: Layout, groups: Groups, ec: dict, sheet: str):
    """The network at a glance, right of the charts: a yellow step picker; each unit's W1,
    b1 (or batch norm's γ, β), W2 and how many examples it is active on at that step, then
    b2; and every example's
    first feature, target and ŷ at that step, which the fit chart plots. Each is an INDEX
    into that step's block. Returns (cells by row, notes, validations, the fit chart, its
    (colour scales, highlights)): the weights blue < 0 < red, a dead unit's count red."""
    tr, steps = lesson.trace, lesson.steps
    n, d = lesson.X.shape
    h = lesson.shape.hidden
    pick, units, examples, last = _panel_rows(lesson)
    c0 = PANEL_COL
    show = ref(pick, c0 + 1, True)
    rows: dict[int, list] = {}
    put = lambda r, c, f, v, st: rows.setdefault(r, []).append((c, f, v, st))
    picker, picker_rule = step_picker(pick, c0, steps, "the network")
    rows.setdefault(pick, []).extend(picker)
    theta = tr.theta[steps - 1]
    st = tr.steps[steps - 1]
    theta_fmt = lay.style("p", "num")
    layer2 = groups.layer2
    # (group, its column, header) of each parameter a unit has, in θ's order
    per_unit = [(g, j, "W2" if g is layer2 else label) for g in groups.all
                for j, label in enumerate(g.col_labels)]
    heads = ["unit"] + [head for _, _, head in per_unit] + ["active on"]
    for j, head in enumerate(heads):
        put(units, c0 + j, None, head, "header")
    for u in range(h):
        r = units + 1 + u
        put(r, c0, None, f"unit {u + 1}", "bold")
        for k, (g, j, _) in enumerate(per_unit):
            put(r, c0 + 1 + k, at_step(lay, g.band + u, lay.matrix_col[(g.name, "p")] + j, show,
                                       steps), float(theta[g.index(u, j)]), theta_fmt)
        put(r, c0 + len(per_unit) + 1, at_step(lay, 3 + n, ec["mask"] + u, show, steps),
            float(st.active[u]), "int")
    put(units + 1 + h, c0, None, "b2", "bold")
    put(units + 1 + h, c0 + len(per_unit), at_step(lay, layer2.band + h,
                                                   lay.matrix_col[(layer2.name, "p")], show, steps),
        float(theta[layer2.index(h, 0)]), theta_fmt)
    first = lesson.feature_names[0]
    heads = [first, lesson.target_name, "ŷ at step"] + ["ŷ eval"] * lesson.evaluated
    for j, head in enumerate(heads):
        put(examples, c0 + j, None, head, "header")
    xy_fmt = "general|" + number_format(np.concatenate([lesson.X[:, 0], lesson.y]))
    yhat_fmt = "general|" + number_format([s.yhat for s in tr.steps])
    # in order of the first feature, so ŷ draws as a curve, not a zigzag through the data
    for row, i in enumerate(np.argsort(lesson.X[:, 0], kind="stable")):
        r = examples + 1 + row
        put(r, c0, f"=data!$A${i + 2}", float(lesson.X[i, 0]), xy_fmt)
        put(r, c0 + 1, f"=data!${col_name(d)}${i + 2}", float(lesson.y[i]), xy_fmt)
        put(r, c0 + 2, at_step(lay, 3 + i, ec["yhat"], show, steps), float(st.yhat[i]),
            yhat_fmt)
        if lesson.evaluated:
            put(r, c0 + 3, at_step(lay, 3 + i, ec["yev"], show, steps), float(st.yhat_eval[i]),
                yhat_fmt)
    xs = area(sheet, examples + 1, c0, last)
    fit = Chart(SCREEN_ROW, CHART_COL, f"{sheet}: the data and ŷ at the shown step", first,
                lesson.target_name,
                [Series(lesson.target_name, xs, area(sheet, examples + 1, c0 + 1, last),
                        markers=True),
                 # with more features ŷ is not a function of the first alone: points too
                 Series("ŷ (training)" if lesson.evaluated else "ŷ", xs,
                        area(sheet, examples + 1, c0 + 2, last), markers=d > 1)]
                + ([Series("ŷ eval", xs, area(sheet, examples + 1, c0 + 3, last),
                           markers=d > 1)] if lesson.evaluated else []),
                scatter=True,
                width=400, height=288)
    active_col = c0 + len(per_unit) + 1
    notes = [(pick, c0 + 1, f"Any step from 1 to {steps}: the weights, activity and "
              "predictions beside, and the fit chart, are that step's block, read with INDEX: "
              "the network as it enters the step, before its update (the trained network is "
              "the last block's new θ, the names W1_final...)."),
             (units, active_col, "Examples on which the unit's z1 > 0 at that step. 0 means a "
              "dead ReLU: it outputs 0 everywhere, and its W1, b1 and W2 get no gradient."),
             (examples, c0 + 2, "The network's prediction for each example at the shown "
              "step: with more units and steps, the piecewise-linear fit bends closer to the "
              "data." + (" With dropout it is the training network's, some units dropped; "
                         "ŷ eval beside is the whole network's (dropout off)." if lesson.dropout
                         else ""))]
    validations = [picker_rule]
    weights = f"{ref(units + 1, c0 + 1)}:{ref(units + h, c0 + len(per_unit))}"
    active = f"{ref(units + 1, active_col)}:{ref(units + h, active_col)}"
    put(units + 2 + h, c0, None, "colour: weights blue < 0 < red; a red 'active on' is a dead "
        "ReLU", "subtitle")
    return rows, notes, validations, fit, ([(weights, DIVERGING)],
                                           [(active, "==", ("0",))])


def about_sheet(lesson: Lesson) -> Sheet:
    h = lesson.shape.hidden
    return about_page(
        "sheetdl · a neural network trained by backprop, one cell at a time",
        ["Open the train sheet: the chart shows the data and the network's prediction; type "
         "a step in the yellow 'show step' cell and watch its piecewise-linear fit bend "
         "toward the curve as training proceeds.",
         f"Change the yellow {lr_input(lesson.schedule)} on row 4 (or a starting weight in "
         "the 'start' block): every "
         "step recomputes, forward and backward.",
         "Read one block left to right: the forward pass z1, a1, ŷ, the loss, then the chain "
         "rule backwards, ∂L/∂ŷ, ∂L/∂a1, the ReLU mask, ∂L/∂z1, and beside the step number a "
         "finite-difference check of one weight against its backprop gradient."],
        [f"train: ŷ = W2·relu(W1·x + b1) + b2 with {h} hidden ReLU units on "
         f"{lesson.data_label}; loss = mean squared error (torch's MSELoss); {lesson.kind} "
         f"({lesson.preset} preset), {lesson.steps} full-batch steps, one block each. Layer 1 "
         "is W1 (units × features, torch's Linear.weight) with b1 beside it; layer 2 is shown "
         "as a column, W2 on each unit's row and b2 under.",
         "A unit whose z1 ≤ 0 on every example is a dead ReLU: its 'active on' count is 0, "
         "the dead ReLUs column of the trace counts them, and its layer-1 gradients are 0.",
         "data: the features and the target, yellow inputs.",
         "Defined names: X, y, W1_init, b1_init, W2_init, b2_init, the hyperparameters under "
         "torch's names, fd_h, loss_trace (the loss at each step, before its update), "
         "dead_trace, W1_final, b1_final, W2_final, b2_final"
         + (", and with dropout the input dropout, dropout_masks (the masks sheet: one row per "
            "step and example, one column per unit) and loss_eval_trace." if lesson.dropout
            else ".")]
        + (["Batch norm on z1 before the ReLU, as torch's BatchNorm1d in training mode: "
            "each unit's z1 − μ over the batch, divided by √(σ² + ε) with the biased σ², then "
            "γ·x̂ + β with γ and β learned (the 'batch norm' matrix of each block; layer 1 has "
            "no bias then). Under the examples, the batch's μ, σ², the two sums its backward "
            "pass needs and the running mean and variance (momentum bn_momentum, the variance "
            "unbiased), which the eval columns use in place of the batch's. Names "
            "bn_gamma_init, bn_beta_init, bn_gamma_final, bn_beta_final, "
            "bn_running_mean_final, bn_running_var_final, loss_eval_trace."]
           if lesson.shape.batchnorm else [])
        + ([f"Layer 1 trains at its own rate lr_layer1 = {lesson.lr_layer1:g}, layer 2 at lr "
            "(discriminative rates: fastai's fit(..., slice(lo, hi)) over two layer groups, "
            "torch's parameter groups)."] if lesson.lr_layer1 is not None else [])
        + ([f"Layer 1 is frozen through step freeze_steps = {lesson.freeze_steps} (fastai's "
            "freeze, then unfreeze): the optimizer skips it as torch does a parameter with no "
            "gradient, so its θ and state stay, its other optimizer cells say \"frozen\", and "
            "from the step after it counts its own steps (its own β₁ᵗ, β₂ᵗ columns: Adam's bias "
            "correction starts again at step 1)."] if lesson.freeze_steps else [])
        + ([f"Dropout p = {lesson.dropout:g} on the hidden units, as torch's F.dropout in "
            "training mode: each step's mask is drawn once from the seed (the masks sheet, "
            "yellow 0/1 inputs; the course's sheet used RAND(), which redraws at every "
            "recalculation), kept units are scaled by 1/(1 − p), and the backward pass uses the "
            "same mask. The eval columns run the same weights with dropout off, as model.eval() "
            "does: that loss is usually below the training one."] if lesson.dropout else []))


def make_finder(lesson: Lesson, steps=None, lr_min=None, lr_max=None, smooth_beta=None,
                stop_factor=None) -> FinderRun:
    if lesson.dropout:
        raise ValueError("--lrfind with --dropout: the finder's steps would need masks of their "
                         "own; find the lr without --dropout, then build with it")
    if lesson.lr_layer1 is not None or lesson.freeze_steps:
        raise ValueError("--lrfind with --lr LO:HI or --freeze-steps: the finder sweeps one lr "
                         "for the whole network; find it first, then build with them")
    train = lambda sched, steps: mlp.train(lesson.opt, lesson.shape, lesson.X, lesson.y,
                                           lesson.theta0, steps, sched, lesson.fd_h,
                                           norm=lesson.norm)
    top = blocks_start(lrfind.settings(steps, None, None)[0], lesson, finder=True)
    return run_finder(lesson, train, steps_field="steps", block_height=_layout_height(lesson),
                      top=top, max_rows=EXCEL_MAX_ROWS,
                      steps=steps, lr_min=lr_min, lr_max=lr_max, smooth_beta=smooth_beta,
                      stop_factor=stop_factor)


def build(lesson: Lesson) -> Book:
    train, names = train_sheet(lesson)
    n, d = lesson.X.shape
    names["X"] = f"data!$A$2:${col_name(d - 1)}${n + 1}"
    names["y"] = f"data!${col_name(d)}$2:${col_name(d)}${n + 1}"
    names[DATA_PROBLEM] = f"data!${col_name(d + 1)}${n + 1}"
    meta = {"lesson": "mlp", "format": 1, "preset": lesson.preset, "steps": lesson.steps,
            "optimizer": lesson.kind, "options": lesson.opt.options(),
            "hidden": lesson.shape.hidden, **fullbatch.diverged(lesson.trace),
            **fullbatch.unsteady(lesson.trace)}
    if lesson.shape.batchnorm:
        meta["batchnorm"] = True
    if lesson.lr_layer1 is not None:
        meta["lr_layer1"] = True
    if lesson.freeze_steps:
        meta["freeze"] = True
    if lesson.schedule is not None and lesson.schedule.scheduled:
        meta["schedule"] = lesson.schedule.options()
    sheets = [about_sheet(lesson), data_sheet(lesson), train]
    if lesson.dropout:
        meta["dropout"] = True
        sheets.append(masks_sheet.masks_sheet(lesson.masks, lesson.dropout, "example",
                                              [f"unit {u + 1}" for u in range(lesson.shape.hidden)],
                                              "the hidden units"))
        names[masks_sheet.NAME] = masks_sheet.name_range(lesson.masks)
    add_finder_sheet(lesson, train_sheet, sheets, meta, "steps")
    return Book(sheets, names, f"sheetdl mlp ({lesson.preset})", meta)
