"""Matrix notation for index expressions, where one exists.

:func:`to_matrix` turns an index-form expression into the notation of matrix
calculus: contraction chains of rank ≤ 2 factors become matrix products with
the transposes their index orientation asks for (``G[a,k] X[b,k]`` → ``G Xᵀ``,
``A[i,a] G[i,b]`` → ``Aᵀ G``), closed cycles become traces, factors sharing
every index a Hadamard product ``⊙``, a sum over one index of a matrix ``1ᵀ G``
(column sums), a vector next to a matrix on a shared index ``diag(v) M``,
Kronecker deltas identities. Elementwise functions keep their names, with the
derivative helpers written as indicators (``[H > 0]``) and ``σ'(Z)``. Sums
print with common factors pulled out: ``Z / N − T / N`` reads ``(Z − T) / N``.

The converter does not raise on what it cannot write (a rank-3 factor, a
summed index meeting three matrices…): it gives ``None``, "no matrix form",
and callers fall back to index form. Printing is pure — text, ASCII and LaTeX
are functions of the structure — while :meth:`MatrixForm.evaluate` computes
the matrix expression with numpy, so tests can check it against the index form.

:func:`kronecker_form` writes the Jacobian of a linear map between matrices as
the (column-major) ``vec`` matrix: for ``F = W X``, ``d vec(F)/d vec(W) = Xᵀ ⊗ I``.

>>> from einderiv import parse
>>> print(to_matrix(parse("F[i,k] = W[i,j] X[j,k]").statement("F").rhs))
W X
>>> print(to_matrix(parse("L = a[i] X[i,j] b[j]").derivative("X")))
a bᵀ
>>> print(kronecker_form(parse("F[i,k] = W[i,j] X[j,k]").derivative("W"), labels={"i": "m"}))
Xᵀ ⊗ I_m
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import numpy as np

from einderiv.core import ir
from einderiv.calculus.folding import fold_definitions
from einderiv.calculus.differentiation import DerivedStatement
from einderiv.core.functions import FUNCTIONS
from einderiv.numeric.elementwise import NUMPY_FUNCTIONS
from einderiv.core.ir import Call, Delta, Expr, Power, Ref, Size, Term
from einderiv.render.latex import ref_to_latex
from einderiv.language.printing import format_number
from einderiv.calculus.program import Derivative
from einderiv.core.simplify import simplify

__all__ = ["MatrixForm", "to_matrix", "kronecker_form", "kronecker_matrix", "fold_definitions", "Node",
           "describe_matrix_form", "column_vector_notes"]

class _NoForm(Exception):
    """Internal: the expression has no matrix form."""


# ---------------------------------------------------------------- nodes
#
# One small immutable class per construct. ``rows`` and ``cols`` are the
# (internal) indices that the node's rows and columns run over; ``None`` is an
# axis of length one, so a column vector is (i, None), a row vector (None, i)
# and a scalar (None, None).

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

    arg: Node = None


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
    """``A⁻¹`` (``fn`` "inv"), or the scalars ``det(A)`` and ``log det(A)`` (see :mod:`einderiv.core.matrix_functions`)."""

    fn: str = ""
    arg: Node = None


@dataclass(frozen=True)
class HPower(Node):
    """The elementwise power ``X^∘p`` (an ordinary power for a scalar)."""

    base: Node = None
    exponent: float = 1.0


@dataclass(frozen=True)
class Trace(Node):
    """``tr(X)``."""

    arg: Node = None


@dataclass(frozen=True)
class Frobenius(Node):
    """``A : B = Σ A[i,j] B[i,j] = tr(Aᵀ B)``, a scalar."""

    left: Node = None
    right: Node = None


@dataclass(frozen=True)
class Diag(Node):
    """``diag(v)``: the diagonal matrix with ``v`` on its diagonal."""

    arg: Node = None


@dataclass(frozen=True)
class DiagOf(Node):
    """``diag(X)``: the diagonal of a square matrix, as a column vector."""

    arg: Node = None


@dataclass(frozen=True)
class Norm2(Node):
    """The squared norm ``‖x‖²`` (``‖X‖_F²`` for a matrix)."""

    arg: Node = None


@dataclass(frozen=True)
class Kron(Node):
    """The Kronecker product ``A ⊗ B``."""

    left: Node = None
    right: Node = None


@dataclass(frozen=True)
class VecDiag(Node):
    """``diag(vec(X))``: the Jacobian of an elementwise map."""

    arg: Node = None


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

def _transpose(node: Node) -> Node:
    """``nodeᵀ`` with the transpose pushed down to the leaves."""
    if node.is_scalar:
        return node
    if isinstance(node, (Identity, Diag, VecDiag)):   # symmetric
        return replace(node, rows=node.cols, cols=node.rows)
    rows, cols = node.cols, node.rows
    if isinstance(node, Transpose):
        return node.arg
    if isinstance(node, Product):
        return Product(rows, cols, tuple(_transpose(f) for f in reversed(node.factors)))
    if isinstance(node, Hadamard):
        return Hadamard(rows, cols, tuple(_transpose(f) for f in node.factors))
    if isinstance(node, HPower):
        return HPower(rows, cols, _transpose(node.base), node.exponent)
    if isinstance(node, Kron):
        return Kron(rows, cols, _transpose(node.left), _transpose(node.right))
    if isinstance(node, TermNode):
        body = None if node.body is None else _transpose(node.body)
        return replace(node, rows=rows, cols=cols, body=body)
    if isinstance(node, Sum):
        return Sum(rows, cols, tuple(_transpose(t) for t in node.terms))
    return Transpose(rows, cols, node)


def _product(rows: str | None, cols: str | None, factors: Sequence[Node]) -> Node:
    """A flattened product; identities next to another matrix factor vanish."""
    flat: list[Node] = []
    for f in factors:
        flat.extend(f.factors if isinstance(f, Product) else (f,))
    if len(flat) > 1:
        kept = [f for f in flat if not isinstance(f, Identity)]
        flat = kept or flat[:1]
    if len(flat) == 1:
        only = flat[0]
        return replace(only, rows=rows, cols=cols) if isinstance(only, (Identity,)) else only
    return Product(rows, cols, tuple(flat))


def _hadamard(rows: str | None, cols: str | None, factors: Sequence[Node]) -> Node:
    flat: list[Node] = []
    for f in factors:
        flat.extend(f.factors if isinstance(f, Hadamard) else (f,))
    return flat[0] if len(flat) == 1 else Hadamard(rows, cols, tuple(flat))


# ---------------------------------------------------------------- conversion

@dataclass
class _Item:
    """A factor during conversion: its node and the indices of its rows and columns."""

    node: Node
    row: str | None
    col: str | None

    @property
    def indices(self) -> tuple[str, ...]:
        return tuple(i for i in (self.row, self.col) if i is not None)


def _orient(item: _Item, row: str | None, col: str | None) -> Node:
    """The item's node laid out with ``row`` down and ``col`` across."""
    if (item.row, item.col) == (row, col):
        return item.node
    if (item.col, item.row) == (row, col):
        return _transpose(item.node)
    raise _NoForm(f"cannot lay out {item} as ({row}, {col})")


@dataclass(frozen=True)
class _Ctx:
    """Tensor display names; ``natural``: a top-level vector of column sums may stay a row (``1ᵀ G``)."""

    tensors: Mapping[str, str]
    natural: bool = False

    def name(self, tensor: str) -> str:
        return self.tensors.get(tensor, tensor)


