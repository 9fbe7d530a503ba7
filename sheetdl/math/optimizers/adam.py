"""Adam and AdamW."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..optim import (Column, Optimizer, beta1_pow_column, decayed, grad_columns, new_column,
                     register)


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam and AdamW.

    m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²; with ``amsgrad`` v̄ ← max(v̄, v).
    bias_correction (torch): m̂ = m/(1 − β₁ᵗ), v̂ = v̄/(1 − β₂ᵗ), θ ← θ − lr·m̂/(√v̂ + ε).
    ``eps_on_uncorrected`` (Keras): θ ← θ − lr_t·m/(√v + ε), lr_t = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ).
    No bias correction (the course sheet): θ ← θ − lr·m/(√v + ε).
    AdamW is ``decoupled_weight_decay=True``.
    """

    name: ClassVar[str] = "adam"
    hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "beta1", "beta2", "eps", "weight_decay")
    structure: ClassVar[tuple[str, ...]] = (
        "bias_correction", "eps_on_uncorrected", "amsgrad", "decoupled_weight_decay")
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    bias_correction: bool = True
    eps_on_uncorrected: bool = False
    amsgrad: bool = False
    decoupled_weight_decay: bool = False
    #: β₁ᵗ = exp(t·ln β₁) from the current β₁ (torch's ``beta1 ** step``), set when a
    #: schedule cycles β₁; the running product equals it only while β₁ is constant.
    beta1_pow_from_step: bool = False

    def columns(self) -> list[Column]:
        cols = grad_columns(self) + [
            Column("exp_avg", "m", "first moment m_t = β₁·m_{t−1} + (1 − β₁)·g",
                   "=beta1*{exp_avg@prev}+(1-beta1)*{grad}", init="0"),
            Column("exp_avg_sq", "v", "second moment v_t = β₂·v_{t−1} + (1 − β₂)·g²",
                   "=beta2*{exp_avg_sq@prev}+(1-beta2)*({grad}*{grad})", init="0"),
        ]
        v = "{exp_avg_sq}"
        if self.amsgrad:
            cols.append(Column("max_exp_avg_sq", "v̄", "AMSGrad: v̄_t = max(v̄_{t−1}, v_t)",
                               "=MAX({max_exp_avg_sq@prev},{exp_avg_sq})", init="0"))
            v = "{max_exp_avg_sq}"
        P = decayed(self)
        if not self.bias_correction:
            return cols + [new_column(self, f"={P}-lr*{{exp_avg}}/(SQRT({v})+eps)",
                                      "θ − lr·m/(√v + ε), no bias correction (the course "
                                      "sheet)")]
        cols += [beta1_pow_column(self),
                 Column("beta2_pow", "β₂ᵗ", "β₂ᵗ as a running product β₂ᵗ⁻¹·β₂",
                        "={beta2_pow@prev}*beta2", per_param=False, init="1")]
        if self.eps_on_uncorrected:
            return cols + [
                Column("lr_t", "lr_t", "Keras: lr_t = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ), and ε is added "
                       "to the uncorrected √v", "=lr*SQRT(1-{beta2_pow})/(1-{beta1_pow})",
                       per_param=False),
                new_column(self, f"={P}-{{lr_t}}*{{exp_avg}}/(SQRT({v})+eps)",
                           "θ − lr_t·m/(√v + ε)")]
        return cols + [
            Column("m_hat", "m̂", "bias-corrected m̂ = m/(1 − β₁ᵗ)", "={exp_avg}/(1-{beta1_pow})"),
            Column("v_hat", "v̂", "bias-corrected v̂ = v/(1 − β₂ᵗ)", f"={v}/(1-{{beta2_pow}})"),
            new_column(self, f"={P}-lr*{{m_hat}}/(SQRT({{v_hat}})+eps)", "θ − lr·m̂/(√v̂ + ε)")]


register("adam", Adam, presets={"torch": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
                  "keras": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-7,
                            "eps_on_uncorrected": True, "decoupled_weight_decay": True},
                  # fastai's Adam is AdamW: β₂ 0.99, ε 1e-5, decoupled wd 0.01
                  "fastai": {"beta1": 0.9, "beta2": 0.99, "eps": 1e-5, "weight_decay": 0.01,
                             "decoupled_weight_decay": True},
                  "course": {"beta1": 0.9, "beta2": 0.9, "eps": 0.0, "bias_correction": False}},
         plain="Adam: steps along the running mean m of the gradients, divided by the root of "
               "their running mean square v, both corrected for starting at zero.",
         cycles="beta1", second_moment="exp_avg_sq")
register("adamw", Adam, implies={"decoupled_weight_decay": True}, lr_as="adam",
         presets={"torch": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-2},
                  "keras": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-7,
                            "eps_on_uncorrected": True, "weight_decay": 0.004},
                  "fastai": {"beta1": 0.9, "beta2": 0.99, "eps": 1e-5, "weight_decay": 0.01}},
         plain="AdamW: Adam whose weight decay shrinks the parameters directly, θ·(1 − lr·λ), "
               "instead of adding λθ to the gradient.",
         cycles="beta1", second_moment="exp_avg_sq")
