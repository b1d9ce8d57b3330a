"""Second derivatives: Hessians and Hessian–vector products, kept symbolic.

A Hessian is the derivative of a gradient, and einderiv obtains it exactly so,
inside the IR:

1. the *gradient program* is the program's statements, then the adjoint
   statements of reverse mode (seed ``1``), then one statement ``G:W[a'] = …``
   holding the gradient of ``W``. The adjoint statements become ordinary
   statements: their tensors are renamed ``g:T`` → ``G:T`` and every index of
   each one (bound or free) gets a suffix of its own (``n#2`` → ``n#2~r3``), so
   no two statements share an index name, as in a parsed program;
2. reverse mode runs again, over that longer program, from ``G:W`` with the
   Jacobian seed ``Π δ[a, a']``: the adjoints carry the Hessian's first indices
   (``a``) as extra indices, and the result is ``d²L/dW[a]dV[b]``.

Every function of the table differentiates to an IR expression (``tanh'`` is
``1 - tanh²``, the step functions ``step sign gt ge lt le`` have derivative
zero), so both passes stay symbolic and simplified: deltas are eliminated by
renaming and free ones survive only where the Hessian really is diagonal. For
``L = x[i] A[i,j] x[j]`` that prints ``d²L/dx[a]dx[b] = A[a,b] + A[b,a]``.

Numbers come from the same planner as every other request: free deltas are
writes into diagonal views of a zeroed array, everything else is opt_einsum;
the Hessian is never assembled from repeated gradient evaluations.
:func:`hvp` pushes a tangent forwards through the gradient program instead
(forward over reverse), so the Hessian is never built at all.

>>> print(symbolic_hessian("L = x[i] A[i,j] x[j]", "x"))
d²L/dx[a]dx[b] = A[a,b] + A[b,a]
>>> import numpy as np
>>> hessian("L = x[i] A[i,j] x[j]", "x", {"x": np.ones(2), "A": [[1., 2.], [3., 4.]]}).tolist()
[[2.0, 5.0], [5.0, 8.0]]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from einderiv.numeric import fast_path, plans
from einderiv.core import ir
from einderiv.core.caching import registered
from einderiv.numeric import symmetric as _symmetric
from einderiv.calculus.differentiation import (DerivedProgram, DerivedStatement, InlinePolicy, display_inline, forward_program,
                              numeric_inline, reverse_program, tangent_name)
from einderiv.errors import ProgramError, ShapeError
from einderiv.core.ir import Call, Delta, Expr, Factor, Power, Ref, Size, Term
from einderiv.numeric.planning import Context, compile_expr
from einderiv.language.printing import SizeSource, format_ref, format_sized
from einderiv.calculus.program import (Program, as_program, chain_index_names, definition_lines, jacobian_seed,
                                      size_sources, temporaries_used, wrt_slots)
from einderiv.language.lowering import Statement, dependencies
from einderiv.core.simplify import collect_powers
from einderiv.names import adjoint_of, gradient_name, gradient_of, innermost, tagged

__all__ = [
    "hessian", "hvp", "symbolic_hessian", "Hessian",
    "GradientProgram", "HessianProgram", "gradient_program", "hessian_program", "gradient_name",
]

ArrayLike = plans.ArrayLike
Inputs = plans.Inputs


# ---------------------------------------------------------------- relabelling

def _relabel(expr: Expr, tag: str, tensors: Mapping[str, str]) -> Expr:
    """Every index, bound or free, suffixed with ``tag``; tensors renamed by ``tensors``.

    An injective renaming of all of a statement's indices keeps its meaning, so
    no capture can happen and none is checked.
    """
    return Expr(tuple(Term(t.coeff, tuple(tagged(s, tag) for s in t.summed),
                           tuple(_relabel_factor(f, tag, tensors) for f in t.factors)) for t in expr.terms))


def _relabel_factor(factor: Factor, tag: str, tensors: Mapping[str, str]) -> Factor:
    if isinstance(factor, Ref):
        return Ref(tensors.get(factor.name, factor.name), tuple(tagged(i, tag) for i in factor.indices))
    if isinstance(factor, Delta):
        return Delta(tagged(factor.first, tag), tagged(factor.second, tag))
    if isinstance(factor, Size):
        return Size(tagged(factor.index, tag))
    if isinstance(factor, Call):
        return Call(factor.fn, tuple(_relabel(a, tag, tensors) for a in factor.args))
    if isinstance(factor, ir.MatFn):    # rows and columns are bound inside it; its batch indices relabel with it
        batch = factor.indices[:-2] if factor.fn == "inv" else factor.indices
        arg = ir.rename(factor.arg, {b: tagged(b, tag) for b in batch})
        return ir.MatFn(factor.fn, arg, factor.rows, factor.cols, tuple(tagged(i, tag) for i in factor.indices))
    return Power(_relabel(factor.base, tag, tensors), _relabel(factor.exponent, tag, tensors))


# ---------------------------------------------------------------- gradient programs

@dataclass(frozen=True)
class GradientProgram:
    """The program's statements followed by those computing ``dL/dW``, as plain statements.

    ``statements`` holds the forward statements (unchanged), then the adjoint
    statements (``G:T``), then ``G:W`` whose value is the gradient; ``name`` is
    ``G:W``; ``forward`` counts the forward statements.
    """

    of: str
    wrt: str
    name: str
    statements: tuple[Statement, ...]
    forward: int

    @property
    def result(self) -> Statement:
        """The statement ``G:W[…] = …`` holding the gradient."""
        return self.statements[-1]


def _as_statement(number: int, name: str, lhs: tuple[str, ...], rhs: Expr, what: str) -> Statement:
    return Statement(number, name, lhs, rhs, what, 0, tuple(dict.fromkeys(ir.index_root(i) for i in lhs)), ())


@registered
@functools.lru_cache(maxsize=256)
def gradient_program(program: Program, of: str, wrt: str, inline: InlinePolicy = numeric_inline) -> GradientProgram:
    """The gradient of scalar ``of`` with respect to input ``wrt`` as extra statements.

    >>> from einderiv import parse
    >>> g = gradient_program(parse("L = x[i] A[i,j] x[j]"), "L", "x")
    >>> [s.name for s in g.statements]
    ['L', 'G:x']
    """
    _check_scalar_output(program, of)
    _check_input(program, wrt)
    slots = wrt_slots(program, wrt)
    derived = reverse_program(program.statements, of, [wrt], {wrt: slots}, ir.ONE, (), inline)
    renames = {s.name: gradient_name(s.of) for s in derived.statements}
    statements = list(program.statements)
    for s in derived.statements:
        tag = f"r{len(statements) + 1}"
        statements.append(_as_statement(len(statements) + 1, renames[s.name],
                                        tuple(tagged(i, tag) for i in s.indices),
                                        _relabel(s.expr, tag, renames), f"the adjoint of '{s.of}'"))
    (_, target, expr), = derived.results
    tag = f"r{len(statements) + 1}"
    statements.append(_as_statement(len(statements) + 1, gradient_name(wrt), tuple(tagged(i, tag) for i in target),
                                    _relabel(expr, tag, renames), f"the gradient of '{wrt}'"))
    return GradientProgram(of, wrt, gradient_name(wrt), tuple(statements), len(program.statements))


def _check_scalar_output(program: Program, of: str) -> None:
    rank = program.rank(of)
    if rank != 0:
        raise ShapeError(f"second derivatives need a scalar output, but '{of}' has {rank} "
                         f"ind{'ex' if rank == 1 else 'ices'}; differentiate a scalar of it (a sum or a norm)")


def _check_input(program: Program, name: str) -> None:
    if not isinstance(name, str):
        raise ProgramError(f"wrt must be the name of one input, got {name!r}")
    program.check_input(name)


def _closure(table: Mapping[str, Statement], exprs: Sequence[Expr]) -> set[str]:
    """Statements of ``table`` the expressions need, directly or through other statements."""
    return set(dependencies(table.values(), [t for e in exprs for t in ir.tensor_names(e)]))


# ---------------------------------------------------------------- Hessian programs

@dataclass(frozen=True)
class HessianProgram:
    """What computes ``d²L/dW[out] dV[slots]``, in the order it runs.

    ``forward`` are program statements, ``gradient`` statements of the gradient
    program (``G:T``), ``second`` the adjoints of the second reverse pass;
    ``expr`` is the Hessian over ``out + slots``.
    """

    of: str
    wrt: str
    wrt2: str
    forward: tuple[Statement, ...]
    gradient: tuple[Statement, ...]
    second: tuple[DerivedStatement, ...]
    out: tuple[str, ...]
    slots: tuple[str, ...]
    expr: Expr

    @property
    def indices(self) -> tuple[str, ...]:
        """The Hessian's indices: ``wrt``'s axes, then ``wrt2``'s."""
        return self.out + self.slots


