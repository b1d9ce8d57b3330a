"""The plan engine: checked requests, compiled plans, the plan cache and running a plan.

A *plan* is built once per (program, output, request, input shapes and dtypes,
sizes, memory limit): the symbolic derivative program and the compiled
``contract_expression`` of every step. Plans live in a bounded LRU cache
guarded by a lock (registered with :mod:`einderiv.core.caching`), so a second
call with same-shaped arrays does no symbolic work and no path search.
:mod:`einderiv.numeric.evaluation` (values, gradients, VJPs, JVPs),
:mod:`einderiv.numeric.hessian` and :mod:`einderiv.numeric.plan_report` build
their plans from these pieces, public inside the package.

>>> p = cached(("example",), lambda: Plan((), (("y", lambda env: env["x"] * 2),)))
>>> run(p, {"x": np.arange(3.0)})["y"].tolist()
[0.0, 2.0, 4.0]
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from einderiv.core import caching, ir
from einderiv.calculus.differentiation import DerivedProgram, reverse_program
from einderiv.numeric import backend as _backends
from einderiv.numeric import planning, sliced_reverse
from einderiv.core.caching import MAX_TEXT, bounded_cache
from einderiv.errors import MemoryLimitError, ProgramError, ShapeError, UnsupportedError, depth_guard
from einderiv.numeric.planning import Context, compile_expr, index_size
from einderiv.calculus.program import Program, ancestors, jacobian_seed, output_slots, wrt_slots
from einderiv.numeric.contraction_tree import StatementTable, lower_products
from einderiv.language.lowering import Statement, checked_size, dependencies, resolve_sizes, written_names
from einderiv.names import VALUE, adjoint_name, is_split, sliced_group_key

__all__ = [
    "ArrayLike", "Inputs", "Plan", "run", "cached", "plan_cache_info", "CACHE_SIZE", "CACHE_TEXT",
    "as_array", "requested", "check_inputs", "sizes_cache_key", "wrt_names", "signature",
    "plan_context", "checked_memory_limit", "lookup", "generation", "still_cached", "Spec", "forward_specs", "lowered",
    "forward_steps", "compile_plan",
    "with_shapes", "derived_specs", "derived_steps", "referenced_statements",
    "ReverseRequest", "reverse_request", "reverse_specs",
]

ArrayLike = Any
Inputs = Mapping[str, ArrayLike]

CACHE_SIZE = 128
CACHE_TEXT = MAX_TEXT           # and at most this much program text (a plan's size grows with its program's)
_cache: "OrderedDict[tuple, Plan]" = OrderedDict()
_lock = threading.Lock()
_stats = {"hits": 0, "misses": 0}
_weight = {"text": 0}


#: Bumped whenever a plan leaves the cache (cleared or evicted): a holder of a plan seen at an
#: unchanged generation knows it is still cached without looking it up (see :func:`still_cached`).
_generation = [0]


def _clear_plans() -> None:
    with _lock:
        _generation[0] += 1
        _cache.clear()
        _stats.update(hits=0, misses=0)
        _weight.update(text=0)


def plan_cache_info() -> dict[str, int]:
    """Plan-cache statistics: hits, misses, current and maximum size, in plans and in program text."""
    with _lock:
        return {**_stats, "size": len(_cache), "maxsize": CACHE_SIZE, "text": _weight["text"],
                "max_text": CACHE_TEXT}


caching.register(f"{__name__}.plans", _clear_plans, plan_cache_info)


@dataclass(frozen=True)
class Plan:
    """Compiled steps, run in order into an environment of arrays by name, then the results read from it."""

    steps: tuple[tuple[str, Callable], ...]       # (name, runner), run in order into the environment
    results: tuple[tuple[str, Callable], ...]     # (name, runner) of what is returned
    borrowing: tuple[str, ...] = field(init=False, default=())   # results that may alias: checked after a run

    def __post_init__(self) -> None:
        # A fresh runner returns a buffer of its own (see compile_plan); any other result may be an
        # input, a view of one, or a buffer another result returned: those are checked after a run.
        object.__setattr__(self, "borrowing",
                           tuple(name for name, runner in self.results if not getattr(runner, "fresh", False)))


def run(plan: Plan, env: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``plan`` over ``env`` (the inputs by name; the steps' values are added to it): the results by name,
    each owned by the caller (never an input, nor a view of one)."""
    borrowing = plan.borrowing
    given = list(env.values()) if borrowing else []
    try:
        for name, runner in plan.steps:
            env[name] = runner(env)
        results = {}
        for name, runner in plan.results:
            results[name] = runner(env)
    except RecursionError:
        with depth_guard("the program"):      # the same clear error as everywhere else
            raise
    if borrowing:
        results.update(_owned({name: results[name] for name in borrowing}, given))
    return results


