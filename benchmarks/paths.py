"""Group ``paths``: contraction paths of the derivative contractions einderiv plans.

The contractions are recorded while einderiv plans real derivatives (it hands
every contraction to ``opt_einsum.contract_expression``; the benchmark wraps
that function for the duration of the planning), then each is searched with
opt_einsum's ``optimal``, ``dp``, ``dp-outer`` (``DynamicProgramming(search_outer=True)``),
``branch-2``, ``greedy``, ``auto`` and ``auto-hq`` (and cotengra when installed)
and compared with ``numpy.einsum`` with and without ``optimize``: FLOPs and largest intermediate (opt_einsum's
cost model for every path, numpy's included), path-search time and execution
time of the path found.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import opt_einsum

from benchmarks.common import (TWO_LAYER, Contender, Report, Session, Unavailable, compare, einderiv_reset, fmt_num,
                               fmt_time, md_table, rival)

OPTIMIZERS = ("optimal", "dp", "dp-outer", "branch-2", "greedy", "auto", "auto-hq")


def _optimizer(name: str):
    """An ``optimize=`` value; ``dp-outer`` is dynamic programming that also considers outer products."""
    if name == "dp-outer":
        return opt_einsum.DynamicProgramming(minimize="flops", search_outer=True)
    return name
NAIVE_LIMIT = 3e8          # numpy.einsum(optimize=False) is run only below this many FLOPs
OPTIMAL_MAX_OPERANDS = 10  # the exhaustive search is skipped above this


@dataclass
class Contraction:
    """One contraction: where it came from, the equation, the operand shapes, einderiv's path options.

    ``arrays`` are the operands einderiv passed the first time it ran the contraction.
    """

    label: str
    eq: str
    shapes: list[tuple[int, ...]]
    options: dict = field(default_factory=dict)
    arrays: list | None = None

    @property
    def operands(self) -> int:
        return len(self.shapes)


# ---------------------------------------------------------------- recording einderiv's contractions

class _Recorded:
    """A compiled expression that remembers the operands of its first call."""

    def __init__(self, expression, record: dict):
        self._expression, self._record = expression, record

    def __call__(self, *arrays, **kwargs):
        self._record.setdefault("arrays", list(arrays))
        return self._expression(*arrays, **kwargs)

    def __getattr__(self, name):
        return getattr(self._expression, name)


@contextlib.contextmanager
def recording():
    """Record every ``opt_einsum.contract_expression`` call made inside the block, and its first operands."""
    calls: list[tuple[tuple, dict, dict]] = []
    original = opt_einsum.contract_expression

    def spy(*args, **kwargs):
        record: dict = {}
        calls.append((args, kwargs, record))
        return _Recorded(original(*args, **kwargs), record)

    opt_einsum.contract_expression = spy
    try:
        yield calls
    finally:
        opt_einsum.contract_expression = original


def _as_equation(args: tuple) -> tuple[str, list[tuple[int, ...]]]:
    """Interleaved (shape, sublist, …, output) arguments → an equation string and shapes."""
    *pairs, out = args
    shapes = [tuple(pairs[k]) for k in range(0, len(pairs), 2)]
    subs = [pairs[k] for k in range(1, len(pairs), 2)]
    ids: dict = {}
    for s in list(subs) + [out]:
        for i in s:
            ids.setdefault(i, opt_einsum.get_symbol(len(ids)))
    eq = ",".join("".join(ids[i] for i in s) for s in subs) + "->" + "".join(ids[i] for i in out)
    return eq, shapes


def planned(label: str, action) -> list[Contraction]:
    """The contractions (≥ 2 operands) einderiv plans and runs while ``action()`` runs with empty caches."""
    einderiv_reset()
    with recording() as calls:
        action()
    out = []
    for k, (args, kwargs, record) in enumerate(calls):
        eq, shapes = _as_equation(args)
        if len(shapes) >= 2:
            out.append(Contraction(f"{label} #{k + 1}", eq, shapes,
                                   {key: kwargs[key] for key in ("optimize", "memory_limit") if key in kwargs},
                                   record.get("arrays")))
    return out


# ---------------------------------------------------------------- the derivative programs

CHAIN_DIMS = (40, 300, 8, 150, 25, 400, 12, 200, 60)


def chain_program(k: int) -> str:
    """``F = A1 A2 … Ak`` in index form."""
    idx = [f"x{i}" for i in range(k + 1)]
    rhs = " ".join(f"A{i + 1}[{idx[i]},{idx[i + 1]}]" for i in range(k))
    return f"F[{idx[0]},{idx[k]}] = {rhs}"


def _random(shape, rng) -> np.ndarray:
    return rng.standard_normal(shape)


def _chain_vjps(rng, ks) -> list[Contraction]:
    import einderiv
    out = []
    for k in ks:
        shapes = [(CHAIN_DIMS[i % 9], CHAIN_DIMS[(i + 1) % 9]) for i in range(k)]
        inputs = {f"A{i + 1}": _random(s, rng) for i, s in enumerate(shapes)}
        G = _random((shapes[0][0], shapes[-1][1]), rng)
        wrt = f"A{k // 2 + 1}"
        out += planned(f"chain of {k}: VJP w.r.t. {wrt}",
                       lambda: einderiv.vjp(chain_program(k), wrt, inputs, G))
    return out



ATTENTION = """\
S[b,q,k] = Q[b,q,d] K[b,k,d]
O[b,q,e] = S[b,q,k] V[b,k,e]
"""

THREE_TENSOR = "T[i,j,k] = A[i,a,b] B[a,j,c] C[b,c,k]"
TUCKER = "Y[i,j,k] = G[a,b,c] U[i,a] V[j,b] W[k,c]"


def _programs(rng, quick: bool) -> list[Contraction]:
    import einderiv
    out = []
    out += _chain_vjps(rng, (3, 5, 8) if quick else (3, 4, 5, 6, 7, 8))
    n, d, h, c = (256, 64, 128, 10) if quick else (512, 128, 256, 10)
    net = {"X": _random((n, d), rng), "W1": _random((d, h), rng), "b1": _random(h, rng),
           "W2": _random((h, c), rng), "b2": _random(c, rng), "T": _random((n, c), rng), "N": float(n)}
    out += planned("two-layer network gradient", lambda: einderiv.grad(TWO_LAYER, ["W1", "b1", "W2", "b2"], net))
    b, q, k, dd, e = (4, 64, 64, 32, 32) if quick else (8, 128, 256, 64, 48)
    att = {"Q": _random((b, q, dd), rng), "K": _random((b, k, dd), rng), "V": _random((b, k, e), rng)}
    Go = _random((b, q, e), rng)
    for w in ("Q", "K", "V"):
        out += planned(f"attention O = (Q Kᵀ) V: VJP w.r.t. {w}", lambda: einderiv.vjp(ATTENTION, w, att, Go))
    Gs = _random((b, q, k), rng)
    out += planned("attention scores S = Q Kᵀ: VJP w.r.t. Q",
                   lambda: einderiv.vjp(ATTENTION, "Q", att, Gs, of="S"))
    s3 = {"A": _random((30, 12, 14), rng), "B": _random((12, 40, 10), rng), "C": _random((14, 10, 35), rng)}
    G3 = _random((30, 40, 35), rng)
    for w in ("A", "C"):
        out += planned(f"3-tensor contraction: VJP w.r.t. {w}", lambda: einderiv.vjp(THREE_TENSOR, w, s3, G3))
    tk = {"G": _random((8, 9, 10), rng), "U": _random((50, 8), rng), "V": _random((60, 9), rng),
          "W": _random((40, 10), rng)}
    Gt = _random((50, 60, 40), rng)
    for w in ("G", "U"):
        out += planned(f"Tucker Y = G ×₁U ×₂V ×₃W: VJP w.r.t. {w}", lambda: einderiv.vjp(TUCKER, w, tk, Gt))
    return out


def _network_program(eq: str, shapes) -> tuple[str, list[str]]:
    """An einsum network as an einderiv program ``F[out] = T0[..] T1[..] …``; index names ``x<symbol>``."""
    lhs, rhs = eq.replace(" ", "").split("->")
    terms = lhs.split(",")
    names = [f"T{k}" for k in range(len(terms))]
    body = " ".join(f"{n}[{','.join('x' + s for s in t)}]" if t else n for n, t in zip(names, terms))
    head = f"F[{','.join('x' + s for s in rhs)}]" if rhs else "F"
    return f"{head} = {body}", names


def _benchmark_networks(rng, quick: bool) -> tuple[list[Contraction], str | None]:
    """Networks from einsum-benchmark's offline generators, differentiated (VJP w.r.t. the first tensor)."""
    try:
        gen = rival("einsum_benchmark.generators")
    except Unavailable as why:
        return [], f"einsum-benchmark {why}"
    import einderiv
    specs = [("matrix_chain(6 matrices, dims 10–200)",
              lambda: gen.structured.matrix_chain(num_matrices=6, min_dim=10, max_dim=200, seed=3)),
             ("tree(8 tensors, dims 4–12)", lambda: gen.structured.tree(n=8, d_min=4, d_max=12, n_outer=2, seed=1)),
             ("lattice(2×4, dims 4–8)", lambda: gen.structured.lattice((2, 4), d_min=4, d_max=8, seed=2)),
             ("connected_network(7 tensors, regularity 3)",
              lambda: gen.random.connected_network(7, 3.0, number_of_output_indices=2, min_axis_size=2,
                                                   max_axis_size=6, seed=5))]
    if not quick:
        specs.append(("connected_network(10 tensors, regularity 3)",
                      lambda: gen.random.connected_network(10, 3.0, number_of_output_indices=2, min_axis_size=2,
                                                           max_axis_size=5, seed=7)))
    out = []
    for label, make in specs:
        made = make()
        eq, shapes = made[0], [tuple(int(x) for x in s) for s in made[1]]
        text, names = _network_program(eq, shapes)
        inputs = {n: _random(s, rng) for n, s in zip(names, shapes)}
        out += planned(f"einsum-benchmark {label}: value", lambda: einderiv.evaluate(text, inputs))
        out_shape = einderiv.evaluate(text, inputs).shape
        G = _random(out_shape, rng)
        out += planned(f"einsum-benchmark {label}: VJP w.r.t. T0", lambda: einderiv.vjp(text, "T0", inputs, G))
    return out, None


