"""Python expressions of generated code: small trees that parenthesize by precedence.

Generated expressions are never pasted strings: each :class:`Code` knows the
Python precedence of its outermost operator, and every constructor
parenthesizes an operand whose precedence is below what its operator needs.
So ``0.5 * u`` with ``u = x - 1.0`` is ``0.5 * (x - 1.0)`` whatever ``u`` is.
Names are validated identifiers, numbers are literals (``1e999`` is
``np.inf``), strings are JSON-escaped.

The elementwise functions' ``code`` templates (see
:mod:`einderiv.core.functions`) run on :class:`_Template` objects, whose
arithmetic and ``np.…`` calls build these trees: :func:`function_code`.

>>> binary(number(0.5), "*", binary(variable("x"), "-", number(1.0))).text
'0.5 * (x - 1)'
"""

from __future__ import annotations

import json
import keyword
import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from einderiv.core.functions import FUNCTIONS
from einderiv.errors import UnsupportedError
from einderiv.language.printing import format_number

__all__ = ["Code", "IDENTIFIER", "variable", "number", "string", "binary", "negated", "product_of", "call",
           "attribute", "subscript", "function_code", "template_names", "printable"]

#: Python precedences of the operators codegen writes, loosest first (``_ATOM``: a name, call or bracket).
_ADD, _MUL, _UNARY, _POWER, _ATOM = 12, 13, 14, 15, 16
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Code:
    """A Python expression and the precedence of its outermost operator."""

    text: str
    precedence: int = _ATOM
    variable: bool = False    # a bare local name (an alias of an array)
    literal: bool = False     # a number literal: ``2 .T`` would need a space, so it is wrapped


def _operand(code: Code, at_least: int) -> str:
    """``code`` as an operand that needs precedence ``at_least``: parenthesized if it binds more loosely."""
    return code.text if code.precedence >= at_least else f"({code.text})"


def _head(code: Code) -> str:
    """``code`` before ``.name``, ``(…)`` or ``[…]``."""
    return code.text if code.precedence >= _ATOM and not code.literal else f"({code.text})"


def variable(name: str) -> Code:
    """A local or global name of the generated code; anything but an identifier is refused.

    >>> variable("W1").text
    'W1'
    >>> variable("x; import os")
    Traceback (most recent call last):
    ...
    einderiv.errors.UnsupportedError: codegen cannot use 'x; import os' as a Python name
    """
    if not IDENTIFIER.fullmatch(name) or keyword.iskeyword(name):
        raise UnsupportedError(f"codegen cannot use {name!r} as a Python name")
    return Code(name, variable=True)


def number(value: float, as_float: bool = False) -> Code:
    """A number: ``2``, ``0.5``, ``-1.5``; infinities and NaN are ``np.inf`` and ``np.nan``, never a bare name.

    >>> [number(v).text for v in (2.0, 0.5, float("inf"))], number(2.0, as_float=True).text
    (['2', '0.5', 'np.inf'], '2.0')
    """
    value = float(value)
    if math.isnan(value):
        return Code("np.nan")
    if math.isinf(value):
        return Code("np.inf") if value > 0 else Code("-np.inf", _UNARY)
    text = repr(value) if as_float or not value.is_integer() else format_number(value)
    return Code(text, _UNARY, literal=True) if text.startswith("-") else Code(text, literal=True)


def string(text: str) -> Code:
    """A string literal (JSON's escaping is valid Python).

    >>> print(string('say "hi"').text)
    "say \\"hi\\""
    """
    return Code(json.dumps(text))


def binary(left: Code, op: str, right: Code) -> Code:
    """``left op right`` for ``+ - * / **``, each side parenthesized as the operator needs.

    >>> x, y = variable("x"), variable("y")
    >>> binary(x, "-", binary(y, "-", x)).text, binary(negated(x), "**", number(2)).text
    ('x - (y - x)', '(-x) ** 2')
    """
    if op in ("+", "-"):
        level, need_left, need_right = _ADD, _ADD, _MUL
    elif op in ("*", "/"):
        level, need_left, need_right = _MUL, _MUL, _UNARY
    elif op == "**":   # right-associative, binds tighter than a unary minus on its left
        level, need_left, need_right = _POWER, _ATOM, _UNARY
    else:
        raise ValueError(f"not an arithmetic operator: {op!r}")
    return Code(f"{_operand(left, need_left)} {op} {_operand(right, need_right)}", level)


def negated(code: Code) -> Code:
    """``-code``: anything but a name, call or bracket is parenthesized.

    >>> negated(binary(variable("x"), "**", number(2))).text
    '-(x ** 2)'
    """
    return Code(f"-{_operand(code, _ATOM)}", _UNARY)


def product_of(factors: Sequence[Code]) -> Code:
    """``f1 * f2 * …`` (at least one factor).

    >>> product_of([number(2), binary(variable("x"), "+", number(1)), variable("y")]).text
    '2 * (x + 1) * y'
    """
    result = factors[0]
    for factor in factors[1:]:
        result = binary(result, "*", factor)
    return result


