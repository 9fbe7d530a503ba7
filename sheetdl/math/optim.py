"""Optimizers, each written once: the formula templates of its columns.

An optimizer is a frozen dataclass of options, the optax way. Its rule is
``columns()``: the state and update quantities a sheet shows, in order, each a
formula template (``{key}`` this step's value of quantity ``key``, ``{key@prev}``
the previous step's, ``{p}`` the parameter, ``{g}`` the raw gradient, ``{grad}`` the
gradient after coupled weight decay, ``{step}`` the 1-based step, bare names the
hyperparameters). Everything else is derived from that one text (``lower``):

- ``init(params)`` and ``update(params, grads, state)`` → ``(new_params, new_state,
  shown)``, the reference math, where ``shown`` maps every column's key to its value;
- the sheet's cells (``sheet.formulas``), the compiled per-sample loop
  (``lessons.graddesc.compiled``) and the add-in's kernels (``addin.kernels``).

Hyperparameters carry their torch.optim names (``lr``, ``momentum``, ``beta1``,
``eps``, ``weight_decay``...); structural options (``eps_in_sqrt``,
``bias_correction``, ``nesterov``...) say where frameworks differ, and choose the
templates. ``presets`` maps framework names to options. Each rule lives in its own
file in ``optimizers/``, with its ``register(...)`` call: its name, presets, plain
sentence, and the help and validation of any hyperparameter of its own. It knows no
lesson: each lesson keeps the learning rates it measured (``learning_rates``).

Products are grouped as the formulas group them: ``(1-beta2)*({grad}*{grad})`` is
(1 − β₂)·(g·g), and (1 − β₂)·g·g would round differently. No formula uses ``^`` where
its result may underflow: LibreOffice gives #NUM! for a power below 2.2e-308 (``0.9^7000``,
or a gradient of 1e-155 squared as a run converges) while a product underflows quietly
to a subnormal or 0 in every engine, as the reference does. So g² is ``g*g`` and powers
such as β₁ᵗ are running products (β₁ᵗ = β₁ᵗ⁻¹·β₁).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from . import expr, lower

Array = np.ndarray


@dataclass
class Column:
    """One quantity of a rule: its key, the header and note a sheet shows, its formula
    template (or ``[first step, later steps]``), whether it holds one value per parameter
    (else one per step), its number style, and its step-0 value (``"0"``, ``"1"``, or
    a formula such as ``"=initial_accumulator_value"``) if the next step reads it."""

    key: str
    header: str
    note: str
    formula: str | list[str] | None
    per_param: bool = True
    style: str = "general"
    init: str | None = None


@dataclass(frozen=True)
class Hyperparameter:
    """A named input cell: the help shown as its note, CLI help and validation message,
    and its validation rule (XlsxWriter's ``data_validation`` options)."""

    help: str
    validation: dict


#: Every optimizer hyperparameter by name. The common ones are here; a rule's own (Adagrad's
#: lr_decay) is declared in its file with ``hyperparameter(...)``.
HYPERPARAMETERS: dict[str, Hyperparameter] = {}
_BELOW_ONE = 0.999999999999


def hyperparameter(name: str, help: str, **validation) -> None:
    HYPERPARAMETERS[name] = Hyperparameter(help, {"validate": "decimal", **validation})


hyperparameter("lr", "learning rate η: the step size", criteria=">", value=0)
hyperparameter("momentum", "μ: how much of the previous velocity is kept",
               criteria="between", minimum=0, maximum=1)
hyperparameter("dampening", "τ: the new gradient enters the buffer as (1 − τ)·g",
               criteria="between", minimum=0, maximum=1)
hyperparameter("beta1", "β₁: decay of the first moment m (mean of g)",
               criteria="between", minimum=0, maximum=_BELOW_ONE)
hyperparameter("beta2", "β₂: decay of the second moment v (mean of g²)",
               criteria="between", minimum=0, maximum=_BELOW_ONE)
hyperparameter("alpha", "α: decay of the mean square v", criteria="between", minimum=0,
               maximum=1)
hyperparameter("eps", "ε: keeps the denominator away from zero", criteria=">=", value=0)
hyperparameter("weight_decay", "λ: pulls parameters toward 0", criteria=">=", value=0)
hyperparameter("initial_accumulator_value", "starting value of the squared-gradient "
               "accumulator", criteria=">=", value=0)


@dataclass(frozen=True)
class Registered:
    """An optimizer under the name the CLI, the sheets and the add-in use, declared once,
    beside its rule: the rule and the options the name implies (``nesterov`` is Momentum
    with ``nesterov=True``); each framework's conventions and default hyperparameters
    (``presets``; a framework without it falls back to torch's); row 2's plain sentence;
    the hyperparameter a one-cycle schedule cycles; the state the course's annealing
    reads; ``lr_as``, the optimizer whose learning rate it takes in every lesson (a
    variant with the same scale of step: nadam takes adam's). The rates themselves are
    each lesson's, measured on its data, in ``lessons/<name>/__init__.py``."""

    name: str
    rule: type
    implies: dict
    presets: dict
    plain: str
    cycles: str | None = None
    second_moment: str | None = None
    lr_as: str | None = None


#: Every optimizer by its name, in the order the CLI lists them (``optimizers/__init__``).
REGISTRY: dict[str, Registered] = {}


def register(name: str, rule: type, *, presets: dict, plain: str,
             implies: dict | None = None, cycles: str | None = None,
             second_moment: str | None = None, lr_as: str | None = None) -> None:
    if lr_as is not None and lr_as not in REGISTRY:
        raise ValueError(f"{name}: lr_as={lr_as!r} names no optimizer registered before it")
    REGISTRY[name] = Registered(name, rule, implies or {}, presets, plain, cycles,
                                second_moment, lr_as)


def learning_rates(lesson: str, measured: dict[str, float]) -> dict[str, float]:
    """A lesson's learning rate for every optimizer, from the rates ``measured`` for it on
    its data (framework defaults such as torch SGD's 1e-3 diverge on the course's x up to
    99): an optimizer registered ``lr_as`` another takes that one's."""
    missing = [n for n in NAMES if (REGISTRY[n].lr_as or n) not in measured]
    if missing:
        raise ValueError(f"{lesson}: no learning rate for {', '.join(missing)}")
    return {n: measured[REGISTRY[n].lr_as or n] for n in NAMES}


@dataclass(frozen=True)
class Optimizer:
    """Common interface. ``hyperparameters`` are the named input cells; ``structure`` the
    options that choose the templates."""

    name: ClassVar[str] = ""
    hyperparameters: ClassVar[tuple[str, ...]] = ()
    structure: ClassVar[tuple[str, ...]] = ()

    def columns(self) -> list[Column]:
        """The rule: its quantities in the order they are computed."""
        raise NotImplementedError

    def replace(self, **changes) -> "Optimizer":
        return dataclasses.replace(self, **changes)

    def hyper(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in self.hyperparameters}

    def options(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.structure}

    def init(self, params: Array) -> dict:
        """The step-0 value of every quantity a step reads back, and the step count."""
        state: dict = {}
        for c in self.columns():
            if c.init is None or c.key == "new":
                continue
            value = self._start(c.init)
            state[c.key] = np.full_like(params, value) if c.per_param else value
        state["t"] = 0
        return state

    def update(self, params, grads, state, xp=np):
        """One step, the columns' templates evaluated in order on arrays of ``xp``."""
        fn, lowered = lower.array_function(lower.layout(self))
        t = state["t"] + 1
        shown = fn(params, grads, float(t), state,
                   *(float(getattr(self, h)) for h in lowered.hyper), xp)
        new_state = {k: shown[k] for k in state if k != "t"}
        new_state["t"] = t
        return shown["new"], new_state, shown

    def _start(self, text: str) -> float:
        tree = expr.parse(text)
        if isinstance(tree, expr.Num):
            return float(tree.text)
        if isinstance(tree, expr.Name) and tree.name in self.hyperparameters:
            return float(getattr(self, tree.name))
        raise expr.FormulaError(f"{self.name}: step-0 value {text!r} is a number or an input")


# --------------------------------------------------------------------------- shared columns

def decayed(opt: Optimizer) -> str:
    """θ as the update reads it: θ·(1 − lr·λ) under decoupled weight decay (AdamW)."""
    return "{p}*(1-lr*weight_decay)" if opt.decoupled_weight_decay else "{p}"


def grad_columns(opt: Optimizer) -> list[Column]:
    """g + λθ, torch's coupled (L2) weight decay; nothing where decay is decoupled, and
    ``{grad}`` is then the raw gradient."""
    if opt.decoupled_weight_decay:
        return []
    return [Column("grad", "g", "g = ∂L/∂θ + λ·θ: the gradient with coupled (L2) weight decay, "
                   "torch's weight_decay.", "={g}+weight_decay*{p}")]


def new_column(opt: Optimizer, formula: str, math: str) -> Column:
    """The updated parameter, θ_new = ``math``, starting from the initial θ."""
    decay = (" Decoupled weight decay (AdamW): θ·(1 − lr·λ) replaces θ."
             if opt.decoupled_weight_decay else "")
    return Column("new", "new", f"θ_new = {math}.{decay}", formula, style="num",
                  init="={p}_init")


def beta1_pow_column(opt: Optimizer) -> Column:
    """β₁ᵗ: a running product, or EXP(t·LN β₁) of this step's β₁ when a schedule cycles β₁
    (torch's ``beta1 ** step``; the product would mix every step's β₁)."""
    if opt.beta1_pow_from_step:
        return Column("beta1_pow", "β₁ᵗ", "β₁ᵗ = EXP(t·LN β₁) with this step's β₁ (torch's "
                      "beta1**step): a cycled β₁ makes a running product wrong",
                      "=EXP({step}*LN(beta1))", per_param=False, init="1")
    return Column("beta1_pow", "β₁ᵗ", "β₁ᵗ as a running product β₁ᵗ⁻¹·β₁ (it underflows "
                  "to 0 quietly where 0.9^7000 is #NUM! in LibreOffice)",
                  "={beta1_pow@prev}*beta1", per_param=False, init="1")


from . import optimizers  # noqa: E402,F401 - registers each rule, in the CLI's order

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
