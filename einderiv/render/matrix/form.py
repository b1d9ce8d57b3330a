"""The public result of a conversion: :class:`MatrixForm`, its text in three styles and its value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from einderiv.render.matrix.nodes import Node
from einderiv.render.matrix.styles import ASCII, LATEX, PROD, STYLES, TEXT, render, wrap

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MatrixForm", "layout_of"]


@dataclass(frozen=True)
class MatrixForm:
    """A matrix-notation expression equal to an index-form expression.

    ``text`` is Unicode (``H2ᵀ gZ``), ``ascii`` plain (``H2^T gZ``), ``latex``
    LaTeX. ``layout`` says how the value is laid out: ``"matrix"`` (rows run
    over the first free index), ``"column"``/``"row"`` vector, ``"scalar"``,
    or ``"vec"`` for a Kronecker form (the column-major vec Jacobian).
    :meth:`evaluate` computes it from arrays, shaped like the index result.
    """

    node: Node
    layout: str
    free: tuple[str, ...]
    sizes: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = field(default=(), repr=False)

    @property
    def text(self) -> str:
        return render(self.node, TEXT)

    @property
    def ascii(self) -> str:
        return render(self.node, ASCII)

    @property
    def latex(self) -> str:
        return render(self.node, LATEX)

    def __str__(self) -> str:
        return self.text

    def _repr_latex_(self) -> str:
        return f"${self.latex}$"

    def operand(self, style: str = "text") -> str:
        """The text as an operand of ``:`` or ``⊙``: parenthesized unless a product or simpler.

        >>> from einderiv import parse
        >>> from einderiv.render.matrix import to_matrix
        >>> to_matrix(parse("y[i] = A[i,j] x[j] - b[i]").statement("y").rhs).operand()
        '(A x − b)'
        """
        return wrap(self.node, STYLES[style], PROD)

    def evaluate(self, arrays: Mapping[str, np.ndarray], sizes: Mapping[str, int] | None = None) -> np.ndarray:
        """The value from named arrays; shaped like the index form (a vector is 1-d).

        ``sizes`` (by index name) covers identities and ones vectors whose size no array fixes.

        >>> import numpy as np
        >>> from einderiv import parse
        >>> from einderiv.render.matrix import to_matrix
        >>> form = to_matrix(parse("L = a[i] X[i,j] b[j]").derivative("X"))
        >>> form.evaluate({"a": np.array([1.0, 2.0]), "b": np.array([3.0])}).tolist()
        [[3.0], [6.0]]
        """
        from einderiv.render.matrix.evaluate import evaluate_form
        return evaluate_form(self, arrays, sizes)


def layout_of(node: Node, free: tuple[str, ...]) -> str:
    """How a node over the free indices ``free`` is laid out: matrix, column, row or scalar."""
    if len(free) == 2:
        return "matrix"
    if len(free) == 1:
        return "row" if node.rows is None and node.cols is not None else "column"
    return "scalar"
