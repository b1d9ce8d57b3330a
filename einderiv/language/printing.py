"""The language's printer: IR expressions as index-form text, ASCII text or LaTeX; pure functions, no numbers.

One walk over the IR (:func:`print_expr`) decides the structure — the order of
terms and factors, terms sharing factors written once over them (``(Z[a] - T[a]) / N``),
brackets, index names, implicit and explicit sums — and a small style object
(:data:`TEXT`, :data:`ASCII`, :data:`LATEX`) spells its tokens: ``δ[i,a]``,
``delta(i,a)`` or ``\\delta_{ia}``; ``/`` or ``\\frac``; ``^2`` or ``^{2}``.

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
>>> print(print_expr(e, style=LATEX))
\\delta_{ia} X_{bk}
"""

from __future__ import annotations

import math

import re
from dataclasses import dataclass
from typing import AbstractSet, Iterable, Iterator, Mapping, Sequence

from einderiv.core import ir
from einderiv.core.functions import FUNCTIONS
from einderiv.core.ir import Call, Delta, Expr, Factor, Power, Ref, Size, Term
from einderiv.names import fresh, numbered

__all__ = ["format_expr", "format_sized", "SizeSource", "print_expr", "format_number", "format_ref", "index_names", "distinct_names", "join_product",
           "plural", "describe_call", "latex_call", "Operand", "TextStyle", "AsciiStyle", "LatexStyle",
           "latex_escape", "latex_subscript", "TEXT", "ASCII", "LATEX"]

#: Plurals that are not the word plus ``s``.
_IRREGULAR_PLURALS = {"index": "indices", "axis": "axes", "matrix": "matrices"}


def plural(n: int, word: str) -> str:
    """``word`` as it reads after the count ``n``: singular for exactly one, plural otherwise.

    >>> [f"{n} {plural(n, 'index')}" for n in (0, 1, 2)]
    ['0 indices', '1 index', '2 indices']
    >>> plural(3, "axis"), plural(1, "argument"), plural(2, "argument")
    ('axes', 'argument', 'arguments')
    """
    if n == 1:
        return word
    return _IRREGULAR_PLURALS.get(word, word + "s")


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
        sizes = _size_only(term)
        for index in _term_all_indices(term):
            if index in names:
                continue
            root, base, k = ir.index_root(index), ir.display_name(index), 1
            name = base
            if index in sizes and owners.get(base, SIZE_ONLY) in (root, SIZE_ONLY):
                # sum[w](1) binds w itself and has no array: only its name sizes it (sizes={'w': …}),
                # so it keeps that name, whatever else of the term is called w
                names[index] = base
                owners.setdefault(base, SIZE_ONLY)
                continue
            while name in used or owners.get(name, root) not in (root, SIZE_ONLY) or \
                    (owners.get(name) == SIZE_ONLY and name in used):
                name, k = f"{base}{k}", k + 1
            names[index] = name
            used.add(name)
            owners[name] = root
        mappings.append(names)
    return mappings


#: The owner of a name only ``sum[w](1)`` factors use: any index of that name may take it over.
SIZE_ONLY = "size:"


def _size_only(term: Term) -> set[str]:
    """Indices of the term's ``sum[i](1)`` factors that nothing else of the term uses."""
    sizes = {f.index for f in term.factors if isinstance(f, Size)}
    if not sizes:
        return sizes
    return sizes - {i for f in term.factors if not isinstance(f, Size) for i in ir.factor_indices(f)}


def distinct_names(indices: Iterable[str], taken: AbstractSet[str] = frozenset()) -> dict[str, str]:
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


def _own_indices(expr: Expr) -> set[str]:
    """Indices each term of ``expr`` binds itself (its ``summed``, nested sums, sizes): printed
    below the top as ``sum[…](…)``, they are scoped to their term."""
    own: set[str] = set()
    for term in expr.terms:
        own.update(term.summed)
        for factor in term.factors:
            if isinstance(factor, Size):
                own.add(factor.index)
            for nested in (factor.args if isinstance(factor, Call) else
                           (factor.base, factor.exponent) if isinstance(factor, Power) else ()):
                own.update(i for inner in nested.terms for i in _term_all_indices(inner)
                           if i not in ir.factor_indices(factor))
    return own


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


# ---------------------------------------------------------------- styles: how tokens are spelt

