"""sheetdl's formula templates as expression trees: parsed, printed back, lowered.

A template such as ``=beta1*{exp_avg@prev}+(1-beta1)*{grad}`` is the one written form
of a rule (``optim.Optimizer.columns``). ``parse`` turns it into a small tree of
``Node``s; ``excel`` prints the tree back to the same text, character for character
(parentheses are kept as written, so the sheet's order of operations is the tree's);
``python`` lowers it to scalar Python source for the compiled loops, and ``lower``
prints it as array code. Only the functions in ``FUNCTIONS`` parse: a template that
uses any other cannot be lowered, and says so.

Precedence is Excel's: comparison < ``&`` < ``+ -`` < ``* /`` < ``^`` < unary minus.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

@dataclass(frozen=True)
class Function:
    """A spreadsheet function sheetdl emits, with its lowerings from the arguments' source:
    ``scalar`` on float64 numbers (``math``, as the per-sample loop and a per-step quantity
    compute), ``array`` on arrays of an array-API namespace ``xp``. Both compute as the
    spreadsheet engines do (MAX of two, INT as floor). ``absorbs``: it can give a finite
    value of a non-finite argument (EXP(−∞) = 0, MAX(−∞, 1) = 1), so a caller that
    looks for #NUM! must look at its arguments, not only at what a formula gives."""

    scalar: Callable[..., str]
    array: Callable[..., str]
    absorbs: bool = False


#: The one registry of functions a template may use: anything else does not parse.
FUNCTIONS: dict[str, Function] = {
    "SQRT": Function(lambda a: f"math.sqrt({a})", lambda a: f"xp.sqrt({a})"),
    "EXP": Function(lambda a: f"math.exp({a})", lambda a: f"xp.exp({a})", absorbs=True),
    "LN": Function(lambda a: f"math.log({a})", lambda a: f"xp.log({a})"),
    "ABS": Function(lambda a: f"abs({a})", lambda a: f"xp.abs({a})"),
    "MAX": Function(lambda a, b: f"max({a}, {b})", lambda a, b: f"xp.maximum({a}, {b})",
                    absorbs=True),
    # absorbs: numba's float(math.floor(x)) of ∞ or NaN is a finite number (−2⁶³)
    "INT": Function(lambda a: f"float(math.floor({a}))", lambda a: f"xp.floor({a})",
                    absorbs=True),
    "COS": Function(lambda a: f"math.cos({a})", lambda a: f"xp.cos({a})"),
    "PI": Function(lambda: "math.pi", lambda: "math.pi"),
}


class Node:
    """An expression; ``excel()`` is its template text (without the leading ``=``)."""


@dataclass(frozen=True)
class Num(Node):
    text: str  # as written: 1, 0.5, 0.96

    def excel(self) -> str:
        return self.text


@dataclass(frozen=True)
class Token(Node):
    """``{key}``: this step's value of ``key``; ``{key@prev}`` the step before's."""

    key: str
    prev: bool = False

    def excel(self) -> str:
        return "{" + self.key + ("@prev" if self.prev else "") + "}"


@dataclass(frozen=True)
class Name(Node):
    """A named input cell (a hyperparameter such as ``lr``)."""

    name: str

    def excel(self) -> str:
        return self.name


@dataclass(frozen=True)
class Group(Node):
    """Parentheses as the template writes them."""

    inner: Node

    def excel(self) -> str:
        return f"({self.inner.excel()})"


@dataclass(frozen=True)
class Neg(Node):
    operand: Node

    def excel(self) -> str:
        return "-" + self.operand.excel()


@dataclass(frozen=True)
class BinOp(Node):
    op: str
    left: Node
    right: Node

    def excel(self) -> str:
        return self.left.excel() + self.op + self.right.excel()


@dataclass(frozen=True)
class Call(Node):
    fn: str
    args: tuple[Node, ...]

    def excel(self) -> str:
        return f"{self.fn}({','.join(a.excel() for a in self.args)})"


_LEXEME = re.compile(r"\s*(?:(?P<token>\{\w+(?:@prev)?\})|(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
                     r"|(?P<call>[A-Z][A-Z0-9]*)\(|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                     r"|(?P<op><>|<=|>=|[-+*/^&=<>(),]))")
#: binary operators by precedence, loosest first (Excel's)
_LEVELS = (("=", "<>", "<", ">", "<=", ">="), ("&",), ("+", "-"), ("*", "/"), ("^",))


