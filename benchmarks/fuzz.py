"""The long fuzz run: hostile text, broken programs and wrong inputs against einderiv.

Each case is one of

* **random text** — characters drawn from the grammar's own symbols, letters,
  digits and stray Unicode, fed to ``einderiv.parse``;
* **a mutation of a valid program** — a deleted bracket, a swapped operator, a
  stray Unicode character, a very long name, deep nesting… — parsed and, if it
  still parses, evaluated and differentiated with inputs made to fit;
* **a random valid program with wrong inputs** — wrong shapes, missing names,
  strings, ``None``, ragged lists, complex numbers, bad ``sizes``, ``of``,
  ``wrt`` or ``memory_limit`` — fed to evaluate, grad, jacobian, vjp, jvp and
  the symbolic derivative.

The only exception allowed to escape is an :class:`einderiv.EinderivError` with
a non-empty message; every case must finish within ``--slow`` seconds of CPU time
(``time.process_time``: a loaded machine does not make a case slow). The run
prints the cases tried, the outcomes by class, the count of other exceptions
(must be 0) and the slowest case; the exit status is 1 if any case broke a rule.

    python benchmarks/fuzz.py --cases 100000 --seconds 1500 --seed 0

A tool beside the benchmark harness (``python -m benchmarks``), not one of its
groups: it checks robustness, times nothing, and runs for as long as it is told.
"""

from __future__ import annotations

import argparse
import collections
import faulthandler
import random
import re
import signal
import string
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import einderiv

# ---------------------------------------------------------------- material

CORPUS = (
    "F[i,k] = W[i,j] X[j,k]",
    "y[i] = A[i,j] x[j] + b[i]",
    "L = x[i] A[i,j] x[j]",
    "H0[n,h] = X[n,d] W1[d,h]\nH1[n,h] = H0[n,h] + b1[h]\nH2[n,h] = max(0, H1[n,h])\n"
    "H3[n,c] = H2[n,h] W2[h,c]\nZ[n,c] = H3[n,c] + b2[c]\nL = (Z[n,c] - T[n,c])^2 / (2 N)",
    "R[n,j] = X[n,i] W[i,j] - Y[n,j]; L = R[n,j]^2",
    "y[i] = exp(sum[j](A[i,j] x[j]))",
    "z[i] = A[i,j] x[j]; y[i] = tanh(z[i]); L = y[i] y[i] / 2",
    "C[i,j] = A[i,j] B[i,j]",
    "d[i] = A[i,i]",
    "t = sum[i](A[i,i])",
    "s = sqrt(x[i] x[i] + 1)",
    "y[i] = sigmoid(w[j] X[i,j]) - log(1 + exp(-x[i]))",
    "y[i] = min(x[i], 2) ** 2 - abs(x[i]) / 3",
    "a = 2 * 3\nb = a ^ 2",
    "y[i] = -x[i]^2 + sin(x[i]) cos(x[i])",
    "# comment\nG[a,b] = relu(M[a,b]) ; H = G[a,b] G[a,b]\n",
)

GRAMMAR_CHARS = "[](),;=+-*/^#.\n \t"
UNICODE = "δ∑×÷·αβλ∂é\u00a0\u200b\u2028\u0300\U0001f600\ufeff\x00\x7f"
ALPHABET = string.ascii_letters + string.digits + "_" + GRAMMAR_CHARS * 3 + UNICODE
FUNCTIONS1 = ("exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs")
FUNCTIONS2 = ("max", "min")
OPERATORS = ("+", "-", "*", "/", "^", "**", " ")


class _Timeout(BaseException):
    """Raised by the alarm when a case runs past the hard time limit."""


# ---------------------------------------------------------------- random text and mutations

def random_text(rng: random.Random) -> str:
    """Characters from the grammar, identifiers and stray Unicode, up to 80 long."""
    if rng.random() < 0.1:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(1, 40)))
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 80)))


