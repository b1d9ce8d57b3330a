"""The command line's grammar: one row per subcommand (name, help, arguments, handler), and argparse built from it.

Adding a subcommand is one row of :data:`COMMANDS`; argument groups shared by
several commands (the program, the data, the output) are tuples of
:class:`Argument` used in several rows.

>>> build_parser().parse_args(["diff", "y[i] = A[i,j] x[j]", "--wrt", "x"]).command
'diff'
>>> [command.name for command in COMMANDS][:4]
['diff', 'jacobian', 'grad', 'eval']
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NoReturn, Sequence

from einderiv.cli import commands
from einderiv.cli.inputs import COUNT, DEFAULT_MAX_BYTES, integer
from einderiv.cli.messages import shorten
from einderiv.cli.reports import Result

__all__ = ["PROG", "Argument", "Command", "COMMANDS", "EXAMPLES", "build_parser", "command_named", "command_formats"]

PROG = "einderiv"

DESCRIPTION = """Differentiate tensor programs written in Einstein index notation.

PROGRAM is the program text ("F[i,k] = W[i,j] X[j,k]"; statements separated by
newlines or ';'), @PATH to read it from a file, or - to read standard input."""


class _Parser(argparse.ArgumentParser):
    """argparse with errors in einderiv's one-line form, status 2."""

    def error(self, message: str) -> NoReturn:
        words = message.split()[2:] if message.startswith("unrecognized arguments:") else []
        if any(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=[0-9]+", word) and not (k and words[k - 1].startswith("-"))
               for k, word in enumerate(words)):
            message += "; separate --sizes pairs with commas, as in --sizes i=2,j=3"
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def _non_negative(text: str) -> int:
    if not COUNT.match(text.strip()):
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {shorten(text)}")
    return integer(text, argparse.ArgumentTypeError)


def _byte_count(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9]+)\s*([KMG]?)(i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid byte count {shorten(text)} (e.g. 67108864, 64MiB, 1GiB)")
    power = " KMG".index(match.group(2).upper() or " ")
    return integer(match.group(1), argparse.ArgumentTypeError) << (10 * power)   # × 1024 ** power


@dataclass(frozen=True)
class Argument:
    """One argument of a subcommand: what ``add_argument`` is called with."""

    flags: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)


def arg(*flags: str, **options: Any) -> Argument:
    """An :class:`Argument` written as ``add_argument`` would be called.

    >>> arg("--seed", type=int).flags
    ('--seed',)
    """
    return Argument(flags, options)


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one line of help, its arguments in help order, the handler that returns
    its report, and the examples printed under its help."""

    name: str
    help: str
    arguments: tuple[Argument, ...]
    handler: Callable[[argparse.Namespace], Result]
    examples: str


EXAMPLES = {
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
  einderiv grad @network.ein --wrt W1,b1,W2,b2 --explain
  einderiv grad "L = x[i] A[i,j] x[j]" --wrt A --sizes i=2 --format markdown""",
    "eval": """examples:
  einderiv eval "y[i] = A[i,j] x[j]" --input "A=[[1,2],[3,4]]" --input "x=[1,1]"
  einderiv eval "C[i,j] = A[i,k] B[k,j]" --sizes i=2,k=3,j=2 --seed 1 --format json
  einderiv eval "y[i] = A[i,j] x[j]" --sizes i=2,j=2 --symbolic""",
}

EXAMPLES["hessian"] = """examples:
  einderiv hessian "L = x[i] A[i,j] x[j]" --wrt x --sizes i=3
  einderiv hessian "R[n,j] = X[n,i] W[i,j] - Y[n,j]; L = R[n,j]^2" --wrt W --sizes n=4,i=2,j=2"""

EXAMPLES["codegen"] = """examples:
  einderiv codegen @network.ein --wrt W1,b1,W2,b2 --shapes X=4096x512,W1=512x1024,b1=1024,W2=1024x10,b2=10,T=4096x10,N=
  einderiv codegen "L = x[i] A[i,j] x[j]" --wrt x --hessian --output quadratic.py"""

EXAMPLES["explain"] = """examples:
  einderiv explain "F[i,k] = W[i,j] X[j,k]" --wrt W --differentials
  einderiv explain @network.ein --wrt W1,b1 --sizes n=4,d=3,h=5,c=2"""

EXAMPLES["plan"] = """examples:
  einderiv plan "L = A[i,j] B[j,k] C[k,l] D[l,i]" --wrt A,B,C,D --shapes A=50x60,B=60x70,C=70x80,D=80x50
  einderiv plan @network.ein --wrt W1,W2 --shapes X=4096x512,W1=512x1024,b1=1024,W2=1024x10,b2=10,T=4096x10,N=
  einderiv plan "y[i] = A[i,j] x[j]" --shapes A=1000x1000,x=1000 --mode value"""

EXAMPLES["demo"] = """examples:
  einderiv demo"""

