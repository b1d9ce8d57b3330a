"""Simplification to canonical expanded form.

Rules, applied to each term until none fires:

* **delta elimination** — ``Σ_j δ[i,j] f(j) = f(i)``: a delta with a summed
  index is a rename, never an identity matrix. Each application removes one
  factor and one summed index, so it terminates.
* **diagonal delta** — ``δ[i,i] = 1`` pointwise; a summed index no factor uses
  any more becomes ``size(i)``, so ``Σ_i δ[i,i] = size(i)``, never 1.
* **constant folding** — calls and powers of constants are evaluated; zero
  terms vanish.
* **like terms** — terms equal up to the names of their summed indices merge,
  coefficients added. Keys rename summed indices in order of first appearance
  over factors sorted by a name-free key, so the result never depends on
  hashing. Factor order within a term is kept as derived (it is deterministic).

>>> from einderiv.core import ir
>>> e = ir.summation(["j"], ir.mul(ir.delta("j", "b"), ir.ref("X", ["j", "k"])))
>>> simplify(e).terms[0].factors
(Ref(name='X', indices=('b', 'k')),)
"""

from __future__ import annotations

import functools
import math

from einderiv.core import ir

from einderiv.core import matrix_functions
from einderiv.core.functions import FUNCTIONS
from einderiv.core.scalars import SCALARS
from einderiv.core.ir import Call, Delta, Expr, Factor, Power, Ref, Size, Term
from einderiv.core.caching import registered

__all__ = ["simplify", "term_key", "collect_powers"]


def simplify(expr: Expr) -> Expr:
    """The canonical form of ``expr`` (see the module docstring for the rules)."""
    terms: list[Term] = []
    for term in expr.terms:
        for t in _expand_term(term).terms:
            # merging powers can cancel factors (s[k] / s[k] → 1): a summed index no factor
            # carries any more still counts, as a size factor (Σ_k 1 = size(k))
            t = _sizes_for_unused(collect_powers(_eliminate_deltas(t)))
            if t.coeff != 0.0:
                terms.append(t)
    return _merge_like_terms(terms)


def _expand_term(term: Term) -> Expr:
    """Simplify nested expressions; folds may turn a factor into a sum."""
    pieces = [ir.const(term.coeff)]
    for factor in term.factors:
        pieces.append(_simplify_factor(factor))
    product = ir.mul(*pieces)
    return ir.summation(term.summed, product)


def _simplify_factor(factor: Factor) -> Expr:
    if isinstance(factor, Call):
        args = tuple(simplify(a) for a in factor.args)
        values = [ir.constant_value(a) for a in args]
        if all(v is not None for v in values):
            value = float(FUNCTIONS[factor.fn].array(SCALARS, *values))
            if math.isfinite(value):
                return ir.const(value)
        return ir.call(factor.fn, args)
    if isinstance(factor, Power):
        base, exponent = simplify(factor.base), simplify(factor.exponent)
        return ir.power(base, exponent)
    if isinstance(factor, ir.MatFn):
        return matrix_functions.make(factor.fn, simplify(factor.arg), factor.rows, factor.cols, factor.indices)
    return Expr((Term(1.0, (), (factor,)),))


def _eliminate_deltas(term: Term) -> Term:
    while True:
        step = _eliminate_one(term)
        if step is None:
            break
        term = step
    return _sizes_for_unused(term)


def _eliminate_one(term: Term) -> Term | None:
    summed = term.summed
    for k, factor in enumerate(term.factors):
        if not isinstance(factor, Delta):
            continue
        rest = term.factors[:k] + term.factors[k + 1:]
        if factor.first == factor.second:
            return Term(term.coeff, summed, rest)
        if factor.second in summed:
            gone, keep = factor.second, factor.first
        elif factor.first in summed:
            gone, keep = factor.first, factor.second
        else:
            continue
        renamed = ir.rename(Expr((Term(1.0, (), rest),)), {gone: keep}).terms[0]
        return Term(term.coeff, tuple(s for s in summed if s != gone), renamed.factors)
    return None


def _sizes_for_unused(term: Term) -> Term:
    used = set(ir.term_indices(term))
    unused = [s for s in term.summed if s not in used]
    if not unused:
        return term
    return Term(term.coeff, tuple(s for s in term.summed if s in used),
                term.factors + tuple(Size(s) for s in unused))


