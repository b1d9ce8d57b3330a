"""Group ``overhead``: the symbolic and planning cost, and the per-call cost of a cached plan.

1. Cold time of parse + derivative + plan against program length: chains of
   matrix products and layered networks (matmul, bias, ReLU, …, squared loss)
   of 1 to 256 statements, every einderiv cache cleared before each
   measurement. Arrays are tiny (every index of size 3), so the time is the
   symbolic work and the planning, not arithmetic. It should grow about
   linearly with the number of statements.
2. Per-call overhead of a cached plan: einderiv.grad of the two-layer network
   on tiny arrays against the same hand-written numpy code (and jax, torch).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks import gradients
from benchmarks.common import (Contender, Report, Session, cold_times, compare, einderiv_reset, find, fmt_time,
                               md_table, ratio, skipped_rivals, timing_table)

RIVALS = ("jax", "torch", "autograd", "tensorgrad")
TINY = 3


def chain_program(statements: int) -> tuple[str, str]:
    """``A1 = A0 W1; A2 = A1 W2; …; L = Σ A·A``: ``statements`` statements in all; returns (text, first weight)."""
    if statements == 1:
        return "L = A0[i,j] A0[i,j]", "A0"
    lines = [f"A{k}[i,j] = A{k - 1}[i,m] W{k}[m,j]" for k in range(1, statements)]
    lines.append(f"L = A{statements - 1}[i,j] A{statements - 1}[i,j]")
    return "\n".join(lines), "W1"


def network_program(statements: int) -> tuple[str, str]:
    """Layers of (matmul, bias, ReLU) ending in a squared loss: ``statements`` statements in all."""
    if statements == 1:
        return "L = (X[n,c] - T[n,c])^2 / (2 N)", "X"
    lines, current, k = [], "X", 0
    kinds = ("matmul", "bias", "relu")
    while len(lines) < statements - 1:
        kind = kinds[len(lines) % 3]
        k += 1
        name = f"H{k}"
        if kind == "matmul":
            layer = len(lines) // 3 + 1
            lines.append(f"{name}[n,h] = {current}[n,d] W{layer}[d,h]")
        elif kind == "bias":
            layer = len(lines) // 3 + 1
            lines.append(f"{name}[n,h] = {current}[n,h] + b{layer}[h]")
        else:
            lines.append(f"{name}[n,h] = max(0, {current}[n,h])")
        current = name
    lines.append(f"L = ({current}[n,c] - T[n,c])^2 / (2 N)")
    return "\n".join(lines), ("W1" if statements > 1 else "X")


def tiny_inputs(text: str, rng) -> dict[str, np.ndarray]:
    """Arrays of size 3 on every axis for every input of the program (``N`` a scalar)."""
    import einderiv
    program = einderiv.parse(text)
    return {name: (float(TINY) if rank == 0 else rng.standard_normal((TINY,) * rank)) for name, rank in program.inputs}


def _cold_parts(text: str, wrt: str, inputs, repeats: int) -> dict[str, list[float]]:
    """Cold timings (each after clearing every cache): parse, symbolic derivative, plan, and all three together."""
    import einderiv
    out: dict[str, list[float]] = {"parse": [], "symbolic derivative": [], "plan + first run": [], "total": []}
    for _ in range(repeats):
        einderiv_reset()
        t0 = time.perf_counter()
        program = einderiv.parse(text)
        t1 = time.perf_counter()
        program.derivative(wrt)
        t2 = time.perf_counter()
        einderiv.grad(program, wrt, inputs)
        t3 = time.perf_counter()
        out["parse"].append(t1 - t0)
        out["symbolic derivative"].append(t2 - t1)
        out["plan + first run"].append(t3 - t2)
        einderiv_reset()
        t0 = time.perf_counter()
        einderiv.grad(text, wrt, inputs)            # what a first call costs: parse + derive + plan + run
        out["total"].append(time.perf_counter() - t0)
    return out


def _fit(xs, ys) -> tuple[float, float, float]:
    """Least-squares line y = a + b x and its R²."""
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    b, a = np.polyfit(x, y, 1)
    pred = a + b * x
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - pred) ** 2)) / ss if ss > 0 else 1.0
    return a, b, r2


def run(session: Session) -> Report:
    """Run the group and return its report."""
    report = Report("overhead", "Symbolic and planning overhead", __doc__.split("\n\n", 1)[1])
    report.skipped.update(skipped_rivals(RIVALS))
    rng = np.random.default_rng(4)
    lengths = (1, 2, 4, 8, 16, 32, 64) if session.quick else (1, 2, 4, 8, 16, 32, 64, 128, 256)
    curves: dict[str, list[tuple[int, float, float]]] = {}
    tables = []
    for family, make in (("chain", chain_program), ("network", network_program)):
        rows = []
        curves[family] = []
        for s in lengths:
            text, wrt = make(s)
            inputs = tiny_inputs(text, rng)
            repeats = 3 if s >= 128 else (4 if session.quick else 7)
            parts = _cold_parts(text, wrt, inputs, repeats)
            total = parts["total"]
            curves[family].append((s, min(total), statistics.median(total)))
            rows.append([s, *(fmt_time(min(parts[k])) for k in ("parse", "symbolic derivative", "plan + first run")),
                         fmt_time(min(total)), fmt_time(statistics.median(total)),
                         fmt_time(min(total) / s)])
            session.log(f"{family} of {s} statements: cold total {fmt_time(min(total))}")
        a, b, r2 = _fit([c[0] for c in curves[family]], [c[1] for c in curves[family]])
        last, prev = curves[family][-1], curves[family][-2]
        growth = last[1] / prev[1]
        tables.append((family, rows, a, b, r2, growth, last[0], prev[0]))
        report.add(f"Cold parse + derivative + plan: {family}s (gradient w.r.t. the first weight; tiny arrays)",
                   md_table(["statements", "parse (min)", "symbolic derivative (min)", "plan + first run (min)",
                             "cold grad call (min)", "cold grad call (median)", "per statement"], rows)
                   + f"\n\nLeast-squares line: {fmt_time(a)} + {fmt_time(b)} × statements, R² = {r2:.4f}; "
                   f"time({last[0]}) / time({prev[0]}) = {growth:.2f} (2.00 is linear).")
        report.target(f"cold time grows about linearly with program length ({family}s)",
                      f"R² of a line {r2:.3f}; doubling {prev[0]}→{last[0]} statements: ×{growth:.2f}",
                      r2 >= 0.97 and growth <= 2.6)

    # the two-layer network, cold and cached
    sizes = (4, 3, 5, 2)
    inputs = gradients.make_inputs(*sizes, np.float64)
    parts = _cold_parts(gradients.PROGRAM, "W1", inputs, 5 if session.quick else 15)
    import einderiv

    def cold_all() -> None:
        einderiv.grad(gradients.PROGRAM, list(gradients.WRT), inputs)
    cold = cold_times(cold_all, 5 if session.quick else 15)
    report.add("Two-layer network gradient, cold (every cache cleared; N=4, D=3, H=5, C=2)",
               md_table(["what", "min", "median"],
                        [["parse", fmt_time(min(parts["parse"])), fmt_time(statistics.median(parts["parse"]))],
                         ["symbolic derivative d/dW1 (display form)", fmt_time(min(parts["symbolic derivative"])),
                          fmt_time(statistics.median(parts["symbolic derivative"]))],
                         ["plan + first run, grad w.r.t. W1", fmt_time(min(parts["plan + first run"])),
                          fmt_time(statistics.median(parts["plan + first run"]))],
                         ["cold `grad(text, 'W1', …)`", fmt_time(min(parts["total"])),
                          fmt_time(statistics.median(parts["total"]))],
                         ["cold `grad(text, ['W1','b1','W2','b2'], …)`", fmt_time(min(cold)),
                          fmt_time(statistics.median(cold))]]))
    report.target("cold parse + derive + plan of the two-layer gradient ≤ 5 ms",
                  f"{fmt_time(min(cold))} (min; median {fmt_time(statistics.median(cold))}), all four parameters",
                  min(cold) <= 5e-3)
    contenders = [
        Contender("numpy backprop (hand-written)", "limit", lambda: (lambda: gradients.numpy_backprop(**inputs))),
        Contender("einderiv.grad (cached plan)", "einderiv",
                  lambda: (lambda: einderiv.grad(gradients.PROGRAM, list(gradients.WRT), inputs)),
                  reset=einderiv_reset),
        Contender("einderiv.grad (cached plan, parsed Program)", "einderiv",
                  lambda p=einderiv.parse(gradients.PROGRAM): (lambda: einderiv.grad(p, list(gradients.WRT), inputs))),
        Contender("jax.jit(jax.grad)", "rival", lambda: gradients._jax(inputs), to_numpy=gradients._to_numpy),
        Contender("torch autograd", "rival", lambda: gradients._torch(inputs), to_numpy=gradients._to_numpy),
        Contender("autograd.grad", "rival", lambda: gradients._autograd(inputs), to_numpy=gradients._to_numpy),
    ]
    rows = compare(session, "per-call overhead", contenders, rtol=1e-8, budget=0.5 if session.quick else 1.5,
                   min_repeats=5, max_repeats=25)
    report.check_rows("per-call overhead", rows)
    lim, e = find(rows, "limit"), find(rows, "einderiv")
    report.add("Per-call cost of a cached plan (two-layer network gradient, N=4, D=3, H=5, C=2)", timing_table(rows))
    if lim.ok and e.ok:
        over = e.timing.min - lim.timing.min
        report.target("cached per-call overhead ≤ 50 µs",
                      f"{fmt_time(over)} (einderiv {fmt_time(e.timing.min)} − numpy {fmt_time(lim.timing.min)}; "
                      f"{ratio(e, lim):.1f}× numpy)", over <= 50e-6)
    report.plot = lambda plt, path: _plot(plt, path, curves, tables, rows)
    return report


def _plot(plt, path: str, curves, tables, rows) -> None:
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    for (family, points), (_, _, a, b, r2, *_rest) in zip(curves.items(), tables):
        xs = [p[0] for p in points]
        ax.plot(xs, [p[1] * 1e3 for p in points], "o", label=f"{family} (min of repeats)")
        grid = np.linspace(0, max(xs), 50)
        ax.plot(grid, (a + b * grid) * 1e3, "--", linewidth=1, label=f"{family}: line fit, R² = {r2:.3f}")
    ax.set_xlabel("statements in the program")
    ax.set_ylabel("cold parse + derivative + plan (ms)")
    ax.set_title("Cold cost against program length (linear axes)")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    timed = [r for r in rows if r.ok]
    bx.barh(range(len(timed)), [r.timing.min * 1e6 for r in timed],
            color=["k" if r.role == "limit" else ("C3" if r.role == "einderiv" else "C0") for r in timed])
    bx.set_yticks(range(len(timed)))
    bx.set_yticklabels([r.name for r in timed], fontsize=8)
    bx.invert_yaxis()
    bx.set_xscale("log")
    bx.set_xlabel("min time per call (µs, log)")
    bx.set_title("Cached call, tiny arrays (two-layer gradient)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
