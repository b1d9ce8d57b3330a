"""Program text → syntax tree with source positions.

The grammar lives in ``grammar.lark`` (LALR); ``generated_parser.py`` is lark's
standalone parser of it (regenerate with ``python scripts/regenerate_parser.py``),
so parsing needs neither lark nor a cache file. A lark ``Transformer`` turns the
parse tree into frozen dataclasses that remember line and column, so later
stages can point at the source. Syntax errors become :class:`ParseError` with
line, column, the source line and a caret; common mistakes get a message of
their own.

>>> tree = parse_text("F[i,k] = W[i,j] X[j,k]")
>>> tree.statements[0].name, tree.statements[0].indices
('F', ('i', 'k'))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Union

from einderiv.language.generated_parser import (Lark, Lark_StandAlone, Meta, Token, Transformer, UnexpectedCharacters,
                                                UnexpectedEOF, UnexpectedInput, VisitError, v_args)

from einderiv.errors import ParseError

__all__ = [
    "Node", "Number", "Name", "DeltaNode", "CallNode", "SumNode", "Unary", "Binary",
    "StatementNode", "ProgramNode", "parse_text", "caret_context",
]


@dataclass(frozen=True)
class Number:
    value: float
    line: int
    column: int


@dataclass(frozen=True)
class Name:
    """A tensor entry ``name[indices]``; ``indices`` is None for a bare name."""

    name: str
    indices: tuple[str, ...] | None
    line: int
    column: int


@dataclass(frozen=True)
class DeltaNode:
    """The Kronecker delta ``δ[i,a]`` (ASCII ``delta(i,a)``): 1 where the two indices agree."""

    first: str
    second: str
    line: int
    column: int


@dataclass(frozen=True)
class CallNode:
    """``fn(args)``; ``indices`` are those written after the call (``inv(A)[i,j]``), else None."""

    fn: str
    args: tuple["Node", ...]
    line: int
    column: int
    indices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SumNode:
    indices: tuple[str, ...]
    body: "Node"
    line: int
    column: int


@dataclass(frozen=True)
class Unary:
    op: str  # "-"
    operand: "Node"
    line: int
    column: int


@dataclass(frozen=True)
class Binary:
    op: str  # one of + - * / ^
    left: "Node"
    right: "Node"
    line: int
    column: int


Node = Union[Number, Name, DeltaNode, CallNode, SumNode, Unary, Binary]


@dataclass(frozen=True)
class StatementNode:
    name: str
    indices: tuple[str, ...] | None
    rhs: Node
    line: int
    column: int
    source: str  # the statement's text as written


@dataclass(frozen=True)
class ProgramNode:
    statements: tuple[StatementNode, ...]
    text: str


#: The generated module's (untyped) constructor of its parser, with the type it has.
_standalone: Callable[[], Lark] = Lark_StandAlone


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    # the LALR table comes built in generated_parser.py: no grammar analysis, no lark import, and
    # no pickled cache in the shared temporary directory (which lark's cache=True would unpickle)
    return _standalone()


def _pos(meta: Meta) -> tuple[int, int]:
    return (getattr(meta, "line", 1), getattr(meta, "column", 1))


@v_args(meta=True)
class _ToAst(Transformer[Token, ProgramNode]):
    """Parse tree → syntax tree; each rule's ``children`` are what the rules below it returned
    (tokens, nodes, index tuples, None for an omitted optional part), hence ``list[Any]``."""

    def __init__(self, text: str):
        super().__init__()
        self._text = text

    def start(self, meta: Meta, children: list[StatementNode]) -> ProgramNode:
        return ProgramNode(tuple(children), self._text)

    def statement(self, meta: Meta, children: list[Any]) -> StatementNode:
        (name, indices), rhs = children
        source = self._text[meta.start_pos:meta.end_pos]
        return StatementNode(name, indices, rhs, *_pos(meta), source)

    def lhs(self, meta: Meta, children: list[Any]) -> tuple[str, tuple[str, ...] | None]:
        name, indices = children
        return (str(name), indices)

    def index_list(self, meta: Meta, children: list[Token | None]) -> tuple[str, ...]:
        return tuple(str(c) for c in children if c is not None)

    def number(self, meta: Meta, children: list[Token]) -> Number:
        return Number(float(children[0]), *_pos(meta))

    def ref(self, meta: Meta, children: list[Any]) -> Name:
        name, indices = children
        return Name(str(name), indices, *_pos(meta))

    def call(self, meta: Meta, children: list[Any]) -> DeltaNode | CallNode:
        fn, *written, indices = children
        args: tuple[Node, ...] = tuple(a for a in written if a is not None)
        if str(fn) == "delta":
            if indices is not None:
                raise ParseError(f"line {meta.line}, column {meta.column}: a delta takes no indices after it\n"
                                 f"{caret_context(self._text, meta.line, meta.column)}")
            return _delta(args, meta, self._text)
        return CallNode(str(fn), args, *_pos(meta), indices)

    def delta(self, meta: Meta, children: list[Any]) -> DeltaNode:
        _, indices = children
        return _delta(tuple(Name(i, None, *_pos(meta)) for i in indices), meta, self._text)

    def explicit_sum(self, meta: Meta, children: list[Any]) -> SumNode:
        indices, body = children
        return SumNode(indices, body, *_pos(meta))

    def neg(self, meta: Meta, children: list[Node]) -> Unary:
        return Unary("-", children[0], *_pos(meta))

    def signed(self, meta: Meta, children: list[Node]) -> Node:  # unary plus
        return children[0]

    @staticmethod
    def _binary(op: str) -> Callable[[Any, Any, list[Node]], Binary]:
        def method(self: Any, meta: Any, children: list[Node]) -> Binary:
            return Binary(op, children[0], children[1], *_pos(meta))
        return method

    add = _binary("+")
    sub = _binary("-")
    mul = _binary("*")
    div = _binary("/")
    pow = _binary("^")


def _delta(args: tuple[Node, ...], meta: Meta, text: str) -> DeltaNode:
    """``δ[i,a]`` or ``delta(i,a)``: exactly two index names."""
    names = [a for a in args if isinstance(a, Name) and a.indices is None]
    if len(args) != 2 or len(names) != 2:
        line, column = _pos(meta)
        raise ParseError(f"line {line}, column {column}: a Kronecker delta takes two index names, "
                         f"as in δ[i,a] or delta(i,a)\n{caret_context(text, line, column)}", line, column)
    return DeltaNode(names[0].name, names[1].name, *_pos(meta))


def caret_context(text: str, line: int, column: int, width: int = 60) -> str:
    """The source line and a caret under ``column`` (both 1-based); a long line is cut
    to ``width`` characters either side of the column.

    >>> print(caret_context("y = x +", 1, 8))
        y = x +
               ^
    """
    lines = text.split("\n")
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    source = source[:-1] if source.endswith("\r") else source   # a \r\n line ending
    source = "".join(c if c.isprintable() or c == "\t" else "?" for c in source)  # one column each
    at = max(column - 1, 0)
    start, end = max(at - width, 0), at + width
    before, after = ("…" if start > 0 else ""), ("…" if end < len(source) else "")
    source = before + source[start:end] + after
    source = source.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate becomes '?'
    return f"    {source}\n    {' ' * (at - start + len(before))}^"


#: The longest program text parsed (a 16,000-statement program is about 400,000 characters).
MAX_PROGRAM_CHARACTERS = 10_000_000


def parse_text(text: str) -> ProgramNode:
    """Parse program text into a syntax tree, or raise :class:`ParseError`.

    >>> parse_text("y = 2 x").statements[0].rhs.op
    '*'
    """
    if not isinstance(text, str):
        raise ParseError(f"a program is text, not {type(text).__name__}")
    if len(text) > MAX_PROGRAM_CHARACTERS:
        raise ParseError(f"the program is {len(text):,} characters long, over the limit of "
                         f"{MAX_PROGRAM_CHARACTERS:,} (the command line reads at most 10 MB)")
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as error:
        raise _parse_error(text, error) from None
    except RecursionError:
        raise ParseError("the program is nested too deeply to parse") from None
    try:
        return _ToAst(text).transform(tree)
    except RecursionError:
        raise ParseError("the program is nested too deeply to parse") from None
    except VisitError as error:  # lark wraps what the transformer raises
        if isinstance(error.orig_exc, RecursionError):
            raise ParseError("the program is nested too deeply to parse") from None
        raise error.orig_exc from None


def _parse_error(text: str, error: UnexpectedInput) -> ParseError:
    line, column = getattr(error, "line", 1), getattr(error, "column", 1)
    if isinstance(error, UnexpectedEOF) or (line is None or line < 0):
        lines = text.rstrip("\n").split("\n")
        line, column = len(lines), len(lines[-1]) + 1
    what = _describe(text, error)
    message = f"line {line}, column {column}: {what}\n{caret_context(text, line, column)}"
    return ParseError(message, line, column)


def _describe(text: str, error: UnexpectedInput) -> str:
    expected = set(getattr(error, "expected", None) or getattr(error, "allowed", None) or ())
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream or 0
        char = text[position] if position < len(text) else ""
        if char and not char.isprintable() and char not in "\t\n":
            return (f"the control character {char!r} is not allowed in program text "
                    f"(a line ends with \\n or \\r\\n; blanks are spaces and tabs)")
        if char == "=":
            return "unexpected '=': a statement is 'Name[indices] = expression', one per line or separated by ';'"
        return f"unexpected character {char!r}"
    token = getattr(error, "token", None)
    shown = "end of input" if token is None or token.type == "$END" else repr(str(token))
    if "RSQB" in expected and "RPAR" not in expected:
        return f"unclosed '[' (expected ',' or ']', found {shown})"
    if token is not None and token.type in ("_SEP", "$END") and "RPAR" in expected:
        return f"unclosed '(' (expected ')', found {shown})"
    if "EQUAL" in expected and len(expected) <= 3:
        return f"missing '=' (found {shown}): a statement is 'Name[indices] = expression'"
    if token is not None and token.type in ("_SEP", "$END"):
        return "the expression ends too early"
    return f"unexpected {shown}"
