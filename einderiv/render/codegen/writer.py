"""Generated code: a program and its derivatives as a standalone Python module.

:func:`codegen` writes the forward statements, the adjoint statements of
reverse mode and, on request, the Hessian statements (see
:mod:`einderiv.numeric.hessian`) as plain numpy and opt_einsum code that imports
nothing else, so the module runs where einderiv is not installed. Each line is
preceded by a comment giving the index statement it implements, in canonical
printed form (never the program's raw text):

* a product with a summed index is one ``oe.contract("nd,dh->nh", X, W1)``
  call (integer-free subscripts, one letter per index); with ``shapes`` the
  contraction order found by ``opt_einsum.contract_path`` is written in as
  ``optimize=[(0, 1), …]``, so the module does no path search;
* a product without one is numpy broadcasting (``H0 + b1``, ``a[:, None] * b``);
* elementwise functions are numpy expressions (``np.tanh(H1)``,
  ``0.5 * (1.0 + np.tanh(0.5 * u))`` for the sigmoid);
* a free Kronecker delta is an addition into a strided diagonal view of a
  zeroed array, through the ``_diagonal`` helper the module defines.

Arrays are read as float64. Sizes come from the arrays at run time (``X.shape[0]``),
so one module serves every shape; an index no array fixes takes its size from
``sizes``.

The code is built from the IR as expression trees that parenthesize by Python
precedence, from validated identifiers, numbers and operators only: a tensor
name that is a keyword, builtin or a name the module uses gets a suffix
(``exec`` → ``exec_``), ``1e999`` is ``np.inf``, and every comment is escaped to
printable text. Before it is returned, the module is parsed and checked against
an allow-list of statements, names, calls and attributes.

>>> text = codegen("F[i,k] = W[i,j] X[j,k]; L = F[i,k] F[i,k]", "W")
>>> print(text.split("def value_and_grad", 1)[1].split("return", 1)[0])
(**inputs):
    \"\"\"The value of L and its gradient with respect to W: (L, {"W": dL/dW}).\"\"\"
    W = _array(inputs, "W", 2)
    X = _array(inputs, "X", 2)
    # F[i,k] = W[i,j] X[j,k]
    F = oe.contract("ij,jk->ik", W, X)
    # L = F[i,k]^2
    L = oe.contract("ik->", F ** 2)
    # dL/dW[a,b] = 2 F[a,k] X[b,k]
    dL_dW = 2 * oe.contract("ak,bk->ab", F, X)
<BLANKLINE>
"""

from __future__ import annotations

import ast
import builtins
import itertools
import json
import keyword
import math
import re
import textwrap
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import opt_einsum

from einderiv.core import ir
from einderiv.core.functions import FUNCTIONS
from einderiv.calculus.differentiation import numeric_inline, reverse_program
from einderiv.errors import ProgramError, ShapeError, UnsupportedError
from einderiv.core.ir import Call, Delta, Expr, Power, Ref, Size, Term
from einderiv.numeric.planning import Context, delta_groups, index_size
from einderiv.language.printing import distinct_names, format_expr, format_number, format_ref, plural
from einderiv.calculus.program import Program, ancestors, as_program, wrt_slots
from einderiv.numeric.hessian import HessianProgram, gradient_program, hessian_program
from einderiv.language.lowering import Statement, checked_size, resolve_sizes, written_names
from einderiv.names import adjoint_of, fresh, gradient_of, slot_of

__all__ = ["codegen", "function_code"]


# ---------------------------------------------------------------- code expressions
#
# Generated expressions are small trees, never pasted strings: each ``_Code``
# knows the Python precedence of its outermost operator, and every constructor
# parenthesizes an operand whose precedence is below what its operator needs.
# So ``0.5 * u`` with ``u = x - 1.0`` is ``0.5 * (x - 1.0)`` whatever ``u`` is.

_ADD, _MUL, _UNARY, _POWER, _ATOM = 12, 13, 14, 15, 16
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class _Code:
    """A Python expression and the precedence of its outermost operator."""

    text: str
    precedence: int = _ATOM
    variable: bool = False    # a bare local name (an alias of an array)
    literal: bool = False     # a number literal: ``2 .T`` would need a space, so it is wrapped


def _operand(code: _Code, at_least: int) -> str:
    """``code`` as an operand that needs precedence ``at_least``: parenthesized if it binds more loosely."""
    return code.text if code.precedence >= at_least else f"({code.text})"


def _head(code: _Code) -> str:
    """``code`` before ``.name``, ``(…)`` or ``[…]``."""
    return code.text if code.precedence >= _ATOM and not code.literal else f"({code.text})"


def _var(name: str) -> _Code:
    """A local or global name of the generated code; anything but an identifier is refused."""
    if not _IDENTIFIER.fullmatch(name) or keyword.iskeyword(name):
        raise UnsupportedError(f"codegen cannot use {name!r} as a Python name")
    return _Code(name, variable=True)


def _num(value: float, as_float: bool = False) -> _Code:
    """A number: ``2``, ``0.5``, ``-1.5``; infinities and NaN are ``np.inf`` and ``np.nan``, never a bare name."""
    value = float(value)
    if math.isnan(value):
        return _Code("np.nan")
    if math.isinf(value):
        return _Code("np.inf") if value > 0 else _Code("-np.inf", _UNARY)
    text = repr(value) if as_float or not value.is_integer() else format_number(value)
    return _Code(text, _UNARY, literal=True) if text.startswith("-") else _Code(text, literal=True)


def _string(text: str) -> _Code:
    """A string literal (JSON's escaping is valid Python)."""
    return _Code(json.dumps(text))


