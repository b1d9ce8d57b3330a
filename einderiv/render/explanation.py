"""Reverse mode, step by step: the adjoint program and the derivation behind it.

:func:`adjoint` (:mod:`einderiv.render.adjoint`) writes backpropagation as
statements of the input language; :func:`explain` shows the derivation of each step: the statement in index
form, its derivative with Kronecker deltas (``∂F[i,k]/∂W[a,b] = δ[i,a] X[b,k]``),
the contraction with the gradient flowing back and the deltas it eliminates
(``gF[i,k] δ[i,a] X[b,k] = gF[a,k] X[b,k]``), the matrix form (``gF Xᵀ``)
and, with ``differentials=True``, the same result by differentials and the
Frobenius product ``A : B = tr(Aᵀ B)``: ``dL = gF : (dW X) = gF Xᵀ : dW``.

>>> print(adjoint("F[i,k] = W[i,j] X[j,k]", "W").text)
gW[i,j] = gF[i,k] X[j,k]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

from einderiv.core import ir
from einderiv.core.functions import FUNCTIONS
from einderiv.calculus.differentiation import partial
from einderiv.errors import ProgramError, ShapeError
from einderiv.core.ir import Delta, Expr, Factor, Ref
from einderiv.render.latex import expr_to_latex, ref_to_latex
from einderiv.render.matrix import (Hadamard, MatrixForm, Node, Ones, Product, Tensor, TermNode, Transpose, column_vector_notes,
                          to_matrix)
from einderiv.language.printing import format_expr, format_ref
from einderiv.calculus.program import Program, ancestors, as_program, definition_lines, temporaries_used
from einderiv.language.lowering import Statement, checked_size, infer_shapes, resolve_sizes
from einderiv.core.simplify import simplify
from einderiv.names import adjoint_name, slot_of
from einderiv.render.adjoint import (AdjointProgram, AdjointStep, adjoint, consumers_of, fresh_slots, latex_ref,
                                     loss_name, markdown_cell, matrix_reason)

__all__ = ["AdjointStep", "AdjointProgram", "adjoint", "Explanation", "ExplanationRow", "explain", "ascii_text"]


# ---------------------------------------------------------------- explain

@dataclass(frozen=True)
class ExplanationRow:
    """One line of a derivation: the math (text and LaTeX) and the rule that justifies it."""

    text: str
    latex: str
    rule: str = ""


@dataclass(frozen=True)
class ExplanationSection:
    """The steps for one statement of the program."""

    title: str
    rows: tuple[ExplanationRow, ...]
    title_latex: str = ""


@dataclass(frozen=True)
class Explanation:
    """A step-by-step derivation of reverse mode; ``str()`` is the text."""

    header: str
    sections: tuple[ExplanationSection, ...]
    adjoint: AdjointProgram

    def __str__(self) -> str:
        return self.to_text()

    @property
    def text(self) -> str:
        return str(self)

    def to_text(self, ascii: bool = False) -> str:
        """The derivation as text; ``ascii=True`` spells every symbol in ASCII (``delta(i,a)``, ``d``, ``^T``)."""
        spell = ascii_text if ascii else (lambda text: text)
        out = [spell(self.header)]
        for section in self.sections:
            out.append("")
            out.append(spell(section.title))
            texts = [spell(r.text) for r in section.rows]
            width = max(map(len, texts)) if texts else 0
            for text, r in zip(texts, section.rows):
                line = f"    {text.ljust(width)}" + (f"    ({spell(r.rule)})" if r.rule else "")
                out.append(line.rstrip())
        return "\n".join(out)

    @property
    def latex(self) -> str:
        lines = [rf"&\text{{{_latex_text(line)}}}" for line in self.header.split("\n") if line.strip()]
        for section in self.sections:
            lines.append(f"&{section.title_latex}" if section.title_latex
                         else rf"&\text{{{_latex_text(section.title)}}}")
            for r in section.rows:
                rule = rf" && \text{{{_latex_text(r.rule)}}}" if r.rule else ""
                lines.append(f"&{r.latex}{rule}")
        return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"

    def _repr_latex_(self) -> str:
        return f"$${self.latex}$$"

    def __repr__(self) -> str:
        return (f"Explanation(d{self.adjoint.of}/d{', '.join(self.adjoint.wrt)}: "
                f"{len(self.sections)} statement{'s' if len(self.sections) != 1 else ''})")

    def _repr_markdown_(self) -> str:
        """The header, then one table per statement: each step and the rule behind it."""
        out = [markdown_cell(line) + "  " for line in self.header.split("\n")]
        for section in self.sections:
            out += ["", f"**`{markdown_cell(section.title.strip())}`**", "", "| step | rule |", "| --- | --- |"]
            out += [f"| `{markdown_cell(r.text.strip())}` | {markdown_cell(r.rule)} |" for r in section.rows]
        return "\n".join(out) + "\n"


def _latex_text(text: str) -> str:
    """``text`` for ``\\text{…}``: LaTeX's special characters escaped, every non-ASCII symbol as inline math."""
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("#", r"\#"), ("%", r"\%"), ("&", r"\&"),
                 ("{", r"\{"), ("}", r"\}"), ("<", r"\textless{}"), (">", r"\textgreater{}")):
        text = text.replace(a, b)
    return "".join(_SYMBOLS.get(c, (c, c))[1] if not c.isascii() else c for c in text)


