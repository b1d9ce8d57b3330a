"""An independent reference evaluator for the einderiv input language.

Written from the language contract (the meaning of a program), not from
einderiv's engine: only the grammar file ``einderiv/grammar.lark`` is shared,
read by lark with a Transformer of this module's own. The meaning:

* A statement's right-hand side is *expanded* at the top level: products
  distribute over parenthesised sums, ``a / b`` is ``a`` times the opaque
  factor ``1/b``; functions, powers, denominators and ``sum[...](...)`` stay
  whole (opaque factors).
* Every additive term is one ``einsum`` over its factors, summed over each
  index that appears in it but not on the left; the result is broadcast along
  the left-hand indices the term lacks.
* An opaque factor is evaluated elementwise over every index that appears in it
  (no summation inside), ``A[i,i]`` taking a diagonal; ``sum[j](body)``
  evaluates the body elementwise, broadcasts it along bound indices it lacks and
  sums them away.
* Kinks follow the contract: ``relu'(0) = 0``, ``abs'(0) = 0``, ``max(a, b)``
  sends the gradient to ``a`` where ``a > b`` else to ``b``, ``min`` likewise;
  written with ``where`` so that JAX's derivatives follow them too.

The evaluator is generic over the array module ``xp`` (numpy, or jax.numpy for
exact float64 derivative references).

>>> import numpy as np
>>> reference_value("y[i] = 2 (A[i,j] x[j] + b[i])", {"A": np.eye(2), "x": np.ones(2), "b": np.ones(2)}).tolist()
[4.0, 4.0]
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from importlib import resources
from typing import Any, Mapping, Sequence

import numpy as np
from lark import Lark, Transformer, v_args

__all__ = ["Statement", "RefProgram", "parse_reference", "reference_values", "reference_value", "expand",
           "jax_reference", "fd_directional"]


# ------------------------------------------------------------------ syntax

class _ToTuples(Transformer):
    """Lark tree -> nested tuples: ("num", v), ("ref", name, idx|None), ("call", fn, args),
    ("sum", idx, body), ("add"|"sub"|"mul"|"div"|"pow", a, b), ("neg", a)."""

    def start(self, items):
        return [s for s in items if s is not None]

    def statement(self, items):
        (name, idx), rhs = items
        return (name, idx, rhs)

    def lhs(self, items):
        name, idx = items
        return (str(name), tuple(idx) if idx else ())

    def index_list(self, items):
        return tuple(str(t) for t in items if t is not None)

    def number(self, items):
        return ("num", float(items[0]))

    def ref(self, items):
        name, idx = items
        return ("ref", str(name), None if idx is None else tuple(idx))

    def call(self, items):
        fn, *args = items
        return ("call", str(fn), tuple(a for a in args if a is not None))

    def explicit_sum(self, items):
        idx, body = items
        return ("sum", tuple(idx), body)

    @v_args(inline=True)
    def add(self, a, b):
        return ("add", a, b)

    @v_args(inline=True)
    def sub(self, a, b):
        return ("sub", a, b)

    @v_args(inline=True)
    def mul(self, a, b):
        return ("mul", a, b)

    @v_args(inline=True)
    def div(self, a, b):
        return ("div", a, b)

    @v_args(inline=True)
    def pow(self, a, b):
        return ("pow", a, b)

    @v_args(inline=True)
    def neg(self, a):
        return ("neg", a)


@functools.lru_cache(maxsize=None)
def _parser() -> Lark:
    grammar = resources.files("einderiv.language").joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", maybe_placeholders=True)


@dataclass(frozen=True)
class Statement:
    name: str
    lhs: tuple[str, ...]
    rhs: Any


@dataclass(frozen=True)
class RefProgram:
    statements: tuple[Statement, ...]
    input_ranks: dict           # input name -> number of indices written after it

    @property
    def output(self) -> str:
        return self.statements[-1].name

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.input_ranks)


def _refs(node):
    kind = node[0]
    if kind == "ref":
        yield node
    elif kind == "call":
        for a in node[2]:
            yield from _refs(a)
    elif kind == "sum":
        yield from _refs(node[2])
    elif kind == "neg":
        yield from _refs(node[1])
    elif kind in ("add", "sub", "mul", "div", "pow"):
        yield from _refs(node[1])
        yield from _refs(node[2])


@functools.lru_cache(maxsize=4096)
def parse_reference(text: str) -> RefProgram:
    """Parse ``text`` into statements (nested tuples) and the inputs' ranks.

    >>> parse_reference("z[i] = A[i,j] x[j]").input_ranks
    {'A': 2, 'x': 1}
    """
    raw = _ToTuples().transform(_parser().parse(text))
    statements = tuple(Statement(name, lhs, rhs) for name, lhs, rhs in raw)
    defined = {s.name for s in statements}
    ranks: dict[str, int] = {}
    for s in statements:
        for _, name, idx in _refs(s.rhs):
            if name not in defined and name not in ranks:
                ranks[name] = 0 if idx is None else len(idx)
    return RefProgram(statements, ranks)


# ------------------------------------------------------------------ expansion

def expand(node) -> list[tuple[float, tuple]]:
    """The additive terms of ``node``: ``(coefficient, opaque factors)`` pairs.

    >>> [(c, len(f)) for c, f in expand(parse_reference("y[i] = 2 (a[i] - b[i])").statements[0].rhs)]
    [(2.0, 1), (-2.0, 1)]
    """
    kind = node[0]
    if kind == "num":
        return [(node[1], ())]
    if kind == "add":
        return expand(node[1]) + expand(node[2])
    if kind == "sub":
        return expand(node[1]) + [(-c, f) for c, f in expand(node[2])]
    if kind == "neg":
        return [(-c, f) for c, f in expand(node[1])]
    if kind == "mul":
        return [(ca * cb, fa + fb) for (ca, fa), (cb, fb) in itertools.product(expand(node[1]), expand(node[2]))]
    if kind == "div":
        return [(c, f + (("recip", node[2]),)) for c, f in expand(node[1])]
    return [(1.0, (node,))]          # ref, call, pow, sum: whole


def _free(node) -> tuple[str, ...]:
    """Indices appearing in ``node`` (bound ``sum`` indices excluded), first-appearance order."""
    kind = node[0]
    if kind == "num":
        return ()
    if kind == "ref":
        return tuple(dict.fromkeys(node[2] or ()))
    if kind == "call":
        return tuple(dict.fromkeys(i for a in node[2] for i in _free(a)))
    if kind == "sum":
        return tuple(i for i in _free(node[2]) if i not in node[1])
    if kind in ("neg", "recip"):
        return _free(node[1])
    return tuple(dict.fromkeys(_free(node[1]) + _free(node[2])))


# ------------------------------------------------------------------ evaluation

def _functions(xp):
    def where(c, a, b):
        return xp.where(c, a, b)
    return {
        "exp": xp.exp, "log": xp.log, "sqrt": xp.sqrt, "sin": xp.sin, "cos": xp.cos, "tanh": xp.tanh,
        "sigmoid": lambda x: 1.0 / (1.0 + xp.exp(-x)),
        "softplus": lambda x: xp.log(1.0 + xp.exp(x)),
        "relu": lambda x: where(x > 0, x, 0.0 * x),
        "abs": lambda x: where(x > 0, x, where(x < 0, -x, 0.0 * x)),
        "max": lambda a, b: where(a > b, a + 0.0 * b, b + 0.0 * a),
        "min": lambda a, b: where(a < b, a + 0.0 * b, b + 0.0 * a),
        # helpers the project accepts beyond the contract (derivative zero almost everywhere)
        "step": lambda x: xp.asarray(x > 0, dtype=x.dtype),
        "sign": lambda x: xp.sign(x),
        "gt": lambda a, b: xp.asarray(a > b, dtype=(a + b).dtype),
        "ge": lambda a, b: xp.asarray(a >= b, dtype=(a + b).dtype),
        "lt": lambda a, b: xp.asarray(a < b, dtype=(a + b).dtype),
        "le": lambda a, b: xp.asarray(a <= b, dtype=(a + b).dtype),
    }


class _Evaluator:
    def __init__(self, xp, env: Mapping[str, Any], sizes: Mapping[str, int]):
        self.xp = xp
        self.env = env
        self.sizes = sizes
        self.fns = _functions(xp)

    # -- elementwise (opaque) evaluation: returns (array, indices)
    def align(self, value, idx, target):
        """``value`` over ``idx`` as an array broadcastable over ``target`` (axes in target order)."""
        xp = self.xp
        present = [i for i in target if i in idx]
        value = xp.transpose(value, [idx.index(i) for i in present]) if len(idx) > 1 else value
        shape = [self.sizes[i] if i in idx else 1 for i in target]
        return xp.reshape(value, shape)

    def binary(self, op, a, b):
        (va, ia), (vb, ib) = a, b
        union = tuple(dict.fromkeys(ia + ib))
        return op(self.align(va, ia, union), self.align(vb, ib, union)), union

    def ew(self, node):
        xp = self.xp
        kind = node[0]
        if kind == "num":
            return xp.asarray(node[1], dtype=xp.float64), ()
        if kind == "ref":
            value = self.env[node[1]]
            idx = node[2] or ()
            unique = tuple(dict.fromkeys(idx))
            if len(unique) != len(idx):      # a diagonal: index every axis by its name's position
                grids = [xp.reshape(xp.arange(self.sizes[i]), [self.sizes[i] if u == i else 1 for u in unique])
                         for i in idx]
                value = value[tuple(grids)]
            return value, unique
        if kind == "call":
            args = [self.ew(a) for a in node[2]]
            fn = self.fns[node[1]]
            if len(args) == 1:
                (v, i), = args
                return fn(v), i
            return self.binary(fn, *args)
        if kind == "sum":
            bound = node[1]
            v, i = self.ew(node[2])
            full = i + tuple(b for b in bound if b not in i)
            v = xp.broadcast_to(self.align(v, i, full), [self.sizes[k] for k in full])
            keep = tuple(k for k in full if k not in bound)
            return xp.sum(v, axis=tuple(full.index(b) for b in bound)), keep
        if kind == "recip":
            v, i = self.ew(node[1])
            return 1.0 / v, i
        if kind == "neg":
            v, i = self.ew(node[1])
            return -v, i
        if kind == "pow":
            base = self.ew(node[1])
            if node[2][0] == "num" and float(node[2][1]).is_integer():
                n = int(node[2][1])
                return base[0] ** n, base[1]
            return self.binary(xp.power, base, self.ew(node[2]))
        op = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
              "mul": lambda a, b: a * b, "div": lambda a, b: a / b}[kind]
        return self.binary(op, self.ew(node[1]), self.ew(node[2]))

    def einsum(self, values, names, kept):
        """The product of ``values`` (each over its indices) summed over ``names`` not in ``kept``:
        an einsum written as one broadcast product and a sum (no compiled einsum paths)."""
        xp = self.xp
        product = xp.asarray(1.0, dtype=xp.float64)
        for value, idx in values:
            product = product * self.align(value, idx, names)
        product = xp.broadcast_to(product, [self.sizes[i] for i in names])
        summed = tuple(k for k, i in enumerate(names) if i not in kept)
        if summed:
            product = xp.sum(product, axis=summed)
        rest = [i for i in names if i in kept]
        return xp.transpose(product, [rest.index(i) for i in kept]) if len(kept) > 1 else product

    # -- a statement: expanded terms, one einsum each
    def statement(self, lhs: tuple[str, ...], rhs):
        xp = self.xp
        shape = tuple(self.sizes[i] for i in lhs)
        total = xp.zeros(shape, dtype=xp.float64)
        for coef, factors in expand(rhs):
            values = [self.ew(f) for f in factors]
            names = tuple(dict.fromkeys(i for _, idx in values for i in idx))
            kept = tuple(i for i in lhs if i in names)
            term = self.einsum(values, names, kept)
            term = coef * term
            total = total + xp.broadcast_to(self.align(term, kept, lhs), shape)
        return total


def _statement_sizes(statement: Statement, env: Mapping[str, Any], explicit: Mapping[str, int]) -> dict[str, int]:
    sizes = dict(explicit)
    for _, name, idx in _refs(statement.rhs):
        shape = np.shape(env[name])
        for i, n in zip(idx or (), shape):
            if i in sizes and i not in explicit and sizes[i] != n:
                raise ValueError(f"reference: index {i} has sizes {sizes[i]} and {n}")
            sizes.setdefault(i, n)
    return sizes


def reference_values(text: str, inputs: Mapping[str, Any], *, sizes: Mapping[str, int] | None = None,
                     xp=np) -> dict[str, Any]:
    """Every statement's value (and the inputs), evaluated with the array module ``xp``."""
    program = parse_reference(text)
    env = {name: xp.asarray(value, dtype=xp.float64) for name, value in inputs.items()}
    for name, rank in program.input_ranks.items():
        if np.ndim(env[name]) != rank:
            raise ValueError(f"reference: input {name} needs {rank} axes")
    for s in program.statements:
        stmt_sizes = _statement_sizes(s, env, sizes or {})
        env[s.name] = _Evaluator(xp, env, stmt_sizes).statement(s.lhs, s.rhs)
    return env