def _op(left: _Code, op: str, right: _Code) -> _Code:
    """``left op right`` for ``+ - * / **``, each side parenthesized as the operator needs."""
    if op in ("+", "-"):
        level, need_left, need_right = _ADD, _ADD, _MUL
    elif op in ("*", "/"):
        level, need_left, need_right = _MUL, _MUL, _UNARY
    elif op == "**":   # right-associative, binds tighter than a unary minus on its left
        level, need_left, need_right = _POWER, _ATOM, _UNARY
    else:
        raise ValueError(f"not an arithmetic operator: {op!r}")
    return _Code(f"{_operand(left, need_left)} {op} {_operand(right, need_right)}", level)


def _neg(code: _Code) -> _Code:
    """``-code``: anything but a name, call or bracket is parenthesized (``-(x ** 2)``)."""
    return _Code(f"-{_operand(code, _ATOM)}", _UNARY)


def _product(factors: Sequence[_Code]) -> _Code:
    """``f1 * f2 * …`` (at least one factor)."""
    result = factors[0]
    for factor in factors[1:]:
        result = _op(result, "*", factor)
    return result


def _call(callee: str | _Code, args: Sequence[_Code], keywords: Sequence[tuple[str, str]] = ()) -> _Code:
    """``callee(args, key=value)``; a ``str`` callee is a fixed name of the generated code."""
    head = callee if isinstance(callee, str) else _head(callee)
    parts = [a.text for a in args] + [f"{key}={value}" for key, value in keywords]
    return _Code(f"{head}({', '.join(parts)})")


def _attribute(code: _Code, name: str) -> _Code:
    return _Code(f"{_head(code)}.{name}")


def _subscript(code: _Code, items: str) -> _Code:
    return _Code(f"{_head(code)}[{items}]")


class _Template:
    """Generated code as a function's ``code`` template sees it: numpy-like calls and arithmetic build code.

    ``0.5 * (1.0 + np.tanh(0.5 * u))`` with ``u`` the code ``x - 1.0`` builds
    ``0.5 * (1.0 + np.tanh(0.5 * (x - 1.0)))``: every operator goes through :func:`_op`.
    """

    def __init__(self, code: _Code):
        self.code = code

    def __call__(self, *args: object) -> "_Template":
        return _Template(_call(self.code, [_lift(a) for a in args]))

    def astype(self, dtype: "_Template") -> "_Template":
        return _Template(_call(_attribute(self.code, "astype"), [_lift(dtype)]))

    def __add__(self, other: object) -> "_Template":
        return _Template(_op(self.code, "+", _lift(other)))

    def __radd__(self, other: object) -> "_Template":
        return _Template(_op(_lift(other), "+", self.code))

    def __sub__(self, other: object) -> "_Template":
        return _Template(_op(self.code, "-", _lift(other)))

    def __rsub__(self, other: object) -> "_Template":
        return _Template(_op(_lift(other), "-", self.code))

    def __mul__(self, other: object) -> "_Template":
        return _Template(_op(self.code, "*", _lift(other)))

    def __rmul__(self, other: object) -> "_Template":
        return _Template(_op(_lift(other), "*", self.code))

    def __truediv__(self, other: object) -> "_Template":
        return _Template(_op(self.code, "/", _lift(other)))

    def __rtruediv__(self, other: object) -> "_Template":
        return _Template(_op(_lift(other), "/", self.code))

    def __pow__(self, other: object) -> "_Template":
        return _Template(_op(self.code, "**", _lift(other)))

    def __rpow__(self, other: object) -> "_Template":
        return _Template(_op(_lift(other), "**", self.code))

    def __neg__(self) -> "_Template":
        return _Template(_neg(self.code))


def _lift(value: object) -> _Code:
    """A template's operand as code: generated code as it is, a Python float as ``0.5``, an int as ``2``."""
    if isinstance(value, _Template):
        return value.code
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a code template combined {type(value).__name__}, not code or a number")
    return _num(value, as_float=isinstance(value, float))


class _NumpyCode:
    """The ``np`` a ``code`` template calls: ``np.tanh`` is the code ``np.tanh``; ``names`` records what is used."""

    def __init__(self, names: set[str] | None = None):
        self.names = names

    def __getattr__(self, name: str) -> _Template:
        if not _IDENTIFIER.fullmatch(name) or name.startswith("_"):
            raise AttributeError(name)
        if self.names is not None:
            self.names.add(name)
        return _Template(_Code(f"np.{name}"))


_NUMPY = _NumpyCode()


def function_code(fn: str, args: Sequence[_Code]) -> _Code:
    """The numpy code of the elementwise function ``fn`` of ``args`` (its registration's ``code``).

    >>> function_code("sigmoid", [_op(_var("x"), "-", _num(1.0))]).text
    'np.exp(-np.logaddexp(0.0, -(x - 1)))'
    """
    registered = FUNCTIONS.get(fn)
    if registered is None:
        raise UnsupportedError(f"codegen has no numpy code for the function '{fn}'; known: {', '.join(FUNCTIONS)}")
    return _lift(registered.code(_NUMPY, *(_Template(a) for a in args)))


def _template_names() -> frozenset[str]:
    """The numpy names the registered functions' code templates use."""
    names: set[str] = set()
    for registered in FUNCTIONS.values():
        registered.code(_NumpyCode(names), *(_Template(_var("u")) for _ in range(registered.arity)))
    return frozenset(names)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Names the generated functions read: no local variable may take one of these.
_GLOBALS = frozenset({"np", "oe", "_array", "_diagonal", "float", "inputs"})
_RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | _GLOBALS | {
    "value_and_grad", "hessian", "numpy", "opt_einsum", "math", "os", "sys"}