def _target(indices: Sequence[str]) -> tuple[str | None, str | None]:
    if len(indices) > 2:
        raise _NoForm("more than two free indices")
    padded = tuple(indices) + (None, None)
    return padded[0], padded[1]


def _factor_item(factor, ctx: _Ctx) -> _Item:
    if isinstance(factor, Ref):
        idx = factor.indices
        if len(idx) > 2:
            raise _NoForm(f"{factor.name} has rank {len(idx)}")
        row, col = _target(idx)
        node = Tensor(row, col, ctx.name(factor.name), len(idx))
        if len(idx) == 2 and idx[0] == idx[1]:
            return _Item(DiagOf(idx[0], None, Tensor(idx[0], idx[0], ctx.name(factor.name), 2)), idx[0], None)
        return _Item(node, row, col)
    if isinstance(factor, Delta):
        return _Item(Identity(factor.first, factor.second), factor.first, factor.second)
    if isinstance(factor, Size):
        return _Item(SizeOf(None, None, factor.index), None, None)
    free = tuple(dict.fromkeys(ir.factor_indices(factor)))
    row, col = _target(free)
    ctx = replace(ctx, natural=False)   # arguments are laid out exactly as the call
    if isinstance(factor, Call):
        args = tuple(_convert_expr(a, (row, col), ctx) for a in factor.args)
        return _Item(Func(row, col, factor.fn, args), row, col)
    if isinstance(factor, ir.MatFn):
        if len(factor.indices) != (2 if factor.fn == "inv" else 0):
            raise _NoForm("a batch of matrices")
        matrix = _convert_expr(factor.arg, (factor.rows, factor.cols), ctx)
        if factor.fn != "inv":
            return _Item(MatrixFn(None, None, factor.fn, matrix), None, None)
        p, q = factor.indices
        if p == q:      # inv(A)[i,i]: the diagonal of the inverse
            return _Item(DiagOf(p, None, MatrixFn(p, p, "inv", matrix)), p, None)
        return _Item(MatrixFn(p, q, "inv", matrix), p, q)
    p = ir.constant_value(factor.exponent)
    if p is None:
        raise _NoForm("a power with a non-constant exponent")
    base = _convert_expr(factor.base, (row, col), ctx)
    return _Item(HPower(row, col, base, p), row, col)


def _holders(items: list[_Item], index: str) -> list[int]:
    return [k for k, it in enumerate(items) if index in it.indices]


def _merge_same(items: list[_Item], summed: list[str]) -> bool:
    """Factors over the same indices: a Hadamard product, or a trace / inner product if they close a cycle."""
    for p in range(len(items)):
        for q in range(p + 1, len(items)):
            a, b = items[p], items[q]
            if not a.indices or sorted(a.indices) != sorted(b.indices):
                continue
            closed = all(i in summed and len(_holders(items, i)) == 2 for i in a.indices)
            if closed and len(a.indices) == 2 and (b.row, b.col) == (a.row, a.col):
                node = Frobenius(None, None, a.node, b.node)
            elif closed and len(a.indices) == 2:
                i, j = a.row, a.col
                node = Trace(None, None, _product(i, i, [a.node, _orient(b, j, i)]))
            elif closed:
                (i,) = a.indices
                node = _product(None, None, [_orient(a, None, i), _orient(b, i, None)])
            else:
                node = _hadamard(a.row, a.col, [a.node, _orient(b, a.row, a.col)])
            items[p] = _Item(node, None, None) if closed else _Item(node, a.row, a.col)
            del items[q]
            if closed:
                for i in a.indices:
                    summed.remove(i)
            return True
    return False


def _other(item: _Item, index: str) -> str | None:
    rest = [i for i in item.indices if i != index]
    return rest[0] if rest else None


def _contract(items: list[_Item], summed: list[str]) -> bool:
    """A summed index shared by exactly two factors: a matrix product.

    Among the candidates, the one needing fewest transposes goes first, so a
    chain is read in its own direction (``A[i,j] X[j,k] B[k,i]`` → ``tr(A X B)``).
    """
    best = None
    for s in summed:
        holders = _holders(items, s)
        if len(holders) != 2:
            continue
        p, q = holders
        if _other(items[p], s) is not None and _other(items[p], s) == _other(items[q], s):
            continue
        for left, right in ((p, q), (q, p)):
            cost = ((items[left].col != s) + (items[right].row != s), left > right)
            if best is None or cost < best[0]:
                best = (cost, s, left, right)
    if best is None:
        return False
    _, s, p, q = best
    left, right = items[p], items[q]
    lo, ro = _other(left, s), _other(right, s)
    node = _product(lo, ro, [_orient(left, lo, s), _orient(right, s, ro)])
    items[min(p, q)] = _Item(node, lo, ro)
    del items[max(p, q)]
    summed.remove(s)
    return True


def _sum_out(items: list[_Item], summed: list[str]) -> bool:
    """A summed index of one factor only: ``1ᵀ G`` or ``G 1`` (or a squared norm)."""
    for s in summed:
        holders = _holders(items, s)
        if len(holders) > 1:
            continue
        if not holders:
            items.append(_Item(SizeOf(None, None, s), None, None))
            summed.remove(s)
            return True
        (p,) = holders
        item = items[p]
        node = item.node
        if isinstance(node, HPower) and node.exponent == 2.0 and \
                all(i in summed and len(_holders(items, i)) == 1 for i in item.indices):
            items[p] = _Item(Norm2(None, None, node.base), None, None)
            for i in item.indices:
                summed.remove(i)
            return True
        o = _other(item, s)
        if item.col == s:   # G 1: sums along each row
            new = _Item(_product(o, None, [_orient(item, o, s), Ones(s, None, s)]), o, None)
        else:               # 1ᵀ G: sums down each column
            new = _Item(_product(None, o, [Transpose(None, s, Ones(s, None, s)), _orient(item, s, o)]), None, o)
        items[p] = new
        summed.remove(s)
        return True
    return False


def _diag(items: list[_Item], summed: list[str]) -> bool:
    """A vector and a matrix on one index: ``diag(v) M``."""
    for p, v in enumerate(items):
        if len(v.indices) != 1:
            continue
        (x,) = v.indices
        for q, m in enumerate(items):
            if q == p or len(m.indices) != 2 or x not in m.indices:
                continue
            o = _other(m, x)
            node = _product(x, o, [Diag(x, x, _orient(v, x, None)), _orient(m, x, o)])
            items[q] = _Item(node, x, o)
            del items[p]
            return True
    return False


def _convert_term(term: Term, target: tuple[str | None, str | None], ctx: _Ctx) -> TermNode:
    items = [_factor_item(f, ctx) for f in term.factors]
    summed = list(term.summed)
    while _merge_same(items, summed) or _contract(items, summed) or _sum_out(items, summed) or \
            _diag(items, summed):
        pass
    if summed:
        raise _NoForm("a summed index is shared by more than two factors")
    scalars, dens, rest = [], [], []
    for it in items:
        if it.indices:
            rest.append(it)
        elif isinstance(it.node, HPower) and it.node.exponent < 0:
            base = it.node.base
            dens.append(base if it.node.exponent == -1 else replace(it.node, exponent=-it.node.exponent))
        else:
            scalars.append(it.node)
    body = _assemble(rest, target, ctx.natural)
    return TermNode(target[0] if body is not None else None, target[1] if body is not None else None,
                    term.coeff, tuple(scalars), body, tuple(dens))


