r"""The three ways to write a matrix expression — Unicode text, ASCII and LaTeX — from one walk.

A :class:`Style` says how one style spells each construct (``Xᵀ``, ``X^T``,
``X^\top``); :func:`render` walks the nodes once, for any style, and adds the
parentheses that precedence asks for. How a function is named (``σ``, ``\tanh``) is the
function registry's (:func:`function_symbol`).

>>> from einderiv.render.matrix.nodes import Tensor, Transpose, product
>>> form = product("i", "k", [Transpose("i", "j", Tensor("j", "i", "A", 2)), Tensor("j", "k", "G", 2)])
>>> [render(form, style) for style in (TEXT, ASCII, LATEX)]
['Aᵀ G', 'A^T G', 'A^\\top G']
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping

from einderiv.core import ir
from einderiv.core.functions import FUNCTIONS
from einderiv.language.printing import format_number
from einderiv.render.latex import ref_to_latex
from einderiv.render.matrix.nodes import (Const, Diag, DiagOf, Frobenius, Func, Hadamard, HPower, Identity, Kron,
                                          MatrixFn, Node, Norm2, Ones, Product, SizeOf, Sum, Tensor, TermNode,
                                          Trace, Transpose, VecDiag)

__all__ = ["function_symbol", "relations", "Style", "TEXT", "ASCII", "LATEX", "STYLES", "PROD", "render", "wrap"]

def function_symbol(fn: str, style: str) -> str:
    """How the matrix form's ``style`` ("text", "ascii" or "latex") names the elementwise function ``fn``:
    the registration's :class:`~einderiv.core.functions.Notation`; a derivative ``f'`` is primed (``σ'``)."""
    base = fn.rstrip("'")
    symbol: str = getattr(FUNCTIONS[base].matrix, style)
    return symbol + fn[len(base):]


def relations(style: str) -> dict[str, str]:
    """The comparisons' operators in ``style``: ``{"gt": ">", "ge": "≥", ...}`` (from the registry)."""
    return {f.name: getattr(f.matrix, style) for f in FUNCTIONS.values() if f.matrix and f.matrix.relation}


@dataclass(frozen=True)
class Style:
    """How one style spells each construct of a matrix expression."""

    name: str
    transpose: str                                  # the mark after a transposed operand
    inverse: tuple[str, str]                        # the marks of A⁻¹ and A⁻ᵀ
    hadamard: str
    minus: str                                      # between terms
    leading_minus: str                              # before a first, negative term
    kron: Callable[[str, str], str]
    frac: Callable[[str, str], str]
    stacked_fractions: bool                         # numerator and denominator need no parentheses
    paren: Callable[[str], str]
    tensor: Callable[[str], str]
    ones: str
    identity: Callable[[str], str]
    trace: Callable[[str], str]
    diag: Callable[[str], str]
    vecdiag: Callable[[str], str]
    norm: Callable[[str, bool], str]                # (operand, whether it is a matrix)
    power: Callable[[str, str, bool], str]          # (base, exponent, whether a scalar)
    half: str | None                                # ½ X rather than X / 2 (None: always a fraction)
    size: Callable[[str], str]
    call: Callable[[str, str], str]                 # (function symbol, arguments)
    matrix_function: Callable[[str, str], str]      # (det or logdet, argument)
    indicator: Callable[[str, str, str], str]
    compare: Mapping[str, str]


_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_FLIPPED = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}


def _latex_name(name: str) -> str:
    """Tensor names as the index-form LaTeX writes them (``\\mathrm{W1}``)."""
    return ref_to_latex(name, ())


def _text_power(base: str, p: str, scalar: bool) -> str:
    if scalar and p.lstrip("-").isdigit():
        return f"{base}{p.translate(_SUPERSCRIPTS)}"
    return f"{base}^{p}" if scalar else f"{base}^∘{p}"


def _plain_identity(label: str) -> str:
    return f"I_{label}" if label else "I"


TEXT = Style(
    name="text", transpose="ᵀ", inverse=("⁻¹", "⁻ᵀ"), hadamard=" ⊙ ", minus=" − ", leading_minus="−",
    kron=lambda a, b: f"{a} ⊗ {b}", frac=lambda n, d: f"{n} / {d}", stacked_fractions=False,
    paren=lambda x: f"({x})", tensor=lambda n: n, ones="1", identity=_plain_identity,
    trace=lambda x: f"tr({x})", diag=lambda x: f"diag({x})", vecdiag=lambda x: f"diag(vec({x}))",
    norm=lambda x, f: f"‖{x}‖_F²" if f else f"‖{x}‖²", power=_text_power, half="½",
    size=lambda i: f"size({i})", call=lambda fn, args: f"{fn}({args})",
    matrix_function=lambda fn, x: f"{'det' if fn == 'det' else 'log det'}({x})",
    indicator=lambda a, op, b: f"[{a} {op} {b}]", compare=relations("text"))

