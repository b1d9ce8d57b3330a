"""Elementwise functions: values, derivatives on safe domains, and the exact
conventions at kinks (relu'(0) = 0, abs'(0) = 0, max/min tie-breaking)."""

from __future__ import annotations

import numpy as np
import pytest

import einderiv
from helpers import assert_close, fd_jacobian


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# name: (numpy value, numpy derivative, sample points on a safe domain, away from kinks)
FUNCTIONS = {
    "exp": (np.exp, np.exp, [-1.7, -0.3, 0.4, 1.9]),
    "log": (np.log, lambda x: 1.0 / x, [0.3, 0.9, 1.7, 3.2]),
    "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(x), [0.3, 0.9, 1.7, 3.2]),
    "sin": (np.sin, np.cos, [-2.1, -0.3, 0.4, 2.5]),
    "cos": (np.cos, lambda x: -np.sin(x), [-2.1, -0.3, 0.4, 2.5]),
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2, [-2.1, -0.3, 0.4, 1.5]),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1.0 - _sigmoid(x)), [-2.1, -0.3, 0.4, 2.5]),
    "softplus": (lambda x: np.log1p(np.exp(x)), _sigmoid, [-2.1, -0.3, 0.4, 2.5]),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (np.asarray(x) > 0).astype(float), [-1.5, -0.3, 0.4, 1.2]),
    "abs": (np.abs, np.sign, [-1.5, -0.3, 0.4, 1.2]),
}


# y[i] = f(x[i]) evaluates to f applied elementwise
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_value(name):
    f, _, pts = FUNCTIONS[name]
    x = np.array(pts)
    assert_close(einderiv.evaluate(f"y[i] = {name}(x[i])", {"x": x}), f(x))


# dy[i]/dx[a] = δ[i,a] f'(x[i])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_jacobian_is_diagonal_derivative(name):
    _, df, pts = FUNCTIONS[name]
    x = np.array(pts)
    text = f"y[i] = {name}(x[i])"
    J = einderiv.jacobian(text, "x", {"x": x})
    assert_close(J, np.diag(df(x)))
    assert_close(J, fd_jacobian(text, "x", {"x": x}))


# L = Σ_i f(x[i]) (i summed outside the call) ⇒ dL/dx = f'(x)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_gradient_of_sum(name):
    f, df, pts = FUNCTIONS[name]
    x = np.array(pts)
    text = f"L = {name}(x[i])"
    assert_close(einderiv.evaluate(text, {"x": x}), f(x).sum())
    assert_close(einderiv.grad(text, "x", {"x": x}), df(x))


# chain rule through a function of a scalar: d f(2 s)/ds = 2 f'(2 s)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_of_scalar_chain_rule(name):
    f, df, pts = FUNCTIONS[name]
    s = pts[2] / 2.0
    text = f"y = {name}(2 s)"
    assert_close(einderiv.evaluate(text, {"s": s}), f(2 * s))
    assert_close(einderiv.grad(text, "s", {"s": s}), 2 * df(2 * s))


# second-order composition: d sin(exp(x))/dx = cos(exp(x)) exp(x)
def test_nested_functions():
    x = np.array([-0.5, 0.2, 0.9])
    text = "y[i] = sin(exp(x[i]))"
    J = einderiv.jacobian(text, "x", {"x": x})
    assert_close(J, np.diag(np.cos(np.exp(x)) * np.exp(x)))
    assert_close(J, fd_jacobian(text, "x", {"x": x}))


# y[i] = max(a[i], b[i]) and min(a[i], b[i]) away from ties, vs finite differences
@pytest.mark.parametrize("fn", ["max", "min"])
def test_max_min_away_from_ties(fn):
    a = np.array([-1.0, 0.5, 2.0, -0.3])
    b = np.array([0.7, -0.4, 2.6, -1.1])
    text = f"y[i] = {fn}(a[i], b[i])"
    inputs = {"a": a, "b": b}
    expected = np.maximum(a, b) if fn == "max" else np.minimum(a, b)
    assert_close(einderiv.evaluate(text, inputs), expected)
    for wrt in ("a", "b"):
        assert_close(einderiv.jacobian(text, wrt, inputs), fd_jacobian(text, wrt, inputs), msg=wrt)