def _is_column_sums(node: Node) -> bool:
    """``1ᵀ G``: a row vector of column sums, kept as written."""
    return isinstance(node, Product) and isinstance(node.factors[0], Transpose) and \
        isinstance(node.factors[0].arg, Ones)


def _assemble(rest: list[_Item], target: tuple[str | None, str | None], natural: bool) -> Node | None:
    """Lay the remaining (free-index) factors out as the target: outer products and broadcasts."""
    row, col = target
    wanted = {i for i in target if i is not None}
    if not rest:
        return None
    if len(rest) > 2 or len({i for it in rest for i in it.indices}) != sum(len(it.indices) for it in rest):
        raise _NoForm("free indices shared by several factors")
    if not {i for it in rest for i in it.indices} <= wanted:
        raise _NoForm("an index outside the target")
    if len(rest) == 2:   # two vectors: an outer product
        a, b = rest
        if a.indices[0] != row:
            a, b = b, a
        return _product(row, col, [_orient(a, row, None), _orient(b, None, col)])
    (it,) = rest
    if set(it.indices) == wanted:
        if natural and col is None and it.row is None and _is_column_sums(it.node):   # 1ᵀ G stays a row
            return it.node
        return _orient(it, row, col)
    # broadcast a vector along the missing index: v 1ᵀ or 1 vᵀ
    (x,) = it.indices
    if x == row:
        return _product(row, col, [_orient(it, row, None), Transpose(None, col, Ones(col, None, col))])
    return _product(row, col, [Ones(row, None, row), _orient(it, None, col)])


def _convert_expr(expr: Expr, target: tuple[str | None, str | None], ctx: _Ctx) -> Node:
    if not expr.terms:
        return Const(None, None, 0.0)
    terms = [_convert_term(t, target, ctx) for t in expr.terms]
    if len(terms) == 1:
        return _unwrap(terms[0])
    if target[1] is None and target[0] is not None and \
            (not ctx.natural or any(t.body is None or t.body.rows is not None for t in terms)):
        terms = [_as_column(t, target[0]) for t in terms]   # rows (column sums) stay rows only all together
    return _factor(Sum(target[0], target[1], tuple(terms)))


def _as_column(term: TermNode, row: str) -> TermNode:
    if term.body is not None and term.body.rows is None:
        return replace(term, rows=row, cols=None, body=_transpose(term.body))
    return term


def _unwrap(term: TermNode) -> Node:
    """A bare factor stays itself: ``1 · X`` is ``X``."""
    if term.coeff == 1.0 and not term.dens:
        if term.body is not None and not term.scalars:
            return term.body
        if term.body is None and len(term.scalars) == 1:
            return term.scalars[0]
    if term.body is None and not term.scalars and not term.dens:
        return Const(None, None, term.coeff)
    return term


# ---------------------------------------------------------------- common factors

def _key(node: Node) -> str:
    """Equal for equal matrices: the text, plus the indices that ones vectors and identities span."""
    return _render(node, _TEXT) + "|" + ",".join(_spans(node))


def _spans(node: Node) -> list[str]:
    if isinstance(node, Ones):
        return [ir.index_root(node.index)]
    if isinstance(node, Identity):
        return [ir.index_root(node.rows or "")]
    out: list[str] = []
    _children(node, lambda child: out.extend(_spans(child)) or child)
    return out


def _chain(body: Node) -> list[Node]:
    return list(body.factors) if isinstance(body, Product) else [body]


def _had(body: Node) -> list[Node]:
    """Hadamard factors, integer powers counted as repeated factors."""
    out: list[Node] = []
    for f in (body.factors if isinstance(body, Hadamard) else (body,)):
        if isinstance(f, HPower) and float(f.exponent).is_integer() and 2 <= f.exponent <= 4 and not f.is_scalar:
            out.extend([f.base] * int(f.exponent))
        else:
            out.append(f)
    return out


def _common(lists: list[list[Node]]) -> list[Node]:
    """Factors (by text) present in every list, with multiplicity, in the first list's order."""
    common = []
    pools = [[_key(n) for n in lst] for lst in lists]
    for node in lists[0]:
        k = _key(node)
        if all(k in pool for pool in pools[1:]) and k in pools[0]:
            common.append(node)
            for pool in pools:
                pool.remove(k)
    return common


def _without(lst: list[Node], remove: list[Node]) -> list[Node]:
    keys = [_key(n) for n in remove]
    out = []
    for n in lst:
        k = _key(n)
        if k in keys:
            keys.remove(k)
        else:
            out.append(n)
    return out


def _regroup(nodes: list[Node]) -> list[Node]:
    """Equal Hadamard factors back into powers: ``σ ⊙ σ`` → ``σ^∘2``."""
    out: list[Node] = []
    counts: dict[str, int] = {}
    first: dict[str, Node] = {}
    for n in nodes:
        k = _key(n)
        counts[k] = counts.get(k, 0) + 1
        first.setdefault(k, n)
    for k, n in first.items():
        out.append(n if counts[k] == 1 else HPower(n.rows, n.cols, n, float(counts[k])))
    return out


def _factor(total: Sum) -> Node:
    """Pull out what every term shares: coefficient, scalars, denominators, outer factors."""
    terms = list(total.terms)
    rows, cols = total.rows, total.cols
    for kind in (Diag, VecDiag):   # diag(u) − diag(v) = diag(u − v)
        if all(isinstance(t.body, kind) for t in terms):
            arg = terms[0].body.arg
            inner = Sum(arg.rows, arg.cols, tuple(replace(t, rows=arg.rows, cols=arg.cols, body=t.body.arg)
                                                  for t in terms))
            return kind(rows, cols, _factor(inner))
    coeffs = {abs(t.coeff) for t in terms}
    coeff = coeffs.pop() if len(coeffs) == 1 else 1.0
    scalars = _common([list(t.scalars) for t in terms])
    dens = _common([list(t.dens) for t in terms])
    left: list[Node] = []
    right: list[Node] = []
    had: list[Node] = []
    bodies = [t.body for t in terms]
    if all(b is not None for b in bodies):
        had = _common([_had(b) for b in bodies])
        if not had:
            left, right = _outer_common([_chain(b) for b in bodies])
    if coeff == 1.0 and not scalars and not dens and not left and not right and not had:
        return total
    inner = []
    for t in terms:
        body = t.body
        if body is not None and had:
            rest = _regroup(_without(_had(body), had))
            body = _hadamard(body.rows, body.cols, rest) if rest else None
        elif body is not None and (left or right):
            chain = _chain(body)[len(left):len(_chain(body)) - len(right)]
            first, last = chain[0], chain[-1]
            body = _product(first.rows, last.cols, chain)
        inner.append(TermNode(body.rows if body is not None else None, body.cols if body is not None else None,
                              t.coeff / coeff, tuple(_without(list(t.scalars), scalars)), body,
                              tuple(_without(list(t.dens), dens))))
    inner_rows = left[-1].cols if left else (rows if not right else right[0].rows)
    inner_cols = right[0].rows if right else (cols if not left else left[-1].cols)
    inner_node: Node = Sum(inner_rows, inner_cols, tuple(_as_column(t, inner_rows) if inner_cols is None and
                                                         inner_rows is not None else t for t in inner))
    if len(inner) > 1 and inner_node != total:
        inner_node = _factor(inner_node)
    if had:
        body: Node = _hadamard(rows, cols, _in_place(_had(terms[0].body), had, inner_node))
    else:
        body = _product(rows, cols, left + [inner_node] + right)
    return TermNode(rows, cols, coeff, tuple(scalars), body, tuple(dens))