def _mutate_once(rng: random.Random, text: str) -> str:
    kind = rng.randrange(10)
    pos = rng.randrange(len(text) + 1)
    if kind == 0 and text:                                   # delete a character
        return text[:pos] + text[pos + 1:]
    if kind == 1:                                            # delete a bracket
        spots = [k for k, c in enumerate(text) if c in "[]()"]
        if spots:
            k = rng.choice(spots)
            return text[:k] + text[k + 1:]
    if kind == 2:                                            # swap an operator
        spots = [k for k, c in enumerate(text) if c in "+-*/^=,;"]
        if spots:
            k = rng.choice(spots)
            return text[:k] + rng.choice("+-*/^=,;[]()") + text[k + 1:]
    if kind == 3:                                            # stray Unicode
        return text[:pos] + rng.choice(UNICODE) + text[pos:]
    if kind == 4:                                            # a very long name
        long = "v" + "".join(rng.choice(string.ascii_letters) for _ in range(rng.choice((300, 3000, 30000))))
        names = sorted(set(w for w in _words(text) if w not in FUNCTIONS1 + FUNCTIONS2 + ("sum",)))
        if names:
            return re.sub(rf"\b{re.escape(rng.choice(names))}\b", long, text)
        return long + " = 1"
    if kind == 5:                                            # deep nesting around the right-hand side
        head, eq, rhs = text.partition("=")
        if not eq:
            return text
        depth = rng.choice((10, 100, 300, 500, 1000, 3000))
        opener, closer = rng.choice((("(", ")"), ("-(", ")"), ("(1+", ")"), ("(2*", ")"), ("exp(", ")"),
                                     ("sum[q](", ")")))
        line_end = rhs.find("\n")
        body, rest = (rhs, "") if line_end < 0 else (rhs[:line_end], rhs[line_end:])
        if opener == "exp(":
            depth = rng.choice((3, 10))  # a derivative of n nested calls holds ~n² calls: 20 deep takes ~1 s
        return head + "= " + opener * depth + body + closer * depth + rest
    if kind == 6:                                            # insert a token
        token = rng.choice(("[", "]", "(", ")", "=", ",", "sum", "sum[", "δ", "**", "^", "1e999", "0", "-",
                            "#", "\n", ";", "max(", "exp", "[i,i]", "[]", "x[i,j,k,l,m]", "..."))
        return text[:pos] + token + text[pos:]
    if kind == 7 and text:                                   # duplicate a slice
        end = rng.randrange(pos, len(text) + 1)
        return text[:end] + text[pos:end] + text[end:]
    if kind == 8:                                            # truncate
        return text[:pos]
    return text.replace(rng.choice("ijk"), rng.choice(("i", "j", "z", "batch", "_", "i1")))


def _words(text: str) -> list[str]:
    out, word = [], ""
    for c in text:
        if c.isalnum() or c == "_":
            word += c
        else:
            if word and not word[0].isdigit():
                out.append(word)
            word = ""
    if word and not word[0].isdigit():
        out.append(word)
    return out


def mutate(rng: random.Random, text: str) -> str:
    """One to three random edits of ``text``."""
    for _ in range(rng.randrange(1, 4)):
        text = _mutate_once(rng, text)
    return text


# ---------------------------------------------------------------- random valid programs

@dataclass
class RandomProgram:
    text: str
    inputs: dict[str, tuple[str, ...]]       # input → its index letters
    outputs: dict[str, tuple[str, ...]]      # statement → its index letters
    sizes: dict[str, int]

    @property
    def used_inputs(self) -> list[str]:
        """The inputs the text actually mentions (the others are not inputs of the program)."""
        return [n for n in self.inputs if re.search(rf"\b{n}\b", self.text)]

    def shape(self, name: str) -> tuple[int, ...]:
        letters = self.inputs.get(name, self.outputs.get(name, ()))
        return tuple(self.sizes[c] for c in letters)


