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

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from einderiv.core import ir
from einderiv.calculus.differentiation import (DerivedProgram, adjoint_name, forward_program, reverse_program, tangent_name)
from einderiv.numeric import planning
from einderiv.core import simplify as simplification
from einderiv.numeric import symmetric as _symmetric
from einderiv.core.caching import MAX_TEXT, bounded_cache
from einderiv.errors import MemoryLimitError, ProgramError, ShapeError, UnsupportedError, depth_guard
from einderiv.numeric.planning import Context, compile_expr, index_size
from einderiv.calculus import program as program_module
from einderiv.calculus.program import Program, as_program, jacobian_seed, output_slots, wrt_slots
from einderiv.numeric.contraction_tree import StatementTable, is_split, lower_products
from einderiv.language.lowering import checked_size, dependencies, resolve_sizes, written_names

__all__ = ["evaluate", "jacobian", "grad", "vjp", "jvp", "value_and_grad", "clear_cache", "cache_info", "register_cache"]

ArrayLike = Any
Inputs = Mapping[str, ArrayLike]

_CACHE_SIZE = 128
_CACHE_TEXT = MAX_TEXT           # and at most this much program text (a plan's size grows with its program's)
_cache: "OrderedDict[tuple, _Plan]" = OrderedDict()
_lock = threading.Lock()
_stats = {"hits": 0, "misses": 0}
_weight = {"text": 0}


_other_caches: list[Callable[[], None]] = []


def register_cache(clear: Callable[[], None]) -> None:
    """Have :func:`clear_cache` also call ``clear`` (modules with caches of their own use this)."""
    _other_caches.append(clear)


def clear_cache() -> None:
    """Forget every compiled plan and every cached parse and derivation.

    >>> clear_cache(); cache_info()["size"]
    0
    """
    with _lock:
        _cache.clear()
        _stats.update(hits=0, misses=0)
        _weight.update(text=0)
    for clear in (_ancestors.cache_clear, _request.cache_clear, program_module._parse_cached.cache_clear,
                  program_module._derivative.cache_clear, ir._all_names_of.cache_clear,
                  simplification._nested_text.cache_clear, planning.paths.clear_cache, *_other_caches):
        clear()


def cache_info() -> dict[str, int]:
    """Plan-cache statistics: hits, misses, current and maximum size, in plans and in program text."""
    with _lock:
        return {**_stats, "size": len(_cache), "maxsize": _CACHE_SIZE, "text": _weight["text"],
                "max_text": _CACHE_TEXT}


@dataclass(frozen=True)
class _Plan:
    steps: tuple[tuple[str, Callable], ...]       # (name, runner), run in order into the environment
    results: tuple[tuple[str, Callable], ...]     # (name, runner) of what is returned


