"""The README's and the tutorial's examples are real, run as a user runs them.

Every ```python block of a document runs in order in ONE fresh interpreter (a subprocess,
nothing imported or injected beforehand), so a block that uses a name no earlier
block imported fails here as it fails for a reader who pastes it. A block
followed by a ```text block must print exactly that text.

A block right after a line ``<!-- needs: torch -->`` (importable module names, comma-separated)
is skipped, not run, where one of them is not installed: the optional extras (torch, jax, dask).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTS = {"readme": README, "tutorial": ROOT / "docs" / "tutorial.md"}
_BLOCK = re.compile(r"(?:<!-- needs: ([\w., ]+) -->\n)?"
                    r"```python\n((?:(?!```)[\s\S])*?)```\n(?:\n```text\n((?:(?!```)[\s\S])*?)```\n)?")

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


def _examples(document: Path = README) -> list[tuple[str, str | None]]:
    return [(m.group(2), m.group(3)) for m in _BLOCK.finditer(document.read_text(encoding="utf-8"))]


def _missing(document: Path = README) -> dict[int, str]:
    """Blocks marked ``<!-- needs: ... -->`` whose modules are not installed, by number: what is missing."""
    missing = {}
    for number, m in enumerate(_BLOCK.finditer(document.read_text(encoding="utf-8"))):
        absent = [name.strip() for name in (m.group(1) or "").split(",")
                  if name.strip() and importlib.util.find_spec(name.strip().split(".")[0]) is None]
        if absent:
            missing[number] = ", ".join(absent)
    return missing


_RUNS: dict[str, list[dict]] = {}


def _run_document(name: str) -> list[dict]:
    if name not in _RUNS:
        missing = _missing(DOCUMENTS[name])
        blocks = ["" if number in missing else code for number, (code, _) in enumerate(_examples(DOCUMENTS[name]))]
        done = subprocess.run([sys.executable, "-c", _DRIVER], input=json.dumps(blocks), capture_output=True,
                              text=True, timeout=300, cwd=ROOT / "examples")
        assert done.returncode == 0, done.stderr
        _RUNS[name] = json.loads(done.stdout)
    return _RUNS[name]


def test_the_documents_have_examples():
    assert len(_examples(README)) >= 2 and len(_examples(DOCUMENTS["tutorial"])) >= 10


_CASES = [(name, number) for name, path in DOCUMENTS.items() for number in range(len(_examples(path)))]


@pytest.mark.parametrize("document, number", _CASES, ids=[f"{d}-{n}" for d, n in _CASES])
def test_block_runs_and_prints_what_the_document_shows(document, number):
    code, expected = _examples(DOCUMENTS[document])[number]
    missing = _missing(DOCUMENTS[document])
    if number in missing:
        pytest.skip(f"needs {missing[number]}, not installed")
    results = _run_document(document)
    assert number < len(results), "an earlier block failed"
    result = results[number]
    assert "error" not in result, f"block {number} failed:\n{code}\n{result['error']}"
    if expected is not None:
        assert result["output"].rstrip() == expected.rstrip()
