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
from .schedules import adapt, scheduled_values, stepping


@dataclass
class Trace:
    steps: list                # per step, the model's intermediates
    theta: np.ndarray          # (steps + 1, size): θ before each step, then the final θ
    shown: list[dict]          # per step, the optimizer's intermediates (and scheduled lr)
    initial_state: dict


@dataclass(frozen=True)
class ParamGroup:
    """torch's parameter group: θ[start:stop] updated by ``opt`` (its own lr), skipped by
    the optimizer for the first ``frozen`` steps, as torch skips a parameter whose grad is
    None (``requires_grad=False``): no update, no state, and its step count starts when
    it does, so Adam's bias correction and Adagrad's lr decay count from the unfreezing."""

    name: str
    start: int
    stop: int
    opt: Optimizer
    frozen: int = 0


def train(opt: Optimizer, theta0, steps: int, step: Callable, schedule=None,
          keep: Callable | None = None, groups: list[ParamGroup] | None = None) -> Trace:
    """``steps`` full-batch updates from ``theta0``; ``schedule`` (``schedules.Schedule``)
    sets each step's lr and cycled momentum, which ``shown`` then carries by name.

    ``keep`` (a summary of a step's intermediates, e.g. its loss) makes the trace lean:
    ``steps`` holds ``keep(st)`` for each step, ``theta`` only the first and last θ and
    ``shown`` nothing, so memory is one step's, not ``steps`` times it (the add-in returns
    a loss per step, never the whole trace).

    ``groups`` (covering θ in order) trains each slice as its own parameter group; then
    ``shown`` holds every per-parameter quantity over all of θ (a frozen group's state
    unchanged, its intermediates NaN) and each group's per-step ones as ``key|name``."""
    if groups:
        return like_a_sheet(lambda wrap: _train_groups(groups, wrap(theta0), steps, step,
                                                       schedule, keep))
    return like_a_sheet(lambda wrap: _train(opt, wrap(theta0), steps, step, schedule, keep))


def _steps(theta, steps: int, step: Callable, advance: Callable, keep) -> tuple:
    """The loop both trainers share: each step's model at θ, then ``advance(t, θ, ∂L/∂θ)``
    → (new θ, what the optimizer shows); returns the trace's steps, θs and shown."""
    thetas, out, shown = [theta], [], []
    for t in range(1, steps + 1):
        cancel.check()
        st, grad = step(theta)
        theta, sh = advance(t, theta, grad)
        if keep is not None:
            out.append(keep(st))
            continue
        out.append(st)
        shown.append(sh)
        thetas.append(theta)
    if keep is not None:
        thetas.append(theta)
    return out, np.array(thetas), shown


def _train(opt, theta, steps, step, schedule, keep) -> Trace:
    state = opt.init(theta)
    initial = {key: v for key, v in state.items() if key != "t"}
    opt_at = stepping(opt, schedule)

    def advance(t, theta, grad):
        nonlocal state
        step_opt = opt_at(t)
        theta, state, sh = step_opt.update(theta, grad, state)
        sh.update(scheduled_values(step_opt, schedule))
        return theta, sh

    return Trace(*_steps(theta, steps, step, advance, keep), initial)


def _train_groups(groups, theta, steps, step, schedule, keep) -> Trace:
    slices = [slice(g.start, g.stop) for g in groups]
    states = [g.opt.init(theta[sl]) for g, sl in zip(groups, slices)]
    # one rule for every group (their options differ, not their columns)
    columns = adapt(groups[0].opt, schedule).columns()
    initial = {}
    for c in columns:
        if c.key not in states[0] or c.key == "new":
            continue
        if c.per_param:
            initial[c.key] = np.concatenate([st[c.key] for st in states])
        else:
            initial.update({f"{c.key}|{g.name}": st[c.key] for g, st in zip(groups, states)})
            initial[c.key] = states[-1][c.key]
    opt_at = [stepping(g.opt, schedule) for g in groups]

    def advance(t, theta, grad):
        shs, extra = [], {}
        for k, (g, sl) in enumerate(zip(groups, slices)):
            step_opt = opt_at[k](t)
            if t <= g.frozen:  # torch: no grad, so no update and no state
                shs.append(None)
            else:
                _, states[k], sh = step_opt.update(theta[sl], grad[sl], states[k])
                shs.append(sh)
            extra.update(scheduled_values(step_opt, schedule))
        sh = _shown(groups, slices, states, shs, theta, columns)
        return sh["new"], {**sh, **extra}

    return Trace(*_steps(theta, steps, step, advance, keep), initial)


def _shown(groups, slices, states, shs, theta, columns) -> dict:
    """One step's quantities over all groups: per parameter, concatenated (a frozen group's
    θ and state as they were, its other quantities NaN: not computed); per step, each
    group's as ``key|name`` and the last group's (the head, never frozen) as ``key``."""
    out = {}
    for c in columns:
        if c.per_param:
            pieces = []
            for sl, state, sh in zip(slices, states, shs):
                if sh is not None:
                    pieces.append(np.asarray(sh[c.key], float))
                elif c.key == "new":
                    pieces.append(theta[sl])
                elif c.key in state:
                    pieces.append(np.asarray(state[c.key], float))
                else:
                    pieces.append(np.full(sl.stop - sl.start, np.nan))
            out[c.key] = np.concatenate(pieces)
        else:
            for g, state, sh in zip(groups, states, shs):
                out[f"{c.key}|{g.name}"] = float(sh[c.key] if sh is not None
                                                 else state.get(c.key, np.nan))
            out[c.key] = out[f"{c.key}|{groups[-1].name}"]
    return out


def diverged(trace: Trace, sheet: str = "train") -> dict:
    """{"diverged": {sheet: first step whose loss or θ is not finite}}, or {}: the build
    metadata from which the CLI warns."""
    for t, (st, theta) in enumerate(zip(trace.steps, trace.theta[1:]), start=1):
        if not (np.isfinite(st.loss) and np.all(np.isfinite(theta))):
            return {"diverged": {sheet: t}}
    return {}


#: "unsteady": the loss rose on at least this share of the steps (an lr too large for the
#: data makes it bounce from step to step instead of falling), over at least MIN_STEPS
UNSTEADY_SHARE, UNSTEADY_MIN_STEPS = 0.25, 8


def unsteady(trace: Trace, sheet: str = "train") -> dict:
    """{"unsteady": {sheet: [steps the loss rose, steps]}} when training stayed finite but
    bounced, or {}: the build metadata from which the CLI hints at a smaller lr."""
    loss = np.array([st.loss for st in trace.steps], float)
    if len(loss) < UNSTEADY_MIN_STEPS or not np.all(np.isfinite(loss)):
        return {}
    rose = int(np.sum(np.diff(loss) > 0))
    return {"unsteady": {sheet: [rose, len(loss)]}} if rose >= UNSTEADY_SHARE * len(loss) \
        else {}
