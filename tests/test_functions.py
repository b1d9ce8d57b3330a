"""Elementwise functions: values, derivatives on safe domains, and the exact
conventions at kinks (relu'(0) = 0, abs'(0) = 0, max/min tie-breaking)."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from helpers import assert_close, fd_jacobian


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# name: (numpy value, numpy derivative, sample points on a safe domain, away from kinks)
FUNCTIONS = {
    "exp": (np.exp, np.exp, [-1.7, -0.3, 0.4, 1.9]),
    "log": (np.log, lambda x: 1.0 / x, [0.3, 0.9, 1.7, 3.2]),
    "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(x), [0.3, 0.9, 1.7, 3.2]),
    "sin": (np.sin, np.cos, [-2.1, -0.3, 0.4, 2.5]),
    "cos": (np.cos, lambda x: -np.sin(x), [-2.1, -0.3, 0.4, 2.5]),
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2, [-2.1, -0.3, 0.4, 1.5]),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1.0 - _sigmoid(x)), [-2.1, -0.3, 0.4, 2.5]),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (np.asarray(x) > 0).astype(float), [-1.5, -0.3, 0.4, 1.2]),
    "abs": (np.abs, np.sign, [-1.5, -0.3, 0.4, 1.2]),
}


# y[i] = f(x[i]) evaluates to f applied elementwise
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_value(name):
    f, _, pts = FUNCTIONS[name]
    x = np.array(pts)
    assert_close(einderiv.evaluate(f"y[i] = {name}(x[i])", {"x": x}), f(x))


# dy[i]/dx[a] = δ[i,a] f'(x[i])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_jacobian_is_diagonal_derivative(name):
    _, df, pts = FUNCTIONS[name]
    x = np.array(pts)
    text = f"y[i] = {name}(x[i])"
    J = einderiv.jacobian(text, "x", {"x": x})
    assert_close(J, np.diag(df(x)))
    assert_close(J, fd_jacobian(text, "x", {"x": x}))


# L = Σ_i f(x[i]) (i summed outside the call) ⇒ dL/dx = f'(x)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_gradient_of_sum(name):
    f, df, pts = FUNCTIONS[name]
    x = np.array(pts)
    text = f"L = {name}(x[i])"
    assert_close(einderiv.evaluate(text, {"x": x}), f(x).sum())
    assert_close(einderiv.grad(text, "x", {"x": x}), df(x))


# chain rule through a function of a scalar: d f(2 s)/ds = 2 f'(2 s)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_of_scalar_chain_rule(name):
    f, df, pts = FUNCTIONS[name]
    s = pts[2] / 2.0
    text = f"y = {name}(2 s)"
    assert_close(einderiv.evaluate(text, {"s": s}), f(2 * s))
    assert_close(einderiv.grad(text, "s", {"s": s}), 2 * df(2 * s))


# second-order composition: d sin(exp(x))/dx = cos(exp(x)) exp(x)
def test_nested_functions():
    x = np.array([-0.5, 0.2, 0.9])
    text = "y[i] = sin(exp(x[i]))"
    J = einderiv.jacobian(text, "x", {"x": x})
    assert_close(J, np.diag(np.cos(np.exp(x)) * np.exp(x)))
    assert_close(J, fd_jacobian(text, "x", {"x": x}))


# y[i] = max(a[i], b[i]) and min(a[i], b[i]) away from ties, vs finite differences
@pytest.mark.parametrize("fn", ["max", "min"])
def test_max_min_away_from_ties(fn):
    a = np.array([-1.0, 0.5, 2.0, -0.3])
    b = np.array([0.7, -0.4, 2.6, -1.1])
    text = f"y[i] = {fn}(a[i], b[i])"
    inputs = {"a": a, "b": b}
    expected = np.maximum(a, b) if fn == "max" else np.minimum(a, b)
    assert_close(einderiv.evaluate(text, inputs), expected)
    for wrt in ("a", "b"):
        assert_close(einderiv.jacobian(text, wrt, inputs), fd_jacobian(text, wrt, inputs), msg=wrt)


# Kink conventions, exactly
# relu'(0) = 0
def test_relu_derivative_at_zero_is_zero():
    x = np.array([0.0, -0.5, 0.5])
    J = einderiv.jacobian("y[i] = relu(x[i])", "x", {"x": x})
    np.testing.assert_array_equal(J, np.diag([0.0, 0.0, 1.0]))
    assert einderiv.grad("y = relu(s)", "s", {"s": 0.0}) == 0.0


# abs'(0) = 0
def test_abs_derivative_at_zero_is_zero():
    x = np.array([0.0, -0.5, 0.5])
    J = einderiv.jacobian("y[i] = abs(x[i])", "x", {"x": x})
    np.testing.assert_array_equal(J, np.diag([0.0, -1.0, 1.0]))
    assert einderiv.grad("y = abs(s)", "s", {"s": 0.0}) == 0.0


# max(a, b): gradient to a where a > b, else to b (ties go to b)
def test_max_tie_breaking():
    a = np.array([1.0, 2.0, -1.0, 0.0])
    b = np.array([0.0, 2.0, 3.0, 0.0])
    inputs = {"a": a, "b": b}
    text = "y[i] = max(a[i], b[i])"
    np.testing.assert_array_equal(einderiv.evaluate(text, inputs), np.maximum(a, b))
    np.testing.assert_array_equal(einderiv.jacobian(text, "a", inputs), np.diag([1.0, 0.0, 0.0, 0.0]))
    np.testing.assert_array_equal(einderiv.jacobian(text, "b", inputs), np.diag([0.0, 1.0, 1.0, 1.0]))


# min(a, b): gradient to a where a < b, else to b (ties go to b)
def test_min_tie_breaking():
    a = np.array([1.0, 2.0, -1.0, 0.0])
    b = np.array([0.0, 2.0, 3.0, 0.0])
    inputs = {"a": a, "b": b}
    text = "y[i] = min(a[i], b[i])"
    np.testing.assert_array_equal(einderiv.evaluate(text, inputs), np.minimum(a, b))
    np.testing.assert_array_equal(einderiv.jacobian(text, "a", inputs), np.diag([0.0, 0.0, 1.0, 0.0]))
    np.testing.assert_array_equal(einderiv.jacobian(text, "b", inputs), np.diag([1.0, 1.0, 0.0, 1.0]))


# max(0, x) at x = 0: 0 > 0 is false, so the gradient goes to b = x: derivative 1;
# max(x, 0) at x = 0 sends it to the constant: derivative 0
def test_max_with_constant_tie_follows_argument_order():
    x = np.array([0.0, -0.5, 0.5])
    J_right = einderiv.jacobian("y[i] = max(0, x[i])", "x", {"x": x})
    np.testing.assert_array_equal(J_right, np.diag([1.0, 0.0, 1.0]))
    J_left = einderiv.jacobian("y[i] = max(x[i], 0)", "x", {"x": x})
    np.testing.assert_array_equal(J_left, np.diag([0.0, 0.0, 1.0]))


# min(0, x) at x = 0: 0 < 0 is false, so the gradient goes to x: derivative 1
def test_min_with_constant_tie_follows_argument_order():
    x = np.array([0.0, -0.5, 0.5])
    J_right = einderiv.jacobian("y[i] = min(0, x[i])", "x", {"x": x})
    np.testing.assert_array_equal(J_right, np.diag([1.0, 1.0, 0.0]))
    J_left = einderiv.jacobian("y[i] = min(x[i], 0)", "x", {"x": x})
    np.testing.assert_array_equal(J_left, np.diag([0.0, 1.0, 0.0]))


# max(a[i], b[j]) broadcasts: a tensor over (i, j); reverse mode sums the routed gradient
def test_max_broadcasts_and_vjp_routes_gradient():
    a = np.array([0.0, 1.0])
    b = np.array([0.0, 0.5, 2.0])
    inputs = {"a": a, "b": b}
    text = "M[i,j] = max(a[i], b[j])"
    np.testing.assert_array_equal(einderiv.evaluate(text, inputs), np.maximum(a[:, None], b[None, :]))
    G = np.ones((2, 3))
    to_a = a[:, None] > b[None, :]
    np.testing.assert_array_equal(einderiv.vjp(text, "a", inputs, G), to_a.sum(1).astype(float))
    np.testing.assert_array_equal(einderiv.vjp(text, "b", inputs, G), (~to_a).sum(0).astype(float))
