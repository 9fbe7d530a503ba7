"""Reference math: one small, pure update rule per optimizer, the optax way.

Each optimizer is a frozen dataclass of options. ``init(params)`` gives the
starting state and ``update(params, grads, state)`` returns
``(new_params, new_state, shown)`` where ``shown`` maps the name of every
intermediate a workbook column displays (effective gradient, moments, bias
corrections, step sizes) to its value. The workbook layout takes its cached
values from ``shown``, and ``sheetdl verify`` replays these functions against
the recalculated sheet, so the order of floating-point operations here is the
order of the spreadsheet formulas.

Hyperparameters carry their torch.optim names (``lr``, ``momentum``,
``dampening``, ``beta1``, ``beta2``, ``eps``, ``weight_decay``, ``alpha``...);
structural options (``eps_in_sqrt``, ``bias_correction``, ``nesterov``...)
say where frameworks differ. ``sheetdl.presets`` maps framework names to
options. Notation: g = gradient, t = 1-based step, λ = weight_decay.

Products are grouped as the formulas group them: ``(1 − β₂)·(g·g)`` is the
sheet's ``(1-beta2)*g^2``, and ``(1 − β₂)·g·g`` would round differently.

Powers such as β₁ᵗ are carried as running products in the state (β₁ᵗ =
β₁ᵗ⁻¹·β₁), not computed with ``^``: LibreOffice gives #NUM! for ``0.9^7000``
while a product underflows quietly to 0 in every engine.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

Array = np.ndarray


def _decay(opt, params: Array, grads: Array) -> tuple[Array, Array]:
    """Weight decay, coupled or decoupled; returns (params, effective grads).

    Coupled (L2, torch's ``weight_decay`` for SGD/Adam/RMSprop): g ← g + λθ.
    Decoupled (AdamW, Keras, fastai): θ ← θ·(1 − lr·λ), g unchanged.
    """
    if opt.decoupled_weight_decay:
        return params * (1.0 - opt.lr * opt.weight_decay), grads
    return params, grads + opt.weight_decay * params


def _beta1_pow(opt, state: dict, t: int) -> float:
    """β₁ᵗ: a running product, or exp(t·ln β₁) of the current β₁ under a cycled β₁."""
    if opt.beta1_pow_from_step:
        return math.exp(t * math.log(opt.beta1))
    return state["beta1_pow"] * opt.beta1


@dataclass(frozen=True)
class Registered:
    """An optimizer under the name the CLI, the sheets and the add-in use, declared once,
    beside its rule: the rule and the options the name implies (``nesterov`` is Momentum
    with ``nesterov=True``); each framework's conventions and default hyperparameters
    (``sheetdl.presets``; a framework without it falls back to torch's); the learning rate
    each lesson trains its default data visibly with, measured (framework defaults such
    as torch SGD's 1e-3 diverge on the course's x up to 99); row 2's plain sentence; the
    hyperparameter a one-cycle schedule cycles; the state the course's annealing reads."""

    name: str
    rule: type
    implies: dict
    presets: dict
    lesson_lr: dict
    plain: str
    cycles: str | None = None
    second_moment: str | None = None


#: Every optimizer by its name, in the order the CLI lists them.
REGISTRY: dict[str, Registered] = {}
#: The lessons with a learning rate of their own per optimizer.
LESSONS = ("graddesc", "softmax", "collab", "mlp")


def register(name: str, rule: type, *, lesson_lr: dict, presets: dict, plain: str,
             implies: dict | None = None, cycles: str | None = None,
             second_moment: str | None = None) -> None:
    if set(lesson_lr) != set(LESSONS):
        raise ValueError(f"{name}: a learning rate for each of {', '.join(LESSONS)}")
    REGISTRY[name] = Registered(name, rule, implies or {}, presets, lesson_lr, plain, cycles,
                                second_moment)


def lesson_lr(lesson: str, kind: str) -> float:
    """The learning rate lesson ``lesson`` uses for ``kind`` unless told otherwise."""
    return REGISTRY[kind].lesson_lr[lesson]


@dataclass(frozen=True)
class Optimizer:
    """Common interface. ``hyperparameters`` are the named input cells."""

    name: ClassVar[str] = ""
    hyperparameters: ClassVar[tuple[str, ...]] = ()
    structure: ClassVar[tuple[str, ...]] = ()

    def replace(self, **changes) -> "Optimizer":
        return dataclasses.replace(self, **changes)

    def hyper(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in self.hyperparameters}

    def options(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.structure}


@dataclass(frozen=True)
class SGD(Optimizer):
    """θ ← θ − lr·g, with g ← g + λθ (coupled) or θ ← θ(1 − lr·λ) first."""

    name: ClassVar[str] = "sgd"
    hyperparameters: ClassVar[tuple[str, ...]] = ("lr", "weight_decay")
    structure: ClassVar[tuple[str, ...]] = ("decoupled_weight_decay",)
    lr: float = 1e-3
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False

    def init(self, params: Array) -> dict:
        return {}

    def update(self, params, grads, state):
        p, g = _decay(self, params, grads)
        new = p - self.lr * g
        return new, {}, {"grad": g, "new": new}



register("sgd", SGD, lesson_lr=dict(graddesc=1e-4, softmax=0.5, collab=5.0, mlp=0.1),
         presets={"torch": {}, "keras": {"decoupled_weight_decay": True},
                  "fastai": {"decoupled_weight_decay": True}, "course": {}},
         plain="Plain gradient descent: each step moves every parameter against its "
               "gradient, scaled by the learning rate lr.")

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

    def init(self, params):
        return {"buf": np.zeros_like(params), "t": 0}

    def update(self, params, grads, state):
        t = state["t"] + 1
        p, g = _decay(self, params, grads)
        if t == 1 and not self.dampen_first_step:
            buf = g.copy()
        else:
            buf = self.momentum * state["buf"] + (1.0 - self.dampening) * g
        shown = {"grad": g, "buf": buf}
        if self.nesterov:
            direction = g + self.momentum * buf
            shown["direction"] = direction
        else:
            direction = buf
        new = p - self.lr * direction
        shown["new"] = new
        return new, {"buf": buf, "t": t}, shown



register("momentum", Momentum,
         lesson_lr=dict(graddesc=1e-5, softmax=0.1, collab=1.0, mlp=0.05),
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
register("nesterov", Momentum, implies={"nesterov": True},
         lesson_lr=dict(graddesc=1e-5, softmax=0.1, collab=1.0, mlp=0.05),
         presets={"torch": {"momentum": 0.9, "dampening": 0.0},
                  "keras": {"momentum": 0.9, "dampening": 0.0, "decoupled_weight_decay": True}},
         plain="Nesterov momentum: like momentum, but each step looks ahead along "
               "g + μ·buf, which damps overshooting.",
         cycles="momentum")

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

    def init(self, params):
        state = {"square_avg": np.full_like(params, self.initial_accumulator_value)}
        if self.centered:
            state["grad_avg"] = np.zeros_like(params)
        if self.use_momentum:
            state["buf"] = np.zeros_like(params)
        return state

    def update(self, params, grads, state):
        p, g = _decay(self, params, grads)
        v = self.alpha * state["square_avg"] + (1.0 - self.alpha) * (g * g)
        new_state = {"square_avg": v}
        shown = {"grad": g, "square_avg": v}
        v_used = state["square_avg"] if self.lagged else v
        if self.centered:
            gavg = self.alpha * state["grad_avg"] + (1.0 - self.alpha) * g
            new_state["grad_avg"] = shown["grad_avg"] = gavg
            v_used = v_used - gavg * gavg
        denom = np.sqrt(v_used + self.eps) if self.eps_in_sqrt else np.sqrt(v_used) + self.eps
        shown["denom"] = denom
        if self.use_momentum:
            buf = self.momentum * state["buf"] + g / denom
            new_state["buf"] = shown["buf"] = buf
            new = p - self.lr * buf
        else:
            new = p - self.lr * g / denom
        shown["new"] = new
        return new, new_state, shown



register("rmsprop", RMSProp,
         lesson_lr=dict(graddesc=0.1, softmax=0.02, collab=0.02, mlp=0.01),
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

    def init(self, params):
        state = {"exp_avg": np.zeros_like(params), "exp_avg_sq": np.zeros_like(params),
                 "beta1_pow": 1.0, "beta2_pow": 1.0, "t": 0}
        if self.amsgrad:
            state["max_exp_avg_sq"] = np.zeros_like(params)
        return state

    def update(self, params, grads, state):
        p, g = _decay(self, params, grads)
        m = self.beta1 * state["exp_avg"] + (1.0 - self.beta1) * g
        v = self.beta2 * state["exp_avg_sq"] + (1.0 - self.beta2) * (g * g)
        t = state["t"] + 1
        b1p = _beta1_pow(self, state, t)
        b2p = state["beta2_pow"] * self.beta2
        new_state = {"exp_avg": m, "exp_avg_sq": v, "beta1_pow": b1p, "beta2_pow": b2p, "t": t}
        shown = {"grad": g, "exp_avg": m, "exp_avg_sq": v}
        v_used = v
        if self.amsgrad:
            v_used = np.maximum(state["max_exp_avg_sq"], v)
            new_state["max_exp_avg_sq"] = shown["max_exp_avg_sq"] = v_used
        if not self.bias_correction:
            new = p - self.lr * m / (np.sqrt(v_used) + self.eps)
        elif self.eps_on_uncorrected:
            shown["beta1_pow"], shown["beta2_pow"] = b1p, b2p
            lr_t = self.lr * math.sqrt(1.0 - b2p) / (1.0 - b1p)
            shown["lr_t"] = lr_t
            new = p - lr_t * m / (np.sqrt(v_used) + self.eps)
        else:
            shown["beta1_pow"], shown["beta2_pow"] = b1p, b2p
            m_hat = m / (1.0 - b1p)
            v_hat = v_used / (1.0 - b2p)
            shown["m_hat"], shown["v_hat"] = m_hat, v_hat
            new = p - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        shown["new"] = new
        return new, new_state, shown



register("adam", Adam, lesson_lr=dict(graddesc=0.3, softmax=0.05, collab=0.1, mlp=0.05),
         presets={"torch": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
                  "keras": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-7,
                            "eps_on_uncorrected": True, "decoupled_weight_decay": True},
                  # fastai's Adam is AdamW: β₂ 0.99, ε 1e-5, decoupled wd 0.01
                  "fastai": {"beta1": 0.9, "beta2": 0.99, "eps": 1e-5, "weight_decay": 0.01,
                             "decoupled_weight_decay": True},
                  "course": {"beta1": 0.9, "beta2": 0.9, "eps": 0.0, "bias_correction": False}},
         plain="Adam: steps along the running mean m of the gradients, divided by the root of "
               "their running mean square v, both corrected for starting at zero.",
         cycles="beta1", second_moment="exp_avg_sq")
register("adamw", Adam, implies={"decoupled_weight_decay": True},
         lesson_lr=dict(graddesc=0.3, softmax=0.05, collab=0.1, mlp=0.05),
         presets={"torch": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-2},
                  "keras": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-7,
                            "eps_on_uncorrected": True, "weight_decay": 0.004},
                  "fastai": {"beta1": 0.9, "beta2": 0.99, "eps": 1e-5, "weight_decay": 0.01}},
         plain="AdamW: Adam whose weight decay shrinks the parameters directly, θ·(1 − lr·λ), "
               "instead of adding λθ to the gradient.",
         cycles="beta1", second_moment="exp_avg_sq")

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

    def init(self, params):
        return {"sum": np.full_like(params, self.initial_accumulator_value), "t": 0}

    def update(self, params, grads, state):
        t = state["t"] + 1
        p, g = _decay(self, params, grads)
        clr = self.lr / (1.0 + (t - 1) * self.lr_decay)
        s = state["sum"] + g * g
        denom = np.sqrt(s + self.eps) if self.eps_in_sqrt else np.sqrt(s) + self.eps
        new = p - clr * g / denom
        return new, {"sum": s, "t": t}, {"grad": g, "clr": clr, "sum": s, "new": new}



register("adagrad", Adagrad, lesson_lr=dict(graddesc=1.0, softmax=0.3, collab=0.3, mlp=0.1),
         presets={"torch": {"eps": 1e-10},
                  "keras": {"eps": 1e-7, "eps_in_sqrt": True, "initial_accumulator_value": 0.1,
                            "decoupled_weight_decay": True}},
         plain="Adagrad: divides each gradient by the root of the sum of all its past "
               "squares, so the steps shrink as training goes on.")

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

    def init(self, params):
        return {"exp_avg": np.zeros_like(params), "exp_inf": np.zeros_like(params),
                "beta1_pow": 1.0, "t": 0}

    def update(self, params, grads, state):
        p, g = _decay(self, params, grads)
        m = self.beta1 * state["exp_avg"] + (1.0 - self.beta1) * g
        if self.eps_in_max:
            u = np.maximum(self.beta2 * state["exp_inf"], np.abs(g) + self.eps)
            denom = u
        else:
            u = np.maximum(self.beta2 * state["exp_inf"], np.abs(g))
            denom = u + self.eps
        t = state["t"] + 1
        b1p = _beta1_pow(self, state, t)
        clr = self.lr / (1.0 - b1p)
        new = p - clr * m / denom
        shown = {"grad": g, "exp_avg": m, "exp_inf": u, "beta1_pow": b1p, "clr": clr, "new": new}
        return new, {"exp_avg": m, "exp_inf": u, "beta1_pow": b1p, "t": t}, shown



register("adamax", Adamax, lesson_lr=dict(graddesc=0.3, softmax=0.05, collab=0.1, mlp=0.05),
         presets={"torch": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
                  "keras": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "eps_in_max": False,
                            "decoupled_weight_decay": True}},
         plain="Adamax: Adam with the root mean square replaced by a decaying maximum of |g| "
               "(the infinity norm u).",
         cycles="beta1")

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

    def init(self, params):
        return {"exp_avg": np.zeros_like(params), "exp_avg_sq": np.zeros_like(params),
                "mu_product": 1.0, "beta2_pow": 1.0, "t": 0}

    def mu(self, t: int) -> float:
        return self.beta1 * (1.0 - 0.5 * math.exp(t * self.momentum_decay * math.log(0.96)))

    def update(self, params, grads, state):
        t = state["t"] + 1
        p, g = _decay(self, params, grads)
        mu, mu_next = self.mu(t), self.mu(t + 1)
        mu_product = state["mu_product"] * mu
        m = self.beta1 * state["exp_avg"] + (1.0 - self.beta1) * g
        v = self.beta2 * state["exp_avg_sq"] + (1.0 - self.beta2) * (g * g)
        b2p = state["beta2_pow"] * self.beta2
        denom = np.sqrt(v / (1.0 - b2p)) + self.eps
        new = (p - self.lr * (1.0 - mu) / (1.0 - mu_product) * g / denom
               - self.lr * mu_next / (1.0 - mu_product * mu_next) * m / denom)
        shown = {"grad": g, "mu": mu, "mu_next": mu_next, "mu_product": mu_product,
                 "exp_avg": m, "exp_avg_sq": v, "beta2_pow": b2p, "denom": denom, "new": new}
        state = {"exp_avg": m, "exp_avg_sq": v, "mu_product": mu_product, "beta2_pow": b2p, "t": t}
        return new, state, shown



register("nadam", NAdam, lesson_lr=dict(graddesc=0.3, softmax=0.05, collab=0.1, mlp=0.05),
         presets={"torch": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "momentum_decay": 4e-3},
                  "keras": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "momentum_decay": 1.0,
                            "decoupled_weight_decay": True}},
         plain="NAdam: Adam with Nesterov's look-ahead on the mean m, and a momentum "
               "coefficient μ_t that warms up over the first steps.",
         cycles="beta1", second_moment="exp_avg_sq")

#: Every optimizer a lesson can use, by the name the CLI takes, and its rule.
#: ``nesterov`` and ``adamw`` are option sets of Momentum and Adam.
OPTIMIZERS: dict[str, type[Optimizer]] = {name: r.rule for name, r in REGISTRY.items()}
NAMES: tuple[str, ...] = tuple(REGISTRY)


def make(kind: str, **options) -> Optimizer:
    """Build optimizer ``kind`` from options, ignoring those it does not take."""
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r}; choose from {', '.join(OPTIMIZERS)}")
    cls = OPTIMIZERS[kind]
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in options.items() if k in fields})
