"""LaTeX of index expressions, derivatives and programs: pure functions of the IR.

The LaTeX mirrors the index form: the same terms in the same order, the same
index names, and the same Einstein convention (an index repeated within a
top-level term is summed; sums inside functions and powers are written
``\\sum_{j}``). Nothing is simplified or evaluated here.

* ``A[i,k]`` → ``A_{ik}`` (``\\mathrm{W1}_{ab}`` for a name longer than a letter,
  ``x_{n,c1}`` when an index name is longer than a letter);
* ``δ[i,a]`` → ``\\delta_{ia}``; ``size(i)`` → ``\\operatorname{size}(i)``;
* a negative power goes to a denominator: ``\\frac{Z_{nc}}{N}``;
* ``d F[i,k] / d W[a,b]`` → ``\\frac{\\partial F_{ik}}{\\partial W_{ab}}``;
* a named adjoint ``dL/dH`` of a derivative's chain is written ``\\overline{H}``.

>>> import einderiv
>>> print(to_latex(einderiv.parse("F[i,k] = W[i,j] X[j,k]").derivative("W")))
\\frac{\\partial F_{ik}}{\\partial W_{ab}} = \\delta_{ia} X_{bk}
"""

from __future__ import annotations

from typing import Mapping, Sequence, Union

from einderiv.core import ir
from einderiv.core.functions import FUNCTIONS
from einderiv.core.ir import Call, Delta, Expr, Factor, Power, Ref, Size, Term
from einderiv.language.printing import format_number, index_names
from einderiv.calculus.program import Derivative, Program
from einderiv.language.lowering import Statement

__all__ = ["to_latex", "expr_to_latex", "ref_to_latex", "matrix_to_latex", "display_latex"]

Printable = Union[Expr, Derivative, Program, Statement]


def to_latex(obj: Printable) -> str:
    """LaTeX of an IR expression, a :class:`Derivative`, a :class:`Program` or a statement.

    A derivative with named intermediates, or a program, gives one equation per line.

    >>> import einderiv
    >>> print(to_latex(einderiv.parse("y[i] = exp(sum[j](A[i,j] x[j]))")))
    y_{i} = \\exp\\left(\\sum_{j} A_{ij} x_{j}\\right)
    >>> print(to_latex(einderiv.parse("L = x[i] x[i] / 2").derivative("x")))
    \\frac{\\partial L}{\\partial x_{a}} = x_{a}
    """
    if isinstance(obj, Derivative):
        return _derivative(obj)
    if isinstance(obj, Program):
        return "\n".join(_statement(s) for s in obj.statements)
    if isinstance(obj, Statement):
        return _statement(obj)
    if isinstance(obj, Expr):
        return expr_to_latex(obj)
    if all(hasattr(obj, a) for a in ("of", "wrt", "wrt2", "out_indices", "wrt_indices", "expr")):
        return _hessian(obj)
    if hasattr(obj, "_repr_latex_"):
        return obj._repr_latex_().strip().strip("$").strip()
    raise TypeError(f"to_latex takes an expression, a Derivative or a Program, not {type(obj).__name__}")


def ref_to_latex(name: str, indices: Sequence[str]) -> str:
    """``name`` with a subscript of (display) index names.

    >>> ref_to_latex("W1", ("a", "b"))
    '\\\\mathrm{W1}_{ab}'
    >>> ref_to_latex("x", ("n", "c1"))
    'x_{n,c1}'
    """
    base = _name(name)
    return f"{base}_{{{_subscript(indices)}}}" if indices else base


def expr_to_latex(expr: Expr, fixed: Mapping[str, str] | None = None,
                  tensors: Mapping[str, str] | None = None) -> str:
    """LaTeX of an IR expression; ``fixed`` names free indices, ``tensors`` gives LaTeX for tensor names.

    >>> from einderiv.core import ir
    >>> expr_to_latex(ir.mul(ir.delta("i", "a"), ir.ref("X", ["b", "k"])))
    '\\\\delta_{ia} X_{bk}'
    """
    fixed = dict(fixed or {})
    for index in ir.free_indices(expr):
        fixed.setdefault(index, ir.display_name(index))
    return _sum(expr, fixed, dict(tensors or {}), top=True)