# Kink conventions, exactly
# relu'(0) = 0
def test_relu_derivative_at_zero_is_zero():
    x = np.array([0.0, -0.5, 0.5])
    J = einderiv.jacobian("y[i] = relu(x[i])", "x", {"x": x})
    np.testing.assert_array_equal(J, np.diag([0.0, 0.0, 1.0]))
    assert einderiv.grad("y = relu(s)", "s", {"s": 0.0}) == 0.0


# abs'(0) = 0
def test_abs_derivative_at_zero_is_zero():
    x = np.array([0.0, -0.5, 0.5])
    J = einderiv.jacobian("y[i] = abs(x[i])", "x", {"x": x})
    np.testing.assert_array_equal(J, np.diag([0.0, -1.0, 1.0]))
    assert einderiv.grad("y = abs(s)", "s", {"s": 0.0}) == 0.0


# max(a, b): gradient to a where a > b, else to b (ties go to b)
def test_max_tie_breaking():
    a = np.array([1.0, 2.0, -1.0, 0.0])
    b = np.array([0.0, 2.0, 3.0, 0.0])
    inputs = {"a": a, "b": b}
    text = "y[i] = max(a[i], b[i])"
    np.testing.assert_array_equal(einderiv.evaluate(text, inputs), np.maximum(a, b))
    np.testing.assert_array_equal(einderiv.jacobian(text, "a", inputs), np.diag([1.0, 0.0, 0.0, 0.0]))
    np.testing.assert_array_equal(einderiv.jacobian(text, "b", inputs), np.diag([0.0, 1.0, 1.0, 1.0]))


# min(a, b): gradient to a where a < b, else to b (ties go to b)
def test_min_tie_breaking():
    a = np.array([1.0, 2.0, -1.0, 0.0])
    b = np.array([0.0, 2.0, 3.0, 0.0])
    inputs = {"a": a, "b": b}
    text = "y[i] = min(a[i], b[i])"
    np.testing.assert_array_equal(einderiv.evaluate(text, inputs), np.minimum(a, b))
    np.testing.assert_array_equal(einderiv.jacobian(text, "a", inputs), np.diag([0.0, 0.0, 1.0, 0.0]))
    np.testing.assert_array_equal(einderiv.jacobian(text, "b", inputs), np.diag([1.0, 1.0, 0.0, 1.0]))


# max(0, x) at x = 0: 0 > 0 is false, so the gradient goes to b = x: derivative 1;
# max(x, 0) at x = 0 sends it to the constant: derivative 0
def test_max_with_constant_tie_follows_argument_order():
    x = np.array([0.0, -0.5, 0.5])
    J_right = einderiv.jacobian("y[i] = max(0, x[i])", "x", {"x": x})
    np.testing.assert_array_equal(J_right, np.diag([1.0, 0.0, 1.0]))
    J_left = einderiv.jacobian("y[i] = max(x[i], 0)", "x", {"x": x})
    np.testing.assert_array_equal(J_left, np.diag([0.0, 0.0, 1.0]))


# min(0, x) at x = 0: 0 < 0 is false, so the gradient goes to x: derivative 1
def test_min_with_constant_tie_follows_argument_order():
    x = np.array([0.0, -0.5, 0.5])
    J_right = einderiv.jacobian("y[i] = min(0, x[i])", "x", {"x": x})
    np.testing.assert_array_equal(J_right, np.diag([1.0, 1.0, 0.0]))
    J_left = einderiv.jacobian("y[i] = min(x[i], 0)", "x", {"x": x})
    np.testing.assert_array_equal(J_left, np.diag([0.0, 1.0, 0.0]))


