"""RMSprop: steps scaled by a running root mean square."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..optim import Column, Optimizer, decayed, grad_columns, new_column, register


@dataclass(frozen=True)
class RMSProp(Optimizer):
    """v ← αv + (1 − α)g²; θ ← θ − lr·g/(√v + ε), or /√(v + ε) with ``eps_in_sqrt``.

    ``centered`` subtracts the squared running mean of g from v; ``lagged``
    divides by the previous step's v (the course sheet's rule); a ``momentum``
    above zero accumulates buf ← μ·buf + g/denominator (torch).
    """

    name: ClassVar[str] = "rmsprop"
    hyperparameters: ClassVar[tuple[str, ...]] = (
        "lr", "alpha", "eps", "weight_decay", "momentum", "initial_accumulator_value")
    structure: ClassVar[tuple[str, ...]] = (
        "centered", "eps_in_sqrt", "lagged", "use_momentum", "decoupled_weight_decay")
    lr: float = 1e-2
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    initial_accumulator_value: float = 0.0
    centered: bool = False
    eps_in_sqrt: bool = False
    lagged: bool = False
    use_momentum: bool = False
    decoupled_weight_decay: bool = False

    def columns(self) -> list[Column]:
        cols = grad_columns(self)
        cols.append(Column("square_avg", "v", "mean square v_t = α·v_{t−1} + (1 − α)·g²",
                           "=alpha*{square_avg@prev}+(1-alpha)*({grad}*{grad})",
                           init="=initial_accumulator_value"))
        v = "{square_avg@prev}" if self.lagged else "{square_avg}"
        v_note = "v_{t−1} (the previous row's: the course's lagged rule)" if self.lagged \
            else "v_t"
        if self.centered:
            cols.append(Column("grad_avg", "ḡ",
                               "centered: running mean ḡ_t = α·ḡ_{t−1} + (1 − α)·g",
                               "=alpha*{grad_avg@prev}+(1-alpha)*{grad}", init="0"))
            v, v_note = f"({v}-{{grad_avg}}*{{grad_avg}})", f"({v_note} − ḡ²)"
        if self.eps_in_sqrt:
            cols.append(Column("denom", "denom", f"√({v_note} + ε): ε inside the root (Keras)",
                               f"=SQRT({v}+eps)"))
        else:
            cols.append(Column("denom", "denom", f"√{v_note} + ε: ε outside the root (torch)",
                               f"=SQRT({v})+eps"))
        P = decayed(self)
        if self.use_momentum:
            cols.append(Column("buf", "buf", "buf_t = μ·buf_{t−1} + g/denom",
                               "=momentum*{buf@prev}+{grad}/{denom}", init="0"))
            cols.append(new_column(self, f"={P}-lr*{{buf}}", "θ − lr·buf"))
        else:
            cols.append(new_column(self, f"={P}-lr*{{grad}}/{{denom}}", "θ − lr·g/denom"))
        return cols


register("rmsprop", RMSProp,
         presets={"torch": {"alpha": 0.99, "eps": 1e-8},
                  "keras": {"alpha": 0.9, "eps": 1e-7, "eps_in_sqrt": True,
                            "decoupled_weight_decay": True},
                  "fastai": {"alpha": 0.99, "eps": 1e-8, "decoupled_weight_decay": True},
                  # no ε, the previous row's mean square, seeded with 10000 (its Reset macro)
                  "course": {"alpha": 0.9, "eps": 0.0, "lagged": True,
                             "initial_accumulator_value": 10000.0}},
         plain="RMSprop: divides each gradient by the root of its running mean square v, so "
               "each parameter gets a step size suited to its own gradient's size.",
         second_moment="square_avg")
