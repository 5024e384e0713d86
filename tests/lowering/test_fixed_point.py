"""Loihi fixed point: the rounding and format helpers of toolchain.lowering.fixed_point against exact
rationals and brute force."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from toolchain.lowering.fixed_point import (Overflow, bias_value, quantize_weights, round_half_away, scale_by_exponent,
                                            shift_round, to_bias_format)


def _ref_round(x: Fraction) -> int:
    """Round half away from zero on exact rationals."""
    sign = -1 if x < 0 else 1
    return sign * int(abs(x) + Fraction(1, 2))


def test_round_half_away_table():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, -0.49, 1.2, -1.7, 0.0, 126.5, -127.5])
    expected = [1, 2, 3, -1, -2, -3, 0, 0, 1, -2, 0, 127, -128]
    assert round_half_away(x).tolist() == expected
    # numpy's own rounding is banker's rounding: the helper must differ from it on halves
    assert np.round(np.array([0.5, 2.5])).tolist() == [0.0, 2.0]


def test_round_half_away_matches_exact_rationals():
    rng = np.random.default_rng(1)
    num = rng.integers(-4000, 4000, size=500)
    den = rng.choice([1, 2, 4, 8, 16, 3], size=500)
    got = round_half_away(num / den)
    want = [_ref_round(Fraction(int(n), int(d))) for n, d in zip(num, den)]
    assert got.tolist() == want


def test_shift_round_halves_away_from_zero():
    v = np.array([5, -5, 3, -3, 1, -1, 0, 4, -4, 6, -6, 7, -7])
    assert shift_round(v, 1).tolist() == [3, -3, 2, -2, 1, -1, 0, 2, -2, 3, -3, 4, -4]
    assert shift_round(v, 0).tolist() == v.tolist()
    # 6/4 = 1.5 -> 2, -6/4 -> -2, 5/4 = 1.25 -> 1, 7/4 = 1.75 -> 2
    assert shift_round(np.array([6, -6, 5, -5, 7, -7]), 2).tolist() == [2, -2, 1, -1, 2, -2]
    # per-element shifts
    assert shift_round(np.array([10, 10, 10, -10]), np.array([0, 1, 2, 3])).tolist() == [10, 5, 3, -1]
    # large int64 values stay exact
    big = np.array([2 ** 40 + 2 ** 9, -(2 ** 40 + 2 ** 9)])
    assert shift_round(big, 10).tolist() == [2 ** 30 + 1, -(2 ** 30 + 1)]


def test_shift_round_matches_exact_rationals():
    rng = np.random.default_rng(2)
    v = rng.integers(-10 ** 7, 10 ** 7, size=400)
    s = rng.integers(0, 12, size=400)
    got = shift_round(v, s)
    want = [_ref_round(Fraction(int(a), 2 ** int(b))) for a, b in zip(v, s)]
    assert got.tolist() == want


def test_scale_by_exponent():
    v = np.array([3, -3, 5, 0, -1])
    assert scale_by_exponent(v, 0).tolist() == [3, -3, 5, 0, -1]
    assert scale_by_exponent(v, 3).tolist() == [24, -24, 40, 0, -8]
    assert scale_by_exponent(v, -1).tolist() == [2, -2, 3, 0, -1]
    assert scale_by_exponent(v, -3).tolist() == [0, 0, 1, 0, 0]
    assert scale_by_exponent(np.array([12, -12]), -3).tolist() == [2, -2]     # 1.5 -> 2


@pytest.mark.parametrize("peak,exp", [(127.0, 0), (127.4, 0), (127.5, 1), (128.0, 1), (254.0, 1), (254.9, 1),
                                      (255.0, 2), (16256.0, 7)])
def test_quantize_weights_smallest_exponent(peak, exp):
    over = Overflow()
    values = np.array([peak, -peak / 3, 0.7, -0.2])
    mant, e = quantize_weights(values, 8, over)
    assert e == exp
    assert over.count == 0 and over.worst == 0.0
    assert mant.dtype.kind == "i" and np.abs(mant).max() <= 127
    assert mant.tolist() == round_half_away(values / 2 ** exp).astype(int).tolist()
    if exp > 0:   # one exponent less would not fit
        assert round_half_away(np.array(peak / 2 ** (exp - 1))) > 127


def test_quantize_weights_negative_peak_and_small_mantissas():
    over = Overflow()
    mant, e = quantize_weights(np.array([-300.0, 10.0]), 8, over)
    assert e == 2 and mant.tolist() == [-75, 3]   # -75, 2.5 -> 3
    mant, e = quantize_weights(np.array([3.5, -1.5]), 3, over)   # 3-bit: limit 3
    assert e == 1 and mant.tolist() == [2, -1]    # 1.75 -> 2, -0.75 -> -1
    mant, e = quantize_weights(np.array([1.6, -0.6]), 2, over)   # 2-bit: limit 1
    assert e == 1 and mant.tolist() == [1, 0]     # 0.8 -> 1, -0.3 -> 0
    assert over.count == 0


def test_quantize_weights_saturates_and_counts():
    over = Overflow()
    values = np.array([20000.0, -30000.0, 100.0, 16256.0])
    mant, e = quantize_weights(values, 8, over)
    assert e == 7
    # 20000/128 = 156.25 -> 156; -30000/128 = -234.4 -> -234: both counted, worst in mantissa units
    assert over.count == 2 and over.worst == 234.0
    assert mant[0] == 127 and mant[1] in (-127, -128) and mant[2] == 1 and mant[3] == 127
    # a second call accumulates into the same Overflow
    quantize_weights(np.array([40000.0]), 8, over)
    assert over.count == 3 and over.worst == 313.0          # 312.5 -> 313
    assert over.to_dict() == {"count": 3, "worst": 313.0}


def test_quantize_weights_negative_exponents():
    over = Overflow()
    mant, e = quantize_weights(np.array([0.3, -0.1]), 8, over, exp_min=-8)
    assert e == -8 and mant.tolist() == [77, -26]        # 76.8, -25.6
    mant, e = quantize_weights(np.array([1.0]), 8, over, exp_min=-8)
    assert e == -6 and mant.tolist() == [64]             # 256, 128 do not fit; 64 does
    mant, e = quantize_weights(np.array([0.0, 0.0]), 8, over, exp_min=-8)
    assert e == -8 and mant.tolist() == [0, 0]
    mant, e = quantize_weights(np.array([]), 8, over)
    assert e == 0 and mant.size == 0
    assert over.count == 0


def _ref_bias(v: int) -> tuple[int, int]:
    for e in range(8):
        m = _ref_round(Fraction(v, 2 ** e))
        if abs(m) <= 4095:
            return m, e
    return max(-4096, min(4095, m)), 7


def test_to_bias_format_per_element():
    values = np.array([0, 4095, -4095, 4096, -4096, 8190, 8191, 8193, 524160, -524160, 100000, -3])
    over = Overflow()
    mant, exp = to_bias_format(values, over)
    assert exp.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 7, 7, 5, 0]
    assert mant.tolist() == [0, 4095, -4095, 2048, -2048, 4095, 2048, 2048, 4095, -4095, 3125, -3]
    assert over.count == 0
    assert np.abs(bias_value(mant, exp) - values).max() <= 2  # rounding error <= 2**(e-1)


def test_to_bias_format_matches_brute_force():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.integers(-600000, 600000, 300), rng.integers(-9000, 9000, 300)])
    over = Overflow()
    mant, exp = to_bias_format(values, over)
    want = [_ref_bias(int(v)) for v in values]
    assert mant.tolist() == [m for m, _ in want]
    assert exp.tolist() == [e for _, e in want]
    assert exp.min() >= 0 and exp.max() <= 7 and np.abs(mant).max() <= 4096
    fits = np.abs(values) <= 4095 * 128 + 63
    assert np.all(np.abs(bias_value(mant, exp)[fits] - values[fits]) <= (1 << exp[fits]) // 2)


def test_to_bias_format_saturates():
    over = Overflow()
    mant, exp = to_bias_format(np.array([10 ** 6, -(10 ** 6), 600000, 5]), over)
    # 10**6 / 128 = 7812.5 -> 7813; 600000 / 128 = 4687.5 -> 4688
    assert exp.tolist() == [7, 7, 7, 0]
    assert mant[0] == 4095 and mant[1] in (-4095, -4096) and mant[2] == 4095 and mant[3] == 5
    assert over.count == 3 and over.worst == 7813.0
