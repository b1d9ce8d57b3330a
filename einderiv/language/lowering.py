"""Syntax tree → checked statements in the IR.

This is where the language's meaning lives:

* names: a name never defined is an input; no name is defined twice or used
  before the statement that defines it; every use of a tensor has its rank;
* the summation rule: the right-hand side is expanded (products distribute over
  parenthesized sums; functions, powers and denominators stay whole) and every
  index of a term that is not on the left is summed over that whole term;
  ``sum[j](…)`` binds ``j`` inside it;
* sizes: each statement's indices get internal names (``k`` of statement 2 is
  ``"k#2"``), every occurrence is recorded, and :func:`resolve_sizes` checks
  them against concrete arrays, naming the index, both sizes and their sources;
* the summation trap warning;
* temporaries: deep nesting and big products of sums are lowered through
  hidden statements that mean the same (see :class:`_Temporaries`).

>>> from einderiv.language.parsing import parse_text
>>> stmts, inputs, warns = analyse(parse_text("y[i] = A[i,j] x[j]"))
>>> stmts[0].rhs.terms[0].summed
('j#1',)
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace, dataclass, field
from typing import Iterable, Mapping, Sequence, Sized, SupportsIndex, TypeVar

from einderiv.core import ir

from einderiv.language import matrix_calls
from einderiv.errors import ProgramError, ShapeError, UnsupportedError
from einderiv.core.functions import FUNCTIONS, USER_FUNCTIONS
from einderiv.core.ir import Expr
from einderiv.language.printing import plural
from einderiv.language.parsing import (Binary, CallNode, DeltaNode, Name, Node, Number, ProgramNode, StatementNode, SumNode, Unary,
                      caret_context)
from einderiv.core.simplify import simplify
from einderiv.names import statement_index, variant

__all__ = ["Statement", "Occurrence", "analyse", "resolve_sizes", "infer_shapes", "statement_index", "written_names",
           "dependencies"]



#: The largest index size: array axis lengths are signed machine integers.
MAX_SIZE = sys.maxsize


def checked_size(label: str, value: object) -> int:
    """``value`` as an index size (a non-negative integer no array axis is too short for),
    or :class:`ShapeError` naming ``label`` (``"size of index 'i'"``).

    >>> checked_size("size of index 'i'", 3)
    3
    """
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise ShapeError(f"{label} must be a non-negative integer, got {value!r}")
    size = value.__index__()
    if size < 0:
        raise ShapeError(f"{label} must be a non-negative integer, got {value!r}")
    if size > MAX_SIZE:
        raise ShapeError(f"{label} is too large (about 2**{size.bit_length()}); "
                         f"an array axis holds at most {MAX_SIZE:,} entries")
    return size

@dataclass(frozen=True)
class Occurrence:
    """Index ``root`` labels axis ``axis`` of tensor ``tensor`` somewhere in a statement."""

    root: str
    tensor: str
    axis: int


@dataclass(frozen=True)
class Statement:
    """One checked statement: ``name[lhs] = rhs`` with internal index names."""

    number: int                      # 1-based position in the program
    name: str
    lhs: tuple[str, ...]
    rhs: Expr
    source: str
    line: int
    roots: tuple[str, ...]           # every index of the statement, left side first
    occurrences: tuple[Occurrence, ...]
    hidden: bool = False             # a temporary that einderiv introduced (see _Temporaries)
    deltas: tuple[tuple[str, str], ...] = ()   # roots paired by a written δ[i,a]: they have one size

    @property
    def rank(self) -> int:
        return len(self.lhs)

    def where(self) -> str:
        return f"statement {self.number} (line {self.line}: {self.source.strip()})"


_Error = TypeVar("_Error", bound=Exception)


def _located(cls: type[_Error], message: str, text: str, line: int, column: int) -> _Error:
    return cls(f"line {line}, column {column}: {message}\n{caret_context(text, line, column)}")


@dataclass
class _Scope:
    """Mutable state while lowering one statement."""

    text: str
    number: str                            # the tag indices are named with: "2", or "2t1" in a temporary
    lhs_names: tuple[str, ...]
    defined: Mapping[str, int]             # statement tensors defined so far → rank
    later: Mapping[str, int]               # statement tensors defined later → line
    input_ranks: dict[str, int]
    input_first_use: dict[str, tuple[int, int]]
    bound: tuple[dict[str, str], ...] = ()
    occurrences: dict[Occurrence, None] = field(default_factory=dict)
    roots: dict[str, None] = field(default_factory=dict)
    deltas: dict[tuple[str, str], None] = field(default_factory=dict)
    counter: int = 0

    def index(self, name: str) -> str:
        for frame in reversed(self.bound):
            if name in frame:
                return frame[name]
        internal = statement_index(name, self.number)
        self.roots.setdefault(internal)
        return internal

    def bind(self, names: tuple[str, ...]) -> dict[str, str]:
        frame = {}
        for name in names:
            self.counter += 1
            frame[name] = variant(statement_index(name, self.number), self.counter)
            self.roots.setdefault(statement_index(name, self.number))
        return frame


def analyse(tree: ProgramNode) -> tuple[tuple[Statement, ...], dict[str, int], tuple[str, ...]]:
    """Check a syntax tree and lower it: (statements, input ranks, warnings)."""
    text = tree.text
    if not tree.statements:
        raise ProgramError("the program has no statement")
    lines: dict[str, int] = {}
    for node in tree.statements:
        if node.name in lines:
            raise _located(ProgramError, f"'{node.name}' is defined twice (first on line {lines[node.name]})",
                           text, node.line, node.column)
        lines[node.name] = node.line
    defined: dict[str, int] = {}
    input_ranks: dict[str, int] = {}
    first_use: dict[str, tuple[int, int]] = {}
    statements = []
    warnings: list[str] = []
    later = dict(lines)            # statement tensors not defined yet (the current one included) → line
    temporaries = _Temporaries(text)
    for number, node in enumerate(tree.statements, start=1):
        lowered = _lower_with_temporaries(node, number, str(number), text, defined, later, input_ranks,
                                          first_use, temporaries)
        statement = lowered[-1]
        warnings.extend(_trap_warnings(node, statement))
        statements.extend(lowered)
        del later[node.name]       # one deletion per statement: linear in the program's length
    return tuple(statements), input_ranks, tuple(warnings)


#: A statement whose functions and powers nest deeper than this is lowered through temporaries.
MAX_NESTING = 3

#: A product of sums that would multiply out to more terms than this keeps the sums it may keep whole.
EXPAND_AT_MOST = 16


class _Temporaries:
    """Names for temporaries: statements einderiv introduces for parts of a user's statement.

    Two kinds of part become temporaries, each as if the user had written it as
    a statement of its own, on the left all the indices occurring (free) in it,
    including those the enclosing term sums over — so the meaning is unchanged:

    * in a statement nested more than :data:`MAX_NESTING` deep, every function
      call or power inside another one (``exp(tanh(u))``: ``t = tanh(u)``,
      then ``exp(t)``), so derivatives grow linearly with the nesting, not
      exponentially;
    * in a product of sums that would multiply out to more than
      :data:`EXPAND_AT_MOST` terms, every sum whose terms all have the same
      summed indices (multiplying it out would give the same sums).

    A name is ``<statement>_<k>``, never a name the program text uses.
    """

    def __init__(self, text: str):
        self._text = text
        self._taken: set[str] | None = None
        self.count = 0

    def name(self, parent: str) -> str:
        """A fresh name for a temporary of statement ``parent``; ``self.count`` numbers it."""
        if self._taken is None:          # only programs that need temporaries pay for this scan
            self._taken = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", self._text))
        while True:
            self.count += 1
            candidate = f"{parent}_{self.count}"
            if candidate not in self._taken:
                self._taken.add(candidate)
                return candidate


@dataclass
class _Hoist:
    """The temporaries taken out of one statement, in the order they must be defined."""

    parent: StatementNode
    names: _Temporaries
    made: list[tuple[StatementNode, str]] = field(default_factory=list)   # (definition, tag of its indices)

    def temporary(self, subtree: Node) -> Name:
        """Define a temporary for ``subtree`` over its free indices; a reference to it."""
        indices = tuple(_ordered_free_names(subtree, frozenset()))
        name = self.names.name(self.parent.name)
        line, column = _node_position(subtree)
        definition = StatementNode(name, indices or None, subtree, line, column, self.parent.source)
        self.made.append((definition, f"t{self.names.count}"))
        return Name(name, indices or None, line, column)


def _node_position(node: Node) -> tuple[int, int]:
    return getattr(node, "line", 1), getattr(node, "column", 1)


def _lower_with_temporaries(node: StatementNode, number: int, tag: str, text: str, defined: dict[str, int],
                            later: Mapping[str, int], input_ranks: dict[str, int],
                            first_use: dict[str, tuple[int, int]], temporaries: _Temporaries,
                            hidden: bool = False) -> list[Statement]:
    """The statement, after the temporaries it needs (each lowered the same way), in order."""
    hoist = _Hoist(node, temporaries)
    rhs = node.rhs
    if _nesting(rhs) > MAX_NESTING:
        rhs = _hoist_nested(rhs, False, hoist)
    rhs = _hoist_products(rhs, False, hoist)
    expansion = _expand(rhs, hoist, frozenset(node.indices or ()))
    lowered: list[Statement] = []
    if hoist.made and not hidden:
        _note_inputs(node.rhs, defined, later, input_ranks, first_use)
    for temporary, serial in hoist.made:          # index k of statement 2's third temporary: "k#2t3"
        lowered.extend(_lower_with_temporaries(temporary, number, f"{number}{serial}", text, defined,
                                               later, input_ranks, first_use, temporaries, hidden=True))
    statement = _lower_statement(node, number, tag, expansion, text, defined, later, input_ranks, first_use, hidden)
    defined[node.name] = statement.rank
    lowered.append(statement)
    return lowered


def _note_inputs(node: Node, defined: Mapping[str, int], later: Mapping[str, int], input_ranks: dict[str, int],
                 first_use: dict[str, tuple[int, int]]) -> None:
    """Record the inputs ``node`` uses in the order written, as lowering it in place would
    (its temporaries are lowered first); a mismatch of ranks is left for lowering to report."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Name) and current.name not in defined and current.name not in later:
            input_ranks.setdefault(current.name, len(current.indices or ()))
            first_use.setdefault(current.name, (current.line, current.column))
        bare = _bare_matrix(current) if isinstance(current, CallNode) else None
        if isinstance(current, CallNode) and bare is not None:    # inv(A)[b,i,j], det(A)[b]: the batch axes and two more
            if bare.name not in defined and bare.name not in later:
                input_ranks.setdefault(bare.name, len(_batch_indices(current)) + 2)
                first_use.setdefault(bare.name, (bare.line, bare.column))
            continue
        stack.extend(reversed(_children(current)))


