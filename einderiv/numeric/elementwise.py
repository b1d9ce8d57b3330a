"""The elementwise functions over numpy arrays.

Each function is its registration's ``array`` implementation
(:mod:`einderiv.core.functions`) with numpy as the array namespace. The
comparisons (``step gt ge lt le``) have a faster numpy form, kept here: the
comparison writes straight into a floating output array, in one pass with no
boolean temporary; ``tests/test_functions.py`` checks it equals the registration.

>>> import numpy as np
>>> NUMPY_FUNCTIONS["relu"](np.array([-1.0, 2.0]))
array([0., 2.])
>>> NUMPY_FUNCTIONS["gt"](np.float32([1, 2]), np.float32([2, 1])).dtype
dtype('float32')
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from einderiv.core.functions import FUNCTIONS, Named

__all__ = ["NUMPY", "NUMPY_FUNCTIONS", "NUMPY_MASKS"]


class _NumpyWithAstype:
    """numpy before 2.1, which lacks the array API's ``astype`` function."""

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def astype(x: Any, dtype: Any, copy: bool = True) -> np.ndarray:
        return np.asarray(x).astype(dtype, copy=copy)


#: numpy as the array namespace the registrations are written against.
NUMPY: Any = np if hasattr(np, "astype") else _NumpyWithAstype()


def _written_into(compare: Callable) -> Callable:
    """``[a OP b]`` in the arguments' floating dtype, the comparison casting into its output."""
    def indicator(a, b):
        if type(a) is not np.ndarray:
            a = np.asarray(a)
        if type(b) is not np.ndarray:
            b = np.asarray(b)
        shape = _broadcast(a, b)
        out = np.empty(shape, _floating(a.dtype, b.dtype))
        return compare(a, b, out=out)
    return indicator


def _broadcast(a: np.ndarray, b: np.ndarray) -> tuple[int, ...]:
    """The shape ``a`` and ``b`` broadcast to: a one-element array of no more axes takes the other's
    shape (a constant against an array, the common case) without ``np.broadcast_shapes``.

    >>> _broadcast(np.zeros((1, 1)), np.zeros((4, 5))), _broadcast(np.zeros((3, 1)), np.zeros(2))
    ((4, 5), (3, 2))
    """
    if a.shape == b.shape or (b.size == 1 and b.ndim <= a.ndim):
        return a.shape
    if a.size == 1 and a.ndim <= b.ndim:
        return b.shape
    return np.broadcast_shapes(a.shape, b.shape)


_FLOATING: dict[tuple, np.dtype] = {}


def _floating(*dtypes: np.dtype) -> np.dtype:
    """The floating dtype a comparison of arrays of ``dtypes`` is written in (remembered: one dict look-up)."""
    found = _FLOATING.get(dtypes)
    if found is None:
        found = _FLOATING[dtypes] = np.result_type(*dtypes, np.float32)
    return found


def _step(x):
    if type(x) is not np.ndarray:
        x = np.asarray(x)
    return np.greater(x, 0, out=np.empty(x.shape, _floating(x.dtype)))


_FASTER = {
    "step": _step,
    "gt": _written_into(np.greater),
    "ge": _written_into(np.greater_equal),
    "lt": _written_into(np.less),
    "le": _written_into(np.less_equal),
}



def _over_numpy(array: Callable) -> Callable:
    """A registration's ``array`` with numpy bound: a named numpy function is that function, unwrapped."""
    if isinstance(array, Named):
        return getattr(NUMPY, array.function)
    return functools.partial(array, NUMPY)


#: Every registered function as a function of numpy arrays.
NUMPY_FUNCTIONS: dict[str, Callable] = {
    name: _FASTER.get(name) or _over_numpy(f.array) for name, f in FUNCTIONS.items()}


#: The comparisons as boolean masks (one byte an entry): what a product multiplies by, as
#: hand-written numpy does (``dH *= H > 0``), instead of a floating indicator array eight times larger.
NUMPY_MASKS: dict[str, Callable] = {
    "step": lambda x: np.greater(x, 0),
    "gt": np.greater,
    "ge": np.greater_equal,
    "lt": np.less,
    "le": np.less_equal,
}
