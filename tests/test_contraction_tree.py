"""Reverse mode through contraction trees: many-operand products.

A product of n tensors is split along its contraction path into two-operand
statements, so the gradient with respect to every operand is a walk back down
the same tree: about 3n two-operand steps in all, instead of n contractions of
n − 1 operands. Counted here as plan steps (never timed); the numbers are
checked against finite differences and closed forms.
"""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from helpers import mps_network
from einderiv.numeric import evaluation, plans


def _mps(sites: int) -> tuple[str, dict[str, tuple[int, ...]]]:
    return mps_network(sites, bond=3)


def _lattice(width: int, height: int) -> tuple[str, dict[str, tuple[int, ...]]]:
    factors, shapes = [], {}
    for x in range(width):
        for y in range(height):
            idx = [f"h{x}_{y}"] * (x + 1 < width) + [f"h{x - 1}_{y}"] * (x > 0) \
                + [f"v{x}_{y}"] * (y + 1 < height) + [f"v{x}_{y - 1}"] * (y > 0)
            factors.append(f"T{x}_{y}[{','.join(idx)}]")
            shapes[f"T{x}_{y}"] = (2,) * len(idx)
    return "L = " + " ".join(factors), shapes


def _inputs(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(0.5, 1.0, shape) for name, shape in shapes.items()}


def _directional_check(program: str, name: str, inputs: dict[str, np.ndarray], gradient: np.ndarray) -> None:
    """⟨g, u⟩ against a central difference along a random direction u."""
    u = np.random.default_rng(1).standard_normal(inputs[name].shape)
    h = 1e-6

    def f(a: np.ndarray) -> float:
        return float(einderiv.evaluate(program, {**inputs, name: a}))
    numeric = (f(inputs[name] + h * u) - f(inputs[name] - h * u)) / (2 * h)
    assert np.sum(gradient * u) == pytest.approx(numeric, rel=1e-6)


# d(1ᵀ M0 M1 M2 M3 1)/dM1 = (M0ᵀ 1)(M2 M3 1)ᵀ
def test_chain_gradient_is_the_outer_product_of_the_two_sides():
    program = "L = M0[i0,i1] M1[i1,i2] M2[i2,i3] M3[i3,i4]"
    rng = np.random.default_rng(0)
    m = [rng.uniform(0.5, 1.0, (3, 3)) for _ in range(4)]
    inputs = {f"M{k}": a for k, a in enumerate(m)}
    g = einderiv.grad(program, list(inputs), inputs)
    ones = np.ones(3)
    np.testing.assert_allclose(g["M1"], np.outer(m[0].T @ ones, m[2] @ m[3] @ ones), rtol=1e-12)
    np.testing.assert_allclose(g["M0"], np.outer(ones, m[1] @ m[2] @ m[3] @ ones), rtol=1e-12)


@pytest.mark.parametrize("network", [_mps(6), _lattice(3, 3)], ids=["mps6", "lattice3x3"])
def test_every_operand_gradient_of_a_network_matches_finite_differences(network):
    program, shapes = network
    inputs = _inputs(shapes)
    g = einderiv.grad(program, list(inputs), inputs)
    for name in list(inputs)[::3]:
        _directional_check(program, name, inputs, g[name])


def test_all_operand_gradient_takes_about_three_steps_per_operand():
    program, shapes = _mps(10)
    inputs = _inputs(shapes)
    evaluation.clear_cache()
    einderiv.grad(program, list(inputs), inputs)
    (plan,) = plans._cache.values()
    n = len(inputs)
    assert len(plan.steps) + len(plan.results) <= 3 * n


def test_vjp_jvp_and_jacobian_of_a_product_with_free_indices_agree():
    program = "F[i,l] = A[i,j] B[j,k] C[k,l] d[k]"
    rng = np.random.default_rng(2)
    inputs = {"A": rng.standard_normal((2, 3)), "B": rng.standard_normal((3, 4)),
              "C": rng.standard_normal((4, 2)), "d": rng.standard_normal(4)}
    expected = np.einsum("ij,jk,kl,k->il", *inputs.values())
    np.testing.assert_allclose(einderiv.evaluate(program, inputs), expected, rtol=1e-12)
    J = einderiv.jacobian(program, "B", inputs)
    u, v = rng.standard_normal((2, 2)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(np.einsum("il,iljk->jk", u, J), einderiv.vjp(program, "B", inputs, u), rtol=1e-10)
    np.testing.assert_allclose(np.einsum("iljk,jk->il", J, v), einderiv.jvp(program, {"B": v}, inputs), rtol=1e-10)


def test_a_product_with_more_indices_than_einsum_letters_is_planned():
    # 60 matrices in a chain: 61 indices, more than einsum's 52 letters
    n = 60
    program = "L = " + " ".join(f"M{k}[i{k},i{k + 1}]" for k in range(n))
    inputs = {f"M{k}": np.full((2, 2), 0.5) for k in range(n)}
    assert float(einderiv.evaluate(program, inputs)) == pytest.approx(2.0)     # 1ᵀ (J/2)^60 1 with J = ones: 1ᵀ (J/2) 1
    g = einderiv.grad(program, ["M0", "M30"], inputs)
    np.testing.assert_allclose(g["M30"], np.full((2, 2), 1.0), rtol=1e-12)


def test_a_jacobian_term_with_more_indices_than_einsum_letters_follows_a_planned_path():
    # the full Jacobian is not split into statements: its one term of 59 matrices and 61
    # indices is contracted step by step along opt_einsum's path, and agrees with grad
    n = 60
    program = "L = " + " ".join(f"M{k}[i{k},i{k + 1}]" for k in range(n))
    rng = np.random.default_rng(3)
    inputs = {f"M{k}": rng.uniform(0.4, 0.6, (2, 2)) for k in range(n)}
    np.testing.assert_allclose(einderiv.jacobian(program, "M17", inputs), einderiv.grad(program, "M17", inputs),
                               rtol=1e-10)


def test_an_index_only_one_operand_has_is_summed_before_the_outer_product():
    # Σ_b x[b,c] y[a] = (Σ_b x[b,c]) y[a]: a sum and a broadcast product, no einsum over (a, b, c)
    from einderiv.core import ir
    from einderiv.numeric.planning import Context, compile_expr
    ctx = Context(sizes={"a": 3, "b": 4, "c": 5}, shapes={"x": (4, 5), "y": (3,)}, dtype=np.dtype(float))
    expr = ir.summation(["b"], ir.mul(ir.ref("x", ["b", "c"]), ir.ref("y", ["a"])))
    run = compile_expr(expr, ("c", "a"), ctx, "test")
    assert ctx.paths == []
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((4, 5)), rng.standard_normal(3)
    np.testing.assert_allclose(run({"x": x, "y": y}), np.einsum("bc,a->ca", x, y), rtol=1e-12)
