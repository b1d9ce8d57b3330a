"""Reverse mode, step by step: the adjoint program and the derivation behind it.

:func:`adjoint` writes backpropagation as statements of the input language,
one per node of the program, each with its matrix form and a note saying
where it comes from. Its ``text`` is itself a program: appended to the
forward program it computes every gradient.

:func:`explain` shows the derivation of each step: the statement in index
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
from einderiv.calculus.differentiation import InlinePolicy, partial, reverse_program, slot_indices
from einderiv.errors import ProgramError, ShapeError
from einderiv.core.ir import Delta, Expr, Factor, Ref
from einderiv.render.latex import expr_to_latex, ref_to_latex
from einderiv.render.matrix import (Hadamard, MatrixForm, Node, Ones, Product, Tensor, TermNode, Transpose, column_vector_notes,
                          to_matrix)
from einderiv.language.printing import format_expr, format_ref
from einderiv.calculus.program import Program, ancestors, as_program, definition_lines, size_indices, temporaries_used
from einderiv.language.lowering import Statement, checked_size, infer_shapes, resolve_sizes
from einderiv.core.simplify import simplify
from einderiv.names import adjoint_name, fresh, numbered, slot_of

__all__ = ["AdjointStep", "AdjointProgram", "adjoint", "Explanation", "ExplanationRow", "explain", "ascii_text"]


# ---------------------------------------------------------------- names

def _gradient_names(program: Program, tensors: Sequence[str]) -> dict[str, str]:
    """``g`` + name for each tensor, never a name the program already uses."""
    taken = set(program.names) | {n for n, _ in program.inputs}
    names: dict[str, str] = {}
    for t in tensors:
        name = fresh([f"g{t}", f"g_{t}", f"grad_{t}"] + [f"g{t}_{k}" for k in range(1, 100)], taken)
        names[t] = name
        taken.add(name)
    return names


def _axis_names(program: Program, tensor: str) -> list[str]:
    """Index names for a tensor's axes: those of its first use, made distinct."""
    rank = program.rank(tensor)
    names: list[str | None] = [None] * rank
    for statement in program.statements:
        for occ in statement.occurrences:
            if occ.tensor == tensor and names[occ.axis] is None:
                names[occ.axis] = ir.display_name(occ.root)
    used: set[str] = set()
    spare = iter(ir.fresh_names(rank, {n for n in names if n is not None}))
    out = []
    for n in names:
        if n is None or n in used:
            n = next(spare)
        used.add(n)
        out.append(n)
    return out


def _fresh_slots(tensor: str, rank: int, avoid: Sequence[str]) -> tuple[str, ...]:
    taken = {ir.display_name(i) for i in avoid}
    return slot_indices(tensor, rank, ir.fresh_names(rank, taken))


def _wrts(program: Program, wrt: str | Sequence[str]) -> tuple[str, ...]:
    names = (wrt,) if isinstance(wrt, str) else tuple(wrt)
    if not names:
        raise ProgramError("wrt lists no input")
    for w in names:
        program.check_input(w)
    return names


# ---------------------------------------------------------------- local derivatives

def _consumers(program: Program, order: Sequence[str], tensor: str) -> list[Statement]:
    return [program.statement(n) for n in order if tensor in ir.tensor_names(program.statement(n).rhs)]


