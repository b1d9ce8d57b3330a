"""Hessians and Hessian–vector products: closed forms, finite differences of the
gradient, and the symbolic index form. Each test is headed by what it checks.

Layout: ``hessian(p, W, …, wrt2=V)`` has shape ``shape(W) + shape(V)``.
"""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from einderiv.numeric.hessian import hessian, hvp, symbolic_hessian
from helpers import assert_close, numeric_jacobian, random_array

QUADRATIC = "L = x[i] A[i,j] x[j]"
LEAST_SQUARES = "r[i] = A[i,j] x[j] - b[i]\nL = r[i]^2"
FROBENIUS = "R[n,j] = X[n,i] W[i,j] - Y[n,j]; L = R[n,j]^2"
LOGISTIC = "z[n] = X[n,d] w[d]\nL = sum[n](log(1 + exp(-y[n] z[n])))"
LOG_SUM_EXP = "s = sum[i](exp(x[i])); L = log(s)"
TANH_NET = """H0[n,h] = X[n,d] W1[d,h]
H1[n,h] = H0[n,h] + b1[h]
H2[n,h] = tanh(H1[n,h])
H3[n,c] = H2[n,h] W2[h,c]
L = (H3[n,c] - T[n,c])^2 / (2 N)"""
RELU_NET = TANH_NET.replace("tanh(H1[n,h])", "relu(H1[n,h])")


@pytest.fixture
def rng():
    return np.random.default_rng(5)


def fd_hessian(program, wrt, inputs, wrt2=None, **kw):
    """Central differences of einderiv.grad: d/d wrt2 of the gradient of wrt."""
    wrt2 = wrt if wrt2 is None else wrt2

    def gradient(value):
        return einderiv.grad(program, wrt, {**inputs, wrt2: value}, **kw)

    return numeric_jacobian(gradient, inputs[wrt2])


def sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


def tanh_inputs(rng):
    return {"X": random_array(rng, (4, 3)), "W1": random_array(rng, (3, 5)), "b1": random_array(rng, (5,)),
            "W2": random_array(rng, (5, 2)), "T": random_array(rng, (4, 2)), "N": np.float64(4.0)}


# ---------------------------------------------------------------------------
# closed forms
# ---------------------------------------------------------------------------

# d²(xᵀAx)/dx² = A + Aᵀ
def test_quadratic_form_is_A_plus_A_transposed(rng):
    A, x = random_array(rng, (4, 4)), random_array(rng, (4,))
    assert_close(hessian(QUADRATIC, "x", {"A": A, "x": x}), A + A.T)


# d²‖Ax − b‖²/dx² = 2AᵀA
def test_least_squares_is_two_AtA(rng):
    A, x, b = random_array(rng, (5, 3)), random_array(rng, (3,)), random_array(rng, (5,))
    assert_close(hessian(LEAST_SQUARES, "x", {"A": A, "x": x, "b": b}), 2 * A.T @ A)


# d²‖XW − Y‖²_F / dW[a,b] dW[c,d] = 2 (XᵀX)[a,c] δ[b,d]: zero off the (b = d) diagonal
def test_frobenius_is_two_XtX_on_the_diagonal_view(rng):
    X, W, Y = random_array(rng, (6, 3)), random_array(rng, (3, 2)), random_array(rng, (6, 2))
    H = hessian(FROBENIUS, "W", {"X": X, "W": W, "Y": Y})
    expected = np.zeros((3, 2, 3, 2))
    np.einsum("abcb->acb", expected)[...] = (2 * X.T @ X)[:, :, None]
    assert_close(H, expected)
    assert H.shape == (3, 2, 3, 2)


# logistic loss Σ log(1 + exp(−y z)), z = Xw, y ∈ {±1}: H = Xᵀ diag(σ(z)(1 − σ(z))) X
def test_logistic_regression_is_XT_diag_X(rng):
    X, w = random_array(rng, (7, 3)), random_array(rng, (3,))
    y = np.where(rng.uniform(size=7) > 0.5, 1.0, -1.0)
    s = sigmoid(X @ w)
    H = hessian(LOGISTIC, "w", {"X": X, "w": w, "y": y})
    assert_close(H, X.T @ np.diag(s * (1 - s)) @ X)


# the same program written as the language page writes it (the trap warning fires, the meaning is the same)
def test_logistic_regression_unwrapped_warns_and_agrees(rng):
    X, w, y = random_array(rng, (5, 2)), random_array(rng, (2,)), np.array([1.0, -1.0, 1.0, 1.0, -1.0])
    with pytest.warns(einderiv.EinderivWarning, match="index 'n' is summed over the whole term"):
        program = einderiv.parse("z[n] = X[n,d] w[d]\nL = log(1 + exp(-y[n] z[n]))")
    assert_close(hessian(program, "w", {"X": X, "w": w, "y": y}), hessian(LOGISTIC, "w", {"X": X, "w": w, "y": y}))