# Each non-ASCII symbol the explanations print: (ASCII, LaTeX inside \text{}).
_SYMBOLS = {
    "δ": ("delta", r"$\delta$"), "∂": ("d", r"$\partial$"), "→": ("->", r"$\to$"), "ᵀ": ("^T", r"$^\top$"),
    "⊙": (".*", r"$\odot$"), "⊗": (" kron ", r"$\otimes$"), "Σ": ("sum", r"$\Sigma$"), "·": (".", r"$\cdot$"),
    "…": ("...", r"\dots{}"), "−": ("-", "-"), "∘": ("o", r"$\circ$"), "‖": ("||", r"$\|$"),
    "²": ("^2", r"$^2$"), "½": ("1/2", r"$\frac{1}{2}$"), "≥": (">=", r"$\geq$"), "≤": ("<=", r"$\leq$"),
    "×": ("x", r"$\times$"), "σ": ("sigma", r"$\sigma$"), "⁻": ("^-", r"$^{-}$"), "¹": ("1", r"$^{1}$"),
    "ℓ": ("l", r"$\ell$"), "│": ("|", "|"), "′": ("'", "'"), "⁰": ("0", r"$^{0}$"), "ⁱ": ("i", r"$^{i}$"),
    "𝐏": ("P", r"$\mathbf{P}$"), "𝐐": ("Q", r"$\mathbf{Q}$"), "𝐒": ("S", r"$\mathbf{S}$"),
    "𝐌": ("M", r"$\mathbf{M}$"), "₁": ("1", r"$_{1}$"), "₂": ("2", r"$_{2}$"), "ε": ("eps", r"$\varepsilon$"),
}


def ascii_text(text: str) -> str:
    """``text`` in ASCII: ``δ[i,a]`` as ``delta(i,a)`` (the input language's spelling), other symbols spelled out.

    >>> ascii_text("∂C[i,j]/∂A[a,b] = δ[i,a] B[b,j]    (δ elimination: k → b)")
    'dC[i,j]/dA[a,b] = delta(i,a) B[b,j]    (delta elimination: k -> b)'
    """
    text = re.sub(r"δ\[([^\[\]]*)\]", r"delta(\1)", text)
    return "".join(_SYMBOLS.get(c, ("?", ""))[0] if not c.isascii() else c for c in text)


#: ``sizes=`` of :func:`explain`: an index's size, or an input's shape.
Sizes = Mapping[str, Union[int, tuple[int, ...], list[int]]]


