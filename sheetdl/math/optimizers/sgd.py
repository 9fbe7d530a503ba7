"""Plain gradient descent."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..optim import Column, Optimizer, decayed, grad_columns, new_column, register


@dataclass(frozen=True)
class SGD(Optimizer):
    """θ ← θ − lr·g, with g ← g + λθ (coupled) or θ ← θ(1 − lr·λ) first."""

    name: ClassVar[str] = "sgd"
    hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "weight_decay")
    structure: ClassVar[tuple[str, ...]] = ("decoupled_weight_decay",)
    lr: float = 1e-3
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False

    def columns(self) -> list[Column]:
        return grad_columns(self) + [new_column(self, f"={decayed(self)}-lr*{{grad}}",
                                                "θ − lr·g")]


register("sgd", SGD, presets={"torch": {}, "keras": {"decoupled_weight_decay": True},
                  "fastai": {"decoupled_weight_decay": True}, "course": {}},
         plain="Plain gradient descent: each step moves every parameter against its "
               "gradient, scaled by the learning rate lr.")
