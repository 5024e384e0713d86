"""Argument types of the command line: each parses one flag's text or raises argparse's error."""
from __future__ import annotations

import argparse


def thresholds(text: str) -> tuple[float, ...]:
    """``4`` -> Theorem 3.1's default (2, 1, 0.5, 0.25); ``2,1,0.5`` -> that list."""
    from toolchain.errors import ConfigError
    from toolchain.neuron.mt import default_thresholds, validate_thresholds
    try:
        if "," not in text and "." not in text:
            return default_thresholds(int(text))
        return validate_thresholds(float(v) for v in text.split(","))
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError("thresholds must be a count (4) or a list (2,1,0.5,0.25), "
                                         f"got {text!r}") from None


def percentile(text: str) -> float | None:
    """``99.9`` -> 99.9; ``max`` -> None (normalize by the maximum activation)."""
    if text == "max":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"percentile must be a number or 'max', got {text!r}") from None


def height_width(text: str) -> tuple[int, int]:
    """``64`` -> (64, 64); ``48x64`` -> (48, 64)."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"input size must be N or HxW, got {text!r}")
    return (parts[0], parts[-1])


def memory_size(text: str) -> int:
    """``256M``, ``1.5G``, ``2GiB``, ``1073741824`` -> bytes (binary units)."""
    from toolchain.errors import ConfigError
    from toolchain.memory import parse_size
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seed(text: str) -> int:
    """A random seed: an integer in 0..2**63 - 1."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"seed must be an integer in 0..2**63-1, got {text!r}")
    return value


def step_list(text: str) -> tuple[int, ...]:
    """``10`` -> (10,); ``10,20,40,80`` -> (10, 20, 40, 80) (their range is checked by the verb)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"time steps must be an integer or a list (10,20,40,80), "
                                         f"got {text!r}") from None


def workers(text: str) -> int | str:
    """``auto`` or an integer (its range is checked by the verb: one ``error:`` line names it)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"workers must be 'auto' or a positive integer, got {text!r}") from None
