"""Group ``matfun``: gradients through matrix functions against their closed forms and ``jax.grad``.

Two gradients, n = 100 and 500 (``--quick``: 100 only), each checked against
its closed form before it is timed:

* ``L = logdet(A)``: ``gA = A⁻ᵀ``;
* the Gaussian negative log-likelihood ``L = ½(xᵀS⁻¹x + logdet S)``:
  ``gx = S⁻¹x``, ``gS = ½(S⁻¹ − S⁻¹xxᵀS⁻¹)``.

Contenders: hand-written numpy (the closed form, one ``inv``: the limit with
numpy's LAPACK calls), einderiv (cached plan) and ``jax.jit(jax.grad(...))`` of
``slogdet`` / ``solve`` in float64. BLAS runs on one thread: on a shared machine,
spinning BLAS threads otherwise make minima jump a hundredfold.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import (Contender, Report, Session, blas_threads, compare, einderiv_reset, rival,
                               skipped_rivals, timing_table)

LOGDET = "L = logdet(A)"
GAUSSIAN = "L = 0.5 x[i] inv(S)[i,j] x[j] + 0.5 logdet(S)"
RIVALS = ("jax",)
RTOL = 1e-7


def problem(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A well-conditioned A (for logdet), a symmetric positive definite S and a vector x, all n-sized."""
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((n, n))
    return {"A": R + n ** 0.5 * np.eye(n), "S": R @ R.T / n + np.eye(n), "x": rng.standard_normal(n)}


def logdet_closed(A: np.ndarray) -> dict[str, np.ndarray]:
    """d logdet(A)/dA = A⁻ᵀ."""
    return {"A": np.linalg.inv(A).T}


def gaussian_closed(S: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """The gradient alone, like the others: one ``inv``, no value, so no ``slogdet``."""
    inverse = np.linalg.inv(S)
    u = inverse @ x
    return {"x": u, "S": 0.5 * (inverse - np.outer(u, u))}


def _jax_logdet(A):
    jax = rival("jax")
    f = jax.jit(jax.grad(lambda M: jax.numpy.linalg.slogdet(M)[1]))
    return lambda: {"A": np.asarray(f(A).block_until_ready())}


def _jax_gaussian(S, x):
    jax = rival("jax")
    jnp = jax.numpy
    f = jax.jit(jax.grad(lambda xx, SS: 0.5 * (xx @ jnp.linalg.solve(SS, xx) + jnp.linalg.slogdet(SS)[1]),
                         argnums=(0, 1)))

    def run():
        gx, gS = f(x, S)
        return {"x": np.asarray(gx.block_until_ready()), "S": np.asarray(gS)}
    return run


def cases(n: int) -> list[tuple[str, str, list[Contender]]]:
    """(label, program, contenders: limit, einderiv, jax) for both gradients at size n."""
    import einderiv
    data = problem(n)
    A, S, x = data["A"], data["S"], data["x"]
    return [
        (f"logdet(A), n = {n}", LOGDET, [
            Contender("numpy (closed form)", "limit", lambda: (lambda: logdet_closed(A))),
            Contender("einderiv.grad", "einderiv", lambda: (lambda: einderiv.grad(LOGDET, ["A"], {"A": A})),
                      reset=einderiv_reset),
            Contender("jax.jit(jax.grad(slogdet))", "rival", lambda: _jax_logdet(A))]),
        (f"Gaussian NLL (x, S), n = {n}", GAUSSIAN, [
            Contender("numpy (closed form)", "limit", lambda: (lambda: gaussian_closed(S, x))),
            Contender("einderiv.grad", "einderiv",
                      lambda: (lambda: einderiv.grad(GAUSSIAN, ["x", "S"], {"S": S, "x": x})), reset=einderiv_reset),
            Contender("jax.jit(jax.grad(solve + slogdet))", "rival", lambda: _jax_gaussian(S, x))]),
    ]


def run(session: Session) -> Report:
    """Run the group and return its report."""
    report = Report("matfun", "Gradients through matrix functions", __doc__.split("\n\n", 1)[1])
    report.skipped.update(skipped_rivals(RIVALS))
    sizes = (100,) if session.quick else (100, 500)
    with blas_threads(1, report):
        for n in sizes:
            for label, program, contenders in cases(n):
                rows = compare(session, label, contenders, rtol=RTOL, budget=0.3 if session.quick else 1.5,
                               min_repeats=3, max_repeats=10 if session.quick else 30)
                report.check_rows(label, rows)
                report.add(f"{label}\n\n```\n{program}\n```", timing_table(rows))
    report.notes.append(f"Agreement: every contender's gradient equals the closed form to {RTOL:.0e} "
                        "(relative to its largest entry), every argument.")
    return report
