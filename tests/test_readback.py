"""Everything einderiv prints in index form reads back as the language and means the same numbers.

The rule: every derivative (``Program.derivative``, Unicode and ASCII), every
chain line of a derivative or Hessian, every adjoint program and every
vector–Jacobian line of the CLI parses back and evaluates to the numbers the
numeric API computes. A printed derivative ``dF[i,k]/dW[a,b] = RHS`` becomes the
statement ``D[i,k,a,b] = RHS``; a chain line ``dy/dh[i,a] = …`` becomes a
statement of its own, its name (``dy/dh``, a display name) replaced by an
identifier wherever it occurs. Each readback statement ends with zero terms
such as ``+ 0 y[i] + 0 x[a]``: they fix the sizes of indices no array on the
right sizes (``D[i,a] = δ[i,a]``), as a user would, without changing a value.

Hypothesis draws the programs (:func:`programs`): several statements over
tiny tensors; intermediates renamed, transposed and diagonal-taken; sums,
products, quotients, powers, the language's functions, explicit ``sum[...]``,
deltas, scalars and constants. Every index name has one size (``i``, ``k``: 2;
``j``, ``l``: 3), so any choice of names is a valid program.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import einderiv
from einderiv import errors
from einderiv.cli.commands import vjp_text as _vjp_text
from einderiv.numeric.hessian import symbolic_hessian

SIZES = {"i": 2, "k": 2, "j": 3, "l": 3}
NAMES_OF_SIZE = {2: ("i", "k"), 3: ("j", "l")}
INPUTS = {"x": (2,), "y": (3,), "A": (2, 3), "B": (3, 3), "S": (2, 2), "c": ()}
# READBACK_EXAMPLES=2000 READBACK_RANDOM=1 for a deeper, randomized search
READBACK = settings(max_examples=int(os.environ.get("READBACK_EXAMPLES", "40")), deadline=None, database=None,
                    derandomize=not os.environ.get("READBACK_RANDOM"),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# ---------------------------------------------------------------- random programs

def _ref(draw, shapes: dict[str, tuple[int, ...]]) -> str:
    defined = sorted(set(shapes) - set(INPUTS))
    pool = defined if defined and draw(st.booleans()) else sorted(shapes)
    name = draw(st.sampled_from(pool))
    indices = [draw(st.sampled_from(NAMES_OF_SIZE[n])) for n in shapes[name]]
    return f"{name}[{','.join(indices)}]" if indices else name


def _positive(draw, shapes, lhs, bound, depth) -> str:
    """An expression that is positive for every input: a safe base for log, sqrt, / and ^0.5."""
    inner = _expr(draw, shapes, lhs, bound, depth - 1)
    return draw(st.sampled_from([f"(1 + ({inner})^2)", f"exp({inner})", f"sigmoid({inner})", "2"]))


def _expr(draw, shapes, lhs: tuple[str, ...], bound: frozenset[str], depth: int) -> str:
    if depth <= 0 or draw(st.integers(0, 3)) == 3:
        kind = draw(st.sampled_from(["ref", "ref", "ref", "number", "scalar"]))
        if kind == "number":
            return draw(st.sampled_from(["2", "3", "0.5"]))
        if kind == "scalar":
            return "c"
        return _ref(draw, shapes)
    sub = lambda: _expr(draw, shapes, lhs, bound, depth - 1)   # noqa: E731
    kind = draw(st.sampled_from(["add", "sub", "mul", "star", "div", "pow", "root", "neg", "fn", "fn", "safe",
                                 "minmax", "sum", "scaled", "delta", "sums"]))
    if kind == "add":
        return f"{sub()} + {sub()}"
    if kind == "sub":
        return f"{sub()} - ({sub()})"
    if kind == "mul":
        return f"({sub()}) ({sub()})"
    if kind == "star":
        return f"{sub()} * {sub()}"
    if kind == "div":
        return f"({sub()}) / {_positive(draw, shapes, lhs, bound, depth)}"
    if kind == "pow":
        return f"({sub()})^{draw(st.sampled_from(['2', '3']))}"
    if kind == "root":
        return f"{_positive(draw, shapes, lhs, bound, depth)}^{draw(st.sampled_from(['0.5', '1.5', '-1']))}"
    if kind == "neg":
        return f"-({sub()})"
    if kind == "fn":
        fn = draw(st.sampled_from(["exp", "sin", "cos", "tanh", "sigmoid", "relu", "abs"]))
        return f"{fn}({sub()})"
    if kind == "safe":
        return f"{draw(st.sampled_from(['log', 'sqrt']))}({_positive(draw, shapes, lhs, bound, depth)})"
    if kind == "minmax":
        return f"{draw(st.sampled_from(['max', 'min']))}({sub()}, {sub()})"
    if kind == "sum":
        free = [n for n in SIZES if n not in lhs and n not in bound]
        if not free:
            return sub()
        index = draw(st.sampled_from(free))
        return f"sum[{index}]({_expr(draw, shapes, lhs, bound | {index}, depth - 1)})"
    if kind == "sums":
        return _product_of_sums(draw, shapes, lhs, bound, depth)
    if kind == "scaled":                          # a scalar before a parenthesis: needs '*'
        return f"c * ({sub()} + {sub()})"
    names = NAMES_OF_SIZE[draw(st.sampled_from([2, 3]))]
    first, second = draw(st.sampled_from(names)), draw(st.sampled_from(names))
    delta = f"δ[{first},{second}]" if draw(st.booleans()) else f"delta({first},{second})"
    return f"{delta} {sub()}"


def _product_of_sums(draw, shapes, lhs, bound, depth) -> str:
    """Five or six two-term sums multiplied: 32 terms or more multiplied out, so lowering names
    the sums as hidden temporaries (``out_1 = x[i] + 2``) that every printed form must define."""
    def two_terms() -> str:
        first = _ref(draw, shapes) if draw(st.integers(0, 3)) else _expr(draw, shapes, lhs, bound, depth - 2)
        second = draw(st.sampled_from(["1", "2", "c", "ref"]))
        return f"({first} + {_ref(draw, shapes) if second == 'ref' else second})"
    return " * ".join(two_terms() for _ in range(draw(st.integers(5, 6))))


def _reshaped(draw, previous: str, shape: tuple[int, ...]) -> tuple[tuple[str, ...], str]:
    """A statement that renames, transposes or takes the diagonal of ``previous``: (lhs, rhs)."""
    names = [draw(st.sampled_from(NAMES_OF_SIZE[n])) for n in shape]
    if len(names) == 2 and names[0] == names[1]:
        return (names[0],), f"{previous}[{names[0]},{names[0]}]"          # the diagonal
    if len(set(names)) < len(names) or not names:
        return (), f"{previous}[{','.join(names)}]" if names else previous
    return tuple(reversed(names)) if draw(st.booleans()) else tuple(names), f"{previous}[{','.join(names)}]"


def _uses(draw, previous: str, also: str, expr: str) -> str:
    """``expr`` combined with a reference to the previous statement, so the statements chain."""
    form = draw(st.sampled_from(["{e} + {p}", "({e}) ({p})", "{f}({p}) + {e}", "({p})^2 - ({e})", "{p} / (1 + ({e})^2)",
                                 "{p} + ({p})^2 + ({p})^3 + {f}({p}) + {g}({q})", "{f}({p}) {g}({q}) ({e})"]))
    fn, other = (draw(st.sampled_from(["exp", "sin", "tanh", "sigmoid", "relu", "abs"])) for _ in range(2))
    return form.format(e=expr, p=previous, q=also, f=fn, g=other)


@st.composite
def programs(draw, scalar_output: bool = False, temporaries: bool = False) -> str:
    """A valid program of one to four statements over the tiny inputs of ``INPUTS``, each using the last;
    ``scalar_output`` makes the last statement a scalar; ``temporaries`` puts a product of five or six
    sums into one statement, which lowering splits into hidden temporaries."""
    shapes = dict(INPUTS)
    count = draw(st.integers(1, 4))
    with_sums = draw(st.integers(0, count - 1)) if temporaries else -1
    lines = []
    previous = None
    for k in range(count):
        name = "out" if k == count - 1 else f"h{k}"
        if previous is not None and draw(st.integers(0, 3)) == 0 and not (scalar_output and k == count - 1) \
                and k != with_sums:
            lhs, rhs = _reshaped(draw, previous, shapes[previous])
        else:
            last = scalar_output and k == count - 1
            lhs = () if last else tuple(draw(st.lists(st.sampled_from(sorted(SIZES)), max_size=2, unique=True)))
            rhs = _expr(draw, shapes, lhs, frozenset(), 3)
            if k == with_sums:
                rhs = f"{_product_of_sums(draw, shapes, lhs, frozenset(), 2)} + {rhs}"
            if previous is not None:
                rhs = _uses(draw, _previous_ref(draw, previous, shapes[previous]),
                            _previous_ref(draw, previous, shapes[previous]), rhs)
        lines.append(f"{name}[{','.join(lhs)}] = {rhs}" if lhs else f"{name} = {rhs}")
        shapes[name] = tuple(SIZES[i] for i in lhs)
        previous = name
    return "\n".join(lines)


def _previous_ref(draw, previous: str, shape: tuple[int, ...]) -> str:
    return _ref(draw, {previous: shape})


# ---------------------------------------------------------------- reading back

def _inputs(program: einderiv.Program) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.uniform(-1.0, 1.0, INPUTS[name]) for name, _ in program.inputs}


def _sizes(text: str) -> dict[str, int]:
    """Sizes by name for every index name the text may use: ``j1`` is a variant of ``j``.

    Lenient on purpose: a renamed ``sum[j1](1)`` nothing sizes is still printed for a size
    inside a function or a power, or beside a free index of that name (see the regressions
    below for the cases that keep their name)."""
    sizes = dict(SIZES)
    for name in set(re.findall(r"\b([ijkl])(\d+)\b", text)):
        sizes["".join(name)] = SIZES[name[0]]
    return sizes


def _ref_text(name: str, indices) -> str:
    return f"{name}[{','.join(indices)}]" if indices else name


def _sized(rhs: str, refs: list[tuple[str, tuple[str, ...]]]) -> str:
    """``rhs + 0 T[…]`` for each (tensor, its index names) with indices: sizes for indices no array fixes."""
    return rhs + "".join(f" + 0 {_ref_text(t, ix)}" for t, ix in refs if ix)


def _identifiers(tensor_names: dict[str, str]) -> dict[str, str]:
    """Display names of chain tensors (``dy/dh``) → identifiers for the readback program."""
    return {shown: f"Chain{k}" for k, shown in enumerate(sorted(set(tensor_names.values()), key=len, reverse=True))}


def _replace_names(text: str, identifiers: dict[str, str]) -> str:
    for shown, ident in identifiers.items():
        text = re.sub(re.escape(shown) + r"(?![A-Za-z0-9_])", ident, text)
    return text


def _split(line: str) -> tuple[str, tuple[str, ...], str]:
    """``name[i,a] = rhs`` → (name, indices, rhs); the name may be a display name with '/'."""
    lhs, rhs = line.split(" = ", 1)
    match = re.fullmatch(r"(.*?)(?:\[([^\]]*)\])?", lhs)
    return match.group(1), tuple(match.group(2).split(",")) if match.group(2) else (), rhs


def derivative_program(program: einderiv.Program, d, ascii: bool) -> str:
    """The forward program, the chain lines and ``D[out…, in…] = RHS``, as one program."""
    lines = d.to_text(ascii=ascii).split("\n")
    identifiers = _identifiers(d._tensor_names())
    out = lines[:len(d.definitions)]              # the temporaries, statements as printed
    lines = lines[len(d.definitions):]
    for line, s in zip(lines, d.chain):
        name, indices, rhs = _split(line)
        cut = len(indices) - len(program.statement(s.of).lhs)
        refs = [(d.of, indices[:cut]), (s.of, indices[cut:])]
        out.append(f"{_ref_text(identifiers[name], indices)} = {_sized(_replace_names(rhs, identifiers), refs)}")
    lhs, rhs = lines[-1].split(" = ", 1)
    out_names = tuple(re.fullmatch(r"d[^\[]*(?:\[([^\]]*)\])?/d.*", lhs).group(1).split(",")) \
        if "]/d" in lhs else ()
    wrt_names = tuple(lhs.rsplit("[", 1)[1].rstrip("]").split(",")) if lhs.endswith("]") else ()
    refs = [(d.of, out_names), (d.wrt, wrt_names)]
    out.append(f"{_ref_text('D', out_names + wrt_names)} = {_sized(_replace_names(rhs, identifiers), refs)}")
    return program.text + "\n" + "\n".join(out)


def _check_derivative(program: einderiv.Program, wrt: str, inputs) -> None:
    d = program.derivative(wrt)
    expected = einderiv.jacobian(program, wrt, inputs, sizes=SIZES)
    text = derivative_program(program, d, ascii=False)
    note(text)
    got = einderiv.evaluate(text, inputs, of="D", sizes=_sizes(text))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-10, err_msg=text)
    assert d.to_text(ascii=True) == _to_ascii(d.to_text())   # the same lines, deltas spelt out


def _to_ascii(text: str) -> str:
    return re.sub(r"δ\[([^,\]]*),([^\]]*)\]", r"delta(\1,\2)", text)


def _check_adjoint(program: einderiv.Program, wrt: str, inputs) -> None:
    adj = einderiv.adjoint(program, wrt)
    given = dict(inputs)
    if adj.seed:
        cotangent = np.random.default_rng(1).uniform(-1.0, 1.0, _shape(program, program.output))
        given[adj.seed] = cotangent
        expected = einderiv.vjp(program, wrt, inputs, cotangent, sizes=SIZES)
    else:
        expected = einderiv.grad(program, wrt, inputs, sizes=SIZES)
    full = program.text + "\n" + adj.text
    note(full)
    got = einderiv.evaluate(full, given, of=adj.gradient[wrt], sizes=_sizes(adj.text))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-10, err_msg=full)
    assert adj.ascii == _to_ascii(adj.text)


def _check_vjp_line(program: einderiv.Program, wrt: str, inputs) -> None:
    """The CLI's ``G[i,k] dF[i,k]/dW[a,b] = RHS`` line, when it is one line."""
    d = program.derivative(wrt)
    if d.chain or not d.out_indices:
        return
    cotangent = np.random.default_rng(2).uniform(-1.0, 1.0, _shape(program, program.output))
    printed, _ = _vjp_text(d, "G", False)
    assert _vjp_text(d, "G", True)[0] == _to_ascii(printed)
    *definitions, line = printed.split("\n")      # the temporaries it refers to come first
    lhs, rhs = line.split(" = ", 1)
    wrt_names = tuple(lhs.rsplit("[", 1)[1].rstrip("]").split(",")) if lhs.endswith("]") else ()
    text = "\n".join([program.text, *definitions, f"{_ref_text('V', wrt_names)} = {_sized(rhs, [(wrt, wrt_names)])}"])
    note(text)
    got = einderiv.evaluate(text, {**inputs, "G": cotangent}, of="V", sizes=_sizes(text))
    expected = einderiv.vjp(program, wrt, inputs, cotangent, sizes=SIZES)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-10, err_msg=text)


