"""The adjoint program (executable, one statement per node) and the step-by-step derivation."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from einderiv.render.explanation import AdjointProgram, Explanation, adjoint, explain
from helpers import assert_close, random_inputs

TWO_LAYER = """H0[n,h] = X[n,d] W1[d,h]
H1[n,h] = H0[n,h] + b1[h]
H2[n,h] = max(0, H1[n,h])
H3[n,c] = H2[n,h] W2[h,c]
Z[n,c] = H3[n,c] + b2[c]
L = (Z[n,c] - T[n,c])^2 / (2 N)"""
NET_SHAPES = {"X": (6, 3), "W1": (3, 4), "b1": (4,), "W2": (4, 2), "b2": (2,), "T": (6, 2), "N": ()}
NET_WRTS = ["W1", "b1", "W2", "b2"]

CHAIN = "A4[n,j] = A3[n,i] W3[i,j]; A5[n,k] = A4[n,j] W4[j,k]; E = (A5[n,k] - R[n,k])^2 / 2"
CHAIN_SHAPES = {"A3": (5, 2), "W3": (2, 3), "W4": (3, 4), "R": (5, 4)}


def _inputs(shapes, seed=3):
    inputs = random_inputs(np.random.default_rng(seed), shapes)
    if "N" in inputs:
        inputs["N"] = np.float64(6.0)
    return inputs


def _run_adjoint(text, adj, inputs, name):
    """Evaluate the adjoint statements appended to the forward program."""
    return einderiv.evaluate(text + "\n" + adj.text, inputs, of=adj.gradient[name])


# ---------------------------------------------------------------- the adjoint program

def test_two_layer_adjoint_statements():
    adj = adjoint(TWO_LAYER, NET_WRTS)
    assert isinstance(adj, AdjointProgram)
    assert adj.text.splitlines() == [
        "gZ[n,c] = (Z[n,c] - T[n,c]) / N",
        "gH3[n,c] = gZ[n,c]",
        "gb2[c] = gZ[n,c]",
        "gH2[n,h] = gH3[n,c] W2[h,c]",
        "gW2[h,c] = gH3[n,c] H2[n,h]",
        "gH1[n,h] = gH2[n,h] le(0, H1[n,h])",
        "gH0[n,h] = gH1[n,h]",
        "gb1[h] = gH1[n,h]",
        "gW1[d,h] = gH0[n,h] X[n,d]",
    ]


def test_two_layer_adjoint_matrix_forms_and_notes():
    adj = adjoint(TWO_LAYER, NET_WRTS)
    forms = {s.of: s.matrix_text for s in adj.steps}
    assert forms == {
        "Z": "gZ = (Z − T) / N",
        "H3": "gH3 = gZ",
        "b2": "gb2 = gZᵀ 1",
        "H2": "gH2 = gH3 W2ᵀ",
        "W2": "gW2 = H2ᵀ gH3",
        "H1": "gH1 = gH2 ⊙ [H1 ≥ 0]",
        "H0": "gH0 = gH1",
        "b1": "gb1 = gH1ᵀ 1",
        "W1": "gW1 = Xᵀ gH0",
    }
    # the two identities of the network, and the bias gradients summing over the batch
    assert adj.step("H3").note == "∂Z/∂H3 is the identity: the gradient passes through"
    assert adj.step("H0").note == "∂H1/∂H0 is the identity: the gradient passes through"
    assert adj.step("b2").note == "b2 is broadcast along n: its gradient sums over n"
    assert adj.step("H1").note == "elementwise: times ∂H2/∂H1 = [H1 ≥ 0]"
    assert adj.step("W2").note == "from H3 = H2 W2: the shared index n is H2's first axis, so H2 enters transposed, on the left"
    table = str(adj)
    assert table.splitlines()[0] == "Reverse mode: the gradient of L with respect to W1, b1, W2, b2"
    assert "gW2[h,c] = gH3[n,c] H2[n,h]" in table and "gW2 = H2ᵀ gH3" in table


@pytest.mark.parametrize("wrt", NET_WRTS + ["X", "T", "N"])
def test_two_layer_adjoint_is_executable(wrt):
    adj = adjoint(TWO_LAYER, NET_WRTS + ["X", "T", "N"])
    inputs = _inputs(NET_SHAPES)
    assert_close(_run_adjoint(TWO_LAYER, adj, inputs, wrt), einderiv.grad(TWO_LAYER, wrt, inputs))


@pytest.mark.parametrize("wrt", NET_WRTS)
def test_two_layer_step_matrix_forms_evaluate(wrt):
    """Every step's matrix form, evaluated on the computed values, equals the gradient."""
    adj = adjoint(TWO_LAYER, NET_WRTS)
    inputs = _inputs(NET_SHAPES)
    full = TWO_LAYER + "\n" + adj.text
    env = dict(inputs)
    for name in einderiv.parse(full).names:
        env[name] = einderiv.evaluate(full, inputs, of=name)
    assert_close(adj.step(wrt).matrix.evaluate(env), einderiv.grad(TWO_LAYER, wrt, inputs))


