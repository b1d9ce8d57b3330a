"""Immutable intermediate representation of index expressions.

An expression is kept in *expanded normal form*: a sum of terms, each term a
coefficient, a tuple of summed indices and a tuple of factors. Factors are
tensor references, Kronecker deltas, index sizes, elementwise calls and powers;
calls and powers hold nested expressions. Every summation is explicit here: the
language's implicit per-term rule is applied once, when a statement is lowered.

Index names are plain strings. Statements give their indices unique internal
names (``"k#2"``: index ``k`` of statement 2); :func:`display_name` recovers
what the user wrote, and :func:`index_root` the name that fixes its size
(variants made by renaming apart, ``"k#2~1"``, share the size of ``"k#2"``).

This module has no numpy and no lark: it is pure structure.

>>> x = ref("x", ("i#0",))
>>> str(mul(const(2.0), x).terms[0].coeff)
'2.0'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Union

from einderiv.core.caching import registered
from einderiv.errors import UnsupportedError
from einderiv.names import SLOT_LETTERS, display_name, fresh_names, fresh_variant, index_root

__all__ = [
    "Ref", "Delta", "Size", "Call", "Power", "Term", "Expr", "Factor",
    "const", "ref", "delta", "size", "add", "mul", "neg", "scale", "summation",
    "power", "call", "rename", "free_indices", "term_indices", "factor_indices",
    "constant_value", "depends_on", "display_name", "index_root", "ZERO", "ONE",
    "tensor_names", "common_factor", "MatFn", "MATRIX_FUNCTIONS", "fresh_names", "SLOT_LETTERS",
]


@dataclass(frozen=True)
class Ref:
    """An entry ``name[indices]`` of a tensor (a scalar when ``indices`` is empty)."""

    name: str
    indices: tuple[str, ...]


@dataclass(frozen=True)
class Delta:
    """The Kronecker delta ``δ[first, second]``: 1 where the indices agree."""

    first: str
    second: str


@dataclass(frozen=True)
class Size:
    """The number of values an index takes (what a summed ``δ[i,i]`` leaves)."""

    index: str


@dataclass(frozen=True)
class Call:
    """An elementwise function of one or more expressions."""

    fn: str
    args: tuple["Expr", ...]


@dataclass(frozen=True)
class Power:
    """``base ^ exponent``, elementwise."""

    base: "Expr"
    exponent: "Expr"


#: The matrix functions: ``inv`` is a matrix, ``det`` and ``logdet`` are scalars.
MATRIX_FUNCTIONS = ("inv", "det", "logdet")


@dataclass(frozen=True)
class MatFn:
    """A matrix function of a square two-index expression: ``inv(M)[p,q]``, ``det(M)``, ``logdet(M)``.

    ``arg`` is the matrix ``M[rows, cols]``; ``rows`` and ``cols`` are bound by
    this node (they are not free outside it), like the summed indices of a
    term. ``indices`` are the free indices of the result: two for ``inv``, none
    for ``det`` and ``logdet``. See :mod:`einderiv.core.matrix_functions`.
    """

    fn: str
    arg: "Expr"
    rows: str
    cols: str
    indices: tuple[str, ...]


Factor = Union[Ref, Delta, Size, Call, Power, MatFn]


@dataclass(frozen=True)
class Term:
    """``coeff · Σ_{summed} Π factors``."""

    coeff: float
    summed: tuple[str, ...]
    factors: tuple[Factor, ...]


@dataclass(frozen=True)
class Expr:
    """A sum of terms; the empty sum is zero."""

    terms: tuple[Term, ...]

    def __iter__(self) -> Iterator[Term]:
        return iter(self.terms)


ZERO = Expr(())
ONE = Expr((Term(1.0, (), ()),))


def const(value: float) -> Expr:
    """A numeric constant."""
    value = float(value)
    return ZERO if value == 0.0 else Expr((Term(value, (), ()),))


def _single(factor: Factor) -> Expr:
    return Expr((Term(1.0, (), (factor,)),))


def ref(name: str, indices: Iterable[str] = ()) -> Expr:
    """The tensor entry ``name[indices]``."""
    return _single(Ref(name, tuple(indices)))


def delta(first: str, second: str) -> Expr:
    """``δ[first, second]`` (1 when the two indices are the same index)."""
    return ONE if first == second else _single(Delta(first, second))


def size(index: str) -> Expr:
    """The size of ``index``, a scalar."""
    return _single(Size(index))


def call(fn: str, args: Iterable[Expr]) -> Expr:
    """The elementwise call ``fn(args…)``; folding is left to simplification."""
    return _single(Call(fn, tuple(args)))


# ---------------------------------------------------------------- indices

def factor_indices(factor: Factor) -> tuple[str, ...]:
    """Indices occurring (free) in a factor, in order, with repeats."""
    if isinstance(factor, Ref):
        return factor.indices
    if isinstance(factor, Delta):
        return (factor.first, factor.second)
    if isinstance(factor, Size):
        return ()
    if isinstance(factor, MatFn):
        return factor.indices
    if isinstance(factor, Call):
        return tuple(i for arg in factor.args for i in free_indices(arg))
    return free_indices(factor.base) + free_indices(factor.exponent)


def term_indices(term: Term) -> tuple[str, ...]:
    """Every index occurring in a term's factors, summed or not, first appearance first."""
    seen: dict[str, None] = {}
    for factor in term.factors:
        for index in factor_indices(factor):
            seen.setdefault(index)
    return tuple(seen)


