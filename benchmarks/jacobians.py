"""Group ``jacobian``: the full Jacobian of ``F[i,k] = W[i,j] X[j,k]`` with respect to W.

``dF[i,k]/dW[a,b] = δ[i,a] X[b,k]``: an (m, p, m, n) array whose only nonzeros
are ``X[b,k]`` on the diagonal ``i = a``. The limit is exactly that: a zeroed
array with ``Xᵀ`` written into its strided diagonal view. A second yardstick,
``np.zeros + fill``, writes every byte of an array of that shape.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import (Contender, Report, Session, compare, einderiv_reset, fastest_rival, find, fmt_time,
                               rival, skipped_rivals, timing_table)

PROGRAM = "F[i,k] = W[i,j] X[j,k]"
RIVALS = ("jax", "torch", "autograd", "tensorgrad")


def diagonal_write(W: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The limit: ``J = 0`` then ``J[i,k,i,b] = X[b,k]`` through one strided view."""
    m, n = W.shape
    p = X.shape[1]
    J = np.zeros((m, p, m, n), dtype=W.dtype)
    s = J.strides
    view = np.lib.stride_tricks.as_strided(J, (m, p, n), (s[0] + s[2], s[1], s[3]), writeable=True)
    view[...] = X.T
    return J


def zeros_and_fill(shape: tuple[int, ...], dtype) -> np.ndarray:
    """Writing every byte of an array of ``shape``: the memory-bandwidth yardstick."""
    J = np.zeros(shape, dtype=dtype)
    J.fill(1.0)
    return J


def _contenders(W: np.ndarray, X: np.ndarray, big: bool) -> list[Contender]:
    import einderiv
    m, n = W.shape
    p = X.shape[1]
    slow_budget = 2.0 if big else None
    return [
        Contender("zeros + diagonal write", "limit", lambda: (lambda: diagonal_write(W, X))),
        Contender("np.zeros + fill (all bytes)", "baseline",
                  lambda: (lambda: zeros_and_fill((m, p, m, n), W.dtype)), check=False),
        Contender("einderiv.jacobian", "einderiv",
                  lambda: (lambda: einderiv.jacobian(PROGRAM, "W", {"W": W, "X": X})), reset=einderiv_reset),
        Contender("jax.jit(jax.jacrev)", "rival", lambda: _jax(W, X, "jacrev"), to_numpy=np.asarray),
        Contender("jax.jit(jax.jacfwd)", "rival", lambda: _jax(W, X, "jacfwd"), to_numpy=np.asarray),
        Contender("torch.func.jacrev", "rival", lambda: _torch(W, X, "jacrev"), to_numpy=lambda t: t.numpy()),
        Contender("torch.func.jacfwd", "rival", lambda: _torch(W, X, "jacfwd"), to_numpy=lambda t: t.numpy()),
        Contender("autograd.jacobian", "rival", lambda: _autograd(W, X), to_numpy=np.asarray, budget=slow_budget,
                  min_repeats=1 if big else None),
    ]


def _jax(W, X, how):
    jax = rival("jax")
    Xj, Wj = jax.device_put(X), jax.device_put(W)
    jac = jax.jit(getattr(jax, how)(lambda w, x: w @ x))

    def run():
        return jac(Wj, Xj).block_until_ready()
    return run


def _torch(W, X, how):
    torch = rival("torch")
    func = getattr(torch.func, how)
    Wt, Xt = torch.from_numpy(W), torch.from_numpy(X)

    def run():
        with torch.no_grad():
            return func(lambda w: w @ Xt)(Wt)
    return run


def _autograd(W, X):
    ag = rival("autograd")
    anp = rival("autograd.numpy")
    jac = ag.jacobian(lambda w: anp.dot(w, X))
    return lambda: jac(W)


def run(session: Session) -> Report:
    """Run the group and return its report."""
    sizes = (8, 32) if session.quick else (8, 32, 64, 96)
    intro = (__doc__.split("\n\n", 1)[1].replace("\n", " ")
             + f"\n\nSizes m = n = p ∈ {{{', '.join(map(str, sizes))}}}, float64. "
             "Agreement: every contender's Jacobian equals the limit's to 1e-8 (relative to the largest entry).")
    report = Report("jacobian", "Full Jacobian of F = W X with respect to W", intro)
    report.skipped.update(skipped_rivals(RIVALS))
    rng = np.random.default_rng(1)
    results = {}
    for size in sizes:
        W = rng.standard_normal((size, size))
        X = rng.standard_normal((size, size))
        nbytes = size ** 4 * 8
        contenders = _contenders(W, X, size >= 64)
        budget, repeats = (0.5 if session.quick else 2.5), (2 if size >= 64 else 3)
        # einderiv, the limit and the baseline round-robin on their own (a rival's threads would slow the
        # call after it); then the rivals, checked against the limit's Jacobian
        rows = compare(session, f"n={size}", contenders[:3], budget=budget, min_repeats=repeats, max_repeats=25)
        rows += compare(session, f"n={size} rivals", contenders[3:], reference=diagonal_write(W, X), budget=budget,
                        min_repeats=repeats, max_repeats=25)
        report.check_rows(f"n={size}", rows)
        results[size] = rows
        report.add(f"m = n = p = {size} (Jacobian {size}×{size}×{size}×{size}, {nbytes / 2**20:.1f} MiB)",
                   timing_table(rows))
        e, fr = find(rows, "einderiv"), fastest_rival(rows)
        report.target_ratio(f"n={size}: einderiv ≤ 1.25× the limit", rows, 1.25)
        if size >= 32 and fr is not None and e.ok:
            speedup = fr.timing.min / e.timing.min
            report.target(f"n={size}: ≥ 5× faster than the fastest rival",
                          f"{speedup:.1f}× (fastest rival: {fr.name}, {fmt_time(fr.timing.min)})", speedup >= 5)
        del W, X
    report.notes.append("np.zeros is lazily zeroed by the kernel (calloc), so page faults are paid when the "
                        "diagonal is written; that is included in every contender alike.")
    report.notes.append("torch is called under no_grad on tensors sharing numpy's memory; jax inputs are put on "
                        "the device once, and every jax call waits for its result (block_until_ready).")
    report.plot = lambda plt, path: _plot(plt, path, results)
    return report


def _plot(plt, path: str, results: dict) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 5))
    sizes = list(results)
    names = [r.name for r in results[sizes[0]]]
    rival_colors = iter(["C0", "C1", "C2", "C4", "C5", "C6", "C7", "C8", "C9"])
    for name in names:
        xs, ys = [], []
        for s in sizes:
            row = next(r for r in results[s] if r.name == name)
            if row.ok:
                xs.append(s)
                ys.append(row.timing.min)
        if xs:
            role = next(r for r in results[sizes[0]] if r.name == name).role
            style = {"limit": "k-", "baseline": "k:", "einderiv": "C3o-"}.get(role, "o--")
            color = None if role in ("limit", "baseline", "einderiv") else next(rival_colors)
            ax.loglog(xs, ys, style, label=name, linewidth=2.5 if role == "einderiv" else 1,
                      **({"color": color} if color else {}))
    ax.set_xlabel("m = n = p")
    ax.set_ylabel("min time per Jacobian (s)")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.tick_params(axis="x", which="minor", labelbottom=False)    # log-scale minor labels overlap the sizes
    ax.set_title("Full Jacobian of F = W X w.r.t. W (lower is better)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
