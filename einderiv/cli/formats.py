"""Output formats: a registry of renderers, each turning a report into text (or, for npy, bytes).

Adding a format is one renderer and one row of :data:`FORMATS`; a command
names the formats it offers in its row of :data:`einderiv.cli.parser.COMMANDS`.
Renderers never write: they return a :class:`Rendered`, and the command line
writes it in one place (:func:`einderiv.cli.app.main`, through the atomic writer
for ``--output``).

Text above :data:`PRINT_THRESHOLD_BYTES`, or with more than
:data:`PRINT_THRESHOLD_ENTRIES` numbers, prints in summary in the formats that
summarise (text, markdown) unless ``--full``; every format's output is sized
first and refused above ``--max-bytes``.

>>> sorted(FORMATS)
['json', 'latex', 'markdown', 'npy', 'text']
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from dataclasses import dataclass
from typing import IO, Any, Callable, ContextManager, Iterator

from einderiv.cli.inputs import DEFAULT_MAX_BYTES
from einderiv.cli.messages import CommandLineError
from einderiv.cli.reports import Document, Report, Result, Section
from einderiv.errors import MemoryLimitError

__all__ = ["Options", "Rendered", "Format", "FORMATS", "render", "format_number",
           "PRINT_THRESHOLD_BYTES", "PRINT_THRESHOLD_ENTRIES", "SUMMARY_ENTRIES", "SUMMARY_BLOCKS"]

#: Text output estimated above this many bytes, or with more numbers than ``PRINT_THRESHOLD_ENTRIES``
#: (a 100×100 matrix: more is not read on a terminal), is summarised unless ``--full`` is given.
PRINT_THRESHOLD_BYTES = 1024 ** 2
PRINT_THRESHOLD_ENTRIES = 10_000
#: When a text result is summarised: entries per array, and blocks kept at each end of a Jacobian.
SUMMARY_ENTRIES = 1000
SUMMARY_BLOCKS = 3
#: When a Markdown table is summarised: rows and columns kept at each end (numpy's edge items).
SUMMARY_EDGE = 3


@dataclass(frozen=True)
class Options:
    """What the output options of a command ask for."""

    format: str = "text"
    precision: int = 4
    summarize: bool = False
    full: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    output: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Options":
        """The options of parsed arguments; a command without an option takes its default."""
        return cls(getattr(args, "format", "text"), getattr(args, "precision", 4), getattr(args, "summarize", False),
                   getattr(args, "full", False), getattr(args, "max_bytes", DEFAULT_MAX_BYTES),
                   getattr(args, "output", None))


@dataclass(frozen=True)
class Rendered:
    """A rendered result: ``text`` to print, or ``write`` to call on a binary file; a ``note`` for standard error."""

    text: str | None = None
    write: Callable[[IO[bytes]], Any] | None = None
    note: str | None = None


@dataclass(frozen=True)
class Format:
    """An output format: its renderer, and whether large results print in summary."""

    name: str
    render: Callable[[Report, Options, bool], Rendered]
    summarises: bool = False
    width: int = 0                 # estimated characters per number beyond the digits (0: the fixed JSON width)


def format_number(value: float, precision: int) -> str:
    """``value`` with at most ``precision`` digits after the point, trailing zeros dropped.

    >>> format_number(0.5, 4), format_number(2.0, 4), format_number(1 / 3, 2)
    ('0.5', '2', '0.33')
    """
    import numpy as np
    return np.format_float_positional(float(value), precision=precision, unique=True, trim="-")


# ---------------------------------------------------------------- sizing and summaries

def blocks(section: Section, split: int, summarise: bool = False) -> Iterator[tuple[Any, Any]]:
    """(index, sub-array) for each block over the first ``split`` axes; summarised: the first and
    last few, and ``(None, count)`` in place of the ones left out."""
    import numpy as np
    array = section.array
    if split == 0:
        yield (), array
        return
    leading = array.shape[:split]
    count = math.prod(leading)
    if summarise and count > 2 * SUMMARY_BLOCKS:
        positions: list[int | None] = [*range(SUMMARY_BLOCKS), None, *range(count - SUMMARY_BLOCKS, count)]
    else:
        positions = list(range(count))
    for position in positions:
        if position is None:
            yield None, count - 2 * SUMMARY_BLOCKS
            continue
        index = tuple(int(i) for i in np.unravel_index(position, leading))
        yield index, array[index]


def estimated_bytes(report: Report, fmt: str, precision: int) -> int:
    """An upper estimate of the size of the printed output, from the array sizes alone (nothing is formatted)."""
    if report.symbolic:
        width = 64
    elif fmt == "json":
        width = 26                            # repr of a float64 and ", "
    else:
        width = min(precision, 17) + 14 + FORMATS[fmt].width     # sign, digits, point, exponent, separators
    total = 0
    for section in report.sections:
        total += sum(len(line) + 1 for line in section.heading + section.latex)
        total += sum(len(key) + len(value) + 3 for key, value in section.meta)
        if section.array is not None:
            total += section.array.size * width
            total += math.prod(section.array.shape[:section.split]) * 48     # block labels
    return total


def _output_plan(report: Report, options: Options) -> tuple[bool, str | None]:
    """Whether to summarise the text, and the note that says so; refuses output over ``--max-bytes``."""
    fmt, limit, asked = options.format, options.max_bytes, options.summarize
    estimate = estimated_bytes(report, fmt, options.precision)
    large = estimate > PRINT_THRESHOLD_BYTES or report.entries() > PRINT_THRESHOLD_ENTRIES
    summarise = FORMATS[fmt].summarises and (asked or (large and not options.full))
    if not summarise and estimate > limit:
        raise MemoryLimitError(f"the {fmt} output would take about {estimate:,} bytes "
                               f"({report.entries():,} numbers), over --max-bytes {limit:,}; save the "
                               f"numbers with --format npy --output FILE, or raise --max-bytes")
    if summarise and not asked:
        return True, (f"the result has {report.entries():,} numbers (about {estimate:,} bytes of text): "
                      f"printed in summary; --full prints every one, --format npy --output FILE saves them")
    return summarise, None


def render(result: Result, options: Options) -> Rendered:
    """``result`` in the format ``options.format`` (a document prints as it is)."""
    if isinstance(result, Document):
        return Rendered(text=result.text)
    fmt = FORMATS[options.format]
    if options.format == "npy":
        return fmt.render(result, options, False)
    summarise, note = _output_plan(result, options)
    rendered = fmt.render(result, options, summarise)
    return Rendered(rendered.text, rendered.write, note)


# ---------------------------------------------------------------- text

def _array_text(array: Any, symbolic: bool) -> str:
    import numpy as np
    if symbolic:
        return np.array2string(np.asarray(array, dtype=object), formatter={"all": str}, separator=", ")
    return np.array2string(np.asarray(array))


def _array_printing(report: Report, precision: int, threshold: int) -> ContextManager[object]:
    """numpy's print options for a report with arrays; nothing (and no numpy import) for one of formulas only."""
    if all(section.array is None for section in report.sections):
        return contextlib.nullcontext()
    import numpy as np
    return np.printoptions(precision=precision, suppress=True, threshold=threshold, linewidth=120)