@pytest.mark.parametrize("wrt", ["W3", "W4", "A3"])
def test_chain_adjoint_is_executable(wrt):
    adj = adjoint(CHAIN, ["W3", "W4", "A3"])
    inputs = _inputs(CHAIN_SHAPES)
    assert_close(_run_adjoint(CHAIN, adj, inputs, wrt), einderiv.grad(CHAIN, wrt, inputs))


def test_chain_adjoint_matrix_forms():
    # dE/dW3 = A3ᵀ (A5 − R) W4ᵀ, one step at a time
    adj = adjoint(CHAIN, "W3")
    assert [s.matrix_text for s in adj.steps] == ["gA5 = A5 − R", "gA4 = gA5 W4ᵀ", "gW3 = A3ᵀ gA4"]


def test_tensor_output_takes_an_upstream_gradient():
    # for F = W X, gW = gF Xᵀ and gX = Wᵀ gF, with gF an input: a vector–Jacobian product
    text = "F[i,k] = W[i,j] X[j,k]"
    adj = adjoint(text, ["W", "X"])
    assert adj.seed == "gF"
    assert adj.text.splitlines() == ["gW[i,j] = gF[i,k] X[j,k]", "gX[j,k] = gF[i,k] W[i,j]"]
    assert [s.matrix_text for s in adj.steps] == ["gW = gF Xᵀ", "gX = Wᵀ gF"]
    inputs = _inputs({"W": (2, 3), "X": (3, 4), "gF": (2, 4)})
    for wrt in ("W", "X"):
        expected = einderiv.vjp(text, wrt, inputs, inputs["gF"])
        assert_close(einderiv.evaluate(text + "\n" + adj.text, inputs, of=adj.gradient[wrt]), expected)


def test_gradient_names_avoid_the_programs_names():
    adj = adjoint("H[i] = gH[i] x[i]; L = H[i] H[i]", "x")
    assert adj.gradient["H"] == "g_H"
    assert adj.text.splitlines()[0] == "g_H[i] = 2 H[i]"


def test_unused_input_has_a_zero_gradient_shaped_like_it():
    text = "L = x[i] x[i]"
    adj = adjoint(text + "; M = V[a,b] V[a,b]", ["x", "V"], of="L")
    assert adj.step("V").text == "gV[a,b] = 0 V[a,b]"
    assert adj.step("V").note == "L does not depend on V"
    inputs = _inputs({"x": (3,), "V": (2, 2)})
    full = text + "; M = V[a,b] V[a,b]\n" + adj.text
    assert_close(einderiv.evaluate(full, inputs, of="gV"), np.zeros((2, 2)))


def test_gradient_constant_along_an_axis_still_runs():
    # dL/dA[i,j] does not depend on j: "+ 0 A[i,j]" fixes the size of j
    text = "H = u[i] A[i,j]; L = H^2"
    adj = adjoint(text, "A")
    assert adj.step("A").text == "gA[i,j] = gH u[i] + 0 A[i,j]"
    inputs = _inputs({"u": (2,), "A": (2, 3)})
    assert_close(_run_adjoint(text, adj, inputs, "A"), einderiv.grad(text, "A", inputs))


def test_tensor_used_twice_sums_contributions():
    text = "L = x[i] A[i,j] x[j]"
    adj = adjoint(text, "x")
    assert adj.step("x").matrix_text == "gx = (A + Aᵀ) x"
    inputs = _inputs({"x": (3,), "A": (3, 3)})
    assert_close(_run_adjoint(text, adj, inputs, "x"), einderiv.grad(text, "x", inputs))
    two = adjoint("y[i] = A[i,j] x[j]; L = y[i] x[i]", "x")
    assert two.step("x").note == "x feeds y, L: their contributions add up"


