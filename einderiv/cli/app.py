"""The ``einderiv`` command line: the only module that reads files or prints.

Subcommands::

    einderiv diff PROGRAM --wrt W[,V…]       symbolic derivatives in index form
    einderiv jacobian PROGRAM --wrt W        the full Jacobian tensor (or a VJP with --upstream)
    einderiv grad PROGRAM --wrt W1,b1,…      gradients of a scalar output
    einderiv eval PROGRAM                    the value of the output

PROGRAM is the program text, ``@path`` to read a file, or ``-`` for standard
input. Inputs come from ``--input NAME=SOURCE`` (a ``.npy`` or ``.csv`` file, or
an inline literal such as ``[[1,2],[3,4]]``); the others are drawn at random
(standard normal, ``--seed``) with shapes from the given arrays and
``--sizes i=2,j=3``. Output is plain text unless ``--format json|npy|latex``.

Bad input never gives a traceback: the message goes to standard error as
``einderiv: error: …``, nothing goes to standard output, and the exit status
is 2. Warnings (the summation trap, say) go to standard error as
``einderiv: warning: …``.

Hostile input is bounded before anything is built: every array the command
would create (a random input, a result, an array read from a file) and the
printed text are sized first and refused above ``--max-bytes``; only regular
files are opened (a FIFO or ``/dev/zero`` is refused unopened), program files
are read up to :data:`PROGRAM_MAX_BYTES`, ``.npy`` headers are checked before
the data and never unpickled. Text above :data:`PRINT_THRESHOLD_BYTES` prints
in summary unless ``--full`` (a note on standard error says so). ``--output``
is written to a temporary file renamed over the target only on success
(:func:`write_atomically`). A reader that goes away (``einderiv demo | head -1``)
ends the run quietly with status 1.

>>> main(["diff", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W"])
dF[i,k]/dW[a,b] = δ[i,a] X[b,k]
0
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import io
import json
import math
import os
import re
import stat
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Mapping, Sequence, TextIO

import numpy as np

from einderiv.core import ir
from einderiv.errors import EinderivError, MemoryLimitError, ProgramError, ShapeError, UnsupportedError
from einderiv.numeric.evaluation import evaluate, grad, jacobian, vjp
from einderiv.render.latex import expr_to_latex, matrix_to_latex, ref_to_latex, to_latex
from einderiv.language.printing import format_expr, format_ref
from einderiv.calculus.program import Derivative, Program, ancestors, parse
from einderiv.language.lowering import infer_shapes as lowering_shapes, resolve_sizes, written_names
from einderiv.core.simplify import simplify
from einderiv.names import fresh

__all__ = ["main", "build_parser", "CommandLineError", "read_program", "parse_sizes", "load_array",
           "write_atomically",
           "infer_shapes", "flatten_jacobian", "LAYOUTS"]

PROG = "einderiv"
Shape = tuple[int, ...]

#: Jacobian layouts: the tensor itself, or one of three flattened matrices.
LAYOUTS = ("tensor", "numerator", "denominator", "vec")

DEFAULT_MAX_BYTES = 64 * 1024 ** 2
#: The largest program file (or standard input) read, in bytes.
PROGRAM_MAX_BYTES = 10 * 1024 ** 2
#: Text output estimated above this many bytes, or with more numbers than ``PRINT_THRESHOLD_ENTRIES``
#: (a 100×100 matrix: more is not read on a terminal), is summarised unless ``--full`` is given.
PRINT_THRESHOLD_BYTES = 1024 ** 2
PRINT_THRESHOLD_ENTRIES = 10_000
#: The largest index size: numpy's axis lengths are signed machine integers.
MAX_SIZE = int(np.iinfo(np.intp).max)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_COUNT = re.compile(r"[0-9]+\Z")
_FILE_TYPES = (".npy", ".csv", ".txt")


class CommandLineError(EinderivError):
    """Bad command-line input: an option value, a file, an inline array."""


# ---------------------------------------------------------------- argument parsing

class _Parser(argparse.ArgumentParser):
    """argparse with errors in einderiv's one-line form, status 2."""

    def error(self, message: str):
        words = message.split()[2:] if message.startswith("unrecognized arguments:") else []
        if any(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=[0-9]+", word) and not (k and words[k - 1].startswith("-"))
               for k, word in enumerate(words)):
            message += "; separate --sizes pairs with commas, as in --sizes i=2,j=3"
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


_EXAMPLES = {
    "diff": """examples:
  einderiv diff "F[i,k] = W[i,j] X[j,k]" --wrt W,X
  einderiv diff "L = x[i] A[i,j] x[j]" --wrt x --ascii
  einderiv diff @network.ein --wrt W1 --of L --format latex""",
    "jacobian": """examples:
  einderiv jacobian "C[i,j] = A[i,k] B[k,j]" --wrt B --sizes i=1,k=3,j=2
  einderiv jacobian "C[i,j] = A[i,k] B[k,j]" --wrt B --input "A=[[1,2,3]]" --sizes j=2 --layout numerator
  einderiv jacobian "F[i,k] = W[i,j] X[j,k]" --wrt W --sizes i=2,j=3,k=2 --layout vec
  einderiv jacobian "C[i,j] = A[i,k] B[k,j]" --wrt B --sizes i=1,k=3,j=2 --symbolic --layout numerator
  einderiv jacobian "F[i,k] = W[i,j] X[j,k]" --wrt W --sizes i=2,j=3,k=4 --upstream "G=g.npy"

layouts:
  tensor       shape(output) + shape(input); one block per output entry (default)
  numerator    rows = output entries, columns = input entries, both row-major
  denominator  the numerator layout transposed
  vec          d vec(F)/d vec(W), vec column-major on both sides (F = W X gives Xᵀ ⊗ I)""",
    "grad": """examples:
  einderiv grad "L = x[i] A[i,j] x[j]" --wrt x,A --sizes i=3
  einderiv grad @network.ein --wrt W1,b1,W2,b2 --sizes n=4,d=3,h=5,c=2 --input N=4
  einderiv grad "L = x[i] x[i]" --wrt x --sizes i=3 --symbolic
  einderiv grad @network.ein --wrt W1,b1,W2,b2 --explain""",
    "eval": """examples:
  einderiv eval "y[i] = A[i,j] x[j]" --input "A=[[1,2],[3,4]]" --input "x=[1,1]"
  einderiv eval "C[i,j] = A[i,k] B[k,j]" --sizes i=2,k=3,j=2 --seed 1 --format json
  einderiv eval "y[i] = A[i,j] x[j]" --sizes i=2,j=2 --symbolic""",
}

_EXAMPLES["hessian"] = """examples:
  einderiv hessian "L = x[i] A[i,j] x[j]" --wrt x --sizes i=3
  einderiv hessian "R[n,j] = X[n,i] W[i,j] - Y[n,j]; L = R[n,j]^2" --wrt W --sizes n=4,i=2,j=2"""

_EXAMPLES["codegen"] = """examples:
  einderiv codegen @network.ein --wrt W1,b1,W2,b2 --shapes X=4096x512,W1=512x1024,b1=1024,W2=1024x10,b2=10,T=4096x10,N=
  einderiv codegen "L = x[i] A[i,j] x[j]" --wrt x --hessian --output quadratic.py"""

_EXAMPLES["explain"] = """examples:
  einderiv explain "F[i,k] = W[i,j] X[j,k]" --wrt W --differentials
  einderiv explain @network.ein --wrt W1,b1 --sizes n=4,d=3,h=5,c=2"""

_EXAMPLES["plan"] = """examples:
  einderiv plan "L = A[i,j] B[j,k] C[k,l] D[l,i]" --wrt A,B,C,D --shapes A=50x60,B=60x70,C=70x80,D=80x50
  einderiv plan @network.ein --wrt W1,W2 --shapes X=4096x512,W1=512x1024,b1=1024,W2=1024x10,b2=10,T=4096x10,N=
  einderiv plan "y[i] = A[i,j] x[j]" --shapes A=1000x1000,x=1000 --mode value"""

_EXAMPLES["demo"] = """examples:
  einderiv demo"""

DEMO_PROGRAM = "F[i,k] = W[i,j] X[j,k]"
DEMO_INPUTS = ("W=[[1,2,3],[4,5,6]]", "X=[[1,0],[0,1],[2,3]]")

