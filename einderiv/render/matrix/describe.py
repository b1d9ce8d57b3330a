"""Sentences about matrix forms, for the command line and explanations.

:func:`describe_matrix_form` says in one line what a derivative is in matrix
notation, or as a vec (Kronecker) form, or why it has neither;
:func:`column_vector_notes` warns where a statement's matrix form reads
transposed to someone who writes vectors as rows.
"""

from __future__ import annotations

from typing import Callable, Container

from einderiv.calculus.program import Derivative, Program
from einderiv.core import ir
from einderiv.core.ir import Expr, Ref, Term
from einderiv.core.simplify import simplify
from einderiv.render.matrix.convert import inline_chain, to_matrix
from einderiv.render.matrix.form import MatrixForm
from einderiv.render.matrix.kronecker import identities_of, kronecker_matrix
from einderiv.render.matrix.nodes import Func, Node, Product, Sum, Tensor, TermNode, Transpose, transpose
from einderiv.render.matrix.styles import ASCII, TEXT, Style, render

__all__ = ["describe_matrix_form", "column_vector_notes"]

Pick = Callable[[MatrixForm], str]


def describe_matrix_form(derivative: Derivative, program: Program | None = None, ascii: bool = False) -> str:
    """One line: the derivative in matrix notation, its Kronecker (vec) form, or why there is none.

    A scalar's gradient (or a Jacobian with at most two indices) gets its matrix
    form; a larger Jacobian of a linear map gets ``d vec(F)/d vec(W)`` with
    ``vec`` stacking columns; anything else, the reason it has neither.

    >>> from einderiv import parse
    >>> p = parse("F[i,k] = W[i,j] X[j,k]")
    >>> print(describe_matrix_form(p.derivative("X")))
    vec form: d vec(F)/d vec(X) = I_k ⊗ W  (vec stacks columns; I_k is the identity over index k; dF/dX itself has 4 indices)
    """
    pick: Pick = (lambda form: form.ascii) if ascii else (lambda form: form.text)
    order = len(derivative.out_indices) + len(derivative.wrt_indices)
    line = _matrix_line(derivative, program, pick) if order <= 2 else None
    return line or _vec_line(derivative, pick) or _no_form_line(derivative, "kron" if ascii else "⊗")


def _matrix_line(derivative: Derivative, program: Program | None, pick: Pick) -> str | None:
    """``matrix form: dL/dW = …  (…)``, or None without a matrix form."""
    of, wrt, out = derivative.of, derivative.wrt, derivative.out_indices
    order = len(out) + len(derivative.wrt_indices)
    form = to_matrix(derivative, program=program) if not out else to_matrix(derivative)
    if form is None:
        return None
    what = (f"shaped like {wrt}: the gradient of the scalar {of}" if not out
            else f"a {'matrix' if order == 2 else 'vector'}: row = entry of {of}, column = entry of {wrt}"
            if order == 2 else f"a vector over the entries of {of if out else wrt}")
    line = f"matrix form: d{of}/d{wrt} = {pick(form)}  ({what})"
    return line + _unit_row_sum_note(derivative, program, pick)


def _vec_line(derivative: Derivative, pick: Pick) -> str | None:
    """``vec form: d vec(F)/d vec(W) = …  (…)``, or None without a Kronecker form."""
    form = kronecker_matrix(derivative)
    if form is None:
        return None
    of, wrt = derivative.of, derivative.wrt
    order = len(derivative.out_indices) + len(derivative.wrt_indices)
    identities = sorted({n.label for n in identities_of(form.node) if n.label})
    note = "; ".join(f"I_{name} is the identity over index {name}" for name in identities)
    return (f"vec form: d vec({of})/d vec({wrt}) = {pick(form)}  (vec stacks columns"
            f"{'; ' + note if note else ''}; d{of}/d{wrt} itself has {order} indices)")


def _no_form_line(derivative: Derivative, kron: str) -> str:
    """Why the derivative has neither a matrix nor a vec form."""
    of, wrt, out, ins = derivative.of, derivative.wrt, derivative.out_indices, derivative.wrt_indices
    order = len(out) + len(ins)
    if len(out) > 2 or len(ins) > 2:
        return (f"no matrix form: d{of}/d{wrt} has {order} indices ({len(out)} of {of}, "
                f"{len(ins)} of {wrt}); a matrix has 2, and a vec ({kron}) form needs at most 2 "
                f"on each side")
    return (f"no matrix form: d{of}/d{wrt} has {order} indices and its terms do not split into matrix products "
            f"(nor into A {kron} B for a vec form); the index form above is the derivative")


