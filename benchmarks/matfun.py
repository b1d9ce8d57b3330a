"""Matrix functions: einderiv against ``jax.grad`` of ``jnp.linalg.slogdet`` / ``solve``, n = 100 and 500.

    python -m benchmarks.matfun [--quick]

Two gradients, each checked against a closed form before it is timed:

* ``L = logdet(A)``: ``gA = A⁻ᵀ``;
* the Gaussian negative log-likelihood ``L = ½(xᵀS⁻¹x + logdet S)``:
  ``gx = S⁻¹x``, ``gS = ½(S⁻¹ − S⁻¹xxᵀS⁻¹)``.

Contenders: einderiv (cached plan, warm), hand-written numpy (the closed form,
one ``inv`` and one ``slogdet``: the physical limit with numpy's LAPACK calls) and
``jax.jit(jax.grad(...))`` in float64 (skipped, with a note, when jax is absent).
Times are the minimum over repeats (:func:`benchmarks.common.best`). On a shared
machine run it single-threaded (``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1``):
spinning BLAS threads otherwise make minima jump a hundredfold.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import einderiv

from .common import best

LOGDET = "L = logdet(A)"
GAUSSIAN = "L = 0.5 x[i] inv(S)[i,j] x[j] + 0.5 logdet(S)"


def _jax():
    """jax.numpy and jax with float64 enabled, or None when jax is not installed."""
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    return jax


def _problem(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((n, n))
    return {"A": R + n ** 0.5 * np.eye(n), "S": R @ R.T / n + np.eye(n), "x": rng.standard_normal(n)}


def _numpy_logdet(A):
    return np.linalg.inv(A).T


def _numpy_gaussian(S, x):
    inverse = np.linalg.inv(S)      # the gradient alone, like the others: no value, so no slogdet
    u = inverse @ x
    return u, 0.5 * (inverse - np.outer(u, u))


def _rows(n: int, jax, repeats: int) -> list[tuple[str, str, float]]:
    data = _problem(n)
    A, S, x = data["A"], data["S"], data["x"]
    rows = []
    # logdet
    expected = np.linalg.inv(A).T
    contenders = {"einderiv": lambda: einderiv.grad(LOGDET, "A", {"A": A}),
                  "numpy (closed form)": lambda: _numpy_logdet(A)}
    if jax is not None:
        jnp = jax.numpy
        f = jax.jit(jax.grad(lambda M: jnp.linalg.slogdet(M)[1]))
        contenders["jax.grad(slogdet)"] = lambda: np.asarray(f(A).block_until_ready())
    for name, call in contenders.items():
        np.testing.assert_allclose(call(), expected, rtol=1e-8, atol=1e-10, err_msg=name)
        rows.append(("logdet(A)", name, best(call, repeats)))
    # the Gaussian NLL
    inverse = np.linalg.inv(S)
    u = inverse @ x
    gx, gS = u, 0.5 * (inverse - np.outer(u, u))

    def ours():
        g = einderiv.grad(GAUSSIAN, ["x", "S"], {"S": S, "x": x})
        return g["x"], g["S"]
    contenders = {"einderiv": ours, "numpy (closed form)": lambda: _numpy_gaussian(S, x)}
    if jax is not None:
        jnp = jax.numpy
        nll = jax.jit(jax.grad(lambda xx, SS: 0.5 * (xx @ jnp.linalg.solve(SS, xx) + jnp.linalg.slogdet(SS)[1]),
                               argnums=(0, 1)))

        def theirs():
            a, b = nll(x, S)
            return np.asarray(a.block_until_ready()), np.asarray(b)
        contenders["jax.grad(solve + slogdet)"] = theirs
    for name, call in contenders.items():
        got_x, got_S = call()
        np.testing.assert_allclose(got_x, gx, rtol=1e-7, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(got_S, gS, rtol=1e-7, atol=1e-9, err_msg=name)
        rows.append(("Gaussian NLL (x, S)", name, best(call, repeats)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.matfun", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 100 only, few repeats")
    args = parser.parse_args(argv)
    jax = _jax()
    if jax is None:
        print("jax is not installed: comparing einderiv with hand-written numpy only (pip install jax to add it)")
    sizes = (100,) if args.quick else (100, 500)
    repeats = 5 if args.quick else 20
    print("| n | gradient | contender | min time (ms) | vs numpy |")
    print("| --- | --- | --- | --- | --- |")
    for n in sizes:
        rows = _rows(n, jax, repeats)
        reference = {what: t for what, name, t in rows if name.startswith("numpy")}
        for what, name, t in rows:
            print(f"| {n} | {what} | {name} | {t * 1e3:.3f} | {t / reference[what]:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