def _moderate(program: einderiv.Program, inputs) -> bool:
    """Every statement's value is moderate, so no printed term (exp(h0), say) is so large that
    rounding in the difference of two of them dwarfs the answer: the printed form and the plan
    group the same terms differently."""
    return all(np.all(np.abs(einderiv.evaluate(program, inputs, of=name, sizes=SIZES)) < 5.0)
               for name in program.names)


def _shape(program: einderiv.Program, name: str) -> tuple[int, ...]:
    return tuple(SIZES[i.split("#")[0]] for i in program.statement(name).lhs)


@READBACK
@given(programs(), st.data())
def test_every_printed_derivative_adjoint_and_vjp_line_reads_back(text, data):
    note(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")              # the summation trap is the program's business here
        program = einderiv.parse(text)
        assume(program.inputs)
        wrt = data.draw(st.sampled_from([name for name, _ in program.inputs]))
        inputs = _inputs(program)
        assume(_moderate(program, inputs))
        _check_derivative(program, wrt, inputs)
        _check_adjoint(program, wrt, inputs)
        _check_vjp_line(program, wrt, inputs)


@settings(READBACK, max_examples=max(READBACK.max_examples // 4, 1))     # each example lowers five sums
@given(programs(temporaries=True), st.data())
def test_printed_forms_of_programs_with_temporaries_read_back(text, data):
    # a product of five sums is lowered through hidden temporaries (L_1 = a + 1): every printed
    # form once referred to them without defining them, or used gL_2 before defining it
    note(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = einderiv.parse(text)
        assume(program.inputs)
        assume(any(s.hidden for s in program.statements))     # the sums did not cancel
        wrt = data.draw(st.sampled_from([name for name, _ in program.inputs]))
        inputs = _inputs(program)
        assume(_moderate(program, inputs))
        _check_derivative(program, wrt, inputs)
        _check_adjoint(program, wrt, inputs)
        _check_vjp_line(program, wrt, inputs)


# ---------------------------------------------------------------- Hessians

def hessian_program(program: einderiv.Program, h) -> str:
    """The forward program, the Hessian's chain lines and ``D[a…, b…] = RHS``."""
    lines = h.to_text(ascii=True).split("\n")
    identifiers = _identifiers(h._tensor_names())
    out = lines[:len(h.definitions)]              # the temporaries, statements as printed
    lines = lines[len(h.definitions):]
    for line, (internal, _, _) in zip(lines, h.chain):
        name, indices, rhs = _split(line)
        tensor = internal.rsplit(":", 1)[1]          # G:T (shaped like T), g:T and g:G:T (wrt's axes, then T's)
        cut = 0 if internal.startswith("G:") else program.rank(h.wrt)
        refs = [(h.wrt, indices[:cut]), (tensor, indices[cut:])]
        out.append(f"{_ref_text(identifiers[name], indices)} = {_sized(_replace_names(rhs, identifiers), refs)}")
    lhs, rhs = lines[-1].split(" = ", 1)
    groups = re.findall(r"\[([^\]]*)\]", lhs)
    first = tuple(groups[0].split(",")) if h.out_indices else ()
    second = tuple(groups[-1].split(",")) if h.wrt_indices else ()
    out.append(f"{_ref_text('D', first + second)} = {_sized(_replace_names(rhs, identifiers), [(h.wrt, first), (h.wrt2, second)])}")
    return program.text + "\n" + "\n".join(out)


@settings(READBACK, max_examples=max(READBACK.max_examples * 3 // 8, 1))
@given(st.booleans().flatmap(lambda temporaries: programs(scalar_output=True, temporaries=temporaries)), st.data())
def test_every_printed_hessian_reads_back(text, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = einderiv.parse(text)
        assume(program.inputs)
        wrt = data.draw(st.sampled_from([name for name, _ in program.inputs]))
        inputs = _inputs(program)
        assume(_moderate(program, inputs))
        h = symbolic_hessian(program, wrt)
        readback = hessian_program(program, h)
        note(readback)
        try:
            got = einderiv.evaluate(readback, inputs, of="D", sizes=_sizes(readback))
        except errors.ShapeError as error:         # a chain line sized only by its own indices
            pytest.fail(f"{error}\n{readback}")
        expected = einderiv.hessian(program, wrt, inputs, sizes=SIZES)
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10, err_msg=readback)


# ---------------------------------------------------------------- regressions, one per issue item

def _readback(text: str, wrt: str, inputs: dict, sizes: dict | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """(printed derivative, its value read back, the Jacobian), Unicode and ASCII checked alike."""
    program = einderiv.parse(text)
    d = program.derivative(wrt)
    expected = einderiv.jacobian(program, wrt, inputs, sizes=sizes)
    for ascii in (False, True):
        readback = derivative_program(program, d, ascii)
        got = einderiv.evaluate(readback, inputs, of="D", sizes=sizes)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=readback)
    return str(d), got, expected


def test_chain_lines_give_the_intermediate_its_own_index_names():
    # item 6: h and y both use i; the chain line once read dy/dh[i,i] = (…) δ[i,i]
    text = "h[i] = x[i] x[i]; y[i] = h[i] + h[i]^2 + h[i]^3 + exp(h[i]) + sin(h[i])"
    printed, _, _ = _readback(text, "x", {"x": np.array([0.3, -0.7, 1.1])})
    assert printed == ("dy/dh[i,a] = (1 + 2 h[i] + 3 h[i]^2 + exp(h[i]) + cos(h[i])) δ[i,a]\n"
                       "dy[i]/dx[a] = 2 dy/dh[i,a] x[a]")
    assert "[i,i]" not in printed


def test_chain_index_names_are_distinct_even_past_the_alphabet():
    from einderiv.calculus.program import chain_index_names
    names = chain_index_names(tuple(f"i@y.{k}" for k in range(3)) + tuple(f"i#{k}" for k in range(25)))
    assert len(set(names.values())) == 28
    with pytest.raises(errors.ProgramError, match="not defined by any statement"):
        einderiv.parse("y[i] = x[i]").statement("h")


@pytest.mark.parametrize("text, wrt, printed", [
    ("L = c * (x[i] + y[i])^3", "x", "dL/dx[a] = 3 c * (x[a] + y[a])^2"),
    ("L = 1/(c * (x[i] + y[i])^3)", "x", "dL/dx[a] = -3 / (c * (x[a] + y[a])^4)"),
    ("L = c * (x[i] + y[i])^3", "c", "dL/dc = (x[i] + y[i])^3"),
])
def test_a_name_before_a_parenthesis_is_written_with_a_star(text, wrt, printed):
    # item 7: '3 c (x[a] + y[a])^2' read back as a call of an unknown function c
    rng = np.random.default_rng(0)
    inputs = {"x": rng.uniform(1, 2, 3), "y": rng.uniform(1, 2, 3), "c": 1.5}
    got, _, _ = _readback(text, wrt, inputs)
    assert got == printed
    with pytest.raises(errors.ProgramError, match="unknown function 'c'"):
        einderiv.parse("D[a] = 3 c (x[a] + y[a])^2")


def test_adjoint_text_with_a_delta_runs():
    # item 8: gA[i,a] = δ[i,a] was a ParseError, though the README says adjoint text runs
    adj = einderiv.adjoint("t = A[i,i]", "A")
    assert adj.text == "gA[i,a] = δ[i,a] + 0 A[i,a]"
    assert adj.ascii == "gA[i,a] = delta(i,a) + 0 A[i,a]"
    A = np.arange(9.0).reshape(3, 3)
    for text in (adj.text, adj.ascii):
        got = einderiv.evaluate("t = A[i,i]\n" + text, {"A": A}, of="gA")
        np.testing.assert_array_equal(got, einderiv.grad("t = A[i,i]", "A", {"A": A}))


@pytest.mark.parametrize("text, inputs, printed", [
    ("L = sum[i](s) + x[i]", {"s": 2.0, "x": np.ones(4)}, "gs = sum[i](1) + 0 x[i]"),
    ("L = sum[j](s) + A[i,j]", {"s": 2.0, "A": np.ones((2, 5))}, "gs = sum[j](1) + 0 A[a,j]"),
])
def test_adjoint_text_sizes_a_sum_of_ones_from_the_program(text, inputs, printed):
    # a size sum[i](1) in an adjoint step: "+ 0 x[i]" fixes i, so the text runs without sizes=
    adj = einderiv.adjoint(text, "s")
    assert adj.text == printed
    assert einderiv.evaluate(text + "\n" + adj.text, inputs, of="gs") == einderiv.grad(text, "s", inputs)
    with pytest.raises(errors.ShapeError, match="not fixed by any array"):
        einderiv.evaluate(text + "\ngs = sum[i](1) + sum[j](1)", inputs, of="gs")


@pytest.mark.parametrize("delta", ["δ[{},{}]", "delta({},{})"])
def test_the_language_reads_kronecker_deltas(delta):
    d = lambda a, b: delta.format(a, b)   # noqa: E731
    x, A = np.array([1.0, 2.0, 3.0]), np.arange(9.0).reshape(3, 3)
    # a factor whose indices count like a tensor's: summed where they are not on the left
    np.testing.assert_array_equal(einderiv.evaluate(f"y[i] = {d('i', 'j')} x[j]", {"x": x}), x)
    assert einderiv.evaluate(f"t = {d('i', 'j')} A[i,j]", {"A": A}) == 12.0
    # free on the left: an identity pattern; the other index's size comes through the delta
    np.testing.assert_array_equal(einderiv.evaluate(f"D[i,a] = {d('i', 'a')} x[i]", {"x": x}), np.diag(x))
    # δ[i,i] summed is the size of i, never silently 1; with i on the left it is 1 at every i
    assert einderiv.evaluate(f"t = {d('i', 'i')}", {}, sizes={"i": 4}) == 4.0
    assert einderiv.evaluate(f"t = {d('i', 'i')} + 0 x[i]", {"x": x}) == 3.0
    np.testing.assert_array_equal(einderiv.evaluate(f"D[i] = {d('i', 'i')}", {}, sizes={"i": 2}), [1.0, 1.0])
    # derivatives of a program with deltas
    np.testing.assert_array_equal(einderiv.grad(f"t = {d('i', 'j')} A[i,j]", "A", {"A": A}), np.eye(3))


def test_a_delta_of_indices_of_different_sizes_is_a_shape_error():
    with pytest.raises(errors.ShapeError, match=r"δ\[i,a\] pairs index 'i' of size 3 .* index 'a' of size 4"):
        einderiv.evaluate("D[i,a] = δ[i,a] x[i] y[a]", {"x": np.ones(3), "y": np.ones(4)})
    with pytest.raises(errors.ShapeError, match="must have the same size"):
        einderiv.evaluate("t = delta(i,a)", {}, sizes={"i": 2, "a": 3})


@pytest.mark.parametrize("text", ["D[i] = delta(i)", "D[i] = delta(x[i], i)", "D[i] = δ[i]", "D[i] = δ[i,j,k]"])
def test_a_delta_takes_two_index_names(text):
    with pytest.raises(errors.ParseError, match="a Kronecker delta takes two index names"):
        einderiv.parse(text)


def test_a_size_is_printed_as_a_sum_of_ones_and_reads_back():
    # i is an index of the program, sized there by x; read back alone, its size is given by name
    printed, got, _ = _readback("L = sum[i](s) + x[i]", "s", {"s": 2.0, "x": np.ones(5)}, sizes={"i": 5})
    assert printed == "dL/ds = sum[i](1)"
    assert got == 5.0


def test_terms_name_indices_of_different_sizes_differently():
    # j of statement 1 (size 3) and j of statement 2 (size 2) meet in one line: j and j1
    printed, _, _ = _readback("h = c y[j] y[j]; L = h + c x[j] x[j]", "c",
                              {"c": 0.5, "x": np.array([1.0, 2.0]), "y": np.array([1.0, 2.0, 3.0])})
    assert printed == "dL/dc = x[j]^2 + y[j1]^2"


AXES = "abcdefghijklmnopqrst"


def test_fresh_index_names_never_run_out():
    # item 10: the 19-letter alphabet raised IndexError from the 20th axis on
    assert einderiv.core.ir.fresh_names(21)[-3:] == ["z", "a1", "b1"]
    assert einderiv.core.ir.fresh_names(3, {"a", "a1", "c"}, "ac") == ["c1", "a2", "c2"]
    text = f"L = X[{','.join(AXES)}]"
    d = einderiv.parse(text).derivative("X")
    assert str(d) == "dL/dX[a,b,c,d,e,f,g,h,p,q,r,s,t,u,v,w,x,y,z,a1] = 1"
    adj = einderiv.adjoint(f"y[{','.join(AXES)}] = X[{','.join(AXES)}]", "X")
    assert adj.text == f"gX[{','.join(AXES)}] = gy[{','.join(AXES)}]"


def test_twenty_axes_on_the_command_line(capsys):
    from einderiv.cli.app import main
    assert main(["diff", f"L = X[{','.join(AXES)}]", "--wrt", "X"]) == 0
    assert "a1] = 1" in capsys.readouterr().out


def test_hessian_of_a_ten_axis_input():
    axes = ",".join(AXES[:10])
    text = f"L = X[{axes}]^2"
    h = symbolic_hessian(text, "X")
    assert h.lhs_text() == "d²L/dX[a,b,c,d,e,f,g,h,p,q]dX[r,s,t,u,v,w,x,y,z,a1]"
    assert "[a,b,c,d,e,f,g,h,p,q,a," not in str(h)      # the chain line's indices are distinct too
    X = np.full((1,) * 9 + (2,), 0.5)
    hessian = einderiv.hessian(text, "X", {"X": X})
    assert hessian.shape == X.shape * 2
    assert hessian.reshape(2, 2).tolist() == [[2.0, 0.0], [0.0, 2.0]]
    readback = hessian_program(einderiv.parse(text), h)
    np.testing.assert_array_equal(einderiv.evaluate(readback, {"X": X}, of="D"), hessian)


def test_generated_code_sizes_an_index_through_a_delta():
    from einderiv.render.codegen import codegen
    text = "D[i,a] = δ[i,a] x[i]; L = D[i,a] D[i,a]"
    namespace: dict = {}
    exec(codegen(text, "x", shapes={"x": (3,)}), namespace)   # generated by einderiv from a fixed program
    x = np.array([0.0, 1.0, 2.0])
    value, gradient = namespace["value_and_grad"](x=x)
    assert value == 5.0
    np.testing.assert_array_equal(gradient["x"], einderiv.grad(text, "x", {"x": x}))
    with pytest.raises(errors.ShapeError, match="must have the same size"):
        einderiv.evaluate(text, {"x": x}, sizes={"a": 2})


def test_an_intermediate_whose_uses_cancel_gets_its_zero_gradient_before_it_is_read():
    # found by the property: gh0 (zero: out = -h0[i] + h0[i]) was defined after gc = gh0[i] read it
    text = "h0[i] = c\nout = -(h0[i]) + h0[i]"
    adj = einderiv.adjoint(text, "c")
    assert adj.text == "gh0[i] = 0 h0[i]\ngc = gh0[i]"
    assert einderiv.evaluate(text + "\n" + adj.text, {"c": 2.0}, of="gc", sizes={"i": 3}) == 0.0
    with pytest.raises(errors.ProgramError, match="used before the statement that defines it"):
        einderiv.parse(text + "\ngc = gh0[i]\ngh0[i] = 0 h0[i]")


def test_an_infinite_coefficient_prints_as_a_literal_not_a_tensor_called_inf():
    d = str(einderiv.parse("y[i] = 1e999 x[i]").derivative("x"))
    assert d == "dy[i]/dx[a] = 1e999 δ[i,a]"
    readback = einderiv.parse("q[i,a] = " + d.split(" = ")[1] + " + 0 x[i] + 0 x[a]")
    assert [name for name, _ in readback.inputs] == ["x"]


FIVE_SUMS = "L = (a + 1) * (b + 1) * (c + 1) * (d + 1) * (x[i] + 1)"
FIVE_SUMS_INPUTS = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "x": np.array([1.0, 2.0])}


@pytest.mark.parametrize("wrt", ["x", "b"])
def test_adjoint_text_defines_the_temporaries_before_use(wrt):
    # outside tester: 'gx[i] = L_1 L_2 L_3 L_4 + 0 x[i]' never defined L_1 (missing input 'L_1'),
    # and 'gb = gL_2' came before the statement defining gL_2
    adj = einderiv.adjoint(FIVE_SUMS, wrt)
    lines = adj.text.split("\n")
    assert lines[0] == "L_1 = a + 1"
    assert lines.index("gb = gL_2" if wrt == "b" else "gx[i] = L_1 L_2 L_3 L_4 + 0 x[i]") == len(lines) - 1
    for text in (adj.text, adj.ascii):
        got = einderiv.evaluate(FIVE_SUMS + "\n" + text, FIVE_SUMS_INPUTS, of=adj.gradient[wrt])
        np.testing.assert_allclose(got, einderiv.grad(FIVE_SUMS, wrt, FIVE_SUMS_INPUTS))
    assert einderiv.grad(FIVE_SUMS, "b", FIVE_SUMS_INPUTS) == 32.0      # L_1 L_3 L_4 (Σ x + 1)


def test_hessian_and_latex_define_the_temporaries_they_use():
    # outside tester: 'd²L/dbdx[a] = L_1 L_3 L_4' with no definitions; the LaTeX left them out
    program = einderiv.parse(FIVE_SUMS)
    h = symbolic_hessian(program, "b", "x")
    assert str(h) == "L_1 = a + 1\nL_3 = c + 1\nL_4 = d + 1\nd²L/dbdx[a] = L_1 L_3 L_4"
    got = einderiv.evaluate(hessian_program(program, h), FIVE_SUMS_INPUTS, of="D")
    np.testing.assert_allclose(got, einderiv.hessian(program, "b", FIVE_SUMS_INPUTS, wrt2="x"))
    latex = einderiv.to_latex(program.derivative("b")).split("\n")
    assert latex[:3] == [r"\mathrm{L\_1} = a + 1", r"\mathrm{L\_3} = c + 1", r"\mathrm{L\_4} = d + 1"]
    assert einderiv.to_latex(h).split("\n")[0] == r"\mathrm{L\_1} = a + 1"
    _readback(FIVE_SUMS, "b", FIVE_SUMS_INPUTS)


@pytest.mark.parametrize("text, printed", [
    ("h = sum[w](W[i]) W[i] + sum[w](W[i] delta(q,q)) W[i]", "dh/dW[a] = 2 (sum[w](1) + sum[w](1) sum[q](1)) W[a]"),
    ("h[i] = sum[w](W[i]); y = sum[w](h[i]) h[i]", "dy/dW[a] = 2 h[a] sum[w](1) sum[w](1)"),
    ("h[i] = sum[w](W[i]) W[i]; y = sum[w](h[i] delta(q,q)) + h[i]",
     "dy/dW[a] = 2 (sum[w](1) sum[q](1) + 1) W[a] sum[w](1)"),
])
def test_a_sum_of_ones_keeps_the_name_its_size_is_given_by(text, printed):
    # outside tester: the second sum[w](1) was printed sum[w1](1), an index nothing sizes
    # ("index 'w1' … is not fixed by any array" when read back with sizes w=2, q=3)
    sizes = {"w": 2, "q": 3}
    got, _, _ = _readback(text, "W", {"W": np.array([1.0, 2.0, 3.0])}, sizes)
    assert got == printed


def test_the_input_slots_leave_a_sum_of_ones_its_name():
    # the slot a of dL/dx[a] pushed sum[a](1) to sum[a1](1), a name nothing sizes when read back
    text = "L = sum[a](1) x[i] + x[i]^2 sum[b](1)"
    printed, _, _ = _readback(text, "x", {"x": np.array([1.0, 2.0, 3.0])}, {"a": 4, "b": 5})
    assert printed == "dL/dx[c] = sum[a](1) + 2 x[c] sum[b](1)"


def test_a_sum_of_ones_takes_the_name_of_an_index_of_surely_the_same_size():
    # sum[j](1) of out (j sized by A's second axis) beside B[j,j] of h0 (j sized by A's second axis
    # too) was printed sum[j1](1), and sum[i](1) (i sized by name) beside A[i,j] sum[i1](1): unsized
    text = ("h0 = (c + 1) * (A[i,j] + 1) * (B[j,j] + 1) * (B[j,l] + 1) * (c + 1) + A[i,j]\n"
            "out = sum[i](A[k,j] + h0) + c + h0")
    rng = np.random.default_rng(0)
    inputs = {"A": rng.uniform(-1, 1, (2, 3)), "B": rng.uniform(-1, 1, (3, 3)), "c": 0.5}
    printed, _, _ = _readback(text, "c", inputs, {"i": 2, "k": 2})     # k: sized by A in out, not here
    assert "sum[i](1) sum[k](1) sum[j](1) h0_1 A[i,j] B[j,j] + " in printed
    assert not re.search(r"sum\[[a-z]\d", printed), printed


@pytest.mark.parametrize("text, wrt, inputs, sizes", [
    # outside tester: delta(i,i) of Z0 is a size; beside s_1[i,i] of Out2 it was printed sum[i1](1)
    ("Z0[m] = W0[m] * W0[m] * (-delta(i,i) + det(M1)) - W0[i]; s_1[c1,m] = -(-Z0[m]); "
     "Out2[j] = 1 + (s_1[i,i] + Z0[m] 0.5) Z0[m] 0.5", "W0",
     {"W0": np.array([0.3, -0.4]), "M1": np.array([[2.0, 0.5], [0.5, 3.0]])}, {"j": 3, "c1": 2}),
    # a(i) beside A[i,i]: here no array sizes the kept name i, so it reads back with its size by name
    ("y[k] = x[k] sum[i](a) + A[i,i] x[k]", "a", {"x": np.array([1.0, 2.0]), "a": 0.5,
                                                   "A": np.arange(9.0).reshape(3, 3)}, {"i": 3}),
])
def test_a_renamed_sum_of_ones_is_sized_by_a_zero_term(text, wrt, inputs, sizes):
    program = einderiv.parse(text)
    of = program.names[-1]
    d = program.derivative(wrt, of=of)
    expected = einderiv.jacobian(program, wrt, inputs, of=of, sizes=sizes)
    for ascii in (False, True):
        readback = derivative_program(program, d, ascii)
        got = einderiv.evaluate(readback, inputs, of="D", sizes=sizes)     # no size for the renamed index
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=readback)