def column_vector_notes(program: Program, names: Container[str] | None = None, ascii: bool = False) -> tuple[str, ...]:
    """A note for each one-index statement whose matrix form comes out transposed (``Y = Wᵀ X``).

    Matrix forms treat every vector as a column; a text that writes vectors as
    rows has ``y = x W`` for the same statement.

    >>> from einderiv import parse
    >>> print(column_vector_notes(parse("Y[j] = X[i] W[i,j]"))[0])
    vectors are columns here: in Y[j] = X[i] W[i,j], Wᵀ X is what a text with row vectors writes X W, X a row (the same numbers)
    """
    style = ASCII if ascii else TEXT
    notes: list[str] = []
    for s in program.statements:
        if s.rank != 1 or s.hidden or (names is not None and s.name not in names):
            continue
        form = to_matrix(s.rhs, s.lhs)
        if form is None:
            continue
        notes.extend(note for p in _products(form.node) if (note := _row_vector_note(p, s.source, style)))
    return tuple(notes)


def _row_vector_note(chain: Product, source: str, style: Style) -> str | None:
    """The note for ``Wᵀ x`` (a product ending in a vector after a transpose), or None."""
    factors = chain.factors
    last = factors[-1]
    if not (isinstance(last, Tensor) and (last.rows is None) != (last.cols is None)) or \
            not any(isinstance(f, Transpose) for f in factors[:-1]):
        return None
    row_text = " ".join(render(f.arg if isinstance(f, Transpose) else f if f is last else transpose(f), style)
                        for f in reversed(factors))
    return (f"vectors are columns here: in {source.strip()}, {render(chain, style)} is what a text "
            f"with row vectors writes {row_text}, {render(last, style)} a row (the same numbers)")


def _products(node: Node) -> list[Product]:
    """The matrix products in ``node``, outermost first (through sums, scaled terms and functions)."""
    if isinstance(node, Product):
        return [node]
    if isinstance(node, TermNode):
        return [] if node.body is None else _products(node.body)
    if isinstance(node, Sum):
        return [p for t in node.terms for p in _products(t)]
    if isinstance(node, Func):
        return [p for a in node.args for p in _products(a)]
    return []


def _label_matrices(expr: Expr, program: Program | None) -> tuple[list[Term], dict[str, str]]:
    """Each term with one summed-away label matrix ``T[n,c]`` (summed over its second index) dropped,
    and the dropped matrices with that index's name."""
    names: dict[str, str] = {}
    terms = []
    for term in expr.terms:
        factors = list(term.factors)
        summed = list(term.summed)
        for f in term.factors:
            if not (isinstance(f, Ref) and len(f.indices) == 2 and f.name not in getattr(program, "names", ())):
                continue
            inner = [i for i in f.indices if i in summed and
                     sum(i in ir.factor_indices(g) for g in factors) == 1]
            if len(inner) == 1 and f.indices[1] == inner[0] and len(factors) > 1:
                names[f.name] = ir.display_name(inner[0])
                factors.remove(f)
                summed.remove(inner[0])
                break
        terms.append(Term(term.coeff, tuple(summed), tuple(factors)))
    return terms, names


def _unit_row_sum_note(derivative: Derivative, program: Program | None, pick: Pick) -> str:
    """``; where each row of T sums to 1 …, this is (P − T) / N``: the form when a summed label matrix drops out."""
    terms, names = _label_matrices(inline_chain(derivative), program)
    elsewhere = {f.name for t in terms for f in t.factors if isinstance(f, Ref)}
    names = {n: i for n, i in names.items() if n in elsewhere}    # T both summed and as itself: (P − T)/N
    if not names:
        return ""
    form = to_matrix(simplify(Expr(tuple(terms))), derivative.out_indices + derivative.wrt_indices,
                     program=program)
    if form is None:
        return ""
    rows = ", ".join(f"Σ_{index} {name}[·,{index}] = 1" for name, index in names.items())
    which = " and ".join(names)
    return (f"; where each row of {which} sums to 1 ({rows}: one-hot labels or probabilities), "
            f"this is {pick(form)}")
