"""Contraction paths: a search that scales with the number of operands, and slicing to a memory limit.

:func:`plan_contraction` is the one place a product of tensors gets its
contraction order. Operands and indices are integer sublists (index names
never reach a path search), so any number of indices works.

The search, by the number of operands ``n``:

* ``n ≤ 4``: every order (opt_einsum's ``optimal``);
* ``5 ≤ n ≤`` :data:`DP_MAX_OPERANDS`: dynamic programming over connected
  subgraphs (over outer products too up to :data:`DP_OUTER_MAX_OPERANDS`),
  stopped when its work exceeds the budget, when the greedy and random-greedy
  orders stand;
* more: opt_einsum's greedy, then random-greedy trials within the budget;
  and, with the optional ``cotengra`` package (``einderiv[networks]``),
  from :data:`COTENGRA_MIN_OPERANDS` operands on, a hyper-optimised tree
  within the same budget. The cheapest order in FLOPs wins.

The budget is the time of a few contractions along the greedy order
(its FLOPs at :data:`SEARCH_RATE` a second), between :data:`MIN_BUDGET` and
:data:`MAX_BUDGET` seconds: a search never costs much more than what it can
save, and no size of network falls off a cliff. Work is metered by counts
(comparisons, trials), not by the clock, so a plan does not depend on the
machine's load (cotengra's search, when it runs, is timed and random). Searches are memoised per
(operands, output, sizes, limit) (:func:`search_count` counts the real
ones), so a plan built once per shapes searches once and a cached call not at all.

When the best order's largest intermediate is over the memory limit, the
contraction is *sliced*: some indices are cut into chunks, and the product
runs as a loop over the chunks (each a smaller contraction along the same
order), adding into the output. :func:`slice_indices` chooses the chunks
greedily: each round halves the chunk of the index that removes the most
excess size per extra FLOP, until every intermediate fits. Only when no
slicing of at most :data:`MAX_SLICES` chunks fits is the product refused.

>>> plan = plan_contraction([[0, 1], [1, 2], [2, 3]], [0, 3], {0: 10, 1: 100, 2: 100, 3: 10}, 10 ** 9)
>>> plan.path, plan.slices
(((0, 1), (0, 1)), 1)
>>> trace = [[0, 1], [1, 2], [2, 0]]                 # A[i,j] B[j,k] C[k,i]: the best order holds a 20 × 20
>>> sliced = plan_contraction(trace, [], {0: 20, 1: 100, 2: 20}, 100)
>>> sliced.sliced, sliced.slices, sliced.largest, sliced.overhead
(((0, 5),), 4, 100, 0)
"""

from __future__ import annotations

import functools
import math
import random
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import opt_einsum

from einderiv.core import caching

__all__ = ["ContractionPlan", "NoSlicingFits", "plan_contraction", "path_cost", "widest_step", "slice_indices",
           "search_count",
           "clear_cache", "MAX_SLICES"]

#: Up to this many operands, dynamic programming searches (within the budget).
DP_MAX_OPERANDS = 14
#: Up to this many operands, the dynamic programming also considers outer products.
DP_OUTER_MAX_OPERANDS = 8
#: From this many operands on, and with at least this budget (its set-up alone takes tens of
#: milliseconds), cotengra's hyper-optimiser joins the search when it is installed.
COTENGRA_MIN_OPERANDS, COTENGRA_MIN_BUDGET = 16, 0.05
#: cotengra's trials at most.
COTENGRA_REPEATS = 16
#: Random-greedy trials: as many as the budget pays for at about TRIAL_SECONDS_PER_OPERAND a trial
#: and operand (a count, not a clock, so the same problem always gets the same order), in these bounds.
RANDOM_REPEATS, MIN_RANDOM_REPEATS, TRIAL_SECONDS_PER_OPERAND = 32, 2, 1e-4
#: Dynamic programming compares about this many candidates a second; it stops after the budget's worth.
DP_COMPARES_PER_SECOND = 50_000
#: A search stops anyway after this many times its budget in wall-clock time (a far slower machine).
GUARD = 4
#: The budget is the time of the greedy order's FLOPs at this rate: a few contractions' time
#: (the plan is cached and runs many times).
SEARCH_RATE = 2.5e8
#: Seconds of search per product, at least and at most.
MIN_BUDGET, MAX_BUDGET = 0.005, 0.5
#: A sliced contraction runs as a loop over at most this many chunks.
MAX_SLICES = 4096
#: What one two-operand step of one chunk costs beyond its FLOPs (Python and numpy call overhead,
#: some 10 µs), in FLOPs: the slicer weighs more chunks against larger ones with it.
STEP_OVERHEAD_FLOPS = 10_000