_PRELUDE = '''import numpy as np
import opt_einsum as oe


def _array(inputs, name, ndim):
    """The input ``name`` as a float64 array with ``ndim`` axes."""
    if name not in inputs:
        raise KeyError(f"missing input {name!r}")
    array = np.asarray(inputs[name], dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"input {name!r} has {array.ndim} axes, expected {ndim}")
    return array


def _diagonal(out, groups):
    """A writeable view of ``out`` with one axis per group of its axes: a strided diagonal."""
    shape = tuple(out.shape[group[0]] for group in groups)
    strides = tuple(sum(out.strides[axis] for axis in group) for group in groups)
    return np.lib.stride_tricks.as_strided(out, shape, strides, writeable=True)'''

_HEADER = '''"""Generated by einderiv {version}: {what}, with numpy and opt_einsum only.

{api}
Each step is preceded by the index statement it implements; arrays are read as
float64. The program:

{program}
"""

'''

def codegen(program: Program | str, wrt: str | Sequence[str], *, of: str | None = None,
            shapes: Mapping[str, Sequence[int]] | None = None, sizes: Mapping[str, int] | None = None,
            hessian: bool = False) -> str:
    """Python source of a module computing ``of`` and its derivatives with numpy and opt_einsum.

    The module defines ``value_and_grad(**inputs) -> (value, {wrt: gradient})``
    and, with ``hessian=True``, ``hessian(**inputs) -> {(wrt1, wrt2): block}``
    for every ordered pair of ``wrt`` (blocks shaped ``shape(wrt1) + shape(wrt2)``).
    ``shapes`` (input name → shape) lets each contraction carry its precomputed
    path; ``sizes`` gives indices no array fixes.

    >>> source = codegen("L = x[i] A[i,j] x[j]", "x", shapes={"x": (3,), "A": (3, 3)}, hessian=True)
    >>> "optimize=[(0, 1), (0, 1)]" in source and "def hessian(**inputs):" in source
    True
    """
    program = as_program(program)
    of = program.resolve_output(of)
    wrts = (wrt,) if isinstance(wrt, str) else tuple(wrt)
    if not wrts or not all(isinstance(w, str) for w in wrts) or len(set(wrts)) != len(wrts):
        raise ProgramError(f"wrt must be an input name or a list of distinct names, got {wrt!r}")
    for w in wrts:
        program.check_input(w)
    if program.rank(of) != 0:
        raise ShapeError(f"codegen writes gradients of a scalar output, but '{of}' has "
                         f"{program.rank(of)} {plural(program.rank(of), 'index')}; choose a scalar with of=...")
    _check_names(program)
    user_sizes = _checked_sizes(sizes)
    ctx = _path_context(program, of, wrts, shapes, user_sizes) if shapes is not None else None
    module = _Module(program, of, wrts, ctx, user_sizes)
    parts = [_header(program, of, wrts, hessian), module.value_and_grad()]
    if hessian:
        parts.append(module.hessian())
    return _verified("\n\n\n".join(parts) + "\n")


def _check_names(program: Program) -> None:
    """Every tensor name is an identifier ``[A-Za-z_][A-Za-z0-9_]*``: the only names that reach the code."""
    for name in [n for n, _ in program.inputs] + [s.name for s in program.statements]:
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
            raise ProgramError(f"codegen needs tensor names of the form [A-Za-z_][A-Za-z0-9_]*, got {name!r}")


def _checked_sizes(sizes: Mapping[str, int] | None) -> dict[str, int]:
    if sizes is None:
        return {}
    if not isinstance(sizes, Mapping):
        raise ShapeError(f"sizes must map index names to integers, got {type(sizes).__name__}")
    return {str(k): checked_size(f"size of index '{k}'", v) for k, v in sizes.items()}


def _path_context(program: Program, of: str, wrts: Sequence[str], shapes: Mapping[str, Sequence[int]],
                  user_sizes: Mapping[str, int]) -> Context:
    """Index sizes from ``shapes``, for contraction paths."""
    if not isinstance(shapes, Mapping):
        raise ShapeError(f"shapes must map input names to shapes, got {type(shapes).__name__}")
    ranks = dict(program.inputs)
    statements = _ancestors(program, of)
    needed = list(dict.fromkeys([t for s in statements for t in written_names(s) if t in ranks] + list(wrts)))
    missing = [n for n in needed if n not in shapes]
    if missing:
        raise ShapeError(f"shapes has no entry for {', '.join(missing)}; give every input's shape "
                         f"(given: {', '.join(sorted(shapes)) or 'none'})")
    given: dict[str, tuple[int, ...]] = {}
    for name in needed:
        try:
            shape = tuple(int(n) for n in shapes[name])
        except (TypeError, ValueError):
            raise ShapeError(f"the shape of '{name}' must be a sequence of integers, got {shapes[name]!r}") from None
        if len(shape) != ranks[name]:
            raise ShapeError(f"the shape of '{name}' has {len(shape)} {plural(len(shape), 'axis')} but '{name}' "
                             f"is written with {ranks[name]} {plural(ranks[name], 'index')}")
        given[name] = tuple(checked_size(f"a size in the shape of '{name}'", n) for n in shape)
    index_sizes, all_shapes = resolve_sizes(tuple(statements), given, user_sizes)
    return Context(index_sizes, all_shapes, np.dtype(np.float64))


def _ancestors(program: Program, of: str) -> list[Statement]:
    return [program.statement(n) for n in ancestors(program, of)]


def _header(program: Program, of: str, wrts: Sequence[str], hessian: bool) -> str:
    """The module docstring (the program in canonical printed form, never its raw text) and the prelude."""
    from einderiv import __version__
    listed = ", ".join(wrts)
    api = f"value_and_grad(**inputs) -> ({of}, {{name: d{of}/d name}}) for {listed}\n"
    if hessian:
        api += f"hessian(**inputs) -> {{(name1, name2): d²{of}/d name1 d name2}} for {listed}\n"
    lines = "\n".join(f"    {_statement_text(s.name, s.lhs, s.rhs, {})}" for s in program.statements)
    what = f"{of} and its derivatives" if not hessian else f"{of}, its gradient and its Hessian"
    text = _HEADER.format(version=__version__, what=what, api=_docstring_text(api),
                          program=_docstring_text(lines))
    return text + _PRELUDE


