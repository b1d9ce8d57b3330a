"""Numbers of the matrix functions: each distinct matrix evaluated and factored once per run.

``inv(A)[i,j] x[j]`` is a solve, never an explicit inverse, unless the inverse
was needed anyway (then it is a product with it). A plan that needs the inverse
forms it first and multiplies by it for every solve of the same matrix; numpy
exposes no reusable LU factors, so otherwise each solve is its own LAPACK call,
and the determinant one more. An argument symmetric as written
(``X[k,i] X[k,j]``) takes its determinant from a Cholesky factor when it is
positive definite. A singular matrix raises :class:`SingularMatrixError` naming
it; a badly conditioned one warns (:class:`EinderivWarning`) with its condition number.

>>> from einderiv import evaluate
>>> float(evaluate("L = logdet(A)", {"A": [[2.0, 0.0], [0.0, 3.0]]}))  # doctest: +ELLIPSIS
1.79175...
"""

from __future__ import annotations

import warnings
from typing import Callable, Mapping

import numpy as np

from einderiv.core import ir
from einderiv.core.ir import MatFn, Ref, Term
from einderiv.core.matrix_functions import bare_name, batch_of, is_symmetric
from einderiv.errors import EinderivWarning, ShapeError, SingularMatrixError, UnsupportedError
from einderiv.language.printing import describe_call as describe


class _Factored:
    """One matrix of one run and what has been computed from it (each at most once)."""

    def __init__(self, matrix: np.ndarray, what: str, wants_inverse: bool = False, symmetric: bool = False):
        self.matrix = np.asarray(matrix)
        self.what = what
        self.symmetric = symmetric              # symmetric by construction: try Cholesky for slogdet
        self.wants_inverse = wants_inverse      # the plan forms the inverse anyway: solves multiply by it
        self._inverse: np.ndarray | None = None
        self._slogdet: tuple[np.ndarray, np.ndarray] | None = None
        self._warned = False
        self._checked: bool | None = None

    def _singular(self, detail: str = "") -> SingularMatrixError:
        return SingularMatrixError(f"{self.what} is singular{detail}: it has no inverse "
                                   f"(and logdet would be -inf); check the input or regularise it")

    def _check_condition(self, condition: float, exact: bool) -> None:
        eps = np.finfo(self.matrix.dtype if self.matrix.dtype.kind == "f" else np.float64).eps
        if not np.isfinite(condition) or condition * eps >= 1.0:
            if exact:
                raise self._singular(f" to working precision (condition number {condition:.3g})")
        if condition * np.sqrt(eps) >= 1.0 and not self._warned:
            self._warned = True
            bound = "" if exact else " at least"
            warnings.warn(f"{self.what} is nearly singular: its condition number is{bound} {condition:.3g}, "
                          f"so results may have lost about {int(np.log10(max(condition, 1.0)))} digits",
                          EinderivWarning, stacklevel=2)

    @property
    def checked(self) -> bool:
        """Whether singularity is checked: not for an empty matrix, nor for one with NaN or ±inf
        entries (those propagate, as everywhere in einderiv)."""
        if self._checked is None:
            self._checked = bool(self.matrix.size) and bool(np.isfinite(self.matrix).all())
        return self._checked

    def inverse(self) -> np.ndarray:
        """The inverse (of each matrix of a batch); κ₁ = ‖M‖₁ ‖M⁻¹‖₁ is checked (a batch's largest)."""
        if self._inverse is None:
            try:
                inverse = np.linalg.inv(self.matrix)
            except np.linalg.LinAlgError:
                raise self._singular() from None
            if self.checked:
                norms = np.abs(self.matrix).sum(axis=-2).max(axis=-1) * np.abs(inverse).sum(axis=-2).max(axis=-1)
                self._check_condition(float(np.max(norms)), True)
            inverse.flags.writeable = False    # shared by every use in the run
            self._inverse = inverse
        return self._inverse

    def solve(self, rhs: np.ndarray, transpose: bool) -> np.ndarray:
        """``M⁻¹ rhs`` (``M⁻ᵀ rhs`` when ``transpose``) for ``rhs`` of shape (n, k)."""
        if self.wants_inverse:
            self.inverse()
        if self._inverse is not None:
            return (self._inverse.T if transpose else self._inverse) @ rhs
        try:
            solution = np.linalg.solve(self.matrix.T if transpose else self.matrix, rhs)
        except np.linalg.LinAlgError:
            raise self._singular() from None
        rhs_norm = np.abs(rhs).sum(axis=0).max() if rhs.size else 0.0
        if self.checked and np.isfinite(rhs_norm) and rhs_norm > 0:
            # ‖M‖ ‖M⁻¹b‖ / ‖b‖ is a lower bound of the condition number
            bound = np.abs(self.matrix).sum(axis=0 if not transpose else 1).max() * \
                np.abs(solution).sum(axis=0).max() / rhs_norm
            self._check_condition(float(bound), False)
        return solution

    def slogdet(self) -> tuple[np.ndarray, np.ndarray]:
        """``(sign, log|det|)`` (arrays over a batch)."""
        if self._slogdet is None:
            factor = self._cholesky() if self.symmetric and self.checked else None
            if factor is not None:      # log det = 2 Σ log L[i,i]: half the flops of an LU
                logabs = 2.0 * np.sum(np.log(np.diagonal(factor, axis1=-2, axis2=-1)), axis=-1)
                sign = np.ones_like(logabs)
            else:
                with np.errstate(invalid="ignore"):
                    sign, logabs = np.linalg.slogdet(self.matrix)
            if self.checked and (np.any(sign == 0) or not np.all(np.isfinite(logabs))):
                where = np.argwhere((sign == 0) | ~np.isfinite(logabs))
                at = f" (matrix {tuple(int(k) for k in where[0])} of the batch)" if np.ndim(sign) else ""
                raise self._singular(at)
            self._slogdet = (np.asarray(sign), np.asarray(logabs))
        return self._slogdet

    def _cholesky(self) -> np.ndarray | None:
        """The Cholesky factor, or None when the (symmetric) matrix is not positive definite."""
        try:
            return np.linalg.cholesky(self.matrix)
        except np.linalg.LinAlgError:
            return None


