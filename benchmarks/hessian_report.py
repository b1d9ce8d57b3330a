"""Hessian headline numbers, measured in one run.

    python benchmarks/hessian_report.py

1. ``L = x[i] A[i,j] x[j]`` at n = 400 against the closed form ``A + A.T``;
2. ``R[n,j] = X[n,i] W[i,j] - Y[n,j]; L = R[n,j]^2`` with X 200×50, W 50×20
   against the closed form: a zeroed (50, 20, 50, 20) array with ``2 XᵀX``
   written into its (b = d) diagonal view.

For each: the result is checked against the closed form, then the warm time of
``einderiv.hessian`` and of the closed form (minimum over repeats),
and the cold time of the first call after clearing every cache (parse,
differentiate twice, plan, run; minimum over a few cold starts). Prints one
line per measurement.

BLAS runs on one thread (``OPENBLAS_NUM_THREADS`` and friends default to 1
here; set them to override): on a small shared machine, multithreaded OpenBLAS
makes some small GEMMs (``XᵀX`` at 200×50, depending only on operand order)
about a hundred times slower at random, for einderiv and the closed form alike.
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402  (BLAS threads are fixed before numpy loads)

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a script from anywhere

import einderiv  # noqa: E402
from benchmarks.common import best, cold  # noqa: E402

QUADRATIC = "L = x[i] A[i,j] x[j]"
FROBENIUS = "R[n,j] = X[n,i] W[i,j] - Y[n,j]\nL = R[n,j]^2"


def quadratic_closed(A: np.ndarray) -> np.ndarray:
    """d²(xᵀAx)/dx² = A + Aᵀ."""
    return A + A.T


def frobenius_closed(X: np.ndarray, q: int) -> np.ndarray:
    """2 (XᵀX)[a,c] δ[b,d]: one write into the diagonal view of a zeroed array."""
    p = X.shape[1]
    H = np.zeros((p, q, p, q))
    np.einsum("abcb->acb", H)[...] = (2.0 * (X.T @ X))[:, :, None]
    return H


def report(name: str, ours, closed, repeats: int) -> None:
    got, expected = ours(), closed()
    error = float(np.max(np.abs(got - expected)))
    if not np.allclose(got, expected, rtol=1e-10, atol=1e-10):
        raise SystemExit(f"{name}: einderiv disagrees with the closed form (max abs error {error:.3g})")
    first = cold(ours)
    warm = best(ours, repeats)
    base = best(closed, repeats)
    print(f"{name} (shape {got.shape}, max abs error {error:.1e}): einderiv {warm * 1e3:.3f} ms, "
          f"closed form {base * 1e3:.3f} ms, ratio {warm / base:.2f}; cold (derive + plan + run) "
          f"{first * 1e3:.2f} ms")


def main() -> None:
    print(f"BLAS threads: OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; numpy {np.__version__}")
    rng = np.random.default_rng(0)
    n = 400
    A, x = rng.standard_normal((n, n)), rng.standard_normal(n)
    report("hessian xᵀAx, n=400", lambda: einderiv.hessian(QUADRATIC, "x", {"A": A, "x": x}),
           lambda: quadratic_closed(A), 50)
    X, W, Y = rng.standard_normal((200, 50)), rng.standard_normal((50, 20)), rng.standard_normal((200, 20))
    inputs = {"X": X, "W": W, "Y": Y}
    report("hessian ‖XW − Y‖²_F, X 200×50, W 50×20", lambda: einderiv.hessian(FROBENIUS, "W", inputs),
           lambda: frobenius_closed(X, 20), 30)


if __name__ == "__main__":
    main()
