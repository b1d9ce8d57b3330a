"""The parsed program and its symbolic derivatives.

>>> p = parse("F[i,k] = W[i,j] X[j,k]")
>>> print(p.derivative("W"))
dF[i,k]/dW[a,b] = δ[i,a] X[b,k]
>>> print(p.derivative("X"))
dF[i,k]/dX[a,b] = W[i,a] δ[k,b]
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, replace
from typing import Sequence

from einderiv import names as names_
from einderiv.core import ir
from einderiv.core.caching import MAX_TEXT, bounded_cache
from einderiv.calculus.differentiation import DerivedStatement, display_inline, reverse_program, slot_indices
from einderiv.errors import EinderivWarning, ProgramError, depth_guard
from einderiv.core.ir import Expr, Term
from einderiv.language.parsing import parse_text
from einderiv.language.printing import SizeSource, format_expr, format_ref, format_sized, plural
from einderiv.language.lowering import Statement, analyse, dependencies
from einderiv.core.simplify import simplify

__all__ = ["Program", "Derivative", "parse", "as_program", "temporaries_used", "definition_lines"]


@dataclass(frozen=True)
class Program:
    """A checked program: statements in order, the inputs with their ranks.

    Build one with :func:`parse`. Immutable and hashable by its text.
    """

    text: str
    statements: tuple[Statement, ...]
    inputs: tuple[tuple[str, int], ...]
    warnings: tuple[str, ...]

    def __hash__(self) -> int:
        return hash(self.text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Program) and other.text == self.text

    @property
    def output(self) -> str:
        """The default output: the tensor the last statement defines."""
        return self.statements[-1].name

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        """The tensors the statements define, in order."""
        return tuple(s.name for s in self.statements)

    @functools.cached_property
    def _by_name(self) -> dict[str, Statement]:
        return {s.name: s for s in self.statements}

    @functools.cached_property
    def _ranks(self) -> dict[str, int]:
        return {**dict(self.inputs), **{s.name: s.rank for s in self.statements}}

    def statement(self, name: str) -> Statement:
        """The statement defining ``name``."""
        found = self._by_name.get(name)
        if found is not None:
            return found
        raise ProgramError(f"'{name}' is not defined by any statement; defined: {', '.join(self.names)}")

    def rank(self, name: str) -> int:
        """Number of indices of a tensor of the program (input or statement)."""
        rank = self._ranks.get(name) if isinstance(name, str) else None
        if rank is not None:
            return rank
        raise ProgramError(f"'{name}' is not a tensor of this program; "
                           f"inputs: {', '.join(n for n, _ in self.inputs) or 'none'}; "
                           f"defined: {', '.join(self.names)}")

    def check_input(self, name: str, hint: str | None = None) -> None:
        """Refuse ``name`` unless it is an input: a tensor a statement defines, or no tensor of the
        program, is a :class:`ProgramError`; ``hint`` replaces the advice after the first.

        >>> parse("y[i] = 2 x[i]").check_input("y")
        Traceback (most recent call last):
        ...
        einderiv.errors.ProgramError: 'y' is defined by a statement; differentiate with respect to an input (x)
        """
        if name in self.names:
            raise ProgramError(f"'{name}' is defined by a statement; " + (
                hint or f"differentiate with respect to an input ({', '.join(n for n, _ in self.inputs)})"))
        self.rank(name)

    def not_an_input(self, name: str) -> str:
        """Why ``name`` is no input, for a message: ``"is defined by a statement"`` or ``"is not an input of the program"``."""
        return "is defined by a statement" if name in self.names else "is not an input of the program"

    def resolve_output(self, of: str | None) -> str:
        """``of`` checked, or the default output."""
        if of is None:
            return self.output
        self.rank(of)
        return of

    def derivative(self, wrt: str, of: str | None = None) -> "Derivative":
        """The symbolic derivative ``d of / d wrt`` in index form with Kronecker deltas.

        >>> print(parse("L = x[i] A[i,j] x[j]").derivative("x"))
        dL/dx[a] = A[a,j] x[j] + x[i] A[i,a]
        """
        of = self.resolve_output(of)
        if not isinstance(wrt, str):
            raise ProgramError(f"wrt must be the name of an input, got {wrt!r}")
        if wrt in self.names:
            return _local_derivative(self, of, wrt)
        with depth_guard(f"the derivative of '{of}'"):
            return _derivative(self, of, wrt)

    def cut(self, wrts: "tuple[str, ...] | list[str]", of: str | None = None) -> "Program":
        """The program with the statements of ``wrts`` removed, so that each becomes an input.

        What is kept: the statements ``of`` depends on, walking back from ``of``
        and stopping at ``wrts``. A derivative of the result with respect to an
        intermediate is its *local* (partial) Jacobian: the other statements keep
        their own inputs, even where those are the intermediate's ancestors.

        >>> p = parse("H[n,c] = A[n,h] W[h,c]; Z[n,c] = H[n,c] + b[c]")
        >>> p.cut(["H"], "Z").text
        'Z[n,c] = H[n,c] + b[c]'
        >>> print(p.derivative("H", of="Z"))
        dZ[n,c]/dH[a,b] = δ[n,a] δ[c,b]
        """
        of = self.resolve_output(of)
        cut = [w for w in wrts if w in self.names]
        if not cut:
            return self
        if of in cut:
            raise ProgramError(f"'{of}' is both the output and a tensor to differentiate with respect to: "
                               f"d{of}/d{of} is the identity, a product of Kronecker deltas")
        table = self._by_name
        seen: set[str] = set()
        stack = [of]
        while stack:
            name = stack.pop()
            if name in seen or name in cut or name not in table:
                continue
            seen.add(name)
            stack.extend(ir.tensor_names(table[name].rhs))
        missing = [w for w in cut if not _reaches(self, of, w)]
        if missing:
            raise ProgramError(f"'{of}' does not depend on '{missing[0]}': its derivative is zero")
        text = "\n".join(s.source.strip() for s in self.statements if s.name in seen and not s.hidden)
        return _parse_cached(text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        inputs = ", ".join(name for name, _ in self.inputs) or "none"
        if len(self.names) == 1:
            return f"Program({short(self.statements[0].source.strip())!r}; inputs {inputs})"
        return f"Program({len(self.names)} statements {short(', '.join(self.names), 60)}; inputs {inputs})"

    def _repr_latex_(self) -> str:
        from einderiv.render.latex import display_latex, to_latex
        return display_latex(to_latex(self))


def short(text: str, width: int = 100) -> str:
    """``text`` on one line, cut to ``width`` characters with ``…`` (for ``repr``).

    >>> short("a\\nb")
    'a; b'
    """
    text = "; ".join(line.strip() for line in text.split("\n") if line.strip())
    return text if len(text) <= width else text[:width - 1] + "…"


@bounded_cache(max_entries=512, max_weight=MAX_TEXT)
def _parse_cached(text: str) -> Program:
    tree = parse_text(text)
    with depth_guard("the program"):
        statements, input_ranks, warns = analyse(tree)
    return Program(text, statements, tuple(input_ranks.items()), warns + _matrix_habit_warnings(statements))


@bounded_cache(max_entries=1024, max_weight=MAX_TEXT)
def ancestors(program: Program, *names: str) -> tuple[str, ...]:
    """The statements ``names`` depend on, those of ``names`` included, in program order (cached per program).

    >>> ancestors(parse("a[i] = x[i]; b[i] = y[i]; c[i] = a[i]"), "c")
    ('a', 'c')
    """
    return dependencies(program.statements, names)


def _matrix_habit_warnings(statements: tuple[Statement, ...]) -> tuple[str, ...]:
    """A warning for each ``C = A B``: capitalised names written without indices are scalars here.

    >>> print(_matrix_habit_warnings(_parse_cached("C = A B").statements)[0])
    statement 1 (line 1: C = A B): A and B have no indices, so they are scalars and this is a product of numbers; for matrices write the indices: C[i,j] = A[i,k] B[k,j]
    """
    found = []
    # a statement's own scalars (einderiv's temporaries, or L_1 = a + 1 as printed and read back) are
    # scalars by definition, not matrices written by habit
    defined = {s.name for s in statements}
    for s in statements:
        if s.lhs or s.hidden:
            continue
        for term in s.rhs.terms:
            if any(isinstance(f, ir.Ref) and f.name in defined for f in term.factors):
                continue
            names = [f.name for f in term.factors if isinstance(f, ir.Ref) and not f.indices]
            if len(names) < 2 or len(names) != len(term.factors) or sum(n[:1].isupper() for n in names) < 2:
                continue
            inner = iter(ir.fresh_names(len(names) - 1, {"i", "j"}, "klmnpqrstuvw"))
            axes = ["i"] + [next(inner) for _ in names[1:]] + ["j"]
            product = " ".join(f"{n}[{axes[k]},{axes[k + 1]}]" for k, n in enumerate(names))
            listed = ", ".join(names[:-1]) + f" and {names[-1]}"
            found.append(f"{s.where()}: {listed} have no indices, so they are scalars and this is a product of "
                         f"numbers; for matrices write the indices: {s.name}[i,j] = {product}")
            break
    return tuple(found)


def parse(text: str) -> Program:
    """Parse and check a program; warns (:class:`EinderivWarning`) about the summation trap.

    >>> parse("y[i] = A[i,j] x[j]").inputs
    (('A', 2), ('x', 1))
    """
    program = _parse_cached(text) if isinstance(text, str) else _parse_cached.__wrapped__(text)
    for message in program.warnings:
        warnings.warn(message, EinderivWarning, stacklevel=2)
    return program


def as_program(program: "Program | str") -> Program:
    """A Program from a Program or source text; text is checked, and warned about, as by :func:`parse`."""
    if isinstance(program, Program):
        return program
    if isinstance(program, str):
        parsed = _parse_cached(program)
        for message in parsed.warnings:
            warnings.warn(message, EinderivWarning, stacklevel=3)
        return parsed
    raise ProgramError(f"expected program text or a parsed Program, got {type(program).__name__}")


# ---------------------------------------------------------------- derivatives

@dataclass(frozen=True)
class Derivative:
    """``d of / d wrt`` in index form: a final expression, after any named intermediates.

    ``str()`` gives the Unicode text, :meth:`to_text` the ASCII one.
    ``out_indices`` and ``wrt_indices`` are the free indices (output first, the
    Jacobian layout); ``chain`` holds adjoints too large to inline.
    """

    of: str
    wrt: str
    out_indices: tuple[str, ...]
    wrt_indices: tuple[str, ...]
    expr: Expr
    chain: tuple[DerivedStatement, ...]
    definitions: tuple[Statement, ...] = ()     # temporaries the text refers to, when not written out in place
    sizes: tuple[SizeSource, ...] = ()          # a tensor axis sizing each sum[i](1) (see format_sized)

    def _names(self) -> dict[str, str]:
        return {i: ir.display_name(i) for i in self.out_indices + self.wrt_indices}

    def _tensor_names(self) -> dict[str, str]:
        return {s.name: f"d{self.of}/d{s.of}" for s in self.chain}

    def lhs_text(self) -> str:
        names = self._names()
        out = format_ref(self.of, tuple(names[i] for i in self.out_indices))
        wrt = format_ref(self.wrt, tuple(names[i] for i in self.wrt_indices))
        return f"d{out}/d{wrt}"

    def to_text(self, ascii: bool = False) -> str:
        """The derivative as text; ``ascii=True`` writes ``delta(i,a)`` for ``δ[i,a]``."""
        names = self._names()
        tensors = self._tensor_names()
        lines = []
        with depth_guard(f"the derivative of '{self.of}'"):
            lines.extend(definition_lines(self.definitions, ascii))
            for link in self.chain:
                fixed = chain_index_names(link.indices)
                lhs = format_ref(tensors[link.name], tuple(fixed[i] for i in link.indices))
                lines.append(f"{lhs} = {format_sized(link.expr, fixed, self.sizes, ascii=ascii, tensors=tensors)}")
            lines.append(f"{self.lhs_text()} = {format_sized(self.expr, names, self.sizes, ascii=ascii, tensors=tensors)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        lines = self.to_text().split("\n")
        more = f" (after {len(lines) - 1} named {plural(len(lines) - 1, 'intermediate')})" if len(lines) > 1 else ""
        return f"Derivative({short(lines[-1])}){more}"

    def _repr_latex_(self) -> str:
        from einderiv.render.latex import display_latex, to_latex
        return display_latex(to_latex(self))


def chain_index_names(indices: tuple[str, ...]) -> dict[str, str]:
    """Display names for the indices of a named intermediate, distinct from each other.

    An intermediate's indices are the output's followed by its tensor's own, and the
    two may share a name (``dy/dh`` of ``h[i] = …; y[i] = …``); a clash gets a fresh
    letter, so the line reads ``dy/dh[i,a]``, never ``[i,i]``.

    >>> chain_index_names(("i@y.0", "i#1"))
    {'i@y.0': 'i', 'i#1': 'a'}
    """
    shown = [ir.display_name(i) for i in indices]
    clashes = [k for k, name in enumerate(shown) if name in shown[:k]]
    spare = iter(ir.fresh_names(len(clashes), set(shown)))
    for k in clashes:
        shown[k] = next(spare)
    return dict(zip(indices, shown))


def output_slots(program: Program, of: str) -> tuple[str, ...]:
    """Indices naming the output's axes in a Jacobian (the names its statement uses)."""
    rank = program.rank(of)
    if of in program.names:
        names = [ir.display_name(i) for i in program.statement(of).lhs]
    else:
        names = ir.fresh_names(rank, (), "ijklmnop")
    return names_.slot_indices(of, names)


