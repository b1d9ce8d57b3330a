"""One printer, three styles: the index text, its ASCII spelling and LaTeX share every structural decision.

The walk in :mod:`einderiv.language.printing` decides the order of terms and
factors, which terms are written once over a shared factor (``(Z - T) / N``),
brackets, index names and sums; a style only spells tokens. The check here is
independent of that design: strip the styling tokens from the printed text and
from the printed LaTeX, and the skeletons — names, indices, signs, numbers,
quotient bars, sums, in order — must be equal.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings

import einderiv
from einderiv.core import ir
from einderiv.language.printing import ASCII, LATEX, TEXT, Operand, TextStyle, format_expr, plural, print_expr
from einderiv.render.latex import expr_to_latex, to_latex
from strategies import programs

# the random programs sum over indices repeated inside functions on purpose; the language warns, rightly
pytestmark = pytest.mark.filterwarnings("ignore::einderiv.EinderivWarning")

# ---------------------------------------------------------------- skeletons: what is left without the styling

_TOKEN = re.compile(r"Σ|δ|/|\^|[-+]|\d+(?:\.\d+)?(?:e[+-]?\d+)?|[A-Za-z_][A-Za-z0-9_:]*|⟨[^⟩]*⟩")


def _tokens(text: str) -> list[str]:
    """Names, numbers, signs, ``/``, ``^``, ``Σ``, ``δ``; ``⟨a,b⟩`` (an index list) becomes its names."""
    out: list[str] = []
    for token in _TOKEN.findall(text):
        out.extend(token[1:-1].split(",") if token.startswith("⟨") else [token])
    return out


def text_skeleton(text: str) -> list[str]:
    """``(Z[a,b] - T[a,b]) / N`` → ``Z a b - T a b / N``."""
    text = text.replace("δ[", "δ⟨").replace("delta(", "δ⟨")
    text = re.sub(r"sum\[(\w+)\]\(1\)", r"size⟨\1⟩", text)      # a size: \operatorname{size}(i) in LaTeX
    text = re.sub(r"sum\[([^\]]*)\]\(", r"Σ⟨\1⟩ ", text)
    text = re.sub(r"(δ⟨[^)\]]*)[)\]]", r"\1⟩", text)
    text = re.sub(r"\[([^\]]*)\]", r"⟨\1⟩", text)
    return _tokens(text)


def _braced(text: str, start: int) -> tuple[str, int]:
    """The text of the brace group opening at ``start``, and the position after it."""
    depth = 0
    for k in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        if depth == 0:
            return text[start + 1:k], k + 1
    raise ValueError(f"unbalanced braces in {text!r}")


def _unfrac(text: str) -> str:
    r"""``\frac{A}{B}`` → ``A / B``, innermost last."""
    while (start := text.find(r"\frac{")) >= 0:
        top, after = _braced(text, start + len(r"\frac"))
        bottom, end = _braced(text, after)
        text = f"{text[:start]}{top} / {bottom}{text[end:]}"
    return text


def _uninv(text: str) -> str:
    r"""``\left(M^{-1}\right)`` → ``inv M``, innermost first; ``\left[M\right]_{ij}`` → ``\left[M\right]``
    (LaTeX names an argument's rows and columns, which the text leaves to the call's indices)."""
    text = re.sub(r"\\right\]_\{[^}]*\}", r"\\right]", text)
    text = text.replace(r"\log\left\lvert\det\left(", r"logdet\left(").replace(r"\right)\right\rvert", r"\right)")
    opening, close = r"\left(", r"^{-1}\right)"
    while (end := text.find(close)) >= 0:
        marks = sorted([(m.start(), 1) for m in re.finditer(r"\\right\)", text[:end])] +
                       [(m.start(), -1) for m in re.finditer(r"\\left\(", text[:end])], reverse=True)
        depth = 0
        for start, kind in marks:
            depth += kind
            if depth < 0:
                break
        text = f"{text[:start]} inv {text[start + len(opening):end]}{text[end + len(close):]}"
    return text


def _subscript(match: re.Match) -> str:
    names = match.group(1)       # one-letter names run together; a lone name may carry digits (x_{i1})
    return f"⟨{names if ',' in names else ','.join(re.findall(r'[A-Za-z][0-9]*', names))}⟩"


def latex_skeleton(latex: str) -> list[str]:
    r"""``\frac{Z_{ab} - T_{ab}}{N}`` → ``Z a b - T a b / N``."""
    text = _uninv(_unfrac(latex)).replace(r"\_", "_")
    text = re.sub(r"\\mathrm\{([^}]*)\}", r"\1", text)
    text = re.sub(r"\\operatorname\{([^}]*)\}", r"\1", text)
    text = text.replace(r"\left\lvert", "abs").replace(r"\right\rvert", "")
    text = text.replace(r"\sum_", "Σ_").replace(r"\delta_", "δ_").replace(r"\sigma", "sigmoid")
    text = re.sub(r"\\(left|right)[()\[\]]", " ", text)
    text = re.sub(r"_\{([^}]*)\}", _subscript, text)
    text = re.sub(r"\\([A-Za-z]+)", r"\1", text)   # \exp, \log, \sqrt, ... spell the function's name
    return _tokens(text)


def _expressions(program: einderiv.Program):
    """(expr, fixed names) of every statement and of every derivative line of ``program``."""
    for statement in program.statements:
        yield statement.rhs, {i: ir.display_name(i) for i in statement.lhs}
    for name, _ in program.inputs:
        derivative = program.derivative(name)
        for step in derivative.chain:
            yield step.expr, {i: ir.display_name(i) for i in step.indices}
        yield derivative.expr, {i: ir.display_name(i) for i in derivative.out_indices + derivative.wrt_indices}


EXAMPLES = [
    "Y[a,b] = Z[a,b] / N - T[a,b] / N",
    "L = 0.5 (Z[n,c] - T[n,c])^2 / N",
    "y[i] = exp(sum[j](A[i,j] x[j])) + log(1 + c^2) / (c d)",
    "y[i] = sqrt(sum[j](A[i,j]^2)) + abs(x[i]) + tanh(x[i])^3",
    "F[i,k] = W[i,j] X[j,k] / (1 + s^2)^2 - 2 W[i,k] / (1 + s^2)^2",
    "L = det(A) + sin(sum[i](x[i] x[i])) / cos(sum[j](y[j] y[j]))",
    "v[i] = sigmoid(x[i]) x[i]^c - 1 / x[i] + 2 sum[j](B[i,j] / y[j])",
    "Y[i,j] = inv(A)[i,j] + inv(A[i,j] + B[i,j])[i,j]",
]


@pytest.mark.parametrize("source", EXAMPLES)
def test_text_and_latex_have_the_same_structure(source):
    checked = 0
    for expr, fixed in _expressions(einderiv.parse(source)):
        text = format_expr(expr, fixed)
        assert latex_skeleton(expr_to_latex(expr, fixed)) == text_skeleton(text), text
        assert text_skeleton(format_expr(expr, fixed, ascii=True)) == text_skeleton(text)
        checked += 1
    assert checked >= 2


@given(programs())
@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_random_programs_print_the_same_structure_in_text_and_latex(case):
    for expr, fixed in _expressions(einderiv.parse(case.text)):
        text = format_expr(expr, fixed)
        assert latex_skeleton(expr_to_latex(expr, fixed)) == text_skeleton(text), text


def test_the_skeletons_see_the_drift_that_was():
    # the LaTeX printer of old wrote every term over the shared denominator
    assert latex_skeleton(r"\frac{Z_{ab}}{N} - \frac{T_{ab}}{N}") != text_skeleton("(Z[a,b] - T[a,b]) / N")
    assert latex_skeleton(r"\frac{Z_{ab} - T_{ab}}{N}") == text_skeleton("(Z[a,b] - T[a,b]) / N") == \
        ["Z", "a", "b", "-", "T", "a", "b", "/", "N"]
    assert latex_skeleton(r"\sum_{j1,k} {x_{j1}}^{2} \delta_{ik}") == text_skeleton("sum[j1,k](x[j1]^2 δ[i,k])")


# ---------------------------------------------------------------- the drift, fixed

def test_terms_over_a_shared_denominator_are_grouped_in_latex_as_in_text():
    program = einderiv.parse("Y[a,b] = Z[a,b] / N - T[a,b] / N")
    statement = program.statements[0]
    fixed = {i: ir.display_name(i) for i in statement.lhs}
    assert format_expr(statement.rhs, fixed) == "(Z[a,b] - T[a,b]) / N"
    assert to_latex(program) == r"Y_{ab} = \frac{Z_{ab} - T_{ab}}{N}"


def test_a_shared_factor_with_a_coefficient_keeps_its_brackets_in_latex():
    program = einderiv.parse("y[i] = 2 a[i] c + 2 b[i] c")
    assert to_latex(program) == r"y_{i} = 2 \left(a_{i} + b_{i}\right) c"
    fixed = {i: ir.display_name(i) for i in program.statements[0].lhs}
    assert format_expr(program.statements[0].rhs, fixed) == "2 (a[i] + b[i]) c"


def test_a_matrix_function_of_an_expression_takes_the_same_index_names_in_both():
    program = einderiv.parse("Y[p,q] = inv(A[i,j] + B[i,j])[p,q]")
    statement = program.statements[0]
    fixed = {i: ir.display_name(i) for i in statement.lhs}
    assert format_expr(statement.rhs, fixed) == "inv(A[p,q] + B[p,q])[p,q]"
    assert expr_to_latex(statement.rhs, fixed) == \
        r"\left(\left[A_{pq} + B_{pq}\right]_{pq}^{-1}\right)_{pq}"


# ---------------------------------------------------------------- styles spell, the walk decides

def test_the_three_styles_spell_the_same_walk():
    e = ir.add(ir.mul(ir.delta("i", "a"), ir.power(ir.ref("x", ["j"]), ir.const(2.0))),
               ir.summation(["k"], ir.mul(ir.ref("W", ["i", "k"]), ir.power(ir.ref("N", []), ir.const(-1.0)))))
    e = ir.call("exp", [e])
    assert print_expr(e, style=TEXT) == format_expr(e) == "exp(δ[i,a] x[j]^2 + sum[k](W[i,k] / N))"
    assert print_expr(e, style=ASCII) == format_expr(e, ascii=True) == "exp(delta(i,a) x[j]^2 + sum[k](W[i,k] / N))"
    assert print_expr(e, style=LATEX) == \
        r"\exp\left(\delta_{ia} {x_{j}}^{2} + \sum_{k} \frac{W_{ik}}{N}\right)"


def test_a_new_style_needs_only_its_tokens():
    class Shouting(TextStyle):
        def name(self, tensor: str) -> str:
            return tensor.upper()

        def delta(self, first: str, second: str) -> str:
            return f"KRONECKER({first},{second})"

    e = ir.mul(ir.delta("i", "a"), ir.ref("w", ["b"]))
    assert print_expr(e, style=Shouting()) == "KRONECKER(i,a) W[b]"
    assert print_expr(e, style=Shouting(), tensors={"w": "omega"}) == "KRONECKER(i,a) omega[b]"


def test_latex_quotients_drop_brackets_the_bar_makes():
    lone = [Operand("a + b", bare=False)]
    assert LATEX.quotient([Operand("x")], lone) == r"\frac{x}{a + b}"
    assert TEXT.quotient([Operand("x")], lone) == "x / (a + b)"
    assert LATEX.quotient([Operand("2"), lone[0]], [Operand("N"), Operand("M")]) == \
        r"\frac{2 \left(a + b\right)}{N M}"
    assert TEXT.quotient([Operand("2"), lone[0]], [Operand("N"), Operand("M")]) == "2 (a + b) / (N M)"


def test_unknown_objects_are_refused_by_to_latex():
    with pytest.raises(TypeError, match="to_latex takes an expression"):
        to_latex(object())


# ---------------------------------------------------------------- plural

@pytest.mark.parametrize("n, word, expected", [
    (1, "index", "index"), (0, "index", "indices"), (2, "index", "indices"), (1, "axis", "axis"),
    (3, "axis", "axes"), (1, "argument", "argument"), (2, "argument", "arguments"),
    (2, "intermediate", "intermediates"),
])
def test_plural(n, word, expected):
    assert plural(n, word) == expected


def test_messages_count_with_plural():
    with pytest.raises(einderiv.errors.ProgramError, match="'x' is defined with 1 index but used here with 2"):
        einderiv.parse("x[i] = a[i]\ny[i] = x[i,i]")
    with pytest.raises(einderiv.errors.ProgramError, match="input 'a' is used with 2 indices here but with 1"):
        einderiv.parse("y[i] = a[i] + a[i,i]")
    with pytest.raises(einderiv.errors.ProgramError, match="'exp' takes 1 argument, got 2"):
        einderiv.parse("y[i] = exp(a[i], a[i])")