def _positions(program: Program, tensor: str, slots: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    return program.statement(tensor).lhs if tensor in program.names else slots[tensor]


def _kind(statement: Statement, tensor: str, positions: tuple[str, ...]) -> tuple[str, Expr]:
    """How ``statement`` depends on ``tensor``: identity, broadcast, elementwise or general.

    Returns the kind and the local derivative with the deltas pairing output and
    input positions removed (for elementwise: the factor the gradient is multiplied by).
    """
    local = simplify(partial(statement.rhs, tensor, positions))
    lhs = set(statement.lhs)
    stripped = []
    paired_all = True
    for term in local.terms:
        pairs = [f for f in term.factors if isinstance(f, Delta) and
                 ({f.first, f.second} & lhs) and ({f.first, f.second} & set(positions))]
        if len(pairs) != len(positions):
            paired_all = False
        rest = tuple(f for f in term.factors if f not in pairs)
        stripped.append(ir.Term(term.coeff, term.summed, rest))
    rest_expr = Expr(tuple(stripped))
    if not local.terms or not paired_all:
        return "general", local
    if ir.constant_value(rest_expr) == 1.0:
        return ("identity" if len(positions) == len(statement.lhs) else "broadcast"), rest_expr
    if len(positions) == len(statement.lhs) and not any(t.summed for t in rest_expr.terms):
        return "elementwise", rest_expr
    return "general", local


# ---------------------------------------------------------------- the adjoint program

@dataclass(frozen=True)
class AdjointStep:
    """One statement of the adjoint program: ``name[indices] = expr``, its matrix form and a note."""

    name: str
    of: str
    indices: tuple[str, ...]
    expr: Expr
    tensors: Mapping[str, str]
    matrix: MatrixForm | None
    note: str
    sizers: tuple[tuple[str, str, int, int], ...] = ()   # (summed index left as a size, tensor, axis, rank)

    @property
    def index_names(self) -> tuple[str, ...]:
        return tuple(ir.display_name(i) for i in self.indices)

    def to_text(self, ascii: bool = False) -> str:
        """``gW[h,c] = H2[n,h] gZ[n,c]`` (parseable; ``ascii=True`` for ``delta(i,a)``).

        A gradient whose indices are not all fixed by the arrays it reads (constant
        along some axis, or only a delta there: ``gA[i,a] = δ[i,a]``) gets
        ``+ 0 W[a,b]``: a zero term that fixes the sizes, so the statement runs
        without ``sizes=``.
        """
        fixed = dict(zip(self.indices, self.index_names))
        lhs = format_ref(self.name, self.index_names)
        shaped = f"0 {format_ref(self.of, self.index_names)}"
        if not self.expr.terms:   # zero, shaped like the tensor: "0 W[a,b]" fixes the sizes
            return f"{lhs} = {shaped}" if self.indices else f"{lhs} = 0"
        sized = {}
        for index, tensor, axis, rank in self.sizers:   # a size sum[i](1): "+ 0 x[i]" sizes i
            name = fresh(numbered(ir.display_name(index)), fixed.values())
            fixed[index] = name
            sized[index] = (tensor, axis, rank, name)
        rhs = format_expr(self.expr, fixed, ascii=ascii, tensors=self.tensors)
        if set(self.indices) - _array_indices(self.expr):   # an axis no array sizes: "+ 0 W[a,b]" sizes it
            rhs += f" + {shaped}"
        taken = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", rhs)) | set(fixed.values())
        for tensor, axis, rank, name in sized.values():
            others = ir.fresh_names(rank - 1, taken)
            taken.update(others)
            spare = iter(others)
            rhs += f" + 0 {format_ref(tensor, tuple(name if k == axis else next(spare) for k in range(rank)))}"
        return f"{lhs} = {rhs}"

    @property
    def text(self) -> str:
        return self.to_text()

    @property
    def matrix_text(self) -> str:
        return f"{self.name} = {self.matrix.text}" if self.matrix is not None else ""

    @property
    def latex(self) -> str:
        fixed = dict(zip(self.indices, self.index_names))
        names = {k: ref_to_latex(v, ()) for k, v in self.tensors.items()}
        lhs = ref_to_latex(self.name, self.index_names)
        return f"{lhs} = {expr_to_latex(self.expr, fixed, names)}"

    def __str__(self) -> str:
        return self.text


def _array_indices(expr: Expr) -> set[str]:
    """Indices that some tensor entry of ``expr`` carries (they are sized by an array), nested ones too."""
    found: set[str] = set()
    for term in expr.terms:
        for factor in term.factors:
            if isinstance(factor, (Ref, ir.MatFn)):     # inv(A)[i,j] is sized by A, like A[i,j]
                found.update(factor.indices)
            for nested in (factor.args if isinstance(factor, ir.Call) else
                           (factor.base, factor.exponent) if isinstance(factor, ir.Power) else ()):
                found |= _array_indices(nested)
    return found


@dataclass(frozen=True)
class AdjointProgram:
    """The reverse-mode program of ``of`` with respect to ``wrt``: one statement per step.

    ``str()`` is a table (index form │ matrix form │ note); ``text`` holds only
    the statements, a program that runs after the forward one.
    """

    program: Program
    of: str
    wrt: tuple[str, ...]
    steps: tuple[AdjointStep, ...]
    gradient: Mapping[str, str]
    seed: str | None
    definitions: tuple[Statement, ...] = ()   # the temporaries the steps refer to, defined first

    @property
    def text(self) -> str:
        return "\n".join(definition_lines(self.definitions) + [step.text for step in self.steps])

    @property
    def ascii(self) -> str:
        return "\n".join(definition_lines(self.definitions, ascii=True) +
                          [step.to_text(ascii=True) for step in self.steps])

    def step(self, tensor: str) -> AdjointStep:
        """The step computing the gradient of ``tensor``.

        >>> adjoint("F[i,k] = W[i,j] X[j,k]", "W").step("W").matrix_text
        'gW = gF Xᵀ'
        """
        for s in self.steps:
            if s.of == tensor:
                return s
        raise ProgramError(f"no step computes the gradient of '{tensor}'; "
                           f"steps: {', '.join(s.of for s in self.steps)}")

    def __str__(self) -> str:
        rows = [(line, "", TEMPORARY_NOTE) for line in definition_lines(self.definitions)]
        rows += [(s.text, s.matrix_text or "(no matrix form)", s.note) for s in self.steps]
        if self.seed:
            loss = _loss_name(self.program, self.of, self.seed)
            head = (f"Reverse mode: the gradient of a scalar {loss} downstream of {self.of} with respect to "
                    f"{', '.join(self.wrt)}, given {self.seed} = ∂{loss}/∂{self.of}")
        else:
            head = f"Reverse mode: the gradient of {self.of} with respect to {', '.join(self.wrt)}"
        return head + "\n" + _table(rows)

    @property
    def latex(self) -> str:
        lines = [_statement_latex(d).replace(" = ", " &= ", 1) + " &" for d in self.definitions]
        for s in self.steps:
            matrix = f" & {ref_to_latex(s.name, ())} = {s.matrix.latex}" if s.matrix is not None else " &"
            lines.append(s.latex.replace(" = ", " &= ", 1) + matrix)
        return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"

    def _repr_latex_(self) -> str:
        return f"$${self.latex}$$"

    def __repr__(self) -> str:
        return f"AdjointProgram(d{self.of}/d{', '.join(self.wrt)}: {len(self.steps)} steps)"

    def _repr_markdown_(self) -> str:
        """A table: each step in index form, its matrix form and where it comes from."""
        rows = [f"**{_md(str(self).split(chr(10), 1)[0])}**", "", "| index form | matrix form | from |",
                "| --- | --- | --- |"]
        rows += [f"| `{_md(line)}` | (none) | {TEMPORARY_NOTE} |" for line in definition_lines(self.definitions)]
        rows += [f"| `{_md(s.text)}` | `{_md(s.matrix_text)}` | {_md(s.note)} |" if s.matrix_text else
                 f"| `{_md(s.text)}` | (none) | {_md(s.note)} |" for s in self.steps]
        return "\n".join(rows) + "\n"


#: The note on a temporary's definition in an adjoint program's table.
TEMPORARY_NOTE = "a temporary: part of a statement that einderiv names to keep it short"


def _statement_latex(statement: Statement) -> str:
    fixed = {i: ir.display_name(i) for i in statement.lhs}
    return f"{_latex_ref(statement.name, list(fixed.values()))} = {expr_to_latex(statement.rhs, fixed)}"


def _md(text: str) -> str:
    """``text`` safe in a Markdown table cell."""
    return text.replace("<", "&lt;").replace("|", "\\|").replace("\n", " ")


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))] if rows else []
    out = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r, widths)]
        out.append("  │  ".join(cells).rstrip())
    return "\n".join(out)