@registered
@functools.lru_cache(maxsize=256)
def hessian_program(program: Program, of: str, wrt: str, wrt2: str,
                    inline: InlinePolicy = numeric_inline) -> HessianProgram:
    """Reverse mode over the gradient program: ``d²of / d wrt d wrt2``, simplified.

    >>> from einderiv import parse
    >>> from einderiv.language.printing import format_expr
    >>> h = hessian_program(parse("L = x[i] x[i]"), "L", "x", "x")
    >>> format_expr(h.expr)
    '2 δ[a,b]'
    """
    _check_input(program, wrt2)
    grad = gradient_program(program, of, wrt, inline)
    out = wrt_slots(program, wrt)
    slots = wrt_slots(program, wrt2, out)
    seed = jacobian_seed(out, grad.result.lhs)
    derived = reverse_program(grad.statements, grad.name, [wrt2], {wrt2: slots}, seed, out, inline)
    (_, _, expr), = derived.results
    table = {s.name: s for s in grad.statements}
    needed = _closure(table, [s.expr for s in derived.statements] + [expr])
    forward = tuple(s for s in grad.statements[:grad.forward] if s.name in needed)
    gradient = tuple(s for s in grad.statements[grad.forward:] if s.name in needed)
    return HessianProgram(of, wrt, wrt2, forward, gradient, derived.statements, out, slots, expr)


