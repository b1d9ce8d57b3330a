"""Products of many tensors as trees of small statements, for reverse mode.

A statement ``L = A[i,j] B[j,k] C[k,l] D[l,i]`` differentiated with respect to
every operand would otherwise contract, for each operand, all the others: n
contractions of n − 1 operands, with nothing shared. Here every product term
with three or more tensor operands is split, once per shapes, along the
contraction path opt_einsum chooses for it, into intermediate statements of
two operands each::

    T1[i,k] = A[i,j] B[j,k]
    T2[i,l] = T1[i,k] C[k,l]
    L       = T2[i,l] D[l,i]

Reverse mode over those statements is reverse mode through the contraction
tree: each node's adjoint is one contraction of its parent's adjoint with its
sibling, so the gradient with respect to every operand costs about twice the
forward contraction (the cheap-gradient principle), and every intermediate is
one planned, memory-checked step. Index names, sizes and meaning are those of
the statement: the split changes how the numbers are computed, never what they
are. Symbolic output (printed derivatives) never sees these statements.

>>> from einderiv.calculus.program import parse
>>> p = parse("L = A[i,j] B[j,k] C[k,l] D[l,i]")
>>> left_to_right = lambda operands, keep: [(0, 1)] * (len(operands) - 1)
>>> [s.name for s in lower_products(p.statements, left_to_right)]
['L.1', 'L.2', 'L']
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

from einderiv.core import ir
from einderiv.core.ir import Expr, Ref, Term
from einderiv.language.lowering import Statement
from einderiv.names import is_split, split_name, variant

__all__ = ["lower_products", "StatementTable", "MIN_OPERANDS", "is_split"]

#: Terms with at least this many tensor operands are split into two-operand statements.
MIN_OPERANDS = 3


@dataclass(frozen=True)
class StatementTable:
    """Statements in program order, looked up by name (what a plan needs of a program).

    >>> StatementTable.of(()).statements
    ()
    """

    statements: tuple[Statement, ...]
    by_name: dict[str, Statement]

    @staticmethod
    def of(statements: Sequence[Statement]) -> "StatementTable":
        return StatementTable(tuple(statements), {s.name: s for s in statements})

    def statement(self, name: str) -> Statement:
        return self.by_name[name]


def lower_products(statements: Sequence[Statement],
                   path: Callable[[Sequence[Ref], set[str]], Sequence[Sequence[int]]]) -> tuple[Statement, ...]:
    """``statements`` with every product of three or more tensors split along its contraction path.

    ``path(operands, keep)`` gives the contraction order (opt_einsum's linear
    path format) of the product of ``operands`` that keeps the ``keep`` indices:
    :func:`einderiv.numeric.planning.product_path`, which also holds it to the memory limit.
    """
    lowered: list[Statement] = []
    for statement in statements:
        terms = []
        made = 0
        for term in statement.rhs.terms:
            term, intermediates = _split_term(term, statement, path, made)
            lowered.extend(intermediates)
            made += len(intermediates)
            terms.append(term)
        lowered.append(replace(statement, rhs=Expr(tuple(terms))) if terms != list(statement.rhs.terms) else statement)
    return tuple(lowered)


def _split_term(term: Term, statement: Statement, path: Callable[[Sequence[Ref], set[str]], Sequence[Sequence[int]]],
                counter: int) -> tuple[Term, list[Statement]]:
    operands = [f for f in term.factors if isinstance(f, Ref)]
    if len(operands) < MIN_OPERANDS:
        return term, []
    rest = [f for f in term.factors if not isinstance(f, Ref)]
    protected = set(statement.lhs).union(*(ir.factor_indices(f) for f in rest))
    steps = path(operands, protected)
    current: list[Ref] = list(operands)
    intermediates: list[Statement] = []
    contracted: set[str] = set()
    for positions in steps:
        if len(positions) == len(current):
            break                                        # the last step stays in the statement itself
        chosen = [current[k] for k in positions]
        for k in sorted(positions, reverse=True):
            del current[k]
        needed = protected.union(*(r.indices for r in current))
        indices = tuple(dict.fromkeys(i for r in chosen for i in r.indices))
        kept = tuple(i for i in indices if i in needed)
        summed = tuple(i for i in indices if i not in needed)
        contracted.update(summed)
        number = counter + len(intermediates) + 1
        name = split_name(statement.name, number)
        # The intermediate's own index names: variants (same size) that no other statement uses,
        # as every statement's indices are its own.
        own = {i: variant(i, f"t{number}") for i in indices}
        rhs = ir.rename(Expr((Term(1.0, summed, tuple(chosen)),)), own)
        lhs = tuple(own[i] for i in kept)
        intermediates.append(replace(statement, name=name, lhs=lhs, rhs=rhs, roots=lhs, occurrences=()))
        current.append(Ref(name, kept))
    final = Term(term.coeff, tuple(i for i in term.summed if i not in contracted), tuple(current) + tuple(rest))
    return final, intermediates
