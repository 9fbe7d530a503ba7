"""Adamax: Adam with an infinity norm."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..optim import (Column, Optimizer, beta1_pow_column, decayed, grad_columns, new_column,
                     register)


@dataclass(frozen=True)
class Adamax(Optimizer):
    """m ← β₁m + (1 − β₁)g; u ← max(β₂u, |g| + ε); θ ← θ − lr/(1 − β₁ᵗ)·m/u.

    Keras puts ε outside the max: u ← max(β₂u, |g|), θ ← θ − lr/(1 − β₁ᵗ)·m/(u + ε).
    """

    name: ClassVar[str] = "adamax"
    hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "beta1", "beta2", "eps", "weight_decay")
    structure: ClassVar[tuple[str, ...]] = ("eps_in_max", "decoupled_weight_decay")
    lr: float = 2e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    eps_in_max: bool = True
    decoupled_weight_decay: bool = False
    beta1_pow_from_step: bool = False  # as Adam's

    def columns(self) -> list[Column]:
        if self.eps_in_max:
            u = Column("exp_inf", "u", "infinity norm u_t = max(β₂·u_{t−1}, |g| + ε)",
                       "=MAX(beta2*{exp_inf@prev},ABS({grad})+eps)", init="0")
        else:
            u = Column("exp_inf", "u", "infinity norm u_t = max(β₂·u_{t−1}, |g|) (Keras: ε "
                       "added below)", "=MAX(beta2*{exp_inf@prev},ABS({grad}))", init="0")
        denom = "{exp_inf}" if self.eps_in_max else "({exp_inf}+eps)"
        return grad_columns(self) + [
            Column("exp_avg", "m", "m_t = β₁·m_{t−1} + (1 − β₁)·g",
                   "=beta1*{exp_avg@prev}+(1-beta1)*{grad}", init="0"),
            u,
            beta1_pow_column(self),
            Column("clr", "lr_t", "lr_t = lr/(1 − β₁ᵗ)", "=lr/(1-{beta1_pow})", per_param=False),
            new_column(self, f"={decayed(self)}-{{clr}}*{{exp_avg}}/{denom}", "θ − lr_t·m/u")]


register("adamax", Adamax, lr_as="adam",
         presets={"torch": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
                  "keras": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "eps_in_max": False,
                            "decoupled_weight_decay": True}},
         plain="Adamax: Adam with the root mean square replaced by a decaying maximum of |g| "
               "(the infinity norm u).",
         cycles="beta1")
