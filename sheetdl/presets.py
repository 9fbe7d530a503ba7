"""Presets: which options make each optimizer follow one framework.

A preset fixes conventions (where ε goes, dampening, bias correction, how
weight decay couples) and the framework's default hyperparameters. Learning
rates are the lesson's business: framework defaults (torch SGD's 1e-3) diverge
on un-normalised data such as the course's x in 1..99, so each lesson supplies
its own. Explicit options given by the user override everything.
"""
from __future__ import annotations

from . import optim

TORCH = {
    "sgd": {},
    "momentum": {"momentum": 0.9, "dampening": 0.0},
    "nesterov": {"momentum": 0.9, "dampening": 0.0, "nesterov": True},
    "rmsprop": {"alpha": 0.99, "eps": 1e-8},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "adamw": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-2,
              "decoupled_weight_decay": True},
    "adagrad": {"eps": 1e-10},
    "adamax": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "nadam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "momentum_decay": 4e-3},
}

KERAS = {
    "sgd": {"decoupled_weight_decay": True},
    # v ← μv − lr·g, θ ← θ + v is torch's rule at a constant lr.
    "momentum": {"momentum": 0.9, "dampening": 0.0, "decoupled_weight_decay": True},
    "nesterov": {"momentum": 0.9, "dampening": 0.0, "nesterov": True, "decoupled_weight_decay": True},
    "rmsprop": {"alpha": 0.9, "eps": 1e-7, "eps_in_sqrt": True, "decoupled_weight_decay": True},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "eps_on_uncorrected": True,
             "decoupled_weight_decay": True},
    "adamw": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "eps_on_uncorrected": True,
              "weight_decay": 0.004, "decoupled_weight_decay": True},
    "adagrad": {"eps": 1e-7, "eps_in_sqrt": True, "initial_accumulator_value": 0.1,
                "decoupled_weight_decay": True},
    "adamax": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "eps_in_max": False,
               "decoupled_weight_decay": True},
    "nadam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "momentum_decay": 1.0,
              "decoupled_weight_decay": True},
}

FASTAI = {
    "sgd": {"decoupled_weight_decay": True},
    # fastai's SGD with mom accumulates m ← mom·m + g: torch's rule with dampening 0.
    "momentum": {"momentum": 0.9, "dampening": 0.0, "decoupled_weight_decay": True},
    "rmsprop": {"alpha": 0.99, "eps": 1e-8, "decoupled_weight_decay": True},
    # fastai's Adam is AdamW: β₂ 0.99, ε 1e-5, decoupled wd 0.01.
    "adam": {"beta1": 0.9, "beta2": 0.99, "eps": 1e-5, "weight_decay": 0.01,
             "decoupled_weight_decay": True},
    "adamw": {"beta1": 0.9, "beta2": 0.99, "eps": 1e-5, "weight_decay": 0.01,
              "decoupled_weight_decay": True},
}

COURSE = {
    "sgd": {},
    # m ← 0.9m + 0.1g from the first step: an EMA, so (1 − dampening) = 1 − momentum.
    "momentum": {"momentum": 0.9, "dampening": 0.9, "dampen_first_step": True},
    # No ε, and the update divides by the previous row's mean square.
    # The course seeds that mean square with 10000 (its Reset macro).
    "rmsprop": {"alpha": 0.9, "eps": 0.0, "lagged": True, "initial_accumulator_value": 10000.0},
    "adam": {"beta1": 0.9, "beta2": 0.9, "eps": 0.0, "bias_correction": False},
}

PRESETS = {"torch": TORCH, "keras": KERAS, "fastai": FASTAI, "course": COURSE}

#: What a preset does not define falls back to torch's rule; the sheet says so.
FALLBACK = "torch"

#: The course's VBA carried each epoch's last-row *inputs* into the next epoch,
#: dropping that row's update. Only the course preset reproduces it.
DROPS_LAST_UPDATE = {"course": True}


def resolve(preset: str, kind: str, **overrides) -> tuple[optim.Optimizer, str]:
    """The optimizer ``kind`` under ``preset`` with ``overrides`` applied.

    Returns the optimizer and a sentence saying which framework it follows.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    table = PRESETS[preset]
    if kind in table:
        options, follows = dict(table[kind]), f"follows {preset}"
    else:
        options = dict(TORCH.get(kind, {}))
        follows = f"{preset} has no {kind}; follows torch.optim's rule"
    if kind == "nesterov":
        options["nesterov"] = True
    if kind == "adamw":
        options["decoupled_weight_decay"] = True
    options.update({k: v for k, v in overrides.items() if v is not None})
    if kind == "rmsprop" and options.get("momentum", 0.0):
        options["use_momentum"] = True
    return optim.make(kind, **options), follows
