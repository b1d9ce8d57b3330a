"""The elementwise functions: one registration holds everything about a function.

Each :class:`ElementwiseFunction` says, for one function,

* ``array`` — its values, written against an array namespace ``xp`` with
  array-API names (``xp.tanh``, ``xp.maximum``, ``xp.astype`` …): the numeric
  layer passes numpy, simplification passes :data:`~einderiv.core.scalars.SCALARS`
  (Python floats). Results are floating and keep a floating argument's dtype
  (float32 stays float32);
* ``partials`` — its partial derivatives as IR expressions, one per argument,
  so second derivatives stay symbolic;
* ``code`` — the numpy expression codegen writes, against a namespace of
  generated code (``np.tanh(u)``; arithmetic on it parenthesizes by precedence);
  generated modules read float64, so comparisons cast with ``.astype(np.float64)``;
* ``sympy`` — its SymPy form, given the ``sympy`` module;
* ``latex`` — its index-form LaTeX, given its arguments' LaTeX;
* ``derivative_text`` — its local derivative in words, for explanations;
* ``matrix`` — how the matrix form writes it (:class:`Notation`);
* ``kinks`` — where it has no derivative, and the derivative einderiv takes there (:class:`Kink`);
* ``user`` — whether the language lists it. The internal helpers (``step``,
  ``sign``, the comparisons ``gt ge lt le``) appear in derivatives of ``relu``,
  ``abs``, ``max`` and ``min``; they parse too, so printed derivatives read back;
* ``domain`` — a range where finite differences of it are safe, for tests;
* ``unset`` — for each field left ``None``, why.

Kink conventions: ``relu'(0) = 0``, ``abs'(0) = 0``; ``max(a, b)`` sends the
gradient to ``a`` where ``a > b`` and to ``b`` elsewhere; ``min(a, b)`` to ``a``
where ``a < b`` and to ``b`` elsewhere.

Every other module reads what it needs from :data:`FUNCTIONS`; adding a
function is adding one registration here (and its name to the language docs).

>>> from einderiv.core.scalars import SCALARS
>>> FUNCTIONS["tanh"].array(SCALARS, 0.0)
0.0
>>> print(FUNCTIONS["sigmoid"].latex("x_{i}"), FUNCTIONS["max"].matrix.text)
\\sigma\\left(x_{i}\\right) max
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from einderiv.core import ir
from einderiv.core.ir import Expr

__all__ = ["ElementwiseFunction", "Kink", "Named", "Notation", "FUNCTIONS", "USER_FUNCTIONS"]


@dataclass(frozen=True)
class Kink:
    """A point where a function has no derivative, and the partial derivatives einderiv takes there.

    ``at`` is one such point (for ``max(a, b)`` a tie ``a = b``), ``partials``
    the value of each partial derivative there, ``rule`` the convention in words.
    """

    at: tuple[float, ...]
    partials: tuple[float, ...]
    rule: str


@dataclass(frozen=True)
class Notation:
    """How the matrix form writes a function in its text, ASCII and LaTeX styles.

    A name before the parenthesized arguments (``σ(U)``), or, for a comparison
    (``relation=True``), the operator between its two arguments in brackets (``[A ≤ B]``).
    """

    text: str
    ascii: str
    latex: str
    relation: bool = False


@dataclass(frozen=True, kw_only=True)
class ElementwiseFunction:
    """One elementwise function: its values, derivatives and every written form (see the module docstring)."""

    name: str
    arity: int
    array: Callable[..., Any]                   # (xp, *args) → values
    partials: Callable[..., tuple[Expr, ...]]   # args → ∂f/∂arg_k, one per argument
    code: Callable[..., Any]                    # (np namespace of generated code, *args' code) → code
    sympy: Callable[..., Any] | None            # (sympy module, *args) → SymPy expression
    latex: Callable[..., str]                   # args' LaTeX → LaTeX
    derivative_text: str                        # the local derivative, in words
    matrix: Notation | None
    domain: tuple[float, float]                 # safe for finite differences
    kinks: tuple[Kink, ...] = ()
    user: bool = True
    unset: Mapping[str, str] = field(default_factory=dict, compare=False)   # field → why it is None


# ---------------------------------------------------------------- building blocks

@dataclass(frozen=True)
class Named:
    """The namespace's function ``function`` applied to the arguments: ``Named("tanh")(xp, x) = xp.tanh(x)``.

    A caller may look it up once (``getattr(xp, f.array.function)``) instead of on every call.
    """

    function: str

    def __call__(self, xp: Any, *args: Any) -> Any:
        return getattr(xp, self.function)(*args)


def _floating(xp: Any, *args: Any) -> Any:
    """The floating dtype a result over ``args`` takes: float32 stays float32, integers give float64."""
    return xp.result_type(*(getattr(a, "dtype", a) for a in args), xp.float32)


def _indicator(compare: str) -> Callable[..., Any]:
    """``[a OP b]`` as ones and zeros of the arguments' floating dtype."""
    return lambda xp, a, b: xp.astype(getattr(xp, compare)(a, b), _floating(xp, a, b))