def random_program(rng: random.Random, max_depth: int = 3) -> RandomProgram:
    """A program that follows the language: inputs of ranks 0–3, 1–4 statements, nesting ≤ max_depth."""
    letters = "ijkl"
    sizes = {c: rng.choice((1, 2, 2, 3, 3, 0)) if rng.random() < 0.1 else rng.choice((1, 2, 3)) for c in letters}
    inputs: dict[str, tuple[str, ...]] = {}
    for name in rng.sample(("A", "B", "x", "y", "s", "W"), rng.randrange(1, 5)):
        rank = rng.choice((0, 1, 1, 2, 2, 3))
        inputs[name] = tuple(rng.choice(letters) for _ in range(rank))
    outputs: dict[str, tuple[str, ...]] = {}
    lines = []
    count = rng.randrange(1, 5)
    for k in range(count):
        name = f"T{k}"
        scalar = k == count - 1 and rng.random() < 0.5        # grad needs a scalar output
        lhs = () if scalar else tuple(rng.sample(letters, rng.choice((0, 1, 1, 2))))
        bindable = "".join(c for c in letters if c not in lhs)
        rhs = _random_expr(rng, {**inputs, **outputs}, rng.randrange(0, max_depth + 1), bindable)
        lines.append(f"{name}[{','.join(lhs)}] = {rhs}" if lhs else f"{name} = {rhs}")
        outputs[name] = lhs
    return RandomProgram(rng.choice(("\n", "; ")).join(lines), inputs, outputs, sizes)


def _random_expr(rng: random.Random, pool: dict[str, tuple[str, ...]], depth: int, bindable: str) -> str:
    """An expression over the tensors in ``pool``; ``sum[...]`` binds only letters in ``bindable``."""
    if depth <= 0 or rng.random() < 0.25:
        return _random_leaf(rng, pool)
    kind = rng.randrange(6)
    if kind <= 1:
        op = rng.choice(OPERATORS)
        right = _random_expr(rng, pool, depth - 1, bindable)
        if op in ("^", "**"):
            right = rng.choice(("2", "3", "0.5", "-1", "(2)", right))
        left = _random_expr(rng, pool, depth - 1, bindable)
        return f"({left}){op}({right})" if op != " " else f"({left}) ({right})"
    if kind == 2:
        return f"-{_random_expr(rng, pool, depth - 1, bindable)}"
    if kind == 3:
        return f"{rng.choice(FUNCTIONS1)}({_random_expr(rng, pool, depth - 1, bindable)})"
    if kind == 4 or not bindable:
        return (f"{rng.choice(FUNCTIONS2)}({_random_expr(rng, pool, depth - 1, bindable)}, "
                f"{_random_expr(rng, pool, depth - 1, bindable)})")
    bound = rng.sample(bindable, rng.randrange(1, min(2, len(bindable)) + 1))
    inner = "".join(c for c in bindable if c not in bound)
    return f"sum[{','.join(bound)}]({_random_expr(rng, pool, depth - 1, inner)})"


def _random_leaf(rng: random.Random, pool: dict[str, tuple[str, ...]]) -> str:
    if rng.random() < 0.2:
        return rng.choice(("2", "0.5", "1e-3", "3", "0", "1e300"))
    name = rng.choice(list(pool))
    letters = pool[name]
    return f"{name}[{','.join(letters)}]" if letters else name


def fitting_inputs(rng: random.Random, program: RandomProgram, dtype=np.float64) -> dict[str, np.ndarray]:
    """Inputs of the right shapes, drawn in [0.5, 1.5] (inside every function's domain)."""
    return {name: rng_array(rng, program.shape(name), dtype) for name in program.inputs}


