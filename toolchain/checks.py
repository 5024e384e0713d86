"""Validators of plain settings values shared by every stage (each raises a one-line ConfigError)."""
from __future__ import annotations

import math

from .errors import ConfigError


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an integer >= 1 (bool is not an integer here)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_steps(steps: object) -> int:
    """The number of time steps T: a positive integer."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"the number of time steps T must be a positive integer, got {steps!r}")
    return steps


def positive_number(name: str, value: object) -> float:
    """``value`` as a float if it is a finite number > 0."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def strict_isinstance(value: object, kind: type) -> bool:
    """``isinstance`` without bool passing for int (True is not a version number)."""
    return isinstance(value, kind) and not isinstance(value, bool)


def short_repr(value: object) -> str:
    """A short repr for an error line (a fuzzed file can hold anything, of any size)."""
    shape = getattr(value, "shape", None)
    text = f"a tensor of shape {tuple(shape)}" if shape is not None and not isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."
