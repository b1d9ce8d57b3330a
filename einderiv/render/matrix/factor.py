"""Common factors pulled out of sums, and the final tidying of a converted expression.

``Z / N − T / N`` reads ``(Z − T) / N``: :func:`factor_sum` pulls out what
every term of a sum shares — the coefficient's magnitude, scalar factors,
denominators, Hadamard factors, or the leftmost and rightmost factors of
matrix products. Factors are compared by :func:`node_key`, their text plus
the indices their ones vectors and identities span.

>>> from einderiv import parse
>>> from einderiv.render.matrix import to_matrix
>>> print(to_matrix(parse("D[i,k] = A[i,j] X[j,k] + A[i,j] Y[j,k]").statement("D").rhs))
A (X + Y)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from einderiv.core import ir
from einderiv.render.matrix.nodes import (Diag, Func, Hadamard, HPower, Identity, Node, Ones, Product, Sum,
                                          TermNode, VecDiag, as_column, children, hadamard, product, walk)
from einderiv.render.matrix.styles import TEXT, render

__all__ = ["node_key", "factor_sum", "tidy"]


def node_key(node: Node) -> str:
    """Equal for equal matrices: the text, plus the indices that ones vectors and identities span."""
    return render(node, TEXT) + "|" + ",".join(_spans(node))


def _spans(node: Node) -> list[str]:
    """The index roots of the ones vectors and identities in ``node``, in walk order."""
    spans = []
    for n in walk(node):
        if isinstance(n, Ones):
            spans.append(ir.index_root(n.index))
        elif isinstance(n, Identity):
            spans.append(ir.index_root(n.rows or ""))
    return spans


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
    pools = [[node_key(n) for n in lst] for lst in lists]
    for node in lists[0]:
        k = node_key(node)
        if all(k in pool for pool in pools[1:]) and k in pools[0]:
            common.append(node)
            for pool in pools:
                pool.remove(k)
    return common


def _marks(nodes: list[Node], picked: list[Node]) -> list[bool]:
    """For each node, whether it is one of ``picked`` (by key, each of ``picked`` marking one node, the first)."""
    keys = [node_key(n) for n in picked]
    marks = []
    for n in nodes:
        k = node_key(n)
        marks.append(k in keys)
        if k in keys:
            keys.remove(k)
    return marks


def _without(nodes: list[Node], remove: list[Node]) -> list[Node]:
    return [n for n, removed in zip(nodes, _marks(nodes, remove)) if not removed]


def _in_place(first: list[Node], common: list[Node], inner: Node) -> list[Node]:
    """The common factors in their order in ``first``, ``inner`` where the first other factor stood."""
    out: list[Node] = []
    placed = False
    for n, is_common in zip(first, _marks(first, common)):
        if is_common:
            out.append(n)
        elif not placed:
            out.append(inner)
            placed = True
    return _regroup(out if placed else out + [inner])


def _regroup(nodes: list[Node]) -> list[Node]:
    """Equal Hadamard factors back into powers: ``σ ⊙ σ`` → ``σ^∘2``."""
    counts: dict[str, int] = {}
    first: dict[str, Node] = {}
    for n in nodes:
        k = node_key(n)
        counts[k] = counts.get(k, 0) + 1
        first.setdefault(k, n)
    return [n if counts[k] == 1 else HPower(n.rows, n.cols, n, float(counts[k])) for k, n in first.items()]


def _outer_common(chains: list[list[Node]]) -> tuple[list[Node], list[Node]]:
    """The longest common leftmost and rightmost product factors, leaving each term at least one."""
    shortest = min(len(c) for c in chains)
    left: list[Node] = []
    for k in range(shortest - 1):
        if len({node_key(c[k]) for c in chains}) != 1:
            break
        left.append(chains[0][k])
    right: list[Node] = []
    for k in range(1, shortest - len(left)):
        if len({node_key(c[-k]) for c in chains}) != 1:
            break
        right.insert(0, chains[0][-k])
    return left, right


@dataclass(frozen=True)
class _Shared:
    """What every term of a sum shares: the coefficient's magnitude, scalars, denominators, and either
    Hadamard factors or the outer factors of matrix products."""

    coeff: float
    scalars: list[Node]
    dens: list[Node]
    had: list[Node]
    left: list[Node]
    right: list[Node]

    @property
    def empty(self) -> bool:
        return self.coeff == 1.0 and not (self.scalars or self.dens or self.left or self.right or self.had)


def _shared(terms: list[TermNode]) -> _Shared:
    coeffs = {abs(t.coeff) for t in terms}
    coeff = coeffs.pop() if len(coeffs) == 1 else 1.0
    had: list[Node] = []
    left: list[Node] = []
    right: list[Node] = []
    bodies = [t.body for t in terms if t.body is not None]
    if len(bodies) == len(terms):
        had = _common([_had(b) for b in bodies])
        if not had:
            left, right = _outer_common([_chain(b) for b in bodies])
    return _Shared(coeff, _common([list(t.scalars) for t in terms]), _common([list(t.dens) for t in terms]),
                   had, left, right)


def _remainder(term: TermNode, shared: _Shared) -> TermNode:
    """The term with the shared factors taken out."""
    body = term.body
    if body is not None and shared.had:
        rest = _regroup(_without(_had(body), shared.had))
        body = hadamard(body.rows, body.cols, rest) if rest else None
    elif body is not None and (shared.left or shared.right):
        chain = _chain(body)[len(shared.left):len(_chain(body)) - len(shared.right)]
        body = product(chain[0].rows, chain[-1].cols, chain)
    return TermNode(body.rows if body is not None else None, body.cols if body is not None else None,
                    term.coeff / shared.coeff, tuple(_without(list(term.scalars), shared.scalars)), body,
                    tuple(_without(list(term.dens), shared.dens)))


def _factor_diagonal(total: Sum) -> Node | None:
    """``diag(u) − diag(v)`` → ``diag(u − v)`` (likewise ``diag(vec(·))``); None for other sums."""
    terms = total.terms
    kinds: tuple[type[Diag] | type[VecDiag], ...] = (Diag, VecDiag)
    for kind in kinds:
        bodies = [t.body for t in terms if isinstance(t.body, kind)]
        if len(bodies) == len(terms):
            arg = bodies[0].arg
            inner = Sum(arg.rows, arg.cols, tuple(replace(t, rows=arg.rows, cols=arg.cols, body=body.arg)
                                                  for t, body in zip(terms, bodies)))
            return kind(total.rows, total.cols, factor_sum(inner))
    return None


def factor_sum(total: Sum) -> Node:
    """Pull out what every term shares: coefficient, scalars, denominators, outer factors."""
    diagonal = _factor_diagonal(total)
    if diagonal is not None:
        return diagonal
    terms = list(total.terms)
    rows, cols = total.rows, total.cols
    shared = _shared(terms)
    if shared.empty:
        return total
    inner = [_remainder(t, shared) for t in terms]
    left, right = shared.left, shared.right
    inner_rows = left[-1].cols if left else (rows if not right else right[0].rows)
    inner_cols = right[0].rows if right else (cols if not left else left[-1].cols)
    inner_sum = Sum(inner_rows, inner_cols, tuple(as_column(t, inner_rows) if inner_cols is None and
                                                  inner_rows is not None else t for t in inner))
    inner_node = factor_sum(inner_sum) if len(inner) > 1 and inner_sum != total else inner_sum
    first = terms[0].body
    if shared.had and first is not None:   # shared Hadamard factors: every term has a body
        body = hadamard(rows, cols, _in_place(_had(first), shared.had, inner_node))
    else:
        body = product(rows, cols, left + [inner_node] + right)
    return TermNode(rows, cols, shared.coeff, tuple(shared.scalars), body, tuple(shared.dens))


def _is_one_minus(node: Node, f: Node) -> bool:
    """Whether ``node`` is ``1 − f``."""
    total: Node | None
    if not isinstance(node, TermNode) or node.coeff != 1.0 or node.scalars or node.dens:
        total = node
    else:
        total = node.body
    if not isinstance(total, Sum) or len(total.terms) != 2:
        return False
    one, minus = total.terms
    return (one.body is None and not one.scalars and not one.dens and one.coeff == 1.0 and
            minus.coeff == -1.0 and not minus.scalars and not minus.dens and minus.body is not None and
            node_key(minus.body) == node_key(f))


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
                return hadamard(node.rows, node.cols, rest + [new]) if rest else new
    return node


def tidy(node: Node) -> Node:
    """Final rewrites, everywhere: ``σ(U) ⊙ (1 − σ(U))`` → ``σ'(U)``."""
    return _sigmoid_prime(children(node, tidy))