ASCII = replace(   # the text style, spelled in ASCII
    TEXT, name="ascii", transpose="^T", inverse=("^-1", "^-T"), hadamard=" .* ", minus=" - ", leading_minus="-",
    kron=lambda a, b: f"kron({a}, {b})", norm=lambda x, f: f"||{x}||_F^2" if f else f"||{x}||^2",
    power=lambda b, p, scalar: f"{b}^{p}" if scalar else f"{b}.^{p}", half=None,
    compare=relations("ascii"))

LATEX = Style(
    name="latex", transpose=r"^\top", inverse=("^{-1}", "^{-T}"), hadamard=r" \odot ", minus=" - ",
    leading_minus="-", kron=lambda a, b: rf"{a} \otimes {b}", frac=lambda n, d: rf"\frac{{{n}}}{{{d}}}",
    stacked_fractions=True, paren=lambda x: rf"\left({x}\right)", tensor=_latex_name, ones=r"\mathbf{1}",
    identity=lambda label: rf"I_{{{label}}}" if label else "I",
    trace=lambda x: rf"\operatorname{{tr}}\left({x}\right)", diag=lambda x: rf"\operatorname{{diag}}\left({x}\right)",
    vecdiag=lambda x: rf"\operatorname{{diag}}\left(\operatorname{{vec}}\left({x}\right)\right)",
    norm=lambda x, f: rf"\left\lVert {x} \right\rVert_F^2" if f else rf"\left\lVert {x} \right\rVert^2",
    power=lambda b, p, scalar: f"{b}^{{{p}}}" if scalar else rf"{b}^{{\circ {p}}}", half=None,
    size=lambda i: rf"\lvert {i} \rvert",
    call=lambda fn, args: rf"{fn}\left({args}\right)",
    matrix_function=lambda fn, x: (r"\det" if fn == "det" else r"\log\det") + rf"\left({x}\right)",
    indicator=lambda a, op, b: rf"\mathbb{{1}}\left[{a} {op} {b}\right]",
    compare=relations("latex"))

STYLES = {"text": TEXT, "ascii": ASCII, "latex": LATEX}

# precedence, loosest first: sum, scaled term, Hadamard/Kronecker, product, power/transpose, atom
_SUM, _TERM, _BIN, PROD, _POW, _ATOM = 0, 1, 2, 3, 4, 5

Rendered = tuple[str, int]


def render(node: Node, style: Style) -> str:
    """The node written in ``style``."""
    return _render_level(node, style)[0]


def wrap(node: Node, style: Style, at_least: int) -> str:
    """The node written in ``style``, parenthesized if it binds looser than ``at_least``."""
    text, level = _render_level(node, style)
    return text if level >= at_least else style.paren(text)


def _render_level(node: Node, s: Style) -> Rendered:
    """The node's text and the precedence of its outermost construct."""
    renderer = _RENDERERS.get(type(node))
    if renderer is None:
        raise TypeError(f"unknown node {type(node).__name__}")
    return renderer(node, s)


def _function_symbol(fn: str, s: Style) -> str:
    return function_symbol(fn, s.name)


def _render_call(node: Func, s: Style) -> Rendered:
    """``f(X)``, or an indicator ``[H > 0]`` for a comparison or a step."""
    if node.fn in s.compare and len(node.args) == 2:
        a, b = node.args
        op = s.compare[node.fn]
        if isinstance(a, Const) and not isinstance(b, Const):   # [0 ≤ H] reads [H ≥ 0]
            a, b, op = b, a, s.compare[_FLIPPED[node.fn]]
        return s.indicator(render(a, s), op, render(b, s)), _ATOM
    if node.fn == "step":
        return s.indicator(render(node.args[0], s), s.compare["gt"], "0"), _ATOM
    return s.call(_function_symbol(node.fn, s), ", ".join(render(a, s) for a in node.args)), _ATOM


def _render_matrix_fn(node: MatrixFn, s: Style, transposed: bool = False) -> Rendered:
    """``A⁻¹``, ``A⁻ᵀ`` (for ``(A⁻¹)ᵀ`` and ``(Aᵀ)⁻¹``), ``det(A)``, ``log det(A)`` in the style."""
    if node.fn != "inv":
        return s.matrix_function(node.fn, render(node.arg, s)), _ATOM
    matrix = node.arg
    if isinstance(matrix, Transpose):
        matrix, transposed = matrix.arg, not transposed
    return wrap(matrix, s, _ATOM) + s.inverse[transposed], _POW