def wrt_slots(program: Program, wrt: str, avoid: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Fresh indices ``a, b, …`` (then ``a1, b1, …``) for the input's axes, avoiding the output's names."""
    taken = {ir.display_name(i) for i in avoid}
    return slot_indices(wrt, program.rank(wrt), ir.fresh_names(program.rank(wrt), taken))


def jacobian_seed(out: tuple[str, ...], positions: tuple[str, ...]) -> Expr:
    """``Π δ[out_m, position_m]``: the adjoint of the output in a full Jacobian."""
    return ir.mul(*(ir.delta(o, p) for o, p in zip(out, positions)))


def _reaches(program: Program, of: str, name: str) -> bool:
    """Whether ``of`` is computed from the tensor ``name`` (directly or through statements)."""
    table = {s.name: s for s in program.statements}
    seen: set[str] = set()
    stack = [of]
    while stack:
        current = stack.pop()
        if current in seen or current not in table:
            continue
        seen.add(current)
        used = ir.tensor_names(table[current].rhs)
        if name in used:
            return True
        stack.extend(used)
    return False


def _local_derivative(program: Program, of: str, wrt: str) -> Derivative:
    """``d of / d wrt`` for an intermediate ``wrt``: the derivative in the cut program (see :meth:`Program.cut`)."""
    program.rank(wrt)
    if of == wrt:
        out = output_slots(program, of)
        slots = wrt_slots(program, wrt, out)
        return Derivative(of, wrt, out, slots, jacobian_seed(out, slots), ())
    if not _reaches(program, of, wrt):
        out = output_slots(program, of)
        return Derivative(of, wrt, out, wrt_slots(program, wrt, out), ir.ZERO, ())
    cut = program.cut([wrt], of)
    with depth_guard(f"the derivative of '{of}'"):
        return _derivative(cut, of, wrt)


@bounded_cache(max_entries=256, max_weight=MAX_TEXT)
def _derivative(program: Program, of: str, wrt: str) -> Derivative:
    program.check_input(wrt)
    out = output_slots(program, of)
    slots = wrt_slots(program, wrt, out)
    if of not in program.names:
        expr = jacobian_seed(out, slots) if of == wrt else ir.ZERO
        return Derivative(of, wrt, out, slots, expr, ())
    seed = jacobian_seed(out, program.statement(of).lhs)
    derived = reverse_program(program.statements, of, [wrt], {wrt: slots}, seed, out, display_inline)
    (_, _, expr), = derived.results
    slots, expr = _slots_apart_from_sizes(program, wrt, out, slots, expr)
    chain = tuple(replace(link, expr=_sizes_named_alike(program, link.expr)) for link in derived.statements)
    d = _folded(program, _shown(program, Derivative(of, wrt, out, slots, _sizes_named_alike(program, expr), chain)))
    return replace(d, sizes=size_sources(program, [link.expr for link in d.chain] + [d.expr]))


def _sizes_named_alike(program: Program, expr: Expr) -> Expr:
    """Each ``sum[i](1)`` made one size with another ``i`` of ``expr`` where the two surely have one
    size: one is sized by name (sizes given by name hold wherever the name is used), or both by one
    tensor axis. The printer then lets it keep the name ``i`` (its own sum binds it), never ``i1``,
    a name nothing sizes."""
    sources: dict[str, set[tuple[str, int]]] = {}      # root → the tensor axes that size it
    for statement in program.statements:
        for occ in statement.occurrences:
            sources.setdefault(occ.root, set()).add((occ.tensor, occ.axis))
    roots: dict[str, list[str]] = {}
    for index in _array_or_bound_indices(expr):
        named = roots.setdefault(ir.display_name(index), [])
        if ir.index_root(index) not in named:
            named.append(ir.index_root(index))
    mapping = {}
    for k, index in enumerate(sorted(size_indices(expr))):
        root, own = ir.index_root(index), sources.get(ir.index_root(index), set())
        alike = [r for r in roots.get(ir.display_name(index), []) if r != root and
                 (not own or not sources.get(r) or own & sources[r])]     # by name, or by one tensor axis
        if alike and root not in roots.get(ir.display_name(index), []):
            mapping[index] = names_.variant(alike[0], f"size{k}")
    return _resized(expr, mapping) if mapping else expr


def _array_or_bound_indices(expr: Expr) -> list[str]:
    """Every index of ``expr`` but those of its size factors, nested ones too."""
    found: list[str] = []
    for term in expr.terms:
        found.extend(term.summed)
        for factor in term.factors:
            if not isinstance(factor, ir.Size):
                found.extend(ir.factor_indices(factor))
            for nested in (factor.args if isinstance(factor, ir.Call) else
                           (factor.base, factor.exponent) if isinstance(factor, ir.Power) else ()):
                found.extend(_array_or_bound_indices(nested))
    return found


def _resized(expr: Expr, mapping: dict[str, str]) -> Expr:
    """``expr`` with the indices of its size factors renamed by ``mapping``."""
    def factor(f: ir.Factor) -> ir.Factor:
        if isinstance(f, ir.Size):
            return ir.Size(mapping.get(f.index, f.index))
        if isinstance(f, ir.Call):
            return replace(f, args=tuple(_resized(a, mapping) for a in f.args))
        if isinstance(f, ir.Power):
            return ir.Power(_resized(f.base, mapping), _resized(f.exponent, mapping))
        return f
    return Expr(tuple(Term(t.coeff, t.summed, tuple(factor(f) for f in t.factors)) for t in expr.terms))


def _slots_apart_from_sizes(program: Program, wrt: str, out: tuple[str, ...], slots: tuple[str, ...],
                            expr: Expr) -> tuple[tuple[str, ...], Expr]:
    """Slots named apart from the ``sum[a](1)`` factors of ``expr``: those are sized by their name
    alone, so a slot ``a`` would push one to ``a1``, a name nothing sizes when read back.

    >>> print(parse("L = sum[a](1) x[i] + x[i]^2").derivative("x"))
    dL/dx[b] = sum[a](1) + 2 x[b]
    """
    sizes = {ir.display_name(i) for i in size_indices(expr)}
    if not any(ir.display_name(s) in sizes for s in slots):
        return slots, expr
    taken = tuple(out) + tuple(names_.statement_index(name, "size") for name in sorted(sizes))
    renamed = wrt_slots(program, wrt, taken)
    return renamed, ir.rename(expr, dict(zip(slots, renamed)))


def size_sources(program: Program, exprs: Sequence[Expr]) -> tuple[SizeSource, ...]:
    """For each ``sum[i](1)`` factor of ``exprs``, a tensor axis of the program with that size:
    (index, tensor, axis, rank), what :func:`~einderiv.language.printing.format_sized` writes as
    ``+ 0 x[i]`` where the printed name of ``i`` alone would size nothing.

    >>> size_sources(parse("y = sum[i](x[i] + 1)"), [parse("y = sum[i](x[i] + 1)").derivative("x").expr])
    ()
    """
    out = []
    for expr in exprs:
        for index in size_indices(expr):
            root = ir.index_root(index)
            found = next(((occ.tensor, occ.axis) for s in program.statements for occ in s.occurrences
                          if occ.root == root), None)
            if found is not None:
                out.append((index, found[0], found[1], program.rank(found[0])))
    return tuple(dict.fromkeys(out))


def size_indices(expr: Expr) -> dict[str, None]:
    """Indices of the ``sum[i](1)`` (size) factors of ``expr``, nested ones too, first occurrence first.

    >>> [ir.display_name(i) for i in size_indices(parse("y = sum[i](1) + exp(sum[j](1))").statement("y").rhs)]
    ['i', 'j']
    """
    found: dict[str, None] = {}
    for term in expr.terms:
        for factor in term.factors:
            if isinstance(factor, ir.Size):
                found.setdefault(factor.index)
            for nested in (factor.args if isinstance(factor, ir.Call) else
                           (factor.base, factor.exponent) if isinstance(factor, ir.Power) else ()):
                found.update(size_indices(nested))
    return found


#: Folding the program's definitions back is tried on derivatives up to this many terms.
FOLD_TERMS = 16


def _folded(program: Program, d: Derivative) -> Derivative:
    """``d`` written with the program's named intermediates where that is shorter:
    ``exp(S[a,b]) / sum[d](exp(S[a,d]))`` becomes ``P[a,b]`` when a statement defines ``P`` so."""
    from einderiv.calculus.folding import fold_definitions
    patterns = [s for s in program.statements if not s.hidden]
    if not patterns or d.definitions or len(d.expr.terms) > FOLD_TERMS or \
            any(len(s.expr.terms) > FOLD_TERMS for s in d.chain):
        return d
    chain = tuple(replace(s, expr=_shorter(s.expr, fold_definitions(s.expr, patterns)))
                  for s in d.chain)
    return replace(d, expr=_shorter(d.expr, fold_definitions(d.expr, patterns)), chain=chain)


def _shorter(expr: Expr, folded: Expr) -> Expr:
    """``folded`` if it is shorter and removes each function it folds away entirely, else ``expr``.

    Half a fold (``y − σ(z)²`` for ``σ(z) (1 − σ(z))`` with ``y = σ(z)``) hides a pattern a reader knows."""
    if len(format_expr(folded)) >= len(format_expr(expr)):
        return expr
    before, after = _call_counts(expr), _call_counts(folded)
    if any(0 < after.get(fn, 0) < count for fn, count in before.items()):
        return expr
    return folded


def _call_counts(expr: Expr) -> dict[str, int]:
    """How often each function is called in ``expr``, nested calls too."""
    counts: dict[str, int] = {}
    for term in expr.terms:
        for f in term.factors:
            if isinstance(f, ir.Call):
                counts[f.fn] = counts.get(f.fn, 0) + 1
            for nested in (f.args if isinstance(f, ir.Call) else (f.base, f.exponent) if isinstance(f, ir.Power)
                           else ()):
                for name, k in _call_counts(nested).items():
                    counts[name] = counts.get(name, 0) + k
    return counts


#: Temporaries are written out in place in a derivative while it keeps at most this many factors.
SHORT_FACTORS = 40
SHORT_TERMS = 8


class _TooLong(Exception):
    pass


def _shown(program: Program, d: Derivative) -> Derivative:
    """``d`` with the program's temporaries written out in place where that stays short,
    else with their definitions attached (printed first, as a chain)."""
    hidden = {s.name: s for s in program.statements if s.hidden}
    if not hidden:
        return d
    exprs = [s.expr for s in d.chain] + [d.expr]
    named = [ir.ref(s.of, ()) for s in d.chain if s.of in hidden]    # a chain line d L/d L_1 names one
    if not named and not any(name in hidden for e in exprs for name in ir.tensor_names(e)):
        return d
    try:
        if named:
            raise _TooLong
        inlined = [_inline(e, hidden, [SHORT_FACTORS]) for e in exprs]
    except _TooLong:
        return replace(d, definitions=_definitions(exprs + named, hidden, program))
    chain = tuple(replace(s, expr=e) for s, e in zip(d.chain, inlined))
    return replace(d, expr=inlined[-1], chain=chain)


def temporaries_used(program: Program, exprs: "list[Expr] | tuple[Expr, ...]") -> tuple[Statement, ...]:
    """The program's hidden temporaries that ``exprs`` refer to, and those they refer to in turn,
    in program order: the definitions a printed form needs before its first line to read back.

    >>> p = parse("L = (a + 1) * (b + 1) * (c + 1) * (d + 1) * (x[i] + 1)")
    >>> [s.name for s in temporaries_used(p, [p.statement("L").rhs])]
    ['L_1', 'L_2', 'L_3', 'L_4']
    """
    hidden = {s.name: s for s in program.statements if s.hidden}
    return _definitions(list(exprs), hidden, program) if hidden else ()


def definition_lines(definitions: "tuple[Statement, ...]", ascii: bool = False) -> list[str]:
    """``L_1 = a + 1``: each temporary as a statement of the language, in the order given.

    >>> p = parse("L = (a + 1) * (b + 1) * (c + 1) * (d + 1) * (x[i] + 1)")
    >>> definition_lines(p.statements[:1])
    ['L_1 = a + 1']
    """
    lines = []
    for s in definitions:
        fixed = {i: ir.display_name(i) for i in s.lhs}
        lines.append(f"{format_ref(s.name, tuple(fixed[i] for i in s.lhs))} = {format_expr(s.rhs, fixed, ascii=ascii)}")
    return lines


def _definitions(exprs: list[Expr], hidden: dict[str, Statement], program: Program) -> tuple[Statement, ...]:
    """The temporaries ``exprs`` refer to, and those they refer to in turn, in program order."""
    needed: set[str] = set()
    stack = [name for e in exprs for name in ir.tensor_names(e) if name in hidden]
    while stack:
        name = stack.pop()
        if name not in needed:
            needed.add(name)
            stack.extend(t for t in ir.tensor_names(hidden[name].rhs) if t in hidden)
    return tuple(s for s in program.statements if s.name in needed)


def _inline(expr: Expr, hidden: dict[str, Statement], budget: list[int]) -> Expr:
    """``expr`` with every temporary replaced by its definition; :class:`_TooLong` past ``budget`` factors."""
    if not any(name in hidden for name in ir.tensor_names(expr)):
        return expr
    terms: list[Term] = []
    for term in expr.terms:
        pieces = [ir.const(term.coeff)] + [_inline_factor(f, hidden, budget) for f in term.factors]
        count = 1
        for piece in pieces:
            count *= len(piece.terms)
        if len(terms) + count > SHORT_TERMS:           # a temporary that is a sum would multiply out
            raise _TooLong
        terms.extend(ir.summation(term.summed, ir.mul(*pieces)).terms)
    return simplify(Expr(tuple(terms)))


def _inline_factor(factor: ir.Factor, hidden: dict[str, Statement], budget: list[int]) -> Expr:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLong
    if isinstance(factor, ir.Ref) and factor.name in hidden:
        definition = hidden[factor.name]
        return ir.rename(_inline(definition.rhs, hidden, budget), dict(zip(definition.lhs, factor.indices)))
    if isinstance(factor, ir.Call):
        return ir.call(factor.fn, [_inline(a, hidden, budget) for a in factor.args])
    if isinstance(factor, ir.Power):
        return Expr((ir.Term(1.0, (), (ir.Power(_inline(factor.base, hidden, budget),
                                                 _inline(factor.exponent, hidden, budget)),)),))
    return Expr((ir.Term(1.0, (), (factor,)),))
