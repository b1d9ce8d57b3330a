"""Group ``grad``: the gradient of the two-layer network's loss.

    H0[n,h] = X[n,d] W1[d,h];  H1 = H0 + b1;  H2 = max(0, H1)
    H3[n,c] = H2[n,h] W2[h,c]; Z = H3 + b2;   L = (Z − T)² / (2N)

with respect to W1, b1, W2, b2 at N=4096, D=512, H=1024, C=10, in float64 and
float32. The limit is hand-written numpy backpropagation: the same four GEMMs,
one ReLU mask, two column sums.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from benchmarks.common import (TWO_LAYER, Contender, Report, Session, compare, einderiv_reset, fastest_rival,
                               find, fmt_time, rival, skipped_rivals, timing_table)

PROGRAM = TWO_LAYER

WRT = ("W1", "b1", "W2", "b2")
RIVALS = ("jax", "torch", "autograd", "tensorgrad")


def make_inputs(n: int, d: int, h: int, c: int, dtype, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the two-layer network (weights scaled so activations stay O(1))."""
    rng = np.random.default_rng(seed)
    return {"X": rng.standard_normal((n, d)).astype(dtype),
            "W1": (rng.standard_normal((d, h)) / np.sqrt(d)).astype(dtype),
            "b1": (0.1 * rng.standard_normal(h)).astype(dtype),
            "W2": (rng.standard_normal((h, c)) / np.sqrt(h)).astype(dtype),
            "b2": (0.1 * rng.standard_normal(c)).astype(dtype),
            "T": rng.standard_normal((n, c)).astype(dtype),
            "N": np.asarray(n, dtype=dtype)}


def numpy_backprop(X, W1, b1, W2, b2, T, N):
    """The hand-written gradient: two forward GEMMs, two backward GEMMs (+ one small one)."""
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


def _contenders(inputs: dict[str, np.ndarray]) -> list[Contender]:
    import einderiv

    def numpy_make():
        return lambda: numpy_backprop(**inputs)

    def einderiv_make():
        return lambda: einderiv.grad(PROGRAM, list(WRT), inputs)

    return [Contender("numpy backprop (hand-written)", "limit", numpy_make),
            Contender("einderiv.grad (cached plan)", "einderiv", einderiv_make, reset=einderiv_reset),
            Contender("jax.jit(jax.grad)", "rival", lambda: _jax(inputs), to_numpy=_to_numpy),
            Contender("torch autograd", "rival", lambda: _torch(inputs), to_numpy=_to_numpy),
            Contender("autograd.grad", "rival", lambda: _autograd(inputs), to_numpy=_to_numpy)]


def _to_numpy(grads) -> dict[str, np.ndarray]:
    out = {}
    for k, v in grads.items():
        out[k] = v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)
    return out


def _jax(inputs):
    jax = rival("jax")
    jnp = jax.numpy

    def loss(params, X, T, N):
        H1 = X @ params["W1"] + params["b1"]
        H2 = jnp.maximum(0, H1)
        Z = H2 @ params["W2"] + params["b2"]
        return jnp.sum((Z - T) ** 2) / (2 * N)

    grad = jax.jit(jax.grad(loss))
    params = {k: jax.device_put(inputs[k]) for k in WRT}
    X, T, N = (jax.device_put(inputs[k]) for k in ("X", "T", "N"))

    def run():
        g = grad(params, X, T, N)
        jax.block_until_ready(g)
        return g
    return run


def _torch(inputs):
    torch = rival("torch")
    params = [torch.from_numpy(inputs[k]).requires_grad_(True) for k in WRT]
    X, T = torch.from_numpy(inputs["X"]), torch.from_numpy(inputs["T"])
    N = float(inputs["N"])

    def run():
        W1, b1, W2, b2 = params
        H2 = torch.relu(X @ W1 + b1)
        Z = H2 @ W2 + b2
        L = ((Z - T) ** 2).sum() / (2 * N)
        return dict(zip(WRT, torch.autograd.grad(L, params)))
    return run


def _autograd(inputs):
    ag = rival("autograd")
    anp = rival("autograd.numpy")

    def loss(W1, b1, W2, b2, X, T, N):
        H2 = anp.maximum(0, anp.dot(X, W1) + b1)
        Z = anp.dot(H2, W2) + b2
        return anp.sum((Z - T) ** 2) / (2 * N)

    grad = ag.grad(loss, argnum=[0, 1, 2, 3])
    args = [inputs[k] for k in (*WRT, "X", "T", "N")]
    return lambda: dict(zip(WRT, grad(*args)))


