"""einderiv: differentiate tensor programs written in Einstein index notation.

>>> import einderiv
>>> p = einderiv.parse("F[i,k] = W[i,j] X[j,k]")
>>> print(p.derivative("W"))
dF[i,k]/dW[a,b] = δ[i,a] X[b,k]
"""

from .errors import (EinderivError, EinderivWarning, MemoryLimitError, ParseError, ProgramError, ShapeError,
                     SingularMatrixError, UnsupportedError)
from .evaluation import cache_info, clear_cache, evaluate, grad, jacobian, jvp, value_and_grad, vjp
from .planning import set_memory_limit
from .codegen import codegen
from .explanation import AdjointProgram, Explanation, adjoint, explain
from .latex import to_latex
from .matrix_form import MatrixForm, kronecker_form, to_matrix
from .program import Derivative, Program, parse
from .second_order import Hessian, hessian, hvp, symbolic_hessian

__version__ = "0.1.0"

__all__ = [
    "parse", "Program", "Derivative",
    "evaluate", "jacobian", "grad", "vjp", "jvp", "value_and_grad",
    "hessian", "hvp", "symbolic_hessian", "Hessian", "codegen",
    "to_matrix", "kronecker_form", "MatrixForm", "adjoint", "AdjointProgram", "explain", "Explanation",
    "clear_cache", "cache_info", "set_memory_limit", "to_latex",
    "EinderivError", "ParseError", "ProgramError", "ShapeError", "UnsupportedError", "MemoryLimitError",
    "SingularMatrixError", "EinderivWarning",
]
