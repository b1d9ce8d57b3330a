"""Numbers: values, Jacobians, gradients, VJPs and JVPs.

Every function takes the program (text or :class:`Program`), the inputs (a
mapping of names to arrays or numbers), the output ``of`` (default: the last
statement) and ``sizes`` for indices no array fixes. The work is split in two:

1. a *plan*, built once per (program, output, request, input shapes and
   dtypes, sizes): the symbolic derivative program and the compiled
   ``contract_expression`` of every step. Plans live in a bounded LRU cache
   guarded by a lock, so a second call with same-shaped arrays does no
   symbolic work and no path search;
2. running the plan: a forward pass over the statements, then the derived
   statements (reverse mode for gradients and VJPs, forward mode for JVPs).

>>> import numpy as np
>>> W, X = np.ones((2, 3)), np.ones((3, 4))
>>> jacobian("F[i,k] = W[i,j] X[j,k]", "W", {"W": W, "X": X}).shape
(2, 4, 2, 3)
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from einderiv.core import caching, ir
from einderiv.calculus.differentiation import forward_program
from einderiv.numeric import symmetric as _symmetric
from einderiv.errors import ShapeError
from einderiv.numeric.planning import compile_expr
from einderiv.numeric.backend import kind_of, np_dtype
from einderiv.numeric import fast_path
from einderiv.numeric.plans import (ArrayLike, Inputs, Plan, as_array, backend_of_arrays, cached, check_inputs,
                                    checked_memory_limit, compile_plan, derived_steps, extras_like, forward_steps,
                                    lowered, owned_copy, plan_cache_info, plan_context, referenced_statements,
                                    requested, reverse_request, reverse_specs, run, signature, sizes_cache_key,
                                    with_shapes, wrt_names)
from einderiv.calculus.program import Program, as_program, wrt_slots
from einderiv.language.printing import plural
from einderiv.names import VALUE, tangent_name

__all__ = ["evaluate", "jacobian", "grad", "vjp", "jvp", "value_and_grad", "clear_cache", "cache_info"]


def clear_cache() -> None:
    """Forget every compiled plan and every cached parse and derivation (every registered cache).

    >>> clear_cache(); cache_info()["size"]
    0
    """
    caching.clear_caches()


def cache_info() -> dict[str, int]:
    """Plan-cache statistics: hits, misses, current and maximum size, in plans and in program text."""
    return plan_cache_info()


# ---------------------------------------------------------------- public API

def evaluate(program: Program | str, inputs: Inputs, *, of: str | None = None,
             sizes: Mapping[str, int] | None = None, memory_limit: int | None = None) -> np.ndarray:
    """The value of the output ``of`` (default: the last statement).

    >>> evaluate("y[i] = A[i,j] x[j]", {"A": [[1, 2], [3, 4]], "x": [1, 1]}).tolist()
    [3.0, 7.0]
    """
    call_key = fast_path.call_key("value", program, None, of, sizes, memory_limit, (), inputs)
    fast = fast_path.run_remembered(call_key, inputs)
    if fast is not None:
        results, (name,), _ = fast
        return results[name]
    program = as_program(program)
    of = program.resolve_output(of)
    if of not in program.names:
        return owned_copy(check_inputs(program, inputs, [of])[of])      # the caller owns what is returned
    order, needed = requested(program, of, ())
    arrays = check_inputs(program, inputs, needed)
    sizes_key = sizes_cache_key(sizes)
    memory_limit = checked_memory_limit(memory_limit)
    key = ("value", program.text, of, signature(arrays), sizes_key, memory_limit)

    def build() -> Plan:
        ctx = plan_context(program, arrays, sizes_key, order, memory_limit, "evaluate a smaller program")
        table = lowered(program, order, ctx)
        steps = forward_steps(table, [s.name for s in table.statements], ctx)
        return Plan(tuple(steps[:-1]), (steps[-1],))

    result = run(cached(key, build), dict(arrays))[of]
    if call_key is not None and not program.warnings:
        fast_path.remember(call_key, arrays, {}, key, of, inputs, None, (of,), True)
    return result




def _cut_at(program: Program, of: str, wrts: tuple[str, ...], inputs: Inputs, sizes,
            memory_limit) -> tuple[Program, Inputs]:
    """The program cut at the intermediates among ``wrts`` (see :meth:`Program.cut`), their values added to the inputs."""
    inner = [w for w in wrts if w in program.names]
    if not inner:
        return program, inputs
    if not isinstance(inputs, Mapping):
        raise ShapeError(f"inputs must map names to arrays, got {type(inputs).__name__}")
    cut = program.cut(inner, of)
    values = {w: evaluate(program, inputs, of=w, sizes=sizes, memory_limit=memory_limit) for w in inner}
    return cut, {**inputs, **values}


def _reverse(program: Program, of: str, wrts: tuple[str, ...], inputs: Inputs, sizes, memory_limit,
             mode: str, cotangent=None, symmetric: Sequence[str] = (), call_key: tuple | None = None,
             single: bool = False) -> dict[str, np.ndarray]:
    """Results by name; those of inputs named in ``symmetric`` projected by ``sym`` on their axes.
    With a ``call_key``, a call whose inputs all pass unchanged is remembered for :func:`fast_path.run_remembered`."""
    sym = _symmetric.symmetric_names(program, symmetric)
    _symmetric.check_inputs(sym, inputs)
    given = inputs
    program, inputs = _cut_at(program, of, wrts, inputs, sizes, memory_limit)
    request = reverse_request(program, of, wrts, inputs, sizes, memory_limit, mode, cotangent)
    plan = cached(request.key, lambda: compile_plan(*reverse_specs(request)))
    results = run(plan, {**request.arrays, **request.extra_arrays})
    if call_key is not None and not sym and inputs is given and not program.warnings:
        fast_path.remember(call_key, request.arrays, request.extra_arrays, request.key, request.of, inputs, cotangent,
                  wrts, single)
    return _symmetric.project(results, wrts, sym, program.rank(of) if mode == "jacobian" else 0)


def _reverse_call(mode: str, program: Program, wrt, inputs, of, sizes, memory_limit, symmetric, cotangent=None,
                  call_key: tuple | None = None):
    """``(results, names, single)`` of a reverse-mode call by the checked path (remembered under ``call_key``)."""
    of = program.resolve_output(of)
    if mode == "value_and_grad" and program.rank(of) != 0:
        raise ShapeError(f"value_and_grad needs a scalar output, but '{of}' has {program.rank(of)} "
                         f"{plural(program.rank(of), 'index')}; use vjp with a cotangent, or jacobian")
    names, single = wrt_names(wrt)
    result = _reverse(program, of, names, inputs, sizes, memory_limit, mode, cotangent, symmetric, call_key, single)
    return result, names, single


def jacobian(program: Program | str, wrt: str | Sequence[str], inputs: Inputs, *, of: str | None = None,
             sizes: Mapping[str, int] | None = None, memory_limit: int | None = None,
             symmetric: Sequence[str] = ()):
    """The full Jacobian ``d of / d wrt``, of shape ``shape(of) + shape(wrt)``.

    Free Kronecker deltas are written into diagonal views of a zeroed array;
    nothing else is computed. Refuses (:class:`MemoryLimitError`) above
    ``memory_limit`` bytes (default 2 GiB).
    ``symmetric`` names matrix inputs constrained to be symmetric: their axes of the
    Jacobian are projected by ``sym`` (see :mod:`einderiv.numeric.symmetric`).

    >>> import numpy as np
    >>> J = jacobian("y[i] = A[i,j] x[j]", "x", {"A": [[1, 2], [3, 4]], "x": np.ones(2)})
    >>> J.tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    """
    call_key = fast_path.call_key("jacobian", program, wrt, of, sizes, memory_limit, symmetric, inputs)
    result, names, single = fast_path.run_remembered(call_key, inputs) or _reverse_call(
        "jacobian", as_program(program), wrt, inputs, of, sizes, memory_limit, symmetric, None, call_key=call_key)
    return result[names[0]] if single else result


def grad(program: Program | str, wrt: str | Sequence[str], inputs: Inputs, *, of: str | None = None,
         sizes: Mapping[str, int] | None = None, memory_limit: int | None = None,
         symmetric: Sequence[str] = ()):
    """The gradient of a scalar output, shaped like each input (reverse mode).

    ``symmetric`` names matrix inputs constrained to be symmetric: their gradient is
    ``sym(G) = (G + Gᵀ)/2``, the gradient for the Frobenius inner product on
    symmetric matrices (see :mod:`einderiv.numeric.symmetric`).

    >>> grad("L = x[i] x[i]", "x", {"x": [1.0, 2.0]}).tolist()
    [2.0, 4.0]
    """
    call_key = fast_path.call_key("grad", program, wrt, of, sizes, memory_limit, symmetric, inputs)
    result, names, single = fast_path.run_remembered(call_key, inputs) or _reverse_call(
        "grad", as_program(program), wrt, inputs, of, sizes, memory_limit, symmetric, None, call_key=call_key)
    return result[names[0]] if single else result


def vjp(program: Program | str, wrt: str | Sequence[str], inputs: Inputs, cotangent: ArrayLike, *,
        of: str | None = None, sizes: Mapping[str, int] | None = None, memory_limit: int | None = None,
        symmetric: Sequence[str] = ()):
    """The vector–Jacobian product ``Σ cotangent[o] d of[o] / d wrt``, shaped like the input.

    The Jacobian is never built: this is reverse mode over the statements.
    ``symmetric`` names matrix inputs constrained to be symmetric: their results
    are ``sym(G) = (G + Gᵀ)/2`` (see :mod:`einderiv.numeric.symmetric`).

    >>> import numpy as np
    >>> W, X, G = np.ones((2, 3)), np.ones((3, 4)), np.ones((2, 4))
    >>> vjp("F[i,k] = W[i,j] X[j,k]", "W", {"W": W, "X": X}, G).tolist()
    [[4.0, 4.0, 4.0], [4.0, 4.0, 4.0]]
    """
    call_key = fast_path.call_key("vjp", program, wrt, of, sizes, memory_limit, symmetric, inputs)
    result, names, single = fast_path.run_remembered(call_key, inputs, cotangent) or _reverse_call(
        "vjp", as_program(program), wrt, inputs, of, sizes, memory_limit, symmetric, cotangent, call_key=call_key)
    return result[names[0]] if single else result


def value_and_grad(program: Program | str, wrt: str | Sequence[str], inputs: Inputs, *, of: str | None = None,
                   sizes: Mapping[str, int] | None = None, memory_limit: int | None = None,
                   symmetric: Sequence[str] = ()):
    """``(value, grad)`` of a scalar output in one pass: one plan, whose forward values serve both.

    >>> value_and_grad("L = x[i] x[i]", "x", {"x": [3.0]})[0]
    9.0
    """
    call_key = fast_path.call_key("value_and_grad", program, wrt, of, sizes, memory_limit, symmetric, inputs)
    result, names, single = fast_path.run_remembered(call_key, inputs) or _reverse_call(
        "value_and_grad", as_program(program), wrt, inputs, of, sizes, memory_limit, symmetric, call_key=call_key)
    value = result.pop(VALUE)
    scalar = float(value) if kind_of(value) is None else value     # other libraries: a 0-d array of theirs
    return scalar, (result[names[0]] if single else result)


def jvp(program: Program | str, tangents: Mapping[str, ArrayLike], inputs: Inputs, *, of: str | None = None,
        sizes: Mapping[str, int] | None = None, memory_limit: int | None = None,
        symmetric: Sequence[str] = ()) -> np.ndarray:
    """The Jacobian–vector product: tangents of inputs pushed forward to the output.

    ``tangents`` maps input names to arrays shaped like the inputs; the result,
    shaped like the output, is ``Σ_W (d of / d W) · tangents[W]``.
    The tangent of an input named in ``symmetric`` is replaced by its symmetric part.

    >>> jvp("y[i] = A[i,j] x[j]", {"x": [1.0, 0.0]}, {"A": [[1, 2], [3, 4]], "x": [0, 0]}).tolist()
    [1.0, 3.0]
    """
    program = as_program(program)
    of = program.resolve_output(of)
    if not isinstance(tangents, Mapping) or not tangents:
        raise ShapeError("tangents must map one or more input names to arrays")
    sym = _symmetric.symmetric_names(program, symmetric)
    if sym:     # the tangent of a symmetric input: its symmetric part
        _symmetric.check_inputs(sym, inputs)
        tangents = _symmetric.project_tangents(sym, tangents)
    sources = tuple(tangents)
    for name in sources:
        program.check_input(name, "tangents are given for inputs")
    if of not in program.names:
        arrays = check_inputs(program, inputs, [of])
        if of in tangents:
            return owned_copy(as_array(of, tangents[of], "tangent"))
        if type(arrays[of]) is np.ndarray:
            return np.zeros_like(arrays[of])
        return backend_of_arrays(arrays).np.zeros(tuple(arrays[of].shape), np_dtype(arrays[of].dtype))
    order, needed = requested(program, of, sources)
    arrays = check_inputs(program, inputs, needed)
    tangent_arrays = extras_like(arrays, {tangent_name(n): as_array(n, tangents[n], "tangent") for n in sources})
    for n in sources:
        if tangent_arrays[tangent_name(n)].shape != arrays[n].shape:
            raise ShapeError(f"the tangent of '{n}' has shape {tangent_arrays[tangent_name(n)].shape} "
                             f"but '{n}' has shape {arrays[n].shape}")
    sizes_key = sizes_cache_key(sizes)
    memory_limit = checked_memory_limit(memory_limit)
    key = ("jvp", program.text, of, sources, signature(arrays), signature(tangent_arrays), sizes_key, memory_limit)

    def build() -> Plan:
        ctx = plan_context(program, arrays, sizes_key, order, memory_limit, "use vjp or jvp")
        ctx2 = with_shapes(ctx, {n: a.shape for n, a in tangent_arrays.items()})
        seeds = {}
        for n in sources:
            slots = wrt_slots(program, n)
            seeds[n] = (slots, ir.ref(tangent_name(n), slots))
        table = lowered(program, order, ctx)
        derived = forward_program(table.statements, of, sources, seeds)
        (_, _, expr), = derived.results
        exprs = [s.expr for s in derived.statements] + [expr]
        forward = referenced_statements(table, exprs)
        tangent_steps, ctx2 = derived_steps(derived, ctx2)
        steps = forward_steps(table, forward, ctx2) + tangent_steps
        target = program.statement(of).lhs
        return Plan(tuple(steps), ((of, compile_expr(expr, target, ctx2, f"the tangent of '{of}'")),))

    env = dict(arrays)
    env.update(tangent_arrays)
    return run(cached(key, build), env)[of]

