"""Differential tests: einderiv against an independent reference (tests/reference.py).

Random valid programs (tests/strategies.py: renamed, transposed and
diagonal-taken intermediates used several times, contractions, broadcasting,
constants, scalars, powers, smooth functions, explicit sums) and random inputs.
Every public numeric entry point is compared with

* the reference evaluator (plain numpy einsums over the expanded terms) for values;
* JAX float64 derivatives of the same evaluator (``jax.grad``, ``jacrev``,
  ``vjp``, ``jvp``, ``hessian``) when jax is installed (those tests skip otherwise);
* central finite differences of the reference in random directions
  (``<u, J v>``) always.

Every call is also checked for aliasing: no returned array shares memory with
an input (or cotangent, tangent, vector) or with another returned array, and no
argument is modified. ``wrt`` lists are tried in every order (all permutations
of up to three names): each name's result may not depend on the order.

``EINDERIV_HYPOTHESIS_PROFILE=long`` runs 50 times more examples (``EINDERIV_DIFFERENTIAL_SCALE``),
randomised and shrunk;
``EINDERIV_DIFFERENTIAL_IGNORE_ALIASING=1`` leaves out the aliasing checks of the random tests.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, note, settings
from hypothesis import strategies as st

import einderiv
from reference import fd_directional, fd_second, jax_reference, parse_reference, reference_value, reference_values
from strategies import Case, programs, reuse_programs

pytestmark = [pytest.mark.filterwarnings("ignore::einderiv.EinderivWarning"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]

LONG = os.environ.get("EINDERIV_HYPOTHESIS_PROFILE") == "long"
SCALE = int(os.environ.get("EINDERIV_DIFFERENTIAL_SCALE", "50"))   # examples per default example under long
# EINDERIV_DIFFERENTIAL_IGNORE_ALIASING=1: check values only (a search for wrong numbers that
# aliasing failures would otherwise stop at their first example)
IGNORE_ALIASING = os.environ.get("EINDERIV_DIFFERENTIAL_IGNORE_ALIASING") == "1"
BOUND = 1e3          # inputs whose intermediates exceed this are skipped (overflow, huge cancellations)


def budget(n: int) -> settings:
    """``n`` examples, derandomised and not shrunk (fast); under the long profile 50 n, random, shrunk."""
    phases = list(Phase) if LONG else [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(max_examples=n * SCALE if LONG else n, deadline=None, derandomize=not LONG, database=None,
                    phases=phases,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


def _jax():
    pytest.importorskip("jax")


# ------------------------------------------------------------------ helpers

def tame(case: Case) -> dict[str, np.ndarray]:
    """The case's inputs, rejecting (``assume``) any whose reference values are not small and finite."""
    ALIASING.clear()
    inputs = case.inputs()
    note(f"program: {case.text!r}\nshapes: {case.shapes}\ninputs: { {k: v.tolist() for k, v in inputs.items()} }")
    with np.errstate(all="ignore"):
        env = reference_values(case.text, inputs)
    for value in env.values():
        assume(np.all(np.isfinite(value)) and np.max(np.abs(value), initial=0.0) <= BOUND)
    return inputs


def arrays_of(result) -> list:
    if isinstance(result, dict):
        return list(result.values())
    if isinstance(result, tuple):
        return [a for part in result for a in arrays_of(part)]
    return [result]


ALIASING: list[str] = []      # problems seen by ``checked`` in the current example


def checked(fn, *args, protected: dict[str, np.ndarray], **kwargs):
    """``fn(*args, **kwargs)``, recording (for :func:`assert_no_aliasing`) whether it modified or
    aliased a ``protected`` array, or returned two arrays that share memory.

    The record is asserted at the end of a test, so a wrong value is reported first.
    """
    copies = {name: np.array(value, copy=True) for name, value in protected.items()}
    result = fn(*args, **kwargs)
    what = getattr(fn, "__name__", "call")
    for name, value in protected.items():
        if not np.array_equal(value, copies[name], equal_nan=True):
            ALIASING.append(f"{what} modified its argument {name}")
            value[...] = copies[name]
    outs = arrays_of(result)
    for k, out in enumerate(outs):
        for name, value in protected.items():
            if np.shares_memory(out, value):
                ALIASING.append(f"{what}: result #{k} shares memory with {name}")
        for j in range(k):
            if np.shares_memory(out, outs[j]):
                ALIASING.append(f"{what}: results #{j} and #{k} share memory")
    if ALIASING:   # later calls must not see a result that aliases an argument
        result = copy_result(result)
    return result


