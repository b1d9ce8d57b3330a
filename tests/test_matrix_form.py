"""Matrix form: textbook identities (string and numbers), layouts, Kronecker forms, "no matrix form".

Every identity is checked twice: the printed matrix form against the textbook
string, and the matrix form evaluated with numpy against einderiv's own
gradient or Jacobian of the index program.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import einderiv
from einderiv.render.matrix import MatrixForm, fold_definitions, kronecker_form, kronecker_matrix, to_matrix
from helpers import assert_close, random_inputs

RNG_SEED = 7


def _inputs(shapes, seed=RNG_SEED, low=-1.0, high=1.0):
    return random_inputs(np.random.default_rng(seed), shapes, low, high)


def check_gradient(text, wrt, expected, shapes, ascii=None, of=None):
    """The matrix form of d of/d wrt prints as ``expected`` and equals einderiv.grad numerically."""
    program = einderiv.parse(text)
    form = to_matrix(program.derivative(wrt, of))
    assert form is not None, f"no matrix form for d/d{wrt} of {text}"
    assert form.text == expected
    if ascii is not None:
        assert form.ascii == ascii
    inputs = _inputs(shapes)
    env = dict(inputs)
    for name in program.names:   # forms may name intermediates of the program
        env[name] = einderiv.evaluate(program, inputs, of=name)
    assert_close(form.evaluate(env), einderiv.grad(program, wrt, inputs, of=of), msg=form.text)
    return form


# ---------------------------------------------------------------- textbook identities

# d(aᵀ X b)/dX = a bᵀ
def test_bilinear_form():
    check_gradient("L = a[i] X[i,j] b[j]", "X", "a bᵀ", {"a": (3,), "X": (3, 4), "b": (4,)}, ascii="a b^T")


# d tr(A X B)/dX = Aᵀ Bᵀ
def test_trace_of_product():
    check_gradient("L = A[i,j] X[j,k] B[k,i]", "X", "Aᵀ Bᵀ", {"A": (2, 3), "X": (3, 4), "B": (4, 2)})


# tr(A X B) itself is a closed cycle: a trace
def test_closed_cycle_is_a_trace():
    form = to_matrix(einderiv.parse("L = A[i,j] X[j,k] B[k,i]").statement("L").rhs)
    assert form.text == "tr(A X B)"
    inputs = _inputs({"A": (2, 3), "X": (3, 4), "B": (4, 2)})
    assert_close(form.evaluate(inputs), einderiv.evaluate("L = A[i,j] X[j,k] B[k,i]", inputs))
    assert form.layout == "scalar"


# d tr(Xᵀ A X)/dX = (A + Aᵀ) X
def test_quadratic_trace():
    check_gradient("L = X[j,i] A[j,k] X[k,i]", "X", "(A + Aᵀ) X", {"X": (3, 2), "A": (3, 3)})


# d(xᵀ A x)/dx = (A + Aᵀ) x
def test_quadratic_form():
    form = check_gradient("L = x[i] A[i,j] x[j]", "x", "(A + Aᵀ) x", {"x": (3,), "A": (3, 3)})
    assert form.layout == "column"


# d‖A x − b‖²/dx = 2 Aᵀ (A x − b), with r = A x − b named: 2 Aᵀ r
def test_least_squares_vector():
    check_gradient("r[i] = A[i,j] x[j] - b[i]; L = r[i]^2", "x", "2 Aᵀ r", {"A": (4, 3), "x": (3,), "b": (4,)})


# d‖X W − Y‖²_F/dW = 2 Xᵀ (X W − Y)
def test_least_squares_matrix():
    check_gradient("L = (sum[i](X[n,i] W[i,j]) - Y[n,j])^2", "W", "2 Xᵀ (X W − Y)",
                   {"X": (5, 3), "W": (3, 2), "Y": (5, 2)}, ascii="2 X^T (X W - Y)")


# the same with the residual as a statement: 2 Xᵀ R
def test_least_squares_matrix_two_statements():
    check_gradient("R[n,j] = X[n,i] W[i,j] - Y[n,j]; L = R[n,j]^2", "W", "2 Xᵀ R",
                   {"X": (5, 3), "W": (3, 2), "Y": (5, 2)})


# Gram matrix G = Xᵀ X; its VJP: gX = X (gG + gGᵀ)
def test_gram_matrix():
    program = einderiv.parse("G[i,j] = X[k,i] X[k,j]")
    assert to_matrix(program.statement("G").rhs).text == "Xᵀ X"
    from einderiv.render.explanation import adjoint
    step = adjoint(program, "X").step("X")
    assert step.matrix.text == "X (gGᵀ + gG)"
    inputs = _inputs({"X": (4, 3), "gG": (3, 3)})
    assert_close(step.matrix.evaluate(inputs), einderiv.vjp(program, "X", inputs, inputs["gG"]))


# softmax: dp/dz = diag(p) − p pᵀ
def test_softmax_jacobian():
    program = einderiv.parse("e[i] = exp(z[i]); s = e[j]; p[i] = e[i] / s")
    inputs = _inputs({"z": (4,)})
    p = einderiv.evaluate(program, inputs)
    jac = einderiv.jacobian(program, "z", inputs)
    assert_close(jac, np.diag(p) - np.outer(p, p))
    form = to_matrix(program.derivative("z"), program=program)
    assert form.text == "diag(p) − p pᵀ"
    env = {name: einderiv.evaluate(program, inputs, of=name) for name in program.names}
    assert_close(form.evaluate({**inputs, **env}), jac)
    # the derivative itself is written with the named intermediates, as that is shorter
    plain = to_matrix(program.derivative("z"))
    assert plain.text == "diag(p) − p pᵀ"
    assert_close(plain.evaluate({**inputs, **env}), jac)


# d σ(z)/dz = diag(σ'(z)) with σ' = σ (1 − σ)
def test_sigmoid_jacobian():
    program = einderiv.parse("y[i] = sigmoid(z[i])")
    form = to_matrix(program.derivative("z"))
    assert form.text == "diag(σ'(z))"
    assert form.ascii == "diag(sigmoid'(z))"
    inputs = _inputs({"z": (5,)})
    assert_close(form.evaluate(inputs), einderiv.jacobian(program, "z", inputs))


# d(A x)/dx = A
def test_linear_map_jacobian():
    program = einderiv.parse("y[i] = A[i,j] x[j]")
    form = to_matrix(program.derivative("x"))
    assert form.text == "A"
    inputs = _inputs({"A": (2, 3), "x": (3,)})
    assert_close(form.evaluate(inputs), einderiv.jacobian(program, "x", inputs))


# dE/dW3 = A3ᵀ (A5 − R) W4ᵀ for E = ½‖A3 W3 W4 − R‖²
def test_chain_of_two_layers():
    check_gradient("A4[n,j] = A3[n,i] W3[i,j]; A5[n,k] = A4[n,j] W4[j,k]; E = (A5[n,k] - R[n,k])^2 / 2",
                   "W3", "A3ᵀ (A5 − R) W4ᵀ", {"A3": (5, 2), "W3": (2, 3), "W4": (3, 4), "R": (5, 4)})


TWO_LAYER = """H0[n,h] = X[n,d] W1[d,h]
H1[n,h] = H0[n,h] + b1[h]
H2[n,h] = max(0, H1[n,h])
H3[n,c] = H2[n,h] W2[h,c]
Z[n,c] = H3[n,c] + b2[c]
L = (Z[n,c] - T[n,c])^2 / (2 N)"""
NET_SHAPES = {"X": (6, 3), "W1": (3, 4), "b1": (4,), "W2": (4, 2), "b2": (2,), "T": (6, 2), "N": ()}


# the two-layer network: dL/dW1 = Xᵀ (((Z − T) W2ᵀ) ⊙ [H1 ≥ 0]) / N
@pytest.mark.parametrize("wrt, expected", [
    ("W1", "Xᵀ (((Z − T) W2ᵀ) ⊙ [H1 ≥ 0]) / N"),
    ("b1", "1ᵀ (((Z − T) W2ᵀ) ⊙ [H1 ≥ 0]) / N"),
    ("W2", "H2ᵀ (Z − T) / N"),
    ("b2", "1ᵀ (Z − T) / N"),
])
def test_two_layer_network(wrt, expected):
    check_gradient(TWO_LAYER, wrt, expected, NET_SHAPES)


# ---------------------------------------------------------------- constructs

def _statement_form(text):
    program = einderiv.parse(text)
    statement = program.statements[-1]
    return program, to_matrix(statement.rhs, statement.lhs)


@pytest.mark.parametrize("text, expected, shapes", [
    # a summed index shared by two factors: a product, transposed as the orientation asks
    ("Y[a,b] = G[a,k] X[b,k]", "G Xᵀ", {"G": (2, 3), "X": (4, 3)}),
    ("Y[a,b] = A[i,a] G[i,b]", "Aᵀ G", {"A": (3, 2), "G": (3, 4)}),
    # every index shared: Hadamard, with the orientation of the first factor
    ("C[i,j] = A[i,j] B[i,j]", "A ⊙ B", {"A": (2, 3), "B": (2, 3)}),
    ("C[i,j] = A[i,j] B[j,i]", "A ⊙ Bᵀ", {"A": (2, 3), "B": (3, 2)}),
    # two vectors without a shared index: an outer product
    ("C[i,j] = a[i] b[j]", "a bᵀ", {"a": (2,), "b": (3,)}),
    # a vector and a matrix sharing a free index: a diagonal scaling
    ("C[i,j] = a[i] B[i,j]", "diag(a) B", {"a": (2,), "B": (2, 3)}),
    ("C[i,j] = B[i,j] a[j]", "B diag(a)", {"a": (3,), "B": (2, 3)}),
    # broadcasting a bias along the rows
    ("Y[n,c] = X[n,d] W[d,c] + b[c]", "X W + 1 bᵀ", {"X": (4, 3), "W": (3, 2), "b": (2,)}),
    # sums over one index of a matrix: column sums (a row) and row sums (a column)
    ("s[c] = G[n,c]", "Gᵀ 1", {"G": (4, 3)}),
    ("s[n] = G[n,c]", "G 1", {"G": (4, 3)}),
    # closed cycles and full contractions
    ("L = A[i,j] B[j,i]", "tr(A B)", {"A": (2, 3), "B": (3, 2)}),
    ("L = A[i,j] B[i,j]", "A : B", {"A": (2, 3), "B": (2, 3)}),
    ("L = x[i] y[i]", "xᵀ y", {"x": (3,), "y": (3,)}),
    ("L = (Z[n,c] - T[n,c])^2 / (2 N)", "‖Z − T‖_F² / (2 N)", {"Z": (3, 2), "T": (3, 2), "N": ()}),
    ("L = r[i]^2 / 2", "½ ‖r‖²", {"r": (3,)}),
    # elementwise functions and their derivative helpers
    ("H[n,h] = max(0, Z[n,h])", "max(0, Z)", {"Z": (2, 3)}),
    ("H[n,h] = G[n,h] step(Z[n,h])", "G ⊙ [Z > 0]", {"G": (2, 3), "Z": (2, 3)}),
    ("H[n,h] = G[n,h] le(0, Z[n,h])", "G ⊙ [Z ≥ 0]", {"G": (2, 3), "Z": (2, 3)}),
    ("y[i] = exp(sum[j](A[i,j] x[j]))", "exp(A x)", {"A": (2, 3), "x": (3,)}),
    ("H[n,h] = sigmoid(Z[n,h]) - sigmoid(Z[n,h])^2", "σ'(Z)", {"Z": (2, 3)}),
    ("y[i] = x[i]^2 + 1", "x^∘2 + 1", {"x": (3,)}),
    # scalars
    ("L = s t + 2", "s t + 2", {"s": (), "t": ()}),
    ("y[i] = A[i,j] x[j] / N", "A x / N", {"A": (2, 3), "x": (3,), "N": ()}),
    # an index repeated within one factor: the diagonal
    ("d[i] = A[i,i]", "diag(A)", {"A": (3, 3)}),
])
def test_statement_forms(text, expected, shapes):
    program, form = _statement_form(text)
    assert form is not None and form.text == expected
    inputs = _inputs(shapes, low=0.5, high=1.5)
    assert_close(form.evaluate(inputs), einderiv.evaluate(program, inputs), msg=text)


def test_ascii_and_latex():
    program = einderiv.parse(TWO_LAYER)
    form = to_matrix(program.derivative("W1"))
    assert form.ascii == "X^T (((Z - T) W2^T) .* [H1 >= 0]) / N"
    assert form.latex == (r"\frac{X^\top \left(\left(\left(Z - T\right) \mathrm{W2}^\top\right) \odot "
                          r"\mathbb{1}\left[\mathrm{H1} \ge 0\right]\right)}{N}")
    assert to_matrix(einderiv.parse("L = a[i] X[i,j] b[j]").derivative("X")).latex == r"a b^\top"
    assert form._repr_latex_() == f"${form.latex}$"
    assert str(form) == form.text


def test_printing_is_pure_and_deterministic():
    program = einderiv.parse(TWO_LAYER)
    form = to_matrix(program.derivative("W1"))
    before = (form.text, form.ascii, form.latex)
    form.evaluate({**_inputs(NET_SHAPES), "Z": np.ones((6, 2)), "H1": np.ones((6, 4))})
    assert (form.text, form.ascii, form.latex) == before
    assert {to_matrix(einderiv.parse(TWO_LAYER).derivative("W1")).text for _ in range(3)} == {form.text}


def test_layouts():
    assert to_matrix(einderiv.parse("s[c] = G[n,c]").statements[0].rhs).layout == "column"   # vectors are columns
    assert to_matrix(einderiv.parse("L = x[i] x[i]").derivative("x")).layout == "column"
    assert to_matrix(einderiv.parse("L = x[i] x[i]").statements[0].rhs).layout == "scalar"
    assert to_matrix(einderiv.parse("L = a[i] X[i,j] b[j]").derivative("X")).layout == "matrix"


def test_free_order_sets_the_orientation():
    expr = einderiv.parse("Y[a,b] = G[a,k] X[b,k]").statements[0].rhs
    (a, b) = einderiv.parse("Y[a,b] = G[a,k] X[b,k]").statements[0].lhs
    assert to_matrix(expr, (a, b)).text == "G Xᵀ"
    assert to_matrix(expr, (b, a)).text == "X Gᵀ"


# ---------------------------------------------------------------- no matrix form

@pytest.mark.parametrize("text, wrt", [
    ("F[i,k] = W[i,j] X[j,k]", "W"),            # a 4th-order Jacobian
    ("C[i,j,k] = A[i,j] x[k]", "x"),            # rank-3 output
    ("L = T[i,j,k] x[i] y[j] z[k]", "x"),       # a rank-3 factor
])
def test_no_matrix_form_derivative(text, wrt):
    assert to_matrix(einderiv.parse(text).derivative(wrt)) is None


@pytest.mark.parametrize("text", [
    "C[i,j,k] = A[i,j] x[k]",
    "y[i] = T[i,j,k] A[j,k]",
    # every summed index meets three matrices: no chain to follow
    "L = A[i,j] B[i,k] C[i,l] D[j,k] E[k,l] F[l,j]",
])
def test_no_matrix_form_statement(text):
    program = einderiv.parse(text)
    assert to_matrix(program.statements[-1].rhs, program.statements[-1].lhs) is None


def test_unsupported_argument_type():
    with pytest.raises(TypeError, match="to_matrix takes an Expr"):
        to_matrix("F[i,k] = W[i,j] X[j,k]")


# ---------------------------------------------------------------- Kronecker (vec) forms

def _vec(jac, out_rank):
    """The Jacobian as d vec(F)/d vec(W), both vecs column-major."""
    rows = int(np.prod(jac.shape[:out_rank]))
    return jac.reshape(rows, -1, order="F")


@pytest.mark.parametrize("text, wrt, labels, expected, shapes", [
    # F = W X: d vec(F)/d vec(W) = Xᵀ ⊗ I_m, d vec(F)/d vec(X) = I_p ⊗ W
    ("F[i,k] = W[i,j] X[j,k]", "W", {"i": "m"}, "Xᵀ ⊗ I_m", {"W": (2, 3), "X": (3, 4)}),
    ("F[i,k] = W[i,j] X[j,k]", "X", {"k": "p"}, "I_p ⊗ W", {"W": (2, 3), "X": (3, 4)}),
    # Y = A X B: Bᵀ ⊗ A
    ("Y[i,l] = A[i,j] X[j,k] B[k,l]", "X", None, "Bᵀ ⊗ A", {"A": (2, 3), "X": (3, 4), "B": (4, 5)}),
    # an elementwise map: a diagonal Jacobian
    ("Y[i,j] = sigmoid(X[i,j])", "X", None, "diag(vec(σ'(X)))", {"X": (2, 3)}),
    ("Z[n,c] = H[n,c] + b[c]", "H", {"n": "N", "c": "C"}, "I_C ⊗ I_N", {"H": (3, 2), "b": (2,)}),
    # a bias: vec(1 bᵀ) = (I ⊗ 1) b
    ("Z[n,c] = H[n,c] + b[c]", "b", None, "I_c ⊗ 1", {"H": (3, 2), "b": (2,)}),
    # a row vector times a matrix (vectors are columns: y = Wᵀ x)
    ("y[j] = x[i] W[i,j]", "W", None, "I_j ⊗ xᵀ", {"x": (3,), "W": (3, 2)}),
])
def test_kronecker_forms(text, wrt, labels, expected, shapes):
    program = einderiv.parse(text)
    derivative = program.derivative(wrt)
    assert kronecker_form(derivative, labels) == expected
    form = kronecker_matrix(derivative, labels)
    assert form.layout == "vec"
    inputs = _inputs(shapes)
    jac = einderiv.jacobian(program, wrt, inputs)
    sizes = {"n": shapes.get("H", (0,))[0]}   # the ones vector of a bias spans the output's rows
    assert_close(form.evaluate(inputs, sizes=sizes), _vec(jac, program.rank(program.output)), msg=expected)


def test_kronecker_none_for_gram_and_scalars():
    # the Gram matrix's vec Jacobian needs a commutation matrix: no Kronecker form here
    assert kronecker_form(einderiv.parse("G[i,j] = X[k,i] X[k,j]").derivative("X")) is None
    # a scalar output has a gradient, not a vec Jacobian
    assert kronecker_form(einderiv.parse("L = a[i] X[i,j] b[j]").derivative("X")) is None


def test_kronecker_of_vector_map_is_the_jacobian():
    assert kronecker_form(einderiv.parse("y[i] = A[i,j] x[j]").derivative("x")) == "A"


# ---------------------------------------------------------------- folding definitions

def test_fold_definitions_uses_program_tensors():
    program = einderiv.parse("e[i] = exp(z[i]); s = e[j]; p[i] = e[i] / s")
    folded = fold_definitions(program.derivative("z").expr, program.statements)
    assert einderiv.core.ir.tensor_names(folded) == ("p",)


# ---------------------------------------------------------------- property: forms equal the index form

INDEX_SIZES = {"i": 2, "j": 3, "k": 4}
TENSORS = {("i",): "u", ("j",): "v", ("k",): "w", ("i", "j"): "A", ("j", "k"): "B", ("k", "i"): "C",
           ("j", "i"): "D", ("i", "k"): "E"}


@st.composite
def statements(draw):
    """A one-term statement over factors of rank ≤ 2, left side of rank ≤ 2."""
    keys = draw(st.lists(st.sampled_from(sorted(TENSORS)), min_size=1, max_size=4))
    used = sorted({i for k in keys for i in k})
    lhs = draw(st.lists(st.sampled_from(used), max_size=2, unique=True))
    factors = " ".join(f"{TENSORS[k]}[{','.join(k)}]" for k in keys)
    if draw(st.booleans()):
        factors += " + " + draw(st.sampled_from([f"{TENSORS[k]}[{','.join(k)}]" for k in keys]))
    return f"Y[{','.join(lhs)}] = {factors}" if lhs else f"Y = {factors}"


@settings(max_examples=60, deadline=None)
@given(statements())
def test_property_forms_evaluate_like_the_index_form(text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = einderiv.parse(text)
    statement = program.statements[0]
    form = to_matrix(statement.rhs, statement.lhs)
    if form is None:
        return
    shapes = {name: tuple(INDEX_SIZES[i] for i in key) for key, name in TENSORS.items()}
    inputs = _inputs({n: s for n, s in shapes.items() if n in dict(program.inputs)})
    assert isinstance(form, MatrixForm)
    assert_close(form.evaluate(inputs), einderiv.evaluate(program, inputs), msg=f"{text} → {form.text}")


@settings(max_examples=40, deadline=None)
@given(statements())
def test_property_gradient_forms_equal_grad(text):
    with warnings.catch_warnings():   # the same right side summed to a scalar
        warnings.simplefilter("ignore")
        program = einderiv.parse("L =" + text.split("=", 1)[1])
    for wrt, _ in program.inputs:
        form = to_matrix(program.derivative(wrt))
        if form is None:
            continue
        shapes = {name: tuple(INDEX_SIZES[i] for i in key) for key, name in TENSORS.items()}
        inputs = _inputs({n: s for n, s in shapes.items() if n in dict(program.inputs)})
        assert_close(form.evaluate(inputs), einderiv.grad(program, wrt, inputs), msg=f"{text}: d/d{wrt} → {form.text}")


def test_every_node_kind_has_a_renderer_and_an_evaluator():
    from einderiv.render.matrix import evaluate, nodes, styles
    kinds = {c for c in vars(nodes).values() if isinstance(c, type) and issubclass(c, nodes.Node) and c is not nodes.Node}
    assert kinds == set(styles._RENDERERS) == set(evaluate._EVALUATORS)
    with pytest.raises(TypeError, match="unknown node Node"):
        styles.render(nodes.Node(None, None), styles.TEXT)
    with pytest.raises(TypeError, match="unknown node Node"):
        evaluate.evaluate_node(nodes.Node(None, None), {}, len)


def test_every_style_writes_functions_in_the_registry_notation():
    program = einderiv.parse("Y[i,j] = sigmoid(X[i,j]) + tanh(X[i,j])")
    form = to_matrix(program.statement("Y").rhs)
    assert (form.text, form.ascii, form.latex) == (
        "σ(X) + tanh(X)", "sigmoid(X) + tanh(X)",
        r"\sigma\left(X\right) + \tanh\left(X\right)")


def test_an_adjoint_step_has_the_matrix_form_of_its_expression():
    adjoint = einderiv.adjoint(einderiv.parse("F[i,k] = W[i,j] X[j,k]; L = F[i,k] F[i,k]"), "W")
    step = adjoint.steps[-1]
    assert str(to_matrix(step)) == str(to_matrix(step.expr, step.indices, tensors=step.tensors)) == "gF Xᵀ"
    with pytest.raises(TypeError, match="to_matrix takes an Expr"):
        to_matrix("gF Xᵀ")


def test_a_rewrite_that_turns_a_term_of_a_sum_into_another_node_is_refused():
    from einderiv.render.matrix.nodes import Const, Sum, TermNode, children
    total = Sum(None, None, (TermNode(None, None, 2.0),))
    assert children(total, lambda node: node) == total
    with pytest.raises(TypeError, match="turned a term of a sum into a Const"):
        children(total, lambda node: Const(None, None, 1.0))
