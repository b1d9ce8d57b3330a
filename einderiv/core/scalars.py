"""An array namespace over Python floats, for folding constant calls without numpy.

The elementwise functions are written against an array namespace ``xp``
(:mod:`einderiv.core.functions`); :data:`SCALARS` is that namespace for one
Python float at a time, built on :mod:`math`. Simplification folds
``tanh(0)`` to ``0`` with it. Results follow IEEE arithmetic as numpy's do
instead of raising: ``exp(1000) = inf``, ``log(0) = -inf``, ``log(-1) = nan``,
``sqrt(-1) = nan``, ``sin(inf) = nan``, and a NaN argument of ``maximum`` or
``minimum`` gives NaN. "Arrays" are floats, comparisons give bools, and every
dtype is ``float64``.

>>> SCALARS.exp(1000.0), SCALARS.log(0.0), SCALARS.maximum(float("nan"), 1.0)
(inf, -inf, nan)
>>> SCALARS.astype(SCALARS.greater(2.0, 0.0), SCALARS.float64)
1.0
"""

from __future__ import annotations

import math

__all__ = ["SCALARS", "ScalarNamespace"]

_INF, _NAN = math.inf, math.nan
_LN2 = math.log(2.0)


class ScalarNamespace:
    """The array-API names the elementwise functions use, for Python floats (see the module docstring)."""

    float32 = "float32"
    float64 = "float64"

    # ---- exponentials and logarithms
    @staticmethod
    def exp(x: float) -> float:
        try:
            return math.exp(x)
        except OverflowError:
            return _INF

    @staticmethod
    def expm1(x: float) -> float:
        try:
            return math.expm1(x)
        except OverflowError:
            return _INF

    @staticmethod
    def log(x: float) -> float:
        if math.isnan(x) or x < 0:
            return _NAN
        return -_INF if x == 0 else math.log(x)

    @staticmethod
    def log1p(x: float) -> float:
        if math.isnan(x) or x < -1:
            return _NAN
        return -_INF if x == -1 else math.log1p(x)

    @staticmethod
    def logaddexp(a: float, b: float) -> float:
        """``log(exp(a) + exp(b))`` without overflow (numpy's own formula)."""
        if a == b:
            return a + _LN2
        difference = a - b
        if difference > 0:
            return a + math.log1p(math.exp(-difference))
        if difference <= 0:
            return b + math.log1p(math.exp(difference))
        return _NAN

    @staticmethod
    def sqrt(x: float) -> float:
        return _NAN if math.isnan(x) or x < 0 else math.sqrt(x)

    # ---- trigonometric and hyperbolic
    @staticmethod
    def sin(x: float) -> float:
        return _NAN if math.isinf(x) else math.sin(x)

    @staticmethod
    def cos(x: float) -> float:
        return _NAN if math.isinf(x) else math.cos(x)

    @staticmethod
    def tan(x: float) -> float:
        return _NAN if math.isinf(x) else math.tan(x)

    @staticmethod
    def sinh(x: float) -> float:
        try:
            return math.sinh(x)
        except OverflowError:
            return math.copysign(_INF, x)

    @staticmethod
    def cosh(x: float) -> float:
        try:
            return math.cosh(x)
        except OverflowError:
            return _INF

    @staticmethod
    def tanh(x: float) -> float:
        return math.tanh(x)

    # ---- magnitude and sign
    @staticmethod
    def abs(x: float) -> float:
        return abs(x)

    @staticmethod
    def sign(x: float) -> float:
        if math.isnan(x):
            return _NAN
        return 1.0 if x > 0 else -1.0 if x < 0 else 0.0

    @staticmethod
    def maximum(a: float, b: float) -> float:
        if math.isnan(a) or math.isnan(b):
            return _NAN
        return a if a >= b else b

    @staticmethod
    def minimum(a: float, b: float) -> float:
        if math.isnan(a) or math.isnan(b):
            return _NAN
        return a if a <= b else b

    # ---- comparisons, selection, dtypes
    @staticmethod
    def greater(a: float, b: float) -> bool:
        return a > b

    @staticmethod
    def greater_equal(a: float, b: float) -> bool:
        return a >= b

    @staticmethod
    def less(a: float, b: float) -> bool:
        return a < b

    @staticmethod
    def less_equal(a: float, b: float) -> bool:
        return a <= b

    @staticmethod
    def where(condition: bool, a: float, b: float) -> float:
        return a if condition else b

    @staticmethod
    def astype(x: float | bool, dtype: str, copy: bool = True) -> float:
        return float(x)

    @staticmethod
    def result_type(*arrays_and_dtypes: object) -> str:
        return "float64"


#: The namespace instance simplification passes to the functions' ``array`` implementations.
SCALARS = ScalarNamespace()
