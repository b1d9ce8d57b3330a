"""The table of elementwise functions: one row per function.

Each row gives the numpy implementation, the partial derivatives as IR
expressions (so second derivatives stay symbolic), a domain that is safe for
numeric tests and the points where the function has a kink. Step-like helpers
(``step``, ``sign``, the comparisons) are internal: they appear in derivatives
and have derivative zero away from their kinks.

Kink conventions: ``relu'(0) = 0``, ``abs'(0) = 0``; ``max(a, b)`` sends the
gradient to ``a`` where ``a > b`` and to ``b`` elsewhere; ``min(a, b)`` to ``a``
where ``a < b`` and to ``b`` elsewhere.

>>> float(FUNCTIONS["tanh"].numpy(0.0))
0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from einderiv.core import ir
from einderiv.core.ir import Expr

__all__ = ["ElementwiseFunction", "FUNCTIONS", "USER_FUNCTIONS"]


def _indicator(compare: Callable) -> Callable:
    """``[a OP b]`` as floats, written in one pass (the comparison casts into a float output)."""
    def indicator(a, b):
        a, b = np.asarray(a), np.asarray(b)
        out = np.empty(np.broadcast_shapes(a.shape, b.shape), np.result_type(a.dtype, b.dtype, np.float32))
        return compare(a, b, out=out)
    return indicator


def _sigmoid(x):
    # 0.5 (1 + tanh(x/2)): no overflow for large |x|.
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _step(x):
    x = np.asarray(x)
    return np.greater(x, 0, out=np.empty(x.shape, np.result_type(x.dtype, np.float32)))


def _sign(x):
    x = np.asarray(x)
    return np.sign(x).astype(np.result_type(x.dtype, np.float32))


def _zero(*args: Expr) -> tuple[Expr, ...]:
    return tuple(ir.ZERO for _ in args)


def _c(name: str, *args: Expr) -> Expr:
    return ir.call(name, args)


@dataclass(frozen=True)
class ElementwiseFunction:
    """One elementwise function: what it computes and how it differentiates."""

    name: str
    arity: int
    numpy: Callable
    partials: Callable[..., tuple[Expr, ...]]   # args → ∂f/∂arg_k, one per argument
    domain: tuple[float, float]                 # safe for finite differences
    kinks: tuple[float, ...] = ()
    doc: str = ""


_ROWS = (
    # exp' = exp
    ElementwiseFunction("exp", 1, np.exp, lambda u: (_c("exp", u),), (-2.0, 2.0), doc="eᵘ"),
    # log' = 1/u
    ElementwiseFunction("log", 1, np.log, lambda u: (ir.power(u, ir.const(-1)),), (0.2, 3.0), doc="natural log"),
    # sqrt' = 1/(2 sqrt u)
    ElementwiseFunction("sqrt", 1, np.sqrt,
                        lambda u: (ir.scale(ir.power(_c("sqrt", u), ir.const(-1)), 0.5),), (0.2, 3.0)),
    # sin' = cos, cos' = -sin
    ElementwiseFunction("sin", 1, np.sin, lambda u: (_c("cos", u),), (-3.0, 3.0)),
    ElementwiseFunction("cos", 1, np.cos, lambda u: (ir.neg(_c("sin", u)),), (-3.0, 3.0)),
    # tanh' = 1 - tanh²
    ElementwiseFunction("tanh", 1, np.tanh,
                        lambda u: (ir.add(ir.ONE, ir.neg(ir.power(_c("tanh", u), ir.const(2)))),), (-2.0, 2.0)),
    # σ' = σ (1 - σ)
    ElementwiseFunction("sigmoid", 1, _sigmoid,
                        lambda u: (ir.mul(_c("sigmoid", u), ir.add(ir.ONE, ir.neg(_c("sigmoid", u)))),),
                        (-3.0, 3.0)),
    # relu' = [u > 0], so relu'(0) = 0
    ElementwiseFunction("relu", 1, lambda x: np.maximum(x, 0), lambda u: (_c("step", u),), (-2.0, 2.0), (0.0,)),
    # abs' = sign(u), so abs'(0) = 0
    ElementwiseFunction("abs", 1, np.abs, lambda u: (_c("sign", u),), (-2.0, 2.0), (0.0,)),
    # max: the gradient goes to a where a > b, else to b
    ElementwiseFunction("max", 2, np.maximum, lambda a, b: (_c("gt", a, b), _c("le", a, b)), (-2.0, 2.0)),
    # min: the gradient goes to a where a < b, else to b
    ElementwiseFunction("min", 2, np.minimum, lambda a, b: (_c("lt", a, b), _c("ge", a, b)), (-2.0, 2.0)),
    # Internal step functions: derivative zero away from the kink.
    ElementwiseFunction("step", 1, _step, _zero, (-2.0, 2.0), (0.0,), "[u > 0]"),
    ElementwiseFunction("sign", 1, _sign, _zero, (-2.0, 2.0), (0.0,), "sign(u)"),
    ElementwiseFunction("gt", 2, _indicator(np.greater), _zero, (-2.0, 2.0), doc="[a > b]"),
    ElementwiseFunction("ge", 2, _indicator(np.greater_equal), _zero, (-2.0, 2.0), doc="[a ≥ b]"),
    ElementwiseFunction("lt", 2, _indicator(np.less), _zero, (-2.0, 2.0), doc="[a < b]"),
    ElementwiseFunction("le", 2, _indicator(np.less_equal), _zero, (-2.0, 2.0), doc="[a ≤ b]"),
)

FUNCTIONS: dict[str, ElementwiseFunction] = {row.name: row for row in _ROWS}

#: The functions a program may call by name.
USER_FUNCTIONS: tuple[str, ...] = ("exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "max", "min")