def _all_names(term: Term) -> set[str]:
    """Every index name used in a term, bound anywhere inside or free."""
    return set(_all_names_of(term))


@registered
@functools.lru_cache(maxsize=4096)
def _all_names_of(term: Term) -> frozenset[str]:
    # Memoised: products rename apart term by term, and nested terms recur at every level.
    names = set(term.summed) | set(term_indices(term))
    for factor in term.factors:
        for nested in _nested(factor):
            for inner in nested.terms:
                names |= _all_names_of(inner)
    return frozenset(names)


def _nested(factor: Factor) -> tuple[Expr, ...]:
    if isinstance(factor, Call):
        return factor.args
    if isinstance(factor, Power):
        return (factor.base, factor.exponent)
    if isinstance(factor, MatFn):
        return (factor.arg,)
    return ()


def free_indices(expr: Expr) -> tuple[str, ...]:
    """Free indices of an expression, in order of first appearance."""
    seen: dict[str, None] = {}
    for term in expr.terms:
        bound = set(term.summed)
        for index in term_indices(term):
            if index not in bound:
                seen.setdefault(index)
    return tuple(seen)


def tensor_names(expr: Expr) -> tuple[str, ...]:
    """Names of the tensors an expression refers to, first appearance first."""
    seen: dict[str, None] = {}
    for term in expr.terms:
        for factor in term.factors:
            if isinstance(factor, Ref):
                seen.setdefault(factor.name)
            for nested in _nested(factor):
                for name in tensor_names(nested):
                    seen.setdefault(name)
    return tuple(seen)


def depends_on(expr: Expr, name: str) -> bool:
    """Whether ``expr`` refers to the tensor ``name``."""
    return name in tensor_names(expr)


def constant_value(expr: Expr) -> float | None:
    """The value of a constant expression, or None if it is not constant."""
    if not expr.terms:
        return 0.0
    if len(expr.terms) == 1 and not expr.terms[0].factors and not expr.terms[0].summed:
        return expr.terms[0].coeff
    return None


# ---------------------------------------------------------------- renaming

def rename(expr: Expr, mapping: Mapping[str, str]) -> Expr:
    """Substitute free indices; bound indices are renamed apart when they would capture."""
    if not mapping:
        return expr
    return Expr(tuple(_rename_term(t, mapping) for t in expr.terms))