def _bare_matrix(node: CallNode) -> Name | None:
    """The tensor of a matrix function of a bare name (``inv(A)[i,j]``, ``det(A)``), else None."""
    if node.fn in ir.MATRIX_FUNCTIONS and len(node.args) == 1:
        (arg,) = node.args
        if isinstance(arg, Name) and arg.indices is None:
            return arg
    return None


def _batch_indices(call: CallNode) -> tuple[str, ...]:
    """The leading (batch) indices written after a matrix function: all of ``det(A)[b]``'s, those
    of ``inv(A)[b,i,j]`` before its last two."""
    written = tuple(call.indices or ())
    return written[:-2] if call.fn == "inv" else written


def _nesting(node: Node) -> int:
    """How deep functions and powers nest in ``node`` (``exp(x^2)``: 2)."""
    depth, stack = 0, [(node, 0)]
    while stack:                       # no recursion: the parser's own limit decides what is too deep
        current, level = stack.pop()
        if isinstance(current, CallNode) or (isinstance(current, Binary) and current.op == "^"):
            level += 1
            depth = max(depth, level)
        stack.extend((child, level) for child in _children(current))
    return depth


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, CallNode):
        return node.args
    if isinstance(node, SumNode):
        return (node.body,)
    return ()


def _hoist_nested(node: Node, inside: bool, hoist: _Hoist) -> Node:
    """``node`` with every call or power inside another one replaced by a temporary.

    A matrix function (``inv(A)[i,j]``, ``det(A)``) is a leaf here: its argument follows
    rules of its own, and it is evaluated once per plan anyway."""
    if isinstance(node, CallNode) and node.fn in ir.MATRIX_FUNCTIONS:
        return node
    if isinstance(node, CallNode):
        call = replace(node, args=tuple(_hoist_nested(a, True, hoist) for a in node.args))
        return hoist.temporary(call) if inside else call
    if isinstance(node, Binary):
        opaque = node.op == "^"
        new = Binary(node.op, _hoist_nested(node.left, inside or opaque, hoist),
                     _hoist_nested(node.right, inside or opaque, hoist), node.line, node.column)
        return hoist.temporary(new) if inside and opaque else new
    if isinstance(node, Unary):
        return Unary(node.op, _hoist_nested(node.operand, inside, hoist), node.line, node.column)
    if isinstance(node, SumNode):
        return SumNode(node.indices, _hoist_nested(node.body, inside, hoist), node.line, node.column)
    return node


