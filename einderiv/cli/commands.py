"""The commands: each takes its parsed arguments and returns what it computed, a report object.

A command never prints: it returns a :class:`~einderiv.cli.reports.Report` (or a
finished :class:`~einderiv.cli.reports.Document`), and a format renders it. The
numeric and rendering layers are imported inside the commands that use them, so
``einderiv diff`` starts without loading the evaluator or opt_einsum.

>>> from einderiv.cli.parser import build_parser
>>> report = run_diff(build_parser().parse_args(["diff", "F[i,k] = W[i,j] X[j,k]", "--wrt", "W"]))
>>> report.sections[0].heading
('dF[i,k]/dW[a,b] = δ[i,a] X[b,k]',)
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import replace
from typing import Any

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from einderiv.calculus.program import Derivative, Program, ancestors, parse
from einderiv.cli.inputs import (IDENTIFIER, Data, check_bytes, converted, infer_shapes, load_array,
                                 load_data, needed_inputs, parse_shapes, program_sizes, read_program, split_names,
                                 symmetric_inputs)
from einderiv.cli.messages import CommandLineError
from einderiv.cli.reports import Document, Label, Report, Section
from einderiv.core import ir
from einderiv.errors import ShapeError
from einderiv.names import fresh

__all__ = ["run_diff", "run_jacobian", "run_grad", "run_eval", "run_hessian", "run_codegen", "run_plan",
           "run_explain", "run_demo", "flatten_jacobian", "LAYOUTS", "DEMO_PROGRAM", "DEMO_INPUTS"]

Shape = tuple[int, ...]

#: Jacobian layouts: the tensor itself, or one of three flattened matrices.
LAYOUTS = ("tensor", "numerator", "denominator", "vec")

DEMO_PROGRAM = "F[i,k] = W[i,j] X[j,k]"
DEMO_INPUTS = ("W=[[1,2,3],[4,5,6]]", "X=[[1,0],[0,1],[2,3]]")


def _load_program(args: argparse.Namespace) -> tuple[Program, str]:
    program = parse(read_program(args.program))
    return program, program.resolve_output(args.of)


def _derivative_text(d: Derivative, args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(d.to_text(ascii=args.ascii).split("\n"))


def _index_names(indices: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(ir.display_name(i) for i in indices)


# ---------------------------------------------------------------- diff

def run_diff(args: argparse.Namespace) -> Report:
    """``einderiv diff``: each derivative in index form (and its matrix form with ``--matrix``)."""
    from einderiv.render.latex import to_latex
    program, of = _load_program(args)
    sections = []
    for wrt in split_names(args.wrt, "--wrt"):
        d = program.derivative(wrt, of)
        document = {"wrt": wrt, "derivative": d.to_text(ascii=args.ascii), "latex": to_latex(d)}
        text = _derivative_text(d, args)
        latex: tuple[str, ...] = (to_latex(d),)
        if args.matrix:
            from einderiv.render.matrix import describe_matrix_form
            line = describe_matrix_form(d, program, ascii=args.ascii)
            text, document["matrix"] = text + (line,), line
            latex = latex + (f"% {line}",)
        sections.append(Section(text, latex, json=document))
    if args.matrix and sections:
        from einderiv.render.matrix import column_vector_notes
        notes = column_vector_notes(program, set(ancestors(program, of)), ascii=args.ascii)
        if notes:
            last = sections[-1]
            sections[-1] = replace(last, heading=last.heading + tuple(notes),
                                   latex=last.latex + tuple(f"% {note}" for note in notes),
                                   json={**last.json, "notes": list(notes)})
    return Report("diff", tuple(sections), {"command": "diff", "of": of})


# ---------------------------------------------------------------- shared by the numeric commands

def _common_json(data: Data, command: str) -> dict[str, Any]:
    return {"command": command, "of": data.of, "seed": data.seed,
            "inputs": {n: ("given" if n in data.given else "symbols" if data.symbolic else "random")
                       for n in data.shapes},
            "sizes": data.sizes, "dtype": data.dtype.name, "symbolic": data.symbolic}


def _input_sections(data: Data, args: argparse.Namespace) -> list[Section]:
    if not args.show_inputs or data.symbolic:
        return []
    from einderiv.render.latex import ref_to_latex
    sections = []
    for name, array in data.arrays.items():
        source = "given" if name in data.given else f"random, seed {data.seed}"
        sections.append(Section((f"{name} ({source}) =",), (f"% {name} ({source})",), array=array,
                                latex_label=_fixed_label(ref_to_latex(name, ())), json={"name": name},
                                is_input=True, title=name))
    return sections


def _local_note(program: Program, wrt: str, of: str) -> list[tuple[str, str]]:
    """A line saying that a derivative with respect to an intermediate is its local Jacobian."""
    if wrt not in program.names:
        return []
    return [("local", f"{wrt} is defined by a statement: this is the local Jacobian, with {wrt} treated as an "
                      f"input of the statements from it to {of}")]


# ---------------------------------------------------------------- jacobian

def _entry_label(name: str, index: tuple[int, ...]) -> str:
    """``C[1,2]``: an entry counted from 1, as the symbols of ``--symbolic`` are (a1, b12)."""
    return f"{name}[{','.join(str(i + 1) for i in index)}]" if index else name


def flatten_jacobian(J: np.ndarray, out_rank: int, layout: str) -> np.ndarray:
    """The Jacobian (output axes first) in a layout of :data:`LAYOUTS`.

    ``numerator``: rows are output entries and columns input entries, both in
    row-major order; ``denominator``: its transpose; ``vec``: rows and columns
    in column-major order, so that ``F = W X`` gives ``Xᵀ ⊗ I``.

    >>> import numpy as np
    >>> J = np.arange(6.0).reshape(1, 2, 3)
    >>> flatten_jacobian(J, 2, "numerator").shape
    (2, 3)
    >>> flatten_jacobian(J, 1, "vec").tolist()
    [[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]]
    """
    import numpy as np
    if layout == "tensor":
        return J
    out_shape, in_shape = J.shape[:out_rank], J.shape[out_rank:]
    rows, cols = math.prod(out_shape), math.prod(in_shape)
    if layout == "numerator":
        return J.reshape(rows, cols)
    if layout == "denominator":
        return np.transpose(J.reshape(rows, cols))
    if layout == "vec":
        order = tuple(reversed(range(out_rank))) + tuple(reversed(range(out_rank, J.ndim)))
        return np.transpose(J, order).reshape(rows, cols)
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


def _layout_axes(layout: str, of: str, wrt: str, d: Derivative) -> tuple[str, ...]:
    """What the axes of a Jacobian in ``layout`` hold: index names, or whose entries rows and columns are."""
    if layout == "tensor":
        return _index_names(d.out_indices) + _index_names(d.wrt_indices)
    return (wrt, of) if layout == "denominator" else (of, wrt)


def _kronecker_text(d: Derivative, ascii: bool) -> str | None:
    """The program's own ``d vec(F)/d vec(W)`` (``Xᵀ ⊗ I_i``), or None."""
    from einderiv.render.matrix import kronecker_matrix
    form = kronecker_matrix(d)
    return None if form is None else form.ascii if ascii else form.text


