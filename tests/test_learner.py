"""What a learner asks, answered by one command: local Jacobians, matrix forms, self-contained explanations."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from einderiv import ProgramError, evaluate, grad, jacobian, parse, vjp
from einderiv.cli.app import main

NETWORK = """H0[n,h] = X[n,d] W1[d,h]
H1[n,h] = H0[n,h] + b1[h]
H2[n,h] = relu(H1[n,h])
H3[n,c] = H2[n,h] W2[h,c]
Z[n,c] = H3[n,c] + b2[c]
L = Z[n,c] Z[n,c] / 2"""


def run(capsys, *argv: str) -> str:
    status = main(list(argv))
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out


def network_inputs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"X": rng.normal(size=(2, 3)), "W1": rng.normal(size=(3, 4)), "b1": rng.normal(size=4),
            "W2": rng.normal(size=(4, 2)), "b2": rng.normal(size=2)}


# ---------------------------------------------------------------- 4. local Jacobians of intermediates

def test_local_jacobian_of_an_identity_step_is_a_product_of_deltas():
    p = parse(NETWORK)
    assert str(p.derivative("H3", of="Z")) == "dZ[n,c]/dH3[a,b] = δ[n,a] δ[c,b]"
    assert str(p.derivative("H0", of="H1")) == "dH1[n,h]/dH0[a,b] = δ[n,a] δ[h,b]"


def test_cut_keeps_the_statements_from_the_intermediate_to_the_output():
    p = parse(NETWORK)
    assert p.cut(["H2"], "Z").text == "H3[n,c] = H2[n,h] W2[h,c]\nZ[n,c] = H3[n,c] + b2[c]"
    assert dict(p.cut(["H2"], "Z").inputs) == {"H2": 2, "W2": 2, "b2": 1}
    with pytest.raises(ProgramError, match="does not depend on 'H3'"):
        p.cut(["H3"], "H1")


def test_numeric_local_jacobian_matches_finite_differences():
    inputs = network_inputs()
    J = jacobian(NETWORK, "H0", inputs, of="H2")
    H0 = evaluate(NETWORK, inputs, of="H0")
    cut = parse(NETWORK).cut(["H0"], "H2")
    step = 1e-6
    for index in np.ndindex(H0.shape):
        bumped = H0.copy()
        bumped[index] += step
        lowered = H0.copy()
        lowered[index] -= step
        numeric = (evaluate(cut, {**inputs, "H0": bumped}) - evaluate(cut, {**inputs, "H0": lowered})) / (2 * step)
        np.testing.assert_allclose(J[(...,) + index], numeric, atol=1e-6)


def test_numeric_gradient_and_vjp_with_respect_to_intermediates():
    inputs = network_inputs()
    Z = evaluate(NETWORK, inputs, of="Z")
    np.testing.assert_allclose(grad(NETWORK, "H3", inputs), Z)                       # dL/dH3 = dL/dZ
    np.testing.assert_allclose(grad(NETWORK, "H2", inputs), Z @ inputs["W2"].T)
    G = np.arange(4.0).reshape(2, 2)
    np.testing.assert_allclose(vjp(NETWORK, "H3", inputs, G, of="Z"), G)
    np.testing.assert_allclose(jacobian(NETWORK, "H3", inputs, of="Z").reshape(4, 4), np.identity(4))


def test_cli_local_jacobian_of_an_intermediate(capsys):
    out = run(capsys, "jacobian", NETWORK, "--wrt", "H3", "--of", "Z", "--sizes", "n=1,d=2,h=3,c=2",
              "--layout", "numerator")
    assert "dZ[n,c]/dH3[a,b] = δ[n,a] δ[c,b]" in out
    assert "local: H3 is defined by a statement" in out
    assert "[[1. 0.]\n [0. 1.]]" in out
    assert run(capsys, "diff", NETWORK, "--wrt", "H0", "--of", "H1") == "dH1[n,h]/dH0[a,b] = δ[n,a] δ[h,b]\n"


def test_cli_derivative_of_an_output_it_does_not_reach(capsys):
    assert main(["jacobian", NETWORK, "--wrt", "H3", "--of", "H1", "--sizes", "n=1,d=2,h=3,c=2"]) == 2
    assert "does not depend on 'H3'" in capsys.readouterr().err
    with pytest.raises(ProgramError, match="does not depend"):
        jacobian(NETWORK, "H3", network_inputs(), of="H1")


# ---------------------------------------------------------------- 2. matrix and Kronecker forms on the command line

BACKPROP = "A4[n,j] = A3[n,i] W3[i,j]; A5[n,k] = A4[n,j] W4[j,k]; E = (A5[n,k] - R[n,k])^2 / 2"


def test_diff_matrix_prints_the_gradient_in_matrix_notation(capsys):
    out = run(capsys, "diff", BACKPROP, "--wrt", "W3,A3", "--matrix")
    assert "matrix form: dE/dW3 = A3ᵀ (A5 − R) W4ᵀ  (shaped like W3" in out
    assert "matrix form: dE/dA3 = (A5 − R) W4ᵀ W3ᵀ" in out


def test_diff_matrix_names_the_programs_own_kronecker_form(capsys):
    out = run(capsys, "diff", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W,X", "--matrix")
    assert "vec form: d vec(F)/d vec(W) = Xᵀ ⊗ I_i" in out
    assert "vec form: d vec(F)/d vec(X) = I_k ⊗ W" in out
    assert "dF/dW itself has 4 indices" in out
    ascii_out = run(capsys, "diff", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W", "--matrix", "--ascii")
    assert "d vec(F)/d vec(W) = kron(X^T, I_i)" in ascii_out and ascii_out.isascii()


def test_diff_matrix_says_why_there_is_none(capsys):
    out = run(capsys, "diff", "C[i,j,k] = A[i,j] x[k]", "--wrt", "x", "--matrix")
    assert "no matrix form: dC/dx has 4 indices (3 of C, 1 of x)" in out


def test_vec_layout_header_names_the_programs_kronecker_form_and_matches_the_values(capsys):
    text = run(capsys, "jacobian", "F[i,k] = W[i,j] X[j,k]", "--wrt", "X", "--input", "W=[[1,2],[3,4]]",
               "--sizes", "k=2", "--layout", "vec")
    assert "so here d vec(F)/d vec(X) = I_k ⊗ W" in text
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    J = jacobian("F[i,k] = W[i,j] X[j,k]", "X", {"W": W, "X": np.ones((2, 2))})
    from einderiv.cli.app import flatten_jacobian
    np.testing.assert_allclose(flatten_jacobian(J, 2, "vec"), np.kron(np.identity(2), W))


# ---------------------------------------------------------------- 1. self-contained explanations

MATMUL = "C[i,j] = A[i,k] B[k,j]"


def test_explain_defines_its_notation_where_it_first_appears(capsys):
    out = run(capsys, "explain", MATMUL, "--wrt", "A")
    head = out.split("\n\n")[0]
    assert "δ[i,a] is 1 when i = a and 0 otherwise" in head
    assert "an index repeated within a term is summed over" in head
    assert "to contract is to sum over the shared index" in head
    assert out.index("Notation:") < out.index("δ[i,a] δ[k,b] B[k,j]")


def test_explain_says_the_jacobian_of_a_tensor_output_is_not_backprops_matrix(capsys):
    out = run(capsys, "explain", MATMUL, "--wrt", "A,B")
    assert ("∂C[i,j]/∂A[a,b] has 4 indices (an order-4 tensor, not a matrix); backprop's gA = gC Bᵀ is that "
            "Jacobian contracted with the upstream gradient gC (summed over i, j), not the Jacobian itself") in out
    assert "backprop's gB = Aᵀ gC is that Jacobian contracted" in out


def test_each_matrix_form_says_why_its_factors_sit_where_they_do(capsys):
    out = run(capsys, "explain", BACKPROP, "--wrt", "W3")
    assert "why: the shared index n is A3's first axis, so A3 enters transposed, on the left" in out
    assert "why: the shared index k is W4's second axis, so W4 enters transposed, on the right" in out
    table = run(capsys, "grad", BACKPROP, "--wrt", "W3", "--explain")
    assert "from A4 = A3 W3: the shared index n is A3's first axis, so A3 enters transposed, on the left" in table


def test_rule_legends_use_placeholders_the_program_does_not_use(capsys):
    out = run(capsys, "explain", MATMUL, "--wrt", "A", "--differentials")
    legend = next(line for line in out.splitlines() if line.startswith("Differentials:"))
    assert "P : (Q S) = Qᵀ P : S = P Sᵀ : Q" in legend
    clash = run(capsys, "explain", "C[i,j] = P[i,k] Q[k,j]", "--wrt", "P", "--differentials")
    legend = next(line for line in clash.splitlines() if line.startswith("Differentials:"))
    assert "S : (M U) = Mᵀ S : U" in legend and " P : " not in legend


# ---------------------------------------------------------------- 9. notebooks

def test_reprs_are_short_and_readable():
    from einderiv.render.explanation import adjoint, explain
    from einderiv.numeric.hessian import symbolic_hessian
    assert repr(parse("F[i,k] = W[i,j] X[j,k]").derivative("W")) == "Derivative(dF[i,k]/dW[a,b] = δ[i,a] X[b,k])"
    assert repr(parse("L = x[i] A[i,j] x[j]")) == "Program('L = x[i] A[i,j] x[j]'; inputs x, A)"
    assert repr(parse(BACKPROP)) == "Program(3 statements A4, A5, E; inputs A3, W3, W4, R)"
    assert repr(symbolic_hessian("L = x[i] A[i,j] x[j]", "x")) == "Hessian(d²L/dx[a]dx[b] = A[a,b] + A[b,a])"
    assert repr(adjoint(BACKPROP, "W3")) == "AdjointProgram(dE/dW3: 3 steps)"
    assert repr(explain(BACKPROP, "W3")) == "Explanation(dE/dW3: 3 statements)"
    assert len(repr(parse(NETWORK))) < 120 and len(repr(parse(NETWORK).derivative("W1"))) < 140


def test_notebook_objects_render_latex_and_markdown_tables():
    from einderiv.render.explanation import adjoint, explain
    from einderiv.numeric.hessian import symbolic_hessian
    program = parse(BACKPROP)
    assert program._repr_latex_().startswith("$$\\begin{aligned}") and "&=" in program._repr_latex_()
    assert program.derivative("W3")._repr_latex_().startswith("$$\\frac{\\partial E}{\\partial \\mathrm{W3}_{ab}}")
    assert symbolic_hessian("L = x[i] A[i,j] x[j]", "x")._repr_latex_() == \
        "$$\\frac{\\partial^2 L}{\\partial x_{a}\\,\\partial x_{b}} = A_{ab} + A_{ba}$$"
    table = adjoint(BACKPROP, "W3")._repr_markdown_()
    assert "| index form | matrix form | from |" in table and "| `gW3[i,j] = gA4[n,j] A3[n,i]` | `gW3 = A3ᵀ gA4` |" in table
    text = explain(BACKPROP, "W3")._repr_markdown_()
    assert "| step | rule |" in text and "g&lt;T&gt;" not in text and "g&lt;T>" in text
    assert explain(BACKPROP, "W3")._repr_latex_().startswith("$$\\begin{aligned}")


# ---------------------------------------------------------------- 3. symbolic upstream

def test_symbolic_jacobian_and_vjp_side_by_side_in_the_learners_entries(capsys):
    out = run(capsys, "jacobian", MATMUL, "--wrt", "B", "--sizes", "i=1,k=3,j=2", "--symbolic",
              "--upstream", "G", "--layout", "numerator")
    jacobian_part, vjp_part = out.split("\n\n")
    assert "[[a1, 0, a2, 0, a3, 0],\n [0, a1, 0, a2, 0, a3]]" in jacobian_part
    assert vjp_part.startswith("G[i,j] dC[i,j]/dB[a,b] = G[i,b] A[i,a]\n")
    assert "matrix: Aᵀ G  (the gradient of B that backprop computes)" in vjp_part
    assert "[[a1*g1, a1*g2],\n [a2*g1, a2*g2],\n [a3*g1, a3*g2]]" in vjp_part


def test_symbolic_vjp_with_given_upstream_numbers_matches_the_numeric_vjp(capsys):
    pytest.importorskip("sympy")
    from einderiv.numeric.symbolic import symbolic_vjp
    values = {"A": np.array([[1.0, 2.0, 3.0]]), "G": np.array([[1.0, -1.0]])}
    result = symbolic_vjp(parse(MATMUL), "B", {"A": (1, 3), "B": (3, 2), "G": (1, 2)}, "G", values=values)
    expected = vjp(MATMUL, "B", {"A": values["A"], "B": np.ones((3, 2))}, values["G"])
    np.testing.assert_allclose(result.astype(float), expected)
    out = run(capsys, "jacobian", MATMUL, "--wrt", "A", "--sizes", "i=1,k=3,j=2", "--symbolic",
              "--upstream", "G=[[1,-1]]")
    assert "[[b11 - b12, b21 - b22, b31 - b32]]" in out


# ---------------------------------------------------------------- 5. traps guarded

def test_matrix_notation_by_habit_warns_and_shows_the_index_form(capsys):
    with pytest.warns(einderiv.EinderivWarning, match=r"A and B have no indices, so they are scalars.*"
                                                      r"C\[i,j\] = A\[i,k\] B\[k,j\]"):
        parse("C = A B")
    assert main(["diff", "D = A B C", "--wrt", "A"]) == 0
    err = capsys.readouterr().err
    assert "einderiv: warning:" in err and "D[i,j] = A[i,k] B[k,l] C[l,j]" in err


def test_scalar_products_of_lowercase_names_do_not_warn():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parse("s = a b")
        parse("C[i,j] = A[i,k] B[k,j]")


def test_a_transposed_one_index_form_notes_the_column_vector_convention(capsys):
    out = run(capsys, "diff", "Y[j] = X[i] W[i,j]", "--wrt", "W", "--matrix")
    assert "vectors are columns here: in Y[j] = X[i] W[i,j], Wᵀ X is what a text with row vectors writes X W, " \
           "X a row (the same numbers)" in out
    assert "Note: vectors are columns here" in run(capsys, "explain", "Y[j] = X[i] W[i,j]", "--wrt", "W")
    assert "vectors are columns" not in run(capsys, "diff", "y[i] = A[i,j] x[j]", "--wrt", "A", "--matrix")


# ---------------------------------------------------------------- 6. consistent shapes

def test_bias_gradients_are_columns(capsys):
    table = run(capsys, "grad", NETWORK, "--wrt", "b1,b2", "--explain")
    assert "gb2 = gZᵀ 1" in table and "gb1 = gH1ᵀ 1" in table and "= 1ᵀ" not in table
    from einderiv.render.matrix import to_matrix
    form = to_matrix(parse("s[c] = G[n,c]").statements[0].rhs)
    assert (form.text, form.layout) == ("Gᵀ 1", "column")
    G = np.arange(6.0).reshape(3, 2)
    np.testing.assert_allclose(form.evaluate({"G": G}), G.sum(axis=0))


def test_block_labels_and_symbols_count_from_one(capsys):
    out = run(capsys, "jacobian", "y[i] = A[i,j] x[j]", "--wrt", "x", "--sizes", "i=2,j=2", "--symbolic")
    assert "dy[1]/dx =\n[a11, a12]" in out and "dy[2]/dx =\n[a21, a22]" in out
    assert "dy[0]" not in out and "counted from 1" in out
    from einderiv.numeric.symbolic import symbol_names
    assert symbol_names({"W": (2, 10)})["W"][0, 0] == "W[1,1]"


# ---------------------------------------------------------------- 8. explain: ASCII, shapes, LaTeX

SOFTMAX = "P[n,c] = exp(S[n,c]) / sum[d](exp(S[n,d])); L = -T[n,c] log(P[n,c]) / N"


@pytest.mark.parametrize("program, wrt", [(NETWORK, "W1,b1,W2,b2"), (SOFTMAX, "S"), (MATMUL, "A,B"),
                                          ("L = x[i] A[i,j] x[j]", "x"), ("y[j] = sigmoid(x[i] W[i,j])", "W")])
def test_explain_ascii_is_ascii(capsys, program, wrt):
    out = run(capsys, "explain", program, "--wrt", wrt, "--differentials", "--ascii")
    assert out.isascii(), [c for c in out if not c.isascii()]
    assert "delta(" in out or "delta" not in run(capsys, "explain", program, "--wrt", wrt)
    table = run(capsys, "grad", program, "--wrt", wrt, "--explain", "--ascii")
    assert table.isascii()


def test_explain_infers_shapes_across_statements_as_grad_does(capsys):
    out = run(capsys, "explain", "y[i] = A[i,j] x[j]; L = y[i] y[i]", "--wrt", "x", "--sizes", "i=2,j=3")
    assert "(y: 2)" in out or "y: 2" in out
    assert main(["explain", "y[i] = A[i,j] x[j]; L = y[i] y[i]", "--wrt", "x", "--sizes", "i=2"]) == 2
    assert "give --sizes j=N" in capsys.readouterr().err


def test_explain_latex_keeps_the_header_and_no_unicode_in_text(capsys):
    import re
    out = run(capsys, "explain", MATMUL, "--wrt", "A", "--differentials", "--format", "latex")
    assert r"\text{Notation: $\delta$[i,a] is 1 when i = a and 0 otherwise" in out
    assert r"\text{Reverse mode for the gradient of L" in out
    for body in re.findall(r"\\text\{((?:[^{}]|\{[^{}]*\})*)\}", out):
        assert body.isascii(), body


# ---------------------------------------------------------------- 7. what a textbook writes

def test_softmax_cross_entropy_gradient_is_written_with_the_named_probabilities(capsys):
    d = parse(SOFTMAX).derivative("S")
    assert str(d) == "dL/dS[a,b] = -T[a,b] / N + T[a,c] P[a,b] / N"
    out = run(capsys, "diff", SOFTMAX, "--wrt", "S", "--matrix")
    assert "exp" not in out
    assert "where each row of T sums to 1 (Σ_c T[·,c] = 1: one-hot labels or probabilities), this is (−T + P) / N" in out
    # the printed form is the gradient: check against the numeric one
    rng = np.random.default_rng(1)
    S, T = rng.normal(size=(3, 4)), rng.dirichlet(np.ones(4), size=3)
    inputs = {"S": S, "T": T, "N": np.array(3.0)}
    P = evaluate(SOFTMAX, inputs, of="P")
    np.testing.assert_allclose(grad(SOFTMAX, "S", inputs), (P - T) / 3)
    np.testing.assert_allclose(grad(SOFTMAX, "S", inputs), (-T + T.sum(axis=1, keepdims=True) * P) / 3)


def test_half_a_fold_is_not_taken():
    # y = σ(z) folded into one σ(z) of σ(z) − σ(z)² but not the other would hide σ' = σ (1 − σ)
    assert str(parse("y[i] = sigmoid(z[i]); L = y[i] y[i]").derivative("z")) == \
        "dL/dz[a] = 2 (sigmoid(z[a]) - sigmoid(z[a])^2) y[a]"
