"""The two-layer network's gradient as hand-written numpy backprop computes it: the same peak memory
(the ReLU mask a boolean array, not a floating indicator), C-ordered results, float32 kept float32.
Counted with tracemalloc (numpy reports its allocations to it), never timed."""

import tracemalloc

import numpy as np
import pytest

import einderiv
from tests.helpers import TWO_LAYER

WRT = ["W1", "b1", "W2", "b2"]


def _inputs(dtype=np.float64, n=512, d=64, h=256, c=4):
    rng = np.random.default_rng(0)
    shapes = dict(X=(n, d), W1=(d, h), b1=(h,), W2=(h, c), b2=(c,), T=(n, c))
    arrays = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    return {**arrays, "N": np.asarray(n, dtype)}      # a Python number counts as float64 (promotes float32)


def _backprop(X, W1, b1, W2, b2, T, N):
    H1 = X @ W1
    H1 += b1
    H2 = np.maximum(H1, 0)
    Z = H2 @ W2
    Z += b2
    dZ = Z - T
    dZ /= N
    dH1 = dZ @ W2.T
    dH1 *= H1 > 0
    return {"W1": X.T @ dH1, "b1": dH1.sum(axis=0), "W2": H2.T @ dZ, "b2": dZ.sum(axis=0)}


def _peak(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_gradient_peaks_at_hand_written_numpys_memory():
    inputs = _inputs()
    einderiv.grad(TWO_LAYER, WRT, inputs)             # plan once: the cached call is what is measured
    ours = _peak(lambda: einderiv.grad(TWO_LAYER, WRT, inputs))
    theirs = _peak(lambda: _backprop(**inputs))
    assert ours <= 1.1 * theirs, (ours, theirs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_gradients_are_c_ordered_and_keep_the_dtype(dtype):
    inputs = _inputs(dtype)
    got = einderiv.grad(TWO_LAYER, WRT, inputs)
    want = _backprop(**inputs)
    for name in WRT:
        assert got[name].dtype == dtype and got[name].flags.c_contiguous, name
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4 if dtype == np.float32 else 1e-10,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)
