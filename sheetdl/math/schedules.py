"""Learning-rate (and momentum) schedules: one closed form per kind, in Python
and as a spreadsheet formula of the step number and named input cells.

A schedule is a frozen dataclass of options, like an optimizer. ``lr(t)`` and
``momentum(t)`` give step t's values (t = 1 is the first update, ``steps`` the
last); ``lr_formula()`` and ``momentum_formula()`` give the same numbers as
cell formulas in which ``{step}`` is the row's step cell and the schedule's
inputs are names (``lr``, ``lr_max``, ``pct_start``...). The Python side
evaluates exactly what the formula says, in the formula's order, so cached
values are exact. Writing s = t − 1 and N = ``steps``:

    constant   lr_t = lr
    step       lr_t = lr·γ^⌊s/step_size⌋            (torch StepLR)
    exp        lr_t = lr·γ^s                        (torch ExponentialLR)
    cosine     lr_t = lr_min + (lr − lr_min)(1 + cos(π·s/N))/2
                                                    (torch CosineAnnealingLR, T_max = N)
    onecycle   cosine warm-up from lr_max/div to lr_max over pct_start of the
               steps, cosine annealing to the final lr; momentum or β₁ cycled
               mom_max → mom_min → mom_max (fastai fit_one_cycle, torch OneCycleLR)
    lrfind     lr_t = lr_min·(lr_max/lr_min)^(s/N)  (fastai LRFinder)

Powers γ^k are written EXP(k·LN γ): LibreOffice gives #NUM! for ``0.9^7000``
(a subnormal result) but EXP underflows quietly, as Excel and IronCalc do.

One-cycle has two conventions, chosen by the preset:
  torch   (OneCycleLR, anneal_strategy="cos", three_phase=False): phase 1 ends at
          step index p = pct_start·N − 1, pct = s/p, then pct = (s − p)/(N − 1 − p);
          value = end + (start − end)/2·(cos(π·pct) + 1); the final lr is
          lr_max/div/div_final, reached on the last step.
  fastai  (combined_cos): pos = s/N, phase 1 while pos < pct_start;
          value = start + (1 + cos(π(1 − pct)))(end − start)/2; the final lr is
          lr_max/div_final, approached but not reached (pos < 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from . import optim

KINDS = ("constant", "step", "exp", "cosine", "onecycle")

#: Help for each schedule input: the input cell's note and validation message.
HELP = {
    "lr_max": "the peak learning rate (one-cycle) or the last (lr finder)",
    "lr_min": "the floor of cosine annealing (torch's eta_min), or the lr finder's first lr",
    "pct_start": "fraction of the steps spent warming up to lr_max",
    "div": "the first lr is lr_max/div",
    "div_final": "the final lr is lr_max/div_final (fastai) or lr_max/div/div_final (torch)",
    "step_size": "steps between decays: lr·γ^⌊(t − 1)/step_size⌋",
    "gamma": "γ: the factor each decay multiplies lr by",
    "mom_max": "momentum (or β₁) at the start and end of the cycle",
    "mom_min": "momentum (or β₁) at the peak learning rate",
    "steps": "derived, not an input: the number of step rows on this sheet (rebuild with "
             "--epochs or --steps to change it)",
    "anneal_ratio": "divide lr when the gradient proxy passes this many times its best",
    "anneal_factor": "what lr is divided by when the proxy passes anneal_ratio × best",
}

VALIDATION = {
    "lr_max": {"validate": "decimal", "criteria": ">", "value": 0},
    "lr_min": {"validate": "decimal", "criteria": ">=", "value": 0},
    "pct_start": {"validate": "decimal", "criteria": "between", "minimum": 0, "maximum": 1},
    "div": {"validate": "decimal", "criteria": ">", "value": 0},
    "div_final": {"validate": "decimal", "criteria": ">", "value": 0},
    "step_size": {"validate": "integer", "criteria": ">=", "value": 1},
    "gamma": {"validate": "decimal", "criteria": ">", "value": 0},
    "mom_max": {"validate": "decimal", "criteria": "between", "minimum": 0, "maximum": 1},
    "mom_min": {"validate": "decimal", "criteria": "between", "minimum": 0, "maximum": 1},
    "anneal_ratio": {"validate": "decimal", "criteria": ">", "value": 0},
    "anneal_factor": {"validate": "decimal", "criteria": ">", "value": 0},
}

#: Which hyperparameter a cycled momentum drives, per optimizer (declared with each rule).
MOMENTUM_OF = {name: r.cycles for name, r in optim.REGISTRY.items() if r.cycles}

#: One-cycle defaults per framework: (pct_start, div, div_final).
ONECYCLE_DEFAULTS = {"torch": (0.3, 25.0, 1e4), "fastai": (0.25, 25.0, 1e5)}


def _cos(start: float, end: float, pct: float, convention: str) -> float:
    if convention == "fastai":
        return start + (1.0 + math.cos(math.pi * (1.0 - pct))) * (end - start) / 2.0
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


def _cos_formula(start: str, end: str, pct: str, convention: str) -> str:
    if convention == "fastai":
        return f"{start}+(1+COS(PI()*(1-{pct})))*({end}-{start})/2"
    return f"{end}+({start}-{end})/2*(COS(PI()*{pct})+1)"


@dataclass(frozen=True)
class Schedule:
    """Options of one schedule. ``steps`` is the number of updates it spans."""

    kind: str = "constant"
    steps: int = 1
    lr: float = 1e-3            # base lr: constant, step, exp, cosine
    lr_max: float = 1e-2        # onecycle peak, lrfind end
    lr_min: float = 0.0         # cosine floor, lrfind start
    pct_start: float = 0.3
    div: float = 25.0
    div_final: float = 1e4
    step_size: int = 1
    gamma: float = 0.1
    mom_max: float = 0.95
    mom_min: float = 0.85
    #: the optimizer hyperparameter one-cycle cycles ("momentum", "beta1") or None
    cycles: str | None = None
    convention: str = "torch"

    INPUTS: ClassVar[dict[str, tuple[str, ...]]] = {
        "constant": (), "step": ("step_size", "gamma"), "exp": ("gamma",),
        "cosine": ("lr_min",), "onecycle": ("lr_max", "pct_start", "div", "div_final"),
        "lrfind": ("lr_min", "lr_max"),
    }

    def __post_init__(self):
        if self.kind not in self.INPUTS:
            raise ValueError(f"unknown schedule {self.kind!r}; choose from {', '.join(KINDS)}")

    @property
    def scheduled(self) -> bool:
        return self.kind != "constant"

    @property
    def uses_base_lr(self) -> bool:
        """Whether the optimizer's own ``lr`` input stays on the sheet."""
        return self.kind not in ("onecycle", "lrfind")

    def sets(self, hyperparameter: str) -> bool:
        """Whether the schedule sets ``hyperparameter`` per step, so the sheet shows a
        column for it instead of the optimizer's named input."""
        if not self.scheduled:
            return False
        return hyperparameter == self.cycles or (hyperparameter == "lr" and not self.uses_base_lr)

    def inputs(self) -> list[str]:
        """Named input cells the schedule adds (besides ``steps``, which it reads)."""
        names = list(self.INPUTS[self.kind])
        if self.kind == "onecycle" and self.cycles:
            names += ["mom_max", "mom_min"]
        return names

    def values(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in self.inputs() + ["steps"]}

    def options(self) -> dict:
        """What the sheet's formulas depend on besides the named inputs (kept in the
        workbook's metadata so ``verify`` can replay it)."""
        return {"kind": self.kind, "cycles": self.cycles, "convention": self.convention}

    # -- reference math --------------------------------------------------------------

    def lr_at(self, t: int) -> float:
        s, n = t - 1, self.steps
        if self.kind == "constant":
            return self.lr
        if self.kind == "step":
            return self.lr * math.exp(float(s // self.step_size) * math.log(self.gamma))
        if self.kind == "exp":
            return self.lr * math.exp(s * math.log(self.gamma))
        if self.kind == "cosine":
            return self.lr_min + (self.lr - self.lr_min) * (1 + math.cos(math.pi * s / n)) / 2
        if self.kind == "lrfind":
            return self.lr_min * math.exp(s / n * math.log(self.lr_max / self.lr_min))
        return self._cycle(s, self.lr_max / self.div, self.lr_max, self._final_lr())

    def momentum_at(self, t: int) -> float | None:
        if self.kind != "onecycle" or not self.cycles:
            return None
        return self._cycle(t - 1, self.mom_max, self.mom_min, self.mom_max)

    def hyper_at(self, t: int) -> dict[str, float]:
        """The optimizer hyperparameters this schedule sets at step t."""
        out = {"lr": self.lr_at(t)}
        if self.kind == "onecycle" and self.cycles:
            out[self.cycles] = self.momentum_at(t)
        return out

    def _final_lr(self) -> float:
        if self.convention == "fastai":
            return self.lr_max / self.div_final
        return self.lr_max / self.div / self.div_final

    def _cycle(self, s: int, start: float, middle: float, end: float) -> float:
        n = self.steps
        if self.convention == "fastai":
            pos = s / n
            if pos < self.pct_start:
                return _cos(start, middle, pos / self.pct_start, "fastai")
            return _cos(middle, end, (pos - self.pct_start) / (1 - self.pct_start), "fastai")
        peak = self.pct_start * n - 1
        if s <= peak:
            return _cos(start, middle, s / peak, "torch")
        return _cos(middle, end, (s - peak) / (n - 1 - peak), "torch")

    # -- formulas --------------------------------------------------------------------

    def lr_formula(self) -> str:
        s = "({step}-1)"
        if self.kind == "constant":
            return "=lr"
        if self.kind == "step":
            return f"=lr*EXP(INT({s}/step_size)*LN(gamma))"
        if self.kind == "exp":
            return f"=lr*EXP({s}*LN(gamma))"
        if self.kind == "cosine":
            return f"=lr_min+(lr-lr_min)*(1+COS(PI()*{s}/steps))/2"
        if self.kind == "lrfind":
            return f"=lr_min*EXP({s}/steps*LN(lr_max/lr_min))"
        final = "lr_max/div_final" if self.convention == "fastai" else "lr_max/div/div_final"
        return self._cycle_formula("lr_max/div", "lr_max", final)

    def momentum_formula(self) -> str | None:
        if self.kind != "onecycle" or not self.cycles:
            return None
        return self._cycle_formula("mom_max", "mom_min", "mom_max")

    def _cycle_formula(self, start: str, middle: str, end: str) -> str:
        s = "({step}-1)"
        if self.convention == "fastai":
            pos = f"{s}/steps"
            warm = _cos_formula(start, middle, f"({pos}/pct_start)", "fastai")
            return (f"=IF({pos}<pct_start,{warm},"
                    f"{_cos_formula(middle, end, f'(({pos}-pct_start)/(1-pct_start))', 'fastai')})")
        peak = "(pct_start*steps-1)"
        return (f"=IF({s}<={peak},{_cos_formula(start, middle, f'({s}/{peak})', 'torch')},"
                f"{_cos_formula(middle, end, f'(({s}-{peak})/(steps-1-{peak}))', 'torch')})")

    def describe(self) -> str:
        """One sentence for the sheet's conventions row."""
        if self.kind == "constant":
            return ""
        what = {
            "step": "lr·γ^⌊(t − 1)/step_size⌋ (torch StepLR)",
            "exp": "lr·γ^(t − 1) (torch ExponentialLR)",
            "cosine": "cosine from lr to lr_min over the steps (torch CosineAnnealingLR)",
            "lrfind": "exponential from lr_min to lr_max (fastai's lr_find)",
            "onecycle": ("one-cycle, " + ("fastai's fit_one_cycle (final lr lr_max/div_final)"
                                          if self.convention == "fastai" else
                                          "torch's OneCycleLR, cos, two phases (final lr "
                                          "lr_max/div/div_final)")),
        }[self.kind]
        if self.kind == "onecycle":
            what += (f"; {self.cycles} cycled mom_max → mom_min → mom_max" if self.cycles else
                     "; no momentum to cycle (torch's OneCycleLR would switch momentum on "
                     "for SGD and RMSprop: pass cycle_momentum=False to match)")
        return "Schedule: " + what


@dataclass(frozen=True)
class Anneal:
    """The course's adam_ann rule, as formulas instead of a macro.

    At the end of each epoch e the gradient proxy is P_e = √v_b + √v_a, the
    optimizer's second moment at the epoch's last step (the VBA's avg_grad2),
    and its best so far B_e = min(P_1..P_e). The next epoch's lr is
    lr_{e+1} = lr_e / factor if P_e > ratio·B_{e−1}, else lr_e; epochs 1 and 2
    run at the input lr (there is no best before the first epoch end).
    """

    ratio: float = 2.0
    factor: float = 4.0
    #: the state holding v, per optimizer
    MOMENT: ClassVar[dict[str, str]] = {name: r.second_moment
                                        for name, r in optim.REGISTRY.items() if r.second_moment}

    def __post_init__(self):
        if not (self.ratio > 0 and self.factor > 0):
            raise ValueError("--anneal-ratio and --anneal-factor must be positive")

    @staticmethod
    def proxy(v) -> float:
        """√v_b + √v_a of the second moment ``v`` (the state ``MOMENT`` names)."""
        return math.sqrt(v[0]) + math.sqrt(v[1])

    def next_lr(self, lr: float, proxies: list, bests: list) -> float:
        """The lr after the epoch whose proxy is ``proxies[-1]``; appends its best."""
        p = proxies[-1]
        out = lr / (self.factor if bests and p > self.ratio * bests[-1] else 1.0)
        bests.append(min(bests[-1], p) if bests else p)
        return out


def stepping(opt, schedule: "Schedule | None"):
    """``opt_at(t)``: the optimizer with step t's scheduled hyperparameters.

    A cycled β₁ also switches β₁ᵗ from a running product to EXP(t·LN β₁_t), torch's
    ``beta1 ** step`` with the current β₁: the product would mix every step's β₁.
    """
    if schedule is None or not schedule.scheduled:
        return lambda t: opt
    opt = adapt(opt, schedule)
    return lambda t: opt.replace(**schedule.hyper_at(t))


def scheduled_values(opt, schedule: "Schedule | None") -> dict[str, float]:
    """What a step's optimizer took from the schedule, by name, for the sheet to show."""
    if schedule is None or not schedule.scheduled:
        return {}
    out = {"lr": opt.lr}
    if schedule.cycles:
        out[schedule.cycles] = getattr(opt, schedule.cycles)
    return out


def adapt(opt, schedule: "Schedule | None"):
    """``opt`` with the structural options ``schedule`` needs (β₁ᵗ from the step under a
    cycled β₁); layouts call it too, so their columns follow the same rule."""
    if schedule is not None and schedule.cycles == "beta1" and hasattr(opt, "beta1_pow_from_step"):
        return opt.replace(beta1_pow_from_step=True)
    return opt


def make(kind: str, *, steps: int, optimizer: str, lr: float, preset: str = "torch",
         cycle_momentum: bool = True, **given) -> Schedule:
    """A schedule over ``steps`` updates for ``optimizer`` under ``preset``'s
    conventions; ``given`` options left as None take the framework's defaults."""
    if kind not in KINDS and kind != "lrfind":
        raise ValueError(f"unknown schedule {kind!r}; choose from {', '.join(KINDS)}")
    convention = "fastai" if preset == "fastai" else "torch"
    pct, div, div_final = ONECYCLE_DEFAULTS[convention]
    defaults = {"lr_max": lr, "pct_start": pct, "div": div, "div_final": div_final,
                "step_size": 1, "gamma": 0.1 if kind == "step" else 0.99,
                "lr_min": 0.0, "mom_max": 0.95, "mom_min": 0.85}
    if kind == "lrfind":
        defaults.update(lr_min=1e-7, lr_max=10.0)
    opts = {k: (given[k] if given.get(k) is not None else v) for k, v in defaults.items()}
    cycles = MOMENTUM_OF.get(optimizer) if (kind == "onecycle" and cycle_momentum) else None
    sched = Schedule(kind=kind, steps=steps, lr=lr, cycles=cycles, convention=convention, **opts)
    check(sched)
    return sched


def for_lesson(kind: str, options: dict | None, steps: int, optimizer: str, lr: float,
               preset: str) -> Schedule | None:
    """The schedule of a full-batch lesson (softmax, collab), or None for a constant lr."""
    options = {k: v for k, v in (options or {}).items()
               if k not in ("anneal_ratio", "anneal_factor")}
    if kind == "constant":
        return None
    if kind == "anneal":
        raise ValueError("--schedule anneal is the course's per-epoch rule for graddesc's "
                         "per-sample sheets; use step, exp, cosine or onecycle here")
    return make(kind, steps=steps, optimizer=optimizer, lr=lr, preset=preset, **options)


def check(s: Schedule) -> None:
    """Refuse settings whose formulas would divide by zero or take LN of a non-positive."""
    if s.steps < 1 or s.steps != int(s.steps):
        raise ValueError(f"steps must be a whole number of steps ≥ 1, got {s.steps}")
    if s.kind == "onecycle":
        if not 0 < s.pct_start < 1:
            raise ValueError(f"--pct-start must be between 0 and 1, got {s.pct_start}")
        if s.convention == "torch" and not 1 < s.pct_start * s.steps < s.steps:
            raise ValueError(f"--pct-start {s.pct_start} × {s.steps} steps leaves no warm-up "
                             "step (torch's OneCycleLR needs pct_start·steps > 1)")
        if s.lr_max <= 0 or s.div <= 0 or s.div_final <= 0:
            raise ValueError("--lr-max, --div and --div-final must be positive")
    if s.kind in ("step", "exp") and s.gamma <= 0:
        raise ValueError(f"--gamma must be positive (its logarithm is taken), got {s.gamma}")
    if s.kind == "step" and (s.step_size < 1 or s.step_size != int(s.step_size)):
        raise ValueError(f"--step-size must be a whole number of steps ≥ 1, got {s.step_size}")
    if s.kind == "cosine" and s.lr_min < 0:
        raise ValueError(f"--lr-min must be at least 0, got {s.lr_min}")
    if s.kind == "lrfind" and not 0 < s.lr_min < s.lr_max:
        raise ValueError(f"the lr finder needs 0 < --lr-min < --lr-max, got {s.lr_min} and "
                         f"{s.lr_max}")
