"""Group ``networks``: the gradient of a many-operand product, with respect to every operand.

A tensor network written as one statement, ``L = T0[x0,x1] T1[x1,x2,x3] ...``
(scalar output: every index summed), is differentiated with respect to all of
its operands at once. einderiv splits the product along opt_einsum's path into
two-operand statements and runs reverse mode over them (reverse mode through
the contraction tree), so its cached gradient should cost a small multiple of
the cached forward contraction (the cheap-gradient principle: about 2× the
forward's FLOPs, plus the forward itself).

Networks come from the ``einsum_benchmark`` package's generators when it is
installed (``pip install einsum_benchmark cotengra networkx``, or the
``networks`` extra), with fixed seeds; otherwise from the small built-in
generators below (chain, mps, lattice, tree), so the group always runs.

Measured per network, with BLAS limited to 1 and to 2 threads (threadpoolctl):

* the cached opt_einsum forward (``contract_expression`` built once, along the
  order einderiv's own path search finds, :mod:`einderiv.numeric.paths`) and its
  FLOPs (``PathInfo.opt_cost``);
* einderiv's cached all-operand gradient (``einderiv.grad(program, names, inputs)``,
  second call onward), as a ratio to that forward;
* jax (``jax.jit(jax.grad)`` of ``opt_einsum.contract(..., backend='jax')``, x64)
  and torch autograd over ``opt_einsum.contract(..., backend='torch')``, both on
  the same path, each as a ratio to its *own* forward; every contender's gradient
  is checked against einderiv's (relative error), and a disagreement is a failure.
  Each library's forward and gradient are timed round-robin together, apart from
  the other libraries (whose threads and cache traffic would otherwise slow the
  calls that follow them).

Then a slicing table: three networks' all-operand gradients under a memory
limit of 1/8 of their largest intermediate (einderiv slices the contraction:
a loop over chunks of some indices), with the extra FLOPs and time.

Last, a planning table: the cold gradient (every einderiv cache cleared, then
one call) for networks of 5 to 200 operands from each generator (MPS, matrix
chain, lattice, tree, random 3-regular graph), to show that planning has no cliff.

``--quick``: five networks (chain12, lm_first_last_d1, lattice4x5, mps25,
mps100), BLAS at 1 thread only, jax only up to 20 operands, fewer repeats.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import opt_einsum

from benchmarks.common import (Contender, Report, Row, Session, Unavailable, best, blas_threads, cold, compare,
                               einderiv_reset, find, fmt_num, fmt_time, md_table, rival, skipped_rivals)

RIVALS = ("jax", "torch", "einsum_benchmark", "networkx")
THREADS = (1, 2)
RTOL = 1e-8
RATIO_TARGET = 3.0        # cached gradient ÷ cached forward; reverse mode costs about 2× the forward's FLOPs
PLANNING_SIZES = (5, 10, 20, 50, 100, 200)
RANDREG_MAX_OPERANDS = 50    # in the planning table: a random 3-regular graph of 100 vertices takes seconds to contract
QUICK_NETWORKS = ("chain12", "lm_first_last_d1", "lattice4x5", "mps25", "mps100")
QUICK_JAX_MAX_OPERANDS = 20   # jax compiles a jit of n operands in seconds to tens of seconds


# ---------------------------------------------------------------- equations → einderiv programs

def parse_equation(eq: str) -> tuple[list[str], str | None]:
    """The operands' index strings and the output string (None when the equation has no ``->``).

    Every character of an operand string is one index (opt_einsum's symbols, Unicode included);
    spaces are ignored.

    >>> parse_equation("ab,bc->ac")
    (['ab', 'bc'], 'ac')
    """
    if "." in eq:
        raise ValueError(f"ellipsis ('...') is not supported in a network equation: {eq[:60]!r}")
    eq = eq.replace(" ", "")
    inputs, arrow, output = eq.partition("->")
    return inputs.split(","), (output if arrow else None)


def scalar_equation(eq: str) -> str:
    """The equation with every output index summed (``ab,bc->ac`` → ``ab,bc->``).

    >>> scalar_equation("ab,bc->ac")
    'ab,bc->'
    """
    operands, _ = parse_equation(eq)
    return ",".join(operands) + "->"


def network_program(eq: str) -> tuple[str, tuple[str, ...]]:
    """The einderiv program of a network's scalar (fully summed) value, and its operand names.

    Operands are named ``T0 … Tn-1`` and indices ``x0, x1, …`` in order of first
    appearance; an operand without indices is a bare (scalar) name. Output indices
    of ``eq`` are summed too (nothing is written on the left).

    >>> network_program("ab,bc,c->a")
    ('L = T0[x0,x1] T1[x1,x2] T2[x2]', ('T0', 'T1', 'T2'))
    """
    operands, _ = parse_equation(eq)
    names: dict[str, str] = {}
    factors = []
    for k, term in enumerate(operands):
        for symbol in term:
            names.setdefault(symbol, f"x{len(names)}")
        factors.append(f"T{k}[{','.join(names[s] for s in term)}]" if term else f"T{k}")
    return "L = " + " ".join(factors), tuple(f"T{k}" for k in range(len(operands)))


def forward_optimizer(operands: int):
    """A path search for normalising the inputs' value (any order will do there)."""
    if 5 <= operands <= 10:
        return opt_einsum.DynamicProgramming(minimize="flops", search_outer=True)
    return "auto"


def _sublists(eq: str, shapes: Sequence[tuple[int, ...]]) -> tuple[list[list[int]], dict[int, int]]:
    """Integer sublists (indices numbered by first appearance, as einderiv numbers them) and sizes."""
    operands, _ = parse_equation(eq)
    ids: dict[str, int] = {}
    sublists = [[ids.setdefault(c, len(ids)) for c in term] for term in operands]
    sizes = {i: n for sub, shape in zip(sublists, shapes) for i, n in zip(sub, shape)}
    return sublists, sizes


def einderiv_path(eq: str, shapes: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The contraction order einderiv's own plan of the network's product takes (einderiv.numeric.paths,
    memoised: the gradient's plan, built later in the same process, finds this same order)."""
    from einderiv.numeric import paths
    sublists, sizes = _sublists(eq, shapes)
    return list(paths.plan_contraction(sublists, [], sizes, 2 ** 62).path)


def make_inputs(eq: str, shapes: Sequence[tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random positive operands ``T0 …`` whose fully summed product is 1 (no overflow in float64).

    Entries are uniform in [0.5, 1) scaled by 1/√size; then every operand is
    multiplied by |value|^(-1/n), so each one carries an equal share of the scale.

    >>> x = make_inputs("ab,bc->", [(2, 3), (3, 4)])
    >>> round(float(opt_einsum.contract("ab,bc->", x["T0"], x["T1"])), 12)
    1.0
    """
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(0.5, 1.0, size=shape) / math.sqrt(max(1, math.prod(shape))) for shape in shapes]
    scalar = scalar_equation(eq)
    for _ in range(3):                      # once is exact up to rounding; more only if the first scale overflowed
        value = float(opt_einsum.contract(scalar, *arrays, optimize=forward_optimizer(len(arrays))))
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"network value {value} is not a positive finite number; choose smaller sizes")
        if abs(value - 1.0) < 1e-12:
            break
        factor = value ** (-1.0 / len(arrays))
        arrays = [a * factor for a in arrays]
    return {f"T{k}": a for k, a in enumerate(arrays)}


# ---------------------------------------------------------------- networks

@dataclass(frozen=True)
class Network:
    """One benchmark network: a name, where it came from, its equation (scalar) and operand shapes."""

    name: str
    family: str
    source: str                        # how it was generated (the call, with its seed)
    eq: str
    shapes: tuple[tuple[int, ...], ...]

    @property
    def operands(self) -> int:
        return len(self.shapes)


def _equation(terms: Sequence[Sequence[int]]) -> str:
    """A scalar einsum equation from operands given as lists of edge numbers."""
    return ",".join("".join(opt_einsum.get_symbol(e) for e in term) for term in terms) + "->"


def builtin_chain(n: int, d_min: int = 20, d_max: int = 60, seed: int = 0) -> tuple[str, list[tuple[int, ...]]]:
    """A matrix chain ``A0[a0,a1] A1[a1,a2] …`` (both ends summed), sizes uniform in [d_min, d_max].

    >>> builtin_chain(3, 2, 2)
    ('ab,bc,cd->', [(2, 2), (2, 2), (2, 2)])
    """
    dims = np.random.default_rng(seed).integers(d_min, d_max + 1, size=n + 1)
    return _equation([[k, k + 1] for k in range(n)]), [(int(dims[k]), int(dims[k + 1])) for k in range(n)]


def builtin_mps(sites: int, phys: int = 4, bond: int = 8, seed: int = 0) -> tuple[str, list[tuple[int, ...]]]:
    """The inner product ⟨ψ|φ⟩ of two open matrix-product states: ``2·sites`` operands.

    Site k of the ket is ``K[p_k, b_(k-1), b_k]`` and of the bra ``B[p_k, c_(k-1), c_k]``
    (the end sites lack the outer bond); physical sizes vary in [2, phys].

    >>> eq, shapes = builtin_mps(3, 2, 3)
    >>> eq, len(shapes)
    ('ab,ac,dbe,dcf,ge,gf->', 6)
    """
    if sites < 2:
        raise ValueError(f"an MPS needs at least 2 sites, not {sites}")
    rng = np.random.default_rng(seed)
    p = [int(x) for x in rng.integers(2, phys + 1, size=sites)]
    edge = iter(range(10 ** 6))
    phys_e = [next(edge) for _ in range(sites)]
    ket = [next(edge) for _ in range(sites - 1)]
    bra = [next(edge) for _ in range(sites - 1)]
    # number the edges in order of first appearance, site by site
    order: dict[int, int] = {}
    terms, shapes = [], []
    for k in range(sites):
        for bonds in (ket, bra):
            term = [phys_e[k]] + ([bonds[k - 1]] if k > 0 else []) + ([bonds[k]] if k < sites - 1 else [])
            terms.append([order.setdefault(e, len(order)) for e in term])
            shapes.append((p[k],) + (bond,) * (len(term) - 1))
    return _equation(terms), shapes


def builtin_lattice(rows: int, cols: int, d_min: int = 2, d_max: int = 4, seed: int = 0
                    ) -> tuple[str, list[tuple[int, ...]]]:
    """An open ``rows × cols`` square lattice: one operand per site, one index per bond.

    >>> builtin_lattice(2, 2, 3, 3)
    ('ab,ac,bd,cd->', [(3, 3), (3, 3), (3, 3), (3, 3)])
    """
    rng = np.random.default_rng(seed)
    edges: dict[tuple, int] = {}
    terms = []
    for r in range(rows):
        for c in range(cols):
            term = []
            for nb in ((r - 1, c), (r, c - 1), (r, c + 1), (r + 1, c)):
                if 0 <= nb[0] < rows and 0 <= nb[1] < cols:
                    key = tuple(sorted([(r, c), nb]))
                    term.append(edges.setdefault(key, len(edges)))
            terms.append(term)
    sizes = [int(x) for x in rng.integers(d_min, d_max + 1, size=len(edges))]
    return _equation(terms), [tuple(sizes[e] for e in term) for term in terms]


def builtin_tree(n: int, d_min: int = 4, d_max: int = 12, seed: int = 1) -> tuple[str, list[tuple[int, ...]]]:
    """A random tree of ``n`` operands: operand k > 0 shares one index with a random earlier operand.

    >>> eq, shapes = builtin_tree(4, 2, 2)
    >>> len(shapes), eq.count(",")
    (4, 3)
    """
    rng = np.random.default_rng(seed)
    terms: list[list[int]] = [[]]
    for k in range(1, n):
        parent = int(rng.integers(0, k))
        terms[parent].append(k - 1)
        terms.append([k - 1])
    sizes = [int(x) for x in rng.integers(d_min, d_max + 1, size=max(0, n - 1))]
    return _equation(terms), [tuple(sizes[e] for e in term) for term in terms]


def _network(name: str, family: str, source: str, made: tuple[str, Sequence]) -> Network:
    eq, shapes = made
    return Network(name, family, source, scalar_equation(eq), tuple(tuple(int(s) for s in sh) for sh in shapes))


def builtin_networks() -> list[Network]:
    """The fallback set (no einsum_benchmark): chain, lattice, tree and two MPS, fixed seeds."""
    return [
        _network("chain12", "matrix chain", "builtin_chain(12, 50, 300, seed=0)", builtin_chain(12, 50, 300, seed=0)),
        _network("lattice4x5", "lattice", "builtin_lattice(4, 5, 4, 6, seed=0)", builtin_lattice(4, 5, 4, 6, seed=0)),
        _network("tree40", "tree", "builtin_tree(40, 4, 12, seed=1)", builtin_tree(40, 4, 12, seed=1)),
        _network("mps25", "MPS ⟨ψ|φ⟩", "builtin_mps(25, 16, 32, seed=0)", builtin_mps(25, 16, 32, seed=0)),
        _network("mps100", "MPS ⟨ψ|φ⟩", "builtin_mps(100, 16, 16, seed=0)", builtin_mps(100, 16, 16, seed=0)),
    ]


def einsum_benchmark_networks(notes: list[str]) -> list[Network]:
    """The set from einsum_benchmark's generators (raises :class:`Unavailable` without the package)."""
    try:
        from einsum_benchmark import generators as gen
    except Exception as error:
        raise Unavailable(f"einsum_benchmark not importable ({type(error).__name__}: {error})") from None
    specs: list[tuple[str, str, str, Callable[[], tuple]]] = [
        ("chain12", "matrix chain", "structured.matrix_chain(num_matrices=12, min_dim=50, max_dim=300, seed=0)",
         lambda: gen.structured.matrix_chain(num_matrices=12, min_dim=50, max_dim=300, seed=0)),
        ("lm_first_last_d1", "language model (MERA)", "language_model.p_first_and_last(1, 8, 32)",
         lambda: gen.language_model.p_first_and_last(1, 8, 32)),
        ("lm_first_last_d2", "language model (MERA)", "language_model.p_first_and_last(2, 4, 16)",
         lambda: gen.language_model.p_first_and_last(2, 4, 16)),
        ("lattice4x5", "lattice", "structured.lattice([4, 5], d_min=4, d_max=6, seed=0)",
         lambda: gen.structured.lattice([4, 5], d_min=4, d_max=6, seed=0)),
        ("tree40", "tree", "structured.tree(n=40, d_min=4, d_max=12, n_outer=2, seed=1)",
         lambda: gen.structured.tree(n=40, d_min=4, d_max=12, n_outer=2, seed=1)),
        ("mps25", "MPS ⟨ψ|φ⟩", "quantum_computing.matrix_product_state(n=25, 4, 16, bond_dim=32, seed=0)",
         lambda: gen.quantum_computing.matrix_product_state(n=25, phys_dim_min=4, phys_dim_max=16,
                                                            bond_dim=32, seed=0)),
        ("mps100", "MPS ⟨ψ|φ⟩", "quantum_computing.matrix_product_state(n=100, 4, 16, bond_dim=16, seed=0)",
         lambda: gen.quantum_computing.matrix_product_state(n=100, phys_dim_min=4, phys_dim_max=16,
                                                            bond_dim=16, seed=0)),
        ("randreg60", "random 3-regular graph", "random.regular(60, 3, d_min=2, d_max=4, seed=0)",
         lambda: gen.random.regular(60, 3, d_min=2, d_max=4, seed=0)),
    ]
    out = []
    for name, family, source, make in specs:
        try:
            out.append(_network(name, family, "einsum_benchmark.generators." + source, make()))
        except Exception as error:   # e.g. random.regular needs networkx
            notes.append(f"{name} skipped: {type(error).__name__}: {str(error).strip().splitlines()[0][:120]}")
    return out


def planning_network(operands: int) -> Network:
    """An MPS ⟨ψ|φ⟩ of ⌈operands/2⌉ sites (small sizes: planning dominates), for the planning table."""
    sites = max(2, -(-operands // 2))
    return _network(f"mps{sites}", "MPS ⟨ψ|φ⟩", f"builtin_mps({sites}, 2, 4, seed=0)", builtin_mps(sites, 2, 4))


def _lattice_sides(operands: int) -> tuple[int, int]:
    rows = max(1, int(math.sqrt(operands)))
    return rows, max(2, round(operands / rows))


def planning_networks(operands: int) -> list[Network]:
    """One network of about ``operands`` operands per generator, small sizes (planning dominates):
    MPS, matrix chain, lattice, random tree, and a random 3-regular graph when einsum_benchmark is installed."""
    rows, cols = _lattice_sides(operands)
    out = [planning_network(operands),
           _network(f"chain{operands}", "matrix chain", f"builtin_chain({operands}, 2, 4, seed=0)",
                    builtin_chain(operands, 2, 4, seed=0)),
           _network(f"lattice{rows}x{cols}", "lattice", f"builtin_lattice({rows}, {cols}, 2, 2, seed=0)",
                    builtin_lattice(rows, cols, 2, 2, seed=0)),
           _network(f"tree{operands}", "tree", f"builtin_tree({operands}, 2, 4, seed=1)",
                    builtin_tree(operands, 2, 4, seed=1))]
    if operands > RANDREG_MAX_OPERANDS:      # its treewidth grows with its size: contracting it, not planning, dominates
        return out
    try:
        from einsum_benchmark import generators as gen
        count = operands + operands % 2          # a 3-regular graph needs an even number of vertices
        out.append(_network(f"randreg{count}", "random 3-regular graph",
                            f"einsum_benchmark.generators.random.regular({count}, 3, d_min=2, d_max=2, seed=0)",
                            gen.random.regular(count, 3, d_min=2, d_max=2, seed=0)))
    except Exception:
        pass
    return out


# ---------------------------------------------------------------- contenders

@dataclass
class Prepared:
    """A network ready to run: its program, inputs, the shared path and opt_einsum's path info."""

    network: Network
    program: str
    names: tuple[str, ...]
    inputs: dict[str, np.ndarray]
    path: list
    info: Any


def prepare(network: Network, seed: int = 0) -> Prepared:
    """Program text, inputs and the forward path (einderiv's path search) of a network."""
    program, names = network_program(network.eq)
    path, info = opt_einsum.contract_path(network.eq, *network.shapes, shapes=True,
                                          optimize=einderiv_path(network.eq, network.shapes))
    return Prepared(network, program, names, make_inputs(network.eq, network.shapes, seed), path, info)


def _to_numpy(value) -> Any:
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    if hasattr(value, "detach"):
        return value.detach().numpy()
    return np.asarray(value)


def _jax_functions(p: Prepared) -> tuple[Callable, Callable]:
    """(forward, gradient) of jax, jit-compiled, closed over device arrays."""
    jax = rival("jax")
    eq, path, names = p.network.eq, p.path, p.names

    def value(*xs):
        return opt_einsum.contract(eq, *xs, optimize=path, backend="jax")

    forward = jax.jit(value)
    gradient = jax.jit(jax.grad(value, argnums=tuple(range(len(names)))))
    args = [jax.device_put(p.inputs[n]) for n in names]

    def run_forward():
        return jax.block_until_ready(forward(*args))

    def run_gradient():
        return dict(zip(names, jax.block_until_ready(gradient(*args))))
    return run_forward, run_gradient


def _torch_functions(p: Prepared) -> tuple[Callable, Callable]:
    """(forward, gradient) of torch: opt_einsum's torch backend, autograd for the gradient."""
    torch = rival("torch")
    eq, path, names = p.network.eq, p.path, p.names
    leaves = [torch.from_numpy(p.inputs[n]).requires_grad_(True) for n in names]
    plain = [torch.from_numpy(p.inputs[n]) for n in names]

    def run_forward():
        with torch.no_grad():
            return opt_einsum.contract(eq, *plain, optimize=path, backend="torch")

    def run_gradient():
        value = opt_einsum.contract(eq, *leaves, optimize=path, backend="torch")
        return dict(zip(names, torch.autograd.grad(value, leaves)))
    return run_forward, run_gradient


class _Memo:
    """Builds each rival's functions once per network (jax compiles once, not once per thread setting).

    ``jax_max_operands`` skips jax above that many operands (the quick pass: its compilation is slow).
    """

    def __init__(self, jax_max_operands: int | None = None):
        self._made: dict[tuple[str, str], tuple[Callable, Callable]] = {}
        self._jax_max_operands = jax_max_operands

    def get(self, library: str, p: Prepared, which: int) -> Callable:
        key = (library, p.network.name)
        if library == "jax" and self._jax_max_operands is not None and p.network.operands > self._jax_max_operands:
            raise Unavailable(f"quick pass: jax only up to {self._jax_max_operands} operands (its compilation "
                              "takes seconds to tens of seconds); run without --quick")
        if key not in self._made:
            self._made[key] = (_jax_functions if library == "jax" else _torch_functions)(p)
        return self._made[key][which]


def forward_contenders(p: Prepared, memo: _Memo) -> list[Contender]:
    """opt_einsum's cached forward (the yardstick), then jax's and torch's forwards."""
    expression = opt_einsum.contract_expression(p.network.eq, *p.network.shapes, optimize=p.path)
    arrays = [p.inputs[n] for n in p.names]
    return [Contender("opt_einsum forward (cached expression)", "limit", lambda: (lambda: expression(*arrays))),
            Contender("jax.jit forward", "rival", lambda: memo.get("jax", p, 0), to_numpy=_to_numpy),
            Contender("torch forward", "rival", lambda: memo.get("torch", p, 0), to_numpy=_to_numpy)]


def gradient_contenders(p: Prepared, memo: _Memo) -> list[Contender]:
    """einderiv's all-operand gradient (the reference of the check), then jax's and torch's."""
    import einderiv

    names = list(p.names)
    return [Contender("einderiv.grad (cached plan)", "einderiv",
                      lambda: (lambda: einderiv.grad(p.program, names, p.inputs)), reset=einderiv_reset),
            Contender("jax.jit(jax.grad)", "rival", lambda: memo.get("jax", p, 1), to_numpy=_to_numpy),
            Contender("torch autograd", "rival", lambda: memo.get("torch", p, 1), to_numpy=_to_numpy)]


def timed_pairs(session: Session, label: str, p: Prepared, memo: _Memo, budget: float,
                max_repeats: int) -> tuple[list[Row], list[Row]]:
    """(forward rows, gradient rows): each library's forward and gradient timed round-robin together,
    apart from the other libraries, so that one library's threads and cache traffic slow only its own
    calls; every forward is checked against opt_einsum's value, every gradient against einderiv's."""
    import einderiv

    expression = opt_einsum.contract_expression(p.network.eq, *p.network.shapes, optimize=p.path)
    references = [expression(*[p.inputs[n] for n in p.names]), einderiv.grad(p.program, list(p.names), p.inputs)]
    forward, gradient = [], []
    for f, g in zip(forward_contenders(p, memo), gradient_contenders(p, memo)):
        rows = compare(session, f"{label} {f.name.split()[0]}", [f, g], references=references, rtol=RTOL,
                       budget=1.5 * budget, min_repeats=3, max_repeats=max_repeats)
        forward.append(rows[0])
        gradient.append(rows[1])
    return forward, gradient


# ---------------------------------------------------------------- the group

@dataclass
class Result:
    """One network at one thread setting: the forward rows and the gradient rows."""

    network: Network
    threads: int
    info: Any
    forward: list[Row]
    gradient: list[Row]

    def pair(self, library: str) -> tuple[Row | None, Row | None]:
        """(forward row, gradient row) of ``einderiv`` (forward: opt_einsum's), ``jax`` or ``torch``."""
        if library == "einderiv":
            return find(self.forward, "limit"), find(self.gradient, "einderiv")
        pick = (lambda rows: next((r for r in rows if r.name.startswith(library)), None))
        return pick(self.forward), pick(self.gradient)

    def ratio(self, library: str) -> float | None:
        f, g = self.pair(library)
        if f is None or g is None or not f.ok or not g.ok or f.timing.min <= 0:
            return None
        return g.timing.min / f.timing.min


def _t(row: Row | None) -> str:
    return fmt_time(row.timing.min) if row is not None and row.ok else "–"


def _r(x: float | None) -> str:
    return f"{x:.2f}×" if x is not None else "–"


def _err(rows: Sequence[Row], library: str) -> str:
    row = next((r for r in rows if r.name.startswith(library)), None)
    if row is None or row.status.startswith("skipped"):
        return "–"
    if row.status.startswith(("MISMATCH", "FAILED")):
        return "**" + row.status.split(";")[0] + "**"
    return f"{row.error:.1e}" if row.error is not None else "–"


def summary_table(results: Sequence[Result]) -> str:
    """One row per network: size, FLOPs, the three forward/gradient pairs and their ratios, errors."""
    rows = []
    for r in results:
        n = r.network
        (ef, eg), (jf, jg), (tf, tg) = r.pair("einderiv"), r.pair("jax"), r.pair("torch")
        rows.append([n.name, n.operands, fmt_num(r.info.opt_cost), fmt_num(r.info.largest_intermediate),
                     _t(ef), _t(eg), _r(r.ratio("einderiv")),
                     _t(jf), _t(jg), _r(r.ratio("jax")),
                     _t(tf), _t(tg), _r(r.ratio("torch")),
                     _err(r.gradient, "jax"), _err(r.gradient, "torch")])
    return md_table(["network", "operands", "forward FLOPs", "largest intermediate",
                     "opt_einsum fwd", "einderiv grad", "einderiv ÷ fwd",
                     "jax fwd", "jax grad", "jax ÷ own fwd",
                     "torch fwd", "torch grad", "torch ÷ own fwd",
                     "rel. err jax vs einderiv", "rel. err torch vs einderiv"], rows)


def cold_table(results: Sequence[Result]) -> str:
    """First calls: einderiv with every cache cleared (planning + path search + run); jax with compilation."""
    rows = []
    for r in results:
        e = find(r.gradient, "einderiv")
        j = next((x for x in r.gradient if x.name.startswith("jax")), None)
        rows.append([r.network.name, r.network.operands, len(network_program(r.network.eq)[0]),
                     fmt_time(e.timing.cold) if e and e.timing else "–", _t(e),
                     fmt_time(j.timing.cold) if j and j.timing else "–"])
    return md_table(["network", "operands", "program (characters)", "einderiv cold grad", "einderiv warm grad",
                     "jax first grad (trace + compile)"], rows)


def networks_table(networks: Sequence[Network]) -> str:
    """Where each network came from."""
    return md_table(["network", "family", "operands", "generator (fixed seed)"],
                    [[n.name, n.family, n.operands, f"`{n.source}`"] for n in networks])


@dataclass
class PlanningRow:
    operands_asked: int
    network: Network
    cold: float
    warm: float
    path_search: float
    searches: int


def planning_rows(session: Session) -> list[PlanningRow]:
    """Cold and warm all-operand gradient times of networks of 5 … 200 operands, per generator
    (BLAS at 1 thread), the path search of the whole product alone, and the searches a cold call runs."""
    import einderiv
    from einderiv.numeric import paths

    out = []
    for asked in PLANNING_SIZES:
        for network in planning_networks(asked):
            p = prepare(network)
            names = list(p.names)

            def call():
                return einderiv.grad(p.program, names, p.inputs)
            cold_s = cold(call, 1 if session.quick else 3)
            searches = paths.search_count()
            warm_s = best(call, 3 if session.quick else 10)
            sublists, sizes = _sublists(network.eq, network.shapes)
            paths.clear_cache()
            t0 = time.perf_counter()
            paths.plan_contraction(sublists, [], sizes, 2 ** 62)
            out.append(PlanningRow(asked, network, cold_s, warm_s, time.perf_counter() - t0, searches))
            session.log(f"planning {network.name} ({network.operands} operands): cold {fmt_time(cold_s)}, "
                        f"warm {fmt_time(warm_s)}")
    return out


def planning_table(rows: Sequence[PlanningRow]) -> str:
    """Cold, warm, their difference (planning), per operand, the search of the whole product alone,
    and how many path searches the cold call ran."""
    out = []
    for r in rows:
        plan = max(0.0, r.cold - r.warm)
        out.append([r.operands_asked, r.network.family, r.network.operands, r.network.name, fmt_time(r.cold),
                    fmt_time(r.warm), fmt_time(plan), fmt_time(plan / r.network.operands), fmt_time(r.path_search),
                    r.searches])
    return md_table(["operands asked", "generator", "operands", "network", "cold grad (caches cleared)", "warm grad",
                     "cold − warm (planning)", "planning per operand", "path search of the product alone",
                     "path searches (cold call)"], out)


@dataclass
class SlicingRow:
    network: Network
    limit: int
    unlimited_largest: int
    largest: int
    sliced_steps: int
    slices: int
    flops: int
    overhead: int
    unlimited_grad: float
    limited_grad: float
    cold: float
    error: float


#: The slicing table: these networks, each under a limit of 1/SLICING_SHRINK of its largest intermediate
#: (never below its largest operand, which its gradient must hold).
SLICING_NETWORKS = ("lattice4x5", "tree40", "randreg60")
SLICING_SHRINK = 8


def slicing_rows(session: Session, prepared: Sequence["Prepared"]) -> list[SlicingRow]:
    """What slicing does: each network's all-operand gradient under a small memory limit."""
    import einderiv

    out = []
    for p in prepared:
        if p.network.name not in SLICING_NETWORKS:
            continue
        names = list(p.names)
        full = einderiv.plan(p.program, names, {n: a.shape for n, a in p.inputs.items()}, memory_limit=2 ** 62)
        operand = max(a.nbytes for a in p.inputs.values())
        largest = full.largest_bytes
        limit = max(operand, largest // SLICING_SHRINK)
        report = einderiv.plan(p.program, names, {n: a.shape for n, a in p.inputs.items()}, memory_limit=limit)
        sliced = [s for s in report.steps if s.slices > 1]

        def limited():
            return einderiv.grad(p.program, names, p.inputs, memory_limit=limit)
        cold_s = cold(limited, 1)
        reference = einderiv.grad(p.program, names, p.inputs)
        got = limited()
        error = max(float(np.max(np.abs(got[n] - reference[n])) / max(np.max(np.abs(reference[n])), 1e-300))
                    for n in names)
        unlimited_s = best(lambda: einderiv.grad(p.program, names, p.inputs), 5)
        limited_s = best(limited, 5)
        out.append(SlicingRow(p.network, limit, largest, report.largest_bytes, len(sliced),
                              sum(s.slices for s in sliced), report.flops, report.slicing_overhead, unlimited_s,
                              limited_s, cold_s, error))
        session.log(f"slicing {p.network.name}: limit {limit:,} bytes, {len(sliced)} sliced steps, "
                    f"grad {fmt_time(limited_s)} vs {fmt_time(unlimited_s)}")
    return out


def slicing_table(rows: Sequence[SlicingRow]) -> str:
    out = []
    for r in rows:
        base = r.flops - r.overhead
        out.append([r.network.name, r.network.operands, f"{r.limit:,}", f"{r.unlimited_largest:,}", f"{r.largest:,}",
                    r.sliced_steps, f"{r.slices:,}", fmt_num(base), f"{fmt_num(r.overhead)} (+{100 * r.overhead / max(base, 1):.1f}%)",
                    fmt_time(r.unlimited_grad), fmt_time(r.limited_grad), f"{r.limited_grad / r.unlimited_grad:.2f}×",
                    fmt_time(r.cold), f"{r.error:.1e}"])
    return md_table(["network", "operands", "memory limit (bytes)", "largest tensor, unlimited (bytes)",
                     "largest tensor, limited (bytes)", "sliced steps", "chunks (all sliced steps)",
                     "gradient FLOPs without slicing's extra", "slicing's extra FLOPs", "warm grad, unlimited",
                     "warm grad, limited", "limited ÷ unlimited", "cold grad, limited", "max rel. diff."], out)


XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _single_threaded_xla() -> str:
    """Ask XLA for one CPU thread (before jax is imported); returns a note saying what applied."""
    if "jax" in sys.modules:
        return ("jax was imported by an earlier group, so XLA runs with the flags it had then "
                f"(XLA_FLAGS={os.environ.get('XLA_FLAGS', '(unset)')!r}).")
    if os.environ.get("XLA_FLAGS"):
        return f"XLA_FLAGS was set by the caller ({os.environ['XLA_FLAGS']!r}) and kept."
    os.environ["XLA_FLAGS"] = XLA_ONE_THREAD
    return (f"jax runs XLA on one CPU thread (XLA_FLAGS={XLA_ONE_THREAD!r}) in both tables: threadpoolctl "
            "cannot limit XLA's pool, and its idle threads would otherwise compete with the others on this "
            "shared machine.")


def run(session: Session) -> Report:
    """Run the group and return its report."""
    intro = __doc__.split("\n\n", 1)[1]
    report = Report("networks", "Gradients of tensor networks (one many-operand product)", intro)
    report.notes.append(_single_threaded_xla())
    report.skipped.update(skipped_rivals(RIVALS))
    try:
        networks = einsum_benchmark_networks(report.notes)
        origin = "einsum_benchmark generators"
    except Unavailable as why:
        networks = builtin_networks()
        origin = f"built-in generators ({why})"
    if session.quick:
        networks = [n for n in networks if n.name in QUICK_NETWORKS]
        origin += f"; quick pass: {', '.join(n.name for n in networks)} only"
    report.add("Networks", f"From the {origin}; every output index is summed (scalar value), every operand "
                           "differentiated.\n\n" + networks_table(networks))
    prepared = []
    for n in networks:
        p = prepare(n)
        prepared.append(p)
        session.log(f"{n.name}: {n.operands} operands, {fmt_num(p.info.opt_cost)} FLOPs, "
                    f"program of {len(p.program)} characters")
    budget = 0.15 if session.quick else 0.6
    max_repeats = 5 if session.quick else 20
    memo = _Memo(QUICK_JAX_MAX_OPERANDS if session.quick else None)
    results: dict[int, list[Result]] = {}
    threads = THREADS[:1] if session.quick else THREADS
    for t in threads:
        with blas_threads(t) as limited:
            if not limited:
                report.notes.append("threadpoolctl is not installed: BLAS ran with its default thread count "
                                    "(`pip install threadpoolctl`).")
            for p in prepared:
                label = f"{p.network.name} threads={t}"
                fwd, grad = timed_pairs(session, label, p, memo, budget, max_repeats)
                report.check_rows(label + " forward", fwd)
                report.check_rows(label + " gradient", grad)
                results.setdefault(t, []).append(Result(p.network, t, p.info, fwd, grad))
        if not limited:
            break
    for t, rs in results.items():
        report.add(f"BLAS threads = {t}", summary_table(rs))
        ratios = [(r.network.name, r.ratio("einderiv")) for r in rs]
        measured = [q for _, q in ratios if q is not None]
        if measured:
            worst = max((x for x in ratios if x[1] is not None), key=lambda x: x[1])
            report.target(f"threads={t}: cached all-operand gradient ≤ {RATIO_TARGET:g}× the cached opt_einsum "
                          "forward, on every network",
                          f"worst {worst[0]} {worst[1]:.2f}×, median {float(np.median(measured)):.2f}×",
                          worst[1] <= RATIO_TARGET)
    first = results[threads[0]]
    report.add(f"First calls (BLAS threads = {threads[0]})", cold_table(first))
    session.log("slicing table")
    with blas_threads(1):
        sliced = slicing_rows(session, prepared)
    if sliced:
        report.add(f"Slicing: the all-operand gradient under a memory limit of 1/{SLICING_SHRINK} of the largest "
                   "intermediate (BLAS threads = 1)", slicing_table(sliced))
    session.log("planning table")
    with blas_threads(1):
        plan = planning_rows(session)
    report.add("Planning time: cold gradient from 5 to 200 operands, per generator (small sizes: physical ≤ 2, "
               "bonds 2–4; BLAS threads = 1)", planning_table(plan))
    report.notes += [
        "Every contender contracts along the same path: the one einderiv's path search (einderiv.numeric.paths: "
        "optimal up to 4 operands, time-budgeted dynamic programming up to 14, then greedy and random-greedy, "
        "and cotengra when installed and the budget allows) finds; einderiv's cold call searches again (its "
        "caches cleared), so a time-budgeted random search may settle on a slightly different order.",
        "einderiv's gradient includes its forward pass (reverse mode needs the intermediates); so do jax's and "
        "torch's. Each rival's ratio is to its own forward, so it measures the reverse-mode overhead of that "
        "library, not its speed relative to opt_einsum.",
        "jax compiles once, at the first thread setting; its cold time (trace + compile) is in the first-calls "
        "table.",
        "The gradient check compares each rival's gradient, every operand, with einderiv's: max |Δ| / max |ref| "
        f"per operand, worst operand reported; over {RTOL:.0e} is a failure (and the row is not timed).",
        "Inputs: uniform in [0.5, 1) / √size, then all scaled alike so that the network's value is exactly 1: "
        "no overflow or underflow in float64 at any size.",
    ]
    report.plot = lambda plt, path: _plot(plt, path, results, plan)
    return report


def _plot(plt, path: str, results: dict[int, list[Result]], plan: Sequence[PlanningRow]) -> None:
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [2, 1]})
    rs = next(iter(results.values()))
    t = rs[0].threads
    libraries = ("einderiv", "jax", "torch")
    width = 0.8 / len(libraries)
    for k, lib in enumerate(libraries):
        values = [r.ratio(lib) or 0.0 for r in rs]
        xs = [i + (k - 1) * width for i in range(len(rs))]
        label = "einderiv ÷ opt_einsum forward" if lib == "einderiv" else f"{lib} ÷ its own forward"
        ax.bar(xs, values, width, label=label)
    ax.axhline(RATIO_TARGET, color="grey", linestyle="--", linewidth=1, label=f"{RATIO_TARGET:g}× target")
    ax.set_xticks(range(len(rs)))
    ax.set_xticklabels([f"{r.network.name}\n({r.network.operands})" for r in rs], fontsize=7)
    ax.set_ylabel("cached gradient ÷ cached forward")
    ax.set_title(f"All-operand gradient cost, BLAS threads = {t} (lower is better)")
    ax.legend(fontsize=8)
    for family in dict.fromkeys(r.network.family for r in plan):
        rows = [r for r in plan if r.network.family == family]
        bx.loglog([r.network.operands for r in rows], [r.cold for r in rows], "o-", label=f"cold grad, {family}")
    bx.set_xlabel("operands")
    bx.set_ylabel("seconds")
    bx.set_title("Planning (cold all-operand gradient): no cliff")
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
