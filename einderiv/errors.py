"""The exceptions and the warning einderiv raises.

Every error a user can provoke derives from :class:`EinderivError`, so callers
can catch one class. Messages name the culprit: the index, the tensor, the sizes
and where each came from.
"""

from __future__ import annotations

__all__ = [
    "EinderivError",
    "ParseError",
    "ProgramError",
    "ShapeError",
    "UnsupportedError",
    "MemoryLimitError",
    "EinderivWarning",
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


class EinderivWarning(UserWarning):
    """A program that is valid but probably not what its author meant."""
