"""Layout of the collab lesson: ratings, embeddings as one-hot products, and
matrix factorisation trained full batch in formulas, one block per epoch.

No Solver, no pivot tables, no volatile functions. Data flows one way:
options → ``collab.train`` → this layout → ``xlsx.write``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import LEARNING_RATES as LESSON_LR
from . import model as collab
from ...math import fullbatch, lrfind, presets, schedules
from ...sheet.blocks import (BELOW_CHART, CHART_COL, PANEL_COL, SCREEN_ROW, TRACE_COL, FinderRun,
    Group, Layout, TraceTable, add_finder_sheet, at_step, blocks_top, run_finder, stream_blocks,
    training_sheet)
from ...sheet.workbook import (DIVERGING, SEQUENTIAL, ArrayFormula, Book, Chart, Series, Sheet,
    area, col_name, number_format, ref, static_rows)
from ..data import EXCEL_MAX_COLS, EXCEL_MAX_FORMULA, EXCEL_MAX_ROWS
from ...sheet.formulas import addin_function, addin_note
from ...sheet.formulas import (FINDER_HINT, INPUT_ROW, PLAIN, about_page, conventions, fit_headers,
    input_notes, input_rows, lr_input, input_validations, schedule_inputs)
from ...math.optim import Optimizer

UDF_TOP = 6  # the --udf train sheet: inputs, then one array call
#: The label of the train sheet's panel, beside the epoch it shows.
SHOW_LABEL = "show epoch"
#: The ratings sheet: a title, a sentence, the movies' header, then a row of ratings per
#: user from this row (0-based).
RATINGS_TOP = 3


def blocks_start(epochs: int, shape: collab.Shape, finder: bool = False) -> int:
    """Row of block 0 on the train sheet: under the trace table (one row per epoch) and
    the dot-product panel under the chart."""
    return blocks_top(SCREEN_ROW + epochs, 0 if finder else _panel_top() + shape.factors + 3
                      + shape.users)


def _panel_top() -> int:
    return BELOW_CHART


@dataclass
class Lesson:
    R: np.ndarray
    user_ids: list[str]
    movie_ids: list[str]
    shape: collab.Shape
    kind: str
    opt: Optimizer
    follows: str
    preset: str
    epochs: int
    y_range: tuple[float, float] | None
    theta0: np.ndarray
    data_label: str
    trace: collab.Trace = field(default=None)
    seed: int = 0
    #: write training as one call to the add-in (SHEETDL_COLLAB_TRAIN)
    udf: str | None = None  # the --udf flavour (formulas.UDF_FLAVOURS), or formulas
    schedule: schedules.Schedule | None = None
    finder: "FinderRun | None" = None


def make_lesson(R, user_ids, movie_ids, *, factors=5, optimizer="adam", preset="torch",
                epochs=20, y_range=(0.0, 5.5), seed=0, data_label="", schedule="constant",
                schedule_options=None, **overrides) -> Lesson:
    R = np.asarray(R, float)
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    if factors < 1:
        raise ValueError(f"--factors must be at least 1, got {factors}")
    if not np.isfinite(R).any():
        raise ValueError("the ratings matrix has no ratings")
    if y_range is not None and not y_range[0] < y_range[1]:
        raise ValueError(f"--y-range needs low < high, got {y_range[0]},{y_range[1]}")
    shape = collab.Shape(R.shape[0], R.shape[1], factors)
    width = 1 + 10 * (max(shape.movies, factors + 1) + 1)
    if width > EXCEL_MAX_COLS:
        raise ValueError(f"{shape.movies} movies need about {width:,} columns, past Excel's "
                         f"{EXCEL_MAX_COLS:,}; use fewer --movies")
    # a prediction writes out one product per factor; at the sheet's widest references it
    # must stay within what Excel opens
    term = 2 * len(ref(EXCEL_MAX_ROWS - 1, width)) + 2
    longest = term * (factors + 2) + len("=y_min+(y_max-y_min)/(1+EXP(-()))")
    if longest > EXCEL_MAX_FORMULA:
        raise ValueError(f"--factors {factors} writes prediction formulas of up to {longest:,} "
                         f"characters, past Excel's {EXCEL_MAX_FORMULA:,}; use fewer --factors")
    if overrides.get("lr") is None:
        overrides["lr"] = LESSON_LR[optimizer]
    opt, follows = presets.resolve(preset, optimizer, **overrides)
    theta0 = collab.init_params(shape, seed)
    lesson = Lesson(R, user_ids, movie_ids, shape, optimizer, opt, follows, preset, epochs,
                    y_range, theta0, data_label, seed=seed)
    rows = blocks_start(epochs, shape) + (epochs + 1) * (Layout(opt, _groups(lesson),
                                                                shape.users, []).height)
    if rows > EXCEL_MAX_ROWS:
        raise ValueError(f"{epochs} epochs need {rows:,} rows, past Excel's "
                         f"{EXCEL_MAX_ROWS:,}; use fewer --epochs or --users")
    lesson.schedule = schedules.for_lesson(schedule, schedule_options, epochs, optimizer, opt.lr,
                                           preset)
    with np.errstate(all="ignore"):
        lesson.trace = collab.train(opt, R, theta0, shape, epochs, y_range, lesson.schedule)
    return lesson


def _groups(lesson: Lesson) -> list[Group]:
    u, m, f = lesson.shape.users, lesson.shape.movies, lesson.shape.factors
    users = Group("users", u, f + 1, lambda i, j: i * f + j if j < f else u * f + i,
                  [f"user {x}" for x in lesson.user_ids],
                  [f"f{j + 1}" for j in range(f)] + ["bias"])
    movies = Group("movies", f + 1, m,
                   lambda i, j: u * f + u + i * m + j if i < f else u * f + u + f * m + j,
                   [f"f{i + 1}" for i in range(f)] + ["bias"],
                   [f"movie {x}" for x in lesson.movie_ids])
    return [users, movies]


def ratings_sheet(lesson: Lesson) -> Sheet:
    """The ratings as yellow inputs, the blanks too: a rating typed in, changed or
    cleared retrains the train sheet."""
    R = lesson.R
    U, M = R.shape
    rows = [(0, [(0, None, "Ratings: each user's stars for each movie (yellow: change, add or "
                  "clear one and the model retrains)", "title")]),
            (1, [(0, None, f"{lesson.data_label}. Blank = not rated: left out of the loss "
                  "(ISNUMBER), never read as 0. Named ratings.", "subtitle")]),
            (RATINGS_TOP - 1, [(0, None, "user \\ movie", "header")]
             + [(j + 1, None, mid, "header") for j, mid in enumerate(lesson.movie_ids)])]
    for i, uid in enumerate(lesson.user_ids):
        rows.append((RATINGS_TOP + i, [(0, None, uid, "bold")] + [
            (j + 1, None, float(R[i, j]) if np.isfinite(R[i, j]) else None, "input")
            for j in range(M)]))
    # a rating outside y_range cannot be predicted: the sigmoid never reaches it
    low, high = lesson.y_range if lesson.y_range else (-1e300, 1e300)
    within = f" from {low:g} to {high:g} (y_range)" if lesson.y_range else ""
    rating = {"validate": "decimal", "criteria": "between", "minimum": low, "maximum": high,
              "input_title": "rating",
              "input_message": f"a rating{within}, or blank for not rated; the train sheet "
                               "retrains",
              "error_message": f"a rating must be a number{within}"}
    return Sheet("ratings", static_rows(rows), widths={0: 14}, freeze=(RATINGS_TOP, 1),
                 validations=[(RATINGS_TOP, 1, RATINGS_TOP + U - 1, M, rating)],
                 color_scales=[(f"{ref(RATINGS_TOP, 1)}:{ref(RATINGS_TOP + U - 1, M)}",
                                SEQUENTIAL)])


def train_sheet(lesson: Lesson, sheet_name: str = "train",
                finder: "FinderRun | None" = None) -> tuple[Sheet, dict]:
    """The training sheet; with ``finder``, the lr finder's (see softmax_book)."""
    shape, tr = lesson.shape, lesson.trace
    U, M, F = shape.users, shape.movies, shape.factors
    users, movies = _groups(lesson)
    lay = Layout(lesson.opt, [users, movies], lesson_rows=U,
                 scalars=[("loss", "MSE", "mean squared error over the observed ratings, "
                           "before this epoch's update"),
                          ("rmse", "RMSE", "√MSE, in stars")],
                 top=blocks_start(lesson.epochs, shape, finder is not None),
                 schedule=lesson.schedule, counter="step" if finder else "epoch")
    with np.errstate(all="ignore"):
        lay.set_formats(tr)
        lay.formats.update(g=number_format([st.grad for st in tr.steps]),
                           loss=number_format([st.loss for st in tr.steps]),
                           rmse=number_format([st.rmse for st in tr.steps]))
        band_fmt = {key: "general|" + number_format([getattr(st, key) for st in tr.steps])
                    for key in ("pred", "err", "dpred")}
    pc = {"pred": 1, "err": M + 2, "dpred": 2 * M + 3}  # columns of the prediction band
    ratings = lambda i, j: f"ratings!${col_name(j + 1)}${RATINGS_TOP + i + 1}"
    lo_hi = lesson.y_range

    def pred_terms(block, i, j):
        terms = "+".join(f"{lay.cell(block, users, 'p', i, f)}*{lay.cell(block, movies, 'p', f, j)}"
                         for f in range(F))
        return f"{terms}+{lay.cell(block, users, 'p', i, F)}+{lay.cell(block, movies, 'p', F, j)}"

    def band(block: int, st: collab.Step) -> dict[int, list]:
        r0 = lay.block_row(block)
        titles = [("pred", "prediction" + (" = y_min + (y_max − y_min)·σ(u·m + b_u + b_m)"
                                           if lo_hi else " = u·m + b_u + b_m")),
                  ("err", "error = pred − rating (0 where blank)"),
                  ("dpred", "∂L/∂(u·m + b)" + (" = 2·err/n·σ'" if lo_hi else " = 2·err/n"))]
        rows = {r0 + 2: [(pc[k], None, t, "label") for k, t in titles]}
        for i in range(U):
            R0 = r0 + 3 + i
            cells = [(0, None, f"user {lesson.user_ids[i]}", "bold")]
            for j in range(M):
                p, e = f"{col_name(pc['pred'] + j)}{R0 + 1}", f"{col_name(pc['err'] + j)}{R0 + 1}"
                raw = pred_terms(block, i, j)
                formula = f"=y_min+(y_max-y_min)/(1+EXP(-({raw})))" if lo_hi else f"={raw}"
                cells.append((pc["pred"] + j, formula, float(st.pred[i, j]), band_fmt["pred"]))
                cells.append((pc["err"] + j,
                              f"=IF(ISNUMBER({ratings(i, j)}),{p}-{ratings(i, j)},0)",
                              float(st.err[i, j]), band_fmt["err"]))
                d = f"=2*{e}/COUNT(ratings)"
                if lo_hi:
                    d += f"*({p}-y_min)*(y_max-{p})/(y_max-y_min)"
                cells.append((pc["dpred"] + j, d, float(st.dpred[i, j]), band_fmt["dpred"]))
            rows[R0] = cells
        return rows

    def grad_formula(block):
        r0 = lay.block_row(block)
        top, bottom = r0 + 4, r0 + 3 + U
        drow = lambda i: (f"{col_name(pc['dpred'])}{top + i}:"
                          f"{col_name(pc['dpred'] + M - 1)}{top + i}")
        dcol = lambda j: f"{col_name(pc['dpred'] + j)}{top}:{col_name(pc['dpred'] + j)}{bottom}"

        def f(g, i, j):
            if g is users:
                if j == F:
                    return f"=SUM({drow(i)})"
                vrow = lay.area(block, movies, "p", rows=(j, j)).replace("$", "")
                return f"=SUMPRODUCT({drow(i)},{vrow})"
            if i == F:
                return f"=SUM({dcol(j)})"
            ucol = lay.area(block, users, "p", cols=(i, i)).replace("$", "")
            return f"=SUMPRODUCT({dcol(j)},{ucol})"
        return f

    hyper, hvals = schedule_inputs(lesson.opt, lesson.schedule)
    hyper += ["y_min", "y_max"] if lo_hi else []
    hvals = {**hvals, **({"y_min": lo_hi[0], "y_max": lo_hi[1]} if lo_hi else {})}
    scheduled = lesson.schedule is not None and lesson.schedule.scheduled
    if finder is not None:
        hyper, hvals = hyper + list(finder.inputs()), {**hvals, **finder.inputs()}
    table = TraceTable(lay, tr, SCREEN_ROW + 1, TRACE_COL, sheet_name, "epoch", "MSE",
                       ("rmse", "RMSE"), finder)
    notes = input_notes(hyper, conventions(lesson.kind, lesson.opt, lesson.follows),
                        "the prediction range (fastai's y_range)")
    panel, panel_notes, panel_validations, panel_colours = (
        ({}, [], [], ([], [])) if finder else
        _dotprod_panel(lesson, lay, users, movies, pc["pred"]))
    notes += panel_notes
    status = table.status(hyper)

    def rows():
        sentence = ("Matrix factorisation: a predicted rating is a user's factors · a movie's "
                    "factors + both biases; each block below is one full-batch epoch. "
                    + PLAIN[lesson.kind])
        if scheduled:
            sentence += " " + lesson.schedule.describe() + "."
        yield from input_rows(
            f"{sheet_name}: matrix factorisation, {U} users × {M} movies, {F} factors, "
            f"{lesson.kind}, {lesson.epochs} full-batch epochs"
            + (": the lr finder, lr growing each epoch from the same start" if finder else ""),
            sentence, hyper, hvals, FINDER_HINT if finder else
            f"Change a yellow cell ({lr_input(lesson.schedule)}, or a starting factor in the "
            f"'start' block at row {lay.top + 1}) and every epoch recomputes; pick an epoch in "
            f"the panel to see the model then. Epoch 1, worked out, from row "
            f"{lay.block_row(1) + 1}.", status,
            derived={"steps": table.steps_formula()})
        def step_cells(block):
            st = tr.steps[block - 1]
            r0 = lay.block_row(block)
            errs = (f"{col_name(pc['err'])}{r0 + 4}:"
                    f"{col_name(pc['err'] + M - 1)}{r0 + 3 + U}")
            cells = lay.cells(block, theta=tr.theta[block - 1], grad=st.grad,
                              shown=tr.shown[block - 1], init_state=None,
                              grad_formula=grad_formula(block),
                              scalar_cells=[("loss",
                                             f"=SUMPRODUCT({errs},{errs})/COUNT(ratings)",
                                             st.loss),
                                            ("rmse", "=SQRT(" + lay.scalar(block, "loss") + ")",
                                             st.rmse)]
                              + lay.schedule_cells(block, tr.shown[block - 1]),
                              notes=notes)
            for row, extra in band(block, st).items():
                cells.setdefault(row, []).extend(extra)
            return cells

        yield from stream_blocks(lay, tr, [table.rows(), panel], step_cells, notes=notes)

    validations = input_validations(hyper, INPUT_ROW, fallback="the prediction range") \
        + panel_validations + lay.start_validations()
    last = lesson.epochs
    sn = sheet_name
    names = {h: f"{sn}!{ref(INPUT_ROW, i, True)}" for i, h in enumerate(hyper)}
    names["user_factors_init"] = f"{sn}!" + lay.area(0, users, "new", cols=(0, F - 1))
    names["user_bias_init"] = f"{sn}!" + lay.area(0, users, "new", cols=(F, F))
    names["movie_factors_init"] = f"{sn}!" + lay.area(0, movies, "new", rows=(0, F - 1))
    names["movie_bias_init"] = f"{sn}!" + lay.area(0, movies, "new", rows=(F, F))
    names["user_factors_final"] = f"{sn}!" + lay.area(last, users, "new", cols=(0, F - 1))
    names["user_bias_final"] = f"{sn}!" + lay.area(last, users, "new", cols=(F, F))
    names["movie_factors_final"] = f"{sn}!" + lay.area(last, movies, "new", rows=(0, F - 1))
    names["movie_bias_final"] = f"{sn}!" + lay.area(last, movies, "new", rows=(F, F))
    names.update(table.names())
    notes += table.notes()
    charts = table.charts("RMSE per epoch", "RMSE (stars)", "RMSE", "rmse_trace",
                          at=[(SCREEN_ROW, CHART_COL), (SCREEN_ROW, PANEL_COL)])
    sheet = training_sheet(sn, rows, lay, table, hyper, names, notes=notes,
                           validations=validations, charts=charts,
                           unique_names=finder is not None or lesson.finder is not None)
    if finder is None:  # the panel's label on one line
        fit_headers(sheet.widths, [(CHART_COL, SHOW_LABEL)])
    sheet.color_scales += panel_colours[0]
    sheet.highlights += panel_colours[1]
    return sheet, names


