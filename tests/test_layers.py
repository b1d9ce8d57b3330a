"""The package's layers import one way: core ← language ← calculus ← numeric ← render ← cli.

Every import of every module is read from its source (module level and inside functions; not
``if TYPE_CHECKING:`` blocks, which never run). A module may import einderiv modules of its own
layer or of layers below, the shared modules (``errors``) from anywhere, and numpy or opt_einsum
only from the layers that compute numbers. The one exception is IPython's display hook
``_repr_latex_``, which may import the LaTeX renderer when a notebook asks for it.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "einderiv"
LAYERS = ("core", "language", "calculus", "numeric", "render", "cli")
SHARED = {"einderiv", "einderiv.errors", "einderiv.names"}
NUMERIC_LIBRARIES = {"numpy", "opt_einsum", "cotengra", "autoray", "array_api_compat", "dask", "torch", "jax", "cupy"}
MAY_COMPUTE = {"numeric", "render", "cli"}
DISPLAY_HOOKS = {"_repr_latex_"}
#: modules allowed to import numpy below the numeric layer for now (none: the function registry takes the array namespace as an argument)
PENDING_NUMPY: set[str] = set()


def _modules() -> list[pathlib.Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _layer(path: pathlib.Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def _imports(tree: ast.AST, module: str) -> list[tuple[str, int, str]]:
    """(imported module, line, enclosing function) of every import that can run."""
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for orelse in child.orelse:
                    visit(orelse, function)
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = module.rsplit(".", child.level)[0]
                    base = f"{package}.{base}" if base else package
                found.append((base, child.lineno, function))
                if base in ("einderiv",) or base.endswith(tuple(f".{layer}" for layer in LAYERS)):
                    found.extend((f"{base}.{alias.name}", child.lineno, function) for alias in child.names)
            visit(child, function)
    visit(tree, "")
    return found


def _violations() -> list[str]:
    problems = []
    for path in _modules():
        layer = _layer(path)
        module = "einderiv." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for imported, line, function in _imports(tree, module):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            top = imported.split(".")[0]
            if top in NUMERIC_LIBRARIES and layer not in MAY_COMPUTE and layer is not None \
                    and str(path.relative_to(PACKAGE.parent)) not in PENDING_NUMPY:
                problems.append(f"{where} imports {imported}, but only {sorted(MAY_COMPUTE)} compute numbers")
            if top != "einderiv" or imported in SHARED or layer is None:
                continue
            target = imported.split(".")[1]
            if target not in LAYERS:
                continue
            if LAYERS.index(target) > LAYERS.index(layer) and function not in DISPLAY_HOOKS:
                problems.append(f"{where} ({layer}) imports {imported} from the higher layer {target}")
    return problems


def test_imports_run_one_way_through_the_layers():
    assert _violations() == []


def test_every_module_belongs_to_a_layer():
    loose = {p.name for p in _modules() if _layer(p) is None}
    assert loose <= {"__init__.py", "__main__.py", "errors.py", "names.py"}


@pytest.mark.parametrize("source, expected", [
    ("from einderiv.render.latex import to_latex", ["einderiv.render.latex"]),
    ("def f():\n    from einderiv.numeric import evaluation", ["einderiv.numeric", "einderiv.numeric.evaluation"]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import numpy", ["typing"]),
])
def test_the_import_reader_sees_function_level_imports_and_skips_type_checking(source, expected):
    assert [name for name, _, _ in _imports(ast.parse(source), "einderiv.core.x")] == expected