def _never_inline(seed: Expr) -> InlinePolicy:
    """The inlining policy: only the seed itself; every node gets its own statement."""
    return lambda expr, consumers: expr is seed


def adjoint(program: Program | str, wrt: str | Sequence[str], of: str | None = None) -> AdjointProgram:
    """The reverse-mode (adjoint) program of ``of`` with respect to ``wrt``, one statement per node.

    The gradient of tensor ``T`` is named ``gT`` (or another name the program
    does not use). For a scalar output the seed is ``1``; for a tensor output
    the seed ``gF`` is an input: the gradient flowing into ``F``.

    >>> import numpy as np, einderiv
    >>> net = "H[n,h] = X[n,d] W[d,h]; L = H[n,h]^2"
    >>> adj = adjoint(net, "W")
    >>> print(adj.text)
    gH[n,h] = 2 H[n,h]
    gW[d,h] = gH[n,h] X[n,d]
    >>> print(adj.step("W").matrix_text)
    gW = Xᵀ gH
    >>> X, W = np.ones((2, 3)), np.ones((3, 4))
    >>> bool(np.allclose(einderiv.evaluate(net + "\\n" + adj.text, {"X": X, "W": W}, of="gW"),
    ...                  einderiv.grad(net, "W", {"X": X, "W": W})))
    True
    """
    program = as_program(program)
    of = program.resolve_output(of)
    wrts = _wrts(program, wrt)
    if of not in program.names:
        raise ProgramError(f"'{of}' is an input; the adjoint program needs a statement's output")
    order = ancestors(program, of)
    statement_names = [n for n in order if n != of]
    gradient = _gradient_names(program, [of] + statement_names + list(wrts))
    tensors = {adjoint_name(t): g for t, g in gradient.items()}
    of_statement = program.statement(of)
    if of_statement.lhs:
        seed = ir.ref(adjoint_name(of), of_statement.lhs)
        seed_name: str | None = gradient[of]
    else:
        seed = Expr((ir.Term(1.0, (), ()),))   # a fresh object: the policy inlines exactly this one
        seed_name = None
    slots = {w: slot_indices(w, program.rank(w), _axis_names(program, w)) for w in wrts}
    derived = reverse_program(program.statements, of, wrts, slots, seed, (), _never_inline(seed))
    items = []
    for s in derived.statements:
        items.append((s.of, s.indices, s.expr))
    for w, target, expr in derived.results:
        items.append((w, target, expr))
    steps = []
    for tensor, indices, expr in sorted(items, key=lambda it: _step_key(program, order, it[0])):
        form = to_matrix(expr, indices, tensors=tensors)
        note = _note(program, order, tensor, of, slots, tensors)
        why = _why(form, expr, tensors)
        if why and note.startswith("from "):
            note += f": {why}"
        steps.append(AdjointStep(gradient[tensor], tensor, indices, expr, tensors, form, note,
                                 _sizers(program, expr)))
    # a step's expression, and a step's own name (gL_2 is the gradient of L_2), refer to temporaries
    definitions = temporaries_used(program, [step.expr for step in steps] + [ir.ref(step.of) for step in steps])
    return AdjointProgram(program, of, wrts, tuple(steps), {t: gradient[t] for t in [*statement_names, *wrts]},
                          seed_name, definitions)