def rng_array(rng: random.Random, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    generator = np.random.default_rng(rng.randrange(2 ** 32))
    return generator.uniform(0.5, 1.5, size=shape).astype(dtype)


BAD_VALUES: tuple[Callable[[random.Random, tuple[int, ...]], Any], ...] = (
    lambda rng, shape: None,
    lambda rng, shape: "abc",
    lambda rng, shape: [[1.0, 2.0], [3.0]],
    lambda rng, shape: [[[1.0]], [2.0, [3.0]]],
    lambda rng, shape: np.ones(shape) + 1j,
    lambda rng, shape: np.full(shape, np.nan),
    lambda rng, shape: np.full(shape, np.inf),
    lambda rng, shape: np.ones(shape, dtype=bool),
    lambda rng, shape: np.ones(shape, dtype=np.int8),
    lambda rng, shape: np.ones(shape, dtype=np.float32),
    lambda rng, shape: np.ones(shape, dtype=np.float16),
    lambda rng, shape: np.ones(shape + (2,)),
    lambda rng, shape: np.ones(tuple(s + 1 for s in shape)),
    lambda rng, shape: np.ones(shape[:-1]),
    lambda rng, shape: np.array([object()]),
    lambda rng, shape: {"a": 1},
    lambda rng, shape: 10 ** 400,
    lambda rng, shape: np.zeros(shape, dtype="datetime64[s]"),
    lambda rng, shape: np.zeros(shape, dtype=[("a", float)]),
)

BAD_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("sizes", {"i": -1}), ("sizes", {"i": 2.5}), ("sizes", "i=2"), ("sizes", {"i": 10 ** 12}),
    ("sizes", {"zz": 3}), ("sizes", {"i": True}), ("of", "nope"), ("of", 3), ("of", None), ("of", ["T0"]),
    ("memory_limit", 1), ("memory_limit", 0), ("memory_limit", -5), ("memory_limit", "abc"),
    ("memory_limit", 1e3), ("memory_limit", [1]), ("memory_limit", 2 ** 80),
)


# ---------------------------------------------------------------- cases

def case_random_text(rng: random.Random) -> tuple[str, Callable[[], Any]]:
    text = random_text(rng)
    return text, lambda: einderiv.parse(text)


def case_mutation(rng: random.Random) -> tuple[str, Callable[[], Any]]:
    text = mutate(rng, rng.choice(CORPUS))
    seed = rng.randrange(2 ** 32)

    def run():
        program = einderiv.parse(text)
        local = random.Random(seed)
        inputs = {name: rng_array(local, (2,) * rank) for name, rank in program.inputs}
        sizes = {c: 2 for c in "abcdefghijklmnopqrstuvwxyz"}
        einderiv.evaluate(program, inputs, sizes=sizes)
        if program.inputs:
            wrt = local.choice(program.inputs)[0]
            str(program.derivative(wrt))
            einderiv.vjp(program, wrt, inputs, np.ones((2,) * program.rank(program.output)), sizes=sizes)
    return text, run


