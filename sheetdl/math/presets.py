"""Presets: which options make each optimizer follow one framework.

A preset fixes conventions (where ε goes, dampening, bias correction, how
weight decay couples) and the framework's default hyperparameters. Learning
rates are the lesson's business: framework defaults (torch SGD's 1e-3) diverge
on un-normalised data such as the course's x in 1..99, so each lesson supplies
its own. Explicit options given by the user override everything.
"""
from __future__ import annotations

from . import optim

#: The frameworks, in the order the CLI lists them; each optimizer's conventions and
#: default hyperparameters under each are declared beside its rule (``optim.register``).
FRAMEWORKS = ("torch", "keras", "fastai", "course")
PRESETS = {framework: {name: r.presets[framework] for name, r in optim.REGISTRY.items()
                        if framework in r.presets} for framework in FRAMEWORKS}

#: What a preset does not define falls back to torch's rule; the sheet says so.
FALLBACK = "torch"
#: The preset a build uses unless told.
DEFAULT = "torch"

#: The course's VBA carried each epoch's last-row *inputs* into the next epoch,
#: dropping that row's update. Only the course preset reproduces it.
DROPS_LAST_UPDATE = {"course": True}


def resolve(preset: str, kind: str, **overrides) -> tuple[optim.Optimizer, str]:
    """The optimizer ``kind`` under ``preset`` with ``overrides`` applied.

    Returns the optimizer and a sentence saying which framework it follows.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    if kind not in optim.REGISTRY:
        raise ValueError(f"unknown optimizer {kind!r}; choose from {', '.join(optim.NAMES)}")
    table = PRESETS[preset]
    if kind in table:
        options, follows = dict(table[kind]), f"follows {preset}"
    else:
        options = dict(PRESETS[FALLBACK].get(kind, {}))
        follows = f"{preset} has no {kind}; follows torch.optim's rule"
    options.update(optim.REGISTRY[kind].implies)
    options.update({k: v for k, v in overrides.items() if v is not None})
    if kind == "rmsprop" and options.get("momentum", 0.0):
        options["use_momentum"] = True
    return optim.make(kind, **options), follows
