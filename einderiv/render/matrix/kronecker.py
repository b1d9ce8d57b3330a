"""Kronecker (vec) forms: the Jacobian of a linear map between matrices as one matrix.

With ``vec`` stacking columns, ``vec(A W B) = (Bᵀ ⊗ A) vec(W)``: a Jacobian
term whose factors split into a part linking the first axes of F and W and a
part linking their second axes is a Kronecker product; an elementwise map
gives ``diag(vec(M))``. Identities are written ``I_m``, subscripted by size.

>>> from einderiv import parse
>>> print(kronecker_form(parse("F[i,k] = W[i,j] X[j,k]").derivative("W"), labels={"i": "m"}))
Xᵀ ⊗ I_m
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterable, Mapping

from einderiv.calculus.program import Derivative
from einderiv.core import ir
from einderiv.core.ir import Delta, Expr, Factor, Term
from einderiv.render.matrix.convert import Ctx, convert_expr, convert_term, inline_chain, to_matrix, unwrap
from einderiv.render.matrix.evaluate import size_table
from einderiv.render.matrix.factor import factor_sum, tidy
from einderiv.render.matrix.form import MatrixForm
from einderiv.render.matrix.nodes import (Identity, Kron, Node, NoForm, Sum, TermNode, VecDiag, as_term, is_one, ones,
                                          ones_row, product)

__all__ = ["kronecker_matrix", "kronecker_form", "identities_of"]


def kronecker_matrix(derivative: Derivative, labels: Mapping[str, str] | None = None) -> MatrixForm | None:
    """``d vec(F) / d vec(W)`` (column-major vec) as a matrix expression, or None.

    Each term of the Jacobian must split into a part linking the first axes of
    F and W and a part linking their second axes: ``A[i,a] B[b,k]`` is
    ``Bᵀ ⊗ A`` (``vec(A W B) = (Bᵀ ⊗ A) vec(W)``); an elementwise map gives
    ``diag(vec(M))``. Identities are subscripted by ``labels`` (index name →
    size label), or by the index name.

    >>> from einderiv import parse
    >>> print(kronecker_matrix(parse("Y[i,l] = A[i,j] X[j,k] B[k,l]").derivative("X")))
    Bᵀ ⊗ A
    """
    out, wrt = derivative.out_indices, derivative.wrt_indices
    if not out or len(out) > 2 or len(wrt) > 2:
        return None
    if len(out) + len(wrt) <= 2:   # the Jacobian is already a matrix (or vector)
        form = to_matrix(derivative)
        return None if form is None else replace(form, node=_label(form.node, labels))
    try:
        expr = inline_chain(derivative)
        sizes = size_table(expr, {}, out + wrt)
    except NoForm:
        return None
    for o, w in _placements(out, wrt):
        try:
            terms = [_kron_term(t, o, w) for t in expr.terms]
        except NoForm:
            continue
        node: Node = unwrap(terms[0]) if len(terms) == 1 else factor_sum(Sum(None, None, tuple(terms)))
        return MatrixForm(_label(tidy(node), labels), "vec", out + wrt, sizes)
    return None


#: The indices a side's rows and columns run over (None: an axis of length one).
_Axes = tuple[str | None, str | None]


def _placements(out: tuple[str, ...], wrt: tuple[str, ...]) -> list[tuple[_Axes, _Axes]]:
    """Ways to see each side as a matrix: a vector may be a column or a row."""
    def ways(indices: tuple[str, ...]) -> list[_Axes]:
        if len(indices) == 2:
            return [indices]
        return [(indices[0], None), (None, indices[0])]
    return [(o, w) for o in ways(out) for w in ways(wrt)]


def _connected_groups(factors: Iterable[Factor]) -> list[tuple[set[str], list[Factor]]]:
    """The factors grouped by shared indices (connected components), with each group's indices."""
    groups: list[set[str]] = []
    factor_groups: list[list[Factor]] = []
    for f in factors:
        idx = set(ir.factor_indices(f))
        merged = [k for k, g in enumerate(groups) if g & idx]
        new_idx, new_f = set(idx), [f]
        for k in reversed(merged):
            new_idx |= groups.pop(k)
            new_f = factor_groups.pop(k) + new_f
        groups.append(new_idx)
        factor_groups.append(new_f)
    return list(zip(groups, factor_groups))


def _summed_over(term: Term, factors: list[Factor]) -> tuple[str, ...]:
    """The term's summed indices that occur in ``factors``."""
    return tuple(s for s in term.summed if any(s in ir.factor_indices(f) for f in factors))


