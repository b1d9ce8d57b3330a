"""Group ``growth``: costs that must stay polynomial, in CPU time.

* the symbolic derivative by nesting depth: ``str(parse("y[i] = f(f(…f(x[i])…))").derivative("x"))``
  for ``tanh``, ``sigmoid`` and ``exp(−·)``, depth 5 to 40 (``--quick``: to 20);
* parsing by program length: a chain ``h_k[i] = tanh(h_{k−1}[i])`` of 1,000 to
  16,000 statements (``--quick``: to 4,000).

Each figure is one call after every einderiv cache is cleared, timed with
``time.process_time`` (CPU time, so that other load on a shared machine does not
inflate it). The last row of each table is the time at the largest size over the
time at the one before: ×2 is linear growth.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from benchmarks.common import Report, Session, einderiv_reset, md_table

FUNCTIONS = ("tanh", "sigmoid", "exp")


def cpu_time(call: Callable[[], Any]) -> float:
    """CPU seconds of one ``call()`` after every einderiv cache is cleared."""
    einderiv_reset()
    start = time.process_time()
    call()
    return time.process_time() - start


def nested(fn: str, depth: int) -> str:
    """``y[i] = fn(fn(…fn(x[i])…))``; ``exp`` alternates signs so values stay finite."""
    inner = "x[i]"
    for _ in range(depth):
        inner = f"{fn}(-{inner})" if fn == "exp" else f"{fn}({inner})"
    return f"y[i] = {inner}"


def chain(statements: int) -> str:
    """``h0[i] = x[i]`` then ``h_k[i] = tanh(h_{k−1}[i])``: ``statements`` statements in all."""
    return "h0[i] = x[i]\n" + "\n".join(f"h{k}[i] = tanh(h{k - 1}[i])" for k in range(1, statements))


def _seconds(t: float) -> str:
    return f"{t:.3f} s"


def _growth(times: list[float]) -> str:
    """The time of the largest size over the one before it."""
    return f"×{times[-1] / times[-2]:.2f}" if len(times) > 1 and times[-2] > 0 else "–"


def run(session: Session) -> Report:
    """Run the group and return its report."""
    import einderiv
    report = Report("growth", "Growth of the symbolic cost (CPU time)", __doc__.split("\n\n", 1)[1])
    depths = (5, 10, 20) if session.quick else (5, 10, 20, 40)
    by_function: dict[str, list[float]] = {fn: [] for fn in FUNCTIONS}
    for depth in depths:
        for fn in FUNCTIONS:
            text = nested(fn, depth)
            by_function[fn].append(cpu_time(lambda: str(einderiv.parse(text).derivative("x"))))
        session.log(f"depth {depth}: " + ", ".join(f"{fn} {_seconds(by_function[fn][-1])}" for fn in FUNCTIONS))
    rows = [[d, *(_seconds(by_function[fn][k]) for fn in FUNCTIONS)] for k, d in enumerate(depths)]
    rows.append([f"{depths[-1]} ÷ {depths[-2]}", *(_growth(by_function[fn]) for fn in FUNCTIONS)])
    report.add("Symbolic derivative by nesting depth", md_table(["depth", "tanh", "sigmoid", "exp(−·)"], rows))
    lengths = (1000, 2000, 4000) if session.quick else (1000, 2000, 4000, 8000, 16000)
    parse_times = []
    for n in lengths:
        text = chain(n)
        parse_times.append(cpu_time(lambda: einderiv.parse(text)))
        session.log(f"{n} statements: parse {_seconds(parse_times[-1])}")
    rows = [[n, _seconds(t)] for n, t in zip(lengths, parse_times)]
    rows.append([f"{lengths[-1]} ÷ {lengths[-2]}", _growth(parse_times)])
    report.add("Parsing by number of statements", md_table(["statements", "parse"], rows))
    report.plot = lambda plt, path: _plot(plt, path, depths, by_function, lengths, parse_times)
    return report


def _plot(plt, path: str, depths, by_function, lengths, parse_times) -> None:
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for fn, times in by_function.items():
        ax.loglog(depths, times, "o-", label=fn)
    ax.set_xlabel("nesting depth")
    ax.set_ylabel("CPU seconds (log)")
    ax.set_title("Symbolic derivative")
    ax.legend(fontsize=8)
    bx.loglog(lengths, parse_times, "o-")
    bx.set_xlabel("statements")
    bx.set_title("Parse")
    for axis in (ax, bx):
        axis.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