def _hoist_products(node: Node, inside: bool, hoist: _Hoist) -> Node:
    """``node`` with the sums of a big product inside a function, power, denominator or
    ``sum[...]`` made temporaries: there every value is pointwise, so a sum may stay whole.
    (Products at the top are the business of :func:`_expand`, which follows the summation rule.)"""
    if isinstance(node, Binary) and node.op == "*" and inside:
        operands = _multiplicands(node)
        counts = [_term_count(o) for o in operands]
        if _product_size([[None] * c for c in counts]) > EXPAND_AT_MOST:
            kept = [_hoist_products(o, True, hoist) for o in operands]
            kept = [hoist.temporary(o) if c > 1 else o for o, c in zip(kept, counts)]
            product = kept[0]
            for operand in kept[1:]:
                product = Binary("*", product, operand, node.line, node.column)
            return product
    if isinstance(node, Binary):
        opaque = node.op == "^"
        return Binary(node.op, _hoist_products(node.left, inside or opaque, hoist),
                      _hoist_products(node.right, inside or opaque or node.op == "/", hoist), node.line, node.column)
    if isinstance(node, Unary):
        return Unary(node.op, _hoist_products(node.operand, inside, hoist), node.line, node.column)
    if isinstance(node, CallNode) and node.fn not in ir.MATRIX_FUNCTIONS:
        return replace(node, args=tuple(_hoist_products(a, True, hoist) for a in node.args))
    if isinstance(node, SumNode):
        return SumNode(node.indices, _hoist_products(node.body, True, hoist), node.line, node.column)
    return node


