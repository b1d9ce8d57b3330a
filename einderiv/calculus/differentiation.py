"""Derivative rules and the chain rule over statements.

:func:`partial` differentiates one expression with respect to a tensor entry
``T[slots]``, one rule per node type:

* reference — ``∂ T[x,y] / ∂ T[a,b] = δ[x,a] δ[y,b]`` (fresh slot indices);
* product — ``∂(f g) = ∂f g + f ∂g`` (factors keep their order);
* call — the chain rule through the function table: ``∂ f(u) = f'(u) ∂u``;
* power — ``∂ u^p = p u^(p-1) ∂u`` for constant ``p``, else
  ``u^p (log(u) ∂p + p u^-1 ∂u)``;
* deltas, sizes and constants differentiate to zero; sums are linear.

:func:`reverse_program` runs the chain rule backwards over statements (reverse
mode): the adjoint of each statement is the sum of the contributions of the
statements that use it, ``g_T[t] = Σ_S Σ_s g_S[s] ∂S[s]/∂T[t]``, each
simplified (deltas eliminated) as it is formed. :func:`forward_program` pushes
tangents forwards the same way. Each adjoint or tangent is either inlined into
its consumers (when small: a rename, a delta, a single short product) or kept
as a named intermediate, so the work is linear in the program's length.

>>> from einderiv.core import ir
>>> e = ir.mul(ir.ref("W", ["i", "j"]), ir.ref("X", ["j", "k"]))
>>> [type(f).__name__ for f in partial(e, "W", ("a", "b")).terms[0].factors]
['Delta', 'Delta', 'Ref']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from einderiv.core import ir

from einderiv.calculus import matrix_rules
from einderiv.names import adjoint_name, slot_index, tangent_name
from einderiv.core.functions import FUNCTIONS
from einderiv.core.ir import Call, Delta, Expr, Factor, Ref, Size, Term
from einderiv.language.lowering import Statement, dependencies
from einderiv.core.simplify import simplify

__all__ = [
    "partial", "DerivedStatement", "DerivedProgram", "reverse_program", "forward_program",
    "numeric_inline", "display_inline", "slot_indices", "adjoint_name", "tangent_name",
]

InlinePolicy = Callable[[Expr, int], bool]


def slot_indices(tensor: str, rank: int, names: Sequence[str]) -> tuple[str, ...]:
    """Fresh indices for the axes of ``tensor``; their sizes are its axes' sizes."""
    return tuple(slot_index(names[axis], tensor, axis) for axis in range(rank))


# ---------------------------------------------------------------- one expression

def partial(expr: Expr, name: str, slots: tuple[str, ...]) -> Expr:
    """``∂ expr / ∂ name[slots]``, unsimplified; ``slots`` must be fresh."""
    return ir.add(*(_partial_term(t, name, slots) for t in expr.terms))


def _partial_term(term: Term, name: str, slots: tuple[str, ...]) -> Expr:
    pieces = []
    for k, factor in enumerate(term.factors):
        d = _partial_factor(factor, name, slots)
        if not d.terms:
            continue
        before = Expr((Term(1.0, (), term.factors[:k]),))
        after = Expr((Term(1.0, (), term.factors[k + 1:]),))
        pieces.append(ir.mul(before, d, after))
    return ir.summation(term.summed, ir.scale(ir.add(*pieces), term.coeff))


def _partial_factor(factor: Factor, name: str, slots: tuple[str, ...]) -> Expr:
    if isinstance(factor, Ref):
        if factor.name != name:
            return ir.ZERO
        return ir.mul(*(ir.delta(x, a) for x, a in zip(factor.indices, slots)))
    if isinstance(factor, (Delta, Size)):
        return ir.ZERO
    if isinstance(factor, ir.MatFn):
        return matrix_rules.partial_factor(factor, name, slots, partial)
    if isinstance(factor, Call):
        rule = FUNCTIONS[factor.fn]
        pieces = []
        for arg, outer in zip(factor.args, rule.partials(*factor.args)):
            inner = partial(arg, name, slots)
            if inner.terms and outer.terms:
                pieces.append(ir.mul(outer, inner))
        return ir.add(*pieces)
    base, exponent = factor.base, factor.exponent
    d_base = partial(base, name, slots)
    if not ir.depends_on(exponent, name):
        if not d_base.terms:
            return ir.ZERO
        lowered = ir.add(exponent, ir.const(-1.0))
        return ir.mul(exponent, ir.power(base, lowered), d_base)
    d_exponent = partial(exponent, name, slots)
    inner = ir.add(ir.mul(ir.call("log", [base]), d_exponent),
                   ir.mul(exponent, ir.power(base, ir.const(-1.0)), d_base))
    return ir.mul(Expr((Term(1.0, (), (factor,)),)), inner)


# ---------------------------------------------------------------- policies

def _heavy(term: Term) -> list[Factor]:
    return [f for f in term.factors if not isinstance(f, (Delta, Size))]


def numeric_inline(expr: Expr, consumers: int) -> bool:
    """Inline an adjoint/tangent for evaluation when that costs nothing.

    A rename, a scaling or a delta is always inlined (no copy is made). A short
    product that carries free deltas (a Jacobian's adjoint) is inlined into its
    only consumer, since materializing it would spell out the deltas; any other
    product is computed once, so each step stays a one- or two-operand BLAS or
    elementwise call.
    """
    if len(expr.terms) != 1:
        return not expr.terms
    term = expr.terms[0]
    heavy = _heavy(term)
    if len(heavy) <= 1 and all(isinstance(f, Ref) for f in heavy):
        return True
    has_delta = any(isinstance(f, Delta) for f in term.factors)
    return has_delta and consumers <= 1 and len(heavy) <= 3


