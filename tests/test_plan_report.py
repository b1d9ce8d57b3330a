"""``einderiv.plan``: the steps of a plan, their FLOPs and bytes, before anything runs."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from helpers import mps_network


def _mps(sites: int) -> tuple[str, dict[str, tuple[int, ...]]]:
    return mps_network(sites, bond=4)


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


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    from einderiv.cli.app import main
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_plan_command_prints_the_steps_of_a_gradient(capsys):
    status, out, err = _main(capsys, "plan", "L = A[i,j] B[j,k] C[k,i]", "--wrt", "A,B,C",
                             "--shapes", "A=4x5,B=5x6,C=6x4")
    assert status == 0 and err == ""
    assert out.startswith("gradient of L with respect to A, B, C (float64)")
    assert sum(line.split()[1] == "result" for line in out.splitlines()[2:-1]) == 3


def test_the_plan_command_says_which_steps_the_memory_limit_refuses(capsys):
    status, out, _ = _main(capsys, "plan", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W", "--mode", "jacobian",
                           "--shapes", "W=1000x1000,X=1000x1000")
    assert status == 0
    assert "over the memory limit of 67,108,864 bytes (a call would be refused): step 1" in out


def test_the_plan_command_refuses_a_gradient_mode_without_wrt(capsys):
    status, out, err = _main(capsys, "plan", "y[i] = x[i]", "--shapes", "x=3", "--mode", "vjp")
    assert status == 2 and out == "" and err.strip() == "einderiv: error: --mode vjp needs --wrt"


@pytest.mark.parametrize("program, shapes", [
    ("B[i,j] = inv(A)[i,j]\nL = B[i,j] C[i,j]", {"A": (2, 2), "C": (2, 2)}),
    ("L = logdet(C)[b]", {"C": (4, 3, 3)}),
    ("y[i] = inv(A)[i,j] x[j]\nL = y[i] y[i]", {"A": (5, 5), "x": (5,)}),
])
def test_plans_with_matrix_functions_count_their_factorisations(program, shapes):
    wrt = "C" if "C" in shapes and "A" not in shapes else "A"
    report = einderiv.plan(program, wrt, shapes)
    n = shapes[wrt][-1]
    assert report.flops >= 2 * n ** 3
    assert "inv(" in str(report)