class _Shapes:
    """Sizes of indices and shapes of tensors, when the caller gave sizes."""

    def __init__(self, program: Program, sizes: Sizes | None):
        self.known = sizes is not None
        self.index: dict[str, int] = {}
        self.tensor: dict[str, tuple[int, ...]] = {}
        if sizes is None:
            return
        for key, value in sizes.items():
            values = value if isinstance(value, (tuple, list)) else (value,)
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
                raise ShapeError(f"sizes['{key}'] must be a non-negative integer (an index size) or a tuple of "
                                 f"them (an input's shape), got {value!r}")
            for v in values:
                checked_size(f"sizes['{key}']", v)
        user = {k: v for k, v in sizes.items() if not isinstance(v, (tuple, list))}
        shapes = {k: tuple(v) for k, v in sizes.items() if isinstance(v, (tuple, list))}
        found, _ = infer_shapes(program.statements, dict(program.inputs), shapes, user)
        for name, _ in program.inputs:
            if name not in found:
                raise ProgramError(f"the shape of input '{name}' is not fixed by the sizes given; "
                                   f"give its indices' sizes or sizes={{'{name}': (...)}}")
            shapes[name] = found[name]
        self.index, self.tensor = resolve_sizes(program.statements, shapes, user)

    def size(self, index: str | None) -> int | None:
        if index is None:
            return 1
        slot = slot_of(index)
        if slot is not None:
            shape = self.tensor.get(slot[0])
            return shape[slot[1]] if shape is not None else None
        return self.index.get(ir.index_root(index))

    def of(self, tensor: str) -> str:
        if not self.known or tensor not in self.tensor:
            return ""
        shape = self.tensor[tensor]
        return "×".join(str(n) for n in shape) if shape else "scalar"

    def of_form(self, form: MatrixForm | None) -> str:
        """``(4×5)ᵀ (4×3) → 5×3`` for a product, else the shape of the result."""
        if not self.known or form is None:
            return ""
        node = form.node
        body = node.body if isinstance(node, TermNode) and node.body is not None else node
        result = f"{self._dims(node)}"
        if isinstance(body, Product):
            return " ".join(f"({self._dims(f)})" for f in body.factors) + f" → {result}"
        return result

    def _dims(self, node: Node) -> str:
        r, c = self.size(node.rows), self.size(node.cols)
        if node.rows is None and node.cols is None:
            return "1×1"
        return f"{r if r is not None else '?'}×{c if c is not None else '?'}"


def _rules(expr: Expr, tensor: str) -> list[str]:
    """Names of the rules that differentiate ``expr`` with respect to ``tensor``."""
    rules: dict[str, None] = {}
    dependent = [t for t in expr.terms if any(_depends(f, tensor) for f in t.factors)]
    if len(expr.terms) > 1:
        rules.setdefault("sum rule")
    for term in dependent:
        factors = [f for f in term.factors if _depends(f, tensor)]
        if len(factors) > 1:
            rules.setdefault("product rule")
        for f in factors:
            if isinstance(f, ir.Call):
                rules.setdefault(f"chain rule through {f.fn}: {FUNCTIONS[f.fn].derivative_text}")
                for arg in (a for a in f.args if ir.depends_on(a, tensor)):
                    for r in _rules(arg, tensor):
                        rules.setdefault(r)
            elif isinstance(f, ir.MatFn):
                rules.setdefault(_MATRIX_RULES[f.fn])
                for r in _rules(f.arg, tensor):
                    rules.setdefault(r)
            elif isinstance(f, ir.Power):
                p = ir.constant_value(f.exponent)
                rules.setdefault("power rule" if p != -1 else "reciprocal rule")
                for r in _rules(f.base, tensor):
                    rules.setdefault(r)
    rules.setdefault(_delta_rule(expr, tensor))
    return list(rules)


def _delta_rule(expr: Expr, tensor: str) -> str:
    """``∂W[h,c]/∂W[a,b] = δ[h,a] δ[c,b]``, written with the indices of W's first use."""
    ref = _first_ref(expr, tensor)
    if ref is None or not ref.indices:
        return f"∂{tensor}/∂{tensor} = 1"
    names = [ir.display_name(i) for i in ref.indices]
    fresh = ir.fresh_names(len(names), names)
    deltas = " ".join(f"δ[{x},{a}]" for x, a in zip(names, fresh))
    return f"∂{format_ref(tensor, tuple(names))}/∂{format_ref(tensor, tuple(fresh))} = {deltas}"