def _sizers(program: Program, expr: Expr) -> tuple[tuple[str, str, int, int], ...]:
    """For each size factor, a tensor axis of the program with that size: (index, tensor, axis, rank)."""
    out = []
    for index in size_indices(expr):
        root = ir.index_root(index)
        found = next(((occ.tensor, occ.axis) for s in program.statements for occ in s.occurrences
                      if occ.root == root), None)
        if found is not None:
            out.append((index, found[0], found[1], program.rank(found[0])))
    return tuple(out)


def _step_key(program: Program, order: Sequence[str], tensor: str) -> tuple[int, int]:
    """Reverse order: a gradient is complete once its earliest consumer has been processed.

    A gradient nothing feeds (zero: its uses cancel, ``-h[i] + h[i]``) comes first if it is
    an intermediate's, since later steps may read it; an input's comes last.
    """
    consumers = _consumers(program, order, tensor)
    if not consumers:
        return (-len(program.statements) - 1, 0) if tensor in program.names else (1, 0)
    first = consumers[0]          # by position: a statement and its temporaries share one number
    return (-program.statements.index(first), ir.tensor_names(first.rhs).index(tensor))


def _note(program: Program, order: Sequence[str], tensor: str, of: str,
          slots: Mapping[str, tuple[str, ...]], tensors: Mapping[str, str]) -> str:
    consumers = _consumers(program, order, tensor)
    if not consumers:
        return f"{of} does not depend on {tensor}"
    if len(consumers) > 1:
        return f"{tensor} feeds {', '.join(s.name for s in consumers)}: their contributions add up"
    (statement,) = consumers
    kind, local = _kind(statement, tensor, _positions(program, tensor, slots))
    if kind == "identity":
        return f"∂{statement.name}/∂{tensor} is the identity: the gradient passes through"
    if kind == "broadcast":
        positions = set(_positions(program, tensor, slots))
        local_d = simplify(partial(statement.rhs, tensor, _positions(program, tensor, slots)))
        paired = {i for t in local_d.terms for f in t.factors if isinstance(f, Delta)
                  for i in (f.first, f.second) if i not in positions}
        missing = [ir.display_name(i) for i in statement.lhs if i not in paired]
        return f"{tensor} is broadcast along {', '.join(missing)}: its gradient sums over {', '.join(missing)}"
    if kind == "elementwise":
        form = to_matrix(local, statement.lhs, tensors=tensors)
        factor = form.text if form is not None else format_expr(local)
        return f"elementwise: times ∂{statement.name}/∂{tensor} = {factor}"
    form = to_matrix(statement.rhs, statement.lhs)
    if form is not None:
        return f"from {statement.name} = {form.text}"
    return f"from statement {statement.number}: {statement.source.strip()}"


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
        out = [_md(line) + "  " for line in self.header.split("\n")]
        for section in self.sections:
            out += ["", f"**`{_md(section.title.strip())}`**", "", "| step | rule |", "| --- | --- |"]
            out += [f"| `{_md(r.text.strip())}` | {_md(r.rule)} |" for r in section.rows]
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


