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

from einderiv.errors import (BackendError, EinderivError, EinderivWarning, MemoryLimitError, ParseError, ProgramError,
                     ShapeError, SingularMatrixError, UnsupportedError)

__version__ = "0.1.0"

#: public name → the module that defines it
_HOMES = {
    "parse": "calculus.program", "Program": "calculus.program", "Derivative": "calculus.program",
    "evaluate": "numeric.evaluation", "jacobian": "numeric.evaluation", "grad": "numeric.evaluation", "vjp": "numeric.evaluation",
    "jvp": "numeric.evaluation", "value_and_grad": "numeric.evaluation", "clear_cache": "numeric.evaluation", "cache_info": "numeric.evaluation",
    "hessian": "numeric.hessian", "hvp": "numeric.hessian", "symbolic_hessian": "numeric.hessian", "Hessian": "numeric.hessian",
    "codegen": "render.codegen",
    "to_matrix": "render.matrix", "kronecker_form": "render.matrix", "MatrixForm": "render.matrix",
    "adjoint": "render.adjoint", "AdjointProgram": "render.adjoint", "explain": "render.explanation", "Explanation": "render.explanation",
    "set_memory_limit": "numeric.planning", "to_latex": "render.latex",
    "plan": "numeric.plan_report", "PlanReport": "numeric.plan_report",
}

__all__ = [
    "parse", "Program", "Derivative",
    "evaluate", "jacobian", "grad", "vjp", "jvp", "value_and_grad",
    "hessian", "hvp", "symbolic_hessian", "Hessian", "codegen",
    "to_matrix", "kronecker_form", "MatrixForm", "adjoint", "AdjointProgram", "explain", "Explanation",
    "clear_cache", "cache_info", "set_memory_limit", "to_latex", "plan", "PlanReport",
    "EinderivError", "ParseError", "ProgramError", "ShapeError", "UnsupportedError", "MemoryLimitError",
    "SingularMatrixError", "BackendError", "EinderivWarning",
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
    from einderiv.render.codegen import codegen
    from einderiv.numeric.evaluation import cache_info, clear_cache, evaluate, grad, jacobian, jvp, value_and_grad, vjp
    from einderiv.render.adjoint import AdjointProgram, adjoint
    from einderiv.render.explanation import Explanation, explain
    from einderiv.render.latex import to_latex
    from einderiv.render.matrix import MatrixForm, kronecker_form, to_matrix
    from einderiv.numeric.plan_report import PlanReport, plan
    from einderiv.numeric.planning import set_memory_limit
    from einderiv.calculus.program import Derivative, Program, parse
    from einderiv.numeric.hessian import Hessian, hessian, hvp, symbolic_hessian