def matrix_to_latex(rows: Sequence[Sequence[str]]) -> str:
    """A ``bmatrix`` of already formatted entries, one inner sequence per row.

    >>> matrix_to_latex([["1", "0"], ["0", "1"]])
    '\\\\begin{bmatrix} 1 & 0 \\\\\\\\ 0 & 1 \\\\end{bmatrix}'
    """
    body = r" \\ ".join(" & ".join(row) for row in rows)
    return rf"\begin{{bmatrix}} {body} \end{{bmatrix}}"


# ---------------------------------------------------------------- pieces

def _escape(text: str) -> str:
    return text.replace("_", r"\_")


def _name(name: str) -> str:
    return name if len(name) == 1 else rf"\mathrm{{{_escape(name)}}}"


def _subscript(names: Sequence[str]) -> str:
    names = [_escape(n) for n in names]
    return "".join(names) if all(len(n) == 1 for n in names) else ",".join(names)


def _statement(statement: Statement) -> str:
    fixed = {i: ir.display_name(i) for i in statement.lhs}
    lhs = ref_to_latex(statement.name, tuple(fixed[i] for i in statement.lhs))
    return f"{lhs} = {expr_to_latex(statement.rhs, fixed)}"


def _partial(of: str, of_indices: Sequence[str], wrt: str, wrt_indices: Sequence[str]) -> str:
    return rf"\frac{{\partial {ref_to_latex(of, of_indices)}}}{{\partial {ref_to_latex(wrt, wrt_indices)}}}"


def _derivative(d: Derivative) -> str:
    tensors = {s.name: rf"\overline{{{_name(s.of)}}}" for s in d.chain}
    lines = []
    for s in d.chain:
        fixed = {i: ir.display_name(i) for i in s.indices}
        names = tuple(fixed[i] for i in s.indices)
        lhs = f"{tensors[s.name]}_{{{_subscript(names)}}}" if names else tensors[s.name]
        lines.append(f"{lhs} = {expr_to_latex(s.expr, fixed, tensors)}")
    names = {i: ir.display_name(i) for i in d.out_indices + d.wrt_indices}
    lhs = _partial(d.of, [names[i] for i in d.out_indices], d.wrt, [names[i] for i in d.wrt_indices])
    lines.append(f"{lhs} = {expr_to_latex(d.expr, names, tensors)}")
    return "\n".join(lines)


def _hessian(h) -> str:
    """``∂²L/∂x_a ∂x_b = …`` for a symbolic Hessian (its intermediates are left out)."""
    names = {i: ir.display_name(i) for i in h.out_indices + h.wrt_indices}
    first = ref_to_latex(h.wrt, [names[i] for i in h.out_indices])
    second = ref_to_latex(h.wrt2, [names[i] for i in h.wrt_indices])
    tensors = {name: rf"\overline{{{_name(name.split(':')[-1])}}}" for name, _, _ in h.chain}
    lhs = rf"\frac{{\partial^2 {_name(h.of)}}}{{\partial {first}\,\partial {second}}}"
    return f"{lhs} = {expr_to_latex(h.expr, names, tensors)}"


def _sum(expr: Expr, names: dict[str, str], tensors: dict[str, str], top: bool) -> str:
    if not expr.terms:
        return "0"
    parts = []
    for term, term_names in zip(expr.terms, index_names(expr, names)):
        text = _term(term, term_names, tensors, top)
        if not parts:
            parts.append(text)
        elif text.startswith("-"):
            parts.append(f" - {text[1:]}")
        else:
            parts.append(f" + {text}")
    return "".join(parts)


def _term(term: Term, names: dict[str, str], tensors: dict[str, str], top: bool) -> str:
    numerator, denominator, reciprocals = [], [], []
    for factor in term.factors:
        p = ir.constant_value(factor.exponent) if isinstance(factor, Power) else None
        if p is not None and p < 0:
            base = _operand(factor.base, names, tensors, exponent=p != -1)
            denominator.append(base if p == -1 else f"{base}^{{{format_number(-p)}}}")
            reciprocals.append(factor.base if p == -1 else None)
        else:
            numerator.append(_factor(factor, names, tensors))
    if len(reciprocals) == 1 and reciprocals[0] is not None:   # a lone denominator needs no parentheses
        denominator = [_sum(reciprocals[0], names, tensors, top=False)]
    magnitude = abs(term.coeff)
    if magnitude != 1.0 or not numerator:
        numerator = [format_number(magnitude)] + numerator
    text = " ".join(numerator)
    if denominator:
        text = rf"\frac{{{text}}}{{{' '.join(denominator)}}}"
    if term.summed and not top:
        text = rf"\sum_{{{_subscript([names[s] for s in term.summed])}}} {text}"
    return ("-" if term.coeff < 0 else "") + text


