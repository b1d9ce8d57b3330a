"""The fast path of a repeated call: no checks, no parsing, one dictionary look-up to the plan.

A call repeated with arrays of the same shapes and dtypes needs none of the checks a first call
makes: a *call key* of the raw arguments — (mode, program text, output as given, wrt as given,
memory limit in force) — leads to the inputs that call checked and, by their shapes and dtypes,
to the plan's key. Only calls every check passed unchanged are remembered: numpy float arrays
used as they are (no conversion), no symmetric inputs (whose values are checked), no sizes, no
intermediates among wrt, no parse warnings (repeated on every call). Anything else, or a plan
evicted since, takes the checked path, which raises the same errors as ever.

Used by :mod:`einderiv.numeric.evaluation` (values, gradients, Jacobians, VJPs) and
:mod:`einderiv.numeric.hessian`.

>>> call_key("grad", "L = x[i] x[i]", "x", None, None, None, (), {"x": 1.0})[:3]
('grad', 'L = x[i] x[i]', None)
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from einderiv.calculus.program import Program
from einderiv.core import caching
from einderiv.names import adjoint_name
from einderiv.numeric import planning
from einderiv.numeric.plans import ArrayLike, Inputs, generation, lookup, run, still_cached

__all__ = ["call_key", "run_remembered", "remember"]

_FAST_SIZE = 256
_fast: dict[tuple, tuple[tuple[str, ...], dict[tuple, tuple]]] = {}   # call key → (inputs, shapes → plan key)


def _clear_fast() -> None:
    _fast.clear()


caching.register(f"{__name__}.fast", _clear_fast, lambda: {"size": len(_fast), "maxsize": _FAST_SIZE})


def call_key(mode: str, program, wrt, of, sizes, memory_limit, symmetric, inputs) -> tuple | None:
    """The fast path's key of a call, or None where the call must take the checked path."""
    if sizes is not None or symmetric or type(inputs) is not dict:
        return None
    if memory_limit is None:
        memory_limit = planning.DEFAULT_MEMORY_LIMIT
    elif type(memory_limit) is not int:
        return None
    if type(program) is not str:
        if not isinstance(program, Program):
            return None
        program = program.text
    if type(wrt) is list:
        wrt = tuple(wrt)
    key = (mode, program, of, wrt, memory_limit)
    try:
        hash(key)
    except TypeError:
        return None
    return key



#: Numbers the checked path turns into 0-d float64 arrays whatever their value (an int may not fit).
_SCALARS = frozenset({float, np.float64})


def _shapes_of(names: tuple[str, ...], inputs: Inputs, cotangent: ArrayLike) -> tuple | None:
    """The shapes and dtypes of the inputs ``names`` (and of the cotangent), or None if one is not a numpy array."""
    sig: list = []
    for name in names:
        value = inputs.get(name)
        if type(value) is np.ndarray:
            sig.append(value.shape)
            sig.append(value.dtype)
        elif type(value) in _SCALARS:
            sig.append(type(value))
        else:
            return None
    if cotangent is not None:
        if type(cotangent) is not np.ndarray:
            return None
        sig.append(cotangent.shape)
        sig.append(cotangent.dtype)
    return tuple(sig)


def run_remembered(call_key: tuple | None, inputs: Inputs, cotangent: ArrayLike = None):
    """``(results, names, single)`` of a remembered call whose inputs have the same shapes and dtypes, else None."""
    if call_key is None:
        return None
    entry = _fast.get(call_key)
    if entry is None:
        return None
    needed, plans = entry
    sig = _shapes_of(needed, inputs, cotangent)
    found = plans.get(sig) if sig is not None else None
    if found is None:
        return None
    plan_key, of, names, single, numbers, plan, seen = found
    if not still_cached(seen):
        plan = lookup(plan_key)
        if plan is None:    # cleared or evicted: the checked path builds it again
            return None
    env = {}
    for name in needed:     # a loop, not a comprehension: this path is the whole cost of a small call
        env[name] = inputs[name]
    for name in numbers:    # as the checked path reads them: 0-d float64 arrays
        env[name] = np.asarray(env[name])
    if cotangent is not None:
        env[adjoint_name(of)] = cotangent
    return run(plan, env), names, single


def remember(call_key: tuple, arrays: Mapping[str, ArrayLike], extra: Mapping[str, ArrayLike], plan_key: tuple,
              of: str, inputs: Inputs, cotangent: ArrayLike, names: tuple[str, ...], single: bool) -> None:
    """Let later calls like this one (checked ``arrays`` and ``extra`` arrays, a plan cached under ``plan_key``)
    take the fast path, if every input was used as given."""
    for name, array in arrays.items():
        value = inputs.get(name)
        if value is not array and not (type(value) in _SCALARS and type(array) is np.ndarray
                                       and array.dtype == np.float64 and array.ndim == 0):
            return
    if extra and (len(extra) != 1 or next(iter(extra.values())) is not cotangent):
        return
    needed = tuple(arrays)
    sig = _shapes_of(needed, inputs, cotangent if extra else None)
    if sig is None:
        return
    if len(_fast) >= _FAST_SIZE and call_key not in _fast:
        _fast.clear()
    entry = _fast.setdefault(call_key, (needed, {}))
    if entry[0] != needed:
        return
    if len(entry[1]) >= _FAST_SIZE:
        entry[1].clear()
    numbers = tuple(name for name in needed if type(inputs[name]) is not np.ndarray)
    plan = lookup(plan_key, count=False)       # the call that just ran it was counted
    if plan is not None:
        entry[1][sig] = (plan_key, of, names, single, numbers, plan, generation())