_counter = {"searches": 0}
_memo: dict[tuple, "_Searched"] = {}
_memo_lock = threading.Lock()
_MEMO_SIZE = 4096


def search_count() -> int:
    """How many path searches have run (memoised look-ups not counted) since the last :func:`clear_cache`.

    >>> clear_cache(); search_count()
    0
    """
    return _counter["searches"]


def clear_cache() -> None:
    """Forget every memoised search (``einderiv.clear_cache`` calls this, through the cache registry)."""
    with _memo_lock:
        _memo.clear()
        _counter["searches"] = 0
    _sliced_memo.cache_clear()


def cache_info() -> dict[str, int]:
    """Memoised searches held, searches run, and the bound."""
    with _memo_lock:
        return {"size": len(_memo), "searches": _counter["searches"], "maxsize": _MEMO_SIZE}


@dataclass(frozen=True)
class ContractionPlan:
    """How a product is contracted: the order, its cost and, when sliced, the chunks.

    ``sliced`` pairs an index with its chunk size; ``slices`` is the number of
    chunks the loop runs. ``flops`` and ``largest`` (elements) are those of the
    whole loop and of one chunk; ``unsliced_flops`` and ``unsliced_largest``
    those of the same order without slicing.
    """

    path: tuple[tuple[int, ...], ...]
    flops: int
    largest: int
    unsliced_flops: int
    unsliced_largest: int
    sliced: tuple[tuple[int, int], ...] = ()
    slices: int = 1

    @property
    def overhead(self) -> int:
        """The FLOPs slicing adds (0 when not sliced)."""
        return self.flops - self.unsliced_flops


class NoSlicingFits(Exception):
    """No slicing of at most :data:`MAX_SLICES` chunks brings the largest intermediate under the limit."""

    def __init__(self, best: ContractionPlan, step: int, indices: frozenset):
        super().__init__("no slicing fits")
        self.best, self.step, self.indices = best, step, indices


@dataclass(frozen=True)
class _Searched:
    path: tuple[tuple[int, ...], ...]
    flops: int
    largest: int
    sizes: tuple[int, ...]           # of every step's result, in path order


# ---------------------------------------------------------------- costs

def path_cost(inputs: Sequence[frozenset], output: frozenset, path: Sequence[Sequence[int]],
              sizes: Mapping[int, int]) -> tuple[int, tuple[int, ...], tuple[frozenset, ...]]:
    """(FLOPs, each step's result size, each step's result indices) of ``path``, counted as opt_einsum's
    ``contract_path`` counts them (``opt_cost``, ``size_list``).

    >>> path_cost([frozenset({0, 1}), frozenset({1, 2})], frozenset({0, 2}), [(0, 1)], {0: 2, 1: 3, 2: 4})[:2]
    (48, (8,))
    """
    current = list(inputs)
    flops = 0
    step_sizes, step_indices = [], []
    for positions in path:
        new, current, removed, involved = opt_einsum.helpers.find_contraction(positions, current, output)
        flops += opt_einsum.helpers.flop_count(involved, bool(removed), len(positions), sizes)
        step_sizes.append(opt_einsum.helpers.compute_size_by_dict(new, sizes))
        step_indices.append(new)
    return flops, tuple(step_sizes), tuple(step_indices)


def widest_step(inputs: Sequence[frozenset], output: frozenset, path: Sequence[Sequence[int]]) -> int:
    """The most distinct indices any one step of ``path`` involves.

    >>> widest_step([frozenset({0, 1}), frozenset({1, 2}), frozenset({2, 3})], frozenset(), [(0, 1), (0, 1)])
    3
    """
    current, widest = list(inputs), 0
    for positions in path:
        _, current, _, involved = opt_einsum.helpers.find_contraction(positions, current, output)
        widest = max(widest, len(involved))
    return widest


# ---------------------------------------------------------------- search

class _OutOfTime(Exception):
    pass


def _budget(greedy_flops: int) -> float:
    return min(MAX_BUDGET, max(MIN_BUDGET, greedy_flops / SEARCH_RATE))


def _dynamic_programming(inputs, output, sizes, outer: bool, max_compares: int, deadline: float):
    """opt_einsum's dynamic programming over FLOPs, stopped (:class:`_OutOfTime`) after ``max_compares``
    candidate comparisons (a count, so the same problem always gets the same answer), or at ``deadline``
    (a guard for a machine far slower than :data:`DP_COMPARES_PER_SECOND` assumes)."""
    compare = getattr(opt_einsum.paths, "_dp_compare_flops", None)
    if compare is None:                              # another opt_einsum: no budget to hold it to
        raise _OutOfTime
    clock = time.perf_counter
    left = [max_compares]

    def counted(*args, **kwargs):
        left[0] -= 1
        if left[0] < 0 or clock() > deadline:
            raise _OutOfTime
        return compare(*args, **kwargs)
    return opt_einsum.DynamicProgramming(minimize=counted, search_outer=outer)(inputs, output, sizes)


