"""The fixed start of every generated module, and the names its functions may read.

:data:`PRELUDE` imports numpy and opt_einsum and defines the two helpers the
generated functions call: ``_array`` (an input as a float64 array of the
expected rank) and ``_diagonal`` (a writeable strided diagonal view, where a
free Kronecker delta adds). :data:`GLOBALS` are the names those functions read
besides their locals, and :data:`RESERVED` the names no local may take.

>>> "_diagonal" in GLOBALS and "exec" in RESERVED and "def _array(" in PRELUDE
True
"""

from __future__ import annotations

import builtins
import keyword

__all__ = ["PRELUDE", "GLOBALS", "RESERVED"]

#: Names the generated functions read: no local variable may take one of these.
GLOBALS = frozenset({"np", "oe", "_array", "_diagonal", "float", "inputs"})
RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | GLOBALS | {
    "value_and_grad", "hessian", "numpy", "opt_einsum", "math", "os", "sys"}

PRELUDE = '''import numpy as np
import opt_einsum as oe


def _array(inputs, name, ndim):
    """The input ``name`` as a float64 array with ``ndim`` axes."""
    if name not in inputs:
        raise KeyError(f"missing input {name!r}")
    array = np.asarray(inputs[name], dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"input {name!r} has {array.ndim} axes, expected {ndim}")
    return array


def _diagonal(out, groups):
    """A writeable view of ``out`` with one axis per group of its axes: a strided diagonal."""
    shape = tuple(out.shape[group[0]] for group in groups)
    strides = tuple(sum(out.strides[axis] for axis in group) for group in groups)
    return np.lib.stride_tricks.as_strided(out, shape, strides, writeable=True)'''
