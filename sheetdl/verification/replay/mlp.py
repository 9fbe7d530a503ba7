"""The neural-network lesson: the train sheet's loss, dead units and final weights (and
its lr finder's), replayed from the named start, inputs and examples."""
from __future__ import annotations

import numpy as np

from ...math import optim
from ..report import TraceCheck, VerifyError
from ..workbook import Workbook
from .common import (bounded_work, compare, dropout_masks, examples, finder_want, numbers, schedule,
                     sheet_hyper, train_and_finder)


def replay(wb: Workbook, meta: dict, path, rtol, atol) -> list[TraceCheck]:
    X, y = examples(wb, "y", path)
    return train_and_finder(wb, meta, path, meta["steps"], lambda sspec, steps, si: (
        _mlp_sheet(wb, meta, sspec, steps, si, X, y, path, rtol, atol)))


def _mlp_sheet(wb, meta, sspec, steps, si, X, y, path, rtol, atol):
    """One training sheet of the mlp lesson, from its named start and inputs."""
    from ...lessons.mlp import model as mlp

    label = "train" if si is None else wb.sheets[si]
    part = {name: np.array(numbers(wb, name, si, path))
            for name in ("W1_init", "b1_init", "W2_init", "b2_init")}
    shape = mlp.Shape(X.shape[1], len(part["b1_init"]))
    if (part["W1_init"].size, part["W2_init"].size, part["b2_init"].size) != \
            (shape.hidden * shape.features, shape.hidden, 1):
        raise VerifyError(f"{path}: names W1_init, W2_init and b2_init do not fit "
                          f"{shape.hidden} hidden units of {shape.features} features")
    kind = meta["optimizer"]
    hyper = sheet_hyper(wb, optim.OPTIMIZERS[kind], sspec, si, path)
    sched = schedule(wb, sspec, si, path, hyper.get("lr"))
    opt = optim.make(kind, **meta["options"], **hyper)
    theta0 = shape.pack(*(part[n] for n in ("W1_init", "b1_init", "W2_init", "b2_init")))
    bounded_work(path, steps * X.shape[0] * shape.size, steps)
    n, h = X.shape[0], shape.hidden
    masks, p = dropout_masks(wb, meta, path, steps, n, h, f"{n} examples × {h} units")
    with np.errstate(all="ignore"):
        tr = mlp.train(opt, shape, X, y, theta0, steps, sched,
                       numbers(wb, "fd_h", si, path)[0], masks=masks, dropout=p)
    W1, b1, W2, b2 = shape.unpack(tr.theta[-1])
    want = {"loss_trace": [s.loss for s in tr.steps], "dead_trace": [s.dead for s in tr.steps],
            "W1_final": W1, "b1_final": b1, "W2_final": W2, "b2_final": b2}
    if masks is not None:
        want["loss_eval_trace"] = [s.loss_eval for s in tr.steps]
    if sched is not None:
        want["lr_trace"] = [s["lr"] for s in tr.shown]
    if sspec and sspec.get("kind") == "lrfind":
        want.update(finder_want(wb, si, path, want["lr_trace"], want["loss_trace"]))
    return [compare(wb, label, name, si, w, rtol, atol) for name, w in want.items()]