def _factor(factor: Factor, names: dict[str, str], tensors: dict[str, str]) -> str:
    if isinstance(factor, Ref):
        base = tensors.get(factor.name, _name(factor.name))
        indices = [names[i] for i in factor.indices]
        return f"{base}_{{{_subscript(indices)}}}" if indices else base
    if isinstance(factor, Delta):
        return rf"\delta_{{{_subscript([names[factor.first], names[factor.second]])}}}"
    if isinstance(factor, Size):
        return rf"\operatorname{{size}}({_escape(names[factor.index])})"
    if isinstance(factor, Call):
        return _call(factor, names, tensors)
    if isinstance(factor, ir.MatFn):
        return _matfn(factor, names, tensors)
    base = _operand(factor.base, names, tensors)
    p = ir.constant_value(factor.exponent)
    exponent = format_number(p) if p is not None else _sum(factor.exponent, names, tensors, top=False)
    return f"{base}^{{{exponent}}}"


def _matfn(factor: ir.MatFn, names: dict[str, str], tensors: dict[str, str]) -> str:
    """``(A^{-1})_{ia}``, ``\\det(A)``, ``\\log\\det(A)``; an expression argument is written with its own indices."""
    from einderiv.core.matrix_functions import bare_name
    from einderiv.language.printing import distinct_names
    from einderiv.core.matrix_functions import batch_of
    name = bare_name(factor)
    batch = batch_of(factor)
    if name is not None:
        matrix = tensors.get(name, _name(name))
        if batch:       # one matrix of a batch: A_{b}
            matrix = f"{matrix}_{{{_subscript([names[i] for i in batch])}}}"
    else:
        inner = distinct_names([factor.rows, factor.cols], set(names.values()))
        body = _sum(factor.arg, {**names, **inner}, tensors, top=False)
        matrix = rf"\left[{body}\right]_{{{_subscript([inner[factor.rows], inner[factor.cols]])}}}"
    if factor.fn == "inv":
        return rf"\left({matrix}^{{-1}}\right)_{{{_subscript([names[i] for i in factor.indices[-2:]])}}}"
    operator = r"\det" if factor.fn == "det" else r"\log\left\lvert\det"
    closing = r"\right)" if factor.fn == "det" else r"\right)\right\rvert"
    return rf"{operator}\left({matrix}{closing}"


def _call(factor: Call, names: dict[str, str], tensors: dict[str, str]) -> str:
    args = [_sum(a, names, tensors, top=False) for a in factor.args]
    return FUNCTIONS[factor.fn].latex(*args)


def _operand(expr: Expr, names: dict[str, str], tensors: dict[str, str], exponent: bool = True) -> str:
    """A power's base or a denominator: bare when it is one reference, call or non-negative number.

    Under an exponent a subscripted reference is braced: ``{X_{ij}}^{2}``.
    """
    text = _sum(expr, names, tensors, top=False)
    value = ir.constant_value(expr)
    if value is not None and value >= 0:
        return text
    if len(expr.terms) == 1:
        term = expr.terms[0]
        if term.coeff == 1.0 and len(term.factors) == 1 and not term.summed and \
                isinstance(term.factors[0], (Ref, Call, Size)):
            if not (exponent and isinstance(term.factors[0], Ref) and term.factors[0].indices):
                return text
            return rf"{{{text}}}"
    return rf"\left({text}\right)"


def display_latex(body: str) -> str:
    """``body`` (equations, one per line) as displayed math for a notebook: ``$$…$$``, aligned when several.

    >>> display_latex("y = x")
    '$$y = x$$'
    """
    lines = [line for line in body.split("\n") if line.strip()]
    if len(lines) <= 1:
        return f"$${body.strip()}$$"
    return "$$\\begin{aligned}\n" + " \\\\\n".join(line.replace(" = ", " &= ", 1) for line in lines) + \
        "\n\\end{aligned}$$"