# ---------------------------------------------------------------- code text helpers

def _aligned(code: _Code, present: Sequence[int], rank: int) -> _Code:
    """``code``, whose axes are the ``present`` positions of a rank-``rank`` target, made to broadcast."""
    pattern = [":" if k in present else "None" for k in range(rank)]
    while pattern and pattern[0] == "None":
        pattern.pop(0)
    if all(p == ":" for p in pattern):
        return code
    return _subscript(code, ", ".join(pattern))


def _printable(text: str) -> str:
    """``text`` with a backslash and every character that is not printable escaped (``\\r`` → ``\\\\r``):
    it can never end a comment line or a docstring early.

    >>> _printable("L = x\\r os.system(1)\\f")
    'L = x\\\\r os.system(1)\\\\x0c'
    """
    return "".join(c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _docstring_text(text: str) -> str:
    """``text`` for inside a triple-quoted docstring: lines kept, each made printable, no closing quotes."""
    escaped = "\n".join(_printable(line) for line in text.split("\n"))
    return escaped.replace('"', '\\"') if '"""' in escaped or escaped.endswith('"') else escaped


@dataclass(frozen=True)
class _TermCode:
    code: _Code                       # the term's magnitude (sign in ``negative``)
    negative: bool
    present: tuple[int, ...]          # view axes the value has, in order
    groups: tuple[tuple[int, ...], ...] | None   # target axes of each view axis (None: no delta)


# ---------------------------------------------------------------- the writer

class _Writer:
    """Lines of one generated function, with its variable names."""

    def __init__(self, program: Program, ctx: Context | None, user_sizes: Mapping[str, int]):
        self.program = program
        self.ctx = ctx
        self.user_sizes = user_sizes
        self.lines: list[str] = []
        self.names: dict[str, str] = {}
        self.used: set[str] = set()
        self.computed: set[str] = set()
        self.labels: dict[str, str] = {}
        self.reused: dict[tuple[str, str], tuple[str, Expr]] = {}
        self.temps = 0
        self.occurrences: dict[str, list[tuple[str, int]]] = {}
        for s in program.statements:
            for occ in s.occurrences:
                self.occurrences.setdefault(occ.root, []).append((occ.tensor, occ.axis))
            for _ in s.deltas:                  # a written δ[i,a] gives each index the other's size
                for pair in s.deltas:
                    for known, unknown in (pair, pair[::-1]):
                        if known in self.occurrences and unknown not in self.occurrences:
                            self.occurrences[unknown] = list(self.occurrences[known])
        self.inputs = dict(program.inputs)

    # names
    def identifier(self, preferred: str) -> str:
        """A fresh local name from ``preferred``: an ASCII identifier that shadows no builtin, keyword
        or name the generated code reads (``exec`` → ``exec_``, ``np`` → ``np_``)."""
        name = re.sub(r"[^A-Za-z0-9_]", "_", preferred)
        if not name or name[0].isdigit():
            name = f"v{name}"
        name = fresh((name + "_" * k for k in itertools.count()), self.used, _RESERVED)
        self.used.add(name)
        return _var(name).text

    def bind(self, tensor: str, preferred: str) -> str:
        self.names[tensor] = self.identifier(preferred)
        return self.names[tensor]

    def temp(self) -> str:
        self.temps += 1
        return self.identifier(f"t{self.temps}")

    def ref(self, tensor: str) -> _Code:
        return _var(self.names[tensor])

    # sizes
    def axis_size(self, tensor: str, axis: str | int) -> _Code:
        """``T.shape[axis]``."""
        return _subscript(_attribute(self.ref(tensor), "shape"), str(int(axis)))

    def size(self, index: str) -> _Code:
        root = ir.index_root(index)
        slot = slot_of(root)
        if slot is not None:
            return self.axis_size(*slot)
        candidates = self.occurrences.get(root, [])
        for tensor, axis in candidates:
            if tensor in self.inputs and tensor in self.names:
                return self.axis_size(tensor, axis)
        for tensor, axis in candidates:
            if tensor in self.computed:
                return self.axis_size(tensor, axis)
        display = ir.display_name(root)
        if display in self.user_sizes:
            return _num(self.user_sizes[display])
        raise ShapeError(f"index '{display}' is fixed by no array; give its size: sizes={{'{display}': 3}}")

    def shape(self, indices: Sequence[str]) -> str:
        """The shape over ``indices`` as code: ``W.shape + (X.shape[0], 5)``."""
        parts: list[str] = []
        loose: list[str] = []
        k = 0
        while k < len(indices):
            whole = self._whole_tensor(indices[k:])
            if whole is None:
                loose.append(self.size(indices[k]).text)
                k += 1
                continue
            if loose:
                parts.append(f"({', '.join(loose)},)" if len(loose) == 1 else f"({', '.join(loose)})")
                loose = []
            tensor, rank = whole
            parts.append(_attribute(self.ref(tensor), "shape").text)
            k += rank
        if loose:
            parts.append(f"({', '.join(loose)},)" if len(loose) == 1 else f"({', '.join(loose)})")
        return " + ".join(parts) if parts else "()"

    def _whole_tensor(self, indices: Sequence[str]) -> tuple[str, int] | None:
        """A run of slot indices naming every axis of one input, in order."""
        slot = slot_of(indices[0])
        if slot is None:
            return None
        tensor = slot[0]
        rank = self.inputs.get(tensor, -1)
        if rank <= 0 or len(indices) < rank:
            return None
        for axis in range(rank):
            if slot_of(indices[axis]) != (tensor, axis):
                return None
        return tensor, rank

    # statements
    def comment(self, text: str) -> None:
        """A ``#`` line: canonical printed text, every control character escaped."""
        self.lines.append(f"# {_printable(text)}")

    def assign(self, var: str, expr: Expr, target: tuple[str, ...], fresh: bool = False) -> None:
        """Lines setting ``var`` to ``expr`` over ``target``; ``fresh``: never an alias of another array."""
        var = _var(var).text
        rank = len(target)
        terms = [self.term(t, target) for t in expr.terms]
        if not terms:
            self.lines.append(f"{var} = np.zeros({self.shape(target)})")
            return
        dense = all(t.groups is None for t in terms)
        covered = {k for t in terms for k in t.present}
        if dense and len(covered) == rank and (len(terms) > 1 or len(terms[0].present) == rank):
            code = self.join(terms, rank)
            if fresh and code.variable:
                code = _call(_attribute(code, "copy"), [])
            self.lines.append(f"{var} = {code.text}")
            return
        self.lines.append(f"{var} = np.zeros({self.shape(target)})")
        for t in terms:
            op = "-=" if t.negative else "+="
            if t.groups is None:
                self.lines.append(f"{var} {op} {_aligned(t.code, t.present, rank).text}")
            else:
                view = f"_diagonal({var}, {t.groups!r})"
                self.lines.append(f"{view}[...] {op} {_aligned(t.code, t.present, len(t.groups)).text}")

    def join(self, terms: Sequence[_TermCode], rank: int) -> _Code:
        """The signed sum of ``terms``, each broadcast to ``rank`` axes."""
        result: _Code | None = None
        for t in terms:
            code = _aligned(t.code, t.present, rank)
            if result is None:
                result = _neg(code) if t.negative else code
            else:
                result = _op(result, "-" if t.negative else "+", code)
        assert result is not None, "join needs a term"
        return result

    def inline(self, expr: Expr, indices: tuple[str, ...]) -> _Code:
        """``expr`` as one Python expression broadcasting against ``indices``."""
        free = set(ir.free_indices(expr))
        own = tuple(i for i in indices if i in free)
        value = ir.constant_value(expr)
        if value is not None:
            return _num(value)
        terms = [self.term(t, own) for t in expr.terms]
        if all(t.groups is None for t in terms):
            code = self.join(terms, len(own))   # every free index is in some term: full shape
        else:
            name = self.temp()
            self.assign(name, expr, own)
            code = _var(name)
        return _aligned(code, [k for k, i in enumerate(indices) if i in free], len(indices))

    def factor(self, factor: Ref | Call | ir.MatFn | Power) -> tuple[_Code, tuple[str, ...], bool]:
        """(code, indices, reciprocal) of a factor that is an operand of a product (deltas and sizes are not)."""
        if isinstance(factor, Ref):
            return self.ref(factor.name), factor.indices, False
        indices = tuple(dict.fromkeys(ir.factor_indices(factor)))
        if isinstance(factor, Call):
            return function_code(factor.fn, [self.inline(a, indices) for a in factor.args]), indices, False
        if isinstance(factor, ir.MatFn):    # one numpy.linalg call on the argument, laid out as (batch…, rows, cols)
            batch = factor.indices[:-2] if factor.fn == "inv" else factor.indices
            matrix = self.inline(factor.arg, batch + (factor.rows, factor.cols))
            if factor.fn == "det":
                return _call("np.linalg.det", [matrix]), indices, False
            if factor.fn == "logdet":
                return _subscript(_call("np.linalg.slogdet", [matrix]), "1"), indices, False
            code = _call("np.linalg.inv", [matrix])
            if factor.indices[-1] == factor.indices[-2]:            # inv(A)[i,i]: the diagonal
                code = _call("np.diagonal", [code, _num(0), _num(-2), _num(-1)])
            return code, indices, False
        base = self.inline(factor.base, indices)
        p = ir.constant_value(factor.exponent)
        if p is None:
            return _call("np.power", [base, self.inline(factor.exponent, indices)]), indices, False
        if p == -1.0:
            return base, indices, True
        if p == 0.5:
            return _call("np.sqrt", [base]), indices, False
        # a negative exponent as a float: an integer base to a negative integer power is an error in numpy
        return _op(base, "**", _num(p, as_float=p < 0)), indices, False

    def term(self, term: Term, target: tuple[str, ...]) -> _TermCode:
        """A term's magnitude over view axes: deltas group target axes, the rest is a product."""
        coeff = term.coeff
        scalars: list[_Code] = []
        operands: list[tuple[_Code, tuple[str, ...], bool]] = []
        deltas: list[Delta] = []
        for f in term.factors:
            if isinstance(f, Delta):
                deltas.append(f)
            elif isinstance(f, Size):
                scalars.append(self.size(f.index))
            else:
                operands.append(self.factor(f))
        position = {index: k for k, index in enumerate(target)}
        reps = delta_groups(target, deltas)
        order = list(dict.fromkeys(reps))
        groups = tuple(tuple(k for k in range(len(target)) if reps[k] == r) for r in order)
        rep_of = {index: target[reps[k]] for index, k in position.items()}
        mapped = [(code, tuple(rep_of.get(i, i) for i in idx), recip) for code, idx, recip in operands]
        present_names = {i for _, idx, _ in mapped for i in idx}
        view = [target[r] for r in order]
        out = tuple(i for i in view if i in present_names)
        magnitude = abs(coeff)
        if mapped:
            code = _product(([_num(magnitude)] if magnitude != 1.0 else []) + scalars + [self.product(mapped, out)])
        else:   # a number times sizes
            code = _product(([_num(magnitude, as_float=True)] if magnitude != 1.0 or not scalars else []) + scalars)
        present = tuple(k for k, i in enumerate(view) if i in present_names)
        return _TermCode(code, coeff < 0, present, groups if len(order) < len(target) else None)

    def product(self, operands: Sequence[tuple[_Code, tuple[str, ...], bool]], out: tuple[str, ...]) -> _Code:
        """Operands multiplied and summed down to ``out``: broadcasting, or one opt_einsum call."""
        one = _num(1.0, as_float=True)
        position = {i: k for k, i in enumerate(out)}
        elementwise = all(len(set(idx)) == len(idx) and all(i in position for i in idx) for _, idx, _ in operands)
        if elementwise:
            numerator: list[_Code] = []
            denominator: list[_Code] = []
            for code, idx, recip in operands:
                places = [position[i] for i in idx]
                if places != sorted(places):
                    perm = sorted(range(len(idx)), key=lambda a: places[a])
                    code = _attribute(code, "T") if perm == list(range(len(idx)))[::-1] else \
                        _call("np.transpose", [code, _Code(repr(tuple(perm)))])
                    places = sorted(places)
                (denominator if recip else numerator).append(_aligned(code, places, len(out)))
            result = _product(numerator) if numerator else one
            for d in denominator:
                result = _op(result, "/", d)
            return result
        outside = [(code, recip) for code, idx, recip in operands if not idx]
        if outside:
            inside = [op for op in operands if op[1]]
            factors = [code for code, recip in outside if not recip] + ([self.product(inside, out)] if inside else [])
            result = _product(factors) if factors else one
            for code, recip in outside:
                if recip:
                    result = _op(result, "/", code)
            return result
        letters = self.letters([idx for _, idx, _ in operands], out)
        subscripts = ",".join("".join(letters[i] for i in idx) for _, idx, _ in operands)
        subscripts += "->" + "".join(letters[i] for i in out)
        args = [_op(one, "/", code) if recip else code for code, _, recip in operands]
        keywords = []
        if self.ctx is not None:
            shapes = [tuple(index_size(i, self.ctx) for i in idx) for _, idx, _ in operands]
            path, _ = opt_einsum.contract_path(subscripts, *shapes, shapes=True)
            keywords.append(("optimize", repr([tuple(int(k) for k in step) for step in path])))
        return _call("oe.contract", [_string(subscripts)] + args, keywords)

    @staticmethod
    def letters(operand_indices: Sequence[tuple[str, ...]], out: tuple[str, ...]) -> dict[str, str]:
        """One subscript letter per index: its own name where that is a free letter."""
        names: dict[str, str] = {}
        taken: set[str] = set()
        everything = list(dict.fromkeys([i for idx in operand_indices for i in idx] + list(out)))
        for index in everything:
            display = ir.display_name(index)
            if len(display) == 1 and display in _LETTERS and display not in taken:
                names[index] = display
                taken.add(display)
        spare = (opt_einsum.get_symbol(k) for k in range(10_000))
        for index in everything:
            if index not in names:
                letter = next(s for s in spare if s not in taken)
                names[index] = letter
                taken.add(letter)
        return names


# ---------------------------------------------------------------- the module

class _Module:
    """The two generated functions of one program."""

    def __init__(self, program: Program, of: str, wrts: tuple[str, ...], ctx: Context | None,
                 user_sizes: Mapping[str, int]):
        self.program = program
        self.of = of
        self.wrts = wrts
        self.ctx = ctx
        self.user_sizes = user_sizes
        self.forward = _ancestors(program, of)
        ranks = dict(program.inputs)
        used = [t for s in self.forward for t in written_names(s) if t in ranks]
        self.inputs = list(dict.fromkeys(used + list(wrts) + ([of] if of in ranks else [])))

    def _start(self) -> _Writer:
        w = _Writer(self.program, self.ctx, self.user_sizes)
        ranks = dict(self.program.inputs)
        for name in self.inputs:
            var = w.bind(name, name)
            w.lines.append(f"{var} = {_call('_array', [_var('inputs'), _string(name), _num(ranks[name])]).text}")
        return w

    def _run_forward(self, w: _Writer, names: set[str] | None = None) -> None:
        for s in self.forward:
            if names is not None and s.name not in names:
                continue
            var = w.bind(s.name, s.name)
            w.comment(_statement_text(s.name, s.lhs, s.rhs, {}))
            w.assign(var, s.rhs, s.lhs)
            w.computed.add(s.name)

    def value_and_grad(self) -> str:
        of, wrts = self.of, self.wrts
        w = self._start()
        self._run_forward(w)
        if of in self.program.names:
            slots = {x: wrt_slots(self.program, x) for x in wrts}
            derived = reverse_program(self.program.statements, of, wrts, slots, ir.ONE, (), numeric_inline)
            labels = {s.name: f"d{of}/d{s.of}" for s in derived.statements}
            for s in derived.statements:
                var = w.bind(s.name, f"d{of}_d{s.of}")
                w.comment(_statement_text(labels[s.name], s.indices, s.expr, labels))
                w.assign(var, s.expr, s.indices)
            results = derived.results
        else:
            labels = {}
            results = tuple((x, wrt_slots(self.program, x), ir.ONE if x == of else ir.ZERO) for x in wrts)
        grads = []
        for x, target, expr in results:
            var = w.identifier(f"d{of}_d{x}")
            w.comment(_statement_text(f"d{of}/d{x}", target, expr, labels))
            w.assign(var, expr, target, fresh=True)
            grads.append(f"{_string(x).text}: {var}")
        value = w.names[of]
        w.lines.append(f"return float({_var(value).text}), {{{', '.join(grads)}}}")
        shown = ", ".join(f'"{x}": d{of}/d{x}' for x in wrts)
        doc = _docstring(f"The value of {of} and its gradient with respect to {', '.join(wrts)}: ({of}, {{{shown}}}).")
        return _function("value_and_grad", doc, w.lines)

    def hessian(self) -> str:
        of, wrts, program = self.of, self.wrts, self.program
        w = self._start()
        blocks = []
        if of in program.names:
            pairs = {(a, b): hessian_program(program, of, a, b, numeric_inline) for a in wrts for b in wrts}
            uses_of = any(s.name == of for h in pairs.values() for s in h.forward)
            self._run_forward(w, {s.name for s in self.forward if s.name != of or uses_of})
            emitted: set[str] = set()
            for a in wrts:
                self._gradient_statements(w, a, [pairs[(a, b)] for b in wrts], emitted)
                labels = {name: text for name, text in w.labels.items()}
                for b in wrts:
                    blocks.append(self._hessian_block(w, a, b, pairs[(a, b)], labels))
        else:
            for a in wrts:
                for b in wrts:
                    out = wrt_slots(program, a)
                    var = w.identifier(f"d2{of}_d{a}_d{b}")
                    w.assign(var, ir.ZERO, out + wrt_slots(program, b, out))
                    blocks.append(f"({_string(a).text}, {_string(b).text}): {var}")
        w.lines.append(f"return {{{', '.join(blocks)}}}")
        doc = _docstring(f"Second derivatives of {of}: {{(name1, name2): d²{of}/d name1 d name2}} for "
                         f"{', '.join(wrts)}; each of shape shape(name1) + shape(name2).")
        return _function("hessian", doc, w.lines)

    def _gradient_statements(self, w: _Writer, a: str, programs: Sequence[HessianProgram], emitted: set[str]) -> None:
        """The statements of the gradient program for ``a`` that some Hessian block needs.

        An adjoint ``G:T`` has the same value whichever input the gradient is
        taken for, so one already written is not written again.
        """
        of = self.of
        grad = gradient_program(self.program, of, a, numeric_inline)
        wanted = {s.name for h in programs for s in h.gradient}
        for s in grad.statements[grad.forward:]:
            w.labels[s.name] = f"d{of}/d{gradient_of(s.name)}"
        for s in grad.statements[grad.forward:]:
            if s.name not in wanted or (s.name in emitted and s.name != grad.name):
                continue
            emitted.add(s.name)
            var = w.bind(s.name, f"d{of}_d{gradient_of(s.name)}")
            w.comment(_statement_text(w.labels[s.name], s.lhs, s.rhs, w.labels))
            w.assign(var, s.rhs, s.lhs)

    def _hessian_block(self, w: _Writer, a: str, b: str, h: HessianProgram, labels: Mapping[str, str]) -> str:
        """Lines of the second reverse pass for one block; returns its entry of the result dict."""
        of = self.of
        tensors = dict(labels)
        for s in h.second:
            inner = adjoint_of(s.name)
            tensors[s.name] = f"d(d{of}/d{a})/d({labels[inner]})" if inner is not None and inner in labels else \
                f"d(d{of}/d{a})/d{inner}"
        w.lines.append("")
        w.comment(f"d²{of}/d{a} d{b}: reverse mode over the gradient program of d{of}/d{a}")
        for s in h.second:
            inner = adjoint_of(s.name)
            preferred = f"d{of}_d{a}_dd{of}_d{gradient_of(inner)}" if inner is not None and inner in labels else \
                f"d{of}_d{a}_d{inner}"
            known = w.reused.get((a, s.name))     # (variable, the expression it holds now)
            if known is not None and known[1] == s.expr:
                w.names[s.name] = known[0]          # computed by an earlier block: same value
                continue
            w.names[s.name] = known[0] if known is not None else w.identifier(preferred)
            w.reused[(a, s.name)] = (w.names[s.name], s.expr)
            w.comment(_statement_text(tensors[s.name], s.indices, s.expr, tensors))
            w.assign(w.names[s.name], s.expr, s.indices)
        var = w.identifier(f"d2{of}_d{a}_d{b}")
        names = distinct_names(h.indices)
        first, second = (format_ref(x, tuple(names[i] for i in idx)) for x, idx in ((a, h.out), (b, h.slots)))
        lhs = f"d²{of}/d{first}d{second}"
        w.comment(f"{lhs} = {format_expr(h.expr, names, tensors=tensors)}")
        w.assign(var, h.expr, h.indices, fresh=True)
        return f"({_string(a).text}, {_string(b).text}): {var}"


def _statement_text(name: str, indices: tuple[str, ...], expr: Expr, tensors: Mapping[str, str]) -> str:
    fixed = distinct_names(indices)
    lhs = format_ref(name, tuple(fixed[i] for i in indices))
    return f"{lhs} = {format_expr(expr, fixed, tensors=tensors)}"


def _docstring(text: str) -> list[str]:
    """A docstring's lines, wrapped at 96 columns."""
    lines = textwrap.wrap(_docstring_text(text), 92)
    if len(lines) == 1:
        return [f'"""{lines[0]}"""']
    return [f'"""{lines[0]}'] + lines[1:] + ['"""']


def _function(name: str, doc: Sequence[str], lines: Sequence[str]) -> str:
    body = "\n".join(f"    {line}" if line else "" for line in list(doc) + list(lines))
    return f"def {name}(**inputs):\n{body}"


# ---------------------------------------------------------------- the allow-list

#: What the generated functions may read besides their own locals, call, and look up as attributes.
#: The numpy names: those codegen writes itself, and those the functions' code templates use.
_NUMPY_NAMES = frozenset({"sqrt", "power", "zeros", "transpose", "float64", "inf", "nan", "linalg",
                          "diagonal"}) | _template_names()
_LINALG_NAMES = frozenset({"inv", "det", "slogdet"})
_ARRAY_ATTRIBUTES = frozenset({"shape", "T", "astype", "copy"})
_CALLABLE_GLOBALS = frozenset({"_array", "_diagonal", "float"})
_EXPRESSION_NODES = (ast.Name, ast.Constant, ast.Attribute, ast.Call, ast.keyword, ast.BinOp, ast.UnaryOp,
                     ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.Dict, ast.Load, ast.Store,
                     ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub)
_PRELUDE_DUMP = tuple(ast.dump(node) for node in ast.parse(_PRELUDE).body)


def _verified(source: str) -> str:
    """``source`` once it passes the allow-list of :func:`_disallowed`; otherwise UnsupportedError.

    >>> source = codegen("L = x[i] x[i]", "x")
    >>> _verified(source) == source
    True
    >>> _verified(source.replace("return float(L)", "return print(L)"))
    Traceback (most recent call last):
    ...
    einderiv.errors.UnsupportedError: codegen refused its own output (a call of print); please report the program
    """
    problem = _disallowed(source)
    if problem is not None:
        raise UnsupportedError(f"codegen refused its own output ({problem}); please report the program")
    return source


def _disallowed(source: str) -> str | None:
    """What in ``source`` falls outside what codegen writes, or None.

    Allowed: printable text and newlines only (so no comment or docstring ends early); a
    docstring, the fixed prelude (imports, ``_array``, ``_diagonal``), then ``value_and_grad``
    and ``hessian`` taking ``**inputs``, whose bodies are assignments, augmented assignments
    and one return, built from numbers, strings, locals assigned earlier, arithmetic,
    subscripts, the numpy functions of ``_NUMPY_NAMES``, ``oe.contract``, the helpers and ``float``.
    """
    bad = next((c for c in source if c != "\n" and not c.isprintable()), None)
    if bad is not None:
        return f"the character {bad!r}"
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return f"invalid syntax: {error.msg}"
    body = tree.body
    if not body or not _is_docstring(body[0]):
        return "no module docstring"
    end = 1 + len(_PRELUDE_DUMP)
    if tuple(ast.dump(node) for node in body[1:end]) != _PRELUDE_DUMP:
        return "imports or helpers that differ from the prelude"
    for node in body[end:]:
        problem = _disallowed_function(node)
        if problem is not None:
            return problem
    return None


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _disallowed_function(node: ast.stmt) -> str | None:
    if not isinstance(node, ast.FunctionDef) or node.name not in ("value_and_grad", "hessian"):
        return f"a top-level {type(node).__name__}"
    args = node.args
    if (node.decorator_list or node.returns or getattr(node, "type_params", None) or args.posonlyargs or args.args
            or args.vararg or args.kwonlyargs or args.defaults or args.kwarg is None or args.kwarg.arg != "inputs"
            or args.kwarg.annotation):
        return f"the signature of {node.name}"
    local: set[str] = set()
    for k, statement in enumerate(node.body):
        if k == 0 and _is_docstring(statement):
            continue
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                and isinstance(statement.targets[0], ast.Name):
            problem = _disallowed_expression(statement.value, local)
            name = statement.targets[0].id
            if problem is None and (name in _RESERVED or not _IDENTIFIER.fullmatch(name)):
                problem = f"an assignment to {name!r}"
            local.add(name)
        elif isinstance(statement, ast.AugAssign) and isinstance(statement.op, (ast.Add, ast.Sub)):
            target = statement.target
            if isinstance(target, ast.Name):
                problem = None if target.id in local else f"an update of {target.id!r}"
            elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Call):
                problem = _disallowed_expression(target, local, store=True)
            else:
                problem = "an update of something other than a local or a diagonal view"
            problem = problem or _disallowed_expression(statement.value, local)
        elif isinstance(statement, ast.Return) and k == len(node.body) - 1 and statement.value is not None:
            problem = _disallowed_expression(statement.value, local)
        else:
            problem = f"a {type(statement).__name__} statement"
        if problem is not None:
            return problem
    return None