@dataclass(frozen=True)
class Operand:
    """A printed piece as the walk sees it: its text, and whether it may stand without brackets.

    ``bare`` pieces (a reference, a call, a size, a non-negative number, a whole factor
    in a product) need no brackets; ``indexed`` marks a reference with indices, which
    LaTeX braces under an exponent (``{X_{ij}}^{2}``).
    """

    text: str
    bare: bool = True
    indexed: bool = False


class TextStyle:
    """The language's own spelling (Unicode ``δ[i,a]``); the text parses back to the same meaning.

    Every method spells one token from pieces the walk has already decided; none of
    them looks at the IR. :class:`AsciiStyle` and :class:`LatexStyle` override single tokens.

    >>> TEXT.quotient([Operand("x[i]")], [Operand("a + b", bare=False)])
    'x[i] / (a + b)'
    """

    def number(self, value: float) -> str:
        return format_number(value)

    def name(self, tensor: str) -> str:
        """A tensor's name, before any indices."""
        return tensor

    def ref(self, name: str, indices: Sequence[str]) -> str:
        """An already spelt tensor name with its (display) index names."""
        return format_ref(name, tuple(indices))

    def delta(self, first: str, second: str) -> str:
        return f"δ[{first},{second}]"

    def size(self, index: str) -> str:
        """``Σ_i 1``: what the language reads as the size of ``i``."""
        return f"sum[{index}](1)"

    def call(self, fn: str, args: Sequence[str]) -> str:
        """An elementwise function applied to already printed arguments."""
        return f"{fn}({', '.join(args)})"

    def matrix_call(self, fn: str, matrix: str, bare: bool, inner: tuple[str, str],
                    batch: Sequence[str], outer: Sequence[str]) -> str:
        """``inv(A)[i,a]`` or ``det(A[i,j] + B[i,j])``: ``matrix`` is the argument's name (``bare``) or text,
        ``inner`` its row and column names, ``batch`` the leading indices of ``outer``, the result's indices."""
        after = f"[{','.join(outer)}]" if outer else ""
        return f"{fn}({matrix}){after}"

    def bracket(self, text: str) -> str:
        return f"({text})"

    def wrap(self, operand: Operand) -> str:
        """An operand inside a product or a quotient: bracketed unless it is bare."""
        return operand.text if operand.bare else self.bracket(operand.text)

    def power(self, base: Operand, exponent: str, constant: bool) -> str:
        """``base`` raised to ``exponent`` (a non-negative number when ``constant``, else an expression's text)."""
        return f"{self.wrap(base)}^{exponent if constant else self.bracket(exponent)}"

    def product(self, factors: Sequence[Operand]) -> str:
        return join_product([self.wrap(f) for f in factors])

    def quotient(self, numerator: Sequence[Operand], denominator: Sequence[Operand]) -> str:
        """``numerator / denominator``; several denominator factors are bracketed together."""
        below = [self.wrap(d) for d in denominator]
        den = below[0] if len(below) == 1 else self.bracket(join_product(below))
        return f"{self.product(numerator)} / {den}"

    def sum_over(self, bound: Sequence[str], body: str) -> str:
        """An explicit sum (inside a function or a power, where no implicit sum reaches)."""
        return f"sum[{','.join(bound)}]({body})"


class AsciiStyle(TextStyle):
    """Plain ASCII text: ``delta(i,a)`` for ``δ[i,a]`` (both are the language's Kronecker delta)."""

    def delta(self, first: str, second: str) -> str:
        return f"delta({first},{second})"


#: Functions LaTeX knows as operators; the rest are written \operatorname{name}.
def latex_call(fn: str, args: Sequence[str]) -> str:
    """LaTeX of the elementwise function ``fn`` applied to already printed arguments: the
    function registry's LaTeX form (:mod:`einderiv.core.functions`).

    >>> latex_call("exp", ["x_{i}"]), latex_call("sqrt", ["y"]), latex_call("gt", ["a", "b"])
    ('\\\\exp\\\\left(x_{i}\\\\right)', '\\\\sqrt{y}', '\\\\left[a > b\\\\right]')
    """
    return FUNCTIONS[fn].latex(*args)


def latex_escape(text: str) -> str:
    r"""``text`` with LaTeX's subscript character escaped: ``W_1`` → ``W\_1``."""
    return text.replace("_", r"\_")


def latex_subscript(names: Sequence[str]) -> str:
    """Index names run together (``ij``), or comma separated when one is longer than a letter (``n,c1``)."""
    names = [latex_escape(n) for n in names]
    return "".join(names) if all(len(n) == 1 for n in names) else ",".join(names)


