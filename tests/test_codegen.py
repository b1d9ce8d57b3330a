"""Generated modules: they import only numpy and opt_einsum, run without einderiv,
and agree with einderiv's own values, gradients and Hessians."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

import einderiv
from einderiv.render.codegen import codegen, function_code
from einderiv.core.functions import FUNCTIONS, USER_FUNCTIONS
from einderiv.numeric.hessian import hessian
from helpers import assert_close, numeric_jacobian, random_array

WX_LOSS = "F[i,k] = W[i,j] X[j,k]\nL = (F[i,k] - T[i,k])^2 / 2"
AB_LOSS = "C[i,j] = A[i,k] B[k,j]; L = C[i,j] C[i,j]"
TWO_LAYER = """H0[n,h] = X[n,d] W1[d,h]
H1[n,h] = H0[n,h] + b1[h]
H2[n,h] = max(0, H1[n,h])
H3[n,c] = H2[n,h] W2[h,c]
Z[n,c] = H3[n,c] + b2[c]
L = (Z[n,c] - T[n,c])^2 / (2 N)"""
SIGMOID = """z[n] = X[n,d] w[d] + b
p[n] = sigmoid(z[n])
L = -sum[n](y[n] log(p[n]) + (1 - y[n]) log(1 - p[n]))"""
FROBENIUS = "R[n,j] = X[n,i] W[i,j] - Y[n,j]; L = R[n,j]^2"

SEEDS = {
    "wx": (WX_LOSS, ["W", "X"], {"W": (2, 3), "X": (3, 4), "T": (2, 4)}),
    "ab": (AB_LOSS, ["A", "B"], {"A": (1, 3), "B": (3, 2)}),
    "two_layer": (TWO_LAYER, ["W1", "b1", "W2", "b2"],
                  {"X": (5, 3), "W1": (3, 4), "b1": (4,), "W2": (4, 2), "b2": (2,), "T": (5, 2), "N": ()}),
    "sigmoid": (SIGMOID, ["w", "b"], {"X": (6, 3), "w": (3,), "b": (), "y": (6,)}),
    "frobenius": (FROBENIUS, ["W"], {"X": (6, 3), "W": (3, 2), "Y": (6, 2)}),
}


def load(path, text):
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed_inputs(name, rng):
    _, _, shapes = SEEDS[name]
    inputs = {n: random_array(rng, s) for n, s in shapes.items()}
    if "N" in inputs:
        inputs["N"] = np.float64(shapes["X"][0])
    if name == "sigmoid":
        inputs["y"] = (rng.uniform(size=shapes["y"]) > 0.5).astype(float)
    if name == "two_layer":   # keep the ReLU away from its kink
        h1 = inputs["X"] @ inputs["W1"] + inputs["b1"]
        inputs["b1"] = inputs["b1"] + np.where(np.abs(h1).min(axis=0) < 0.05, 0.1, 0.0)
    return inputs


@pytest.fixture
def rng():
    return np.random.default_rng(11)


# value_and_grad of the generated module = einderiv.value_and_grad, for every seed program
@pytest.mark.parametrize("name", sorted(SEEDS))
@pytest.mark.parametrize("with_shapes", [False, True])
def test_value_and_grad_matches_einderiv(tmp_path, rng, name, with_shapes):
    program, wrts, shapes = SEEDS[name]
    module = load(tmp_path / f"{name}.py", codegen(program, wrts, shapes=shapes if with_shapes else None))
    inputs = seed_inputs(name, rng)
    value, grads = module.value_and_grad(**inputs)
    expected_value, expected = einderiv.value_and_grad(program, wrts, inputs)
    assert value == pytest.approx(expected_value, rel=1e-12)
    assert list(grads) == wrts
    for w in wrts:
        assert_close(grads[w], expected[w], rtol=1e-10, atol=1e-12, msg=w)


# hessian of the generated module = einderiv's hessian, block by block
@pytest.mark.parametrize("name", sorted(SEEDS))
def test_hessian_matches_einderiv(tmp_path, rng, name):
    program, wrts, shapes = SEEDS[name]
    module = load(tmp_path / f"{name}_h.py", codegen(program, wrts, shapes=shapes, hessian=True))
    inputs = seed_inputs(name, rng)
    blocks = module.hessian(**inputs)
    assert list(blocks) == [(a, b) for a in wrts for b in wrts]
    for (a, b), block in blocks.items():
        assert_close(block, hessian(program, a, inputs, wrt2=b), rtol=1e-10, atol=1e-12, msg=f"{a},{b}")


# the module's only imports are numpy and opt_einsum
@pytest.mark.parametrize("name", sorted(SEEDS))
def test_imports_only_numpy_and_opt_einsum(name):
    program, wrts, shapes = SEEDS[name]
    tree = ast.parse(codegen(program, wrts, shapes=shapes, hessian=True))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported == {"numpy", "opt_einsum"}


_ISOLATED = """
import importlib.abc, importlib.util, json, sys

