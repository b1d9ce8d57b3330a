"""Generated code: a program and its derivatives as a standalone Python module (being split up)."""

from einderiv.render.codegen.writer import _Code, _docstring_text, _printable, _verified, codegen, function_code

__all__ = ["codegen", "function_code", "_Code", "_docstring_text", "_printable", "_verified"]
