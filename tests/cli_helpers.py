"""Helpers shared by the CLI tests (a plain module: pytest puts tests/ on sys.path)."""
from __future__ import annotations


def one_error_line(capsys) -> str:
    """What the CLI wrote to stderr since the last read: exactly one line, starting with 'error:'."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    return lines[0]