_DESCRIPTION = """Differentiate tensor programs written in Einstein index notation.

PROGRAM is the program text ("F[i,k] = W[i,j] X[j,k]"; statements separated by
newlines or ';'), @PATH to read it from a file, or - to read standard input."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its subcommands.

    >>> build_parser().parse_args(["diff", "y[i] = A[i,j] x[j]", "--wrt", "x"]).command
    'diff'
    """
    from einderiv import __version__

    parser = _Parser(prog=PROG, description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="examples (more with einderiv COMMAND --help):\n\n" +
                     "\n\n".join(_EXAMPLES[c].split("\n", 1)[1].split("\n\n")[0] for c in _EXAMPLES))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    program = _Parser(add_help=False)
    program.add_argument("program", metavar="PROGRAM", help="program text, @PATH, or - for standard input")
    program.add_argument("--of", metavar="NAME", help="the statement whose value (eval) or derivative "
                         "(the other commands) is asked for (default: the last statement)")
    program.add_argument("--ascii", action="store_true", help="write delta(i,a) instead of δ[i,a]")

    def precision_and_limit(options: _Parser) -> None:
        options.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                             help="floating-point type of the inputs (default: float64)")
        options.add_argument("--max-bytes", metavar="N", type=_byte_count, default=DEFAULT_MAX_BYTES,
                             help="refuse to build a tensor larger than this (e.g. 64MiB, the default; 1GiB)")

    data = _Parser(add_help=False)
    data.add_argument("--sizes", metavar="i=N,…", action="append", default=[],
                      help="index sizes by name, applying in every statement (repeatable)")
    data.add_argument("--input", metavar="NAME=SOURCE", action="append", default=[], dest="inputs",
                      help="an input's value: NAME=file.npy, NAME=file.csv or an inline literal "
                           "such as 'W=[[1,2],[3,4]]' (repeatable); inputs not given are random")
    data.add_argument("--seed", type=_non_negative, default=0, metavar="N",
                      help="seed of the random inputs (default: 0)")
    precision_and_limit(data)
    data.add_argument("--show-inputs", action="store_true", help="also print the input arrays used")
    data.add_argument("--symmetric", metavar="S[,T…]", action="append", default=[],
                      help="matrix inputs constrained to be symmetric: derivatives are sym(G) = (G + Gᵀ)/2, "
                           "and random ones are drawn symmetric positive definite (repeatable)")

    def output(formats: Sequence[str]) -> _Parser:
        out = _Parser(add_help=False)
        out.add_argument("--format", choices=formats, default="text", help="output format (default: text)")
        out.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output "
                         "(required for npy)" if "npy" in formats else "write to FILE instead of standard output")
        out.add_argument("--precision", type=_non_negative, default=4, metavar="N", help="digits after the decimal point (default: 4)")
        out.add_argument("--summarize", action="store_true", help="elide the middle of large arrays")
        out.add_argument("--full", action="store_true",
                         help="print every entry even of a large result (text still limited by --max-bytes)")
        return out

    numeric_formats = ("text", "json", "npy", "latex")

    def add(name: str, help_text: str, parents: list) -> _Parser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=parents,
                                   epilog=_EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter)

    diff = add("diff", "print symbolic derivatives in index form", [program, output(("text", "json", "latex"))])
    diff.add_argument("--wrt", required=True, metavar="W[,V…]", help="input(s) to differentiate with respect to")
    diff.add_argument("--matrix", action="store_true",
                      help="also print the matrix form (A3ᵀ (A5 − R) W4ᵀ), the Kronecker form of a linear map "
                           "(d vec(F)/d vec(W) = Xᵀ ⊗ I_i), or why there is none")
    diff.set_defaults(run=_run_diff)

    jac = add("jacobian", "print the full Jacobian tensor of an output with respect to an input",
              [program, data, output(numeric_formats)])
    jac.add_argument("--wrt", required=True, metavar="W[,V…]", help="input(s) to differentiate with respect to")
    jac.add_argument("--layout", choices=LAYOUTS, default="tensor", help="how to lay the Jacobian out (see below)")
    jac.add_argument("--upstream", metavar="[NAME=]SOURCE",
                     help="an upstream gradient shaped like the output: print the vector–Jacobian product "
                          "instead of the Jacobian (file or inline literal, as for --input)")
    jac.add_argument("--symbolic", action="store_true",
                     help="entries as SymPy expressions in the input entries (needs einderiv[symbolic])")
    jac.set_defaults(run=_run_jacobian)

    grd = add("grad", "print gradients of a scalar output", [program, data, output(numeric_formats)])
    grd.add_argument("--wrt", required=True, metavar="W[,V…]", help="input(s) to differentiate with respect to")
    grd.add_argument("--symbolic", action="store_true",
                     help="entries as SymPy expressions in the input entries (needs einderiv[symbolic])")
    grd.add_argument("--explain", action="store_true",
                     help="print the backprop equations (the adjoint program) with their matrix forms instead")
    grd.set_defaults(run=_run_grad)

    ev = add("eval", "print the value of the output", [program, data, output(numeric_formats)])
    ev.add_argument("--symbolic", action="store_true",
                    help="entries as SymPy expressions in the input entries (needs einderiv[symbolic])")
    ev.set_defaults(run=_run_eval)

    hes = add("hessian", "print the Hessian of a scalar output: its index form and its values",
              [program, data, output(numeric_formats)])
    hes.add_argument("--wrt", required=True, metavar="W[,V…]",
                     help="the input(s) of the first derivative; several give every block, mixed ones included")
    hes.add_argument("--wrt2", metavar="V[,U…]", help="the input(s) of the second derivative (default: --wrt)")
    hes.set_defaults(run=_run_hessian)

    gen = add("codegen", "print a standalone Python module computing the value and gradients", [program])
    gen.add_argument("--wrt", required=True, metavar="W[,V…]", help="input(s) to differentiate with respect to")
    gen.add_argument("--shapes", metavar="NAME=AxB,…", action="append", default=[],
                     help="input shapes (e.g. W1=512x1024,b1=1024; N= for a scalar input): contraction paths "
                          "are then precomputed")
    gen.add_argument("--sizes", metavar="i=N,…", action="append", default=[],
                     help="index sizes by name, for indices no input fixes")
    gen.add_argument("--hessian", action="store_true", help="also define hessian(**inputs)")
    gen.add_argument("--output", metavar="FILE", help="write the module to FILE instead of standard output")
    gen.set_defaults(run=_run_codegen)

    pln = add("plan", "print the steps a gradient (or value) will take for inputs of given shapes: what each "
                      "computes, its shape, bytes and FLOPs; nothing is computed", [program])
    pln.add_argument("--wrt", metavar="W[,V…]", help="input(s) of the gradient (omit with --mode value)")
    pln.add_argument("--shapes", metavar="NAME=AxB,…", action="append", default=[], required=True,
                     help="input shapes (e.g. W1=512x1024,b1=1024; s= for a scalar)")
    pln.add_argument("--sizes", metavar="i=N,…", action="append", default=[],
                     help="index sizes by name, for indices no input fixes")
    pln.add_argument("--mode", choices=("grad", "vjp", "jacobian", "value"),
                     help="what to plan (default: grad with --wrt, else value)")
    precision_and_limit(pln)
    pln.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")
    pln.set_defaults(run=_run_plan)

    exp = add("explain", "print a step-by-step derivation of the gradient, each step with its rule",
              [program])
    exp.add_argument("--wrt", required=True, metavar="W[,V…]", help="input(s) to differentiate with respect to")
    exp.add_argument("--differentials", action="store_true",
                     help="also show the differential (Frobenius product) view: dL = G : dF")
    exp.add_argument("--sizes", metavar="i=N,…", action="append", default=[],
                     help="index sizes by name: the shape of every intermediate is printed beside it")
    exp.add_argument("--format", choices=("text", "latex"), default="text", help="output format (default: text)")
    exp.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")
    exp.set_defaults(run=_run_explain)

    demo = add("demo", f"the built-in example: derivatives and the full Jacobian of {DEMO_PROGRAM}", [])
    demo.set_defaults(run=None)
    return parser


def _demo() -> int:
    """Derivatives of the built-in example in index form, then its full Jacobian with respect to W."""
    inputs = [arg for literal in DEMO_INPUTS for arg in ("--input", literal)]
    _write_stdout(sys.stdout, f"# The built-in example {DEMO_PROGRAM}, W 2×3, X 3×2: each block is what the "
                              f"command above it prints.\n\n$ einderiv diff \"{DEMO_PROGRAM}\" --wrt W,X\n")
    status = main(["diff", DEMO_PROGRAM, "--wrt", "W,X"])
    if status:
        return status
    _write_stdout(sys.stdout, f"\n$ einderiv jacobian \"{DEMO_PROGRAM}\" --wrt W " +
                  " ".join(f'--input "{x}"' for x in DEMO_INPUTS) + "\n")
    return main(["jacobian", DEMO_PROGRAM, "--wrt", "W", *inputs])


def _non_negative(text: str) -> int:
    if not _COUNT.match(text.strip()):
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {_shorten(text)}")
    return _integer(text, argparse.ArgumentTypeError)


def _integer(digits: str, error: type[Exception] = CommandLineError) -> int:
    """``int(digits)`` for ASCII digits, refusing more digits than any size needs (and than ``int`` converts)."""
    digits = digits.strip()
    if len(digits) > 40:
        raise error(f"{_shorten(digits, 24)} is too large ({len(digits):,} digits)")
    return int(digits)


