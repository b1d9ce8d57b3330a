"""The core's headline numbers, measured in one run.

    python benchmarks/core_report.py

1. cold and cached time to parse + differentiate + plan the two-layer network
   gradient (tiny arrays, so running the plan costs next to nothing);
2. ``vjp`` of F = W X w.r.t. W at m = n = p = 512 against ``G @ X.T``;
3. ``jacobian`` of F = W X w.r.t. W at m = n = p = 64 against ``np.zeros`` of
   that shape plus one diagonal write (the physical limit).

Times are the minimum over repeats (cold: a single first call after clearing
every cache). Prints one line per measurement.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a script from anywhere

import einderiv  # noqa: E402
from benchmarks.common import TWO_LAYER as NETWORK, best, cold  # noqa: E402


def network_overhead() -> None:
    rng = np.random.default_rng(0)
    n, d, h, c = 4, 3, 5, 2
    inputs = {"X": rng.standard_normal((n, d)), "W1": rng.standard_normal((d, h)), "b1": rng.standard_normal(h),
              "W2": rng.standard_normal((h, c)), "b2": rng.standard_normal(c), "T": rng.standard_normal((n, c)),
              "N": float(n)}
    wrt = ["W1", "b1", "W2", "b2"]
    first = cold(lambda: einderiv.grad(NETWORK, wrt, inputs), 10)
    cached = best(lambda: einderiv.grad(NETWORK, wrt, inputs), 200)
    print(f"two-layer network grad, parse+differentiate+plan+run (tiny arrays): cold {first * 1e3:.2f} ms "
          f"(min of 10 cold starts), cached call {cached * 1e6:.1f} us")


def vjp_512() -> None:
    rng = np.random.default_rng(1)
    m = n = p = 512
    W, X, G = rng.standard_normal((m, n)), rng.standard_normal((n, p)), rng.standard_normal((m, p))
    program = "F[i,k] = W[i,j] X[j,k]"
    got = einderiv.vjp(program, "W", {"W": W, "X": X}, G)
    assert np.allclose(got, G @ X.T)
    ours = best(lambda: einderiv.vjp(program, "W", {"W": W, "X": X}, G))
    limit = best(lambda: G @ X.T)
    print(f"vjp F=WX wrt W, m=n=p=512: einderiv {ours * 1e3:.2f} ms, G @ X.T {limit * 1e3:.2f} ms, "
          f"ratio {ours / limit:.3f}")


def jacobian_64() -> None:
    rng = np.random.default_rng(2)
    m = n = p = 64
    W, X = rng.standard_normal((m, n)), rng.standard_normal((n, p))
    program = "F[i,k] = W[i,j] X[j,k]"

    def limit():
        out = np.zeros((m, p, m, n))
        diagonal = np.einsum("ikib->ikb", out)  # a writable view of the δ[i,a] diagonal
        diagonal[...] = X.T[None, :, :]
        return out

    got = einderiv.jacobian(program, "W", {"W": W, "X": X})
    assert np.array_equal(got, limit())
    ours = best(lambda: einderiv.jacobian(program, "W", {"W": W, "X": X}), 10)
    base = best(limit, 10)
    print(f"jacobian F=WX wrt W, m=n=p=64 (shape {got.shape}, {got.nbytes / 2**20:.0f} MiB): einderiv "
          f"{ours * 1e3:.2f} ms, np.zeros + diagonal write {base * 1e3:.2f} ms, ratio {ours / base:.3f}")


if __name__ == "__main__":
    network_overhead()
    vjp_512()
    jacobian_64()