# log Σ exp(x): H = diag(p) − p pᵀ with p = softmax(x)
def test_log_sum_exp_is_diag_p_minus_ppT(rng):
    x = random_array(rng, (5,))
    p = np.exp(x) / np.exp(x).sum()
    assert_close(hessian(LOG_SUM_EXP, "x", {"x": x}), np.diag(p) - np.outer(p, p))


# xᵀx · y: d²/dx² = 2y I and d²/dx dy = 2x (a mixed block with a scalar)
def test_mixed_block_with_a_scalar():
    x, y = np.array([1.0, -2.0]), 3.0
    program = "L = x[i] x[i] y"
    assert_close(hessian(program, "x", {"x": x, "y": y}), 6 * np.eye(2))
    assert_close(hessian(program, "x", {"x": x, "y": y}, wrt2="y"), 2 * x)
    assert_close(hessian(program, "y", {"x": x, "y": y}), np.float64(0.0))


# ---------------------------------------------------------------------------
# finite differences of the gradient
# ---------------------------------------------------------------------------

# every block of the tanh network's Hessian matches central differences of grad
@pytest.mark.parametrize("wrt,wrt2", [("W1", "W1"), ("W1", "b1"), ("b1", "W2"), ("W2", "W2"), ("W2", "X")])
def test_tanh_network_blocks_match_finite_differences(rng, wrt, wrt2):
    inputs = tanh_inputs(rng)
    H = hessian(TANH_NET, wrt, inputs, wrt2=wrt2)
    assert H.shape == inputs[wrt].shape + inputs[wrt2].shape
    assert_close(H, fd_hessian(TANH_NET, wrt, inputs, wrt2), rtol=1e-5, atol=1e-7)


# mixed blocks are transposes of each other: d²L/dW1 db1 = (d²L/db1 dW1)ᵀ
def test_mixed_blocks_are_transposes(rng):
    inputs = tanh_inputs(rng)
    H12 = hessian(TANH_NET, "W1", inputs, wrt2="b1")
    H21 = hessian(TANH_NET, "b1", inputs, wrt2="W1")
    assert_close(H12, np.moveaxis(H21, 0, -1))


# a ReLU network away from its kinks: the second derivative of relu is 0, so only
# the paths through W2 remain; the W1 block matches finite differences
@pytest.mark.parametrize("wrt,wrt2", [("W1", "W1"), ("W1", "W2")])
def test_relu_network_matches_finite_differences(rng, wrt, wrt2):
    inputs = tanh_inputs(rng)
    H1 = inputs["X"] @ inputs["W1"] + inputs["b1"]
    assert np.abs(H1).min() > 1e-3, "inputs too close to a kink"
    assert_close(hessian(RELU_NET, wrt, inputs, wrt2=wrt2), fd_hessian(RELU_NET, wrt, inputs, wrt2))


# the Hessian of a scalar input's program with respect to an unused input is zero, of the right shape
def test_unused_input_gives_a_zero_block(rng):
    inputs = {"x": random_array(rng, (3,)), "c": random_array(rng, (2,))}
    program = "L = x[i] x[i] + c[k]"
    H = hessian(program, "x", inputs, wrt2="c")
    assert H.shape == (3, 2)
    assert not H.any()


# float32 inputs give a float32 Hessian
def test_float32_is_kept(rng):
    A, x = random_array(rng, (3, 3)).astype(np.float32), random_array(rng, (3,)).astype(np.float32)
    H = hessian(QUADRATIC, "x", {"A": A, "x": x})
    assert H.dtype == np.float32
    assert_close(H, (A + A.T).astype(np.float64), rtol=1e-6)


# ---------------------------------------------------------------------------
# Hessian–vector products
# ---------------------------------------------------------------------------

# hvp(v) = H · v, contracted over wrt's axes
@pytest.mark.parametrize("program,wrt,shapes", [
    (QUADRATIC, "x", {"A": (4, 4), "x": (4,)}),
    (FROBENIUS, "W", {"X": (6, 3), "W": (3, 2), "Y": (6, 2)}),
    (LOG_SUM_EXP, "x", {"x": (5,)}),
])
def test_hvp_is_hessian_times_vector(rng, program, wrt, shapes):
    inputs = {n: random_array(rng, s) for n, s in shapes.items()}
    v = random_array(rng, shapes[wrt])
    H = hessian(program, wrt, inputs)
    assert_close(hvp(program, wrt, inputs, v), np.tensordot(H, v, axes=v.ndim))


# a mapping of tangents gives Σ_V (d²L/dW dV) v_V
def test_hvp_with_several_tangents(rng):
    inputs = tanh_inputs(rng)
    v1, v2 = random_array(rng, (3, 5)), random_array(rng, (5,))
    expected = np.tensordot(hessian(TANH_NET, "W1", inputs), v1, axes=2) + \
        np.tensordot(hessian(TANH_NET, "W1", inputs, wrt2="b1"), v2, axes=1)
    assert_close(hvp(TANH_NET, "W1", inputs, {"W1": v1, "b1": v2}), expected)