# ---------------------------------------------------------------- searching and timing

@dataclass
class PathResult:
    """One optimizer's answer for one contraction."""

    name: str
    flops: float | None = None
    largest: float | None = None
    search: float | None = None
    path: tuple | None = None
    note: str = ""


def _search_time(fn, budget: float = 0.2) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    best = time.perf_counter() - t0
    spent, n = best, 1
    while spent < budget and n < 7:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, n = min(best, dt), spent + dt, n + 1
    return best, result


def _cost_of(c: Contraction, path) -> tuple[float, float]:
    _, info = opt_einsum.contract_path(c.eq, *c.shapes, shapes=True, optimize=list(path))
    return float(info.opt_cost), float(info.largest_intermediate)


def search_all(c: Contraction, arrays, cotengra) -> list[PathResult]:
    """Every optimizer's path for ``c``, with opt_einsum's FLOPs and largest intermediate."""
    results = []
    for opt in ("einderiv",) + OPTIMIZERS:
        r = PathResult(f"opt_einsum {opt}" if opt != "einderiv" else "einderiv's plan")
        if opt == "optimal" and c.operands > OPTIMAL_MAX_OPERANDS:
            r.note = f"not run (> {OPTIMAL_MAX_OPERANDS} operands)"
            results.append(r)
            continue
        kwargs = dict(c.options) if opt == "einderiv" else {"optimize": _optimizer(opt)}
        r.search, (path, info) = _search_time(
            lambda: opt_einsum.contract_path(c.eq, *c.shapes, shapes=True, **kwargs))
        r.path, r.flops, r.largest = tuple(path), float(info.opt_cost), float(info.largest_intermediate)
        if opt == "einderiv":
            r.note = f"optimize={c.options.get('optimize')!r}"
        results.append(r)
    if cotengra is not None:
        r = PathResult("cotengra HyperOptimizer")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            opt = cotengra.HyperOptimizer(max_repeats=16, parallel=False, progbar=False, minimize="flops")
            path, info = opt_einsum.contract_path(c.eq, *c.shapes, shapes=True, optimize=opt)
            r.search = time.perf_counter() - t0
        r.path, r.flops, r.largest = tuple(path), float(info.opt_cost), float(info.largest_intermediate)
        r.note = "16 trials"
        results.append(r)
    r = PathResult("numpy.einsum(optimize=True)")
    r.search, np_path = _search_time(lambda: np.einsum_path(c.eq, *arrays, optimize=True)[0])
    r.path = tuple(tuple(s) for s in np_path[1:])
    r.flops, r.largest = _cost_of(c, r.path)
    r.note = "greedy, intermediates capped at the largest operand"
    results.append(r)
    _, info = opt_einsum.contract_path(c.eq, *c.shapes, shapes=True, optimize=[tuple(range(c.operands))])
    results.append(PathResult("numpy.einsum(optimize=False)", float(info.naive_cost), float(info.size_list[-1]), 0.0,
                              None, "one nested loop over every index"))
    return results