def _in_place(first: list[Node], common: list[Node], inner: Node) -> list[Node]:
    """The common factors in their order in ``first``, ``inner`` where the first other factor stood."""
    keys = [_key(n) for n in common]
    out: list[Node] = []
    for n in first:
        k = _key(n)
        if k in keys:
            keys.remove(k)
            out.append(n)
        elif inner is not None:
            out.append(inner)
            inner = None
    if inner is not None:
        out.append(inner)
    return _regroup([n for n in out])


def _outer_common(chains: list[list[Node]]) -> tuple[list[Node], list[Node]]:
    """The longest common leftmost and rightmost product factors, leaving each term at least one."""
    shortest = min(len(c) for c in chains)
    left: list[Node] = []
    for k in range(shortest - 1):
        keys = {_key(c[k]) for c in chains}
        if len(keys) != 1:
            break
        left.append(chains[0][k])
    right: list[Node] = []
    for k in range(1, shortest - len(left)):
        keys = {_key(c[-k]) for c in chains}
        if len(keys) != 1:
            break
        right.insert(0, chains[0][-k])
    return left, right


def _sigmoid_prime(node: Node) -> Node:
    """Rewrite ``σ(U) ⊙ (1 − σ(U))`` anywhere in a Hadamard product as ``σ'(U)``."""
    if not isinstance(node, Hadamard):
        return node
    factors = list(node.factors)
    for k, f in enumerate(factors):
        if not (isinstance(f, Func) and f.fn == "sigmoid"):
            continue
        for m, g in enumerate(factors):
            if m != k and _is_one_minus(g, f):
                new = Func(f.rows, f.cols, "sigmoid'", f.args)
                rest = [x for j, x in enumerate(factors) if j not in (k, m)]
                return _hadamard(node.rows, node.cols, rest + [new]) if rest else new
    return node


def _is_one_minus(node: Node, f: Node) -> bool:
    if not isinstance(node, TermNode) or node.coeff != 1.0 or node.scalars or node.dens:
        total = node
    else:
        total = node.body
    if not isinstance(total, Sum) or len(total.terms) != 2:
        return False
    one, minus = total.terms
    return (one.body is None and not one.scalars and not one.dens and one.coeff == 1.0 and
            minus.coeff == -1.0 and not minus.scalars and not minus.dens and minus.body is not None and
            _key(minus.body) == _key(f))


# ---------------------------------------------------------------- rendering

@dataclass(frozen=True)
class _Style:
    name: str
    transpose: str
    hadamard: str
    minus: str
    kron: Callable[[str, str], str]
    frac: Callable[[str, str], str]
    tensor: Callable[[str], str]
    ones: str
    identity: Callable[[str], str]
    trace: Callable[[str], str]
    diag: Callable[[str], str]
    norm: Callable[[str, bool], str]
    power: Callable[[str, str, bool], str]
    half: str
    size: Callable[[str], str]
    call: Callable[[str, str], str]
    indicator: Callable[[str, str, str], str]
    compare: Mapping[str, str]
    vecdiag: Callable[[str], str]


_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _notation(fn: str, style: str) -> str:
    """How ``style`` names the function ``fn``; a derivative ``f'`` (``σ'``) is its function's name primed."""
    base = fn.rstrip("'")
    return getattr(FUNCTIONS[base].matrix, style) + fn[len(base):]


def _relations(style: str) -> dict[str, str]:
    """The comparisons' operators in ``style``: ``{"gt": ">", "ge": "≥", ...}``."""
    return {f.name: getattr(f.matrix, style) for f in FUNCTIONS.values() if f.matrix and f.matrix.relation}


def _latex_name(name: str) -> str:
    """Tensor names as the index-form LaTeX writes them (``\\mathrm{W1}``)."""
    return ref_to_latex(name, ())


_TEXT = _Style(
    "text", "ᵀ", " ⊙ ", " − ", lambda a, b: f"{a} ⊗ {b}", lambda n, d: f"{n} / {d}", lambda n: n, "1",
    lambda label: f"I_{label}" if label else "I", lambda x: f"tr({x})", lambda x: f"diag({x})",
    lambda x, f: f"‖{x}‖_F²" if f else f"‖{x}‖²",
    lambda b, p, scalar: f"{b}{p.translate(_SUPERSCRIPTS)}" if scalar and p.lstrip("-").isdigit()
    else (f"{b}^{p}" if scalar else f"{b}^∘{p}"),
    "½", lambda i: f"size({i})", lambda fn, args: f"{_notation(fn, 'text')}({args})",
    lambda a, op, b: f"[{a} {op} {b}]", _relations("text"),
    lambda x: f"diag(vec({x}))")

_ASCII = _Style(
    "ascii", "^T", " .* ", " - ", lambda a, b: f"kron({a}, {b})", lambda n, d: f"{n} / {d}", lambda n: n, "1",
    lambda label: f"I_{label}" if label else "I", lambda x: f"tr({x})", lambda x: f"diag({x})",
    lambda x, f: f"||{x}||_F^2" if f else f"||{x}||^2",
    lambda b, p, scalar: f"{b}^{p}" if scalar else f"{b}.^{p}",
    "0.5", lambda i: f"size({i})", lambda fn, args: f"{_notation(fn, 'ascii')}({args})",
    lambda a, op, b: f"[{a} {op} {b}]", _relations("ascii"),
    lambda x: f"diag(vec({x}))")

_LATEX = _Style(
    "latex", r"^\top", r" \odot ", " - ", lambda a, b: rf"{a} \otimes {b}", lambda n, d: rf"\frac{{{n}}}{{{d}}}",
    _latex_name, r"\mathbf{1}", lambda label: rf"I_{{{label}}}" if label else "I",
    lambda x: rf"\operatorname{{tr}}\left({x}\right)", lambda x: rf"\operatorname{{diag}}\left({x}\right)",
    lambda x, f: rf"\left\lVert {x} \right\rVert_F^2" if f else rf"\left\lVert {x} \right\rVert^2",
    lambda b, p, scalar: f"{b}^{{{p}}}" if scalar else rf"{b}^{{\circ {p}}}",
    r"\tfrac{1}{2}", lambda i: rf"\lvert {i} \rvert",
    lambda fn, args: rf"{_notation(fn, 'latex')}\left({args}\right)",
    lambda a, op, b: rf"\mathbb{{1}}\left[{a} {op} {b}\right]", _relations("latex"),
    lambda x: rf"\operatorname{{diag}}\left(\operatorname{{vec}}\left({x}\right)\right)")

_STYLES = {"text": _TEXT, "ascii": _ASCII, "latex": _LATEX}

# precedence, loosest first: sum, scaled term, Hadamard/Kronecker, product, power/transpose, atom
_SUM, _TERM, _BIN, _PROD, _POW, _ATOM = 0, 1, 2, 3, 4, 5


def _paren(text: str, style: _Style) -> str:
    return rf"\left({text}\right)" if style is _LATEX else f"({text})"


def _wrap(node: Node, style: _Style, at_least: int) -> str:
    text, level = _render_level(node, style)
    return text if level >= at_least else _paren(text, style)