def _dotprod_panel(lesson: Lesson, lay: Layout, users: Group, movies: Group, pred_col: int):
    """The course's dotprod sheet, at an epoch the learner picks: the movie factors above
    the prediction grid, the user factors left of it, each an INDEX into that epoch's
    block. Returns (cells by row, notes, validations, (colour scales, highlights)): the
    predictions white → red as the ratings sheet's stars, a prediction more than a star from
    its rating filled red, the factors blue < 0 < red."""
    tr, epochs = lesson.trace, lesson.epochs
    M, F = lesson.shape.movies, lesson.shape.factors
    top, c0 = _panel_top(), CHART_COL
    grid = c0 + F + 2
    show = ref(top, c0 + 1, True)
    rows: dict[int, list] = {}
    put = lambda r, c, f, v, st: rows.setdefault(r, []).append((c, f, v, st))
    put(top, c0, None, SHOW_LABEL, "label")
    put(top, c0 + 1, None, epochs, "input")
    put(top, c0 + 2, None, f"of {epochs}: the factors used in that epoch and their "
        "predictions, laid out as the course's dotprod sheet", "subtitle")
    theta_fmt = lay.style("p", "num")
    Ut, but, Vt, bmt = lesson.shape.unpack(tr.theta[epochs - 1])
    for i in range(F + 1):
        r = top + 1 + i
        put(r, grid - 1, None, f"f{i + 1}" if i < F else "movie bias", "bold")
        for j in range(M):
            col = lay.matrix_col[(movies.name, "p")] + j
            put(r, grid + j, at_step(lay, movies.band + i, col, show, epochs),
                float(Vt[i, j] if i < F else bmt[j]), theta_fmt)
    head = top + F + 2
    put(head, c0, None, "user", "header")
    for j in range(F + 1):
        put(head, c0 + 1 + j, None, f"f{j + 1}" if j < F else "user bias", "header")
    for j, mid in enumerate(lesson.movie_ids):
        put(head, grid + j, None, f"movie {mid}", "header")
    pred = tr.steps[epochs - 1].pred
    pred_fmt = "general|" + number_format(pred)
    for i, uid in enumerate(lesson.user_ids):
        r = head + 1 + i
        put(r, c0, None, f"user {uid}", "bold")
        for j in range(F + 1):
            col = lay.matrix_col[(users.name, "p")] + j
            put(r, c0 + 1 + j, at_step(lay, users.band + i, col, show, epochs),
                float(Ut[i, j] if j < F else but[i]), theta_fmt)
        for j in range(M):
            put(r, grid + j, at_step(lay, 3 + i, pred_col + j, show, epochs), float(pred[i, j]),
                pred_fmt)
    notes = [(top, c0 + 1, f"Any epoch from 1 to {epochs}: the factors and predictions are "
              "that epoch's block, read with INDEX. Each prediction is its row's user factors "
              "· its column's movie factors + both biases" + (", squashed into y_range."
                                                              if lesson.y_range else "."))]
    validations = [(top, c0 + 1, {"validate": "integer", "criteria": "between", "minimum": 1,
                                  "maximum": epochs, "input_title": "show epoch",
                                  "input_message": f"an epoch from 1 to {epochs}",
                                  "error_message": f"a whole epoch number, 1 to {epochs}"})]
    U = lesson.shape.users
    put(top + 1, c0, None, "colour: stars white → red", "subtitle")
    put(top + 2, c0, None, "red fill: > 1 star off", "subtitle")
    grid_area = f"{ref(head + 1, grid)}:{ref(head + U, grid + M - 1)}"
    rating = f"ratings!{ref(RATINGS_TOP, 1)}"
    # outside rating ± 1; a blank rating's bounds take every prediction in
    off = ("not between", (f"IF(ISNUMBER({rating}),{rating}-1,-1E+300)",
                           f"IF(ISNUMBER({rating}),{rating}+1,1E+300)"))
    factors = (f"{ref(top + 1, grid)}:{ref(top + F, grid + M - 1)} "
               f"{ref(head + 1, c0 + 1)}:{ref(head + U, c0 + F)}")
    return rows, notes, validations, ([(grid_area, SEQUENTIAL), (factors, DIVERGING)],
                                      [(grid_area, *off)])


