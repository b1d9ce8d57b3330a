"""What a gradient will cost before it runs: the steps of its plan, their FLOPs and memory.

:func:`plan` builds the same plan a call of :func:`einderiv.grad` (or ``vjp``,
``jacobian``, ``evaluate``) would build for arrays of the given shapes, without
any arrays, and reports each step: what it computes (in index form), the shape
and bytes of its result, the FLOPs of its contraction (opt_einsum's path cost)
and the largest intermediate inside it. This is ``opt_einsum.contract_path``
for derivatives: the contraction tree of a many-operand product shows up as its
two-operand steps, forward and then backward.

>>> report = plan("L = A[i,j] B[j,k] C[k,i]", ["A", "B", "C"], {"A": (4, 5), "B": (5, 6), "C": (6, 4)})
>>> [s.role for s in report.steps]
['forward', 'result', 'result', 'result']
>>> report.steps[-1].computes.startswith("gC[a,b] = ")
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from einderiv.numeric import paths, plans
from einderiv.core import ir
from einderiv.errors import ShapeError
from einderiv.core.ir import Call, Delta, Expr, MatFn, Power, Ref, Size
from einderiv.core.matrix_functions import batch_of
from einderiv.numeric.planning import Context, index_size
from einderiv.language.printing import format_expr, format_ref
from einderiv.calculus.program import Program, as_program
from einderiv.language.lowering import checked_size
from einderiv.names import is_derivative, plain

__all__ = ["plan", "PlanReport", "PlanStep"]


@dataclass(frozen=True)
class PlanStep:
    """One step of a plan: ``computes`` is ``name[indices] = expression`` in index form."""

    role: str                      # "forward", "adjoint" or "result"
    computes: str
    shape: tuple[int, ...]
    nbytes: int
    flops: int                     # with slicing's extra work, when sliced
    largest: int                   # elements of the largest intermediate inside the step (of one slice)
    slices: int = 1                # > 1: the step's contraction runs as a loop over this many chunks
    overhead: int = 0              # the FLOPs slicing adds


@dataclass(frozen=True)
class PlanReport:
    """The steps of a plan and their totals; ``str()`` is a table."""

    title: str
    dtype: str
    steps: tuple[PlanStep, ...]
    memory_limit: int

    @property
    def over_limit(self) -> tuple[int, ...]:
        """1-based numbers of the steps whose result or largest intermediate exceeds the memory limit
        (a call with these shapes would raise :class:`~einderiv.MemoryLimitError`)."""
        itemsize = np.dtype(self.dtype).itemsize
        return tuple(k for k, s in enumerate(self.steps, 1)
                     if max(s.nbytes, s.largest * itemsize) > self.memory_limit)

    @property
    def flops(self) -> int:
        return sum(s.flops for s in self.steps)

    @property
    def slicing_overhead(self) -> int:
        """The FLOPs that slicing to the memory limit adds, over every step."""
        return sum(s.overhead for s in self.steps)

    @property
    def largest_bytes(self) -> int:
        """The largest tensor any step allocates (a result or an intermediate inside a step)."""
        itemsize = np.dtype(self.dtype).itemsize
        return max([s.nbytes for s in self.steps] + [s.largest * itemsize for s in self.steps] + [0])

    @property
    def stored_bytes(self) -> int:
        """Bytes of every step's result together: an upper bound of what the plan holds at once."""
        return sum(s.nbytes for s in self.steps)

    def __str__(self) -> str:
        sliced = [k for k, s in enumerate(self.steps, 1) if s.slices > 1]
        rows = [("#", "role", "computes", "shape", "bytes", "FLOPs", "largest") + (("slices",) if sliced else ())]
        for k, s in enumerate(self.steps, 1):
            rows.append((str(k), s.role, s.computes, str(s.shape), f"{s.nbytes:,}", f"{s.flops:,}", f"{s.largest:,}")
                        + ((f"{s.slices:,}",) if sliced else ()))
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines = [self.title + f" ({self.dtype})"]
        for r in rows:
            lines.append("  ".join(cell.ljust(w) if c == 2 else cell.rjust(w) for c, (cell, w) in
                                   enumerate(zip(r, widths))).rstrip())
        lines.append(f"total: {len(self.steps)} steps, {self.flops:,} FLOPs; largest tensor {self.largest_bytes:,} bytes; "
                     f"all results together {self.stored_bytes:,} bytes")
        if sliced:
            base = self.flops - self.slicing_overhead
            lines.append(f"sliced to fit the memory limit of {self.memory_limit:,} bytes: step"
                         f"{'s' if len(sliced) > 1 else ''} {', '.join(map(str, sliced))}, "
                         f"{self.slicing_overhead:,} extra FLOPs (+{100 * self.slicing_overhead / max(base, 1):.1f}%)")
        if self.over_limit:
            lines.append(f"over the memory limit of {self.memory_limit:,} bytes (a call would be refused): step"
                         f"{'s' if len(self.over_limit) > 1 else ''} {', '.join(map(str, self.over_limit))}")
        return "\n".join(lines)