def render_text(report: Report, options: Options, summarise: bool = False) -> Rendered:
    """Plain text: headings, ``key: value`` lines and numpy's printing of each array (a block per label)."""
    threshold = SUMMARY_ENTRIES if summarise else sys.maxsize
    out: list[str] = []
    with _array_printing(report, options.precision, threshold):
        for k, section in enumerate(report.sections):
            lines = list(section.heading) + [f"{key}: {value}" for key, value in section.meta]
            if section.array is not None:
                label = section.label
                if label is None:   # no blocks (a section split in blocks names them)
                    lines.append(_array_text(section.array, report.symbolic))
                else:
                    for index, block in blocks(section, section.split, summarise):
                        lines.append("")
                        if index is None:
                            lines.append(f"… {block:,} more blocks …")
                            continue
                        lines.append(f"{label(index)} =")
                        lines.append(_array_text(block, report.symbolic))
            if k and not (section.bare() and report.sections[k - 1].bare()):
                out.append("")
            out.extend(lines)
    return Rendered("\n".join(out) + "\n")


# ---------------------------------------------------------------- LaTeX

def _array_latex(array: Any, symbolic: bool, precision: int) -> str:
    import numpy as np
    from einderiv.render.latex import matrix_to_latex

    def entry(x: Any) -> str:
        if symbolic:
            import sympy
            return str(sympy.latex(x))
        return format_number(x, precision)
    array = np.asarray(array, dtype=object if symbolic else None)
    if array.ndim == 0:
        return entry(array[()])
    if array.ndim == 1:
        return matrix_to_latex([[entry(x) for x in array]])
    if array.ndim == 2:
        return matrix_to_latex([[entry(x) for x in row] for row in array])
    raise CommandLineError(f"LaTeX shows matrices, but this block has {array.ndim} axes (shape {array.shape}); "
                           "use --layout numerator, denominator or vec for a flattened matrix")