def test_adjoint_latex():
    adj = adjoint("F[i,k] = W[i,j] X[j,k]", "W")
    assert adj.latex == ("\\begin{aligned}\n\\mathrm{gW}_{ij} &= \\mathrm{gF}_{ik} X_{jk}"
                         " & \\mathrm{gW} = \\mathrm{gF} X^\\top\n\\end{aligned}")
    assert adj._repr_latex_() == f"$${adj.latex}$$"


@pytest.mark.parametrize("wrt, of, message", [
    ("H0", None, "'H0' is defined by a statement"),
    ("Q", None, "'Q' is not a tensor of this program"),
    ("W1", "Q", "'Q' is not a tensor of this program"),
    ("W1", "X", "'X' is an input"),
    ([], None, "wrt lists no input"),
])
def test_adjoint_errors(wrt, of, message):
    with pytest.raises(einderiv.EinderivError, match=message):
        adjoint(TWO_LAYER, wrt, of=of)


def test_step_lookup_error():
    with pytest.raises(einderiv.ProgramError, match="no step computes the gradient of 'Q'"):
        adjoint(TWO_LAYER, "W1").step("Q")


# ---------------------------------------------------------------- explain

def _rows(explanation: Explanation) -> list[str]:
    return [row.text.strip() for section in explanation.sections for row in section.rows]


def test_explain_matrix_product():
    e = explain("F[i,k] = W[i,j] X[j,k]", "W", differentials=True)
    rows = _rows(e)
    assert rows == [
        "∂F[i,k]/∂W[a,b] = δ[i,a] δ[j,b] X[j,k]",
        "= δ[i,a] X[b,k]",
        "gW[a,b] = gF[i,k] ∂F[i,k]/∂W[a,b]",
        "= gF[i,k] δ[i,a] X[b,k]",
        "= gF[a,k] X[b,k]",
        "gW = gF Xᵀ",
        "dF = dW X",
        "dL = gF : dF = gF : (dW X) = gF Xᵀ : dW",
    ]
    rules = [row.rule for row in e.sections[0].rows]
    assert rules[0] == "∂W[i,j]/∂W[a,b] = δ[i,a] δ[j,b]"
    assert rules[1] == "δ elimination: j → b"
    assert rules[4] == "δ elimination: i → a"
    assert rules[-1].startswith("P : (dW S) = P Sᵀ : dW: a factor on the right of dW lands on the right")
    assert e.sections[0].title.startswith("[1] F[i,k] = W[i,j] X[j,k]")


def test_explain_left_factor_lands_left():
    e = explain("F[i,k] = W[i,j] X[j,k]", "X", differentials=True)
    assert _rows(e)[-1] == "dL = gF : dF = gF : (W dX) = Wᵀ gF : dX"
    assert e.sections[0].rows[-1].rule.startswith("P : (Q dX) = Qᵀ P : dX: a factor on the left")


def test_explain_chain_why_a3_left_and_w4_right():
    e = explain(CHAIN, "W3", differentials=True)
    rows = _rows(e)
    assert "dE = A5 : dA5 − R : dA5 = (A5 − R) : dA5" in rows
    assert "dE = gA5 : dA5 = gA5 : (dA4 W4) = gA5 W4ᵀ : dA4" in rows
    assert "dE = gA4 : dA4 = gA4 : (A3 dW3) = A3ᵀ gA4 : dW3" in rows
    assert [s.title.split("      ")[0] for s in e.sections] == [
        "[3] E = (A5[n,k] - R[n,k])^2 / 2", "[2] A5[n,k] = A4[n,j] W4[j,k]", "[1] A4[n,j] = A3[n,i] W3[i,j]"]


def test_explain_two_layer_network_covers_every_node():
    e = explain(TWO_LAYER, NET_WRTS)
    text = str(e)
    for line in ("gH3 = gZ", "gb2 = gZᵀ 1", "gW2 = H2ᵀ gH3", "gH2 = gH3 W2ᵀ", "gH1 = gH2 ⊙ [H1 ≥ 0]",
                 "gH0 = gH1", "gb1 = gH1ᵀ 1", "gW1 = Xᵀ gH0", "∂Z[n,c]/∂H3[a,b] = δ[n,a] δ[c,b]",
                 "∂H1[n,h]/∂H0[a,b] = δ[n,a] δ[h,b]"):
        assert line in text, line
    assert "chain rule through max" in text
    assert text.startswith("Reverse mode for the gradient of L with respect to W1, b1, W2, b2")