def _render_matrix_fn(node: MatrixFn, s: _Style, transposed: bool = False) -> tuple[str, int]:
    """``A⁻¹``, ``A⁻ᵀ`` (for ``(A⁻¹)ᵀ`` and ``(Aᵀ)⁻¹``), ``det(A)``, ``log det(A)`` in the style."""
    if node.fn == "inv":
        matrix = node.arg
        if isinstance(matrix, Transpose):
            matrix, transposed = matrix.arg, not transposed
        base = _wrap(matrix, s, _ATOM)
        mark = {"text": ("⁻¹", "⁻ᵀ"), "ascii": ("^-1", "^-T")}.get(s.name, ("^{-1}", "^{-T}"))[transposed]
        return base + mark, _POW
    inner = _render(node.arg, s)
    if s.name == "latex":
        head = r"\det" if node.fn == "det" else r"\log\det"
        return rf"{head}\left({inner}\right)", _ATOM
    return f"{'det' if node.fn == 'det' else 'log det'}({inner})", _ATOM


def _render(node: Node, style: _Style) -> str:
    return _render_level(node, style)[0]


def _render_level(node: Node, s: _Style) -> tuple[str, int]:
    if isinstance(node, Tensor):
        return s.tensor(node.name), _ATOM
    if isinstance(node, Ones):
        return s.ones, _ATOM
    if isinstance(node, Identity):
        return s.identity(node.label), _ATOM
    if isinstance(node, Const):
        return format_number(node.value), _ATOM if node.value >= 0 else _TERM
    if isinstance(node, SizeOf):
        return s.size(ir.display_name(node.index)), _ATOM
    if isinstance(node, Transpose) and isinstance(node.arg, MatrixFn):
        return _render_matrix_fn(node.arg, s, transposed=True)
    if isinstance(node, Transpose):
        return _wrap(node.arg, s, _ATOM) + s.transpose, _POW
    if isinstance(node, Product):
        return " ".join(_wrap(f, s, _POW) for f in node.factors), _PROD
    if isinstance(node, Hadamard):
        return s.hadamard.join(_wrap(f, s, _POW) for f in node.factors), _BIN
    if isinstance(node, Kron):
        return s.kron(_wrap(node.left, s, _POW), _wrap(node.right, s, _POW)), _BIN
    if isinstance(node, Frobenius):
        return f"{_wrap(node.left, s, _POW)} : {_wrap(node.right, s, _POW)}", _BIN
    if isinstance(node, Func):
        return _render_call(node, s), _ATOM
    if isinstance(node, HPower):
        p = format_number(node.exponent)
        return s.power(_wrap(node.base, s, _ATOM), p, node.is_scalar), _POW
    if isinstance(node, MatrixFn):
        return _render_matrix_fn(node, s)
    if isinstance(node, Trace):
        return s.trace(_render(node.arg, s)), _ATOM
    if isinstance(node, (Diag, DiagOf)):
        return s.diag(_render(node.arg, s)), _ATOM
    if isinstance(node, VecDiag):
        return s.vecdiag(_render(node.arg, s)), _ATOM
    if isinstance(node, Norm2):
        return s.norm(_render(node.arg, s), node.arg.rows is not None and node.arg.cols is not None), _ATOM
    if isinstance(node, TermNode):
        return _render_term(node, s)
    if isinstance(node, Sum):
        return _render_sum(node, s), _SUM
    raise TypeError(f"unknown node {type(node).__name__}")


def _render_call(node: Func, s: _Style) -> str:
    if node.fn in s.compare and len(node.args) == 2:
        a, b = node.args
        op = s.compare[node.fn]
        if isinstance(a, Const) and not isinstance(b, Const):   # [0 ≤ H] reads [H ≥ 0]
            flipped = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}[node.fn]
            a, b, op = b, a, s.compare[flipped]
        return s.indicator(_render(a, s), op, _render(b, s))
    if node.fn == "step":
        return s.indicator(_render(node.args[0], s), s.compare["gt"], "0")
    return s.call(node.fn, ", ".join(_render(a, s) for a in node.args))


def _render_term(node: TermNode, s: _Style) -> tuple[str, int]:
    sign = "-" if node.coeff < 0 else ""
    magnitude = abs(node.coeff)
    dens = [_wrap(d, s, _POW) for d in node.dens]
    inverse = 1.0 / magnitude if magnitude else 0.0
    if magnitude != 1.0 and inverse.is_integer() and (dens or s is not _TEXT or inverse != 2.0):
        dens.insert(0, format_number(inverse))      # ½ X / N reads X / (2 N)
        magnitude = 1.0
    parts = [s.half if magnitude == 0.5 and s is _TEXT else format_number(magnitude)] if magnitude != 1.0 else []
    factors = list(node.scalars) + ([node.body] if node.body is not None else [])
    levels = []
    for f in factors:
        text, level = _render_level(f, s)
        if level < _BIN:
            text, level = _paren(text, s), _ATOM
        parts.append(text)
        levels.append(level)
    if not parts:
        parts = ["1"]
    level = levels[0] if len(parts) == 1 and levels else (_TERM if len(parts) > 1 else _ATOM)
    numerator = " ".join(parts)
    if not dens:
        return sign + numerator, (_TERM if sign else level)
    if s is _LATEX:
        return sign + s.frac(numerator, " ".join(dens)), _TERM
    if level < _PROD:
        numerator = _paren(numerator, s)
    den = dens[0] if len(dens) == 1 else _paren(" ".join(dens), s)
    return sign + s.frac(numerator, den), _TERM


def _render_sum(node: Sum, s: _Style) -> str:
    out = []
    for k, t in enumerate(node.terms):
        text, level = _render_level(t, s)
        if level == _SUM:
            text = _paren(text, s)
        negative = text.startswith("-")
        body = text[1:] if negative else text
        if k == 0:
            out.append(("-" if s is not _TEXT else "−") + body if negative else body)
        else:
            out.append((s.minus if negative else " + ") + body)
    return "".join(out)


# ---------------------------------------------------------------- evaluation

