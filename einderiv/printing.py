"""Index-form text of IR expressions: pure functions, no simplification, no numbers.

Free indices keep the names the caller fixes; every other index gets the name
its user wrote, with a digit appended only where two would clash within a term.
Top-level terms sum their repeated indices implicitly (the language's rule);
sums inside functions and powers are written ``sum[j](…)``. The text parses
back to the same meaning (``ascii=True`` writes ``delta(i,a)`` for ``δ[i,a]``).

>>> from einderiv import ir
>>> e = ir.mul(ir.delta("i", "a"), ir.ref("X", ["b", "k"]))
>>> format_expr(e)
'δ[i,a] X[b,k]'
"""

from __future__ import annotations

from typing import Mapping

from . import ir
from .ir import Call, Delta, Expr, Factor, Power, Ref, Size, Term

__all__ = ["format_expr", "format_number", "format_ref", "index_names", "distinct_names"]


def format_number(value: float) -> str:
    """Shortest text of a coefficient: ``2`` rather than ``2.0``."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def format_ref(name: str, indices: tuple[str, ...]) -> str:
    """``name[i,j]`` or ``name`` for a scalar."""
    return f"{name}[{','.join(indices)}]" if indices else name


def index_names(expr: Expr, fixed: Mapping[str, str]) -> list[dict[str, str]]:
    """Display names, one mapping per term: ``fixed`` plus every other index of the term."""
    mappings = []
    for term in expr.terms:
        names = dict(fixed)
        names.update(distinct_names([i for i in _term_all_indices(term) if i not in names], set(names.values())))
        mappings.append(names)
    return mappings


def distinct_names(indices, taken: set[str] = frozenset()) -> dict[str, str]:
    """Display names for ``indices``, distinct from each other and from ``taken`` (``a``, ``a1``, …).

    >>> distinct_names(["a@W.0", "a#1"])
    {'a@W.0': 'a', 'a#1': 'a1'}
    """
    taken = set(taken)
    names: dict[str, str] = {}
    for index in indices:
        base = ir.display_name(index)
        name, k = base, 1
        while name in taken:
            name, k = f"{base}{k}", k + 1
        names[index] = name
        taken.add(name)
    return names


def _term_all_indices(term: Term) -> list[str]:
    seen: dict[str, None] = {}
    for factor in term.factors:
        for index in ir.factor_indices(factor):
            seen.setdefault(index)
        if isinstance(factor, Size):
            seen.setdefault(factor.index)
        for nested in (factor.args if isinstance(factor, Call) else
                       (factor.base, factor.exponent) if isinstance(factor, Power) else ()):
            for inner in nested.terms:
                for s in inner.summed:
                    seen.setdefault(s)
                for index in _term_all_indices(inner):
                    seen.setdefault(index)
    for s in term.summed:
        seen.setdefault(s)
    return list(seen)


def format_expr(expr: Expr, fixed: Mapping[str, str] | None = None, *, ascii: bool = False,
                tensors: Mapping[str, str] | None = None) -> str:
    """The index form of ``expr``; ``fixed`` names its free indices, ``tensors`` renames tensors."""
    fixed = dict(fixed or {})
    for index in ir.free_indices(expr):
        fixed.setdefault(index, ir.display_name(index))
    return _format_sum(expr, fixed, ascii, dict(tensors or {}), top=True)


def _format_sum(expr: Expr, fixed: dict[str, str], ascii: bool, tensors: dict[str, str], top: bool) -> str:
    if not expr.terms:
        return "0"
    grouped = ir.common_factor(expr) if top else None
    if grouped is not None:
        outer, inner = grouped
        names = index_names(Expr((Term(1.0, outer.summed, outer.factors + tuple(
            f for t in inner.terms for f in t.factors)),)), fixed)[0]
        group = f"({_format_sum(inner, names, ascii, tensors, top=False)})"
        return _format_term(outer, names, ascii, tensors, top, group)
    parts = []
    for term, names in zip(expr.terms, index_names(expr, fixed)):
        text = _format_term(term, names, ascii, tensors, top)
        negative = text.startswith("-")
        body = text[1:] if negative else text
        if not parts:
            parts.append(text)
        else:
            parts.append(f" - {body}" if negative else f" + {body}")
    return "".join(parts)


def _format_term(term: Term, names: dict[str, str], ascii: bool, tensors: dict[str, str], top: bool,
                 group: str | None = None) -> str:
    numerator, denominator = ([group] if group else []), []
    for factor in term.factors:
        p = ir.constant_value(factor.exponent) if isinstance(factor, Power) else None
        if p is not None and p < 0:
            flipped = Power(factor.base, ir.const(-p))
            denominator.append(_format_factor(flipped if p != -1 else None, factor.base, names, ascii, tensors))
        else:
            numerator.append(_format_factor(factor, None, names, ascii, tensors))
    coeff = term.coeff
    sign = "-" if coeff < 0 else ""
    magnitude = abs(coeff)
    tokens = numerator
    if magnitude != 1.0 or not tokens:
        tokens = [format_number(magnitude)] + tokens
    text = " ".join(tokens)
    if denominator:
        den = denominator[0] if len(denominator) == 1 else f"({' '.join(denominator)})"
        text = f"{text} / {den}"
    if term.summed and not top:
        bound = ",".join(names[s] for s in term.summed)
        text = f"sum[{bound}]({text})"
    return sign + text


def _format_factor(factor: Factor | None, base: Expr | None, names: dict[str, str], ascii: bool,
                   tensors: dict[str, str]) -> str:
    if factor is None:  # a reciprocal: the denominator is the base itself
        return _format_operand(base, names, ascii, tensors)
    if isinstance(factor, Ref):
        return format_ref(tensors.get(factor.name, factor.name), tuple(names[i] for i in factor.indices))
    if isinstance(factor, Delta):
        a, b = names[factor.first], names[factor.second]
        return f"delta({a},{b})" if ascii else f"δ[{a},{b}]"
    if isinstance(factor, Size):
        return f"size({names[factor.index]})"
    if isinstance(factor, Call):
        args = ", ".join(_format_sum(a, names, ascii, tensors, top=False) for a in factor.args)
        return f"{factor.fn}({args})"
    if isinstance(factor, ir.MatFn):
        return _format_matfn(factor, names, ascii, tensors)
    base_text = _format_operand(factor.base, names, ascii, tensors)
    p = ir.constant_value(factor.exponent)
    exponent = format_number(p) if p is not None and p >= 0 else \
        f"({_format_sum(factor.exponent, names, ascii, tensors, top=False)})"
    if p is not None and p >= 0 and not float(p).is_integer():
        exponent = format_number(p)
    return f"{base_text}^{exponent}"


def _format_matfn(factor: ir.MatFn, names: dict[str, str], ascii: bool, tensors: dict[str, str]) -> str:
    """``inv(A)[i,a]``, ``det(A)``, or ``inv(A[i,j] + B[i,j])[i,j]``: an argument's rows and columns
    take the names of the result's indices when those differ, so the text reads back the same way."""
    from .matfun import bare_name
    outer = [names[i] for i in factor.indices]
    after = f"[{','.join(outer)}]" if factor.indices else ""
    name = bare_name(factor)
    if name is not None:
        return f"{factor.fn}({tensors.get(name, name)}){after}"
    if len(outer) == 2 and outer[0] != outer[1]:
        inner = {factor.rows: outer[0], factor.cols: outer[1]}
    else:
        inner = distinct_names([factor.rows, factor.cols], set(names.values()))
    fixed = {**names, **inner}
    return f"{factor.fn}({_format_sum(factor.arg, fixed, ascii, tensors, top=False)}){after}"


def _format_operand(expr: Expr, names: dict[str, str], ascii: bool, tensors: dict[str, str]) -> str:
    text = _format_sum(expr, names, ascii, tensors, top=False)
    if len(expr.terms) == 1:
        term = expr.terms[0]
        if term.coeff == 1.0 and len(term.factors) == 1 and not term.summed and \
                isinstance(term.factors[0], (Ref, Call, Size)):
            return text
    if ir.constant_value(expr) is not None and ir.constant_value(expr) >= 0:
        return text
    return f"({text})"
