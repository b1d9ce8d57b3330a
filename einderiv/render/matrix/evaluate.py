"""numpy values of matrix forms, so that tests can check a form against its index expression.

>>> import numpy as np
>>> from einderiv import parse
>>> from einderiv.render.matrix import to_matrix
>>> form = to_matrix(parse("F[i,k] = W[i,j] X[j,k]").statement("F").rhs)
>>> evaluate_form(form, {"W": np.ones((2, 3)), "X": np.ones((3, 1))}).tolist()
[[3.0], [3.0]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from einderiv.core import ir
from einderiv.core.functions import FUNCTIONS
from einderiv.core.ir import Call, Delta, Expr, Power, Ref
from einderiv.render.matrix.nodes import (Const, Diag, DiagOf, Frobenius, Func, Hadamard, HPower, Identity, Kron,
                                          MatrixFn, Node, Norm2, Ones, Product, SizeOf, Sum, Tensor, TermNode,
                                          Trace, Transpose, VecDiag)

if TYPE_CHECKING:
    from einderiv.render.matrix.form import MatrixForm

__all__ = ["evaluate_form", "evaluate_node", "size_sources", "size_table"]

#: for each index root, the (tensor, axis) pairs that fix its size
SizeTable = tuple[tuple[str, tuple[tuple[str, int], ...]], ...]


def evaluate_form(form: MatrixForm, arrays: Mapping[str, np.ndarray],
                  sizes: Mapping[str, int] | None = None) -> np.ndarray:
    """The value of ``form`` from named arrays, shaped like the index form (see :meth:`MatrixForm.evaluate`)."""
    table = dict(form.sizes)
    user = dict(sizes or {})

    def size(index: str) -> int:
        for tensor, axis in table.get(ir.index_root(index), ()):
            if tensor in arrays:
                return int(np.shape(arrays[tensor])[axis])
        name = ir.display_name(index)
        if name in user:
            return int(user[name])
        raise KeyError(f"the size of index '{name}' is not fixed by the arrays given; pass sizes={{'{name}': n}}")

    value = evaluate_node(form.node, arrays, size)
    if form.layout == "vec":
        return value
    shape = tuple(size(i) for i in form.free)
    if form.layout == "matrix":
        return np.broadcast_to(value, shape).copy() if value.shape != shape else value
    if form.layout in ("column", "row"):
        flat = value.reshape(-1)
        return np.broadcast_to(flat, shape).copy() if flat.shape != shape else flat
    return value.reshape(())


def evaluate_node(node: Node, env: Mapping[str, np.ndarray], size: Callable[[str], int]) -> np.ndarray:
    """The node's value as a 2-d array (a vector is n×1 or 1×n, a scalar 1×1)."""
    def ev(n: Node) -> np.ndarray:
        return evaluate_node(n, env, size)
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
            sig = FUNCTIONS["sigmoid"].numpy(args[0])
            return sig * (1.0 - sig)
        return np.asarray(FUNCTIONS[node.fn].numpy(*args), dtype=float)
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


def size_sources(expr: Expr, tensors: Mapping[str, str],
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


def size_table(expr: Expr, tensors: Mapping[str, str], free: Sequence[str] = ()) -> SizeTable:
    """:func:`size_sources` frozen and sorted, as :class:`MatrixForm` keeps it."""
    return tuple((k, tuple(v)) for k, v in sorted(size_sources(expr, tensors, free).items()))