PROGRAM_ARGUMENTS = (
    arg("program", metavar="PROGRAM", help="program text, @PATH, or - for standard input"),
    arg("--of", metavar="NAME", help="the statement whose value (eval) or derivative "
        "(the other commands) is asked for (default: the last statement)"),
    arg("--ascii", action="store_true", help="write delta(i,a) instead of δ[i,a]"),
)
PRECISION_AND_LIMIT = (
    arg("--dtype", choices=("float64", "float32"), default="float64",
        help="floating-point type of the inputs (default: float64)"),
    arg("--max-bytes", metavar="N", type=_byte_count, default=DEFAULT_MAX_BYTES,
        help="refuse to build a tensor larger than this (e.g. 64MiB, the default; 1GiB)"),
)
SIZES = arg("--sizes", metavar="i=N,…", action="append", default=[],
            help="index sizes by name, applying in every statement (repeatable)")
DATA_ARGUMENTS = (
    SIZES,
    arg("--input", metavar="NAME=SOURCE", action="append", default=[], dest="inputs",
        help="an input's value: NAME=file.npy, NAME=file.csv or an inline literal "
             "such as 'W=[[1,2],[3,4]]' (repeatable); inputs not given are random"),
    arg("--seed", type=_non_negative, default=0, metavar="N", help="seed of the random inputs (default: 0)"),
    *PRECISION_AND_LIMIT,
    arg("--backend", choices=("numpy", "torch", "jax", "dask"), default="numpy",
        help="array library that computes the numbers (default: numpy; torch, jax and dask need their extra: "
             "pip install 'einderiv[torch]'); dask computes chunk by chunk, each chunk within --max-bytes"),
    arg("--show-inputs", action="store_true", help="also print the input arrays used"),
    arg("--symmetric", metavar="S[,T…]", action="append", default=[],
        help="matrix inputs constrained to be symmetric: derivatives are sym(G) = (G + Gᵀ)/2, "
             "and random ones are drawn symmetric positive definite (repeatable)"),
)


def output_arguments(formats: tuple[str, ...]) -> tuple[Argument, ...]:
    """``--format`` (one of ``formats``, each a renderer of :data:`einderiv.cli.formats.FORMATS`), ``--output``
    and the options of printed numbers."""
    return (
        arg("--format", choices=formats, default="text", help="output format (default: text)"),
        arg("--output", metavar="FILE", help="write to FILE instead of standard output "
            "(required for npy)" if "npy" in formats else "write to FILE instead of standard output"),
        arg("--precision", type=_non_negative, default=4, metavar="N",
            help="digits after the decimal point (default: 4)"),
        arg("--summarize", action="store_true", help="elide the middle of large arrays"),
        arg("--full", action="store_true",
            help="print every entry even of a large result (text still limited by --max-bytes)"),
    )


NUMERIC_FORMATS = ("text", "json", "npy", "latex")
#: Jacobians and gradients also print as Markdown tables.
TABLE_FORMATS = (*NUMERIC_FORMATS, "markdown")
WRT = arg("--wrt", required=True, metavar="W[,V…]", help="input(s) to differentiate with respect to")
SYMBOLIC = arg("--symbolic", action="store_true",
               help="entries as SymPy expressions in the input entries (needs einderiv[symbolic])")
OUTPUT_FILE = arg("--output", metavar="FILE", help="write to FILE instead of standard output")