def udf_train_sheet(lesson: Lesson) -> tuple[Sheet, dict]:
    """Training as one array call to the add-in, with cached values."""
    hyper = ["lr", "weight_decay"] + (["y_min", "y_max"] if lesson.y_range else [])
    values = {**lesson.opt.hyper(), **({"y_min": lesson.y_range[0], "y_max": lesson.y_range[1]}
                                       if lesson.y_range else {})}
    lo_hi = "y_min,y_max" if lesson.y_range else '"",""'
    call = (f'={addin_function("collab_train", lesson.udf)}(ratings,{lesson.shape.factors},'
            f'{lesson.epochs},lr,'
            f'weight_decay,{lesson.seed},"{lesson.kind}",{lo_hi})')
    steps = lesson.trace.steps
    top, last = UDF_TOP - 1, UDF_TOP - 1 + lesson.epochs

    def rows():
        yield from input_rows(
            f"train: {lesson.epochs} epochs of matrix factorisation in one call to the sheetdl "
            "add-in", conventions(lesson.kind, lesson.opt, lesson.follows), hyper, values,
            f"The table below is one array formula, {call}; it needs the sheetdl add-in. The "
            "values shown are cached, computed by sheetdl.")
        yield top, [(0, ArrayFormula(call, last, 2), "epoch", "header"),
                    (1, None, "MSE", "header"), (2, None, "RMSE", "header")]
        for t, st in enumerate(steps, start=1):
            yield top + t, [(0, None, t, "int"), (1, None, st.loss, "general"),
                            (2, None, st.rmse, "general")]

    names = {h: f"train!{ref(INPUT_ROW, i, True)}" for i, h in enumerate(hyper)}
    names["loss_trace"] = area("train", UDF_TOP, 1, last)
    names["rmse_trace"] = area("train", UDF_TOP, 2, last)
    chart = Chart(0, 5, "train: RMSE per epoch", "epoch", "RMSE (stars)",
                  [Series("RMSE", area("train", UDF_TOP, 0, last), names["rmse_trace"])])
    return Sheet("train", rows, widths={i: 12 for i in range(4)}, freeze=(UDF_TOP, 0),
                 charts=[chart]), names


