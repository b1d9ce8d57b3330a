"""Group ``hessian``: full Hessians against their closed forms, jax and torch.

* ``L = x[i] A[i,j] x[j]``: ``H = A + Aᵀ`` (dense; n = 100, 400, 2048);
* ``‖XW − Y‖²_F``: ``H[a,b,c,d] = 2 (XᵀX)[a,c] δ[b,d]`` (structured: one
  strided diagonal of a zeroed (50, 20, 50, 20) array);
* logistic regression ``Σ_n log(1 + exp(−y_n x_nᵀw))`` with y = ±1:
  ``H = Xᵀ diag(σ(m)(1 − σ(m))) X``, m = y ⊙ Xw (dense; n = 2048, d = 256).

Runs only when ``einderiv.numeric.hessian`` exists (its ``hessian(program, wrt,
inputs)``).
"""

from __future__ import annotations

import importlib

import numpy as np

from benchmarks.common import (Contender, Report, Session, Unavailable, compare, einderiv_reset, fastest_rival, find,
                               fmt_time, rival, skipped_rivals, timing_table)

RIVALS = ("jax", "torch", "tensorgrad")

QUADRATIC = "L = x[i] A[i,j] x[j]"
LEAST_SQUARES = "R[n,j] = X[n,i] W[i,j] - Y[n,j]\nL = R[n,j]^2"
LOGISTIC = "z[n] = X[n,i] w[i]\nm[n] = y[n] z[n]\nL = log(1 + exp(-m[n]))"


def _second_order():
    try:
        return importlib.import_module("einderiv.numeric.hessian")
    except ImportError as error:
        raise Unavailable(f"einderiv.numeric.hessian is not there yet ({error})") from None


# ---------------------------------------------------------------- closed forms

def quadratic_closed(A: np.ndarray) -> np.ndarray:
    """d²(xᵀAx)/dx² = A + Aᵀ."""
    return A + A.T


def least_squares_closed(X: np.ndarray, q: int) -> np.ndarray:
    """d²‖XW − Y‖²/dW[a,b]dW[c,d] = 2 (XᵀX)[a,c] δ[b,d], written into one diagonal view."""
    p = X.shape[1]
    H = np.zeros((p, q, p, q))
    s = H.strides
    view = np.lib.stride_tricks.as_strided(H, (p, p, q), (s[0], s[2], s[1] + s[3]), writeable=True)
    view[...] = (2.0 * (X.T @ X))[:, :, None]
    return H