def _hessian_inline(expr: Expr, consumers: int) -> bool:
    """The evaluation policy (:func:`numeric_inline`), and a short expression with one consumer
    inlined into it: the second-order chain of a sum over samples (``z[n] = X[n,i] w[i]``, then
    elementwise steps) then never materialises a (weights × samples) tensor per step; the
    product of ``X``, the per-sample coefficients and ``X`` is one planned contraction."""
    return numeric_inline(expr, consumers) or (consumers == 1 and display_inline(expr, consumers))


# ---------------------------------------------------------------- the symbolic Hessian

@dataclass(frozen=True)
class Hessian:
    """``d²of / d wrt d wrt2`` in index form, after any named intermediates.

    ``str()`` gives the Unicode text (``d²L/dx[a]dx[b] = A[a,b] + A[b,a]``),
    :meth:`to_text` with ``ascii=True`` the ASCII one (``d2L/dx[a]dx[b] = …``,
    ``delta(b,d)``). ``out_indices`` are ``wrt``'s axes and ``wrt_indices``
    ``wrt2``'s: the layout of :func:`hessian`. ``chain`` holds the statements
    too large to inline: ``dL/dT`` for an adjoint of the gradient program and
    ``d(dL/dW)/dT`` for one of the second pass.
    """

    of: str
    wrt: str
    wrt2: str
    out_indices: tuple[str, ...]
    wrt_indices: tuple[str, ...]
    expr: Expr
    chain: tuple[tuple[str, tuple[str, ...], Expr], ...]
    definitions: tuple[Statement, ...] = ()     # temporaries the text refers to, printed first
    sizes: tuple[SizeSource, ...] = ()          # a tensor axis sizing each sum[i](1) (see format_sized)

    def _tensor_names(self) -> dict[str, str]:
        names = {}
        grad = f"d{self.of}/d{self.wrt}"
        for name, _, _ in self.chain:
            inner = adjoint_of(name)
            if inner is not None and gradient_of(inner) is not None:
                names[name] = f"d({grad})/d(d{self.of}/d{gradient_of(inner)})"
            elif inner is not None:
                names[name] = f"d({grad})/d{inner}"
            elif gradient_of(name) is not None:
                names[name] = f"d{self.of}/d{gradient_of(name)}"
        return names

    def lhs_text(self, ascii: bool = False) -> str:
        """``d²L/dW[a,b]dV[c]``."""
        names = {i: ir.display_name(i) for i in self.out_indices + self.wrt_indices}
        first = format_ref(self.wrt, tuple(names[i] for i in self.out_indices))
        second = format_ref(self.wrt2, tuple(names[i] for i in self.wrt_indices))
        return f"d{'2' if ascii else '²'}{self.of}/d{first}d{second}"

    def to_text(self, ascii: bool = False) -> str:
        """The Hessian as text, one line per intermediate, the Hessian last."""
        tensors = self._tensor_names()
        lines = definition_lines(self.definitions, ascii)
        for name, indices, expr in self.chain:
            fixed = chain_index_names(indices)
            lhs = format_ref(tensors[name], tuple(fixed[i] for i in indices))
            lines.append(f"{lhs} = {format_sized(expr, fixed, self.sizes, ascii=ascii, tensors=tensors)}")
        names = {i: ir.display_name(i) for i in self.out_indices + self.wrt_indices}
        lines.append(f"{self.lhs_text(ascii)} = {format_sized(self.expr, names, self.sizes, ascii=ascii, tensors=tensors)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        from einderiv.calculus.program import short
        lines = self.to_text().split("\n")
        more = f" (after {len(lines) - 1} named intermediate{'s' if len(lines) > 2 else ''})" if len(lines) > 1 else ""
        return f"Hessian({short(lines[-1])}){more}"

    def _repr_latex_(self) -> str:
        from einderiv.render.latex import display_latex, to_latex
        return display_latex(to_latex(self))


def symbolic_hessian(program: Program | str, wrt: str, wrt2: str | None = None, of: str | None = None) -> Hessian:
    """The Hessian ``d²of / d wrt d wrt2`` in index form (``wrt2`` defaults to ``wrt``).

    Free Kronecker deltas show where the Hessian is structurally diagonal:

    >>> print(symbolic_hessian("R[n,j] = X[n,i] W[i,j] - Y[n,j]; L = R[n,j]^2", "W"))
    d²L/dW[a,b]dW[c,d] = 2 X[n,a] X[n,c] δ[b,d]
    """
    program = as_program(program)
    of = program.resolve_output(of)
    wrt2 = wrt if wrt2 is None else wrt2
    _check_input(program, wrt)
    _check_input(program, wrt2)
    if of not in program.names:
        _check_scalar_output(program, of)
        out = wrt_slots(program, wrt)
        return Hessian(of, wrt, wrt2, out, wrt_slots(program, wrt2, out), ir.ZERO, ())
    h = hessian_program(program, of, wrt, wrt2, display_inline)
    chain = tuple((s.name, s.lhs, _display_order(s.rhs)) for s in h.gradient) + \
        tuple((s.name, s.indices, _display_order(s.expr)) for s in h.second)
    expr = _display_order(h.expr)
    named = [ir.ref(innermost(name), ()) for name, _, _ in chain]      # a line d(dL/dx)/dL_1 names L_1
    definitions = temporaries_used(program, [e for _, _, e in chain] + [expr] + named)
    return Hessian(of, wrt, wrt2, h.out, h.slots, expr, chain, definitions,
                   size_sources(program, [e for _, _, e in chain] + [expr]))


def _display_order(expr: Expr) -> Expr:
    """Each term written for reading: equal factors collected into powers, then tensors
    first, calls and powers next, deltas and sizes last.

    ``y[n] y[n]`` becomes ``y[n]^2`` and ``u u^2`` becomes ``u^3``: the value never
    changes, only how the product is written; the sort is stable.
    """
    def rank(factor: Factor) -> int:
        return 0 if isinstance(factor, Ref) else 2 if isinstance(factor, (Delta, Size)) else 1
    collected = (collect_powers(t) for t in expr.terms)
    return Expr(tuple(Term(t.coeff, t.summed, tuple(sorted(t.factors, key=rank))) for t in collected))


# ---------------------------------------------------------------- numbers

def _prepare(program: Program, of: str, names: Sequence[str], inputs: Inputs, sizes):
    """Checked arrays for the statements ``of`` needs and the inputs ``names``."""
    for name in names:
        _check_input(program, name)
    _check_scalar_output(program, of)
    order, needed = plans.requested(program, of, tuple(dict.fromkeys(names)))
    arrays = plans.check_inputs(program, inputs, needed)
    return order, arrays, plans.sizes_cache_key(sizes)


def _gradient_source(name: str) -> str:
    """The tensor whose gradient the gradient program's statement ``name`` computes."""
    source = gradient_of(name)
    if source is None:
        raise ValueError(f"'{name}' is not a gradient statement")
    return source


def _statement_steps(statements: Sequence[Statement], ctx: Context) -> tuple[list[tuple[str, Callable]], Context]:
    """Compiled gradient-program statements, and the context that knows their shapes."""
    derived = DerivedProgram(tuple(DerivedStatement(s.name, _gradient_source(s.name), s.lhs, s.rhs) for s in statements),
                             (), ())
    return plans.derived_steps(derived, ctx)


def hessian(program: Program | str, wrt: str, inputs: Inputs, *, wrt2: str | None = None, of: str | None = None,
            sizes: Mapping[str, int] | None = None, memory_limit: int | None = None,
            symmetric: Sequence[str] = ()) -> np.ndarray:
    """The Hessian ``d²of / d wrt d wrt2`` of a scalar output, of shape ``shape(wrt) + shape(wrt2)``.

    ``wrt2`` defaults to ``wrt``; a different input gives a mixed block. The
    symbolic Hessian (:func:`symbolic_hessian`) is planned like any derivative:
    free deltas become writes into diagonal views of a zeroed array. Refuses
    (:class:`MemoryLimitError`) above ``memory_limit`` bytes (default 2 GiB).
    An input named in ``symmetric`` has its axes projected by ``sym`` on each side
    (``P H P``, see :mod:`einderiv.numeric.symmetric`).

    >>> import numpy as np
    >>> hessian("L = x[i] x[i] y", "x", {"x": np.ones(2), "y": 3.0}).tolist()
    [[6.0, 0.0], [0.0, 6.0]]
    >>> hessian("L = x[i] x[i] y", "x", {"x": np.ones(2), "y": 3.0}, wrt2="y").tolist()
    [2.0, 2.0]
    """
    call_key = fast_path.call_key("hessian", program, (wrt, wrt2), of, sizes, memory_limit, symmetric, inputs)
    fast = fast_path.run_remembered(call_key, inputs)
    if fast is not None:
        results, (name,), _ = fast
        return results[name]
    program = as_program(program)
    of = program.resolve_output(of)
    wrt2 = wrt if wrt2 is None else wrt2
    sym = _symmetric.symmetric_names(program, symmetric)
    if sym:     # P H P: sym on the first input's axes, then on the second's
        _symmetric.check_inputs(sym, inputs)
        H = hessian(program, wrt, inputs, wrt2=wrt2, of=of, sizes=sizes, memory_limit=memory_limit)
        H = _symmetric.sym(H, 0) if wrt in sym else H
        return _symmetric.sym(H, program.rank(wrt)) if wrt2 in sym else H
    order, arrays, sizes_key = _prepare(program, of, [wrt, wrt2], inputs, sizes)
    memory_limit = plans.checked_memory_limit(memory_limit)
    key = ("hessian", program.text, of, wrt, wrt2, plans.signature(arrays), sizes_key, memory_limit)

    def build() -> plans.Plan:
        ctx = plans.plan_context(program, arrays, sizes_key, order, memory_limit,
                           "use hvp, which never builds the Hessian")
        what = f"the Hessian d²{of}/d{wrt}d{wrt2}"
        out = wrt_slots(program, wrt)
        if of not in program.names:
            return plans.Plan((), ((of, compile_expr(ir.ZERO, out + wrt_slots(program, wrt2, out), ctx, what)),))
        h = hessian_program(program, of, wrt, wrt2, _hessian_inline)
        steps = plans.forward_steps(program, [s.name for s in h.forward], ctx)
        gradient_steps, ctx = _statement_steps(h.gradient, ctx)
        second_steps, ctx = plans.derived_steps(DerivedProgram(h.second, (), ()), ctx)
        result = compile_expr(h.expr, h.indices, ctx, what)
        return plans.Plan(tuple(steps + gradient_steps + second_steps), ((of, result),))

    value = plans.run(plans.cached(key, build), dict(arrays))[of]
    if call_key is not None and not program.warnings:
        fast_path.remember(call_key, arrays, {}, key, of, inputs, None, (of,), True)
    return value


def hvp(program: Program | str, wrt: str, inputs: Inputs, vector: ArrayLike | Mapping[str, ArrayLike], *,
        of: str | None = None, sizes: Mapping[str, int] | None = None,
        memory_limit: int | None = None, symmetric: Sequence[str] = ()) -> np.ndarray:
    """The Hessian–vector product ``Σ_b d²of/d wrt[a] d wrt[b] · vector[b]``, shaped like ``wrt``.

    Forward mode over the gradient program: the directional derivative of the
    gradient along ``vector``; the Hessian is never built. ``vector`` may also
    map input names to tangents (``{"V": v}``), giving ``Σ_V (d²of/d wrt dV) · v``.
    With ``symmetric``, tangents and the result of symmetric inputs are projected by ``sym``.

    >>> import numpy as np
    >>> hvp("L = x[i] A[i,j] x[j]", "x", {"x": np.ones(2), "A": [[1., 2.], [3., 4.]]}, [1., 0.]).tolist()
    [2.0, 5.0]
    """
    program = as_program(program)
    of = program.resolve_output(of)
    tangents = dict(vector) if isinstance(vector, Mapping) else {wrt: vector}
    sym = _symmetric.symmetric_names(program, symmetric)
    if sym:     # P H P v: the symmetric part of each tangent in, the symmetric part of the result out
        _symmetric.check_inputs(sym, inputs)
        result = hvp(program, wrt, inputs, _symmetric.project_tangents(sym, tangents), of=of, sizes=sizes,
                     memory_limit=memory_limit)
        return _symmetric.sym(result, 0) if wrt in sym else result
    if not tangents:
        raise ShapeError("vector must be an array shaped like the input, or map input names to such arrays")
    sources = tuple(tangents)
    order, arrays, sizes_key = _prepare(program, of, [wrt, *sources], inputs, sizes)
    tangent_arrays = {}
    for name in sources:
        t = plans.as_array(name, tangents[name], "vector")
        if t.shape != arrays[name].shape:
            raise ShapeError(f"the vector for '{name}' has shape {t.shape} but '{name}' has shape {arrays[name].shape}")
        tangent_arrays[tangent_name(name)] = t
    tangent_arrays = plans.extras_like(arrays, tangent_arrays)
    memory_limit = plans.checked_memory_limit(memory_limit)
    key = ("hvp", program.text, of, wrt, sources, plans.signature(arrays), plans.signature(tangent_arrays),
           sizes_key, memory_limit)

    def build() -> plans.Plan:
        ctx = plans.plan_context(program, arrays, sizes_key, order, memory_limit, "use smaller arrays")
        ctx = plans.with_shapes(ctx, {n: a.shape for n, a in tangent_arrays.items()})
        target = wrt_slots(program, wrt)
        what = f"the Hessian–vector product of d{of}/d{wrt}"
        if of not in program.names:
            return plans.Plan((), ((of, compile_expr(ir.ZERO, target, ctx, what)),))
        grad = gradient_program(program, of, wrt)
        seeds = {}
        for n in sources:
            slots = wrt_slots(program, n)
            seeds[n] = (slots, ir.ref(tangent_name(n), slots))
        derived = forward_program(grad.statements, grad.name, sources, seeds)
        (_, _, expr), = derived.results
        table = {s.name: s for s in grad.statements}
        needed = _closure(table, [s.expr for s in derived.statements] + [expr])
        forward = [s.name for s in grad.statements[:grad.forward] if s.name in needed]
        steps = plans.forward_steps(program, forward, ctx)
        gradient_steps, ctx = _statement_steps([s for s in grad.statements[grad.forward:] if s.name in needed], ctx)
        tangent_steps, ctx = plans.derived_steps(derived, ctx)
        result = compile_expr(expr, grad.result.lhs, ctx, what)
        return plans.Plan(tuple(steps + gradient_steps + tangent_steps), ((of, result),))

    env = dict(arrays)
    env.update(tangent_arrays)
    return plans.run(plans.cached(key, build), env)[of]

