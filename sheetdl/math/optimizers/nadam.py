"""NAdam: Adam with Nesterov momentum."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..optim import (Column, Optimizer, decayed, grad_columns, hyperparameter, new_column,
                     register)

hyperparameter("momentum_decay", "ψ: μ_t = β₁(1 − ½·0.96^(t·ψ))", criteria=">=", value=0)


@dataclass(frozen=True)
class NAdam(Optimizer):
    """Adam with Nesterov momentum and torch's momentum schedule.

    μ_t = β₁(1 − ½·0.96^(t·ψ)), ψ = momentum_decay; Π_t = Π_{t−1}·μ_t;
    θ ← θ − lr(1 − μ_t)/(1 − Π_t)·g/d − lr·μ_{t+1}/(1 − Π_t·μ_{t+1})·m/d,
    d = √(v/(1 − β₂ᵗ)) + ε. Keras is ψ = 1. 0.96^x is written EXP(x·LN(0.96)).
    """

    name: ClassVar[str] = "nadam"
    hyperparameters: ClassVar[tuple[str, ...]] = (
        "lr", "beta1", "beta2", "eps", "weight_decay", "momentum_decay")
    structure: ClassVar[tuple[str, ...]] = ("decoupled_weight_decay",)
    lr: float = 2e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum_decay: float = 4e-3
    decoupled_weight_decay: bool = False

    def columns(self) -> list[Column]:
        return grad_columns(self) + [
            Column("mu", "μ_t", "μ_t = β₁(1 − ½·0.96^(t·ψ)), written with EXP and LN",
                   "=beta1*(1-0.5*EXP({step}*momentum_decay*LN(0.96)))", per_param=False),
            Column("mu_next", "μ_t+1", "μ_{t+1}, the next step's momentum coefficient",
                   "=beta1*(1-0.5*EXP(({step}+1)*momentum_decay*LN(0.96)))", per_param=False),
            Column("mu_product", "Πμ", "running product Π_t = Π_{t−1}·μ_t",
                   "={mu_product@prev}*{mu}", per_param=False, init="1"),
            Column("exp_avg", "m", "m_t = β₁·m_{t−1} + (1 − β₁)·g",
                   "=beta1*{exp_avg@prev}+(1-beta1)*{grad}", init="0"),
            Column("exp_avg_sq", "v", "v_t = β₂·v_{t−1} + (1 − β₂)·g²",
                   "=beta2*{exp_avg_sq@prev}+(1-beta2)*({grad}*{grad})", init="0"),
            Column("beta2_pow", "β₂ᵗ", "β₂ᵗ as a running product", "={beta2_pow@prev}*beta2",
                   per_param=False, init="1"),
            Column("denom", "denom", "d = √(v/(1 − β₂ᵗ)) + ε",
                   "=SQRT({exp_avg_sq}/(1-{beta2_pow}))+eps"),
            new_column(self, f"={decayed(self)}-lr*(1-{{mu}})/(1-{{mu_product}})*{{grad}}/"
                       "{denom}-lr*{mu_next}/(1-{mu_product}*{mu_next})*{exp_avg}/{denom}",
                       "θ − lr(1 − μ_t)/(1 − Π_t)·g/d − lr·μ_{t+1}/(1 − Π_t·μ_{t+1})·m/d")]


register("nadam", NAdam, lr_as="adam",
         presets={"torch": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "momentum_decay": 4e-3},
                  "keras": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "momentum_decay": 1.0,
                            "decoupled_weight_decay": True}},
         plain="NAdam: Adam with Nesterov's look-ahead on the mean m, and a momentum "
               "coefficient μ_t that warms up over the first steps.",
         cycles="beta1", second_moment="exp_avg_sq")
