"""The graddesc lesson: each optimizer sheet's b, a and loss traces (and its lr finder's),
replayed from the sheet's named inputs and the named data x, y."""
from __future__ import annotations

import numpy as np

from . import compiled, model as linear
from ...math import optim
from ...verification.report import TraceCheck, VerifyError
from ...verification.workbook import Workbook
from ...verification.replay.common import (bounded_work, compare, finder_want, named_inputs,
                                           numbers, schedule, sheet_hyper, sheet_index)


def replay(wb: Workbook, meta: dict, path, rtol, atol) -> list[TraceCheck]:
    from ...math import schedules

    x = np.array(numbers(wb, "x", None, path))
    y = np.array(numbers(wb, "y", None, path))
    if len(x) != len(y):
        raise VerifyError(f"{path}: names x and y cover {len(x)} and {len(y)} cells")
    checks = []
    sheets = dict(meta["sheets"])
    if meta.get("lrfind"):
        sheets[meta["lrfind"]["sheet"]] = meta["lrfind"]
    for sheet, spec in sheets.items():
        si = sheet_index(wb, sheet, path)
        kind = spec["optimizer"]
        cls = optim.OPTIMIZERS[kind]
        sspec = spec.get("schedule")
        hyper = sheet_hyper(wb, cls, sspec, si, path)
        sched = schedule(wb, sspec, si, path, hyper.get("lr"))
        anneal = None
        if sspec and sspec.get("kind") == "anneal":
            with named_inputs(wb, si, path):
                anneal = schedules.Anneal(numbers(wb, "anneal_ratio", si, path)[0],
                                          numbers(wb, "anneal_factor", si, path)[0])
        b_init = numbers(wb, "b_init", si, path)[0]
        a_init = numbers(wb, "a_init", si, path)[0]
        opt = optim.make(kind, **spec["options"], **hyper)
        finder = sheet == meta.get("lrfind", {}).get("sheet")
        epochs = meta["epochs"]
        bounded_work(path, 0, sched.steps if finder else
                     epochs * len(x) if isinstance(epochs, int) else epochs)
        with np.errstate(all="ignore"):
            if finder:
                trace = linear.train_full_batch(opt, x, y, steps=sched.steps, b_init=b_init,
                                                a_init=a_init, schedule=sched)
            else:
                trace = compiled.train(opt, x, y, epochs=meta["epochs"], b_init=b_init,
                                       a_init=a_init, schedule=sched, anneal=anneal,
                                       drop_last_update=meta.get("drop_last_update", False))
        expected = {"b_trace": trace.b_trace, "a_trace": trace.a_trace, "loss_trace": trace.loss}
        if sched is not None or anneal is not None:
            expected["lr_trace"] = trace.lr
        if finder:
            expected.update(finder_want(wb, si, path, trace.lr, trace.loss))
        checks += [compare(wb, sheet, name, si, want, rtol, atol)
                   for name, want in expected.items()]
    return checks
