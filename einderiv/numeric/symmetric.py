"""Derivatives with respect to a matrix constrained to be symmetric (``symmetric=["S"]``).

For ``f`` of a symmetric matrix ``S``, the gradient is the element ``∇f`` of the
space of symmetric matrices with ``df = ⟨∇f, dS⟩ = Σ ∇f[a,b] dS[a,b]`` for every
symmetric ``dS`` (the Frobenius inner product restricted to that space). With
``G`` the unconstrained gradient (of the program as written, at the symmetric
point), ``⟨G, dS⟩ = ⟨sym(G), dS⟩`` for symmetric ``dS`` and ``sym(G)`` is
symmetric, so

    ∇f = sym(G) = (G + Gᵀ) / 2.

It does not depend on how the program extends ``f`` off the symmetric matrices
(``x[i] S[i,j] x[j]`` and ``x[i] S[j,i] x[j]`` give the same ``sym(G)``), which
is what makes it *the* gradient. The textbook formula ``G + Gᵀ − G∘I`` holds the
partial derivatives with respect to the ``n(n+1)/2`` independent entries
``S[i,j], i ≤ j`` (each off-diagonal pair moved together), laid out as a matrix.
That is not a gradient for the Frobenius inner product the matrix lives in: for
a symmetric ``dS``, ``⟨G + Gᵀ − G∘I, dS⟩ = 2 df − Σᵢ G[i,i] dS[i,i] ≠ df``, so
it counts the off-diagonal directions twice, and a step along it is not
steepest descent (Srinivasan & Panda, 2020, "What is the gradient of a scalar
function of a symmetric matrix?").

The other derivatives follow: a Jacobian, VJP or Hessian is projected by ``sym`` on
each symmetric input's pair of axes (a Hessian on both sides, ``P H P``), and a
JVP or HVP uses the projection of the given tangent.

>>> import numpy as np
>>> G = np.array([[1.0, 2.0], [0.0, 3.0]])
>>> sym(G, 0).tolist()
[[1.0, 1.0], [1.0, 3.0]]
"""

from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np

from einderiv.errors import EinderivWarning, ProgramError, ShapeError
from einderiv.numeric.backend import by_name, kind_of

__all__ = ["sym", "symmetric_names", "check_inputs", "project_tangents"]


def sym(array: np.ndarray, axis: int) -> np.ndarray:
    """``(X + Xᵀ) / 2`` over the axes ``axis`` and ``axis + 1`` of ``array`` (of any array library)."""
    kind = kind_of(array)
    if kind is not None:
        return 0.5 * (array + by_name(kind, array).np.swapaxes(array, axis, axis + 1))
    array = np.asarray(array)
    return 0.5 * (array + np.swapaxes(array, axis, axis + 1))


def symmetric_names(program, symmetric: Sequence[str] | str | None) -> tuple[str, ...]:
    """The checked names: inputs of the program written with two indices."""
    if symmetric is None or (isinstance(symmetric, tuple) and not symmetric):
        return ()
    names = (symmetric,) if isinstance(symmetric, str) else tuple(symmetric) \
        if isinstance(symmetric, (list, tuple, set, frozenset)) else None
    if names is None or not all(isinstance(n, str) for n in names):
        raise ProgramError(f"symmetric must be an input name or a list of names, got {symmetric!r}")
    ranks = dict(program.inputs)
    for name in names:
        if name not in ranks:
            raise ProgramError(f"symmetric: '{name}' {program.not_an_input(name)}; inputs: {', '.join(ranks) or 'none'}")
        if ranks[name] != 2:
            raise ProgramError(f"symmetric: '{name}' is written with {ranks[name]} "
                               f"ind{'ex' if ranks[name] == 1 else 'ices'}; only a matrix can be symmetric")
    return tuple(sorted(set(names), key=names.index))


def check_inputs(names: Sequence[str], inputs: Mapping) -> None:
    """Square, and symmetric up to rounding (else an :class:`EinderivWarning`: the result is still projected)."""
    if not isinstance(inputs, Mapping):
        return      # the caller's own checks name the problem
    for name in names:
        if name not in inputs:
            continue
        if kind_of(inputs[name]) is not None:     # another library: its shape only (values may be lazy or traced)
            shape = tuple(inputs[name].shape)
            if len(shape) != 2 or shape[0] != shape[1]:
                raise ShapeError(f"symmetric: '{name}' must be a square matrix, but has shape {shape}")
            continue
        array = np.asarray(inputs[name], dtype=float)
        if array.ndim != 2 or array.shape[0] != array.shape[1]:
            raise ShapeError(f"symmetric: '{name}' must be a square matrix, but has shape {array.shape}")
        gap = float(np.max(np.abs(array - array.T))) if array.size else 0.0
        scale = float(np.max(np.abs(array))) if array.size else 0.0
        if gap > 1e-8 * max(scale, 1.0):
            warnings.warn(f"'{name}' is declared symmetric but is not: max |{name} - {name}ᵀ| = {gap:.3g}; "
                          f"the derivatives are still projected onto symmetric matrices", EinderivWarning,
                          stacklevel=3)


def project_tangents(names: Sequence[str], tangents: Mapping) -> dict:
    """Each symmetric input's tangent replaced by its symmetric part."""
    return {n: (sym(t if kind_of(t) is not None else np.asarray(t, dtype=float), 0) if n in names else t)
            for n, t in tangents.items()}


def project(result, wrts: Sequence[str], names: Sequence[str], leading: int):
    """``result`` (one array, or a dict by input name) with ``sym`` on each symmetric input's axes,
    which start after ``leading`` axes."""
    if not names:
        return result
    if isinstance(result, dict):
        return {w: (sym(v, leading) if w in names else v) for w, v in result.items()}
    (w,) = wrts
    return sym(result, leading) if w in names else result