#: Every subcommand, in the order of ``einderiv --help``.
COMMANDS: tuple[Command, ...] = (
    Command("diff", "print symbolic derivatives in index form", (
        *PROGRAM_ARGUMENTS, *output_arguments(("text", "json", "latex")), WRT,
        arg("--matrix", action="store_true",
            help="also print the matrix form (A3ᵀ (A5 − R) W4ᵀ), the Kronecker form of a linear map "
                 "(d vec(F)/d vec(W) = Xᵀ ⊗ I_i), or why there is none"),
    ), commands.run_diff, EXAMPLES["diff"]),
    Command("jacobian", "print the full Jacobian tensor of an output with respect to an input", (
        *PROGRAM_ARGUMENTS, *DATA_ARGUMENTS, *output_arguments(TABLE_FORMATS), WRT,
        arg("--layout", choices=commands.LAYOUTS, default="tensor", help="how to lay the Jacobian out (see below)"),
        arg("--upstream", metavar="[NAME=]SOURCE",
            help="an upstream gradient shaped like the output: print the vector–Jacobian product "
                 "instead of the Jacobian (file or inline literal, as for --input)"),
        arg("--zarr", metavar="STORE", help="with --backend dask: write each Jacobian into the zarr store STORE "
            "(array named after the input) chunk by chunk, each chunk within --max-bytes, never held whole"),
        SYMBOLIC,
    ), commands.run_jacobian, EXAMPLES["jacobian"]),
    Command("grad", "print gradients of a scalar output", (
        *PROGRAM_ARGUMENTS, *DATA_ARGUMENTS, *output_arguments(TABLE_FORMATS), WRT, SYMBOLIC,
        arg("--explain", action="store_true",
            help="print the backprop equations (the adjoint program) with their matrix forms instead"),
    ), commands.run_grad, EXAMPLES["grad"]),
    Command("eval", "print the value of the output", (
        *PROGRAM_ARGUMENTS, *DATA_ARGUMENTS, *output_arguments(NUMERIC_FORMATS), SYMBOLIC,
    ), commands.run_eval, EXAMPLES["eval"]),
    Command("hessian", "print the Hessian of a scalar output: its index form and its values", (
        *PROGRAM_ARGUMENTS, *DATA_ARGUMENTS, *output_arguments(NUMERIC_FORMATS),
        arg("--wrt", required=True, metavar="W[,V…]",
            help="the input(s) of the first derivative; several give every block, mixed ones included"),
        arg("--wrt2", metavar="V[,U…]", help="the input(s) of the second derivative (default: --wrt)"),
    ), commands.run_hessian, EXAMPLES["hessian"]),
    Command("codegen", "print a standalone Python module computing the value and gradients", (
        *PROGRAM_ARGUMENTS, WRT,
        arg("--shapes", metavar="NAME=AxB,…", action="append", default=[],
            help="input shapes (e.g. W1=512x1024,b1=1024; N= for a scalar input): contraction paths "
                 "are then precomputed"),
        arg("--sizes", metavar="i=N,…", action="append", default=[],
            help="index sizes by name, for indices no input fixes"),
        arg("--hessian", action="store_true", help="also define hessian(**inputs)"),
        arg("--output", metavar="FILE", help="write the module to FILE instead of standard output"),
    ), commands.run_codegen, EXAMPLES["codegen"]),
    Command("plan", "print the steps a gradient (or value) will take for inputs of given shapes: what each "
                    "computes, its shape, bytes and FLOPs; nothing is computed", (
        *PROGRAM_ARGUMENTS,
        arg("--wrt", metavar="W[,V…]", help="input(s) of the gradient (omit with --mode value)"),
        arg("--shapes", metavar="NAME=AxB,…", action="append", default=[], required=True,
            help="input shapes (e.g. W1=512x1024,b1=1024; s= for a scalar)"),
        arg("--sizes", metavar="i=N,…", action="append", default=[],
            help="index sizes by name, for indices no input fixes"),
        arg("--mode", choices=("grad", "vjp", "jacobian", "value"),
            help="what to plan (default: grad with --wrt, else value)"),
        *PRECISION_AND_LIMIT, OUTPUT_FILE,
    ), commands.run_plan, EXAMPLES["plan"]),
    Command("explain", "print a step-by-step derivation of the gradient, each step with its rule", (
        *PROGRAM_ARGUMENTS, WRT,
        arg("--differentials", action="store_true",
            help="also show the differential (Frobenius product) view: dL = G : dF"),
        arg("--sizes", metavar="i=N,…", action="append", default=[],
            help="index sizes by name: the shape of every intermediate is printed beside it"),
        arg("--format", choices=("text", "latex"), default="text", help="output format (default: text)"),
        OUTPUT_FILE,
    ), commands.run_explain, EXAMPLES["explain"]),
    Command("demo", f"the built-in example: derivatives and the full Jacobian of {commands.DEMO_PROGRAM}", (),
            commands.run_demo, EXAMPLES["demo"]),
)


def command_named(argv: Sequence[str]) -> str | None:
    """The subcommand an argument list runs, if it names one (``einderiv`` has no option that takes a value).

    >>> command_named(["--version"]), command_named(["diff", "y = x", "--wrt", "x"]), command_named(["dif"])
    (None, 'diff', None)
    """
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if any(command.name == first for command in COMMANDS) else None


def command_formats(command: Command) -> tuple[str, ...]:
    """The output formats a subcommand offers (its ``--format`` choices; none without the option).

    >>> command_formats(COMMANDS[0])
    ('text', 'json', 'latex')
    """
    for argument in command.arguments:
        if "--format" in argument.flags:
            return tuple(argument.options["choices"])
    return ()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with a subparser per row of :data:`COMMANDS`; each sets ``run`` to its handler.

    With ``only``, the other subcommands are listed (for ``--help`` and for the
    message about an unknown command) but get no arguments: a run parses one
    command's arguments, so it needs to build only those.

    >>> build_parser().parse_args(["grad", "L = x[i] x[i]", "--wrt", "x"]).run.__name__
    'run_grad'
    >>> build_parser(only="eval").parse_args(["eval", "y = 1"]).command
    'eval'
    """
    from einderiv import __version__

    parser = _Parser(prog=PROG, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="examples (more with einderiv COMMAND --help):\n\n" +
                     "\n\n".join(text.split("\n", 1)[1].split("\n\n")[0] for text in EXAMPLES.values()))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help,
                                    epilog=command.examples, formatter_class=argparse.RawDescriptionHelpFormatter)
        for argument in command.arguments if only in (None, command.name) else ():
            sub.add_argument(*argument.flags, **argument.options)
        sub.set_defaults(run=command.handler)
    return parser
