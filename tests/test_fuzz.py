"""Fuzzing: hostile text, broken programs and wrong inputs.

Hypothesis feeds ``einderiv.parse`` and the numeric API

* random text, and text made of the grammar's own symbols and stray Unicode;
* mutations of valid programs: a deleted bracket, a swapped operator, a stray
  Unicode character, a very long name, deep nesting, a truncation;
* random valid programs with wrong inputs: wrong shapes, missing names,
  strings, ``None``, ragged nested lists, complex numbers, bad options.

The rule, checked by :func:`assert_clean` on every example: the only exception
that may escape is an :class:`einderiv.EinderivError` whose message is
readable (non-empty, encodable as UTF-8), and nothing takes a second.
The long run is ``python benchmarks/fuzz.py --cases 100000``.
"""

from __future__ import annotations

import os
import re
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, note, settings
from hypothesis import strategies as st

import einderiv
from einderiv import EinderivError

# EINDERIV_FUZZ_EXAMPLES=2000 for a deeper (slower) search
EXAMPLES = int(os.environ.get("EINDERIV_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
TIME_LIMIT = 1.0   # seconds of CPU time (time.process_time), per example

CORPUS = (
    "F[i,k] = W[i,j] X[j,k]",
    "y[i] = A[i,j] x[j] + b[i]",
    "L = x[i] A[i,j] x[j]",
    "H0[n,h] = X[n,d] W1[d,h]\nH1[n,h] = H0[n,h] + b1[h]\nH2[n,h] = max(0, H1[n,h])\n"
    "H3[n,c] = H2[n,h] W2[h,c]\nZ[n,c] = H3[n,c] + b2[c]\nL = (Z[n,c] - T[n,c])^2 / (2 N)",
    "R[n,j] = X[n,i] W[i,j] - Y[n,j]; L = R[n,j]^2",
    "y[i] = exp(sum[j](A[i,j] x[j]))",
    "z[i] = A[i,j] x[j]; y[i] = tanh(z[i]); L = y[i] y[i] / 2",
    "C[i,j] = A[i,j] B[i,j]",
    "d[i] = A[i,i]",
    "t = sum[i](A[i,i])",
    "s = sqrt(x[i] x[i] + 1)",
    "y[i] = min(x[i], 2) ** 2 - abs(x[i]) / 3 + sigmoid(x[i]) log(1 + relu(x[i]))",
    "a = 2 * 3\nb = a ^ 2",
    "# comment\nG[a,b] = relu(M[a,b]) ; H = G[a,b] G[a,b]\n",
)
UNICODE = "δ∑×÷·αβλ∂é\u00a0\u200b\u2028\u0300\U0001f600\ufeff\x00\x7f"
GRAMMAR_TEXT = st.text(alphabet="[](),;=+-*/^#.\n \t_0123456789ijkxyzAWXsumexpmax" + UNICODE, max_size=60)


def assert_clean(call) -> None:
    """Run ``call``: it may return or raise an EinderivError with a readable message, within the time limit.

    The limit is on CPU time, so a machine loaded by other work does not fail an example.
    """
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # EinderivWarning and numpy's RuntimeWarnings are not errors
        try:
            call()
            outcome = "no error"
        except EinderivError as error:
            message = str(error)
            assert message.strip(), f"{type(error).__name__} with an empty message"
            message.encode("utf-8")              # readable: no lone surrogates
            outcome = type(error).__name__
            if currently_in_test_context():
                note(f"{outcome}: {message}")
    if currently_in_test_context():
        event(outcome)                           # shown by --hypothesis-show-statistics
    elapsed = time.process_time() - start
    assert elapsed < TIME_LIMIT, f"took {elapsed:.2f} s"


@pytest.fixture(scope="module", autouse=True)
def warm_up():
    """Load the grammar and numpy's einsum once, outside the timed examples."""
    assert_clean(lambda: einderiv.grad("L = x[i] x[i]", "x", {"x": np.ones(2)}))


def test_assert_clean_can_fail():
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        assert_clean(lambda: 1 / 0)
    with pytest.raises(AssertionError, match="empty message"):
        assert_clean(lambda: (_ for _ in ()).throw(einderiv.ParseError("")))
    with pytest.raises(AssertionError, match="took"):
        assert_clean(_busy)
    assert_clean(lambda: time.sleep(TIME_LIMIT + 0.05))     # waiting uses no CPU time: not slow


def _busy() -> None:
    """Spend a little more CPU time than the limit."""
    start = time.process_time()
    while time.process_time() - start < TIME_LIMIT + 0.05:
        pass


# ---------------------------------------------------------------- random text

@FUZZ
@given(st.text(max_size=200))
def test_random_text(text):
    assert_clean(lambda: einderiv.parse(text))


@FUZZ
@given(GRAMMAR_TEXT)
def test_random_text_from_the_grammar(text):
    assert_clean(lambda: einderiv.parse(text))


@FUZZ
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text(max_size=5), max_size=3)))
def test_a_program_that_is_not_text(value):
    assert_clean(lambda: einderiv.parse(value))
    assert_clean(lambda: einderiv.evaluate(value, {}))