def _first_ref(expr: Expr, tensor: str) -> Ref | None:
    for term in expr.terms:
        for f in term.factors:
            if isinstance(f, Ref) and f.name == tensor:
                return f
            for nested in (f.args if isinstance(f, ir.Call) else (f.base, f.exponent) if isinstance(f, ir.Power)
                           else (f.arg,) if isinstance(f, ir.MatFn) else ()):
                found = _first_ref(nested, tensor)
                if found is not None:
                    return found
    return None


# The differential identities behind the matrix functions' rules (einderiv/calculus/matrix_rules.py).
_MATRIX_RULES = {
    "inv": "inverse rule: d(A⁻¹) = -A⁻¹ dA A⁻¹, so ∂inv(A)[i,j]/∂A[a,b] = -inv(A)[i,a] inv(A)[b,j]",
    "det": "Jacobi's formula: d det A = det(A) tr(A⁻¹ dA), so ∂det(A)/∂A[a,b] = det(A) inv(A)[b,a]",
    "logdet": "log-determinant rule: d logdet A = tr(A⁻¹ dA), so ∂logdet(A)/∂A[a,b] = inv(A)[b,a]",
}


def _depends(factor: Factor, tensor: str) -> bool:
    return tensor in ir.tensor_names(Expr((ir.Term(1.0, (), (factor,)),)))


def _eliminated(expr: Expr, over: Sequence[str], names: Mapping[str, str]) -> list[str]:
    """``h → a`` for each delta that a sum over one of its indices removes."""
    out: dict[str, None] = {}
    for term in expr.terms:
        summed = set(term.summed) | set(over)
        for f in term.factors:
            if isinstance(f, Delta):
                if f.first in summed:
                    out.setdefault(f"{_name(f.first, names)} → {_name(f.second, names)}")
                elif f.second in summed:
                    out.setdefault(f"{_name(f.second, names)} → {_name(f.first, names)}")
    return list(out)


def _name(index: str, names: Mapping[str, str]) -> str:
    return names.get(index, ir.display_name(index))




def explain(program: Program | str, wrt: str | Sequence[str], of: str | None = None,
            differentials: bool = False, sizes: Sizes | None = None) -> Explanation:
    """How reverse mode computes ``d of / d wrt``: every step with the rule that justifies it.

    For each statement, from the output back: its index form; the derivative of
    its right side with Kronecker deltas and the deltas that summation removes;
    the contraction with the gradient flowing back (``gF``); the matrix form.
    ``differentials=True`` adds the view by differentials, ``dL = G : dF``
    with ``A : B = tr(Aᵀ B)``, which shows why a factor to the left of ``dW``
    lands on the left, transposed, and one to the right on the right.
    ``sizes`` (index name → size, or input name → shape) prints every shape.

    >>> e = explain("F[i,k] = W[i,j] X[j,k]", "W", differentials=True)
    >>> print(e.sections[0].rows[0].text)
    ∂F[i,k]/∂W[a,b] = δ[i,a] δ[j,b] X[j,k]
    >>> print(e.sections[0].rows[1].text.strip())
    = δ[i,a] X[b,k]
    >>> print(e.sections[0].rows[-1].text)
    dL = gF : dF = gF : (dW X) = gF Xᵀ : dW
    """
    program = as_program(program)
    adj = adjoint(program, wrt, of)
    of = adj.of
    shapes = _Shapes(program, sizes)
    order = ancestors(program, of)
    active = _active(program, order, adj.wrt)
    tensors = {adjoint_name(t): g for t, g in {**adj.gradient, of: adj.seed or f"g{of}"}.items()}
    loss = loss_name(program, of, adj.seed)
    sections = []
    for name in reversed(order):
        if name not in active:
            continue
        statement = program.statement(name)
        sections.append(_section(program, statement, active, adj, shapes, tensors, differentials, loss))
    seed = (f"the gradient {adj.seed} = ∂{loss}/∂{of} flowing into {of} from a scalar {loss} downstream is given"
            if adj.seed else f"the seed is ∂{of}/∂{of} = 1")
    header = (f"Reverse mode for the gradient of {loss} with respect to {', '.join(adj.wrt)}: "
              f"statements from {of} back to the inputs; {seed}.\n"
              f"g<T> names the gradient of {loss} with respect to T (shaped like T); "
              f"∂ of a statement is taken entry by entry with Kronecker deltas.\n"
              f"{NOTATION}")
    header += _tensor_output_note(program, of, adj)
    header += _temporaries_note(program, [program.statement(n).rhs for n in order if n in active] +
                                [step.expr for step in adj.steps])
    header += "".join(f"\nNote: {note}." for note in column_vector_notes(program, set(order)))
    if differentials:
        p, q, r, _ = _metavariables(program)
        header += (f"\nDifferentials: d{loss} = Σ_T gT : dT with {p} : {q} = Σ {p}[i,j] {q}[i,j] = tr({p}ᵀ {q}) "
                   f"({p}, {q}, {r} stand for any matrices), so {p} : ({q} {r}) = {q}ᵀ {p} : {r} = {p} {r}ᵀ : {q}.")
    return Explanation(header, tuple(sections), adj)


