"""Group ``backends``: einderiv on torch, jax and dask arrays (numeric/backend.py).

1. The two-layer network gradient (the ``grad`` group's program) with torch tensors and jax
   arrays through einderiv, against each framework's own autodiff on the same arrays (torch
   autograd; ``jax.jit(jax.grad)``), and einderiv inside ``jax.jit``. float64, BLAS as configured.
2. Dask scaling: on a ``dask.distributed.LocalCluster`` of 1 and then 2 worker processes (one
   thread each), the gradient of a least-squares loss over a tall chunked matrix, and a Jacobian
   larger than the memory limit (its chunks reduced on the workers, never gathered); wall time
   and the peak resident memory of each worker.
"""

from __future__ import annotations

import resource
import time

import numpy as np

from benchmarks.common import (TWO_LAYER, Contender, Report, Session, compare, einderiv_reset, fmt_time, md_table,
                               rival, skipped_rivals, timing_table)
from benchmarks.gradients import WRT, make_inputs, numpy_backprop

RIVALS = ("torch", "jax", "dask", "distributed")

LEAST_SQUARES = "r[n] = sum[d](A[n,d] w[d]) - y[n]; L = r[n] r[n] / 2"
DIAGONAL = "z[i] = tanh(x[i])"


def _to_numpy(grads) -> dict[str, np.ndarray]:
    return {k: (v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in grads.items()}


def _torch_contenders(inputs: dict) -> list[Contender]:
    import einderiv

    def tensors():
        torch = rival("torch")
        return torch, {k: torch.from_numpy(np.array(v)) for k, v in inputs.items()}

    def einderiv_torch():
        _, t = tensors()
        return lambda: einderiv.grad(TWO_LAYER, list(WRT), t)

    def autograd_torch():
        torch, t = tensors()
        params = [t[k].clone().requires_grad_(True) for k in WRT]
        X, T, N = t["X"], t["T"], float(inputs["N"])

        def run():
            W1, b1, W2, b2 = params
            Z = torch.relu(X @ W1 + b1) @ W2 + b2
            L = ((Z - T) ** 2).sum() / (2 * N)
            return dict(zip(WRT, torch.autograd.grad(L, params)))
        return run

    return [Contender("einderiv.grad, torch tensors", "einderiv", einderiv_torch, reset=einderiv_reset,
                      to_numpy=_to_numpy),
            Contender("torch autograd", "rival", autograd_torch, to_numpy=_to_numpy)]


def _jax_contenders(inputs: dict) -> list[Contender]:
    import einderiv

    def arrays():
        jax = rival("jax")
        return jax, {k: jax.device_put(v) for k, v in inputs.items()}

    def einderiv_jax():
        jax, a = arrays()

        def run():
            g = einderiv.grad(TWO_LAYER, list(WRT), a)
            jax.block_until_ready(g)
            return g
        return run

    def einderiv_jit():
        jax, a = arrays()
        grad = jax.jit(lambda a: einderiv.grad(TWO_LAYER, list(WRT), a))

        def run():
            g = grad(a)
            jax.block_until_ready(g)
            return g
        return run

    def jax_grad():
        jax, a = arrays()
        jnp = jax.numpy

        def loss(params, X, T, N):
            Z = jnp.maximum(0, X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
            return jnp.sum((Z - T) ** 2) / (2 * N)
        grad = jax.jit(jax.grad(loss))
        params = {k: a[k] for k in WRT}

        def run():
            g = grad(params, a["X"], a["T"], a["N"])
            jax.block_until_ready(g)
            return g
        return run

    return [Contender("einderiv.grad, jax arrays (eager)", "einderiv", einderiv_jax, reset=einderiv_reset,
                      to_numpy=_to_numpy),
            Contender("jax.jit(einderiv.grad), jax arrays", "einderiv", einderiv_jit, to_numpy=_to_numpy),
            Contender("jax.jit(jax.grad)", "rival", jax_grad, to_numpy=_to_numpy)]


def _frameworks(session: Session, report: Report) -> None:
    import einderiv
    sizes = (1024, 256, 512, 10) if session.quick else (4096, 512, 1024, 10)
    inputs = make_inputs(*sizes, np.float64)
    reference = numpy_backprop(**inputs)
    budget = 1.0 if session.quick else 3.0
    limit = [Contender("numpy backprop (hand-written)", "limit", lambda: lambda: numpy_backprop(**inputs)),
             Contender("einderiv.grad, numpy arrays", "baseline", lambda: lambda: einderiv.grad(TWO_LAYER, list(WRT), inputs),
                       reset=einderiv_reset)]
    for title, contenders in (("torch", _torch_contenders(inputs)), ("jax", _jax_contenders(inputs))):
        rows = compare(session, f"mlp {title}", limit + contenders, reference=reference, rtol=1e-8,
                       budget=budget, min_repeats=3, max_repeats=8 if session.quick else 30)
        report.check_rows(f"mlp {title}", rows)
        report.add(f"Two-layer network gradient, {title} arrays (N={sizes[0]}, D={sizes[1]}, H={sizes[2]}, "
                   f"C={sizes[3]}, float64)", timing_table(rows))


# ---------------------------------------------------------------- dask scaling

def _peak_rss_mib() -> float:
    """This process's peak resident memory since :func:`_reset_peak` (Linux's VmHWM), in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Start a new peak-RSS window (Linux: writing 5 to /proc/self/clear_refs resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        pass


def _dask_case(client, build) -> tuple[float, list[float], float]:
    """(wall seconds of one compute, each worker's peak RSS in MiB, the result) for a fresh graph."""
    value = build()
    client.run(_reset_peak)
    start = time.perf_counter()
    result = client.compute(value).result()
    wall = time.perf_counter() - start
    peaks = sorted(client.run(_peak_rss_mib).values())
    return wall, peaks, result


def _dask_scaling(session: Session, report: Report) -> None:
    import einderiv
    da = rival("dask.array")
    distributed = rival("distributed")
    rows_n, cols = (200_000, 100) if session.quick else (1_000_000, 200)
    chunk_rows = rows_n // 8
    n_diag = 12_000 if session.quick else 40_000
    limit = 16 * 2 ** 20 if session.quick else 64 * 2 ** 20
    # the data are drawn on the workers (a graph of seeds, not of arrays); numpy gets the same numbers
    rng = da.random.RandomState(0)
    A = rng.standard_normal((rows_n, cols), chunks=(chunk_rows, cols))
    y = rng.standard_normal(rows_n, chunks=chunk_rows)
    w = rng.standard_normal(cols, chunks=cols)
    x = rng.standard_normal(n_diag, chunks=n_diag // 4)
    A_np, y_np, w_np, x_np = (v.compute() for v in (A, y, w, x))
    want_grad = einderiv.grad(LEAST_SQUARES, "w", {"A": A_np, "w": w_np, "y": y_np})
    want_sum = 1 - np.tanh(x_np) ** 2                   # the Jacobian's column sums: its diagonal
    del A_np

    def gradient():
        return einderiv.grad(LEAST_SQUARES, "w", {"A": A, "w": w, "y": y})

    def jacobian_sums():
        return einderiv.jacobian(DIAGONAL, "x", {"x": x}, memory_limit=limit).sum(axis=0)

    table = []
    for workers in (1, 2):
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None, silence_logs=40) as cluster, \
                distributed.Client(cluster) as client:
            client.run(lambda: __import__("einderiv.numeric.backend"))       # imports outside the timing
            for label, build, want, size in (
                    (f"grad, A {rows_n:,}×{cols} in 8 chunks", gradient, want_grad, rows_n * cols * 8),
                    (f"Jacobian {n_diag:,}² (column sums), chunks ≤ {limit // 2 ** 20} MiB", jacobian_sums, want_sum,
                     n_diag * n_diag * 8)):
                _dask_case(client, build)                                        # warm: imports, first tasks
                wall, peaks, got = _dask_case(client, build)
                error = float(np.max(np.abs(np.asarray(got) - want)) / max(np.max(np.abs(want)), 1e-300))
                if not error <= 1e-8:
                    report.failures.append(f"dask {label}: relative error {error:.2e}")
                session.log(f"dask {workers} worker(s): {label}: {fmt_time(wall)}, peaks {peaks}")
                table.append([label, f"{size / 2 ** 20:,.0f} MiB", workers, fmt_time(wall),
                              ", ".join(f"{p:,.0f}" for p in peaks), f"{error:.1e}"])
    report.add("Dask on a LocalCluster: 1 and 2 worker processes (one thread each)",
               md_table(["computation", "array size", "workers", "wall time", "peak RSS per worker (MiB)",
                         "rel. error vs numpy"], table))
    report.notes.append("Peak RSS is each worker process's high-water mark (VmHWM) during the timed compute, reset "
                        "just before it; it includes the worker's own baseline (imports, about 100–200 MiB). The "
                        "data are drawn on the workers; the Jacobian is never gathered: its chunks are written "
                        "and summed on the workers.")


def run(session: Session) -> Report:
    """Run the group and return its report."""
    intro = __doc__.split("\n", 2)[2].strip()
    report = Report("backends", "einderiv on torch, jax and dask arrays", intro)
    report.skipped.update(skipped_rivals(RIVALS))
    for part in (_frameworks, _dask_scaling):
        try:
            part(session, report)
        except Exception as error:        # a missing library: say so in the report
            name = type(error).__name__
            if name == "Unavailable":
                report.notes.append(f"{part.__name__[1:]}: skipped ({error})")
            else:
                raise
    return report
