"""Index form → matrix nodes: the conversion behind :func:`to_matrix`.

Each term's factors become items (a node and the indices of its rows and
columns), and rewrites run until none applies: factors over the same indices
merge (a Hadamard product, or a trace or inner product when they close a
cycle), a summed index shared by two factors becomes a matrix product, a
summed index of one factor a ones vector (``1ᵀ G``), a vector beside a matrix
``diag(v) M``. What is left is laid out as the target; anything else raises
:class:`~einderiv.render.matrix.nodes.NoForm`, which :func:`to_matrix` turns
into None.

>>> from einderiv import parse
>>> print(to_matrix(parse("y[i] = A[i,j] x[j] - b[i]").statement("y").rhs))
A x − b
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Protocol, Sequence, Union, runtime_checkable

from einderiv.calculus.differentiation import DerivedStatement
from einderiv.calculus.folding import fold_definitions
from einderiv.calculus.program import Derivative, Program
from einderiv.core import ir
from einderiv.core.ir import Call, Delta, Expr, Factor, Ref, Size, Term
from einderiv.core.simplify import simplify
from einderiv.render.matrix.evaluate import size_table
from einderiv.render.matrix.factor import factor_sum, tidy
from einderiv.render.matrix.form import MatrixForm, layout_of
from einderiv.render.matrix.nodes import (Const, Diag, DiagOf, Frobenius, Func, HPower, Identity, MatrixFn, Node,
                                          NoForm, Norm2, Ones, Product, SizeOf, Sum, Tensor, TermNode, Trace,
                                          Transpose, as_column, hadamard, ones, ones_row, product,
                                          transpose)

__all__ = ["to_matrix", "Ctx", "convert_expr", "convert_term", "unwrap", "target_of", "inline_chain"]


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
        return transpose(item.node)
    raise NoForm(f"cannot lay out {item} as ({row}, {col})")


@dataclass(frozen=True)
class Ctx:
    """Tensor display names; ``natural``: a top-level vector of column sums may stay a row (``1ᵀ G``)."""

    tensors: Mapping[str, str]
    natural: bool = False

    def name(self, tensor: str) -> str:
        return self.tensors.get(tensor, tensor)


def target_of(indices: Sequence[str]) -> tuple[str | None, str | None]:
    """The (rows, columns) indices of a value over ``indices``: ``(i, None)`` for a vector."""
    if len(indices) > 2:
        raise NoForm("more than two free indices")
    padded = tuple(indices) + (None, None)
    return padded[0], padded[1]


def _factor_item(factor: Factor, ctx: Ctx) -> _Item:
    """A factor of a term as an item: a tensor, identity, size, function, matrix function or power."""
    if isinstance(factor, Ref):
        return _ref_item(factor, ctx)
    if isinstance(factor, Delta):
        return _Item(Identity(factor.first, factor.second), factor.first, factor.second)
    if isinstance(factor, Size):
        return _Item(SizeOf(None, None, factor.index), None, None)
    row, col = target_of(tuple(dict.fromkeys(ir.factor_indices(factor))))
    ctx = replace(ctx, natural=False)   # arguments are laid out exactly as the call
    if isinstance(factor, Call):
        args = tuple(convert_expr(a, (row, col), ctx) for a in factor.args)
        return _Item(Func(row, col, factor.fn, args), row, col)
    if isinstance(factor, ir.MatFn):
        return _matrix_function_item(factor, ctx)
    p = ir.constant_value(factor.exponent)
    if p is None:
        raise NoForm("a power with a non-constant exponent")
    base = convert_expr(factor.base, (row, col), ctx)
    return _Item(HPower(row, col, base, p), row, col)


def _ref_item(ref: Ref, ctx: Ctx) -> _Item:
    """A tensor of rank ≤ 2; ``X[i,i]`` is its diagonal, a column vector."""
    idx = ref.indices
    if len(idx) > 2:
        raise NoForm(f"{ref.name} has rank {len(idx)}")
    if len(idx) == 2 and idx[0] == idx[1]:
        return _Item(DiagOf(idx[0], None, Tensor(idx[0], idx[0], ctx.name(ref.name), 2)), idx[0], None)
    row, col = target_of(idx)
    return _Item(Tensor(row, col, ctx.name(ref.name), len(idx)), row, col)


def _matrix_function_item(factor: ir.MatFn, ctx: Ctx) -> _Item:
    """``A⁻¹`` (or its diagonal, for ``inv(A)[i,i]``), ``det(A)``, ``log det(A)``; not a batch of matrices."""
    if len(factor.indices) != (2 if factor.fn == "inv" else 0):
        raise NoForm("a batch of matrices")
    matrix = convert_expr(factor.arg, (factor.rows, factor.cols), ctx)
    if factor.fn != "inv":
        return _Item(MatrixFn(None, None, factor.fn, matrix), None, None)
    p, q = factor.indices
    if p == q:      # inv(A)[i,i]: the diagonal of the inverse
        return _Item(DiagOf(p, None, MatrixFn(p, p, "inv", matrix)), p, None)
    return _Item(MatrixFn(p, q, "inv", matrix), p, q)


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
            items[p] = _closed_pair(a, b) if closed else \
                _Item(hadamard(a.row, a.col, [a.node, _orient(b, a.row, a.col)]), a.row, a.col)
            del items[q]
            if closed:
                for i in a.indices:
                    summed.remove(i)
            return True
    return False


def _closed_pair(a: _Item, b: _Item) -> _Item:
    """Two factors over the same summed indices: ``A : B``, ``tr(A Bᵀ)`` or ``aᵀ b``, a scalar."""
    if len(a.indices) == 2 and (b.row, b.col) == (a.row, a.col):
        return _Item(Frobenius(None, None, a.node, b.node), None, None)
    if len(a.indices) == 2:
        i, j = a.row, a.col
        return _Item(Trace(None, None, product(i, i, [a.node, _orient(b, j, i)])), None, None)
    (i,) = a.indices
    return _Item(product(None, None, [_orient(a, None, i), _orient(b, i, None)]), None, None)


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
        for first, second in ((p, q), (q, p)):
            cost = ((items[first].col != s) + (items[second].row != s), first > second)
            if best is None or cost < best[0]:
                best = (cost, s, first, second)
    if best is None:
        return False
    _, s, p, q = best
    left, right = items[p], items[q]
    lo, ro = _other(left, s), _other(right, s)
    node = product(lo, ro, [_orient(left, lo, s), _orient(right, s, ro)])
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
        if isinstance(item.node, HPower) and _is_squared_norm(item, items, summed):
            items[p] = _Item(Norm2(None, None, item.node.base), None, None)
            for i in item.indices:
                summed.remove(i)
        else:
            items[p] = _ones_sum(item, s)
            summed.remove(s)
        return True
    return False


def _is_squared_norm(item: _Item, items: list[_Item], summed: list[str]) -> bool:
    """``X^∘2`` summed over all its indices, which no other factor holds: ``‖X‖²``."""
    node = item.node
    return isinstance(node, HPower) and node.exponent == 2.0 and \
        all(i in summed and len(_holders(items, i)) == 1 for i in item.indices)


def _ones_sum(item: _Item, s: str) -> _Item:
    """The item summed over its index ``s``: ``G 1`` (row sums) or ``1ᵀ G`` (column sums)."""
    o = _other(item, s)
    if item.col == s:   # G 1: sums along each row
        return _Item(product(o, None, [_orient(item, o, s), ones(s)]), o, None)
    return _Item(product(None, o, [ones_row(s), _orient(item, s, o)]), None, o)   # 1ᵀ G: sums down each column


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
            node = product(x, o, [Diag(x, x, _orient(v, x, None)), _orient(m, x, o)])
            items[q] = _Item(node, x, o)
            del items[p]
            return True
    return False


def convert_term(term: Term, target: tuple[str | None, str | None], ctx: Ctx) -> TermNode:
    """One term as ``coeff · scalars · body / denominators``, its body laid out as ``target``."""
    items = [_factor_item(f, ctx) for f in term.factors]
    summed = list(term.summed)
    while _merge_same(items, summed) or _contract(items, summed) or _sum_out(items, summed) or \
            _diag(items, summed):
        pass
    if summed:
        raise NoForm("a summed index is shared by more than two factors")
    scalars, dens, rest = _sort_items(items)
    body = _assemble(rest, target, ctx.natural)
    return TermNode(target[0] if body is not None else None, target[1] if body is not None else None,
                    term.coeff, tuple(scalars), body, tuple(dens))


def _sort_items(items: list[_Item]) -> tuple[list[Node], list[Node], list[_Item]]:
    """The scalar factors, the denominators (negative powers), and the items with free indices."""
    scalars, dens, rest = [], [], []
    for it in items:
        if it.indices:
            rest.append(it)
        elif isinstance(it.node, HPower) and it.node.exponent < 0:
            base = it.node.base
            dens.append(base if it.node.exponent == -1 else replace(it.node, exponent=-it.node.exponent))
        else:
            scalars.append(it.node)
    return scalars, dens, rest


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
        raise NoForm("free indices shared by several factors")
    if not {i for it in rest for i in it.indices} <= wanted:
        raise NoForm("an index outside the target")
    if len(rest) == 2:   # two vectors: an outer product
        a, b = rest
        if a.indices[0] != row:
            a, b = b, a
        return product(row, col, [_orient(a, row, None), _orient(b, None, col)])
    (it,) = rest
    if set(it.indices) == wanted:
        if natural and col is None and it.row is None and _is_column_sums(it.node):   # 1ᵀ G stays a row
            return it.node
        return _orient(it, row, col)
    # broadcast a vector along the missing index: v 1ᵀ or 1 vᵀ
    (x,) = it.indices
    if row is None or col is None:   # the vector has one of the target's two indices, so both are named
        raise NoForm("a vector broadcast to a vector")
    if x == row:
        return product(row, col, [_orient(it, row, None), ones_row(col)])
    return product(row, col, [ones(row), _orient(it, None, col)])


def convert_expr(expr: Expr, target: tuple[str | None, str | None], ctx: Ctx) -> Node:
    """The expression as a node laid out as ``target`` (rows, columns); :class:`NoForm` if it has none."""
    if not expr.terms:
        return Const(None, None, 0.0)
    terms = [convert_term(t, target, ctx) for t in expr.terms]
    if len(terms) == 1:
        return unwrap(terms[0])
    if target[1] is None and target[0] is not None and \
            (not ctx.natural or any(t.body is None or t.body.rows is not None for t in terms)):
        terms = [as_column(t, target[0]) for t in terms]   # rows (column sums) stay rows only all together
    return factor_sum(Sum(target[0], target[1], tuple(terms)))


def unwrap(term: TermNode) -> Node:
    """A bare factor stays itself: ``1 · X`` is ``X``."""
    if term.coeff == 1.0 and not term.dens:
        if term.body is not None and not term.scalars:
            return term.body
        if term.body is None and len(term.scalars) == 1:
            return term.scalars[0]
    if term.body is None and not term.scalars and not term.dens:
        return Const(None, None, term.coeff)
    return term


def inline_chain(derivative: Derivative) -> Expr:
    """The derivative's expression with its named intermediates substituted."""
    expr = derivative.expr
    for s in reversed(derivative.chain):
        expr = _substitute(expr, s.name, s.indices, s.expr)
    return simplify(expr) if derivative.chain else expr