def embedding_sheet(lesson: Lesson, names: dict) -> Sheet:
    """An embedding lookup is a one-hot row times the factor matrix."""
    U, F = lesson.shape.users, lesson.shape.factors
    # with a finder sheet, user_factors_init is defined there too: read the range itself
    lookup = "user_factors_init" if lesson.finder is None else names["user_factors_init"]
    user_area = names["user_factors_init"].split("!")[1].replace("$", "")
    (c0, r0), _ = [(lambda s: ("".join(ch for ch in s if ch.isalpha()),
                               int("".join(ch for ch in s if ch.isdigit()))))(p)
                   for p in user_area.split(":")]
    first_col = sum((ord(ch) - 64) * 26 ** k for k, ch in enumerate(reversed(c0))) - 1
    pick = min(3, U)
    factors = lesson.theta0[:U * F].reshape(U, F)
    shown = f"general|{number_format(factors)}"
    # the lookups in rows 4-6 stand over the factor columns they equal (D onwards), under
    # the same f1... headers as the table below
    fc = 3
    rows = [(0, [(0, None, "An embedding lookup equals a one-hot vector times the factor "
                  "matrix", "title")]),
            (1, [(0, None, "Pick a user number (1 to the number of users). Column C is that "
                  "user's one-hot vector; row 4 looks the factors up with INDEX, row 5 "
                  "multiplies one-hot × factors with SUMPRODUCT. They are equal.", "subtitle")]),
            (2, [(0, None, "user number", "label"), (1, None, pick, "input")]
             + [(fc + f, None, f"f{f + 1}", "header") for f in range(F)]),
            (3, [(0, None, "lookup: INDEX", "bold")]
             + [(fc + f, f"=INDEX({lookup},$B$3,{f + 1})",
                 float(factors[pick - 1, f]), shown) for f in range(F)]),
            (4, [(0, None, "one-hot · factors", "bold")]
             + [(fc + f, f"=SUMPRODUCT($C$9:$C${8 + U},train!${col_name(first_col + f)}${r0}:"
                 f"${col_name(first_col + f)}${r0 + U - 1})", float(factors[pick - 1, f]),
                 shown) for f in range(F)]),
            (5, [(0, None, "difference", "bold")]
             + [(fc + f, f"={col_name(fc + f)}5-{col_name(fc + f)}4", 0.0, "general")
                for f in range(F)]),
            (7, [(0, None, "user", "header"), (1, None, "number", "header"),
                 (2, None, "one-hot", "header")]
             + [(fc + f, None, f"f{f + 1}", "header") for f in range(F)])]
    for i in range(U):
        rows.append((8 + i, [(0, None, lesson.user_ids[i], None), (1, None, i + 1, "int"),
                             (2, f"=IF(B{9 + i}=$B$3,1,0)", 1.0 if i + 1 == pick else 0.0, "int")]
                     + [(fc + f, f"=INDEX({lookup},{i + 1},{f + 1})",
                         float(factors[i, f]), shown) for f in range(F)]))
    return Sheet("embedding", static_rows(rows), widths={0: 18, 1: 10},
                 validations=[(2, 1, {"validate": "integer", "criteria": "between",
                                      "minimum": 1, "maximum": U,
                                      "input_message": "a user number, 1 to " + str(U)})])