class LatexStyle(TextStyle):
    r"""LaTeX: ``A_{ik}``, ``\delta_{ia}``, ``\frac{…}{…}``, ``{X_{ij}}^{2}``, ``\sum_{j}``."""

    def name(self, tensor: str) -> str:
        return tensor if len(tensor) == 1 else rf"\mathrm{{{latex_escape(tensor)}}}"

    def ref(self, name: str, indices: Sequence[str]) -> str:
        return f"{name}_{{{latex_subscript(indices)}}}" if indices else name

    def delta(self, first: str, second: str) -> str:
        return rf"\delta_{{{latex_subscript([first, second])}}}"

    def size(self, index: str) -> str:
        return rf"\operatorname{{size}}({latex_escape(index)})"

    def call(self, fn: str, args: Sequence[str]) -> str:
        return latex_call(fn, args)

    def matrix_call(self, fn: str, matrix: str, bare: bool, inner: tuple[str, str],
                    batch: Sequence[str], outer: Sequence[str]) -> str:
        r"""``\left(A^{-1}\right)_{ia}``, ``\det\left(A\right)``, ``\log\left\lvert\det\left(A\right)\right\rvert``."""
        if bare:
            matrix = f"{matrix}_{{{latex_subscript(batch)}}}" if batch else matrix
        else:
            matrix = rf"\left[{matrix}\right]_{{{latex_subscript(inner)}}}"
        if fn == "inv":
            return rf"\left({matrix}^{{-1}}\right)_{{{latex_subscript(outer[-2:])}}}"
        if fn == "det":
            return rf"\det\left({matrix}\right)"
        return rf"\log\left\lvert\det\left({matrix}\right)\right\rvert"

    def bracket(self, text: str) -> str:
        return rf"\left({text}\right)"

    def power(self, base: Operand, exponent: str, constant: bool) -> str:
        under = f"{{{base.text}}}" if base.indexed else self.wrap(base)
        return f"{under}^{{{exponent}}}"

    def product(self, factors: Sequence[Operand]) -> str:
        return " ".join(self.wrap(f) for f in factors)

    def quotient(self, numerator: Sequence[Operand], denominator: Sequence[Operand]) -> str:
        """``\\frac{…}{…}``: the bar groups, so a lone piece on either side goes unbracketed."""
        top = numerator[0].text if len(numerator) == 1 else self.product(numerator)
        bottom = denominator[0].text if len(denominator) == 1 else self.product(denominator)
        return rf"\frac{{{top}}}{{{bottom}}}"

    def sum_over(self, bound: Sequence[str], body: str) -> str:
        return rf"\sum_{{{latex_subscript(bound)}}} {body}"


TEXT, ASCII, LATEX = TextStyle(), AsciiStyle(), LatexStyle()


# ---------------------------------------------------------------- the walk: what is printed, in which order

def format_expr(expr: Expr, fixed: Mapping[str, str] | None = None, *, ascii: bool = False,
                tensors: Mapping[str, str] | None = None) -> str:
    """The index form of ``expr``; ``fixed`` names its free indices, ``tensors`` renames tensors.

    >>> from einderiv.core import ir
    >>> z_over_n = ir.mul(ir.ref("Z", ["a"]), ir.power(ir.ref("N", []), ir.const(-1.0)))
    >>> format_expr(ir.add(z_over_n, ir.neg(ir.mul(ir.ref("T", ["a"]), ir.power(ir.ref("N", []), ir.const(-1.0))))))
    '(Z[a] - T[a]) / N'
    """
    return print_expr(expr, fixed, ASCII if ascii else TEXT, tensors)


#: Where a ``sum[i](1)`` factor's size comes from: (its index, a tensor, that tensor's axis, its rank).
SizeSource = tuple[str, str, int, int]


