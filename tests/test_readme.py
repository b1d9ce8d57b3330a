"""The README's examples are real: each ```python block followed by a ```text block prints exactly that text."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

import einderiv
from einderiv.explanation import adjoint, explain
from einderiv.matrix_form import kronecker_form, to_matrix

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"```python\n((?:(?!```)[\s\S])*?)```\n(?:\n```text\n((?:(?!```)[\s\S])*?)```\n)?")


def _examples() -> list[tuple[str, str | None]]:
    return [(m.group(1), m.group(2)) for m in _BLOCK.finditer(README.read_text(encoding="utf-8"))]


def _run(code: str) -> str:
    namespace = {"einderiv": einderiv, "np": np, "to_matrix": to_matrix, "kronecker_form": kronecker_form,
                 "adjoint": adjoint, "explain": explain}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), namespace)  # the README's own code, not user input
    return printed.getvalue()


def test_the_readme_has_examples():
    assert len(_examples()) >= 10


@pytest.mark.parametrize("code, expected", _examples(), ids=lambda x: (x or "")[:40] if isinstance(x, str) else "")
def test_readme_example_prints_what_the_readme_shows(code, expected):
    output = _run(code)
    if expected is not None:
        assert output.rstrip() == expected.rstrip()
