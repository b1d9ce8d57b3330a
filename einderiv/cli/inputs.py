"""What a command reads: the program, index sizes, input arrays (given or random), and their shapes.

Hostile input is bounded before anything is built: every array a command would
create (a random input, a result, an array read from a file) is sized first and
refused above ``--max-bytes``; program files are read up to
:data:`PROGRAM_MAX_BYTES`; ``.npy`` headers are checked before the data and
never unpickled (``allow_pickle=False``).

>>> parse_sizes(["i=2,j=3"])
{'i': 2, 'j': 3}
"""

from __future__ import annotations

import argparse
import io
import math
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence, TextIO

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from einderiv.calculus.program import Program, ancestors
from einderiv.cli.files import decode, open_regular, read_capped
from einderiv.cli.messages import CommandLineError, command_line_terms, first_line, shorten
from einderiv.core import ir
from einderiv.errors import MemoryLimitError, ShapeError, UnsupportedError
from einderiv.language.lowering import infer_shapes as lowering_shapes, resolve_sizes, written_names
from einderiv.language.printing import plural

__all__ = ["read_program", "parse_sizes", "parse_shapes", "load_array", "infer_shapes", "load_data", "Data",
           "DEFAULT_MAX_BYTES", "PROGRAM_MAX_BYTES", "MAX_SIZE"]

Shape = tuple[int, ...]

DEFAULT_MAX_BYTES = 64 * 1024 ** 2
#: The largest program file (or standard input) read, in bytes.
PROGRAM_MAX_BYTES = 10 * 1024 ** 2
#: The largest index size: numpy's axis lengths are signed machine integers.
MAX_SIZE = sys.maxsize      # numpy.intp's largest value (Py_ssize_t), without importing numpy
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
COUNT = re.compile(r"[0-9]+\Z")


def integer(digits: str, error: type[Exception] = CommandLineError) -> int:
    """``int(digits)`` for ASCII digits, refusing more digits than any size needs (and than ``int`` converts)."""
    digits = digits.strip()
    if len(digits) > 40:
        raise error(f"{shorten(digits, 24)} is too large ({len(digits):,} digits)")
    return int(digits)


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
            text = decode(read_capped(binary, limit, too_long("standard input")), "standard input")
        else:
            text = read_capped(stream, limit, too_long("standard input"))
        return _program_text(text)
    if source.startswith("@"):
        path = source[1:]
        handle, _ = open_regular(path, f"program file '{path}'")
        with handle:
            data = read_capped(handle, limit, too_long(f"program file '{path}'"))
        return _program_text(decode(data, f"program file '{path}'"))
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
            if not equals or not IDENTIFIER.match(name) or not COUNT.match(value):
                hint = "; separate pairs with commas, not spaces" if re.search(r"[0-9]\s+[A-Za-z_]", part) else ""
                raise CommandLineError(f"--sizes: expected NAME=N pairs such as i=2,j=3, got {part.strip()!r}{hint}")
            size = int(value) if len(value) <= 40 else MAX_SIZE + 1
            if size > MAX_SIZE:
                raise CommandLineError(f"--sizes {name}: {shorten(value, 24)} is too large; an array axis holds "
                                       f"at most {MAX_SIZE:,} entries")
            if name in sizes and sizes[name] != size:
                raise CommandLineError(f"--sizes: index '{name}' is given sizes {sizes[name]} and {value}")
            sizes[name] = size
    return sizes