def _disallowed_expression(expression: ast.AST, local: set[str], store: bool = False) -> str | None:
    for node in ast.walk(expression):
        if not isinstance(node, _EXPRESSION_NODES):
            return f"a {type(node).__name__} expression"
        if isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Load) or (node.id not in local and node.id not in _GLOBALS):
                return f"the name {node.id!r}"
        elif isinstance(node, (ast.Subscript, ast.Attribute, ast.Tuple, ast.List)) \
                and not isinstance(node.ctx, ast.Load) and not (store and node is expression):
            return "an assignment inside an expression"
        elif isinstance(node, ast.Constant):
            if node.value is not Ellipsis and node.value is not None and type(node.value) not in (int, float, str):
                return f"the constant {node.value!r}"
        elif isinstance(node, ast.Attribute):
            owner = node.value.id if isinstance(node.value, ast.Name) and node.value.id in ("np", "oe") else None
            if isinstance(node.value, ast.Attribute) and node.value.attr == "linalg" \
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "np":
                owner = "np.linalg"
            allowed = {"np": _NUMPY_NAMES, "oe": {"contract"}, "np.linalg": _LINALG_NAMES, None: _ARRAY_ATTRIBUTES}[owner]
            if node.attr not in allowed:
                return f"the attribute .{node.attr}"
        elif isinstance(node, ast.Call):
            callee = node.func
            named = isinstance(callee, ast.Name) and callee.id in _CALLABLE_GLOBALS
            if not named and not isinstance(callee, ast.Attribute):
                return f"a call of {ast.unparse(callee)}"
        elif isinstance(node, ast.keyword) and node.arg != "optimize":
            return f"the keyword {node.arg!r}"
        elif isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.USub):
            return f"the operator {type(node.op).__name__}"
    return None
