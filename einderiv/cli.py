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

>>> main(["diff", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W"])
dF[i,k]/dW[a,b] = δ[i,a] X[b,k]
0
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, TextIO

import numpy as np

from . import ir
from .errors import EinderivError, ProgramError, ShapeError, UnsupportedError
from .codegen import codegen
from .evaluation import evaluate, grad, jacobian, vjp
from .explanation import adjoint, explain
from .latex import expr_to_latex, matrix_to_latex, ref_to_latex, to_latex
from .printing import format_expr, format_ref
from .program import Derivative, Program, parse
from .second_order import hessian, symbolic_hessian
from .semantics import dependencies, resolve_sizes
from .simplification import simplify

__all__ = ["main", "build_parser", "CommandLineError", "read_program", "parse_sizes", "load_array",
           "infer_shapes", "flatten_jacobian", "LAYOUTS"]

PROG = "einderiv"
Shape = tuple[int, ...]

#: Jacobian layouts: the tensor itself, or one of three flattened matrices.
LAYOUTS = ("tensor", "numerator", "denominator", "vec")

DEFAULT_MAX_BYTES = 64 * 1024 ** 2
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FILE_TYPES = (".npy", ".csv", ".txt")


class CommandLineError(EinderivError):
    """Bad command-line input: an option value, a file, an inline array."""


# ---------------------------------------------------------------- argument parsing

class _Parser(argparse.ArgumentParser):
    """argparse with errors in einderiv's one-line form, status 2."""

    def error(self, message: str):
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
  einderiv codegen @network.ein --wrt W1,b1,W2,b2 --shapes X=4096x512,W1=512x1024,b1=1024,W2=1024x10,b2=10,T=4096x10
  einderiv codegen "L = x[i] A[i,j] x[j]" --wrt x --hessian --output quadratic.py"""

_EXAMPLES["explain"] = """examples:
  einderiv explain "F[i,k] = W[i,j] X[j,k]" --wrt W --differentials
  einderiv explain @network.ein --wrt W1,b1 --sizes n=4,d=3,h=5,c=2"""

_EXAMPLES["demo"] = """examples:
  einderiv demo"""

DEMO_PROGRAM = "F[i,k] = W[i,j] X[j,k]"
DEMO_INPUTS = ("W=[[1,2,3],[4,5,6]]", "X=[[1,0],[0,1],[2,3]]")

_DESCRIPTION = """Differentiate tensor programs written in Einstein index notation.

PROGRAM is the program text ("F[i,k] = W[i,j] X[j,k]"; statements separated by
newlines or ';'), @PATH to read it from a file, or - to read standard input."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its four subcommands.

    >>> build_parser().parse_args(["diff", "y[i] = A[i,j] x[j]", "--wrt", "x"]).command
    'diff'
    """
    from . import __version__

    parser = _Parser(prog=PROG, description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="examples (more with einderiv COMMAND --help):\n\n" +
                     "\n\n".join(_EXAMPLES[c].split("\n", 1)[1].split("\n\n")[0] for c in _EXAMPLES))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    program = _Parser(add_help=False)
    program.add_argument("program", metavar="PROGRAM", help="program text, @PATH, or - for standard input")
    program.add_argument("--of", metavar="NAME", help="the output to differentiate (default: the last statement)")
    program.add_argument("--ascii", action="store_true", help="write delta(i,a) instead of δ[i,a]")

    data = _Parser(add_help=False)
    data.add_argument("--sizes", metavar="i=N,…", action="append", default=[],
                      help="index sizes by name, applying in every statement (repeatable)")
    data.add_argument("--input", metavar="NAME=SOURCE", action="append", default=[], dest="inputs",
                      help="an input's value: NAME=file.npy, NAME=file.csv or an inline literal "
                           "such as 'W=[[1,2],[3,4]]' (repeatable); inputs not given are random")
    data.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the random inputs (default: 0)")
    data.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                      help="floating-point type of the inputs (default: float64)")
    data.add_argument("--max-bytes", metavar="N", type=_byte_count, default=DEFAULT_MAX_BYTES,
                      help="refuse to build a tensor larger than this (e.g. 64MiB, the default; 1GiB)")
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
        return out

    numeric_formats = ("text", "json", "npy", "latex")

    def add(name: str, help_text: str, parents: list) -> _Parser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=parents,
                                   epilog=_EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter)

    diff = add("diff", "print symbolic derivatives in index form", [program, output(("text", "json", "latex"))])
    diff.add_argument("--wrt", required=True, metavar="W[,V…]", help="input(s) to differentiate with respect to")
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
    hes.add_argument("--wrt", required=True, metavar="W", help="the input of the first derivative")
    hes.add_argument("--wrt2", metavar="V", help="the input of the second derivative (default: --wrt)")
    hes.set_defaults(run=_run_hessian)

    gen = add("codegen", "print a standalone Python module computing the value and gradients", [program])
    gen.add_argument("--wrt", required=True, metavar="W[,V…]", help="input(s) to differentiate with respect to")
    gen.add_argument("--shapes", metavar="NAME=AxB,…", action="append", default=[],
                     help="input shapes (e.g. W1=512x1024,b1=1024): contraction paths are then precomputed")
    gen.add_argument("--sizes", metavar="i=N,…", action="append", default=[],
                     help="index sizes by name, for indices no input fixes")
    gen.add_argument("--hessian", action="store_true", help="also define hessian(**inputs)")
    gen.add_argument("--output", metavar="FILE", help="write the module to FILE instead of standard output")
    gen.set_defaults(run=_run_codegen)

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
    print(f"# The built-in example {DEMO_PROGRAM}, W 2×3, X 3×2: each block is what the command above it prints.\n")
    print(f"$ einderiv diff \"{DEMO_PROGRAM}\" --wrt W,X")
    status = main(["diff", DEMO_PROGRAM, "--wrt", "W,X"])
    print(f"\n$ einderiv jacobian \"{DEMO_PROGRAM}\" --wrt W " + " ".join(f'--input "{x}"' for x in DEMO_INPUTS))
    return status or main(["jacobian", DEMO_PROGRAM, "--wrt", "W", *inputs])


def _non_negative(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def _byte_count(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid byte count {text!r} (e.g. 67108864, 64MiB, 1GiB)")
    power = " KMG".index(match.group(2).upper() or " ")
    return int(match.group(1)) * 1024 ** power


# ---------------------------------------------------------------- reading inputs

def read_program(source: str, stdin: TextIO | None = None) -> str:
    """The program text: ``source`` itself, the file ``@path``, or standard input for ``-``.

    >>> read_program("y[i] = A[i,j] x[j]")
    'y[i] = A[i,j] x[j]'
    """
    if source == "-":
        return (stdin or sys.stdin).read()
    if source.startswith("@"):
        path = source[1:]
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except OSError as error:
            raise CommandLineError(f"cannot read program file '{path}': {error.strerror or error}") from None
        except UnicodeDecodeError:
            raise CommandLineError(f"program file '{path}' is not UTF-8 text") from None
    return source


def parse_sizes(items: Sequence[str]) -> dict[str, int]:
    """``["i=2,j=3", "k=4"]`` → ``{"i": 2, "j": 3, "k": 4}``.

    >>> parse_sizes(["i=2,j=3"])
    {'i': 2, 'j': 3}
    """
    sizes: dict[str, int] = {}
    for item in items:
        for part in item.split(","):
            name, equals, value = (s.strip() for s in part.partition("="))
            if not equals or not _IDENTIFIER.match(name) or not value.isdigit():
                raise CommandLineError(f"--sizes: expected NAME=N pairs such as i=2,j=3, got {part.strip()!r}")
            if name in sizes and sizes[name] != int(value):
                raise CommandLineError(f"--sizes: index '{name}' is given sizes {sizes[name]} and {value}")
            sizes[name] = int(value)
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
    if not _numeric_literal(value):
        raise CommandLineError(f"cannot read {name}: {text!r} is not a number or nested lists of numbers")
    try:
        return np.array(value, dtype=np.float64)
    except ValueError:
        raise CommandLineError(f"cannot read {name}: {text!r} is ragged (rows of different lengths)") from None


def _load_npy(name: str, path: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except OSError as error:
        raise CommandLineError(f"cannot read {name} from '{path}': {error.strerror or error}") from None
    except ValueError as error:
        if "pickle" in str(error):
            raise CommandLineError(f"cannot read {name} from '{path}': it holds Python objects (a pickled array); "
                                   "einderiv reads numeric .npy files only and never unpickles") from None
        raise CommandLineError(f"cannot read {name} from '{path}': not a valid .npy file ({error})") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise CommandLineError(f"cannot read {name} from '{path}': an .npz archive, not a single .npy array")
    return array


def _load_text(name: str, path: str, rank: int) -> np.ndarray:
    if rank > 2:
        raise CommandLineError(f"cannot read {name} from '{path}': a text file holds at most 2 axes, "
                               f"but {name} has {rank}; use a .npy file")
    delimiter = "," if path.lower().endswith(".csv") else None
    try:
        return np.loadtxt(path, delimiter=delimiter, ndmin=rank, dtype=np.float64)
    except OSError as error:
        raise CommandLineError(f"cannot read {name} from '{path}': {error.strerror or error}") from None
    except ValueError as error:
        raise CommandLineError(f"cannot read {name} from '{path}': not a table of numbers ({error})") from None


def load_array(name: str, source: str, rank: int) -> np.ndarray:
    """An array from a ``.npy`` file, a ``.csv``/``.txt`` table, or an inline literal (data only).

    ``rank`` is the number of axes expected (a one-row CSV for a matrix stays 2-D).

    >>> load_array("W", "[[1, 2], [3, 4]]", 2).tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    """
    lowered = source.strip().lower()
    if lowered.endswith(".npy"):
        array = _load_npy(name, source.strip())
    elif lowered.endswith((".csv", ".txt")):
        array = _load_text(name, source.strip(), rank)
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

def _ancestors(program: Program, names: Sequence[str]) -> list[str]:
    return list(dependencies(program.statements, names))


def _needed_inputs(program: Program, of: str, wrts: Sequence[str] = ()) -> list[str]:
    ranks = dict(program.inputs)
    used = {of} | set(wrts)
    for name in _ancestors(program, [of]):
        used.update(ir.tensor_names(program.statement(name).rhs))
    return [n for n in ranks if n in used]


def infer_shapes(program: Program, given: Mapping[str, Shape], sizes: Mapping[str, int],
                 needed: Sequence[str]) -> dict[str, Shape]:
    """Shapes of the ``needed`` inputs from the given arrays' shapes and index sizes by name.

    An index takes its size from ``sizes`` or from any array it labels, within
    its statement; statements' shapes pass on to later statements. Conflicts are
    left to :func:`einderiv.semantics.resolve_sizes`, which names both sources.

    >>> p = parse("C[i,j] = A[i,k] B[k,j]")
    >>> infer_shapes(p, {"A": (1, 3)}, {"j": 2}, ["A", "B"])
    {'A': (1, 3), 'B': (3, 2)}
    """
    ranks = dict(program.inputs)
    shapes: dict[str, Shape] = {n: tuple(s) for n, s in given.items()}
    shapes.update({n: () for n, r in ranks.items() if r == 0 and n not in shapes})
    axes: dict[str, dict[int, int]] = {}
    changed = True
    while changed:
        changed = False
        for s in program.statements:
            roots = {r: sizes[ir.display_name(r)] for r in s.roots if ir.display_name(r) in sizes}
            for occ in s.occurrences:
                shape = shapes.get(occ.tensor)
                if shape is not None and occ.axis < len(shape):
                    roots.setdefault(occ.root, shape[occ.axis])
            for occ in s.occurrences:
                if occ.tensor in ranks and occ.tensor not in shapes and occ.root in roots:
                    axes.setdefault(occ.tensor, {}).setdefault(occ.axis, roots[occ.root])
            for name, known in axes.items():
                if name not in shapes and len(known) == ranks[name]:
                    shapes[name] = tuple(known[a] for a in range(ranks[name]))
                    changed = True
            if s.name not in shapes and all(r in roots for r in s.lhs):
                shapes[s.name] = tuple(roots[r] for r in s.lhs)
                changed = True
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
        if self.of not in self.program.names:
            return self.shapes[self.of]
        statements = tuple(self.program.statement(n) for n in _ancestors(self.program, [self.of]))
        _, shapes = resolve_sizes(statements, self.shapes, self.sizes)
        return shapes[self.of]


def _symmetric_inputs(args: argparse.Namespace, program: Program) -> tuple[str, ...]:
    """The inputs named by ``--symmetric`` (checked: matrix inputs of the program)."""
    from .symmetric import symmetric_names
    names = [n for item in getattr(args, "symmetric", []) for n in _split_names(item, "--symmetric")]
    return symmetric_names(program, names)


def _load_data(args: argparse.Namespace, program: Program, of: str, wrts: Sequence[str]) -> _Data:
    ranks = dict(program.inputs)
    sizes = parse_sizes(args.sizes)
    dtype = np.dtype(args.dtype)
    given: dict[str, np.ndarray] = {}
    for item in args.inputs:
        name, source = _assignment(item, "--input")
        if name not in ranks:
            where = "is defined by a statement" if name in program.names else "is not an input of the program"
            raise CommandLineError(f"--input {name}: '{name}' {where}; inputs: "
                                   f"{', '.join(ranks) or 'none'}")
        if name in given:
            raise CommandLineError(f"--input {name} is given twice")
        array = load_array(f"input '{name}'", source, ranks[name])
        if array.ndim != ranks[name]:
            raise ShapeError(f"input '{name}' has {array.ndim} ax{'is' if array.ndim == 1 else 'es'} "
                             f"(shape {array.shape}) but the program writes it with {ranks[name]} "
                             f"ind{'ex' if ranks[name] == 1 else 'ices'}")
        given[name] = array.astype(dtype)
    for w in wrts:
        if w in program.names:
            raise ProgramError(f"'{w}' is defined by a statement; differentiate with respect to an input "
                               f"({', '.join(ranks) or 'none'})")
        program.rank(w)
    needed = _needed_inputs(program, of, wrts)
    shapes = infer_shapes(program, {n: a.shape for n, a in given.items()}, sizes, needed)
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


def _blocks(section: _Section):
    """(index, sub-array) for each block of a section."""
    array = section.array
    if section.split == 0:
        yield (), array
        return
    for index in np.ndindex(*array.shape[:section.split]):
        yield index, array[index]


def _bare(section: _Section) -> bool:
    """A one-line section: consecutive ones print without a blank line between them."""
    return len(section.heading) == 1 and not section.meta and section.array is None


def _render_text(report: _Report, args: argparse.Namespace) -> str:
    threshold = 1000 if args.summarize else sys.maxsize
    out: list[str] = []
    with np.printoptions(precision=args.precision, suppress=True, threshold=threshold, linewidth=120):
        for k, section in enumerate(report.sections):
            lines = list(section.heading) + [f"{key}: {value}" for key, value in section.meta]
            if section.array is not None:
                if section.split == 0 and section.label is None:
                    lines.append(_array_text(section.array, report.symbolic))
                else:
                    for index, block in _blocks(section):
                        lines.append("")
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
    arrays = {s.json.get("wrt", s.json.get("name", f"array{k}")): s.array
              for k, s in enumerate(report.sections) if s.array is not None and not s.is_input}
    try:
        with open(args.output, "wb") as handle:
            if len(arrays) == 1:
                np.save(handle, next(iter(arrays.values())), allow_pickle=False)
            else:
                np.savez(handle, **arrays)
    except OSError as error:
        raise CommandLineError(f"cannot write '{args.output}': {error.strerror or error}") from None


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
        sections.append(_Section(_derivative_text(d, args), [to_latex(d)],
                                 json={"wrt": wrt, "derivative": d.to_text(ascii=args.ascii),
                                       "latex": to_latex(d)}))
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
    return f"{name}[{','.join(map(str, index))}]" if index else name


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


def _layout_text(layout: str, of: str, wrt: str, matrix: Shape, ascii: bool, scalar: bool = False) -> str:
    size = _times(matrix, ascii)
    if layout == "tensor" and scalar:
        return f"tensor: shaped like {wrt}, as {of} is a scalar"
    if layout == "tensor":
        return f"tensor: the output's axes first, then the input's; one block per entry of {of}"
    if layout == "numerator":
        return (f"numerator: a {size} matrix; row = entry of {of}, column = entry of {wrt}, "
                f"both in row-major order")
    if layout == "denominator":
        return (f"denominator: a {size} matrix, the numerator layout transposed; row = entry of {wrt}, "
                f"column = entry of {of}, both in row-major order")
    kron = "X^T kron I" if ascii else "Xᵀ ⊗ I"
    return (f"vec: a {size} matrix d vec({of})/d vec({wrt}); vec stacks columns (column-major) on both sides, "
            f"so F = W X gives {kron}")


def _check_jacobian_bytes(of: str, wrt: str, shape: Shape, data: _Data, limit: int) -> None:
    nbytes = math.prod(shape) * data.dtype.itemsize
    if nbytes > limit:
        raise ShapeError(f"the Jacobian d{of}/d{wrt} would have shape {shape} and take {nbytes:,} bytes, over "
                         f"--max-bytes {limit:,}; print a vector–Jacobian product with --upstream G=... "
                         f"instead, or raise --max-bytes")


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
        name = next(n for n in ("G", "U", "Gbar", "G_") if n not in taken)
        source = text
    array = load_array(f"the upstream gradient '{name}'", source, program.rank(of))
    expected = data.output_shape()
    if array.shape != expected:
        raise ShapeError(f"the upstream gradient '{name}' has shape {array.shape} but '{of}' has shape {expected}")
    return name, array.astype(data.dtype)


def _run_jacobian(args: argparse.Namespace) -> _Report:
    program, of = _load_program(args)
    wrts = _split_names(args.wrt, "--wrt")
    if args.symbolic and args.upstream:
        raise CommandLineError("--symbolic and --upstream cannot be combined")
    if args.upstream and args.layout != "tensor":
        raise CommandLineError("--layout applies to a Jacobian; with --upstream the result is shaped like the input")
    data = _load_data(args, program, of, wrts)
    out_shape = data.output_shape()
    upstream = _upstream(args, program, of, data) if args.upstream else None
    sections = _input_sections(data, args)
    for wrt in wrts:
        d = program.derivative(wrt, of)
        wrt_shape = data.shapes[wrt]
        if upstream is not None:
            name, G = upstream
            values = vjp(program, wrt, data.arrays, G, of=of, sizes=data.sizes, memory_limit=args.max_bytes,
                         symmetric=_symmetric_inputs(args, program))
            text, latex = _vjp_text(d, name, args.ascii)
            heading = [text]
            meta = [("shape", f"{wrt_shape} = shape({wrt})"),
                    ("layout", f"vector–Jacobian product: {name} (shaped like {of}) contracted with d{of}/d{wrt}"),
                    ("inputs", data.sources())]
            vjp_label = rf"{ref_to_latex(name, ())} \cdot \frac{{\partial {ref_to_latex(of, ())}}}" \
                        rf"{{\partial {ref_to_latex(wrt, ())}}}"
            sections.append(_Section(heading, [latex], meta, values, latex_label=lambda _, t=vjp_label: t,
                                     json={"wrt": wrt, "derivative": heading[0], "shape": list(wrt_shape),
                                           "layout": "vjp", "upstream": name}))
            continue
        shape = out_shape + wrt_shape
        _check_jacobian_bytes(of, wrt, shape, data, args.max_bytes)
        if data.symbolic:
            from .symbolic import symbolic_jacobian
            J = symbolic_jacobian(program, wrt, data.shapes, of=of, sizes=data.sizes, values=data.given)
        else:
            J = jacobian(program, wrt, data.arrays, of=of, sizes=data.sizes, memory_limit=args.max_bytes,
                         symmetric=_symmetric_inputs(args, program))
        values = flatten_jacobian(J, len(out_shape), args.layout)
        matrix = values.shape if args.layout != "tensor" else ()
        meta = [("shape", f"{shape} = shape({of}) + shape({wrt})" +
                 (f", printed as {_times(matrix, args.ascii)}" if matrix else "")),
                ("layout", _layout_text(args.layout, of, wrt, matrix, args.ascii, scalar=not out_shape)),
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
    return _Report("jacobian", sections, _common_json(data, "jacobian"), data.symbolic)


def _latex_block_label(of: str, wrt: str, tensor: bool) -> Callable[[tuple[int, ...]], str]:
    def label(index: tuple[int, ...]) -> str:
        top = ref_to_latex(of, tuple(map(str, index))) if tensor else ref_to_latex(of, ())
        return rf"\frac{{\partial {top}}}{{\partial {ref_to_latex(wrt, ())}}}"
    return label


def _run_grad(args: argparse.Namespace) -> _Report | None:
    program, of = _load_program(args)
    wrts = _split_names(args.wrt, "--wrt")
    if args.explain:
        table = adjoint(program, wrts, of)
        text = to_latex(table) if args.format == "latex" else str(table)
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
        from .symbolic import symbolic_jacobian
        results = {w: symbolic_jacobian(program, w, data.shapes, of=of, sizes=data.sizes, values=data.given)
                   for w in wrts}
    else:
        results = grad(program, list(wrts), data.arrays, of=of, sizes=data.sizes, memory_limit=args.max_bytes,
                       symmetric=_symmetric_inputs(args, program))
    for wrt in wrts:
        d = program.derivative(wrt, of)
        shape = data.shapes[wrt]
        meta = [("shape", f"{shape} = shape({wrt})")]
        if wrt in _symmetric_inputs(args, program):
            meta.append(("symmetric", f"{wrt} is symmetric: the values are sym(G) = (G + Gᵀ)/2 of the G printed"))
        sections.append(_Section(_derivative_text(d, args), [to_latex(d)], meta,
                                 np.asarray(results[wrt]),
                                 json={"wrt": wrt, "derivative": d.to_text(ascii=args.ascii), "shape": list(shape)}))
    return _Report("grad", sections, document, data.symbolic)


def _run_hessian(args: argparse.Namespace) -> _Report:
    program, of = _load_program(args)
    (wrt,) = _split_names(args.wrt, "--wrt")[:1]
    wrt2 = _split_names(args.wrt2, "--wrt2")[0] if args.wrt2 else wrt
    if program.rank(of) != 0:
        raise ShapeError(f"a Hessian needs a scalar output, but '{of}' has {program.rank(of)} "
                         f"ind{'ex' if program.rank(of) == 1 else 'ices'}")
    data = _load_data(args, program, of, (wrt, wrt2))
    if data.symbolic:
        raise CommandLineError("hessian has no --symbolic mode; use 'einderiv diff' for the index form")
    symbolic = symbolic_hessian(program, wrt, wrt2, of)
    values = hessian(program, wrt, data.arrays, wrt2=wrt2, of=of, sizes=data.sizes, memory_limit=args.max_bytes,
                     symmetric=_symmetric_inputs(args, program))
    shape = f"{values.shape} = shape({wrt}) + shape({wrt2})"
    meta = [("shape", shape), ("inputs", data.sources())]
    projected = [w for w in dict.fromkeys((wrt, wrt2)) if w in _symmetric_inputs(args, program)]
    if projected:
        meta.append(("symmetric", f"{', '.join(projected)} symmetric: the values are projected by "
                                  f"sym(G) = (G + Gᵀ)/2 on {'its' if len(projected) == 1 else 'their'} axes (P H P)"))
    section = _Section(symbolic.to_text(ascii=args.ascii).split("\n"), [to_latex(symbolic)],
                       meta, np.asarray(values),
                       json={"wrt": wrt, "wrt2": wrt2, "hessian": symbolic.to_text(ascii=args.ascii),
                             "shape": list(values.shape)})
    return _Report("hessian", _input_sections(data, args) + [section], _common_json(data, "hessian"))


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
            if not equals or not _IDENTIFIER.match(name) or not all(d.isdigit() for d in parts):
                raise CommandLineError(f"--shapes: expected NAME=AxB pairs such as W=2x3,b=3, got {part.strip()!r}")
            shapes[name] = tuple(int(d) for d in parts)
    return shapes


def _run_codegen(args: argparse.Namespace) -> None:
    program, of = _load_program(args)
    wrts = _split_names(args.wrt, "--wrt")
    text = codegen(program, wrts, of=of, shapes=_parse_shapes(args.shapes) or None,
                   sizes=parse_sizes(args.sizes) or None, hessian=args.hessian)
    args.format = "text"
    _emit(text, args, sys.stdout)
    return None


def _run_explain(args: argparse.Namespace) -> None:
    program, of = _load_program(args)
    wrts = _split_names(args.wrt, "--wrt")
    derivation = explain(program, wrts, of, differentials=args.differentials, sizes=parse_sizes(args.sizes) or None)
    text = to_latex(derivation) if args.format == "latex" else str(derivation)
    _emit(text.rstrip("\n") + "\n", args, sys.stdout)
    return None


def _run_eval(args: argparse.Namespace) -> _Report:
    program, of = _load_program(args)
    data = _load_data(args, program, of, ())
    if data.symbolic:
        from .symbolic import symbolic_value
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

def _render(report: _Report, args: argparse.Namespace) -> str | None:
    fmt = args.format
    if fmt == "npy":
        if not args.output:
            raise CommandLineError("--format npy writes binary data: give a file with --output FILE")
        _write_npy(report, args)
        return None
    if fmt == "json":
        return _render_json(report)
    if fmt == "latex":
        return _render_latex(report, args)
    return _render_text(report, args)


def _emit(text: str, args: argparse.Namespace, stdout: TextIO) -> None:
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as error:
            raise CommandLineError(f"cannot write '{args.output}': {error.strerror or error}") from None
    else:
        stdout.write(text)


def _warning_lines(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    lines = [f"{PROG}: warning: {w.message}" for w in caught]
    return list(dict.fromkeys(lines))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 for bad input).

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
    if args.command == "demo":
        return _demo()
    stdout, stderr = sys.stdout, sys.stderr
    error: str | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            report = args.run(args)
            text = None if report is None else _render(report, args)
            if text is not None:
                _emit(text, args, stdout)
        except BrokenPipeError:        # the reader went away (einderiv … | head): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
            return 1
        except (EinderivError, OSError) as exc:
            error = str(exc) or type(exc).__name__
    for line in _warning_lines(caught):
        print(line, file=stderr)
    if error is not None:
        print(f"{PROG}: error: {error}", file=stderr)
        return 2
    return 0
