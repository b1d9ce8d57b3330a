"""The adjoint program: reverse mode written as statements of the input language.

:func:`adjoint` writes backpropagation as statements, one per node of the
program, each with its matrix form and a note saying where it comes from. Its
``text`` is itself a program: appended to the forward program it computes
every gradient. :mod:`einderiv.render.explanation` derives each step.

>>> print(adjoint("F[i,k] = W[i,j] X[j,k]", "W").text)
gW[i,j] = gF[i,k] X[j,k]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from einderiv.core import ir
from einderiv.calculus.differentiation import InlinePolicy, partial, reverse_program, slot_indices
from einderiv.errors import ProgramError
from einderiv.core.ir import Delta, Expr, Ref
from einderiv.render.latex import expr_to_latex, ref_to_latex
from einderiv.render.matrix import MatrixForm, Product, Tensor, TermNode, Transpose, to_matrix
from einderiv.language.printing import format_expr, format_ref, format_sized
from einderiv.calculus.program import Program, ancestors, as_program, definition_lines, size_sources, temporaries_used
from einderiv.language.lowering import Statement
from einderiv.core.simplify import simplify
from einderiv.names import adjoint_name, fresh

__all__ = ["AdjointStep", "AdjointProgram", "adjoint", "fresh_slots", "consumers_of", "matrix_reason", "loss_name",
           "markdown_cell", "latex_ref"]


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


def fresh_slots(tensor: str, rank: int, avoid: Sequence[str]) -> tuple[str, ...]:
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

def consumers_of(program: Program, order: Sequence[str], tensor: str) -> list[Statement]:
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
        rhs = format_sized(self.expr, fixed, self.sizers, ascii=ascii, tensors=self.tensors, always=True)
        if set(self.indices) - _array_indices(self.expr):   # an axis no array sizes: "+ 0 W[a,b]" sizes it
            rhs += f" + {shaped}"
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
            loss = loss_name(self.program, self.of, self.seed)
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
        rows = [f"**{markdown_cell(str(self).split(chr(10), 1)[0])}**", "", "| index form | matrix form | from |",
                "| --- | --- | --- |"]
        rows += [f"| `{markdown_cell(line)}` | (none) | {TEMPORARY_NOTE} |" for line in definition_lines(self.definitions)]
        rows += [f"| `{markdown_cell(s.text)}` | `{markdown_cell(s.matrix_text)}` | {markdown_cell(s.note)} |" if s.matrix_text else
                 f"| `{markdown_cell(s.text)}` | (none) | {markdown_cell(s.note)} |" for s in self.steps]
        return "\n".join(rows) + "\n"


#: The note on a temporary's definition in an adjoint program's table.
TEMPORARY_NOTE = "a temporary: part of a statement that einderiv names to keep it short"


def _statement_latex(statement: Statement) -> str:
    fixed = {i: ir.display_name(i) for i in statement.lhs}
    return f"{latex_ref(statement.name, list(fixed.values()))} = {expr_to_latex(statement.rhs, fixed)}"


def markdown_cell(text: str) -> str:
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
        why = matrix_reason(form, expr, tensors)
        if why and note.startswith("from "):
            note += f": {why}"
        steps.append(AdjointStep(gradient[tensor], tensor, indices, expr, tensors, form, note,
                                 size_sources(program, [expr])))
    # a step's expression, and a step's own name (gL_2 is the gradient of L_2), refer to temporaries
    definitions = temporaries_used(program, [step.expr for step in steps] + [ir.ref(step.of) for step in steps])
    return AdjointProgram(program, of, wrts, tuple(steps), {t: gradient[t] for t in [*statement_names, *wrts]},
                          seed_name, definitions)




def _step_key(program: Program, order: Sequence[str], tensor: str) -> tuple[int, int]:
    """Reverse order: a gradient is complete once its earliest consumer has been processed.

    A gradient nothing feeds (zero: its uses cancel, ``-h[i] + h[i]``) comes first if it is
    an intermediate's, since later steps may read it; an input's comes last.
    """
    consumers = consumers_of(program, order, tensor)
    if not consumers:
        return (-len(program.statements) - 1, 0) if tensor in program.names else (1, 0)
    first = consumers[0]          # by position: a statement and its temporaries share one number
    return (-program.statements.index(first), ir.tensor_names(first.rhs).index(tensor))


def _note(program: Program, order: Sequence[str], tensor: str, of: str,
          slots: Mapping[str, tuple[str, ...]], tensors: Mapping[str, str]) -> str:
    consumers = consumers_of(program, order, tensor)
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


def latex_ref(name: str, indices: Sequence[str]) -> str:
    return ref_to_latex(name, tuple(indices))

def matrix_reason(form: MatrixForm | None, expr: Expr, tensors: Mapping[str, str]) -> str:
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


def loss_name(program: Program, of: str, seed: str | None) -> str:
    """The scalar being differentiated: the output, or a name for the loss downstream of a tensor output."""
    if seed is None:
        return of
    taken = set(program.names) | {n for n, _ in program.inputs}
    return fresh(("L", "ℓ", "loss", "L_"), taken)