def program_sizes(items: Sequence[str], program: Program) -> dict[str, int]:
    """``--sizes`` parsed, every name an index of the program (a typo guard)."""
    import difflib
    sizes = parse_sizes(items)
    indices = sorted({ir.display_name(r) for s in program.statements for r in s.roots})
    for name in sizes:
        if name not in indices:
            close = difflib.get_close_matches(name, indices, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise CommandLineError(f"--sizes {name}: the program has no index '{name}'; {hint}"
                                   f"its indices: {', '.join(indices) or 'none'}")
    return sizes


def split_names(text: str, option: str) -> list[str]:
    """``"W, b,W"`` → ``["W", "b"]``: names separated by commas, each once, checked.

    >>> split_names("W, b,W", "--wrt")
    ['W', 'b']
    """
    names = [n.strip() for n in text.split(",")]
    for name in names:
        if not IDENTIFIER.match(name):
            raise CommandLineError(f"{option}: expected names separated by commas, got {text!r}")
    return list(dict.fromkeys(names))


def _numeric_literal(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_numeric_literal(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_literal(name: str, text: str) -> np.ndarray:
    import numpy as np
    import ast
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
        raise CommandLineError(f"cannot read {name}: a number in {shorten(text)} is beyond the range of "
                               f"float64 (about ±1.8e308)")
    return array


def array_bytes(shape: Shape, itemsize: int) -> int:
    """The bytes an array of ``shape`` takes.

    >>> array_bytes((2, 3), 8)
    48
    """
    return math.prod(shape) * itemsize


def check_bytes(what: str, shape: Shape, itemsize: int, limit: int, hint: str = "") -> None:
    """Refuse a tensor of ``shape`` above ``--max-bytes`` before anything is allocated."""
    nbytes = array_bytes(shape, itemsize)
    if nbytes > limit:
        raise MemoryLimitError(f"{what} would have shape {shape} and take {nbytes:,} bytes, over --max-bytes "
                               f"{limit:,}; {hint + ', or ' if hint else ''}raise --max-bytes")


_NPY_MAGIC = b"\x93NUMPY"


def _load_npy(name: str, path: str, max_bytes: int) -> np.ndarray:
    """A numeric ``.npy`` array; the header is checked (dtype, size, the data that follows) before reading."""
    import numpy as np
    fmt = np.lib.format
    handle, size = open_regular(path, f"{name} from '{path}'")

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
            raise bad(f"its .npy header is damaged ({first_line(error)})") from None
        if any(not isinstance(n, int) or n < 0 for n in shape):
            raise bad(f"its .npy header is damaged (shape {shape})")
        if dtype.hasobject:
            raise bad("it holds Python objects (a pickled array); einderiv reads numeric .npy files only "
                      "and never unpickles")
        if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
            raise bad(f"it holds {dtype} values, not numbers")
        nbytes = array_bytes(shape, dtype.itemsize)
        check_bytes(f"{name} (from '{path}')", shape, max(dtype.itemsize, 8), max_bytes)
        follows = size - handle.tell()
        if follows < nbytes:
            raise bad(f"the file is truncated: its header declares shape {shape} ({nbytes:,} bytes of "
                      f"{dtype}) but only {follows:,} bytes of data follow")
        handle.seek(0)
        try:
            return fmt.read_array(handle, allow_pickle=False)
        except (ValueError, EOFError, OSError) as error:
            raise bad(f"not a valid .npy file ({first_line(error)})") from None


def _load_text(name: str, path: str, rank: int, max_bytes: int) -> np.ndarray:
    import numpy as np
    if rank > 2:
        raise CommandLineError(f"cannot read {name} from '{path}': a text file holds at most 2 axes, "
                               f"but {name} has {rank}; use a .npy file")
    handle, _ = open_regular(path, f"{name} from '{path}'")
    with handle:
        data = read_capped(handle, max_bytes, lambda: CommandLineError(
            f"cannot read {name} from '{path}': the file is larger than --max-bytes {max_bytes:,}; "
            f"use a .npy file, or raise --max-bytes"))
    text = decode(data, f"{name} ('{path}')")
    delimiter = "," if path.lower().endswith(".csv") else None
    ndmin: Literal[0, 1, 2] = 2 if rank == 2 else 1 if rank == 1 else 0
    try:
        return np.loadtxt(io.StringIO(text), delimiter=delimiter, ndmin=ndmin, dtype=np.float64)
    except (ValueError, OverflowError, IndexError) as error:
        raise CommandLineError(f"cannot read {name} from '{path}': not a table of numbers "
                               f"({first_line(error)})") from None


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
    if not equals or not IDENTIFIER.match(name):
        raise CommandLineError(f"{option}: expected NAME=SOURCE (SOURCE a .npy or .csv file or a literal "
                               f"such as [[1,2],[3,4]]), got {text!r}")
    return name, source


# ---------------------------------------------------------------- shapes and inputs


def needed_inputs(program: Program, of: str, wrts: Sequence[str] = ()) -> list[str]:
    """The inputs that ``of`` (and the ``wrts``) depend on, in the program's order of inputs."""
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

    >>> from einderiv.calculus.program import parse
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


@dataclass(frozen=True)
class Data:
    """A program with everything a numeric command needs."""

    program: Program
    of: str
    arrays: dict[str, np.ndarray]        # the needed inputs, given or random
    shapes: dict[str, Shape]
    sizes: dict[str, int]
    given: dict[str, np.ndarray]         # the inputs given with --input
    random: tuple[str, ...]              # the inputs drawn at random, in order
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
        """The shape of the output ``of``."""
        return self.shape_of(self.of)

    def shape_of(self, name: str) -> Shape:
        """The shape of an input or of a statement's tensor (an intermediate given with --wrt, say)."""
        if name not in self.program.names:
            return self.shapes[name]
        statements = tuple(self.program.statement(n) for n in ancestors(self.program, name))
        _, shapes = resolve_sizes(statements, self.shapes, self.sizes)
        return shapes[name]


def symmetric_inputs(args: argparse.Namespace, program: Program) -> tuple[str, ...]:
    """The inputs named by ``--symmetric`` (checked: matrix inputs of the program)."""
    from einderiv.numeric.symmetric import symmetric_names
    names = [n for item in getattr(args, "symmetric", []) for n in split_names(item, "--symmetric")]
    return symmetric_names(program, names)


def load_data(args: argparse.Namespace, program: Program, of: str, wrts: Sequence[str]) -> Data:
    """The arrays of a numeric command: ``--input`` ones read and checked, the others drawn at random."""
    import numpy as np
    ranks = dict(program.inputs)
    sizes = program_sizes(args.sizes, program)
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
            raise ShapeError(f"input '{name}' has {array.ndim} {plural(array.ndim, 'axis')} "
                             f"(shape {array.shape}) but the program writes it with {ranks[name]} "
                             f"{plural(ranks[name], 'index')}")
        given[name] = converted(f"input '{name}'", array, dtype)
    for w in wrts:
        program.rank(w)
    needed = needed_inputs(program, of, wrts)
    shapes = infer_shapes(program, {n: a.shape for n, a in given.items()}, sizes, needed)
    for name in needed:
        if name not in given:       # drawn in float64, then converted
            check_bytes(f"the random input '{name}'", shapes[name], 8, args.max_bytes,
                         "lower --sizes")
    rng = np.random.default_rng(args.seed)
    symbolic = getattr(args, "symbolic", False)
    symmetric = symmetric_inputs(args, program)
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
    data = Data(program, of, arrays, shapes, sizes, given, tuple(random), args.seed, symbolic, dtype)
    try:
        data.output_shape()
    except ShapeError as error:
        raise ShapeError(command_line_terms(str(error))) from None
    return data


def converted(what: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` as ``dtype``; finite numbers that overflow it are an error, not infinities."""
    import numpy as np
    with np.errstate(over="ignore", invalid="ignore"):
        converted = array.astype(dtype)
    overflowed = ~np.isfinite(converted)
    if overflowed.any() and np.isfinite(array[overflowed]).all():
        raise CommandLineError(f"{what} holds numbers beyond the range of {dtype} "
                               f"(about ±{float(np.finfo(dtype).max):.1e}); use --dtype float64")
    return converted


def parse_shapes(items: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``["W1=512x1024,b1=1024"]`` → ``{"W1": (512, 1024), "b1": (1024,)}``; ``s=`` is a scalar.

    >>> parse_shapes(["W=2x3,b=3,s="])
    {'W': (2, 3), 'b': (3,), 's': ()}
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        for part in item.split(","):
            name, equals, dims = (x.strip() for x in part.partition("="))
            parts = [d.strip() for d in dims.split("x")] if dims else []
            if not equals or not IDENTIFIER.match(name) or not all(COUNT.match(d) for d in parts):
                raise CommandLineError(f"--shapes: expected NAME=AxB pairs such as W=2x3,b=3, got {part.strip()!r}")
            try:
                shapes[name] = tuple(integer(d) for d in parts)
            except CommandLineError as error:
                raise CommandLineError(f"--shapes {name}: {error}") from None
    return shapes