def _execution(session: Session, c: Contraction, arrays, paths: list[PathResult], quick: bool):
    """Time the distinct paths (and numpy's two modes) after checking they agree."""
    contenders, seen = [], {}
    for r in paths:
        if r.path is None or r.name.startswith("numpy"):
            continue
        if r.path in seen:
            r.note = (r.note + "; " if r.note else "") + f"same path as {seen[r.path]}"
            continue
        seen[r.path] = r.name
        contenders.append(Contender(r.name, "einderiv" if r.name == "einderiv's plan" else "rival",
                                    lambda p=list(r.path): (lambda: opt_einsum.contract(c.eq, *arrays, optimize=p))))
    contenders.append(Contender("numpy.einsum(optimize=True)", "baseline",
                                lambda: (lambda: np.einsum(c.eq, *arrays, optimize=True))))
    naive = next(r for r in paths if r.name == "numpy.einsum(optimize=False)")

    def make_naive():
        if naive.flops > NAIVE_LIMIT:
            raise Unavailable(f"not run: {fmt_num(naive.flops)} FLOPs > {NAIVE_LIMIT:.0e}")
        return lambda: np.einsum(c.eq, *arrays, optimize=False)
    contenders.append(Contender("numpy.einsum(optimize=False)", "baseline", make_naive))
    rows = compare(session, c.label, contenders, rtol=1e-8, budget=0.15 if quick else 0.4, min_repeats=3,
                   max_repeats=20)
    return {row.name: row for row in rows}