def _render_transpose(node: Transpose, s: Style) -> Rendered:
    if isinstance(node.arg, MatrixFn):
        return _render_matrix_fn(node.arg, s, transposed=True)
    return wrap(node.arg, s, _ATOM) + s.transpose, _POW


def _render_coefficient(node: TermNode, dens: list[str], s: Style) -> list[str]:
    """The printed magnitude of the coefficient (none for 1); ``½ X / N`` moves the 2 into ``dens``."""
    magnitude = abs(node.coeff)
    inverse = 1.0 / magnitude if magnitude else 0.0
    if magnitude != 1.0 and inverse.is_integer() and (dens or s.half is None or inverse != 2.0):
        dens.insert(0, format_number(inverse))      # ½ X / N reads X / (2 N)
        return []
    if magnitude == 1.0:
        return []
    return [s.half if magnitude == 0.5 and s.half is not None else format_number(magnitude)]


def _render_term(node: TermNode, s: Style) -> Rendered:
    """``−2 a X / (N M)``: sign, coefficient, scalars and body, over the denominators."""
    sign = "-" if node.coeff < 0 else ""
    dens = [wrap(d, s, _POW) for d in node.dens]
    parts = _render_coefficient(node, dens, s)
    factors = list(node.scalars) + ([node.body] if node.body is not None else [])
    levels = []
    for f in factors:
        text, level = _render_level(f, s)
        if level < _BIN:
            text, level = s.paren(text), _ATOM
        parts.append(text)
        levels.append(level)
    if not parts:
        parts = ["1"]
    level = levels[0] if len(parts) == 1 and levels else (_TERM if len(parts) > 1 else _ATOM)
    numerator = " ".join(parts)
    if not dens:
        return sign + numerator, (_TERM if sign else level)
    if s.stacked_fractions:
        return sign + s.frac(numerator, " ".join(dens)), _TERM
    if level < PROD:
        numerator = s.paren(numerator)
    den = dens[0] if len(dens) == 1 else s.paren(" ".join(dens))
    return sign + s.frac(numerator, den), _TERM


def _render_sum(node: Sum, s: Style) -> Rendered:
    out = []
    for k, t in enumerate(node.terms):
        text, level = _render_level(t, s)
        if level == _SUM:
            text = s.paren(text)
        negative = text.startswith("-")
        body = text[1:] if negative else text
        if k == 0:
            out.append(s.leading_minus + body if negative else body)
        else:
            out.append((s.minus if negative else " + ") + body)
    return "".join(out), _SUM


def _render_norm(node: Norm2, s: Style) -> Rendered:
    return s.norm(render(node.arg, s), node.arg.rows is not None and node.arg.cols is not None), _ATOM


def _render_const(node: Const, s: Style) -> Rendered:
    return format_number(node.value), _ATOM if node.value >= 0 else _TERM


_RENDERERS: dict[type, Callable[..., Rendered]] = {
    Tensor: lambda n, s: (s.tensor(n.name), _ATOM),
    Ones: lambda n, s: (s.ones, _ATOM),
    Identity: lambda n, s: (s.identity(n.label), _ATOM),
    Const: _render_const,
    SizeOf: lambda n, s: (s.size(ir.display_name(n.index)), _ATOM),
    Transpose: _render_transpose,
    Product: lambda n, s: (" ".join(wrap(f, s, _POW) for f in n.factors), PROD),
    Hadamard: lambda n, s: (s.hadamard.join(wrap(f, s, _POW) for f in n.factors), _BIN),
    Kron: lambda n, s: (s.kron(wrap(n.left, s, _POW), wrap(n.right, s, _POW)), _BIN),
    Frobenius: lambda n, s: (f"{wrap(n.left, s, _POW)} : {wrap(n.right, s, _POW)}", _BIN),
    Func: _render_call,
    HPower: lambda n, s: (s.power(wrap(n.base, s, _ATOM), format_number(n.exponent), n.is_scalar), _POW),
    MatrixFn: _render_matrix_fn,
    Trace: lambda n, s: (s.trace(render(n.arg, s)), _ATOM),
    Diag: lambda n, s: (s.diag(render(n.arg, s)), _ATOM),
    DiagOf: lambda n, s: (s.diag(render(n.arg, s)), _ATOM),
    VecDiag: lambda n, s: (s.vecdiag(render(n.arg, s)), _ATOM),
    Norm2: _render_norm,
    TermNode: _render_term,
    Sum: _render_sum,
}