def _owned_elsewhere(results: dict[str, Any], given: Sequence[Any]) -> dict[str, Any]:
    """:func:`_owned` for arrays of another library (see :meth:`Backend.owned`)."""
    kinds = [kind for kind in map(_backends.kind_of, results.values()) if kind is not None]
    if not kinds:
        return results
    return _backends.by_name(kinds[0]).owned(results, given)


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
    if any(type(v) is not np.ndarray and _backends.kind_of(v) is not None for v in results.values()):
        return _owned_elsewhere(results, given)
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


def owned_copy(array: Any) -> Any:
    """A copy the caller owns (torch spells it ``clone``)."""
    return array.clone() if _backends.kind_of(array) == "torch" else array.copy()


def _owner(array: np.ndarray) -> int:
    """Identity of the object that owns ``array``'s memory (views share their owner's)."""
    owner: Any = array
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
    return id(owner)


# ---------------------------------------------------------------- inputs

def as_array(name: str, value: ArrayLike, role: str = "input", backend: _backends.Backend | None = None) -> np.ndarray:
    """``value`` as a float array (integers and booleans converted) of ``backend``'s library (default:
    the value's own), or :class:`ShapeError` / :class:`UnsupportedError` naming it as ``role`` ``name``.

    >>> as_array("x", [1, 2]).dtype
    dtype('float64')
    """
    if backend is None:         # a tangent, cotangent or vector: its own library (extras_like checks it)
        kind = None if type(value) in _PLAIN else _backends.kind_of(value)
        if kind is not None:
            return _backends.convert(value, _backends.by_name(kind, value), name, role)
    elif backend is not _backends.NUMPY:
        return _backends.convert(value, backend, name, role)
    return _numpy_array(name, value, role)