# max(a[i], b[j]) broadcasts: a tensor over (i, j); reverse mode sums the routed gradient
def test_max_broadcasts_and_vjp_routes_gradient():
    a = np.array([0.0, 1.0])
    b = np.array([0.0, 0.5, 2.0])
    inputs = {"a": a, "b": b}
    text = "M[i,j] = max(a[i], b[j])"
    np.testing.assert_array_equal(einderiv.evaluate(text, inputs), np.maximum(a[:, None], b[None, :]))
    G = np.ones((2, 3))
    to_a = a[:, None] > b[None, :]
    np.testing.assert_array_equal(einderiv.vjp(text, "a", inputs, G), to_a.sum(1).astype(float))
    np.testing.assert_array_equal(einderiv.vjp(text, "b", inputs, G), (~to_a).sum(0).astype(float))


# ---------------------------------------------------------------------------
# The registry: one ElementwiseFunction per function, every renderer reads it
# ---------------------------------------------------------------------------

import dataclasses  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402

from einderiv.core.functions import FUNCTIONS as REGISTRY, USER_FUNCTIONS  # noqa: E402
from einderiv.core.scalars import SCALARS  # noqa: E402
from einderiv.numeric.elementwise import NUMPY, NUMPY_FUNCTIONS  # noqa: E402
from helpers import numeric_jacobian  # noqa: E402

#: The array-API standard's names the registrations may use (so a torch or jax namespace serves too).
ARRAY_API_NAMES = frozenset({
    "abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "clip", "cos", "cosh",
    "divide", "equal", "exp", "expm1", "floor", "greater", "greater_equal", "less", "less_equal", "log", "log1p",
    "log2", "log10", "logaddexp", "maximum", "minimum", "multiply", "negative", "not_equal", "pow", "sign", "sin",
    "sinh", "sqrt", "square", "subtract", "tan", "tanh", "where", "astype", "result_type", "float32", "float64"})
ALL = sorted(REGISTRY)


def _sample_arguments(f, count=7):
    """``f.arity`` arrays of points in ``f.domain``, off its kinks (and, for two arguments, off ties)."""
    low, high = f.domain
    points = np.linspace(low, high, count + 2)[1:-1] + 0.0137 * (high - low)
    points = np.clip(points, low, high)
    if f.arity == 1:
        return (points,)
    return points, np.clip(points[::-1] + 0.31, low, high)


class _Recording:
    """A namespace that passes every attribute through to numpy and records its name."""

    def __init__(self):
        self.names = set()

    def __getattr__(self, name):
        self.names.add(name)
        return getattr(NUMPY, name)


# every field of every registration is filled, or None with a reason; no stale reasons
@pytest.mark.parametrize("name", ALL)
def test_every_field_is_filled_or_says_why_not(name):
    f = REGISTRY[name]
    assert f.name == name and f.arity in (1, 2)
    for spec in dataclasses.fields(f):
        value = getattr(f, spec.name)
        if value is None:
            assert f.unset.get(spec.name), f"{name}.{spec.name} is None without a reason in unset"
    assert all(getattr(f, key) is None for key in f.unset), f"{name}: unset names a field that is set"
    assert len(f.partials(*[einderiv.core.ir.ref(f"u{k}", []) for k in range(f.arity)])) == f.arity
    assert f.domain[0] < f.domain[1] and f.derivative_text.strip()
    assert all(len(k.at) == f.arity and len(k.partials) == f.arity and k.rule for k in f.kinks)
    if f.matrix is not None:
        assert f.matrix.text and f.matrix.ascii and f.matrix.latex
        assert f.arity == 2 or not f.matrix.relation


# the user functions are exactly the registered ones marked user; the README lists them all
def test_user_functions_and_readme_list():
    assert USER_FUNCTIONS == tuple(n for n, f in REGISTRY.items() if f.user)
    assert {"step", "sign", "gt", "ge", "lt", "le"}.isdisjoint(USER_FUNCTIONS)
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    listed = re.search(r"elementwise functions `([a-z ]+)`, `max\(a, b\)`, `min\(a, b\)`", readme)
    assert listed, "README's list of elementwise functions"
    assert set(listed.group(1).split()) | {"max", "min"} == set(USER_FUNCTIONS)


