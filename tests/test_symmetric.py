"""Derivatives with respect to symmetric matrices (``symmetric=[...]``, CLI ``--symmetric``):
the gradient for the Frobenius inner product on symmetric matrices is sym(G) = (G + Gᵀ)/2."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from einderiv import EinderivWarning, ProgramError, ShapeError
from einderiv.cli.app import main
from helpers import assert_close

GAUSSIAN = "L = 0.5 x[i] inv(S)[i,j] x[j] + 0.5 logdet(S)"


@pytest.fixture
def data():
    rng = np.random.default_rng(2)
    R = rng.normal(size=(3, 3))
    return {"S": R @ R.T + np.eye(3), "x": rng.normal(size=3), "y": rng.normal(size=3), "V": rng.normal(size=(3, 3))}


def _restricted_derivative(program, inputs, direction):
    """d/dt f(S + t dS) for a symmetric direction, by central differences."""
    eps = 1e-6
    plus = einderiv.evaluate(program, {**inputs, "S": inputs["S"] + eps * direction})
    minus = einderiv.evaluate(program, {**inputs, "S": inputs["S"] - eps * direction})
    return (plus - minus) / (2 * eps)


def test_gradient_is_sym_of_the_unconstrained_gradient(data):
    # ∇f = sym(G) = (G + Gᵀ)/2
    inputs = {"S": data["S"], "x": data["x"]}
    G = einderiv.grad(GAUSSIAN, "S", inputs)
    assert_close(einderiv.grad(GAUSSIAN, "S", inputs, symmetric=["S"]), 0.5 * (G + G.T))


def test_sym_gradient_represents_the_derivative_along_symmetric_directions(data):
    # ⟨sym(G), dS⟩ = df for every symmetric dS; the textbook G + Gᵀ − G∘I does not
    inputs = {"S": data["S"], "x": data["x"], "y": data["y"]}
    program = "L = x[i] S[i,j] y[j] + logdet(S)"
    direction = data["V"] + data["V"].T
    g = einderiv.grad(program, "S", inputs, symmetric="S")
    expected = _restricted_derivative(program, inputs, direction)
    assert_close(np.sum(g * direction), expected)
    G = einderiv.grad(program, "S", inputs)
    textbook = G + G.T - np.diag(np.diag(G))
    assert abs(np.sum(textbook * direction) - expected) > 1e-3


def test_sym_gradient_does_not_depend_on_how_the_program_is_written(data):
    # x[i] S[i,j] y[j] and x[i] S[j,i] y[j] agree on symmetric S, so must their gradients
    inputs = {"S": data["S"], "x": data["x"], "y": data["y"]}
    a = einderiv.grad("L = x[i] S[i,j] y[j]", "S", inputs, symmetric=["S"])
    b = einderiv.grad("L = x[i] S[j,i] y[j]", "S", inputs, symmetric=["S"])
    assert_close(a, b)
    assert_close(a, 0.5 * (np.outer(data["x"], data["y"]) + np.outer(data["y"], data["x"])))


def test_gaussian_gradient_with_symmetric_covariance(data):
    # gS = ½(S⁻¹ − S⁻¹xxᵀS⁻¹), already symmetric
    S, x = data["S"], data["x"]
    inverse = np.linalg.inv(S)
    gS = einderiv.grad(GAUSSIAN, "S", {"S": S, "x": x}, symmetric=["S"])
    assert_close(gS, 0.5 * (inverse - np.outer(inverse @ x, inverse @ x)))


def test_jacobian_vjp_jvp_hessian_hvp_are_projected(data):
    # P J, sym(vjp), J sym(v), P H P, P H P v
    inputs = {"S": data["S"], "x": data["x"]}
    V = data["V"]
    J = einderiv.jacobian("y[i] = inv(S)[i,j] x[j]", "S", inputs)
    Js = einderiv.jacobian("y[i] = inv(S)[i,j] x[j]", "S", inputs, symmetric=["S"])
    assert_close(Js, 0.5 * (J + J.transpose(0, 2, 1)))
    g = np.arange(3.0)
    assert_close(einderiv.vjp("y[i] = inv(S)[i,j] x[j]", "S", inputs, g, symmetric=["S"]),
                 np.tensordot(g, Js, axes=1))
    assert_close(einderiv.jvp("y[i] = inv(S)[i,j] x[j]", {"S": V}, inputs, symmetric=["S"]),
                 np.tensordot(Js, V, axes=2))
    H = einderiv.hessian(GAUSSIAN, "S", inputs)
    Hs = einderiv.hessian(GAUSSIAN, "S", inputs, symmetric=["S"])
    P = 0.5 * (H + H.transpose(1, 0, 2, 3))
    assert_close(Hs, 0.5 * (P + P.transpose(0, 1, 3, 2)))
    assert_close(einderiv.hvp(GAUSSIAN, "S", inputs, V, symmetric=["S"]), np.tensordot(Hs, V, axes=2))
    # a mixed block projects only the symmetric input's axes
    Hx = einderiv.hessian(GAUSSIAN, "x", inputs, wrt2="S")
    assert_close(einderiv.hessian(GAUSSIAN, "x", inputs, wrt2="S", symmetric=["S"]),
                 0.5 * (Hx + Hx.transpose(0, 2, 1)))


def test_symmetric_option_errors(data):
    inputs = {"S": data["S"], "x": data["x"]}
    with pytest.raises(ProgramError, match=r"symmetric: 'x' is written with 1 index; only a matrix can be symmetric"):
        einderiv.grad(GAUSSIAN, "S", inputs, symmetric=["x"])
    with pytest.raises(ProgramError, match=r"symmetric: 'T' is not an input of the program"):
        einderiv.grad(GAUSSIAN, "S", inputs, symmetric=["T"])
    with pytest.raises(ShapeError, match=r"symmetric: 'A' must be a square matrix, but has shape \(2, 3\)"):
        einderiv.grad("L = A[i,j] B[i,j]", "A", {"A": np.ones((2, 3)), "B": np.ones((2, 3))}, symmetric=["A"])
    with pytest.warns(EinderivWarning, match=r"'S' is declared symmetric but is not"):
        einderiv.grad(GAUSSIAN, "S", {**inputs, "S": inputs["S"] + np.triu(np.ones((3, 3)), 1)}, symmetric=["S"])


def test_cli_symmetric(capsys):
    assert main(["grad", "L = x[i] S[i,j] y[j]", "--wrt", "S", "--symmetric", "S", "--sizes", "i=2,j=2",
                 "--input", "x=[1,0]", "--input", "y=[0,1]", "--input", "S=[[2,0],[0,2]]"]) == 0
    out = capsys.readouterr().out
    assert "symmetric: S is symmetric: the values are sym(G) = (G + Gᵀ)/2" in out
    assert "[[0.  0.5]\n [0.5 0. ]]" in out
    assert main(["grad", "L = x[i] S[i,j] y[j]", "--wrt", "S", "--symmetric", "x", "--sizes", "i=2,j=2"]) == 2
    assert "symmetric: 'x' is written with 1 index" in capsys.readouterr().err


def test_cli_random_symmetric_input_is_positive_definite(capsys):
    import json
    assert main(["eval", "L = logdet(S) + 0 S[i,j]", "--symmetric", "S", "--sizes", "i=4,j=4", "--show-inputs",
                 "--format", "json"]) == 0
    S = np.array(json.loads(capsys.readouterr().out)["input_values"]["S"])
    assert_close(S, S.T)
    assert np.linalg.eigvalsh(S).min() >= 1.0 - 1e-12
