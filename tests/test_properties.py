"""Property tests on random programs.

Hypothesis generates random valid programs as text (1–4 statements over a small
pool of indices with fixed sizes, inputs of rank 0–2, products, sums,
broadcasting, explicit sums, divisions by safe denominators and smooth
elementwise functions), draws inputs in [-1, 1], and checks

- ``evaluate`` against an independent numpy reference of the summation rule,
- ``jacobian`` against central differences of ``evaluate``,
- ``vjp`` = u·J, ``jvp`` = J·v, and uᵀ(Jv) = (uᵀJ)v,
- ``grad`` = ``jacobian`` for scalar outputs.

Every failure prints the program text (``note`` and the assertion messages).
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import einderiv
from helpers import assert_close, fd_jacobian

# ---------------------------------------------------------------------------
# The universe programs are drawn from
# ---------------------------------------------------------------------------

SIZES = {"i": 2, "k": 2, "j": 3, "l": 3}
BY_SIZE = {2: ("i", "k"), 3: ("j", "l")}
INPUT_SHAPES = {"a": (), "u": (2,), "v": (3,), "P": (2, 3), "Q": (3, 3), "S": (2, 2)}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


FUNCS = {"exp": np.exp, "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "sigmoid": _sigmoid}
CONSTANTS = ("2", "0.5", "1.5", "3")

# Nodes are tuples:
#   ("ref", name, indices)            ("const", text)
#   ("add", ((sign, node), ...))      ("mul", (node, ...), (sep, ...))
#   ("neg", node)                     ("div", numerator, denominator)
#   ("call", fname, arg)              ("pow", base, exponent_text, operator)
#   ("sum", indices, body)


def free_indices(node):
    kind = node[0]
    if kind == "ref":
        return set(node[2])
    if kind == "const":
        return set()
    if kind == "add":
        return set().union(*(free_indices(t) for _, t in node[1]))
    if kind == "mul":
        return set().union(*(free_indices(f) for f in node[1]))
    if kind == "neg":
        return free_indices(node[1])
    if kind == "div":
        return free_indices(node[1]) | free_indices(node[2])
    if kind == "call":
        return free_indices(node[2])
    if kind == "pow":
        return free_indices(node[1])
    if kind == "sum":
        return free_indices(node[2]) - set(node[1])
    raise AssertionError(kind)


def bound_anywhere(node):
    kind = node[0]
    if kind in ("ref", "const"):
        return set()
    if kind == "sum":
        return set(node[1]) | bound_anywhere(node[2])
    children = {
        "add": lambda n: [t for _, t in n[1]],
        "mul": lambda n: list(n[1]),
        "neg": lambda n: [n[1]],
        "div": lambda n: [n[1], n[2]],
        "call": lambda n: [n[2]],
        "pow": lambda n: [n[1]],
    }[kind](node)
    return set().union(*(bound_anywhere(c) for c in children))


def refs(node):
    kind = node[0]
    if kind == "ref":
        return {node[1]}
    if kind == "const":
        return set()
    if kind == "add":
        return set().union(*(refs(t) for _, t in node[1]))
    if kind == "mul":
        return set().union(*(refs(f) for f in node[1]))
    if kind in ("neg", "pow"):
        return refs(node[1])
    if kind == "div":
        return refs(node[1]) | refs(node[2])
    if kind in ("call", "sum"):
        return refs(node[2])
    raise AssertionError(kind)


# ---------------------------------------------------------------------------
# Rendering to program text
# ---------------------------------------------------------------------------

_ATOMIC = ("ref", "const", "call", "sum")


def render(node):
    kind = node[0]
    if kind == "ref":
        return node[1] + (f"[{','.join(node[2])}]" if node[2] else "")
    if kind == "const":
        return node[1]
    if kind == "add":
        parts = []
        for n, (sign, term) in enumerate(node[1]):
            text = render(term)
            if term[0] == "add":
                text = f"({text})"
            if n == 0:
                parts.append(text if sign > 0 else f"-({text})")
            else:
                parts.append(("+ " if sign > 0 else "- ") + text)
        return " ".join(parts)
    if kind == "mul":
        out = ""
        for n, factor in enumerate(node[1]):
            text = render(factor)
            if factor[0] in ("add", "neg", "div", "mul"):
                text = f"({text})"
            if n == 0:
                out = text
                continue
            sep = node[2][n - 1]
            prev = node[1][n - 1]
            # a bare name directly followed by '(' would be a function call
            if text.startswith("(") and prev[0] == "ref" and not prev[2]:
                sep = " * "
            out += sep + text
        return out
    if kind == "neg":
        child = node[1]
        text = render(child)
        if child[0] not in _ATOMIC + ("pow",):
            text = f"({text})"
        return "-" + text
    if kind == "div":
        num, den = render(node[1]), render(node[2])
        if node[1][0] == "add":
            num = f"({num})"
        if node[2][0] not in _ATOMIC + ("pow",):
            den = f"({den})"
        return f"{num} / {den}"
    if kind == "call":
        return f"{node[1]}({render(node[2])})"
    if kind == "pow":
        base = render(node[1])
        if node[1][0] not in ("ref", "call", "sum"):
            base = f"({base})"
        return f"{base}{node[3]}{node[2]}"
    if kind == "sum":
        return f"sum[{','.join(node[1])}]({render(node[2])})"
    raise AssertionError(kind)


# ---------------------------------------------------------------------------
# Reference semantics (numpy), written from the language contract
# ---------------------------------------------------------------------------


def _align(arr, idx, union):
    """``arr`` over indices ``idx`` (distinct) as an array broadcastable over ``union``."""
    present = "".join(ix for ix in union if ix in idx)
    arr = np.einsum(f"{idx}->{present}", arr) if idx else np.asarray(arr)
    shape = [SIZES[ix] if ix in idx else 1 for ix in union]
    return arr.reshape(shape)


def _combine(op, operands):
    union = ""
    for _, idx in operands:
        union += "".join(ix for ix in idx if ix not in union)
    arrays = [_align(a, idx, union) for a, idx in operands]
    result = arrays[0]
    for other in arrays[1:]:
        result = op(result, other)
    return np.broadcast_to(result, tuple(SIZES[ix] for ix in union)), union


PEAKS = "__peaks__"  # env key: magnitudes of every intermediate value


def eval_opaque(node, env):
    """A node as a tensor over all its free indices: broadcast, never summed
    (except by an explicit ``sum[...]``). Returns (array, index string)."""
    arr, idx = _eval_node(node, env)
    peaks = env.get(PEAKS)
    if peaks is not None:
        with np.errstate(all="ignore"):
            finite = bool(np.all(np.isfinite(arr)))
            peaks.append(float(np.max(np.abs(arr), initial=0.0)) if finite else np.inf)
    return arr, idx


def _eval_node(node, env):
    kind = node[0]
    if kind == "ref":
        arr, idx = np.asarray(env[node[1]], dtype=np.float64), "".join(node[2])
        out = "".join(dict.fromkeys(idx))
        return (np.einsum(f"{idx}->{out}", arr) if idx else arr), out
    if kind == "const":
        return np.float64(float(node[1])), ""
    if kind == "add":
        operands = [eval_opaque(t, env) for _, t in node[1]]
        operands = [(a * s, i) for (a, i), (s, _) in zip(operands, node[1])]
        return _combine(np.add, operands)
    if kind == "mul":
        return _combine(np.multiply, [eval_opaque(f, env) for f in node[1]])
    if kind == "neg":
        a, i = eval_opaque(node[1], env)
        return -a, i
    if kind == "div":
        return _combine(np.divide, [eval_opaque(node[1], env), eval_opaque(node[2], env)])
    if kind == "recip":
        a, i = eval_opaque(node[1], env)
        return 1.0 / a, i
    if kind == "call":
        a, i = eval_opaque(node[2], env)
        return FUNCS[node[1]](a), i
    if kind == "pow":
        a, i = eval_opaque(node[1], env)
        return a ** float(node[2]), i
    if kind == "sum":
        a, i = eval_opaque(node[2], env)
        keep = "".join(ix for ix in i if ix not in node[1])
        return np.einsum(f"{i}->{keep}", a), keep
    raise AssertionError(kind)


def expand(node):
    """Distribute products over parenthesized sums: a list of (coefficient,
    opaque factors). Functions, powers, explicit sums and denominators are
    opaque (not expanded)."""
    kind = node[0]
    if kind == "const":
        return [(float(node[1]), [])]
    if kind == "add":
        return [(s * c, fs) for s, t in node[1] for c, fs in expand(t)]
    if kind == "neg":
        return [(-c, fs) for c, fs in expand(node[1])]
    if kind == "mul":
        out = [(1.0, [])]
        for factor in node[1]:
            out = [(c1 * c2, f1 + f2) for c1, f1 in out for c2, f2 in expand(factor)]
        return out
    if kind == "div":
        return [(c, fs + [("recip", node[2])]) for c, fs in expand(node[1])]
    return [(1.0, [node])]


def eval_statement(lhs, rhs, env):
    shape = tuple(SIZES[ix] for ix in lhs)
    total = np.zeros(shape)
    for coef, factors in expand(rhs):
        operands = [eval_opaque(f, env) for f in factors]
        subs = ",".join(i for _, i in operands)
        union = "".join(dict.fromkeys("".join(i for _, i in operands)))
        out = "".join(ix for ix in lhs if ix in union)
        if operands:
            value = np.einsum(f"{subs}->{out}", *[a for a, _ in operands])
        else:
            value = np.float64(1.0)
        total = total + coef * _align(value, out, "".join(lhs))
    return total


def reference(case, inputs):
    """Every statement's value (and, under ``PEAKS``, every intermediate's magnitude)."""
    env = dict(inputs)
    env[PEAKS] = []
    with np.errstate(all="ignore"):
        for name, lhs, rhs in case.statements:
            env[name] = eval_statement(lhs, rhs, env)
    return env


# ---------------------------------------------------------------------------
# Program strategy
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    text: str
    statements: tuple  # (name, lhs indices, rhs node)

    def __repr__(self):
        return f"Case(text={self.text!r})"

    @property
    def inputs_used(self):
        defined = {name for name, _, _ in self.statements}
        return sorted(set().union(*(refs(rhs) for _, _, rhs in self.statements)) - defined)

    def depends_on(self, of):
        """Inputs the statement ``of`` depends on, transitively."""
        rhs_of = {name: rhs for name, _, rhs in self.statements}
        seen, todo, out = set(), [of], set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in rhs_of:
                todo.extend(refs(rhs_of[name]))
            else:
                out.add(name)
        return sorted(out)

    def shape_of(self, name):
        for n, lhs, _ in self.statements:
            if n == name:
                return tuple(SIZES[ix] for ix in lhs)
        return INPUT_SHAPES[name]

    @property
    def sizes(self):
        used = set()
        for _, lhs, rhs in self.statements:
            used |= set(lhs) | free_indices(rhs) | bound_anywhere(rhs)
        return {ix: SIZES[ix] for ix in sorted(used)}


class _Ctx:
    def __init__(self, lhs, defined):
        self.lhs = lhs
        self.defined = defined  # list of (name, shape)


def _ref(draw, ctx):
    names = list(INPUT_SHAPES) + [n for n, _ in ctx.defined] * 2
    name = draw(st.sampled_from(names))
    shape = INPUT_SHAPES[name] if name in INPUT_SHAPES else dict(ctx.defined)[name]
    idx = tuple(draw(st.sampled_from(BY_SIZE[s])) for s in shape)
    return ("ref", name, idx)


def _factor(draw, ctx, depth):
    kinds = ["ref"] * 5
    if depth > 0:
        kinds += ["const", "call", "call", "pow", "sum", "paren", "div", "neg"]
    else:
        kinds += ["const"]
    kind = draw(st.sampled_from(kinds))
    if kind == "ref":
        return _ref(draw, ctx)
    if kind == "const":
        return ("const", draw(st.sampled_from(CONSTANTS)))
    if kind == "call":
        return ("call", draw(st.sampled_from(sorted(FUNCS))), _expr(draw, ctx, depth - 1))
    if kind == "pow":
        base = _expr(draw, ctx, depth - 1)
        return ("pow", base, draw(st.sampled_from(["2", "2", "3"])), draw(st.sampled_from(["^", "**"])))
    if kind == "sum":
        body = _expr(draw, ctx, depth - 1)
        candidates = sorted(free_indices(body) - set(ctx.lhs) - bound_anywhere(body))
        if not candidates:
            return body
        chosen = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=2, unique=True))
        return ("sum", tuple(sorted(chosen)), body)
    if kind == "paren":
        first = _term(draw, ctx, depth - 1)
        second = _term(draw, ctx, depth - 1)
        return ("add", ((1, first), (draw(st.sampled_from([1, -1])), second)))
    if kind == "div":
        num = _expr(draw, ctx, depth - 1)
        if draw(st.booleans()):
            den = ("const", draw(st.sampled_from(["2", "4"])))
        else:
            sq = ("pow", _factor(draw, ctx, depth - 1), "2", "^")
            den = ("add", ((1, ("const", "1.5")), (1, sq)))
        return ("div", num, den)
    if kind == "neg":
        return ("neg", _factor(draw, ctx, depth - 1))
    raise AssertionError(kind)


def _term(draw, ctx, depth):
    n = draw(st.integers(1, 3))
    factors = tuple(_factor(draw, ctx, depth) for _ in range(n))
    if n == 1:
        return factors[0]
    seps = tuple(draw(st.sampled_from([" ", " * "])) for _ in range(n - 1))
    return ("mul", factors, seps)


def _expr(draw, ctx, depth):
    n = draw(st.integers(1, 2))
    terms = [(1, _term(draw, ctx, depth))]
    for _ in range(n - 1):
        terms.append((draw(st.sampled_from([1, -1])), _term(draw, ctx, depth)))
    if n == 1:
        return terms[0][1]
    return ("add", tuple(terms))


@st.composite
def programs(draw, max_statements=4):
    n_statements = draw(st.integers(1, max_statements))
    defined, statements, lines = [], [], []
    for s in range(n_statements):
        name = f"T{s}"
        rank = draw(st.integers(0, 2))
        lhs = tuple(draw(st.lists(st.sampled_from(sorted(SIZES)), min_size=rank, max_size=rank, unique=True)))
        ctx = _Ctx(lhs, defined)
        rhs = _expr(draw, ctx, draw(st.integers(1, 2)))
        if not refs(rhs):
            rhs = ("add", ((1, rhs), (1, _ref(draw, ctx))))
        statements.append((name, lhs, rhs))
        defined.append((name, tuple(SIZES[ix] for ix in lhs)))
        lhs_text = name + (f"[{','.join(lhs)}]" if lhs else "")
        line = f"{lhs_text} = {render(rhs)}"
        if draw(st.integers(0, 4)) == 0:
            line += "  # a comment"
        lines.append(line)
    text = lines[0]
    for prev, line in zip(lines, lines[1:]):
        seps = ["\n", "; ", "\n\n", "\n# comment line\n"]
        if "#" in prev:  # a comment runs to the end of the line: ';' would be swallowed
            seps.remove("; ")
        text += draw(st.sampled_from(seps)) + line
    if draw(st.booleans()):
        text += "\n"
    return Case(text=text, statements=tuple(statements))


def _draw_inputs(draw, case):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    inputs = {}
    for name in case.inputs_used:
        shape = INPUT_SHAPES[name]
        value = rng.uniform(-1.0, 1.0, size=shape)
        if shape == () and draw(st.booleans()):
            value = float(value)  # a plain Python number
        inputs[name] = value
    return inputs


def _check_reasonable(env, names):
    """Skip examples whose values (or intermediates) are too large for finite
    differences to be accurate; return the magnitude scale for tolerances."""
    for name in names:
        value = np.asarray(env[name])
        assume(np.all(np.isfinite(value)) and np.max(np.abs(value), initial=0.0) < 1e3)
    peak = max(env[PEAKS], default=0.0)
    assume(peak < 1e3)
    return max(1.0, peak)


# EINDERIV_HYPOTHESIS_EXAMPLES=1000 for a deeper (slower) search
EXAMPLES = int(os.environ.get("EINDERIV_HYPOTHESIS_EXAMPLES", "40"))

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def _contract(a, b, n):
    """Σ over the last n axes of ``a`` against the first n of ``b``."""
    return np.tensordot(np.asarray(a), np.asarray(b), axes=n)


# ---------------------------------------------------------------------------
# The properties
# ---------------------------------------------------------------------------


# evaluate agrees with the numpy reference of the summation rule, statement by statement
@SETTINGS
@given(data=st.data())
def test_evaluate_matches_reference(data):
    case = data.draw(programs())
    note(f"program:\n{case.text}")
    inputs = _draw_inputs(data.draw, case)
    env = reference(case, inputs)
    names = [name for name, _, _ in case.statements]
    _check_reasonable(env, names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", einderiv.EinderivWarning)
        program = einderiv.parse(case.text)
        for name in names:
            got = einderiv.evaluate(program, inputs, of=name, sizes=case.sizes)
            assert_close(got, env[name], rtol=1e-8, atol=1e-10, msg=f"{name} of program:\n{case.text}")
        assert_close(einderiv.evaluate(program, inputs, sizes=case.sizes), env[names[-1]],
                     rtol=1e-8, atol=1e-10, msg=f"default output of program:\n{case.text}")


# jacobian = central differences; vjp = u·J; jvp = J·v; uᵀ(Jv) = (uᵀJ)v; grad = J for scalars
@SETTINGS
@given(data=st.data())
def test_derivatives_are_consistent(data):
    case = data.draw(programs())
    names = [name for name, _, _ in case.statements]
    of = data.draw(st.sampled_from(names[::-1]))
    wrt = case.depends_on(of)
    note(f"program:\n{case.text}\nof={of} wrt={wrt}")
    inputs = _draw_inputs(data.draw, case)
    env = reference(case, inputs)
    scale = _check_reasonable(env, names[: names.index(of) + 1])
    msg = f"of={of} in program:\n{case.text}"
    out_shape = case.shape_of(of)
    sizes = case.sizes
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    u = rng.uniform(-1, 1, size=out_shape)
    v = {name: rng.uniform(-1, 1, size=INPUT_SHAPES[name]) for name in wrt}
    some = data.draw(st.lists(st.sampled_from(wrt), min_size=1, unique=True))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", einderiv.EinderivWarning)
        program = einderiv.parse(case.text)
        jac = einderiv.jacobian(program, wrt, inputs, of=of, sizes=sizes)
        assert sorted(jac) == wrt, msg
        for name in wrt:
            assert np.shape(jac[name]) == out_shape + INPUT_SHAPES[name], f"d/d{name} {msg}"
            numeric = np.asarray(fd_jacobian(program, name, inputs, of=of, sizes=sizes))
            # Central differences err by O(eps^2 times the third derivative): a second step size measures that error, so a steep
            # program widens the tolerance by what the reference itself is unsure of, and nothing more.
            coarse = np.asarray(fd_jacobian(program, name, inputs, of=of, sizes=sizes, eps=2e-6))
            got = np.asarray(jac[name])
            tolerance = 1e-5 * np.abs(numeric) + 1e-6 * scale + 2 * np.abs(numeric - coarse)
            bad = np.abs(got - numeric) > tolerance
            assert not bad.any(), (f"d/d{name} {msg}: einderiv {got[bad][:3]}, finite differences "
                                   f"{numeric[bad][:3]} (step 2e-6: {coarse[bad][:3]})")

        back = einderiv.vjp(program, wrt, inputs, u, of=of, sizes=sizes)
        assert sorted(back) == wrt, msg
        for name in wrt:
            assert_close(back[name], _contract(u, jac[name], len(out_shape)),
                         rtol=1e-7, atol=1e-9 * scale, msg=f"vjp {name} {msg}")

        fwd = einderiv.jvp(program, v, inputs, of=of, sizes=sizes)
        expected = sum(_contract(jac[n], v[n], len(INPUT_SHAPES[n])) for n in wrt)
        assert_close(fwd, np.broadcast_to(expected, out_shape), rtol=1e-7, atol=1e-9 * scale, msg=f"jvp {msg}")

        partial = einderiv.jvp(program, {n: v[n] for n in some}, inputs, of=of, sizes=sizes)
        expected = sum(_contract(jac[n], v[n], len(INPUT_SHAPES[n])) for n in some)
        assert_close(partial, np.broadcast_to(expected, out_shape), rtol=1e-7, atol=1e-9 * scale,
                     msg=f"jvp wrt {some} {msg}")

        lhs = float(np.sum(u * np.asarray(fwd)))
        rhs = sum(float(np.sum(np.asarray(back[n]) * v[n])) for n in wrt)
        assert abs(lhs - rhs) <= 1e-7 * (1 + abs(lhs) + abs(rhs)), f"<u, Jv> = {lhs} != <uJ, v> = {rhs}; {msg}"

        if out_shape == ():
            g = einderiv.grad(program, wrt, inputs, of=of, sizes=sizes)
            for name in wrt:
                assert_close(g[name], jac[name], rtol=1e-9, atol=1e-12 * scale, msg=f"grad {name} {msg}")


# the symbolic derivative exists, prints as d<of>.../d<wrt>..., and is stable
@settings(max_examples=max(30, EXAMPLES // 2), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=programs(max_statements=3))
def test_symbolic_derivative_prints(case):
    note(f"program:\n{case.text}")
    names = [name for name, _, _ in case.statements]
    of = names[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", einderiv.EinderivWarning)
        first = einderiv.parse(case.text)
        second = einderiv.parse(case.text)
        for name in case.depends_on(of):
            text = str(first.derivative(name, of=of))
            # intermediate lines d<of>/d<statement> = ... may precede the final line
            lines = text.split("\n")
            assert all(line.startswith(f"d{of}") for line in lines), (
                f"{text!r} for d{of}/d{name} in program:\n{case.text}")
            last_lhs = lines[-1].split(" = ")[0]
            assert last_lhs.split("/")[-1].split("[")[0] == f"d{name}", f"{text!r} in program:\n{case.text}"
            assert text == str(second.derivative(name, of=of)), case.text
            ascii_text = first.derivative(name, of=of).to_text(ascii=True)
            assert ascii_text.isascii(), f"{ascii_text!r} in program:\n{case.text}"


# the generator itself: rendered programs round-trip through the reference without error
@settings(max_examples=60, deadline=None, database=None)
@given(data=st.data())
def test_generator_self_check(data):
    case = data.draw(programs())
    inputs = _draw_inputs(data.draw, case)
    env = reference(case, inputs)
    for name, lhs, _ in case.statements:
        assert np.shape(env[name]) == tuple(SIZES[ix] for ix in lhs), case.text
    # every statement survives comments and separators
    code = "\n".join(line.split("#")[0] for line in case.text.split("\n"))
    pieces = [p.strip() for p in code.replace(";", "\n").split("\n") if p.strip()]
    assert [p.split("=")[0].split("[")[0].strip() for p in pieces] == [n for n, _, _ in case.statements], case.text

