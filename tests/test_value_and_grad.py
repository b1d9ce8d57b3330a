"""value_and_grad: one plan, whose forward values serve both the value and the gradient."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from einderiv.numeric import evaluation

NETWORK = """
H[n,h] = X[n,d] W1[d,h] + b1[h]
A[n,h] = relu(H[n,h])
Z[n,c] = A[n,h] W2[h,c]
L = (Z[n,c] - T[n,c])^2 / 2
"""


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    return {"X": rng.standard_normal((4, 3)), "W1": rng.standard_normal((3, 5)), "b1": rng.standard_normal(5),
            "W2": rng.standard_normal((5, 2)), "T": rng.standard_normal((4, 2))}


def test_value_and_gradient_come_from_one_plan(inputs):
    evaluation.clear_cache()
    value, grads = einderiv.value_and_grad(NETWORK, ["W1", "b1", "W2"], inputs)
    assert einderiv.cache_info()["misses"] == 1
    assert value == pytest.approx(float(einderiv.evaluate(NETWORK, inputs)), rel=1e-14)
    for name, g in grads.items():
        np.testing.assert_allclose(g, einderiv.grad(NETWORK, name, inputs), rtol=1e-14)


@pytest.mark.parametrize("program, wrt, given, expected", [
    ("L = x[i] x[i]", "x", {"x": [3.0]}, (9.0, [6.0])),
    ("L = 2 s", "s", {"s": 3.0}, (6.0, 2.0)),
    ("L = A[i,j] B[j,k] C[k,i]", "A", {"A": np.ones((2, 2)), "B": np.ones((2, 2)), "C": np.ones((2, 2))},
     (8.0, [[2.0, 2.0], [2.0, 2.0]])),
])
def test_value_and_grad_of_small_programs(program, wrt, given, expected):
    value, g = einderiv.value_and_grad(program, wrt, given)
    assert value == expected[0]
    np.testing.assert_array_equal(g, expected[1])


def test_value_and_grad_refuses_a_tensor_output():
    with pytest.raises(einderiv.ShapeError, match="value_and_grad needs a scalar output"):
        einderiv.value_and_grad("y[i] = x[i]", "x", {"x": [1.0]})