#: What the index notation means, said where it first appears.
NOTATION = ("Notation: δ[i,a] is 1 when i = a and 0 otherwise; an index repeated within a term is summed over "
            "(u[i,j] v[j] sums over j); to contract is to sum over the shared index.")


def _temporaries_note(program: Program, exprs: Sequence[Expr]) -> str:
    """The definitions of the temporaries ``exprs`` refer to, said before any step uses them."""
    definitions = temporaries_used(program, list(exprs))
    if not definitions:
        return ""
    return (f"\nTemporaries: parts of a statement that einderiv names "
            f"(a deep nesting, or a product of sums that would multiply out to many terms): {'; '.join(definition_lines(definitions))}.")


def _metavariables(program: Program) -> tuple[str, str, str, str]:
    """Letters for the rules' placeholders (any matrix; an elementwise factor) that the program does not use."""
    taken = set(program.names) | {n for n, _ in program.inputs}
    free = [c for c in "PQSMUVKNYZ" if c not in taken and f"d{c}" not in taken and f"g{c}" not in taken]
    return (free[0], free[1], free[2], free[3]) if len(free) >= 4 else ("𝐏", "𝐐", "𝐒", "𝐌")


def _tensor_output_note(program: Program, of: str, adj: "AdjointProgram") -> str:
    """For a tensor output: its Jacobian is higher-order; backprop's matrix is that Jacobian contracted."""
    statement = program.statement(of)
    if not statement.lhs or adj.seed is None:
        return ""
    out = [ir.display_name(i) for i in statement.lhs]
    notes = []
    for w in adj.wrt:
        rank = program.rank(w)
        slots = ir.fresh_names(rank, out)
        order = len(out) + rank
        step = adj.step(w)
        gradient = f"; backprop's {step.matrix_text}" if step.matrix is not None else ""
        notes.append(f"\n∂{format_ref(of, tuple(out))}/∂{format_ref(w, tuple(slots))} has {order} indices "
                     f"(an order-{order} tensor, not a matrix){gradient} is that Jacobian contracted with the "
                     f"upstream gradient {adj.seed} (summed over {', '.join(out)}), not the Jacobian itself.")
    return "".join(notes)






def _active(program: Program, order: Sequence[str], wrts: Sequence[str]) -> set[str]:
    active = set(wrts)
    for name in order:
        if any(t in active for t in ir.tensor_names(program.statement(name).rhs)):
            active.add(name)
    return active