def logistic_closed(X: np.ndarray, w: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Xᵀ diag(σ(m)(1 − σ(m))) X with m = y ⊙ Xw."""
    m = y * (X @ w)
    s = 0.5 * (1.0 + np.tanh(0.5 * m))        # a stable sigmoid
    return (X * (s * (1.0 - s))[:, None]).T @ X


# ---------------------------------------------------------------- rivals

def _jax(fn, args, wrt_index):
    jax = rival("jax")
    h = jax.jit(jax.hessian(fn(jax.numpy), argnums=wrt_index))
    dev = [jax.device_put(a) for a in args]
    return lambda: h(*dev).block_until_ready()


def _torch(fn, args, wrt_index):
    torch = rival("torch")
    h = torch.func.hessian(fn(torch), argnums=wrt_index)
    ts = [torch.from_numpy(np.ascontiguousarray(a)) for a in args]
    return lambda: h(*ts)


def _quad(lib):
    return lambda x, A: x @ A @ x


def _lsq(lib):
    return lambda W, X, Y: lib.sum((X @ W - Y) ** 2)


def _logistic(lib):
    if lib.__name__ == "torch":
        return lambda w, X, y: lib.sum(lib.nn.functional.softplus(-(y * (X @ w))))
    return lambda w, X, y: lib.sum(lib.logaddexp(0.0, -(y * (X @ w))))


def _to_numpy(value) -> np.ndarray:
    return value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)


def _einderiv_maker(program, wrt, inputs):
    def make():
        so = _second_order()
        return lambda: so.hessian(program, wrt, inputs)
    return make


def cases(rng, quick: bool):
    """(label, structured?, contenders) for every problem."""
    out = []
    for n in ((100, 400) if quick else (100, 400, 2048)):
        A, x = rng.standard_normal((n, n)), rng.standard_normal(n)
        out.append((f"xᵀAx, n = {n}", False, QUADRATIC, "x", {"x": x, "A": A},
                    lambda A=A: quadratic_closed(A), _quad, (x, A), 0))
    X, W, Y = rng.standard_normal((200, 50)), rng.standard_normal((50, 20)), rng.standard_normal((200, 20))
    out.append(("‖XW − Y‖²_F, X 200×50, W 50×20", True, LEAST_SQUARES, "W", {"X": X, "W": W, "Y": Y},
                lambda X=X: least_squares_closed(X, 20), _lsq, (W, X, Y), 0))
    n, d = (512, 128) if quick else (2048, 256)
    X = rng.standard_normal((n, d)) / np.sqrt(d)
    w = rng.standard_normal(d)
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    out.append((f"logistic regression, (n, d) = ({n}, {d})", False, LOGISTIC, "w", {"X": X, "w": w, "y": y},
                lambda X=X, w=w, y=y: logistic_closed(X, w, y), _logistic, (w, X, y), 0))
    return out


def run(session: Session) -> Report:
    """Run the group and return its report."""
    report = Report("hessian", "Full Hessians", __doc__.split("\n\n", 1)[1].rsplit("\n\nRuns only", 1)[0])
    report.skipped.update(skipped_rivals(RIVALS))
    try:
        _second_order()
    except Unavailable as why:
        report.skipped["einderiv"] = str(why)
        report.add("Skipped", f"The whole group is skipped: {why}.")
        return report
    rng = np.random.default_rng(3)
    results = []
    for label, structured, program, wrt, inputs, closed, fn, args, k in cases(rng, session.quick):
        contenders = [
            Contender("closed form", "limit", lambda closed=closed: closed),
            Contender("einderiv.numeric.hessian.hessian", "einderiv", _einderiv_maker(program, wrt, inputs),
                      reset=einderiv_reset),
            Contender("jax.jit(jax.hessian)", "rival", lambda fn=fn, args=args, k=k: _jax(fn, args, k),
                      to_numpy=_to_numpy),
            Contender("torch.func.hessian", "rival", lambda fn=fn, args=args, k=k: _torch(fn, args, k),
                      to_numpy=_to_numpy, min_repeats=1),
        ]
        budget = 0.5 if session.quick else 2.0
        # einderiv and its limit round-robin on their own (a rival's threads would slow the call after it)
        rows = compare(session, label, contenders[:2], rtol=1e-8, budget=budget, min_repeats=3, max_repeats=25)
        rows += compare(session, label + " rivals", contenders[2:], reference=closed(), rtol=1e-8, budget=budget,
                        min_repeats=3, max_repeats=25)
        report.check_rows(label, rows)
        results.append((label, rows))
        report.add(f"{label}{' (structured)' if structured else ''}\n\n```\n{program}\n```", timing_table(rows))
        e = find(rows, "einderiv")
        report.target_ratio(f"{label}: ≤ 1.5× the closed form", rows, 1.5)
        jx = find(rows, "rival")
        if structured and jx is not None and jx.ok and e.ok:
            speedup = jx.timing.min / e.timing.min
            report.target(f"{label}: ≥ 10× faster than jax.hessian (structured)", f"{speedup:.1f}×", speedup >= 10)
        fr = fastest_rival(rows)
        if fr is not None and e.ok:
            report.notes.append(f"{label}: fastest rival {fr.name} at {fmt_time(fr.timing.min)}, "
                                f"{fr.timing.min / e.timing.min:.1f}× einderiv's time.")
    report.plot = lambda plt, path: _plot(plt, path, results)
    return report


def _plot(plt, path: str, results) -> None:
    fig, ax = plt.subplots(figsize=(9, 4.8))
    names = [r.name for r in results[0][1]]
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        xs, ys = [], []
        for i, (_, rows) in enumerate(results):
            r = next(r for r in rows if r.name == name)
            if r.ok:
                xs.append(i + (k - (len(names) - 1) / 2) * width)
                ys.append(r.timing.min)
        ax.bar(xs, ys, width, label=name, color=plt.get_cmap("tab20")(k % 20))    # one colour per contender
    ax.set_yscale("log")
    ax.set_xticks(range(len(results)))
    ax.set_xticklabels([label.replace(", ", "\n", 1) for label, _ in results], fontsize=8)
    ax.set_ylabel("min time per Hessian (s, log)")
    ax.set_title("Full Hessians (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