def _matrix(factor: MatFn, ctx, compile_expr: Callable, index_size: Callable, inverse: bool = False) -> Callable:
    """env → the run's :class:`_Factored` of the factor's matrix (computed at its first use).

    ``inverse``: this use needs the explicit inverse. The plan notes it (``ctx.matrices``,
    one dict per plan), so that every solve of the same matrix in the plan multiplies by
    that inverse instead of factoring the matrix again.
    """
    what = describe(factor)
    n, m = index_size(factor.rows, ctx), index_size(factor.cols, ctx)
    if n != m:
        name = bare_name(factor)
        matrix = f"'{name}'" if name is not None else f"its argument {describe(factor)[len(factor.fn):]}"
        raise ShapeError(f"{factor.fn}(...) needs a square matrix, but {matrix} is {n}×{m}")
    batch = batch_of(factor)
    if len(set(batch)) != len(batch) or set(batch) & set(factor.indices[len(batch):]):
        raise UnsupportedError(f"{what} with a batch index equal to another of its indices (a diagonal over the "
                               f"batch) is not supported; compute the batch in its own statement first")
    run = compile_expr(factor.arg, batch + (factor.rows, factor.cols), ctx, f"the argument of {what}")
    key = ("einderiv.matrix", factor.arg, factor.rows, factor.cols)
    subject = f"'{bare_name(factor)}'" if bare_name(factor) is not None else f"the matrix of {what}"
    notes = getattr(ctx, "matrices", {})
    symmetric = is_symmetric(factor)
    if inverse:
        notes[key] = "inverse"

    def factored(env: Mapping) -> _Factored:
        found = env.get(key) if isinstance(env, dict) else None
        if found is None:
            found = _Factored(run(env), subject, notes.get(key) == "inverse", symmetric)
            if isinstance(env, dict):
                env[key] = found
        return found
    return factored


def compile_factor(factor: MatFn, ctx, compile_expr: Callable, index_size: Callable):
    """``(runner, indices)``: the factor's value over its distinct free indices."""
    factored = _matrix(factor, ctx, compile_expr, index_size, inverse=factor.fn == "inv")
    indices = tuple(dict.fromkeys(factor.indices))
    dtype = ctx.dtype
    if factor.fn == "inv":
        if len(indices) < len(factor.indices):      # inv(A)[i,i]: the diagonal of the inverse
            return (lambda env: np.diagonal(factored(env).inverse(), axis1=-2, axis2=-1).copy()), indices
        return (lambda env: factored(env).inverse()), indices
    if factor.fn == "det":
        def det(env):
            sign, logabs = factored(env).slogdet()
            return np.asarray(sign * np.exp(logabs), dtype)
        return det, indices
    return (lambda env: np.asarray(factored(env).slogdet()[1], dtype)), indices


def solve_operands(term: Term, target: tuple[str, ...], ctx, compile_expr: Callable, index_size: Callable):
    """``(factors left, operands)``: each ``inv(M)[p,q] X[…q…]`` summed over ``q`` becomes one solve.

    ``Σ_q inv(M)[p,q] X[q,k]`` is ``solve(M, X)[p,k]`` and ``Σ_p X[p,k] inv(M)[p,q]``
    is ``solve(Mᵀ, X)[q,k]``: the inverse is never formed for them. Only when the
    summed index occurs in just those two factors and ``X`` is a tensor reference.
    """
    counts: dict[str, int] = {}
    for factor in term.factors:
        for index in ir.factor_indices(factor):
            counts[index] = counts.get(index, 0) + 1
    left = list(term.factors)
    operands = []
    for factor in term.factors:
        if not (isinstance(factor, MatFn) and factor.fn == "inv" and len(factor.indices) == 2
                and len(set(factor.indices)) == 2):
            continue
        p, q = factor.indices
        for other in left:
            if not isinstance(other, Ref) or len(set(other.indices)) != len(other.indices):
                continue
            for summed, kept, transpose in ((q, p, False), (p, q, True)):
                if summed in term.summed and summed not in target and counts.get(summed) == 2 \
                        and summed in other.indices and kept not in other.indices:
                    operands.append(_solve(factor, other, summed, kept, transpose, ctx, compile_expr, index_size))
                    left.remove(factor)
                    left.remove(other)
                    break
            else:
                continue
            break
    return tuple(left), operands


def _solve(factor: MatFn, other: Ref, summed: str, kept: str, transpose: bool, ctx, compile_expr, index_size):
    factored = _matrix(factor, ctx, compile_expr, index_size)
    axis = other.indices.index(summed)
    name = other.name
    rest = tuple(i for i in other.indices if i != summed)

    def solve(env):
        x = np.moveaxis(np.asarray(env[name]), axis, 0)
        y = factored(env).solve(x.reshape(x.shape[0], -1), transpose)
        return y.reshape(x.shape)
    return solve, (kept,) + rest