def _check_jacobian_bytes(of: str, wrt: str, shape: Shape, data: Data, limit: int) -> None:
    check_bytes(f"the Jacobian d{of}/d{wrt}", shape, data.dtype.itemsize, limit,
                "print a vector–Jacobian product with --upstream G=... instead")


def vjp_text(d: Derivative, upstream: str, ascii: bool) -> tuple[str, str]:
    """``G[i,k] dF[i,k]/dW[a,b] = G[a,k] X[b,k]``: the contraction, simplified; text and LaTeX.

    >>> d = parse("F[i,k] = W[i,j] X[j,k]").derivative("W")
    >>> vjp_text(d, "G", ascii=False)[0]
    'G[i,k] dF[i,k]/dW[a,b] = G[a,k] X[b,k]'
    """
    from einderiv.core.simplify import simplify
    from einderiv.language.printing import format_expr, format_ref
    from einderiv.render.latex import expr_to_latex, ref_to_latex
    names = {i: ir.display_name(i) for i in d.out_indices + d.wrt_indices}
    out_names = tuple(names[i] for i in d.out_indices)
    wrt_names = tuple(names[i] for i in d.wrt_indices)
    text = f"{format_ref(upstream, out_names)} {d.lhs_text()}"
    latex = (f"{ref_to_latex(upstream, out_names)} \\frac{{\\partial {ref_to_latex(d.of, out_names)}}}"
             f"{{\\partial {ref_to_latex(d.wrt, wrt_names)}}}")
    if d.chain:
        return text, latex
    from einderiv.calculus.program import definition_lines
    from einderiv.render.latex import to_latex
    expr = simplify(ir.summation(d.out_indices, ir.mul(ir.ref(upstream, d.out_indices), d.expr)))
    fixed = {i: names[i] for i in d.wrt_indices}
    before = definition_lines(d.definitions, ascii)     # the temporaries the line refers to, defined first
    before_latex = [to_latex(s) for s in d.definitions]
    return ("\n".join(before + [f"{text} = {format_expr(expr, fixed, ascii=ascii)}"]),
            "\n".join(before_latex + [f"{latex} = {expr_to_latex(expr, fixed)}"]))


