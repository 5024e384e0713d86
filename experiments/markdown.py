"""Markdown helpers for the RESULTS.md sections."""
from __future__ import annotations

from typing import Any

Lines = list[str]


def f2(x: Any) -> str:
    return "-" if x is None else f"{x:.2f}"


def f3(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def sci(x: Any) -> str:
    return "-" if x is None else f"{x:.3g}"


def signed(x: float) -> str:
    return f"{x:+.2f}"


def _table(header: list[str], rows: list[list[Any]]) -> Lines:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(str(c) for c in row) + " |" for row in rows]]


def _cmd(record: dict[str, Any]) -> Lines:
    return [f"Regenerate: `{record['command']}` ({record['seconds'] / 60:.1f} min in this run).", ""]


def _by_sigma(rows: list[dict[str, Any]], key: str) -> dict[float, float]:
    return {float(r["sigma"]): r.get(key) for r in rows}


def _psnr_ssim(rows: list[dict[str, Any]], sigmas: list[float]) -> list[str]:
    p, s = _by_sigma(rows, "psnr"), _by_sigma(rows, "ssim")
    return [f2(p[x]) for x in sigmas] + [f3(s.get(x)) for x in sigmas]


def ratio(x: Any) -> str:
    """ANN energy over SNN energy, as words."""
    if x is None:
        return "-"
    return f"{x:.3g}x less" if x >= 1 else f"{1 / x:.3g}x more"