def _rename_term(term: Term, mapping: Mapping[str, str]) -> Term:
    active = {k: v for k, v in mapping.items() if k not in term.summed}
    if not active:
        return term
    targets = set(active.values())
    clashes = [s for s in term.summed if s in targets]
    if clashes:
        taken = _all_names(term) | targets | set(active)
        apart: dict[str, str] = {}
        for s in clashes:
            apart[s] = fresh_variant(s, taken)
            taken.add(apart[s])
        term = Term(term.coeff, tuple(apart.get(s, s) for s in term.summed),
                    tuple(_rename_factor(f, apart) for f in term.factors))
    return Term(term.coeff, term.summed, tuple(_rename_factor(f, active) for f in term.factors))


def _rename_factor(factor: Factor, mapping: Mapping[str, str]) -> Factor:
    if isinstance(factor, Ref):
        return Ref(factor.name, tuple(mapping.get(i, i) for i in factor.indices))
    if isinstance(factor, Delta):
        return Delta(mapping.get(factor.first, factor.first), mapping.get(factor.second, factor.second))
    if isinstance(factor, Size):
        return factor
    if isinstance(factor, MatFn):   # rows and cols are bound inside; batch indices are free there too
        batch = factor.indices[:-2] if factor.fn == "inv" else factor.indices
        arg = rename(factor.arg, {k: v for k, v in mapping.items() if k in batch})
        return MatFn(factor.fn, arg, factor.rows, factor.cols, tuple(mapping.get(i, i) for i in factor.indices))
    if isinstance(factor, Call):
        return Call(factor.fn, tuple(rename(a, mapping) for a in factor.args))
    return Power(rename(factor.base, mapping), rename(factor.exponent, mapping))


def _apart(term: Term, other: Term) -> Term:
    """Rename ``term``'s summed indices so none appears in ``other``."""
    if not term.summed:     # nothing to rename (the common case: no name lookups at all)
        return term
    other_names = _all_names_of(other)
    clashes = [s for s in term.summed if s in other_names]
    if not clashes:
        return term
    taken = set(other_names) | _all_names_of(term)
    apart: dict[str, str] = {}
    for s in clashes:
        apart[s] = fresh_variant(s, taken)
        taken.add(apart[s])
    return Term(term.coeff, tuple(apart.get(s, s) for s in term.summed),
                tuple(_rename_factor(f, apart) for f in term.factors))


# ---------------------------------------------------------------- algebra

def add(*exprs: Expr) -> Expr:
    """The sum of expressions (terms concatenated; merging is simplification's job)."""
    return Expr(tuple(t for e in exprs for t in e.terms))


def scale(expr: Expr, factor: float) -> Expr:
    """``factor · expr``."""
    if factor == 0.0:
        return ZERO
    return Expr(tuple(Term(t.coeff * factor, t.summed, t.factors) for t in expr.terms))


def neg(expr: Expr) -> Expr:
    """``-expr``."""
    return scale(expr, -1.0)


def _mul_terms(left: Term, right: Term) -> Term:
    right = _apart(right, left)
    left = _apart(left, right)
    return Term(left.coeff * right.coeff, left.summed + right.summed, left.factors + right.factors)


#: The most terms one product may multiply out to (a product of n binomials has 2^n).
MAX_TERMS = 10_000


def mul(*exprs: Expr) -> Expr:
    """The product of expressions, distributed over their sums.

    Summed indices are renamed apart where the operands would clash, so
    ``(Σ_j a_j)(Σ_j b_j)`` stays a double sum.
    """
    result = ONE
    for expr in exprs:
        if len(result.terms) * len(expr.terms) > MAX_TERMS:
            raise UnsupportedError(f"multiplying out a product gives {len(result.terms) * len(expr.terms):,} terms, "
                                   f"more than {MAX_TERMS:,}; compute the factors in separate statements")
        if result is ONE:       # 1 · expr is expr: nothing to rename apart or multiply
            result = expr
            continue
        result = Expr(tuple(_mul_terms(a, b) for a in result.terms for b in expr.terms))
    return result


