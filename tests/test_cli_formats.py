"""The command line's parts: the table of subcommands, the registry of formats, and --format markdown.

Markdown tables are checked exactly on small cases, and read back into numbers that must equal an
independent reference (closed forms computed here with explicit loops) and the npy output.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import subprocess
import sys

import numpy as np
import pytest

from einderiv.cli import formats
from einderiv.cli.app import main
from einderiv.cli.formats import FORMATS, Options, markdown_table, render
from einderiv.cli.parser import COMMANDS, EXAMPLES, build_parser, command_formats, command_named
from einderiv.cli.reports import Document, Report

A_GIVEN = "A=[[1,2],[3,4.5]]"
X_GIVEN = "x=[1,-1]"


def run(*args: str) -> tuple[int, str, str]:
    """(status, stdout, stderr) of ``main(args)`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


def read_markdown(text: str) -> dict[str, np.ndarray]:
    """Every table of a Markdown output, by the bold label above it (or '' for an unlabelled one), as numbers."""
    tables: dict[str, np.ndarray] = {}
    label, rows = "", None
    for line in text.split("\n") + [""]:
        if line.startswith("**") and line.endswith("**"):
            label = line.strip("*").replace("\\", "")
        elif line.startswith("|"):
            rows = [] if rows is None else rows
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows is not None:
            header, body = rows[0], rows[2:]          # rows[1] is the alignment row
            assert [r[0] for r in body] == [str(k + 1) for k in range(len(body))], rows
            if len(header) > 2:                         # a matrix: columns numbered; a vector: one named column
                assert header[1:] == [str(k + 1) for k in range(len(header) - 1)], header
            tables[label] = np.array([[float(cell) for cell in r[1:]] for r in body])
            label, rows = "", None
    return tables


# ---------------------------------------------------------------- the table of subcommands

def test_every_subcommand_has_help_a_handler_and_examples():
    names = [command.name for command in COMMANDS]
    assert len(set(names)) == len(names)
    for command in COMMANDS:
        assert command.help and command.help[0].islower(), command.name
        assert callable(command.handler) and command.handler.__doc__, command.name
        assert command.examples.startswith("examples:\n") and f"einderiv {command.name}" in command.examples
    assert list(EXAMPLES) != [] and set(EXAMPLES) == set(names)


def test_the_parser_has_a_subcommand_per_row_and_each_runs_its_handler():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(subparsers.choices) == [command.name for command in COMMANDS]
    for command in COMMANDS:
        assert subparsers.choices[command.name].get_default("run") is command.handler


def test_every_offered_format_has_a_renderer_and_every_renderer_is_offered():
    offered = {fmt for command in COMMANDS for fmt in command_formats(command)}
    assert offered == set(FORMATS)
    assert command_formats(next(c for c in COMMANDS if c.name == "codegen")) == ()


@pytest.mark.parametrize("argv, expected", [
    (["diff", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W"], Report),
    (["grad", "L = x[i] x[i]", "--wrt", "x", "--sizes", "i=2"], Report),
    (["grad", "L = x[i] x[i]", "--wrt", "x", "--explain"], Document),
    (["explain", "L = x[i] x[i]", "--wrt", "x"], Document),
    (["demo"], Document),
])
def test_a_handler_returns_a_report_object_and_prints_nothing(argv, expected, capsys):
    args = build_parser().parse_args(argv)
    assert isinstance(args.run(args), expected)
    assert capsys.readouterr() == ("", "")


def test_a_run_builds_the_arguments_of_its_own_command_only():
    assert command_named(["--ascii", "grad", "x"]) == "grad" and command_named(["--help"]) is None
    parser = build_parser(only="eval")
    with pytest.raises(SystemExit, match="2"), contextlib.redirect_stderr(io.StringIO()):
        parser.parse_args(["grad", "L = x[i] x[i]", "--wrt", "x"])     # grad has no arguments here
    assert run("bogus")[2].startswith("einderiv: error: argument COMMAND: invalid choice: 'bogus'")


def test_diff_imports_neither_numpy_nor_the_evaluator_nor_the_renderers_it_does_not_use():
    code = ("import sys; from einderiv.cli import main; main(['diff', 'F[i,k] = W[i,j] X[j,k]', '--wrt', 'W']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'opt_einsum', 'lark', 'sympy') "
            "or m.startswith(('einderiv.numeric', 'einderiv.render.codegen', 'einderiv.render.explanation', "
            "'einderiv.render.matrix'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8",
                            timeout=120)
    assert result.stdout.splitlines() == ["dF[i,k]/dW[a,b] = δ[i,a] X[b,k]", "[]"], result.stderr


# ---------------------------------------------------------------- --format markdown

def test_markdown_jacobian_of_a_matrix_vector_product_exactly():
    status, out, err = run("jacobian", "y[i] = A[i,j] x[j]", "--wrt", "x", "--input", A_GIVEN, "--input", X_GIVEN,
                           "--format", "markdown")
    assert (status, err) == (0, "")
    assert out == """```
