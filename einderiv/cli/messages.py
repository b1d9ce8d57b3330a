"""The command line's error and its wording: library terms turned into option names, long text shortened.

>>> command_line_terms("size 3 from sizes['k'] but size 2 from x")
'size 3 from --sizes k=3 but size 2 from x'
"""

from __future__ import annotations

import re

from einderiv.errors import EinderivError

__all__ = ["CommandLineError", "shorten", "first_line", "command_line_terms", "command_line_message"]


class CommandLineError(EinderivError):
    """Bad command-line input: an option value, a file, an inline array."""


def shorten(text: str, width: int = 60) -> str:
    """``text`` stripped and quoted, cut to ``width`` characters with an ellipsis.

    >>> shorten("x" * 10, 5)
    "'xxxx…'"
    """
    text = text.strip()
    return repr(text if len(text) <= width else text[:width - 1] + "…")


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type when empty), at most 120 characters."""
    text = str(error).strip().split("\n")[0] or type(error).__name__
    return text if len(text) <= 120 else text[:119] + "…"


def command_line_terms(message: str) -> str:
    """A size error of the library, in the command line's terms (``--sizes k=3``, not ``sizes={'k': 3}``)."""
    message = re.sub(r"size (\d+) from sizes\['([^']+)'\]", r"size \1 from --sizes \2=\1", message)
    return re.sub(r"give its size explicitly, e\.g\. sizes=\{'([^']+)': (\d+)\}", r"give its size, e.g. --sizes \1=\2",
                  message)


def command_line_message(error: BaseException) -> str:
    """An error for standard error: the library's terms turned into the command line's.

    >>> command_line_message(MemoryError())
    'out of memory; lower --sizes or --max-bytes'
    """
    if isinstance(error, MemoryError):
        return "out of memory; lower --sizes or --max-bytes"
    if isinstance(error, RecursionError):
        return "the input is nested too deeply"
    message = str(error) or type(error).__name__
    if isinstance(error, EinderivError):
        message = command_line_terms(message)
        message = re.sub(r"over the memory limit of ([0-9,]+) bytes", r"over --max-bytes \1", message)
        message = re.sub(r"\buse (?:hvp|vjp|jvp)\b[^;]*?(?=, or raise memory_limit)", "lower --sizes", message)
        message = message.replace("raise memory_limit", "raise --max-bytes")
    return message