def collect_powers(term: Term) -> Term:
    """``x x → x^2``, ``x^2 x → x^3``: equal factors (same indices) merge into one power.

    Terminates: each merge removes a factor.
    """
    exponents: dict[str, tuple[Factor, float]] = {}
    slots: list[Factor | str] = []
    merged = False
    for factor in term.factors:
        split = _base_and_exponent(factor)
        if split is None:
            slots.append(factor)
            continue
        base, exponent = split
        key = _factor_text(base, {})
        if key in exponents:
            merged = True
            exponents[key] = (base, exponents[key][1] + exponent)
        else:
            exponents[key] = (base, exponent)
            slots.append(key)
    if not merged:
        return term
    factors: list[Factor] = []
    for slot in slots:
        if not isinstance(slot, str):
            factors.append(slot)
            continue
        base, exponent = exponents[slot]
        if exponent == 1.0:
            factors.append(base)
        elif exponent != 0.0:
            factors.append(Power(Expr((Term(1.0, (), (base,)),)), ir.const(exponent)))
    return Term(term.coeff, term.summed, tuple(factors))


def _base_and_exponent(factor: Factor) -> tuple[Factor, float] | None:
    """``(x, p)`` for a factor ``x^p`` with ``x`` a reference or call; ``(x, 1)`` for ``x``."""
    if isinstance(factor, (Ref, Call)):
        return factor, 1.0
    if isinstance(factor, Power):
        p = ir.constant_value(factor.exponent)
        terms = factor.base.terms
        if p is not None and len(terms) == 1 and terms[0].coeff == 1.0 and not terms[0].summed \
                and len(terms[0].factors) == 1 and isinstance(terms[0].factors[0], (Ref, Call)):
            return terms[0].factors[0], p
    return None


# ---------------------------------------------------------------- like terms

def _merge_like_terms(terms: list[Term]) -> Expr:
    order: dict[str, Term] = {}
    coeffs: dict[str, float] = {}
    for term in terms:
        key = term_key(term)
        if key in order:
            coeffs[key] += term.coeff
        else:
            order[key] = term
            coeffs[key] = term.coeff
    merged = tuple(Term(coeffs[k], t.summed, t.factors) for k, t in order.items() if coeffs[k] != 0.0)
    return Expr(merged)


def term_key(term: Term) -> str:
    """A string equal for terms that differ only in summed-index names and coefficient."""
    hidden = {s: "*" for s in term.summed}
    ordered = sorted(term.factors, key=lambda f: _factor_text(f, hidden))
    canon: dict[str, str] = {}
    for factor in ordered:
        for index in ir.factor_indices(factor):
            if index in hidden and index not in canon:
                canon[index] = f"_{len(canon)}"
    for s in term.summed:
        canon.setdefault(s, f"_{len(canon)}")
    return "·".join(sorted(_factor_text(f, canon) for f in term.factors))


def _factor_text(factor: Factor, names: dict[str, str]) -> str:
    """The key text of one factor, free indices renamed by ``names``.

    Calls and powers are memoised on (factor, the names of its own free
    indices): keying a term texts each nested factor twice (to sort, then to
    name), so without the memo the cost doubles with every level of nesting.
    """
    if isinstance(factor, (Call, Power)):
        used = set(ir.factor_indices(factor))
        return _nested_text(factor, tuple(sorted((k, v) for k, v in names.items() if k in used)))
    return _plain_text(factor, names)


@registered
@functools.lru_cache(maxsize=4096)
def _nested_text(factor: Factor, names: tuple[tuple[str, str], ...]) -> str:
    return _plain_text(factor, dict(names))


def _plain_text(factor: Factor, names: dict[str, str]) -> str:
    def n(index: str) -> str:
        return names.get(index, index)
    if isinstance(factor, Ref):
        return f"{factor.name}[{','.join(n(i) for i in factor.indices)}]"
    if isinstance(factor, Delta):
        a, b = sorted((n(factor.first), n(factor.second)))
        return f"δ[{a},{b}]"
    if isinstance(factor, Size):
        return f"size({ir.index_root(factor.index)})"
    if isinstance(factor, Call):
        return f"{factor.fn}({';'.join(_expr_text(a, names) for a in factor.args)})"
    if isinstance(factor, ir.MatFn):    # the bound rows and columns are hidden, like summed indices
        inner = {**names, factor.rows: "<r>", factor.cols: "<c>"}
        return f"{factor.fn}({_expr_text(factor.arg, inner)})[{','.join(n(i) for i in factor.indices)}]"
    return f"pow({_expr_text(factor.base, names)};{_expr_text(factor.exponent, names)})"


def _expr_text(expr: Expr, names: dict[str, str]) -> str:
    parts = []
    for term in expr.terms:
        inner = {k: v for k, v in names.items() if k not in term.summed}
        renamed = ir.rename(Expr((Term(term.coeff, term.summed, term.factors),)), inner).terms[0]
        parts.append(f"{term.coeff!r}*{len(term.summed)}*{term_key(renamed)}")
    return "+".join(sorted(parts))
