"""The ``einderiv`` command line, driven as a user drives it, through ``main(argv)`` in this process.

Expected numbers come from textbook identities and an independent numpy
implementation, never from einderiv itself. ``main`` writes to ``sys.stdout``
and ``sys.stderr`` as they are at the call, so :func:`cli` runs it in-process
(no interpreter start-up); the real ``python -m einderiv`` runs only in a few
smoke tests (:func:`command`), and in tests/test_cli_input.py where a real
process is the point (broken pipes, /dev/full, file-size limits, FIFOs).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import einderiv
from einderiv.cli.app import (CommandLineError, flatten_jacobian, infer_shapes, load_array, main, parse_sizes,
                          read_program)
from einderiv.render.latex import expr_to_latex, matrix_to_latex, to_latex

REPO = Path(__file__).resolve().parents[1]
needs_sympy = pytest.mark.skipif(importlib.util.find_spec("sympy") is None,
                                 reason="--symbolic needs the optional sympy (einderiv[symbolic])")

MATMUL = "C[i,j] = A[i,k] B[k,j]"
A_ROW = "A=[[1,2,3]]"                     # A is 1×3
B_3X2 = "B=[[1,2],[3,4],[5,6]]"           # B is 3×2
A = np.array([[1.0, 2.0, 3.0]])
B = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])

NETWORK = """H0[n,h] = X[n,d] W1[d,h]
H1[n,h] = H0[n,h] + b1[h]
H2[n,h] = max(0, H1[n,h])
H3[n,c] = H2[n,h] W2[h,c]
Z[n,c] = H3[n,c] + b2[c]
L = (Z[n,c] - T[n,c])^2 / (2 N)
"""


def command(*args: str, stdin: str | None = None, env: dict | None = None, **options) -> subprocess.CompletedProcess:
    """Run the real ``python -m einderiv ARGS`` from the repository root (slow: keep these few)."""
    environment = {**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})}
    return subprocess.run([sys.executable, "-m", "einderiv", *args], input=stdin, capture_output=True,
                          text=True, encoding="utf-8", cwd=REPO, env=environment, timeout=120, **options)


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run ``main(ARGS)`` in this process, as ``einderiv ARGS`` would run, ``stdin`` as standard input."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO((stdin or "").encode("utf-8")), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(args))
    finally:
        sys.stdin = saved
    return subprocess.CompletedProcess(list(args), status, out.getvalue(), err.getvalue())


def ok(*args: str, **kwargs) -> str:
    """stdout of a run that must succeed with nothing on stderr."""
    result = cli(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    return result.stdout


def as_json(*args: str, **kwargs) -> dict:
    return json.loads(ok(*args, "--format", "json", **kwargs))


def failure(*args: str, **kwargs) -> str:
    """stderr of a run that must fail cleanly: status 2, one message, nothing on stdout, no traceback."""
    result = cli(*args, **kwargs)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("einderiv: error: "), result.stderr
    assert result.stderr.count("einderiv: error:") == 1
    return result.stderr


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """(status, stdout, stderr) of ``main(args)`` run in this process (no interpreter start-up)."""
    try:
        status = main(list(args))
    except SystemExit as exit:      # pragma: no cover - main never lets SystemExit escape
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ---------------------------------------------------------------------------
# diff
# ---------------------------------------------------------------------------


def test_diff_prints_one_derivative_per_name_in_every_format():
    # dF/dW = δ[i,a] X[b,k]; dF/dX = W[i,a] δ[k,b]  (F = W X)
    assert ok("diff", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W,X") == (
        "dF[i,k]/dW[a,b] = δ[i,a] X[b,k]\n"
        "dF[i,k]/dX[a,b] = W[i,a] δ[k,b]\n")
    assert ok("diff", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W", "--ascii") == "dF[i,k]/dW[a,b] = delta(i,a) X[b,k]\n"
    assert ok("diff", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W", "--format", "latex") == \
        "\\frac{\\partial F_{ik}}{\\partial W_{ab}} = \\delta_{ia} X_{bk}\n"
    document = as_json("diff", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W,X")
    assert document["command"] == "diff" and document["of"] == "F"
    assert [r["wrt"] for r in document["results"]] == ["W", "X"]
    assert document["results"][1]["derivative"] == "dF[i,k]/dX[a,b] = W[i,a] δ[k,b]"


def test_diff_of_an_intermediate_output_and_from_stdin_and_file(tmp_path):
    # y = A x, L = y·y: dy/dx = A, so d y[i] / d x[a] = A[i,a]
    program = "y[i] = A[i,j] x[j]\nL = y[i] y[i]\n"
    assert ok("diff", "-", "--wrt", "x", "--of", "y", stdin=program) == "dy[i]/dx[a] = A[i,a]\n"
    path = tmp_path / "program.ein"
    path.write_text(program, encoding="utf-8")
    assert ok("diff", f"@{path}", "--wrt", "x", "--of", "y") == "dy[i]/dx[a] = A[i,a]\n"


# ---------------------------------------------------------------------------
# jacobian: C = A B with A 1×3, B 3×2, in every layout
# ---------------------------------------------------------------------------


def _matmul_jacobian(*extra: str) -> dict:
    return as_json("jacobian", MATMUL, "--input", A_ROW, "--input", B_3X2, *extra)["results"]


def test_jacobian_of_matmul_in_every_layout():
    # dC[i,j]/dB[a,b] = A[i,a] δ[j,b], shape (1, 2, 3, 2)
    expected = np.einsum("ia,jb->ijab", A, np.eye(2))
    (tensor,) = _matmul_jacobian("--wrt", "B")
    assert tensor["shape"] == [1, 2, 3, 2] and tensor["layout"] == "tensor"
    assert tensor["derivative"] == "dC[i,j]/dB[a,b] = A[i,a] δ[j,b]"
    np.testing.assert_array_equal(tensor["values"], expected)
    (numerator,) = _matmul_jacobian("--wrt", "B", "--layout", "numerator")
    assert numerator["values"] == [[1, 0, 2, 0, 3, 0], [0, 1, 0, 2, 0, 3]]
    (denominator,) = _matmul_jacobian("--wrt", "B", "--layout", "denominator")
    assert denominator["values"] == np.array(numerator["values"]).T.tolist()
    # vec(A B) = (I ⊗ A) vec(B), vec column-major
    (vec,) = _matmul_jacobian("--wrt", "B", "--layout", "vec")
    np.testing.assert_array_equal(vec["values"], np.kron(np.eye(2), A))
    # vec(A B) = (Bᵀ ⊗ I) vec(A)
    (vec_a,) = _matmul_jacobian("--wrt", "A", "--layout", "vec")
    np.testing.assert_array_equal(vec_a["values"], np.kron(B.T, np.eye(1)))


def test_jacobian_text_prints_a_block_per_output_entry():
    text = ok("jacobian", MATMUL, "--wrt", "A", "--input", A_ROW, "--input", B_3X2)
    assert text == (
        "dC[i,j]/dA[a,b] = δ[i,a] B[b,j]\n"
        "shape: (1, 2, 1, 3) = shape(C) + shape(A)\n"
        "layout: tensor: the output's axes first, then the input's; one block per entry of C, counted from 1\n"
        "inputs: A, B given\n"
        "\n"
        "dC[1,1]/dA =\n"
        "[[1. 3. 5.]]\n"
        "\n"
        "dC[1,2]/dA =\n"
        "[[2. 4. 6.]]\n")


def test_jacobian_flattened_text_states_its_convention():
    text = ok("jacobian", MATMUL, "--wrt", "B", "--sizes", "i=1,k=3,j=2", "--layout", "numerator")
    assert "shape: (1, 2, 3, 2) = shape(C) + shape(B), printed as 2×6\n" in text
    assert "layout: numerator: a 2×6 matrix; row = entry of C, column = entry of B, both in row-major order" in text
    assert "inputs: A, B random (seed 0)" in text
    vec = ok("jacobian", MATMUL, "--wrt", "B", "--sizes", "i=1,k=3,j=2", "--layout", "vec", "--ascii")
    assert "column-major" in vec and "so here d vec(C)/d vec(B) = kron(I_j, A)" in vec


def test_jacobian_of_WX_in_vec_layout_is_XT_kron_I(tmp_path):
    # d vec(W X) / d vec(W) = Xᵀ ⊗ I_m, here with X read from a CSV file
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 4))
    np.savetxt(tmp_path / "x.csv", X, delimiter=",", fmt="%.17g")
    (result,) = as_json("jacobian", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W", "--sizes", "i=2",
                        "--input", f"X={tmp_path / 'x.csv'}", "--layout", "vec")["results"]
    np.testing.assert_allclose(result["values"], np.kron(X.T, np.eye(2)), rtol=1e-12)


def test_jacobian_npy_and_latex_outputs(tmp_path):
    out = tmp_path / "j.npy"
    assert ok("jacobian", MATMUL, "--wrt", "B", "--input", A_ROW, "--input", B_3X2, "--layout", "numerator",
              "--format", "npy", "--output", str(out)) == ""
    np.testing.assert_array_equal(np.load(out), [[1, 0, 2, 0, 3, 0], [0, 1, 0, 2, 0, 3]])
    latex = ok("jacobian", MATMUL, "--wrt", "B", "--input", A_ROW, "--input", B_3X2, "--layout", "numerator",
               "--format", "latex")
    assert latex.splitlines()[0] == "\\frac{\\partial C_{ij}}{\\partial B_{ab}} = A_{ia} \\delta_{jb}"
    assert latex.splitlines()[-1] == ("\\frac{\\partial C}{\\partial B} = \\begin{bmatrix} 1 & 0 & 2 & 0 & 3 & 0 "
                                      "\\\\ 0 & 1 & 0 & 2 & 0 & 3 \\end{bmatrix}")


def test_jacobian_with_upstream_prints_the_vector_jacobian_product():
    # dL/dW = G Xᵀ for F = W X
    W, X, G = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4) / 7, np.arange(8.0).reshape(2, 4) - 3
    args = ["jacobian", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W", "--input", f"W={W.tolist()}",
            "--input", f"X={X.tolist()}", "--upstream", f"G={G.tolist()}"]
    (result,) = as_json(*args)["results"]
    assert result["layout"] == "vjp" and result["shape"] == [2, 3]
    np.testing.assert_allclose(result["values"], G @ X.T, rtol=1e-12)
    assert ok(*args).splitlines()[0] == "G[i,k] dF[i,k]/dW[a,b] = G[a,k] X[b,k]"


# ---------------------------------------------------------------------------
# grad and eval
# ---------------------------------------------------------------------------


def _network_reference(X, W1, b1, W2, b2, T, N):
    """Loss and gradients of the two-layer network by hand-written backpropagation."""
    H1 = X @ W1 + b1
    H2 = np.maximum(0, H1)
    Z = H2 @ W2 + b2
    loss = ((Z - T) ** 2).sum() / (2 * N)
    dZ = (Z - T) / N
    dH1 = (dZ @ W2.T) * (H1 > 0)
    return loss, {"W1": X.T @ dH1, "b1": dH1.sum(0), "W2": H2.T @ dZ, "b2": dZ.sum(0)}


def test_grad_of_the_two_layer_network_matches_backpropagation(tmp_path):
    rng = np.random.default_rng(7)
    arrays = {"X": rng.standard_normal((4, 3)), "W1": rng.standard_normal((3, 5)), "b1": rng.standard_normal(5),
              "W2": rng.standard_normal((5, 2)), "b2": rng.standard_normal(2), "T": rng.standard_normal((4, 2))}
    options = []
    for name, array in arrays.items():
        np.save(tmp_path / f"{name}.npy", array)
        options += ["--input", f"{name}={tmp_path / f'{name}.npy'}"]
    (tmp_path / "network.ein").write_text(NETWORK, encoding="utf-8")
    loss, expected = _network_reference(**arrays, N=4.0)
    args = ["grad", f"@{tmp_path / 'network.ein'}", "--wrt", "W1,b1,W2,b2", *options, "--input", "N=4"]
    document = as_json(*args)
    assert document["value"] == pytest.approx(loss, rel=1e-12)
    assert [r["wrt"] for r in document["results"]] == ["W1", "b1", "W2", "b2"]
    for result in document["results"]:
        np.testing.assert_allclose(result["values"], expected[result["wrt"]], rtol=1e-10, atol=1e-12)
    text = ok(*args, "--precision", "3")
    assert text.startswith(f"L = {np.format_float_positional(loss, precision=3, trim='-')}\n")
    assert "dL/dW2[a,b] = (Z[n,b] - T[n,b]) H2[n,a] / N\nshape: (5, 2) = shape(W2)\n" in text
    archive = tmp_path / "grads.npz"
    assert ok(*args, "--format", "npy", "--output", str(archive)) == ""
    with np.load(archive) as saved:
        assert sorted(saved.files) == ["W1", "W2", "b1", "b2"]
        np.testing.assert_allclose(saved["W1"], expected["W1"], rtol=1e-10)


def test_eval_prints_the_value_and_random_inputs_follow_the_seed():
    assert ok("eval", "y[i] = A[i,j] x[j]", "--input", "A=[[1,2],[3,4]]", "--input", "x=[1,1]") == (
        "y[i] = A[i,j] x[j]\nshape: (2,)\ninputs: A, x given\n[3. 7.]\n")
    first = as_json("eval", MATMUL, "--sizes", "i=2,k=3,j=2", "--seed", "5", "--show-inputs")
    again = as_json("eval", MATMUL, "--sizes", "i=2,k=3,j=2", "--seed", "5", "--show-inputs")
    other = as_json("eval", MATMUL, "--sizes", "i=2,k=3,j=2", "--seed", "6")
    assert first == again and first["seed"] == 5 and first["inputs"] == {"A": "random", "B": "random"}
    values = first["input_values"]
    np.testing.assert_allclose(first["results"][0]["values"], np.array(values["A"]) @ np.array(values["B"]))
    assert other["results"][0]["values"] != first["results"][0]["values"]


def test_eval_float32():
    document = as_json("eval", "y[i] = 2 x[i]", "--input", "x=[0.1, 0.2]", "--dtype", "float32")
    assert document["dtype"] == "float32"
    assert document["results"][0]["values"] == [float(np.float32(0.2)), float(np.float32(0.4))]


def test_text_never_elides_unless_summarize(capsys):
    status, long, _ = in_process(capsys, "eval", "y[i] = x[i]", "--sizes", "i=2000")
    assert status == 0 and "..." not in long and long.count("\n") > 100
    assert "..." in in_process(capsys, "eval", "y[i] = x[i]", "--sizes", "i=2000", "--summarize")[1]
    assert in_process(capsys, "eval", "y = 1 / 3", "--precision", "2")[1].endswith("0.33\n")


def test_summation_trap_warns_on_stderr_and_still_succeeds():
    result = cli("eval", "L = (X[n,i] W[i,j] - Y[n,j])^2", "--sizes", "n=2,i=2,j=2")
    assert result.returncode == 0 and result.stdout
    assert result.stderr.startswith("einderiv: warning: in statement 1") and "Traceback" not in result.stderr


def test_the_summation_trap_warning_comes_before_any_output():
    merged = subprocess.run([sys.executable, "-m", "einderiv", "eval", "L = (X[n,i] W[i,j] - Y[n,j])^2",
                             "--sizes", "n=2,i=2,j=2"], capture_output=False, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=60)
    assert merged.returncode == 0
    assert merged.stdout.startswith("einderiv: warning: in statement 1")


# ---------------------------------------------------------------------------
# --symbolic
# ---------------------------------------------------------------------------


@needs_sympy
def test_symbolic_jacobian_of_matmul_in_numerator_layout():
    text = ok("jacobian", MATMUL, "--wrt", "B", "--sizes", "i=1,k=3,j=2", "--symbolic", "--layout", "numerator")
    assert "inputs: A, B symbols" in text
    assert text.endswith("[[a1, 0, a2, 0, a3, 0],\n [0, a1, 0, a2, 0, a3]]\n")
    (result,) = as_json("jacobian", MATMUL, "--wrt", "A", "--sizes", "i=1,k=3,j=2", "--symbolic",
                        "--layout", "numerator")["results"]
    assert result["values"] == [["b11", "b21", "b31"], ["b12", "b22", "b32"]]


@needs_sympy
def test_symbolic_grad_substitutes_given_inputs():
    # d(xᵀ A x)/dx = (A + Aᵀ) x, with A given
    (result,) = as_json("grad", "L = x[i] A[i,j] x[j]", "--wrt", "x", "--input", "A=[[1,2],[0,3]]",
                        "--symbolic")["results"]
    assert result["values"] == ["2*x1 + 2*x2", "2*x1 + 6*x2"]


def test_symbolic_without_sympy_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sympy", None)          # import sympy now raises ImportError
    message = failure("grad", "L = x[i] x[i]", "--wrt", "x", "--sizes", "i=2", "--symbolic")
    assert "pip install 'einderiv[symbolic]'" in message


# ---------------------------------------------------------------------------
# bad input: status 2, one message on stderr, nothing on stdout
# ---------------------------------------------------------------------------


def test_parse_error_shows_a_caret():
    message = failure("diff", "F[i = W[i,j]", "--wrt", "W")
    assert "line 1, column 5: unclosed '['" in message
    assert message.rstrip().endswith("^")


@pytest.mark.parametrize("args, expected", [
    (["eval", "y[i] = A[i,j] x[j]", "--input", "A=[[1,2],[3,4]]", "--input", "x=[1,1,1]"],
     r"index 'j' has size 2 from A \(axis 1\) but size 3 from x \(axis 0\)"),
    (["eval", "y[i] = A[i,j] x[j]", "--input", "x=[1,1]"],
     "cannot tell the shape of input 'A': its axis 0 is index 'i'.*give --sizes i=N"),
    (["eval", "@/no/such/program.ein"], "cannot read program file '/no/such/program.ein'"),
    (["eval", "y[i] = 2 x[i]", "--input", "x=/no/such/x.npy"], "cannot read input 'x' from '/no/such/x.npy'"),
    (["eval", "y[i] = 2 x[i]", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["jacobian", MATMUL, "--wrt", "B", "--sizes", "i=100,k=100,j=100"],
     "would have shape \\(100, 100, 100, 100\\) and take 800,000,000 bytes.*--upstream"),
])
def test_bad_input_fails_cleanly(args, expected):
    assert re.search(expected, failure(*args)), expected


@pytest.mark.parametrize("args, expected", [
    (["eval", "y[i] = A[i,j] x[j]", "--input", "A=[[1,2,3]]", "--sizes", "j=2"],
     "index 'j' has size 2 from --sizes j=2 but size 3 from A"),
    (["eval", "y[i] = A[i,j] x[j]", "--input", "A=[1,2]", "--sizes", "j=2"],
     "input 'A' has 1 axis \\(shape \\(2,\\)\\) but the program writes it with 2 indices"),
    (["eval", "y[i] = A[i,j] x[j]", "--input", "Q=[1]"], "'Q' is not an input of the program; inputs: A, x"),
    (["eval", "y[i] = 2 x[i]", "--input", "x=__import__('os')"], "neither a numeric literal"),
    (["eval", "y[i] = 2 x[i]", "--input", "x=['a']"], "not a number or nested lists of numbers"),
    (["eval", "y[i] = 2 x[i]", "--input", "x=[[1,2],[3]]"], "ragged"),
    (["eval", "y[i] = 2 x[i]", "--sizes", "i=two"], "--sizes: expected NAME=N pairs"),
    (["eval", "y[i] = 2 x[i]", "--sizes", "i=2", "--format", "npy"], "give a file with --output"),
    (["eval", "y[i] = 2 x[i]", "--sizes", "i=2", "--format", "yaml"], "invalid choice: 'yaml'"),
    (["jacobian", MATMUL, "--wrt", "C", "--sizes", "i=1,k=1,j=1"], "'C' is both the output and a tensor"),
    (["grad", MATMUL, "--wrt", "A", "--sizes", "i=1,k=1,j=1"], "grad needs a scalar output"),
    (["jacobian", MATMUL, "--wrt", "B", "--sizes", "i=10,k=10,j=10", "--symbolic"],
     "symbolic entries are limited to 4,096"),
    (["diff", "y[i] = foo(x[i])", "--wrt", "x"], "unknown function 'foo'"),
    (["diff", "y[i] = 2 x[i]", "--wrt", "x,"], "--wrt: expected names separated by commas"),
    (["jacobian", MATMUL, "--wrt", "B", "--sizes", "i=1,k=1,j=1", "--upstream", "A", "--symbolic"],
     "'A' is a tensor of the program"),
    (["jacobian", MATMUL, "--wrt", "B", "--sizes", "i=1,k=1,j=1", "--upstream", "G=[[1, 2]]"],
     r"upstream gradient 'G' has shape \(1, 2\) but 'C' has shape \(1, 1\)"),
    (["eval", "y[i,k] = x[i]", "--sizes", "i=2"], "index 'k' .* give its size, e.g. --sizes k=3"),
])
def test_more_bad_input_fails_cleanly_in_process(capsys, args, expected):
    status, out, err = in_process(capsys, *args)
    assert (status, out) == (2, "")
    assert err.startswith("einderiv: error: ") and err.count("einderiv: error:") == 1
    assert re.search(expected, err), err


def test_pickled_npy_is_refused(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"payload": 1}, None], dtype=object), allow_pickle=True)
    message = failure("eval", "y[i] = 2 x[i]", "--input", f"x={path}")
    assert "holds Python objects (a pickled array)" in message


def test_every_subcommand_has_help_with_examples(capsys):
    result = command("jacobian", "--help")                   # smoke test: the real command starts
    assert result.returncode == 0 and result.stderr == ""
    assert "examples:\n  einderiv jacobian" in result.stdout and "layouts:" in result.stdout
    for name in ("diff", "grad", "eval"):
        status, out, err = in_process(capsys, name, "--help")
        assert (status, err) == (0, "")
        assert "examples:\n  einderiv " + name in out and "--format" in out
    status, out, _ = in_process(capsys, "--help")
    assert status == 0 and "einderiv diff" in out and "einderiv grad" in out


# ---------------------------------------------------------------------------
# in-process: helpers, LaTeX, SymPy evaluator
# ---------------------------------------------------------------------------


def test_main_returns_the_status_and_prints_nothing_on_error(capsys):
    assert main(["eval", "y[i] = 2 x[i]", "--input", "x=[1]"]) == 0
    assert capsys.readouterr().out.endswith("[2.]\n")
    assert main(["eval", "y[i] = 2 x[i]", "--input", "x=oops"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("einderiv: error: cannot read input 'x'")


def test_read_program_and_parse_sizes(tmp_path):
    path = tmp_path / "p.ein"
    path.write_text("y = x[i]\n", encoding="utf-8")
    assert read_program(f"@{path}") == "y = x[i]\n"
    assert parse_sizes(["i=2, j=3", "k=0"]) == {"i": 2, "j": 3, "k": 0}
    with pytest.raises(CommandLineError, match="given sizes 2 and 3"):
        parse_sizes(["i=2", "i=3"])
    with pytest.raises(CommandLineError, match="expected NAME=N"):
        parse_sizes(["i=-1"])


def test_load_array_keeps_the_rank_of_a_one_row_csv(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("1,2,3\n")
    assert load_array("A", str(path), 2).shape == (1, 3)
    assert load_array("x", str(path), 1).shape == (3,)
    assert load_array("s", "2.5", 0).shape == ()
    with pytest.raises(CommandLineError, match="at most 2 axes"):
        load_array("T", str(path), 3)
    with pytest.raises(CommandLineError, match="not a table of numbers"):
        (tmp_path / "bad.csv").write_text("1,x\n")
        load_array("A", str(tmp_path / "bad.csv"), 2)


def test_infer_shapes_passes_sizes_through_statements():
    program = einderiv.parse(NETWORK)
    shapes = infer_shapes(program, {"X": (4, 3)}, {"h": 5, "c": 2}, ["X", "W1", "b1", "W2", "b2", "T", "N"])
    assert shapes == {"X": (4, 3), "W1": (3, 5), "b1": (5,), "W2": (5, 2), "b2": (2,), "T": (4, 2), "N": ()}
    with pytest.raises(einderiv.ShapeError, match="input 'W2': its axis 1 is index 'c'"):
        infer_shapes(program, {"X": (4, 3)}, {"h": 5}, ["W2"])


def test_flatten_jacobian_vec_is_column_major():
    # F = W X with W 2×3, X 3×4: d vec(F) / d vec(W) = Xᵀ ⊗ I₂
    X = np.arange(12.0).reshape(3, 4)
    J = np.einsum("ia,bk->ikab", np.eye(2), X)
    np.testing.assert_array_equal(flatten_jacobian(J, 2, "vec"), np.kron(X.T, np.eye(2)))
    np.testing.assert_array_equal(flatten_jacobian(J, 2, "denominator"), J.reshape(8, 6).T)
    with pytest.raises(CommandLineError, match="unknown layout 'diagonal'"):
        flatten_jacobian(J, 2, "diagonal")


def test_latex_of_programs_and_derivatives():
    program = einderiv.parse(NETWORK)
    assert to_latex(program).splitlines()[-1] == "L = \\frac{0.5 \\left(Z_{nc} - T_{nc}\\right)^{2}}{N}"
    assert to_latex(program.derivative("N")) == \
        "\\frac{\\partial L}{\\partial N} = -\\frac{0.5 \\left(Z_{nc} - T_{nc}\\right)^{2}}{N^{2}}"
    assert to_latex(program.derivative("W2")).startswith("\\frac{\\partial L}{\\partial \\mathrm{W2}_{ab}} = ")
    sums = einderiv.parse("y[i] = sqrt(sum[j](A[i,j]^2)) + abs(x[i])")
    assert to_latex(sums) == "y_{i} = \\sqrt{\\sum_{j} {A_{ij}}^{2}} + \\left\\lvert x_{i} \\right\\rvert"
    assert matrix_to_latex([["1"]]) == "\\begin{bmatrix} 1 \\end{bmatrix}"
    assert expr_to_latex(einderiv.core.ir.ZERO) == "0"
    with pytest.raises(TypeError, match="to_latex takes"):
        to_latex(42)


def test_latex_of_a_hessian_an_adjoint_program_and_an_explanation():
    program = einderiv.parse("L = x[i] x[i] / 2")
    assert to_latex(einderiv.symbolic_hessian(program, "x")) == \
        "\\frac{\\partial^2 L}{\\partial x_{a}\\,\\partial x_{b}} = \\delta_{ab}"
    adjoint = einderiv.adjoint(program, "x")
    assert to_latex(adjoint) == adjoint._repr_latex_().strip().strip("$").strip()
    assert to_latex(einderiv.explain(program, "x")).startswith("\\begin{aligned}")
    with pytest.raises(TypeError, match="not str"):
        to_latex("L = x[i] x[i] / 2")


def test_latex_names_chain_adjoints_with_a_bar():
    program = einderiv.parse("A[i] = exp(x[i]) + sin(x[i]) + cos(x[i])\n"
                             "B[i] = A[i] A[i] + A[i] x[i] + log(A[i]) + sqrt(A[i]) + tanh(A[i])\n"
                             "L = B[i] B[i] + B[i]")
    derivative = program.derivative("x")
    assert derivative.chain, "this program is meant to keep a named adjoint"
    lines = to_latex(derivative).splitlines()
    assert lines[0].startswith("\\overline{A}_{i} = ")
    assert "\\overline{A}_{a} \\exp\\left(x_{a}\\right)" in lines[-1]


def test_symbolic_evaluator_agrees_with_numbers_through_a_chain():
    sympy = pytest.importorskip("sympy")
    from einderiv.numeric.symbolic import symbol_names, symbolic_jacobian

    program = einderiv.parse("A[i] = exp(x[i]) + sin(x[i]) + cos(x[i])\n"
                             "B[i] = A[i] A[i] + A[i] x[i] + log(A[i]) + sqrt(A[i]) + tanh(A[i])\n"
                             "L = B[i] B[i] + B[i]")
    x = np.array([0.3, -0.2])
    J = symbolic_jacobian(program, "x", {"x": (2,)})
    symbols = sympy.symbols("x1 x2", real=True)
    numbers = [float(entry.subs(dict(zip(symbols, x)))) for entry in J]
    np.testing.assert_allclose(numbers, einderiv.grad(program, "x", {"x": x}), rtol=1e-10)
    assert symbol_names({"W": (2, 10)})["W"][1, 9] == "W[2,10]"            # a dimension above 9
    assert symbol_names({"A": (3,), "a": (3,)})["a"][0] == "a[1]"         # a clash: bracket names for all
    assert symbol_names({"W1": (2, 2)})["W1"][0, 1] == "w1_12"


def test_demo_prints_the_derivatives_and_the_full_jacobian_of_the_built_in_example():
    # F = W X with W = [[1,2,3],[4,5,6]], X = [[1,0],[0,1],[2,3]]: dF[i,k]/dW[a,b] = δ[i,a] X[b,k]
    out = ok("demo")
    assert "dF[i,k]/dW[a,b] = δ[i,a] X[b,k]" in out
    assert "dF[i,k]/dX[a,b] = W[i,a] δ[k,b]" in out
    assert "shape: (2, 2, 2, 3) = shape(F) + shape(W)" in out
    # the block of entry F[2,2] (counted from 1): only row a = 2 is non-zero, and it holds column k = 2 of X
    block = out.split("dF[2,2]/dW =", 1)[1]
    assert block.split()[:6] == ["[[0.", "0.", "0.]", "[0.", "1.", "3.]]"]


def test_hessian_prints_the_index_form_and_the_values():
    # d²(xᵀAx)/dx dx = A + Aᵀ
    out = ok("hessian", "L = x[i] A[i,j] x[j]", "--wrt", "x", "--input", "A=[[1,2],[3,4]]", "--input", "x=[1,1]")
    assert "d²L/dx[a]dx[b] = A[a,b] + A[b,a]" in out
    assert "shape: (2, 2) = shape(x) + shape(x)" in out
    assert "[[2. 5.]\n [5. 8.]]" in out


def test_codegen_writes_a_module_that_computes_the_gradient(tmp_path):
    # d(xᵀAx)/dx = (A + Aᵀ) x, computed by the generated module alone
    target = tmp_path / "quadratic.py"
    ok("codegen", "L = x[i] A[i,j] x[j]", "--wrt", "x", "--shapes", "x=2,A=2x2", "--output", str(target))
    spec = importlib.util.spec_from_file_location("quadratic", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    A, x = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, -1.0])
    value, grads = module.value_and_grad(x=x, A=A)
    assert value == pytest.approx(x @ A @ x)
    assert np.allclose(grads["x"], (A + A.T) @ x)


def test_codegen_rejects_a_malformed_shape():
    message = failure("codegen", "L = x[i] x[i]", "--wrt", "x", "--shapes", "x=3xq")
    assert "--shapes" in message


def test_explain_shows_each_rule_and_the_frobenius_view():
    # F = W X: gW = gF Xᵀ, and dL = gF : (dW X) = gF Xᵀ : dW
    out = ok("explain", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W", "--differentials", "--sizes", "i=2,j=3,k=4")
    assert "∂F[i,k]/∂W[a,b] = δ[i,a] δ[j,b] X[j,k]" in out
    assert "= gF[a,k] X[b,k]" in out
    assert "gW = gF Xᵀ" in out
    assert "dL = gF : dF = gF : (dW X) = gF Xᵀ : dW" in out


def test_grad_explain_prints_the_backprop_equations(tmp_path):
    # the two-layer network: the bias gradient is a sum over the batch, dZ/dH3 is the identity
    path = tmp_path / "network.ein"
    path.write_text(NETWORK, encoding="utf-8")
    out = ok("grad", f"@{path}", "--wrt", "W1,b1,W2,b2", "--explain")
    assert "gW2 = H2ᵀ gH3" in out
    assert "gb2 = gZᵀ 1" in out
    assert "gH3[n,c] = gZ[n,c]" in out
    assert "gH2 = gH3 W2ᵀ" in out


# ---------------------------------------------------------------------------
# every example that --help prints runs as printed, from the examples folder


def _help_examples() -> list[str]:
    from einderiv.cli.parser import EXAMPLES
    return [line.strip() for text in EXAMPLES.values() for line in text.splitlines()
            if line.strip().startswith("einderiv ")]


@pytest.mark.parametrize("command", _help_examples())
def test_every_help_example_runs_as_printed(command, capsys, tmp_path, monkeypatch):
    import shutil
    import shlex
    examples = Path(__file__).resolve().parents[1] / "examples"
    shutil.copytree(examples, tmp_path / "examples")
    monkeypatch.chdir(tmp_path / "examples")
    status = main(shlex.split(command)[1:])
    captured = capsys.readouterr()
    assert status == 0, captured.err


def test_several_results_go_to_npz_only_when_the_name_says_npz(capsys, tmp_path):
    target = tmp_path / "grads.npy"
    status, _, err = in_process(capsys, "grad", "L = x[i] y[i]", "--wrt", "x,y", "--sizes", "i=2",
                                "--format", "npy", "--output", str(target))
    assert status == 2 and not target.exists()
    assert "there are 2 results (x, y): name an .npz file" in err
    archive = tmp_path / "grads.npz"
    status, _, _ = in_process(capsys, "grad", "L = x[i] y[i]", "--wrt", "x,y", "--sizes", "i=2",
                              "--format", "npy", "--output", str(archive))
    assert status == 0 and sorted(np.load(archive).files) == ["x", "y"]


def test_a_200_by_200_result_is_summarised_unless_full(capsys):
    status, out, err = in_process(capsys, "eval", "C[i,j] = A[i,j]", "--sizes", "i=200,j=200")
    assert status == 0 and "..." in out and "printed in summary" in err
    status, out, err = in_process(capsys, "eval", "C[i,j] = A[i,j]", "--sizes", "i=200,j=200", "--full")
    assert status == 0 and "..." not in out and err == ""


def test_eval_help_says_what_of_means(capsys):
    assert main(["eval", "--help"]) == 0
    assert "whose value (eval)" in " ".join(capsys.readouterr().out.split())
