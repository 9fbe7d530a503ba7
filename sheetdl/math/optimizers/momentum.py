"""Heavy-ball and Nesterov momentum."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..optim import Column, Optimizer, decayed, grad_columns, new_column, register


@dataclass(frozen=True)
class Momentum(Optimizer):
    """Heavy-ball momentum, torch's rule with explicit options.

    buf₁ = g when ``dampen_first_step`` is false (torch), else
    buf_t = μ·buf_{t−1} + (1 − τ)·g with buf₀ = 0 (the course's EMA with τ = 1 − μ);
    then θ ← θ − lr·buf, or θ ← θ − lr·(g + μ·buf) with ``nesterov``.
    """

    name: ClassVar[str] = "momentum"
    hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "momentum", "dampening", "weight_decay")
    structure: ClassVar[tuple[str, ...]] = ("nesterov", "dampen_first_step",
                                            "decoupled_weight_decay")
    lr: float = 1e-3
    momentum: float = 0.9
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    dampen_first_step: bool = False
    decoupled_weight_decay: bool = False

    def columns(self) -> list[Column]:
        cols = grad_columns(self)
        rest = "=momentum*{buf@prev}+(1-dampening)*{grad}"
        if self.dampen_first_step:
            cols.append(Column("buf", "buf", "velocity buf_t = μ·buf_{t−1} + (1 − τ)·g, buf₀ = 0 "
                               "(with τ = μ this is the course's moving average).", rest,
                               init="0"))
        else:
            cols.append(Column("buf", "buf", "velocity (torch's momentum_buffer): buf₁ = g on "
                               "the first step, then buf_t = μ·buf_{t−1} + (1 − τ)·g.",
                               ["={grad}", rest], init="0"))
        P = decayed(self)
        if self.nesterov:
            cols.append(Column("direction", "g+μ·buf", "Nesterov: step along g + μ·buf",
                               "={grad}+momentum*{buf}"))
            cols.append(new_column(self, f"={P}-lr*{{direction}}", "θ − lr·(g + μ·buf)"))
        else:
            cols.append(new_column(self, f"={P}-lr*{{buf}}", "θ − lr·buf"))
        return cols


register("momentum", Momentum,
         presets={"torch": {"momentum": 0.9, "dampening": 0.0},
                  # v ← μv − lr·g, θ ← θ + v is torch's rule at a constant lr
                  "keras": {"momentum": 0.9, "dampening": 0.0, "decoupled_weight_decay": True},
                  # fastai's SGD with mom accumulates m ← mom·m + g: dampening 0
                  "fastai": {"momentum": 0.9, "dampening": 0.0, "decoupled_weight_decay": True},
                  # m ← 0.9m + 0.1g from the first step: an EMA, (1 − dampening) = 1 − momentum
                  "course": {"momentum": 0.9, "dampening": 0.9, "dampen_first_step": True}},
         plain="Momentum: each step moves along the velocity buf, a running sum of past "
               "gradients, so steps speed up where the gradient keeps its direction.",
         cycles="momentum")
register("nesterov", Momentum, implies={"nesterov": True}, lr_as="momentum",
         presets={"torch": {"momentum": 0.9, "dampening": 0.0},
                  "keras": {"momentum": 0.9, "dampening": 0.0, "decoupled_weight_decay": True}},
         plain="Nesterov momentum: like momentum, but each step looks ahead along "
               "g + μ·buf, which damps overshooting.",
         cycles="momentum")