def about_sheet(lesson: Lesson) -> Sheet:
    yr = (f"squashed to ({lesson.y_range[0]:g}, {lesson.y_range[1]:g}) by a sigmoid (fastai's "
          "y_range)" if lesson.y_range else "not squashed")
    return about_page(
        "sheetdl · collaborative filtering by matrix factorisation, in formulas",
        ["Open the train sheet: the RMSE chart shows the error in stars falling epoch by "
         "epoch, and below it the course's dotprod layout: movie factors above, user factors "
         "left, predictions in the grid.",
         f"Change the yellow {lr_input(lesson.schedule)} on row 4 (or type an epoch into "
         "'show epoch'): every epoch "
         "recomputes, and the grid shows the model at that epoch.",
         "Compare the grid with the ratings sheet: the predictions move toward the ratings "
         "that exist, and fill in the blanks."],
        [f"ratings: {lesson.data_label}; blanks are not ratings and are left out of the loss.",
         "embedding: looking a user's factors up is the same as multiplying a one-hot vector "
         "by the factor matrix.",
         f"train: prediction = user factors · movie factors + user bias + movie bias, {yr}; "
         f"loss = mean squared error over observed ratings; {lesson.kind} ({lesson.preset} "
         f"preset), {lesson.epochs} full-batch epochs, one block each: predictions, errors, "
         "∂L/∂prediction, then every factor's and bias's gradient (SUMPRODUCT), optimizer "
         "state and new value. No Solver, no pivot tables, no macros.",
         "Defined names: ratings, user_factors_init, movie_factors_init, user_bias_init, "
         "movie_bias_init, the hyperparameters under torch's names, loss_trace (MSE per "
         "epoch), rmse_trace, user_factors_final, movie_factors_final and the final biases."]
        + ([addin_note("collab_train", lesson.udf)] if lesson.udf else []))