def _evaluate(node: Node, env: Mapping[str, np.ndarray], size: Callable[[str], int]) -> np.ndarray:
    """The node's value as a 2-d array (a vector is n×1 or 1×n, a scalar 1×1)."""
    def ev(n: Node) -> np.ndarray:
        return _evaluate(n, env, size)
    if isinstance(node, Tensor):
        array = np.asarray(env[node.name], dtype=float)
        if node.rank == 2:
            return array
        return array.reshape(-1, 1) if node.rank == 1 else array.reshape(1, 1)
    if isinstance(node, Transpose):
        return ev(node.arg).T
    if isinstance(node, Ones):
        return np.ones((size(node.index), 1))
    if isinstance(node, Identity):
        # The textbook form names I_m itself (Xᵀ ⊗ I_m); evaluating that form to check it is the one
        # place an identity is built. Derivatives never contract one: their deltas are renamed away.
        return np.diagflat(np.ones(size(node.rows)))
    if isinstance(node, Const):
        return np.full((1, 1), node.value)
    if isinstance(node, SizeOf):
        return np.full((1, 1), float(size(node.index)))
    if isinstance(node, Product):
        values = [ev(f) for f in node.factors]
        out = values[0]
        for v in values[1:]:
            out = out * v if out.shape == (1, 1) or v.shape == (1, 1) else out @ v
        return out
    if isinstance(node, Hadamard):
        out = ev(node.factors[0])
        for f in node.factors[1:]:
            out = out * ev(f)
        return out
    if isinstance(node, Func):
        args = [ev(a) for a in node.args]
        if node.fn == "sigmoid'":
            sig = NUMPY_FUNCTIONS["sigmoid"](args[0])
            return sig * (1.0 - sig)
        return np.asarray(NUMPY_FUNCTIONS[node.fn](*args), dtype=float)
    if isinstance(node, HPower):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.power(ev(node.base), node.exponent)
    if isinstance(node, MatrixFn):
        matrix = ev(node.arg)
        if node.fn == "inv":
            return np.linalg.inv(matrix)
        value = np.linalg.det(matrix) if node.fn == "det" else np.linalg.slogdet(matrix)[1]
        return np.full((1, 1), value)
    if isinstance(node, Trace):
        return np.full((1, 1), np.trace(ev(node.arg)))
    if isinstance(node, Diag):
        return np.diag(ev(node.arg).reshape(-1))
    if isinstance(node, DiagOf):
        return np.diag(ev(node.arg)).reshape(-1, 1)
    if isinstance(node, VecDiag):
        return np.diag(ev(node.arg).reshape(-1, order="F"))
    if isinstance(node, Norm2):
        return np.full((1, 1), float(np.sum(ev(node.arg) ** 2)))
    if isinstance(node, Kron):
        return np.kron(ev(node.left), ev(node.right))
    if isinstance(node, Frobenius):
        return np.full((1, 1), float(np.sum(ev(node.left) * ev(node.right))))
    if isinstance(node, TermNode):
        out = np.full((1, 1), node.coeff)
        for f in node.scalars:
            out = out * ev(f)
        for d in node.dens:
            out = out / ev(d)
        return out * ev(node.body) if node.body is not None else out
    if isinstance(node, Sum):
        values = [ev(t) for t in node.terms]
        out = values[0]
        for v in values[1:]:
            out = out + v
        return out
    raise TypeError(f"unknown node {type(node).__name__}")


def _size_sources(expr: Expr, tensors: Mapping[str, str],
                  free: Sequence[str] = ()) -> dict[str, list[tuple[str, int]]]:
    """For every index root, the (tensor, axis) pairs that fix its size; deltas join indices."""
    parent: dict[str, str] = {}

    def find(i: str) -> str:
        i = ir.index_root(i)
        while parent.get(i, i) != i:
            i = parent[i]
        return i

    occurrences: list[tuple[str, str, int]] = []

    def walk(e: Expr) -> None:
        for term in e.terms:
            for f in term.factors:
                if isinstance(f, Ref):
                    for axis, i in enumerate(f.indices):
                        occurrences.append((i, tensors.get(f.name, f.name), axis))
                elif isinstance(f, Delta):
                    a, b = find(f.first), find(f.second)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
                elif isinstance(f, Call):
                    for arg in f.args:
                        walk(arg)
                elif isinstance(f, Power):
                    walk(f.base)
                    walk(f.exponent)
    walk(expr)
    for i in dict.fromkeys(tuple(ir.free_indices(expr)) + tuple(free)):
        if "@" in i:   # a slot index: axis k of tensor T is written "x@T.k"
            tensor, axis = i.split("@", 1)[1].rsplit(".", 1)
            occurrences.append((i, tensors.get(tensor, tensor), int(axis)))
    sources: dict[str, list[tuple[str, int]]] = {}
    for i, tensor, axis in occurrences:
        sources.setdefault(find(i), []).append((tensor, axis))
    every = {ir.index_root(i) for i, _, _ in occurrences} | set(parent) | set(parent.values())
    return {i: sources.get(find(i), []) for i in sorted(every)}


# ---------------------------------------------------------------- public objects

@dataclass(frozen=True)
class MatrixForm:
    """A matrix-notation expression equal to an index-form expression.

    ``text`` is Unicode (``H2ᵀ gZ``), ``ascii`` plain (``H2^T gZ``), ``latex``
    LaTeX. ``layout`` says how the value is laid out: ``"matrix"`` (rows run
    over the first free index), ``"column"``/``"row"`` vector, ``"scalar"``,
    or ``"vec"`` for a Kronecker form (the column-major vec Jacobian).
    :meth:`evaluate` computes it from arrays, shaped like the index result.
    """

    node: Node
    layout: str
    free: tuple[str, ...]
    sizes: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = field(default=(), repr=False)

    @property
    def text(self) -> str:
        return _render(self.node, _TEXT)

    @property
    def ascii(self) -> str:
        return _render(self.node, _ASCII)

    @property
    def latex(self) -> str:
        return _render(self.node, _LATEX)

    def __str__(self) -> str:
        return self.text

    def _repr_latex_(self) -> str:
        return f"${self.latex}$"

    def operand(self, style: str = "text") -> str:
        """The text as an operand of ``:`` or ``⊙``: parenthesized unless a product or simpler.

        >>> from einderiv import parse
        >>> to_matrix(parse("y[i] = A[i,j] x[j] - b[i]").statement("y").rhs).operand()
        '(A x − b)'
        """
        return _wrap(self.node, _STYLES[style], _PROD)

    def evaluate(self, arrays: Mapping[str, np.ndarray], sizes: Mapping[str, int] | None = None) -> np.ndarray:
        """The value from named arrays; shaped like the index form (a vector is 1-d).

        ``sizes`` (by index name) covers identities and ones vectors whose size no array fixes.

        >>> import numpy as np
        >>> from einderiv import parse
        >>> form = to_matrix(parse("L = a[i] X[i,j] b[j]").derivative("X"))
        >>> form.evaluate({"a": np.array([1.0, 2.0]), "b": np.array([3.0])}).tolist()
        [[3.0], [6.0]]
        """
        table = dict(self.sizes)
        user = dict(sizes or {})

        def size(index: str) -> int:
            for tensor, axis in table.get(ir.index_root(index), ()):
                if tensor in arrays:
                    return int(np.shape(arrays[tensor])[axis])
            name = ir.display_name(index)
            if name in user:
                return int(user[name])
            raise KeyError(f"the size of index '{name}' is not fixed by the arrays given; pass sizes={{'{name}': n}}")

        value = _evaluate(self.node, arrays, size)
        if self.layout == "vec":
            return value
        shape = tuple(size(i) for i in self.free)
        if self.layout == "matrix":
            return np.broadcast_to(value, shape).copy() if value.shape != shape else value
        if self.layout in ("column", "row"):
            flat = value.reshape(-1)
            return np.broadcast_to(flat, shape).copy() if flat.shape != shape else flat
        return value.reshape(())


def _layout(node: Node, free: tuple[str, ...]) -> str:
    if len(free) == 2:
        return "matrix"
    if len(free) == 1:
        return "row" if node.rows is None and node.cols is not None else "column"
    return "scalar"


def _inline_chain(derivative: Derivative) -> Expr:
    """The derivative's expression with its named intermediates substituted."""
    expr = derivative.expr
    for s in reversed(derivative.chain):
        expr = _substitute(expr, s.name, s.indices, s.expr)
    return simplify(expr) if derivative.chain else expr


def _substitute(expr: Expr, name: str, indices: tuple[str, ...], body: Expr) -> Expr:
    pieces = []
    for term in expr.terms:
        factors = [ir.Expr((Term(1.0, (), (f,)),)) if not (isinstance(f, Ref) and f.name == name)
                   else ir.rename(body, dict(zip(indices, f.indices))) for f in term.factors]
        pieces.append(ir.summation(term.summed, ir.scale(ir.mul(*factors), term.coeff)))
    return ir.add(*pieces)


