"""IR + concrete sizes → compiled evaluation steps.

Each expression is compiled once per shapes into a closure. Per term:

* tensor references and evaluated calls/powers are the operands of one
  ``opt_einsum.contract_expression``, built from integer sublists (index
  names never reach opt_einsum, so long names and more than 52 indices work);
* contracted deltas are already gone (simplification renamed them away);
* free deltas are realised by writing into a strided diagonal view of a zeroed
  output — ``out[i,k,i,b]`` for ``δ[i,a]`` is one axis with the summed stride;
* missing output indices broadcast.

Every allocation of an output is checked against a byte limit first; a
contraction whose best order holds a larger intermediate runs as a loop over
slices of some indices (:mod:`einderiv.numeric.paths` chooses them).

>>> import numpy as np
>>> from einderiv.core import ir
>>> ctx = Context(sizes={"i": 2, "k": 2}, shapes={"A": (2, 2)}, dtype=np.dtype(float))
>>> run = compile_expr(ir.mul(ir.ref("A", ["i", "k"]), ir.delta("i", "k")), ("i", "k"), ctx, "demo")
>>> run({"A": np.array([[1., 2.], [3., 4.]])}).tolist()
[[1.0, 0.0], [0.0, 4.0]]
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import opt_einsum

from einderiv.core import ir

from einderiv.numeric import elementwise, matrix_functions, pair_products, paths
from einderiv.numeric.backend import NUMPY, Backend
from einderiv.errors import MemoryLimitError, ShapeError, UnsupportedError
from einderiv.core.ir import Call, Delta, Expr, Factor, Power, Ref, Size, Term
from einderiv.names import slot_of

__all__ = ["Context", "compile_expr", "product_path", "index_size", "check_bytes", "delta_groups", "DEFAULT_MEMORY_LIMIT",
           "set_memory_limit", "Runner"]

#: Default limit, in bytes, on any one tensor einderiv allocates (read at each call;
#: change it with :func:`set_memory_limit`).
DEFAULT_MEMORY_LIMIT = 2 * 1024 ** 3


def set_memory_limit(nbytes: int) -> int:
    """Set the default byte limit of every later call; returns the previous limit.

    >>> previous = set_memory_limit(1024)
    >>> set_memory_limit(previous)
    1024
    """
    global DEFAULT_MEMORY_LIMIT
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
        raise MemoryLimitError(f"the memory limit must be a non-negative number of bytes, got {nbytes!r}")
    previous, DEFAULT_MEMORY_LIMIT = DEFAULT_MEMORY_LIMIT, int(nbytes)
    return previous

Runner = Callable[[Mapping[str, np.ndarray]], np.ndarray]

#: numpy's limit on the number of axes of an array (32 before numpy 2.0).
MAX_NDIM = 64 if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else 32

#: einsum names axes with letters: a contraction over more indices than this is done pairwise.
EINSUM_LETTERS = 52


@dataclass(frozen=True)
class Context:
    """What compilation needs: index sizes by root, tensor shapes, dtype, limits."""

    sizes: Mapping[str, int]
    shapes: Mapping[str, tuple[int, ...]]
    dtype: np.dtype
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    optimize: str = "auto"
    hint: str = "use vjp or jvp, which never build the full Jacobian"
    paths: list = field(default_factory=list)
    matrices: dict = field(default_factory=dict)    # matrix functions: what the plan needs of each matrix (its inverse?)
    backend: Backend = NUMPY                        # the array library the runners call (numeric/backend.py)
    groups: list = field(default_factory=list)      # sliced products whose adjoints share one loop (sliced_reverse)


def index_size(index: str, ctx: Context) -> int:
    """The size of an index: statement indices from ``sizes``, slot indices from a tensor's axis."""
    root = ir.index_root(index)
    slot = slot_of(root)
    if slot is not None:
        return ctx.shapes[slot[0]][slot[1]]
    if root in ctx.sizes:
        return ctx.sizes[root]
    return ctx.sizes[ir.display_name(root)]


def check_bytes(shape: tuple[int, ...], ctx: Context, what: str) -> None:
    """Raise :class:`MemoryLimitError` if a tensor of ``shape`` would exceed the limit."""
    nbytes = math.prod(shape) * ctx.dtype.itemsize
    if nbytes > ctx.memory_limit:
        raise MemoryLimitError(
            f"{what} would have shape {shape} and take {nbytes:,} bytes, over the memory limit of "
            f"{ctx.memory_limit:,} bytes; {ctx.hint}, or raise memory_limit")


def compile_expr(expr: Expr, target: tuple[str, ...], ctx: Context, what: str,
                 donate: frozenset[str] = frozenset()) -> Runner:
    """A function of the tensor environment returning ``expr`` as an array over ``target``.

    ``donate`` names environment arrays this step may overwrite: arrays an
    earlier step of the same plan allocated and no later step reads. A sum or
    an elementwise product then writes into one of them instead of allocating.
    The runner has ``fresh = True`` when it always returns an array it
    allocated (or was donated), never one it was given.
    """
    shape = tuple(index_size(i, ctx) for i in target)
    if len(shape) > MAX_NDIM:
        raise UnsupportedError(f"{what} would have {len(shape)} axes; numpy arrays have at most {MAX_NDIM}")
    check_bytes(shape, ctx, what)
    expr = _factored(expr)
    # A lone term may write into a donated operand; with several terms, another term could still read it,
    # so only the sum itself takes a donation (after every term's value is computed).
    single = donate if len(expr.terms) == 1 else frozenset()
    terms = [_compile_term(t, target, shape, ctx, single) for t in expr.terms]
    dtype = ctx.dtype
    zeros = ctx.backend.np.zeros
    if not terms:
        return _fresh(lambda env: zeros(shape, dtype))
    if len(terms) == 1 and terms[0].exact:
        return terms[0].value
    if not ctx.backend.in_place:
        return _fresh(_functional_sum(terms, shape, dtype, ctx.backend))
    if all(t.view is None for t in terms):
        donor = next((k for k, t in enumerate(terms) if t.exact and t.source in donate), None)
        if donor is not None and len(terms) > 1:
            source = terms[donor].source
            assert source is not None      # an exact term donating its buffer is a plain reference
            return _fresh(_sum_into(source, terms[:donor] + terms[donor + 1:]))
        return _fresh(_dense_sum(terms, shape, dtype))
    return _fresh(_scattered_sum(terms, shape, dtype))