def plan(program: Program | str, wrt: str | Sequence[str] | None, shapes: Mapping[str, Sequence[int]], *,
         of: str | None = None, mode: str = "grad", sizes: Mapping[str, int] | None = None,
         dtype: str = "float64", memory_limit: int | None = None) -> PlanReport:
    """The plan of a gradient (``mode="grad"``), VJP (``"vjp"``), Jacobian (``"jacobian"``) or value
    (``"value"``, ``wrt=None``) for inputs of the given ``shapes``, without computing anything.

    >>> r = plan("y[i] = A[i,j] x[j]", None, {"A": (3, 4), "x": (4,)}, mode="value")
    >>> [(s.computes, s.flops) for s in r.steps]
    [('y[i] = A[i,j] x[j]', 24)]
    """
    program = as_program(program)
    of = program.resolve_output(of)
    if not isinstance(shapes, Mapping):
        raise ShapeError(f"shapes must map input names to tuples of sizes, got {type(shapes).__name__}")
    type_ = np.dtype(dtype)
    arrays = {name: _placeholder(name, shape, type_) for name, shape in shapes.items()}
    if mode == "value":
        order, needed = plans.requested(program, of, ())
        checked = plans.check_inputs(program, arrays, needed)
        ctx = plans.plan_context(program, checked, plans.sizes_cache_key(sizes), order, plans.checked_memory_limit(memory_limit), "")
        table = plans.lowered(program, order, ctx)
        specs = plans.forward_specs(table, [s.name for s in table.statements], ctx)
        return PlanReport(f"value of {of}", type_.name, tuple(_step("forward", spec) for spec in specs),
                          ctx.memory_limit)
    if mode not in ("grad", "vjp", "jacobian"):
        raise ShapeError(f"mode must be one of 'grad', 'vjp', 'jacobian', 'value'; got {mode!r}")
    names, _ = plans.wrt_names(wrt if wrt is not None else ())
    cotangent = _placeholder("cotangent", (), type_) if mode == "vjp" else None
    request = plans.reverse_request(program, of, names, arrays, sizes, memory_limit, mode, cotangent)
    if mode == "vjp":
        ctx = plans.plan_context(program, request.arrays, request.sizes_key, request.order, request.memory_limit, "")
        shape = ctx.shapes[of]
        request = plans.reverse_request(program, of, names, arrays, sizes, memory_limit, mode,
                                       _placeholder("cotangent", shape, type_))
    steps, results = plans.reverse_specs(request)
    kind = {"grad": "gradient", "vjp": "vector-Jacobian product", "jacobian": "Jacobian"}[mode]
    title = f"{kind} of {of} with respect to {', '.join(names)}"
    labels = {w: f"d{of}/d{w}" if mode == "jacobian" else f"g{w}" for w in names}
    return PlanReport(title, type_.name, tuple(_step("adjoint" if is_derivative(s[0]) else "forward", s) for s in steps)
                      + tuple(_step("result", s, labels[s[0]]) for s in results), request.memory_limit)


def _placeholder(name: str, shape: Sequence[int], dtype: np.dtype) -> np.ndarray:
    """A read-only array of ``shape`` that takes no memory (one broadcast zero)."""
    try:
        shape = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        raise ShapeError(f"the shape of '{name}' must be a tuple of sizes, got {shape!r}") from None
    for n in shape:
        checked_size(f"a size in the shape of '{name}'", n)
    return np.broadcast_to(np.zeros((), dtype), shape)