def _byte_count(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9]+)\s*([KMG]?)(i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid byte count {_shorten(text)} (e.g. 67108864, 64MiB, 1GiB)")
    power = " KMG".index(match.group(2).upper() or " ")
    return _integer(match.group(1), argparse.ArgumentTypeError) * 1024 ** power


# ---------------------------------------------------------------- reading inputs

def _file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def _open_regular(path: str, subject: str) -> tuple[IO[bytes], int]:
    """``path`` opened for binary reading and its size, after checking it is a regular file.

    ``os.stat`` comes first, so a FIFO (which would block) or a device such as
    ``/dev/zero`` (which never ends) is refused without being opened; the open
    itself never blocks, and the opened file is checked again.
    """
    def refuse(mode: int) -> CommandLineError:
        return CommandLineError(f"cannot read {subject}: it is {_file_kind(mode)}, not a regular file")

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise refuse(info.st_mode)
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise CommandLineError(f"cannot read {subject}: {error.strerror or error}") from None
    handle = os.fdopen(descriptor, "rb")
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):          # replaced between stat and open
        handle.close()
        raise refuse(info.st_mode)
    return handle, info.st_size


def _read_capped(handle: IO, limit: int, too_long: Callable[[], CommandLineError]):
    """At most ``limit`` bytes (or characters) of ``handle``; more is an error."""
    try:
        data = handle.read(limit + 1)
    except OSError as error:
        raise CommandLineError(f"cannot read: {error.strerror or error}") from None
    if len(data) > limit:
        raise too_long()
    return data


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CommandLineError(f"{what} is not UTF-8 text (byte {error.start} cannot be decoded)") from None


def _program_text(text: str) -> str:
    """The program without a leading byte-order mark; an empty program (or comments only) is an error."""
    text = text.removeprefix("\ufeff")
    if not any(line.split("#", 1)[0].strip(" \t\r\f\v;") for line in text.split("\n")):
        raise CommandLineError("the program is empty" + (" (comments only)" if "#" in text else "") +
                               "; give statements such as 'y[i] = A[i,j] x[j]'")
    return text


def read_program(source: str, stdin: TextIO | None = None) -> str:
    """The program text: ``source`` itself, the file ``@path``, or standard input for ``-``.

    Files and standard input are read up to :data:`PROGRAM_MAX_BYTES`; only
    regular files are opened (a FIFO or ``/dev/zero`` is refused). A UTF-8
    byte-order mark is dropped; an empty program is an error.

    >>> read_program("y[i] = A[i,j] x[j]")
    'y[i] = A[i,j] x[j]'
    >>> read_program("\\ufeffy = x[i] x[i]")
    'y = x[i] x[i]'
    """
    limit = PROGRAM_MAX_BYTES

    def too_long(what: str) -> Callable[[], CommandLineError]:
        return lambda: CommandLineError(f"{what} is longer than {limit:,} bytes; a program is text, not data")

    if source == "-":
        stream = stdin or sys.stdin
        if stream is None:
            raise CommandLineError("cannot read the program from standard input: there is none")
        binary = getattr(stream, "buffer", None)
        if binary is not None:
            text = _decode(_read_capped(binary, limit, too_long("standard input")), "standard input")
        else:
            text = _read_capped(stream, limit, too_long("standard input"))
        return _program_text(text)
    if source.startswith("@"):
        path = source[1:]
        handle, _ = _open_regular(path, f"program file '{path}'")
        with handle:
            data = _read_capped(handle, limit, too_long(f"program file '{path}'"))
        return _program_text(_decode(data, f"program file '{path}'"))
    return _program_text(source)


def parse_sizes(items: Sequence[str]) -> dict[str, int]:
    """``["i=2,j=3", "k=4"]`` → ``{"i": 2, "j": 3, "k": 4}``.

    >>> parse_sizes(["i=2,j=3"])
    {'i': 2, 'j': 3}
    """
    sizes: dict[str, int] = {}
    for item in items:
        for part in item.split(","):
            name, equals, value = (s.strip() for s in part.partition("="))
            if not equals or not _IDENTIFIER.match(name) or not _COUNT.match(value):
                hint = "; separate pairs with commas, not spaces" if re.search(r"[0-9]\s+[A-Za-z_]", part) else ""
                raise CommandLineError(f"--sizes: expected NAME=N pairs such as i=2,j=3, got {part.strip()!r}{hint}")
            size = int(value) if len(value) <= 40 else MAX_SIZE + 1
            if size > MAX_SIZE:
                raise CommandLineError(f"--sizes {name}: {_shorten(value, 24)} is too large; an array axis holds "
                                       f"at most {MAX_SIZE:,} entries")
            if name in sizes and sizes[name] != size:
                raise CommandLineError(f"--sizes: index '{name}' is given sizes {sizes[name]} and {value}")
            sizes[name] = size
    return sizes