def _run(plan: _Plan, env: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # A fresh runner returns a buffer of its own (see _compile_plan); any other result may be an
    # input, a view of one, or a buffer another result returned.
    borrowing = [name for name, runner in plan.results if not getattr(runner, "fresh", False)]
    given = list(env.values()) if borrowing else []
    with depth_guard("the program"):
        for name, runner in plan.steps:
            env[name] = runner(env)
        results = {name: runner(env) for name, runner in plan.results}
    if borrowing:
        results.update(_owned({name: results[name] for name in borrowing}, given))
    return results


def _owned(results: dict[str, Any], given: Sequence[Any]) -> dict[str, Any]:
    """``results`` with every array that may share memory with a given array, or with an
    earlier result, replaced by a copy: the caller owns what is returned.

    Only pass-through results (an input, a view of one, the same array twice) are
    copied. Arrays are grouped by the object that owns their memory, so the check
    is linear in the number of arrays; ``np.may_share_memory`` confirms a match.

    >>> x = np.arange(3.0)
    >>> out = _owned({"y": x, "z": x[::-1]}, [x])
    >>> any(np.shares_memory(out[k], x) for k in out)
    False
    """
    seen: dict[int, list[np.ndarray]] = {}
    for a in given:
        if isinstance(a, np.ndarray):
            seen.setdefault(_owner(a), []).append(a)
    owned = {}
    for name, value in results.items():
        if isinstance(value, np.ndarray):
            if any(np.may_share_memory(value, other) for other in seen.get(_owner(value), ())):
                value = value.copy()
            seen.setdefault(_owner(value), []).append(value)
        owned[name] = value
    return owned


def _owner(array: np.ndarray) -> int:
    """Identity of the object that owns ``array``'s memory (views share their owner's)."""
    owner: Any = array
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
    return id(owner)


# ---------------------------------------------------------------- inputs

def _as_array(name: str, value: ArrayLike, role: str = "input") -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists and the like
        raise ShapeError(f"{role} '{name}' is not a numeric array: {error}") from None
    kind = array.dtype.kind
    if kind in "biu":
        return array.astype(np.float64)
    if kind == "f":
        return array
    if kind == "c":
        raise UnsupportedError(f"{role} '{name}' is complex; einderiv supports real float arrays only")
    raise ShapeError(f"{role} '{name}' is not a numeric array (dtype {array.dtype})")


@bounded_cache(max_entries=1024, max_weight=MAX_TEXT)
def _ancestors(program: Program, of: str) -> tuple[str, ...]:
    """Statements ``of`` depends on, itself included, in program order (cached per program)."""
    return dependencies(program.statements, [of])


@bounded_cache(max_entries=1024, max_weight=MAX_TEXT)
def _request(program: Program, of: str, extra: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(statements to run, inputs to check) for output ``of`` plus the inputs in ``extra``."""
    order = _ancestors(program, of)
    inputs = dict(program.inputs)
    needed: dict[str, None] = {}
    for name in order:
        for t in written_names(program.statement(name)):
            if t in inputs:
                needed.setdefault(t)
    for name in extra:
        needed.setdefault(name)
    return order, tuple(needed)


def _check_inputs(program: Program, inputs: Inputs, names: Sequence[str]) -> dict[str, np.ndarray]:
    if not isinstance(inputs, Mapping):
        raise ShapeError(f"inputs must map names to arrays, got {type(inputs).__name__}")
    ranks = dict(program.inputs)
    arrays = {}
    for name in names:
        if name not in inputs:
            raise ShapeError(f"missing input '{name}' (the program uses it with {ranks[name]} "
                             f"ind{'ex' if ranks[name] == 1 else 'ices'}); given: {', '.join(sorted(map(str, inputs))) or 'none'}")
        array = _as_array(name, inputs[name])
        if array.ndim != ranks[name]:
            raise ShapeError(f"input '{name}' has {array.ndim} ax{'is' if array.ndim == 1 else 'es'} "
                             f"(shape {array.shape}) but is written with {ranks[name]} "
                             f"ind{'ex' if ranks[name] == 1 else 'ices'}")
        arrays[name] = array
    return arrays


def _dtype(arrays: Mapping[str, np.ndarray]) -> np.dtype:
    floats = [a.dtype for a in arrays.values()]
    return np.result_type(*floats) if floats else np.dtype(np.float64)


def _sizes_key(sizes: Mapping[str, int] | None) -> tuple:
    if sizes is None:
        return ()
    if not isinstance(sizes, Mapping):
        raise ShapeError(f"sizes must map index names to integers, got {type(sizes).__name__}")
    items = []
    for k, v in sizes.items():
        items.append((str(k), checked_size(f"size of index '{k}'", v)))
    return tuple(sorted(items))


def _names(wrt: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    if isinstance(wrt, str):
        return (wrt,), True
    names = tuple(wrt) if isinstance(wrt, (list, tuple)) else ()
    if not names or not all(isinstance(n, str) for n in names):
        raise ProgramError(f"wrt must be an input name or a list of names, got {wrt!r}")
    return names, False


# ---------------------------------------------------------------- plans

def _context(program: Program, arrays: Mapping[str, np.ndarray], sizes_key: tuple, statements: Sequence[str],
             memory_limit: int | None, hint: str) -> Context:
    chosen = [program.statement(n) for n in statements]
    shapes = {name: a.shape for name, a in arrays.items()}
    index_sizes, all_shapes = resolve_sizes(tuple(chosen), shapes, dict(sizes_key))
    for name, _ in program.inputs:
        all_shapes.setdefault(name, ())
    return Context(index_sizes, all_shapes, _dtype(arrays), _memory_limit(memory_limit), hint=hint)


def _memory_limit(memory_limit: int | None) -> int:
    """The byte limit in force: ``memory_limit``, else ``planning.DEFAULT_MEMORY_LIMIT`` read now."""
    if memory_limit is None:
        memory_limit = planning.DEFAULT_MEMORY_LIMIT
    if isinstance(memory_limit, (bool, np.bool_)) or not isinstance(memory_limit, (int, float, np.integer, np.floating)) \
            or not 0 <= memory_limit < float("inf"):
        raise MemoryLimitError(f"memory_limit must be a non-negative number of bytes, got {memory_limit!r}")
    return int(memory_limit)


_Spec = tuple[str, ir.Expr, tuple[str, ...], Context, str]     # (name, expression, target, context, what)


def _forward_specs(program: Program | StatementTable, names: Sequence[str], ctx: Context) -> list[_Spec]:
    return [(n, program.statement(n).rhs, program.statement(n).lhs, ctx, _what(program.statement(n))) for n in names]


def _what(statement) -> str:
    """How errors name a statement's value (or an intermediate product of a split statement)."""
    if is_split(statement.name):
        return f"an intermediate product of '{statement.source.strip()}'"
    return f"'{statement.name}'"


def _lowered(program: Program, names: Sequence[str], ctx: Context) -> StatementTable:
    """The statements ``names`` with products of three or more tensors split along their
    contraction paths (:mod:`einderiv.numeric.contraction_tree`), for these shapes."""
    statements = lower_products([program.statement(n) for n in names],
                                lambda operands, keep: planning.product_path(operands, keep, ctx))
    return StatementTable.of(statements)


def _forward_steps(program: Program | StatementTable, names: Sequence[str], ctx: Context) -> list[tuple[str, Callable]]:
    return [(n, compile_expr(e, t, c, w)) for n, e, t, c, w in _forward_specs(program, names, ctx)]


def _compile_plan(specs: Sequence[_Spec], results: Sequence[_Spec]) -> _Plan:
    """Compile steps and results; a step may overwrite an intermediate no later step reads.

    Only buffers a step of this plan allocated (``fresh`` runners) are donated,
    never inputs or arrays shared with the caller. A step whose runner is not
    fresh (a rename, a transpose, a diagonal) may return a view of what it reads,
    so every value remembers the buffers it may share memory with. A buffer is
    donated to step ``k`` only when ``k`` is the last step to read it, no other
    value read at or after ``k`` may share it, and no result returned it.
    """
    everything = list(specs) + list(results)
    last_use: dict[str, int] = {}
    for k, (_, expr, _, _, _) in enumerate(everything):
        for name in ir.tensor_names(expr):
            last_use[name] = k
    shares: dict[str, frozenset[str]] = {}      # value → the owned buffers it may share memory with
    readers: dict[str, set[str]] = {}           # owned buffer → the values that may share it
    pinned: set[str] = set()                    # buffers a result may return
    compiled = []
    for k, (name, expr, target, ctx, what) in enumerate(everything):
        reads = set(ir.tensor_names(expr))
        donate = frozenset(b for b in reads if b in readers and b not in pinned and last_use[b] == k
                           and all(m == b or (m not in reads and last_use.get(m, -1) < k) for m in readers[b]))
        runner = compile_expr(expr, target, ctx, what, donate)
        for b in donate:
            del readers[b]
        if getattr(runner, "fresh", False):
            value_shares = frozenset((name,))
        else:
            value_shares = frozenset(b for t in reads for b in shares.get(t, ()) if b in readers)
        if k < len(specs):
            shares[name] = value_shares
            if getattr(runner, "fresh", False):
                readers[name] = set()
            for b in value_shares:
                readers[b].add(name)
        else:
            pinned |= value_shares
        compiled.append((name, runner))
    return _Plan(tuple(compiled[:len(specs)]), tuple(compiled[len(specs):]))


def _with_shapes(ctx: Context, more: Mapping[str, tuple[int, ...]]) -> Context:
    return replace(ctx, shapes={**ctx.shapes, **more})


def _derived_specs(derived: DerivedProgram, ctx: Context) -> tuple[list[_Spec], Context]:
    """The derived statements to compile, and the context that knows their shapes."""
    specs = []
    for s in derived.statements:
        ctx = _with_shapes(ctx, {s.name: tuple(index_size(i, ctx) for i in s.indices)})
        specs.append((s.name, s.expr, s.indices, ctx, f"the adjoint of '{s.of}'"))
    return specs, ctx


def _derived_steps(derived: DerivedProgram, ctx: Context) -> tuple[list[tuple[str, Callable]], Context]:
    """Compiled derived statements, and the context that knows their shapes."""
    specs, ctx = _derived_specs(derived, ctx)
    return [(n, compile_expr(e, t, c, w)) for n, e, t, c, w in specs], ctx


def _referenced_statements(program: Program | StatementTable, exprs: Sequence[ir.Expr]) -> list[str]:
    # One walk from every referenced tensor at once: linear in the program's length.
    roots = dict.fromkeys(t for e in exprs for t in ir.tensor_names(e))
    return list(dependencies(program.statements, roots))


def _key_text(key: tuple) -> int:
    """The weight of a plan: the length of its program's text (every key holds it second)."""
    return len(key[1]) if len(key) > 1 and isinstance(key[1], str) else 0


def _cached(key: tuple, build: Callable[[], _Plan]) -> _Plan:
    with _lock:
        plan = _cache.get(key)
        if plan is not None:
            _cache.move_to_end(key)
            _stats["hits"] += 1
            return plan
        _stats["misses"] += 1
    with depth_guard("the program"):
        plan = build()
    with _lock:
        if key not in _cache:
            _weight["text"] += _key_text(key)
        _cache[key] = plan
        _cache.move_to_end(key)
        while len(_cache) > 1 and (len(_cache) > _CACHE_SIZE or _weight["text"] > _CACHE_TEXT):
            gone, _ = _cache.popitem(last=False)
            _weight["text"] -= _key_text(gone)
    return plan


def _signature(arrays: Mapping[str, np.ndarray]) -> tuple:
    return tuple((n, a.shape, a.dtype.str) for n, a in arrays.items())


# ---------------------------------------------------------------- public API

def evaluate(program: Program | str, inputs: Inputs, *, of: str | None = None,
             sizes: Mapping[str, int] | None = None, memory_limit: int | None = None) -> np.ndarray:
    """The value of the output ``of`` (default: the last statement).

    >>> evaluate("y[i] = A[i,j] x[j]", {"A": [[1, 2], [3, 4]], "x": [1, 1]}).tolist()
    [3.0, 7.0]
    """
    program = as_program(program)
    of = program.resolve_output(of)
    if of not in program.names:
        return _check_inputs(program, inputs, [of])[of].copy()      # the caller owns what is returned
    order, needed = _request(program, of, ())
    arrays = _check_inputs(program, inputs, needed)
    sizes_key = _sizes_key(sizes)
    memory_limit = _memory_limit(memory_limit)
    key = ("value", program.text, of, _signature(arrays), sizes_key, memory_limit)

    def build() -> _Plan:
        ctx = _context(program, arrays, sizes_key, order, memory_limit, "evaluate a smaller program")
        table = _lowered(program, order, ctx)
        steps = _forward_steps(table, [s.name for s in table.statements], ctx)
        return _Plan(tuple(steps[:-1]), (steps[-1],))

    return _run(_cached(key, build), dict(arrays))[of]


@dataclass(frozen=True)
class _ReverseRequest:
    """A checked reverse-mode request: what the plan is built from, and its cache key."""

    program: Program
    of: str
    wrts: tuple[str, ...]
    mode: str                                 # "grad", "value_and_grad", "vjp" or "jacobian"
    order: tuple[str, ...]
    arrays: Mapping[str, np.ndarray]
    extra_arrays: Mapping[str, np.ndarray]    # the cotangent of a VJP
    sizes_key: tuple
    memory_limit: int

    @property
    def key(self) -> tuple:
        return (self.mode, self.program.text, self.of, self.wrts, _signature(self.arrays),
                _signature(self.extra_arrays), self.sizes_key, self.memory_limit)


def _reverse_request(program: Program, of: str, wrts: tuple[str, ...], inputs: Inputs, sizes, memory_limit,
                     mode: str, cotangent=None) -> _ReverseRequest:
    for w in wrts:
        if w in program.names:
            raise ProgramError(f"'{w}' is defined by a statement; differentiate with respect to an input "
                               f"({', '.join(n for n, _ in program.inputs)})")
        program.rank(w)
    order, needed = _request(program, of, wrts if of in program.names else tuple(dict.fromkeys(wrts + (of,))))
    arrays = _check_inputs(program, inputs, needed)
    extra_arrays = {}
    if mode == "vjp":
        extra_arrays[adjoint_name(of)] = _as_array("cotangent", cotangent, "cotangent")
    return _ReverseRequest(program, of, wrts, mode, order, arrays, extra_arrays, _sizes_key(sizes),
                           _memory_limit(memory_limit))


def _reverse_specs(request: _ReverseRequest) -> tuple[list[_Spec], list[_Spec]]:
    """The steps (forward values, then adjoints) and the results of a reverse-mode plan."""
    program, of, wrts, mode = request.program, request.of, request.wrts, request.mode
    with_value = mode == "value_and_grad"
    if with_value:
        mode = "grad"
    ctx = _context(program, request.arrays, request.sizes_key, request.order, request.memory_limit,
                   "use vjp or jvp, which never build the full Jacobian")
    of_shape = ctx.shapes[of]
    if mode == "vjp":
        given = request.extra_arrays[adjoint_name(of)].shape
        if given != of_shape:
            raise ShapeError(f"the cotangent has shape {given} but '{of}' has shape {of_shape}")
    if mode == "grad" and program.rank(of) != 0:
        raise ShapeError(f"grad needs a scalar output, but '{of}' has shape {of_shape}; "
                         f"use vjp with a cotangent, or jacobian")
    slots = {w: wrt_slots(program, w) for w in wrts}
    out = output_slots(program, of) if mode == "jacobian" else ()
    ctx2 = _with_shapes(ctx, {n: a.shape for n, a in request.extra_arrays.items()})
    if of not in program.names:
        results = []
        for w in wrts:
            if mode == "jacobian":
                expr = jacobian_seed(out, slots[w]) if w == of else ir.ZERO
            elif mode == "vjp":
                expr = ir.ref(adjoint_name(of), slots[w]) if w == of else ir.ZERO
            else:
                expr = ir.ONE if w == of else ir.ZERO
            results.append((w, expr, out + slots[w], ctx2, f"d{of}/d{w}"))
        if with_value:
            results.append((VALUE, ir.ref(of), (), ctx2, f"'{of}'"))
        return [], results
    lhs = program.statement(of).lhs
    if mode == "jacobian":
        seed = jacobian_seed(out, lhs)
    elif mode == "vjp":
        seed = ir.ref(adjoint_name(of), lhs)
    else:
        seed = ir.ONE
    # A full Jacobian's adjoints carry the output's axes too: materialising one per node of a
    # contraction tree would cost more than it shares, so only gradients and VJPs walk the tree.
    table = StatementTable.of(program.statements) if mode == "jacobian" else _lowered(program, request.order, ctx)
    derived = reverse_program(table.statements, of, wrts, slots, seed, out)
    exprs = [s.expr for s in derived.statements] + [e for _, _, e in derived.results]
    value = [(VALUE, table.statement(of).rhs, lhs, ctx2, f"'{of}'")] if with_value else []
    forward = _referenced_statements(table, exprs + [spec[1] for spec in value])
    adjoint_specs, ctx2 = _derived_specs(derived, ctx2)
    results = [(w, e, target, ctx2, f"d{of}/d{w}" if mode == "jacobian" else f"the gradient of '{w}'")
               for w, target, e in derived.results]
    # the value is computed last, from forward values the adjoints may also read (never recomputed)
    return _forward_specs(table, [n for n in forward if n != of], ctx2) + adjoint_specs, results + value


#: The key of the output's value among the results of a value-and-gradient plan (no input has this name).
VALUE = "=value"


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
             mode: str, cotangent=None, symmetric: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Results by name; those of inputs named in ``symmetric`` projected by ``sym`` on their axes."""
    sym = _symmetric.symmetric_names(program, symmetric)
    _symmetric.check_inputs(sym, inputs)
    program, inputs = _cut_at(program, of, wrts, inputs, sizes, memory_limit)
    request = _reverse_request(program, of, wrts, inputs, sizes, memory_limit, mode, cotangent)
    plan = _cached(request.key, lambda: _compile_plan(*_reverse_specs(request)))
    results = _run(plan, {**request.arrays, **request.extra_arrays})
    return _symmetric.project(results, wrts, sym, program.rank(of) if mode == "jacobian" else 0)


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
    program = as_program(program)
    of = program.resolve_output(of)
    names, single = _names(wrt)
    result = _reverse(program, of, names, inputs, sizes, memory_limit, "jacobian", symmetric=symmetric)
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
    program = as_program(program)
    of = program.resolve_output(of)
    names, single = _names(wrt)
    result = _reverse(program, of, names, inputs, sizes, memory_limit, "grad", symmetric=symmetric)
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
    program = as_program(program)
    of = program.resolve_output(of)
    names, single = _names(wrt)
    result = _reverse(program, of, names, inputs, sizes, memory_limit, "vjp", cotangent, symmetric)
    return result[names[0]] if single else result


def value_and_grad(program: Program | str, wrt: str | Sequence[str], inputs: Inputs, *, of: str | None = None,
                   sizes: Mapping[str, int] | None = None, memory_limit: int | None = None,
                   symmetric: Sequence[str] = ()):
    """``(value, grad)`` of a scalar output in one pass: one plan, whose forward values serve both.

    >>> value_and_grad("L = x[i] x[i]", "x", {"x": [3.0]})[0]
    9.0
    """
    program = as_program(program)
    of = program.resolve_output(of)
    if program.rank(of) != 0:
        raise ShapeError(f"value_and_grad needs a scalar output, but '{of}' has {program.rank(of)} "
                         f"ind{'ex' if program.rank(of) == 1 else 'ices'}; use vjp with a cotangent, or jacobian")
    names, single = _names(wrt)
    result = _reverse(program, of, names, inputs, sizes, memory_limit, "value_and_grad", symmetric=symmetric)
    value = float(result.pop(VALUE))
    return value, (result[names[0]] if single else result)


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
        if name in program.names:
            raise ProgramError(f"'{name}' is defined by a statement; tangents are given for inputs")
        program.rank(name)
    if of not in program.names:
        arrays = _check_inputs(program, inputs, [of])
        return _as_array(of, tangents[of], "tangent").copy() if of in tangents else np.zeros_like(arrays[of])
    order, needed = _request(program, of, sources)
    arrays = _check_inputs(program, inputs, needed)
    tangent_arrays = {tangent_name(n): _as_array(n, tangents[n], "tangent") for n in sources}
    for n in sources:
        if tangent_arrays[tangent_name(n)].shape != arrays[n].shape:
            raise ShapeError(f"the tangent of '{n}' has shape {tangent_arrays[tangent_name(n)].shape} "
                             f"but '{n}' has shape {arrays[n].shape}")
    sizes_key = _sizes_key(sizes)
    memory_limit = _memory_limit(memory_limit)
    key = ("jvp", program.text, of, sources, _signature(arrays), _signature(tangent_arrays), sizes_key, memory_limit)

    def build() -> _Plan:
        ctx = _context(program, arrays, sizes_key, order, memory_limit, "use vjp or jvp")
        ctx2 = _with_shapes(ctx, {n: a.shape for n, a in tangent_arrays.items()})
        seeds = {}
        for n in sources:
            slots = wrt_slots(program, n)
            seeds[n] = (slots, ir.ref(tangent_name(n), slots))
        table = _lowered(program, order, ctx)
        derived = forward_program(table.statements, of, sources, seeds)
        (_, _, expr), = derived.results
        exprs = [s.expr for s in derived.statements] + [expr]
        forward = _referenced_statements(table, exprs)
        tangent_steps, ctx2 = _derived_steps(derived, ctx2)
        steps = _forward_steps(table, forward, ctx2) + tangent_steps
        target = program.statement(of).lhs
        return _Plan(tuple(steps), ((of, compile_expr(expr, target, ctx2, f"the tangent of '{of}'")),))

    env = dict(arrays)
    env.update(tangent_arrays)
    return _run(_cached(key, build), env)[of]