def copy_result(result):
    if isinstance(result, dict):
        return {k: np.array(v, copy=True) for k, v in result.items()}
    if isinstance(result, tuple):
        return tuple(copy_result(r) for r in result)
    return np.array(result, copy=True) if isinstance(result, np.ndarray) else result


@pytest.fixture(autouse=True)
def _fresh_aliasing_record():
    ALIASING.clear()
    yield
    ALIASING.clear()


def assert_no_aliasing() -> None:
    problems, ALIASING[:] = list(dict.fromkeys(ALIASING)), []
    if IGNORE_ALIASING and problems:
        return
    assert not problems, "; ".join(problems)


def close(got, ref, what: str, rtol: float = 1e-7) -> None:
    ref = np.asarray(ref, dtype=np.float64)
    assert np.shape(got) == ref.shape, f"{what}: shape {np.shape(got)} != {ref.shape}"
    scale = 1.0 + float(np.max(np.abs(ref), initial=0.0))
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), ref, rtol=rtol, atol=rtol * scale,
                               err_msg=what)


def fd_close(got: float, ref: float, what: str) -> None:
    """Finite differences: loose tolerance."""
    assert abs(got - ref) <= 1e-5 * (1.0 + abs(ref)), f"{what}: {got} vs finite difference {ref}"