def _random_greedy(inputs, output, sizes, repeats: int, deadline_seconds: float):
    """``repeats`` of opt_einsum's random-greedy trials (trial r seeds Python's ``random`` with r, so the
    answer is reproducible; the caller's random state is put back afterwards); ``deadline_seconds`` only
    guards against a far slower machine than :data:`TRIAL_SECONDS_PER_OPERAND` assumes."""
    state = random.getstate()
    try:
        return opt_einsum.RandomGreedy(max_repeats=repeats, max_time=deadline_seconds)(inputs, output, sizes)
    finally:
        random.setstate(state)


def _cotengra(inputs, output, sizes, budget: float):
    """A hyper-optimised tree from cotengra (None when it is not installed or fails)."""
    state = random.getstate()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import cotengra
            optimizer = cotengra.HyperOptimizer(methods=("greedy",), max_repeats=COTENGRA_REPEATS, max_time=budget,
                                                minimize="flops", parallel=False, progbar=False)
            tree = optimizer.search([tuple(sorted(s)) for s in inputs], tuple(sorted(output)), dict(sizes))
            return [tuple(step) for step in tree.get_path()]
    except Exception:    # cotengra missing, or a version whose interface differs: the other searches stand
        return None
    finally:
        random.setstate(state)


def _search(inputs: tuple[frozenset, ...], output: frozenset, sizes: Mapping[int, int]) -> _Searched:
    n = len(inputs)
    if n == 1:
        path = [(0,)]
        return _scored(inputs, output, sizes, path)
    if n <= 4:
        return _scored(inputs, output, sizes, opt_einsum.paths.optimal(list(inputs), output, dict(sizes)))
    greedy = _scored(inputs, output, sizes, opt_einsum.paths.greedy(list(inputs), output, dict(sizes)))
    budget = _budget(greedy.flops)
    start = time.perf_counter()
    candidates = [greedy]
    if n <= DP_MAX_OPERANDS:
        try:
            path = _dynamic_programming(list(inputs), output, dict(sizes), n <= DP_OUTER_MAX_OPERANDS,
                                        int(budget * DP_COMPARES_PER_SECOND), start + GUARD * budget)
            candidates.append(_scored(inputs, output, sizes, path))
        except _OutOfTime:
            pass
    if n > DP_MAX_OPERANDS or len(candidates) == 1:
        if n >= COTENGRA_MIN_OPERANDS and budget >= COTENGRA_MIN_BUDGET:
            path = _cotengra(inputs, output, sizes, budget / 2)
            if path is not None:
                candidates.append(_scored(inputs, output, sizes, path))
        repeats = min(RANDOM_REPEATS, max(MIN_RANDOM_REPEATS, int(budget / (TRIAL_SECONDS_PER_OPERAND * n))))
        candidates.append(_scored(inputs, output, sizes,
                                  _random_greedy(list(inputs), output, dict(sizes), repeats, GUARD * budget)))
    return min(candidates, key=lambda c: (c.flops, c.largest))


def _scored(inputs, output, sizes, path) -> _Searched:
    path = tuple(tuple(int(k) for k in step) for step in path)
    flops, step_sizes, _ = path_cost(inputs, output, path, sizes)
    return _Searched(path, max(int(flops), 1), _largest(step_sizes), step_sizes)


def _largest(step_sizes: Sequence[int]) -> int:
    """The largest intermediate: every step's result but the last, which is the product itself
    (allocated, and held to the limit, by the caller)."""
    return max(step_sizes[:-1], default=0)


def _searched(inputs: tuple[frozenset, ...], output: frozenset, sizes: Mapping[int, int]) -> _Searched:
    key = (inputs, output, tuple(sorted(sizes.items())))
    with _memo_lock:
        found = _memo.get(key)
    if found is not None:
        return found
    found = _search(inputs, output, sizes)
    with _memo_lock:
        _counter["searches"] += 1
        if len(_memo) >= _MEMO_SIZE:
            _memo.pop(next(iter(_memo)))
        _memo[key] = found
    return found


# ---------------------------------------------------------------- slicing