def _source(obj, free_order, tensors):
    """(expression, free order, tensor display names) of whatever was passed."""
    names = dict(tensors or {})
    if isinstance(obj, Derivative):
        return _inline_chain(obj), tuple(free_order or obj.out_indices + obj.wrt_indices), names
    if isinstance(obj, DerivedStatement):
        return obj.expr, tuple(free_order or obj.indices), names
    if hasattr(obj, "expr") and hasattr(obj, "indices"):   # an adjoint step
        return obj.expr, tuple(free_order or obj.indices), {**getattr(obj, "tensors", {}), **names}
    if isinstance(obj, Expr):
        return obj, tuple(free_order or ir.free_indices(obj)), names
    raise TypeError(f"to_matrix takes an Expr, a Derivative or an adjoint statement, not {type(obj).__name__}")


def to_matrix(obj, free_order: Sequence[str] | None = None, *, tensors: Mapping[str, str] | None = None,
              program=None) -> MatrixForm | None:
    """The matrix form of an index expression, a Derivative or an adjoint step; None if it has none.

    ``free_order`` lists the free indices in layout order (rows first); it
    defaults to a Derivative's output then input indices (numerator layout),
    a statement's left-hand side, or the order of first appearance.
    ``tensors`` renames tensors for display (internal adjoint names, say).
    With ``program``, the program's definitions are folded back in first
    (:func:`fold_definitions`), so the form may name its intermediates and
    :meth:`MatrixForm.evaluate` then needs their values.

    >>> from einderiv import parse
    >>> p = parse("A4[n,j] = A3[n,i] W3[i,j]; A5[n,k] = A4[n,j] W4[j,k]; E = (A5[n,k] - R[n,k])^2 / 2")
    >>> print(to_matrix(p.derivative("W3")))
    A3ᵀ (A5 − R) W4ᵀ
    >>> print(to_matrix(parse("C[i,j,k] = A[i,j] x[k]").statement("C").rhs))
    None
    """
    try:
        expr, free, names = _source(obj, free_order, tensors)
        if program is not None:
            expr = fold_definitions(expr, program.statements)
        target = _target(free)
        node = _convert_expr(expr, target, _Ctx(names, natural=True))
        node = _tidy(node)
        if len(free) == 2 and (node.rows, node.cols) == (target[1], target[0]) and target[0] != target[1]:
            node = _transpose(node)
        if len(free) == 1 and node.rows is None and node.cols is not None:
            node = _transpose(node)          # vectors are columns: 1ᵀ G (a row) is written Gᵀ 1
        sizes = tuple((k, tuple(v)) for k, v in sorted(_size_sources(expr, names, free).items()))
        return MatrixForm(node, _layout(node, free), free, sizes)
    except _NoForm:
        return None


def _children(node: Node, fn: Callable[[Node], Node]) -> Node:
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
        return replace(node, terms=tuple(fn(t) for t in node.terms))
    return node


def _tidy(node: Node) -> Node:
    """Final rewrites, everywhere: ``σ(U) ⊙ (1 − σ(U))`` → ``σ'(U)``."""
    return _sigmoid_prime(_children(node, _tidy))


# ---------------------------------------------------------------- Kronecker (vec) form

def kronecker_matrix(derivative: Derivative, labels: Mapping[str, str] | None = None) -> MatrixForm | None:
    """``d vec(F) / d vec(W)`` (column-major vec) as a matrix expression, or None.

    Each term of the Jacobian must split into a part linking the first axes of
    F and W and a part linking their second axes: ``A[i,a] B[b,k]`` is
    ``Bᵀ ⊗ A`` (``vec(A W B) = (Bᵀ ⊗ A) vec(W)``); an elementwise map gives
    ``diag(vec(M))``. Identities are subscripted by ``labels`` (index name →
    size label), or by the index name.

    >>> from einderiv import parse
    >>> print(kronecker_matrix(parse("Y[i,l] = A[i,j] X[j,k] B[k,l]").derivative("X")))
    Bᵀ ⊗ A
    """
    out, wrt = derivative.out_indices, derivative.wrt_indices
    if not out or len(out) > 2 or len(wrt) > 2:
        return None
    if len(out) + len(wrt) <= 2:   # the Jacobian is already a matrix (or vector)
        form = to_matrix(derivative)
        return None if form is None else replace(form, node=_label(form.node, labels))
    try:
        expr = _inline_chain(derivative)
        sizes = tuple((k, tuple(v)) for k, v in sorted(_size_sources(expr, {}, out + wrt).items()))
    except _NoForm:
        return None
    for o, w in _placements(out, wrt):
        try:
            terms = [_kron_term(t, o, w) for t in expr.terms]
        except _NoForm:
            continue
        node: Node = _unwrap(terms[0]) if len(terms) == 1 else _factor(Sum(None, None, tuple(terms)))
        return MatrixForm(_label(_tidy(node), labels), "vec", out + wrt, sizes)
    return None


def _placements(out: tuple[str, ...], wrt: tuple[str, ...]) -> list[tuple[tuple, tuple]]:
    """Ways to see each side as a matrix: a vector may be a column or a row."""
    def ways(indices: tuple[str, ...]) -> list[tuple]:
        if len(indices) == 2:
            return [indices]
        return [(indices[0], None), (None, indices[0])]
    return [(o, w) for o in ways(out) for w in ways(wrt)]


def _kron_term(term: Term, out: tuple, wrt: tuple) -> TermNode:
    (o0, o1), (w0, w1) = out, wrt
    groups: list[set[str]] = []
    factor_groups: list[list] = []
    for f in term.factors:
        idx = set(ir.factor_indices(f))
        merged = [k for k, g in enumerate(groups) if g & idx]
        new_idx, new_f = set(idx), [f]
        for k in reversed(merged):
            new_idx |= groups.pop(k)
            new_f = factor_groups.pop(k) + new_f
        groups.append(new_idx)
        factor_groups.append(new_f)
    first = {i for i in (o0, w0) if i is not None}
    second = {i for i in (o1, w1) if i is not None}
    a_factors, b_factors, scalars = [], [], []
    for idx, fs in zip(groups, factor_groups):
        if idx & first and idx & second:
            return _vecdiag_term(term, out, wrt)
        (a_factors if idx & first else b_factors if idx & second else scalars).extend(fs)

    def part(factors: list, target: tuple) -> Node:
        summed = tuple(s for s in term.summed if any(s in ir.factor_indices(f) for f in factors))
        e = Expr((Term(1.0, summed, tuple(factors)),))
        return _broadcast(_convert_expr(e, target, _Ctx({})), target)

    a = part(a_factors, (o0, w0))
    b = part(b_factors, (o1, w1))
    scalar_summed = tuple(s for s in term.summed if any(s in ir.factor_indices(f) for f in scalars))
    s_node = _convert_term(Term(1.0, scalar_summed, tuple(scalars)), (None, None), _Ctx({}))
    body = a if b.is_scalar and _is_one(b) else Kron(None, None, b, a)
    return TermNode(None, None, term.coeff, s_node.scalars, body, s_node.dens)


