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
from einderiv.codegen import NUMPY_CODE, codegen
from einderiv.functions import FUNCTIONS, USER_FUNCTIONS
from einderiv.second_order import hessian
from helpers import assert_close, random_array

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


# elementwise functions are numpy expressions, one per function of the table
def test_every_function_has_numpy_code():
    assert set(NUMPY_CODE) == set(FUNCTIONS)


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
