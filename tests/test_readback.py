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

import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import einderiv
from einderiv import errors
from einderiv.cli import _vjp_text
from einderiv.second_order import symbolic_hessian

SIZES = {"i": 2, "k": 2, "j": 3, "l": 3}
NAMES_OF_SIZE = {2: ("i", "k"), 3: ("j", "l")}
INPUTS = {"x": (2,), "y": (3,), "A": (2, 3), "B": (3, 3), "S": (2, 2), "c": ()}
READBACK = settings(max_examples=int(__import__("os").environ.get("READBACK_EXAMPLES", "40")), deadline=None, database=None, derandomize=True,
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
                                 "minmax", "sum", "scaled", "delta"]))
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
    if kind == "scaled":                          # a scalar before a parenthesis: needs '*'
        return f"c * ({sub()} + {sub()})"
    names = NAMES_OF_SIZE[draw(st.sampled_from([2, 3]))]
    first, second = draw(st.sampled_from(names)), draw(st.sampled_from(names))
    delta = f"δ[{first},{second}]" if draw(st.booleans()) else f"delta({first},{second})"
    return f"{delta} {sub()}"


def _reshaped(draw, previous: str, shape: tuple[int, ...]) -> tuple[tuple[str, ...], str]:
    """A statement that renames, transposes or takes the diagonal of ``previous``: (lhs, rhs)."""
    names = [draw(st.sampled_from(NAMES_OF_SIZE[n])) for n in shape]
    if len(names) == 2 and names[0] == names[1]:
        return (names[0],), f"{previous}[{names[0]},{names[0]}]"          # the diagonal
    if len(set(names)) < len(names) or not names:
        return (), f"{previous}[{','.join(names)}]" if names else previous
    return tuple(reversed(names)) if draw(st.booleans()) else tuple(names), f"{previous}[{','.join(names)}]"


def _uses(draw, previous: str, expr: str) -> str:
    """``expr`` combined with a reference to the previous statement, so the statements chain."""
    form = draw(st.sampled_from(["{e} + {p}", "({e}) ({p})", "{f}({p}) + {e}", "({p})^2 - ({e})", "{p} / (1 + ({e})^2)"]))
    fn = draw(st.sampled_from(["exp", "sin", "tanh", "sigmoid", "relu", "abs"]))
    return form.format(e=expr, p=previous, f=fn)


@st.composite
def programs(draw) -> str:
    """A valid program of one to four statements over the tiny inputs of ``INPUTS``, each using the last."""
    shapes = dict(INPUTS)
    count = draw(st.integers(1, 4))
    lines = []
    previous = None
    for k in range(count):
        name = "out" if k == count - 1 else f"h{k}"
        if previous is not None and draw(st.integers(0, 3)) == 0:
            lhs, rhs = _reshaped(draw, previous, shapes[previous])
        else:
            lhs = tuple(draw(st.lists(st.sampled_from(sorted(SIZES)), max_size=2, unique=True)))
            rhs = _expr(draw, shapes, lhs, frozenset(), 3)
            if previous is not None:
                rhs = _uses(draw, _previous_ref(draw, previous, shapes[previous]), rhs)
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
    """Sizes by name for every index name the text may use: ``j1`` is a variant of ``j``."""
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
    out = []
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
    for ascii in (False, True):
        text = derivative_program(program, d, ascii)
        note(text)
        got = einderiv.evaluate(text, inputs, of="D", sizes=_sizes(text))
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=text)


def _check_adjoint(program: einderiv.Program, wrt: str, inputs) -> None:
    adj = einderiv.adjoint(program, wrt)
    given = dict(inputs)
    if adj.seed:
        cotangent = np.random.default_rng(1).uniform(-1.0, 1.0, _shape(program, program.output))
        given[adj.seed] = cotangent
        expected = einderiv.vjp(program, wrt, inputs, cotangent, sizes=SIZES)
    else:
        expected = einderiv.grad(program, wrt, inputs, sizes=SIZES)
    for text in (adj.text, adj.ascii):
        full = program.text + "\n" + text
        note(full)
        got = einderiv.evaluate(full, given, of=adj.gradient[wrt], sizes=_sizes(text))
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=full)


def _check_vjp_line(program: einderiv.Program, wrt: str, inputs) -> None:
    """The CLI's ``G[i,k] dF[i,k]/dW[a,b] = RHS`` line, when it is one line."""
    d = program.derivative(wrt)
    if d.chain or not d.out_indices:
        return
    cotangent = np.random.default_rng(2).uniform(-1.0, 1.0, _shape(program, program.output))
    for ascii in (False, True):
        line, _ = _vjp_text(d, "G", ascii)
        lhs, rhs = line.split(" = ", 1)
        wrt_names = tuple(lhs.rsplit("[", 1)[1].rstrip("]").split(",")) if lhs.endswith("]") else ()
        text = f"{program.text}\n{_ref_text('V', wrt_names)} = {_sized(rhs, [(wrt, wrt_names)])}"
        note(text)
        got = einderiv.evaluate(text, {**inputs, "G": cotangent}, of="V", sizes=_sizes(text))
        expected = einderiv.vjp(program, wrt, inputs, cotangent, sizes=SIZES)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=text)


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
        _check_derivative(program, wrt, inputs)
        _check_adjoint(program, wrt, inputs)
        _check_vjp_line(program, wrt, inputs)


# ---------------------------------------------------------------- Hessians

def hessian_program(program: einderiv.Program, h) -> str:
    """The forward program, the Hessian's chain lines and ``D[a…, b…] = RHS``."""
    lines = h.to_text(ascii=True).split("\n")
    identifiers = _identifiers(h._tensor_names())
    out = []
    for line in lines[:-1]:
        name, indices, rhs = _split(line)
        out.append(f"{_ref_text(identifiers[name], indices)} = {_replace_names(rhs, identifiers)}")
    lhs, rhs = lines[-1].split(" = ", 1)
    groups = re.findall(r"\[([^\]]*)\]", lhs)
    first = tuple(groups[0].split(",")) if h.out_indices else ()
    second = tuple(groups[-1].split(",")) if h.wrt_indices else ()
    out.append(f"{_ref_text('D', first + second)} = {_sized(_replace_names(rhs, identifiers), [(h.wrt, first), (h.wrt2, second)])}")
    return program.text + "\n" + "\n".join(out)


@settings(READBACK, max_examples=20)
@given(programs(), st.data())
def test_every_printed_hessian_reads_back(text, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = einderiv.parse(text)
        if program.statement(program.output).lhs:
            return                                   # Hessians are of scalar outputs
        wrt = data.draw(st.sampled_from([name for name, _ in program.inputs]))
        inputs = _inputs(program)
        h = symbolic_hessian(program, wrt)
        readback = hessian_program(program, h)
        note(readback)
        try:
            got = einderiv.evaluate(readback, inputs, of="D", sizes=_sizes(readback))
        except errors.ShapeError as error:         # a chain line sized only by its own indices
            pytest.fail(f"{error}\n{readback}")
        expected = einderiv.hessian(program, wrt, inputs, sizes=SIZES)
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10, err_msg=readback)