def orders(names: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every permutation of up to three names; else three orders."""
    if len(names) <= 3:
        return list(itertools.permutations(names))
    return [names, names[::-1], names[1:] + names[:1]]


def dot(a, b) -> float:
    return float(np.sum(np.asarray(a) * np.asarray(b)))


def directions(case: Case, names, seed: int) -> dict[str, np.ndarray]:
    return {n: case.random_like(n, seed + k) for k, n in enumerate(names)}


def output_shape(case: Case, inputs) -> tuple[int, ...]:
    return np.shape(reference_value(case.text, inputs))


def with_every_order(fn, case: Case, inputs, *args, protected, every=True, **kwargs) -> dict[str, np.ndarray]:
    """``fn`` over every order of the case's inputs (and each name alone); the results must agree.
    ``every=False``: one list, in reverse order (the others are covered by finite-difference tests)."""
    names = case.names
    first = None
    for order in orders(names) if every else [names[::-1]]:
        result = checked(fn, case.text, list(order), inputs, *args, protected=protected, **kwargs)
        assert isinstance(result, dict) and set(result) == set(names), f"{fn.__name__}: keys {list(result)}"
        if first is None:
            first = result
        for n in names:
            close(result[n], first[n], f"{fn.__name__} wrt {list(order)}: '{n}' differs from order {list(names)}")
    for n in names if every else ():
        single = checked(fn, case.text, n, inputs, *args, protected=protected, **kwargs)
        close(single, first[n], f"{fn.__name__} wrt '{n}' alone differs from the list")
    return first


# ------------------------------------------------------------------ values

@given(programs(kinks=True))
@budget(20)
def test_evaluate_matches_reference(case):
    inputs = tame(case)
    env = reference_values(case.text, inputs)
    got = checked(einderiv.evaluate, case.text, inputs, protected=inputs)
    close(got, env[parse_reference(case.text).output], "evaluate")
    for s in parse_reference(case.text).statements:
        close(checked(einderiv.evaluate, case.text, inputs, of=s.name, protected=inputs), env[s.name],
              f"evaluate of={s.name}")
    name = case.names[0]
    close(checked(einderiv.evaluate, case.text, inputs, of=name, protected=inputs), inputs[name],
          f"evaluate of the input {name}")
    assert_no_aliasing()


# ------------------------------------------------------------------ reverse mode

@given(programs(scalar_output=True))
@budget(5)
def test_grad_matches_finite_differences(case):
    inputs = tame(case)
    g = with_every_order(einderiv.grad, case, inputs, protected=inputs)
    v = directions(case, case.names, 1)
    fd_close(sum(dot(g[n], v[n]) for n in case.names), float(fd_directional(case.text, inputs, v)), "<grad, v>")
    assert_no_aliasing()


@given(reuse_programs())
@budget(10)
def test_reused_intermediates_grad_matches_finite_differences(case):
    """Renamed, transposed and diagonal copies of an intermediate, each used again (in-place reuse)."""
    inputs = tame(case)
    g = with_every_order(einderiv.grad, case, inputs, protected=inputs)
    for n in case.names:
        v = case.random_like(n, 11)
        fd_close(dot(g[n], v), float(fd_directional(case.text, inputs, {n: v})), f"<grad wrt {n}, v>")
    u = np.array(0.5)
    g = checked(einderiv.vjp, case.text, list(case.names), inputs, u, protected={**inputs, "u": u})
    v = directions(case, case.names, 5)
    fd_close(sum(dot(g[n], v[n]) for n in case.names), 0.5 * float(fd_directional(case.text, inputs, v)),
             "<vjp(0.5), v>")
    assert_no_aliasing()


@given(programs(scalar_output=True, kinks=True))
@budget(3)
def test_grad_matches_jax(case):
    _jax()
    inputs = tame(case)
    g = with_every_order(einderiv.grad, case, inputs, every=False, protected=inputs)
    ref = jax_reference(case.text, inputs).grad(case.names)
    for n in case.names:
        close(g[n], ref[n], f"grad wrt {n}")
    assert_no_aliasing()


@given(programs(scalar_output=True, kinks=True))
@budget(4)
def test_value_and_grad(case):
    inputs = tame(case)
    names = list(case.names)
    value, g = checked(einderiv.value_and_grad, case.text, names, inputs, protected=inputs)
    close(value, reference_value(case.text, inputs), "value_and_grad value")
    v = directions(case, names, 3)
    fd_close(sum(dot(g[n], v[n]) for n in names), float(fd_directional(case.text, inputs, v)),
             "value_and_grad: <grad, v>")
    assert_no_aliasing()


@given(programs(), st.integers(0, 1000))
@budget(6)
def test_vjp_matches_finite_differences(case, seed):
    inputs = tame(case)
    u = np.random.default_rng(seed).uniform(-1, 1, size=output_shape(case, inputs))
    g = with_every_order(einderiv.vjp, case, inputs, u, protected={**inputs, "cotangent": u})
    v = directions(case, case.names, seed + 1)
    fd_close(sum(dot(g[n], v[n]) for n in case.names), dot(u, fd_directional(case.text, inputs, v)), "<vjp(u), v>")
    assert_no_aliasing()


@given(programs(kinks=True), st.integers(0, 1000))
@budget(3)
def test_vjp_matches_jax(case, seed):
    _jax()
    inputs = tame(case)
    u = np.random.default_rng(seed).uniform(-1, 1, size=output_shape(case, inputs))
    g = with_every_order(einderiv.vjp, case, inputs, u, every=False, protected={**inputs, "cotangent": u})
    ref = jax_reference(case.text, inputs).vjp(case.names, u)
    for n in case.names:
        close(g[n], ref[n], f"vjp wrt {n}")
    assert_no_aliasing()


@given(programs(kinks=True))
@budget(2)
def test_jacobian_matches_jax(case):
    _jax()
    inputs = tame(case)
    jac = with_every_order(einderiv.jacobian, case, inputs, every=False, protected=inputs)
    ref = jax_reference(case.text, inputs).jacobian(case.names)
    for n in case.names:
        close(jac[n], ref[n], f"jacobian wrt {n}")
    assert_no_aliasing()


@given(programs(), st.integers(0, 1000))
@budget(6)
def test_jacobian_vjp_jvp_agree(case, seed):
    """<u, J v> three ways (jacobian, vjp, jvp), against finite differences; jvp is linear in the tangents."""
    inputs = tame(case)
    u = np.random.default_rng(seed).uniform(-1, 1, size=output_shape(case, inputs))
    v = directions(case, case.names, seed + 1)
    jac = checked(einderiv.jacobian, case.text, list(case.names), inputs, protected=inputs)
    out_axes = u.ndim
    via_jacobian = sum(float(np.tensordot(np.tensordot(u, jac[n], axes=out_axes), v[n], axes=v[n].ndim))
                       for n in case.names)
    g = checked(einderiv.vjp, case.text, list(case.names), inputs, u, protected={**inputs, "u": u})
    via_vjp = sum(dot(g[n], v[n]) for n in case.names)
    t = checked(einderiv.jvp, case.text, v, inputs, protected={**inputs, **{f"tangent {n}": v[n] for n in v}})
    via_jvp = dot(u, t)
    singles = sum(np.asarray(einderiv.jvp(case.text, {n: v[n]}, inputs)) for n in case.names)
    close(t, singles, "jvp of all tangents != sum of single-tangent jvps")
    fd = dot(u, fd_directional(case.text, inputs, v))
    for what, got in (("jacobian", via_jacobian), ("vjp", via_vjp), ("jvp", via_jvp)):
        fd_close(got, fd, f"<u, J v> via {what}")
    close(via_vjp, via_jacobian, "<u, J v>: vjp vs jacobian")
    close(via_jvp, via_jacobian, "<u, J v>: jvp vs jacobian")
    assert_no_aliasing()


# ------------------------------------------------------------------ forward mode

@given(programs(kinks=True), st.data())
@budget(3)
def test_jvp_matches_jax(case, data):
    _jax()
    inputs = tame(case)
    names = data.draw(st.lists(st.sampled_from(case.names), min_size=1, unique=True), label="tangent names")
    v = directions(case, names, 7)
    t = checked(einderiv.jvp, case.text, v, inputs, protected={**inputs, **{f"tangent {n}": v[n] for n in v}})
    close(t, jax_reference(case.text, inputs).jvp(v), f"jvp with tangents for {names}")
    assert_no_aliasing()


# ------------------------------------------------------------------ second order

def hessian_pairs(names):
    pairs = [(a, a) for a in names] + [(a, b) for a, b in itertools.permutations(names, 2)]
    return pairs[:4]


@given(programs(scalar_output=True, max_statements=3), st.integers(0, 1000))
@budget(4)
def test_hessian_hvp_match_finite_differences(case, seed):
    inputs = tame(case)
    for a, b in hessian_pairs(case.names):
        u, v = case.random_like(a, seed), case.random_like(b, seed + 1)
        fd = float(fd_second(case.text, inputs, {a: u}, {b: v}))
        h = checked(einderiv.hessian, case.text, a, inputs, wrt2=b, protected=inputs)
        assert np.shape(h) == np.shape(inputs[a]) + np.shape(inputs[b])
        via_h = float(np.tensordot(np.tensordot(u, h, axes=u.ndim), v, axes=v.ndim))
        assert abs(via_h - fd) <= 1e-4 * (1 + abs(fd)), f"<u, H[{a},{b}] v> = {via_h}, finite differences {fd}"
        hv = checked(einderiv.hvp, case.text, a, inputs, {b: v}, protected={**inputs, "vector": v})
        close(dot(u, hv), via_h, f"hvp({a}, {{{b}: v}}) vs hessian")
        if a == b:
            hv2 = checked(einderiv.hvp, case.text, a, inputs, v, protected={**inputs, "vector": v})
            close(hv2, hv, "hvp with an array vs a mapping")
    assert_no_aliasing()


@given(programs(scalar_output=True, max_statements=3, kinks=True), st.integers(0, 1000))
@budget(2)
def test_hessian_hvp_match_jax(case, seed):
    _jax()
    inputs = tame(case)
    ref = jax_reference(case.text, inputs)
    for a, b in hessian_pairs(case.names):
        h = checked(einderiv.hessian, case.text, a, inputs, wrt2=b, protected=inputs)
        close(h, ref.hessian(a, b), f"hessian d2/d{a}d{b}", rtol=1e-6)
    vectors = directions(case, case.names, seed)
    a = case.names[0]
    hv = checked(einderiv.hvp, case.text, a, inputs, vectors,
                 protected={**inputs, **{f"vector {n}": vectors[n] for n in vectors}})
    close(hv, ref.hvp(a, vectors), f"hvp wrt {a} along every input", rtol=1e-6)
    assert_no_aliasing()


# ------------------------------------------------------------------ known bugs, written out

REUSE = {"x": np.array([1.0, 2.0]), "y": np.array([3.0, 4.0]), "z": np.array([5.0, 6.0])}


@pytest.mark.parametrize("text, expected", [
    # L = Σ (x y)(x y + z): dL/dx = y (2 x y + z)
    ("A[i] = x[i] y[i]; B[i] = A[i]; C[i] = A[i] + z[i]; L = B[i] C[i]", [33.0, 88.0]),
    ("A[i] = x[i] y[i]; C[i] = A[i] + z[i]; B[i] = A[i]; L = B[i] C[i]", [33.0, 88.0]),
])
def test_renamed_intermediate_reused_keeps_gradient(text, expected):
    g = checked(einderiv.grad, text, "x", REUSE, protected=REUSE)
    np.testing.assert_allclose(g, expected)
    np.testing.assert_allclose(g, fd_grad(text, "x", REUSE), rtol=1e-6)
    assert_no_aliasing()


def fd_grad(text, name, inputs):
    out = np.zeros_like(inputs[name])
    for idx in np.ndindex(*out.shape):
        e = np.zeros_like(out)
        e[idx] = 1.0
        out[idx] = fd_directional(text, inputs, {name: e})
    return out


@pytest.mark.parametrize("text", [
    "A[i,j] = x[i] y[j]; B[j,i] = A[i,j]; C[i,j] = A[i,j] + z[i] z[j]; L = B[j,i] C[i,j]",
    "A[i,j] = x[i] y[j]; B[j,i] = A[i,j]; C[i,j] = A[i,j] + z[i] z[j]; L = B[i,j] C[i,j]",
    "A[i,j] = x[i] y[j]; d[i] = A[i,i]; C[i,j] = A[i,j] + z[i]; L = d[i] C[i,j]",
    "A[i,j] = x[i] y[j]; d[i] = A[i,i]; C[i] = A[i,i] + z[i]; L = d[i] C[i]",
    "A[i] = x[i] y[i]; B[i] = A[i]; C[i] = B[i]; D[i] = A[i] + C[i] z[i]; L = D[i] B[i] + C[i]",
])
def test_transposed_or_diagonal_intermediate_reused_keeps_gradient(text):
    for name in REUSE:
        g = checked(einderiv.grad, text, name, REUSE, protected=REUSE)
        np.testing.assert_allclose(g, fd_grad(text, name, REUSE), rtol=1e-6, err_msg=f"{text}: d/d{name}")
    assert_no_aliasing()


def test_double_transpose_of_an_intermediate_keeps_gradient():
    """Found by reuse_programs: a transpose of a transpose, used with the original."""
    text = "A[i,j] = x[i,j] y[i,j]; B[j,i] = A[i,j]; C[j,i] = B[i,j]; L = C[i,j] A[i,j] + C[i,j]"
    inputs = {"x": np.array([[1.0, 2.0], [3.0, 4.0]]), "y": np.array([[0.5, -1.0], [2.0, 0.25]])}
    for name in inputs:     # dL/dx = y (2 x y + 1): [[1, 3], [26, 0.75]]
        g = checked(einderiv.grad, text, name, inputs, protected=inputs)
        np.testing.assert_allclose(g, fd_grad(text, name, inputs), rtol=1e-6, err_msg=f"{text}: d/d{name}")
    np.testing.assert_allclose(einderiv.grad(text, "x", inputs), [[1.0, 3.0], [26.0, 0.75]])
    assert_no_aliasing()


WRT_LIST = "s[i] = x[i] w[i]; L = s[i] q[i] + s[i] y[i] + y[i] y[i]"
WRT_INPUTS = {"x": np.array([1.0, 2.0]), "w": np.array([1.0, 1.0]), "q": np.array([0.0, 0.0]),
              "y": np.array([3.0, 4.0])}


@pytest.mark.parametrize("order", list(itertools.permutations(["q", "y", "x"])) + [("q", "y"), ("y", "q")])
def test_gradient_list_results_are_independent(order):
    g = checked(einderiv.grad, WRT_LIST, list(order), WRT_INPUTS, protected=WRT_INPUTS)
    np.testing.assert_allclose(g["q"], [1.0, 2.0])
    np.testing.assert_allclose(g["y"], [7.0, 10.0])
    if "x" in g:
        np.testing.assert_allclose(g["x"], [3.0, 4.0])
    assert_no_aliasing()


@pytest.mark.parametrize("call", [
    lambda a: einderiv.evaluate("z[i] = x[i]", a),
    lambda a: einderiv.evaluate("d[i] = A[i,i]", a),
    lambda a: einderiv.evaluate("B[j,i] = A[i,j]", a),
    lambda a: einderiv.evaluate("z[i] = x[i]", a, of="x"),
    lambda a: einderiv.grad("L = x[i] y[i]", "x", a),
    lambda a: einderiv.grad("L = x[i] y[i]", ["x", "y"], a),
    lambda a: einderiv.value_and_grad("L = x[i] y[i]", ["y", "x"], a),
    lambda a: einderiv.vjp("z[i] = x[i]", "x", a, a["c"]),
    lambda a: einderiv.vjp("z[i] = x[i]; w[i] = z[i]", ["x"], a, a["c"]),
    lambda a: einderiv.vjp("B[j,i] = A[i,j]", "A", a, a["A"]),
    lambda a: einderiv.jvp("z[i] = x[i]", {"x": a["c"]}, a),
    lambda a: einderiv.jvp("B[j,i] = A[i,j]", {"A": a["A"]}, a),
    lambda a: einderiv.jacobian("z[i] = x[i] y[i]", ["x", "y"], a),
    lambda a: einderiv.hessian("L = x[i] x[i] y[j] y[j]", "x", a, wrt2="y"),
    lambda a: einderiv.hvp("L = x[i] y[i]", "x", a, {"y": a["c"]}),
    lambda a: einderiv.hvp("L = x[i] x[i] / 2", "x", a, a["c"]),
], ids=["evaluate-rename", "evaluate-diagonal", "evaluate-transpose", "evaluate-of-input", "grad", "grad-list",
        "value_and_grad-list", "vjp-rename", "vjp-rename-chain", "vjp-transpose", "jvp-rename", "jvp-transpose",
        "jacobian-list", "hessian-mixed", "hvp-mapping", "hvp-array"])
def test_results_never_alias_arguments(call):
    arguments = {"x": np.array([1.0, 2.0]), "y": np.array([3.0, 4.0]), "c": np.array([5.0, 6.0]),
                 "A": np.array([[1.0, 2.0], [3.0, 4.0]])}
    checked(call, arguments, protected=arguments)
    assert_no_aliasing()


def test_kink_conventions_at_ties():
    """relu'(0) = abs'(0) = 0; max sends the gradient to b at a tie, min likewise."""
    inputs = {"x": np.array([0.0, 1.0, -1.0]), "y": np.array([0.0, 1.0, 2.0])}
    cases = {"L = relu(x[i])": {"x": [0.0, 1.0, 0.0]},
             "L = abs(x[i])": {"x": [0.0, 1.0, -1.0]},
             "L = max(x[i], y[i])": {"x": [0.0, 0.0, 0.0], "y": [1.0, 1.0, 1.0]},
             "L = min(x[i], y[i])": {"x": [0.0, 0.0, 1.0], "y": [1.0, 1.0, 0.0]},
             "L = max(0, x[i])": {"x": [1.0, 1.0, 0.0]},   # a tie sends the gradient to b
             "L = max(x[i], 0)": {"x": [0.0, 1.0, 0.0]}}
    for text, expected in cases.items():
        names = list(expected)
        g = checked(einderiv.grad, text, names, inputs, protected=inputs)
        for n in names:
            np.testing.assert_allclose(g[n], expected[n], err_msg=f"{text}: d/d{n}")
        if _has_jax():
            ref = jax_reference(text, inputs).grad(names)
            for n in names:
                np.testing.assert_allclose(ref[n], expected[n], err_msg=f"reference {text}: d/d{n}")
    assert_no_aliasing()


def _has_jax() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def test_reference_self_check():
    """The reference's own conventions, on the contract's examples."""
    A, x, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, -1.0]), np.array([0.5, 2.0])
    np.testing.assert_allclose(reference_value("y[i] = 2 (A[i,j] x[j] + b[i])", {"A": A, "x": x, "b": b}),
                               2 * (A @ x + b))
    np.testing.assert_allclose(reference_value("y[i] = sum[j](A[i,j] x[j] + b[i])", {"A": A, "x": x, "b": b}),
                               A @ x + 2 * b)
    np.testing.assert_allclose(reference_value("y[i] = exp(A[i,j] x[j])", {"A": A, "x": x}),
                               np.exp(A * x).sum(axis=1))
    np.testing.assert_allclose(reference_value("L = (A[i,j] - b[j])^2", {"A": A, "b": b}), ((A - b) ** 2).sum())
    np.testing.assert_allclose(reference_value("d[i] = A[i,i]", {"A": A}), [1.0, 4.0])
    np.testing.assert_allclose(reference_value("y[i,j] = x[i] + b[j]", {"x": x, "b": b}), x[:, None] + b[None, :])
    np.testing.assert_allclose(reference_value("a = 2 * 3; b = -a ^ 2", {}), -36.0)
    np.testing.assert_allclose(reference_value("y[i] = x[i] / b[i] A[i,j]", {"A": A, "x": x, "b": b}),
                               (x / b) * A.sum(axis=1))
    with pytest.raises(ValueError, match="index j has sizes"):
        reference_value("y[i] = A[i,j] c[j]", {"A": A, "c": np.ones(3)})


# ------------------------------------------------------------------ found by the random tests

CANCEL = {"s": np.array([1.0, 2.0, 3.0]), "u": np.array(0.5), "x": np.array([0.25, -1.0])}


@pytest.mark.parametrize("text, expected", [
    # k is summed over the whole term even when its factors cancel: Σ_k s[k]/s[k] = size(k)
    ("y = s[k] / s[k]", 3.0),
    ("y = u s[k] / s[k]", 1.5),
    ("y = u * (s[k] / s[k])", 1.5),
    ("y = u s[k] s[k]^-1", 1.5),
    ("y = sum[k](u s[k] / s[k])", 1.5),
    ("y[i] = x[i] s[k] / s[k]", [0.75, -3.0]),
])
def test_cancelled_factors_keep_their_summed_index(text, expected):
    np.testing.assert_allclose(reference_value(text, CANCEL), expected)
    np.testing.assert_allclose(checked(einderiv.evaluate, text, CANCEL, protected=CANCEL), expected)
    assert_no_aliasing()


def test_forward_mode_keeps_summed_index_of_cancelled_chain_rule_factors():
    """d/du Σ_k log(exp(u + s[k])) = size(k): the chain rule's exp(z)/exp(z) cancels, the sum must stay."""
    text = "y = log(exp(u + s[k]))"
    np.testing.assert_allclose(einderiv.grad(text, "u", CANCEL), 3.0)
    np.testing.assert_allclose(fd_directional(text, CANCEL, {"u": np.array(1.0)}), 3.0, rtol=1e-6)
    np.testing.assert_allclose(checked(einderiv.jvp, text, {"u": np.array(1.0)}, CANCEL, protected=CANCEL), 3.0)
    # L = Σ_{m,n} (x[m] + s[n])^2: the Hessian in x is 2 size(n) I
    text = "L = log(exp(x[m] + s[n]))^2"
    v = np.array([1.0, -2.0])
    np.testing.assert_allclose(einderiv.hessian(text, "x", CANCEL) @ v, 6.0 * v)
    np.testing.assert_allclose(checked(einderiv.hvp, text, "x", CANCEL, v, protected={**CANCEL, "v": v}), 6.0 * v)
    assert_no_aliasing()