def _term_count(node: Node) -> int:
    """How many terms ``node`` multiplies out to (as :func:`_expand` would)."""
    if isinstance(node, Binary) and node.op in "+-":
        return _term_count(node.left) + _term_count(node.right)
    if isinstance(node, Binary) and node.op == "*":
        return _term_count(node.left) * _term_count(node.right)
    if isinstance(node, Binary) and node.op == "/":
        return _term_count(node.left)
    if isinstance(node, Unary):
        return _term_count(node.operand)
    return 1


def _ordered_free_names(node: Node, bound: frozenset[str]) -> list[str]:
    """The index names occurring free in ``node``, first occurrence first."""
    seen: dict[str, None] = {}
    stack = [(node, bound)]
    while stack:
        current, names = stack.pop()
        if isinstance(current, Name) or (isinstance(current, CallNode) and current.fn in ir.MATRIX_FUNCTIONS):
            written: tuple[str, ...] = tuple(current.indices or ())   # a matrix argument's indices are its own
        elif isinstance(current, DeltaNode):
            written = (current.first, current.second)
        elif isinstance(current, SumNode):
            stack.append((current.body, names | set(current.indices)))
            continue
        else:
            stack.extend((child, names) for child in reversed(_children(current)))
            continue
        for i in written:
            if i not in names:
                seen.setdefault(i)
    return list(seen)


def _lower_statement(node: StatementNode, number: int, tag: str, expansion: list[tuple[float, list[Node]]],
                     text: str, defined: Mapping[str, int], later: Mapping[str, int], input_ranks: dict[str, int],
                     first_use: dict[str, tuple[int, int]], hidden: bool = False) -> Statement:
    lhs_names = node.indices or ()
    seen: set[str] = set()
    for name in lhs_names:
        if name in seen:
            raise _located(ProgramError, f"index '{name}' appears twice on the left of '{node.name}'"
                           " (write the diagonal on the right instead: d[i] = A[i,i])", text, node.line, node.column)
        seen.add(name)
    scope = _Scope(text, tag, lhs_names, defined, later, input_ranks, first_use)
    lhs = tuple(scope.index(name) for name in lhs_names)
    terms = []
    for coeff, factors in expansion:
        term = ir.scale(ir.mul(*(_lower(f, scope) for f in factors)), coeff)
        # summed over every index written in the term, also one a fold removed (z[n]^0, z[n]/z[n]:
        # the term still sums over n, so it counts size(n))
        written = sorted(set().union(*(_free_names(f, frozenset()) for f in factors)))
        implicit = tuple(dict.fromkeys(i for i in (*ir.free_indices(term), *map(scope.index, written))
                                       if i not in lhs))
        terms.append(ir.summation(implicit, term))
    rhs = simplify(ir.add(*terms))
    return Statement(number, node.name, lhs, rhs, node.source, node.line,
                     tuple(scope.roots), tuple(scope.occurrences), hidden, tuple(scope.deltas))