def case_program(rng: random.Random) -> tuple[str, Callable[[], Any]]:
    program = random_program(rng)
    dtype = rng.choice((np.float64, np.float64, np.float32))
    inputs: dict[str, Any] = fitting_inputs(rng, program, dtype)
    options: dict[str, Any] = {"sizes": dict(program.sizes)}
    notes = []
    roll = rng.random()
    if roll < 0.35 and inputs:                                # one input made wrong
        name = rng.choice(list(inputs))
        if rng.random() < 0.2:
            del inputs[name]
            notes.append(f"without {name}")
        else:
            k = rng.randrange(len(BAD_VALUES))
            inputs[name] = BAD_VALUES[k](rng, program.shape(name))
            notes.append(f"{name}=BAD_VALUES[{k}]")
    elif roll < 0.55:                                         # an option made wrong
        key, value = rng.choice(BAD_OPTIONS)
        options[key] = value
        notes.append(f"{key}={value!r}")
    elif roll < 0.6:
        inputs = rng.choice((None, [], "x", {1: 2}, {"zz": 1.0}))
        notes.append(f"inputs={inputs!r}")
    elif roll < 0.65 and program.used_inputs:                # the output is an input itself
        options["of"] = rng.choice(program.used_inputs)
        notes.append(f"of={options['of']!r}")
    names = program.used_inputs or ["A"]
    wrt = rng.choice(names + ["T0", "nope"]) if rng.random() < 0.1 else rng.choice(names)
    op = rng.choice(("evaluate", "grad", "jacobian", "vjp", "jvp", "derivative", "value_and_grad"))
    of = options.get("of")
    known = isinstance(of, str) and (of in program.outputs or of in program.inputs)
    out_shape = program.shape(of if known else list(program.outputs)[-1])
    label = f"{op} wrt={wrt!r} dtype={np.dtype(dtype).name} {' '.join(notes)}\n{program.text}"

    def run():
        if op == "evaluate":
            return einderiv.evaluate(program.text, inputs, **options)
        if op == "grad":
            return einderiv.grad(program.text, wrt, inputs, **options)
        if op == "value_and_grad":
            return einderiv.value_and_grad(program.text, [wrt], inputs, **options)
        if op == "jacobian":
            return einderiv.jacobian(program.text, wrt, inputs, **options)
        if op == "vjp":
            return einderiv.vjp(program.text, wrt, inputs, np.ones(out_shape, dtype), **options)
        if op == "jvp":
            shape = program.shape(wrt) if wrt in program.inputs else (2,)
            return einderiv.jvp(program.text, {wrt: np.ones(shape, dtype)}, inputs, **options)
        return str(einderiv.parse(program.text).derivative(wrt, of=options.get("of")))
    return label, run


KINDS = (("random text", case_random_text, 3), ("mutation", case_mutation, 4), ("program", case_program, 5))


# ---------------------------------------------------------------- the run

@dataclass
class Outcome:
    category: str
    seconds: float
    problem: str | None      # None when the case kept the rules


def run_case(run: Callable[[], Any], hard_limit: float) -> Outcome:
    """Run one case under an alarm; classify what escaped."""
    signal.setitimer(signal.ITIMER_REAL, hard_limit)      # wall time: also ends a case that waits
    start = time.process_time()                          # the case's cost: CPU time, not wall time
    try:
        run()
        category, problem = "no error", None
    except einderiv.EinderivError as error:
        category = type(error).__name__
        message = str(error)
        problem = None if message.strip() else "empty message"
        try:
            message.encode("utf-8")
        except UnicodeEncodeError:
            problem = "message cannot be encoded as UTF-8"
    except _Timeout:
        category, problem = "Timeout", f"still running after {hard_limit} s"
    except Exception as error:  # noqa: BLE001 - this is what the fuzzer looks for
        category = f"NOT EinderivError: {type(error).__name__}"
        problem = "".join(traceback.format_exception(error)[-6:])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return Outcome(category, time.process_time() - start, problem)


def _distinct(problems: list[tuple[str, str, str]]) -> list[tuple[tuple[str, str], tuple[int, str, str]]]:
    """Problems grouped by class and the source line that raised, the first example of each."""
    groups: dict[tuple[str, str], tuple[int, str, str]] = {}
    for category, text, problem in problems:
        frames = [line.strip() for line in problem.splitlines() if line.strip().startswith("File ")]
        key = (category, frames[-1] if frames else "")
        count, first_text, first_problem = groups.get(key, (0, text, problem))
        groups[key] = (count + 1, first_text, first_problem)
    return sorted(groups.items(), key=lambda item: -item[1][0])


def _on_alarm(signum, frame):
    raise _Timeout()


def next_case(rng: random.Random) -> tuple[str, str, Callable[[], Any]]:
    """(kind, text, run) of the next case; generation draws only from ``rng``, never from running."""
    kind, make, _ = rng.choices(KINDS, [w for _, _, w in KINDS])[0]
    text, run = make(rng)
    return kind, text, run


