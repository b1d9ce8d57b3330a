"""Matrix notation for index expressions, where one exists.

:func:`to_matrix` turns an index-form expression into the notation of matrix
calculus: contraction chains of rank ≤ 2 factors become matrix products with
the transposes their index orientation asks for (``G[a,k] X[b,k]`` → ``G Xᵀ``,
``A[i,a] G[i,b]`` → ``Aᵀ G``), closed cycles become traces, factors sharing
every index a Hadamard product ``⊙``, a sum over one index of a matrix ``1ᵀ G``
(column sums), a vector next to a matrix on a shared index ``diag(v) M``,
Kronecker deltas identities. Elementwise functions keep their names, with the
derivative helpers written as indicators (``[H > 0]``) and ``σ'(Z)``. Sums
print with common factors pulled out: ``Z / N − T / N`` reads ``(Z − T) / N``.

The converter does not raise on what it cannot write (a rank-3 factor, a
summed index meeting three matrices…): it gives ``None``, "no matrix form",
and callers fall back to index form. Printing is pure — text, ASCII and LaTeX
are functions of the structure — while :meth:`MatrixForm.evaluate` computes
the matrix expression with numpy, so tests can check it against the index form.

:func:`kronecker_form` writes the Jacobian of a linear map between matrices as
the (column-major) ``vec`` matrix: for ``F = W X``, ``d vec(F)/d vec(W) = Xᵀ ⊗ I``.

>>> from einderiv import parse
>>> print(to_matrix(parse("F[i,k] = W[i,j] X[j,k]").statement("F").rhs))
W X
>>> print(to_matrix(parse("L = a[i] X[i,j] b[j]").derivative("X")))
a bᵀ
>>> print(kronecker_form(parse("F[i,k] = W[i,j] X[j,k]").derivative("W"), labels={"i": "m"}))
Xᵀ ⊗ I_m

The package, in the order a form is made: :mod:`.nodes` (the frozen node
classes), :mod:`.convert` (index form → nodes, :func:`to_matrix`),
:mod:`.factor` (common factors, final rewrites), :mod:`.styles` (one walk,
three styles, and the per-function symbol table), :mod:`.form`
(:class:`MatrixForm`), :mod:`.evaluate` (numpy values, to check forms),
:mod:`.kronecker` (vec forms), :mod:`.describe` (sentences for the CLI).
"""

from einderiv.calculus.folding import fold_definitions
from einderiv.render.matrix.convert import to_matrix
from einderiv.render.matrix.describe import column_vector_notes, describe_matrix_form
from einderiv.render.matrix.form import MatrixForm
from einderiv.render.matrix.kronecker import kronecker_form, kronecker_matrix
from einderiv.render.matrix.nodes import Hadamard, Node, Ones, Product, Tensor, TermNode, Transpose

__all__ = ["MatrixForm", "to_matrix", "kronecker_form", "kronecker_matrix", "fold_definitions", "Node",
           "describe_matrix_form", "column_vector_notes", "Hadamard", "Ones", "Product", "Tensor", "TermNode",
           "Transpose"]
