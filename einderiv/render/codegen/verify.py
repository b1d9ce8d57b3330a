"""The allow-list: codegen parses its own output and refuses anything it would not write.

:func:`verified` returns a generated module's text unchanged if every
statement, name, call, attribute and character in it is one codegen writes
(the fixed prelude, then ``value_and_grad`` and ``hessian`` made of
assignments and one return), and raises UnsupportedError otherwise.

>>> _disallowed("import os")
'no module docstring'
"""

from __future__ import annotations

import ast

from einderiv.errors import UnsupportedError
from einderiv.render.codegen.expressions import IDENTIFIER, template_names
from einderiv.render.codegen.prelude import GLOBALS, PRELUDE, RESERVED

__all__ = ["verified"]

#: What the generated functions may read besides their own locals, call, and look up as attributes.
#: The numpy names: those codegen writes itself, and those the functions' code templates use.
_NUMPY_NAMES = frozenset({"sqrt", "power", "zeros", "transpose", "float64", "inf", "nan", "linalg",
                          "diagonal"}) | template_names()
_LINALG_NAMES = frozenset({"inv", "det", "slogdet"})
_ARRAY_ATTRIBUTES = frozenset({"shape", "T", "astype", "copy"})
_CALLABLE_GLOBALS = frozenset({"_array", "_diagonal", "float"})
_EXPRESSION_NODES = (ast.Name, ast.Constant, ast.Attribute, ast.Call, ast.keyword, ast.BinOp, ast.UnaryOp,
                     ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.Dict, ast.Load, ast.Store,
                     ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub)
_PRELUDE_DUMP = tuple(ast.dump(node) for node in ast.parse(PRELUDE).body)


def verified(source: str) -> str:
    """``source`` once it passes the allow-list of :func:`_disallowed`; otherwise UnsupportedError.

    >>> from einderiv import codegen
    >>> source = codegen("L = x[i] x[i]", "x")
    >>> verified(source) == source
    True
    >>> verified(source.replace("return float(L)", "return print(L)"))
    Traceback (most recent call last):
    ...
    einderiv.errors.UnsupportedError: codegen refused its own output (a call of print); please report the program
    """
    problem = _disallowed(source)
    if problem is not None:
        raise UnsupportedError(f"codegen refused its own output ({problem}); please report the program")
    return source


def _disallowed(source: str) -> str | None:
    """What in ``source`` falls outside what codegen writes, or None.

    Allowed: printable text and newlines only (so no comment or docstring ends early); a
    docstring, the fixed prelude (imports, ``_array``, ``_diagonal``), then ``value_and_grad``
    and ``hessian`` taking ``**inputs``, whose bodies are assignments, augmented assignments
    and one return, built from numbers, strings, locals assigned earlier, arithmetic,
    subscripts, the numpy functions of ``_NUMPY_NAMES``, ``oe.contract``, the helpers and ``float``.
    """
    bad = next((c for c in source if c != "\n" and not c.isprintable()), None)
    if bad is not None:
        return f"the character {bad!r}"
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return f"invalid syntax: {error.msg}"
    body = tree.body
    if not body or not _is_docstring(body[0]):
        return "no module docstring"
    end = 1 + len(_PRELUDE_DUMP)
    if tuple(ast.dump(node) for node in body[1:end]) != _PRELUDE_DUMP:
        return "imports or helpers that differ from the prelude"
    for node in body[end:]:
        problem = _disallowed_function(node)
        if problem is not None:
            return problem
    return None


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _disallowed_function(node: ast.stmt) -> str | None:
    if not isinstance(node, ast.FunctionDef) or node.name not in ("value_and_grad", "hessian"):
        return f"a top-level {type(node).__name__}"
    args = node.args
    if (node.decorator_list or node.returns or getattr(node, "type_params", None) or args.posonlyargs or args.args
            or args.vararg or args.kwonlyargs or args.defaults or args.kwarg is None or args.kwarg.arg != "inputs"
            or args.kwarg.annotation):
        return f"the signature of {node.name}"
    local: set[str] = set()
    for k, statement in enumerate(node.body):
        if k == 0 and _is_docstring(statement):
            continue
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                and isinstance(statement.targets[0], ast.Name):
            problem = _disallowed_expression(statement.value, local)
            name = statement.targets[0].id
            if problem is None and (name in RESERVED or not IDENTIFIER.fullmatch(name)):
                problem = f"an assignment to {name!r}"
            local.add(name)
        elif isinstance(statement, ast.AugAssign) and isinstance(statement.op, (ast.Add, ast.Sub)):
            target = statement.target
            if isinstance(target, ast.Name):
                problem = None if target.id in local else f"an update of {target.id!r}"
            elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Call):
                problem = _disallowed_expression(target, local, store=True)
            else:
                problem = "an update of something other than a local or a diagonal view"
            problem = problem or _disallowed_expression(statement.value, local)
        elif isinstance(statement, ast.Return) and k == len(node.body) - 1 and statement.value is not None:
            problem = _disallowed_expression(statement.value, local)
        else:
            problem = f"a {type(statement).__name__} statement"
        if problem is not None:
            return problem
    return None


def _disallowed_expression(expression: ast.AST, local: set[str], store: bool = False) -> str | None:
    for node in ast.walk(expression):
        if not isinstance(node, _EXPRESSION_NODES):
            return f"a {type(node).__name__} expression"
        if isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Load) or (node.id not in local and node.id not in GLOBALS):
                return f"the name {node.id!r}"
        elif isinstance(node, (ast.Subscript, ast.Attribute, ast.Tuple, ast.List)) \
                and not isinstance(node.ctx, ast.Load) and not (store and node is expression):
            return "an assignment inside an expression"
        elif isinstance(node, ast.Constant):
            if node.value is not Ellipsis and node.value is not None and type(node.value) not in (int, float, str):
                return f"the constant {node.value!r}"
        elif isinstance(node, ast.Attribute):
            owner = node.value.id if isinstance(node.value, ast.Name) and node.value.id in ("np", "oe") else None
            if isinstance(node.value, ast.Attribute) and node.value.attr == "linalg" \
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "np":
                owner = "np.linalg"
            allowed = {"np": _NUMPY_NAMES, "oe": {"contract"}, "np.linalg": _LINALG_NAMES, None: _ARRAY_ATTRIBUTES}[owner]
            if node.attr not in allowed:
                return f"the attribute .{node.attr}"
        elif isinstance(node, ast.Call):
            callee = node.func
            named = isinstance(callee, ast.Name) and callee.id in _CALLABLE_GLOBALS
            if not named and not isinstance(callee, ast.Attribute):
                return f"a call of {ast.unparse(callee)}"
        elif isinstance(node, ast.keyword) and node.arg != "optimize":
            return f"the keyword {node.arg!r}"
        elif isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.USub):
            return f"the operator {type(node.op).__name__}"
    return None