def format_sized(expr: Expr, fixed: Mapping[str, str], sources: Iterable[SizeSource], *, ascii: bool = False,
                 tensors: Mapping[str, str] | None = None, always: bool = False) -> str:
    """:func:`format_expr`, and a zero term ``+ 0 x[i1]`` for each ``sum[i1](1)`` whose name had to
    change (another index of the line has its name; with ``always``, each one): a renamed index is
    sized by nothing in the line, so the term fixes its size by a tensor axis of that size, and the
    line reads back to the same numbers with the sizes the program itself was given.

    >>> from einderiv.core import ir
    >>> e = ir.Expr((ir.Term(1.0, ("i",), (ir.Ref("s", ("i", "i")), ir.Size("i#2"))),))
    >>> format_sized(e, {}, [("i#2", "W", 0, 1)])
    's[i,i] sum[i1](1) + 0 W[i1]'
    """
    fixed = dict(fixed)
    source = {index: (tensor, axis, rank) for index, tensor, axis, rank in sources}
    roots: dict[str, set[str]] = {}
    for index in (i for term in expr.terms for i in _term_all_indices(term)):
        roots.setdefault(ir.display_name(index), set()).add(ir.index_root(index))
    taken = set(fixed.values()) | set(roots)
    sized = []
    for index in sorted({f.index for t in _all_terms(expr) for f in t.factors if isinstance(f, Size)}):
        if index not in source or index in fixed:
            continue
        name = ir.display_name(index)
        clash = name in fixed.values() or len(roots.get(name, ())) > 1
        if not (clash or always):      # a kept name is sized as in the program (its sizes given by name)
            continue
        chosen = fresh(numbered(name), taken) if clash else name
        taken.add(chosen)
        fixed[index] = chosen
        sized.append((chosen, *source[index]))
    text = format_expr(expr, fixed, ascii=ascii, tensors=tensors)
    taken |= set(_WORD.findall(text))
    for name, tensor, axis, rank in sized:
        others = ir.fresh_names(rank - 1, taken)
        taken.update(others)
        spare = iter(others)
        text += f" + 0 {format_ref(tensor, tuple(name if k == axis else next(spare) for k in range(rank)))}"
    return text


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _all_terms(expr: Expr) -> Iterator[Term]:
    """The terms of ``expr`` and of every expression nested in its calls and powers."""
    for term in expr.terms:
        yield term
        for factor in term.factors:
            for nested in (factor.args if isinstance(factor, Call) else
                           (factor.base, factor.exponent) if isinstance(factor, Power) else ()):
                yield from _all_terms(nested)



def print_expr(expr: Expr, fixed: Mapping[str, str] | None = None, style: TextStyle = TEXT,
               tensors: Mapping[str, str] | None = None) -> str:
    """``expr`` in ``style`` (:data:`TEXT`, :data:`ASCII` or :data:`LATEX`): one walk decides the structure
    (terms over a common denominator, order, brackets, index names, sums), the style spells it.

    ``fixed`` names the free indices; ``tensors`` gives already spelt names for tensors.

    >>> from einderiv.core import ir
    >>> e = ir.mul(ir.delta("i", "a"), ir.ref("X", ["b", "k"]))
    >>> print_expr(e, style=LATEX), print_expr(e, style=ASCII)
    ('\\\\delta_{ia} X_{bk}', 'delta(i,a) X[b,k]')
    """
    fixed = dict(fixed or {})
    for index in ir.free_indices(expr):
        fixed.setdefault(index, ir.display_name(index))
    return _Walk(style, dict(tensors or {})).sum(expr, fixed, top=True)


