"""The nodes of a matrix expression: one small frozen class per construct, and their constructors.

``rows`` and ``cols`` are the (internal) indices that a node's rows and
columns run over; ``None`` is an axis of length one, so a column vector is
``(i, None)``, a row vector ``(None, i)`` and a scalar ``(None, None)``.
The constructors keep expressions in a normal shape: :func:`transpose`
pushes a transpose down to the leaves, :func:`product` and :func:`hadamard`
flatten nested products.

>>> from einderiv.render.matrix.styles import TEXT, render
>>> W, X = Tensor("i", "j", "W", 2), Tensor("j", "k", "X", 2)
>>> print(render(transpose(product("i", "k", [W, X])), TEXT))
Xᵀ Wᵀ
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence, overload

__all__ = ["NoForm", "Node", "Tensor", "Transpose", "Ones", "Identity", "Const", "SizeOf", "Product", "Hadamard",
           "Func", "MatrixFn", "HPower", "Trace", "Frobenius", "Diag", "DiagOf", "Norm2", "Kron", "VecDiag",
           "TermNode", "Sum", "transpose", "product", "hadamard", "as_column", "ones", "ones_row", "is_one",
           "children", "as_term", "walk"]


class NoForm(Exception):
    """Internal: the expression has no matrix form."""


# ---------------------------------------------------------------- nodes

@dataclass(frozen=True)
class Node:
    """Base of matrix-expression nodes: the index each axis runs over."""

    rows: str | None
    cols: str | None

    @property
    def is_scalar(self) -> bool:
        return self.rows is None and self.cols is None


@dataclass(frozen=True)
class Tensor(Node):
    """A tensor of the program (a rank-1 tensor is a column vector)."""

    name: str = ""
    rank: int = 0


@dataclass(frozen=True)
class Transpose(Node):
    """``Xᵀ``."""

    arg: Node


@dataclass(frozen=True)
class Ones(Node):
    """The all-ones column vector over ``index``."""

    index: str = ""


@dataclass(frozen=True)
class Identity(Node):
    """The identity matrix (from a Kronecker delta); ``label`` subscripts it in Kronecker forms."""

    label: str = ""


@dataclass(frozen=True)
class Const(Node):
    """A number (broadcast elementwise)."""

    value: float = 0.0


@dataclass(frozen=True)
class SizeOf(Node):
    """The size of an index, a scalar."""

    index: str = ""


@dataclass(frozen=True)
class Product(Node):
    """The matrix product of its factors, left to right."""

    factors: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Hadamard(Node):
    """The elementwise product ``A ⊙ B``."""

    factors: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Func(Node):
    """An elementwise function of same-shaped (or scalar) arguments."""

    fn: str = ""
    args: tuple[Node, ...] = ()


@dataclass(frozen=True)
class MatrixFn(Node):
    """``A⁻¹`` (``fn`` "inv"), or the scalars ``det(A)`` and ``log det(A)``.

    See :mod:`einderiv.core.matrix_functions`.
    """

    fn: str
    arg: Node


@dataclass(frozen=True)
class HPower(Node):
    """The elementwise power ``X^∘p`` (an ordinary power for a scalar)."""

    base: Node
    exponent: float = 1.0


@dataclass(frozen=True)
class Trace(Node):
    """``tr(X)``."""

    arg: Node


@dataclass(frozen=True)
class Frobenius(Node):
    """``A : B = Σ A[i,j] B[i,j] = tr(Aᵀ B)``, a scalar."""

    left: Node
    right: Node


@dataclass(frozen=True)
class Diag(Node):
    """``diag(v)``: the diagonal matrix with ``v`` on its diagonal."""

    arg: Node


@dataclass(frozen=True)
class DiagOf(Node):
    """``diag(X)``: the diagonal of a square matrix, as a column vector."""

    arg: Node


@dataclass(frozen=True)
class Norm2(Node):
    """The squared norm ``‖x‖²`` (``‖X‖_F²`` for a matrix)."""

    arg: Node


@dataclass(frozen=True)
class Kron(Node):
    """The Kronecker product ``A ⊗ B``."""

    left: Node
    right: Node


@dataclass(frozen=True)
class VecDiag(Node):
    """``diag(vec(X))``: the Jacobian of an elementwise map."""

    arg: Node


@dataclass(frozen=True)
class TermNode(Node):
    """``coeff · scalars · body / denominators`` (``body`` None: a scalar term)."""

    coeff: float = 1.0
    scalars: tuple[Node, ...] = ()
    body: Node | None = None
    dens: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Sum(Node):
    """A sum of terms."""

    terms: tuple[TermNode, ...] = ()


# ---------------------------------------------------------------- constructors

@overload
def transpose(node: TermNode) -> TermNode: ...
@overload
def transpose(node: Node) -> Node: ...


def transpose(node: Node) -> Node:
    """``nodeᵀ`` with the transpose pushed down to the leaves (a term stays a term)."""
    if node.is_scalar:
        return node
    if isinstance(node, (Identity, Diag, VecDiag)):   # symmetric
        return replace(node, rows=node.cols, cols=node.rows)
    rows, cols = node.cols, node.rows
    if isinstance(node, Transpose):
        return node.arg
    if isinstance(node, Product):
        return Product(rows, cols, tuple(transpose(f) for f in reversed(node.factors)))
    if isinstance(node, Hadamard):
        return Hadamard(rows, cols, tuple(transpose(f) for f in node.factors))
    if isinstance(node, HPower):
        return HPower(rows, cols, transpose(node.base), node.exponent)
    if isinstance(node, Kron):
        return Kron(rows, cols, transpose(node.left), transpose(node.right))
    if isinstance(node, TermNode):
        body = None if node.body is None else transpose(node.body)
        return replace(node, rows=rows, cols=cols, body=body)
    if isinstance(node, Sum):
        return Sum(rows, cols, tuple(transpose(t) for t in node.terms))
    return Transpose(rows, cols, node)


def _flatten(kind: type[Product] | type[Hadamard], factors: Sequence[Node]) -> list[Node]:
    """The factors with nested products of the same kind spliced in."""
    flat: list[Node] = []
    for f in factors:
        flat.extend(f.factors if isinstance(f, kind) else (f,))
    return flat


def product(rows: str | None, cols: str | None, factors: Sequence[Node]) -> Node:
    """A flattened product; identities next to another matrix factor vanish."""
    flat = _flatten(Product, factors)
    if len(flat) > 1:
        kept = [f for f in flat if not isinstance(f, Identity)]
        flat = kept or flat[:1]
    if len(flat) == 1:
        only = flat[0]
        return replace(only, rows=rows, cols=cols) if isinstance(only, (Identity,)) else only
    return Product(rows, cols, tuple(flat))


def hadamard(rows: str | None, cols: str | None, factors: Sequence[Node]) -> Node:
    """A flattened elementwise product (a single factor stays itself)."""
    flat = _flatten(Hadamard, factors)
    return flat[0] if len(flat) == 1 else Hadamard(rows, cols, tuple(flat))


def as_column(term: TermNode, row: str) -> TermNode:
    """A term whose body is a row vector turned into a column over ``row`` (other terms as they are)."""
    if term.body is not None and term.body.rows is None:
        return replace(term, rows=row, cols=None, body=transpose(term.body))
    return term


def ones(index: str) -> Ones:
    """The all-ones column vector ``1`` over ``index``."""
    return Ones(index, None, index)


def ones_row(index: str) -> Transpose:
    """The all-ones row vector ``1ᵀ`` over ``index``."""
    return Transpose(None, index, ones(index))


def is_one(node: Node) -> bool:
    """Whether ``node`` is the number 1."""
    return isinstance(node, Const) and node.value == 1.0


def children(node: Node, fn: Callable[[Node], Node]) -> Node:
    """The node with ``fn`` applied to each child node."""
    if isinstance(node, (Transpose, Trace, Diag, DiagOf, Norm2, VecDiag)):
        return replace(node, arg=fn(node.arg))
    if isinstance(node, (Product, Hadamard)):
        return replace(node, factors=tuple(fn(f) for f in node.factors))
    if isinstance(node, Func):
        return replace(node, args=tuple(fn(a) for a in node.args))
    if isinstance(node, HPower):
        return replace(node, base=fn(node.base))
    if isinstance(node, (Kron, Frobenius)):
        return replace(node, left=fn(node.left), right=fn(node.right))
    if isinstance(node, TermNode):
        return replace(node, scalars=tuple(fn(x) for x in node.scalars), dens=tuple(fn(x) for x in node.dens),
                       body=None if node.body is None else fn(node.body))
    if isinstance(node, Sum):
        return replace(node, terms=tuple(as_term(fn(t)) for t in node.terms))
    return node


def as_term(node: Node) -> TermNode:
    """``node``, which a rewrite of a sum's term returned: a term again (a :class:`TypeError` if not)."""
    if not isinstance(node, TermNode):
        raise TypeError(f"a rewrite turned a term of a sum into a {type(node).__name__}")
    return node


def walk(node: Node) -> Iterator[Node]:
    """``node`` and every node below it, parents before children, in :func:`children` order.

    >>> [type(n).__name__ for n in walk(Trace(None, None, ones("i")))]
    ['Trace', 'Ones']
    """
    yield node
    found: list[Node] = []

    def collect(child: Node) -> Node:
        found.append(child)
        return child
    children(node, collect)
    for child in found:
        yield from walk(child)