# ---------------------------------------------------------------------------
# symbolic form
# ---------------------------------------------------------------------------

# d²(xᵀAx)/dx[a]dx[b] = A[a,b] + A[b,a]
def test_symbolic_quadratic_form():
    assert str(symbolic_hessian(QUADRATIC, "x")) == "d²L/dx[a]dx[b] = A[a,b] + A[b,a]"


# ‖XW − Y‖²_F: the 2 (XᵀX) ⊗ I structure is a delta, not a dense tensor
def test_symbolic_frobenius_keeps_the_delta():
    h = symbolic_hessian(FROBENIUS, "W")
    assert str(h) == "d²L/dW[a,b]dW[c,d] = 2 X[n,a] X[n,c] δ[b,d]"
    assert h.to_text(ascii=True) == "d2L/dW[a,b]dW[c,d] = 2 X[n,a] X[n,c] delta(b,d)"


# d²(xᵀx)/dx[a]dx[b] = 2 δ[a,b]; the mixed block of x·x·y is 2 x[a]
def test_symbolic_small_cases():
    assert str(symbolic_hessian("L = x[i] x[i]", "x")) == "d²L/dx[a]dx[b] = 2 δ[a,b]"
    assert str(symbolic_hessian("L = x[i] x[i] y", "x", "y")) == "d²L/dx[a]dy = 2 x[a]"


# log-sum-exp: diag(softmax) appears as a delta
def test_symbolic_log_sum_exp():
    assert str(symbolic_hessian(LOG_SUM_EXP, "x")) == \
        "d²L/dx[a]dx[b] = (δ[a,b] / s - exp(x[b]) / s^2) exp(x[a])"


# step functions differentiate to zero: a sum of ReLUs of a linear map has a zero Hessian
def test_symbolic_relu_is_zero():
    assert str(symbolic_hessian("H[n,h] = X[n,d] W[d,h]; L = sum[n,h](relu(H[n,h]))", "W")) == \
        "d²L/dW[a,b]dW[c,d] = 0"


# deep programs keep named intermediates, each line readable
def test_symbolic_tanh_network_has_a_chain():
    text = str(symbolic_hessian(TANH_NET, "W2", "W1"))
    assert text.splitlines()[-1] == "d²L/dW2[a,b]dW1[c,d] = d(dL/dW2)/dH1[a,b,n,d] X[n,c]"
    assert text.startswith("d(dL/dW2)/dH1[a,b,n,h] = ")


# the printed form is deterministic (no dependence on hashing)
def test_symbolic_output_is_stable():
    assert str(symbolic_hessian(TANH_NET, "W1")) == str(symbolic_hessian(einderiv.parse(TANH_NET), "W1"))


# ---------------------------------------------------------------------------
# plans, limits and errors
# ---------------------------------------------------------------------------

# a second call with same-shaped arrays reuses the plan
def test_plan_is_cached(rng):
    inputs = {"A": random_array(rng, (3, 3)), "x": random_array(rng, (3,))}
    hessian(QUADRATIC, "x", inputs)
    before = einderiv.cache_info()["hits"]
    hessian(QUADRATIC, "x", {k: v + 1 for k, v in inputs.items()})
    assert einderiv.cache_info()["hits"] == before + 1


def test_memory_limit_names_the_hessian(rng):
    inputs = {"X": random_array(rng, (6, 3)), "W": random_array(rng, (3, 2)), "Y": random_array(rng, (6, 2))}
    with pytest.raises(einderiv.MemoryLimitError, match=r"the Hessian d²L/dWdW would have shape \(3, 2, 3, 2\)"):
        hessian(FROBENIUS, "W", inputs, memory_limit=64)


def test_non_scalar_output_is_refused(rng):
    with pytest.raises(einderiv.ShapeError, match="second derivatives need a scalar output, but 'r' has 1 index"):
        hessian(LEAST_SQUARES, "x", {"A": np.eye(2), "x": np.ones(2), "b": np.ones(2)}, of="r")


def test_statement_as_wrt_is_refused():
    with pytest.raises(einderiv.ProgramError, match="'r' is defined by a statement"):
        symbolic_hessian(LEAST_SQUARES, "r")


def test_unknown_wrt2_is_refused():
    with pytest.raises(einderiv.ProgramError, match="'q' is not a tensor of this program"):
        hessian(QUADRATIC, "x", {"A": np.eye(2), "x": np.ones(2)}, wrt2="q")


def test_hvp_vector_shape_is_checked():
    with pytest.raises(einderiv.ShapeError, match=r"the vector for 'x' has shape \(3,\) but 'x' has shape \(2,\)"):
        hvp(QUADRATIC, "x", {"A": np.eye(2), "x": np.ones(2)}, np.ones(3))
