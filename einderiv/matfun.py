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

import warnings
from typing import Callable, Mapping

import numpy as np

from . import ir
from .errors import EinderivWarning, ProgramError, ShapeError, SingularMatrixError, UnsupportedError
from .ir import MATRIX_FUNCTIONS, Expr, MatFn, Ref, Term

__all__ = ["MATRIX_FUNCTIONS", "make", "batch_of", "bare_name", "lower_call", "partial_factor", "compile_factor",
           "solve_operands", "describe"]


# ---------------------------------------------------------------- construction

def _slot(name: str, axis: int, which: str) -> str:
    """The bound index of axis ``axis`` (the rows, or one more: the columns) of a bare-name
    argument: its size is that axis' (the
    ``x@T.k`` form), and the ``~m`` variant mark keeps it apart from every slot index the
    derivatives make (``row@A.0``, say, from a user's index ``row``) and from their variants."""
    return f"{which}@{name}.{axis}~m"


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
        rows, cols = _slot(name, len(batch), "row"), _slot(name, len(batch) + 1, "col")
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
    return name if name is not None and factor.rows == _slot(name, len(batch), "row") else None


def describe(factor: MatFn) -> str:
    """``inv(A)`` or ``det(A[i,j] + B[i,j])``: the call as the user would write it, for messages."""
    from .printing import format_expr
    name = bare_name(factor)
    if name is not None:
        return f"{factor.fn}({name})"
    return f"{factor.fn}({format_expr(factor.arg)})"


# ---------------------------------------------------------------- lowering (syntax tree → IR)

def lower_call(node, scope) -> Expr:
    """Lower ``inv(…)[p,q]``, ``det(…)`` or ``logdet(…)`` (a :class:`~einderiv.parsing.CallNode`)."""
    from . import semantics as sem
    from .parsing import Name

    def error(message: str) -> ProgramError:
        return sem._located(ProgramError, message, scope.text, node.line, node.column)

    fn, written = node.fn, tuple(node.indices or ())
    if len(node.args) != 1:
        raise error(f"'{fn}' takes one argument, a square matrix, got {len(node.args)}")
    (arg,) = node.args
    bare = isinstance(arg, Name) and arg.indices is None
    if fn == "inv" and len(written) < 2:
        raise error("inv(...) is a matrix: index it with two indices after the call, as in inv(A)[i,j] "
                    "(or inv(A)[b,i,j] for a batch of matrices)")
    batch_names = written[:-2] if fn == "inv" else written
    if batch_names and not bare:
        example = "inv(A)[b,i,j]" if fn == "inv" else f"{fn}(A)[b]"
        kind = "a matrix: index it with two indices" if fn == "inv" else "a scalar: write no indices after the call"
        raise error(f"{fn}(...) of an expression is {kind}; a batch of matrices ({example}) takes a tensor name: "
                    f"define the expression in a statement first")
    if len(set(batch_names)) != len(batch_names) or set(batch_names) & set(written[len(batch_names):]):
        raise error(f"the batch indices of {fn}(...) must differ from each other and from its row and column indices")
    outer = tuple(scope.index(n) for n in written)
    if bare:
        k = len(batch_names)
        rows, cols = _slot(arg.name, k, "row"), _slot(arg.name, k + 1, "col")
        hidden = ("\0row", "\0col")
        scope.bound = scope.bound + ({hidden[0]: rows, hidden[1]: cols},)
        try:
            matrix = sem._lower_name(Name(arg.name, batch_names + hidden, arg.line, arg.column), scope)
        finally:
            scope.bound = scope.bound[:-1]
        bound_roots = {ir.index_root(rows), ir.index_root(cols)}
        for occurrence in [o for o in scope.occurrences if o.root in bound_roots]:   # no index of the statement
            del scope.occurrences[occurrence]
        for axis, index in enumerate(outer[k:], start=k):
            scope.occurrences.setdefault(sem.Occurrence(ir.index_root(index), arg.name, axis))
        return make(fn, matrix, rows, cols, outer)
    return _lower_expression(node, arg, written, outer, scope, error)


def _occurrences(node, free_names: Callable) -> list[str]:
    """Indices a factor of an argument term shows at its own level, with repeats for a reference."""
    from .parsing import CallNode, Name
    if isinstance(node, Name):
        return list(node.indices or ())
    if isinstance(node, CallNode) and node.fn in MATRIX_FUNCTIONS:
        return list(node.indices or ())
    return sorted(free_names(node, frozenset()))


