"""The softmax lesson: the train sheet's loss and final weights (and its lr finder's),
replayed from the named start, inputs and examples."""
from __future__ import annotations

import numpy as np

from ...math import optim
from ...verification.report import TraceCheck, VerifyError
from ...verification.workbook import Workbook
from ...verification.replay.common import (bounded_work, compare, examples, finder_want,
                                           numbers, schedule, sheet_hyper, train_and_finder)


def replay(wb: Workbook, meta: dict, path, rtol, atol) -> list[TraceCheck]:
    X, labels = examples(wb, "labels", path)
    if np.any(labels != np.round(labels)) or labels.min() < 0:
        raise VerifyError(f"{path}: labels must be whole numbers from 0")
    return train_and_finder(wb, meta, path, meta["steps"], lambda sspec, steps, si: (
        _softmax_sheet(wb, meta, sspec, steps, si, X, labels, path, rtol, atol)))


def _softmax_sheet(wb, meta, sspec, steps, si, X, labels, path, rtol, atol):
    """One training sheet (``si`` None: the workbook-scoped train sheet)."""
    from . import model as softmax

    label = "train" if si is None else wb.sheets[si]
    bias = np.array(numbers(wb, "bias_init", si, path))
    W = np.array(numbers(wb, "W_init", si, path)).reshape(len(bias), X.shape[1])
    kind = meta["optimizer"]
    hyper = sheet_hyper(wb, optim.OPTIMIZERS[kind], sspec, si, path)
    sched = schedule(wb, sspec, si, path, hyper.get("lr"))
    opt = optim.make(kind, **meta["options"], **hyper)
    bounded_work(path, steps * X.size * len(bias), steps)
    with np.errstate(all="ignore"):
        tr = softmax.train(opt, X, labels.astype(int), W, bias, steps, sched)
    final_W, final_b = softmax.unpack(tr.theta[-1], len(bias), X.shape[1])
    want = {"loss_trace": [s.loss for s in tr.steps], "W_final": final_W, "bias_final": final_b}
    if sched is not None:
        want["lr_trace"] = [s["lr"] for s in tr.shown]
    if sspec and sspec.get("kind") == "lrfind":
        want.update(finder_want(wb, si, path, want["lr_trace"], want["loss_trace"]))
    return [compare(wb, label, name, si, w, rtol, atol) for name, w in want.items()]
