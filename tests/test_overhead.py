"""The per-call cost of a cached plan, by counting work (never timing it): a repeated call with arrays
of the same shapes and dtypes takes the fast path, which parses, derives, checks and searches nothing;
anything it cannot vouch for falls back to the checked path and its clear errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import einderiv
from einderiv.calculus import program as program_module
from einderiv.errors import EinderivWarning, MemoryLimitError, ShapeError
from einderiv.numeric import evaluation, planning, plans
from helpers import TWO_LAYER

WRT = ["W1", "b1", "W2", "b2"]


def _inputs(n=4, d=3, h=5, c=2, seed=0):
    rng = np.random.default_rng(seed)
    return {"X": rng.standard_normal((n, d)), "W1": rng.standard_normal((d, h)), "b1": rng.standard_normal(h),
            "W2": rng.standard_normal((h, c)), "b2": rng.standard_normal(c), "T": rng.standard_normal((n, c)),
            "N": float(n)}


def _backprop(X, W1, b1, W2, b2, T, N):
    H1 = X @ W1 + b1
    H2 = np.maximum(H1, 0)
    dZ = (H2 @ W2 + b2 - T) / N
    dH1 = (dZ @ W2.T) * (H1 > 0)
    return {"W1": X.T @ dH1, "b1": dH1.sum(axis=0), "W2": H2.T @ dZ, "b2": dZ.sum(axis=0)}


@pytest.fixture
def counted(monkeypatch):
    """Calls of the parser, the derivation, the plan compiler, the input checks and the path search."""
    counts = {"parse": 0, "derive": 0, "compile": 0, "check": 0, "path": 0}

    def counting(module, name, key):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            counts[key] += 1
            return original(*args, **kwargs)
        monkeypatch.setattr(module, name, wrapper)

    counting(program_module, "_parse_cached", "parse")
    counting(plans, "reverse_program", "derive")
    counting(evaluation, "compile_plan", "compile")
    counting(evaluation, "reverse_request", "check")
    counting(planning, "_plan_within_limit", "path")
    einderiv.clear_cache()
    return counts


def test_a_repeated_call_parses_derives_checks_and_searches_nothing(counted):
    inputs = _inputs()
    first = einderiv.grad(TWO_LAYER, WRT, inputs)
    assert counted["parse"] == 1 and counted["derive"] == 1 and counted["compile"] == 1
    before = dict(counted)
    hits = einderiv.cache_info()["hits"]
    for _ in range(3):
        again = einderiv.grad(TWO_LAYER, WRT, inputs)
    assert counted == before
    assert einderiv.cache_info()["hits"] == hits + 3        # still counted as plan-cache hits
    expected = _backprop(**inputs)
    for name in WRT:
        np.testing.assert_allclose(again[name], expected[name], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(again[name], first[name])


def test_new_values_of_the_same_shapes_take_the_fast_path_and_give_their_own_gradient(counted):
    einderiv.grad(TWO_LAYER, WRT, _inputs(seed=0))
    before = dict(counted)
    other = _inputs(seed=1)
    got = einderiv.grad(TWO_LAYER, WRT, other)
    assert counted == before
    for name, value in _backprop(**other).items():
        np.testing.assert_allclose(got[name], value, rtol=1e-12, atol=1e-12)


def test_new_shapes_or_dtypes_take_the_checked_path(counted):
    einderiv.grad(TWO_LAYER, WRT, _inputs())
    einderiv.grad(TWO_LAYER, WRT, _inputs(n=6))
    assert counted["check"] == 2 and counted["compile"] == 2
    as_float32 = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) else v) for k, v in _inputs().items()}
    got32 = einderiv.grad(TWO_LAYER, WRT, as_float32)
    assert counted["check"] == 3
    np.testing.assert_allclose(got32["W1"], _backprop(**_inputs())["W1"], rtol=1e-5, atol=1e-5)
    as_lists = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in _inputs().items()}
    got = einderiv.grad(TWO_LAYER, WRT, as_lists)
    assert counted["check"] == 4
    np.testing.assert_allclose(got["b2"], _backprop(**_inputs())["b2"], rtol=1e-12)


def test_a_wrong_rank_after_a_cached_call_raises_the_checked_error():
    einderiv.clear_cache()
    inputs = _inputs()
    einderiv.grad(TWO_LAYER, WRT, inputs)
    with pytest.raises(ShapeError, match=r"input 'b1' has 2 axes \(shape \(1, 5\)\) but is written with 1 index"):
        einderiv.grad(TWO_LAYER, WRT, {**inputs, "b1": inputs["b1"][None, :]})
    missing = {k: v for k, v in inputs.items() if k != "T"}
    with pytest.raises(ShapeError, match="missing input 'T'"):
        einderiv.grad(TWO_LAYER, WRT, missing)
    with pytest.raises(ShapeError, match=r"input 'N' has 1 axis"):
        einderiv.grad(TWO_LAYER, WRT, {**inputs, "N": np.array([4.0])})


def test_a_lower_memory_limit_after_a_cached_call_still_refuses():
    einderiv.clear_cache()
    inputs = _inputs()
    einderiv.grad(TWO_LAYER, WRT, inputs)
    with pytest.raises(MemoryLimitError, match="over the memory limit of 8 bytes"):
        einderiv.grad(TWO_LAYER, WRT, inputs, memory_limit=8)
    previous = planning.set_memory_limit(8)
    try:
        with pytest.raises(MemoryLimitError, match="over the memory limit of 8 bytes"):
            einderiv.grad(TWO_LAYER, WRT, inputs)
    finally:
        planning.set_memory_limit(previous)


def test_a_cleared_cache_rebuilds_the_plan(counted):
    inputs = _inputs()
    einderiv.grad(TWO_LAYER, WRT, inputs)
    einderiv.clear_cache()
    einderiv.grad(TWO_LAYER, WRT, inputs)
    assert counted["compile"] == 2 and einderiv.cache_info()["misses"] == 1


def test_fast_results_never_alias_inputs_or_each_other():
    einderiv.clear_cache()
    x, w = np.arange(3.0), np.ones(3)
    for _ in range(3):         # the first call is checked, the later ones fast
        g = einderiv.grad("L = w[i] x[i]", ["w", "x"], {"w": w, "x": x})
        assert not np.shares_memory(g["w"], x) and not np.shares_memory(g["x"], w)
        g["w"][0] = 99.0
        assert x[0] == 0.0


def test_warnings_are_repeated_on_every_call():
    einderiv.clear_cache()
    for _ in range(2):
        with pytest.warns(EinderivWarning, match="A and B have no indices"):
            einderiv.grad("L = A B", "A", {"A": np.array(1.0), "B": np.array(2.0)})


def test_vjp_and_value_and_grad_fast_paths_check_what_they_must(counted):
    W, X = np.ones((2, 3)), np.arange(12.0).reshape(3, 4)
    G = np.ones((2, 4))
    for _ in range(2):
        got = einderiv.vjp("F[i,k] = W[i,j] X[j,k]", "W", {"W": W, "X": X}, G)
        np.testing.assert_allclose(got, G @ X.T)
    assert counted["check"] == 1
    with pytest.raises(ShapeError, match=r"the cotangent has shape \(2, 5\) but 'F' has shape \(2, 4\)"):
        einderiv.vjp("F[i,k] = W[i,j] X[j,k]", "W", {"W": W, "X": X}, np.ones((2, 5)))
    for _ in range(2):
        value, g = einderiv.value_and_grad("L = x[i] x[i]", "x", {"x": np.array([3.0, 4.0])})
        assert value == 25.0 and isinstance(value, float)
        np.testing.assert_allclose(g, [6.0, 8.0])


def test_symmetric_inputs_are_checked_on_every_call():
    einderiv.clear_cache()
    S = np.array([[1.0, 2.0], [2.0, 3.0]])
    einderiv.grad("L = S[i,j] S[i,j]", "S", {"S": S}, symmetric=["S"])
    with pytest.warns(EinderivWarning, match="declared symmetric but is not"):
        einderiv.grad("L = S[i,j] S[i,j]", "S", {"S": S + np.triu(np.ones((2, 2)), 1)}, symmetric=["S"])


def test_a_two_operand_product_spends_no_path_search(monkeypatch):
    calls = []
    original = planning._plan_within_limit
    monkeypatch.setattr(planning, "_plan_within_limit", lambda *a, **k: calls.append(a) or original(*a, **k))
    einderiv.clear_cache()
    einderiv.grad(TWO_LAYER, WRT, _inputs())
    assert calls == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        einderiv.grad(TWO_LAYER, WRT, _inputs())


def test_evaluate_takes_the_fast_path_and_still_checks(counted):
    A, x = np.arange(6.0).reshape(2, 3), np.ones(3)
    for _ in range(3):
        y = einderiv.evaluate("y[i] = A[i,j] x[j]", {"A": A, "x": x})
        np.testing.assert_array_equal(y, A @ x)
    assert counted["parse"] == 1
    passthrough = einderiv.evaluate("y[i] = x[i]", {"x": x})
    again = einderiv.evaluate("y[i] = x[i]", {"x": x})
    assert not np.shares_memory(passthrough, x) and not np.shares_memory(again, x)
    with pytest.raises(ShapeError, match=r"input 'x' has 2 axes"):
        einderiv.evaluate("y[i] = A[i,j] x[j]", {"A": A, "x": np.ones((3, 1))})


def test_hessian_takes_the_fast_path_and_still_checks(counted, monkeypatch):
    from einderiv.numeric import hessian as hessian_module
    built = []
    original = hessian_module.hessian_program

    def counting(*args, **kwargs):
        built.append(args)
        return original(*args, **kwargs)
    monkeypatch.setattr(hessian_module, "hessian_program", counting)
    rng = np.random.default_rng(0)
    x, A = rng.standard_normal(4), rng.standard_normal((4, 4))
    first = einderiv.hessian("L = x[i] A[i,j] x[j]", "x", {"x": x, "A": A})
    parses = counted["parse"]
    for _ in range(3):
        again = einderiv.hessian("L = x[i] A[i,j] x[j]", "x", {"x": x, "A": A})
        np.testing.assert_allclose(again, A + A.T, rtol=1e-12)
        assert again is not first and not np.shares_memory(again, A)
    assert len(built) == 1 and counted["parse"] == parses
    other = rng.standard_normal((4, 4))
    np.testing.assert_allclose(einderiv.hessian("L = x[i] A[i,j] x[j]", "x", {"x": x, "A": other}),
                               other + other.T, rtol=1e-12)
    mixed = einderiv.hessian("L = x[i] A[i,j] x[j]", "x", {"x": x, "A": A}, wrt2="A")
    assert mixed.shape == (4, 4, 4)                 # wrt2 is part of the call's key
    with pytest.raises(ShapeError, match=r"input 'A' has 1 ax"):
        einderiv.hessian("L = x[i] A[i,j] x[j]", "x", {"x": x, "A": np.ones(4)})


def test_an_evicted_plan_is_rebuilt_and_the_fast_path_follows(counted, monkeypatch):
    monkeypatch.setattr(plans, "CACHE_SIZE", 1)
    inputs = _inputs()
    first = einderiv.grad(TWO_LAYER, WRT, inputs)                  # remembered for the fast path
    einderiv.grad("L = x[i] x[i]", "x", {"x": np.ones(3)})         # evicts the two-layer plan
    compiled = counted["compile"]
    again = einderiv.grad(TWO_LAYER, WRT, inputs)                  # must not run the evicted plan unseen
    assert counted["compile"] == compiled + 1
    for name in WRT:
        np.testing.assert_array_equal(again[name], first[name])
    before = dict(counted)
    einderiv.grad(TWO_LAYER, WRT, inputs)                          # cached again: the fast path
    assert counted == before