class FormulaError(ValueError):
    """A template outside the subset this module parses."""


def parse(text: str) -> Node:
    """The tree of template ``text`` (with or without its leading ``=``)."""
    src = text[1:] if text.startswith("=") else text
    lexemes, pos = [], 0
    while pos < len(src):
        m = _LEXEME.match(src, pos)
        if m is None or m.end() == pos:
            raise FormulaError(f"{text!r}: cannot read {src[pos:pos + 12]!r}")
        kind = m.lastgroup
        lexemes.append((kind, m.group(kind)))
        pos = m.end()
    at = [0]

    def peek():
        return lexemes[at[0]] if at[0] < len(lexemes) else (None, None)

    def take(kind=None, value=None):
        k, v = peek()
        if (kind and k != kind) or (value and v != value):
            raise FormulaError(f"{text!r}: expected {value or kind} at {v!r}")
        at[0] += 1
        return v

    def binary(level: int) -> Node:
        if level == len(_LEVELS):
            return unary()
        left = binary(level + 1)
        while peek()[0] == "op" and peek()[1] in _LEVELS[level]:
            op = take()
            left = BinOp(op, left, binary(level + 1))
        return left

    def unary() -> Node:
        if peek() == ("op", "-"):
            take()
            return Neg(unary())
        return atom()

    def atom() -> Node:
        kind, value = peek()
        if kind == "num":
            take()
            return Num(value)
        if kind == "token":
            take()
            key, _, prev = value[1:-1].partition("@")
            return Token(key, bool(prev))
        if kind == "name":
            take()
            return Name(value)
        if kind == "call":
            take()
            if value not in FUNCTIONS:
                raise FormulaError(f"{text!r}: {value} is not a function sheetdl lowers")
            args = []
            if peek() != ("op", ")"):
                args.append(binary(0))
                while peek() == ("op", ","):
                    take()
                    args.append(binary(0))
            take("op", ")")
            return Call(value, tuple(args))
        if (kind, value) == ("op", "("):
            take()
            inner = binary(0)
            take("op", ")")
            return Group(inner)
        raise FormulaError(f"{text!r}: unexpected {value!r}")

    tree = binary(0)
    if at[0] != len(lexemes):
        raise FormulaError(f"{text!r}: unexpected {peek()[1]!r}")
    return tree


def excel(tree: Node) -> str:
    """The template text of ``tree``, with its leading ``=``."""
    return "=" + tree.excel()


def python(tree: Node, ref: Callable[[Token], str], name: Callable[[str], str],
           emit: Callable[[str], str], absorbed: Callable[[str], None] = lambda v: None) -> str:
    """Lower ``tree`` to Python: ``ref(token)`` and ``name(input)`` give the variable of a
    token or a named input, ``emit(source)`` stores one operation's result in a variable
    and returns its name. ``x^2`` is ``x*x``, as the reference math squares.

    A spreadsheet shows #NUM! for an overflow anywhere inside a formula. Most operations
    carry a non-finite operand into their result (∞ + x, ∞·0, √∞, ∞/x), so a check of
    the formula's value sees it; ``absorbed(variable)`` hears of each operand an operation
    may turn finite (a divisor: x/∞ = 0; a power; an ``absorbs`` function's argument),
    which the caller must check itself."""

    def guarded(node: Node) -> str:
        value = low(node)
        absorbed(value)
        return value

    def low(node: Node) -> str:
        if isinstance(node, Num):
            return repr(float(node.text))
        if isinstance(node, Token):
            return ref(node)
        if isinstance(node, Name):
            return name(node.name)
        if isinstance(node, Group):
            return low(node.inner)
        if isinstance(node, Neg):
            return emit(f"-{low(node.operand)}")
        if isinstance(node, Call):
            fn = FUNCTIONS[node.fn]
            return emit(fn.scalar(*((guarded if fn.absorbs else low)(a) for a in node.args)))
        if isinstance(node, BinOp):
            if node.op == "^":
                if isinstance(node.right, Num) and float(node.right.text) == 2.0:
                    a = low(node.left)
                    return emit(f"{a} * {a}")
                return emit(f"{guarded(node.left)} ** {guarded(node.right)}")  # ∞^0 = 1
            if node.op in "+-*/":
                a = low(node.left)
                b = guarded(node.right) if node.op == "/" else low(node.right)
                return emit(f"{a} {node.op} {b}")
        raise FormulaError(f"{node.excel()!r}: no Python lowering")

    return low(tree)
