"""The lines of one generated function: its local names and the steps of each statement.

A :class:`Writer` turns an index statement into numpy/opt_einsum lines: a
product with a summed index is one ``oe.contract`` call, one without is
broadcasting, deltas add into strided diagonal views through ``_diagonal``
(defined in the :mod:`~einderiv.render.codegen.prelude` of every generated module), and
sizes are read from the arrays at run time.

>>> from einderiv import parse
>>> program = parse("F[i,k] = W[i,j] X[j,k]")
>>> writer = Writer(program, None, {})
>>> for name in ("W", "X"):
...     _ = writer.bind(name, name)
>>> statement = program.statement("F")
>>> writer.assign(writer.bind("F", "F"), statement.rhs, statement.lhs)
>>> writer.lines
['F = oe.contract("ij,jk->ik", W, X)']
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import opt_einsum

from einderiv.core import ir
from einderiv.core.ir import Call, Delta, Expr, Power, Ref, Size, Term
from einderiv.errors import ShapeError
from einderiv.names import fresh, slot_of
from einderiv.numeric.planning import Context, delta_groups, index_size
from einderiv.calculus.program import Program
from einderiv.render.codegen.expressions import (Code, attribute, binary, call, function_code, negated, number,
                                                 printable, product_of, string, subscript, variable)
from einderiv.render.codegen.prelude import RESERVED

__all__ = ["Writer"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

def _aligned(code: Code, present: Sequence[int], rank: int) -> Code:
    """``code``, whose axes are the ``present`` positions of a rank-``rank`` target, made to broadcast."""
    pattern = [":" if k in present else "None" for k in range(rank)]
    while pattern and pattern[0] == "None":
        pattern.pop(0)
    if all(p == ":" for p in pattern):
        return code
    return subscript(code, ", ".join(pattern))



def _tuple_text(items: Sequence[str]) -> str:
    """A tuple display of at least one item: ``(a,)``, ``(a, b)``.

    >>> _tuple_text(["X.shape[0]"]), _tuple_text(["n", "5"])
    ('(X.shape[0],)', '(n, 5)')
    """
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


#: An operand of a product: its code, its indices, and whether it divides (a power -1).
_Operand = tuple[Code, tuple[str, ...], bool]
_ONE = number(1.0, as_float=True)


def _broadcast_product(operands: Sequence[_Operand], out: tuple[str, ...]) -> Code:
    """Operands whose distinct indices are all in ``out``, transposed and broadcast to it, multiplied.

    >>> x, a = variable("x"), variable("A")
    >>> _broadcast_product([(x, ("j",), False), (a, ("j", "i"), False)], ("i", "j")).text
    'x * A.T'
    >>> _broadcast_product([(x, ("i",), True)], ("i", "j")).text
    '1.0 / x[:, None]'
    """
    position = {i: k for k, i in enumerate(out)}
    numerator: list[Code] = []
    denominator: list[Code] = []
    for code, idx, recip in operands:
        places = [position[i] for i in idx]
        if places != sorted(places):
            perm = sorted(range(len(idx)), key=lambda a: places[a])
            code = attribute(code, "T") if perm == list(range(len(idx)))[::-1] else \
                call("np.transpose", [code, Code(repr(tuple(perm)))])
            places = sorted(places)
        (denominator if recip else numerator).append(_aligned(code, places, len(out)))
    return _quotient(numerator, denominator)


def _quotient(numerator: Sequence[Code], denominator: Sequence[Code]) -> Code:
    """``n1 * n2 / d1 / d2``, with ``1.0`` for no numerator.

    >>> _quotient([], [variable("x"), variable("y")]).text
    '1.0 / x / y'
    """
    result = product_of(numerator) if numerator else _ONE
    for d in denominator:
        result = binary(result, "/", d)
    return result


@dataclass(frozen=True)
class _TermCode:
    code: Code                       # the term's magnitude (sign in ``negative``)
    negative: bool
    present: tuple[int, ...]          # view axes the value has, in order
    groups: tuple[tuple[int, ...], ...] | None   # target axes of each view axis (None: no delta)


# ---------------------------------------------------------------- the writer

class Writer:
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
        name = fresh((name + "_" * k for k in itertools.count()), self.used, RESERVED)
        self.used.add(name)
        return variable(name).text

    def bind(self, tensor: str, preferred: str) -> str:
        self.names[tensor] = self.identifier(preferred)
        return self.names[tensor]

    def temp(self) -> str:
        self.temps += 1
        return self.identifier(f"t{self.temps}")

    def ref(self, tensor: str) -> Code:
        return variable(self.names[tensor])

    # sizes
    def axis_size(self, tensor: str, axis: str | int) -> Code:
        """``T.shape[axis]``."""
        return subscript(attribute(self.ref(tensor), "shape"), str(int(axis)))

    def size(self, index: str) -> Code:
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
            return number(self.user_sizes[display])
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
                parts.append(_tuple_text(loose))
                loose = []
            tensor, rank = whole
            parts.append(attribute(self.ref(tensor), "shape").text)
            k += rank
        if loose:
            parts.append(_tuple_text(loose))
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
        self.lines.append(f"# {printable(text)}")

    def assign(self, var: str, expr: Expr, target: tuple[str, ...], fresh: bool = False) -> None:
        """Lines setting ``var`` to ``expr`` over ``target``; ``fresh``: never an alias of another array."""
        var = variable(var).text
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
                code = call(attribute(code, "copy"), [])
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

    def join(self, terms: Sequence[_TermCode], rank: int) -> Code:
        """The signed sum of ``terms``, each broadcast to ``rank`` axes."""
        result: Code | None = None
        for t in terms:
            code = _aligned(t.code, t.present, rank)
            if result is None:
                result = negated(code) if t.negative else code
            else:
                result = binary(result, "-" if t.negative else "+", code)
        assert result is not None, "join needs a term"
        return result

    def inline(self, expr: Expr, indices: tuple[str, ...]) -> Code:
        """``expr`` as one Python expression broadcasting against ``indices``."""
        free = set(ir.free_indices(expr))
        own = tuple(i for i in indices if i in free)
        value = ir.constant_value(expr)
        if value is not None:
            return number(value)
        terms = [self.term(t, own) for t in expr.terms]
        if all(t.groups is None for t in terms):
            code = self.join(terms, len(own))   # every free index is in some term: full shape
        else:
            name = self.temp()
            self.assign(name, expr, own)
            code = variable(name)
        return _aligned(code, [k for k, i in enumerate(indices) if i in free], len(indices))

    def factor(self, factor: Ref | Call | ir.MatFn | Power) -> _Operand:
        """(code, indices, reciprocal) of a factor that is an operand of a product (deltas and sizes are not)."""
        if isinstance(factor, Ref):
            return self.ref(factor.name), factor.indices, False
        indices = tuple(dict.fromkeys(ir.factor_indices(factor)))
        if isinstance(factor, Call):
            return function_code(factor.fn, [self.inline(a, indices) for a in factor.args]), indices, False
        if isinstance(factor, ir.MatFn):
            return self.matrix_function(factor), indices, False
        base = self.inline(factor.base, indices)
        p = ir.constant_value(factor.exponent)
        if p is None:
            return call("np.power", [base, self.inline(factor.exponent, indices)]), indices, False
        if p == -1.0:
            return base, indices, True
        if p == 0.5:
            return call("np.sqrt", [base]), indices, False
        # a negative exponent as a float: an integer base to a negative integer power is an error in numpy
        return binary(base, "**", number(p, as_float=p < 0)), indices, False

    def matrix_function(self, factor: ir.MatFn) -> Code:
        """One numpy.linalg call on the argument, laid out as (batch…, rows, cols)."""
        batch = factor.indices[:-2] if factor.fn == "inv" else factor.indices
        matrix = self.inline(factor.arg, batch + (factor.rows, factor.cols))
        if factor.fn == "det":
            return call("np.linalg.det", [matrix])
        if factor.fn == "logdet":
            return subscript(call("np.linalg.slogdet", [matrix]), "1")
        code = call("np.linalg.inv", [matrix])
        if factor.indices[-1] == factor.indices[-2]:            # inv(A)[i,i]: the diagonal
            code = call("np.diagonal", [code, number(0), number(-2), number(-1)])
        return code

    def term(self, term: Term, target: tuple[str, ...]) -> _TermCode:
        """A term's magnitude over view axes: deltas group target axes, the rest is a product."""
        coeff = term.coeff
        scalars: list[Code] = []
        operands: list[_Operand] = []
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
            code = product_of(([number(magnitude)] if magnitude != 1.0 else []) + scalars + [self.product(mapped, out)])
        else:   # a number times sizes
            code = product_of(([number(magnitude, as_float=True)] if magnitude != 1.0 or not scalars else []) + scalars)
        present = tuple(k for k, i in enumerate(view) if i in present_names)
        return _TermCode(code, coeff < 0, present, groups if len(order) < len(target) else None)

    def product(self, operands: Sequence[_Operand], out: tuple[str, ...]) -> Code:
        """Operands multiplied and summed down to ``out``: broadcasting, or one opt_einsum call."""
        position = {i: k for k, i in enumerate(out)}
        if all(len(set(idx)) == len(idx) and all(i in position for i in idx) for _, idx, _ in operands):
            return _broadcast_product(operands, out)
        outside = [(code, recip) for code, idx, recip in operands if not idx]
        if outside:
            inside = [op for op in operands if op[1]]
            numerator = [code for code, recip in outside if not recip] + ([self.product(inside, out)] if inside else [])
            return _quotient(numerator, [code for code, recip in outside if recip])
        return self._contraction(operands, out)

    def _contraction(self, operands: Sequence[_Operand], out: tuple[str, ...]) -> Code:
        """One ``oe.contract`` call, with its contraction path when the sizes are known."""
        letters = self.letters([idx for _, idx, _ in operands], out)
        subscripts = ",".join("".join(letters[i] for i in idx) for _, idx, _ in operands)
        subscripts += "->" + "".join(letters[i] for i in out)
        args = [binary(_ONE, "/", code) if recip else code for code, _, recip in operands]
        keywords = []
        if self.ctx is not None:
            shapes = [tuple(index_size(i, self.ctx) for i in idx) for _, idx, _ in operands]
            path, _ = opt_einsum.contract_path(subscripts, *shapes, shapes=True)
            keywords.append(("optimize", repr([tuple(int(k) for k in step) for step in path])))
        return call("oe.contract", [string(subscripts)] + args, keywords)

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
