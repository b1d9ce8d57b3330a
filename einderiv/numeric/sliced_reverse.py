"""Reverse mode through a sliced product: every operand's adjoint from one loop over the slices.

When a product's contraction must be sliced to fit the memory limit, its
statement keeps the sliced part as one product ``L = R1 R2 … Rk`` (see
:func:`einderiv.numeric.planning.product_path`), and the adjoint of each
operand, ``gRj = gL · Π_{i≠j} Ri``, is a product of its own: k sliced
contractions, each a loop over chunks, nothing shared.

Here those k adjoints are computed together. The *closed network* (the
cotangent and every operand, every index summed) is planned once and sliced
once; for each chunk, the operands' views are contracted along the path keeping
the intermediates, then the same tree is walked backwards (each node's
cotangent is one contraction of its parent's cotangent with its sibling), and
every leaf's cotangent is added into its block of that operand's adjoint. The
whole loop costs about three times one chunked contraction, instead of k.

A :class:`Group` is registered when a statement is lowered (one per product
that stayed sliced); an adjoint product that is that closed network less one
operand (:meth:`Group.member`) then reads its value from the group, which runs
its loop at most once per plan run and keeps the adjoints in the run's
environment until each is taken. Anything that does not match exactly (a
repeated tensor, a diagonal, a factor that is not a tensor, another library
than numpy) keeps its own sliced contraction.

>>> import numpy as np
>>> g = Group.of("L", ("gL", ("i", "l")), [("A", ("i", "j")), ("B", ("j", "k")), ("C", ("k", "l"))], lambda i: 3, 10)
>>> g.member([("gL", ("a", "b")), ("A", ("a", "j")), ("B", ("j", "k"))], ("b", "k"))    # C's adjoint, renamed
('C', (1, 0))
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import opt_einsum

from einderiv.numeric import paths

__all__ = ["Group"]

#: np.einsum names axes with letters: a closed network over more indices keeps its separate products.
LETTERS = 52


@dataclass
class Group:
    """The closed network of one sliced product: its operands by name with their indices, and,
    once an adjoint product matched it, the plan of its loop (built at the first match)."""

    key: str                                   # where a run keeps the adjoints not yet taken
    cotangent: tuple[str, tuple[str, ...]]     # the adjoint of the statement, over its indices
    operands: dict[str, tuple[str, ...]]       # the product's tensors by name
    size: Callable[[str], int]
    limit: int                                 # elements: the memory limit
    with_cotangent: bool | None = None         # fixed by the first member: whether the cotangent is a factor
    members: set[str] = field(default_factory=set)
    _loop: Callable[[Mapping[str, Any]], dict[str, np.ndarray]] | None = None

    @staticmethod
    def of(key: str, cotangent: tuple[str, tuple[str, ...]], refs: Sequence[tuple[str, tuple[str, ...]]],
           size: Callable[[str], int], limit: int) -> "Group | None":
        """The group of the product ``refs`` whose cotangent is ``cotangent`` (name, indices), its adjoints
        kept under ``key`` in a run's environment; None when a tensor repeats or takes a diagonal (its
        adjoints are not one leaf's cotangent each), or when the network has more indices than einsum
        has letters."""
        names = [name for name, _ in refs]
        if len(set(names)) != len(names) or any(len(set(idx)) != len(idx) for _, idx in refs):
            return None
        indices = set(cotangent[1]).union(*(set(idx) for _, idx in refs))
        if len(indices) > LETTERS:      # einsum names each index with a letter
            return None
        return Group(key, cotangent, dict(refs), size, limit)

    def member(self, operands: Sequence[tuple[str, tuple[str, ...]]], out: tuple[str, ...]
               ) -> tuple[str, tuple[int, ...]] | None:
        """(the operand whose adjoint this product is, the axes order taking that adjoint to ``out``),
        when ``operands`` summed to ``out`` is the closed network less that one operand; else None."""
        names = [name for name, _ in operands]
        if len(set(names)) != len(names):
            return None
        cotangent_name, cotangent_indices = self.cotangent
        has_cotangent = cotangent_name in names
        if self.with_cotangent is not None and has_cotangent != self.with_cotangent:
            return None
        own = {**self.operands, **({cotangent_name: cotangent_indices} if has_cotangent else {})}
        missing = [name for name in self.operands if name not in names]
        if len(missing) != 1 or any(name not in own for name in names):
            return None
        (leaf,) = missing
        rename: dict[str, str] = {}
        for name, indices in operands:
            theirs = own[name]
            if len(theirs) != len(indices):
                return None
            for mine, their in zip(indices, theirs):
                if rename.setdefault(mine, their) != their:
                    return None
        if len(set(rename.values())) != len(rename):
            return None
        target = self.operands[leaf]
        if len(out) != len(target) or any(i not in rename for i in out):
            return None
        mapped = [rename[i] for i in out]
        if sorted(mapped) != sorted(target):
            return None
        self.with_cotangent = has_cotangent
        return leaf, tuple(target.index(i) for i in mapped)

    def runner(self, leaf: str, perm: tuple[int, ...], fallback: Callable) -> Callable:
        """The adjoint of ``leaf`` (its axes in ``perm`` order), from the group's loop (run at most once
        per plan run); ``fallback`` (the product's own sliced contraction) where the group cannot serve."""
        self.members.add(leaf)
        identity = perm == tuple(range(len(perm)))
        key = self.key

        def adjoint(env):
            if len(self.members) < 2:             # one adjoint: its own contraction is cheaper than the loop
                return fallback(env)
            taken = env.get(key)
            if taken is None:
                taken = env[key] = self._run(env)
            value = taken.pop(leaf, None)
            if value is None:                     # taken already (the same product twice): compute it again
                return fallback(env)
            return value if identity else value.transpose(perm)
        return adjoint

    def _run(self, env: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if self._loop is None:
            self._loop = _compile_loop(self)
        return self._loop(env)


def _compile_loop(group: Group) -> Callable[[Mapping[str, Any]], dict[str, np.ndarray]]:
    """The loop over chunks: forward along the closed network's order, backward to every member."""
    leaves = list(group.operands.items())
    if group.with_cotangent:
        leaves.append(group.cotangent)
    ids: dict[str, int] = {}
    for _, indices in leaves:
        for i in indices:
            ids.setdefault(i, len(ids))
    sublists = [[ids[i] for i in indices] for _, indices in leaves]
    sizes = {ids[i]: group.size(i) for i in ids}
    plan = paths.plan_contraction(sublists, [], sizes, group.limit)
    tree = _tree(sublists, plan.path)
    chunk = dict(plan.sliced)
    ranges = {i: [slice(a, min(a + c, sizes[i])) for a in range(0, sizes[i], c)] for i, c in chunk.items()}
    wanted = [k for k, (name, _) in enumerate(leaves) if name in group.members]
    names = [name for name, _ in leaves]
    shapes = [tuple(sizes[i] for i in sub) for sub in sublists]
    chunks = []
    steps_by_lengths: dict[tuple[int, ...], list] = {}
    for picks in itertools.product(*(ranges[i] for i in chunk)):
        pick = dict(zip(chunk, picks))
        lengths = tuple(p.stop - p.start for p in picks)
        if lengths not in steps_by_lengths:
            length = {**sizes, **dict(zip(chunk, lengths))}
            steps_by_lengths[lengths] = _compile_steps(tree, sublists, length, set(wanted))
        views = tuple(tuple(pick.get(i, slice(None)) for i in sub) for sub in sublists)
        chunks.append((steps_by_lengths[lengths], views))

    def loop(env: Mapping[str, Any]) -> dict[str, np.ndarray]:
        arrays = [env[name] for name in names]
        dtype = np.result_type(*arrays)
        adjoints = {k: np.zeros(shapes[k], dtype) for k in wanted}
        for (forward, backward), views in chunks:
            values: list[Any] = [a[v] for a, v in zip(arrays, views)]
            for make, parts in forward:
                values.append(make(*[values[p] for p in parts]))
            cotangents: dict[int, Any] = {len(values) - 1: np.ones((), dtype)}
            for node, part, make, others in backward:
                cotangents[part] = make(cotangents[node], *[values[o] for o in others])
            for k in wanted:
                adjoints[k][views[k]] += cotangents[k]
        return {names[k]: adjoints[k] for k in wanted}
    return loop


def _tree(sublists: Sequence[Sequence[int]], path: Sequence[Sequence[int]]) -> list[tuple[tuple[int, ...], list[int]]]:
    """The path as nodes: for each step, the nodes it reads and the indices it keeps (node ids:
    the leaves, then each step's result in order)."""
    current = list(range(len(sublists)))
    indices: list[list[int]] = [list(s) for s in sublists]
    nodes = []
    for positions in path:
        chosen = tuple(current[p] for p in positions)
        current = [c for p, c in enumerate(current) if p not in positions]
        later = set().union(*(indices[c] for c in current))
        kept = [i for i in dict.fromkeys(i for c in chosen for i in indices[c]) if i in later]
        nodes.append((chosen, kept))
        indices.append(kept)
        current.append(len(indices) - 1)
    return nodes


def _compile_steps(tree, sublists, sizes: Mapping[int, int], wanted: set[int]):
    """(forward steps, backward steps) for one chunk's lengths: each step an einsum of two (or one)
    operands with its optimal BLAS call found once (``opt_einsum.contract_expression``)."""
    indices: list[list[int]] = [list(s) for s in sublists]
    forward = []
    for chosen, kept in tree:
        forward.append((_expression([indices[c] for c in chosen], kept, sizes), chosen))
        indices.append(kept)
    # which nodes lead to a wanted leaf: only their cotangents are computed
    needed = set(wanted)
    for node, (chosen, _) in enumerate(tree, start=len(sublists)):
        if any(c in needed for c in chosen):
            needed.add(node)
    backward = []
    for node in range(len(indices) - 1, len(sublists) - 1, -1):
        if node not in needed:
            continue
        chosen, kept = tree[node - len(sublists)]
        for part in chosen:
            if part not in needed:
                continue
            others = [c for c in chosen if c != part]
            make = _expression([kept] + [indices[c] for c in others], indices[part], sizes)
            backward.append((node, part, make, others))
    return forward, backward


def _expression(operands: Sequence[Sequence[int]], out: Sequence[int], sizes: Mapping[int, int]) -> Callable:
    """Σ of the operands over ``out``; an index of ``out`` no operand has is broadcast (a cotangent
    is constant along an index its node summed alone)."""
    present = set().union(*map(set, operands))
    inner = [i for i in out if i in present]
    letters = {i: opt_einsum.get_symbol(k) for k, i in enumerate(dict.fromkeys([*itertools.chain(*operands), *out]))}
    shapes = [tuple(sizes[i] for i in sub) for sub in operands]
    equation = ",".join("".join(letters[i] for i in sub) for sub in operands) + "->" + "".join(letters[i] for i in inner)
    expression = opt_einsum.contract_expression(equation, *shapes, optimize="optimal")
    if len(inner) == len(out):
        return expression
    full = tuple(sizes[i] for i in out)
    at = tuple(slice(None) if i in present else None for i in out)

    def broadcast(*arrays):
        return np.broadcast_to(np.asarray(expression(*arrays))[at], full)
    return broadcast
