"""Textbook identities of matrix calculus, each checked numerically and, where it
has one, against its closed form. Every test is headed by the identity it checks.

Jacobian layout (einderiv's contract): output axes first, then the input's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import einderiv
from helpers import assert_close, fd_jacobian, random_array


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


# ---------------------------------------------------------------------------
# C = A B with A 1×3, B 3×2
# ---------------------------------------------------------------------------

MATMUL_AB = "C[i,j] = A[i,k] B[k,j]"


def _ab_inputs():
    A = np.array([[1.5, -2.0, 3.25]])
    B = np.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]])
    return A, B


# dC[i,j]/dB[a,b] = A[i,a] δ[j,b]; as a row-major 2×6 matrix:
# [[a1, 0, a2, 0, a3, 0], [0, a1, 0, a2, 0, a3]]
def test_matmul_dC_dB_is_the_2x6_matrix():
    A, B = _ab_inputs()
    J = einderiv.jacobian(MATMUL_AB, "B", {"A": A, "B": B})
    assert J.shape == (1, 2, 3, 2)
    a1, a2, a3 = A[0]
    expected = np.array([[a1, 0, a2, 0, a3, 0], [0, a1, 0, a2, 0, a3]])
    assert_close(J.reshape(2, 6), expected)


# dC[i,j]/dA[a,b] = δ[i,a] B[b,j]; with A a single row, reshaped (2,3) it is Bᵀ
def test_matmul_dC_dA_is_B_transposed():
    A, B = _ab_inputs()
    J = einderiv.jacobian(MATMUL_AB, "A", {"A": A, "B": B})
    assert J.shape == (1, 2, 1, 3)
    assert_close(J.reshape(2, 3), B.T)


# dC/dA and dC/dB agree with central differences
@pytest.mark.parametrize("wrt", ["A", "B"])
def test_matmul_jacobians_match_finite_differences(wrt):
    A, B = _ab_inputs()
    inputs = {"A": A, "B": B}
    J = einderiv.jacobian(MATMUL_AB, wrt, inputs)
    assert_close(J, fd_jacobian(MATMUL_AB, wrt, inputs))


# C = A B evaluates to the matrix product
def test_matmul_value():
    A, B = _ab_inputs()
    assert_close(einderiv.evaluate(MATMUL_AB, {"A": A, "B": B}), A @ B)


# ---------------------------------------------------------------------------
# F = W X with W m×n, X n×p
# ---------------------------------------------------------------------------

MATMUL_WX = "F[i,k] = W[i,j] X[j,k]"
M, N, P = 2, 3, 4


def _wx_inputs(rng):
    return random_array(rng, (M, N)), random_array(rng, (N, P))


# dF[i,k]/dW[a,b] = δ[i,a] X[b,k]  (shape m×p×m×n)
def test_wx_jacobian_wrt_W_is_delta_times_X(rng):
    W, X = _wx_inputs(rng)
    J = einderiv.jacobian(MATMUL_WX, "W", {"W": W, "X": X})
    assert J.shape == (M, P, M, N)
    assert_close(J, np.einsum("ia,bk->ikab", np.eye(M), X))


# dF[i,k]/dX[a,b] = W[i,a] δ[k,b]  (shape m×p×n×p)
def test_wx_jacobian_wrt_X_is_W_times_delta(rng):
    W, X = _wx_inputs(rng)
    J = einderiv.jacobian(MATMUL_WX, "X", {"W": W, "X": X})
    assert J.shape == (M, P, N, P)
    assert_close(J, np.einsum("ia,kb->ikab", W, np.eye(P)))


# vec(F) = (Xᵀ ⊗ I_m) vec(W), vec column-major
def test_wx_column_major_flattening_is_kronecker(rng):
    W, X = _wx_inputs(rng)
    J = einderiv.jacobian(MATMUL_WX, "W", {"W": W, "X": X})
    kron = np.kron(X.T, np.eye(M))
    assert_close(J.transpose(1, 0, 3, 2).reshape(P * M, N * M), kron)
    assert_close(J.reshape(M * P, M * N, order="F"), kron)
    # and vec(F) really is kron @ vec(W)
    F = einderiv.evaluate(MATMUL_WX, {"W": W, "X": X})
    assert_close(F.reshape(-1, order="F"), kron @ W.reshape(-1, order="F"))


# dF/dW and dF/dX agree with central differences
@pytest.mark.parametrize("wrt", ["W", "X"])
def test_wx_jacobians_match_finite_differences(rng, wrt):
    W, X = _wx_inputs(rng)
    inputs = {"W": W, "X": X}
    assert_close(einderiv.jacobian(MATMUL_WX, wrt, inputs), fd_jacobian(MATMUL_WX, wrt, inputs))


# dL/dW = G Xᵀ for an upstream gradient G = dL/dF
def test_wx_vjp_wrt_W_is_G_Xt(rng):
    W, X = _wx_inputs(rng)
    G = random_array(rng, (M, P))
    got = einderiv.vjp(MATMUL_WX, "W", {"W": W, "X": X}, G)
    assert_close(got, G @ X.T)


# dL/dX = Wᵀ G for an upstream gradient G = dL/dF
def test_wx_vjp_wrt_X_is_Wt_G(rng):
    W, X = _wx_inputs(rng)
    G = random_array(rng, (M, P))
    got = einderiv.vjp(MATMUL_WX, "X", {"W": W, "X": X}, G)
    assert_close(got, W.T @ G)


# vjp with wrt as a list gives a dict of both
def test_wx_vjp_wrt_list_gives_dict(rng):
    W, X = _wx_inputs(rng)
    G = random_array(rng, (M, P))
    got = einderiv.vjp(MATMUL_WX, ["W", "X"], {"W": W, "X": X}, G)
    assert set(got) == {"W", "X"}
    assert_close(got["W"], G @ X.T)
    assert_close(got["X"], W.T @ G)


# dF = dW X + W dX (forward mode)
def test_wx_jvp_is_product_rule(rng):
    W, X = _wx_inputs(rng)
    dW = random_array(rng, (M, N))
    dX = random_array(rng, (N, P))
    got = einderiv.jvp(MATMUL_WX, {"W": dW, "X": dX}, {"W": W, "X": X})
    assert_close(got, dW @ X + W @ dX)
    only_w = einderiv.jvp(MATMUL_WX, {"W": dW}, {"W": W, "X": X})
    assert_close(only_w, dW @ X)


# dF[i,k]/dW[a,b] = δ[i,a] X[b,k];  dF[i,k]/dX[a,b] = W[i,a] δ[k,b]
def test_wx_derivative_strings():
    p = einderiv.parse(MATMUL_WX)
    assert str(p.derivative("W")) == "dF[i,k]/dW[a,b] = δ[i,a] X[b,k]"
    assert str(p.derivative("X")) == "dF[i,k]/dX[a,b] = W[i,a] δ[k,b]"


# ASCII form: δ[i,a] is written delta(i,a)
def test_wx_derivative_ascii_strings():
    p = einderiv.parse(MATMUL_WX)
    assert p.derivative("W").to_text(ascii=True) == "dF[i,k]/dW[a,b] = delta(i,a) X[b,k]"
    assert p.derivative("X").to_text(ascii=True) == "dF[i,k]/dX[a,b] = W[i,a] delta(k,b)"
    assert p.derivative("W", of="F").to_text(ascii=True) == "dF[i,k]/dW[a,b] = delta(i,a) X[b,k]"


# ---------------------------------------------------------------------------
# Y = X W + B with a row vector X; L = G·Y  ⇒  dL/dW = Xᵀ G
# ---------------------------------------------------------------------------

ROW_AFFINE = "Y[j] = X[i] W[i,j] + B[j]\nL = G[j] Y[j]\n"


# dL/dW = Xᵀ G (an outer product), dL/dB = G, dL/dX = W G
def test_row_vector_affine_gradients(rng):
    X = random_array(rng, (3,))
    W = random_array(rng, (3, 2))
    B = random_array(rng, (2,))
    G = random_array(rng, (2,))
    inputs = {"X": X, "W": W, "B": B, "G": G}
    assert_close(einderiv.grad(ROW_AFFINE, "W", inputs), np.outer(X, G))
    assert_close(einderiv.grad(ROW_AFFINE, "B", inputs), G)
    assert_close(einderiv.grad(ROW_AFFINE, "X", inputs), W @ G)
    assert_close(einderiv.evaluate(ROW_AFFINE, inputs), G @ (X @ W + B))
    assert_close(einderiv.evaluate(ROW_AFFINE, inputs, of="Y"), X @ W + B)


# dY[j]/dW[a,b] is a third-order tensor: shape (2, 3, 2), entries δ[j,b] X[a]
def test_row_vector_affine_dY_dW_is_third_order(rng):
    X = random_array(rng, (3,))
    W = random_array(rng, (3, 2))
    B = random_array(rng, (2,))
    G = random_array(rng, (2,))
    inputs = {"X": X, "W": W, "B": B, "G": G}
    J = einderiv.jacobian(ROW_AFFINE, "W", inputs, of="Y")
    assert J.shape == (2, 3, 2)
    assert_close(J, np.einsum("jb,a->jab", np.eye(2), X))
    assert_close(J, fd_jacobian(ROW_AFFINE, "W", inputs, of="Y"))


# a scalar output prints as dL/dW[a,b] = ...
def test_scalar_output_derivative_string_prefix():
    p = einderiv.parse(ROW_AFFINE)
    text = str(p.derivative("W"))
    assert text.startswith("dL/dW[a,b] = "), text
    assert p.derivative("W").to_text(ascii=True).startswith("dL/dW[a,b] = ")


# ---------------------------------------------------------------------------
# Two-layer ReLU network with a mean squared loss
# ---------------------------------------------------------------------------

TWO_LAYER = """
H0[n,h] = X[n,d] W1[d,h]
H1[n,h] = H0[n,h] + b1[h]
H2[n,h] = max(0, H1[n,h])
H3[n,c] = H2[n,h] W2[h,c]
Z[n,c] = H3[n,c] + b2[c]
L = (Z[n,c] - T[n,c])^2 / (2 N)
"""


def _two_layer_inputs(rng, n=4, d=3, h=5, c=2):
    for _ in range(1000):
        X = random_array(rng, (n, d))
        W1 = random_array(rng, (d, h))
        b1 = random_array(rng, (h,))
        H1 = X @ W1 + b1
        if np.min(np.abs(H1)) > 0.05:
            break
    else:  # pragma: no cover
        raise RuntimeError("no data with H1 away from the kink")
    W2 = random_array(rng, (h, c))
    b2 = random_array(rng, (c,))
    T = random_array(rng, (n, c))
    return {"X": X, "W1": W1, "b1": b1, "W2": W2, "b2": b2, "T": T, "N": float(n)}


def _two_layer_backprop(v):
    H1 = v["X"] @ v["W1"] + v["b1"]
    H2 = np.maximum(0.0, H1)
    Z = H2 @ v["W2"] + v["b2"]
    L = np.sum((Z - v["T"]) ** 2) / (2 * v["N"])
    gZ = (Z - v["T"]) / v["N"]
    gW2 = H2.T @ gZ
    gb2 = gZ.sum(0)
    gH2 = gZ @ v["W2"].T
    gH1 = gH2 * (H1 > 0)
    gW1 = v["X"].T @ gH1
    gb1 = gH1.sum(0)
    gX = gH1 @ v["W1"].T
    return L, {"W1": gW1, "b1": gb1, "W2": gW2, "b2": gb2, "X": gX}


# gZ = (Z−T)/N, gW2 = H2ᵀ gZ, gb2 = Σ_n gZ, gH2 = gZ W2ᵀ, gH1 = gH2 ⊙ [H1 > 0],
# gW1 = Xᵀ gH1, gb1 = Σ_n gH1, gX = gH1 W1ᵀ
def test_two_layer_network_gradients_match_backprop(rng):
    inputs = _two_layer_inputs(rng)
    L, expected = _two_layer_backprop(inputs)
    assert_close(einderiv.evaluate(TWO_LAYER, inputs), L)
    got = einderiv.grad(TWO_LAYER, ["W1", "b1", "W2", "b2", "X"], inputs)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert_close(got[name], value, msg=name)


# the same gradients agree with central differences
@pytest.mark.parametrize("wrt", ["W1", "b1", "W2", "b2", "X"])
def test_two_layer_network_gradients_match_finite_differences(rng, wrt):
    inputs = _two_layer_inputs(rng)
    assert_close(einderiv.grad(TWO_LAYER, wrt, inputs), fd_jacobian(TWO_LAYER, wrt, inputs))


# a bias Jacobian is a broadcast identity: dH1[n,h]/db1[a] = δ[h,a] for every n
def test_two_layer_bias_jacobian_is_broadcast_identity(rng):
    inputs = _two_layer_inputs(rng)
    J = einderiv.jacobian(TWO_LAYER, "b1", inputs, of="H1")
    assert J.shape == (4, 5, 5)
    assert_close(J, np.broadcast_to(np.eye(5), (4, 5, 5)))


# the loss has no summation trap: (Z − T) is a difference, not one product
def test_two_layer_network_does_not_warn(rng):
    inputs = _two_layer_inputs(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error", einderiv.EinderivWarning)
        einderiv.grad(einderiv.parse(TWO_LAYER), "W1", inputs)


# ---------------------------------------------------------------------------
# out = h2 W; Ŷ = σ(out); L = ½‖Ŷ − Y‖²  ⇒  dL/dW = h2ᵀ ((Ŷ − Y) ⊙ Ŷ ⊙ (1 − Ŷ))
# ---------------------------------------------------------------------------

SIGMOID_LAYER = """out[j] = h2[i] W[i,j]
Yh[j] = sigmoid(out[j])
L = (Yh[j] - Y[j])^2 / 2"""


def test_sigmoid_layer_gradient_closed_form_and_fd(rng):
    inputs = {
        "h2": random_array(rng, (3,)),
        "W": random_array(rng, (3, 2)),
        "Y": random_array(rng, (2,), 0.0, 1.0),
    }
    yh = 1.0 / (1.0 + np.exp(-(inputs["h2"] @ inputs["W"])))
    closed = np.outer(inputs["h2"], (yh - inputs["Y"]) * yh * (1 - yh))
    got = einderiv.grad(SIGMOID_LAYER, "W", inputs)
    assert_close(got, closed)
    assert_close(got, fd_jacobian(SIGMOID_LAYER, "W", inputs))
    assert_close(einderiv.evaluate(SIGMOID_LAYER, inputs), 0.5 * np.sum((yh - inputs["Y"]) ** 2))


# ---------------------------------------------------------------------------
# A4 = A3 W3; A5 = A4 W4; E = ½‖A5 − R‖²
#   ⇒ dE/dW3 = A3ᵀ (A5 − R) W4ᵀ and dE/dW4 = A4ᵀ (A5 − R)
# ---------------------------------------------------------------------------

CHAIN = "A4[n,j] = A3[n,i] W3[i,j]; A5[n,k] = A4[n,j] W4[j,k]; E = (A5[n,k] - R[n,k])^2 / 2"


def test_chain_rule_order(rng):
    A3 = random_array(rng, (4, 3))
    W3 = random_array(rng, (3, 5))
    W4 = random_array(rng, (5, 2))
    R = random_array(rng, (4, 2))
    inputs = {"A3": A3, "W3": W3, "W4": W4, "R": R}
    A4 = A3 @ W3
    A5 = A4 @ W4
    got = einderiv.grad(CHAIN, ["W3", "W4"], inputs)
    assert_close(got["W3"], A3.T @ (A5 - R) @ W4.T)
    assert_close(got["W4"], A4.T @ (A5 - R))
    assert_close(got["W3"], fd_jacobian(CHAIN, "W3", inputs))


# ---------------------------------------------------------------------------
# Which indices are summed
# ---------------------------------------------------------------------------


# y[i] = exp(A[i,j] x[j]) sums j outside the function: Σ_j exp(A[i,j] x[j])
def test_summation_outside_function(rng):
    A = random_array(rng, (2, 3))
    x = random_array(rng, (3,))
    text = "y[i] = exp(A[i,j] x[j])"
    inputs = {"A": A, "x": x}
    with pytest.warns(einderiv.EinderivWarning, match=r"sum\["):
        p = einderiv.parse(text)
        value = einderiv.evaluate(p, inputs)
        J = einderiv.jacobian(p, "x", inputs)
        Jnum = fd_jacobian(p, "x", inputs)
    assert_close(value, np.exp(A * x).sum(1))
    # dy[i]/dx[a] = A[i,a] exp(A[i,a] x[a])
    assert_close(J, A * np.exp(A * x))
    assert_close(J, Jnum)


# y[i] = exp(sum[j](A[i,j] x[j])) is exp(A x)
def test_explicit_sum_inside_function(rng):
    A = random_array(rng, (2, 3))
    x = random_array(rng, (3,))
    text = "y[i] = exp(sum[j](A[i,j] x[j]))"
    inputs = {"A": A, "x": x}
    assert_close(einderiv.evaluate(text, inputs), np.exp(A @ x))
    # dy/dx = diag(exp(A x)) A
    J = einderiv.jacobian(text, "x", inputs)
    assert_close(J, np.exp(A @ x)[:, None] * A)
    assert_close(J, fd_jacobian(text, "x", inputs))


# y = exp(z) after z = A x in a separate statement is exp(A x)
def test_two_statements_apply_function_after_contraction(rng):
    A = random_array(rng, (2, 3))
    x = random_array(rng, (3,))
    text = "z[i] = A[i,j] x[j]; y[i] = exp(z[i])"
    inputs = {"A": A, "x": x}
    assert_close(einderiv.evaluate(text, inputs), np.exp(A @ x))
    assert_close(einderiv.jacobian(text, "A", inputs), fd_jacobian(text, "A", inputs))


# y[i] = 2 (A[i,j] x[j] + b[i]) distributes: 2 A x + 2 b
def test_product_distributes_over_parenthesized_sum(rng):
    A = random_array(rng, (2, 3))
    x = random_array(rng, (3,))
    b = random_array(rng, (2,))
    text = "y[i] = 2 (A[i,j] x[j] + b[i])"
    inputs = {"A": A, "x": x, "b": b}
    assert_close(einderiv.evaluate(text, inputs), 2 * A @ x + 2 * b)
    for wrt in ("A", "x", "b"):
        assert_close(einderiv.jacobian(text, wrt, inputs), fd_jacobian(text, wrt, inputs), msg=wrt)
    assert_close(einderiv.jacobian(text, "b", inputs), 2 * np.eye(2))


# s[i] = sum[j](A[i,j] x[j] + b[i]) sums the whole body: A x + size(j) b
def test_explicit_sum_over_whole_body(rng):
    A = random_array(rng, (2, 3))
    x = random_array(rng, (3,))
    b = random_array(rng, (2,))
    text = "s[i] = sum[j](A[i,j] x[j] + b[i])"
    inputs = {"A": A, "x": x, "b": b}
    assert_close(einderiv.evaluate(text, inputs), A @ x + 3 * b)
    assert_close(einderiv.jacobian(text, "b", inputs), 3 * np.eye(2))
    for wrt in ("A", "x"):
        assert_close(einderiv.jacobian(text, wrt, inputs), fd_jacobian(text, wrt, inputs), msg=wrt)


# y = sum[i](A[i,k] + u[i]): only i is bound by sum[i]; k appears in the enclosing
# term, so the rule sums it over the whole term: Σ_k Σ_i (A[i,k] + u[i]) = ΣA + size(k) Σu
def test_free_index_inside_explicit_sum_is_summed_over_whole_term():
    A = np.array([[1.0, 2.0, 4.0], [3.0, 5.0, 7.0]])
    u = np.array([1.0, 2.0])
    text = "y = sum[i](A[i,k] + u[i])"
    inputs = {"A": A, "u": u}
    assert_close(einderiv.evaluate(text, inputs), A.sum() + 3 * u.sum())
    assert_close(einderiv.grad(text, "u", inputs), np.full(2, 3.0))
    # with k on the left, each entry is Σ_i (A[i,k] + u[i])
    assert_close(einderiv.evaluate("z[k] = sum[i](A[i,k] + u[i])", inputs), A.sum(0) + u.sum())


# C[i,j] = A[i,j] B[i,j] is the Hadamard product; dC[i,j]/dA[a,b] = δ[i,a] δ[j,b] B[i,j]
def test_hadamard_product(rng):
    A = random_array(rng, (2, 3))
    B = random_array(rng, (2, 3))
    text = "C[i,j] = A[i,j] B[i,j]"
    inputs = {"A": A, "B": B}
    assert_close(einderiv.evaluate(text, inputs), A * B)
    J = einderiv.jacobian(text, "A", inputs)
    assert_close(J, np.einsum("ia,jb,ij->ijab", np.eye(2), np.eye(3), B))
    assert_close(J, fd_jacobian(text, "A", inputs))


# d[i] = A[i,i] is the diagonal; dd[i]/dA[a,b] = δ[i,a] δ[i,b]
def test_diagonal(rng):
    A = random_array(rng, (3, 3))
    text = "d[i] = A[i,i]"
    assert_close(einderiv.evaluate(text, {"A": A}), np.diag(A))
    J = einderiv.jacobian(text, "A", {"A": A})
    expected = np.zeros((3, 3, 3))
    for i in range(3):
        expected[i, i, i] = 1.0
    assert_close(J, expected)
    assert_close(J, fd_jacobian(text, "A", {"A": A}))


# t = A[i,i] (i not on the left) is the trace; dt/dA = I
def test_trace(rng):
    A = random_array(rng, (3, 3))
    text = "t = A[i,i]"
    assert_close(einderiv.evaluate(text, {"A": A}), np.trace(A))
    assert_close(einderiv.grad(text, "A", {"A": A}), np.eye(3))


# Y[n,c] = X[n,d] W[d,c] + b[c]: d summed in the first term only, b broadcast over n
def test_broadcasting_bias(rng):
    X = random_array(rng, (4, 3))
    W = random_array(rng, (3, 2))
    b = random_array(rng, (2,))
    text = "Y[n,c] = X[n,d] W[d,c] + b[c]"
    inputs = {"X": X, "W": W, "b": b}
    assert_close(einderiv.evaluate(text, inputs), X @ W + b)
    Jb = einderiv.jacobian(text, "b", inputs)
    assert_close(Jb, np.broadcast_to(np.eye(2), (4, 2, 2)))
    for wrt in ("X", "W", "b"):
        assert_close(einderiv.jacobian(text, wrt, inputs), fd_jacobian(text, wrt, inputs), msg=wrt)


# O[i,j] = x[i] with size(j) = 4 given explicitly: x broadcast along j
def test_explicit_sizes_broadcast(rng):
    x = random_array(rng, (3,))
    text = "O[i,j] = x[i]"
    sizes = {"j": 4}
    value = einderiv.evaluate(text, {"x": x}, sizes=sizes)
    assert_close(value, np.tile(x[:, None], (1, 4)))
    J = einderiv.jacobian(text, "x", {"x": x}, sizes=sizes)
    assert_close(J, np.broadcast_to(np.eye(3)[:, None, :], (3, 4, 3)))
    assert_close(J, fd_jacobian(text, "x", {"x": x}, sizes=sizes))


# an input the output does not depend on has a zero derivative
def test_unrelated_input_has_zero_jacobian(rng):
    x = random_array(rng, (3,))
    text = "u = a + 1; y[i] = x[i]^2"
    J = einderiv.jacobian(text, "a", {"a": 0.5, "x": x}, of="y")
    assert_close(J, np.zeros(3))


# ---------------------------------------------------------------------------
# Precedence and lexical details
# ---------------------------------------------------------------------------

A_, B_, C_ = 1.3, 0.7, 1.2


def _scalar_inputs():
    return {"a": A_, "b": B_, "c": C_}


def _check_scalar_program(text, expected_value):
    inputs = _scalar_inputs()
    assert_close(einderiv.evaluate(text, inputs), expected_value, msg=text)
    grads = einderiv.grad(text, ["a", "b", "c"], inputs)
    for name in ("a", "b", "c"):
        assert np.shape(grads[name]) == ()
        assert_close(grads[name], fd_jacobian(text, name, inputs), msg=f"{text} d/d{name}")


# a^b^c is a^(b^c) (right-associative)
def test_power_is_right_associative():
    _check_scalar_program("y = a^b^c + 0 c", A_ ** (B_**C_))
    # d/db a^(b^c) = a^(b^c) ln(a) c b^(c-1)
    g = einderiv.grad("y = a^b^c", "b", _scalar_inputs())
    assert_close(g, A_ ** (B_**C_) * np.log(A_) * C_ * B_ ** (C_ - 1))


# -a^2 is -(a^2)
def test_unary_minus_binds_looser_than_power():
    inputs = _scalar_inputs()
    assert_close(einderiv.evaluate("y = -a^2", inputs), -(A_**2))
    assert_close(einderiv.grad("y = -a^2", "a", inputs), -2 * A_)


# a / b c is (a / b) c
def test_division_and_juxtaposition_are_left_associative():
    _check_scalar_program("y = a / b c", (A_ / B_) * C_)
    _check_scalar_program("y = a / b * c", (A_ / B_) * C_)


# ** is the same as ^
def test_double_star_is_power():
    _check_scalar_program("y = a ** b + 0 c", A_**B_)
    _check_scalar_program("y = a ** b ** c", A_ ** (B_**C_))


# a b and a * b are the same product
def test_juxtaposition_is_product():
    _check_scalar_program("y = a b c", A_ * B_ * C_)
    _check_scalar_program("y = a * b * c", A_ * B_ * C_)


# a - b - c is (a - b) - c
def test_subtraction_is_left_associative():
    _check_scalar_program("y = a - b - c", A_ - B_ - C_)


# numeric constants: 2, 0.5, 1e-3
def test_numeric_constants():
    _check_scalar_program("y = 2 a + 0.5 b + 1e-3 c", 2 * A_ + 0.5 * B_ + 1e-3 * C_)


# ; separates statements like a newline
def test_semicolon_separators():
    _check_scalar_program("u = a + b; v = u c; y = v^2", ((A_ + B_) * C_) ** 2)


# comments, blank lines and a trailing newline are allowed
def test_comments_and_blank_lines():
    text = "\n# a comment line\n\nu = a + b   # trailing comment\n\n  # indented comment\nv = u * c\n\n"
    _check_scalar_program(text, (A_ + B_) * C_)


# the default output is the last statement; `of` picks any statement
def test_default_output_is_last_statement():
    text = "u = a + b\nv = u c\n"
    inputs = _scalar_inputs()
    assert_close(einderiv.evaluate(text, inputs), (A_ + B_) * C_)
    assert_close(einderiv.evaluate(text, inputs, of="u"), A_ + B_)
    assert_close(einderiv.grad(text, "a", inputs, of="u"), 1.0)
    assert_close(einderiv.grad(text, "a", inputs), C_)


# long index names and a scalar input given as a 0-d array
def test_long_index_names_and_0d_scalar(rng):
    X = random_array(rng, (2, 3))
    text = "Y[batch, c1] = lam * X[batch, c1]"
    inputs = {"X": X, "lam": np.array(1.5)}
    assert_close(einderiv.evaluate(text, inputs), 1.5 * X)
    assert_close(einderiv.grad("s = lam * X[batch, c1]", "lam", inputs), X.sum())
