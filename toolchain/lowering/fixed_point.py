"""The integer helpers of Loihi fixed point that the quantizer and every exact simulator share:
rounding, exponent shifts, the bias format, weight quantization and overflow bookkeeping (the
formats' ranges themselves are :mod:`toolchain.ir.limits`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.limits import BIAS_EXP_MAX, BIAS_MANT_BITS, WEIGHT_EXP_MAX


@dataclass
class Overflow:
    """Values that did not fit their format: how many and the worst (in the format's own units)."""

    count: int = 0
    worst: float = 0.0

    def add(self, values: np.ndarray, limit: float) -> None:
        over = np.abs(values) > limit
        if over.any():
            self.count += int(over.sum())
            self.worst = max(self.worst, float(np.abs(values[over]).max()))

    def to_dict(self) -> dict[str, float]:
        return {"count": self.count, "worst": self.worst}


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (the rounding used for every quantization)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def shift_round(values: np.ndarray, shift: np.ndarray | int) -> np.ndarray:
    """Integer division by 2**shift, rounding halves away from zero: sign(v) * ((|v| + 2**(s-1)) >> s)."""
    values = np.asarray(values, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    half = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)
    return np.sign(values) * np.right_shift(np.abs(values) + half, shift)


def quantize_weights(values: np.ndarray, mant_bits: int, overflow: Overflow,
                     exp_max: int = WEIGHT_EXP_MAX, exp_min: int = 0) -> tuple[np.ndarray, int]:
    """W ~= m * 2**e with m a signed ``mant_bits`` integer and the smallest e in exp_min..exp_max that fits.

    Values beyond (2**(mant_bits-1) - 1) * 2**exp_max saturate and are counted in ``overflow``.
    """
    limit = 2 ** (mant_bits - 1) - 1
    peak = float(np.abs(values).max()) if values.size else 0.0
    exp = exp_min
    while exp < exp_max and round_half_away(np.array(peak / 2 ** exp)) > limit:
        exp += 1
    scaled = round_half_away(values / 2 ** exp)
    overflow.add(scaled, limit)
    return np.clip(scaled, -limit - 1, limit).astype(np.int32), exp


def to_bias_format(values: np.ndarray, overflow: Overflow) -> tuple[np.ndarray, np.ndarray]:
    """Per-element bias mantissa (13-bit signed) and exponent (0..7): the smallest exponent that fits."""
    values = np.asarray(values, dtype=np.int64)
    limit = 2 ** (BIAS_MANT_BITS - 1) - 1
    exp = np.zeros(values.shape, dtype=np.int64)
    for _ in range(BIAS_EXP_MAX):
        too_big = np.abs(shift_round(values, exp)) > limit
        if not too_big.any():
            break
        exp = np.where(too_big, exp + 1, exp)
    mant = shift_round(values, exp)
    overflow.add(mant.astype(np.float64), limit)
    return np.clip(mant, -limit - 1, limit), exp


def scale_by_exponent(values: np.ndarray, exp: int) -> np.ndarray:
    """values * 2**exp for integer values: a left shift, or a rounding right shift for exp < 0."""
    values = np.asarray(values, dtype=np.int64)
    return values << exp if exp >= 0 else shift_round(values, -exp)


def bias_value(mant: np.ndarray, exp: np.ndarray) -> np.ndarray:
    """The integer current a bias contributes every step: m * 2**e."""
    return np.asarray(mant, dtype=np.int64) << np.asarray(exp, dtype=np.int64)