dy[i]/dx[a] = A[i,a]
```

- shape: (2, 2) = shape(y) + shape(x)
- layout: tensor: the output's axes first, then the input's; one block per entry of y, counted from 1
- inputs: A, x given

| i \\ a | 1 | 2 |
|---|--:|--:|
| 1 | 1 | 2 |
| 2 | 3 | 4.5 |
"""


def test_markdown_gradient_exactly():
    # L = xᵀ A x with x = (1, -1): L = 1 - 2 - 3 + 4.5 = 0.5, dL/dx = (A + Aᵀ) x = (-3, -4)
    status, out, err = run("grad", "L = x[i] A[i,j] x[j]", "--wrt", "x", "--input", A_GIVEN, "--input", X_GIVEN,
                           "--format", "markdown")
    assert (status, err) == (0, "")
    assert out == """```
L = 0.5
```

- inputs: x, A given

```
dL/dx[a] = A[a,j] x[j] + x[i] A[i,a]
```

- shape: (2,) = shape(x)

| a | dL/dx |
|---|--:|
| 1 | -3 |
| 2 | -4 |
"""


def test_a_markdown_jacobian_reads_back_into_the_closed_form(tmp_path):
    # dF[i,k]/dW[a,b] = δ[i,a] X[b,k]: one table per entry of F, each shaped like W
    W, X = "W=[[1,2,3],[4,5,6]]", "X=[[0.5,-1],[0.25,2],[3,1e-3]]"
    x_value = np.array([[0.5, -1], [0.25, 2], [3, 1e-3]])
    status, out, err = run("jacobian", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W", "--input", W, "--input", X,
                           "--format", "markdown", "--precision", "17")
    assert (status, err) == (0, "")
    tables = read_markdown(out)
    assert sorted(tables) == [f"dF[{i},{k}]/dW" for i in (1, 2) for k in (1, 2)]
    expected = np.zeros((2, 2, 2, 3))
    for i in range(2):
        for k in range(2):
            for b in range(3):
                expected[i, k, i, b] = x_value[b, k]
    found = np.array([[tables[f"dF[{i + 1},{k + 1}]/dW"] for k in range(2)] for i in range(2)])
    np.testing.assert_array_equal(found, expected)
    assert run("jacobian", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W", "--input", W, "--input", X,
               "--format", "npy", "--output", str(tmp_path / "J.npy"))[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "J.npy"), found)


def test_a_markdown_gradient_of_a_three_axis_input_reads_back_as_slices():
    # L = Σ T², dL/dT = 2 T: one table per leading index, T[a,:,:]
    T = np.arange(12.0).reshape(2, 2, 3) / 8 - 0.5
    status, out, err = run("grad", "L = T[i,j,k] T[i,j,k]", "--wrt", "T", "--input", f"T={T.tolist()}",
                           "--format", "markdown", "--precision", "17")
    assert (status, err) == (0, "")
    tables = read_markdown(out)
    assert sorted(tables) == ["dL/dT[1,:,:]", "dL/dT[2,:,:]"]
    np.testing.assert_array_equal(np.array([tables["dL/dT[1,:,:]"], tables["dL/dT[2,:,:]"]]), 2 * T)
    assert "| b \\ c | 1 | 2 | 3 |" in out


def test_a_large_markdown_result_is_summarised_unless_full():
    args = ("grad", "L = A[i,j] A[i,j]", "--wrt", "A", "--sizes", "i=120,j=100", "--format", "markdown")
    status, out, err = run(*args)
    assert status == 0 and err.startswith("einderiv: note: the result has 12,000 numbers"), err
    assert "| a \\ b | 1 | 2 | 3 | … | 98 | 99 | 100 |" in out and "| 4 |" not in out
    status, out, err = run(*args, "--full")
    assert (status, err) == (0, "") and "| 60 |" in out and "…" not in out


def test_a_summarised_markdown_jacobian_keeps_the_first_and_last_tables():
    status, out, _ = run("jacobian", "y[i,j] = x[i,j] x[i,j]", "--wrt", "x", "--sizes", "i=5,j=4", "--format",
                         "markdown", "--summarize")
    assert status == 0
    assert re.findall(r"^\*\*(.*)\*\*$", out, re.M) == ["dy[1,1]/dx", "dy[1,2]/dx", "dy[1,3]/dx",
                                                        "dy[5,2]/dx", "dy[5,3]/dx", "dy[5,4]/dx"]
    assert "… 14 more tables …" in out


def test_markdown_is_offered_for_jacobians_and_gradients_only():
    status, out, err = run("eval", "y[i] = x[i]", "--input", "x=[1]", "--format", "markdown")
    assert (status, out) == (2, "")
    assert re.fullmatch(r"einderiv: error: argument --format: invalid choice: 'markdown' .*\n", err), err


def test_markdown_escapes_what_markdown_would_read_as_markup():
    table = markdown_table(np.array(["a|b", "x_1"], dtype=object), "i", str, column="W*")
    assert table == ["| i | W* |", "|---|--:|", "| 1 | a\\|b |", "| 2 | x\\_1 |"]


def test_a_new_format_is_one_renderer(monkeypatch):
    def render_count(report, options, summarise):
        return formats.Rendered(f"{report.entries()} numbers\n")
    monkeypatch.setitem(FORMATS, "count", formats.Format("count", render_count))
    args = build_parser().parse_args(["grad", "L = x[i] x[i]", "--wrt", "x", "--sizes", "i=3"])
    assert render(args.run(args), Options(format="count")).text == "3 numbers\n"