def call(callee: str | Code, args: Sequence[Code], keywords: Sequence[tuple[str, str]] = ()) -> Code:
    """``callee(args, key=value)``; a ``str`` callee is a fixed name of the generated code.

    >>> call("oe.contract", [string("i,i->"), variable("x"), variable("x")], [("optimize", "[(0, 1)]")]).text
    'oe.contract("i,i->", x, x, optimize=[(0, 1)])'
    """
    head = callee if isinstance(callee, str) else _head(callee)
    parts = [a.text for a in args] + [f"{key}={value}" for key, value in keywords]
    return Code(f"{head}({', '.join(parts)})")


def attribute(code: Code, name: str) -> Code:
    """``code.name``; a number or an operation is parenthesized first.

    >>> attribute(number(2), "T").text, attribute(binary(variable("a"), "+", variable("b")), "T").text
    ('(2).T', '(a + b).T')
    """
    return Code(f"{_head(code)}.{name}")


def subscript(code: Code, items: str) -> Code:
    """``code[items]``.

    >>> subscript(attribute(variable("W"), "shape"), "0").text
    'W.shape[0]'
    """
    return Code(f"{_head(code)}[{items}]")


_TemplateMethod = Callable[["_Template", object], "_Template"]


def _arithmetic(op: str) -> tuple[_TemplateMethod, _TemplateMethod]:
    """The methods ``template op other`` and ``other op template`` of :class:`_Template`."""
    def forward(self: _Template, other: object) -> _Template:
        return _Template(binary(self.code, op, _lift(other)))

    def reflected(self: _Template, other: object) -> _Template:
        return _Template(binary(_lift(other), op, self.code))
    return forward, reflected


class _Template:
    """Generated code as a function's ``code`` template sees it: numpy-like calls and arithmetic build code.

    ``0.5 * (1.0 + np.tanh(0.5 * u))`` with ``u`` the code ``x - 1.0`` builds
    ``0.5 * (1.0 + np.tanh(0.5 * (x - 1.0)))``: every operator goes through :func:`binary`.
    """

    def __init__(self, code: Code):
        self.code = code

    def __call__(self, *args: object) -> "_Template":
        return _Template(call(self.code, [_lift(a) for a in args]))

    def astype(self, dtype: "_Template") -> "_Template":
        return _Template(call(attribute(self.code, "astype"), [_lift(dtype)]))

    __add__, __radd__ = _arithmetic("+")
    __sub__, __rsub__ = _arithmetic("-")
    __mul__, __rmul__ = _arithmetic("*")
    __truediv__, __rtruediv__ = _arithmetic("/")
    __pow__, __rpow__ = _arithmetic("**")

    def __neg__(self) -> "_Template":
        return _Template(negated(self.code))


def _lift(value: object) -> Code:
    """A template's operand as code: generated code as it is, a Python float as ``0.5``, an int as ``2``."""
    if isinstance(value, _Template):
        return value.code
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a code template combined {type(value).__name__}, not code or a number")
    return number(value, as_float=isinstance(value, float))


class _NumpyCode:
    """The ``np`` a ``code`` template calls: ``np.tanh`` is the code ``np.tanh``; ``names`` records what is used."""

    def __init__(self, names: set[str] | None = None):
        self.names = names

    def __getattr__(self, name: str) -> _Template:
        if not IDENTIFIER.fullmatch(name) or name.startswith("_"):
            raise AttributeError(name)
        if self.names is not None:
            self.names.add(name)
        return _Template(Code(f"np.{name}"))


_NUMPY = _NumpyCode()


def function_code(fn: str, args: Sequence[Code]) -> Code:
    """The numpy code of the elementwise function ``fn`` of ``args`` (its registration's ``code``).

    >>> function_code("sigmoid", [binary(variable("x"), "-", number(1.0))]).text
    'np.exp(-np.logaddexp(0.0, -(x - 1)))'
    """
    registered = FUNCTIONS.get(fn)
    if registered is None:
        raise UnsupportedError(f"codegen has no numpy code for the function '{fn}'; known: {', '.join(FUNCTIONS)}")
    return _lift(registered.code(_NUMPY, *(_Template(a) for a in args)))


def template_names() -> frozenset[str]:
    """The numpy names the registered functions' code templates use.

    >>> {"tanh", "exp"} <= template_names()
    True
    """
    names: set[str] = set()
    for registered in FUNCTIONS.values():
        registered.code(_NumpyCode(names), *(_Template(variable("u")) for _ in range(registered.arity)))
    return frozenset(names)



def printable(text: str) -> str:
    """``text`` with a backslash and every character that is not printable escaped (``\\r`` → ``\\\\r``):
    it can never end a comment line or a docstring early.

    >>> printable("L = x\\r os.system(1)\\f")
    'L = x\\\\r os.system(1)\\\\x0c'
    """
    return "".join(c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode("ascii")
                   for c in text)
