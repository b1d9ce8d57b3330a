"""Shared machinery: timing, agreement checks, machine description, Markdown reports.

Timing protocol (every group): each contender is built, then called once —
that first call is its *cold* time (for einderiv every cache is cleared first;
for jax it includes tracing and compilation) and its result is checked against
the reference. Only contenders that agree are timed: one warm-up call, then
repeats taken round-robin across the contenders of a row (so a load change on
this shared machine hits all of them alike), each repeat running ``number``
calls (more than one only for calls under a millisecond). Reported: the cold
time, the minimum and the median per call; ratios use the minimum.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

#: The two-layer network of the README and the benchmarks (ReLU, biases, squared error over N rows).
TWO_LAYER = """\
H0[n,h] = X[n,d] W1[d,h]
H1[n,h] = H0[n,h] + b1[h]
H2[n,h] = max(0, H1[n,h])
H3[n,c] = H2[n,h] W2[h,c]
Z[n,c] = H3[n,c] + b2[c]
L = (Z[n,c] - T[n,c])^2 / (2 N)
"""


def wall_times(fn: Callable[[], Any], repeats: int, before: Callable[[], None] | None = None) -> list[float]:
    """Wall time of each of ``repeats`` calls of ``fn()``, in seconds; ``before()`` runs untimed before each."""
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def best(fn: Callable[[], Any], repeats: int = 20) -> float:
    """Minimum wall time of ``fn()`` over ``repeats`` calls, in seconds."""
    return min(wall_times(fn, repeats))


def cold_times(fn: Callable[[], Any], starts: int = 5) -> list[float]:
    """Wall time of the first call of ``fn()`` after every einderiv cache is cleared, ``starts`` times."""
    return wall_times(fn, starts, before=einderiv_reset)


def cold(fn: Callable[[], Any], starts: int = 5) -> float:
    """Minimum over ``starts`` of the first call after every einderiv cache is cleared."""
    return min(cold_times(fn, starts))


RESULTS_NOTE = ("Times are per call: cold = the first call (einderiv with every cache cleared; jax including "
                "tracing and compilation), then min and median of the warm repeats. Ratios use the minimum, "
                "which is the figure least disturbed by other load on this machine.")


class Unavailable(Exception):
    """A contender that cannot run here (library missing, size too large, …); the message says why."""


# ---------------------------------------------------------------- session and progress

@dataclass
class Session:
    """One run of the benchmarks: options, progress log, skipped rivals."""

    quick: bool = False
    out_dir: str = "benchmarks/results"
    plots: bool = True
    removed_env: str = ""
    group: str = ""
    started: float = field(default_factory=time.perf_counter)

    def log(self, message: str) -> None:
        """A progress line on stderr: elapsed seconds, group, message."""
        elapsed = time.perf_counter() - self.started
        prefix = f"[{elapsed:7.1f}s]" + (f" {self.group}:" if self.group else "")
        print(f"{prefix} {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- threads

NO_THREADPOOLCTL = ("threadpoolctl is not installed: BLAS ran with its default thread count "
                    "(`pip install threadpoolctl`).")


@contextlib.contextmanager
def blas_threads(n: int, report: Report | None = None) -> Iterator[bool]:
    """BLAS/OpenMP limited to ``n`` threads (threadpoolctl), torch's intra-op pool too.

    Yields False (and limits nothing but torch) when threadpoolctl is not installed,
    and then adds a note saying so to ``report``, if one is given.

    On a small shared machine, idle BLAS threads spinning against other load can make the minimum of a
    small GEMM jump a hundredfold; groups that compare single calls run under ``blas_threads(1)``.
    """
    torch_threads = None
    torch = None
    try:
        import torch as torch_module   # only if installed; it is a rival, never required
        torch = torch_module
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(n)
    except Exception:
        torch = None
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            if report is not None and NO_THREADPOOLCTL not in report.notes:
                report.notes.append(NO_THREADPOOLCTL)
            yield False
            return
        with threadpool_limits(limits=n):
            yield True
    finally:
        if torch is not None and torch_threads is not None:
            torch.set_num_threads(torch_threads)


# ---------------------------------------------------------------- rivals

_RIVAL_INSTALL = {
    "jax": "pip install jax jaxlib",
    "torch": "pip install torch==2.13.0",
    "autograd": "pip install autograd",
    "sympy": "pip install sympy",
    "cotengra": "pip install cotengra",
    "einsum_benchmark": "pip install einsum-benchmark",
    "matplotlib": "pip install matplotlib (or the `bench` extra)",
}

TENSORGRAD_REASON = ("not benchmarked: tensorgrad is AGPL-3.0 licensed; this MIT project neither "
                     "installs nor runs AGPL code")


def rival(name: str):
    """Import an optional rival by module name, or raise :class:`Unavailable` saying how to install it.

    jax is configured for the CPU with 64-bit floats enabled.
    """
    if name == "tensorgrad":
        raise Unavailable(TENSORGRAD_REASON)
    if name == "jax":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        module = importlib.import_module(name)
    except Exception as error:  # ImportError, or a broken install
        how = _RIVAL_INSTALL.get(name, "pip install " + name)
        raise Unavailable(f"not installed ({type(error).__name__}: {error}); `{how}`") from None
    if name == "jax":
        module.config.update("jax_enable_x64", True)
    return module


def rival_reason(name: str) -> str | None:
    """None if ``rival(name)`` works, else the reason it does not."""
    try:
        rival(name)
        return None
    except Unavailable as error:
        return str(error)


# ---------------------------------------------------------------- numbers

def rel_error(value: Any, reference: Any) -> float:
    """max |value − reference| / max |reference| (over every array of a mapping; shapes must match)."""
    if isinstance(reference, Mapping):
        if not isinstance(value, Mapping) or set(value) != set(reference):
            return math.inf
        return max((rel_error(value[k], reference[k]) for k in reference), default=0.0)
    a = np.asarray(value, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    if b.size == 0:
        return 0.0
    scale = float(np.max(np.abs(b)))
    diff = float(np.max(np.abs(a - b)))
    if not math.isfinite(diff):
        return math.inf
    return diff / scale if scale > 0 else diff


@dataclass
class Timing:
    """Cold time, then min and median per call of the warm repeats (seconds)."""

    cold: float | None
    min: float
    median: float
    repeats: int
    number: int


@dataclass
class Contender:
    """A competitor in one comparison.

    ``make`` builds the zero-argument callable that is timed (it may raise
    :class:`Unavailable`); ``reset`` runs before the cold call; ``to_numpy``
    turns the callable's result into arrays for the agreement check.
    """

    name: str
    role: str                                   # "limit", "einderiv", "rival" or "baseline"
    make: Callable[[], Callable[[], Any]]
    reset: Callable[[], None] | None = None
    to_numpy: Callable[[Any], Any] = staticmethod(lambda x: x)
    budget: float | None = None                 # seconds of warm timing (default: the comparison's)
    check: bool = True                          # False: a yardstick computing other numbers (not checked)
    min_repeats: int | None = None              # default: the comparison's


@dataclass
class Row:
    """The outcome for one contender: timing, agreement, or why it was skipped."""

    name: str
    role: str
    timing: Timing | None = None
    error: float | None = None
    status: str = "ok"                          # "ok", "skipped: …", "MISMATCH …", "FAILED: …"

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.timing is not None


def _number_for(seconds: float, target: float = 2e-3, cap: int = 20000) -> int:
    if seconds >= target:
        return 1
    return int(min(cap, max(1, math.ceil(target / max(seconds, 1e-9)))))


def compare(session: Session, label: str, contenders: Sequence[Contender], *, reference: Any = None,
            references: Sequence[Any] | None = None,
            rtol: float = 1e-8, budget: float = 2.0, min_repeats: int = 3, max_repeats: int = 30) -> list[Row]:
    """Check agreement (first call of each, against ``reference`` or the first contender's result; or,
    with ``references``, contender k against ``references[k]``), then time them round-robin.

    Returns one :class:`Row` per contender, in the order given.
    """
    rows: list[Row] = []
    callables: dict[str, Callable[[], Any]] = {}
    for c in contenders:
        row = Row(c.name, c.role)
        rows.append(row)
        try:
            fn = c.make()
        except Unavailable as why:
            row.status = f"skipped: {why}"
            session.log(f"{label}: {c.name} skipped ({why})")
            continue
        if c.reset is not None:
            c.reset()
        try:
            t0 = time.perf_counter()
            out = fn()
            cold = time.perf_counter() - t0
            value = c.to_numpy(out)
        except Unavailable as why:
            row.status = f"skipped: {why}"
            session.log(f"{label}: {c.name} skipped ({why})")
            continue
        except Exception as error:  # a rival that cannot handle the case: report it, never hide it
            row.status = f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
            session.log(f"{label}: {c.name} {row.status}")
            continue
        del out
        row.timing = Timing(cold, math.inf, math.inf, 0, 1)
        if not c.check:
            del value
            callables[c.name] = fn
            continue
        if references is not None:
            reference = references[len(rows) - 1]
        elif reference is None:
            reference = value
        row.error = rel_error(value, reference)
        del value
        if not row.error <= rtol:
            row.status = f"MISMATCH (relative error {row.error:.2e} > {rtol:.0e}); not timed"
            session.log(f"{label}: {c.name} {row.status}")
            continue
        callables[c.name] = fn
    _time_round_robin(session, label, [(c, r) for c, r in zip(contenders, rows) if r.name in callables],
                      callables, budget, min_repeats, max_repeats)
    return rows


def _time_round_robin(session: Session, label: str, pairs, callables, budget, min_repeats, max_repeats) -> None:
    samples: dict[str, list[float]] = {}
    spent: dict[str, float] = {}
    numbers: dict[str, int] = {}
    for c, row in pairs:                         # warm-up, and the batch size for fast calls
        fn = callables[c.name]
        samples[c.name], spent[c.name] = [], 0.0
        if row.timing.cold > (c.budget if c.budget is not None else budget):
            numbers[c.name] = 1                  # slow: the cold call was the warm-up
            continue
        t0 = time.perf_counter()
        fn()
        numbers[c.name] = _number_for(time.perf_counter() - t0)
    active = [c for c, _ in pairs]
    session.log(f"{label}: timing {', '.join(c.name for c in active)}")
    while active:
        for c in list(active):
            fn, number = callables[c.name], numbers[c.name]
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            dt = time.perf_counter() - t0
            samples[c.name].append(dt / number)
            spent[c.name] += dt
            n = len(samples[c.name])
            limit = c.budget if c.budget is not None else budget
            least = c.min_repeats if c.min_repeats is not None else min_repeats
            if n >= max_repeats or (n >= least and spent[c.name] >= limit):
                active.remove(c)
    for c, row in pairs:
        s = samples[c.name]
        row.timing = Timing(row.timing.cold, min(s), statistics.median(s), len(s), numbers[c.name])


# ---------------------------------------------------------------- formatting

def fmt_time(seconds: float | None) -> str:
    """Seconds in a readable unit: ``12.3 µs``, ``4.56 ms``, ``1.23 s``."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_num(x: float | int | None) -> str:
    """A count in engineering form: ``1.23e+09``, or plain under 10⁶."""
    if x is None:
        return "–"
    x = float(x)
    if not math.isfinite(x):
        return "∞"
    return f"{x:,.0f}" if abs(x) < 1e6 else f"{x:.3e}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; cells are converted with ``str`` and ``|`` is escaped."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def limit_of(rows: Sequence[Row]) -> Row | None:
    """The first timed row whose role is ``limit``."""
    return next((r for r in rows if r.role == "limit" and r.ok), None)


