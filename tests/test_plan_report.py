"""``einderiv.plan``: the steps of a plan, their FLOPs and bytes, before anything runs."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv


def _mps(sites: int) -> tuple[str, dict[str, tuple[int, ...]]]:
    factors, shapes = [], {}
    for k in range(sites):
        for ket, bond in (("A", "a"), ("B", "b")):
            idx = ([f"{bond}{k}"] if k else []) + [f"p{k}"] + ([f"{bond}{k + 1}"] if k < sites - 1 else [])
            factors.append(f"{ket}{k}[{','.join(idx)}]")
            shapes[f"{ket}{k}"] = tuple(2 if i.startswith("p") else 4 for i in idx)
    return "L = " + " ".join(factors), shapes


def test_a_matrix_vector_product_costs_two_flops_per_entry_of_the_matrix():
    r = einderiv.plan("y[i] = A[i,j] x[j]", None, {"A": (3, 4), "x": (4,)}, mode="value")
    assert [(s.computes, s.shape, s.nbytes, s.flops) for s in r.steps] == [("y[i] = A[i,j] x[j]", (3,), 24, 24)]


def test_the_all_operand_gradient_of_a_network_costs_at_most_three_forward_passes():
    # the cheap-gradient principle, counted in FLOPs (never timed)
    program, shapes = _mps(12)
    forward = einderiv.plan(program, None, shapes, mode="value")
    gradient = einderiv.plan(program, list(shapes), shapes)
    assert gradient.flops <= 3 * forward.flops
    assert sum(s.role == "result" for s in gradient.steps) == len(shapes)


def test_the_report_prints_one_row_per_step_and_the_totals():
    text = str(einderiv.plan("F[i,k] = W[i,j] X[j,k]", "W", {"W": (2, 3), "X": (3, 4)}, mode="vjp"))
    assert "gW[a,b] = " in text and "total: " in text
    assert text.startswith("vector-Jacobian product of F with respect to W (float64)")


def test_a_jacobian_plan_reports_the_jacobian_shape_without_allocating_it():
    r = einderiv.plan("F[i,k] = W[i,j] X[j,k]", "W", {"W": (1000, 1000), "X": (1000, 1000)}, mode="jacobian",
                      memory_limit=10 ** 13)
    (result,) = [s for s in r.steps if s.role == "result"]
    assert result.shape == (1000, 1000, 1000, 1000) and result.nbytes == 8 * 10 ** 12


def test_plan_and_grad_agree_on_what_they_refuse():
    with pytest.raises(einderiv.ShapeError, match="grad needs a scalar output"):
        einderiv.plan("y[i] = x[i]", "x", {"x": (3,)})
    with pytest.raises(einderiv.ShapeError, match="mode must be one of"):
        einderiv.plan("y[i] = x[i]", "x", {"x": (3,)}, mode="hessian")
    with pytest.raises(einderiv.ShapeError, match="shape of 'x' must be a tuple"):
        einderiv.plan("y = x[i] x[i]", "x", {"x": "three"})


def test_planning_allocates_nothing_of_the_input_sizes():
    r = einderiv.plan("L = x[i] x[i]", "x", {"x": (10 ** 12,)}, memory_limit=10 ** 14)
    assert r.steps[-1].shape == (10 ** 12,)
    assert np.dtype(r.dtype) == np.float64
