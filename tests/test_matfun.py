"""Matrix functions inv, det and logdet: values, every derivative mode against finite
differences and closed forms, printed δ-forms that read back, numerics and errors.
Each test is headed by the identity it checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import einderiv
from einderiv import EinderivWarning, ProgramError, ShapeError, SingularMatrixError
from helpers import assert_close, fd_jacobian, numeric_jacobian

N = 4
GAUSSIAN = "L = 0.5 x[i] inv(S)[i,j] x[j] + 0.5 logdet(S)"

# (program, inputs it differentiates with respect to)
PROGRAMS = [
    ("Y[i,j] = inv(A)[i,j]", ["A"]),
    ("L = det(A)", ["A"]),
    ("L = logdet(A)", ["A"]),
    ("y[i] = inv(A)[i,j] x[j]", ["A", "x"]),
    ("y[j] = x[i] inv(A)[i,j]", ["A", "x"]),
    ("y[i] = inv(A[i,j] + B[i,j])[i,j] x[j]", ["A", "B"]),
    ("y[i] = inv(A[j,i])[i,j] x[j]", ["A"]),
    ("L = logdet(X[k,i] X[k,j])", ["X"]),
    ("M[i,j] = A[i,k] B[k,j]; L = det(M) + inv(M)[i,i]", ["A", "B"]),
    ("L = exp(0.1 logdet(A)) + sum[i,j](inv(A)[i,j] x[j])^2", ["A", "x"]),
    (GAUSSIAN, ["S", "x"]),
    ("L = logdet(inv(A)[i,j] + B[i,j])", ["A", "B"]),
    ("t = inv(A[i,j] + B[i,j])[k,k]", ["A"]),
    ("y[k] = inv(A[j,i] + B[i,j])[k,l] x[l]", ["A", "x"]),
    # a batch of matrices C[b,·,·]
    ("Y[b,i,j] = inv(C)[b,i,j]", ["C"]),
    ("d[b] = det(C)[b]", ["C"]),
    ("L = logdet(C)[b] + 0.1 det(C)[b]", ["C"]),
    ("y[b,i] = inv(C)[b,i,j] x[j]", ["C", "x"]),
    ("t[b] = inv(C)[b,i,i]", ["C"]),
]


@pytest.fixture
def inputs():
    rng = np.random.default_rng(11)
    A = rng.normal(size=(N, N)) + N * np.eye(N)
    S = A @ A.T + np.eye(N)
    C = rng.normal(size=(3, N, N)) + N * np.eye(N)
    return {"A": A, "B": rng.normal(size=(N, N)) * 0.3, "S": S, "x": rng.normal(size=N),
            "X": rng.normal(size=(N + 2, N)), "C": C}


def _needed(program, inputs):
    return {n: inputs[n] for n, _ in einderiv.parse(program).inputs}


# ---------------------------------------------------------------- values

def test_values_match_numpy(inputs):
    # inv(A)[i,j] = (A⁻¹)ᵢⱼ, det(A), logdet(A) = log|det A|, inv(A)[i,i] = tr A⁻¹
    A, B, x = inputs["A"], inputs["B"], inputs["x"]
    assert_close(einderiv.evaluate("Y[i,j] = inv(A)[i,j]", {"A": A}), np.linalg.inv(A))
    assert_close(einderiv.evaluate("d = det(A)", {"A": A}), np.linalg.det(A))
    assert_close(einderiv.evaluate("d = logdet(A)", {"A": A}), np.linalg.slogdet(A)[1])
    assert_close(einderiv.evaluate("t = inv(A)[i,i]", {"A": A}), np.trace(np.linalg.inv(A)))
    assert_close(einderiv.evaluate("y[i] = inv(A[i,j] + B[i,j])[i,j] x[j]", {"A": A, "B": B, "x": x}),
                 np.linalg.solve(A + B, x))
    # the indices after the call name the argument's rows and columns: inv(A[j,i])[i,j] is (Aᵀ)⁻¹
    assert_close(einderiv.evaluate("Y[i,j] = inv(A[j,i])[i,j]", {"A": A}), np.linalg.inv(A.T))
    # otherwise rows are the free index written first
    assert_close(einderiv.evaluate("Y[p,q] = inv(A[j,i])[p,q]", {"A": A}), np.linalg.inv(A))
    # an index written twice inside the argument is summed there: (XᵀX)⁻¹
    X = inputs["X"]
    assert_close(einderiv.evaluate("Y[i,j] = inv(X[k,i] X[k,j])[i,j]", {"X": X}), np.linalg.inv(X.T @ X))


def test_batched_values_match_numpy(inputs):
    # inv(C)[b,i,j], det(C)[b], logdet(C)[b] over a leading batch index
    C, x = inputs["C"], inputs["x"]
    assert_close(einderiv.evaluate("Y[b,i,j] = inv(C)[b,i,j]", {"C": C}), np.linalg.inv(C))
    assert_close(einderiv.evaluate("d[b] = det(C)[b]", {"C": C}), np.linalg.det(C))
    assert_close(einderiv.evaluate("d[b] = logdet(C)[b]", {"C": C}), np.linalg.slogdet(C)[1])
    assert_close(einderiv.evaluate("t[b] = inv(C)[b,i,i]", {"C": C}), np.trace(np.linalg.inv(C), axis1=1, axis2=2))
    assert_close(einderiv.evaluate("y[b,i] = inv(C)[b,i,j] x[j]", {"C": C, "x": x}), np.linalg.inv(C) @ x)
    # ∂logdet(C)[b]/∂C[a,c,e] = δ[b,a] inv(C)[b,e,c]
    assert str(einderiv.parse("d[b] = logdet(C)[b]").derivative("C")) == "dd[b]/dC[a,c,d] = inv(C)[b,d,c] δ[b,a]"
    singular = np.stack([np.eye(2), np.ones((2, 2))])
    with pytest.raises(SingularMatrixError, match=r"'C' is singular \(matrix \(1,\) of the batch\)"):
        einderiv.evaluate("d[b] = logdet(C)[b]", {"C": singular})


def test_logdet_is_log_abs_det_like_slogdet():
    # logdet(A) = log|det A| (numpy's slogdet), also for a negative determinant
    A = np.array([[0.0, 2.0], [3.0, 0.0]])
    assert_close(einderiv.evaluate("L = logdet(A)", {"A": A}), np.log(6.0))
    assert_close(einderiv.evaluate("L = det(A)", {"A": A}), -6.0)


def test_gaussian_nll_value_and_gradient_in_closed_form(inputs):
    # L = ½(xᵀS⁻¹x + logdet S): gx = S⁻¹x, gS = ½(S⁻¹ − S⁻¹xxᵀS⁻¹)
    S, x = inputs["S"], inputs["x"]
    inverse = np.linalg.inv(S)
    value = einderiv.evaluate(GAUSSIAN, {"S": S, "x": x})
    assert_close(value, 0.5 * (x @ inverse @ x + np.linalg.slogdet(S)[1]))
    g = einderiv.grad(GAUSSIAN, ["x", "S"], {"S": S, "x": x})
    assert_close(g["x"], inverse @ x)
    assert_close(g["S"], 0.5 * (inverse - np.outer(inverse @ x, inverse @ x)))


def test_closed_form_gradients(inputs):
    # ∂det/∂A = det(A) A⁻ᵀ, ∂logdet/∂A = A⁻ᵀ, ∂inv(A)[i,j]/∂A[a,b] = −A⁻¹[i,a] A⁻¹[b,j]
    A = inputs["A"]
    inverse = np.linalg.inv(A)
    assert_close(einderiv.grad("L = det(A)", "A", {"A": A}), np.linalg.det(A) * inverse.T)
    assert_close(einderiv.grad("L = logdet(A)", "A", {"A": A}), inverse.T)
    assert_close(einderiv.jacobian("Y[i,j] = inv(A)[i,j]", "A", {"A": A}),
                 -np.einsum("ia,bj->ijab", inverse, inverse))
    # vjp of inv: −A⁻ᵀ G A⁻ᵀ
    G = np.arange(N * N, dtype=float).reshape(N, N)
    assert_close(einderiv.vjp("Y[i,j] = inv(A)[i,j]", "A", {"A": A}, G), -inverse.T @ G @ inverse.T)


# ---------------------------------------------------------------- every mode against finite differences

@pytest.mark.parametrize("program,wrts", PROGRAMS, ids=[p for p, _ in PROGRAMS])
def test_jacobian_vjp_jvp_match_finite_differences(program, wrts, inputs):
    values = _needed(program, inputs)
    out = np.asarray(einderiv.evaluate(program, values))
    rng = np.random.default_rng(3)
    for w in wrts:
        expected = fd_jacobian(program, w, values)
        J = einderiv.jacobian(program, w, values)
        assert_close(J, expected, rtol=1e-5, atol=1e-6, msg=f"{program} d/d{w}")
        cotangent = rng.normal(size=out.shape)
        assert_close(einderiv.vjp(program, w, values, cotangent),
                     np.tensordot(cotangent, J, axes=out.ndim), msg=f"vjp {w}")
        tangent = rng.normal(size=values[w].shape)
        assert_close(einderiv.jvp(program, {w: tangent}, values),
                     np.tensordot(J, tangent, axes=tangent.ndim), msg=f"jvp {w}")
        if out.ndim == 0:
            assert_close(einderiv.grad(program, w, values), J, msg=f"grad {w}")


SCALAR_PROGRAMS = [(p, w) for p, w in PROGRAMS if einderiv.parse(p).rank(einderiv.parse(p).output) == 0]


@pytest.mark.parametrize("program,wrts", SCALAR_PROGRAMS, ids=[p for p, _ in SCALAR_PROGRAMS])
def test_hessian_and_hvp_match_finite_differences_of_the_gradient(program, wrts, inputs):
    values = _needed(program, inputs)
    w = wrts[0]
    H = einderiv.hessian(program, w, values)
    expected = numeric_jacobian(lambda v: einderiv.grad(program, w, {**values, w: v}), values[w])
    assert_close(H, expected, rtol=1e-5, atol=1e-6, msg=program)
    v = np.random.default_rng(4).normal(size=values[w].shape)
    assert_close(einderiv.hvp(program, w, values, v), np.tensordot(H, v, axes=v.ndim), msg=program)


def test_logdet_hessian_closed_form(inputs):
    # ∂²logdet(A)/∂A[a,b]∂A[c,d] = −A⁻¹[b,c] A⁻¹[d,a]
    A = inputs["A"]
    inverse = np.linalg.inv(A)
    assert_close(einderiv.hessian("L = logdet(A)", "A", {"A": A}), -np.einsum("bc,da->abcd", inverse, inverse))
    assert str(einderiv.symbolic_hessian("L = logdet(A)", "A")) == "d²L/dA[a,b]dA[c,d] = -inv(A)[b,c] inv(A)[d,a]"


# ---------------------------------------------------------------- printed δ-forms

def test_printed_derivatives_in_delta_form():
    # ∂inv(A)[i,j]/∂A[a,b] = −inv(A)[i,a] inv(A)[b,j]; ∂det = det(A) inv(A)[b,a]; ∂logdet = inv(A)[b,a]
    assert str(einderiv.parse("Y[i,j] = inv(A)[i,j]").derivative("A")) == \
        "dY[i,j]/dA[a,b] = -inv(A)[i,a] inv(A)[b,j]"
    assert str(einderiv.parse("L = det(A)").derivative("A")) == "dL/dA[a,b] = det(A) inv(A)[b,a]"
    assert str(einderiv.parse("L = logdet(A)").derivative("A")) == "dL/dA[a,b] = inv(A)[b,a]"


@pytest.mark.parametrize("program,wrts", PROGRAMS, ids=[p for p, _ in PROGRAMS])
def test_printed_derivatives_read_back_to_the_jacobian(program, wrts, inputs):
    values = _needed(program, inputs)
    parsed = einderiv.parse(program)
    computed = {**values, **{n: einderiv.evaluate(program, values, of=n) for n in parsed.names}}
    for w in wrts:
        derivative = parsed.derivative(w)
        if derivative.chain:
            continue        # named intermediates print as dL/dT, not a single statement
        lhs, rhs = derivative.to_text(ascii=True).split(" = ", 1)
        if "delta(" in rhs:
            continue        # the language does not read delta(i,a) back yet (a separate, known gap)
        out = [n for n in (derivative.out_indices + derivative.wrt_indices)]
        names = ",".join(einderiv.core.ir.display_name(i) for i in out)
        text = f"D[{names}] = {rhs}" if names else f"D = {rhs}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EinderivWarning)
            again = einderiv.evaluate(text, {n: computed[n] for n, _ in einderiv.parse(text).inputs})
        assert_close(again, einderiv.jacobian(program, w, values), msg=text)


def test_explanation_latex_and_matrix_forms():
    # d(A⁻¹) = −A⁻¹ dA A⁻¹ and d logdet A = tr(A⁻¹ dA), in words;
    # matrix forms −A⁻ᵀ G A⁻ᵀ, det(A) A⁻ᵀ, A⁻ᵀ
    text = str(einderiv.explain("Y[i,j] = inv(A)[i,j]", "A"))
    assert "d(A⁻¹) = -A⁻¹ dA A⁻¹" in text
    assert "d logdet A = tr(A⁻¹ dA)" in str(einderiv.explain("L = logdet(A)", "A"))
    assert "gA = -A⁻ᵀ gY A⁻ᵀ" in str(einderiv.adjoint("Y[i,j] = inv(A)[i,j]", "A"))
    assert str(einderiv.to_matrix(einderiv.parse("L = det(A)").derivative("A"))) == "det(A) A⁻ᵀ"
    assert str(einderiv.to_matrix(einderiv.parse("L = logdet(A)").derivative("A"))) == "A⁻ᵀ"
    # d vec(A⁻¹) = −(A⁻ᵀ ⊗ A⁻¹) d vec(A)
    assert str(einderiv.kronecker_form(einderiv.parse("Y[i,j] = inv(A)[i,j]").derivative("A"))) == "-A⁻ᵀ ⊗ A⁻¹"
    assert einderiv.to_latex(einderiv.parse("L = logdet(A)").derivative("A")) == \
        r"\frac{\partial L}{\partial A_{ab}} = \left(A^{-1}\right)_{ba}"


def test_codegen_computes_the_gaussian_gradient(inputs):
    source = einderiv.codegen(GAUSSIAN, ["x", "S"])
    namespace: dict = {}
    exec(compile(source, "<generated>", "exec"), namespace)   # our own generated code, not user text
    S, x = inputs["S"], inputs["x"]
    value, grads = namespace["value_and_grad"](S=S, x=x)
    assert_close(value, einderiv.evaluate(GAUSSIAN, {"S": S, "x": x}))
    assert_close(grads["S"], einderiv.grad(GAUSSIAN, "S", {"S": S, "x": x}))


# ---------------------------------------------------------------- numerics

def test_inverse_times_vector_is_a_solve_not_an_inverse(inputs, monkeypatch):
    # inv(A)[i,j] x[j] → solve(A, x); x[i] inv(A)[i,j] → solve(Aᵀ, x)
    A, x = inputs["A"], inputs["x"]
    einderiv.clear_cache()

    def refuse(*args, **kwargs):
        raise AssertionError("an explicit inverse was formed")
    monkeypatch.setattr(np.linalg, "inv", refuse)
    assert_close(einderiv.evaluate("y[i] = inv(A)[i,j] x[j]", {"A": A, "x": x}), np.linalg.solve(A, x))
    assert_close(einderiv.evaluate("y[j] = x[i] inv(A)[i,j]", {"A": A, "x": x}), np.linalg.solve(A.T, x))
    assert_close(einderiv.evaluate(GAUSSIAN, {"S": inputs["S"], "x": x}),
                 0.5 * (x @ np.linalg.solve(inputs["S"], x) + np.linalg.slogdet(inputs["S"])[1]))
    assert_close(einderiv.grad(GAUSSIAN, "x", {"S": inputs["S"], "x": x}), np.linalg.solve(inputs["S"], x))
    # derivatives too: vjp −A⁻ᵀg (A⁻¹x)ᵀ and jvp −A⁻¹ T A⁻¹x are solves
    g, T = np.arange(float(N)), np.ones((N, N))
    inverse = np.linalg.solve(A, np.diagflat(np.ones(N)))
    assert_close(einderiv.vjp("y[i] = inv(A)[i,j] x[j]", "A", {"A": A, "x": x}, g),
                 -np.outer(inverse.T @ g, inverse @ x))
    assert_close(einderiv.jvp("y[i] = inv(A)[i,j] x[j]", {"A": T}, {"A": A, "x": x}), -inverse @ T @ inverse @ x)


def test_each_matrix_is_factored_once_per_run(inputs, monkeypatch):
    # one inverse for the value and every derivative that uses it
    calls = []
    real = np.linalg.inv
    monkeypatch.setattr(np.linalg, "inv", lambda m: calls.append(1) or real(m))
    einderiv.clear_cache()
    einderiv.grad("L = det(A) + inv(A)[i,i] + logdet(A)", "A", {"A": inputs["A"]})
    assert len(calls) == 1


def test_singular_matrix_is_a_clear_error():
    with pytest.raises(SingularMatrixError, match="'A' is singular"):
        einderiv.evaluate("Y[i,j] = inv(A)[i,j]", {"A": np.ones((3, 3))})
    with pytest.raises(SingularMatrixError, match="'A' is singular"):
        einderiv.evaluate("L = logdet(A)", {"A": np.zeros((2, 2))})
    with pytest.raises(SingularMatrixError, match=r"the matrix of inv\(A\[i,j\] \+ B\[i,j\]\) is singular"):
        einderiv.evaluate("y[i] = inv(A[i,j] + B[i,j])[i,j] x[j]",
                          {"A": np.eye(2), "B": -np.eye(2), "x": np.ones(2)})


def test_nearly_singular_matrix_warns_with_its_condition_number():
    A = np.array([[1.0, 1.0], [1.0, 1.0 + 1e-10]])
    with pytest.warns(EinderivWarning, match=r"'A' is nearly singular: its condition number is 4e\+10"):
        einderiv.evaluate("Y[i,j] = inv(A)[i,j]", {"A": A})


def test_well_conditioned_matrices_do_not_warn(inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", EinderivWarning)
        einderiv.evaluate("L = logdet(A) + det(A)", {"A": inputs["A"]})
        einderiv.grad(GAUSSIAN, ["S", "x"], {"S": inputs["S"], "x": inputs["x"]})


def test_non_square_matrix_is_a_shape_error_naming_it():
    with pytest.raises(ShapeError, match=r"det\(\.\.\.\) needs a square matrix, but 'A' is 2×3"):
        einderiv.evaluate("L = det(A)", {"A": np.ones((2, 3))})
    with pytest.raises(ShapeError, match=r"logdet\(\.\.\.\) needs a square matrix, but its argument "
                                         r"\(X\[i,k\] Y\[k,j\]\) is 2×4"):
        einderiv.evaluate("L = logdet(X[i,k] Y[k,j])", {"X": np.ones((2, 3)), "Y": np.ones((3, 4))})


# ---------------------------------------------------------------- the language's errors

@pytest.mark.parametrize("program,message", [
    ("Y[i,j] = inv(A)", r"inv\(\.\.\.\) is a matrix: index it with two indices"),
    ("L = det(A[i,j] + B[i,j])[k]", r"det\(\.\.\.\) of an expression is a scalar: write no indices after the "
                                    r"call; a batch of matrices \(det\(A\)\[b\]\) takes a tensor name"),
    ("Y[b,i,j] = inv(A[i,j] + B[i,j])[b,i,j]", r"a batch of matrices \(inv\(A\)\[b,i,j\]\) takes a tensor name"),
    ("Y[b,j] = inv(A)[b,b,j]", r"the batch indices of inv\(\.\.\.\) must differ from each other and from its row"),
    ("L = det(A, B)", r"'det' takes one argument"),
    ("L = logdet(A[i,j] x[j])", r"exactly two free indices .* it has 1: 'i'"),
    ("L = logdet(A[i,j] x[k])", r"exactly two free indices .* it has 3: 'i', 'j', 'k'"),
    ("L = logdet(A[i,j] + B[i,i])",
     r"index 'i' is a row or column index of the argument of logdet\(\.\.\.\) but is written twice"),
    ("L = logdet(A[i,j] B[i,j] C[i,k])", r"index 'i' is written 3 times in one term"),
    ("y[i] = exp(x[i])[i]", r"'exp\(\.\.\.\)' is elementwise: no indices follow the call"),
    ("L = logdet(A); M = A[i,j,k]", r"input 'A' is used with 3 indices here but with 2"),
    ("L = foo(A)", r"unknown function 'foo'.*inv, det, logdet"),
])
def test_language_errors(program, message):
    with pytest.raises(ProgramError, match=message):
        einderiv.parse(program)


def test_no_summation_trap_warning_inside_a_matrix_argument():
    # X[k,i] X[k,j] inside logdet sums k there (Einstein's convention), on purpose
    with warnings.catch_warnings():
        warnings.simplefilter("error", EinderivWarning)
        einderiv.parse("L = logdet(X[k,i] X[k,j])")


# ---------------------------------------------------------------- SymPy

def test_symbolic_entries_agree_with_sympy_differentiation():
    # d logdet(A)/dA = A⁻ᵀ and d inv(A)/dA, entry by entry, against sympy.diff of the symbolic value
    sympy = pytest.importorskip("sympy")
    from einderiv.numeric.symbolic import symbolic_jacobian, symbolic_value
    for text in ["L = logdet(A)", "L = det(A)", "Y[i,j] = inv(A)[i,j]", "y[i] = inv(A[i,j] + B[i,j])[i,j] x[j]"]:
        program = einderiv.parse(text)
        shapes = {"A": (2, 2), "B": (2, 2), "x": (2,)}
        shapes = {n: shapes[n] for n, _ in program.inputs}
        value = np.asarray(symbolic_value(program, shapes), dtype=object)
        J = symbolic_jacobian(program, "A", shapes)
        symbols = np.asarray(symbolic_value(einderiv.parse("Z[i,j] = A[i,j]"), {"A": (2, 2)}), dtype=object)
        everything = set().union(*(sympy.sympify(v).free_symbols for v in value.ravel()))
        point = {symbol: 0.3 + 0.1 * k + (2.0 if str(symbol).endswith(("11", "22")) else 0.0)
                 for k, symbol in enumerate(sorted(everything, key=str))}     # a well-conditioned point
        for out in np.ndindex(*value.shape):
            for entry in np.ndindex(2, 2):
                difference = J[out + entry] - sympy.diff(value[out], symbols[entry])
                assert abs(float(sympy.sympify(difference).subs(point))) < 1e-12, text


def test_symbolic_singular_matrix_is_a_clear_error():
    pytest.importorskip("sympy")
    from einderiv.numeric.symbolic import symbolic_value
    with pytest.raises(SingularMatrixError, match=r"the matrix of inv\(A\) is singular: its determinant is 0"):
        symbolic_value(einderiv.parse("Y[i,j] = inv(A)[i,j]"), {"A": (2, 2)}, values={"A": np.ones((2, 2))})


def test_a_plan_that_needs_the_inverse_factors_once(inputs, monkeypatch):
    # the Gaussian gradient needs S⁻¹ itself (gS), so its solves multiply by it: one inverse, no solve
    calls = {"inv": 0, "solve": 0}
    real_inv, real_solve = np.linalg.inv, np.linalg.solve

    def inv(m):
        calls["inv"] += 1
        return real_inv(m)

    def solve(m, b):
        calls["solve"] += 1
        return real_solve(m, b)
    monkeypatch.setattr(np.linalg, "inv", inv)
    monkeypatch.setattr(np.linalg, "solve", solve)
    einderiv.clear_cache()
    einderiv.grad(GAUSSIAN, ["x", "S"], {"S": inputs["S"], "x": inputs["x"]})
    assert calls == {"inv": 1, "solve": 0}


def test_empty_and_non_finite_matrices_propagate_like_numpy():
    # a 0×0 matrix: det 1, logdet 0, an empty inverse; NaN entries give NaN, not a singularity error
    empty = np.zeros((0, 0))
    assert einderiv.evaluate("L = logdet(A)", {"A": empty}) == 0.0
    assert einderiv.evaluate("L = det(A)", {"A": empty}) == 1.0
    assert einderiv.grad("L = logdet(A)", "A", {"A": empty}).shape == (0, 0)
    bad = np.array([[np.nan, 1.0], [0.0, 1.0]])
    assert np.isnan(einderiv.evaluate("L = logdet(A)", {"A": bad}))
    assert np.isnan(einderiv.evaluate("Y[i,j] = inv(A)[i,j]", {"A": bad})).any()


def test_float32_stays_float32(inputs):
    A = inputs["A"].astype(np.float32)
    x = inputs["x"].astype(np.float32)
    y = einderiv.evaluate("y[i] = inv(A)[i,j] x[j]", {"A": A, "x": x})
    g = einderiv.grad("L = logdet(A)", "A", {"A": A})
    assert y.dtype == np.float32 and g.dtype == np.float32
    assert_close(g, np.linalg.inv(inputs["A"]).T, rtol=1e-4, atol=1e-5)


def test_a_symmetric_argument_takes_its_log_determinant_from_cholesky(monkeypatch):
    # logdet(XᵀX) = 2 Σ log L[i,i] with XᵀX = L Lᵀ; a symmetric indefinite argument falls back to slogdet
    rng = np.random.default_rng(8)
    X, A = rng.normal(size=(6, 3)), rng.normal(size=(3, 3))
    expected = np.linalg.slogdet(X.T @ X)[1]
    calls = []
    real = np.linalg.slogdet
    monkeypatch.setattr(np.linalg, "slogdet", lambda m: calls.append(1) or real(m))
    einderiv.clear_cache()
    assert_close(einderiv.evaluate("L = logdet(X[k,i] X[k,j])", {"X": X}), expected)
    assert calls == []
    assert_close(einderiv.evaluate("L = logdet(A[i,j] + A[j,i])", {"A": A}), np.log(abs(np.linalg.det(A + A.T))))
    assert calls == [1]


# A product of sums that multiplies out to more than 16 terms keeps its sums whole as temporaries;
# a matrix function's argument indices are its own there too, and a bare name keeps its two axes.
BIG_PRODUCT = "(a + b) * (c + d) * (e + f) * (g + h)"


def _scalars_and(**arrays):
    return {**{k: 1.0 for k in "abcdefgh"}, **arrays}


@pytest.mark.parametrize("tail, expected", [
    ("(x[i] + y[i] logdet(M[p,q]))", 16 * (6 + 3 * 1.0)),
    ("(x[i] + y[i] logdet(M[j,k] + M[k,j]))", 16 * (6 + 3 * np.log(8 * np.e))),
    ("(x[i] + y[i] inv(M[j,k] + M[k,j])[i,i])", 16 * (6 + 1 / (2 * np.e) + 0.5 + 0.5)),
    ("(x[i] + det(M))", 16 * (6 + np.e)),     # the summation rule per term: det(M) is not summed over i
])
def test_matrix_functions_in_a_product_kept_whole_sum_only_their_own_indices(tail, expected):
    inputs = _scalars_and(x=np.array([1.0, 2.0, 3.0]), y=np.ones(3), M=np.diag([np.e, 1.0, 1.0]))
    program = f"T = {BIG_PRODUCT} * {tail}"
    assert einderiv.evaluate(program, inputs) == pytest.approx(expected, rel=1e-12)
    gradient = einderiv.grad(program, "x", inputs)
    np.testing.assert_allclose(gradient, np.full(3, 16.0), rtol=1e-12)


def test_a_bare_matrix_in_a_product_kept_whole_parses_with_its_two_axes():
    program = einderiv.parse(f"T = {BIG_PRODUCT} * (p + det(M))")
    assert dict(program.inputs)["M"] == 2
    value = einderiv.evaluate(program, _scalars_and(p=1.0, M=np.diag([2.0, 3.0])))
    assert value == pytest.approx(16 * 7.0)


def test_a_delta_in_a_product_kept_whole_keeps_its_indices():
    value = einderiv.evaluate(f"T[i,j] = {BIG_PRODUCT} * (1 + delta(i,j))", _scalars_and(), sizes={"i": 2, "j": 2})
    np.testing.assert_array_equal(value, [[32.0, 16.0], [16.0, 32.0]])


def test_temporaries_are_not_named_in_the_matrix_habit_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        einderiv.parse(f"T = {BIG_PRODUCT} * (p + q)")