@dataclass(frozen=True)
class _Walk:
    """The structural decisions, shared by every style."""

    style: TextStyle
    tensors: Mapping[str, str]

    def sum(self, expr: Expr, fixed: Mapping[str, str], top: bool) -> str:
        """Terms joined by their signs. At the top, terms sharing factors are written once over them
        (``(Z[a] - T[a]) / N``), and repeated indices sum implicitly; below, sums are explicit."""
        if not expr.terms:
            return self.style.number(0.0)
        grouped = ir.common_factor(expr) if top else None
        if grouped is not None:
            outer, inner = grouped
            # the outer term's indices (its factors, and what it sums over the group) are named here;
            # each inner term names its own summed ones, in its own scope: two sum[w](1) of two
            # terms stay w and w, never w and w1, a name no array or size sizes
            outer_indices = _term_all_indices(outer)
            passed = [i for i in _term_all_indices(Term(1.0, (), tuple(f for t in inner.terms for f in t.factors)))
                      if i not in outer_indices and i not in _own_indices(inner)]   # fixed ones, say
            names = index_names(Expr((Term(1.0, outer.summed, outer.factors + tuple(map(Size, passed))),)), fixed)[0]
            own = _size_only(outer)          # the outer sum[w](1) is scoped to itself: not passed in
            group = Operand(self.sum(inner, {k: v for k, v in names.items() if k not in own}, top=False),
                            bare=False)
            negative, body = self.term(outer, names, top, group)
            return ("-" if negative else "") + body
        parts: list[str] = []
        for term, names in zip(expr.terms, index_names(expr, fixed)):
            negative, body = self.term(term, names, top)
            if not parts:
                parts.append(("-" if negative else "") + body)
            else:
                parts.append(f" - {body}" if negative else f" + {body}")
        return "".join(parts)

    def term(self, term: Term, names: Mapping[str, str], top: bool,
             group: Operand | None = None) -> tuple[bool, str]:
        """(negative, text without the sign): the coefficient's magnitude and the factors in order,
        negative constant powers below a quotient bar."""
        numerator, denominator = ([group] if group else []), []
        for factor in term.factors:
            p = ir.constant_value(factor.exponent) if isinstance(factor, Power) else None
            if isinstance(factor, Power) and p is not None and p < 0:
                base = self.operand(factor.base, names)
                denominator.append(base if p == -1 else
                                   Operand(self.style.power(base, self.style.number(-p), constant=True)))
            else:
                numerator.append(Operand(self.factor(factor, names)))
        magnitude = abs(term.coeff)
        if magnitude != 1.0 or not numerator:
            numerator = [Operand(self.style.number(magnitude))] + numerator
        text = self.style.quotient(numerator, denominator) if denominator else self.style.product(numerator)
        if term.summed and not top:
            text = self.style.sum_over([names[s] for s in term.summed], text)
        return term.coeff < 0, text

    def factor(self, factor: Factor, names: Mapping[str, str]) -> str:
        s = self.style
        if isinstance(factor, Ref):
            return s.ref(self.tensor(factor.name), [names[i] for i in factor.indices])
        if isinstance(factor, Delta):
            return s.delta(names[factor.first], names[factor.second])
        if isinstance(factor, Size):
            return s.size(names[factor.index])
        if isinstance(factor, Call):
            return s.call(factor.fn, [self.sum(a, names, top=False) for a in factor.args])
        if isinstance(factor, ir.MatFn):
            return self.matrix_call(factor, names)
        base = self.operand(factor.base, names)
        p = ir.constant_value(factor.exponent)
        if p is not None and p >= 0:
            return s.power(base, s.number(p), constant=True)
        return s.power(base, self.sum(factor.exponent, names, top=False), constant=False)

    def tensor(self, name: str) -> str:
        return self.tensors[name] if name in self.tensors else self.style.name(name)

    def matrix_call(self, factor: ir.MatFn, names: Mapping[str, str]) -> str:
        """``inv(A)[i,a]``, ``det(A)``, or ``inv(A[i,j] + B[i,j])[i,j]``: an argument's rows and columns
        take the names of the result's indices when those differ, so the text reads back the same way."""
        from einderiv.core.matrix_functions import bare_name, batch_of
        outer = [names[i] for i in factor.indices]
        batch = [names[i] for i in batch_of(factor)]
        name = bare_name(factor)
        if name is not None:
            return self.style.matrix_call(factor.fn, self.tensor(name), True, ("", ""), batch, outer)
        if len(outer) == 2 and outer[0] != outer[1]:
            inner = {factor.rows: outer[0], factor.cols: outer[1]}
        else:
            inner = distinct_names([factor.rows, factor.cols], set(names.values()))
        arg = self.sum(factor.arg, {**names, **inner}, top=False)
        return self.style.matrix_call(factor.fn, arg, False, (inner[factor.rows], inner[factor.cols]), batch, outer)

    def operand(self, expr: Expr, names: Mapping[str, str]) -> Operand:
        """A power's base or a denominator: bare when it is one reference, call or size, or a non-negative number."""
        text = self.sum(expr, names, top=False)
        if len(expr.terms) == 1:
            term = expr.terms[0]
            if term.coeff == 1.0 and len(term.factors) == 1 and not term.summed and \
                    isinstance(term.factors[0], (Ref, Call, Size)):
                only = term.factors[0]
                return Operand(text, indexed=isinstance(only, Ref) and bool(only.indices))
        value = ir.constant_value(expr)
        return Operand(text, bare=value is not None and value >= 0)


def describe_call(factor: ir.MatFn) -> str:
    """``inv(A)`` or ``det(A[i,j] + B[i,j])``: the call as the user would write it, for messages."""
    from einderiv.core.matrix_functions import bare_name
    name = bare_name(factor)
    if name is not None:
        return f"{factor.fn}({name})"
    return f"{factor.fn}({format_expr(factor.arg)})"
