"""Jacobians and values with SymPy entries, for small teaching examples.

The symbolic derivative (index form, as :meth:`Program.derivative` gives it)
is evaluated entry by entry with SymPy instead of numpy: every input entry is a
symbol (or a number, where a value is given), every statement the derivative
refers to is evaluated the same way, and sums are plain loops over index
values. Loops are fine here: the tensors are tiny, and a tensor of more than
:data:`MAX_ENTRIES` entries is refused.

Symbols are named after the input: ``A`` of shape (1, 3) gives ``a1, a2, a3``
(axes of size 1 are dropped), ``B`` of shape (3, 2) gives ``b11, b12, …``
(lowercase name and 1-based indices; ``w1_11`` for ``W1``), a scalar keeps its
name. Where an axis is longer than 9, or two names would clash, every input is
named ``B[1,2]`` instead (counted from 1 too).

SymPy is an optional dependency (``pip install 'einderiv[symbolic]'``); it is
imported only when these functions run. This module prints nothing.

>>> import numpy as np
>>> from einderiv import parse
>>> J = symbolic_jacobian(parse("C[i,j] = A[i,k] B[k,j]"), "B", {"A": (1, 3), "B": (3, 2)})
>>> J.reshape(2, 6).tolist()
[[a1, 0, a2, 0, a3, 0], [0, a1, 0, a2, 0, a3]]
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping

import numpy as np

from einderiv.core import ir
from einderiv.core.functions import FUNCTIONS
from einderiv.errors import MemoryLimitError, ShapeError, UnsupportedError
from einderiv.core.ir import Call, Delta, Expr, Power, Ref, Size, Term
from einderiv.numeric.planning import Context, index_size
from einderiv.calculus.program import Program, ancestors
from einderiv.language.lowering import resolve_sizes

__all__ = ["MAX_ENTRIES", "symbol_names", "symbolic_inputs", "symbolic_jacobian", "symbolic_value", "symbolic_vjp",
           "require_sympy"]

#: The most entries any one symbolic tensor may have.
MAX_ENTRIES = 4096
#: The most loop iterations one symbolic evaluation may take.
MAX_STEPS = 2_000_000

Shape = tuple[int, ...]


def require_sympy() -> Any:
    """The sympy module, or :class:`UnsupportedError` saying how to install it."""
    try:
        import sympy
    except ImportError:
        raise UnsupportedError("symbolic entries need SymPy, which is not installed: "
                               "pip install 'einderiv[symbolic]' (or pip install sympy)") from None
    return sympy


# ---------------------------------------------------------------- names

def _compact_names(name: str, shape: Shape) -> np.ndarray:
    kept = [axis for axis, n in enumerate(shape) if n != 1]
    stem = name.lower() if shape else name
    joint = "_" if stem[-1].isdigit() and kept else ""
    names = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        names[index] = stem + joint + "".join(str(index[axis] + 1) for axis in kept)
    return names


def _bracket_names(name: str, shape: Shape) -> np.ndarray:
    names = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        names[index] = f"{name}[{','.join(str(i + 1) for i in index)}]" if shape else name
    return names


def symbol_names(shapes: Mapping[str, Shape]) -> dict[str, np.ndarray]:
    """The symbol name of every entry of every input: arrays of strings shaped like the inputs.

    >>> symbol_names({"A": (1, 3), "N": ()})["A"].tolist()
    [['a1', 'a2', 'a3']]
    >>> symbol_names({"W": (2, 10)})["W"][0, :2].tolist()
    ['W[1,1]', 'W[1,2]']
    """
    if all(n <= 9 for shape in shapes.values() for n in shape):
        compact = {name: _compact_names(name, tuple(shape)) for name, shape in shapes.items()}
        every = [s for names in compact.values() for s in names.flat]
        if len(every) == len(set(every)):
            return compact
    return {name: _bracket_names(name, tuple(shape)) for name, shape in shapes.items()}


def _number(value: float, sympy: Any) -> Any:
    """An exact SymPy number where the float is a short fraction (0.5 → 1/2), else a Float."""
    value = float(value)
    if value.is_integer():
        return sympy.Integer(int(value))
    if math.isfinite(value):
        fraction = sympy.Rational(value).limit_denominator(1000)
        if float(fraction) == value:
            return fraction
    return sympy.Float(value)


def symbolic_inputs(shapes: Mapping[str, Shape], values: Mapping[str, np.ndarray] | None = None
                    ) -> dict[str, np.ndarray]:
    """Object arrays of SymPy symbols (real), or of numbers for the inputs in ``values``.

    >>> symbolic_inputs({"x": (2,)}, {"x": np.array([0.5, 2.0])})["x"].tolist()
    [1/2, 2]
    """
    sympy = require_sympy()
    values = values or {}
    names = symbol_names({n: s for n, s in shapes.items() if n not in values})
    arrays = {}
    for name, shape in shapes.items():
        array = np.empty(shape, dtype=object)
        for index in np.ndindex(*shape):
            if name in values:
                array[index] = _number(np.asarray(values[name])[index], sympy)
            else:
                array[index] = sympy.Symbol(names[name][index], real=True)
        arrays[name] = array
    return arrays


# ---------------------------------------------------------------- evaluation

class _Evaluator:
    """Evaluates IR expressions at given index values over a tensor environment of object arrays."""

    def __init__(self, env: dict[str, np.ndarray], ctx: Context, sympy: Any):
        self.env = env
        self.ctx = ctx
        self.sympy = sympy
        self.steps = 0

    def tensor(self, expr: Expr, indices: tuple[str, ...], what: str) -> np.ndarray:
        shape = tuple(index_size(i, self.ctx) for i in indices)
        _check_entries(shape, what)
        out = np.empty(shape, dtype=object)
        for values in np.ndindex(*shape):
            out[values] = self.expr(expr, dict(zip(indices, values)))
        return out

    def expr(self, expr: Expr, at: dict[str, int]) -> Any:
        return self.sympy.Add(*(self.term(t, at) for t in expr.terms)) if expr.terms else self.sympy.Integer(0)

    def term(self, term: Term, at: dict[str, int]) -> Any:
        ranges = [range(index_size(s, self.ctx)) for s in term.summed]
        coeff = _number(term.coeff, self.sympy)
        parts = []
        for values in itertools.product(*ranges):
            self.steps += 1
            if self.steps > MAX_STEPS:
                raise MemoryLimitError(f"the symbolic evaluation takes more than {MAX_STEPS:,} steps; "
                                       "symbolic entries are meant for small examples: use smaller sizes")
            inner = {**at, **dict(zip(term.summed, values))}
            parts.append(self.sympy.Mul(coeff, *(self.factor(f, inner) for f in term.factors)))
        return self.sympy.Add(*parts)

    def factor(self, factor, at: dict[str, int]) -> Any:
        if isinstance(factor, Ref):
            return self.env[factor.name][tuple(at[i] for i in factor.indices)]
        if isinstance(factor, Delta):
            return self.sympy.Integer(int(at[factor.first] == at[factor.second]))
        if isinstance(factor, Size):
            return self.sympy.Integer(index_size(factor.index, self.ctx))
        if isinstance(factor, Call):
            registered = FUNCTIONS.get(factor.fn)
            if registered is None or registered.sympy is None:
                raise UnsupportedError(f"function '{factor.fn}' has no symbolic form")
            return registered.sympy(self.sympy, *(self.expr(a, at) for a in factor.args))
        if isinstance(factor, Power):
            return self.sympy.Pow(self.expr(factor.base, at), self.expr(factor.exponent, at))
        if isinstance(factor, ir.MatFn):
            return _matrix_function(self, factor, at)
        raise UnsupportedError(f"cannot evaluate {type(factor).__name__} symbolically")


def _matrix_function(evaluator: "_Evaluator", factor: ir.MatFn, at: dict[str, int]) -> Any:
    """An entry of ``inv(M)``, or ``det(M)``, or ``log(det(M))``, with SymPy.

    The matrix is built once per evaluation (a ``sympy.Matrix`` of its entries), with
    its determinant; the inverse is the adjugate over the determinant, so a 2×2 gives
    the textbook ``d/(ad − bc)``. ``logdet`` is ``log(det M)`` (positive determinant).
    """
    from einderiv.core.matrix_functions import batch_of
    from einderiv.language.printing import describe_call as describe
    sympy = evaluator.sympy
    cache = evaluator.__dict__.setdefault("matrices", {})
    batch = {b: at[b] for b in batch_of(factor)}       # one matrix of a batch: the batch indices fixed
    key = (factor.arg, factor.rows, factor.cols, tuple(batch.items()))
    if key not in cache:
        from einderiv.errors import SingularMatrixError
        n, m = index_size(factor.rows, evaluator.ctx), index_size(factor.cols, evaluator.ctx)
        if n != m:
            raise ShapeError(f"{factor.fn}(...) needs a square matrix, but {describe(factor)} has a {n}×{m} argument")
        _check_entries((n, m), f"the argument of {describe(factor)}")
        matrix = sympy.Matrix(n, m, lambda r, c: evaluator.expr(factor.arg, {**batch, factor.rows: r, factor.cols: c}))
        det = matrix.det()
        if det.is_zero:
            raise SingularMatrixError(f"the matrix of {describe(factor)} is singular: its determinant is 0")
        cache[key] = {"matrix": matrix, "det": det}
    found = cache[key]
    if factor.fn == "det":
        return found["det"]
    if factor.fn == "logdet":
        return sympy.log(found["det"])
    if "inverse" not in found:
        found["inverse"] = found["matrix"].adjugate() / found["det"]
    return found["inverse"][tuple(at[i] for i in factor.indices[-2:])]


def _check_entries(shape: Shape, what: str) -> None:
    entries = math.prod(shape)
    if entries > MAX_ENTRIES:
        raise MemoryLimitError(f"{what} would have shape {shape}, {entries:,} entries; symbolic entries are "
                               f"limited to {MAX_ENTRIES:,} per tensor (they are meant for small examples)")


def _prepare(program: Program, of: str, shapes: Mapping[str, Shape], sizes: Mapping[str, int] | None,
             values: Mapping[str, np.ndarray] | None, sympy: Any) -> tuple[Context, dict[str, np.ndarray]]:
    statements = tuple(program.statement(n) for n in ancestors(program, of))
    missing = [n for n in ir.tensor_names(ir.add(*(s.rhs for s in statements))) if n not in program.names
               and n not in shapes]
    if missing:
        raise ShapeError(f"the shape of input '{missing[0]}' is not known")
    root_sizes, all_shapes = resolve_sizes(statements, {n: tuple(s) for n, s in shapes.items()}, dict(sizes or {}))
    ctx = Context(root_sizes, all_shapes, np.dtype(np.float64))
    return ctx, symbolic_inputs(shapes, values)


def _run_forward(program: Program, names: list[str], evaluator: _Evaluator) -> None:
    for name in ancestors(program, *names):
        s = program.statement(name)
        evaluator.env[name] = evaluator.tensor(s.rhs, s.lhs, f"'{name}'")


def symbolic_value(program: Program, shapes: Mapping[str, Shape], *, of: str | None = None,
                   sizes: Mapping[str, int] | None = None, values: Mapping[str, np.ndarray] | None = None
                   ) -> np.ndarray:
    """The output ``of`` as an object array of SymPy expressions in the input entries.

    >>> from einderiv import parse
    >>> symbolic_value(parse("y[i] = A[i,j] x[j]"), {"A": (1, 2), "x": (2,)}).tolist()
    [a1*x1 + a2*x2]
    """
    sympy = require_sympy()
    of = program.resolve_output(of)
    ctx, env = _prepare(program, of, shapes, sizes, values, sympy)
    evaluator = _Evaluator(env, ctx, sympy)
    _run_forward(program, [of], evaluator)
    return env[of]


def symbolic_jacobian(program: Program, wrt: str, shapes: Mapping[str, Shape], *, of: str | None = None,
                      sizes: Mapping[str, int] | None = None, values: Mapping[str, np.ndarray] | None = None
                      ) -> np.ndarray:
    """``d of / d wrt`` as an object array of SymPy expressions, shape ``shape(of) + shape(wrt)``.

    ``shapes`` gives the shape of every input the output needs (and of ``wrt``);
    the inputs in ``values`` are numbers, the others symbols.

    >>> from einderiv import parse
    >>> symbolic_jacobian(parse("L = x[i] x[i]"), "x", {"x": (2,)}).tolist()
    [2*x1, 2*x2]
    """
    sympy = require_sympy()
    of = program.resolve_output(of)
    derivative = program.derivative(wrt, of)
    if wrt in program.names:                 # an intermediate: its local Jacobian, in its own entries
        program = program.cut([wrt], of)
    if wrt not in shapes:
        raise ShapeError(f"the shape of input '{wrt}' is not known")
    ctx, env = _prepare(program, of, shapes, sizes, values, sympy)
    result_indices = derivative.out_indices + derivative.wrt_indices
    shape = tuple(index_size(i, ctx) for i in result_indices)
    _check_entries(shape, f"the Jacobian d{of}/d{wrt}")
    evaluator = _Evaluator(env, ctx, sympy)
    referenced = [n for e in [derivative.expr] + [s.expr for s in derivative.chain] for n in ir.tensor_names(e)]
    _run_forward(program, referenced, evaluator)
    for s in derivative.chain:
        evaluator.ctx = Context(ctx.sizes, {**evaluator.ctx.shapes, s.name: tuple(index_size(i, evaluator.ctx)
                                                                                  for i in s.indices)}, ctx.dtype)
        env[s.name] = evaluator.tensor(s.expr, s.indices, f"the adjoint of '{s.of}'")
    return evaluator.tensor(derivative.expr, result_indices, f"the Jacobian d{of}/d{wrt}")


def symbolic_vjp(program: Program, wrt: str, shapes: Mapping[str, Shape], upstream: str, *, of: str | None = None,
                 sizes: Mapping[str, int] | None = None, values: Mapping[str, np.ndarray] | None = None
                 ) -> np.ndarray:
    """``Σ upstream[o] d of[o] / d wrt``: the vector–Jacobian product with SymPy entries, shaped like ``wrt``.

    ``shapes`` holds the upstream gradient's shape (that of ``of``) under the name
    ``upstream``; it is named like an input (``G`` of shape (1, 2) gives ``g1, g2``)
    unless its value is in ``values``.

    >>> from einderiv import parse
    >>> symbolic_vjp(parse("C[i,j] = A[i,k] B[k,j]"), "B", {"A": (1, 3), "B": (3, 2), "G": (1, 2)}, "G").tolist()
    [[a1*g1, a1*g2], [a2*g1, a2*g2], [a3*g1, a3*g2]]
    """
    sympy = require_sympy()
    of = program.resolve_output(of)
    if upstream not in shapes:
        raise ShapeError(f"the shape of the upstream gradient '{upstream}' is not known")
    jacobian = symbolic_jacobian(program, wrt, shapes, of=of, sizes=sizes, values=values)
    gradient = symbolic_inputs(shapes, values)[upstream]
    out_rank = gradient.ndim
    if jacobian.shape[:out_rank] != gradient.shape:
        raise ShapeError(f"the upstream gradient '{upstream}' has shape {gradient.shape} but '{of}' has shape "
                         f"{jacobian.shape[:out_rank]}")
    result = np.empty(jacobian.shape[out_rank:], dtype=object)
    for index in np.ndindex(*result.shape):
        total = sympy.Integer(0)
        for o in np.ndindex(*gradient.shape):
            total += gradient[o] * jacobian[o + index]
        result[index] = sympy.expand(total)
    return result