def _expand(node: Node, hoist: _Hoist | None = None, lhs: frozenset[str] = frozenset()) -> list[tuple[float, list[Node]]]:
    """The additive terms of the expanded right-hand side: (coefficient, factors).

    Products (and numerators) distribute over parenthesized sums; functions,
    powers, denominators and ``sum[...]`` stay whole, as single factors. The
    summation rule then applies to each of these terms as a whole. A product
    that would multiply out to more than :data:`EXPAND_AT_MOST` terms keeps
    whole (as temporaries of ``hoist``) the sums whose terms all sum over the
    same indices (not in ``lhs``): for them, multiplying out changes nothing.
    """
    if isinstance(node, Binary) and node.op in "+-":
        right = _expand(node.right, hoist, lhs)
        if node.op == "-":
            right = [(-c, f) for c, f in right]
        return _expand(node.left, hoist, lhs) + right
    if isinstance(node, Unary):
        return [(-c, f) for c, f in _expand(node.operand, hoist, lhs)]
    if isinstance(node, Binary) and node.op == "*":
        operands = _multiplicands(node)
        expanded = [_expand(operand, hoist, lhs) for operand in operands]
        count = _product_size(expanded)
        if count > EXPAND_AT_MOST and hoist is not None:
            expanded = [[(1.0, [hoist.temporary(operand)])] if len(terms) > 1 and _same_summed(terms, lhs) else terms
                        for operand, terms in zip(operands, expanded)]
            count = _product_size(expanded)
        if count > ir.MAX_TERMS:
            raise UnsupportedError(f"line {node.line}: multiplying out this product gives "
                                   f"{count:,} terms, more than {ir.MAX_TERMS:,}; "
                                   f"compute the factors in separate statements")
        result: list[tuple[float, list[Node]]] = [(1.0, [])]
        for terms in expanded:
            result = [(c1 * c2, f1 + f2) for c1, f1 in result for c2, f2 in terms]
        return result
    if isinstance(node, Binary) and node.op == "/":
        reciprocal = Binary("^", node.right, Number(-1.0, node.line, node.column), node.line, node.column)
        return [(c, f + [reciprocal]) for c, f in _expand(node.left, hoist, lhs)]
    return [(1.0, [node])]


def _multiplicands(node: Node) -> list[Node]:
    """The operands of a chain of ``*`` (not looking into quotients), left to right."""
    operands, stack = [], [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Binary) and current.op == "*":
            stack.extend((current.right, current.left))
        else:
            operands.append(current)
    return operands


def _product_size(expanded: Sequence[Sized]) -> int:
    count = 1
    for terms in expanded:
        count *= len(terms)
    return count


def _same_summed(terms: list[tuple[float, list[Node]]], lhs: frozenset[str]) -> bool:
    """Whether every term has the same indices not on the left (summed, once multiplied out)."""
    first = None
    for _, factors in terms:
        names = set().union(*(_free_names(f, frozenset()) for f in factors)) - lhs if factors else set()
        if first is None:
            first = names
        elif names != first:
            return False
    return True


def _lower(node: Node, scope: _Scope) -> Expr:
    if isinstance(node, Number):
        return ir.const(node.value)
    if isinstance(node, Name):
        return _lower_name(node, scope)
    if isinstance(node, Unary):
        return ir.neg(_lower(node.operand, scope))
    if isinstance(node, Binary):
        left, right = _lower(node.left, scope), _lower(node.right, scope)
        if node.op == "+":
            return ir.add(left, right)
        if node.op == "-":
            return ir.add(left, ir.neg(right))
        if node.op == "*":
            return ir.mul(left, right)
        if node.op == "/":
            return ir.mul(left, ir.power(right, ir.const(-1.0)))
        return ir.power(left, right)
    if isinstance(node, CallNode):
        return _lower_call(node, scope)
    if isinstance(node, DeltaNode):
        return _lower_delta(node, scope)
    return _lower_sum(node, scope)


def _lower_delta(node: DeltaNode, scope: _Scope) -> Expr:
    """``δ[i,a]``: a factor whose indices count like a tensor's; ``δ[i,i]`` stays a factor, so the
    summation rule sums ``i`` and simplification leaves ``size(i)``, never 1."""
    first, second = scope.index(node.first), scope.index(node.second)
    scope.deltas.setdefault((ir.index_root(first), ir.index_root(second)))
    return Expr((ir.Term(1.0, (), (ir.Delta(first, second),)),))


