"""Folding a program's definitions back into a derivative: ``exp(z[a]) e[i] / s²`` becomes ``p[i] p[a]``
when the program defines ``e[i] = exp(z[i])``, ``s = e[j]`` and ``p[i] = e[i] / s``."""

from __future__ import annotations

from typing import Literal, Sequence

from einderiv.core import ir
from einderiv.core.ir import Call, Expr, Factor, Power, Ref, Term
from einderiv.core.simplify import simplify
from einderiv.language.lowering import Statement


def fold_definitions(expr: Expr, statements: Sequence[Statement]) -> Expr:
    """Rewrite ``expr`` in terms of the program's tensors where a statement's right side occurs in it.

    Only statements whose right side is one product without sums are used:
    with ``e[i] = exp(z[i])`` and ``p[i] = e[i] / s``, ``exp(z[a]) e[i] / s²``
    becomes ``p[i] p[a]``. Powers of scalars are taken in part (``s^-2`` gives
    up one ``s^-1``). The result is simplified.

    >>> from einderiv import parse
    >>> prog = parse("e[i] = exp(z[i]); s = e[j]; p[i] = e[i] / s")
    >>> from einderiv.language.printing import format_expr
    >>> format_expr(fold_definitions(prog.derivative("z").expr, prog.statements))
    '(δ[i,a] - p[a]) p[i]'
    """
    patterns = [st for st in statements if len(st.rhs.terms) == 1 and not st.rhs.terms[0].summed
                and st.rhs.terms[0].coeff == 1.0 and st.rhs.terms[0].factors]
    terms = list(expr.terms)
    for _ in range(16):
        changed = False
        for st in patterns:
            for k, term in enumerate(terms):
                folded = _fold_term(term, st)
                while folded is not None:
                    terms[k] = term = folded
                    changed = True
                    folded = _fold_term(term, st)
        if not changed:
            break
    return simplify(Expr(tuple(terms)))


def _fold_term(term: Term, statement: Statement) -> Term | None:
    pattern = statement.rhs.terms[0].factors
    lhs = set(statement.lhs)

    def search(k: int, used: dict[int, Factor | None],
               mapping: dict[str, str]) -> tuple[dict[int, Factor | None], dict[str, str]] | None:
        if k == len(pattern):
            return used, mapping
        for m, factor in enumerate(term.factors):
            if m in used:
                continue
            trial = dict(mapping)
            left = _match_factor(pattern[k], factor, trial, lhs)
            if left is False:
                continue
            found = search(k + 1, {**used, m: left}, trial)
            if found is not None:
                return found
        return None

    found = search(0, {}, {})
    if found is None:
        return None
    used, mapping = found
    if any(i not in mapping for i in statement.lhs):
        return None
    new = Ref(statement.name, tuple(mapping[i] for i in statement.lhs))
    factors = []
    placed = False
    for m, factor in enumerate(term.factors):
        if m not in used:
            factors.append(factor)
            continue
        if not placed:
            factors.append(new)
            placed = True
        rest = used[m]
        if rest is not None:
            factors.append(rest)
    return Term(term.coeff, term.summed, tuple(factors))


def _match_factor(pattern: Factor, factor: Factor, mapping: dict[str, str], lhs: set[str]) -> Factor | None | Literal[False]:
    """False if no match; else what is left of ``factor`` (None when consumed whole)."""
    if isinstance(pattern, Ref) and isinstance(factor, Ref):
        if pattern.name != factor.name or len(pattern.indices) != len(factor.indices):
            return False
        for p, f in zip(pattern.indices, factor.indices):
            if p not in lhs or mapping.setdefault(p, f) != f:
                return False
        return None
    if isinstance(pattern, Call) and isinstance(factor, Call):
        if pattern.fn != factor.fn or len(pattern.args) != len(factor.args):
            return False
        return None if all(_match_expr(a, b, mapping, lhs) for a, b in zip(pattern.args, factor.args)) else False
    if isinstance(pattern, Power) and isinstance(factor, Power):
        mine, theirs = ir.constant_value(pattern.exponent), ir.constant_value(factor.exponent)
        if mine is None or theirs is None or not _match_expr(pattern.base, factor.base, mapping, lhs):
            return False
        if mine == theirs:
            return None
        if mine * theirs > 0 and abs(theirs) > abs(mine) and float(mine).is_integer() and float(theirs).is_integer():
            return Power(factor.base, ir.const(theirs - mine))
        return False
    return False


def _match_expr(pattern: Expr, expr: Expr, mapping: dict[str, str], lhs: set[str]) -> bool:
    """Whether ``expr`` is ``pattern`` with its free indices renamed by ``mapping`` (extended as found);
    a sum's own indices match the other side's one to one (``sum[d](exp(S[n,d]))`` is ``sum[e](exp(S[n,e]))``)."""
    if len(pattern.terms) != len(expr.terms):
        return False
    for pt, et in zip(pattern.terms, expr.terms):
        if pt.coeff != et.coeff or len(pt.summed) != len(et.summed) or len(pt.factors) != len(et.factors):
            return False
        bound = set(pt.summed)
        local = {k: v for k, v in mapping.items() if k not in bound}
        for pf, ef in zip(pt.factors, et.factors):
            if _match_factor(pf, ef, local, lhs | bound) is not None:
                return False
        if any(b not in local for b in bound) or {local[b] for b in bound} != set(et.summed):
            return False
        if any(local[k] in et.summed for k in local if k not in bound):
            return False
        mapping.update({k: v for k, v in local.items() if k not in bound})
    return True
