"""Matrix functions: ``inv(M)[p,q]``, ``det(M)`` and ``logdet(M)``.

The language (see the README, "Matrix functions"): the argument ``M`` is a
tensor name with two axes (``inv(A)``) or a parenthesised index expression
whose *matrix indices* are its free indices in Einstein's sense — an index
written once in a term is a row or column index, an index written twice in
one term is summed over that term (``inv(X[k,i] X[k,j])[i,j]`` is (XᵀX)⁻¹).
The free indices of all its terms together must be exactly two, and no term
may sum over one of them. Every index inside the argument is local to the
call (as in ``sum[...]``; the same name outside must have the same size).
Rows are the free index written first, unless the indices after ``inv(…)``
are the argument's two free indices: then the argument reads like a statement
with that left side, so ``inv(A[j,i])[i,j]`` is (Aᵀ)⁻¹.

A tensor name may carry leading batch indices: ``inv(C)[b,i,j]``, ``det(C)[b]``
for a three-index ``C`` (the batch indices are the statement's own, free in the
argument ``C[b,row,col]`` too; see :func:`batch_of`).

``logdet(M)`` is ``log |det M|`` (numpy's ``slogdet``): ``log det M`` for a
matrix of positive determinant, and the same derivative ``M⁻ᵀ`` for any
invertible matrix.

Derivatives (:func:`partial_factor`), with ``dM`` the derivative of the argument::

    d inv(M)[p,q] = - inv(M)[p,r] dM[r,c] inv(M)[c,q]      (d(M⁻¹) = -M⁻¹ dM M⁻¹)
    d det(M)      = det(M) inv(M)[c,r] dM[r,c]            (Jacobi's formula)
    d logdet(M)   = inv(M)[c,r] dM[r,c]                   (d log det M = tr(M⁻¹ dM))

so ``∂inv(A)[i,j]/∂A[a,b] = -inv(A)[i,a] inv(A)[b,j]`` once the deltas are gone.

Numerics (:func:`compile_factor`, :func:`solve_operands`): each distinct
matrix is evaluated once per run and kept with what was computed from it (its
inverse, its ``slogdet``); ``inv(A)[i,j] x[j]`` is a solve, never an explicit
inverse, unless the inverse was needed anyway (then it is a product with it).
A plan that needs the inverse forms it first and multiplies by it for every
solve of the same matrix; numpy exposes no reusable LU factors, so otherwise
each solve is its own LAPACK call, and the determinant one more. An argument
symmetric as written (``X[k,i] X[k,j]``) takes its determinant from a Cholesky
factor when it is positive definite.
A singular matrix raises :class:`SingularMatrixError` naming it; a badly
conditioned one warns (:class:`EinderivWarning`) with its condition number.

>>> from einderiv import evaluate
>>> float(evaluate("L = logdet(A)", {"A": [[2.0, 0.0], [0.0, 3.0]]}))  # doctest: +ELLIPSIS
1.79175...
"""

from __future__ import annotations

from einderiv.core import ir
from einderiv.core.ir import MATRIX_FUNCTIONS, Expr, MatFn, Ref, Term
from einderiv.names import matrix_slot

__all__ = ["MATRIX_FUNCTIONS", "make", "batch_of", "bare_name", "is_symmetric"]


def batch_of(factor: MatFn) -> tuple[str, ...]:
    """The leading (batch) indices: those of ``inv(A)[b,i,j]`` before the last two, all of ``det(A)[b]``.

    A batch index is free in the argument too (``A[b,row,col]``); rows and columns are bound.
    """
    return factor.indices[:-2] if factor.fn == "inv" else factor.indices


def make(fn: str, arg: Expr, rows: str, cols: str, indices: tuple[str, ...]) -> Expr:
    """``fn(arg)[indices]`` as an expression; a lone ``A[rows,cols]`` argument becomes the bare form ``fn(A)``.

    >>> e = make("inv", ir.ref("A", ("i", "j")), "i", "j", ("p", "q"))
    >>> e.terms[0].factors[0].rows
    'row@A.0~m'
    """
    indices = tuple(indices)
    batch = indices[:-2] if fn == "inv" else indices
    name = _lone_ref(arg, rows, cols, batch)
    if name is not None:
        rows, cols = matrix_slot("row", name, len(batch)), matrix_slot("col", name, len(batch) + 1)
        arg = ir.ref(name, batch + (rows, cols))
    return Expr((Term(1.0, (), (MatFn(fn, arg, rows, cols, indices),)),))


def _lone_ref(arg: Expr, rows: str, cols: str, batch: tuple[str, ...] = ()) -> str | None:
    if len(arg.terms) != 1:
        return None
    (term,) = arg.terms
    if term.coeff != 1.0 or term.summed or len(term.factors) != 1:
        return None
    (factor,) = term.factors
    if isinstance(factor, Ref) and factor.indices == batch + (rows, cols):
        return factor.name
    return None


def bare_name(factor: MatFn) -> str | None:
    """The tensor name when the argument is a bare name (``inv(A)``), else None."""
    batch = batch_of(factor)
    name = _lone_ref(factor.arg, factor.rows, factor.cols, batch)
    return name if name is not None and factor.rows == matrix_slot("row", name, len(batch)) else None


def is_symmetric(factor: MatFn) -> bool:
    """Whether the argument is symmetric as written: swapping rows and columns gives the same terms.

    >>> gram = ir.summation(("k",), ir.mul(ir.ref("X", ("k", "i")), ir.ref("X", ("k", "j"))))
    >>> is_symmetric(MatFn("logdet", gram, "i", "j", ()))
    True
    """
    from einderiv.core.simplify import simplify, term_key
    swapped = ir.rename(factor.arg, {factor.rows: factor.cols, factor.cols: factor.rows})

    def keys(expr: Expr) -> list[tuple[str, float]]:
        return sorted((term_key(t), t.coeff) for t in simplify(expr).terms)
    return bool(factor.arg.terms) and keys(swapped) == keys(factor.arg)