def _substitute(expr: Expr, name: str, indices: tuple[str, ...], body: Expr) -> Expr:
    """``expr`` with every reference to ``name`` replaced by ``body`` (over ``indices``), renamed."""
    pieces = []
    for term in expr.terms:
        factors = [ir.Expr((Term(1.0, (), (f,)),)) if not (isinstance(f, Ref) and f.name == name)
                   else ir.rename(body, dict(zip(indices, f.indices))) for f in term.factors]
        pieces.append(ir.summation(term.summed, ir.scale(ir.mul(*factors), term.coeff)))
    return ir.add(*pieces)


@runtime_checkable
class IndexedExpression(Protocol):
    """An expression with the order of its free indices: an adjoint step of :func:`einderiv.adjoint`."""

    @property
    def expr(self) -> Expr: ...
    @property
    def indices(self) -> tuple[str, ...]: ...


#: What :func:`to_matrix` takes.
Matrixable = Union[Expr, Derivative, DerivedStatement, IndexedExpression]


def _source(obj: Matrixable, free_order: Sequence[str] | None,
            tensors: Mapping[str, str] | None) -> tuple[Expr, tuple[str, ...], dict[str, str]]:
    """(expression, free order, tensor display names) of whatever was passed."""
    names = dict(tensors or {})
    if isinstance(obj, Derivative):
        return inline_chain(obj), tuple(free_order or obj.out_indices + obj.wrt_indices), names
    if isinstance(obj, DerivedStatement):
        return obj.expr, tuple(free_order or obj.indices), names
    if isinstance(obj, IndexedExpression):   # an adjoint step
        return obj.expr, tuple(free_order or obj.indices), {**getattr(obj, "tensors", {}), **names}
    if isinstance(obj, Expr):
        return obj, tuple(free_order or ir.free_indices(obj)), names
    raise TypeError(f"to_matrix takes an Expr, a Derivative or an adjoint statement, not {type(obj).__name__}")


def to_matrix(obj: Matrixable, free_order: Sequence[str] | None = None, *, tensors: Mapping[str, str] | None = None,
              program: Program | None = None) -> MatrixForm | None:
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
        target = target_of(free)
        node = convert_expr(expr, target, Ctx(names, natural=True))
        node = tidy(node)
        if len(free) == 2 and (node.rows, node.cols) == (target[1], target[0]) and target[0] != target[1]:
            node = transpose(node)
        if len(free) == 1 and node.rows is None and node.cols is not None:
            node = transpose(node)          # vectors are columns: 1ᵀ G (a row) is written Gᵀ 1
        sizes = size_table(expr, names, free)
        return MatrixForm(node, layout_of(node, free), free, sizes)
    except NoForm:
        return None