def _kron_term(term: Term, out: _Axes, wrt: _Axes) -> TermNode:
    """A Jacobian term as ``B ⊗ A``: A links the first axes of F and W, B the second (or ``diag(vec(M))``)."""
    (o0, o1), (w0, w1) = out, wrt
    first = {i for i in (o0, w0) if i is not None}
    second = {i for i in (o1, w1) if i is not None}
    a_factors: list[Factor] = []
    b_factors: list[Factor] = []
    scalars: list[Factor] = []
    for idx, fs in _connected_groups(term.factors):
        if idx & first and idx & second:
            return _vecdiag_term(term, out, wrt)
        (a_factors if idx & first else b_factors if idx & second else scalars).extend(fs)

    def part(factors: list[Factor], target: _Axes) -> Node:
        e = Expr((Term(1.0, _summed_over(term, factors), tuple(factors)),))
        return _broadcast(convert_expr(e, target, Ctx({})), target)

    a = part(a_factors, (o0, w0))
    b = part(b_factors, (o1, w1))
    s_node = convert_term(Term(1.0, _summed_over(term, scalars), tuple(scalars)), (None, None), Ctx({}))
    body = a if b.is_scalar and is_one(b) else Kron(None, None, b, a)
    return TermNode(None, None, term.coeff, s_node.scalars, body, s_node.dens)


def _broadcast(node: Node, target: tuple[str | None, str | None]) -> Node:
    """A scalar spread over the target's shape with ones vectors (``1``, ``1ᵀ``, ``1 1ᵀ``)."""
    row, col = target
    if not node.is_scalar or (row is None and col is None):
        return node
    pieces = ([ones(row)] if row is not None else []) + ([ones_row(col)] if col is not None else [])
    spread = product(row, col, pieces)
    return spread if is_one(node) else TermNode(row, col, 1.0, (node,), spread, ())


def _vecdiag_term(term: Term, out: _Axes, wrt: _Axes) -> TermNode:
    """``δ[i,a] δ[k,b] M[a,b]`` → ``diag(vec(M))``."""
    pairs = {(o, w) for o, w in zip(out, wrt) if o is not None and w is not None}
    deltas = [f for f in term.factors if isinstance(f, Delta) and
              ((f.first, f.second) in pairs or (f.second, f.first) in pairs)]
    if len(deltas) != len(pairs) or len(pairs) != 2:
        raise NoForm("not a Kronecker product")
    rest = tuple(f for f in term.factors if f not in deltas)
    inner = ir.rename(Expr((Term(1.0, term.summed, rest),)), dict(pairs))
    node = convert_expr(inner, (wrt[0], wrt[1]), Ctx({}))
    if node.is_scalar:
        body: Node = Identity(out[0], wrt[0])
        return TermNode(None, None, term.coeff, (node,) if not is_one(node) else (), body, ())
    return TermNode(None, None, term.coeff, (), VecDiag(None, None, node), ())


def _map_identities(node: Node, fn: Callable[[Identity], Node]) -> Node:
    """``node`` with ``fn`` applied to its identities: operands of ``⊗``, bodies of terms, terms of sums."""
    if isinstance(node, Identity):
        return fn(node)
    if isinstance(node, Kron):
        return replace(node, left=_map_identities(node.left, fn), right=_map_identities(node.right, fn))
    if isinstance(node, TermNode):
        return replace(node, body=None if node.body is None else _map_identities(node.body, fn))
    if isinstance(node, Sum):
        return replace(node, terms=tuple(as_term(_map_identities(t, fn)) for t in node.terms))
    return node


def _label(node: Node, labels: Mapping[str, str] | None) -> Node:
    """Subscript every identity with its size label."""
    labels = dict(labels or {})

    def labelled(identity: Identity) -> Identity:
        name = ir.display_name(identity.rows or "")
        return replace(identity, label=str(labels.get(name, name)))
    return _map_identities(node, labelled)


def identities_of(node: Node) -> list[Identity]:
    """The identities of a vec form, as :func:`kronecker_matrix` labels them."""
    found: list[Identity] = []

    def collect(identity: Identity) -> Identity:
        found.append(identity)
        return identity
    _map_identities(node, collect)
    return found


def kronecker_form(derivative: Derivative, labels: Mapping[str, str] | None = None) -> str | None:
    """The text of :func:`kronecker_matrix`, or None.

    >>> from einderiv import parse
    >>> print(kronecker_form(parse("F[i,k] = W[i,j] X[j,k]").derivative("X"), labels={"k": "p"}))
    I_p ⊗ W
    """
    form = kronecker_matrix(derivative, labels)
    return None if form is None else form.text