def replay(seed: int, number: int, hard_limit: float) -> int:
    """Run case ``number`` of ``seed`` alone, twice: cold caches, then warm."""
    rng = random.Random(seed)
    for _ in range(number):
        next_case(rng)
    kind, text, run = next_case(rng)
    einderiv.clear_cache()
    print(f"case {number} of seed {seed} ({kind}, {len(text)} characters): {text[:2000]!r}")
    for label in ("cold", "warm"):
        outcome = run_case(run, hard_limit)
        print(f"{label}: {outcome.category} in {outcome.seconds:.3f} s")
        if outcome.problem:
            print(outcome.problem)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10000, help="number of cases to try (default 10000)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--slow", type=float, default=1.0,
                        help="a case using more CPU seconds than this breaks the rules")
    parser.add_argument("--hard-limit", type=float, default=20.0, help="abandon a case after this many seconds")
    parser.add_argument("--replay", type=int, default=None, metavar="N",
                        help="run only case number N of this seed (from cold caches) and show it")
    args = parser.parse_args(argv)
    if args.replay is not None:
        return replay(args.seed, args.replay, args.hard_limit)

    warnings.simplefilter("ignore")                   # EinderivWarning, numpy RuntimeWarnings: not errors
    signal.signal(signal.SIGALRM, _on_alarm)
    faulthandler.register(signal.SIGUSR1)             # kill -USR1 <pid> prints where a long run is
    rng = random.Random(args.seed)
    counts: collections.Counter[str] = collections.Counter()
    by_kind: collections.Counter[str] = collections.Counter()
    problems: list[tuple[str, str, str]] = []
    slowest: list[tuple[float, int, str, str]] = []           # the five slowest (seconds, number, kind, text)
    slow_cases = 0
    start = time.perf_counter()
    tried = 0
    for number in range(args.cases):
        if args.seconds is not None and time.perf_counter() - start > args.seconds:
            break
        kind, text, run = next_case(rng)
        outcome = run_case(run, args.hard_limit)
        tried += 1
        counts[outcome.category] += 1
        by_kind[kind] += 1
        if len(slowest) < 5 or outcome.seconds > slowest[-1][0]:
            slowest = sorted(slowest + [(outcome.seconds, number, kind, text)], key=lambda s: -s[0])[:5]
        if outcome.seconds > args.slow:
            slow_cases += 1
        if outcome.problem is not None:
            problems.append((outcome.category, text, outcome.problem))
    elapsed = time.perf_counter() - start
    bad = sum(n for c, n in counts.items() if c.startswith("NOT ") or c == "Timeout")
    print(f"einderiv fuzz: seed {args.seed}, {tried} cases tried in {elapsed:.1f} s "
          f"({', '.join(f'{by_kind[k]} {k}' for k, _, _ in KINDS)})")
    print("outcomes by class:")
    for category, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {category:<40} {n}")
    print(f"non-EinderivError exceptions: {bad}")
    print(f"rule breaks (escapes, timeouts, empty messages): {len(problems)}")
    print(f"cases slower than {args.slow} s of CPU time: {slow_cases}")
    for rank, (seconds, number, kind, text) in enumerate(slowest):
        shown = text if len(text) <= 300 else text[:300] + f"… ({len(text)} characters)"
        print(f"{'slowest case' if rank == 0 else f'   slow #{rank + 1}'}: {seconds:.3f} s "
              f"(case {number}, {kind}): {shown!r}")
    for (category, where), (count, text, problem) in _distinct(problems)[:10]:
        shown = text if len(text) <= 300 else text[:300] + "…"
        print(f"\n--- {category} ×{count} at {where}: {shown!r}\n{problem}")
    return 1 if problems or slow_cases else 0


if __name__ == "__main__":
    sys.exit(main())