def _latex_ref(name: str, indices: Sequence[str]) -> str:
    return ref_to_latex(name, tuple(indices))


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
    loss = _loss_name(program, of, adj.seed)
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


def _why(form: MatrixForm | None, expr: Expr, tensors: Mapping[str, str]) -> str:
    """One line on why a product's factors sit where they do: ``the shared index n is X's first axis, …``."""
    if form is None:
        return ""
    node = form.node
    body = node.body if isinstance(node, TermNode) and node.body is not None else node
    if not isinstance(body, Product) or len(expr.terms) != 1:
        return ""
    (term,) = expr.terms
    refs = {tensors.get(f.name, f.name): f for f in term.factors if isinstance(f, Ref)}
    reasons = []
    last = len(body.factors) - 1
    for k, factor in enumerate(body.factors):
        tensor = factor.arg if isinstance(factor, Transpose) and isinstance(factor.arg, Tensor) else factor
        transposed = tensor is not factor
        if not isinstance(tensor, Tensor) or tensor.name not in refs:
            continue
        ref = refs[tensor.name]
        shared = [(axis, i) for axis, i in enumerate(ref.indices) if i in term.summed]
        if len(ref.indices) != 2 or len(shared) != 1:
            continue
        axis, index = shared[0]
        place = "on the left" if k == 0 else "on the right" if k == last else "in the middle"
        which = "first" if axis == 0 else "second"
        if transposed:
            reasons.append(f"the shared index {ir.display_name(index)} is {tensor.name}'s {which} axis, "
                           f"so {tensor.name} enters transposed, {place}")
        elif (k == 0 and axis == 1) or (k == last and axis == 0):
            reasons.append(f"the shared index {ir.display_name(index)} is {tensor.name}'s {which} axis, "
                           f"so {tensor.name} enters as it is, {place}")
    transposed_only = [r for r in reasons if "transposed" in r]
    return "; ".join(transposed_only or reasons)


def _loss_name(program: Program, of: str, seed: str | None) -> str:
    """The scalar being differentiated: the output, or a name for the loss downstream of a tensor output."""
    if seed is None:
        return of
    taken = set(program.names) | {n for n, _ in program.inputs}
    return fresh(("L", "ℓ", "loss", "L_"), taken)


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
                  rf"{_latex_ref(statement.name, list(fixed.values()))} = {expr_to_latex(statement.rhs, fixed)}"
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
    slots = _fresh_slots(tensor, rank, statement.roots)
    names = {**{i: ir.display_name(i) for i in statement.lhs}, **{s: ir.display_name(s) for s in slots}}
    out_ref = format_ref(statement.name, tuple(ir.display_name(i) for i in statement.lhs))
    in_ref = format_ref(tensor, tuple(ir.display_name(s) for s in slots))
    d_lhs = f"∂{out_ref}/∂{in_ref}"
    d_lhs_latex = rf"\frac{{\partial {_latex_ref(statement.name, [names[i] for i in statement.lhs])}}}" \
                  rf"{{\partial {_latex_ref(tensor, [names[s] for s in slots])}}}"
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
    g_lhs_latex = _latex_ref(g_name, [names[s] for s in slots])
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
                                   rf"{_latex_ref(tensors[adjoint_name(statement.name)], [names[i] for i in statement.lhs])}"
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
        why = _why(form, contribution, tensors)
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
    return len(_consumers(program, order, tensor)) > 1


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