def _flops_table(c: Contraction, paths: list[PathResult], rows) -> str:
    best = min(r.flops for r in paths if r.flops is not None)
    out = []
    for r in paths:
        row = rows.get(r.name)
        if row is None and r.path is not None and not r.name.startswith("numpy"):
            same = r.note.rsplit("same path as ", 1)[-1] if "same path as" in r.note else None
            row = rows.get(same) if same else None
        timed = row is not None and row.ok
        status = "" if row is None or row.ok else row.status
        out.append([r.name, fmt_num(r.flops), f"{r.flops / best:.3f}" if r.flops is not None else "–",
                    fmt_num(r.largest), fmt_time(r.search) if r.search else "–",
                    fmt_time(row.timing.cold) if timed else "–", fmt_time(row.timing.min) if timed else "–",
                    fmt_time(row.timing.median) if timed else "–",
                    "; ".join(x for x in (r.note, status) if x)])
    return md_table(["path from", "FLOPs", "FLOPs ÷ best", "largest intermediate", "search time",
                     "execution: cold", "min", "median", "note"], out)


# ---------------------------------------------------------------- deltas kept vs eliminated

def _einsum_of(expr, target: tuple[str, ...], sizes: dict[str, int], arrays: dict[str, np.ndarray]):
    """A one-term einderiv IR expression → (equation, operand makers); deltas become ``np.eye`` operands."""
    from einderiv.core import ir
    (term,) = expr.terms
    letters: dict[str, str] = {}

    def letter(i: str) -> str:
        return letters.setdefault(i, opt_einsum.get_symbol(len(letters)))
    subs, makers, coeff = [], [], term.coeff
    for f in term.factors:
        if isinstance(f, ir.Ref):
            subs.append("".join(letter(i) for i in f.indices))
            makers.append(lambda name=f.name: arrays[name])
        elif isinstance(f, ir.Delta):
            subs.append(letter(f.first) + letter(f.second))
            makers.append(lambda n=sizes[f.first]: np.eye(n))
        elif isinstance(f, ir.Size):
            coeff *= sizes[f.index]
        else:
            raise Unavailable(f"unexpected factor {type(f).__name__}")
    return ",".join(subs) + "->" + "".join(letter(i) for i in target), makers, coeff


