"""The ``einderiv`` command line: ``main(argv)``, the only place that prints or writes output.

Subcommands::

    einderiv diff PROGRAM --wrt W[,V…]       symbolic derivatives in index form
    einderiv jacobian PROGRAM --wrt W        the full Jacobian tensor (or a VJP with --upstream)
    einderiv grad PROGRAM --wrt W1,b1,…      gradients of a scalar output
    einderiv eval PROGRAM                    the value of the output

PROGRAM is the program text, ``@path`` to read a file, or ``-`` for standard
input. Inputs come from ``--input NAME=SOURCE`` (a ``.npy`` or ``.csv`` file, or
an inline literal such as ``[[1,2],[3,4]]``); the others are drawn at random
(standard normal, ``--seed``) with shapes from the given arrays and
``--sizes i=2,j=3``. Output is plain text unless ``--format json|npy|latex``
(``markdown`` tables for Jacobians and gradients).

The parts: :mod:`~einderiv.cli.parser` (a table of subcommands),
:mod:`~einderiv.cli.inputs` (program, arrays, shapes, size checks),
:mod:`~einderiv.cli.commands` (each returns a report object of
:mod:`~einderiv.cli.reports`), :mod:`~einderiv.cli.formats` (a registry of
renderers), and this module, which runs a command, renders its report and
writes the result in one place (:func:`write_atomically` for ``--output``).

Bad input never gives a traceback: the message goes to standard error as
``einderiv: error: …``, nothing goes to standard output, and the exit status
is 2. Warnings (the summation trap, say) go to standard error as
``einderiv: warning: …``. Text above
:data:`~einderiv.cli.formats.PRINT_THRESHOLD_BYTES` prints in summary unless
``--full`` (a note on standard error says so). A reader that goes away
(``einderiv demo | head -1``) ends the run quietly with status 1.

>>> main(["diff", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W"])
dF[i,k]/dW[a,b] = δ[i,a] X[b,k]
0
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any, Sequence, TextIO

from einderiv.cli.commands import LAYOUTS, flatten_jacobian
from einderiv.cli.files import write_atomically
from einderiv.cli.formats import Options, Rendered, render
from einderiv.cli.inputs import infer_shapes, load_array, parse_sizes, read_program
from einderiv.cli.messages import CommandLineError, command_line_message
from einderiv.cli.parser import PROG, build_parser, command_named
from einderiv.errors import EinderivError

__all__ = ["main", "build_parser", "CommandLineError", "read_program", "parse_sizes", "load_array",
           "write_atomically", "infer_shapes", "flatten_jacobian", "LAYOUTS"]


class _StdoutError(EinderivError):
    """Standard output cannot be written (a full disk, say)."""


def _write_stdout(stream: TextIO, text: str) -> None:
    """Write and flush, so that a failure shows here and not at exit."""
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        raise
    except UnicodeEncodeError as error:
        raise CommandLineError(f"standard output cannot show {error.object[error.start]!r} (its encoding is "
                               f"{error.encoding}); use --ascii, --output FILE or PYTHONIOENCODING=utf-8") from None
    except OSError as error:
        raise _StdoutError(f"cannot write to standard output: {error.strerror or error}") from None


def _discard_stdout(stream: TextIO) -> None:
    """Point the process's standard output at the null device, so that the final flush at exit cannot fail."""
    if stream is not sys.__stdout__:
        return
    try:
        descriptor = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, descriptor)
    os.close(null)


def _emit(rendered: Rendered, output: str | None, stdout: TextIO) -> None:
    """The one place output is written: ``--output`` through the atomic writer, else standard output."""
    text = rendered.text or ""
    if output:          # a binary format (npy) renders only when --output is given
        write_atomically(output, rendered.write or (lambda handle: handle.write(text.encode("utf-8"))))
    elif rendered.text is not None:
        _write_stdout(stdout, text)


def _run(args: argparse.Namespace, stdout: TextIO) -> str | None:
    """Run the command, render its report, write it; the note for standard error, if any."""
    options = Options.from_args(args)
    rendered = render(args.run(args), options)
    _emit(rendered, options.output, stdout)
    return rendered.note


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 for bad input).

    Writes to ``sys.stdout`` and ``sys.stderr`` as they are at the call, so
    tests can run it in-process. A reader that goes away (``einderiv … | head``)
    ends the run quietly with status 1.

    >>> main(["eval", "y[i] = 2 x[i]", "--input", "x=[1,2]"])
    y[i] = 2 x[i]
    shape: (2,)
    inputs: x given
    [2. 4.]
    0
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=command_named(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 2
    stdout, stderr = sys.stdout, sys.stderr
    error: str | None = None
    note: str | None = None
    warned: set[str] = set()

    def show_warning(message: Any, category: Any, filename: Any, lineno: Any, file: Any = None,
                     line: Any = None) -> None:
        # at once, before any output (the summation-trap warning must come before the numbers it concerns)
        text = f"{PROG}: warning: {message}"
        if text not in warned:
            warned.add(text)
            print(text, file=stderr, flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show_warning
        try:
            note = _run(args, stdout)
        except BrokenPipeError:        # the reader went away (einderiv … | head): stop quietly
            _discard_stdout(stdout)
            return 1
        except _StdoutError as exc:
            _discard_stdout(stdout)
            error = str(exc)
        except (EinderivError, OSError, MemoryError, RecursionError) as exc:
            error = command_line_message(exc)
    if note:
        print(f"{PROG}: note: {note}", file=stderr)
    if error is not None:
        print(f"{PROG}: error: {error}", file=stderr)
        return 2
    return 0
