"""einderiv: differentiate tensor programs written in Einstein index notation.

>>> import einderiv
>>> p = einderiv.parse("F[i,k] = W[i,j] X[j,k]")
>>> print(p.derivative("W"))
dF[i,k]/dW[a,b] = δ[i,a] X[b,k]

Public names are loaded on first use (PEP 562), so ``import einderiv`` and the
command line import only the modules a task needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (EinderivError, EinderivWarning, MemoryLimitError, ParseError, ProgramError, ShapeError,
                     SingularMatrixError, UnsupportedError)

__version__ = "0.1.0"

#: public name → the module that defines it
_HOMES = {
    "parse": "program", "Program": "program", "Derivative": "program",
    "evaluate": "evaluation", "jacobian": "evaluation", "grad": "evaluation", "vjp": "evaluation",
    "jvp": "evaluation", "value_and_grad": "evaluation", "clear_cache": "evaluation", "cache_info": "evaluation",
    "hessian": "second_order", "hvp": "second_order", "symbolic_hessian": "second_order", "Hessian": "second_order",
    "codegen": "code_generation",
    "to_matrix": "matrix_form", "kronecker_form": "matrix_form", "MatrixForm": "matrix_form",
    "adjoint": "explanation", "AdjointProgram": "explanation", "explain": "explanation", "Explanation": "explanation",
    "set_memory_limit": "planning", "to_latex": "latex",
    "plan": "plan_report", "PlanReport": "plan_report",
}

__all__ = [
    "parse", "Program", "Derivative",
    "evaluate", "jacobian", "grad", "vjp", "jvp", "value_and_grad",
    "hessian", "hvp", "symbolic_hessian", "Hessian", "codegen",
    "to_matrix", "kronecker_form", "MatrixForm", "adjoint", "AdjointProgram", "explain", "Explanation",
    "clear_cache", "cache_info", "set_memory_limit", "to_latex", "plan", "PlanReport",
    "EinderivError", "ParseError", "ProgramError", "ShapeError", "UnsupportedError", "MemoryLimitError",
    "SingularMatrixError", "EinderivWarning",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'einderiv' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value          # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:     # for type checkers and IDEs: the same names, imported eagerly
    from .code_generation import codegen
    from .evaluation import cache_info, clear_cache, evaluate, grad, jacobian, jvp, value_and_grad, vjp
    from .explanation import AdjointProgram, Explanation, adjoint, explain
    from .latex import to_latex
    from .matrix_form import MatrixForm, kronecker_form, to_matrix
    from .plan_report import PlanReport, plan
    from .planning import set_memory_limit
    from .program import Derivative, Program, parse
    from .second_order import Hessian, hessian, hvp, symbolic_hessian
