"""verify's replay of the mlp lesson: the train sheet's loss, dead units and final weights
(and its lr finder's), recomputed from the named start, inputs and examples. Imported by
verify only."""
from __future__ import annotations

import numpy as np

from ...math import optim
from ...verification.report import TraceCheck, VerifyError
from ...verification.workbook import Workbook
from ...verification.replay.common import (bounded_work, compare, dropout_masks, examples,
                                           finder_want, numbers, schedule, sheet_hyper,
                                           train_and_finder)


def replay(wb: Workbook, meta: dict, path, rtol, atol) -> list[TraceCheck]:
    X, y = examples(wb, "y", path)
    return train_and_finder(wb, meta, path, meta["steps"], lambda sspec, steps, si: (
        _mlp_sheet(wb, meta, sspec, steps, si, X, y, path, rtol, atol)))


def _mlp_sheet(wb, meta, sspec, steps, si, X, y, path, rtol, atol):
    """One training sheet of the mlp lesson, from its named start and inputs."""
    from . import model as mlp

    label = "train" if si is None else wb.sheets[si]
    bn = bool(meta.get("batchnorm"))
    middle = ("bn_gamma_init", "bn_beta_init") if bn else ("b1_init",)
    start = ("W1_init",) + middle + ("W2_init", "b2_init")
    part = {name: np.array(numbers(wb, name, si, path)) for name in start}
    hidden = len(part[middle[0]])
    shape = mlp.Shape(X.shape[1], hidden, bn)
    if (part["W1_init"].size, part["W2_init"].size, part["b2_init"].size,
            part[middle[-1]].size) != (hidden * shape.features, hidden, 1, hidden):
        raise VerifyError(f"{path}: names {', '.join(start)} do not fit {hidden} hidden "
                          f"units of {shape.features} features")
    kind = meta["optimizer"]
    hyper = sheet_hyper(wb, optim.OPTIMIZERS[kind], sspec, si, path)
    sched = schedule(wb, sspec, si, path, hyper.get("lr"))
    opt = optim.make(kind, **meta["options"], **hyper)
    theta0 = np.concatenate([part[name] for name in start])
    bounded_work(path, steps * X.shape[0] * shape.size, steps)
    n, h = X.shape[0], shape.hidden
    masks, p = dropout_masks(wb, meta, path, steps, n, h, f"{n} examples × {h} units")
    norm = None
    if bn:
        norm = mlp.BatchNorm(numbers(wb, "bn_momentum", si, path)[0],
                             numbers(wb, "bn_eps", si, path)[0])
        if not (0 <= norm.momentum <= 1 and norm.eps > 0) or n < 2:
            raise VerifyError(f"{path}: batch norm needs bn_momentum from 0 to 1, bn_eps above "
                              f"0 and 2 examples or more, got {norm.momentum}, {norm.eps}, {n}")
    groups = _param_groups(wb, meta, si, path, shape, opt, steps)
    with np.errstate(all="ignore"):
        tr = mlp.train(opt, shape, X, y, theta0, steps, sched,
                       numbers(wb, "fd_h", si, path)[0], masks=masks, dropout=p, norm=norm,
                       groups=groups)
    final = shape.parts(tr.theta[-1])
    want = {"loss_trace": [s.loss for s in tr.steps], "dead_trace": [s.dead for s in tr.steps],
            "W1_final": final["W1"]}
    if bn:
        want.update(bn_gamma_final=final["gamma"], bn_beta_final=final["beta"],
                    bn_running_mean_final=tr.steps[-1].running_mean,
                    bn_running_var_final=tr.steps[-1].running_var)
    else:
        want["b1_final"] = final["b1"]
    want.update(W2_final=final["W2"], b2_final=final["b2"])
    if (masks is not None or bn) and not (sspec and sspec.get("kind") == "lrfind"):
        want["loss_eval_trace"] = [s.loss_eval for s in tr.steps]
    if sched is not None:
        want["lr_trace"] = [s["lr"] for s in tr.shown]
    if sspec and sspec.get("kind") == "lrfind":
        want.update(finder_want(wb, si, path, want["lr_trace"], want["loss_trace"]))
    return [compare(wb, label, name, si, w, rtol, atol) for name, w in want.items()]


def _param_groups(wb, meta, si, path, shape, opt, steps):
    """The layer groups of a workbook built with --lr LO:HI or --freeze-steps, from its
    named ``lr_layer1`` and ``freeze_steps``; None otherwise."""
    from . import model as mlp

    if not (meta.get("lr_layer1") or meta.get("freeze")):
        return None
    lr1 = numbers(wb, "lr_layer1", si, path)[0] if meta.get("lr_layer1") else None
    frozen = numbers(wb, "freeze_steps", si, path)[0] if meta.get("freeze") else 0
    if lr1 is not None and not lr1 > 0:
        raise VerifyError(f"{path}: lr_layer1 {lr1} is not a rate above 0")
    if frozen != int(frozen) or not 0 <= frozen <= steps:
        raise VerifyError(f"{path}: freeze_steps {frozen} is not a whole number of steps from "
                          f"0 to {steps}")
    return mlp.param_groups(shape, opt, lr1, int(frozen))