def _lower_name(node: Name, scope: _Scope) -> Expr:
    indices = node.indices or ()
    name = node.name
    if name in scope.defined:
        if scope.defined[name] != len(indices):
            raise _located(ProgramError, f"'{name}' is defined with {scope.defined[name]} "
                           f"{plural(scope.defined[name], 'index')} but used here with {len(indices)}",
                           scope.text, node.line, node.column)
    elif name in scope.later:
        raise _located(ProgramError, f"'{name}' is used before the statement that defines it "
                       f"(line {scope.later[name]})", scope.text, node.line, node.column)
    else:
        known = scope.input_ranks.setdefault(name, len(indices))
        scope.input_first_use.setdefault(name, (node.line, node.column))
        if known != len(indices):
            line, column = scope.input_first_use[name]
            raise _located(ProgramError, f"input '{name}' is used with {len(indices)} "
                           f"{plural(len(indices), 'index')} here but with {known} "
                           f"on line {line}, column {column}", scope.text, node.line, node.column)
    internal = tuple(scope.index(i) for i in indices)
    for axis, index in enumerate(internal):
        scope.occurrences.setdefault(Occurrence(ir.index_root(index), name, axis))
    return ir.ref(name, internal)


def _lower_call(node: CallNode, scope: _Scope) -> Expr:
    if node.fn == "sum":
        raise _located(ProgramError, "sum needs its indices: write sum[j](...)", scope.text, node.line, node.column)
    if node.fn in ir.MATRIX_FUNCTIONS:
        return matrix_calls.lower_call(node, scope)
    if node.indices is not None:
        raise _located(ProgramError, f"'{node.fn}(...)' is elementwise: no indices follow the call "
                       f"(only inv(...)[i,j] is indexed)", scope.text, node.line, node.column)
    if node.fn not in FUNCTIONS:   # the derivative helpers (step, le, ...) parse too: printed derivatives re-read
        hint = f" (for a product write '{node.fn} * (...)')" if len(node.args) == 1 else ""
        raise _located(ProgramError, f"unknown function '{node.fn}'{hint}; known functions: "
                       f"{', '.join(USER_FUNCTIONS + ir.MATRIX_FUNCTIONS)}", scope.text, node.line, node.column)
    arity = FUNCTIONS[node.fn].arity
    if len(node.args) != arity:
        raise _located(ProgramError, f"'{node.fn}' takes {arity} {plural(arity, 'argument')}, "
                       f"got {len(node.args)}", scope.text, node.line, node.column)
    return ir.call(node.fn, [_lower(arg, scope) for arg in node.args])


def _lower_sum(node: SumNode, scope: _Scope) -> Expr:
    if not node.indices:
        raise _located(ProgramError, "sum[] lists no index", scope.text, node.line, node.column)
    seen: set[str] = set()
    for name in node.indices:
        if name in seen:
            raise _located(ProgramError, f"index '{name}' is listed twice in sum[...]",
                           scope.text, node.line, node.column)
        seen.add(name)
        if name in scope.lhs_names:
            raise _located(ProgramError, f"index '{name}' is on the left, so it cannot be summed by sum[...]",
                           scope.text, node.line, node.column)
        if any(name in frame for frame in scope.bound):
            raise _located(ProgramError, f"index '{name}' is already summed by an enclosing sum[...]",
                           scope.text, node.line, node.column)
    frame = scope.bind(node.indices)
    scope.bound = scope.bound + (frame,)
    try:
        body = _lower(node.body, scope)
    finally:
        scope.bound = scope.bound[:-1]
    return ir.summation(tuple(frame.values()), body)


# ---------------------------------------------------------------- dependencies

def written_names(statement: Statement) -> tuple[str, ...]:
    """Tensors a statement names, even where they cancel (their axes still fix sizes)."""
    return tuple(dict.fromkeys([occ.tensor for occ in statement.occurrences] + list(ir.tensor_names(statement.rhs))))


def dependencies(statements: Iterable[Statement], roots: Iterable[str]) -> tuple[str, ...]:
    """Names of the statements the ``roots`` depend on, roots included, in program order.

    >>> from einderiv.language.parsing import parse_text
    >>> stmts, _, _ = analyse(parse_text("a[i] = x[i]; b[i] = y[i]; c[i] = a[i]"))
    >>> dependencies(stmts, ["c"])
    ('a', 'c')
    """
    table = {s.name: s for s in statements}
    seen: set[str] = set()
    stack = [r for r in roots if r in table]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(t for t in written_names(table[name]) if t in table)
    return tuple(name for name in table if name in seen)