def _numpy_array(name: str, value: ArrayLike, role: str = "input") -> np.ndarray:
    """:func:`as_array` for numpy."""
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
def requested(program: Program, of: str, extra: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(statements to run, inputs to check) for output ``of`` plus the inputs in ``extra``."""
    order = ancestors(program, of)
    inputs = dict(program.inputs)
    needed: dict[str, None] = {}
    for name in order:
        for t in written_names(program.statement(name)):
            if t in inputs:
                needed.setdefault(t)
    for name in extra:
        needed.setdefault(name)
    return order, tuple(needed)


def check_inputs(program: Program, inputs: Inputs, names: Sequence[str],
                 backend: _backends.Backend = _backends.NUMPY) -> dict[str, np.ndarray]:
    """The arrays of the inputs ``names``, each checked to be given and of its written rank, all of one
    array library: numpy unless an input comes from another (numbers and lists then adopt it)."""
    if not isinstance(inputs, Mapping):
        raise ShapeError(f"inputs must map names to arrays, got {type(inputs).__name__}")
    ranks = dict(program.inputs)
    arrays = {}
    for name in names:
        if name not in inputs:
            raise ShapeError(f"missing input '{name}' (the program uses it with {ranks[name]} "
                             f"ind{'ex' if ranks[name] == 1 else 'ices'}); given: {', '.join(sorted(map(str, inputs))) or 'none'}")
        value = inputs[name]
        if backend is not _backends.NUMPY:
            array = as_array(name, value, backend=backend)
        elif type(value) is np.ndarray or type(value) in _PLAIN or _backends.kind_of(value) is None:
            array = _numpy_array(name, value)
        else:       # an array of another library: every input goes to it
            return check_inputs(program, inputs, names, _backends.backend_of([inputs[n] for n in names if n in inputs]))
        if array.ndim != ranks[name]:
            raise ShapeError(f"input '{name}' has {array.ndim} ax{'is' if array.ndim == 1 else 'es'} "
                             f"(shape {array.shape}) but is written with {ranks[name]} "
                             f"ind{'ex' if ranks[name] == 1 else 'ices'}")
        arrays[name] = array
    if backend is not _backends.NUMPY:
        arrays = _one_dtype(arrays, [n for n in names if _backends.kind_of(inputs[n]) is not None])
    return arrays


#: Types that are numpy's or Python's own, checked in one set lookup on every call (the numpy path's cost).
_PLAIN = frozenset({np.ndarray, float, int, list, tuple, np.float64, np.float32, bool, type(None)})


def _one_dtype(arrays: dict[str, Any], native: Sequence[str]) -> dict[str, Any]:
    """Arrays of another library than numpy in one dtype: that of the arrays given in that library
    (numbers and lists adopt it, as in torch and jax). Their operations do not promote as numpy's do."""
    dtype = _dtype({n: arrays[n] for n in native} or arrays)
    xnp = backend_of_arrays(arrays).np
    return {n: a if _backends.np_dtype(a.dtype) == dtype else xnp.astype(a, dtype) for n, a in arrays.items()}


def backend_of_arrays(arrays: Mapping[str, Any]) -> _backends.Backend:
    """The library of checked arrays (all of one library, see :func:`check_inputs`)."""
    for a in arrays.values():
        if type(a) is not np.ndarray:
            return _backends.backend_of(arrays.values())
    return _backends.NUMPY


def extras_like(arrays: Mapping[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Tangents, cotangents or vectors checked against the inputs: of their library (else a
    :class:`BackendError`) and, off numpy, of their dtype."""
    if all(type(a) is np.ndarray for a in extra.values()) and backend_of_arrays(arrays) is _backends.NUMPY:
        return extra
    _backends.backend_of([*arrays.values(), *extra.values()])
    if not arrays:
        return extra
    both = _one_dtype({**arrays, **extra}, list(arrays))
    return {n: both[n] for n in extra}


def _dtype(arrays: Mapping[str, np.ndarray]) -> np.dtype:
    floats = [a.dtype if type(a) is np.ndarray else _backends.np_dtype(a.dtype) for a in arrays.values()]
    return np.result_type(*floats) if floats else np.dtype(np.float64)


def sizes_cache_key(sizes: Mapping[str, int] | None) -> tuple:
    """The user's index sizes, checked, as a hashable part of a plan's key.

    >>> sizes_cache_key({"n": 3, "b": 2})
    (('b', 2), ('n', 3))
    """
    if sizes is None:
        return ()
    if not isinstance(sizes, Mapping):
        raise ShapeError(f"sizes must map index names to integers, got {type(sizes).__name__}")
    items = []
    for k, v in sizes.items():
        items.append((str(k), checked_size(f"size of index '{k}'", v)))
    return tuple(sorted(items))


def wrt_names(wrt: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """``(names, single)``: the inputs a request differentiates with respect to, and whether one name was given.

    >>> wrt_names("W"), wrt_names(["W", "b"])
    ((('W',), True), (('W', 'b'), False))
    """
    if isinstance(wrt, str):
        return (wrt,), True
    names = tuple(wrt) if isinstance(wrt, (list, tuple)) else ()
    if not names or not all(isinstance(n, str) for n in names):
        raise ProgramError(f"wrt must be an input name or a list of names, got {wrt!r}")
    return names, False


# ---------------------------------------------------------------- plans

def plan_context(program: Program, arrays: Mapping[str, np.ndarray], sizes_key: tuple, statements: Sequence[str],
             memory_limit: int | None, hint: str) -> Context:
    """The planner's context for ``statements``: index sizes and shapes from the arrays and ``sizes_key``,
    the arrays' common dtype, the memory limit, and the ``hint`` its refusals give."""
    chosen = [program.statement(n) for n in statements]
    shapes = {name: tuple(a.shape) for name, a in arrays.items()}
    index_sizes, all_shapes = resolve_sizes(tuple(chosen), shapes, dict(sizes_key))
    for name, _ in program.inputs:
        all_shapes.setdefault(name, ())
    limit = checked_memory_limit(memory_limit)
    backend = backend_of_arrays(arrays)
    if backend.name == "dask":      # the limit bounds each chunk, which the backend sizes to it
        return Context(index_sizes, all_shapes, _dtype(arrays), _UNBOUNDED, hint=hint,
                       backend=backend.with_chunks(limit))
    return Context(index_sizes, all_shapes, _dtype(arrays), limit, hint=hint, backend=backend)


#: The byte limit of a whole array when arrays are chunked (dask): the real limit applies per chunk.
_UNBOUNDED = 2 ** 62


def checked_memory_limit(memory_limit: int | None) -> int:
    """The byte limit in force: ``memory_limit``, else ``planning.DEFAULT_MEMORY_LIMIT`` read now."""
    if memory_limit is None:
        memory_limit = planning.DEFAULT_MEMORY_LIMIT
    if isinstance(memory_limit, (bool, np.bool_)) or not isinstance(memory_limit, (int, float, np.integer, np.floating)) \
            or not 0 <= memory_limit < float("inf"):
        raise MemoryLimitError(f"memory_limit must be a non-negative number of bytes, got {memory_limit!r}")
    return int(memory_limit)


Spec = tuple[str, ir.Expr, tuple[str, ...], Context, str]     # (name, expression, target, context, what)


def forward_specs(program: Program | StatementTable, names: Sequence[str], ctx: Context) -> list[Spec]:
    """What to compile for the statements ``names``: their values, in order."""
    return [(n, program.statement(n).rhs, program.statement(n).lhs, ctx, _what(program.statement(n))) for n in names]


def _what(statement) -> str:
    """How errors name a statement's value (or an intermediate product of a split statement)."""
    if is_split(statement.name):
        return f"an intermediate product of '{statement.source.strip()}'"
    return f"'{statement.name}'"


def lowered(program: Program, names: Sequence[str], ctx: Context) -> StatementTable:
    """The statements ``names`` with products of three or more tensors split along their
    contraction paths (:mod:`einderiv.numeric.contraction_tree`), for these shapes."""
    statements = lower_products([program.statement(n) for n in names],
                                lambda operands, keep: planning.product_path(operands, keep, ctx))
    _register_sliced_products(statements, ctx)
    return StatementTable.of(statements)


def _register_sliced_products(statements: Sequence[Statement], ctx: Context) -> None:
    """Note in ``ctx`` each product of tensors the lowering left whole (it must be sliced), so that
    its operands' adjoints can share one loop over the slices (numpy only; see sliced_reverse)."""
    if not (ctx.backend.in_place and ctx.backend.np is np):
        return
    limit = max(ctx.memory_limit // ctx.dtype.itemsize, 1)
    for statement in statements:
        for number, term in enumerate(statement.rhs.terms):
            refs = [f for f in term.factors if isinstance(f, ir.Ref)]
            if len(refs) < 3 or len(refs) != len(term.factors):
                continue
            group = sliced_reverse.Group.of(sliced_group_key(statement.name, number),
                                            (adjoint_name(statement.name), statement.lhs),
                                            [(r.name, r.indices) for r in refs], lambda i: index_size(i, ctx), limit)
            if group is not None:
                ctx.groups.append(group)


def forward_steps(program: Program | StatementTable, names: Sequence[str], ctx: Context) -> list[tuple[str, Callable]]:
    """The statements ``names``, compiled: ``(name, runner)`` in order."""
    return [(n, compile_expr(e, t, c, w)) for n, e, t, c, w in forward_specs(program, names, ctx)]


def compile_plan(specs: Sequence[Spec], results: Sequence[Spec]) -> Plan:
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
                           and all(m == b or (m not in reads and last_use.get(m, -1) < k) for m in readers[b])
                           and ctx.backend.in_place)      # only numpy writes into arrays it was given
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
    return Plan(tuple(compiled[:len(specs)]), tuple(compiled[len(specs):]))


def with_shapes(ctx: Context, more: Mapping[str, tuple[int, ...]]) -> Context:
    """``ctx`` that also knows the shapes ``more`` (of cotangents, tangents, derived statements)."""
    return replace(ctx, shapes={**ctx.shapes, **more})


def derived_specs(derived: DerivedProgram, ctx: Context) -> tuple[list[Spec], Context]:
    """The derived statements to compile, and the context that knows their shapes."""
    specs = []
    for s in derived.statements:
        ctx = with_shapes(ctx, {s.name: tuple(index_size(i, ctx) for i in s.indices)})
        specs.append((s.name, s.expr, s.indices, ctx, f"the adjoint of '{s.of}'"))
    return specs, ctx


def derived_steps(derived: DerivedProgram, ctx: Context) -> tuple[list[tuple[str, Callable]], Context]:
    """Compiled derived statements, and the context that knows their shapes."""
    specs, ctx = derived_specs(derived, ctx)
    return [(n, compile_expr(e, t, c, w)) for n, e, t, c, w in specs], ctx


def referenced_statements(program: Program | StatementTable, exprs: Sequence[ir.Expr]) -> list[str]:
    """The statements the expressions read, directly or through other statements, in program order."""
    # One walk from every referenced tensor at once: linear in the program's length.
    roots = dict.fromkeys(t for e in exprs for t in ir.tensor_names(e))
    return list(dependencies(program.statements, roots))


def _key_text(key: tuple) -> int:
    """The weight of a plan: the length of its program's text (every key holds it second)."""
    return len(key[1]) if len(key) > 1 and isinstance(key[1], str) else 0


def cached(key: tuple, build: Callable[[], Plan]) -> Plan:
    """The plan cached under ``key``, else ``build()``'s, cached (least recently used plans are evicted
    past :data:`CACHE_SIZE` plans or :data:`CACHE_TEXT` characters of program text)."""
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
        while len(_cache) > 1 and (len(_cache) > CACHE_SIZE or _weight["text"] > CACHE_TEXT):
            gone, _ = _cache.popitem(last=False)
            _generation[0] += 1
            _weight["text"] -= _key_text(gone)
    return plan


def generation() -> int:
    """How many times a plan has left the cache (a clear counts once)."""
    return _generation[0]


def still_cached(seen: int) -> bool:
    """Whether a plan cached when the generation was ``seen`` is cached still (nothing left the
    cache since), counted as a hit: the fast path's look-up, with no lock and no hashing of its key.
    A plan used only this way is not moved up the LRU order; once anything is evicted, callers
    :func:`lookup` again."""
    if _generation[0] != seen:
        return False
    _stats["hits"] += 1
    return True


def lookup(key: tuple, count: bool = True) -> Plan | None:
    """The plan cached under ``key`` (counted as a hit and made most recent, unless ``count`` is
    false), or None: no building."""
    with _lock:
        plan = _cache.get(key)
        if plan is not None and count:
            _cache.move_to_end(key)
            _stats["hits"] += 1
        return plan


def signature(arrays: Mapping[str, np.ndarray]) -> tuple:
    """The names, shapes and dtypes of ``arrays``: what a plan depends on of them.

    >>> signature({"x": np.ones(2)})
    (('x', (2,), '<f8'),)
    """
    for first in arrays.values():      # checked arrays are all of one library: the first tells which
        if type(first) is not np.ndarray:
            return tuple(_foreign_signature(n, a) for n, a in arrays.items())
        break
    return tuple((n, a.shape, a.dtype.str) for n, a in arrays.items())


def _foreign_signature(name: str, array: Any) -> tuple:
    """Another library's array: its library and device too (plans are cached per backend)."""
    device = _backends.device_of(array)
    return (name, tuple(array.shape), str(array.dtype), _backends.kind_of(array), str(device))


@dataclass(frozen=True)
class ReverseRequest:
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
        return (self.mode, self.program.text, self.of, self.wrts, signature(self.arrays),
                signature(self.extra_arrays), self.sizes_key, self.memory_limit)


def reverse_request(program: Program, of: str, wrts: tuple[str, ...], inputs: Inputs, sizes, memory_limit,
                     mode: str, cotangent=None) -> ReverseRequest:
    """A reverse-mode request (``mode``: ``grad``, ``value_and_grad``, ``vjp`` or ``jacobian``), checked:
    every ``wrts`` an input, the inputs it needs given with their ranks."""
    for w in wrts:
        program.check_input(w)
    order, needed = requested(program, of, wrts if of in program.names else tuple(dict.fromkeys(wrts + (of,))))
    arrays = check_inputs(program, inputs, needed)
    extra_arrays = {}
    if mode == "vjp":
        extra_arrays[adjoint_name(of)] = as_array("cotangent", cotangent, "cotangent")
        extra_arrays = extras_like(arrays, extra_arrays)
    return ReverseRequest(program, of, wrts, mode, order, arrays, extra_arrays, sizes_cache_key(sizes),
                           checked_memory_limit(memory_limit))


def reverse_specs(request: ReverseRequest) -> tuple[list[Spec], list[Spec]]:
    """The steps (forward values, then adjoints) and the results of a reverse-mode plan."""
    program, of, wrts, mode = request.program, request.of, request.wrts, request.mode
    with_value = mode == "value_and_grad"
    if with_value:
        mode = "grad"
    ctx = plan_context(program, request.arrays, request.sizes_key, request.order, request.memory_limit,
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
    ctx2 = with_shapes(ctx, {n: a.shape for n, a in request.extra_arrays.items()})
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
    table = StatementTable.of(program.statements) if mode == "jacobian" else lowered(program, request.order, ctx)
    derived = reverse_program(table.statements, of, wrts, slots, seed, out)
    exprs = [s.expr for s in derived.statements] + [e for _, _, e in derived.results]
    value = [(VALUE, table.statement(of).rhs, lhs, ctx2, f"'{of}'")] if with_value else []
    forward = referenced_statements(table, exprs + [spec[1] for spec in value])
    adjoint_specs, ctx2 = derived_specs(derived, ctx2)
    results = [(w, e, target, ctx2, f"d{of}/d{w}" if mode == "jacobian" else f"the gradient of '{w}'")
               for w, target, e in derived.results]
    # the value is computed last, from forward values the adjoints may also read (never recomputed)
    return forward_specs(table, [n for n in forward if n != of], ctx2) + adjoint_specs, results + value