def render_latex(report: Report, options: Options, summarise: bool = False) -> Rendered:
    """LaTeX: each result's formula, ``%`` comments for its facts, and a matrix per block."""
    out: list[str] = []
    for k, section in enumerate(report.sections):
        if k:
            out.append("")
        out.extend(section.latex)
        out.extend(f"% {key}: {value}" for key, value in section.meta)
        if section.array is None:
            continue
        for index, block in blocks(section, section.split):
            body = _array_latex(block, report.symbolic, options.precision)
            label = section.latex_label(index) if section.latex_label else None
            out.append(f"{label} = {body}" if label else body)
    return Rendered("\n".join(out) + "\n")


# ---------------------------------------------------------------- JSON

def _json_values(array: Any, symbolic: bool) -> Any:
    import numpy as np
    if symbolic:
        return np.vectorize(str, otypes=[object])(np.asarray(array, dtype=object)).tolist()
    values = np.asarray(array, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all():
        return values.tolist()
    entries = values.astype(object)
    entries[~finite] = None   # JSON has no NaN or infinity: null
    return entries.tolist()


def render_json(report: Report, options: Options, summarise: bool = False) -> Rendered:
    """One object; its keys one per line, each result one line (arrays as nested lists, NaN as null)."""
    import json
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
    return Rendered("{\n" + "\n".join(lines) + "\n}\n")


# ---------------------------------------------------------------- npy

def render_npy(report: Report, options: Options, summarise: bool = False) -> Rendered:
    """The numbers as ``.npy`` (one result) or ``.npz`` (several, by name): a writer for the binary file."""
    import numpy as np
    if not options.output:
        raise CommandLineError("--format npy writes binary data: give a file with --output FILE")
    if report.symbolic:
        raise CommandLineError("npy holds numbers, but --symbolic entries are expressions; "
                               "use --format text, json or latex")
    arrays = {s.key or s.json.get("wrt", s.json.get("name", f"array{k}")): s.array
              for k, s in enumerate(report.sections) if s.array is not None and not s.is_input}
    if len(arrays) == 1 and not options.output.endswith(".npz"):
        only = next(iter(arrays.values()))
        return Rendered(write=lambda handle: np.save(handle, only, allow_pickle=False))
    if options.output.endswith(".npz"):
        return Rendered(write=lambda handle: np.savez(handle, **arrays))
    raise CommandLineError(f"there are {len(arrays)} results ({', '.join(arrays)}): name an .npz file "
                           f"(--output {os.path.splitext(options.output)[0]}.npz) to save them together, "
                           f"or ask for one at a time")


# ---------------------------------------------------------------- Markdown

_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_|<"})


def markdown_escaped(text: str) -> str:
    """``text`` with the characters Markdown would read as markup escaped.

    >>> print(markdown_escaped("dL/dW_1[a,b] = |x|"))
    dL/dW\\_1[a,b] = \\|x\\|
    """
    return text.translate(_MARKDOWN_SPECIAL)


def _kept(count: int, summarise: bool) -> list[int | None]:
    """Positions along an axis of ``count``; summarised: the first and last few, ``None`` for the gap."""
    if summarise and count > 2 * SUMMARY_EDGE:
        return [*range(SUMMARY_EDGE), None, *range(count - SUMMARY_EDGE, count)]
    return list(range(count))


def markdown_table(matrix: Any, corner: str, entry: Callable[[Any], str], summarise: bool = False,
                   column: str = "") -> list[str]:
    """A matrix as a Markdown table: column numbers on top, row numbers on the left (counted from 1).

    A vector is one column, headed ``column``. Summarised, a table of more than :data:`SUMMARY_ENTRIES`
    entries keeps its first and last rows and columns, ``…`` in place of the others.

    >>> import numpy as np
    >>> print("\\n".join(markdown_table(np.array([[1.0, 2.0], [3.0, 4.5]]), "i \\\\ j", str)))
    | i \\ j | 1 | 2 |
    |---|--:|--:|
    | 1 | 1.0 | 2.0 |
    | 2 | 3.0 | 4.5 |
    """
    import numpy as np
    matrix = np.asarray(matrix, dtype=object)
    vector = matrix.ndim == 1
    if vector:
        matrix = matrix.reshape(-1, 1)
    elide = summarise and matrix.size > SUMMARY_ENTRIES
    rows, columns = _kept(matrix.shape[0], elide), _kept(matrix.shape[1], elide)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    header = [column] if vector else ["…" if c is None else str(c + 1) for c in columns]
    out = [line([corner] + header),
           "|---|" + "--:|" * len(columns)]
    for r in rows:
        if r is None:
            out.append(line(["…"] * (len(columns) + 1)))
            continue
        out.append(line([str(r + 1)] + ["…" if c is None else markdown_escaped(entry(matrix[r, c]))
                                        for c in columns]))
    return out


def _markdown_label(section: Section, index: tuple[int, ...], table_rank: int) -> str:
    """The name of one table of a section: ``dF[1,2]/dW`` (a Jacobian block), ``dL/dW[3,:,:]`` (a slice)."""
    rest = ",".join([*(str(i + 1) for i in index[section.split:]), *([":"] * table_rank)])
    if section.label is not None and len(index) >= section.split:
        head = section.label(index[:section.split])
        return f"{head}[{rest}]" if len(index) > section.split else head
    where = ",".join([*(str(i + 1) for i in index), *([":"] * table_rank)])
    return f"{section.title or 'value'}[{where}]"


def _markdown_array(section: Section, symbolic: bool, precision: int, summarise: bool) -> list[str]:
    import numpy as np
    array = np.asarray(section.array, dtype=object if symbolic else None)
    table_rank = min(array.ndim, 2)
    leading = array.ndim - table_rank

    def entry(x: Any) -> str:
        return str(x) if symbolic else format_number(x, precision)

    if array.ndim == 0:
        return ["| " + markdown_escaped(section.title or "value") + " |", "|--:|",
                "| " + markdown_escaped(entry(array[()])) + " |"]
    axes = section.axes[leading:] if len(section.axes) == array.ndim else ()
    corner = " \\ ".join(markdown_escaped(axis) for axis in axes)
    column = markdown_escaped(section.title or "value")
    out: list[str] = []
    for index, block in blocks(section, leading, summarise):
        if index is None:
            out += ["", f"… {block:,} more tables …"]
            continue
        if leading:
            out += ["", f"**{markdown_escaped(_markdown_label(section, index, table_rank))}**"]
        out += [""] + markdown_table(block, corner, entry, summarise, column)
    return out


def render_markdown(report: Report, options: Options, summarise: bool = False) -> Rendered:
    """Markdown: each heading in a code block, its facts as a list, each matrix a table (a table per
    leading index of a higher-rank array, as the text format prints a block per entry)."""
    out: list[str] = []
    for section in report.sections:
        if out:
            out.append("")
        out += ["```", *section.heading, "```"]
        if section.meta:
            out += [""] + [f"- {key}: {markdown_escaped(value)}" for key, value in section.meta]
        if section.array is not None:
            out += _markdown_array(section, report.symbolic, options.precision, summarise)
    return Rendered("\n".join(out) + "\n")


#: Every output format by name; a command offers the ones its row of the command table lists.
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("text", render_text, summarises=True),
    Format("json", render_json),
    Format("npy", render_npy),
    Format("latex", render_latex),
    Format("markdown", render_markdown, summarises=True, width=3),
)}