def _lower_expression(node, arg, outer_names: tuple[str, ...], outer: tuple[str, ...], scope, error) -> Expr:
    from . import semantics as sem
    fn = node.fn
    terms = sem._expand(arg)
    counted: list[dict[str, int]] = []
    free: dict[str, None] = {}
    for _, factors in terms:
        counts: dict[str, int] = {}
        for factor in factors:
            for index in _occurrences(factor, sem._free_names):
                counts[index] = counts.get(index, 0) + 1
        for index, count in counts.items():
            if count > 2:
                raise error(f"index '{index}' is written {count} times in one term of the argument of {fn}(...); "
                            f"inside a matrix argument an index written once is a row or column index and one "
                            f"written twice is summed")
            if count == 1:
                free.setdefault(index)
        counted.append(counts)
    if len(free) != 2:
        listed = ", ".join(f"'{i}'" for i in free) or "none"
        raise error(f"the argument of {fn}(...) must have exactly two free indices (each written once in a term: "
                    f"the rows and the columns); it has {len(free)}: {listed}")
    for counts in counted:
        for index in free:
            if counts.get(index) == 2:
                raise error(f"index '{index}' is a row or column index of the argument of {fn}(...) but is "
                            f"written twice (summed) in one of its terms")
    rows_name, cols_name = tuple(free)
    if len(set(outer_names)) == 2 and set(outer_names) == set(free):
        rows_name, cols_name = outer_names
    summed = [i for counts in counted for i in counts if i not in free]
    frame = scope.bind(tuple(dict.fromkeys(summed)))
    if fn == "inv":     # the argument's rows and columns have the sizes of the result's
        for name, index in ((rows_name, outer[0]), (cols_name, outer[1])):
            scope.counter += 1
            frame[name] = f"{ir.index_root(index)}~{scope.counter}"
    else:
        frame.update(scope.bind((rows_name, cols_name)))
    rows, cols = frame[rows_name], frame[cols_name]
    scope.bound = scope.bound + (frame,)
    lowered = []
    try:
        for coeff, factors in terms:
            term = ir.scale(ir.mul(*(sem._lower(f, scope) for f in factors)), coeff)
            implicit = tuple(i for i in ir.free_indices(term) if i not in (rows, cols))
            lowered.append(ir.summation(implicit, term))
    finally:
        scope.bound = scope.bound[:-1]
    return make(fn, ir.add(*lowered), rows, cols, outer)


# ---------------------------------------------------------------- derivatives

def _names_in(expr: Expr) -> set[str]:
    names: set[str] = set()
    for term in expr.terms:
        names |= ir._all_names_of(term)
    return names


def partial_factor(factor: MatFn, name: str, slots: tuple[str, ...], partial: Callable) -> Expr:
    """``∂ fn(M) / ∂ name[slots]`` by the chain rule through ``dM = ∂M/∂name[slots]``.

    ``d(M⁻¹) = -M⁻¹ dM M⁻¹``; ``d det M = det M tr(M⁻¹ dM)``; ``d log|det M| = tr(M⁻¹ dM)``.

    >>> from einderiv.simplification import simplify
    >>> from einderiv.printing import format_expr
    >>> (f,) = make("logdet", ir.ref("A", ("i", "j")), "i", "j", ()).terms[0].factors
    >>> format_expr(simplify(partial_factor(f, "A", ("a", "b"), _partial)))
    'inv(A)[b,a]'
    """
    d_arg = partial(factor.arg, name, slots)
    if not d_arg.terms:
        return ir.ZERO
    taken = _names_in(d_arg) | _names_in(factor.arg) | set(factor.indices) | set(slots) | {factor.rows, factor.cols}
    r = ir.fresh_variant(factor.rows, taken)
    c = ir.fresh_variant(factor.cols, taken | {r})
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
    from .differentiation import partial
    return partial(expr, name, slots)


# ---------------------------------------------------------------- numerics

class _Factored:
    """One matrix of one run and what has been computed from it (each at most once)."""

    def __init__(self, matrix: np.ndarray, what: str, wants_inverse: bool = False, symmetric: bool = False):
        self.matrix = np.asarray(matrix)
        self.what = what
        self.symmetric = symmetric              # symmetric by construction: try Cholesky for slogdet
        self.wants_inverse = wants_inverse      # the plan forms the inverse anyway: solves multiply by it
        self._inverse: np.ndarray | None = None
        self._slogdet: tuple[float, float] | None = None
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


def is_symmetric(factor: MatFn) -> bool:
    """Whether the argument is symmetric as written: swapping rows and columns gives the same terms.

    >>> gram = ir.summation(("k",), ir.mul(ir.ref("X", ("k", "i")), ir.ref("X", ("k", "j"))))
    >>> is_symmetric(MatFn("logdet", gram, "i", "j", ()))
    True
    """
    from .simplification import simplify, term_key
    swapped = ir.rename(factor.arg, {factor.rows: factor.cols, factor.cols: factor.rows})

    def keys(expr: Expr) -> list[tuple[str, float]]:
        return sorted((term_key(t), t.coeff) for t in simplify(expr).terms)
    return bool(factor.arg.terms) and keys(swapped) == keys(factor.arg)


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
    key = ("einderiv.matfun", factor.arg, factor.rows, factor.cols)
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