# ---------------------------------------------------------------- mutations of valid programs

def _names(text: str) -> list[str]:
    keep = {"sum", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "max", "min"}
    return sorted(set(re.findall(r"\b[A-Za-z_]\w*\b", text)) - keep)


@st.composite
def mutations(draw) -> str:
    """A valid program after one to three random edits."""
    text = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "bracket", "operator", "unicode", "long name", "nesting",
                                     "token", "truncate", "rename index"]))
        pos = draw(st.integers(0, len(text)))
        if kind == "delete":
            text = text[:pos] + text[pos + 1:]
        elif kind == "bracket":
            spots = [k for k, c in enumerate(text) if c in "[]()"]
            if spots:
                k = draw(st.sampled_from(spots))
                text = text[:k] + text[k + 1:]
        elif kind == "operator":
            spots = [k for k, c in enumerate(text) if c in "+-*/^=,;"]
            if spots:
                k = draw(st.sampled_from(spots))
                text = text[:k] + draw(st.sampled_from("+-*/^=,;[]()")) + text[k + 1:]
        elif kind == "unicode":
            text = text[:pos] + draw(st.sampled_from(UNICODE)) + text[pos:]
        elif kind == "long name" and _names(text):
            name = draw(st.sampled_from(_names(text)))
            text = re.sub(rf"\b{name}\b", "v" + "x" * draw(st.sampled_from([300, 30_000])), text)
        elif kind == "nesting" and "=" in text:
            head, _, rhs = text.partition("=")
            line, newline, rest = rhs.partition("\n")
            opener = draw(st.sampled_from(["(", "-(", "(1+", "(2*", "sum[q](", "exp("]))
            depth = draw(st.sampled_from([3, 15, 300, 1000] if opener != "exp(" else [3, 15]))
            text = head + "= " + opener * depth + line + ")" * depth + newline + rest
        elif kind == "token":
            token = draw(st.sampled_from(["[", "]", "(", ")", "=", ",", "sum", "sum[", "δ", "**", "1e999",
                                          "0", "#", "\n", ";", "max(", "[i,i]", "[]", "x[i,j,k,l,m]"]))
            text = text[:pos] + token + text[pos:]
        elif kind == "truncate":
            text = text[:pos]
        else:
            text = text.replace(draw(st.sampled_from("ijk")), draw(st.sampled_from(["i", "z", "batch", "_"])))
    return text


def exercise(text: str) -> None:
    """Parse; if that works, evaluate, differentiate and print with inputs made to fit."""
    program = einderiv.parse(text)
    rng = np.random.default_rng(0)
    inputs = {name: rng.uniform(0.5, 1.5, size=(2,) * rank) for name, rank in program.inputs}
    sizes = {c: 2 for c in "abcdefghijklmnopqrstuvwxyz"}
    einderiv.evaluate(program, inputs, sizes=sizes)
    if program.inputs:
        wrt = program.inputs[0][0]
        str(program.derivative(wrt))
        upstream = np.ones((2,) * program.rank(program.output))
        einderiv.vjp(program, wrt, inputs, upstream, sizes=sizes)
        einderiv.jvp(program, {wrt: inputs[wrt]}, inputs, sizes=sizes)