def _delta_case(text: str, wrt: str, arrays: dict[str, np.ndarray], G: np.ndarray):
    """(eliminated, kept) contractions of Σ_out G[out] dF[out]/dW[slots], both from einderiv's own IR.

    Kept: the product rule's raw output, a Kronecker delta for every index of W.
    Eliminated: the same after einderiv's ``simplify`` (what its planner contracts).
    """
    import einderiv
    from einderiv.core import ir
    from einderiv.calculus.differentiation import partial
    from einderiv.calculus.program import wrt_slots
    from einderiv.core.simplify import simplify
    program = einderiv.parse(text)
    statement = program.statements[-1]
    slots = wrt_slots(program, wrt, statement.lhs)
    raw = ir.summation(statement.lhs, ir.mul(ir.ref("G", statement.lhs), partial(statement.rhs, wrt, slots)))
    sizes: dict[str, int] = {}
    for term in raw.terms:
        for f in term.factors:
            if isinstance(f, ir.Ref):
                shape = G.shape if f.name == "G" else arrays[f.name].shape
                sizes.update(zip(f.indices, shape))
    sizes.update(zip(slots, arrays[wrt].shape))
    everything = {**arrays, "G": G}
    return (_einsum_of(simplify(raw), slots, sizes, everything), _einsum_of(raw, slots, sizes, everything))


def _delta_section(session: Session, rng, quick: bool) -> tuple[str, list]:
    """dF/dW contracted with G: the delta-eliminated contraction einderiv plans vs the one with np.eye operands."""
    import einderiv
    m = 128 if quick else 256
    W, X, G = _random((m, m), rng), _random((m, m), rng), _random((m, m), rng)
    A, Wc, B, Gc = (_random((m, m), rng) for _ in range(4))
    cases = [("F = W X", "F[i,k] = W[i,j] X[j,k]", {"W": W, "X": X}, G),
             ("F = A W B", "F[i,l] = A[i,j] W[j,k] B[k,l]", {"A": A, "W": Wc, "B": B}, Gc)]
    table, plot_data = [], []
    for label, text, arrays, cot in cases:
        try:
            (e_eq, e_make, e_coeff), (n_eq, n_make, n_coeff) = _delta_case(text, "W", arrays, cot)
        except (ImportError, AttributeError, TypeError, ValueError, Unavailable) as error:
            table.append([label, f"not measured: einderiv internals changed ({type(error).__name__}: {error})"]
                         + ["–"] * 7)
            continue
        _, info_e = opt_einsum.contract_path(e_eq, *[mk().shape for mk in e_make], shapes=True, optimize="optimal")
        _, info_n = opt_einsum.contract_path(n_eq, *[mk().shape for mk in n_make], shapes=True, optimize="optimal")
        rows = compare(session, f"deltas: {label}", [
            Contender("einderiv.vjp (cached plan)", "einderiv",
                      lambda text=text, arrays=arrays, cot=cot: (lambda: einderiv.vjp(text, "W", arrays, cot))),
            Contender("delta-eliminated contraction (opt_einsum)", "baseline",
                      lambda: (lambda: e_coeff * opt_einsum.contract(e_eq, *[mk() for mk in e_make],
                                                                      optimize="optimal"))),
            Contender("identity matrices kept (np.eye operands, built per call)", "baseline",
                      lambda: (lambda: n_coeff * opt_einsum.contract(n_eq, *[mk() for mk in n_make],
                                                                      optimize="optimal")))],
            budget=0.3 if quick else 1.0)
        v, e, n = rows
        table.append([f"{label}: Σ G·dF/dW", f"`{e_eq}`", fmt_num(info_e.opt_cost),
                      fmt_time(e.timing.min if e.ok else None), fmt_time(v.timing.min if v.ok else None),
                      f"`{n_eq}`", fmt_num(info_n.opt_cost), fmt_time(n.timing.min if n.ok else None),
                      f"{info_n.opt_cost / info_e.opt_cost:.2f}×",
                      f"{n.timing.min / e.timing.min:.2f}×" if e.ok and n.ok else "–"])
        plot_data.append((label, info_e.opt_cost, info_n.opt_cost))
    text = md_table(["derivative", "deltas eliminated", "FLOPs", "time (min)", "einderiv.vjp (min)",
                     "deltas kept (np.eye)", "FLOPs", "time (min)", "FLOPs ratio", "time ratio"], table)
    return (f"Sizes: every index {m}. Both contractions come from einderiv's own IR: 'kept' is the product "
            f"rule's raw output contracted with G (one Kronecker delta per index of W, materialised as "
            f"`np.eye`, built per call as an evaluator that keeps deltas must), 'eliminated' is the same "
            f"expression after einderiv's `simplify` (what its planner contracts). Both run through opt_einsum "
            f"with the `optimal` path and give the same numbers (checked to 1e-8); `einderiv.vjp` is the whole "
            f"cached call, for scale.\n\n" + text), plot_data