def _section(program: Program, statement: Statement, active: set[str], adj: AdjointProgram, shapes: _Shapes,
             tensors: Mapping[str, str], differentials: bool, loss: str) -> ExplanationSection:
    form = to_matrix(statement.rhs, statement.lhs)
    title = f"[{statement.number}] {statement.source.strip()}"
    if statement.hidden:          # its source is the user's statement: say which part this is
        title = f"[{statement.number}] {definition_lines((statement,))[0]}      (a temporary of {statement.source.strip()})"
        form = None
    if form is not None:
        title += f"      {statement.name} = {form.text}"
    if shapes.of(statement.name):
        title += f"      ({statement.name}: {shapes.of(statement.name)})"
    rows: list[ExplanationRow] = []
    g_out = tensors[adjoint_name(statement.name)]
    is_seed = statement.name == adj.of and adj.seed is None     # a scalar temporary is no seed
    inputs = [t for t in ir.tensor_names(statement.rhs) if t in active]
    pieces: list[_Piece] = []
    for tensor in inputs:
        rows.extend(_input_rows(program, statement, tensor, adj, shapes, tensors, is_seed, pieces))
    if differentials:
        rows.extend(_differential_rows(statement, g_out, pieces, is_seed, loss, _metavariables(program)))
    fixed = {i: ir.display_name(i) for i in statement.lhs}
    title_latex = rf"\text{{[{statement.number}]}}\quad " \
                  rf"{latex_ref(statement.name, list(fixed.values()))} = {expr_to_latex(statement.rhs, fixed)}"
    if form is not None:
        title_latex += rf"\qquad {ref_to_latex(statement.name, ())} = {form.latex}"
    return ExplanationSection(title, tuple(rows), title_latex)


#: What :func:`_input_rows` leaves for the differential rows, per input: (tensor, its tangent term
#: ``Σ ∂F/∂W dW``, its contribution to the gradient, the gradient's slot indices).
_Piece = tuple[str, Expr, Expr, tuple[str, ...]]


