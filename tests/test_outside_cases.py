"""Cases an outside differential tester (JAX float64 references) found: each once failed."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from einderiv.cli.app import main

X = np.array([1.0, 2.0, 4.0])
Z = np.array([1.5, 0.7])


# Σ_n 1 = size(n): a fold that removes every factor carrying a summed index keeps the sum
@pytest.mark.parametrize("program, expected", [
    ("y = z[n]^0", 2.0),
    ("y = z[n] / z[n]", 2.0),
    ("y = z[n] z[n]^(-1)", 2.0),
    ("y[j] = x[j]^2 z[n] / z[n]", 2 * X ** 2),
    ("y[j] = x[j]^2 z[n]^0", 2 * X ** 2),
    ("y[j] = x[j] * exp(z[n]) / exp(z[n])", 2 * X),
])
def test_a_cancelled_factor_keeps_its_summed_index(program, expected):
    np.testing.assert_allclose(einderiv.evaluate(program, {"x": X, "z": Z}), expected, rtol=1e-14)


def test_the_jacobian_of_a_cancelled_term_counts_the_sum_too():
    J = einderiv.jacobian("y[j] = x[j]^2 z[n] / z[n]", "x", {"x": X, "z": Z})
    np.testing.assert_allclose(J, np.diag(4 * X), rtol=1e-14)


# d/dx log(x z) = 1/x for each of the size(n) terms of the sum over n
def test_jvp_keeps_a_summed_index_the_derivative_no_longer_uses():
    t = np.ones(3)
    program = "y[j] = log(x[j] z[n])"
    jvp = einderiv.jvp(program, {"x": t}, {"x": X, "z": Z})
    np.testing.assert_allclose(jvp, 2 / X, rtol=1e-14)
    J = einderiv.jacobian(program, "x", {"x": X, "z": Z})
    np.testing.assert_allclose(jvp, J @ t, rtol=1e-14)


def test_hvp_agrees_with_the_hessian_when_a_summed_index_drops_out():
    program, v = "L = log(x[j] z[n])^2", np.array([1.0, -1.0, 0.5])
    H = einderiv.hessian(program, "x", {"x": X, "z": Z})
    np.testing.assert_allclose(einderiv.hvp(program, "x", {"x": X, "z": Z}, {"x": v}), H @ v, rtol=1e-12)


@pytest.mark.parametrize("argv, last_line", [
    (["eval", "y = z[n]^0", "--input", "z=[1,2]"], "2."),
    (["grad", "y = x[n] z[n]/z[n]", "--wrt", "x", "--sizes", "n=2"], "[1. 1.]"),      # Σ_n x[n]
])
def test_an_input_that_cancels_away_still_sizes_its_index_on_the_command_line(argv, last_line, capsys):
    assert main(argv) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == last_line
