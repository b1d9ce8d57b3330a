"""Generated code: a program and its derivatives as a standalone Python module.

:func:`codegen` writes the forward statements, the adjoint statements of
reverse mode and, on request, the Hessian statements (see
:mod:`einderiv.numeric.hessian`) as plain numpy and opt_einsum code that imports
nothing else, so the module runs where einderiv is not installed. Each line is
preceded by a comment giving the index statement it implements, in canonical
printed form (never the program's raw text):

* a product with a summed index is one ``oe.contract("nd,dh->nh", X, W1)``
  call (integer-free subscripts, one letter per index); with ``shapes`` the
  contraction order found by ``opt_einsum.contract_path`` is written in as
  ``optimize=[(0, 1), …]``, so the module does no path search;
* a product without one is numpy broadcasting (``H0 + b1``, ``a[:, None] * b``);
* elementwise functions are numpy expressions (``np.tanh(H1)``,
  ``0.5 * (1.0 + np.tanh(0.5 * u))`` for the sigmoid);
* a free Kronecker delta is an addition into a strided diagonal view of a
  zeroed array, through the ``_diagonal`` helper the module defines.

Arrays are read as float64. Sizes come from the arrays at run time (``X.shape[0]``),
so one module serves every shape; an index no array fixes takes its size from
``sizes``.

The code is built from the IR as expression trees that parenthesize by Python
precedence, from validated identifiers, numbers and operators only: a tensor
name that is a keyword, builtin or a name the module uses gets a suffix
(``exec`` → ``exec_``), ``1e999`` is ``np.inf``, and every comment is escaped to
printable text. Before it is returned, the module is parsed and checked against
an allow-list of statements, names, calls and attributes.

>>> text = codegen("F[i,k] = W[i,j] X[j,k]; L = F[i,k] F[i,k]", "W")
>>> print(text.split("def value_and_grad", 1)[1].split("return", 1)[0])
(**inputs):
    \"\"\"The value of L and its gradient with respect to W: (L, {"W": dL/dW}).\"\"\"
    W = _array(inputs, "W", 2)
    X = _array(inputs, "X", 2)
    # F[i,k] = W[i,j] X[j,k]
    F = oe.contract("ij,jk->ik", W, X)
    # L = F[i,k]^2
    L = oe.contract("ik->", F ** 2)
    # dL/dW[a,b] = 2 F[a,k] X[b,k]
    dL_dW = 2 * oe.contract("ak,bk->ab", F, X)
<BLANKLINE>

The package, in the order a module is made: :mod:`.expressions` (code trees
that parenthesize by precedence; the functions' numpy code templates),
:mod:`.prelude` (the fixed imports and helpers, the names no local may take),
:mod:`.writer` (the lines of one function, statement by statement),
:mod:`.module` (:func:`codegen`: header, ``value_and_grad`` and ``hessian``),
:mod:`.verify` (the allow-list the text must pass).
"""

from einderiv.render.codegen.expressions import function_code
from einderiv.render.codegen.module import codegen

__all__ = ["codegen", "function_code"]
