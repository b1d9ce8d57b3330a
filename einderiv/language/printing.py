"""Index-form text of IR expressions: pure functions, no simplification, no numbers.

Free indices keep the names the caller fixes; every other index gets the name
its user wrote, with a digit appended where two would clash within a term or
where two indices of different sizes would share a name within the line (read
back, one name has one size per statement). Top-level terms sum their repeated
indices implicitly (the language's rule); sums inside functions and powers are
written ``sum[j](…)``, and a summed index no factor uses (a size) ``sum[j](1)``.
A name before a parenthesis gets ``*`` (``c * (x + y)``), since juxtaposed it
would read as a call. The text parses back to the same meaning (``ascii=True``
writes ``delta(i,a)`` for ``δ[i,a]``; both are the language's Kronecker delta).

>>> from einderiv.core import ir
>>> e = ir.mul(ir.delta("i", "a"), ir.ref("X", ["b", "k"]))
>>> format_expr(e)
'δ[i,a] X[b,k]'
"""

from __future__ import annotations

import math

import re
from typing import Mapping

from einderiv.core import ir
from einderiv.core.ir import Call, Delta, Expr, Factor, Power, Ref, Size, Term
from einderiv.names import fresh, numbered

__all__ = ["format_expr", "format_number", "format_ref", "index_names", "distinct_names", "join_product"]


def format_number(value: float) -> str:
    """Shortest text of a coefficient that reads back as the same number: ``2`` rather than ``2.0``.

    The language has no name for infinity (``inf`` would be a tensor called inf), so an
    infinite coefficient is written as a literal that overflows to it, and NaN as their difference.

    >>> [format_number(v) for v in (2.0, 0.5, float("inf"), -float("inf"), float("nan"))]
    ['2', '0.5', '1e999', '-1e999', '(1e999 - 1e999)']
    """
    value = float(value)
    if math.isnan(value):
        return "(1e999 - 1e999)"
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_ref(name: str, indices: tuple[str, ...]) -> str:
    """``name[i,j]`` or ``name`` for a scalar."""
    return f"{name}[{','.join(indices)}]" if indices else name


def index_names(expr: Expr, fixed: Mapping[str, str], owners: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Display names, one mapping per term: ``fixed`` plus every other index of the term.

    Within a term every index gets its own name. Across the terms of one line a
    name is reused only for indices that share a size (the same
    :func:`ir.index_root`), because read back as a statement every occurrence
    of a name has one size. ``owners`` (name → root) carries that across calls.

    >>> e = ir.add(ir.summation(["j#1"], ir.ref("x", ["j#1"])), ir.summation(["j#2"], ir.ref("y", ["j#2"])))
    >>> [n["j#1" if "j#1" in n else "j#2"] for n in index_names(e, {})]
    ['j', 'j1']
    """
    owners = {} if owners is None else owners
    for index, name in fixed.items():
        owners.setdefault(name, f"fixed:{index}")
    mappings = []
    for term in expr.terms:
        names = dict(fixed)
        used = set(names.values())
        for index in _term_all_indices(term):
            if index in names:
                continue
            root, base, k = ir.index_root(index), ir.display_name(index), 1
            name = base
            while name in used or owners.get(name, root) != root:
                name, k = f"{base}{k}", k + 1
            names[index] = name
            used.add(name)
            owners[name] = root
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
        name = fresh(numbered(ir.display_name(index)), taken)
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
    return _format_sum(expr, fixed, ascii, dict(tensors or {}), top=True, owners={})


def _format_sum(expr: Expr, fixed: dict[str, str], ascii: bool, tensors: dict[str, str], top: bool,
                owners: dict[str, str] | None = None) -> str:
    if not expr.terms:
        return "0"
    grouped = ir.common_factor(expr) if top else None
    if grouped is not None:
        outer, inner = grouped
        names = index_names(Expr((Term(1.0, outer.summed, outer.factors + tuple(
            f for t in inner.terms for f in t.factors)),)), fixed, owners)[0]
        group = f"({_format_sum(inner, names, ascii, tensors, top=False)})"
        return _format_term(outer, names, ascii, tensors, top, group)
    parts = []
    for term, names in zip(expr.terms, index_names(expr, fixed, owners)):
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
    text = join_product(tokens)
    if denominator:
        den = denominator[0] if len(denominator) == 1 else f"({join_product(denominator)})"
        text = f"{text} / {den}"
    if term.summed and not top:
        bound = ",".join(names[s] for s in term.summed)
        text = f"sum[{bound}]({text})"
    return sign + text


_NAME_END = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def join_product(tokens: list[str]) -> str:
    """Factors side by side, with ``*`` where juxtaposition would read as a call.

    A name directly followed by ``(`` is a function call in the language, so
    ``c (x + y)^2`` must be written ``c * (x + y)^2``.

    >>> join_product(["3", "c", "(x[a] + y[a])^2"])
    '3 c * (x[a] + y[a])^2'
    >>> join_product(["2", "(x[a] + 1)"])
    '2 (x[a] + 1)'
    """
    text = tokens[0] if tokens else ""
    for previous, token in zip(tokens, tokens[1:]):
        call_like = token.startswith("(") and _NAME_END.search(previous) and not _NUMBER.fullmatch(previous)
        text += f" * {token}" if call_like else f" {token}"
    return text


def _format_factor(factor: Factor | None, base: Expr | None, names: dict[str, str], ascii: bool,
                   tensors: dict[str, str]) -> str:
    if factor is None:  # a reciprocal: the denominator is the base itself
        return _format_operand(base, names, ascii, tensors)
    if isinstance(factor, Ref):
        return format_ref(tensors.get(factor.name, factor.name), tuple(names[i] for i in factor.indices))
    if isinstance(factor, Delta):
        a, b = names[factor.first], names[factor.second]
        return f"delta({a},{b})" if ascii else f"δ[{a},{b}]"
    if isinstance(factor, Size):   # Σ_i 1: what the language reads as the size of i
        return f"sum[{names[factor.index]}](1)"
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
    from einderiv.core.matrix_functions import bare_name
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


def describe_call(factor: ir.MatFn) -> str:
    """``inv(A)`` or ``det(A[i,j] + B[i,j])``: the call as the user would write it, for messages."""
    from einderiv.core.matrix_functions import bare_name
    name = bare_name(factor)
    if name is not None:
        return f"{factor.fn}({name})"
    return f"{factor.fn}({format_expr(factor.arg)})"