def _upstream(args: argparse.Namespace, program: Program, of: str, data: Data) -> tuple[str, np.ndarray]:
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
    return name, converted(f"the upstream gradient '{name}'", array, data.dtype)


def _symbolic_upstream(args: argparse.Namespace, program: Program, of: str,
                       data: Data) -> tuple[str, np.ndarray | None]:
    """``--upstream G`` with ``--symbolic``: a bare name is a gradient of symbols (g1, g2, …); NAME=SOURCE numbers."""
    text = args.upstream.strip()
    if IDENTIFIER.match(text):
        taken = set(program.names) | set(dict(program.inputs))
        if text in taken:
            raise CommandLineError(f"--upstream: '{text}' is a tensor of the program; choose another name")
        return text, None
    return _upstream(args, program, of, data)


def _vjp_matrix(d: Derivative, upstream: str, ascii: bool) -> list[tuple[str, str]]:
    """``matrix: Aᵀ G``, the vector–Jacobian product in matrix notation, where it has one."""
    from einderiv.core.simplify import simplify
    from einderiv.render.matrix import to_matrix
    if d.chain:
        return []
    expr = simplify(ir.summation(d.out_indices, ir.mul(ir.ref(upstream, d.out_indices), d.expr)))
    form = to_matrix(expr, d.wrt_indices)
    if form is None:
        return []
    return [("matrix", f"{form.ascii if ascii else form.text}  (the gradient of {d.wrt} that backprop computes)")]


def _fixed_label(text: str) -> Label:
    """The label ``text`` for every block."""
    return lambda _: text


def _jacobian_block_label(of: str, wrt: str) -> Label:
    """``dF[1,2]/dW``: a Jacobian block named by its output entry."""
    return lambda index: f"d{_entry_label(of, index)}/d{wrt}"


def _latex_block_label(of: str, wrt: str, tensor: bool) -> Label:
    from einderiv.render.latex import ref_to_latex

    def label(index: tuple[int, ...]) -> str:
        top = ref_to_latex(of, tuple(str(i + 1) for i in index)) if tensor else ref_to_latex(of, ())
        return rf"\frac{{\partial {top}}}{{\partial {ref_to_latex(wrt, ())}}}"
    return label


def _vjp_section(args: argparse.Namespace, program: Program, data: Data, d: Derivative,
                 upstream: tuple[str, np.ndarray | None]) -> Section:
    """The vector–Jacobian product of ``--upstream`` with ``d``: numbers, or expressions with ``--symbolic``."""
    from einderiv.render.latex import ref_to_latex
    of, wrt = data.of, d.wrt
    wrt_shape = data.shape_of(wrt)
    name, G = upstream
    if data.symbolic:
        from einderiv.numeric.symbolic import symbolic_vjp
        given = {**data.given, **({name: G} if G is not None else {})}
        values = symbolic_vjp(program, wrt, {**data.shapes, wrt: wrt_shape, name: data.output_shape()}, name,
                              of=of, sizes=data.sizes, values=given)
    else:
        from einderiv.numeric.evaluation import vjp
        values = _numpy(vjp(program, wrt, _arrays(data.arrays, args), _arrays({"G": G}, args)["G"], of=of,
                            sizes=data.sizes, memory_limit=args.max_bytes, symmetric=symmetric_inputs(args, program)))
    text, latex = vjp_text(d, name, args.ascii)
    meta = (("shape", f"{wrt_shape} = shape({wrt})"),
            ("layout", f"vector–Jacobian product: {name} (shaped like {of}) contracted with d{of}/d{wrt}"),
            *_vjp_matrix(d, name, args.ascii),
            ("inputs", data.sources() + (f"; {name} symbols" if data.symbolic and G is None else "")))
    vjp_label = rf"{ref_to_latex(name, ())} \cdot \frac{{\partial {ref_to_latex(of, ())}}}" \
                rf"{{\partial {ref_to_latex(wrt, ())}}}"
    return Section((text,), (latex,), meta, values, latex_label=_fixed_label(vjp_label),
                   json={"wrt": wrt, "derivative": text, "shape": list(wrt_shape), "layout": "vjp", "upstream": name},
                   title=f"{name}·d{of}/d{wrt}", axes=_index_names(d.wrt_indices))


