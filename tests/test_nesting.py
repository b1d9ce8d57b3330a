"""Growth that must stay polynomial: deep nesting and products of sums.

A statement nested deeper than ``semantics.MAX_NESTING`` is lowered through
temporaries (as if each inner call were a statement of its own), and a product
of sums that would multiply out to many terms keeps whole the sums whose terms
sum over the same indices. Sizes are checked structurally (text length, number
of terms), numbers against finite differences and closed forms; the meaning the
language contract gives (the summation rule) must not change.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import einderiv
from einderiv import evaluate, grad, hessian, jacobian
from einderiv.language import lowering as semantics
from helpers import count_lines, numeric_jacobian


def nested(fn: str, depth: int, inner: str = "x[i]") -> str:
    return "y[i] = " + f"{fn}(" * depth + inner + ")" * depth


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


NUMPY = {"tanh": np.tanh, "sigmoid": sigmoid, "exp(-": lambda x: np.exp(-x), "sin": np.sin}
OPENERS = {"tanh": "tanh(", "sigmoid": "sigmoid(", "exp(-": "exp(-", "sin": "sin("}


def nested_value(fn: str, depth: int, x: np.ndarray) -> np.ndarray:
    for _ in range(depth):
        x = NUMPY[fn](x)
    return x


# ---------------------------------------------------------------- nesting

@pytest.mark.parametrize("fn", ["tanh", "sigmoid", "exp(-"])
def test_the_derivative_of_nested_functions_grows_linearly(fn):
    # it used to double with every level: tanh nested 12 deep took minutes
    def size(depth: int) -> int:
        opener = OPENERS[fn]
        program = einderiv.parse("y[i] = " + opener * depth + "x[i]" + ")" * depth)
        return len(str(program.derivative("x")))
    small, large = size(10), size(40)
    assert large < 6 * small, f"depth 10: {small:,} characters, depth 40: {large:,}"


def test_differentiating_nested_functions_does_linear_work():
    def work(depth: int) -> int:
        einderiv.clear_cache()
        x = np.array([0.3, -0.4])
        return count_lines(lambda: (einderiv.parse(nested("tanh", depth)).derivative("x"),
                                    jacobian(nested("tanh", depth), "x", {"x": x})))
    small, large = work(10), work(40)
    assert large < 6 * small, f"depth 10: {small:,} lines run, depth 40: {large:,}"


@pytest.mark.parametrize("fn", ["tanh", "sigmoid", "exp(-", "sin"])
@pytest.mark.parametrize("depth", [4, 12])
def test_nested_functions_agree_with_finite_differences(fn, depth):
    opener = OPENERS[fn]
    text = "y[i] = " + opener * depth + "x[i]" + ")" * depth
    x = np.array([0.3, -0.7, 1.1])
    np.testing.assert_allclose(evaluate(text, {"x": x}), nested_value(fn, depth, x), rtol=1e-12)
    expected = numeric_jacobian(lambda v: nested_value(fn, depth, v), x)
    np.testing.assert_allclose(jacobian(text, "x", {"x": x}), expected, rtol=1e-6, atol=1e-10)


def test_sigmoid_nested_ten_deep_through_grad():
    text = "y = " + "sigmoid(" * 10 + "x[i] w[i]" + ")" * 10
    x, w = np.array([0.3, -0.5]), np.array([0.2, 0.4])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", einderiv.EinderivWarning)        # i is summed outside, as the rule says
        g = grad(text, "w", {"x": x, "w": w})

    # Σ_i s(s(…s(x_i w_i)…)): the chain rule by hand, s' = s (1 - s)
    value, slope = x * w, x.copy()
    for _ in range(10):
        value = sigmoid(value)
        slope = slope * value * (1 - value)
    np.testing.assert_allclose(g, slope, rtol=1e-12)


@pytest.mark.parametrize("depth", [3, 8, 30])
def test_a_tower_of_powers(depth):
    text = "y = " + "^".join(["x"] * depth)

    def tower(v):
        value = v
        for _ in range(depth - 1):
            value = v ** value
        return value
    np.testing.assert_allclose(evaluate(text, {"x": 1.1}), tower(1.1), rtol=1e-12)
    np.testing.assert_allclose(grad(text, "x", {"x": 1.1}), numeric_jacobian(tower, 1.1), rtol=1e-6)


def test_the_hessian_of_exp_nested_twenty_five_deep():
    text = "y = " + "exp(-" * 25 + "sum[i](x[i] x[i])" + ")" * 25
    x = np.array([0.3, -0.2])

    def gradient(v):
        return grad(text, "x", {"x": v})
    np.testing.assert_allclose(hessian(text, "x", {"x": x}), numeric_jacobian(gradient, x), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("text, reference", [
    # j is summed over the whole term, outside every function (the trap, kept as the rule says)
    ("y[i] = exp(-tanh(sin(cos(A[i,j] x[j]))))",
     lambda A, x: np.exp(-np.tanh(np.sin(np.cos(A * x)))).sum(axis=1)),
    ("y[i] = exp(-tanh(sin(cos(sum[j](A[i,j] x[j])))))",
     lambda A, x: np.exp(-np.tanh(np.sin(np.cos(A @ x))))),
    ("y[i] = sum[j](exp(-tanh(sin(cos(A[i,j] x[j])))))",
     lambda A, x: np.exp(-np.tanh(np.sin(np.cos(A * x)))).sum(axis=1)),
    ("y[i] = x[j] exp(-tanh(sin(cos(A[i,j]) x[j])^2)) + sum[k](A[i,k])",
     lambda A, x: (x[None, :] * np.exp(-np.tanh(np.sin(np.cos(A) * x) ** 2))).sum(axis=1) + A.sum(axis=1)),
])
def test_temporaries_keep_the_summation_rule(text, reference):
    # the temporary for a call inside a function keeps every index occurring in it, summed ones too
    assert semantics.MAX_NESTING < 4
    A, x = np.arange(6.0).reshape(2, 3) / 5 - 0.4, np.array([0.5, -1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", einderiv.EinderivWarning)
        program = einderiv.parse(text)
        assert any(s.hidden for s in program.statements)
        np.testing.assert_allclose(evaluate(program, {"A": A, "x": x}), reference(A, x), rtol=1e-12)
        got = jacobian(program, "x", {"A": A, "x": x})
    np.testing.assert_allclose(got, numeric_jacobian(lambda v: reference(A, v), x), rtol=1e-6, atol=1e-9)


def test_the_trap_warning_is_the_same_with_temporaries():
    with pytest.warns(einderiv.EinderivWarning, match=r"index 'j' is summed over the whole term, outside the function"):
        einderiv.parse("y[i] = exp(tanh(sin(cos(A[i,j] x[j]))))")


def test_shallow_statements_have_no_temporaries_and_print_as_before():
    program = einderiv.parse("y[i] = exp(tanh(sin(x[i])))")
    assert [s.name for s in program.statements] == ["y"]
    assert str(program.derivative("x")) == \
        "dy[i]/dx[a] = (1 - tanh(sin(x[i]))^2) exp(tanh(sin(x[i]))) cos(x[i]) δ[i,a]"


def test_a_short_derivative_writes_its_temporaries_in_place():
    program = einderiv.parse("y[i] = exp(log(sin(cos(x[i]))))")
    assert [s.name for s in program.statements] == ["y_1", "y_2", "y_3", "y"]
    text = str(program.derivative("x"))
    assert "y_" not in text and text.startswith("dy[i]/dx[a] = ")


def test_temporary_names_never_clash_with_the_programs():
    program = einderiv.parse("y_1 = 2 x\ny = exp(exp(exp(exp(y_1))))")
    names = [s.name for s in program.statements]
    assert len(set(names)) == len(names) and names[0] == "y_1" and names[-1] == "y"
    assert "y_1" not in [s.name for s in program.statements if s.hidden]
    np.testing.assert_allclose(evaluate(program, {"x": -3.0}), np.exp(np.exp(np.exp(np.exp(-6.0)))), rtol=1e-12)


# ---------------------------------------------------------------- products of sums

def product_of_sums(factors: int) -> str:
    return "L = " + " ".join(f"(a{2 * k}[i] + a{2 * k + 1}[i])" for k in range(factors))


def test_a_product_of_ten_sums_stays_factored():
    # it used to multiply out to 1,024 terms, each planned on its own: minutes
    text = product_of_sums(10)
    program = einderiv.parse(text)
    assert len(program.statement("L").rhs.terms) == 1
    rng = np.random.default_rng(0)
    a = {f"a{k}": rng.uniform(0.5, 1.5, size=3) for k in range(20)}
    pairs = np.array([a[f"a{2 * k}"] + a[f"a{2 * k + 1}"] for k in range(10)])
    np.testing.assert_allclose(evaluate(program, a), pairs.prod(axis=0).sum(), rtol=1e-12)
    np.testing.assert_allclose(grad(program, "a5", a), pairs.prod(axis=0) / pairs[2], rtol=1e-12)
    assert len(str(program.derivative("a5"))) < 400


def test_evaluating_a_product_of_sums_does_linear_work():
    def work(factors: int) -> int:
        einderiv.clear_cache()
        a = {f"a{k}": np.full(3, 1.0 + k / 100) for k in range(2 * factors)}
        return count_lines(lambda: evaluate(product_of_sums(factors), a))
    small, large = work(5), work(20)
    assert large < 8 * small, f"5 factors: {small:,} lines run, 20 factors: {large:,}"


def test_a_sum_with_different_summed_indices_is_still_multiplied_out():
    # (a[i] + b[j]) sums j in one term only: the rule multiplies it out; the other sums stay whole
    text = "L = (a[i] + b[j]) " + " ".join(f"(c{k}[i] + d{k}[i])" for k in range(5))
    rng = np.random.default_rng(1)
    values = {"a": rng.normal(size=3), "b": rng.normal(size=4),
              **{f"{n}{k}": rng.normal(size=3) for n in "cd" for k in range(5)}}
    P = np.prod([values[f"c{k}"] + values[f"d{k}"] for k in range(5)], axis=0)
    expected = values["a"] @ P + values["b"].sum() * P.sum()
    program = einderiv.parse(text)
    assert len(program.statement("L").rhs.terms) == 2
    np.testing.assert_allclose(evaluate(program, values), expected, rtol=1e-12)
    np.testing.assert_allclose(grad(program, "b", values), np.full(4, P.sum()), rtol=1e-12)
    np.testing.assert_allclose(grad(program, "c2", values),
                               (values["a"] + values["b"].sum()) * P / (values["c2"] + values["d2"]), rtol=1e-10)


def test_broadcast_terms_of_a_kept_sum():
    # y[i,j] = Π_k (a_k[i] + b_k[j]): each sum is a temporary over (i, j), nothing summed
    text = "y[i,j] = " + " ".join(f"(a{k}[i] + b{k}[j] + 1)" for k in range(4))
    rng = np.random.default_rng(2)
    values = {**{f"a{k}": rng.normal(size=2) for k in range(4)}, **{f"b{k}": rng.normal(size=3) for k in range(4)}}
    expected = np.prod([values[f"a{k}"][:, None] + values[f"b{k}"][None, :] + 1 for k in range(4)], axis=0)
    np.testing.assert_allclose(evaluate(text, values), expected, rtol=1e-12)
    J = jacobian(text, "b1", values)
    expected_J = numeric_jacobian(lambda v: evaluate(text, {**values, "b1": v}), values["b1"])
    np.testing.assert_allclose(J, expected_J, rtol=1e-6, atol=1e-9)


def test_small_products_of_sums_are_multiplied_out_as_before():
    program = einderiv.parse("L = (a[i] + b[i]) (c[i] + d[i])")
    assert [s.name for s in program.statements] == ["L"] and len(program.statement("L").rhs.terms) == 4


def test_temporaries_keep_the_inputs_in_the_order_written():
    assert einderiv.parse("y = x^2 exp(exp(exp(exp(w[i]))))").inputs == (("x", 0), ("w", 1))
    with pytest.raises(einderiv.ProgramError, match=r"input 'x' is used with 0 indices here but with 1 on line 1, column 5"):
        einderiv.parse("y = x[i] exp(exp(exp(exp(x))))")


@pytest.mark.parametrize("template, reference", [
    ("L = exp(-{p})", lambda P: np.exp(-P).sum()),
    ("L = 1 / (1 + {p})", lambda P: (1 / (1 + P)).sum()),
    ("L = sum[i]({p} + 1)", lambda P: (P + 1).sum()),
    ("L = tanh({p} / 100)^2", lambda P: (np.tanh(P / 100) ** 2).sum()),
])
def test_a_product_of_sums_inside_a_function_power_denominator_or_sum_stays_factored(template, reference):
    # inside, every value is pointwise: the sums stay whole (a product of ten sums inside exp took a minute)
    product = " ".join(f"(a{2 * k}[i] + a{2 * k + 1}[i])" for k in range(10))
    text = template.format(p=product)
    rng = np.random.default_rng(3)
    a = {f"a{k}": rng.uniform(0.3, 0.6, size=3) for k in range(20)}
    pairs = np.array([a[f"a{2 * k}"] + a[f"a{2 * k + 1}"] for k in range(10)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", einderiv.EinderivWarning)      # i occurs in every factor: the trap
        program = einderiv.parse(text)
        assert max(len(str(s.rhs)) for s in program.statements) < 2_000
        np.testing.assert_allclose(evaluate(program, a), reference(pairs.prod(axis=0)), rtol=1e-12)
        g = grad(program, "a4", a)

    def f(v):
        return reference(np.prod(np.vstack([pairs[:2], (v + a["a5"])[None], pairs[3:]]), axis=0))
    np.testing.assert_allclose(g, numeric_jacobian(f, a["a4"]), rtol=1e-6, atol=1e-10)