RATIO_TARGET = 1.02      # cached gradient ÷ hand-written numpy
MEMORY_TARGET = 1.1      # peak bytes allocated during one cached gradient ÷ numpy's


def peak_bytes(call: Callable[[], Any]) -> int:
    """The peak of memory allocated during one ``call()`` (after a first, untraced call), by tracemalloc,
    which numpy reports its array allocations to."""
    import tracemalloc
    call()
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(session: Session) -> Report:
    """Run the group and return its report."""
    sizes = (1024, 256, 512, 10) if session.quick else (4096, 512, 1024, 10)
    intro = ("The gradient of the two-layer network's loss with respect to W1, b1, W2 and b2, in float64 and "
             "float32. The limit is hand-written numpy backpropagation (the same four big GEMMs, one ReLU mask, "
             "two column sums).\n\n```\n" + PROGRAM + "```\n\n"
             f"Sizes: N={sizes[0]}, D={sizes[1]}, H={sizes[2]}, C={sizes[3]}.")
    report = Report("grad", "Gradient of the two-layer network loss", intro)
    report.skipped.update(skipped_rivals(RIVALS))
    budget = 1.0 if session.quick else 4.0      # rivals; einderiv and the limit get twice as long
    results = {}
    for dtype, rtol in ((np.float64, 1e-8), (np.float32, 2e-4)):
        name = np.dtype(dtype).name
        inputs = make_inputs(*sizes, dtype)
        contenders = _contenders(inputs)
        # einderiv and its limit round-robin on their own: a rival's threads and caches would slow whichever
        # call follows it; the rivals then round-robin among themselves, checked against numpy's gradient
        rows = compare(session, f"grad {name}", contenders[:2], rtol=rtol, budget=2 * budget,
                       min_repeats=3, max_repeats=8 if session.quick else 30)
        rows += compare(session, f"grad {name} rivals", contenders[2:], reference=numpy_backprop(**inputs),
                        rtol=rtol, budget=budget, min_repeats=3, max_repeats=8 if session.quick else 30)
        report.check_rows(f"grad {name}", rows)
        results[name] = rows
        report.add(f"{name} (agreement to {rtol:.0e} relative to the numpy gradient)", timing_table(rows))
        e, fr = find(rows, "einderiv"), fastest_rival(rows)
        report.target_ratio(f"{name}: cached gradient ≤ {RATIO_TARGET}× numpy", rows, RATIO_TARGET)
        if dtype is np.float64:
            ours, theirs = peak_bytes(contenders[1].make()), peak_bytes(contenders[0].make())
            report.target(f"{name}: peak memory ≤ {MEMORY_TARGET}× numpy's (tracemalloc)",
                          f"{ours / 2**20:.1f} MiB vs {theirs / 2**20:.1f} MiB ({ours / theirs:.2f}×)",
                          ours <= MEMORY_TARGET * theirs)
        if fr is not None and e.ok:
            report.target(f"{name}: faster than every rival",
                          f"einderiv {fmt_time(e.timing.min)}, fastest rival {fr.name} {fmt_time(fr.timing.min)} "
                          f"({fr.timing.min / e.timing.min:.2f}× einderiv's time)", e.timing.min < fr.timing.min)
    report.notes.append("Every contender gets its inputs converted once, outside the timing (torch.from_numpy "
                        "shares memory; jax.device_put copies once); results are converted back only for the check.")
    report.notes.append("The numpy limit updates in place (`+=`, `*=`) where it can; it is what a careful person "
                        "writes by hand.")
    report.plot = lambda plt, path: _plot(plt, path, results)
    return report


def _plot(plt, path: str, results: dict) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = [r.name for r in next(iter(results.values()))]
    width = 0.38
    for k, (dtype, rows) in enumerate(results.items()):
        values = [r.timing.min * 1e3 if r.ok else 0.0 for r in rows]
        xs = [i + (k - 0.5) * width for i in range(len(rows))]
        bars = ax.bar(xs, values, width, label=dtype)
        for x, r, v in zip(xs, rows, values):
            ax.text(x, v, fmt_time(r.timing.min) if r.ok else "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
        del bars
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([n.replace(" (", "\n(") for n in names], fontsize=8)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.25)
    ax.set_ylabel("min time per gradient (ms)")
    ax.set_title("Two-layer network gradient (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