def _indicator_code(compare: str) -> Callable[..., Any]:
    """``np.<compare>(a, b).astype(np.float64)``: generated code reads float64."""
    return lambda np, a, b: getattr(np, compare)(a, b).astype(np.float64)


def _sympy_indicator(relation: str) -> Callable[..., Any]:
    return lambda sp, a, b: sp.Piecewise((1, getattr(sp, relation)(a, b)), (0, True))


def _latex_operator(operator: str) -> Callable[..., str]:
    r"""``\tanh\left(u\right)``; several arguments are separated by commas."""
    return lambda *args: rf"{operator}\left({', '.join(args)}\right)"


def _latex_relation(relation: str) -> Callable[[str, str], str]:
    r"""The Iverson bracket ``\left[a > b\right]``."""
    return lambda a, b: rf"\left[{a} {relation} {b}\right]"


def _zero(*args: Expr) -> tuple[Expr, ...]:
    return tuple(ir.ZERO for _ in args)


def _c(name: str, *args: Expr) -> Expr:
    return ir.call(name, args)


def _sigmoid(xp: Any, x: Any) -> Any:
    """``exp(-log(1 + e⁻ˣ))``: no overflow, and accurate relative to the value in both tails
    (``σ(-50) ≈ 1.9e-22``, where ``0.5 (1 + tanh(x/2))`` gives 0)."""
    return xp.exp(-xp.logaddexp(0.0, -x))


# ---------------------------------------------------------------- the registrations