def _step(role: str, spec, label: str | None = None) -> PlanStep:
    name, expr, target, ctx, _ = spec
    shape = tuple(index_size(i, ctx) for i in target)
    flops, largest, slices, overhead = _cost(expr, ctx)
    label = label or plain(name)
    return PlanStep(role, f"{format_ref(label, _names(target))} = {_text(expr, target)}", shape,
                    math.prod(shape) * ctx.dtype.itemsize, flops, largest, slices, overhead)


def _names(indices: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(ir.display_name(i) for i in indices)


def _text(expr: Expr, target: tuple[str, ...]) -> str:
    fixed = dict(zip(target, _names(target)))
    text = format_expr(expr, fixed)
    for internal in sorted({t for t in ir.tensor_names(expr) if is_derivative(t)}, key=len, reverse=True):
        text = text.replace(internal, plain(internal))
    return text


def _cost(expr: Expr, ctx: Context) -> tuple[int, int, int, int]:
    """(FLOPs, largest intermediate, slices, slicing's extra FLOPs) of evaluating ``expr``: each
    term's contraction along the path a call plans (sliced as a call slices it), plus the
    elementwise work of calls, powers and the sum itself."""
    flops, largest, slices, overhead = 0, 0, 1, 0
    for term in expr.terms:
        operands: list[tuple[str, ...]] = []
        for factor in term.factors:
            if isinstance(factor, Ref):
                operands.append(factor.indices)
            elif isinstance(factor, (Call, Power)):
                inner = tuple(dict.fromkeys(ir.factor_indices(factor)))
                nested = factor.args if isinstance(factor, Call) else (factor.base, factor.exponent)
                for e in nested:
                    f, l, n, o = _cost(e, ctx)
                    flops += f
                    largest = max(largest, l)
                    slices, overhead = max(slices, n), overhead + o
                flops += math.prod(index_size(i, ctx) for i in inner)
                operands.append(inner)
            elif isinstance(factor, MatFn):
                f, l = _matrix_function_cost(factor, ctx)
                flops += f
                largest = max(largest, l)
                operands.append(tuple(dict.fromkeys(factor.indices)))
            elif not isinstance(factor, (Delta, Size)):
                raise TypeError(f"unexpected factor {factor!r}")
        plan = _contraction_cost(operands, set(ir.free_indices(Expr((term,)))), ctx)
        flops += plan.flops
        largest = max(largest, plan.largest)
        slices, overhead = max(slices, plan.slices), overhead + plan.overhead
    return flops, largest, slices, overhead


def _matrix_function_cost(factor: MatFn, ctx: Context) -> tuple[int, int]:
    """(FLOPs, largest intermediate) of ``inv``/``det``/``logdet`` of a matrix: its argument, then
    one LU factorisation and inverse per matrix of the batch (about 2 n³ FLOPs)."""
    flops, largest, _, _ = _cost(factor.arg, ctx)
    n = index_size(factor.rows, ctx)
    batch = math.prod(index_size(i, ctx) for i in batch_of(factor))
    matrix_entries = batch * n * index_size(factor.cols, ctx)
    return flops + 2 * batch * n ** 3, max(largest, matrix_entries)


def _contraction_cost(operands: list[tuple[str, ...]], keep: set[str], ctx: Context) -> paths.ContractionPlan:
    """The plan a call makes of this contraction (the same memoised search); unsliced, with the
    intermediate that makes it, when no slicing fits (the report then marks the step as refused)."""
    if not operands:
        return paths.ContractionPlan((), 0, 0, 0, 0)
    ids = {i: k for k, i in enumerate(dict.fromkeys(i for idx in operands for i in idx))}
    sizes = {ids[i]: index_size(i, ctx) for i in ids}
    if len(operands) == 1:
        flops = math.prod(sizes[ids[i]] for i in dict.fromkeys(operands[0]))
        return paths.ContractionPlan((), flops, 0, flops, 0)
    sublists = [[ids[i] for i in idx] for idx in operands]
    try:
        return paths.plan_contraction(sublists, [ids[i] for i in ids if i in keep], sizes,
                                      max(ctx.memory_limit // ctx.dtype.itemsize, 1))
    except paths.NoSlicingFits as refused:
        return refused.best
