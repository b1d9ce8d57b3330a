"""A product of two tensors as one batched matrix product of views (numpy), copying neither operand.

``np.tensordot`` moves each operand's contracted axes to one end and copies the
operand when they are not already there; ``np.einsum`` never calls BLAS for two
operands, and opt_einsum hands products with batch indices (in both operands and
in the output) to ``np.einsum``. Both are slow on the products reverse mode makes
(a cotangent against a large operand whose contracted axes lie in its middle).

Here the axes of each operand are grouped into *runs*: a run of consecutive axes
is merged into one axis by a ``reshape`` that needs no copy. x's output-only
axes (M), the contracted axes (K, consecutive in the same order in both) and y's
output-only axes (N) each keep one run; every other axis becomes a *batch* axis
of ``np.matmul``, which broadcasts it (size 1 in the operand that lacks it) and
strides over it without copying. A contracted index used as a batch axis is
summed after the product. So ``g[b] = Σ_a Σ_r G[a,r] T[a,b,r]`` is::

    np.matmul(T.reshape(A, B, R), G.reshape(A, R, 1)).sum(axis=0)

one BLAS call per ``a``, reading ``T`` once, where ``np.tensordot`` would first
copy ``T`` into ``(b, a, r)`` order.

A simple cost model (elements moved, plus a fixed cost per matrix product)
chooses between this and ``np.tensordot``; :func:`cheaper_batched_matmul` returns None
where ``tensordot`` (or, for a thin product, ``np.einsum``) costs less.

>>> x, y = np.arange(24.0).reshape(2, 3, 4), np.arange(8.0).reshape(2, 4)
>>> product = batched_matmul([0, 1, 2], [0, 2], [1], [(2, 3, 4), (2, 4)])
>>> bool(np.allclose(product(x, y), np.einsum("abr,ar->b", x, y)))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import opt_einsum

__all__ = ["batched_matmul", "cheaper_batched_matmul", "PairLayout", "pair_layout", "thin_with_a_copy",
           "short_inner_loop", "einsum_pair", "THIN_SIDE", "LARGE_OPERAND"]

#: np.einsum names axes with letters.
LETTERS = 52
#: The fixed cost of one matrix product inside ``np.matmul``'s batch loop, in elements moved.
PER_PRODUCT = 256
#: A contracted index is summed after the product (a batch axis) only while the product's output,
#: so enlarged, is at most this many times the final output.
MAX_SUMMED_FACTOR = 16


@dataclass(frozen=True)
class PairLayout:
    """How ``x[a…] y[b…] → out`` maps onto ``np.matmul``: the runs each side keeps, and the batch axes.

    ``batch`` lists every other index in the order of the matmul's batch axes;
    ``summed`` are the batch indices summed after the product (contracted ones).
    """

    m_run: tuple[int, ...]
    k_run: tuple[int, ...]
    n_run: tuple[int, ...]
    batch: tuple[int, ...]
    summed: tuple[int, ...]


def _runs(sub: Sequence[int], members: set[int]) -> list[tuple[int, ...]]:
    """Maximal runs of consecutive entries of ``sub`` that are in ``members``.

    >>> _runs([0, 1, 2, 3, 4], {0, 1, 3})
    [(0, 1), (3,)]
    """
    runs: list[tuple[int, ...]] = []
    current: list[int] = []
    for i in sub:
        if i in members:
            current.append(i)
        elif current:
            runs.append(tuple(current))
            current = []
    if current:
        runs.append(tuple(current))
    return runs


def _is_run_of(run: tuple[int, ...], sub: Sequence[int]) -> bool:
    """Whether ``run`` occurs in ``sub`` as consecutive entries, in its order."""
    if not run:
        return True
    start = list(sub).index(run[0]) if run[0] in sub else -1
    return start >= 0 and tuple(sub[start:start + len(run)]) == run


def _common_runs(a: Sequence[int], b: Sequence[int], members: set[int]) -> list[tuple[int, ...]]:
    """Every run of ``members`` consecutive in ``a`` that is also consecutive, in the same order, in ``b``."""
    found = []
    for run in _runs(a, members):
        for start in range(len(run)):
            for stop in range(start + 1, len(run) + 1):
                if _is_run_of(run[start:stop], b):
                    found.append(run[start:stop])
    return found


def pair_layout(a: Sequence[int], b: Sequence[int], out: Sequence[int], sizes: dict[int, int]) -> PairLayout | None:
    """The runs and batch axes of the product (the largest run of each kind), or None when the matrices
    of the product would not be strided as BLAS needs (an operand's last axis a batch axis).

    >>> pair_layout([0, 1, 2], [0, 2], [1], {0: 2, 1: 3, 2: 4})
    PairLayout(m_run=(1,), k_run=(2,), n_run=(), batch=(0,), summed=(0,))
    """
    both = set(a) & set(b)
    contracted = {i for i in both if i not in out}
    volume = lambda run: math.prod(sizes[i] for i in run)     # noqa: E731
    k_run = max(_common_runs(a, b, contracted), key=volume, default=())
    m_run = _free_run(a, set(a) - both, k_run, volume)
    n_run = _free_run(b, set(b) - both, k_run, volume)
    kept = set(m_run) | set(k_run) | set(n_run)
    if (a and a[-1] not in kept and sizes[a[-1]] > 1) or (b and b[-1] not in kept and sizes[b[-1]] > 1):
        return None
    batch = tuple(i for i in list(out) + [i for i in a if i in contracted] if i not in kept)
    return PairLayout(m_run, k_run, n_run, batch, tuple(i for i in batch if i in contracted))


def _free_run(sub: Sequence[int], free: set[int], k_run: tuple[int, ...],
              volume: Callable[[tuple[int, ...]], int]) -> tuple[int, ...]:
    """The run of output-only indices an operand keeps: the one holding its last axis when the
    contracted run does not (BLAS needs a unit-strided side), else the largest."""
    runs = _runs(sub, free)
    if sub and sub[-1] in free and sub[-1] not in k_run:
        return runs[-1]
    return max(runs, key=volume, default=())


def _tensordot_cost(a: Sequence[int], b: Sequence[int], out: Sequence[int], sizes: dict[int, int]) -> float:
    """Elements ``np.tensordot`` moves: both operands and the output, and a copy of each operand whose
    contracted axes are not already at its end (x) or start (y) in x's order."""
    shared = [i for i in a if i in b]
    size_a, size_b = math.prod(sizes[i] for i in a), math.prod(sizes[i] for i in b)
    copies_a = list(a[len(a) - len(shared):]) != shared
    copies_b = list(b[:len(shared)]) != shared
    return size_a + size_b + math.prod(sizes[i] for i in out) + 2 * size_a * copies_a + 2 * size_b * copies_b


def _batched_cost(layout: PairLayout, a: Sequence[int], b: Sequence[int], out: Sequence[int],
                  sizes: dict[int, int]) -> float:
    products = math.prod(sizes[i] for i in layout.batch)
    factor = math.prod(sizes[i] for i in layout.summed)
    size_out = math.prod(sizes[i] for i in out)
    written = size_out * factor * (2 if layout.summed else 1)
    return math.prod(sizes[i] for i in a) + math.prod(sizes[i] for i in b) + written + products * PER_PRODUCT


def batched_matmul(a: list[int], b: list[int], out: list[int], shapes: Sequence[tuple[int, ...]]
                   ) -> Callable | None:
    """``(x, y) → Σ x[a…] y[b…]`` over ``out``, as one ``np.matmul`` of views (None when the layout's
    matrices would not be strided as BLAS needs).

    Indices are distinct within each operand and each is in the other operand or the output (the
    caller sums lone indices first).

    >>> x, y = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(2, 3, 2)
    >>> product = batched_matmul([0, 1], [0, 1, 2], [0, 2], [(2, 3), (2, 3, 2)])
    >>> bool(np.allclose(product(x, y), np.einsum("ab,abc->ac", x, y)))
    True
    """
    sizes = _sizes(a, b, shapes)
    layout = pair_layout(a, b, out, sizes)
    return None if layout is None else _compile(layout, a, b, out, sizes)


def cheaper_batched_matmul(a: list[int], b: list[int], out: list[int], shapes: Sequence[tuple[int, ...]],
                           limit_elements: int) -> Callable | None:
    """:func:`batched_matmul` where it moves fewer elements than ``np.tensordot`` (which copies an
    operand whose contracted axes are out of place), or where tensordot does not apply (batch indices)
    and the matrices are large enough for BLAS to pay; else None.

    ``limit_elements`` bounds the enlarged product that summing a contracted batch index after the
    product allocates.

    >>> cheaper_batched_matmul([0, 1, 2], [1], [0, 2], [(300, 8, 300), (8,)], 10 ** 6) is not None
    True
    >>> cheaper_batched_matmul([0, 1], [1, 2], [0, 2], [(30, 40), (40, 50)], 10 ** 6) is None   # tensordot's case
    True
    """
    sizes = _sizes(a, b, shapes)
    layout = pair_layout(a, b, out, sizes)
    if layout is None:
        return None
    factor = math.prod(sizes[i] for i in layout.summed)
    if layout.summed and (factor > MAX_SUMMED_FACTOR or factor * math.prod(sizes[i] for i in out) > limit_elements):
        return None
    cost = _batched_cost(layout, a, b, out, sizes)
    if not set(a) & set(b) & set(out):             # tensordot applies: use this only where it moves less
        if cost >= _tensordot_cost(a, b, out, sizes):
            return None
    elif cost >= math.prod(sizes[i] for i in set(a) | set(b)):     # else opt_einsum's np.einsum, no BLAS
        return None
    return _compile(layout, a, b, out, sizes)


def _sizes(a: Sequence[int], b: Sequence[int], shapes: Sequence[tuple[int, ...]]) -> dict[int, int]:
    return {i: n for sub, shape in zip((a, b), shapes) for i, n in zip(sub, shape)}


def _side(sub: Sequence[int], first: tuple[int, ...], second: tuple[int, ...], batch: tuple[int, ...],
          sizes: dict[int, int]) -> tuple[tuple[int, ...], tuple[int, ...], tuple]:
    """(merged shape, axis order, broadcasting index) turning an operand over ``sub`` into
    ``(batch…, first, second)`` with its two runs merged, size-1 axes for the batch indices it lacks."""
    groups: list[tuple[int, ...]] = []
    at: dict[str, int] = {}                        # where each run's merged axis is
    k = 0
    while k < len(sub):
        for label, run in (("first", first), ("second", second)):
            if run and sub[k] == run[0]:
                at[label] = len(groups)
                groups.append(run)
                k += len(run)
                break
        else:
            groups.append((sub[k],))
            k += 1
    for label, run in (("first", first), ("second", second)):
        if not run:                                # an empty run: a trailing axis of size 1
            at[label] = len(groups)
            groups.append(run)
    merged = tuple(math.prod(sizes[i] for i in g) for g in groups)
    mine = [i for i in batch if i in sub]
    order = tuple(groups.index((i,)) for i in mine) + (at["first"], at["second"])
    expand = tuple(slice(None) if i in sub else None for i in batch) + (slice(None), slice(None))
    return merged, order, expand


def _compile(layout: PairLayout, a: Sequence[int], b: Sequence[int], out: Sequence[int],
             sizes: dict[int, int]) -> Callable:
    shape_x, order_x, expand_x = _side(a, layout.m_run, layout.k_run, layout.batch, sizes)
    shape_y, order_y, expand_y = _side(b, layout.k_run, layout.n_run, layout.batch, sizes)
    summed = tuple(k for k, i in enumerate(layout.batch) if i in layout.summed)
    kept = [i for i in layout.batch if i not in layout.summed] + list(layout.m_run) + list(layout.n_run)
    unmerged = tuple(sizes[i] for i in kept)
    perm = tuple(kept.index(i) for i in out)
    identity = perm == tuple(range(len(perm)))
    expands_x = any(e is None for e in expand_x)
    expands_y = any(e is None for e in expand_y)
    matmul, reduce = np.matmul, np.add.reduce

    def product(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xv = np.reshape(x, shape_x).transpose(order_x)
        yv = np.reshape(y, shape_y).transpose(order_y)
        result = matmul(xv[expand_x] if expands_x else xv, yv[expand_y] if expands_y else yv)
        if summed:
            result = reduce(result, axis=summed)
        result = result.reshape(unmerged)
        return result if identity else result.transpose(perm)
    return product


# ---------------------------------------------------------------- when np.einsum is the better call

#: A two-operand product whose GEMM has a side at most this long is memory-bound: ``np.tensordot``'s
#: transposed copy of a large operand (over :data:`LARGE_OPERAND` entries) costs more than its BLAS call saves.
THIN_SIDE, LARGE_OPERAND = 16, 1 << 16


def thin_with_a_copy(a: list[int], b: list[int], shared: list[int], shapes: list[tuple[int, ...]]) -> bool:
    """Whether ``np.tensordot`` would copy a large operand into a transposed layout for a thin product
    (``T[a,b,c,…] v[b]``: a matrix–vector product in disguise), which ``np.einsum`` does in one pass.

    >>> thin_with_a_copy([0, 1, 2], [1], [1], [(300, 8, 300), (8,)]), thin_with_a_copy([0, 1], [1], [1], [(300, 8), (8,)])
    (True, False)
    """
    if len(set(a) | set(b)) > LETTERS:
        return False
    size_a = dict(zip(a, shapes[0]))
    size_b = dict(zip(b, shapes[1]))
    k = math.prod(size_a[i] for i in shared)
    m = math.prod(n for i, n in size_a.items() if i not in shared)
    n = math.prod(n for i, n in size_b.items() if i not in shared)
    copies_a = [a.index(i) for i in shared] != list(range(len(a) - len(shared), len(a))) and m * k > LARGE_OPERAND
    copies_b = [b.index(i) for i in shared] != list(range(len(shared))) and k * n > LARGE_OPERAND
    return min(m, n, k) <= THIN_SIDE and (copies_a or copies_b)


def short_inner_loop(a: list[int], b: list[int], out: list[int], shapes: list[tuple[int, ...]]) -> bool:
    """Whether a large elementwise or outer product has a short last output axis, which numpy's
    broadcasting multiply walks in short inner loops and ``np.einsum`` in one pass.

    >>> short_inner_loop([0], [1], [0, 1], [(100000,), (8,)]), short_inner_loop([0], [1], [1, 0], [(100000,), (8,)])
    (True, False)
    """
    if not out or len(set(a) | set(b)) > LETTERS:
        return False
    sizes = {**dict(zip(a, shapes[0])), **dict(zip(b, shapes[1]))}
    return inner_loop(a, b, out, sizes) <= THIN_SIDE and math.prod(sizes[i] for i in out) > LARGE_OPERAND


def inner_loop(a: list[int], b: list[int], out: list[int], sizes: dict[int, int]) -> int:
    """The length of numpy's inner loop for ``x[a] * y[b]`` written over ``out`` (contiguous operands):
    the last output axes that come, in order and adjacent, from the same operand(s) merge into one.

    >>> inner_loop([0, 1], [2], [0, 2, 1], {0: 5, 1: 3, 2: 4}), inner_loop([0, 1], [2], [2, 0, 1], {0: 5, 1: 3, 2: 4})
    (3, 15)
    """
    def place(i: int) -> tuple[int | None, int | None]:
        return (a.index(i) if i in a else None, b.index(i) if i in b else None)
    length = sizes[out[-1]]
    for later, earlier in zip(reversed(out), list(reversed(out))[1:]):
        p, q = place(later), place(earlier)
        if any((x is None) != (y is None) or (x is not None and y != x - 1) for x, y in zip(p, q)):
            break
        length *= sizes[earlier]
    return length


def einsum_pair(a: list[int], b: list[int], out: list[int]) -> Callable:
    """``np.einsum`` of two operands (at most 52 indices), in one pass over each."""
    letters = {i: opt_einsum.get_symbol(k) for k, i in enumerate(dict.fromkeys(a + b))}
    equation = f"{''.join(letters[i] for i in a)},{''.join(letters[i] for i in b)}->{''.join(letters[i] for i in out)}"
    return lambda x, y: np.einsum(equation, x, y)