def _program_sizes(items: Sequence[str], program: Program) -> dict[str, int]:
    """``--sizes`` parsed, every name an index of the program (a typo guard)."""
    sizes = parse_sizes(items)
    indices = sorted({ir.display_name(r) for s in program.statements for r in s.roots})
    for name in sizes:
        if name not in indices:
            close = difflib.get_close_matches(name, indices, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise CommandLineError(f"--sizes {name}: the program has no index '{name}'; {hint}"
                                   f"its indices: {', '.join(indices) or 'none'}")
    return sizes


def _split_names(text: str, option: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    for name in names:
        if not _IDENTIFIER.match(name):
            raise CommandLineError(f"{option}: expected names separated by commas, got {text!r}")
    return list(dict.fromkeys(names))


def _numeric_literal(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_numeric_literal(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_literal(name: str, text: str) -> np.ndarray:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        hint = " (.npy, .csv or .txt files only)" if os.path.exists(text) else ""
        raise CommandLineError(f"cannot read {name}: {text!r} is neither a numeric literal such as [[1,2],[3,4]] "
                               f"nor a file{hint}") from None
    try:
        numeric = _numeric_literal(value)
    except RecursionError:
        numeric = False
    if not numeric:
        raise CommandLineError(f"cannot read {name}: {text!r} is not a number or nested lists of numbers")
    try:
        array = np.array(value, dtype=np.float64)
    except OverflowError:
        array = np.array([np.inf])
    except (ValueError, RecursionError):
        raise CommandLineError(f"cannot read {name}: {text!r} is ragged (rows of different lengths)") from None
    if not np.isfinite(array).all():     # a literal has no inf or nan: the number overflowed
        raise CommandLineError(f"cannot read {name}: a number in {_shorten(text)} is beyond the range of "
                               f"float64 (about ±1.8e308)")
    return array


def _shorten(text: str, width: int = 60) -> str:
    text = text.strip()
    return repr(text if len(text) <= width else text[:width - 1] + "…")


def _array_bytes(shape: Shape, itemsize: int) -> int:
    return math.prod(shape) * itemsize


def _check_bytes(what: str, shape: Shape, itemsize: int, limit: int, hint: str = "") -> None:
    """Refuse a tensor of ``shape`` above ``--max-bytes`` before anything is allocated."""
    nbytes = _array_bytes(shape, itemsize)
    if nbytes > limit:
        raise MemoryLimitError(f"{what} would have shape {shape} and take {nbytes:,} bytes, over --max-bytes "
                               f"{limit:,}; {hint + ', or ' if hint else ''}raise --max-bytes")


_NPY_MAGIC = b"\x93NUMPY"


def _load_npy(name: str, path: str, max_bytes: int) -> np.ndarray:
    """A numeric ``.npy`` array; the header is checked (dtype, size, the data that follows) before reading."""
    fmt = np.lib.format
    handle, size = _open_regular(path, f"{name} from '{path}'")

    def bad(reason: str) -> CommandLineError:
        return CommandLineError(f"cannot read {name} from '{path}': {reason}")

    with handle:
        start = handle.read(len(_NPY_MAGIC) + 2)
        if start.startswith(b"PK\x03\x04"):
            raise bad("an .npz archive, not a single .npy array")
        if not start.startswith(_NPY_MAGIC) or len(start) < len(_NPY_MAGIC) + 2:
            what = "it is empty" if not start else f"it does not start with the .npy signature {_NPY_MAGIC!r}"
            raise bad(f"not a .npy file ({what})")
        version = (start[-2], start[-1])
        try:
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(handle)
            elif version == (3, 0) and hasattr(fmt, "_read_array_header"):
                shape, fortran, dtype = fmt._read_array_header(handle, version)
            else:
                raise bad(f"it is .npy format version {version[0]}.{version[1]}, which einderiv does not read")
        except (ValueError, EOFError, SyntaxError, TypeError, OverflowError, MemoryError, RecursionError) as error:
            raise bad(f"its .npy header is damaged ({_first_line(error)})") from None
        if any(not isinstance(n, int) or n < 0 for n in shape):
            raise bad(f"its .npy header is damaged (shape {shape})")
        if dtype.hasobject:
            raise bad("it holds Python objects (a pickled array); einderiv reads numeric .npy files only "
                      "and never unpickles")
        if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
            raise bad(f"it holds {dtype} values, not numbers")
        nbytes = _array_bytes(shape, dtype.itemsize)
        _check_bytes(f"{name} (from '{path}')", shape, max(dtype.itemsize, 8), max_bytes)
        follows = size - handle.tell()
        if follows < nbytes:
            raise bad(f"the file is truncated: its header declares shape {shape} ({nbytes:,} bytes of "
                      f"{dtype}) but only {follows:,} bytes of data follow")
        handle.seek(0)
        try:
            return fmt.read_array(handle, allow_pickle=False)
        except (ValueError, EOFError, OSError) as error:
            raise bad(f"not a valid .npy file ({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().split("\n")[0] or type(error).__name__
    return text if len(text) <= 120 else text[:119] + "…"


def _load_text(name: str, path: str, rank: int, max_bytes: int) -> np.ndarray:
    if rank > 2:
        raise CommandLineError(f"cannot read {name} from '{path}': a text file holds at most 2 axes, "
                               f"but {name} has {rank}; use a .npy file")
    handle, _ = _open_regular(path, f"{name} from '{path}'")
    with handle:
        data = _read_capped(handle, max_bytes, lambda: CommandLineError(
            f"cannot read {name} from '{path}': the file is larger than --max-bytes {max_bytes:,}; "
            f"use a .npy file, or raise --max-bytes"))
    text = _decode(data, f"{name} ('{path}')")
    delimiter = "," if path.lower().endswith(".csv") else None
    try:
        return np.loadtxt(io.StringIO(text), delimiter=delimiter, ndmin=rank, dtype=np.float64)
    except (ValueError, OverflowError, IndexError) as error:
        raise CommandLineError(f"cannot read {name} from '{path}': not a table of numbers "
                               f"({_first_line(error)})") from None


def load_array(name: str, source: str, rank: int, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """An array from a ``.npy`` file, a ``.csv``/``.txt`` table, or an inline literal (data only).

    ``rank`` is the number of axes expected (a one-row CSV for a matrix stays 2-D).
    Files must be regular files; their size is checked against ``max_bytes``
    (``--max-bytes``) before the data is read, and ``.npy`` files are never unpickled.

    >>> load_array("W", "[[1, 2], [3, 4]]", 2).tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    """
    lowered = source.strip().lower()
    if lowered.endswith(".npy"):
        array = _load_npy(name, source.strip(), max_bytes)
    elif lowered.endswith((".csv", ".txt")):
        array = _load_text(name, source.strip(), rank, max_bytes)
    else:
        array = _parse_literal(name, source)
    if array.dtype.kind == "c":
        raise UnsupportedError(f"{name} is complex; einderiv supports real arrays only")
    if array.dtype.kind not in "biuf":
        raise CommandLineError(f"{name} is not numeric (dtype {array.dtype})")
    return array


def _assignment(text: str, option: str) -> tuple[str, str]:
    name, equals, source = text.partition("=")
    name = name.strip()
    if not equals or not _IDENTIFIER.match(name):
        raise CommandLineError(f"{option}: expected NAME=SOURCE (SOURCE a .npy or .csv file or a literal "
                               f"such as [[1,2],[3,4]]), got {text!r}")
    return name, source


# ---------------------------------------------------------------- shapes and inputs

def _needed_inputs(program: Program, of: str, wrts: Sequence[str] = ()) -> list[str]:
    ranks = dict(program.inputs)
    used = {of} | set(wrts)
    for name in ancestors(program, of, *(w for w in wrts if w in program.names)):
        used.update(written_names(program.statement(name)))    # as written: z in z[n]^0 still sizes n
    return [n for n in ranks if n in used]


def infer_shapes(program: Program, given: Mapping[str, Shape], sizes: Mapping[str, int],
                 needed: Sequence[str]) -> dict[str, Shape]:
    """Shapes of the ``needed`` inputs from the given arrays' shapes and index sizes by name.

    An index takes its size from ``sizes`` or from any array it labels, within
    its statement; statements' shapes pass on to later statements. Conflicts are
    left to :func:`einderiv.language.lowering.resolve_sizes`, which names both sources.

    >>> p = parse("C[i,j] = A[i,k] B[k,j]")
    >>> infer_shapes(p, {"A": (1, 3)}, {"j": 2}, ["A", "B"])
    {'A': (1, 3), 'B': (3, 2)}
    """
    shapes, axes = lowering_shapes(program.statements, dict(program.inputs), given, sizes)
    for name in needed:
        if name not in shapes:
            raise _unknown_shape(program, name, axes.get(name, {}))
    return {n: shapes[n] for n in needed}


def _unknown_shape(program: Program, name: str, known: Mapping[int, int]) -> ShapeError:
    for s in program.statements:
        for occ in s.occurrences:
            if occ.tensor == name and occ.axis not in known:
                index = ir.display_name(occ.root)
                return ShapeError(f"cannot tell the shape of input '{name}': its axis {occ.axis} is index '{index}' "
                                  f"in {s.where()}, and no array or size fixes it; give --sizes {index}=N "
                                  f"or --input {name}=...")
    return ShapeError(f"cannot tell the shape of input '{name}'; give it with --input {name}=...")


@dataclass
class _Data:
    """A program with everything a numeric command needs."""

    program: Program
    of: str
    arrays: dict[str, np.ndarray]        # the needed inputs, given or random
    shapes: dict[str, Shape]
    sizes: dict[str, int]
    given: dict[str, np.ndarray]         # the inputs given with --input
    random: list[str]                    # the inputs drawn at random, in order
    seed: int
    symbolic: bool
    dtype: np.dtype

    def sources(self) -> str:
        """``A given; B, C random (seed 0)``: where the inputs came from."""
        given = [n for n in self.shapes if n in self.given]
        others = [n for n in self.shapes if n not in self.given]
        parts = [f"{', '.join(given)} given"] if given else []
        if others:
            parts.append(f"{', '.join(others)} " + ("symbols" if self.symbolic else f"random (seed {self.seed})"))
        return "; ".join(parts) or "none"

    def output_shape(self) -> Shape:
        return self.shape_of(self.of)

    def shape_of(self, name: str) -> Shape:
        """The shape of an input or of a statement's tensor (an intermediate given with --wrt, say)."""
        if name not in self.program.names:
            return self.shapes[name]
        statements = tuple(self.program.statement(n) for n in ancestors(self.program, name))
        _, shapes = resolve_sizes(statements, self.shapes, self.sizes)
        return shapes[name]


def _symmetric_inputs(args: argparse.Namespace, program: Program) -> tuple[str, ...]:
    """The inputs named by ``--symmetric`` (checked: matrix inputs of the program)."""
    from einderiv.numeric.symmetric import symmetric_names
    names = [n for item in getattr(args, "symmetric", []) for n in _split_names(item, "--symmetric")]
    return symmetric_names(program, names)


def _load_data(args: argparse.Namespace, program: Program, of: str, wrts: Sequence[str]) -> _Data:
    ranks = dict(program.inputs)
    sizes = _program_sizes(args.sizes, program)
    dtype = np.dtype(args.dtype)
    given: dict[str, np.ndarray] = {}
    for item in args.inputs:
        name, source = _assignment(item, "--input")
        if name not in ranks:
            raise CommandLineError(f"--input {name}: '{name}' {program.not_an_input(name)}; inputs: "
                                   f"{', '.join(ranks) or 'none'}")
        if name in given:
            raise CommandLineError(f"--input {name} is given twice")
        array = load_array(f"input '{name}'", source, ranks[name], args.max_bytes)
        if array.ndim != ranks[name]:
            raise ShapeError(f"input '{name}' has {array.ndim} ax{'is' if array.ndim == 1 else 'es'} "
                             f"(shape {array.shape}) but the program writes it with {ranks[name]} "
                             f"ind{'ex' if ranks[name] == 1 else 'ices'}")
        given[name] = _converted(f"input '{name}'", array, dtype)
    for w in wrts:
        program.rank(w)
    needed = _needed_inputs(program, of, wrts)
    shapes = infer_shapes(program, {n: a.shape for n, a in given.items()}, sizes, needed)
    for name in needed:
        if name not in given:       # drawn in float64, then converted
            _check_bytes(f"the random input '{name}'", shapes[name], 8, args.max_bytes,
                         "lower --sizes")
    rng = np.random.default_rng(args.seed)
    symbolic = getattr(args, "symbolic", False)
    symmetric = _symmetric_inputs(args, program)
    arrays, random = {}, []
    for name in needed:
        if name in given:
            arrays[name] = given[name]
        else:
            random.append(name)
            arrays[name] = np.zeros(shapes[name], dtype) if symbolic else \
                rng.standard_normal(shapes[name]).astype(dtype)
            if name in symmetric and not symbolic:     # R Rᵀ/n + I: symmetric positive definite
                n = max(shapes[name][0], 1)
                arrays[name] = (arrays[name] @ arrays[name].T / n + np.diagflat(np.ones(n))).astype(dtype)
    data = _Data(program, of, arrays, shapes, sizes, given, random, args.seed, symbolic, dtype)
    try:
        data.output_shape()
    except ShapeError as error:
        raise ShapeError(_command_line_terms(str(error))) from None
    return data


def _converted(what: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` as ``dtype``; finite numbers that overflow it are an error, not infinities."""
    with np.errstate(over="ignore", invalid="ignore"):
        converted = array.astype(dtype)
    overflowed = ~np.isfinite(converted)
    if overflowed.any() and np.isfinite(array[overflowed]).all():
        raise CommandLineError(f"{what} holds numbers beyond the range of {dtype} "
                               f"(about ±{float(np.finfo(dtype).max):.1e}); use --dtype float64")
    return converted


def _command_line_terms(message: str) -> str:
    """A size error of the library, in the command line's terms (``--sizes k=3``, not ``sizes={'k': 3}``)."""
    message = re.sub(r"size (\d+) from sizes\['([^']+)'\]", r"size \1 from --sizes \2=\1", message)
    return re.sub(r"give its size explicitly, e\.g\. sizes=\{'([^']+)': (\d+)\}", r"give its size, e.g. --sizes \1=\2",
                  message)


# ---------------------------------------------------------------- reports

@dataclass
class _Section:
    """One printed result: heading lines, ``key: value`` lines, and an array."""

    heading: list[str]
    latex: list[str]
    meta: list[tuple[str, str]] = field(default_factory=list)
    array: np.ndarray | None = None
    label: Callable[[tuple[int, ...]], str] | None = None     # block label: split the leading axes
    split: int = 0
    latex_label: Callable[[tuple[int, ...]], str] | None = None
    json: dict[str, Any] = field(default_factory=dict)
    is_input: bool = False                                   # an input shown with --show-inputs
    key: str | None = None                                   # its name in an .npz archive


@dataclass
class _Report:
    command: str
    sections: list[_Section]
    json: dict[str, Any]
    symbolic: bool = False


def _format_number(value: float, precision: int) -> str:
    return np.format_float_positional(float(value), precision=precision, unique=True, trim="-")


def _array_text(array: np.ndarray, symbolic: bool) -> str:
    if symbolic:
        return np.array2string(np.asarray(array, dtype=object), formatter={"all": str}, separator=", ")
    return np.array2string(np.asarray(array))


def _array_latex(array: np.ndarray, symbolic: bool, precision: int) -> str:
    def entry(x) -> str:
        if symbolic:
            import sympy
            return sympy.latex(x)
        return _format_number(x, precision)
    array = np.asarray(array, dtype=object if symbolic else None)
    if array.ndim == 0:
        return entry(array[()])
    if array.ndim == 1:
        return matrix_to_latex([[entry(x) for x in array]])
    if array.ndim == 2:
        return matrix_to_latex([[entry(x) for x in row] for row in array])
    raise CommandLineError(f"LaTeX shows matrices, but this block has {array.ndim} axes (shape {array.shape}); "
                           "use --layout numerator, denominator or vec for a flattened matrix")


#: When a text result is summarised: entries per array, and blocks kept at each end of a Jacobian.
SUMMARY_ENTRIES = 1000
SUMMARY_BLOCKS = 3


def _blocks(section: _Section, summarise: bool = False):
    """(index, sub-array) for each block of a section; summarised: the first and last few, and
    ``(None, count)`` in place of the ones left out."""
    array = section.array
    if section.split == 0:
        yield (), array
        return
    leading = array.shape[:section.split]
    count = math.prod(leading)
    if summarise and count > 2 * SUMMARY_BLOCKS:
        positions = [*range(SUMMARY_BLOCKS), None, *range(count - SUMMARY_BLOCKS, count)]
    else:
        positions = range(count)
    for position in positions:
        if position is None:
            yield None, count - 2 * SUMMARY_BLOCKS
            continue
        index = tuple(int(i) for i in np.unravel_index(position, leading))
        yield index, array[index]


def _entries(report: _Report) -> int:
    return sum(s.array.size for s in report.sections if s.array is not None)


def _estimated_bytes(report: _Report, fmt: str, precision: int) -> int:
    """An upper estimate of the size of the printed output, from the array sizes alone (nothing is formatted)."""
    if report.symbolic:
        width = 64
    elif fmt == "json":
        width = 26                            # repr of a float64 and ", "
    else:
        width = min(precision, 17) + 14       # sign, digits, point, exponent, separators
    total = 0
    for section in report.sections:
        total += sum(len(line) + 1 for line in section.heading + section.latex)
        total += sum(len(key) + len(value) + 3 for key, value in section.meta)
        if section.array is not None:
            total += section.array.size * width
            total += math.prod(section.array.shape[:section.split]) * 48     # block labels
    return total


def _output_plan(report: _Report, args: argparse.Namespace) -> tuple[bool, str | None]:
    """Whether to summarise the text, and the note that says so; refuses output over ``--max-bytes``."""
    fmt, limit = args.format, getattr(args, "max_bytes", DEFAULT_MAX_BYTES)
    asked = getattr(args, "summarize", False)
    estimate = _estimated_bytes(report, fmt, getattr(args, "precision", 4))
    large = estimate > PRINT_THRESHOLD_BYTES or _entries(report) > PRINT_THRESHOLD_ENTRIES
    summarise = fmt == "text" and (asked or (large and not getattr(args, "full", False)))
    if not summarise and estimate > limit:
        raise MemoryLimitError(f"the {fmt} output would take about {estimate:,} bytes "
                               f"({_entries(report):,} numbers), over --max-bytes {limit:,}; save the "
                               f"numbers with --format npy --output FILE, or raise --max-bytes")
    if summarise and not asked:
        return True, (f"the result has {_entries(report):,} numbers (about {estimate:,} bytes of text): "
                      f"printed in summary; --full prints every one, --format npy --output FILE saves them")
    return summarise, None


def _bare(section: _Section) -> bool:
    """A one-line section: consecutive ones print without a blank line between them."""
    return len(section.heading) == 1 and not section.meta and section.array is None


def _render_text(report: _Report, args: argparse.Namespace, summarise: bool = False) -> str:
    threshold = SUMMARY_ENTRIES if summarise else sys.maxsize
    out: list[str] = []
    with np.printoptions(precision=getattr(args, "precision", 4), suppress=True, threshold=threshold, linewidth=120):
        for k, section in enumerate(report.sections):
            lines = list(section.heading) + [f"{key}: {value}" for key, value in section.meta]
            if section.array is not None:
                if section.split == 0 and section.label is None:
                    lines.append(_array_text(section.array, report.symbolic))
                else:
                    for index, block in _blocks(section, summarise):
                        lines.append("")
                        if index is None:
                            lines.append(f"… {block:,} more blocks …")
                            continue
                        lines.append(f"{section.label(index)} =")
                        lines.append(_array_text(block, report.symbolic))
            if k and not (_bare(section) and _bare(report.sections[k - 1])):
                out.append("")
            out.extend(lines)
    return "\n".join(out) + "\n"


def _render_latex(report: _Report, args: argparse.Namespace) -> str:
    out: list[str] = []
    for k, section in enumerate(report.sections):
        if k:
            out.append("")
        out.extend(section.latex)
        out.extend(f"% {key}: {value}" for key, value in section.meta)
        if section.array is None:
            continue
        for index, block in _blocks(section):
            body = _array_latex(block, report.symbolic, args.precision)
            label = section.latex_label(index) if section.latex_label else None
            out.append(f"{label} = {body}" if label else body)
    return "\n".join(out) + "\n"


def _json_values(array: np.ndarray, symbolic: bool) -> Any:
    if symbolic:
        return np.vectorize(str, otypes=[object])(np.asarray(array, dtype=object)).tolist()
    values = np.asarray(array, dtype=np.float64)
    return np.where(np.isfinite(values), values, None).tolist() if not np.isfinite(values).all() else values.tolist()


def _render_json(report: _Report) -> str:
    """One object; its keys one per line, each result one line (arrays as nested lists, NaN as null)."""
    results = []
    document = dict(report.json)
    for section in report.sections:
        if section.is_input:
            document.setdefault("input_values", {})[section.json["name"]] = \
                _json_values(section.array, report.symbolic)
            continue
        item = dict(section.json)
        if section.array is not None:
            item["values"] = _json_values(section.array, report.symbolic)
        if item:
            results.append(item)

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)

    lines = [f"  {dump(key)}: {dump(value)}," for key, value in document.items()]
    body = ",\n".join(f"    {dump(item)}" for item in results)
    lines.append(f'  "results": [\n{body}\n  ]' if results else '  "results": []')
    return "{\n" + "\n".join(lines) + "\n}\n"


def _write_npy(report: _Report, args: argparse.Namespace) -> None:
    if report.symbolic:
        raise CommandLineError("npy holds numbers, but --symbolic entries are expressions; "
                               "use --format text, json or latex")
    arrays = {s.key or s.json.get("wrt", s.json.get("name", f"array{k}")): s.array
              for k, s in enumerate(report.sections) if s.array is not None and not s.is_input}
    if len(arrays) == 1 and not args.output.endswith(".npz"):
        write_atomically(args.output, lambda handle: np.save(handle, next(iter(arrays.values())), allow_pickle=False))
    elif args.output.endswith(".npz"):
        write_atomically(args.output, lambda handle: np.savez(handle, **arrays))
    else:
        raise CommandLineError(f"there are {len(arrays)} results ({', '.join(arrays)}): name an .npz file "
                               f"(--output {os.path.splitext(args.output)[0]}.npz) to save them together, "
                               f"or ask for one at a time")


def write_atomically(path: str, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write`` on a new temporary file beside ``path``, then rename it over ``path``.

    A failed write (disk full, a file-size limit, an error while formatting)
    leaves an existing ``path`` as it was and no temporary file behind. A
    replaced file keeps its permissions; ``path`` must be a regular file or new.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> write_atomically(str(target), lambda handle: handle.write(b"42\\n"))
    >>> target.read_text()
    '42\\n'
    """
    target = os.path.realpath(path)       # through a symbolic link: replace the file it names
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise CommandLineError(f"cannot write '{path}': {error.strerror or error}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise CommandLineError(f"cannot write '{path}': it is {_file_kind(mode)}, not a regular file; "
                               f"leave out --output to write to standard output")
    if mode is None:
        umask = os.umask(0o022)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".part",
                                                 dir=os.path.dirname(target))
    except OSError as error:
        raise CommandLineError(f"cannot write '{path}': {error.strerror or error}") from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
        os.chmod(temporary, stat.S_IMODE(mode))
        os.replace(temporary, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise CommandLineError(f"cannot write '{path}': {error.strerror or error}; "
                                   f"'{path}' is unchanged") from None
        raise


# ---------------------------------------------------------------- the commands

def _load_program(args: argparse.Namespace) -> tuple[Program, str]:
    program = parse(read_program(args.program))
    return program, program.resolve_output(args.of)


def _derivative_text(d: Derivative, args: argparse.Namespace) -> list[str]:
    return d.to_text(ascii=args.ascii).split("\n")


def _run_diff(args: argparse.Namespace) -> _Report:
    program, of = _load_program(args)
    sections = []
    for wrt in _split_names(args.wrt, "--wrt"):
        d = program.derivative(wrt, of)
        document = {"wrt": wrt, "derivative": d.to_text(ascii=args.ascii), "latex": to_latex(d)}
        text, latex = _derivative_text(d, args), [to_latex(d)]
        if args.matrix:
            from einderiv.render.matrix import describe_matrix_form
            line = describe_matrix_form(d, program, ascii=args.ascii)
            text, document["matrix"] = text + [line], line
            latex = latex + [f"% {line}"]
        sections.append(_Section(text, latex, json=document))
    if args.matrix and sections:
        from einderiv.render.matrix import column_vector_notes
        notes = column_vector_notes(program, set(ancestors(program, of)), ascii=args.ascii)
        if notes:
            last = sections[-1]
            last.heading.extend(notes)
            last.latex.extend(f"% {note}" for note in notes)
            last.json["notes"] = list(notes)
    return _Report("diff", sections, {"command": "diff", "of": of})


def _common_json(data: _Data, command: str) -> dict[str, Any]:
    return {"command": command, "of": data.of, "seed": data.seed,
            "inputs": {n: ("given" if n in data.given else "symbols" if data.symbolic else "random")
                       for n in data.shapes},
            "sizes": data.sizes, "dtype": data.dtype.name, "symbolic": data.symbolic}


def _input_sections(data: _Data, args: argparse.Namespace) -> list[_Section]:
    if not args.show_inputs or data.symbolic:
        return []
    sections = []
    for name, array in data.arrays.items():
        source = "given" if name in data.given else f"random, seed {data.seed}"
        sections.append(_Section([f"{name} ({source}) ="], [f"% {name} ({source})"], array=array,
                                 latex_label=lambda _, n=name: ref_to_latex(n, ()), json={"name": name},
                                 is_input=True))
    return sections


def _entry_label(name: str, index: tuple[int, ...]) -> str:
    """``C[1,2]``: an entry counted from 1, as the symbols of ``--symbolic`` are (a1, b12)."""
    return f"{name}[{','.join(str(i + 1) for i in index)}]" if index else name


def flatten_jacobian(J: np.ndarray, out_rank: int, layout: str) -> np.ndarray:
    """The Jacobian (output axes first) in a layout of :data:`LAYOUTS`.

    ``numerator``: rows are output entries and columns input entries, both in
    row-major order; ``denominator``: its transpose; ``vec``: rows and columns
    in column-major order, so that ``F = W X`` gives ``Xᵀ ⊗ I``.

    >>> J = np.arange(6.0).reshape(1, 2, 3)
    >>> flatten_jacobian(J, 2, "numerator").shape
    (2, 3)
    >>> flatten_jacobian(J, 1, "vec").tolist()
    [[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]]
    """
    if layout == "tensor":
        return J
    out_shape, in_shape = J.shape[:out_rank], J.shape[out_rank:]
    rows, cols = math.prod(out_shape), math.prod(in_shape)
    if layout == "numerator":
        return J.reshape(rows, cols)
    if layout == "denominator":
        return J.reshape(rows, cols).T
    if layout == "vec":
        order = tuple(reversed(range(out_rank))) + tuple(reversed(range(out_rank, J.ndim)))
        return J.transpose(order).reshape(rows, cols)
    raise CommandLineError(f"unknown layout '{layout}'; layouts: {', '.join(LAYOUTS)}")


def _times(matrix: Shape, ascii: bool) -> str:
    return ("x" if ascii else "×").join(map(str, matrix))


def _layout_text(layout: str, of: str, wrt: str, matrix: Shape, ascii: bool, scalar: bool = False,
                 form: str | None = None) -> str:
    size = _times(matrix, ascii)
    if layout == "tensor" and scalar:
        return f"tensor: shaped like {wrt}, as {of} is a scalar"
    if layout == "tensor":
        return f"tensor: the output's axes first, then the input's; one block per entry of {of}, counted from 1"
    if layout == "numerator":
        return (f"numerator: a {size} matrix; row = entry of {of}, column = entry of {wrt}, "
                f"both in row-major order")
    if layout == "denominator":
        return (f"denominator: a {size} matrix, the numerator layout transposed; row = entry of {wrt}, "
                f"column = entry of {of}, both in row-major order")
    kron = "X^T kron I" if ascii else "Xᵀ ⊗ I"
    example = f"F = W X gives {kron}" if form is None else f"here d vec({of})/d vec({wrt}) = {form}"
    return (f"vec: a {size} matrix d vec({of})/d vec({wrt}); vec stacks columns (column-major) on both sides, "
            f"so {example}")


def _kronecker_text(d: Derivative, ascii: bool) -> str | None:
    """The program's own ``d vec(F)/d vec(W)`` (``Xᵀ ⊗ I_i``), or None."""
    from einderiv.render.matrix import kronecker_matrix
    form = kronecker_matrix(d)
    return None if form is None else form.ascii if ascii else form.text


def _check_jacobian_bytes(of: str, wrt: str, shape: Shape, data: _Data, limit: int) -> None:
    _check_bytes(f"the Jacobian d{of}/d{wrt}", shape, data.dtype.itemsize, limit,
                 "print a vector–Jacobian product with --upstream G=... instead")


def _vjp_text(d: Derivative, upstream: str, ascii: bool) -> tuple[str, str]:
    """``G[i,k] dF[i,k]/dW[a,b] = G[a,k] X[b,k]``: the contraction, simplified; text and LaTeX."""
    names = {i: ir.display_name(i) for i in d.out_indices + d.wrt_indices}
    out_names = tuple(names[i] for i in d.out_indices)
    wrt_names = tuple(names[i] for i in d.wrt_indices)
    text = f"{format_ref(upstream, out_names)} {d.lhs_text()}"
    latex = (f"{ref_to_latex(upstream, out_names)} \\frac{{\\partial {ref_to_latex(d.of, out_names)}}}"
             f"{{\\partial {ref_to_latex(d.wrt, wrt_names)}}}")
    if d.chain:
        return text, latex
    expr = simplify(ir.summation(d.out_indices, ir.mul(ir.ref(upstream, d.out_indices), d.expr)))
    fixed = {i: names[i] for i in d.wrt_indices}
    return f"{text} = {format_expr(expr, fixed, ascii=ascii)}", f"{latex} = {expr_to_latex(expr, fixed)}"


def _upstream(args: argparse.Namespace, program: Program, of: str, data: _Data) -> tuple[str, np.ndarray]:
    text = args.upstream
    match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=", text)
    taken = set(program.names) | set(dict(program.inputs))
    if match:
        name, source = match.group(1), text[match.end():]
        if name in taken:
            raise CommandLineError(f"--upstream: '{name}' is a tensor of the program; choose another name")
    else:
        name = fresh(("G", "U", "Gbar", "G_"), taken)
        source = text
    array = load_array(f"the upstream gradient '{name}'", source, program.rank(of), args.max_bytes)
    expected = data.output_shape()
    if array.shape != expected:
        raise ShapeError(f"the upstream gradient '{name}' has shape {array.shape} but '{of}' has shape {expected}")
    return name, _converted(f"the upstream gradient '{name}'", array, data.dtype)


def _symbolic_upstream(args: argparse.Namespace, program: Program, of: str,
                       data: _Data) -> tuple[str, np.ndarray | None]:
    """``--upstream G`` with ``--symbolic``: a bare name is a gradient of symbols (g1, g2, …); NAME=SOURCE numbers."""
    text = args.upstream.strip()
    if _IDENTIFIER.match(text):
        taken = set(program.names) | set(dict(program.inputs))
        if text in taken:
            raise CommandLineError(f"--upstream: '{text}' is a tensor of the program; choose another name")
        return text, None
    return _upstream(args, program, of, data)


def _vjp_matrix(d: Derivative, upstream: str, ascii: bool) -> list[tuple[str, str]]:
    """``matrix: Aᵀ G``, the vector–Jacobian product in matrix notation, where it has one."""
    from einderiv.render.matrix import to_matrix
    if d.chain:
        return []
    expr = simplify(ir.summation(d.out_indices, ir.mul(ir.ref(upstream, d.out_indices), d.expr)))
    form = to_matrix(expr, d.wrt_indices)
    if form is None:
        return []
    return [("matrix", f"{form.ascii if ascii else form.text}  (the gradient of {d.wrt} that backprop computes)")]


def _run_jacobian(args: argparse.Namespace) -> _Report:
    program, of = _load_program(args)
    wrts = _split_names(args.wrt, "--wrt")
    if args.upstream and args.layout != "tensor" and not args.symbolic:
        raise CommandLineError("--layout applies to a Jacobian; with --upstream the result is shaped like the input")
    data = _load_data(args, program, of, wrts)
    out_shape = data.output_shape()
    if args.upstream and args.symbolic:
        upstream = _symbolic_upstream(args, program, of, data)
    else:
        upstream = _upstream(args, program, of, data) if args.upstream else None
    sections = _input_sections(data, args)
    for wrt in wrts:
        d = program.derivative(wrt, of)
        wrt_shape = data.shape_of(wrt)
        vjp_section = None
        if upstream is not None:
            name, G = upstream
            if data.symbolic:
                from einderiv.numeric.symbolic import symbolic_vjp
                given = {**data.given, **({name: G} if G is not None else {})}
                values = symbolic_vjp(program, wrt, {**data.shapes, wrt: wrt_shape, name: out_shape}, name,
                                      of=of, sizes=data.sizes, values=given)
            else:
                values = vjp(program, wrt, data.arrays, G, of=of, sizes=data.sizes, memory_limit=args.max_bytes,
                             symmetric=_symmetric_inputs(args, program))
            text, latex = _vjp_text(d, name, args.ascii)
            heading = [text]
            meta = [("shape", f"{wrt_shape} = shape({wrt})"),
                    ("layout", f"vector–Jacobian product: {name} (shaped like {of}) contracted with d{of}/d{wrt}"),
                    *_vjp_matrix(d, name, args.ascii),
                    ("inputs", data.sources() + (f"; {name} symbols" if data.symbolic and G is None else ""))]
            vjp_label = rf"{ref_to_latex(name, ())} \cdot \frac{{\partial {ref_to_latex(of, ())}}}" \
                        rf"{{\partial {ref_to_latex(wrt, ())}}}"
            vjp_section = _Section(heading, [latex], meta, values, latex_label=lambda _, t=vjp_label: t,
                                   json={"wrt": wrt, "derivative": heading[0], "shape": list(wrt_shape),
                                         "layout": "vjp", "upstream": name})
            if not data.symbolic:
                sections.append(vjp_section)
                continue
        shape = out_shape + wrt_shape
        _check_jacobian_bytes(of, wrt, shape, data, args.max_bytes)
        if data.symbolic:
            from einderiv.numeric.symbolic import symbolic_jacobian
            J = symbolic_jacobian(program, wrt, {**data.shapes, wrt: wrt_shape}, of=of, sizes=data.sizes,
                                  values=data.given)
        else:
            J = jacobian(program, wrt, data.arrays, of=of, sizes=data.sizes, memory_limit=args.max_bytes,
                         symmetric=_symmetric_inputs(args, program))
        values = flatten_jacobian(J, len(out_shape), args.layout)
        matrix = values.shape if args.layout != "tensor" else ()
        meta = [("shape", f"{shape} = shape({of}) + shape({wrt})" +
                 (f", printed as {_times(matrix, args.ascii)}" if matrix else "")),
                ("layout", _layout_text(args.layout, of, wrt, matrix, args.ascii, scalar=not out_shape,
                                        form=_kronecker_text(d, args.ascii) if args.layout == "vec" else None)),
                *_local_note(program, wrt, of),
                ("inputs", data.sources())]
        tensor = args.layout == "tensor"
        split = len(out_shape) if tensor else 0
        section = _Section(_derivative_text(d, args), [to_latex(d)], meta, values,
                           label=(lambda index, w=wrt: f"d{_entry_label(of, index)}/d{w}") if tensor else None,
                           split=split,
                           latex_label=_latex_block_label(of, wrt, tensor),
                           json={"wrt": wrt, "derivative": d.to_text(ascii=args.ascii), "shape": list(shape),
                                 "layout": args.layout, "matrix_shape": list(matrix) or None})
        sections.append(section)
        if vjp_section is not None:        # symbolic: the Jacobian, then its product with the upstream gradient
            sections.append(vjp_section)
    return _Report("jacobian", sections, _common_json(data, "jacobian"), data.symbolic)


def _local_note(program: Program, wrt: str, of: str) -> list[tuple[str, str]]:
    """A line saying that a derivative with respect to an intermediate is its local Jacobian."""
    if wrt not in program.names:
        return []
    return [("local", f"{wrt} is defined by a statement: this is the local Jacobian, with {wrt} treated as an "
                      f"input of the statements from it to {of}")]


def _latex_block_label(of: str, wrt: str, tensor: bool) -> Callable[[tuple[int, ...]], str]:
    def label(index: tuple[int, ...]) -> str:
        top = ref_to_latex(of, tuple(str(i + 1) for i in index)) if tensor else ref_to_latex(of, ())
        return rf"\frac{{\partial {top}}}{{\partial {ref_to_latex(wrt, ())}}}"
    return label


def _run_grad(args: argparse.Namespace) -> _Report | None:
    from einderiv.render.explanation import adjoint
    program, of = _load_program(args)
    wrts = _split_names(args.wrt, "--wrt")
    if args.explain:
        from einderiv.render.explanation import ascii_text
        table = adjoint(program, wrts, of)
        text = to_latex(table) if args.format == "latex" else ascii_text(str(table)) if args.ascii else str(table)
        _emit(text.rstrip("\n") + "\n", args, sys.stdout)
        return None
    if program.rank(of) != 0:
        raise ShapeError(f"grad needs a scalar output, but '{of}' has {program.rank(of)} "
                         f"ind{'ex' if program.rank(of) == 1 else 'ices'}; use 'einderiv jacobian' "
                         f"(with --upstream for a vector–Jacobian product)")
    data = _load_data(args, program, of, wrts)
    sections = _input_sections(data, args)
    document = _common_json(data, "grad")
    if not data.symbolic:
        value = float(evaluate(program, data.arrays, of=of, sizes=data.sizes, memory_limit=args.max_bytes))
        document["value"] = value
        sections.append(_Section([f"{of} = {_format_number(value, args.precision)}"],
                                 [f"{ref_to_latex(of, ())} = {_format_number(value, args.precision)}"],
                                 [("inputs", data.sources())]))
    else:
        sections.append(_Section([f"inputs: {data.sources()}"], [f"% inputs: {data.sources()}"]))
    if data.symbolic:
        from einderiv.numeric.symbolic import symbolic_jacobian
        results = {w: symbolic_jacobian(program, w, {**data.shapes, w: data.shape_of(w)}, of=of, sizes=data.sizes,
                                        values=data.given)
                   for w in wrts}
    else:
        results = grad(program, list(wrts), data.arrays, of=of, sizes=data.sizes, memory_limit=args.max_bytes,
                       symmetric=_symmetric_inputs(args, program))
    for wrt in wrts:
        d = program.derivative(wrt, of)
        shape = data.shape_of(wrt)
        meta = [("shape", f"{shape} = shape({wrt})"), *_local_note(program, wrt, of)]
        if wrt in _symmetric_inputs(args, program):
            meta.append(("symmetric", f"{wrt} is symmetric: the values are sym(G) = (G + Gᵀ)/2 of the G printed"))
        sections.append(_Section(_derivative_text(d, args), [to_latex(d)], meta,
                                 np.asarray(results[wrt]),
                                 json={"wrt": wrt, "derivative": d.to_text(ascii=args.ascii), "shape": list(shape)}))
    return _Report("grad", sections, document, data.symbolic)


def _run_hessian(args: argparse.Namespace) -> _Report:
    """Every block ``d²of / d w d v`` for ``w`` in ``--wrt`` and ``v`` in ``--wrt2`` (default: ``--wrt``)."""
    from einderiv.numeric.hessian import hessian, symbolic_hessian
    program, of = _load_program(args)
    firsts = _split_names(args.wrt, "--wrt")
    seconds = _split_names(args.wrt2, "--wrt2") if args.wrt2 else firsts
    if program.rank(of) != 0:
        raise ShapeError(f"a Hessian needs a scalar output, but '{of}' has {program.rank(of)} "
                         f"ind{'ex' if program.rank(of) == 1 else 'ices'}")
    data = _load_data(args, program, of, list(dict.fromkeys(firsts + seconds)))
    if data.symbolic:
        raise CommandLineError("hessian has no --symbolic mode; use 'einderiv diff' for the index form")
    pairs = [(w, v) for w in firsts for v in seconds]
    for wrt, wrt2 in pairs:
        _check_bytes(f"the Hessian block d²{of}/d{wrt}d{wrt2}", data.shapes[wrt] + data.shapes[wrt2],
                     data.dtype.itemsize, args.max_bytes, "ask for fewer or smaller blocks with --wrt and --wrt2")
    symmetric = _symmetric_inputs(args, program)
    sections = _input_sections(data, args)
    for wrt, wrt2 in pairs:
        symbolic = symbolic_hessian(program, wrt, wrt2, of)
        values = hessian(program, wrt, data.arrays, wrt2=wrt2, of=of, sizes=data.sizes,
                         memory_limit=args.max_bytes, symmetric=symmetric)
        meta = [("shape", f"{values.shape} = shape({wrt}) + shape({wrt2})"), ("inputs", data.sources())]
        projected = [w for w in dict.fromkeys((wrt, wrt2)) if w in symmetric]
        if projected:
            meta.append(("symmetric", f"{', '.join(projected)} symmetric: the values are projected by "
                                      f"sym(G) = (G + Gᵀ)/2 on {'its' if len(projected) == 1 else 'their'} axes (P H P)"))
        sections.append(_Section(symbolic.to_text(ascii=args.ascii).split("\n"), [to_latex(symbolic)],
                                 meta, np.asarray(values),
                                 json={"wrt": wrt, "wrt2": wrt2, "hessian": symbolic.to_text(ascii=args.ascii),
                                       "shape": list(values.shape)},
                                 key=wrt if len(pairs) == 1 else f"{wrt},{wrt2}"))
    return _Report("hessian", sections, _common_json(data, "hessian"))


def _parse_shapes(items: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``["W1=512x1024,b1=1024"]`` → ``{"W1": (512, 1024), "b1": (1024,)}``; ``s=`` is a scalar.

    >>> _parse_shapes(["W=2x3,b=3,s="])
    {'W': (2, 3), 'b': (3,), 's': ()}
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        for part in item.split(","):
            name, equals, dims = (x.strip() for x in part.partition("="))
            parts = [d.strip() for d in dims.split("x")] if dims else []
            if not equals or not _IDENTIFIER.match(name) or not all(_COUNT.match(d) for d in parts):
                raise CommandLineError(f"--shapes: expected NAME=AxB pairs such as W=2x3,b=3, got {part.strip()!r}")
            try:
                shapes[name] = tuple(_integer(d) for d in parts)
            except CommandLineError as error:
                raise CommandLineError(f"--shapes {name}: {error}") from None
    return shapes


def _run_codegen(args: argparse.Namespace) -> None:
    from einderiv.render.codegen import codegen      # imported here: most commands never need it
    program, of = _load_program(args)
    wrts = _split_names(args.wrt, "--wrt")
    text = codegen(program, wrts, of=of, shapes=_parse_shapes(args.shapes) or None,
                   sizes=_program_sizes(args.sizes, program) or None, hessian=args.hessian)
    args.format = "text"
    _emit(text, args, sys.stdout)
    return None


def _run_plan(args: argparse.Namespace) -> None:
    from einderiv.numeric.plan_report import plan
    program, of = _load_program(args)
    mode = args.mode or ("grad" if args.wrt else "value")
    if mode != "value" and not args.wrt:
        raise CommandLineError(f"--mode {mode} needs --wrt")
    wrts = _split_names(args.wrt, "--wrt") if args.wrt and mode != "value" else None
    report = plan(program, wrts, _parse_shapes(args.shapes), of=of, mode=mode,
                  sizes=_program_sizes(args.sizes, program) or None, dtype=args.dtype, memory_limit=args.max_bytes)
    args.format = "text"
    _emit(str(report) + "\n", args, sys.stdout)
    return None


def _run_explain(args: argparse.Namespace) -> None:
    from einderiv.render.explanation import explain
    program, of = _load_program(args)
    wrts = _split_names(args.wrt, "--wrt")
    sizes = _program_sizes(args.sizes, program)
    shapes: dict[str, Any] = {}
    if sizes:       # every input's shape, inferred across statements as grad does
        shapes = dict(infer_shapes(program, {}, sizes, _needed_inputs(program, of, wrts)))
    derivation = explain(program, wrts, of, differentials=args.differentials,
                         sizes={**sizes, **shapes} or None)
    text = to_latex(derivation) if args.format == "latex" else derivation.to_text(ascii=args.ascii)
    _emit(text.rstrip("\n") + "\n", args, sys.stdout)
    return None


def _run_eval(args: argparse.Namespace) -> _Report:
    program, of = _load_program(args)
    data = _load_data(args, program, of, ())
    _check_bytes(f"the value of '{of}'", data.output_shape(), data.dtype.itemsize, args.max_bytes, "lower --sizes")
    if data.symbolic:
        from einderiv.numeric.symbolic import symbolic_value
        value = symbolic_value(program, data.shapes, of=of, sizes=data.sizes, values=data.given)
    else:
        value = np.asarray(evaluate(program, data.arrays, of=of, sizes=data.sizes, memory_limit=args.max_bytes))
    if of in program.names:
        s = program.statement(of)
        heading = s.source.strip()
        latex = to_latex(s)
    else:
        heading, latex = f"{of} (an input)", ref_to_latex(of, ())
    meta = [("shape", str(value.shape)), ("inputs", data.sources())]
    sections = _input_sections(data, args)
    sections.append(_Section([heading], [latex], meta, value, latex_label=lambda _: ref_to_latex(of, ()),
                             json={"name": of, "shape": list(value.shape)}))
    return _Report("eval", sections, _common_json(data, "eval"), data.symbolic)


# ---------------------------------------------------------------- main

def _render(report: _Report, args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The text to print (None when written already, as npy) and a note for standard error, if any."""
    fmt = args.format
    if fmt == "npy":
        if not args.output:
            raise CommandLineError("--format npy writes binary data: give a file with --output FILE")
        _write_npy(report, args)
        return None, None
    summarise, note = _output_plan(report, args)
    if fmt == "json":
        return _render_json(report), note
    if fmt == "latex":
        return _render_latex(report, args), note
    return _render_text(report, args, summarise), note


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


def _emit(text: str, args: argparse.Namespace, stdout: TextIO) -> None:
    if args.output:
        write_atomically(args.output, lambda handle: handle.write(text.encode("utf-8")))
    else:
        _write_stdout(stdout, text)


def _command_line_message(error: BaseException) -> str:
    """An error for standard error: the library's terms turned into the command line's."""
    if isinstance(error, MemoryError):
        return "out of memory; lower --sizes or --max-bytes"
    if isinstance(error, RecursionError):
        return "the input is nested too deeply"
    message = str(error) or type(error).__name__
    if isinstance(error, EinderivError):
        message = _command_line_terms(message)
        message = re.sub(r"over the memory limit of ([0-9,]+) bytes", r"over --max-bytes \1", message)
        message = re.sub(r"\buse (?:hvp|vjp|jvp)\b[^;]*?(?=, or raise memory_limit)", "lower --sizes", message)
        message = message.replace("raise memory_limit", "raise --max-bytes")
    return message


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
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 2
    stdout, stderr = sys.stdout, sys.stderr
    error: str | None = None
    notes: list[str] = []
    warned: set[str] = set()

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        # at once, before any output (the summation-trap warning must come before the numbers it concerns)
        text = f"{PROG}: warning: {message}"
        if text not in warned:
            warned.add(text)
            print(text, file=stderr, flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show_warning
        try:
            if args.command == "demo":
                return _demo()
            report = args.run(args)
            text, note = (None, None) if report is None else _render(report, args)
            notes += [note] if note else []
            if text is not None:
                _emit(text, args, stdout)
        except BrokenPipeError:        # the reader went away (einderiv … | head): stop quietly
            _discard_stdout(stdout)
            return 1
        except _StdoutError as exc:
            _discard_stdout(stdout)
            error = str(exc)
        except (EinderivError, OSError, MemoryError, RecursionError) as exc:
            error = _command_line_message(exc)
    for note in notes:
        print(f"{PROG}: note: {note}", file=stderr)
    if error is not None:
        print(f"{PROG}: error: {error}", file=stderr)
        return 2
    return 0