@FUZZ
@given(mutations())
def test_mutated_programs(text):
    note(repr(text[:500]))
    assert_clean(lambda: exercise(text))


@pytest.mark.parametrize("text", CORPUS)
def test_the_corpus_itself_runs(text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exercise(text)                            # no error at all: the mutations start from valid programs


# ---------------------------------------------------------------- valid programs, wrong inputs

LETTERS = "ijk"
SIZES = {"i": 2, "j": 3, "k": 1}
FUNCTIONS = ("exp", "sin", "tanh", "sigmoid", "relu", "abs", "sqrt", "log")


@st.composite
def expressions(draw, pool: dict[str, tuple[str, ...]], depth: int) -> str:
    """A valid right-hand side over the tensors in ``pool`` (name → index letters)."""
    if depth == 0 or draw(st.booleans()):
        if draw(st.integers(0, 4)) == 0:
            return draw(st.sampled_from(["2", "0.5", "1e-3", "0"]))
        name = draw(st.sampled_from(sorted(pool)))
        return f"{name}[{','.join(pool[name])}]" if pool[name] else name
    kind = draw(st.sampled_from(["binary", "binary", "neg", "call", "max"]))
    left = draw(expressions(pool, depth - 1))
    if kind == "binary":
        op = draw(st.sampled_from(["+", "-", "*", "/", " ", "^"]))
        right = "2" if op == "^" else draw(expressions(pool, depth - 1))
        return f"({left}){op}({right})"
    if kind == "neg":
        return f"-({left})"
    if kind == "call":
        return f"{draw(st.sampled_from(FUNCTIONS))}({left})"
    return f"max({left}, {draw(expressions(pool, depth - 1))})"


@st.composite
def programs(draw) -> tuple[str, dict[str, tuple[str, ...]], tuple[int, ...]]:
    """(text, inputs → index letters, output shape): 1–3 statements, the last one often scalar."""
    inputs = {name: tuple(draw(st.lists(st.sampled_from(LETTERS), max_size=2)))
              for name in draw(st.lists(st.sampled_from(["A", "x", "s", "W"]), min_size=1, max_size=3, unique=True))}
    pool = dict(inputs)
    lines = []
    count = draw(st.integers(1, 3))
    for k in range(count):
        lhs = () if k == count - 1 and draw(st.booleans()) else tuple(draw(st.lists(st.sampled_from(LETTERS),
                                                                                   max_size=2, unique=True)))
        lines.append(f"T{k}[{','.join(lhs)}] = " if lhs else f"T{k} = ")
        lines[-1] += draw(expressions(pool, 2))
        pool[f"T{k}"] = lhs
    text = "\n".join(lines)
    used = {n: v for n, v in inputs.items() if re.search(rf"\b{n}\b", text)}
    return text, used, tuple(SIZES[c] for c in lhs)


BAD_VALUES = st.one_of(
    st.none(), st.text(max_size=5), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=True),
    st.just(10 ** 400), st.just(1 + 2j), st.just({"a": 1}), st.just([[1.0, 2.0], [3.0]]),
    st.just([[[1.0]], [2.0, [3.0]]]), st.just(np.array([object()])),
    st.lists(st.floats(-2, 2), max_size=4), st.lists(st.lists(st.floats(-2, 2), max_size=3), max_size=3),
    st.sampled_from(["datetime64[s]", "complex128", "float16", "float32", "int8", "bool", "U3"]).map(
        lambda dtype: np.zeros((2, 3), dtype=dtype)),
)

