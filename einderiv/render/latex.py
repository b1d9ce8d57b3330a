"""LaTeX of index expressions, derivatives and programs: pure functions of the IR.

Expressions are printed by the language's one printer
(:func:`einderiv.language.printing.print_expr`) in its LaTeX style, so the
LaTeX is the index form spelt differently: the same terms in the same order,
the same grouping over a common denominator, the same index names, and the
same Einstein convention (an index repeated within a top-level term is summed;
sums inside functions and powers are written ``\\sum_{j}``). This module adds
the equations around expressions (statements, derivatives, Hessians) and the
notebook display. Nothing is simplified or evaluated here.

* ``A[i,k]`` → ``A_{ik}`` (``\\mathrm{W1}_{ab}`` for a name longer than a letter,
  ``x_{n,c1}`` when an index name is longer than a letter);
* ``δ[i,a]`` → ``\\delta_{ia}``; ``size(i)`` → ``\\operatorname{size}(i)``;
* a negative power goes to a denominator: ``\\frac{Z_{nc}}{N}``, and terms
  sharing it are written over it once: ``\\frac{Z_{ab} - T_{ab}}{N}``;
* ``d F[i,k] / d W[a,b]`` → ``\\frac{\\partial F_{ik}}{\\partial W_{ab}}``;
* a named adjoint ``dL/dH`` of a derivative's chain is written ``\\overline{H}``.

>>> import einderiv
>>> print(to_latex(einderiv.parse("F[i,k] = W[i,j] X[j,k]").derivative("W")))
\\frac{\\partial F_{ik}}{\\partial W_{ab}} = \\delta_{ia} X_{bk}
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence, Union, runtime_checkable

from einderiv.core import ir
from einderiv.core.ir import Expr
from einderiv.language.printing import LATEX, print_expr
from einderiv.calculus.program import Derivative, Program
from einderiv.language.lowering import Statement
from einderiv.names import innermost

__all__ = ["to_latex", "expr_to_latex", "ref_to_latex", "matrix_to_latex", "display_latex"]



@runtime_checkable
class HessianLike(Protocol):
    """What :func:`to_latex` reads of a symbolic Hessian (:class:`einderiv.numeric.hessian.Hessian`)."""

    @property
    def of(self) -> str: ...
    @property
    def wrt(self) -> str: ...
    @property
    def wrt2(self) -> str: ...
    @property
    def out_indices(self) -> tuple[str, ...]: ...
    @property
    def wrt_indices(self) -> tuple[str, ...]: ...
    @property
    def expr(self) -> Expr: ...
    @property
    def chain(self) -> Sequence[tuple[str, tuple[str, ...], Expr]]: ...


@runtime_checkable
class ShowsLatex(Protocol):
    """Anything a notebook shows as LaTeX (an adjoint program, an explanation, a matrix form)."""

    def _repr_latex_(self) -> str: ...


Printable = Union[Expr, Derivative, Program, Statement, HessianLike, ShowsLatex]


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
    if isinstance(obj, HessianLike):
        return _hessian(obj)
    if isinstance(obj, ShowsLatex):
        return obj._repr_latex_().strip().strip("$").strip()
    raise TypeError(f"to_latex takes an expression, a Derivative or a Program, not {type(obj).__name__}")


def ref_to_latex(name: str, indices: Sequence[str]) -> str:
    """``name`` with a subscript of (display) index names.

    >>> ref_to_latex("W1", ("a", "b"))
    '\\\\mathrm{W1}_{ab}'
    >>> ref_to_latex("x", ("n", "c1"))
    'x_{n,c1}'
    """
    return LATEX.ref(LATEX.name(name), indices)


def expr_to_latex(expr: Expr, fixed: Mapping[str, str] | None = None,
                  tensors: Mapping[str, str] | None = None) -> str:
    """LaTeX of an IR expression; ``fixed`` names free indices, ``tensors`` gives LaTeX for tensor names.

    >>> from einderiv.core import ir
    >>> expr_to_latex(ir.mul(ir.delta("i", "a"), ir.ref("X", ["b", "k"])))
    '\\\\delta_{ia} X_{bk}'
    """
    return print_expr(expr, fixed, LATEX, tensors)


def matrix_to_latex(rows: Sequence[Sequence[str]]) -> str:
    """A ``bmatrix`` of already formatted entries, one inner sequence per row.

    >>> matrix_to_latex([["1", "0"], ["0", "1"]])
    '\\\\begin{bmatrix} 1 & 0 \\\\\\\\ 0 & 1 \\\\end{bmatrix}'
    """
    body = r" \\ ".join(" & ".join(row) for row in rows)
    return rf"\begin{{bmatrix}} {body} \end{{bmatrix}}"


# ---------------------------------------------------------------- pieces

def _statement(statement: Statement) -> str:
    fixed = {i: ir.display_name(i) for i in statement.lhs}
    lhs = ref_to_latex(statement.name, tuple(fixed[i] for i in statement.lhs))
    return f"{lhs} = {expr_to_latex(statement.rhs, fixed)}"


def _partial(of: str, of_indices: Sequence[str], wrt: str, wrt_indices: Sequence[str]) -> str:
    return rf"\frac{{\partial {ref_to_latex(of, of_indices)}}}{{\partial {ref_to_latex(wrt, wrt_indices)}}}"


def _derivative(d: Derivative) -> str:
    tensors = {s.name: rf"\overline{{{LATEX.name(s.of)}}}" for s in d.chain}
    lines = [_statement(s) for s in d.definitions]      # the temporaries it refers to, first
    for s in d.chain:
        fixed = {i: ir.display_name(i) for i in s.indices}
        names = tuple(fixed[i] for i in s.indices)
        lhs = LATEX.ref(tensors[s.name], names)
        lines.append(f"{lhs} = {expr_to_latex(s.expr, fixed, tensors)}")
    shown = {i: ir.display_name(i) for i in d.out_indices + d.wrt_indices}
    lhs = _partial(d.of, [shown[i] for i in d.out_indices], d.wrt, [shown[i] for i in d.wrt_indices])
    lines.append(f"{lhs} = {expr_to_latex(d.expr, shown, tensors)}")
    return "\n".join(lines)


def _hessian(h: HessianLike) -> str:
    """``∂²L/∂x_a ∂x_b = …`` for a symbolic Hessian, after the temporaries it refers to
    (its other intermediates are left out)."""
    names = {i: ir.display_name(i) for i in h.out_indices + h.wrt_indices}
    first = ref_to_latex(h.wrt, [names[i] for i in h.out_indices])
    second = ref_to_latex(h.wrt2, [names[i] for i in h.wrt_indices])
    tensors = {name: rf"\overline{{{LATEX.name(innermost(name))}}}" for name, _, _ in h.chain}
    lhs = rf"\frac{{\partial^2 {LATEX.name(h.of)}}}{{\partial {first}\,\partial {second}}}"
    lines = [_statement(s) for s in getattr(h, "definitions", ())]
    return "\n".join(lines + [f"{lhs} = {expr_to_latex(h.expr, names, tensors)}"])


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