def reference_value(text: str, inputs: Mapping[str, Any], *, of: str | None = None,
                    sizes: Mapping[str, int] | None = None, xp=np):
    """The value of ``of`` (default: the last statement)."""
    of = parse_reference(text).output if of is None else of
    return reference_values(text, inputs, sizes=sizes, xp=xp)[of]


# ------------------------------------------------------------------ derivative references

class jax_reference:
    """Exact float64 derivative references through JAX (needs ``jax`` installed).

    Every method takes the program text, the inputs, and returns numpy arrays
    laid out like einderiv's results.
    """

    def __init__(self, text: str, inputs: Mapping[str, Any], *, of: str | None = None,
                 sizes: Mapping[str, int] | None = None):
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp
        self.text, self.of, self.sizes = text, of, sizes
        self.inputs = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}

    def function(self, names: Sequence[str]):
        """``f(*arrays for names) -> output`` with the other inputs fixed."""
        def f(*arrays):
            env = dict(self.inputs)
            env.update(zip(names, arrays))
            return reference_value(self.text, env, of=self.of, sizes=self.sizes, xp=self.jnp)
        return f

    def primals(self, names):
        return tuple(self.jnp.asarray(self.inputs[n]) for n in names)

    def value(self):
        return np.asarray(self.jax.jit(self.function(()))())

    def grad(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        g = self.jax.jit(self.jax.grad(self.function(names), argnums=tuple(range(len(names)))))(*self.primals(names))
        return {n: np.asarray(v) for n, v in zip(names, g)}

    def jacobian(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        j = self.jax.jit(self.jax.jacrev(self.function(names), argnums=tuple(range(len(names)))))(
            *self.primals(names))
        return {n: np.asarray(v) for n, v in zip(names, j)}

    def vjp(self, names: Sequence[str], cotangent) -> dict[str, np.ndarray]:
        f = self.function(names)

        def pulled(cot, *primals):
            return self.jax.vjp(f, *primals)[1](cot)
        cot = self.jnp.asarray(cotangent, dtype=self.jnp.float64)
        return {n: np.asarray(v) for n, v in zip(names, self.jax.jit(pulled)(cot, *self.primals(names)))}

    def jvp(self, tangents: Mapping[str, Any]) -> np.ndarray:
        names = tuple(tangents)
        f = self.function(names)

        def pushed(primals, tangents):
            return self.jax.jvp(f, primals, tangents)[1]
        return np.asarray(self.jax.jit(pushed)(
            self.primals(names), tuple(self.jnp.asarray(tangents[n], dtype=self.jnp.float64) for n in names)))

    def hessian(self, wrt: str, wrt2: str | None = None) -> np.ndarray:
        wrt2 = wrt if wrt2 is None else wrt2
        if wrt2 == wrt:
            return np.asarray(self.jax.jit(self.jax.hessian(self.function((wrt,))))(*self.primals((wrt,))))
        f = self.function((wrt, wrt2))
        return np.asarray(self.jax.jit(self.jax.jacfwd(self.jax.grad(f, argnums=0), argnums=1))(
            *self.primals((wrt, wrt2))))

    def hvp(self, wrt: str, vectors: Mapping[str, Any]) -> np.ndarray:
        names = tuple(dict.fromkeys((wrt,) + tuple(vectors)))
        g = self.jax.grad(self.function(names), argnums=0)
        tangents = tuple(self.jnp.asarray(vectors[n], dtype=self.jnp.float64) if n in vectors
                         else self.jnp.zeros_like(self.jnp.asarray(self.inputs[n])) for n in names)
        def pushed(primals, tangents):
            return self.jax.jvp(g, primals, tangents)[1]
        return np.asarray(self.jax.jit(pushed)(self.primals(names), tangents))


def fd_directional(text: str, inputs: Mapping[str, Any], directions: Mapping[str, Any], *,
                   of: str | None = None, sizes: Mapping[str, int] | None = None, h: float = 1e-3):
    """Five-point central difference of the reference evaluator along ``directions`` (float64):
    ``(8 (f(x + h v) - f(x - h v)) - (f(x + 2h v) - f(x - 2h v))) / 12h``, error O(h⁴)."""
    def at(sign):
        env = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
        for k, v in directions.items():
            env[k] = env[k] + sign * h * np.asarray(v, dtype=np.float64)
        return reference_value(text, env, of=of, sizes=sizes)
    return (8 * (at(1) - at(-1)) - (at(2) - at(-2))) / (12 * h)


def fd_second(text: str, inputs: Mapping[str, Any], u: Mapping[str, Any], v: Mapping[str, Any], *,
              of: str | None = None, sizes: Mapping[str, int] | None = None, h: float = 1e-4):
    """Central second difference ``d²f/(du dv)`` of the reference evaluator (float64)."""
    def at(a, b):
        env = {k: np.asarray(x, dtype=np.float64) for k, x in inputs.items()}
        for k, d in u.items():
            env[k] = env[k] + a * h * np.asarray(d, dtype=np.float64)
        for k, d in v.items():
            env[k] = env[k] + b * h * np.asarray(d, dtype=np.float64)
        return reference_value(text, env, of=of, sizes=sizes)
    return (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * h * h)