# ---------------------------------------------------------------- the group

def run(session: Session) -> Report:
    """Run the group and return its report."""
    quick = session.quick
    intro = __doc__.split("\n\n", 1)[1].replace("\n", " ")
    report = Report("paths", "Contraction paths of derivative contractions", intro)
    rng = np.random.default_rng(2)
    try:
        cotengra = rival("cotengra")
    except Unavailable as why:
        cotengra = None
        report.skipped["cotengra"] = str(why)
    session.log("planning the derivative programs")
    contractions = _programs(rng, quick)
    nets, why = _benchmark_networks(rng, quick)
    if why:
        report.skipped["einsum-benchmark networks"] = why
    contractions += nets
    trivial = [c for c in contractions if c.operands < 3]
    chosen = [c for c in contractions if c.operands >= 3]
    summary, details, misses, slow = [], [], [], []
    plot_rows = []
    for number, c in enumerate(chosen, 1):
        session.log(f"[{number}/{len(chosen)}] {c.label}: {c.eq} ({c.operands} operands)")
        arrays = c.arrays if c.arrays is not None else [_random(s, rng) for s in c.shapes]
        paths = search_all(c, arrays, cotengra)
        rows = _execution(session, c, arrays, paths, quick)
        report.check_rows(c.label, list(rows.values()))
        by = {r.name: r for r in paths}
        mine, npo = by["einderiv's plan"], by["numpy.einsum(optimize=True)"]
        ref = by["opt_einsum optimal"] if by["opt_einsum optimal"].flops is not None else by["opt_einsum dp"]
        eq_opt = mine.flops <= ref.flops * (1 + 1e-12)
        le_np = mine.flops <= npo.flops * (1 + 1e-12)
        if c.operands <= 8 and not eq_opt:
            misses.append(f"{c.label}: einderiv {fmt_num(mine.flops)} vs optimal {fmt_num(ref.flops)} "
                          f"({mine.flops / ref.flops:.4f}×)")
        if not le_np:
            misses.append(f"{c.label}: einderiv {fmt_num(mine.flops)} > "
                          f"numpy.einsum(optimize=True) {fmt_num(npo.flops)}")
        ex_mine = rows.get("einderiv's plan")
        ex_np = rows.get("numpy.einsum(optimize=True)")
        if ex_mine and ex_np and ex_mine.ok and ex_np.ok and ex_mine.timing.min > 1.5 * ex_np.timing.min:
            slow.append(f"{c.label} (`{c.eq}`): einderiv's path through opt_einsum {fmt_time(ex_mine.timing.min)}, "
                        f"numpy.einsum(optimize=True) {fmt_time(ex_np.timing.min)} "
                        f"({ex_mine.timing.min / ex_np.timing.min:.1f}×) at "
                        f"{mine.flops / npo.flops:.2f}× numpy's FLOPs")
        summary.append([c.label, c.operands, f"`{c.eq}`", fmt_num(ref.flops), f"{mine.flops / ref.flops:.3f}",
                        f"{npo.flops / ref.flops:.3f}",
                        *(f"{by['opt_einsum ' + o].flops / ref.flops:.3f}"
                          for o in ("greedy", "auto", "auto-hq", "dp", "dp-outer")),
                        fmt_time(ex_mine.timing.min) if ex_mine and ex_mine.ok else "–",
                        fmt_time(ex_np.timing.min) if ex_np and ex_np.ok else "–"])
        plot_rows.append((c.label, {r.name: r.flops / ref.flops for r in paths if r.flops is not None}))
        details.append((f"{c.label} — `{c.eq}`, shapes {', '.join(map(str, c.shapes))}",
                        _flops_table(c, paths, rows)))
    n_small = sum(1 for c in chosen if c.operands <= 8)
    report.target("einderiv's paths: FLOPs equal to `optimal` for ≤ 8 operands",
                  f"{n_small - sum(1 for m in misses if 'vs optimal' in m)}/{n_small} contractions equal",
                  not any("vs optimal" in m for m in misses))
    report.target("einderiv's paths: never more FLOPs than numpy.einsum(optimize=True)",
                  f"{len(chosen) - sum(1 for m in misses if 'numpy' in m)}/{len(chosen)} contractions",
                  not any("numpy" in m for m in misses))
    report.add("Summary (contractions with ≥ 3 operands; FLOPs relative to `optimal`, or `dp` above "
               f"{OPTIMAL_MAX_OPERANDS} operands)",
               md_table(["contraction", "operands", "equation", "best FLOPs", "einderiv ÷ best",
                         "numpy optimize=True ÷ best", "greedy ÷ best", "auto ÷ best", "auto-hq ÷ best",
                         "dp ÷ best", "dp-outer ÷ best",
                         "einderiv exec", "numpy optimize=True exec"],
                        summary))
    if misses:
        report.add("Where einderiv's path is not the best", "\n".join(f"- {m}" for m in misses))
    if slow:
        report.add("Where executing einderiv's path is more than 1.5× slower than numpy.einsum(optimize=True)",
                   "\n".join(f"- {m}" for m in slow))
    delta_text, delta_plot = _delta_section(session, rng, quick)
    report.add("Deltas eliminated vs identity matrices kept", delta_text)
    report.add("Contractions of fewer than 3 operands handed to opt_einsum (one possible path)",
               (md_table(["contraction", "equation", "shapes"],
                         [[c.label, f"`{c.eq}`", ", ".join(map(str, c.shapes))] for c in trivial]) if trivial
                else "None.") + "\n\neinderiv runs most one- and two-operand contractions with a single numpy call "
               "(no path to choose), so only those it hands to `opt_einsum.contract_expression` are recorded here.")
    for heading, text in details:
        report.add(heading, text)
    report.notes.append("FLOPs are opt_einsum's count (`PathInfo.opt_cost`) for every path, numpy's included "
                        "(numpy's path from `np.einsum_path(..., optimize=True)` is re-costed by opt_einsum); "
                        "'largest intermediate' is in elements.")
    report.notes.append("`numpy.einsum(optimize=True)` is timed as called, path search included, since that is "
                        "what a caller pays; einderiv searches once per plan and caches the compiled expression.")
    report.notes.append(f"`numpy.einsum(optimize=False)` is executed only below {NAIVE_LIMIT:.0e} FLOPs.")
    report.plot = lambda plt, path: _plot(plt, path, plot_rows, delta_plot)
    return report


