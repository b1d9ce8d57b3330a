"""numpy values of matrix forms, so that tests can check a form against its index expression.

>>> import numpy as np
>>> from einderiv import parse
>>> from einderiv.render.matrix import to_matrix
>>> form = to_matrix(parse("F[i,k] = W[i,j] X[j,k]").statement("F").rhs)
>>> evaluate_form(form, {"W": np.ones((2, 3)), "X": np.ones((3, 1))}).tolist()
[[3.0], [3.0]]
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from einderiv.core import ir
from einderiv.numeric.elementwise import NUMPY_FUNCTIONS
from einderiv.core.ir import Call, Delta, Expr, Power, Ref
from einderiv.names import slot_of
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
    size = _sizer(dict(form.sizes), arrays, dict(sizes or {}))
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


def _sizer(table: Mapping[str, tuple[tuple[str, int], ...]], arrays: Mapping[str, np.ndarray],
           user: Mapping[str, int]) -> Callable[[str], int]:
    """The size of an index: from the first array that fixes it, else from the sizes the user gave."""
    def size(index: str) -> int:
        for tensor, axis in table.get(ir.index_root(index), ()):
            if tensor in arrays:
                return int(np.shape(arrays[tensor])[axis])
        name = ir.display_name(index)
        if name in user:
            return int(user[name])
        raise KeyError(f"the size of index '{name}' is not fixed by the arrays given; pass sizes={{'{name}': n}}")
    return size


@dataclass(frozen=True)
class _Env:
    """The arrays by tensor name and the size of each index."""

    arrays: Mapping[str, np.ndarray]
    size: Callable[[str], int]

    def value(self, node: Node) -> np.ndarray:
        evaluator = _EVALUATORS.get(type(node))
        if evaluator is None:
            raise TypeError(f"unknown node {type(node).__name__}")
        return evaluator(node, self)


def evaluate_node(node: Node, env: Mapping[str, np.ndarray], size: Callable[[str], int]) -> np.ndarray:
    """The node's value as a 2-d array (a vector is n×1 or 1×n, a scalar 1×1)."""
    return _Env(env, size).value(node)


def _scalar(value: float) -> np.ndarray:
    return np.full((1, 1), value)


def _tensor(node: Tensor, env: _Env) -> np.ndarray:
    array = np.asarray(env.arrays[node.name], dtype=float)
    if node.rank == 2:
        return array
    return array.reshape(-1, 1) if node.rank == 1 else array.reshape(1, 1)


def _identity(node: Identity, env: _Env) -> np.ndarray:
    # The textbook form names I_m itself (Xᵀ ⊗ I_m); evaluating that form to check it is the one
    # place an identity is built. Derivatives never contract one: their deltas are renamed away.
    return np.diagflat(np.ones(1 if node.rows is None else env.size(node.rows)))   # None: an axis of length one


def _product(node: Product, env: _Env) -> np.ndarray:
    values = [env.value(f) for f in node.factors]
    out = values[0]
    for v in values[1:]:
        out = out * v if out.shape == (1, 1) or v.shape == (1, 1) else out @ v
    return out


def _hadamard(node: Hadamard, env: _Env) -> np.ndarray:
    return functools.reduce(operator.mul, [env.value(f) for f in node.factors])


def _function(node: Func, env: _Env) -> np.ndarray:
    args = [env.value(a) for a in node.args]
    if node.fn == "sigmoid'":
        sig = NUMPY_FUNCTIONS["sigmoid"](args[0])
        return np.asarray(sig * (1.0 - sig))
    return np.asarray(NUMPY_FUNCTIONS[node.fn](*args), dtype=float)


def _power(node: HPower, env: _Env) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.power(env.value(node.base), node.exponent))


def _matrix_function(node: MatrixFn, env: _Env) -> np.ndarray:
    matrix = env.value(node.arg)
    if node.fn == "inv":
        return np.linalg.inv(matrix)
    return _scalar(np.linalg.det(matrix) if node.fn == "det" else np.linalg.slogdet(matrix)[1])


