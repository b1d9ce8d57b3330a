"""Derivatives of the matrix functions ``inv``, ``det`` and ``logdet``.

    d inv(M)[p,q] = - inv(M)[p,r] dM[r,c] inv(M)[c,q]      (d(M⁻¹) = -M⁻¹ dM M⁻¹)
    d det(M)      = det(M) inv(M)[c,r] dM[r,c]            (Jacobi's formula)
    d logdet(M)   = inv(M)[c,r] dM[r,c]                   (d log det M = tr(M⁻¹ dM))
"""

from __future__ import annotations

from typing import Callable

from einderiv.core import ir
from einderiv.core.ir import Expr, MatFn, Term
from einderiv.core.matrix_functions import batch_of
from einderiv.names import fresh_variant


def _names_in(expr: Expr) -> set[str]:
    names: set[str] = set()
    for term in expr.terms:
        names |= ir._all_names_of(term)
    return names


def partial_factor(factor: MatFn, name: str, slots: tuple[str, ...],
                   partial: Callable[[Expr, str, tuple[str, ...]], Expr]) -> Expr:
    """``∂ fn(M) / ∂ name[slots]`` by the chain rule through ``dM = ∂M/∂name[slots]``.

    ``d(M⁻¹) = -M⁻¹ dM M⁻¹``; ``d det M = det M tr(M⁻¹ dM)``; ``d log|det M| = tr(M⁻¹ dM)``.

    >>> from einderiv.core.simplify import simplify
    >>> from einderiv.language.printing import format_expr
    >>> from einderiv.core.matrix_functions import make
    >>> (f,) = make("logdet", ir.ref("A", ("i", "j")), "i", "j", ()).terms[0].factors
    >>> format_expr(simplify(partial_factor(f, "A", ("a", "b"), _partial)))
    'inv(A)[b,a]'
    """
    d_arg = partial(factor.arg, name, slots)
    if not d_arg.terms:
        return ir.ZERO
    taken = _names_in(d_arg) | _names_in(factor.arg) | set(factor.indices) | set(slots) | {factor.rows, factor.cols}
    r = fresh_variant(factor.rows, taken)
    c = fresh_variant(factor.cols, taken | {r})
    d_matrix = ir.rename(d_arg, {factor.rows: r, factor.cols: c})

    batch = batch_of(factor)

    def inverse(p: str, q: str) -> Expr:
        return Expr((Term(1.0, (), (MatFn("inv", factor.arg, factor.rows, factor.cols, batch + (p, q)),)),))

    if factor.fn == "inv":
        p, q = factor.indices[-2:]
        return ir.neg(ir.summation((r, c), ir.mul(inverse(p, r), d_matrix, inverse(c, q))))
    trace = ir.summation((r, c), ir.mul(inverse(c, r), d_matrix))
    if factor.fn == "det":
        return ir.mul(Expr((Term(1.0, (), (factor,)),)), trace)
    return trace


def _partial(expr: Expr, name: str, slots: tuple[str, ...]) -> Expr:
    from einderiv.calculus.differentiation import partial
    return partial(expr, name, slots)