def test_explain_shapes_from_index_sizes():
    e = explain(TWO_LAYER, NET_WRTS, sizes={"n": 6, "d": 3, "h": 4, "c": 2})
    text = str(e)
    assert "(H3: 6×2)" in text
    assert "matrix form: (4×6) (6×2) → 4×2" in text     # gW2 = H2ᵀ gH3
    assert "matrix form: (2×6) (6×1) → 2×1" in text     # gb2 = gZᵀ 1
    assert "(L: scalar)" in text


def test_explain_shapes_from_input_shapes():
    e = explain("F[i,k] = W[i,j] X[j,k]", "W", sizes={"W": (2, 3), "X": (3, 4)})
    assert "(F: 2×4)" in str(e)
    assert "matrix form: (2×4) (4×3) → 2×3" in str(e)


def test_explain_missing_size():
    with pytest.raises(einderiv.ProgramError, match="the shape of input 'X' is not fixed"):
        explain("F[i,k] = W[i,j] X[j,k]", "W", sizes={"i": 2, "j": 3})


@pytest.mark.parametrize("sizes", [{"i": "m", "j": 3, "k": 4}, {"i": 2, "j": 3, "k": -1}, {"W": (2, 3.5), "X": (3, 4)}])
def test_explain_bad_sizes(sizes):
    with pytest.raises(einderiv.ShapeError, match=r"sizes\['(i|k|W)'\] must be a non-negative integer"):
        explain("F[i,k] = W[i,j] X[j,k]", "W", sizes=sizes)


def test_explain_inconsistent_sizes():
    with pytest.raises(einderiv.ShapeError, match="index 'j' has size"):
        explain("F[i,k] = W[i,j] X[j,k]", "W", sizes={"W": (2, 3), "X": (5, 4)})


def test_explain_no_matrix_form_row():
    # a rank-3 tensor has no matrix form: the index form stands alone
    rows = _rows(explain("F[i,j,k] = W[i,j] x[k]; L = F[i,j,k] F[i,j,k]", "W"))
    assert "gF: no matrix form" in rows and "gW: no matrix form" in rows
    assert "= gF[a,b,k] x[k]" in rows


def test_explain_latex():
    e = explain("F[i,k] = W[i,j] X[j,k]", "W", differentials=True)
    assert e.latex.startswith("\\begin{aligned}\n&\\text{Reverse mode for the gradient of L")     # the header first
    assert "\\\\\n&\\text{[1]}\\quad F_{ik} = W_{ij} X_{jk}\\qquad F = W X" in e.latex
    assert "\\frac{\\partial F_{ik}}{\\partial W_{ab}} = \\delta_{ia} \\delta_{jb} X_{jk}" in e.latex
    assert "\\mathrm{gW} = \\mathrm{gF} X^\\top" in e.latex
    assert e._repr_latex_() == f"$${e.latex}$$"


def test_explain_is_deterministic():
    assert str(explain(TWO_LAYER, NET_WRTS, differentials=True)) == \
        str(explain(TWO_LAYER, NET_WRTS, differentials=True))


def test_explanation_through_a_temporary_chains_its_gradient():
    # outside tester: the section of the temporary L_2 = b + 1 was taken for the seed and ended
    # "gb = ∂L_2/∂b = 1 (the seed: gL_2 = 1)", though the gradient is 32 here; L_1… were never defined
    text = "L = (a + 1) * (b + 1) * (c + 1) * (d + 1) * (x[i] + 1)"
    e = str(explain(text, "b"))
    assert "the seed: gL_2" not in e and "gb = ∂L_2/∂b = 1" not in e
    assert "gb = gL_2 ∂L_2/∂b" in e and "gL_2 = ∂L/∂L_2 = L_1 L_3 L_4 x[i] + L_1 L_3 L_4" in e
    header, body = e.split("\n\n", 1)
    assert "L_1 = a + 1; L_2 = b + 1; L_3 = c + 1; L_4 = d + 1" in header and "L_1 = a + 1" not in body.split("\n")[0]
    assert "[1] L_2 = b + 1      (a temporary of L = " in body
    inputs = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "x": np.array([1.0, 2.0])}
    assert einderiv.grad(text, "b", inputs) == 2 * 2 * 2 * (1 + 2 + 1)   # L_1 L_3 L_4 (Σ x + 1)
