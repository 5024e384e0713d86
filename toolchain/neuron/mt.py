"""Multi-threshold (MT) integrate-and-fire neuron.

:func:`mt_step` is the single source of the MT maths. The PyTorch SNN (float), the integer reference
simulator and the Lava process models all call it, on torch tensors or numpy arrays, float or
integer (:mod:`toolchain.neuron.fused` is a faster implementation of the same step for float32 CPU
tensors without gradients). One step, for thresholds theta_1 > theta_2 > ... > theta_N on ONE shared membrane::

    V <- clip(V + I, -V_lim, V_lim)              (clip only where a limit is given)
    for i = 1..N:  s_i = H(V - theta_i)  with H(x) = [x > 0]   (strict: V = theta_i does not fire)
                   V  <- V - theta_i * s_i        (reset by subtraction)
    o = sum_i theta_i * s_i                       (value seen downstream)

A single threshold is the plain IF neuron with reset by subtraction.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from toolchain.errors import ConfigError

FireFn = Callable[[Any], Any]


def heaviside(x: Any) -> Any:
    """H(x) = [x > 0], elementwise, as a boolean array or tensor."""
    return x > 0


def mt_step(v: Any, current: Any, thresholds: Sequence[float], v_limit: float | None = None,
            fire: FireFn = heaviside) -> tuple[Any, tuple[Any, ...]]:
    """One MT step (see the module docstring). Returns the new membrane and one spike map per threshold."""
    v = v + current
    if v_limit is not None:
        v = v.clip(-v_limit, v_limit)
    spikes = []
    for theta in thresholds:
        s = fire(v - theta)
        v = v - theta * s
        spikes.append(s)
    return v, tuple(spikes)


def mt_output(spikes: Sequence[Any], weights: Sequence[float]) -> Any:
    """o = sum_i w_i * s_i: the cascade's output, with w_i = theta_i (or theta_i / theta_N for integer units)."""
    out = weights[0] * spikes[0]
    for w, s in zip(weights[1:], spikes[1:]):
        out = out + w * s
    return out


MAX_THRESHOLDS = 64          # compartments of one MT neuron (Loihi 2 has far fewer per core)


def default_thresholds(count: int, top: float = 2.0) -> tuple[float, ...]:
    """Theorem 3.1 of the paper: theta_{i+1} = theta_i / 2, starting from ``top`` (2, 1, 0.5, 0.25 for 4)."""
    if not 1 <= count <= MAX_THRESHOLDS:
        raise ConfigError(f"number of thresholds must be in 1..{MAX_THRESHOLDS}, got {count}")
    return tuple(top / 2 ** i for i in range(count))


def validate_thresholds(thresholds: Iterable[float]) -> tuple[float, ...]:
    """Thresholds must be positive, finite and strictly decreasing; returns them as a tuple of floats."""
    values = tuple(float(t) for t in thresholds)
    if not values:
        raise ConfigError("at least one threshold is needed")
    if len(values) > MAX_THRESHOLDS:
        raise ConfigError(f"at most {MAX_THRESHOLDS} thresholds, got {len(values)}")
    for t in values:
        if not (t > 0 and t < float("inf")):
            raise ConfigError(f"thresholds must be positive and finite, got {t}")
    for a, b in zip(values, values[1:]):
        if not a > b:
            raise ConfigError(f"thresholds must be strictly decreasing, got {list(values)}")
    return values