def _input_rows(program: Program, statement: Statement, tensor: str, adj: AdjointProgram, shapes: _Shapes,
                tensors: Mapping[str, str], is_seed: bool, pieces: list[_Piece]) -> list[ExplanationRow]:
    rows = []
    rank = program.rank(tensor)
    slots = fresh_slots(tensor, rank, statement.roots)
    names = {**{i: ir.display_name(i) for i in statement.lhs}, **{s: ir.display_name(s) for s in slots}}
    out_ref = format_ref(statement.name, tuple(ir.display_name(i) for i in statement.lhs))
    in_ref = format_ref(tensor, tuple(ir.display_name(s) for s in slots))
    d_lhs = f"∂{out_ref}/∂{in_ref}"
    d_lhs_latex = rf"\frac{{\partial {latex_ref(statement.name, [names[i] for i in statement.lhs])}}}" \
                  rf"{{\partial {latex_ref(tensor, [names[s] for s in slots])}}}"
    raw = partial(statement.rhs, tensor, slots)
    local = simplify(raw)
    rules = "; ".join(_rules(statement.rhs, tensor))
    raw_text, local_text = format_expr(raw, names), format_expr(local, names)
    rows.append(ExplanationRow(f"{d_lhs} = {raw_text}", f"{d_lhs_latex} = {expr_to_latex(raw, names)}", rules))
    if local_text != raw_text:
        gone = _eliminated(raw, (), names)
        rule = "δ elimination: " + ", ".join(gone) if gone else "simplify"
        rows.append(ExplanationRow(f"{' ' * len(d_lhs)} = {local_text}", f"= {expr_to_latex(local, names)}", rule))
    g_name = tensors[adjoint_name(tensor)] if adjoint_name(tensor) in tensors else f"g{tensor}"
    g_lhs = format_ref(g_name, tuple(ir.display_name(s) for s in slots))
    g_lhs_latex = latex_ref(g_name, [names[s] for s in slots])
    if is_seed:
        contribution = local
        rows.append(ExplanationRow(f"{g_lhs} = {d_lhs} = {local_text}",
                                   f"{g_lhs_latex} = {expr_to_latex(local, names)}",
                                   f"the seed: g{statement.name} = 1"))
    else:
        g_ref = ir.ref(adjoint_name(statement.name), statement.lhs)
        product = ir.summation(statement.lhs, ir.mul(g_ref, local))
        contribution = simplify(product)
        upstream = format_ref(tensors[adjoint_name(statement.name)], tuple(ir.display_name(i) for i in statement.lhs))
        many = _many(program, tensor, adj)
        lines = [f"{g_lhs} {'+=' if many else '='} {upstream} {d_lhs}"]
        product_text = format_expr(product, names, tensors=tensors)
        lines.append(product_text)
        final_text = format_expr(contribution, names, tensors=tensors)
        gone = _eliminated(local, statement.lhs, names)
        pad = " " * len(g_lhs)
        assign = r"\mathrel{+}=" if many else "="
        rows.append(ExplanationRow(f"{lines[0]}", rf"{g_lhs_latex} {assign} "
                                   rf"{latex_ref(tensors[adjoint_name(statement.name)], [names[i] for i in statement.lhs])}"
                                   rf" {d_lhs_latex}",
                                   f"chain rule: contract with the upstream gradient over "
                                   f"{', '.join(ir.display_name(i) for i in statement.lhs) or 'nothing'}"))
        rows.append(ExplanationRow(f"{pad} = {product_text}", f"= {expr_to_latex(product, names, _lx(tensors))}"))
        if final_text != product_text:
            rows.append(ExplanationRow(f"{pad} = {final_text}", f"= {expr_to_latex(contribution, names, _lx(tensors))}",
                                       "δ elimination: " + ", ".join(gone) if gone else "simplify"))
    form = to_matrix(contribution, slots, tensors=tensors)
    if form is not None:
        shape = shapes.of_form(form)
        why = matrix_reason(form, contribution, tensors)
        rows.append(ExplanationRow(f"{g_name} {'+=' if _many(program, tensor, adj) else '='} {form.text}",
                                   f"{ref_to_latex(g_name, ())} = {form.latex}",
                                   "matrix form" + (f": {shape}" if shape else "") + (f"; why: {why}" if why else "")))
    else:
        rows.append(ExplanationRow(f"{g_name}: no matrix form", r"\text{no matrix form}",
                                   "a factor has more than two indices, or indices meet in more than two places"))
    tangent = simplify(ir.summation(slots, ir.mul(local, ir.ref(f"d{tensor}", slots))))
    pieces.append((tensor, tangent, contribution, slots))
    return rows


def _many(program: Program, tensor: str, adj: AdjointProgram) -> bool:
    order = ancestors(program, adj.of)
    return len(consumers_of(program, order, tensor)) > 1


def _lx(tensors: Mapping[str, str]) -> dict[str, str]:
    return {k: ref_to_latex(v, ()) for k, v in tensors.items()}


def _differential_rows(statement: Statement, g_out: str, pieces: Sequence[_Piece], is_seed: bool,
                       of: str, metas: tuple[str, str, str, str] = ("P", "Q", "S", "M")) -> list[ExplanationRow]:
    """``dL = G : dF = G : (dW X) = G Xᵀ : dW``, one row per input, and why each factor moves."""
    rows = []
    total = simplify(ir.add(*(tangent for _, tangent, _, _ in pieces)))
    total_form = to_matrix(total, statement.lhs)
    d_out = f"d{statement.name}"
    if total_form is not None and not is_seed:
        rows.append(ExplanationRow(f"{d_out} = {total_form.text}", f"{ref_to_latex('d' + statement.name, ())} = "
                                   f"{total_form.latex}", "the differential of the statement"))
    for tensor, tangent, contribution, slots in pieces:
        t_form = to_matrix(tangent, statement.lhs)
        c_form = to_matrix(contribution, slots, tensors={adjoint_name(statement.name): g_out})
        if t_form is None or c_form is None:
            rows.append(ExplanationRow(f"d{tensor}: no matrix form", r"\text{no matrix form}"))
            continue
        pairing = _pairing(c_form, f"d{tensor}")
        if is_seed:
            more = " + …" if len(pieces) > 1 else ""
            text = f"d{of} = {t_form.text}{more}"
            if t_form.text != pairing:
                text += f" = {pairing}{more}"
            latex = rf"{ref_to_latex('d' + of, ())} = {c_form.latex} : {ref_to_latex('d' + tensor, ())}"
            rows.append(ExplanationRow(text, latex, f"read the gradient off d{of} = {metas[0]} : d{tensor}: "
                                       f"g{tensor} = {metas[0]}"))
            continue
        else:
            piece = t_form.text if isinstance(t_form.node, Tensor) else f"({t_form.text})"
            text = f"d{of} = {g_out} : {d_out} = {g_out} : {piece} = {pairing}"
            if len(pieces) > 1:
                text = f"d{of} = … + {g_out} : {piece} + … = … + {pairing} + …"
            latex = rf"{ref_to_latex(g_out, ())} : \left({t_form.latex}\right) = {c_form.latex} : " \
                    rf"{ref_to_latex('d' + tensor, ())}"
        rows.append(ExplanationRow(text, latex, _frobenius_rule(t_form.node, f"d{tensor}", metas)))
    return rows