def ratio(row: Row, base: Row | None) -> float | None:
    """row.min / base.min, or None."""
    if base is None or not row.ok or not base.ok or base.timing.min <= 0:
        return None
    return row.timing.min / base.timing.min


def timing_table(rows: Sequence[Row], base: Row | None = None, base_label: str = "limit") -> str:
    """The standard table: contender, role, cold, min, median, repeats, ratio to the limit, error, status."""
    base = base if base is not None else limit_of(rows)
    out = []
    for r in rows:
        t = r.timing
        q = ratio(r, base)
        out.append([r.name, r.role,
                    fmt_time(t.cold) if t else "–",
                    fmt_time(t.min) if r.ok else "–",
                    fmt_time(t.median) if r.ok else "–",
                    f"{t.repeats}×{t.number}" if r.ok else "–",
                    f"{q:.2f}×" if q is not None else "–",
                    f"{r.error:.1e}" if r.error is not None and math.isfinite(r.error) else "–",
                    r.status])
    return md_table(["contender", "role", "cold", "min", "median", "repeats×calls",
                     f"min / {base_label}", "rel. error", "status"], out)


def fastest_rival(rows: Sequence[Row]) -> Row | None:
    """The timed rival with the smallest minimum."""
    timed = [r for r in rows if r.role == "rival" and r.ok]
    return min(timed, key=lambda r: r.timing.min) if timed else None