# the array implementations use array-API names only, and keep the floating dtype
@pytest.mark.parametrize("name", ALL)
def test_array_implementation_uses_array_api_names_and_keeps_dtype(name):
    f = REGISTRY[name]
    recording = _Recording()
    args = _sample_arguments(f)
    f.array(recording, *args)
    assert recording.names <= ARRAY_API_NAMES, recording.names - ARRAY_API_NAMES
    for dtype in (np.float32, np.float64):
        value = f.array(NUMPY, *[a.astype(dtype) for a in args])
        assert value.dtype == dtype, (name, dtype, value.dtype)


# the numeric layer's numpy functions (with the faster comparisons) equal the registrations exactly
@pytest.mark.parametrize("name", ALL)
def test_numpy_functions_equal_the_registrations(name):
    f = REGISTRY[name]
    for dtype in (np.float32, np.float64):
        args = [a.astype(dtype) for a in _sample_arguments(f)]
        args = args if f.arity == 1 else [args[0], np.concatenate([args[1][:-1], args[0][-1:]])]   # one tie
        fast, plain = NUMPY_FUNCTIONS[name](*args), f.array(NUMPY, *args)
        assert fast.dtype == plain.dtype
        np.testing.assert_array_equal(fast, plain)


# a registration that is one named array function runs as that numpy function itself (no wrapper call)
def test_named_functions_run_unwrapped():
    from einderiv.core.functions import Named
    named = {n: f.array.function for n, f in REGISTRY.items() if isinstance(f.array, Named)}
    assert {"exp", "log", "tanh", "max", "min"} <= set(named)
    for name, function in named.items():
        assert NUMPY_FUNCTIONS[name] is getattr(np, function), name


def _scalar_points(f):
    special = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, 710.0, -710.0, 1e3, -1e3, math.inf, -math.inf, math.nan]
    points = sorted(set(_sample_arguments(f)[0].tolist()) | {x for k in f.kinks for x in k.at}) + special
    if f.arity == 1:
        return [(x,) for x in points]
    return [(a, b) for a in points[::3] + special for b in points[::4] + special]


def _same_float(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=4e-16, abs_tol=0.0)


# constant folding evaluates with the scalar namespace over math: it agrees with numpy, inf and nan included
@pytest.mark.parametrize("name", ALL)
def test_scalar_namespace_agrees_with_numpy(name):
    f = REGISTRY[name]
    with np.errstate(all="ignore"):
        for args in _scalar_points(f):
            folded = float(f.array(SCALARS, *args))
            expected = float(f.array(NUMPY, *[np.float64(a) for a in args]))
            assert _same_float(folded, expected), (name, args, folded, expected)


# simplification folds a call of constants to its value, and leaves a non-finite one unfolded
def test_constant_calls_fold_without_numpy():
    from einderiv.core.simplify import simplify
    ir = einderiv.core.ir
    assert ir.constant_value(simplify(ir.call("tanh", [ir.ZERO]))) == 0.0
    assert ir.constant_value(simplify(ir.call("sigmoid", [ir.ZERO]))) == 0.5
    assert ir.constant_value(simplify(ir.call("max", [ir.const(2.0), ir.const(3.0)]))) == 3.0
    unfolded = simplify(ir.call("log", [ir.ZERO]))
    assert ir.constant_value(unfolded) is None and unfolded.terms[0].factors[0].fn == "log"
    assert ir.constant_value(simplify(ir.call("exp", [ir.const(1000.0)]))) is None


def _program(name, arity):
    return f"y[i] = {name}(a[i])" if arity == 1 else f"y[i] = {name}(a[i], b[i])"


# the partial derivatives (IR) agree with finite differences of the array implementation
@pytest.mark.parametrize("name", ALL)
def test_partials_agree_with_finite_differences_of_the_array_implementation(name):
    f = REGISTRY[name]
    args = _sample_arguments(f)
    inputs = dict(zip("ab", args))
    for k, wrt in enumerate("ab"[:f.arity]):
        def value(v, k=k):
            return f.array(NUMPY, *[v if j == k else a for j, a in enumerate(args)])
        J = einderiv.jacobian(_program(name, f.arity), wrt, inputs)
        assert_close(J, numeric_jacobian(value, args[k]), msg=f"{name}: d/d{wrt}")


