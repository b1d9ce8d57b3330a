"""The README's command-line examples are real: every ``$ command`` of a ```console block,
run by bash in the examples folder with the installed ``einderiv`` on the PATH, prints
exactly the lines under it (standard output and standard error together, as a terminal
shows them)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_CONSOLE = re.compile(r"```console\n([\s\S]*?)```")


def _commands() -> list[tuple[str, str]]:
    found = []
    for block in _CONSOLE.findall(README.read_text(encoding="utf-8")):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            found.append((command, output.rstrip("\n")))
    return found


def _einderiv_on_path() -> str | None:
    here = Path(sys.executable).parent
    return str(here) if (here / "einderiv").exists() else None


@pytest.mark.skipif(_einderiv_on_path() is None, reason="the einderiv command is not installed beside this Python")
@pytest.mark.parametrize("command, expected", _commands(), ids=[c[:50] for c, _ in _commands()])
def test_readme_command_prints_what_the_readme_shows(command, expected, tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {**os.environ, "PATH": _einderiv_on_path() + os.pathsep + os.environ.get("PATH", ""), "COLUMNS": "100"}
    done = subprocess.run(["bash", "-c", "{ " + command + "\n} 2>&1"], cwd=tmp_path / "examples", env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.rstrip("\n") == expected