def _chunked(sizes: Mapping[int, int], chunks: Mapping[int, int]) -> tuple[dict[int, int], int]:
    """Index sizes within one chunk, and the number of chunks, for ``chunks`` pieces of each sliced index."""
    within = dict(sizes)
    count = 1
    for i, pieces in chunks.items():
        within[i] = -(-sizes[i] // pieces)
        count *= -(-sizes[i] // within[i])
    return within, count


def _excess(step_sizes: Sequence[int], limit: int) -> float:
    return sum(math.log(s / limit) for s in step_sizes if s > limit)


def slice_indices(inputs: Sequence[frozenset], output: frozenset, path: Sequence[Sequence[int]],
                  sizes: Mapping[int, int], limit: int, max_slices: int = MAX_SLICES) -> dict[int, int] | None:
    """Chunk sizes of the indices to slice so that every intermediate of ``path`` has at most
    ``limit`` elements, or None when that takes more than ``max_slices`` chunks.

    Greedy: each round halves the chunk of one index of an over-limit
    intermediate — the one that removes the most excess (log of size over
    the limit, summed over the intermediates) per unit of cost: the loop's
    FLOPs plus :data:`STEP_OVERHEAD_FLOPS` per step of every chunk.

    >>> trace = [frozenset({0, 1}), frozenset({1, 2}), frozenset({2, 0})]
    >>> slice_indices(trace, frozenset(), [(0, 1), (0, 1)], {0: 4, 1: 8, 2: 8}, 100)     # AB[i,k]: 32 elements
    {}
    >>> slice_indices(trace, frozenset(), [(0, 1), (0, 1)], {0: 4, 1: 8, 2: 8}, 8)
    {0: 1}
    """
    chunks: dict[int, int] = {}
    flops, step_sizes, step_indices = path_cost(inputs, output, path, sizes)
    while _largest(step_sizes) > limit:
        over = set().union(*(idx for idx, s in zip(step_indices[:-1], step_sizes[:-1]) if s > limit))
        before = _excess(step_sizes[:-1], limit)
        best = None
        for i in sorted(over):
            pieces = min(chunks.get(i, 1) * 2, sizes[i])
            if pieces == chunks.get(i, 1):
                continue
            trial = {**chunks, i: pieces}
            within, count = _chunked(sizes, trial)
            if count > max_slices:
                continue
            f, s, idx = path_cost(inputs, output, path, within)
            gain = before - _excess(s[:-1], limit)
            if gain <= 0:
                continue
            score = gain / ((f + STEP_OVERHEAD_FLOPS * len(path)) * count)
            if best is None or score > best[0]:
                best = (score, trial, f * count, s, idx)
        if best is None:
            return None
        _, chunks, flops, step_sizes, step_indices = best
    within, _ = _chunked(sizes, chunks)
    return {i: within[i] for i in sorted(chunks) if within[i] < sizes[i]}


def plan_contraction(sublists: Sequence[Sequence[int]], out: Sequence[int], sizes: Mapping[int, int],
                     limit: int) -> ContractionPlan:
    """The contraction order of a product (see the module docstring), sliced when its largest
    intermediate is over ``limit`` elements; :class:`NoSlicingFits` when no slicing fits.

    >>> plan_contraction([[0, 1], [1, 2]], [0, 2], {0: 2, 1: 3, 2: 4}, 100).flops   # a multiply and an add each
    48
    """
    inputs = tuple(frozenset(s) for s in sublists)
    output = frozenset(out)
    sizes = {i: int(sizes[i]) for i in set().union(*inputs, output)}
    key_limit = max(int(limit), 1)
    found = _searched(inputs, output, sizes)
    if found.largest <= key_limit:
        return ContractionPlan(found.path, found.flops, found.largest, found.flops, found.largest)
    best = ContractionPlan(found.path, found.flops, found.largest, found.flops, found.largest)
    chunks = _sliced(inputs, output, found.path, sizes, key_limit)
    if chunks is None:
        _, step_sizes, step_indices = path_cost(inputs, output, found.path, sizes)
        step = max(range(len(step_sizes) - 1), key=lambda k: step_sizes[k])
        raise NoSlicingFits(best, step, step_indices[step])
    within, count = _chunked(sizes, {i: -(-sizes[i] // c) for i, c in chunks})
    flops, step_sizes, _ = path_cost(inputs, output, found.path, within)
    return ContractionPlan(found.path, max(int(flops), 1) * count, _largest(step_sizes), found.flops,
                           found.largest, chunks, count)


def _sliced(inputs, output, path, sizes, limit) -> tuple[tuple[int, int], ...] | None:
    return _sliced_memo(inputs, output, path, tuple(sorted(sizes.items())), limit)


@functools.lru_cache(maxsize=1024)
def _sliced_memo(inputs, output, path, sizes_items, limit) -> tuple[tuple[int, int], ...] | None:
    chunks = slice_indices(inputs, output, path, dict(sizes_items), limit)
    return None if chunks is None else tuple(chunks.items())


caching.register(f"{__name__}.searches", clear_cache, cache_info)
