"""Hypothesis strategies for random, valid einderiv programs (see tests/test_differential.py).

A program has 2–6 statements over a few inputs of ranks 0–2 (sizes 1–3). Every
tensor axis has a *dimension kind* (``a``, ``b``, ``c``, each with one size), so
index names can be drawn freely while sizes stay consistent. Statements are

* renames ``H1[i,j] = H0[i,j]``, transposes ``H1[j,i] = H0[i,j]`` and diagonals
  ``H1[i] = H0[i,i]`` (or traces ``H1 = H0[i,i]``) of earlier tensors;
* general right-hand sides: sums of products of references (sharing indices:
  contractions, Hadamard products, diagonals, broadcasting), numbers,
  parenthesised sums (which the language distributes), smooth functions
  (``exp sin cos tanh sigmoid softplus``; ``log``/``sqrt`` of positive expressions),
  integer powers, positive denominators, ``sum[...]`` over indices of its body and
  factors that cancel (``x[k] / x[k]``, ``log(exp(...))``).
  The left-hand side is a random subset, in random order, of the indices that
  appear, so the rest are summed. Half the statements are *simple*: sums of
  products of references and numbers only.

Later statements prefer earlier intermediates, so intermediates are used several
times. ``kinks=True`` adds ``relu abs max min``.

>>> from hypothesis import given, settings
>>> @given(programs())
... @settings(max_examples=3, derandomize=True, deadline=None)
... def check(case):
...     assert case.text and case.inputs()
>>> check()
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

__all__ = ["Case", "programs"]

INPUT_NAMES = ("x", "y", "w", "A", "B", "s", "u")
INDEX_NAMES = ("i", "j", "k", "l", "m", "n", "p", "q", "r", "t", "v", "e", "f", "g", "h")
NUMBERS = ("2", "0.5", "3", "1.5")
SMOOTH = ("exp", "sin", "cos", "tanh", "sigmoid", "softplus")
KINKS = ("relu", "abs")


@dataclass(frozen=True)
class Case:
    """A program text, the shapes of its inputs and a seed for their values."""

    text: str
    shapes: dict = field(hash=False)
    seed: int = 0

    def inputs(self, seed: int | None = None) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed if seed is None else seed)
        return {name: np.asarray(rng.uniform(-1.0, 1.0, size=shape)) for name, shape in self.shapes.items()}

    def random_like(self, name: str, seed: int) -> np.ndarray:
        return np.asarray(np.random.default_rng(seed).uniform(-1.0, 1.0, size=self.shapes[name]))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.shapes)


@dataclass
class _Tensor:
    name: str
    kinds: tuple[str, ...]
    is_input: bool


class _Statement:
    """Index bookkeeping for one statement: names → kinds, names bound by ``sum``."""

    def __init__(self, draw, pool, kinks, simple=False):
        self.draw, self.pool, self.kinks, self.simple = draw, pool, kinks, simple
        self.kinds: dict[str, str] = {}
        self.retired: set[str] = set()
        self.used: set[str] = set()

    def index(self, kind: str) -> str:
        existing = [n for n, k in self.kinds.items() if k == kind and n not in self.retired]
        if existing and (len(self.kinds) >= 6 or self.draw(st.integers(0, 2)) > 0):
            return self.draw(st.sampled_from(existing))
        name = next(n for n in INDEX_NAMES + tuple(f"i{k}" for k in range(99)) if n not in self.kinds)
        self.kinds[name] = kind
        return name

    def tensor(self) -> _Tensor:
        inter = [t for t in self.pool if not t.is_input]
        if inter and self.draw(st.integers(0, 3)) > 0:
            # prefer recent intermediates
            return self.draw(st.sampled_from(inter[::-1]))
        return self.draw(st.sampled_from(self.pool))

    def ref(self) -> str:
        t = self.tensor()
        self.used.add(t.name)
        if not t.kinds:
            return t.name
        return f"{t.name}[{','.join(self.index(k) for k in t.kinds)}]"

    # -- expressions
    def expr(self, depth: int) -> str:
        n = self.draw(st.integers(1, 3 if depth == 0 else 2))
        out = self.term(depth)
        for _ in range(n - 1):
            out += self.draw(st.sampled_from((" + ", " - "))) + self.term(depth)
        return out

    def term(self, depth: int) -> str:
        parts = []
        if self.draw(st.integers(0, 4)) == 0:
            parts.append(self.draw(st.sampled_from(NUMBERS)))
        parts.append(self.ref())
        for _ in range(self.draw(st.integers(0, 2 if depth < 2 else 1))):
            parts.append(self.factor(depth))
        out = parts[0]
        for prev, nxt in zip(parts, parts[1:]):
            # a bare name followed by "(" would be a call; numbers side by side are unclear
            sep = " * " if nxt.startswith("(") or self.draw(st.booleans()) else " "
            out += sep + nxt
        return out

    def factor(self, depth: int) -> str:
        if depth >= 2 or self.simple:
            if self.draw(st.integers(0, 2)) == 0:
                return self.draw(st.sampled_from(NUMBERS))
            return self.ref()
        choice = self.draw(st.sampled_from(("ref", "ref", "ref", "num", "paren", "func", "pow", "div", "sum",
                                            "log", "kink", "cancel")))
        if choice == "ref":
            return self.ref()
        if choice == "num":
            return self.draw(st.sampled_from(NUMBERS))
        if choice == "paren":
            return f"({self.expr(depth + 1)})"
        if choice == "cancel":      # factors that cancel: their indices are still summed
            if self.draw(st.booleans()):
                r = self.ref()
                return f"{r} / {r}"
            return f"log(exp({self.expr(depth + 1)}))"
        if choice == "func":
            return f"{self.draw(st.sampled_from(SMOOTH))}({self.expr(depth + 1)})"
        if choice == "kink" and self.kinks:
            which = self.draw(st.sampled_from(KINKS + ("max", "min")))
            if which in ("max", "min"):
                second = self.draw(st.sampled_from(("0", "0.5", "ref")))
                second = self.ref() if second == "ref" else second
                return f"{which}({self.expr(depth + 1)}, {second})"
            return f"{which}({self.expr(depth + 1)})"
        if choice == "pow":
            base = self.ref() if self.draw(st.booleans()) else f"({self.expr(depth + 1)})"
            return f"{base}{self.draw(st.sampled_from(('^', '**')))}{self.draw(st.sampled_from(('2', '3')))}"
        if choice == "div":
            form = self.draw(st.integers(0, 2))
            if form == 0:
                return f"(1 / {self.positive(depth + 1)})"
            if form == 1:
                return f"{self.positive(depth + 1)}^{self.draw(st.sampled_from(('-1', '0.5', '-2')))}"
            return f"{self.positive(depth + 1)}^({self.expr(depth + 1)})"     # an expression as exponent
        if choice == "log":
            return f"{self.draw(st.sampled_from(('log', 'sqrt')))}({self.positive(depth + 1)})"
        if choice == "sum":
            before = set(self.kinds)
            body = self.expr(depth + 1)
            fresh = [n for n in self.kinds if n not in before and n not in self.retired]
            if not fresh:
                return f"({body})"
            bound = self.draw(st.lists(st.sampled_from(fresh), min_size=1, max_size=len(fresh), unique=True))
            self.retired.update(bound)
            return f"sum[{','.join(bound)}]({body})"
        return self.ref()

    def positive(self, depth: int) -> str:
        """A parenthesised expression that is positive for every input."""
        e = self.expr(depth)
        return self.draw(st.sampled_from((f"(1 + ({e})^2)", f"exp({e})", f"(sigmoid({e}) + 0.5)",
                                          f"(({e})^2 + 0.5)")))

    def free(self) -> list[str]:
        return [n for n in self.kinds if n not in self.retired]


@st.composite
def programs(draw, scalar_output: bool = False, kinks: bool = False, min_statements: int = 2,
             max_statements: int = 6) -> Case:
    """A random valid program (as a :class:`Case`)."""
    sizes = {k: draw(st.integers(1, 3)) for k in "abc"}
    n_inputs = draw(st.integers(1, 4))
    names = draw(st.permutations(INPUT_NAMES))[:n_inputs]
    pool = []
    for name in names:
        rank = draw(st.sampled_from((0, 1, 1, 2, 2, 2)))
        pool.append(_Tensor(name, tuple(draw(st.sampled_from("abc")) for _ in range(rank)), True))
    lines = []
    n_statements = draw(st.integers(min_statements, max_statements))
    for k in range(n_statements):
        last = k == n_statements - 1
        name = "L" if last and scalar_output else f"H{k}"
        kind = "general" if last and scalar_output else \
            draw(st.sampled_from(("rename", "transpose", "diag", "general", "general")))
        stmt = _Statement(draw, pool, kinks, simple=draw(st.booleans()))   # simple: sums of products only
        line = None
        if kind == "rename":
            t = stmt.tensor()
            idx = [INDEX_NAMES[a] for a in range(len(t.kinds))]
            line = f"{name}[{','.join(idx)}] = {t.name}[{','.join(idx)}]" if idx else f"{name} = {t.name}"
            out_kinds = t.kinds
        elif kind == "transpose":
            ts = [t for t in pool if len(t.kinds) >= 2]
            if ts:
                t = draw(st.sampled_from(ts[::-1]))
                idx = [INDEX_NAMES[a] for a in range(len(t.kinds))]
                perm = draw(st.permutations(range(len(idx))).filter(lambda p: list(p) != sorted(p)))
                line = f"{name}[{','.join(idx[p] for p in perm)}] = {t.name}[{','.join(idx)}]"
                out_kinds = tuple(t.kinds[p] for p in perm)
        elif kind == "diag":
            ts = [t for t in pool if len(t.kinds) >= 2 and len(set(t.kinds)) < len(t.kinds)]
            if ts:
                t = draw(st.sampled_from(ts[::-1]))
                a, b = next((a, b) for a in range(len(t.kinds)) for b in range(a + 1, len(t.kinds))
                            if t.kinds[a] == t.kinds[b])
                idx = [INDEX_NAMES[p] for p in range(len(t.kinds))]
                idx[b] = idx[a]
                trace = draw(st.booleans())
                lhs = [] if trace else list(dict.fromkeys(idx))
                lhs_text = f"[{','.join(lhs)}]" if lhs else ""
                line = f"{name}{lhs_text} = {t.name}[{','.join(idx)}]"
                out_kinds = tuple(t.kinds[idx.index(i)] for i in lhs)
        if line is None:
            rhs = stmt.expr(0)
            free = stmt.free()
            if last and scalar_output:
                lhs = []
            else:
                order = draw(st.permutations(free))
                lhs = list(order[:draw(st.integers(0, min(3, len(free))))])
            lhs_text = f"[{','.join(lhs)}]" if lhs else ""
            line = f"{name}{lhs_text} = {rhs}"
            out_kinds = tuple(stmt.kinds[i] for i in lhs)
        lines.append(line)
        pool.append(_Tensor(name, out_kinds, False))
    text = draw(st.sampled_from(("\n", "; "))).join(lines)
    from reference import parse_reference   # the inputs the text really uses
    used = parse_reference(text).input_ranks
    shapes = {t.name: tuple(sizes[k] for k in t.kinds) for t in pool if t.is_input and t.name in used}
    return Case(text, shapes, draw(st.integers(0, 2**31 - 1)))


@st.composite
def reuse_programs(draw) -> Case:
    """Programs that rename, transpose or take the diagonal of an intermediate ``A`` and use the
    copies and ``A`` itself several times, ending in a scalar product of two of them:
    ``A[i] = x[i] y[i]; B[i] = A[i]; C[i] = A[i] + z[i]; L = B[i] C[i]``."""
    sizes = {k: draw(st.integers(1, 3)) for k in "ab"}
    kinds = draw(st.sampled_from([("a",), ("a", "b"), ("a", "a")]))
    letters = "ijk"[:len(kinds)]
    idx = ",".join(letters)
    shapes = {"x": tuple(sizes[k] for k in kinds), "y": tuple(sizes[k] for k in kinds)}
    lines = [draw(st.sampled_from([f"A[{idx}] = x[{idx}] y[{idx}]", f"A[{idx}] = x[{idx}] + y[{idx}]",
                                   f"A[{idx}] = 2 x[{idx}]"]))]
    pool = [("A", kinds)]
    for n in range(draw(st.integers(2, 4))):
        name = "BCDE"[n]
        src, sk = draw(st.sampled_from(pool))
        sidx = ",".join("ijk"[:len(sk)])
        ops = ["rename", "plus", "times", "const", "scale"]
        if len(sk) == 2:
            ops.append("transpose")
        if len(sk) == 2 and sk[0] == sk[1]:
            ops.append("diag")
        op = draw(st.sampled_from(ops))
        if op == "rename":
            lines.append(f"{name}[{sidx}] = {src}[{sidx}]")
            out = sk
        elif op == "transpose":
            lines.append(f"{name}[j,i] = {src}[i,j]")
            out = sk[::-1]
        elif op == "diag":
            lines.append(f"{name}[i] = {src}[i,i]")
            out = sk[:1]
        else:
            z = f"z{n}"
            shapes[z] = tuple(sizes[k] for k in sk)
            rhs = {"plus": f"{src}[{sidx}] + {z}[{sidx}]", "times": f"{src}[{sidx}] {z}[{sidx}]",
                   "const": f"{src}[{sidx}] + 1", "scale": f"3 {src}[{sidx}]"}[op]
            if op in ("const", "scale"):
                del shapes[z]
            lines.append(f"{name}[{sidx}] = {rhs}")
            out = sk
        pool.append((name, out))
    (p, pk), (q, qk) = draw(st.lists(st.sampled_from(pool), min_size=2, max_size=2))
    pidx = ",".join("ijk"[:len(pk)])
    qidx = ",".join("ijk"[:len(qk)]) if qk == pk else ",".join("lmn"[:len(qk)])
    extra = draw(st.sampled_from(["", f" + {p}[{pidx}]", " + 1"]))
    lines.append(f"L = {p}[{pidx}] {q}[{qidx}]{extra}")
    text = "; ".join(lines)
    from reference import parse_reference
    used = parse_reference(text).input_ranks
    return Case(text, {k: v for k, v in shapes.items() if k in used}, draw(st.integers(0, 2**31 - 1)))