_REGISTRATIONS = (
    ElementwiseFunction(
        name="exp", arity=1, array=Named("exp"),
        partials=lambda u: (_c("exp", u),),
        code=Named("exp"), sympy=Named("exp"), latex=_latex_operator(r"\exp"),
        derivative_text="exp' = exp", matrix=Notation("exp", "exp", r"\exp"), domain=(-2.0, 2.0)),
    ElementwiseFunction(
        name="log", arity=1, array=Named("log"),
        partials=lambda u: (ir.power(u, ir.const(-1)),),
        code=Named("log"), sympy=Named("log"), latex=_latex_operator(r"\log"),
        derivative_text="log'(u) = 1/u", matrix=Notation("log", "log", r"\log"), domain=(0.2, 3.0)),
    ElementwiseFunction(
        name="sqrt", arity=1, array=Named("sqrt"),
        partials=lambda u: (ir.scale(ir.power(_c("sqrt", u), ir.const(-1)), 0.5),),
        code=Named("sqrt"), sympy=Named("sqrt"), latex=lambda u: rf"\sqrt{{{u}}}",
        derivative_text="sqrt'(u) = 1/(2 sqrt(u))", matrix=Notation("sqrt", "sqrt", r"\operatorname{sqrt}"),
        domain=(0.2, 3.0)),
    ElementwiseFunction(
        name="sin", arity=1, array=Named("sin"),
        partials=lambda u: (_c("cos", u),),
        code=Named("sin"), sympy=Named("sin"), latex=_latex_operator(r"\sin"),
        derivative_text="sin' = cos", matrix=Notation("sin", "sin", r"\sin"), domain=(-3.0, 3.0)),
    ElementwiseFunction(
        name="cos", arity=1, array=Named("cos"),
        partials=lambda u: (ir.neg(_c("sin", u)),),
        code=Named("cos"), sympy=Named("cos"), latex=_latex_operator(r"\cos"),
        derivative_text="cos' = -sin", matrix=Notation("cos", "cos", r"\cos"), domain=(-3.0, 3.0)),
    ElementwiseFunction(
        name="tanh", arity=1, array=Named("tanh"),
        partials=lambda u: (ir.add(ir.ONE, ir.neg(ir.power(_c("tanh", u), ir.const(2)))),),
        code=Named("tanh"), sympy=Named("tanh"), latex=_latex_operator(r"\tanh"),
        derivative_text="tanh' = 1 - tanh²", matrix=Notation("tanh", "tanh", r"\tanh"), domain=(-2.0, 2.0)),
    ElementwiseFunction(
        name="sigmoid", arity=1, array=_sigmoid,
        partials=lambda u: (ir.mul(_c("sigmoid", u), ir.add(ir.ONE, ir.neg(_c("sigmoid", u)))),),
        code=_sigmoid, sympy=lambda sp, u: 1 / (1 + sp.exp(-u)), latex=_latex_operator(r"\sigma"),
        derivative_text="σ' = σ (1 - σ)", matrix=Notation("σ", "sigmoid", r"\sigma"), domain=(-3.0, 3.0)),
    ElementwiseFunction(
        name="softplus", arity=1, array=lambda xp, x: xp.logaddexp(0.0, x),     # log(1 + eˣ), no overflow
        partials=lambda u: (_c("sigmoid", u),),
        code=lambda np, u: np.logaddexp(0.0, u), sympy=lambda sp, u: sp.log(1 + sp.exp(u)),
        latex=_latex_operator(r"\operatorname{softplus}"), derivative_text="softplus' = σ",
        matrix=Notation("softplus", "softplus", r"\operatorname{softplus}"), domain=(-3.0, 3.0)),
    ElementwiseFunction(
        name="relu", arity=1, array=lambda xp, x: xp.maximum(x, 0),
        partials=lambda u: (_c("step", u),),
        code=lambda np, u: np.maximum(u, 0.0), sympy=lambda sp, u: sp.Max(0, u),
        latex=_latex_operator(r"\operatorname{relu}"), derivative_text="relu'(u) = [u > 0]",
        matrix=Notation("relu", "relu", r"\operatorname{relu}"), domain=(-2.0, 2.0),
        kinks=(Kink((0.0,), (0.0,), "relu'(0) = 0"),)),
    ElementwiseFunction(
        name="abs", arity=1, array=Named("abs"),
        partials=lambda u: (_c("sign", u),),
        code=Named("abs"), sympy=lambda sp, u: sp.Abs(u), latex=lambda u: rf"\left\lvert {u} \right\rvert",
        derivative_text="abs'(u) = sign(u)", matrix=Notation("abs", "abs", r"\operatorname{abs}"),
        domain=(-2.0, 2.0), kinks=(Kink((0.0,), (0.0,), "abs'(0) = 0"),)),
    ElementwiseFunction(
        name="max", arity=2, array=Named("maximum"),
        partials=lambda a, b: (_c("gt", a, b), _c("le", a, b)),
        code=Named("maximum"), sympy=lambda sp, a, b: sp.Max(a, b), latex=_latex_operator(r"\max"),
        derivative_text="the gradient goes to a where a > b, else to b: [a > b], [a ≤ b]",
        matrix=Notation("max", "max", r"\max"), domain=(-2.0, 2.0),
        kinks=(Kink((0.5, 0.5), (0.0, 1.0), "on a tie a = b the gradient goes to b"),)),
    ElementwiseFunction(
        name="min", arity=2, array=Named("minimum"),
        partials=lambda a, b: (_c("lt", a, b), _c("ge", a, b)),
        code=Named("minimum"), sympy=lambda sp, a, b: sp.Min(a, b), latex=_latex_operator(r"\min"),
        derivative_text="the gradient goes to a where a < b, else to b: [a < b], [a ≥ b]",
        matrix=Notation("min", "min", r"\min"), domain=(-2.0, 2.0),
        kinks=(Kink((0.5, 0.5), (0.0, 1.0), "on a tie a = b the gradient goes to b"),)),
    # Internal step functions: derivative zero away from the kink, and zero at it.
    ElementwiseFunction(
        name="step", arity=1, user=False, array=lambda xp, x: xp.astype(xp.greater(x, 0), _floating(xp, x)),
        partials=_zero,
        code=lambda np, u: np.greater(u, 0.0).astype(np.float64), sympy=lambda sp, u: sp.Heaviside(u, 0),
        latex=_latex_operator(r"\operatorname{step}"), derivative_text="step'(u) = 0 (at the kink u = 0 too)",
        matrix=None, domain=(-2.0, 2.0), kinks=(Kink((0.0,), (0.0,), "step'(0) = 0"),),
        unset={"matrix": "the matrix form writes step(U) as the comparison [U > 0], in gt's notation"}),
    ElementwiseFunction(
        name="sign", arity=1, user=False, array=lambda xp, x: xp.astype(xp.sign(x), _floating(xp, x), copy=False),
        partials=_zero,
        code=Named("sign"), sympy=lambda sp, u: sp.sign(u), latex=_latex_operator(r"\operatorname{sign}"),
        derivative_text="sign'(u) = 0 (at the kink u = 0 too)",
        matrix=Notation("sign", "sign", r"\operatorname{sign}"), domain=(-2.0, 2.0),
        kinks=(Kink((0.0,), (0.0,), "sign'(0) = 0"),)),
    *(ElementwiseFunction(
        name=name, arity=2, user=False, array=_indicator(compare),
        partials=_zero,
        code=_indicator_code(compare), sympy=_sympy_indicator(relation), latex=_latex_relation(latex),
        derivative_text=f"[a {text} b] is piecewise constant: both partials 0 (on a tie a = b too)",
        matrix=Notation(text, ascii, latex_matrix, relation=True), domain=(-2.0, 2.0),
        kinks=(Kink((0.5, 0.5), (0.0, 0.0), "both partials 0 on a tie a = b"),))
      for name, compare, relation, text, ascii, latex, latex_matrix in (
          ("gt", "greater", "Gt", ">", ">", ">", ">"),
          ("ge", "greater_equal", "Ge", "≥", ">=", r"\geq", r"\ge"),
          ("lt", "less", "Lt", "<", "<", "<", "<"),
          ("le", "less_equal", "Le", "≤", "<=", r"\leq", r"\le"))),
)

FUNCTIONS: dict[str, ElementwiseFunction] = {f.name: f for f in _REGISTRATIONS}

#: The functions the language lists, in registration order (the helpers parse too but are not listed).
USER_FUNCTIONS: tuple[str, ...] = tuple(f.name for f in _REGISTRATIONS if f.user)
