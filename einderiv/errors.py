"""The exceptions and the warning einderiv raises.

Every error a user can provoke derives from :class:`EinderivError`, so callers
can catch one class. Messages name the culprit: the index, the tensor, the sizes
and where each came from.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

__all__ = [
    "EinderivError",
    "ParseError",
    "ProgramError",
    "ShapeError",
    "UnsupportedError",
    "MemoryLimitError",
    "SingularMatrixError",
    "BackendError",
    "EinderivWarning",
    "depth_guard",
]


class EinderivError(Exception):
    """Base class of every error einderiv raises for bad input."""


class ParseError(EinderivError):
    """The program text does not follow the grammar.

    ``line`` and ``column`` are 1-based; the message ends with the offending
    source line and a caret under the column.
    """

    def __init__(self, message: str, line: int = 0, column: int = 0):
        super().__init__(message)
        self.line = line
        self.column = column


class ProgramError(EinderivError):
    """The program parses but means nothing: an unknown function, a name
    defined twice or used before its definition, an index twice on the left…"""


class ShapeError(EinderivError):
    """Arrays and index sizes disagree, or an input is missing."""


class UnsupportedError(EinderivError):
    """A valid request einderiv does not support (complex input, say)."""


class MemoryLimitError(EinderivError):
    """A tensor would exceed the configured memory limit."""


class SingularMatrixError(EinderivError):
    """A matrix given to ``inv``, ``det`` or ``logdet`` is singular (to working precision)."""


class BackendError(EinderivError):
    """Inputs from different array libraries (numpy and torch, say), or a library that is not installed."""


class EinderivWarning(UserWarning):
    """A program that is valid but probably not what its author meant."""


@contextlib.contextmanager
def depth_guard(what: str) -> Iterator[None]:
    """Turn Python's ``RecursionError`` inside the block into a :class:`ProgramError`.

    Parsing, lowering, simplifying, printing and compiling recurse over nested
    expressions; a hostile program nested thousands deep must end in a clear
    error, not in an internal one.

    >>> try:
    ...     with depth_guard("the expression"):
    ...         raise RecursionError
    ... except ProgramError as error:
    ...     print(str(error).split(";")[0])
    the expression is nested too deeply (Python's recursion limit was reached)
    """
    try:
        yield
    except RecursionError:
        raise ProgramError(f"{what} is nested too deeply (Python's recursion limit was reached); "
                           f"split deep expressions into several statements") from None