def _pairing(form: MatrixForm, d_name: str) -> str:
    """``G : dW`` for matrices; a row vector times the column ``db``; a dot product of vectors."""
    if form.layout == "row":
        return f"({form.text}) {d_name}"
    if form.layout == "column":
        return f"{form.operand()} · {d_name}"
    return f"{form.operand()} : {d_name}"


def _frobenius_rule(node: Node, d_name: str, metas: tuple[str, str, str, str] = ("P", "Q", "S", "M")) -> str:
    """Which Frobenius identity moves the factors around ``d_name``; ``metas`` are placeholder letters
    (any gradient, left factor, right factor, elementwise factor) that the program does not use."""
    return _frobenius_template(node, d_name).format(P=metas[0], Q=metas[1], S=metas[2], M=metas[3], d=d_name)


def _frobenius_template(node: Node, d_name: str) -> str:
    body = node.body if isinstance(node, TermNode) and node.body is not None else node
    if isinstance(body, Tensor) and body.name == d_name:
        return "{P} : {d}: the gradient passes through"
    if isinstance(body, Hadamard):
        return "{P} : ({M} ⊙ {d}) = ({P} ⊙ {M}) : {d}: elementwise factors stay, multiplied in"
    if isinstance(body, Product):
        names = [f.name if isinstance(f, Tensor) else f.arg.name if isinstance(f, Transpose) and
                 isinstance(f.arg, Tensor) else "" for f in body.factors]
        if d_name in names:
            k = names.index(d_name)
            left, right = body.factors[:k], body.factors[k + 1:]
            if isinstance(body.factors[k], Transpose) and len(body.factors) == 2 and \
                    isinstance(body.factors[0], Ones):
                return "{P} : (1 {d}ᵀ) = (1ᵀ {P}) {d}: the vector was broadcast down the rows, so its gradient sums them"
            if isinstance(body.factors[k], Transpose):
                return {(True, True): "{P} : ({Q} {d}ᵀ {S}) = {S} {P}ᵀ {Q} : {d}",
                        (True, False): "{P} : ({Q} {d}ᵀ) = {P}ᵀ {Q} : {d}",
                        (False, True): "{P} : ({d}ᵀ {S}) = {S} {P}ᵀ : {d}"}[(bool(left), bool(right))] + \
                    ": a transposed {d} turns the whole product around"
            if left and right:
                return "{P} : ({Q} {d} {S}) = {Q}ᵀ {P} {S}ᵀ : {d}: a left factor lands on the left, transposed; " \
                       "a right factor on the right, transposed"
            if left:
                return "{P} : ({Q} {d}) = {Q}ᵀ {P} : {d}: a factor on the left of {d} lands on the left, transposed"
            if right:
                return "{P} : ({d} {S}) = {P} {S}ᵀ : {d}: a factor on the right of {d} lands on the right, transposed"
    return ""