def _jacobian_section(args: argparse.Namespace, program: Program, data: Data, d: Derivative) -> Section:
    """The Jacobian ``d`` in numbers (or expressions), laid out as ``--layout`` asks."""
    from einderiv.render.latex import to_latex
    of, wrt = data.of, d.wrt
    out_shape, wrt_shape = data.output_shape(), data.shape_of(wrt)
    shape = out_shape + wrt_shape
    _check_jacobian_bytes(of, wrt, shape, data, args.max_bytes)
    if data.symbolic:
        from einderiv.numeric.symbolic import symbolic_jacobian
        J = symbolic_jacobian(program, wrt, {**data.shapes, wrt: wrt_shape}, of=of, sizes=data.sizes,
                              values=data.given)
    else:
        from einderiv.numeric.evaluation import jacobian
        J = _numpy(jacobian(program, wrt, _arrays(data.arrays, args), of=of, sizes=data.sizes,
                            memory_limit=args.max_bytes, symmetric=symmetric_inputs(args, program)))
    values = flatten_jacobian(J, len(out_shape), args.layout)
    matrix = values.shape if args.layout != "tensor" else ()
    meta = (("shape", f"{shape} = shape({of}) + shape({wrt})" +
             (f", printed as {_times(matrix, args.ascii)}" if matrix else "")),
            ("layout", _layout_text(args.layout, of, wrt, matrix, args.ascii, scalar=not out_shape,
                                    form=_kronecker_text(d, args.ascii) if args.layout == "vec" else None)),
            *_local_note(program, wrt, of),
            ("inputs", data.sources()))
    tensor = args.layout == "tensor"
    return Section(_derivative_text(d, args), (to_latex(d),), meta, values,
                   label=_jacobian_block_label(of, wrt) if tensor else None,
                   split=len(out_shape) if tensor else 0,
                   latex_label=_latex_block_label(of, wrt, tensor),
                   json={"wrt": wrt, "derivative": d.to_text(ascii=args.ascii), "shape": list(shape),
                         "layout": args.layout, "matrix_shape": list(matrix) or None},
                   title=f"d{of}/d{wrt}", axes=_layout_axes(args.layout, of, wrt, d))


def _arrays(arrays: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The inputs as arrays of ``--backend``'s library (a dask array's chunks within ``--max-bytes``)."""
    from einderiv.numeric.backend import to_library
    return to_library(arrays, getattr(args, "backend", "numpy"), args.max_bytes)


def _numpy(value: Any) -> Any:
    """A result of ``--backend``'s library as numpy, for the formats."""
    from einderiv.numeric.backend import to_numpy
    return to_numpy(value)


def _jacobians_to_zarr(args: argparse.Namespace, program: Program, of: str, wrts: list[str], data: Data) -> Document:
    """``--backend dask --zarr STORE``: each Jacobian written chunk by chunk (each chunk within ``--max-bytes``)
    into the store as the array named after its input, never held whole; one line per Jacobian."""
    from einderiv.numeric.evaluation import jacobian
    if args.backend != "dask" or args.upstream or args.symbolic or args.layout != "tensor":
        raise CommandLineError("--zarr writes tensor-layout Jacobians computed with --backend dask "
                               "(without --upstream, --symbolic or --layout)")
    arrays = _arrays(data.arrays, args)
    lines = []
    for wrt in wrts:
        J = jacobian(program, wrt, arrays, of=of, sizes=data.sizes, memory_limit=args.max_bytes,
                     symmetric=symmetric_inputs(args, program))
        try:
            J.to_zarr(args.zarr, component=wrt, overwrite=True)
        except ImportError:
            raise CommandLineError("--zarr needs zarr: pip install zarr") from None
        lines.append(f"d{of}/d{wrt}: shape {J.shape} in {J.npartitions} chunks of at most {args.max_bytes:,} bytes "
                     f"-> {args.zarr} (array '{wrt}')\n")
    return Document("jacobian", "".join(lines))