# ---------------------------------------------------------------- the trap warning

def _trap_warnings(node: StatementNode, statement: Statement) -> list[str]:
    lhs = set(node.indices or ())
    found: dict[str, str] = {}
    _scan(node.rhs, opaque=None, bound=frozenset(), lhs=lhs, found=found)
    return [
        f"in statement {statement.number} (line {statement.line}: {statement.source.strip()}): index '{index}' "
        f"is summed over the whole term, outside the {where}, yet occurs twice in one product inside it. "
        f"To sum inside, write sum[{index}](...) there or use a separate statement; to keep the sum outside "
        f"and silence this warning, write sum[{index}](...) around the term."
        for index, where in found.items()
    ]


def _product_operands(node: Node) -> list[tuple[Node, bool]]:
    """The operands of a product, each with whether it is a denominator.

    ``A[i,j] / x[j]`` is the product of ``A[i,j]`` and ``x[j]^-1``: both count
    when looking for an index that occurs twice in one product.
    """
    if isinstance(node, Binary) and node.op == "*":
        return _product_operands(node.left) + _product_operands(node.right)
    if isinstance(node, Binary) and node.op == "/":
        return _product_operands(node.left) + [(node.right, True)]
    return [(node, False)]


def _free_names(node: Node, bound: frozenset[str]) -> set[str]:
    if isinstance(node, Name):
        return {i for i in (node.indices or ()) if i not in bound}
    if isinstance(node, DeltaNode):
        return {i for i in (node.first, node.second) if i not in bound}
    if isinstance(node, SumNode):
        return _free_names(node.body, bound | set(node.indices))
    if isinstance(node, Unary):
        return _free_names(node.operand, bound)
    if isinstance(node, Binary):
        return _free_names(node.left, bound) | _free_names(node.right, bound)
    if isinstance(node, CallNode) and node.fn in ir.MATRIX_FUNCTIONS:   # its argument's indices are its own
        return {i for i in (node.indices or ()) if i not in bound}
    if isinstance(node, CallNode):
        return set().union(*(_free_names(a, bound) for a in node.args)) if node.args else set()
    return set()


def _scan(node: Node, opaque: str | None, bound: frozenset[str], lhs: set[str], found: dict[str, str]) -> None:
    if isinstance(node, Binary) and node.op in ("*", "/"):
        operands = _product_operands(node)
        if opaque is not None and len(operands) > 1:
            counts: dict[str, int] = {}
            for operand, _ in operands:
                for index in _free_names(operand, bound):
                    counts[index] = counts.get(index, 0) + 1
            for index in sorted(counts):
                if counts[index] > 1 and index not in lhs:
                    found.setdefault(index, opaque)
        for operand, denominator in operands:
            _scan(operand, "denominator" if denominator else opaque, bound, lhs, found)
        return
    if isinstance(node, Binary) and node.op == "^":
        _scan(node.left, "power", bound, lhs, found)
        _scan(node.right, "power", bound, lhs, found)
    elif isinstance(node, Binary):
        _scan(node.left, opaque, bound, lhs, found)
        _scan(node.right, opaque, bound, lhs, found)
    elif isinstance(node, Unary):
        _scan(node.operand, opaque, bound, lhs, found)
    elif isinstance(node, CallNode) and node.fn in ir.MATRIX_FUNCTIONS:
        return      # a matrix argument sums repeated indices itself (Einstein's convention): no trap there
    elif isinstance(node, CallNode):
        for arg in node.args:
            _scan(arg, f"function {node.fn}(...)", bound, lhs, found)
    elif isinstance(node, SumNode):
        _scan(node.body, opaque, bound | set(node.indices), lhs, found)


# ---------------------------------------------------------------- sizes