def _fresh(run: Runner) -> Runner:
    """``run``, marked as returning a new array every call (never a view of what it reads)."""
    setattr(run, "fresh", True)
    return run


def _expanders(terms: list["_TermPlan"]) -> list[tuple[Runner, tuple | None]]:
    """Each term's runner with the index that adds the axes it lacks (``x[:, None]``), or None:
    what ``np.expand_dims(x, t.expand)`` does, without its per-call argument checks."""
    return [(t.value, tuple(None if k in t.expand else slice(None) for k in range(t.axes)) if t.expand else None)
            for t in terms]


def _sum_into(donor: str, terms: list["_TermPlan"]) -> Runner:
    """``env[donor] += Σ terms``: the donor is a dead intermediate of the target's shape."""
    expanders = _expanders(terms)

    def run(env):
        values = [value(env) if at is None else value(env)[at] for value, at in expanders]
        out = env[donor]
        if not (isinstance(out, np.ndarray) and out.ndim and out.flags.writeable):   # a 0-d result is a numpy scalar
            out = np.array(out, copy=True)
        for value in values:
            np.add(out, value, out=out)
        return out
    return run


def _factored(expr: Expr) -> Expr:
    """``Σ_n X[n,a] X[n,b] u[n] + Σ_n X[n,a] X[n,b] v[n]`` → ``Σ_n X[n,a] X[n,b] (u[n] + v[n])``.

    Terms that share tensor factors and sum over the same indices are contracted
    once, with the sum of what differs (one GEMM instead of two). Only when the
    differing parts all have the same free indices, so the sum is no larger
    than the terms.
    """
    grouped = ir.common_factor(expr)
    if grouped is None:
        return expr
    outer, inner = grouped
    if not any(isinstance(f, Ref) and f.indices for f in outer.factors):
        return expr
    free = [set(ir.free_indices(Expr((t,)))) for t in inner.terms]
    if any(f != free[0] for f in free) or any(not t.factors for t in inner.terms):
        return expr
    return Expr((Term(outer.coeff, outer.summed, outer.factors + (Power(inner, ir.ONE),)),))


@dataclass(frozen=True)
class _TermPlan:
    value: Runner                    # the term's value (coefficient applied) over its axes
    exact: bool                      # value is already the full target, in order
    view: Callable | list | None = None  # out → the diagonal view the value adds into (None: out itself);
    #                                       without in-place writes, the groups of axes the diagonal ties
    expand: tuple[int, ...] = ()     # axes of the view the value lacks (broadcast)
    source: str | None = None        # the term is just this environment array, as it is
    axes: int = 0                    # axes of the view (of the target, less those free deltas tie)


def _dense_sum(terms: list[_TermPlan], shape: tuple[int, ...], dtype) -> Runner:
    if len(terms) == 2 and all(t.exact for t in terms):       # A + Aᵀ: one call, the common case
        first, second = terms[0].value, terms[1].value

        def run_two(env):
            out = np.add(first(env), second(env))
            if type(out) is np.ndarray and out.dtype == dtype:    # both over the target: a fresh array of its shape
                return out
            full = np.empty(shape, dtype)
            full[...] = out
            return full
        return run_two
    expanders = _expanders(terms)

    def run(env):
        values = [value(env) if at is None else value(env)[at] for value, at in expanders]
        if len(values) >= 2:
            out = np.asarray(np.add(values[0], values[1]))
            rest = values[2:]
        else:
            out, rest = np.asarray(values[0]), []
        if out.shape != shape or out.dtype != dtype or not out.flags.writeable:
            full = np.empty(shape, dtype)
            full[...] = out
            out = full
        elif len(values) < 2:
            out = np.array(out, dtype=dtype, copy=True)
        for value in rest:
            np.add(out, value, out=out)
        return out
    return run


def _functional_sum(terms: list[_TermPlan], shape: tuple[int, ...], dtype, backend: Backend) -> Runner:
    """Σ terms without writing into any array but fresh zeros (every library but numpy):
    the dense terms added, broadcast to the target, then each free-delta diagonal added
    by the backend's ``scatter`` (a strided view, ``.at[].add`` or chunk by chunk)."""
    xnp, scatter = backend.np, backend.scatter
    assert scatter is not None, f"the {backend.name} backend writes diagonals functionally"
    dense = [t for t in terms if t.view is None]
    diagonal = [t for t in terms if t.view is not None]

    def value(t: _TermPlan, env: Mapping[str, Any]) -> Any:
        v = t.value(env)
        return xnp.expand_dims(v, t.expand) if t.expand else v

    def run(env):
        out: Any = None
        for t in dense:
            out = value(t, env) if out is None else xnp.add(out, value(t, env))
        if out is not None and (len(dense) < 2 or tuple(out.shape) != shape or diagonal):
            out = xnp.add(xnp.zeros(shape, dtype), out)      # a fresh array of the target's shape and dtype
        for t in diagonal:
            out = scatter(xnp, out, t.view, shape, dtype, value(t, env))
        return out
    return run


