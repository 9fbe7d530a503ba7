"""Full-batch training of any model, shared by the block lessons (softmax, collab, mlp).

A model is a function ``step(θ) → (intermediates, ∂L/∂θ)`` giving everything a block
shows at θ; ``train`` runs it under an optimizer and an lr schedule, one update per step,
with the sheet's overflow rule (``cells.like_a_sheet``: once a number overflows it is
#NUM! from there on).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import cancel
from .cells import like_a_sheet
from .optim import Optimizer
from .schedules import scheduled_values, stepping


@dataclass
class Trace:
    steps: list                # per step, the model's intermediates
    theta: np.ndarray          # (steps + 1, size): θ before each step, then the final θ
    shown: list[dict]          # per step, the optimizer's intermediates (and scheduled lr)
    initial_state: dict


def train(opt: Optimizer, theta0, steps: int, step: Callable, schedule=None,
          keep: Callable | None = None) -> Trace:
    """``steps`` full-batch updates from ``theta0``; ``schedule`` (``schedules.Schedule``)
    sets each step's lr and cycled momentum, which ``shown`` then carries by name.

    ``keep`` (a summary of a step's intermediates, e.g. its loss) makes the trace lean:
    ``steps`` holds ``keep(st)`` for each step, ``theta`` only the first and last θ and
    ``shown`` nothing, so memory is one step's, not ``steps`` times it (the add-in returns
    a loss per step, never the whole trace)."""
    return like_a_sheet(lambda wrap: _train(opt, wrap(theta0), steps, step, schedule, keep))


def _train(opt, theta, steps, step, schedule, keep) -> Trace:
    state = opt.init(theta)
    initial = {key: v for key, v in state.items() if key != "t"}
    thetas, out, shown = [theta], [], []
    opt_at = stepping(opt, schedule)
    for t in range(1, steps + 1):
        cancel.check()
        st, grad = step(theta)
        step_opt = opt_at(t)
        theta, state, sh = step_opt.update(theta, grad, state)
        if keep is not None:
            out.append(keep(st))
            continue
        sh.update(scheduled_values(step_opt, schedule))
        out.append(st)
        shown.append(sh)
        thetas.append(theta)
    if keep is not None:
        thetas.append(theta)
    return Trace(out, np.array(thetas), shown, initial)


def diverged(trace: Trace, sheet: str = "train") -> dict:
    """{"diverged": {sheet: first step whose loss or θ is not finite}}, or {}: the build
    metadata from which the CLI warns."""
    for t, (st, theta) in enumerate(zip(trace.steps, trace.theta[1:]), start=1):
        if not (np.isfinite(st.loss) and np.all(np.isfinite(theta))):
            return {"diverged": {sheet: t}}
    return {}
