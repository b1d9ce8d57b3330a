"""Every error the language contract names, with its message, and the
summation-trap warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import einderiv


def _run(text, inputs=None, sizes=None):
    """Parse and evaluate: errors may surface at either step."""
    program = einderiv.parse(text)
    return einderiv.evaluate(program, inputs or {}, sizes=sizes)


def _all(*patterns):
    """A regex that matches when every pattern occurs somewhere (any order)."""
    return "(?s)" + "".join(f"(?=.*{p})" for p in patterns)


# ---------------------------------------------------------------------------
# The exception family
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["ParseError", "ProgramError", "ShapeError", "UnsupportedError", "MemoryLimitError"]
)
def test_errors_are_exported_subclasses_of_einderiv_error(name):
    cls = getattr(einderiv, name)
    assert issubclass(cls, einderiv.EinderivError)
    assert cls is not einderiv.EinderivError


def test_base_error_and_warning_classes():
    assert issubclass(einderiv.EinderivError, Exception)
    assert issubclass(einderiv.EinderivWarning, UserWarning)


# ---------------------------------------------------------------------------
# Parse errors: line, column, the source line and a caret under the column
# ---------------------------------------------------------------------------


def _caret_column(message, source_line):
    """The 1-based column the caret points at, relative to ``source_line`` as
    printed in ``message``."""
    lines = message.splitlines()
    for n, line in enumerate(lines):
        if source_line in line and n + 1 < len(lines) and "^" in lines[n + 1]:
            return lines[n + 1].index("^") - line.index(source_line) + 1
    raise AssertionError(f"no source line + caret line in message:\n{message}")


# "y = a + * b": the '*' at line 1, column 9 is unexpected
def test_parse_error_position_and_caret():
    with pytest.raises(einderiv.ParseError, match=r"line 1, column 9") as info:
        einderiv.parse("y = a + * b")
    message = str(info.value)
    assert _caret_column(message, "y = a + * b") == 9, message
    assert info.value.line == 1 and info.value.column == 9


# the error is on the second line: line 2, the second line is quoted
def test_parse_error_on_second_line():
    with pytest.raises(einderiv.ParseError, match=r"line 2, column 15") as info:
        einderiv.parse("x[i] = a[i]\ny[i] = x[i] / / 2")
    message = str(info.value)
    assert _caret_column(message, "y[i] = x[i] / / 2") == 15, message
    assert info.value.line == 2 and info.value.column == 15


# unclosed '[' is a parse error that points at line 1
@pytest.mark.parametrize("text", ["F[i,k = W[i,j] X[j,k]", "F[i,k] = W[i,j X[j,k]", "y[i] = x[i"])
def test_unclosed_bracket(text):
    with pytest.raises(einderiv.ParseError, match=r"line 1, column \d+") as info:
        einderiv.parse(text)
    assert "^" in str(info.value)
    assert text in str(info.value)


# a statement without '=' is a parse error
@pytest.mark.parametrize("text", ["y[i] x[i]", "u = a\nv a + 1"])
def test_missing_equals(text):
    line = text.count("\n") + 1
    with pytest.raises(einderiv.ParseError, match=rf"line {line}, column \d+"):
        einderiv.parse(text)


# other malformed programs
@pytest.mark.parametrize("text", ["y = ", "= x", "y[i] = (x[i]", "y = a +", "y[i,] = x[i]", "y = a b +* c"])
def test_other_parse_errors(text):
    with pytest.raises(einderiv.ParseError, match=r"line 1, column \d+"):
        einderiv.parse(text)


# a program is one or more statements: an empty or comment-only text is an error
@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_program_is_an_error(text):
    with pytest.raises(einderiv.EinderivError, match=r"\S"):
        einderiv.parse(text)


# ---------------------------------------------------------------------------
# Program errors
# ---------------------------------------------------------------------------


# a name directly followed by '(' is a call: 'lam (x[i] + 1)' is an unknown function
def test_unknown_function_juxtaposition_style():
    with pytest.raises(einderiv.ProgramError, match=r"'lam'"):
        _run("y[i] = lam (x[i] + 1)", {"lam": 2.0, "x": np.ones(3)})


def test_unknown_function_call():
    with pytest.raises(einderiv.ProgramError, match=r"'foo'"):
        _run("y = foo(x)", {"x": 1.0})


# the intended product parses and works
def test_lam_times_parenthesis_is_a_product():
    x = np.array([1.0, 2.0])
    value = einderiv.evaluate("y[i] = lam * (x[i] + 1)", {"lam": 2.0, "x": x})
    np.testing.assert_allclose(value, 2.0 * (x + 1))


def test_name_defined_twice():
    with pytest.raises(einderiv.ProgramError, match=r"Twice"):
        _run("Twice = a + 1\nTwice = a + 2", {"a": 1.0})


def test_name_used_before_definition():
    with pytest.raises(einderiv.ProgramError, match=r"Later"):
        _run("u = Later + 1; Later = a", {"a": 1.0, "Later": 1.0})


def test_same_index_twice_on_left():
    with pytest.raises(einderiv.ProgramError, match=r"qq"):
        _run("D[qq,qq] = x[qq]", {"x": np.ones(3)})


def test_left_only_index_without_size():
    with pytest.raises(einderiv.ShapeError, match=_all(r"\bjj\b", r"size")):
        _run("O[i,jj] = x[i]", {"x": np.ones(3)})


# ---------------------------------------------------------------------------
# Shape errors
# ---------------------------------------------------------------------------


def test_wrong_number_of_axes():
    with pytest.raises(einderiv.ShapeError, match=r"Wmat"):
        _run("y[i] = Wmat[i,j] x[j]", {"Wmat": np.ones(3), "x": np.ones(3)})


def test_scalar_given_an_array():
    with pytest.raises(einderiv.ShapeError, match=r"scal"):
        _run("y[i] = scal x[i]", {"scal": np.ones(3), "x": np.ones(3)})


def test_missing_input():
    with pytest.raises(einderiv.ShapeError, match=_all(r"zz", r"missing")):
        _run("y[i] = x[i] + zz[i]", {"x": np.ones(3)})


# 'jx' is 3 for A and 4 for v
def test_size_mismatch_across_two_arrays():
    with pytest.raises(einderiv.ShapeError, match=_all(r"jx", r"\b3\b", r"\b4\b")):
        _run("y[i] = A[i,jx] v[jx]", {"A": np.ones((2, 3)), "v": np.ones(4)})


# an explicit size that disagrees with an array
def test_size_mismatch_with_explicit_size():
    with pytest.raises(einderiv.ShapeError, match=_all(r"ix", r"\b3\b", r"\b5\b")):
        _run("y[ix] = x[ix]", {"x": np.ones(3)}, sizes={"ix": 5})


# the same input used with two different sizes for its axis in one statement
def test_size_mismatch_within_one_statement():
    with pytest.raises(einderiv.ShapeError, match=_all(r"kk", r"\b2\b", r"\b3\b")):
        _run("y = A[kk,kk]", {"A": np.ones((2, 3))})


# the errors are catchable as EinderivError
@pytest.mark.parametrize(
    "text,inputs",
    [
        ("y = a + * b", {}),
        ("y = foo(x)", {"x": 1.0}),
        ("y[i] = x[i] + zz[i]", {"x": np.ones(3)}),
    ],
)
def test_all_errors_catchable_as_base(text, inputs):
    with pytest.raises(einderiv.EinderivError, match=r"line 1|foo|zz"):
        _run(text, inputs)


# ---------------------------------------------------------------------------
# The summation-trap warning
# ---------------------------------------------------------------------------

TRAP_INPUTS = {
    "X": np.arange(6.0).reshape(2, 3) / 7,
    "W": np.arange(12.0).reshape(3, 4) / 11 - 0.5,
    "Y": np.arange(8.0).reshape(2, 4) / 5,
}


# L = (X[n,i] W[i,j] - Y[n,j])^2 sums i outside the square: warn, naming i and sum[
def test_summation_trap_warns():
    with pytest.warns(einderiv.EinderivWarning, match=_all(r"\bi\b", r"sum\[")):
        value = _run("L = (X[n,i] W[i,j] - Y[n,j])^2", TRAP_INPUTS)
    X, W, Y = TRAP_INPUTS["X"], TRAP_INPUTS["W"], TRAP_INPUTS["Y"]
    # the meaning is Σ_{n,i,j} (X[n,i] W[i,j] − Y[n,j])², not ‖XW − Y‖²
    np.testing.assert_allclose(value, np.sum((X[:, :, None] * W[None, :, :] - Y[:, None, :]) ** 2))


# the warning names the index that is summed outside
def test_summation_trap_warning_names_the_index():
    with pytest.warns(einderiv.EinderivWarning, match=_all(r"kk", r"sum\[")):
        _run("L = (X[n,kk] W[kk,j] - Y[n,j])^2", TRAP_INPUTS)


# inside a function and in a denominator too
@pytest.mark.parametrize(
    "text", ["y[i] = exp(A[i,jt] x[jt])", "y[i] = 1 / (A[i,jt] x[jt])", "y[i] = sigmoid(A[i,jt] x[jt] + 1)",
             # a quotient is a product too: A[i,jt] / x[jt] is A[i,jt] x[jt]^-1
             "y[i] = exp(A[i,jt] / x[jt])", "y[i] = (A[i,jt] / x[jt])^2", "y[i] = log(2 / x[jt] A[i,jt])",
             # every denominator of a chain of quotients is looked into, not only the last
             "y[i] = A[i,jt] / exp(A[i,jt] x[jt]) / 2"]
)
def test_summation_trap_warns_in_function_and_denominator(text):
    inputs = {"A": np.full((2, 3), 0.5), "x": np.array([1.0, 2.0, 3.0])}
    with pytest.warns(einderiv.EinderivWarning, match=_all(r"jt", r"sum\[")):
        _run(text, inputs)


@pytest.mark.parametrize(
    "text",
    [
        "R[n,j] = X[n,i] W[i,j] - Y[n,j]; L = R[n,j]^2",
        "L = (sum[i](X[n,i] W[i,j]) - Y[n,j])^2",
        "L = sum[i]((X[n,i] W[i,j] - Y[n,j])^2)",
        "L = (X[n,j] - Y[n,j])^2 / 2",
        "P[n,j] = X[n,i] W[i,j] Y[n,j]",
    ],
)
def test_no_warning_without_trap(text):
    inputs = dict(TRAP_INPUTS)
    if "X[n,j] -" in text:
        inputs["X"] = np.arange(8.0).reshape(2, 4) / 7
    with warnings.catch_warnings():
        warnings.simplefilter("error", einderiv.EinderivWarning)
        value = _run(text, inputs)
    assert np.all(np.isfinite(value))


@pytest.mark.parametrize("text", ["y[i] = A[i,jt] / x[jt]", "y[i] = exp(A[i,jt] / sum[jt](x[jt]))",
                                  "y[i] = exp(sum[jt](A[i,jt] / x[jt]))", "y[i] = sum[jt](exp(A[i,jt] / x[jt]))"])
def test_no_warning_for_a_quotient_outside_functions_or_summed_explicitly(text):
    inputs = {"A": np.full((2, 3), 0.5), "x": np.array([1.0, 2.0, 3.0])}
    with warnings.catch_warnings():
        warnings.simplefilter("error", einderiv.EinderivWarning)
        assert np.all(np.isfinite(_run(text, inputs)))


def test_the_quotient_trap_means_the_sum_outside_the_function():
    # y[i] = exp(A[i,j] / x[j]) is Σ_j exp(A[i,j] / x[j]), as for the product
    A, x = np.arange(6.0).reshape(2, 3) / 6, np.array([1.0, 2.0, 4.0])
    with pytest.warns(einderiv.EinderivWarning, match=r"'jt' is summed over the whole term, outside the function exp"):
        value = _run("y[i] = exp(A[i,jt] / x[jt])", {"A": A, "x": x})
    np.testing.assert_allclose(value, np.exp(A / x).sum(axis=1))


# the fix computes ‖XW − Y‖²
def test_summation_trap_fix_value():
    X, W, Y = TRAP_INPUTS["X"], TRAP_INPUTS["W"], TRAP_INPUTS["Y"]
    expected = np.sum((X @ W - Y) ** 2)
    for text in ("R[n,j] = X[n,i] W[i,j] - Y[n,j]; L = R[n,j]^2", "L = (sum[i](X[n,i] W[i,j]) - Y[n,j])^2"):
        np.testing.assert_allclose(_run(text, TRAP_INPUTS), expected, err_msg=text)


def test_the_trap_warning_also_comes_from_numeric_calls_on_program_text():
    # grad("L = (X W - Y)^2", ...) sums i outside the square: the caller is told even without parse()
    program = "L = (X[n,i] W[i,j] - Y[n,j])^2"
    inputs = {"X": np.ones((2, 3)), "W": np.ones((3, 2)), "Y": np.ones((2, 2))}
    with pytest.warns(einderiv.EinderivWarning, match=r"'i'.*sum\["):
        einderiv.grad(program, "W", inputs)


@pytest.mark.parametrize("call", [
    lambda: einderiv.evaluate("y[i] = x[i]", {"x": [1.0]}, sizes={"j": 10 ** 400}),
    lambda: einderiv.codegen("L = x[i] x[i]", "x", sizes={"i": 10 ** 400}),
    lambda: einderiv.codegen("L = x[i] x[i]", "x", shapes={"x": (10 ** 30,)}),
    lambda: einderiv.explain("L = x[i] x[i]", "x", sizes={"i": 10 ** 400}),
    lambda: einderiv.plan("L = x[i] x[i]", "x", {"x": (10 ** 400,)}),
], ids=["evaluate", "codegen-sizes", "codegen-shapes", "explain", "plan"])
def test_a_size_no_array_axis_can_hold_is_refused_everywhere(call):
    with pytest.raises(einderiv.ShapeError, match=r"is too large \(about 2\*\*\d+\); an array axis holds at most"):
        call()


def test_a_program_text_over_ten_million_characters_is_refused_before_parsing():
    with pytest.raises(einderiv.ParseError, match=r"the program is 10,000,001 characters long, over the limit"):
        einderiv.parse("y = " + "x" * 9_999_997)