def run_jacobian(args: argparse.Namespace) -> Report | Document:
    """``einderiv jacobian``: the full Jacobian of each ``--wrt`` (or the VJP with ``--upstream``)."""
    import numpy as np
    program, of = _load_program(args)
    wrts = split_names(args.wrt, "--wrt")
    if args.upstream and args.layout != "tensor" and not args.symbolic:
        raise CommandLineError("--layout applies to a Jacobian; with --upstream the result is shaped like the input")
    data = load_data(args, program, of, wrts)
    if getattr(args, "zarr", None):
        return _jacobians_to_zarr(args, program, of, wrts, data)
    upstream: tuple[str, np.ndarray | None] | None = None
    if args.upstream and args.symbolic:
        upstream = _symbolic_upstream(args, program, of, data)
    elif args.upstream:
        upstream = _upstream(args, program, of, data)
    sections = _input_sections(data, args)
    for wrt in wrts:
        d = program.derivative(wrt, of)
        vjp_section = None if upstream is None else _vjp_section(args, program, data, d, upstream)
        if vjp_section is not None and not data.symbolic:
            sections.append(vjp_section)
            continue
        sections.append(_jacobian_section(args, program, data, d))
        if vjp_section is not None:        # symbolic: the Jacobian, then its product with the upstream gradient
            sections.append(vjp_section)
    return Report("jacobian", tuple(sections), _common_json(data, "jacobian"), data.symbolic)


# ---------------------------------------------------------------- grad

def run_grad(args: argparse.Namespace) -> Report | Document:
    """``einderiv grad``: the value and the gradients of a scalar output (the backprop equations with ``--explain``)."""
    import numpy as np
    from einderiv.render.latex import ref_to_latex, to_latex
    program, of = _load_program(args)
    wrts = split_names(args.wrt, "--wrt")
    if args.explain:
        from einderiv.render.adjoint import adjoint
        from einderiv.render.explanation import ascii_text
        table = adjoint(program, wrts, of)
        text = to_latex(table) if args.format == "latex" else ascii_text(str(table)) if args.ascii else str(table)
        return Document("grad", text.rstrip("\n") + "\n")
    if program.rank(of) != 0:
        raise ShapeError(f"grad needs a scalar output, but '{of}' has {program.rank(of)} "
                         f"ind{'ex' if program.rank(of) == 1 else 'ices'}; use 'einderiv jacobian' "
                         f"(with --upstream for a vector–Jacobian product)")
    from einderiv.cli.formats import format_number
    data = load_data(args, program, of, wrts)
    sections = _input_sections(data, args)
    document = _common_json(data, "grad")
    if not data.symbolic:
        from einderiv.numeric.evaluation import evaluate
        value = float(_numpy(evaluate(program, _arrays(data.arrays, args), of=of, sizes=data.sizes,
                                      memory_limit=args.max_bytes)))
        document["value"] = value
        sections.append(Section((f"{of} = {format_number(value, args.precision)}",),
                                (f"{ref_to_latex(of, ())} = {format_number(value, args.precision)}",),
                                (("inputs", data.sources()),)))
    else:
        sections.append(Section((f"inputs: {data.sources()}",), (f"% inputs: {data.sources()}",)))
    if data.symbolic:
        from einderiv.numeric.symbolic import symbolic_jacobian
        results = {w: symbolic_jacobian(program, w, {**data.shapes, w: data.shape_of(w)}, of=of, sizes=data.sizes,
                                        values=data.given)
                   for w in wrts}
    else:
        from einderiv.numeric.evaluation import grad
        results = _numpy(grad(program, list(wrts), _arrays(data.arrays, args), of=of, sizes=data.sizes,
                              memory_limit=args.max_bytes, symmetric=symmetric_inputs(args, program)))
    for wrt in wrts:
        d = program.derivative(wrt, of)
        shape = data.shape_of(wrt)
        meta = [("shape", f"{shape} = shape({wrt})"), *_local_note(program, wrt, of)]
        if wrt in symmetric_inputs(args, program):
            meta.append(("symmetric", f"{wrt} is symmetric: the values are sym(G) = (G + Gᵀ)/2 of the G printed"))
        sections.append(Section(_derivative_text(d, args), (to_latex(d),), tuple(meta), np.asarray(results[wrt]),
                                json={"wrt": wrt, "derivative": d.to_text(ascii=args.ascii), "shape": list(shape)},
                                title=f"d{of}/d{wrt}", axes=_index_names(d.wrt_indices)))
    return Report("grad", tuple(sections), document, data.symbolic)