OPTIONS = st.fixed_dictionaries({}, optional={
    "sizes": st.one_of(st.just(SIZES), st.dictionaries(st.sampled_from(LETTERS + "q"),
                                                      st.one_of(st.integers(-2, 4), st.floats(), st.text(max_size=2)))),
    "of": st.one_of(st.none(), st.sampled_from(["T0", "A", "x", "nope"]), st.integers()),
    "memory_limit": st.one_of(st.none(), st.integers(-5, 10 ** 6), st.floats(), st.text(max_size=3)),
})


@st.composite
def requests(draw):
    """A random valid program, inputs some of which are wrong, and one API call on it."""
    text, inputs, out_shape = draw(programs())
    arrays = {name: np.full(tuple(SIZES[c] for c in letters), 0.75) for name, letters in inputs.items()}
    for name in sorted(arrays):
        spoil = draw(st.sampled_from(["keep", "keep", "keep", "bad", "shape", "drop"]))
        if spoil == "bad":
            arrays[name] = draw(BAD_VALUES)
        elif spoil == "shape":
            arrays[name] = np.ones(draw(st.lists(st.integers(0, 3), max_size=3).map(tuple)))
        elif spoil == "drop":
            del arrays[name]
    if draw(st.integers(0, 9)) == 0:
        arrays = draw(st.one_of(st.none(), st.just([]), st.text(max_size=3), st.just({1: 2})))
    options = draw(OPTIONS)
    options.setdefault("sizes", SIZES)
    wrt = draw(st.one_of(st.sampled_from(sorted(inputs) or ["A"]), st.sampled_from(["T0", "nope", ""]),
                         st.lists(st.sampled_from(sorted(inputs) or ["A"]), max_size=2), st.integers()))
    op = draw(st.sampled_from(["evaluate", "grad", "jacobian", "vjp", "jvp", "value_and_grad", "derivative"]))
    extra = draw(st.one_of(st.just(np.ones(out_shape)), BAD_VALUES))   # cotangent or tangent
    return text, arrays, options, wrt, op, extra


def call(text, arrays, options, wrt, op, extra):
    if op == "evaluate":
        return einderiv.evaluate(text, arrays, **options)
    if op == "grad":
        return einderiv.grad(text, wrt, arrays, **options)
    if op == "value_and_grad":
        return einderiv.value_and_grad(text, wrt, arrays, **options)
    if op == "jacobian":
        return einderiv.jacobian(text, wrt, arrays, **options)
    if op == "vjp":
        return einderiv.vjp(text, wrt, arrays, extra, **options)
    if op == "jvp":
        return einderiv.jvp(text, {wrt: extra} if isinstance(wrt, str) else extra, arrays, **options)
    return str(einderiv.parse(text).derivative(wrt, of=options.get("of")))


@FUZZ
@given(requests())
def test_valid_programs_with_wrong_inputs(request):
    text, arrays, options, wrt, op, extra = request
    note(f"{op} wrt={wrt!r} options={options!r}\n{text}\ninputs={arrays!r}")
    assert_clean(lambda: call(*request))


@FUZZ
@given(programs())
def test_valid_programs_with_right_inputs_never_raise(program):
    text, inputs, out_shape = program
    arrays = {name: np.full(tuple(SIZES[c] for c in letters), 0.75) for name, letters in inputs.items()}
    note(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.shape(einderiv.evaluate(text, arrays, sizes=SIZES)) == out_shape
        for name in sorted(inputs):
            assert einderiv.jacobian(text, name, arrays, sizes=SIZES).shape == out_shape + arrays[name].shape
            assert einderiv.vjp(text, name, arrays, np.ones(out_shape), sizes=SIZES).shape == arrays[name].shape


def test_the_fuzzer_times_cases_in_cpu_time(monkeypatch):
    # benchmarks/fuzz.py reports a case as slow by its CPU time: a case that waits (a loaded machine) is not slow
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py"
    spec = importlib.util.spec_from_file_location("einderiv_fuzz", path)
    fuzz = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, fuzz)       # its dataclasses look their module up
    spec.loader.exec_module(fuzz)
    outcome = fuzz.run_case(lambda: time.sleep(0.3), hard_limit=60)
    assert outcome.category == "no error" and outcome.seconds < 0.2