def infer_shapes(statements: Iterable[Statement], ranks: Mapping[str, int], given: Mapping[str, tuple[int, ...]],
                 sizes: Mapping[str, int]) -> tuple[dict[str, tuple[int, ...]], dict[str, dict[int, int]]]:
    """Shapes from the given shapes and index sizes by name: ``(shapes found, known axes of the rest)``.

    An index takes its size from ``sizes`` (by the name the user wrote) or from any
    array it labels, within its statement; statements' shapes pass on to later
    statements, until nothing changes. Inputs (``ranks``) of rank 0 are scalars.
    Conflicts are left to :func:`resolve_sizes`, which names both sources; a shape not
    found is the caller's to report.

    >>> from einderiv.language.parsing import parse_text
    >>> stmts, inputs, _ = analyse(parse_text("C[i,j] = A[i,k] B[k,j]"))
    >>> infer_shapes(stmts, dict(inputs), {"A": (1, 3)}, {"j": 2})[0]
    {'A': (1, 3), 'B': (3, 2), 'C': (1, 2)}
    """
    statements = tuple(statements)
    shapes: dict[str, tuple[int, ...]] = {n: tuple(s) for n, s in given.items()}
    shapes.update({n: () for n, r in ranks.items() if r == 0 and n not in shapes})
    axes: dict[str, dict[int, int]] = {}
    changed = True
    while changed:
        changed = False
        for s in statements:
            roots = {r: sizes[ir.display_name(r)] for r in s.roots if ir.display_name(r) in sizes}
            for occ in s.occurrences:
                shape = shapes.get(occ.tensor)
                if shape is not None and occ.axis < len(shape):
                    roots.setdefault(occ.root, shape[occ.axis])
            for occ in s.occurrences:
                if occ.tensor in ranks and occ.tensor not in shapes and occ.root in roots:
                    axes.setdefault(occ.tensor, {}).setdefault(occ.axis, roots[occ.root])
            for name, known in axes.items():
                if name not in shapes and len(known) == ranks[name]:
                    shapes[name] = tuple(known[a] for a in range(ranks[name]))
                    changed = True
            if s.name not in shapes and all(r in roots for r in s.lhs):
                shapes[s.name] = tuple(roots[r] for r in s.lhs)
                changed = True
    return shapes, {n: known for n, known in axes.items() if n not in shapes}


def resolve_sizes(statements: tuple[Statement, ...], tensor_shapes: Mapping[str, tuple[int, ...]],
                  user_sizes: Mapping[str, int]) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
    """Sizes of every statement index and shape of every statement tensor.

    ``tensor_shapes`` holds the inputs' shapes; ``user_sizes`` sizes given by
    index name, which apply wherever that name is used. Raises
    :class:`ShapeError` naming the index, both sizes and where each came from.
    """
    shapes = dict(tensor_shapes)
    sizes: dict[str, int] = {}
    for statement in statements:
        source: dict[str, str] = {}
        for root in statement.roots:
            user = user_sizes.get(ir.display_name(root))
            if user is not None:
                sizes[root] = int(user)
                source[root] = f"sizes['{ir.display_name(root)}']"
        for occ in statement.occurrences:
            size = shapes[occ.tensor][occ.axis]
            where = f"{occ.tensor} (axis {occ.axis})"
            if occ.root in sizes and sizes[occ.root] != size:
                raise ShapeError(
                    f"index '{ir.display_name(occ.root)}' has size {sizes[occ.root]} from {source[occ.root]} "
                    f"but size {size} from {where}, in {statement.where()}")
            sizes[occ.root] = size
            source.setdefault(occ.root, where)
        _delta_sizes(statement, sizes, source)
        for root in statement.roots:
            if root not in sizes:
                raise ShapeError(
                    f"index '{ir.display_name(root)}' in {statement.where()} is not fixed by any array: "
                    f"give its size explicitly, e.g. sizes={{'{ir.display_name(root)}': 3}}")
        shapes[statement.name] = tuple(sizes[ir.index_root(i)] for i in statement.lhs)
    return sizes, shapes


def _delta_sizes(statement: Statement, sizes: dict[str, int], source: dict[str, str]) -> None:
    """A written ``δ[i,a]`` gives ``a`` the size of ``i`` (and back); two different sizes are an error."""
    changed = True
    while changed:
        changed = False
        for first, second in statement.deltas:
            a, b = sizes.get(first), sizes.get(second)
            if a is not None and b is not None and a != b:
                name1, name2 = ir.display_name(first), ir.display_name(second)
                raise ShapeError(
                    f"δ[{name1},{name2}] pairs index '{name1}' of size {a} (from {source[first]}) with index "
                    f"'{name2}' of size {b} (from {source[second]}), in {statement.where()}: "
                    f"a Kronecker delta's two indices must have the same size")
            for known, unknown in ((first, second), (second, first)):
                if sizes.get(known) is not None and sizes.get(unknown) is None:
                    sizes[unknown] = sizes[known]
                    source[unknown] = f"δ[{ir.display_name(first)},{ir.display_name(second)}] with " \
                                      f"'{ir.display_name(known)}' ({source[known]})"
                    changed = True