# ---------------------------------------------------------------- hessian

def run_hessian(args: argparse.Namespace) -> Report:
    """Every block ``d²of / d w d v`` for ``w`` in ``--wrt`` and ``v`` in ``--wrt2`` (default: ``--wrt``)."""
    import numpy as np
    from einderiv.numeric.hessian import hessian, symbolic_hessian
    from einderiv.render.latex import to_latex
    program, of = _load_program(args)
    firsts = split_names(args.wrt, "--wrt")
    seconds = split_names(args.wrt2, "--wrt2") if args.wrt2 else firsts
    if program.rank(of) != 0:
        raise ShapeError(f"a Hessian needs a scalar output, but '{of}' has {program.rank(of)} "
                         f"ind{'ex' if program.rank(of) == 1 else 'ices'}")
    data = load_data(args, program, of, list(dict.fromkeys(firsts + seconds)))
    if data.symbolic:
        raise CommandLineError("hessian has no --symbolic mode; use 'einderiv diff' for the index form")
    pairs = [(w, v) for w in firsts for v in seconds]
    for wrt, wrt2 in pairs:
        check_bytes(f"the Hessian block d²{of}/d{wrt}d{wrt2}", data.shapes[wrt] + data.shapes[wrt2],
                    data.dtype.itemsize, args.max_bytes, "ask for fewer or smaller blocks with --wrt and --wrt2")
    symmetric = symmetric_inputs(args, program)
    sections = _input_sections(data, args)
    for wrt, wrt2 in pairs:
        symbolic = symbolic_hessian(program, wrt, wrt2, of)
        values = _numpy(hessian(program, wrt, _arrays(data.arrays, args), wrt2=wrt2, of=of, sizes=data.sizes,
                                memory_limit=args.max_bytes, symmetric=symmetric))
        meta = [("shape", f"{values.shape} = shape({wrt}) + shape({wrt2})"), ("inputs", data.sources())]
        projected = [w for w in dict.fromkeys((wrt, wrt2)) if w in symmetric]
        if projected:
            meta.append(("symmetric", f"{', '.join(projected)} symmetric: the values are projected by "
                                      f"sym(G) = (G + Gᵀ)/2 on {'its' if len(projected) == 1 else 'their'} axes (P H P)"))
        sections.append(Section(tuple(symbolic.to_text(ascii=args.ascii).split("\n")), (to_latex(symbolic),),
                                tuple(meta), np.asarray(values),
                                json={"wrt": wrt, "wrt2": wrt2, "hessian": symbolic.to_text(ascii=args.ascii),
                                      "shape": list(values.shape)},
                                key=wrt if len(pairs) == 1 else f"{wrt},{wrt2}", title=f"d²{of}/d{wrt}d{wrt2}"))
    return Report("hessian", tuple(sections), _common_json(data, "hessian"))


# ---------------------------------------------------------------- eval

