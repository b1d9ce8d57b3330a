"""Lowering matrix-function calls ``inv(…)[p,q]``, ``det(…)``, ``logdet(…)`` from the syntax tree to the IR.

The rules a call's argument follows are in :mod:`einderiv.core.matrix_functions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from einderiv.core import ir
from einderiv.core.ir import MATRIX_FUNCTIONS, Expr
from einderiv.core.matrix_functions import make
from einderiv.errors import ProgramError
from einderiv.names import matrix_slot, variant

if TYPE_CHECKING:   # lowering imports this module: these names are for the annotations only
    from einderiv.language.lowering import _Scope
    from einderiv.language.parsing import CallNode, Node


def lower_call(node: CallNode, scope: _Scope) -> Expr:
    """Lower ``inv(…)[p,q]``, ``det(…)`` or ``logdet(…)`` (a :class:`~einderiv.language.parsing.CallNode`)."""
    from einderiv.language import lowering as sem
    from einderiv.language.parsing import Name

    def error(message: str) -> ProgramError:
        return sem._located(ProgramError, message, scope.text, node.line, node.column)

    fn, written = node.fn, tuple(node.indices or ())
    if len(node.args) != 1:
        raise error(f"'{fn}' takes one argument, a square matrix, got {len(node.args)}")
    (arg,) = node.args
    bare = arg if isinstance(arg, Name) and arg.indices is None else None   # a tensor's name, as in inv(A)
    if fn == "inv" and len(written) < 2:
        raise error("inv(...) is a matrix: index it with two indices after the call, as in inv(A)[i,j] "
                    "(or inv(A)[b,i,j] for a batch of matrices)")
    batch_names = written[:-2] if fn == "inv" else written
    if batch_names and bare is None:
        example = "inv(A)[b,i,j]" if fn == "inv" else f"{fn}(A)[b]"
        kind = "a matrix: index it with two indices" if fn == "inv" else "a scalar: write no indices after the call"
        raise error(f"{fn}(...) of an expression is {kind}; a batch of matrices ({example}) takes a tensor name: "
                    f"define the expression in a statement first")
    if len(set(batch_names)) != len(batch_names) or set(batch_names) & set(written[len(batch_names):]):
        raise error(f"the batch indices of {fn}(...) must differ from each other and from its row and column indices")
    outer = tuple(scope.index(n) for n in written)
    if bare is not None:
        k = len(batch_names)
        rows, cols = matrix_slot("row", bare.name, k), matrix_slot("col", bare.name, k + 1)
        hidden = ("\0row", "\0col")
        scope.bound = scope.bound + ({hidden[0]: rows, hidden[1]: cols},)
        try:
            matrix = sem._lower_name(Name(bare.name, batch_names + hidden, bare.line, bare.column), scope)
        finally:
            scope.bound = scope.bound[:-1]
        bound_roots = {ir.index_root(rows), ir.index_root(cols)}
        for occurrence in [o for o in scope.occurrences if o.root in bound_roots]:   # no index of the statement
            del scope.occurrences[occurrence]
        for axis, index in enumerate(outer[k:], start=k):
            scope.occurrences.setdefault(sem.Occurrence(ir.index_root(index), bare.name, axis))
        return make(fn, matrix, rows, cols, outer)
    return _lower_expression(node, arg, written, outer, scope, error)


def _occurrences(node: Node, free_names: Callable[[Node, frozenset[str]], set[str]]) -> list[str]:
    """Indices a factor of an argument term shows at its own level, with repeats for a reference."""
    from einderiv.language.parsing import CallNode, Name
    if isinstance(node, Name):
        return list(node.indices or ())
    if isinstance(node, CallNode) and node.fn in MATRIX_FUNCTIONS:
        return list(node.indices or ())
    return sorted(free_names(node, frozenset()))


def _lower_expression(node: CallNode, arg: Node, outer_names: tuple[str, ...], outer: tuple[str, ...], scope: _Scope,
                      error: Callable[[str], ProgramError]) -> Expr:
    from einderiv.language import lowering as sem
    fn = node.fn
    terms = sem._expand(arg)
    counted: list[dict[str, int]] = []
    free: dict[str, None] = {}
    for _, factors in terms:
        counts: dict[str, int] = {}
        for factor in factors:
            for index in _occurrences(factor, sem._free_names):
                counts[index] = counts.get(index, 0) + 1
        for index, count in counts.items():
            if count > 2:
                raise error(f"index '{index}' is written {count} times in one term of the argument of {fn}(...); "
                            f"inside a matrix argument an index written once is a row or column index and one "
                            f"written twice is summed")
            if count == 1:
                free.setdefault(index)
        counted.append(counts)
    if len(free) != 2:
        listed = ", ".join(f"'{i}'" for i in free) or "none"
        raise error(f"the argument of {fn}(...) must have exactly two free indices (each written once in a term: "
                    f"the rows and the columns); it has {len(free)}: {listed}")
    for counts in counted:
        for index in free:
            if counts.get(index) == 2:
                raise error(f"index '{index}' is a row or column index of the argument of {fn}(...) but is "
                            f"written twice (summed) in one of its terms")
    rows_name, cols_name = tuple(free)
    if len(set(outer_names)) == 2 and set(outer_names) == set(free):
        rows_name, cols_name = outer_names
    summed = [i for counts in counted for i in counts if i not in free]
    frame = scope.bind(tuple(dict.fromkeys(summed)))
    if fn == "inv":     # the argument's rows and columns have the sizes of the result's
        for name, index in ((rows_name, outer[0]), (cols_name, outer[1])):
            scope.counter += 1
            frame[name] = variant(ir.index_root(index), scope.counter)
    else:
        frame.update(scope.bind((rows_name, cols_name)))
    rows, cols = frame[rows_name], frame[cols_name]
    scope.bound = scope.bound + (frame,)
    lowered = []
    try:
        for coeff, factors in terms:
            term = ir.scale(ir.mul(*(sem._lower(f, scope) for f in factors)), coeff)
            implicit = tuple(i for i in ir.free_indices(term) if i not in (rows, cols))
            lowered.append(ir.summation(implicit, term))
    finally:
        scope.bound = scope.bound[:-1]
    return make(fn, ir.add(*lowered), rows, cols, outer)