def _broadcast(node: Node, target: tuple[str | None, str | None]) -> Node:
    """A scalar spread over the target's shape with ones vectors (``1``, ``1ᵀ``, ``1 1ᵀ``)."""
    row, col = target
    if not node.is_scalar or (row is None and col is None):
        return node
    pieces = ([Ones(row, None, row)] if row is not None else []) + \
        ([Transpose(None, col, Ones(col, None, col))] if col is not None else [])
    ones = _product(row, col, pieces)
    return ones if _is_one(node) else TermNode(row, col, 1.0, (node,), ones, ())


def _is_one(node: Node) -> bool:
    return isinstance(node, Const) and node.value == 1.0


def _vecdiag_term(term: Term, out: tuple, wrt: tuple) -> TermNode:
    """``δ[i,a] δ[k,b] M[a,b]`` → ``diag(vec(M))``."""
    pairs = {(o, w) for o, w in zip(out, wrt) if o is not None and w is not None}
    deltas = [f for f in term.factors if isinstance(f, Delta) and
              ((f.first, f.second) in pairs or (f.second, f.first) in pairs)]
    if len(deltas) != len(pairs) or len(pairs) != 2:
        raise _NoForm("not a Kronecker product")
    rest = tuple(f for f in term.factors if f not in deltas)
    mapping = {o: w for o, w in zip(out, wrt)}
    inner = ir.rename(Expr((Term(1.0, term.summed, rest),)), mapping)
    node = _convert_expr(inner, (wrt[0], wrt[1]), _Ctx({}))
    if node.is_scalar:
        body: Node = Identity(out[0], wrt[0])
        return TermNode(None, None, term.coeff, (node,) if not _is_one(node) else (), body, ())
    return TermNode(None, None, term.coeff, (), VecDiag(None, None, node), ())


def _label(node: Node, labels: Mapping[str, str] | None) -> Node:
    """Subscript every identity with its size label."""
    labels = dict(labels or {})
    if isinstance(node, Identity):
        name = ir.display_name(node.rows or "")
        return replace(node, label=str(labels.get(name, name)))
    if isinstance(node, Kron):
        return replace(node, left=_label(node.left, labels), right=_label(node.right, labels))
    if isinstance(node, TermNode):
        return replace(node, body=None if node.body is None else _label(node.body, labels))
    if isinstance(node, Sum):
        return replace(node, terms=tuple(_label(t, labels) for t in node.terms))
    return node


def kronecker_form(derivative: Derivative, labels: Mapping[str, str] | None = None) -> str | None:
    """The text of :func:`kronecker_matrix`, or None.

    >>> from einderiv import parse
    >>> print(kronecker_form(parse("F[i,k] = W[i,j] X[j,k]").derivative("X"), labels={"k": "p"}))
    I_p ⊗ W
    """
    form = kronecker_matrix(derivative, labels)
    return None if form is None else form.text


def describe_matrix_form(derivative: Derivative, program=None, ascii: bool = False) -> str:
    """One line: the derivative in matrix notation, its Kronecker (vec) form, or why there is none.

    A scalar's gradient (or a Jacobian with at most two indices) gets its matrix
    form; a larger Jacobian of a linear map gets ``d vec(F)/d vec(W)`` with
    ``vec`` stacking columns; anything else, the reason it has neither.

    >>> from einderiv import parse
    >>> p = parse("F[i,k] = W[i,j] X[j,k]")
    >>> print(describe_matrix_form(p.derivative("X")))
    vec form: d vec(F)/d vec(X) = I_k ⊗ W  (vec stacks columns; I_k is the identity over index k; dF/dX itself has 4 indices)
    """
    of, wrt = derivative.of, derivative.wrt
    order = len(derivative.out_indices) + len(derivative.wrt_indices)
    pick = (lambda form: form.ascii) if ascii else (lambda form: form.text)
    kron = "kron" if ascii else "⊗"
    if order <= 2:
        form = to_matrix(derivative, program=program) if not derivative.out_indices else to_matrix(derivative)
        if form is not None:
            what = (f"shaped like {wrt}: the gradient of the scalar {of}" if not derivative.out_indices
                    else f"a {'matrix' if order == 2 else 'vector'}: row = entry of {of}, column = entry of {wrt}"
                    if order == 2 else f"a vector over the entries of {of if derivative.out_indices else wrt}")
            line = f"matrix form: d{of}/d{wrt} = {pick(form)}  ({what})"
            return line + _unit_row_sum_note(derivative, program, pick)
    form = kronecker_matrix(derivative)
    if form is not None:
        identities = sorted({n.label for n in _identities(form.node) if n.label})
        note = "; ".join(f"I_{name} is the identity over index {name}" for name in identities)
        return (f"vec form: d vec({of})/d vec({wrt}) = {pick(form)}  (vec stacks columns"
                f"{'; ' + note if note else ''}; d{of}/d{wrt} itself has {order} indices)")
    if len(derivative.out_indices) > 2 or len(derivative.wrt_indices) > 2:
        return (f"no matrix form: d{of}/d{wrt} has {order} indices ({len(derivative.out_indices)} of {of}, "
                f"{len(derivative.wrt_indices)} of {wrt}); a matrix has 2, and a vec ({kron}) form needs at most 2 "
                f"on each side")
    return (f"no matrix form: d{of}/d{wrt} has {order} indices and its terms do not split into matrix products "
            f"(nor into A {kron} B for a vec form); the index form above is the derivative")


def _identities(node: Node) -> list[Identity]:
    if isinstance(node, Identity):
        return [node]
    found: list[Identity] = []
    if isinstance(node, Kron):
        return _identities(node.left) + _identities(node.right)
    if isinstance(node, TermNode) and node.body is not None:
        return _identities(node.body)
    if isinstance(node, Sum):
        for t in node.terms:
            found.extend(_identities(t))
    return found


def column_vector_notes(program, names=None, ascii: bool = False) -> tuple[str, ...]:
    """A note for each one-index statement whose matrix form comes out transposed (``Y = Wᵀ X``).

    Matrix forms treat every vector as a column; a text that writes vectors as
    rows has ``y = x W`` for the same statement.

    >>> from einderiv import parse
    >>> print(column_vector_notes(parse("Y[j] = X[i] W[i,j]"))[0])
    vectors are columns here: in Y[j] = X[i] W[i,j], Wᵀ X is what a text with row vectors writes X W, X a row (the same numbers)
    """
    style = _ASCII if ascii else _TEXT
    notes = []
    for s in program.statements:
        if s.rank != 1 or s.hidden or (names is not None and s.name not in names):
            continue
        form = to_matrix(s.rhs, s.lhs)
        if form is None:
            continue
        for product in _products(form.node):
            factors = product.factors
            last = factors[-1]
            if not (isinstance(last, Tensor) and (last.rows is None) != (last.cols is None)) or \
                    not any(isinstance(f, Transpose) for f in factors[:-1]):
                continue
            row_text = " ".join(_render(f.arg if isinstance(f, Transpose) else f if f is last else _transpose(f),
                                        style) for f in reversed(factors))
            vector = _render(last, style)
            notes.append(f"vectors are columns here: in {s.source.strip()}, {_render(product, style)} is what a text "
                         f"with row vectors writes {row_text}, {vector} a row (the same numbers)")
    return tuple(notes)


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


def _unit_row_sum_note(derivative: Derivative, program, pick) -> str:
    """``; where each row of T sums to 1 …, this is (P − T) / N``: the form when a summed label matrix drops out."""
    expr = _inline_chain(derivative)
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