def _term(node: TermNode, env: _Env) -> np.ndarray:
    out = _scalar(node.coeff)
    for f in node.scalars:
        out = out * env.value(f)
    for d in node.dens:
        out = out / env.value(d)
    return out * env.value(node.body) if node.body is not None else out


def _sum(node: Sum, env: _Env) -> np.ndarray:
    return functools.reduce(operator.add, [env.value(t) for t in node.terms])


_EVALUATORS: dict[type, Callable[..., np.ndarray]] = {
    Tensor: _tensor,
    Transpose: lambda n, env: env.value(n.arg).T,
    Ones: lambda n, env: np.ones((env.size(n.index), 1)),
    Identity: _identity,
    Const: lambda n, env: _scalar(n.value),
    SizeOf: lambda n, env: _scalar(float(env.size(n.index))),
    Product: _product,
    Hadamard: _hadamard,
    Func: _function,
    HPower: _power,
    MatrixFn: _matrix_function,
    Trace: lambda n, env: _scalar(np.trace(env.value(n.arg))),
    Diag: lambda n, env: np.diag(env.value(n.arg).reshape(-1)),
    DiagOf: lambda n, env: np.diag(env.value(n.arg)).reshape(-1, 1),
    VecDiag: lambda n, env: np.diag(env.value(n.arg).reshape(-1, order="F")),
    Norm2: lambda n, env: _scalar(float(np.sum(env.value(n.arg) ** 2))),
    Kron: lambda n, env: np.kron(env.value(n.left), env.value(n.right)),
    Frobenius: lambda n, env: _scalar(float(np.sum(env.value(n.left) * env.value(n.right)))),
    TermNode: _term,
    Sum: _sum,
}


def size_sources(expr: Expr, tensors: Mapping[str, str],
                 free: Sequence[str] = ()) -> dict[str, list[tuple[str, int]]]:
    """For every index root, the (tensor, axis) pairs that fix its size; deltas join indices."""
    parent: dict[str, str] = {}
    occurrences: list[tuple[str, str, int]] = []
    _collect(expr, tensors, parent, occurrences)
    for i in dict.fromkeys(tuple(ir.free_indices(expr)) + tuple(free)):
        slot = slot_of(i)
        if slot is not None:   # a slot index: axis k of tensor T (names.slot_index)
            tensor, axis = slot
            occurrences.append((i, tensors.get(tensor, tensor), axis))
    sources: dict[str, list[tuple[str, int]]] = {}
    for i, tensor, axis in occurrences:
        sources.setdefault(_find(parent, i), []).append((tensor, axis))
    every = {ir.index_root(i) for i, _, _ in occurrences} | set(parent) | set(parent.values())
    return {i: sources.get(_find(parent, i), []) for i in sorted(every)}


def _find(parent: Mapping[str, str], index: str) -> str:
    """The representative of the index's class of indices joined by deltas."""
    i = ir.index_root(index)
    while parent.get(i, i) != i:
        i = parent[i]
    return i


def _collect(expr: Expr, tensors: Mapping[str, str], parent: dict[str, str],
             occurrences: list[tuple[str, str, int]]) -> None:
    """Every (index, tensor, axis) of the expression's references into ``occurrences``; deltas join ``parent``."""
    for term in expr.terms:
        for f in term.factors:
            if isinstance(f, Ref):
                for axis, i in enumerate(f.indices):
                    occurrences.append((i, tensors.get(f.name, f.name), axis))
            elif isinstance(f, Delta):
                a, b = _find(parent, f.first), _find(parent, f.second)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            elif isinstance(f, Call):
                for arg in f.args:
                    _collect(arg, tensors, parent, occurrences)
            elif isinstance(f, Power):
                _collect(f.base, tensors, parent, occurrences)
                _collect(f.exponent, tensors, parent, occurrences)


def size_table(expr: Expr, tensors: Mapping[str, str], free: Sequence[str] = ()) -> SizeTable:
    """:func:`size_sources` frozen and sorted, as :class:`MatrixForm` keeps it."""
    return tuple((k, tuple(v)) for k, v in sorted(size_sources(expr, tensors, free).items()))