def display_inline(expr: Expr, consumers: int) -> bool:
    """Inline for display while the expression stays short."""
    return len(expr.terms) <= 4 and all(len(t.factors) <= 8 for t in expr.terms)


# ---------------------------------------------------------------- programs

@dataclass(frozen=True)
class DerivedStatement:
    """A named intermediate of a derived program: ``name[indices] = expr``."""

    name: str
    of: str
    indices: tuple[str, ...]
    expr: Expr


@dataclass(frozen=True)
class DerivedProgram:
    """Adjoint (reverse) or tangent (forward) statements and the requested results.

    ``results`` maps each requested tensor to (target indices, expression);
    ``forward`` lists the program statements whose values the statements need.
    """

    statements: tuple[DerivedStatement, ...]
    results: tuple[tuple[str, tuple[str, ...], Expr], ...]
    forward: tuple[str, ...]


def _active(statements: Mapping[str, Statement], order: list[str], sources: Sequence[str]) -> set[str]:
    """Tensors that depend on any of ``sources`` (the sources included)."""
    active = set(sources)
    for name in order:
        if any(t in active for t in ir.tensor_names(statements[name].rhs)):
            active.add(name)
    return active


def _positions(statements: Mapping[str, Statement], tensor: str,
               slots: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    return statements[tensor].lhs if tensor in statements else slots[tensor]


def reverse_program(statements: Sequence[Statement], of: str, wrts: Sequence[str],
                    slots: Mapping[str, tuple[str, ...]], seed: Expr, extra: tuple[str, ...] = (),
                    inline: InlinePolicy = numeric_inline) -> DerivedProgram:
    """The adjoint program of ``of`` with respect to ``wrts``.

    ``seed`` is the adjoint of ``of`` over ``extra + lhs(of)``: ``1`` for a
    gradient, a cotangent reference for a VJP, deltas for a full Jacobian.
    ``slots`` names the axes of each input in ``wrts``.
    """
    table = {s.name: s for s in statements}
    order = list(dependencies(statements, [of]))
    active = _active(table, order, wrts)
    contributions: dict[str, list[Expr]] = {}
    emitted: list[DerivedStatement] = []
    for name in reversed(order):
        if name not in active:
            continue
        statement = table[name]
        g = seed if name == of else simplify(ir.add(*contributions.get(name, [])))
        users = [t for t in ir.tensor_names(statement.rhs) if t in active]
        if inline(g, len(users)):
            g_ref = g
        else:
            emitted.append(DerivedStatement(adjoint_name(name), name, extra + statement.lhs, g))
            g_ref = ir.ref(adjoint_name(name), extra + statement.lhs)
        for tensor in users:
            pos = _positions(table, tensor, slots)
            piece = ir.summation(statement.lhs, ir.mul(g_ref, partial(statement.rhs, tensor, pos)))
            contributions.setdefault(tensor, []).append(simplify(piece))
    results = []
    for w in wrts:
        if w == of:
            results.append((w, extra + slots[w], seed if of not in table else ir.ZERO))
            continue
        results.append((w, extra + slots[w], simplify(ir.add(*contributions.get(w, [])))))
    return DerivedProgram(tuple(emitted), tuple(results), tuple(order))


def forward_program(statements: Sequence[Statement], of: str, sources: Sequence[str],
                    tangents: Mapping[str, tuple[tuple[str, ...], Expr]],
                    inline: InlinePolicy = numeric_inline) -> DerivedProgram:
    """The tangent program: ``d of`` given the tangent expression of each source input.

    ``tangents[W]`` is ``(slots(W), expression)``: the tangent over the positions of W (and any
    extra indices).
    """
    table = {s.name: s for s in statements}
    order = list(dependencies(statements, [of]))
    active = _active(table, order, sources)
    users_of: dict[str, int] = {}
    for name in order:
        for used in ir.tensor_names(table[name].rhs):
            users_of[used] = users_of.get(used, 0) + 1
    current: dict[str, tuple[tuple[str, ...], Expr]] = dict(tangents)
    emitted: list[DerivedStatement] = []
    for name in order:
        if name not in active:
            continue
        statement = table[name]
        pieces = []
        for tensor in ir.tensor_names(statement.rhs):
            if tensor not in current:
                continue
            pos, t_expr = current[tensor]
            pieces.append(ir.summation(pos, ir.mul(partial(statement.rhs, tensor, pos), t_expr)))
        tangent = simplify(ir.add(*pieces))
        if name == of or inline(tangent, users_of.get(name, 0)):
            current[name] = (statement.lhs, tangent)
        else:
            extra = tuple(i for i in ir.free_indices(tangent) if i not in statement.lhs)
            emitted.append(DerivedStatement(tangent_name(name), name, extra + statement.lhs, tangent))
            current[name] = (statement.lhs, ir.ref(tangent_name(name), extra + statement.lhs))
    result = current[of][1] if of in current else ir.ZERO
    return DerivedProgram(tuple(emitted), ((of, (), result),), tuple(order))
