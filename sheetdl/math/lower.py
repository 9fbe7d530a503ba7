"""An optimizer's rule, lowered from its formula templates to code that runs on arrays.

A rule is written once, as the formula templates of its columns (``Optimizer.columns``):
the text the sheet's cells hold. This module prints those trees (``expr``) as Python:

- ``array_source``: one function over whole arrays in any array-API namespace ``xp``
  (NumPy, CuPy, array-api-strict): the reference math (``Optimizer.update``), the add-in's
  kernels, and the Lite file, which carries the printed source itself;
- ``elementwise_source``: one numba loop over the elements, every column of an element
  computed in registers, for NumPy arrays large enough that memory traffic is the cost.

Both keep the sheet's order of operations: a node is printed where the template has it,
parentheses where the template has them, so every result is the sheet's to the bit. A
quantity that holds one number per step (β₁ᵗ, a bias-corrected lr) is computed with
``math`` once, as the per-sample loop computes it; one per parameter with ``xp``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import math
import os
import sys
import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import expr

#: Python's binding strength of each operator, loosest first: Excel's for + - * /.
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


@dataclass(frozen=True)
class Lowered:
    """What a printed rule takes and gives."""

    name: str                    # the function's name in the source
    source: str
    hyper: tuple[str, ...]       # named inputs, in the order the function takes them
    state: tuple[str, ...]       # quantities carried from step to step (``{key@prev}``)
    per_param: frozenset[str]    # which of the columns hold one value per parameter
    outputs: tuple[str, ...]     # every column, in order


def _print(tree: expr.Node, ref, name) -> str:
    """``tree`` as Python source: ``ref(token)``/``name(input)`` give a token's or an
    input's variable and whether it holds one value per parameter. Functions of a
    per-parameter value are ``xp``'s, of a per-step value ``math``'s (``expr.FUNCTIONS``)."""

    def low(node) -> tuple[str, int, bool]:  # (source, precedence, per parameter?)
        if isinstance(node, expr.Num):
            return repr(float(node.text)), 9, False
        if isinstance(node, expr.Token):
            var, arr = ref(node)
            return var, 9, arr
        if isinstance(node, expr.Name):
            return name(node.name), 9, False
        if isinstance(node, expr.Group):
            src, _, arr = low(node.inner)
            return f"({src})", 9, arr
        if isinstance(node, expr.Neg):
            src, _, arr = low(node.operand)
            return f"(-{src})", 9, arr
        if isinstance(node, expr.Call):
            args = [low(a) for a in node.args]
            arr = any(a[2] for a in args)
            lowering = expr.FUNCTIONS[node.fn].array if arr else expr.FUNCTIONS[node.fn].scalar
            return lowering(*(a[0] for a in args)), 9, arr
        if isinstance(node, expr.BinOp):
            (a, pa, arr_a), (b, pb, arr_b) = low(node.left), low(node.right)
            arr = arr_a or arr_b
            if node.op == "^":
                if isinstance(node.right, expr.Num) and float(node.right.text) == 2.0:
                    return f"({a} * {a})", 9, arr  # the reference's square, as ``expr.python``
                return f"({a} ** {b})", 9, arr
            if node.op in _PRECEDENCE:
                p = _PRECEDENCE[node.op]
                a = a if pa >= p else f"({a})"
                b = b if pb > p else f"({b})"  # left-associative, as Excel
                return f"{a} {node.op} {b}", p, arr
        raise expr.FormulaError(f"{node.excel()!r}: no array lowering")

    return low(tree)[0]


class _Inputs:
    """A printer's reader of named inputs: refuses a name that is no hyperparameter of
    ``opt`` and remembers which are read, so the printed function takes only those."""

    def __init__(self, opt):
        self.opt, self.used = opt, set()

    def __call__(self, h: str) -> str:
        if h not in self.opt.hyperparameters:
            raise expr.FormulaError(f"{h} is no input of {self.opt.name}")
        self.used.add(h)
        return h

    def taken(self) -> tuple[str, ...]:
        return tuple(h for h in self.opt.hyperparameters if h in self.used)


def _trees(column) -> list[expr.Node]:
    texts = column.formula if isinstance(column.formula, list) else [column.formula]
    return [expr.parse(t) for t in texts]


def array_source(opt, name: str | None = None) -> Lowered:
    """``opt``'s update as one Python function over arrays:

    ``name(p, g, step, state, <hyperparameters>, xp)`` → a dict of every column's value
    this step (and ``grad``, the raw gradient where decay is decoupled). ``state`` holds
    the previous step's carried quantities; ``step`` is 1-based; a ``[first, later]``
    template becomes an ``if step == 1.0`` branch."""
    columns = opt.columns()
    keys = [c.key for c in columns]
    per_param = frozenset(c.key for c in columns if c.per_param)
    name = name or opt.name
    carried: list[str] = []
    named = _Inputs(opt)

    def ref(tok: expr.Token):
        key = tok.key
        if key == "step":
            return "step", False
        if key in ("p", "g"):
            return key, True
        if key == "grad" and "grad" not in keys:
            return "g", True
        if key not in keys:
            raise expr.FormulaError(f"{{{key}}} is no column of {opt.name}")
        if tok.prev:
            if key not in carried:
                carried.append(key)
            return f'state["{key}"]', key in per_param
        return key, key in per_param

    body: list[str] = []
    for c in columns:
        trees = _trees(c)
        if len(trees) == 1:
            body.append(f"    {c.key} = {_print(trees[0], ref, named)}")
        else:  # the first step's own rule (torch's first momentum step), then the rest
            body += ["    if step == 1.0:",
                     f"        {c.key} = {_print(trees[0], ref, named)}",
                     "    else:",
                     f"        {c.key} = {_print(trees[1], ref, named)}"]
    hyper = named.taken()
    shown = (["grad"] if "grad" not in keys else []) + keys
    values = ", ".join(f'"{k}": {"g" if k == "grad" and k not in keys else k}' for k in shown)
    doc = f'    """{opt.name}, generated from its formula templates: do not edit."""'
    args = ", ".join(["p", "g", "step", "state", *hyper, "xp"])
    source = "\n".join([f"def {name}({args}):", doc,
                        *body, f"    return {{{values}}}"]) + "\n"
    return Lowered(name, source, hyper, tuple(carried), per_param, tuple(shown))


def elementwise_source(opt, name: str = "kernel") -> Lowered:
    """``opt``'s update as a numba loop over flat float64 arrays, one element at a time:

    ``name(p, g, step, <carried per-parameter arrays>, <carried per-step numbers>,
    <hyperparameters>, <outputs>)`` writes the new parameters and each carried
    per-parameter quantity (what the next step reads) into the output arrays, and returns
    the tuple of the per-step columns, computed once before the loop."""
    columns = opt.columns()
    keys = [c.key for c in columns]
    per_param = frozenset(c.key for c in columns if c.per_param)
    carried: list[str] = []
    named = _Inputs(opt)
    temps = [0]

    def ref(tok: expr.Token) -> str:
        key = tok.key
        if key == "step":
            return "step"
        if key in ("p", "g") or (key == "grad" and "grad" not in keys):
            return f"{'p' if key == 'p' else 'g'}[i]"
        if key not in keys:
            raise expr.FormulaError(f"{{{key}}} is no column of {opt.name}")
        if tok.prev:
            if key not in carried:
                carried.append(key)
            return f"q_{key}[i]" if key in per_param else f"q_{key}"
        return f"c_{key}"

    def lowered(tree, pad: str) -> list[str]:
        lines: list[str] = []

        def emit(src: str) -> str:  # one operation a variable, as the per-sample loop
            temps[0] += 1
            lines.append(f"{pad}t{temps[0]} = {src}")
            return f"t{temps[0]}"
        value = expr.python(tree, ref, named, emit)
        return lines, value

    scalar_lines, element_lines = [], []
    for c in columns:
        lines = element_lines if c.per_param else scalar_lines
        pad = "        " if c.per_param else "    "
        trees = _trees(c)
        if len(trees) == 1:
            body, value = lowered(trees[0], pad)
            lines += body + [f"{pad}c_{c.key} = {value}"]
        else:  # the first step's own rule, then the rest
            (b1, v1), (b2, v2) = lowered(trees[0], pad + "    "), lowered(trees[1], pad + "    ")
            lines += [f"{pad}if step == 1.0:", *b1, f"{pad}    c_{c.key} = {v1}",
                      f"{pad}else:", *b2, f"{pad}    c_{c.key} = {v2}"]
    arrays = [k for k in carried if k in per_param]
    numbers = [k for k in carried if k not in per_param]
    written = ["new"] + [k for k in arrays if k != "new"]
    scalars = [k for k in keys if k not in per_param]
    hyper = named.taken()
    args = (["p", "g", "step"] + [f"q_{k}" for k in arrays] + [f"q_{k}" for k in numbers]
            + list(hyper) + [f"out_{k}" for k in written])
    source = "\n".join([
        f"def {name}({', '.join(args)}):",
        *scalar_lines,
        "    for i in numba.prange(p.shape[0]):",
        *element_lines,
        *[f"        out_{k}[i] = c_{k}" for k in written],
        f"    return ({''.join(f'c_{k}, ' for k in scalars)})",
    ]) + "\n"
    return Lowered(name, source, hyper, tuple(arrays + numbers), per_param,
                   tuple(written + scalars))


# --------------------------------------------------------------------------- loading

def cache_dir() -> Path:
    """Where generated numba code is kept, so numba compiles each once per machine (about
    a second each) rather than once per process: ``SHEETDL_CACHE``, else the user's cache."""
    if os.environ.get("SHEETDL_CACHE"):
        return Path(os.environ["SHEETDL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sheetdl" / "loops"


def load(text: str, prefix: str):
    """A module of ``text`` (numba-decorated functions): from a file in ``cache_dir()``
    named by the hash of its text, where numba's cache beside it holds the machine code;
    in memory where that cannot be written. The file holds all the code its functions
    run, so a changed rule or model is a new file."""
    import numba

    digest = hashlib.sha256((text + numba.__version__).encode()).hexdigest()[:20]
    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{prefix}_{digest}.py"
        if not path.exists() or path.read_text() != text:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(f"sheetdl_{prefix}_{digest}", path)
        module = importlib.util.module_from_spec(spec)
        # numba's cached machine code finds its globals by importing the module's name
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    except OSError:
        module = types.ModuleType(f"sheetdl_{prefix}_{digest}")
        exec(compile(text.replace("cache=True", "cache=False"), module.__name__, "exec"),
             module.__dict__)
        return module


def numba_available() -> bool:
    """Whether the compiled loops can run; without numba the array code runs instead."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=None)
def _structural(cls) -> tuple[str, ...]:
    values = set(cls.hyperparameters)
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in values)


def layout(opt) -> tuple:
    """What decides ``opt``'s columns: its rule and structural options, not its values.
    Read on every reference step, so the option names are looked up once per rule."""
    return (type(opt),) + tuple((name, getattr(opt, name)) for name in _structural(type(opt)))


def rebuild(key: tuple):
    """An optimizer of layout ``key``, its values the defaults: what the printers read."""
    cls, *structure = key
    return cls(**dict(structure))


@lru_cache(maxsize=128)
def array_function(key: tuple):
    """The array function of a layout (``layout(opt)``), compiled once a process."""
    lowered = array_source(rebuild(key), "update")
    namespace = {"math": math}
    exec(compile(lowered.source, f"<sheetdl rule {key[0].__name__}>", "exec"), namespace)
    return namespace["update"], lowered


@lru_cache(maxsize=64)
def elementwise_function(key: tuple):
    """The numba loop of a layout, compiled once a machine (``load``)."""
    lowered = elementwise_source(rebuild(key))
    text = ("# generated by sheetdl.math.lower from the formula templates; do not edit\n"
            "import math\nimport numba\n\n\n"
            '@numba.njit(cache=True, parallel=True, error_model="numpy")\n' + lowered.source)
    return load(text, "kernel").kernel, lowered