class NoEinderiv(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "einderiv":
            raise ImportError("einderiv must not be imported")
        return None

sys.meta_path.insert(0, NoEinderiv())
import os
sys.path = [p for p in sys.path if os.path.realpath(p or ".") != "REPO"]  # the checkout itself; the finder above blocks the rest
import numpy as np
spec = importlib.util.spec_from_file_location("generated", "generated.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
data = np.load("inputs.npz")
value, grads = module.value_and_grad(**{k: data[k] for k in data.files})
blocks = module.hessian(**{k: data[k] for k in data.files})
assert not [m for m in sys.modules if m.split(".")[0] == "einderiv"]
print(json.dumps({"value": value, "grads": {k: v.tolist() for k, v in grads.items()},
                  "hessian": {"|".join(k): v.tolist() for k, v in blocks.items()}}))
"""


# the generated module runs in a fresh interpreter where einderiv cannot be imported
def test_runs_without_einderiv(tmp_path, rng):
    program, wrts, shapes = SEEDS["two_layer"]
    (tmp_path / "generated.py").write_text(codegen(program, wrts, shapes=shapes, hessian=True), encoding="utf-8")
    inputs = seed_inputs("two_layer", rng)
    np.savez(tmp_path / "inputs.npz", **inputs)
    repo = str(__import__("pathlib").Path(einderiv.__file__).resolve().parents[1])
    script = _ISOLATED.replace("REPO", repo.replace("\\", "\\\\"))
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    expected_value, expected = einderiv.value_and_grad(program, wrts, inputs)
    assert result["value"] == pytest.approx(expected_value, rel=1e-12)
    for w in wrts:
        assert_close(np.array(result["grads"][w]), expected[w], rtol=1e-10, atol=1e-12)
    assert_close(np.array(result["hessian"]["W2|W2"]), hessian(program, "W2", inputs), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# what the code looks like
# ---------------------------------------------------------------------------

# each step carries the index statement it implements; shapes give precomputed paths
def test_comments_and_paths():
    program, wrts, shapes = SEEDS["two_layer"]
    text = codegen(program, wrts, shapes=shapes)
    assert "    # H0[n,h] = X[n,d] W1[d,h]\n    H0 = oe.contract(\"nd,dh->nh\", X, W1, optimize=[(0, 1)])\n" in text
    assert "    # dL/dW1[a,b] = dL/dH1[n,b] X[n,a]\n" in text
    assert "optimize=" not in codegen(program, wrts)


# a free delta of the Hessian is an addition into a diagonal view, never an identity matrix
def test_free_delta_is_a_diagonal_view():
    program, wrts, shapes = SEEDS["frobenius"]
    text = codegen(program, wrts, shapes=shapes, hessian=True)
    assert "# d²L/dW[a,b]dW[c,d] = 2 X[n,a] X[n,c] δ[b,d]" in text
    assert "d2L_dW_dW = np.zeros(W.shape + W.shape)" in text
    assert ('_diagonal(d2L_dW_dW, ((0,), (1, 3), (2,)))[...] += '
            '(2 * oe.contract("na,nc->ac", X, X, optimize=[(0, 1)]))[:, None, :]') in text
    assert "np.eye" not in text and "identity" not in text


# elementwise functions are numpy expressions, one per function of the registry; an unknown one is refused
def test_every_function_has_numpy_code():
    from einderiv.render.codegen.expressions import Code
    for name, f in FUNCTIONS.items():
        assert function_code(name, [Code(f"u{k}") for k in range(f.arity)]).text.count("np.") >= 1, name
    with pytest.raises(einderiv.UnsupportedError, match="codegen has no numpy code for the function 'nope'"):
        function_code("nope", [Code("u")])


# each user function: value and gradient through generated code = einderiv's
@pytest.mark.parametrize("fn", USER_FUNCTIONS)
def test_each_function_value_and_grad(tmp_path, rng, fn):
    body = f"{fn}(x[i], y[i])" if FUNCTIONS[fn].arity == 2 else f"{fn}(x[i])"
    program = f"L = sum[i]({body} w[i])"
    low, high = FUNCTIONS[fn].domain
    inputs = {"x": rng.uniform(low, high, 6), "y": rng.uniform(low, high, 6), "w": random_array(rng, (6,))}
    inputs = {k: v for k, v in inputs.items() if k in dict(einderiv.parse(program).inputs)}
    module = load(tmp_path / f"fn_{fn}.py", codegen(program, ["x", "w"], hessian=True))
    value, grads = module.value_and_grad(**inputs)
    expected_value, expected = einderiv.value_and_grad(program, ["x", "w"], inputs)
    assert value == pytest.approx(expected_value, rel=1e-12)
    for w in ("x", "w"):
        assert_close(grads[w], expected[w], rtol=1e-10, atol=1e-12, msg=w)
    assert_close(module.hessian(**inputs)[("x", "x")], hessian(program, "x", inputs), rtol=1e-10, atol=1e-12)


# tensor names that are Python keywords, builtins or the module's own names still work
def test_awkward_names(tmp_path, rng):
    program = "lambda[i] = np[i,j] oe[j]; float = lambda[i] lambda[i] inputs"
    inputs = {"np": random_array(rng, (3, 2)), "oe": random_array(rng, (2,)), "inputs": np.float64(1.5)}
    module = load(tmp_path / "awkward.py", codegen(program, ["np", "oe"], hessian=True))
    value, grads = module.value_and_grad(**inputs)
    expected_value, expected = einderiv.value_and_grad(program, ["np", "oe"], inputs)
    assert value == pytest.approx(expected_value)
    assert_close(grads["np"], expected["np"])
    assert_close(module.hessian(**inputs)[("oe", "np")], hessian(program, "oe", inputs, wrt2="np"))


# an index no array fixes takes its size from `sizes`
def test_sizes_for_unfixed_indices(tmp_path, rng):
    program = "B[i,j] = b[j]\nL = sum[i,j](B[i,j] w[j])"
    inputs = {"b": random_array(rng, (3,)), "w": random_array(rng, (3,))}
    module = load(tmp_path / "sizes.py", codegen(program, ["w"], sizes={"i": 4}))
    value, grads = module.value_and_grad(**inputs)
    assert value == pytest.approx(float(einderiv.evaluate(program, inputs, sizes={"i": 4})))
    assert_close(grads["w"], einderiv.grad(program, "w", inputs, sizes={"i": 4}))
    with pytest.raises(einderiv.ShapeError, match="index 'i' is fixed by no array"):
        codegen(program, ["w"])


# the same request gives the same text
def test_output_is_deterministic():
    program, wrts, shapes = SEEDS["two_layer"]
    assert codegen(program, wrts, shapes=shapes, hessian=True) == codegen(program, wrts, shapes=shapes, hessian=True)


def test_non_scalar_output_is_refused():
    with pytest.raises(einderiv.ShapeError, match="codegen writes gradients of a scalar output, but 'F' has 2"):
        codegen(WX_LOSS, "W", of="F")


def test_statement_as_wrt_is_refused():
    with pytest.raises(einderiv.ProgramError, match="'F' is defined by a statement"):
        codegen(WX_LOSS, "F")


def test_missing_shape_is_refused():
    with pytest.raises(einderiv.ShapeError, match="shapes has no entry for T"):
        codegen(WX_LOSS, "W", shapes={"W": (2, 3), "X": (3, 4)})


# ---------------------------------------------------------------------------
# precedence: every function of every kind of argument, run and compared
# ---------------------------------------------------------------------------

# One argument of each kind: (positive for x, y in [1.5, 2.5], either sign there).
ARGUMENT_KINDS = {
    "sum": ("x[i] + y[i]", "x[i] + y[i] - 4"),
    "difference": ("x[i] - 1", "x[i] - y[i]"),
    "product": ("x[i] y[i]", "(x[i] - 2) * y[i]"),
    "quotient": ("x[i] / y[i]", "(x[i] - 2) / y[i]"),
    "power": ("x[i]^-1.5", "(x[i] - 2)^3"),
    "power of a sum": ("x[i]^(y[i] - 1)", "2^(x[i] - y[i]) - 1"),
    "negation": ("-(x[i] - 3)", "-x[i]"),
    "negated power": ("-x[i]^2 + 7", "-x[i]^2 + 4"),
    "nested": ("sigmoid(x[i] - y[i]) + 0.25", "tanh(y[i] - x[i] / 2) - 0.5"),
}
# Where the call sits: a product, under a negated square, in a denominator.
CONTEXTS = ("w[i] {}", "-{}^2 w[i]", "w[i] / (2.5 + {})")


def corpus_program(fn):
    """One statement per kind of argument of ``fn``, the contexts in turn; L sums them."""
    signed = fn not in ("log", "sqrt")
    args = [pair[1] if signed else pair[0] for pair in ARGUMENT_KINDS.values()]
    if FUNCTIONS[fn].arity == 2:
        calls = [f"{fn}({a}, {b})" for a, b in zip(args, args[1:] + args[:1])]
    else:
        calls = [f"{fn}({a})" for a in args]
    lines = [f"s{k} = sum[i]({CONTEXTS[k % len(CONTEXTS)].format(call)})" for k, call in enumerate(calls)]
    return "\n".join(lines + ["L = " + " + ".join(f"s{k}" for k in range(len(calls)))])


def test_the_corpus_writes_what_it_says():
    program = corpus_program("sigmoid").splitlines()
    assert program[1] == "s1 = sum[i](-sigmoid(x[i] - y[i])^2 w[i])"
    assert program[-1].startswith("L = s0 + s1 + s2")


# the reported bug: sigmoid of a difference kept its parentheses
def test_sigmoid_of_a_difference_keeps_its_parentheses(tmp_path):
    text = codegen("L = sigmoid(x[i] - 1)", "x")
    assert "np.logaddexp(0.0, -(x - 1.0))" in text and "-x - 1.0" not in text
    module = load(tmp_path / "sigmoid_difference.py", text)
    x = np.array([-1.0, 0.5, 3.0])
    value, grads = module.value_and_grad(x=x)
    s = 1 / (1 + np.exp(-(x - 1)))
    assert value == pytest.approx(s.sum(), rel=1e-12)
    assert_close(grads["x"], s * (1 - s), rtol=1e-12, atol=1e-14)


# generated value and gradient = einderiv's = finite differences of the generated value
@pytest.mark.parametrize("fn", USER_FUNCTIONS)
def test_functions_of_compound_arguments(tmp_path, rng, fn):
    program = corpus_program(fn)
    module = load(tmp_path / f"corpus_{fn}.py", codegen(program, ["x", "y", "w"]))
    inputs = {"x": rng.uniform(1.5, 2.5, 4), "y": rng.uniform(1.5, 2.5, 4), "w": random_array(rng, (4,))}
    value, grads = module.value_and_grad(**inputs)
    expected_value, expected = einderiv.value_and_grad(program, list(inputs), inputs)
    assert value == pytest.approx(expected_value, rel=1e-11)
    assert value == pytest.approx(float(einderiv.evaluate(program, inputs)), rel=1e-11)
    for name in inputs:
        assert_close(grads[name], expected[name], rtol=1e-10, atol=1e-12, msg=name)

        def generated_value(v, name=name):
            return module.value_and_grad(**{**inputs, name: v})[0]
        assert_close(grads[name], numeric_jacobian(generated_value, inputs[name]), msg=f"{fn}: d/d{name}")


# kinks: relu'(0) = 0, abs'(0) = 0; max sends the gradient to a where a > b, else b; min likewise
def test_kink_conventions(tmp_path):
    program = "L = sum[i](w[i] (relu(x[i]) + abs(x[i]) + max(x[i], y[i]) + 2 min(x[i], y[i])))"
    module = load(tmp_path / "kinks.py", codegen(program, ["x", "y"]))
    x = np.array([0.0, 0.0, 1.0, -1.0, 2.0])
    y = np.array([0.0, 1.0, 1.0, -2.0, 3.0])
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    _, grads = module.value_and_grad(x=x, y=y, w=w)
    expected_x = w * ((x > 0) + np.sign(x) + (x > y) + 2 * (x < y))
    expected_y = w * ((x <= y) + 2 * (x >= y))
    assert_close(grads["x"], expected_x, rtol=0, atol=0)
    assert_close(grads["y"], expected_y, rtol=0, atol=0)
    inputs = {"x": x, "y": y, "w": w}
    assert_close(grads["x"], einderiv.grad(program, "x", inputs), rtol=0, atol=0)
    assert_close(grads["y"], einderiv.grad(program, "y", inputs), rtol=0, atol=0)


# unary minus binds looser than a power, negative or fractional exponents keep their sign, and a
# denominator that is a product (the sigmoid's code) is one operand
def test_powers_negation_and_division(tmp_path):
    program = ("L = sum[i](-x[i]^2 + (-x[i])^3 - x[i]^-2 + x[i]^0.5 + x[i]^-0.5 - 2^-x[i] + x[i]^y[i] / (x[i] - y[i])"
               " + x[i] / sigmoid(y[i] - x[i]) - sigmoid(x[i]) / (2 y[i]))")
    text = codegen(program, ["x", "y"])
    module = load(tmp_path / "powers.py", text)
    x, y = np.array([0.5, 1.5, 2.0]), np.array([2.0, 0.25, 3.0])
    value, grads = module.value_and_grad(x=x, y=y)
    sigmoid = 1 / (1 + np.exp(-(y - x))), 1 / (1 + np.exp(-x))
    expected = np.sum(-x**2 + (-x)**3 - x**-2.0 + np.sqrt(x) + x**-0.5 - 2.0**-x + x**y / (x - y)
                      + x / sigmoid[0] - sigmoid[1] / (2 * y))
    assert value == pytest.approx(expected, rel=1e-12)
    for name, v in (("x", x), ("y", y)):
        def generated_value(u, name=name):
            return module.value_and_grad(**{"x": x, "y": y, name: u})[0]
        assert_close(grads[name], numeric_jacobian(generated_value, v), msg=name)
        assert_close(grads[name], einderiv.grad(program, name, {"x": x, "y": y}), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# hostile programs: what reaches the generated code is checked, and it runs
# ---------------------------------------------------------------------------

HOSTILE = """exec[i] = chr[i,j] print[j] + os[i]
lambda[i] = max(exec[i], -1e999) + min(np[i], 1e999) __import__
def = sum[i](sigmoid(lambda[i] - inf) nan[i]) + float
dL_dnan = def * inputs + None
L = dL_dnan + sum[i](_array[i] t1[i]) + eval oe"""
HOSTILE_SHAPES = {"chr": (3, 2), "print": (2,), "os": (3,), "np": (3,), "__import__": (), "inf": (), "nan": (3,),
                  "float": (), "inputs": (), "None": (), "_array": (2,), "t1": (2,), "eval": (), "oe": ()}


def refuse(*args, **kwargs):
    raise AssertionError(f"generated code tried to run something: {args!r}")


# names that shadow builtins, keywords, numpy and the module's own names; 1e999 as a literal
def test_hostile_names_run_and_agree(tmp_path, rng, monkeypatch):
    import builtins
    import os
    wrts = list(HOSTILE_SHAPES)
    text = codegen(HOSTILE, wrts, hessian=True)
    tree = ast.parse(text)
    assigned = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets}
    assert not assigned & {"exec", "chr", "print", "os", "np", "oe", "__import__", "float", "inputs", "eval", "_array"}
    assert {"exec_", "lambda_", "def_", "None_", "np_", "float_"} <= assigned
    assert "np.inf" in text and " inf)" in text   # the literal and the user tensor called inf
    inputs = {n: random_array(rng, s) for n, s in HOSTILE_SHAPES.items()}
    module = load(tmp_path / "hostile.py", text)
    with monkeypatch.context() as patch:   # running the functions starts nothing
        for owner, name in ((os, "system"), (os, "popen"), (subprocess, "Popen"), (builtins, "exec"),
                            (builtins, "eval")):
            patch.setattr(owner, name, refuse)
        value, grads = module.value_and_grad(**inputs)
        blocks = module.hessian(**inputs)
    assert value == pytest.approx(float(einderiv.evaluate(HOSTILE, inputs)), rel=1e-12)
    assert list(grads) == wrts
    for name in wrts:
        assert_close(grads[name], einderiv.grad(HOSTILE, name, inputs), rtol=1e-10, atol=1e-12, msg=name)
    assert_close(blocks[("nan", "np")], hessian(HOSTILE, "nan", inputs, wrt2="np"), rtol=1e-10, atol=1e-12)


# a literal that overflows is np.inf, never a bare name that a tensor called inf could answer
def test_infinite_and_nan_literals(tmp_path):
    text = codegen("L = sum[i](max(x[i], -1e999) + min(x[i], 1e999 - 1e999)) + inf", ["x", "inf"])
    assert "np.maximum(x, -np.inf)" in text and "np.minimum(x, np.nan)" in text
    module = load(tmp_path / "literals.py", text)
    value, grads = module.value_and_grad(x=np.array([1.0, -2.0]), inf=np.float64(3.0))
    assert np.isnan(value)
    assert_close(grads["x"], [1.0, 1.0], rtol=0, atol=0)   # max: gt(x, -inf); min: lt(x, nan) is 0
    assert float(grads["inf"]) == 1.0


# \r, \f, \v and other control characters: a parse error with a caret, before any code is written
@pytest.mark.parametrize("program, column", [
    ("L = x[i] x[i] # \rimport os; os.system('true')", 17),
    ("L = exec\f(x[i])", 9),
    ("L = x[i]\rx[i]", 9),
    ("L = x[i] \v x[i]", 10),
    ("L = x[i] # \x00", 12),
    ("L = x[i] # \x85", 12),
    ("L = x[i] # \u2028 os", 12),
])
def test_control_characters_are_parse_errors(program, column):
    with pytest.raises(einderiv.ParseError, match=rf"line 1, column {column}: the control character .* is not allowed"):
        codegen(program, "x")


# CRLF line endings are newlines
def test_crlf_line_endings(tmp_path):
    program = "y[i] = 2 x[i]  # double\r\n\r\nL = y[i] y[i]\r\n"
    text = codegen(program, "x")
    module = load(tmp_path / "crlf.py", text)
    value, grads = module.value_and_grad(x=np.array([1.0, 2.0]))
    assert value == 20.0 and grads["x"].tolist() == [8.0, 16.0]
    assert "\r" not in text


# comments and the docstring come from the canonical printed form, never the statement's source
def test_comments_never_copy_source(tmp_path):
    import dataclasses
    program = einderiv.parse("y[i] = x[i] + 1; L = y[i] y[i]")
    forged = "L = y[i] y[i]\rimport os; os.system('false')\f\v\x00"
    program = dataclasses.replace(program, statements=program.statements[:1] + (
        dataclasses.replace(program.statements[1], source=forged),))
    text = codegen(program, "x")
    assert "os.system" not in text and "\r" not in text
    assert "    # L = y[i]^2\n" in text and "    L = y[i]^2\n" in text
    value, _ = load(tmp_path / "forged.py", text).value_and_grad(x=np.array([1.0]))
    assert value == 4.0


# every control character in a comment or docstring is escaped, and can end neither early
def test_printable_escapes_control_characters():
    from einderiv.render.codegen.expressions import printable
    from einderiv.render.codegen.module import _docstring_text
    text = printable("a\rb\fc\vd\x00e\x85f\u2028g\\h δ²")
    assert text == "a\\rb\\x0cc\\x0bd\\x00e\\x85f\\u2028g\\\\h δ²"
    assert text.isprintable()
    assert _docstring_text('x """ y"') == 'x \\"\\"\\" y\\"'


# names that are not identifiers never reach the code
def test_non_identifier_names_are_refused():
    import dataclasses
    program = einderiv.parse("L = x[i] x[i]")
    bad = dataclasses.replace(program, inputs=(("x; import os", 1),))
    with pytest.raises(einderiv.ProgramError, match=r"tensor names of the form .*'x; import os'"):
        codegen(bad, "x; import os")


# the allow-list: codegen parses its own output and refuses anything it would not write
@pytest.mark.parametrize("old, new, problem", [
    ("return float(L)", "return print(L)", "a call of print"),
    ("return float(L)", "return getattr(np, 'system')(L)", "a call of getattr"),
    ("return float(L)", "return x.__class__", r"the attribute \.__class__"),
    ("return float(L)", "return np.lib", r"the attribute \.lib"),
    ("return float(L)", "return (lambda: x)()", "a call of lambda"),
    ("return float(L)", "return lambda: x", "a Lambda expression"),
    ("return float(L)", "return [v for v in x]", "a ListComp expression"),
    ("    # L = x[i]^2\n", "    import os\n", "a Import statement"),
    ("    # L = x[i]^2\n", "    np = 1\n", "an assignment to 'np'"),
    ("    # L = x[i]^2\n", "    exec = x\n", "an assignment to 'exec'"),
    ("    # L = x[i]^2\n", "    L = os\n", "the name 'os'"),
    ("    # L = x[i]^2\n", "    L = y\n", "the name 'y'"),
    ("    # L = x[i]^2\n", "    x.shape = 1\n", "a Assign statement"),
    ("    # L = x[i]^2\n", "    x *= 2\n", "a AugAssign statement"),
    ("    # L = x[i]^2\n", "    y += 1\n", "an update of 'y'"),
    ("# L = x[i]^2", "# L = x[i]^2\rimport os", r"the character '\\r'"),
    ("# L = x[i]^2", "# L = x[i]^2\fx", r"the character '\\x0c'"),
    ("import numpy as np", "import os as np", "imports or helpers that differ from the prelude"),
    ("def value_and_grad(**inputs):", "@print\ndef value_and_grad(**inputs):", "the signature of value_and_grad"),
])
def test_allow_list_refuses_what_codegen_does_not_write(old, new, problem):
    from einderiv.render.codegen.verify import verified
    source = codegen("L = x[i] x[i]", "x", hessian=True)
    assert verified(source) == source
    tampered = source.replace(old, new, 1)
    assert tampered != source
    with pytest.raises(einderiv.UnsupportedError, match=rf"codegen refused its own output \({problem}"):
        verified(tampered)