def _scattered_sum(terms: list[_TermPlan], shape: tuple[int, ...], dtype) -> Runner:
    expanders = _expanders(terms)

    def run(env):
        out = np.zeros(shape, dtype)
        for k, t in enumerate(terms):
            run_term, at = expanders[k]
            value = run_term(env)
            if at is not None:
                value = value[at]
            view = t.view
            assert view is None or callable(view)      # numpy writes in place, through strided views
            target = out if view is None else view(out)
            if k == 0:
                target[...] = value     # out is still zero: a write, not a read-modify-write
            else:
                target += value
        return out
    return run


def _diagonal_view(groups: list[list[int]], shape: tuple[int, ...], dtype: np.dtype) -> Callable:
    """out → a view with one axis per group of out's axes (a strided diagonal).

    ``out`` is a fresh C-contiguous array of ``shape``, so the strides are known
    when the plan is compiled; the view is one ``ndarray`` constructor call.
    """
    strides = [dtype.itemsize] * len(shape)
    for axis in range(len(shape) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * shape[axis + 1]
    view_shape = tuple(shape[g[0]] for g in groups)
    view_strides = tuple(sum(strides[a] for a in g) for g in groups)

    def view(out: np.ndarray) -> np.ndarray:
        return np.ndarray(view_shape, out.dtype, out, 0, view_strides)
    return view


def _compile_term(term: Term, target: tuple[str, ...], shape: tuple[int, ...], ctx: Context,
                  donate: frozenset[str] = frozenset()) -> _TermPlan:
    coeff = term.coeff
    operands: list[tuple[Runner, tuple[str, ...]]] = []
    deltas: list[Delta] = []
    factors = term.factors
    if any(isinstance(f, ir.MatFn) for f in factors):     # inv(M)[p,q] X[q,k] → solve(M, X)[p,k]
        ctx.backend.require("matrix functions (inv, det, logdet)", "numpy")
        factors, operands = matrix_functions.solve_operands(term, target, ctx, compile_expr, index_size)
    for factor in factors:
        if isinstance(factor, Ref):
            operands.append((_getter(factor.name), factor.indices))
        elif isinstance(factor, Delta):
            deltas.append(factor)
        elif isinstance(factor, Size):
            coeff *= index_size(factor.index, ctx)
        elif isinstance(factor, Call) and _is_mask(factor, factors, ctx):
            operands.append(_compile_mask(factor, ctx))
        else:
            operands.append(_compile_factor(factor, ctx))
    for d in deltas:
        a, b = target.index(d.first), target.index(d.second)
        if shape[a] != shape[b]:
            raise ShapeError(f"δ[{ir.display_name(d.first)},{ir.display_name(d.second)}] joins indices of "
                             f"sizes {shape[a]} and {shape[b]}")
    reps = delta_groups(target, deltas)
    position = {index: k for k, index in enumerate(target)}
    group_axes: dict[int, list[int]] = {}
    for k, r in enumerate(reps):
        group_axes.setdefault(r, []).append(k)
    group_order = list(group_axes)            # view axes, by first target position
    rep_of = {index: target[reps[k]] for index, k in position.items()}
    mapped = [(get, tuple(rep_of.get(i, i) for i in idx)) for get, idx in operands]
    present = {i for _, idx in mapped for i in idx}
    out_axes = [g for g in group_order if target[g] in present]
    value = _contraction(mapped, tuple(target[g] for g in out_axes), coeff, ctx, donate)
    expand = tuple(k for k, g in enumerate(group_order) if target[g] not in present)
    has_deltas = len(group_order) < len(target)
    exact = not has_deltas and not expand
    groups = [group_axes[g] for g in group_order]
    # numpy: out → its strided diagonal view; other libraries: the groups, for the backend's scatter
    view = (_diagonal_view(groups, shape, ctx.dtype) if ctx.backend.in_place else groups) if has_deltas else None
    plain = len(term.factors) == 1 and isinstance(term.factors[0], Ref) and term.coeff == 1.0 \
        and term.factors[0].indices == target and not term.summed
    first = term.factors[0] if term.factors else None
    return _TermPlan(value, exact, view, expand, first.name if plain and isinstance(first, Ref) else None,
                     len(group_order))


def delta_groups(target: tuple[str, ...], deltas: list[Delta]) -> list[int]:
    """For each axis of ``target``, the first axis that free deltas tie it to (union-find).

    >>> from einderiv.core.ir import Delta
    >>> delta_groups(("i", "k", "a", "b"), [Delta("i", "a")])
    [0, 1, 0, 3]
    """
    position = {index: k for k, index in enumerate(target)}
    parent = list(range(len(target)))

    def find(k: int) -> int:
        while parent[k] != k:
            k = parent[k]
        return k

    for d in deltas:
        a, b = find(position[d.first]), find(position[d.second])
        parent[max(a, b)] = min(a, b)
    return [find(k) for k in range(len(target))]


def _getter(name: str) -> Runner:
    def get(env):
        return env[name]
    setattr(get, "name", name)     # for messages: the product's operands by name
    return get


def _contraction(operands: list[tuple[Runner, tuple[str, ...]]], out: tuple[str, ...], coeff: float,
                 ctx: Context, donate: frozenset[str] = frozenset()) -> Runner:
    dtype = ctx.dtype
    xnp = ctx.backend.np
    if not operands:
        if xnp is np:
            return lambda env: np.array(coeff, dtype)     # a fresh array: callers may write into results
        return lambda env: xnp.asarray(coeff, dtype)
    scalars = [get for get, idx in operands if not idx]
    if scalars and len(scalars) < len(operands):
        # 0-d operands multiply the result: no contraction needs to see them
        rest = _contraction([(get, idx) for get, idx in operands if idx], out, coeff, ctx)
        if len(scalars) == 1:
            (scalar,) = scalars
            return _fresh(lambda env: xnp.multiply(rest(env), scalar(env)))
        return _fresh(lambda env: xnp.multiply(rest(env), math.prod(get(env) for get in scalars)))
    ids: dict[str, int] = {}
    for _, idx in operands:
        for i in idx:
            ids.setdefault(i, len(ids))
    sublists = [[ids[i] for i in idx] for _, idx in operands]
    out_ids = [ids[i] for i in out]
    getters = [get for get, _ in operands]
    direct = _direct(sublists, out_ids, [tuple(index_size(i, ctx) for i in idx) for _, idx in operands], xnp,
                     ctx.memory_limit // ctx.dtype.itemsize)
    donor = _donor(getters, sublists, out_ids, donate)
    if len(operands) == 1 and sublists[0] == out_ids:
        core = getters[0]
    elif donor is not None and coeff == 1.0:
        return _fresh(donor)
    elif direct is not None:
        core = _apply(direct, getters)
    else:
        shapes = [tuple(index_size(i, ctx) for i in idx) for _, idx in operands]
        described = _product_text((getattr(get, "name", "(…)"), idx) for get, idx in operands)
        if len(ids) > EINSUM_LETTERS:
            core = _pairwise(sublists, out_ids, shapes, getters, ctx, described, ids)
        else:
            plan = _plan_within_limit(described, sublists, out_ids, shapes, ids, ctx)
            if plan.slices > 1:
                core = _sliced(plan, sublists, out_ids, shapes, getters, ctx)
                core = _from_group(operands, out, ctx, core)
            else:
                args = [x for pair in zip(shapes, sublists) for x in pair]
                expression = opt_einsum.contract_expression(*args, out_ids, optimize=list(plan.path))
                ctx.paths.append(expression)

                if xnp is np:
                    def core(env, expression=expression, getters=getters):
                        return expression(*[get(env) for get in getters])
                else:
                    def core(env, expression=expression, getters=getters, backend=ctx.backend.name):
                        return expression(*[get(env) for get in getters], backend=backend)
    if coeff == 1.0:
        # a product, or a sum over some axes, is a new array; a lone operand only renamed or
        # transposed may be a view of what it reads
        if len(operands) >= 2 or len(set(sublists[0])) > len(out_ids):
            return _fresh(core)
        return core
    if coeff == -1.0:
        return _fresh(lambda env: xnp.negative(core(env)))
    return _fresh(lambda env: xnp.multiply(core(env), coeff))


def _from_group(operands: list[tuple[Runner, tuple[str, ...]]], out: tuple[str, ...], ctx: Context,
                own: Runner) -> Runner:
    """A sliced product that is a registered sliced product's adjoint (see
    :mod:`einderiv.numeric.sliced_reverse`): read from the group's one loop, ``own`` as its fallback."""
    named = [(getattr(get, "name", None), idx) for get, idx in operands]
    if not ctx.groups or any(name is None for name, _ in named):
        return own
    for group in ctx.groups:
        found = group.member(named, out)
        if found is not None:
            return group.runner(*found, own)
    return own




def _donor(getters: list[Runner], sublists: list[list[int]], out: list[int], donate: frozenset[str]) -> Runner | None:
    """``x *= y`` into a donated ``x`` for an elementwise product whose other factor broadcasts to it."""
    if len(getters) != 2 or not donate:
        return None
    for k in (0, 1):
        name = getattr(getters[k], "name", None)
        other = sublists[1 - k]
        if name in donate and sublists[k] == out and len(set(other)) == len(other) and set(other) <= set(out) \
                and [i for i in out if i in other] == other:
            x, y = getters[k], getters[1 - k]
            at = tuple(slice(None) if i in other else None for i in out)   # theirs, broadcast against mine
            if all(i in other for i in out):
                at = ()

            def product(env, x=x, y=y, at=at):
                mine, theirs = x(env), y(env)
                if not (type(mine) is np.ndarray and mine.ndim and mine.flags.writeable):
                    return np.multiply(mine, theirs)                   # a 0-d result is a numpy scalar
                if at:
                    theirs = np.asarray(theirs)[at]
                return np.multiply(mine, theirs, out=mine)
            return product
    return None


def product_path(operands: Sequence[Ref], keep: set[str], ctx: Context) -> list[tuple[int, ...]]:
    """The contraction order of a product of tensor entries keeping the ``keep`` indices
    (see :func:`_plan_within_limit`): what :mod:`einderiv.numeric.contraction_tree` splits along.

    When the order must be sliced to fit the memory limit, only its steps whose results fit
    (and whose operands do) come first, one at a time; a last step then takes the whole rest,
    which stays one product, contracted as a loop over slices (:func:`_sliced`).

    >>> ctx = Context(sizes={"i": 2, "j": 3, "k": 4}, shapes={}, dtype=np.dtype(float))
    >>> product_path([Ref("A", ("i", "j")), Ref("B", ("j", "k")), Ref("c", ("k",))], {"i"}, ctx)
    [(1, 2), (0, 1)]
    """
    ids: dict[str, int] = {}
    for r in operands:
        for i in r.indices:
            ids.setdefault(i, len(ids))
    sublists = [[ids[i] for i in r.indices] for r in operands]
    out = [ids[i] for i in ids if i in keep]
    shapes = [tuple(index_size(i, ctx) for i in r.indices) for r in operands]
    plan = _plan_within_limit(_product_text((r.name, r.indices) for r in operands), sublists, out, shapes, ids, ctx)
    if plan.slices == 1:
        return list(plan.path)
    sizes = {i: n for sub, shape in zip(sublists, shapes) for i, n in zip(sub, shape)}
    return _fitting_prefix([frozenset(s) for s in sublists], frozenset(out), plan.path, sizes,
                           max(ctx.memory_limit // ctx.dtype.itemsize, 1))


def _fitting_prefix(inputs: list[frozenset], output: frozenset, path: Sequence[Sequence[int]],
                    sizes: Mapping[int, int], limit: int) -> list[tuple[int, ...]]:
    """The steps of ``path`` whose results fit ``limit`` elements and whose operands are inputs or
    such results, in order, then one step over everything left (opt_einsum's linear format).

    >>> f = frozenset                      # A[i,j] B[j,k] x[k] y[l] C[l,i]: A B is too large, y C fits
    >>> _fitting_prefix([f({0, 1}), f({1, 2}), f({2}), f({3}), f({3, 0})], f(), [(0, 1), (1, 2), (0, 1), (0, 1)],
    ...                 {0: 10, 1: 3, 2: 10, 3: 4}, 20)
    [(3, 4), (0, 1, 2, 3)]
    """
    _, step_sizes, _ = paths.path_cost(inputs, output, path, sizes)
    nodes = list(range(len(inputs)))           # what the path's list holds: inputs, then step results
    fits = set(nodes)
    kept_nodes = list(range(len(inputs)))      # the list of the prefix being built
    prefix = []
    for k, positions in enumerate(path[:-1]):
        chosen = [nodes[p] for p in positions]
        nodes = [x for p, x in enumerate(nodes) if p not in positions]
        new = len(inputs) + k
        nodes.append(new)
        if step_sizes[k] <= limit and all(c in fits for c in chosen):
            fits.add(new)
            prefix.append(tuple(sorted(kept_nodes.index(c) for c in chosen)))
            kept_nodes = [x for x in kept_nodes if x not in chosen] + [new]
    return prefix + [tuple(range(len(kept_nodes)))]


def _product_text(factors) -> str:
    """``A[i,j] B[j,k]`` from (name, indices) pairs, for error messages."""
    return " ".join(f"{name}[{','.join(ir.display_name(i) for i in idx)}]" for name, idx in factors)


def _plan_within_limit(described: str, sublists: list[list[int]], out: list[int],
                       shapes: list[tuple[int, ...]], ids: Mapping[str, int], ctx: Context) -> paths.ContractionPlan:
    """The contraction order (:func:`einderiv.numeric.paths.plan_contraction`), sliced when its largest
    intermediate is over the memory limit; :class:`MemoryLimitError` naming that intermediate when
    no slicing into at most :data:`~einderiv.numeric.paths.MAX_SLICES` chunks fits."""
    itemsize = ctx.dtype.itemsize
    sizes = {i: n for sub, shape in zip(sublists, shapes) for i, n in zip(sub, shape)}
    try:
        return paths.plan_contraction(sublists, out, sizes, max(ctx.memory_limit // itemsize, 1))
    except paths.NoSlicingFits as refused:
        names = {i: index for index, i in ids.items()}
        indices = [names[i] for i in sorted(refused.indices)]
        shape = tuple(index_size(i, ctx) for i in indices)
        nbytes = math.prod(shape) * itemsize
        raise MemoryLimitError(
            f"the product {described} needs an intermediate over [{','.join(ir.display_name(i) for i in indices)}] "
            f"of shape {shape}, {nbytes:,} bytes, over the memory limit of {ctx.memory_limit:,} bytes, and no "
            f"slicing into at most {paths.MAX_SLICES:,} chunks brings it under: raise memory_limit or compute "
            f"part of the product in a statement of its own") from None


def _sliced(plan: paths.ContractionPlan, sublists: list[list[int]], out: list[int], shapes: list[tuple[int, ...]],
            getters: list[Runner], ctx: Context) -> Runner:
    """The product as a loop over chunks of the sliced indices: each chunk one contraction of views
    of the operands along the plan's order, added into (its block of) the zeroed output."""
    sizes = {i: n for sub, shape in zip(sublists, shapes) for i, n in zip(sub, shape)}
    chunk = dict(plan.sliced)
    ranges = {i: [slice(a, min(a + c, sizes[i])) for a in range(0, sizes[i], c)] for i, c in chunk.items()}
    order = list(chunk)
    expressions: dict[tuple[int, ...], Callable] = {}
    combos = []
    for picks in itertools.product(*(ranges[i] for i in order)):
        pick = dict(zip(order, picks))
        lengths = tuple(p.stop - p.start for p in picks)
        if lengths not in expressions:
            length = dict(zip(order, lengths))
            args = [x for sub in sublists for x in (tuple(length.get(i, sizes[i]) for i in sub), sub)]
            expressions[lengths] = opt_einsum.contract_expression(*args, out, optimize=list(plan.path))
            ctx.paths.append(expressions[lengths])
        views = tuple(tuple(pick.get(i, slice(None)) for i in sub) for sub in sublists)
        combos.append((expressions[lengths], views, tuple(pick.get(i, slice(None)) for i in out)))
    out_shape = tuple(sizes[i] for i in out)
    dtype = ctx.dtype
    if ctx.backend.name != "numpy":
        return _sliced_elsewhere(combos, out_shape, dtype, ctx.backend, getters)

    def run(env):
        arrays = [get(env) for get in getters]
        total = np.zeros(out_shape, dtype)
        for expression, views, block in combos:
            total[block] += expression(*[a[v] for a, v in zip(arrays, views)])
        return total
    return _fresh(run)


def _sliced_elsewhere(combos: list, out_shape: tuple[int, ...], dtype, backend: Backend,
                     getters: list[Runner]) -> Runner:
    """:func:`_sliced`'s loop on another library: torch and cupy add into blocks of fresh zeros,
    jax with ``.at[block].add`` (dask never slices: its memory limit bounds chunks, not products)."""
    xnp, name = backend.np, backend.name

    def run(env):
        arrays = [get(env) for get in getters]
        total = xnp.zeros(out_shape, dtype)
        for expression, views, block in combos:
            part = expression(*[a[v] for a, v in zip(arrays, views)], backend=name)
            if name == "jax":
                total = total.at[block].add(part)
            else:
                total[block] += part
        return total
    return _fresh(run)


def _pairwise(sublists: list[list[int]], out: list[int], shapes: list[tuple[int, ...]], getters: list[Runner],
              ctx: Context, described: str, ids: Mapping[str, int]) -> Runner:
    """A contraction with more indices than einsum has letters, step by step along opt_einsum's path.

    The path is searched as for any contraction (opt_einsum names indices with
    any number of symbols when it only plans); each step is then one
    :func:`_direct` numpy call where that applies, else a broadcast product
    summed over the indices no later operand needs, and every step's product is
    checked against the memory limit first.
    """
    if any(len(set(s)) != len(s) for s in sublists):
        raise UnsupportedError(f"a product with more than {EINSUM_LETTERS} distinct indices that takes a "
                               f"diagonal (an index twice on one tensor) is not supported; use a separate statement")
    sizes = {i: n for sub, shape in zip(sublists, shapes) for i, n in zip(sub, shape)}
    xnp = ctx.backend.np
    plan = _plan_within_limit(described, sublists, out, shapes, ids, ctx)
    if plan.slices > 1:
        # each step is one opt_einsum call, which names a step's indices with letters again
        if paths.widest_step([frozenset(s) for s in sublists], frozenset(out), plan.path) <= EINSUM_LETTERS:
            return _sliced(plan, sublists, out, shapes, getters, ctx)
        raise MemoryLimitError(f"the product {described} needs slicing to fit the memory limit of "
                               f"{ctx.memory_limit:,} bytes, and a step of its order over more than {EINSUM_LETTERS} "
                               f"indices, which sliced products do not support: raise memory_limit or split the "
                               f"product into statements")
    path = plan.path
    current = [list(s) for s in sublists]
    steps = []
    for positions in path:
        chosen = [current[k] for k in positions]
        current = [s for k, s in enumerate(current) if k not in positions]
        later = set(out).union(*current)
        acc = chosen[0]
        folds = []
        for k, b in enumerate(chosen[1:], 2):
            union = acc + [i for i in b if i not in acc]
            rest = set().union(*chosen[k:])
            keep = [i for i in union if i in later or i in rest]
            if len(union) > MAX_NDIM:
                raise UnsupportedError(f"a product step over {len(union)} indices; numpy arrays have at most {MAX_NDIM} axes")
            fold = _direct([acc, b], keep, [tuple(sizes[i] for i in acc), tuple(sizes[i] for i in b)], xnp)
            if fold is None:
                check_bytes(tuple(sizes[i] for i in union), ctx, "an intermediate product of a term with many indices")
                fold = _broadcast_step(acc, b, union, keep, sizes, xnp)
            folds.append(fold)
            acc = keep
        if len(chosen) == 1:
            keep = [i for i in acc if i in later]
            single = _direct([acc], keep, [tuple(sizes[i] for i in acc)], xnp)
            assert single is not None      # one operand: always a direct step (a sum or transpose)
            folds.append(single)
            acc = keep
        steps.append((tuple(positions), tuple(folds), len(chosen)))
        current.append(acc)
    last = _direct([current[0]], list(out), [tuple(sizes[i] for i in current[0])], xnp)
    assert last is not None            # one operand: always a direct step
    final = last

    def run(env):
        values = [get(env) for get in getters]
        for positions, folds, arity in steps:
            args = [values[k] for k in positions]
            values = [v for k, v in enumerate(values) if k not in positions]
            value = args[0]
            for fold, other in zip(folds, args[1:]):
                value = fold(value, other)
            if arity == 1:
                value = folds[0](value)
            values.append(value)
        return final(values[0])
    return run


def _broadcast_step(a: list[int], b: list[int], union: list[int], keep: list[int], sizes: dict[int, int],
                    xnp=np) -> Callable:
    """(x over ``a``, y over ``b``) → their product summed down to ``keep`` (``a`` is a prefix of ``union``)."""
    full_a = tuple(sizes[i] if i in a else 1 for i in union)
    perm_b = tuple(sorted(range(len(b)), key=lambda k: union.index(b[k])))
    full_b = tuple(sizes[i] if i in b else 1 for i in union)
    summed = tuple(k for k, i in enumerate(union) if i not in keep)

    def step(x, y):
        product = xnp.multiply(xnp.reshape(x, full_a), xnp.reshape(xnp.transpose(y, perm_b), full_b))
        return xnp.sum(product, axis=summed) if summed else product
    return step


def _apply(fn: Callable, getters: list[Runner]) -> Runner:
    if len(getters) == 1:
        (get,) = getters
        return lambda env: fn(get(env))
    first, second = getters
    return lambda env: fn(first(env), second(env))


def _direct(sublists: list[list[int]], out: list[int], shapes: list[tuple[int, ...]], xnp=np,
            limit_elements: int = 0) -> Callable | None:
    """One numpy call for the contractions of one or two operands that need no path.

    opt_einsum would do the same (a transpose, a sum, one ``tensordot`` or one
    broadcast product) with more per-call overhead. A two-operand product that
    ``tensordot`` would copy an operand for, or that has batch indices, is one
    ``np.matmul`` of views where that moves less (:mod:`einderiv.numeric.pair_products`;
    ``limit_elements`` bounds the larger product it may form). Anything else —
    three or more operands, diagonals — goes through opt_einsum.
    """
    if any(len(set(s)) != len(s) for s in sublists) or len(set(out)) != len(out):
        return None
    if len(sublists) == 1:
        (a,) = sublists
        if not set(out) <= set(a):
            return None
        summed = tuple(k for k, i in enumerate(a) if i not in out)
        kept = [i for i in a if i in out]
        perm = tuple(kept.index(i) for i in out)
        if xnp is np:       # ufunc and method calls: numpy's wrappers cost more than the work on small arrays
            return _numpy_sum_transpose(summed, perm)
        return lambda x: xnp.transpose(xnp.sum(x, axis=summed) if summed else x, perm)
    if len(sublists) != 2:
        return None
    a, b = sublists
    if any(i not in b and i not in out for i in a) or any(i not in a and i not in out for i in b):
        return _reduced_first(a, b, out, shapes, xnp, limit_elements)
    shared = [i for i in a if i in b]
    if not (set(a) | set(b)) - set(shared) <= set(out):
        return None
    if len(shared) == 1 and len(a) <= 2 and len(b) <= 2 and shared[0] not in out:
        return _matmul(a, b, shared[0], out, xnp)
    if xnp is np and shared and not set(shared) <= set(out):
        batched = pair_products.cheaper_batched_matmul(a, b, out, shapes, limit_elements)
        if batched is not None:
            return batched
    if shared and not set(shared) & set(out):
        if xnp is np and pair_products.thin_with_a_copy(a, b, shared, shapes):
            return pair_products.einsum_pair(a, b, out)
        axes = ([a.index(i) for i in shared], [b.index(i) for i in shared])
        order = [i for i in a if i not in shared] + [i for i in b if i not in shared]
        perm = tuple(order.index(i) for i in out)
        if perm == tuple(range(len(perm))):
            return lambda x, y: xnp.tensordot(x, y, axes)
        return lambda x, y: xnp.transpose(xnp.tensordot(x, y, axes), perm)
    if set(shared) <= set(out):
        if xnp is np and pair_products.short_inner_loop(a, b, out, shapes):
            return pair_products.einsum_pair(a, b, out)
        align_a = _aligner(a, out, shapes[0], xnp)
        align_b = _aligner(b, out, shapes[1], xnp)
        return lambda x, y: xnp.multiply(align_a(x), align_b(y))
    return None


def _numpy_sum_transpose(summed: tuple[int, ...], perm: tuple[int, ...]) -> Callable:
    """x → ``x`` summed over the axes ``summed``, then its axes permuted by ``perm`` (numpy).

    >>> _numpy_sum_transpose((0,), (1, 0))(np.ones((2, 3, 4))).shape
    (4, 3)
    """
    identity = perm == tuple(range(len(perm)))
    reduce = np.add.reduce
    if not summed:
        return (lambda x: x) if identity else (lambda x: x.transpose(perm))     # x: a numpy array of ≥ 2 axes
    if identity:
        return lambda x: reduce(x, axis=summed)
    return lambda x: reduce(x, axis=summed).transpose(perm)


def _reduced_first(a: list[int], b: list[int], out: list[int], shapes: list[tuple[int, ...]],
                   xnp=np, limit_elements: int = 0) -> Callable | None:
    """Sum away the indices only one operand has (and the output lacks) before the product:
    ``Σ_b x[b,c] y[a]`` is ``(Σ_b x[b,c]) y[a]``, a sum and an outer product instead of an einsum."""
    lone_a = tuple(k for k, i in enumerate(a) if i not in b and i not in out)
    lone_b = tuple(k for k, i in enumerate(b) if i not in a and i not in out)
    a2 = [i for k, i in enumerate(a) if k not in lone_a]
    b2 = [i for k, i in enumerate(b) if k not in lone_b]
    shapes2 = [tuple(n for k, n in enumerate(shapes[0]) if k not in lone_a),
               tuple(n for k, n in enumerate(shapes[1]) if k not in lone_b)]
    inner = _direct([a2, b2], out, shapes2, xnp, limit_elements)
    if inner is None:
        return None

    def product(x, y):
        return inner(xnp.sum(x, axis=lone_a) if lone_a else x, xnp.sum(y, axis=lone_b) if lone_b else y)
    return product


def _matmul(a: list[int], b: list[int], k: int, out: list[int], xnp=np) -> Callable:
    """A product of two operands of rank ≤ 2 over one index, as ``np.matmul`` of (transposed) views,
    the operands in the output's order (``Xᵀ G`` rather than ``(Gᵀ X)ᵀ``: the result is written in
    the layout returned, and BLAS is faster on it).

    >>> x, y = np.arange(6.0).reshape(3, 2), np.arange(12.0).reshape(3, 4)
    >>> bool(np.array_equal(_matmul([0, 2], [0, 1], 0, [1, 2])(x, y), y.T @ x))   # out: y's index, then x's
    True
    """
    order = [i for i in a if i != k] + [i for i in b if i != k]
    if len(order) == 2 and [i for i in out if i in order] == order[::-1]:
        swapped = _matmul(b, a, k, out, xnp)
        return lambda x, y: swapped(y, x)
    flip_a = len(a) == 2 and a[0] == k          # the contracted index must come last in x …
    flip_b = len(b) == 2 and b[1] == k          # … and first in y
    perm = tuple(order.index(i) for i in out)
    transposed = perm != tuple(range(len(perm)))

    if xnp is not np:
        def functional(x: Any, y: Any) -> Any:
            result = xnp.matmul(x.T if flip_a else x, y.T if flip_b else y)
            return xnp.transpose(result, perm) if transposed else result
        return functional

    def product(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        result = np.matmul(x.T if flip_a else x, y.T if flip_b else y)
        return result.transpose(perm) if transposed else result
    return product


def _aligner(sub: list[int], out: list[int], shape: tuple[int, ...], xnp=np) -> Callable:
    """x over ``sub`` → a view that broadcasts against ``out``."""
    ordered = sorted(range(len(sub)), key=lambda k: out.index(sub[k]))
    sizes = {sub[k]: shape[k] for k in range(len(sub))}
    full = tuple(sizes.get(i, 1) for i in out)
    perm = tuple(ordered)
    if xnp is np and perm == tuple(range(len(perm))):
        return lambda x: x.reshape(full) if type(x) is np.ndarray else np.reshape(x, full)
    if perm == tuple(range(len(perm))):
        return lambda x: xnp.reshape(x, full)
    return lambda x: xnp.reshape(xnp.transpose(x, perm), full)


def _compile_factor(factor: Factor, ctx: Context) -> tuple[Runner, tuple[str, ...]]:
    """A call or power as an operand: its value over its free indices."""
    if isinstance(factor, ir.MatFn):
        ctx.backend.require("matrix functions (inv, det, logdet)", "numpy")
        return matrix_functions.compile_factor(factor, ctx, compile_expr, index_size)
    indices = tuple(dict.fromkeys(ir.factor_indices(factor)))
    xnp = ctx.backend.np
    shape = tuple(index_size(i, ctx) for i in indices)
    check_bytes(shape, ctx, f"an intermediate over {tuple(ir.display_name(i) for i in indices)}")
    if isinstance(factor, Call):
        args = [_aligned(a, indices, ctx) for a in factor.args]
        fn = ctx.backend.elementwise(factor.fn)

        def run_call(env):
            return fn(*[a(env) for a in args])
        return _cast(run_call, ctx.dtype, xnp), indices
    assert isinstance(factor, Power), factor
    base = _aligned(factor.base, indices, ctx)
    p = ir.constant_value(factor.exponent)
    if p is not None:
        if p == 1.0:       # a parenthesized sum (see _factored): its value as it is
            return base, indices
        op = {2.0: xnp.square, -1.0: xnp.reciprocal, 0.5: xnp.sqrt}.get(p)

        def run_power(env):
            b = base(env)
            return op(b) if op is not None else xnp.power(b, p)
        return _cast(run_power, ctx.dtype, xnp), indices
    exponent = _aligned(factor.exponent, indices, ctx)
    return _cast(lambda env: xnp.power(base(env), exponent(env)), ctx.dtype, xnp), indices


def _is_mask(factor: Call, factors: Sequence[Factor], ctx: Context) -> bool:
    """Whether a comparison in a product can be a boolean mask (numpy): a floating tensor of the
    product over all of the mask's indices multiplies it entry by entry, so the mask is never summed
    on its own and the product's dtype is that tensor's."""
    if not (ctx.backend.in_place and ctx.backend.np is np and factor.fn in elementwise.NUMPY_MASKS):
        return False
    own = set(ir.factor_indices(factor))
    return any(isinstance(f, Ref) and f.indices and own <= set(f.indices) for f in factors)


def _compile_mask(factor: Call, ctx: Context) -> tuple[Runner, tuple[str, ...]]:
    """A comparison as a boolean mask over its free indices (see :data:`elementwise.NUMPY_MASKS`)."""
    indices = tuple(dict.fromkeys(ir.factor_indices(factor)))
    args = [_aligned(a, indices, ctx) for a in factor.args]
    compare = elementwise.NUMPY_MASKS[factor.fn]
    if len(args) == 1:
        (only,) = args
        return (lambda env: compare(only(env))), indices
    first, second = args
    return (lambda env: compare(first(env), second(env))), indices


def _cast(run: Runner, dtype, xnp=np) -> Runner:
    if xnp is not np:
        def cast_other(env):
            value = run(env)
            return value if value.dtype == dtype else xnp.astype(value, dtype)
        return cast_other

    def cast(env):
        value = run(env)
        if type(value) is not np.ndarray:
            value = np.asarray(value)
        return value if value.dtype == dtype else value.astype(dtype)
    return cast


def _aligned(expr: Expr, indices: tuple[str, ...], ctx: Context) -> Runner:
    """``expr`` over its own free indices, reshaped to broadcast against ``indices``."""
    own = tuple(i for i in indices if i in set(ir.free_indices(expr)))
    run = compile_expr(expr, own, ctx, "an intermediate")
    if own == indices:
        return run
    full = tuple(index_size(i, ctx) if i in own else 1 for i in indices)
    reshape = ctx.backend.np.reshape
    if reshape is np.reshape:
        def aligned_numpy(env):
            value = run(env)
            return value.reshape(full) if type(value) is np.ndarray else np.reshape(value, full)
        return aligned_numpy

    def aligned(env):
        return reshape(run(env), full)
    return aligned