FINDER_LR_MAX = 1.0


def make_finder(lesson: Lesson, steps=None, lr_min=None, lr_max=None, smooth_beta=None,
                stop_factor=None) -> FinderRun:
    """One finder step is one full-batch epoch, as on the train sheet. The range ends at
    lr 1 unless told otherwise: the sigmoid-bounded loss never trips the 4× stop, and
    beyond lr ≈ 3 Adam turns chaotic here, so engines that sum in different orders drift
    apart by 1e-5 in the last epochs (measured; at lr_max 1 they agree to 5e-10)."""
    train = lambda sched, steps: collab.train(lesson.opt, lesson.R, lesson.theta0, lesson.shape,
                                              steps, lesson.y_range, sched)
    height = Layout(lesson.opt, _groups(lesson), lesson.shape.users, []).height
    top = blocks_start(lrfind.settings(steps, None, None)[0], lesson.shape, finder=True)
    return run_finder(lesson, train, steps_field="epochs", block_height=height, top=top,
                      max_rows=EXCEL_MAX_ROWS, steps=steps, lr_min=lr_min,
                      lr_max=FINDER_LR_MAX if lr_max is None else lr_max,
                      smooth_beta=smooth_beta, stop_factor=stop_factor)


def build(lesson: Lesson) -> Book:
    train, names = udf_train_sheet(lesson) if lesson.udf else train_sheet(lesson)
    U, M = lesson.R.shape
    names["ratings"] = f"ratings!$B${RATINGS_TOP + 1}:${col_name(M)}${RATINGS_TOP + U}"
    meta = {"lesson": "collab", "format": 1, "preset": lesson.preset, "epochs": lesson.epochs,
            "udf": lesson.udf or False, "seed": lesson.seed,
            "optimizer": lesson.kind, "options": lesson.opt.options(),
            **fullbatch.diverged(lesson.trace), **fullbatch.unsteady(lesson.trace),
            "factors": lesson.shape.factors, "y_range": lesson.y_range}
    if lesson.schedule is not None and lesson.schedule.scheduled:
        meta["schedule"] = lesson.schedule.options()
    sheets = [about_sheet(lesson), ratings_sheet(lesson)]
    if not lesson.udf:  # the lookup demo reads the start factors of the formula sheet
        sheets.append(embedding_sheet(lesson, names))
    sheets.append(train)
    add_finder_sheet(lesson, train_sheet, sheets, meta, "epochs")
    return Book(sheets, names, f"sheetdl collab ({lesson.preset})", meta)
