"""Buffers, views and ownership: cases that once failed.

A statement that renames, transposes or takes the diagonal of another one may
share its buffer; a plan may overwrite a buffer only when no live value reads it,
one returned gradient may never be another's buffer, and nothing returned is an
input or a view of one.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import einderiv

RENAMED = """
A[i] = x[i] y[i]
B[i] = A[i]
C[i] = A[i] + z[i]
L = B[i] C[i]
"""


def _numeric_grad(program: str, wrt: str, inputs: dict[str, np.ndarray], h: float = 1e-6) -> np.ndarray:
    x = inputs[wrt]
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += h
        minus[idx] -= h
        out[idx] = (einderiv.evaluate(program, {**inputs, wrt: plus})
                    - einderiv.evaluate(program, {**inputs, wrt: minus})) / (2 * h)
    return out


def test_a_renamed_intermediate_is_not_overwritten_while_its_alias_is_read():
    # L = A·(A + z) with A = x⊙y: dL/dx = y⊙(2A + z)
    x, y, z = np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([5.0, 6.0])
    assert einderiv.grad(RENAMED, "x", {"x": x, "y": y, "z": z}).tolist() == [33.0, 88.0]


@pytest.mark.parametrize("program", [
    "A[i] = x[i] y[i]\nB[i] = A[i]\nC[i] = A[i] w[i]\nL = B[i] C[i]",
    "A[i,j] = x[i,j] y[i,j]\nB[j,i] = A[i,j]\nC[i,j] = A[i,j] w[i,j]\nL = B[j,i] C[i,j]",
    "A[i,j] = x[i,j] y[i,j]\nB[j,i] = A[i,j]\nC[i,j] = A[i,j] + w[i,j]\nL = B[j,i] C[i,j]",
    "A[i,j] = x[i,j] y[i,j]\nd[i] = A[i,i]\nC[i,j] = A[i,j] w[i,j]\nL = d[i] C[i,i]",
    "A[i,j] = x[i,j] y[i,j]\nd[i] = A[i,i]\nC[i,j] = A[i,j] + w[i,j]\nL = d[i] C[i,i] + d[i] d[i]",
    "A[i,j] = x[i,j] y[i,j]\nB[j,i] = A[i,j]\nD[i,j] = B[i,j]\nC[i,j] = A[i,j] D[i,j]\nL = C[i,j] B[i,j]",
])
def test_views_of_intermediates_give_the_finite_difference_gradient(program):
    rng = np.random.default_rng(0)
    shape = (3,) if "x[i]" in program else (3, 3)
    inputs = {n: rng.uniform(0.5, 1.5, shape) for n in ("x", "y", "w")}
    inputs = {n: a for n, a in inputs.items() if f"{n}[" in program}
    for name in inputs:
        got = einderiv.grad(program, name, inputs)
        np.testing.assert_allclose(got, _numeric_grad(program, name, inputs), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("order", list(itertools.permutations(["q", "y", "x"])))
def test_one_returned_gradient_never_overwrites_another(order):
    program = "s[i] = x[i] w[i]; L = s[i] q[i] + s[i] y[i] + y[i] y[i]"
    inputs = {"x": np.array([1.0, 2.0]), "w": np.array([1.0, 1.0]), "q": np.array([0.0, 0.0]),
              "y": np.array([3.0, 4.0])}
    expected = {"q": [1.0, 2.0], "y": [7.0, 10.0], "x": [3.0, 4.0]}
    got = einderiv.grad(program, list(order), inputs)
    assert {n: g.tolist() for n, g in got.items()} == expected
    for a, b in itertools.combinations(got.values(), 2):
        assert not np.shares_memory(a, b)


def _assert_owned(result, inputs):
    results = list(result.values()) if isinstance(result, dict) else [result]
    for r in results:
        for x in inputs:
            assert not np.shares_memory(r, x)


@pytest.mark.parametrize("program", ["z[i] = x[i]", "d[i] = A[i,i]", "B[j,i] = A[i,j]", "y[i] = x[i]; z[i] = y[i]"])
def test_evaluate_never_returns_an_input_or_a_view_of_one(program):
    inputs = {"x": np.arange(3.0), "A": np.arange(9.0).reshape(3, 3)}
    used = {n: a for n, a in inputs.items() if f"{n}[" in program}
    before = {n: a.copy() for n, a in used.items()}
    out = einderiv.evaluate(program, used)
    _assert_owned(out, used.values())
    out[...] = -1.0
    for n in used:
        np.testing.assert_array_equal(used[n], before[n])


def test_an_input_asked_for_as_the_output_is_a_copy():
    x = np.arange(3.0)
    assert not np.shares_memory(einderiv.evaluate("y[i] = x[i]", {"x": x}, of="x"), x)


def test_gradients_never_return_an_input():
    x, y = np.arange(3.0), np.arange(3.0) + 1
    _assert_owned(einderiv.grad("L = x[i] y[i]", "x", {"x": x, "y": y}), [x, y])
    _assert_owned(einderiv.grad("L = x[i] y[i]", ["x", "y"], {"x": x, "y": y}), [x, y])


def test_vjp_and_jvp_of_pass_through_programs_return_copies():
    x, g = np.arange(3.0), np.ones(3)
    _assert_owned(einderiv.vjp("z[i] = x[i]", "x", {"x": x}, g), [x, g])
    _assert_owned(einderiv.jvp("z[i] = x[i]", {"x": g}, {"x": x}), [x, g])
    _assert_owned(einderiv.jvp("z[i] = x[i]", {"x": g}, {"x": x}, of="x"), [x, g])
    _assert_owned(einderiv.vjp("B[j,i] = A[i,j]", "A", {"A": np.ones((2, 2))}, np.ones((2, 2))), [g])


def test_hessian_and_hvp_results_are_owned():
    x, v = np.arange(3.0), np.ones(3)
    _assert_owned(einderiv.hvp("L = x[i] x[i]", "x", {"x": x}, {"x": v}), [x, v])