def find(rows: Sequence[Row], role: str) -> Row | None:
    """The first row with this role."""
    return next((r for r in rows if r.role == role), None)


# ---------------------------------------------------------------- the report

@dataclass
class Report:
    """What a group hands back: Markdown sections, a plot function, targets and failures."""

    group: str
    title: str
    intro: str
    sections: list[tuple[str, str]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)       # rival → reason
    targets: list[tuple[str, str, bool | None]] = field(default_factory=list)  # (target, measured, met)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    plot: Callable[[Any, str], None] | None = None              # (pyplot, path) → writes the PNG

    def add(self, heading: str, text: str) -> None:
        self.sections.append((heading, text))

    def target(self, what: str, measured: str, met: bool | None) -> None:
        self.targets.append((what, measured, met))

    def target_ratio(self, what: str, rows: Sequence[Row], most: float) -> None:
        """The target "einderiv's minimum ≤ ``most`` × the limit's", measured from the rows of one comparison."""
        e, lim = find(rows, "einderiv"), find(rows, "limit")
        q = ratio(e, lim) if e is not None else None
        measured = (f"{q:.2f}× ({fmt_time(e.timing.min)} vs {fmt_time(lim.timing.min)})" if q is not None
                    else "not measured")
        self.target(what, measured, None if q is None else q <= most)

    def check_rows(self, label: str, rows: Sequence[Row]) -> None:
        """Record mismatches and failures as failures of the group."""
        for r in rows:
            if r.status.startswith(("MISMATCH", "FAILED")):
                self.failures.append(f"{label}: {r.name}: {r.status}")