def _plot(plt, path: str, plot_rows, delta_plot) -> None:
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, max(4.5, 0.3 * len(plot_rows) + 1.5)),
                                 gridspec_kw={"width_ratios": [3, 1]})
    names = ["einderiv's plan", "opt_einsum greedy", "opt_einsum branch-2", "opt_einsum auto", "opt_einsum auto-hq",
             "opt_einsum dp", "opt_einsum dp-outer", "cotengra HyperOptimizer", "numpy.einsum(optimize=True)"]
    markers = "os^v<>PDx"
    ys = list(range(len(plot_rows)))
    for k, name in enumerate(names):
        xs = [r.get(name) for _, r in plot_rows]
        pts = [(x, y) for x, y in zip(xs, ys) if x is not None]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] + (k - 4) * 0.07 for p in pts], marker=markers[k], label=name,
                       s=40 if name == "einderiv's plan" else 18, zorder=3 if name == "einderiv's plan" else 2)
    ax.axvline(1.0, color="k", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(ys)
    ax.set_yticklabels([label[:60] for label, _ in plot_rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("FLOPs ÷ optimal (log; 1 is best)")
    ax.set_title("Path quality on derivative contractions")
    ax.legend(fontsize=7, loc="lower right")
    labels = [d[0] for d in delta_plot]
    x = np.arange(len(labels))
    bx.bar(x - 0.2, [d[1] for d in delta_plot], 0.4, label="deltas eliminated")
    bx.bar(x + 0.2, [d[2] for d in delta_plot], 0.4, label="np.eye kept")
    bx.set_xticks(x)
    bx.set_xticklabels(labels, fontsize=8)
    bx.set_yscale("log")
    bx.set_ylabel("FLOPs")
    bx.set_title("VJP of dF/dW")
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