# at each kink, the derivative is exactly the registered convention
@pytest.mark.parametrize("name", [n for n in ALL if REGISTRY[n].kinks])
def test_kink_conventions_hold_exactly(name):
    f = REGISTRY[name]
    for kink in f.kinks:
        inputs = {v: np.array([x]) for v, x in zip("ab", kink.at)}
        for wrt, expected in zip("ab", kink.partials):
            J = einderiv.jacobian(_program(name, f.arity), wrt, inputs)
            assert J.tolist() == [[expected]], (name, kink.rule, wrt)


# codegen: the generated module runs, and its value and gradient agree with einderiv's
@pytest.mark.parametrize("name", ALL)
def test_codegen_output_runs_and_agrees(tmp_path, name):
    import importlib.util
    f = REGISTRY[name]
    program = f"L = sum[i](w[i] {name}({', '.join(f'{v}[i]' for v in 'ab'[:f.arity])}))"
    path = tmp_path / f"generated_{name}.py"
    path.write_text(einderiv.codegen(program, ["a", "w"]), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"generated_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = _sample_arguments(f)
    inputs = {**dict(zip("ab", args)), "w": np.linspace(-1.0, 1.0, len(args[0]))}
    value, grads = module.value_and_grad(**inputs)
    expected_value, expected = einderiv.value_and_grad(program, ["a", "w"], inputs)
    assert value == pytest.approx(expected_value, rel=1e-12, abs=1e-14)
    assert value == pytest.approx(float(inputs["w"] @ f.array(NUMPY, *args)), rel=1e-12, abs=1e-14)
    for wrt in ("a", "w"):
        assert_close(grads[wrt], expected[wrt], rtol=1e-12, atol=1e-14, msg=wrt)


# the SymPy form agrees numerically with the array implementation, directly and through the symbolic evaluator
@pytest.mark.parametrize("name", ALL)
def test_sympy_form_agrees_with_the_array_implementation(name):
    sympy = pytest.importorskip("sympy")
    from einderiv.numeric.symbolic import symbolic_value
    f = REGISTRY[name]
    args = _sample_arguments(f)
    symbols = sympy.symbols(" ".join("ab"[:f.arity]) + ",", real=True)
    form = f.sympy(sympy, *symbols)
    expected = f.array(NUMPY, *args)
    for k in range(len(args[0])):
        at = {s: sympy.Float(a[k], 30) for s, a in zip(symbols, args)}
        assert float(form.subs(at).evalf(30)) == pytest.approx(expected[k], rel=1e-13, abs=1e-15), (name, k)
    shapes = {v: (len(args[0]),) for v in "ab"[:f.arity]}
    evaluated = symbolic_value(einderiv.parse(_program(name, f.arity)), shapes, values=dict(zip("ab", args)))
    assert_close(np.array([float(sympy.sympify(e).evalf(30)) for e in evaluated]), expected, rtol=1e-13, atol=1e-15)


def _balanced(latex):
    depth = 0
    for c in re.sub(r"\\[{}]", "", latex):
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth < 0:
            return False
    return depth == 0 and latex.count(r"\left") == latex.count(r"\right")


# LaTeX: every function's form keeps its arguments, balances braces and \left/\right, and to_latex uses it
@pytest.mark.parametrize("name", ALL)
def test_latex_form(name):
    f = REGISTRY[name]
    args = [r"x_{i}", r"\frac{1}{y_{i}}"][:f.arity]
    text = f.latex(*args)
    assert all(a in text for a in args) and _balanced(text), text
    assert re.fullmatch(r"[\\A-Za-z0-9_{}()\[\]<>=,.| ]+", text), text
    program_latex = einderiv.to_latex(einderiv.parse(_program(name, f.arity)))
    assert f.latex(*[rf"{v}_{{i}}" for v in "ab"[:f.arity]]) in program_latex and _balanced(program_latex)


# explanations name each function's local derivative in words
@pytest.mark.parametrize("name", ALL)
def test_explanation_states_the_local_derivative(name):
    f = REGISTRY[name]
    text = str(einderiv.explain(_program(name, f.arity), "a"))
    assert f"chain rule through {name}: {f.derivative_text}" in text


# the matrix form writes each function with its notation, in every style, and evaluates it
@pytest.mark.parametrize("name", ALL)
def test_matrix_form_notation(name):
    from einderiv.render.matrix import to_matrix
    f = REGISTRY[name]
    args = ", ".join(f"{v}[i,j]" for v in "AB"[:f.arity])
    form = to_matrix(einderiv.parse(f"Y[i,j] = {name}({args})").statement("Y").rhs)
    notation = f.matrix or REGISTRY["gt"].matrix     # step(U) is written [U > 0]
    for style in ("text", "ascii", "latex"):
        assert getattr(notation, style) in getattr(form, style), (name, style, getattr(form, style))
    arrays = {v: a.reshape(1, -1) for v, a in zip("AB", _sample_arguments(f))}
    assert_close(form.evaluate(arrays), f.array(NUMPY, *arrays.values()))


# ---------------------------------------------------------------------------
# softplus(x) = log(1 + eˣ), softplus' = σ: added by its registration alone
# ---------------------------------------------------------------------------

def _softplus_reference(x):
    """log(1 + eˣ) = max(x, 0) + log1p(e^-|x|), written independently of numpy's logaddexp."""
    x = np.asarray(x, dtype=float)
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid_reference(x):
    """σ(x) = exp(-softplus(-x)): no overflow for large |x|."""
    return np.exp(-_softplus_reference(-np.asarray(x, dtype=float)))


# large |x|: no overflow, no invalid value; softplus(x) → x above, → eˣ below; the gradient → 1 and → 0
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softplus_large_arguments(dtype):
    x = np.array([-1000.0, -745.0, -50.0, -1.0, 0.0, 1.0, 50.0, 745.0, 1000.0], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):     # underflow to 0 is the right answer
        value = einderiv.evaluate("y[i] = softplus(x[i])", {"x": x})
        grad = einderiv.grad("L = softplus(x[i])", "x", {"x": x})
    assert value.dtype == dtype and grad.dtype == dtype
    assert_close(value, _softplus_reference(x), rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-300)
    assert value[-1] == 1000.0 and value[0] == 0.0 and value[4] == pytest.approx(np.log(2.0))
    # sigmoid is 0.5 (1 + tanh(x/2)): accurate to eps absolutely, so σ(-50) ≈ 2e-22 reads 0
    assert_close(grad, _sigmoid_reference(x), rtol=1e-6, atol=float(np.finfo(dtype).eps))
    assert grad[-1] == 1.0 and grad[0] == 0.0 and np.isfinite(grad).all()


# gradient and Hessian: σ(x) and diag(σ(x)(1 - σ(x))), against finite differences
def test_softplus_gradient_and_hessian():
    from einderiv.numeric.hessian import hessian
    x = np.array([-3.0, -0.7, 0.0, 0.4, 2.2])
    text = "L = sum[i](w[i] softplus(x[i]))"
    w = np.array([0.5, -1.0, 2.0, 1.5, -0.25])
    inputs = {"x": x, "w": w}
    grad = einderiv.grad(text, "x", inputs)
    assert_close(grad, w * _sigmoid(x), rtol=1e-13, atol=1e-15)
    assert_close(grad, fd_jacobian(text, "x", inputs))
    H = hessian(text, "x", inputs)
    assert_close(H, np.diag(w * _sigmoid(x) * (1 - _sigmoid(x))), rtol=1e-13, atol=1e-15)
    assert_close(H, numeric_jacobian(lambda v: einderiv.grad(text, "x", {**inputs, "x": v}), x))


# the derivative is written with sigmoid, and the second with sigmoid's own rule
def test_softplus_symbolic_derivatives():
    program = einderiv.parse("y[i] = softplus(x[i])")
    assert str(program.derivative("x")) == "dy[i]/dx[a] = sigmoid(x[i]) δ[i,a]"
    assert str(einderiv.parse("L = softplus(s)").derivative("s")) == "dL/ds = sigmoid(s)"


# generated code: log(1 + eˣ) through np.logaddexp, no overflow, agrees with einderiv
def test_softplus_codegen(tmp_path):
    import importlib.util
    text = einderiv.codegen("L = sum[i](w[i] softplus(x[i]))", ["x", "w"])
    assert "np.logaddexp(0.0, x)" in text
    path = tmp_path / "generated_softplus.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("generated_softplus", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x, w = np.array([-800.0, -1.0, 0.3, 900.0]), np.array([1.0, 2.0, -0.5, 0.25])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value, grads = module.value_and_grad(x=x, w=w)
    assert value == pytest.approx(float(w @ _softplus_reference(x)), rel=1e-14)
    assert_close(grads["x"], w * _sigmoid_reference(x), rtol=1e-14, atol=1e-16)
    assert_close(grads["w"], _softplus_reference(x), rtol=1e-14, atol=0.0)


# SymPy: log(1 + exp(u)); the symbolic Jacobian entry is its derivative, e^u / (1 + e^u)
def test_softplus_sympy_form():
    sympy = pytest.importorskip("sympy")
    from einderiv.numeric.symbolic import symbolic_jacobian
    u = sympy.Symbol("u", real=True)
    assert REGISTRY["softplus"].sympy(sympy, u) == sympy.log(1 + sympy.exp(u))
    J = symbolic_jacobian(einderiv.parse("y = softplus(s)"), "s", {"s": ()})
    s = sympy.Symbol("s", real=True)
    assert sympy.simplify(sympy.sympify(J.item()) - sympy.diff(sympy.log(1 + sympy.exp(s)), s)) == 0


# LaTeX and the matrix form name it softplus; explanations say softplus' = σ
def test_softplus_latex_matrix_form_and_explanation():
    from einderiv.render.matrix import to_matrix
    latex = einderiv.to_latex(einderiv.parse("y[i] = softplus(x[i])"))
    assert latex == r"y_{i} = \operatorname{softplus}\left(x_{i}\right)"
    form = to_matrix(einderiv.parse("Y[i,j] = softplus(X[i,j])").statement("Y").rhs)
    assert (form.text, form.ascii) == ("softplus(X)", "softplus(X)")
    assert "chain rule through softplus: softplus' = σ" in str(einderiv.explain("y[i] = softplus(x[i])", "x"))


# the command line: `einderiv diff 'y[i] = softplus(x[i])' --wrt x` prints the sigmoid derivative
def test_softplus_cli_diff(capsys):
    from einderiv.cli import main
    assert main(["diff", "y[i] = softplus(x[i])", "--wrt", "x"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == "dy[i]/dx[a] = sigmoid(x[i]) δ[i,a]"


# a misspelling is refused with the list of known functions, softplus among them
def test_unknown_function_lists_softplus():
    with pytest.raises(einderiv.ProgramError, match=r"unknown function 'softplu'.*softplus"):
        einderiv.parse("y[i] = softplu(x[i])")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_is_accurate_relative_to_its_value_in_both_tails(dtype):
    x = np.array([-80.0, -50.0, -20.0, -3.0, 0.0, 3.0, 20.0, 80.0], dtype=dtype)
    exact = np.array([1.0 / (1.0 + math.exp(-float(v))) for v in x])
    got = einderiv.evaluate("y[i] = sigmoid(x[i])", {"x": x})
    assert got.dtype == dtype
    tiny = np.finfo(dtype).tiny
    mask = exact > tiny
    assert np.allclose(got[mask], exact[mask], rtol=200 * np.finfo(dtype).eps, atol=0)


def test_codegen_message_counts_one_index_in_the_singular():
    with pytest.raises(einderiv.ShapeError, match="'y' has 1 index; choose a scalar"):
        einderiv.codegen("y[i] = sigmoid(x[i])", "x")