def _versions() -> list[tuple[str, str]]:
    names = ["einderiv", "numpy", "opt_einsum", "lark", "jax", "jaxlib", "torch", "autograd", "sympy",
             "cotengra", "einsum_benchmark", "threadpoolctl", "matplotlib"]
    out = []
    for n in names:
        try:
            from importlib.metadata import version
            out.append((n, version(n.replace("_", "-"))))
        except Exception:
            try:
                from importlib.metadata import version
                out.append((n, version(n)))
            except Exception:
                out.append((n, "not installed"))
    return out


def _thread_rows() -> list[list[str]]:
    try:
        import threadpoolctl
    except ImportError:
        return [["threadpoolctl not installed", "", "", "", "", ""]]
    rows = []
    for info in threadpoolctl.threadpool_info():
        rows.append([info.get("user_api", ""), info.get("internal_api", ""), info.get("version", ""),
                     str(info.get("num_threads", "")), str(info.get("architecture", info.get("threading_layer", ""))),
                     os.path.basename(info.get("filepath", ""))])
    return rows


def environment_markdown(session: Session) -> str:
    """Machine, library versions and thread settings, as Markdown."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    machine = [["platform", platform.platform()], ["processor", _cpu_model()],
               ["cpu count", str(os.cpu_count())], ["python", sys.version.split()[0]],
               ["load average (1, 5, 15 min) when written", ", ".join(f"{x:.2f}" for x in load)],
               ["date", datetime.date.today().isoformat()]]
    env_keys = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                "MKL_NUM_THREADS", "XLA_FLAGS", "JAX_PLATFORMS"]
    env = [[k, os.environ.get(k, "(unset)")] for k in env_keys]
    if session.removed_env:
        env.append(["removed by the runner (re-exec)", session.removed_env])
    parts = ["### Machine", md_table(["", ""], machine),
             "### Libraries", md_table(["library", "version"], _versions()),
             "### Threads (threadpoolctl; `architecture` is the BLAS kernel in use)",
             md_table(["user api", "internal api", "version", "threads", "architecture / layer", "library"],
                      _thread_rows()),
             md_table(["environment variable", "value"], env)]
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        parts.append(f"torch threads: {torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op.")
    return "\n\n".join(parts)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_report(session: Session, report: Report) -> list[str]:
    """Write ``<out>/<group>.md`` and, when matplotlib is there, ``<group>.png``; returns the paths."""
    os.makedirs(session.out_dir, exist_ok=True)
    md_path = os.path.join(session.out_dir, f"{report.group}.md")
    png_path = os.path.join(session.out_dir, f"{report.group}.png")
    written = []
    plot_line = ""
    if report.plot is not None and session.plots:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            plot_line = f"No plot: matplotlib is not installed ({_RIVAL_INSTALL['matplotlib']})."
            session.log(f"{report.group}: plot skipped: matplotlib is not installed")
        else:
            try:
                report.plot(plt, png_path)
                plt.close("all")
                written.append(png_path)
                plot_line = f"![{report.group}]({report.group}.png)"
            except Exception as error:  # a plot must never lose the tables
                plot_line = f"No plot: plotting failed ({type(error).__name__}: {error})."
                report.failures.append(f"plot: {error}")
    elif report.plot is not None:
        plot_line = "No plot: --no-plots."
    if png_path not in written and os.path.exists(png_path):
        os.remove(png_path)       # a plot of an earlier run must not sit beside these tables
    lines = [f"# {report.title}", "", report.intro.strip(), ""]
    if session.quick:
        lines += ["**Quick pass** (`--quick`): reduced sizes and repeats; run without `--quick` for the full "
                  "figures.", ""]
    lines += [f"Command: `python -m benchmarks{' --quick' if session.quick else ''} --only {report.group}` "
              f"(or `python -m benchmarks` for every group).", "", RESULTS_NOTE, ""]
    if report.targets:
        lines += ["## Targets", "", md_table(["target", "measured", "met"],
                                              [[w, m, {True: "yes", False: "**no**", None: "n/a"}[ok]]
                                               for w, m, ok in report.targets]), ""]
    if report.failures:
        lines += ["## Failures", ""] + [f"- {f}" for f in report.failures] + [""]
    for heading, text in report.sections:
        lines += [f"## {heading}", "", text.strip(), ""]
    if plot_line:
        lines += ["## Plot", "", plot_line, ""]
    skipped = dict(report.skipped)
    lines += ["## Skipped contenders", ""]
    lines += [f"- **{k}**: {v}" for k, v in sorted(skipped.items())] if skipped else ["None."]
    lines += [""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    lines += ["## Environment", "", environment_markdown(session), ""]
    with open(md_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    written.insert(0, md_path)
    return written


def skipped_rivals(names: Sequence[str]) -> dict[str, str]:
    """Reasons for each rival in ``names`` that cannot be imported (tensorgrad always)."""
    out = {}
    for n in names:
        reason = rival_reason(n)
        if reason is not None:
            out[n] = reason
    return out


def einderiv_reset() -> None:
    """Clear every einderiv cache: compiled plans, parsed programs, symbolic derivatives.

    Every ``functools.lru_cache`` of every loaded ``einderiv`` module is cleared,
    except the one that builds the grammar's parser (a process-wide constant,
    built on first use, like an import).
    """
    import einderiv
    einderiv.clear_cache()
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "einderiv" or name.startswith("einderiv.")):
            continue
        for attr in list(vars(module).values()):
            clear = getattr(attr, "cache_clear", None)
            if callable(clear) and not isinstance(attr, type) and getattr(attr, "__module__", name) == name \
                    and not _is_parser_builder(attr):
                clear()


def _is_parser_builder(fn) -> bool:
    """The cached lark parser: built once per process from the grammar file (not per program)."""
    return getattr(fn, "__module__", "") == "einderiv.language.parsing" and "parser" in getattr(fn, "__name__", "")