def run_eval(args: argparse.Namespace) -> Report:
    """``einderiv eval``: the value of the output (or of ``--of``)."""
    import numpy as np
    from einderiv.render.latex import ref_to_latex, to_latex
    program, of = _load_program(args)
    data = load_data(args, program, of, ())
    check_bytes(f"the value of '{of}'", data.output_shape(), data.dtype.itemsize, args.max_bytes, "lower --sizes")
    if data.symbolic:
        from einderiv.numeric.symbolic import symbolic_value
        value = symbolic_value(program, data.shapes, of=of, sizes=data.sizes, values=data.given)
    else:
        from einderiv.numeric.evaluation import evaluate
        value = np.asarray(_numpy(evaluate(program, _arrays(data.arrays, args), of=of, sizes=data.sizes,
                                           memory_limit=args.max_bytes)))
    if of in program.names:
        s = program.statement(of)
        heading = s.source.strip()
        latex = to_latex(s)
    else:
        heading, latex = f"{of} (an input)", ref_to_latex(of, ())
    meta = (("shape", str(value.shape)), ("inputs", data.sources()))
    sections = _input_sections(data, args)
    sections.append(Section((heading,), (latex,), meta, value, latex_label=lambda _: ref_to_latex(of, ()),
                            json={"name": of, "shape": list(value.shape)}, title=of))
    return Report("eval", tuple(sections), _common_json(data, "eval"), data.symbolic)


# ---------------------------------------------------------------- the commands that print a finished text

def run_codegen(args: argparse.Namespace) -> Document:
    """``einderiv codegen``: a standalone Python module computing the value and gradients."""
    from einderiv.render.codegen import codegen
    program, of = _load_program(args)
    wrts = split_names(args.wrt, "--wrt")
    text = codegen(program, wrts, of=of, shapes=parse_shapes(args.shapes) or None,
                   sizes=program_sizes(args.sizes, program) or None, hessian=args.hessian)
    return Document("codegen", text)


def run_plan(args: argparse.Namespace) -> Document:
    """``einderiv plan``: the steps a gradient (or value) takes for inputs of given shapes; nothing is computed."""
    from einderiv.numeric.plan_report import plan
    program, of = _load_program(args)
    mode = args.mode or ("grad" if args.wrt else "value")
    if mode != "value" and not args.wrt:
        raise CommandLineError(f"--mode {mode} needs --wrt")
    wrts = split_names(args.wrt, "--wrt") if args.wrt and mode != "value" else None
    report = plan(program, wrts, parse_shapes(args.shapes), of=of, mode=mode,
                  sizes=program_sizes(args.sizes, program) or None, dtype=args.dtype, memory_limit=args.max_bytes)
    return Document("plan", str(report) + "\n")


def run_explain(args: argparse.Namespace) -> Document:
    """``einderiv explain``: a step-by-step derivation of the gradient, each step with its rule."""
    from einderiv.render.explanation import explain
    program, of = _load_program(args)
    wrts = split_names(args.wrt, "--wrt")
    sizes = program_sizes(args.sizes, program)
    shapes: dict[str, Any] = {}
    if sizes:       # every input's shape, inferred across statements as grad does
        shapes = dict(infer_shapes(program, {}, sizes, needed_inputs(program, of, wrts)))
    derivation = explain(program, wrts, of, differentials=args.differentials,
                         sizes={**sizes, **shapes} or None)
    if args.format == "latex":
        from einderiv.render.latex import to_latex
        text = to_latex(derivation)
    else:
        text = derivation.to_text(ascii=args.ascii)
    return Document("explain", text.rstrip("\n") + "\n")


def run_demo(args: argparse.Namespace) -> Document:
    """``einderiv demo``: derivatives of the built-in example in index form, then its full Jacobian
    with respect to W; each block is what the command above it prints."""
    from einderiv.cli.formats import Options, render
    from einderiv.cli.parser import build_parser
    inputs = [arg for literal in DEMO_INPUTS for arg in ("--input", literal)]
    parts = []
    for header, argv in (
            (f"# The built-in example {DEMO_PROGRAM}, W 2×3, X 3×2: each block is what the command above it "
             f"prints.\n\n$ einderiv diff \"{DEMO_PROGRAM}\" --wrt W,X\n", ["diff", DEMO_PROGRAM, "--wrt", "W,X"]),
            (f"\n$ einderiv jacobian \"{DEMO_PROGRAM}\" --wrt W " + " ".join(f'--input "{x}"' for x in DEMO_INPUTS)
             + "\n", ["jacobian", DEMO_PROGRAM, "--wrt", "W", *inputs])):
        shown = build_parser().parse_args(argv)
        rendered = render(shown.run(shown), Options.from_args(shown))
        parts += [header, rendered.text or ""]
    return Document("demo", "".join(parts))
