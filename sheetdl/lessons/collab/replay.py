"""The collaborative-filtering lesson: the loss and final factors and biases (and the lr
finder's), replayed from the named start and ratings; a --udf workbook's one add-in call
from its seeded start."""
from __future__ import annotations

import numpy as np

from ...math import optim
from ...verification.report import TraceCheck, VerifyError
from ...verification.workbook import Workbook
from ...verification.replay.common import (bounded_work, compare, finder_want, matrix,
                                           numbers, schedule, sheet_hyper, train_and_finder)


def replay(wb: Workbook, meta: dict, path, rtol, atol) -> list[TraceCheck]:
    R = matrix(wb, "ratings", path, blanks=True)
    if meta.get("udf"):  # one add-in call: the start is the seeded init, as collab_train makes it
        return _collab_udf(wb, meta, R, path, rtol, atol)
    return train_and_finder(wb, meta, path, meta["epochs"], lambda sspec, epochs, si: (
        _collab_sheet(wb, meta, sspec, epochs, si, R, path, rtol, atol)))


def _collab_sheet(wb, meta, sspec, epochs, si, R, path, rtol, atol):
    from . import model as collab

    label = "train" if si is None else wb.sheets[si]
    m = lambda name: matrix(wb, name, path, si=si)
    U, V = m("user_factors_init"), m("movie_factors_init")
    bu, bm = m("user_bias_init").ravel(), m("movie_bias_init").ravel()
    shape = collab.Shape(U.shape[0], V.shape[1], U.shape[1])
    if R.shape != (shape.users, shape.movies):
        raise VerifyError(f"{path}: ratings is {R.shape[0]}×{R.shape[1]} but the factors are "
                          f"for {shape.users} users × {shape.movies} movies")
    kind = meta["optimizer"]
    hyper = sheet_hyper(wb, optim.OPTIMIZERS[kind], sspec, si, path)
    sched = schedule(wb, sspec, si, path, hyper.get("lr"))
    y_range = None
    if meta.get("y_range"):
        y_range = (numbers(wb, "y_min", si, path)[0], numbers(wb, "y_max", si, path)[0])
    opt = optim.make(kind, **meta["options"], **hyper)
    bounded_work(path, epochs * R.size * (shape.factors + 1), epochs)
    with np.errstate(all="ignore"):
        tr = collab.train(opt, R, collab.pack(U, bu, V, bm), shape, epochs, y_range, sched)
    Uf, buf, Vf, bmf = shape.unpack(tr.theta[-1])
    want = {"loss_trace": [s.loss for s in tr.steps], "user_factors_final": Uf,
            "movie_factors_final": Vf, "user_bias_final": buf, "movie_bias_final": bmf}
    if sched is not None:
        want["lr_trace"] = [s["lr"] for s in tr.shown]
    if sspec and sspec.get("kind") == "lrfind":
        want.update(finder_want(wb, si, path, want["lr_trace"], want["loss_trace"]))
    return [compare(wb, label, name, si, w, rtol, atol) for name, w in want.items()]


def _collab_udf(wb, meta, R, path, rtol, atol) -> list[TraceCheck]:
    from . import model as collab

    factors, epochs = meta["factors"], meta["epochs"]
    bounded_work(path, 0, epochs)  # a whole number of steps before it enters a product
    if not (isinstance(factors, int) and not isinstance(factors, bool) and factors > 0):
        raise VerifyError(f"{path}: its sheetdl metadata asks for {factors!r} factors: not "
                          "replayed")
    bounded_work(path, epochs * R.size * (factors + 1), epochs)
    shape = collab.Shape(R.shape[0], R.shape[1], factors)
    hyper = {h: numbers(wb, h, None, path)[0] for h in ("lr", "weight_decay")}
    y_range = ((numbers(wb, "y_min", None, path)[0], numbers(wb, "y_max", None, path)[0])
               if meta.get("y_range") else None)
    opt = optim.make(meta["optimizer"], **meta["options"], **hyper)
    with np.errstate(all="ignore"):
        tr = collab.train(opt, R, collab.init_params(shape, meta["seed"]), shape, epochs,
                          y_range)
    return [compare(wb, "train", "loss_trace", None, [s.loss for s in tr.steps], rtol, atol)]
