"""Shared numeric helpers for the einderiv tests (float64 throughout).

- ``numeric_jacobian``: central differences, laid out like einderiv's Jacobians
  (output axes first, then the input's).
- ``fd_jacobian``: the same, applied to ``einderiv.evaluate`` of a program.
- ``random_array`` / ``random_inputs``: reproducible random inputs.
- ``assert_close``: ``np.testing.assert_allclose`` with shape checking and a message.
"""

from __future__ import annotations

import numpy as np

import einderiv

RTOL = 1e-5
ATOL = 1e-6

#: The two-layer network of the README and the benchmarks, a statement per step.
TWO_LAYER = """\
H0[n,h] = X[n,d] W1[d,h]
H1[n,h] = H0[n,h] + b1[h]
H2[n,h] = max(0, H1[n,h])
H3[n,c] = H2[n,h] W2[h,c]
Z[n,c] = H3[n,c] + b2[c]
L = (Z[n,c] - T[n,c])^2 / (2 N)
"""


def numeric_jacobian(f, x, eps=1e-6):
    """Central-difference Jacobian of ``f`` at ``x``.

    ``f`` maps an array shaped like ``x`` to an array (or number). The result has
    shape ``np.shape(f(x)) + np.shape(x)``: output axes first, then the input's.
    """
    x = np.array(x, dtype=np.float64)
    y0 = np.asarray(f(x.copy()), dtype=np.float64)
    jac = np.zeros(y0.shape + x.shape, dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        xp = x.copy()
        xm = x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        fp = np.asarray(f(xp), dtype=np.float64)
        fm = np.asarray(f(xm), dtype=np.float64)
        jac[(Ellipsis,) + idx] = (fp - fm) / (2.0 * eps)
    return jac


def fd_jacobian(program, wrt, inputs, *, of=None, sizes=None, eps=1e-6):
    """Central-difference Jacobian of ``evaluate(program, ...)`` wrt input ``wrt``."""
    base = {k: (np.asarray(v, dtype=np.float64)) for k, v in inputs.items()}

    def f(x):
        args = dict(base)
        args[wrt] = x
        return einderiv.evaluate(program, args, of=of, sizes=sizes)

    return numeric_jacobian(f, base[wrt], eps=eps)


def random_array(rng, shape, low=-1.0, high=1.0):
    """A float64 array of the given shape, uniform in [low, high)."""
    return rng.uniform(low, high, size=shape).astype(np.float64)


def random_inputs(rng, shapes, low=-1.0, high=1.0):
    """Random float64 inputs: ``shapes`` maps names to shapes (``()`` for scalars)."""
    return {name: random_array(rng, shape, low, high) for name, shape in shapes.items()}


def assert_close(actual, expected, rtol=RTOL, atol=ATOL, msg=""):
    """Shapes must agree exactly; values to ``rtol``/``atol``."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (
        f"shape {actual.shape} != expected {expected.shape}. {msg}"
    )
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=msg)


def count_lines(call) -> int:
    """Lines of einderiv's own code that ``call()`` executes: a work count that, unlike
    wall time, does not depend on how loaded the machine is (a loop on one line counts
    once per pass, since every backward jump re-executes the line)."""
    import pathlib
    import sys

    package = str(pathlib.Path(einderiv.__file__).parent)
    count = 0

    def local(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(package) else None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(previous)
    return count


def mps_network(sites: int, bond: int = 3, physical: int = 2) -> tuple[str, dict[str, tuple[int, ...]]]:
    """⟨ψ|ψ⟩ of a matrix-product state as one statement, and its input shapes:
    ket A_k[a_k, p_k, a_k+1], bra B_k[b_k, p_k, b_k+1]."""
    factors, shapes = [], {}
    for k in range(sites):
        for ket, link in (("A", "a"), ("B", "b")):
            idx = ([f"{link}{k}"] if k else []) + [f"p{k}"] + ([f"{link}{k + 1}"] if k < sites - 1 else [])
            factors.append(f"{ket}{k}[{','.join(idx)}]")
            shapes[f"{ket}{k}"] = tuple(physical if i.startswith("p") else bond for i in idx)
    return "L = " + " ".join(factors), shapes
