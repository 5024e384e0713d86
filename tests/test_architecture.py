"""The shape of the code: stages import only earlier stages (import-linter contract in pyproject.toml),
modules stay small, library code does not print, and the top-level API resolves."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARY = [p for folder in ("toolchain", "netx_export") for p in sorted((REPO / folder).rglob("*.py"))]
MAX_LINES = 400
PRINTING = {"toolchain/cli.py", "toolchain/backends/lava/patch.py"}     # command-line entry points


def test_stages_import_only_earlier_stages():
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(REPO)}         # this checkout's packages, whatever is installed
    proc = subprocess.run([str(lint), "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(REPO)))
def test_modules_stay_small(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_library_code_does_not_print():
    printing = []
    for path in LIBRARY:
        name = str(path.relative_to(REPO))
        if name in PRINTING:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                printing.append(f"{name}:{node.lineno}")
    assert not printing, printing


def test_the_public_api_resolves():
    import toolchain

    assert toolchain.__all__ and all(getattr(toolchain, name) is not None for name in toolchain.__all__)
    with pytest.raises(AttributeError):
        toolchain.no_such_name  # noqa: B018