def summation(indices: Iterable[str], expr: Expr) -> Expr:
    """``Σ_{indices} expr``; an index a term lacks becomes a size factor later."""
    indices = tuple(indices)
    if not indices:
        return expr
    terms = []
    for term in expr.terms:
        new = tuple(i for i in indices if i not in term.summed)
        terms.append(Term(term.coeff, term.summed + new, term.factors))
    return Expr(tuple(terms))


def power(base: Expr, exponent: Expr) -> Expr:
    """``base ^ exponent`` with the obvious folds.

    ``x^1 = x``, ``x^0 = 1``, constants fold, and an integer power of a single
    unsummed term distributes over its factors: ``(2 N)^-1 = 0.5 N^-1``.
    """
    p = constant_value(exponent)
    if p == 1.0:
        return base
    if p == 0.0:
        return ONE
    b = constant_value(base)
    if b is not None and p is not None:
        if b == 0.0 and p < 0:
            return Expr((Term(1.0, (), (Power(base, exponent),)),))
        try:
            value = b ** p
        except (OverflowError, ZeroDivisionError):
            value = None
        if isinstance(value, float):
            return const(value)
    if p is not None and float(p).is_integer() and len(base.terms) == 1 and not base.terms[0].summed:
        (term,) = base.terms
        if term.factors and term.coeff != 0.0:
            try:
                coeff = term.coeff ** p
            except OverflowError:            # (1e300 x)^2: keep the power whole
                return Expr((Term(1.0, (), (Power(base, exponent),)),))
            factors = tuple(f2 for f in term.factors for f2 in _power_factor(f, p))
            return Expr((Term(coeff, (), factors),))
    return Expr((Term(1.0, (), (Power(base, exponent),)),))


def _power_factor(factor: Factor, p: float) -> tuple[Factor, ...]:
    if isinstance(factor, Delta) and p > 0:
        return (factor,)
    if isinstance(factor, Power):
        q = constant_value(factor.exponent)
        if q is not None:
            return (Power(factor.base, const(q * p)),)
    return (Power(Expr((Term(1.0, (), (factor,)),)), const(p)),)


def common_factor(expr: Expr) -> tuple[Term, Expr] | None:
    """``(outer, inner)`` with ``expr = outer · (inner)``, when every term shares factors.

    Terms must sum over the same indices; the shared factors (and a shared
    coefficient magnitude) move out: ``Z/N - T/N`` is ``(Z - T) / N``. This is
    a way of writing the same expression, not a simplification.

    >>> e = add(mul(ref("Z", "i"), ref("N")), neg(mul(ref("T", "i"), ref("N"))))
    >>> outer, inner = common_factor(e)
    >>> outer.factors, len(inner.terms)
    ((Ref(name='N', indices=()),), 2)
    """
    terms = expr.terms
    if len(terms) < 2 or any(sorted(t.summed) != sorted(terms[0].summed) for t in terms):
        return None
    shared = list(terms[0].factors)
    for term in terms[1:]:
        remaining = list(term.factors)
        kept = []
        for factor in shared:
            if factor in remaining:
                remaining.remove(factor)
                kept.append(factor)
        shared = kept
    magnitude = abs(terms[0].coeff)
    scale = magnitude if all(abs(t.coeff) == magnitude for t in terms) and magnitude != 0.0 else 1.0
    if not shared and scale == 1.0:
        return None
    inner = []
    for term in terms:
        rest = list(term.factors)
        for factor in shared:
            rest.remove(factor)
        inner.append(Term(term.coeff / scale, (), tuple(rest)))
    return Term(scale, terms[0].summed, tuple(shared)), Expr(tuple(inner))
