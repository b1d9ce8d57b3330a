"""The README's examples are real, run as a user runs them.

Every ```python block runs in order in ONE fresh interpreter (a subprocess,
nothing imported or injected beforehand), so a block that uses a name no earlier
block imported fails here as it fails for a reader who pastes it. A block
followed by a ```text block must print exactly that text.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"```python\n((?:(?!```)[\s\S])*?)```\n(?:\n```text\n((?:(?!```)[\s\S])*?)```\n)?")

# Runs the blocks in one namespace, one after another, and reports each block's printed text
# (or its error) as JSON. The blocks are the README's own code, not user input.
_DRIVER = r"""
import contextlib, io, json, sys, traceback
blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
results = []
for code in blocks:
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "README.md", "exec"), namespace)
        results.append({"output": printed.getvalue()})
    except BaseException:
        results.append({"output": printed.getvalue(), "error": traceback.format_exc()})
        break
json.dump(results, sys.__stdout__)
"""


def _examples() -> list[tuple[str, str | None]]:
    return [(m.group(1), m.group(2)) for m in _BLOCK.finditer(README.read_text(encoding="utf-8"))]


@pytest.fixture(scope="module")
def readme_run() -> list[dict]:
    blocks = [code for code, _ in _examples()]
    done = subprocess.run([sys.executable, "-c", _DRIVER], input=json.dumps(blocks), capture_output=True,
                          text=True, timeout=300, cwd=README.parent)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_readme_has_examples():
    assert len(_examples()) >= 10


@pytest.mark.parametrize("number", range(len(_examples())))
def test_readme_block_runs_and_prints_what_the_readme_shows(readme_run, number):
    code, expected = _examples()[number]
    assert number < len(readme_run), "an earlier block failed"
    result = readme_run[number]
    assert "error" not in result, f"block {number} failed:\n{code}\n{result['error']}"
    if expected is not None:
        assert result["output"].rstrip() == expected.rstrip()
