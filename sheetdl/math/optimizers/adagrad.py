"""Adagrad: steps shrink with the sum of past squared gradients."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..optim import (Column, Optimizer, decayed, grad_columns, hyperparameter, new_column,
                     register)

hyperparameter("lr_decay", "lr_t = lr / (1 + (t − 1)·lr_decay)", criteria=">=", value=0)


@dataclass(frozen=True)
class Adagrad(Optimizer):
    """s ← s + g²; θ ← θ − lr_t·g/(√s + ε), lr_t = lr/(1 + (t − 1)·lr_decay)."""

    name: ClassVar[str] = "adagrad"
    hyperparameters: ClassVar[tuple[str, ...]] = (
        "lr", "lr_decay", "eps", "weight_decay", "initial_accumulator_value")
    structure: ClassVar[tuple[str, ...]] = ("eps_in_sqrt", "decoupled_weight_decay")
    lr: float = 1e-2
    lr_decay: float = 0.0
    eps: float = 1e-10
    weight_decay: float = 0.0
    initial_accumulator_value: float = 0.0
    eps_in_sqrt: bool = False
    decoupled_weight_decay: bool = False

    def columns(self) -> list[Column]:
        denom = "SQRT({sum}+eps)" if self.eps_in_sqrt else "(SQRT({sum})+eps)"
        return grad_columns(self) + [
            Column("clr", "lr_t", "lr_t = lr/(1 + (t − 1)·lr_decay)",
                   "=lr/(1+({step}-1)*lr_decay)", per_param=False),
            Column("sum", "Σg²", "accumulated squares s_t = s_{t−1} + g²",
                   "={sum@prev}+{grad}*{grad}", init="=initial_accumulator_value"),
            new_column(self, f"={decayed(self)}-{{clr}}*{{grad}}/{denom}",
                       "θ − lr_t·g/(√s + ε)")]


register("adagrad", Adagrad, presets={"torch": {"eps": 1e-10},
                  "keras": {"eps": 1e-7, "eps_in_sqrt": True, "initial_accumulator_value": 0.1,
                            "decoupled_weight_decay": True}},
         plain="Adagrad: divides each gradient by the root of the sum of all its past "
               "squares, so the steps shrink as training goes on.")
