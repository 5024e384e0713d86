"""Loihi fixed point: the rounding / format helpers of toolchain.lowering.fixed_point and the quantizer
(toolchain.lowering.quantize) on a tiny converted U-Net: thresholds, exponents, mantissas, errors, overflow."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.errors import ExportError
from toolchain.ir import Accumulator, Concat, Conv, ConvTranspose, Input, MultiThreshold, QuantizedNetwork, SumPool
from toolchain.lowering.lower import export_network
from toolchain.lowering.fixed_point import (Overflow, bias_value, quantize_weights, round_half_away, scale_by_exponent,
                                            shift_round, to_bias_format)
from toolchain.lowering.quantize import QuantSettings
from toolchain.frontend.unet import UNet, UNetConfig


# ---------------------------------------------------------------------------------------------
# fixed_point helpers


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


# ---------------------------------------------------------------------------------------------
# quantize() on a tiny converted U-Net

CONFIG = UNetConfig("denoise", 1, 1, width=4, depth=2)
HW = (16, 16)


def _snn(thresholds=(2.0, 1.0, 0.5, 0.25), seed=0):
    torch.manual_seed(seed)
    ann = UNet(CONFIG)
    calib = torch.rand(4, 1, *HW)
    return convert(ann, calib, ConversionSettings(thresholds=tuple(thresholds)))


@pytest.fixture(scope="module")
def converted():
    return _snn()


@pytest.fixture(scope="module")
def exported(converted):
    snn, info = converted
    network, reports = export_network(snn, info, HW, QuantSettings(steps=4))
    return network, {r.name: r for r in reports}


def test_integer_thresholds(exported):
    network, _ = exported
    mt = [l for l in network.neuron_layers if isinstance(l.neuron, MultiThreshold)]
    assert len(mt) == 14
    for layer in mt:
        th = layer.neuron.thresholds
        smallest = th[-1]
        assert all(isinstance(t, int) for t in th)
        assert tuple(th) == tuple(r * smallest for r in (8, 4, 2, 1)), layer.name
        assert smallest >= 4096 and (smallest & (smallest - 1)) == 0       # theta_unit times a power of two
        for t in th:
            assert t % 64 == 0 and (t >> 6) < 2 ** 17
        assert th[0] <= 2 ** 20 or smallest == 4096
        # the smallest threshold is theta_N(float) = 0.25 times the layer's unit
        assert smallest == int(round(0.25 * layer.synapses.unit))
    assert isinstance(network.output.neuron, Accumulator)


def test_weight_mantissas_and_exponents(exported):
    network, reports = exported
    for layer in network.neuron_layers:
        syn = layer.synapses
        w = np.asarray(syn.weight)
        assert w.dtype.kind == "i", layer.name
        assert np.abs(w).max() <= 127, layer.name
        if not (isinstance(layer, Conv) and layer.static):
            assert all(0 <= e <= 7 for e in syn.weight_exp), layer.name
        else:
            assert all(-8 <= e <= 7 for e in syn.weight_exp)
        assert reports[layer.name].weight_overflow.count == 0
        assert reports[layer.name].bias_overflow.count == 0
        assert np.abs(syn.bias).max() <= 4095 and syn.bias_exp.min() >= 0 and syn.bias_exp.max() <= 7
        assert list(reports[layer.name].weight_exp) == list(syn.weight_exp)


def test_per_part_exponents_after_concats(exported):
    network, _ = exported
    concats = [l for l in network if isinstance(l, Concat)]
    assert [c.name for c in concats] == ["concat0", "concat1"]
    after = [l for l in network if l.inputs and isinstance(network[l.inputs[0]], Concat)]
    assert [l.name for l in after] == ["ups.0.convs.conv1", "ups.1.convs.conv1"]
    for layer in network.neuron_layers:
        assert len(layer.synapses.weight_exp) == (2 if layer in after else 1), layer.name


def test_weights_match_float_within_rounding(converted, exported):
    """m * 2**e reproduces W * v_src * U to within half a step, with the smallest exponent that fits."""
    snn, _ = converted
    network, reports = exported
    float_net = snn.to_network(HW)
    worst = 0.0
    for layer in network.neuron_layers:
        flt, syn = float_net[layer.name], layer.synapses
        static = isinstance(layer, Conv) and layer.static
        exact = np.zeros(np.shape(syn.weight))
        approx = np.zeros(np.shape(syn.weight))
        if isinstance(layer, SumPool):
            exact[:] = flt.pool_weight * 0.25 * syn.unit
            approx[:] = syn.weight * 2.0 ** syn.weight_exp[0]
            parts = [((slice(None),), syn.weight_exp[0])]
        else:
            srcs = [(network.input, 0)] if static else [(p, off) for p, _, off in network.parts(layer)]
            parts = []
            for (src, off), e in zip(srcs, syn.weight_exp):
                c = src.shape[0]
                idx = (slice(off, off + c),) if isinstance(layer, ConvTranspose) else (slice(None), slice(off, off + c))
                v_src = 1 / 255 if isinstance(src, Input) else 0.25
                exact[idx] = flt.synapses.weight[idx].astype(np.float64) * v_src * syn.unit
                approx[idx] = syn.weight[idx] * 2.0 ** e
                parts.append((idx, e))
        for idx, e in parts:
            assert np.abs(approx[idx] - exact[idx]).max() <= 2.0 ** (e - 1) * (1 + 1e-9), layer.name
            lowest = -8 if static else 0
            if e > lowest:    # one exponent less would overflow the 8-bit mantissa
                assert round_half_away(np.abs(exact[idx]).max() / 2.0 ** (e - 1)) > 127, layer.name
        rel = np.linalg.norm(approx - exact) / np.linalg.norm(exact)
        assert rel == pytest.approx(reports[layer.name].weight_error, rel=1e-6, abs=1e-12)
        worst = max(worst, rel)
        # biases: m_b * 2**e_b reproduces b * U to within half a step (plus the integer rounding)
        b_float = flt.synapses.bias
        b_exact = (np.zeros(layer.shape[0]) if b_float is None else b_float.astype(np.float64)) * syn.unit
        err = np.abs(bias_value(syn.bias, syn.bias_exp) - b_exact)
        assert np.all(err <= 2.0 ** (syn.bias_exp - 1) + 0.5 + 1e-6), layer.name
    assert worst < 0.012          # 8-bit weights: < 1.2 % relative (Frobenius) error per layer


def test_output_unit_keeps_the_accumulator_in_range(converted, exported):
    _, info = converted
    network, _ = exported
    head = network.output.synapses
    unit = head.unit
    assert unit == 2.0 ** round(np.log2(unit))
    assert info["output_abs_max"] * 4 * unit <= 2 ** 22      # T = 4 steps of the calibrated peak fit
    # the largest such power of two, unless the head's weights would no longer fit 8 bits at 2 * unit
    doubled_overflows = head.weight_exp == (7,) and 2 * np.abs(head.weight).max() > 127
    assert info["output_abs_max"] * 4 * unit * 2 > 2 ** 22 or doubled_overflows


def test_fewer_bits_give_larger_errors(converted):
    snn, info = converted
    errors = {}
    for bits, theta_unit in ((8, 4096), (6, 4096), (4, 512), (3, 256)):
        _, reports = export_network(snn, info, HW, QuantSettings(weight_bits=bits, theta_unit=theta_unit, steps=4))
        errors[bits] = max(r.weight_error for r in reports)
        assert sum(r.weight_overflow.count for r in reports) == 0, bits
    assert errors[8] < errors[6] < errors[4] < errors[3]
    assert errors[6] > 0.015 and errors[3] > 0.1


def test_low_bits_at_the_default_theta_unit_saturate_and_say_so(converted):
    """The unit is only ever raised from theta_unit: 4-bit weights of this net do not fit 7 * 2**7 and
    saturate; the report must count them (and strict must refuse) rather than hide them."""
    snn, info = converted
    _, reports = export_network(snn, info, HW, QuantSettings(weight_bits=4, steps=4))
    over = {r.name: r.weight_overflow for r in reports if r.weight_overflow.count}
    assert over and all(o.worst > 7 for o in over.values())
    with pytest.raises(ExportError, match="weights and"):
        export_network(snn, info, HW, QuantSettings(weight_bits=4, steps=4, strict=True))


def _export_modified(converted, edit, strict=False):
    snn, info = converted
    state = {k: v.clone() for k, v in snn.core.state_dict().items()}
    try:
        with torch.no_grad():
            edit(snn.core)
        return export_network(snn, info, HW, QuantSettings(steps=4, strict=strict))
    finally:
        snn.core.load_state_dict(state)


def test_huge_weight_is_counted_and_saturated(converted):
    def edit(core):
        core.encoders[1].conv1.weight[0, 0, 0, 0] = 1e4

    network, reports = _export_modified(converted, edit)
    rep = {r.name: r for r in reports}
    hit = rep["encoders.1.conv1"]
    assert hit.weight_overflow.count == 1
    expected_worst = float(round_half_away(np.array(1e4 * 0.25 * hit.unit / 2 ** 7)))
    assert hit.weight_exp == (7,) and hit.weight_overflow.worst == expected_worst
    assert network["encoders.1.conv1"].synapses.weight[0, 0, 0, 0] == 127
    assert hit.weight_error > 0.5
    assert all(r.weight_overflow.count == 0 for r in reports if r.name != "encoders.1.conv1")
    with pytest.raises(ExportError, match=r"layer encoders\.1\.conv1: 1 weights"):
        _export_modified(converted, edit, strict=True)


def test_huge_bias_is_counted_and_strict_raises(converted):
    def edit(core):
        core.bottleneck.conv2.bias[3] = -1e4

    _, reports = _export_modified(converted, edit)
    rep = {r.name: r for r in reports}
    assert rep["bottleneck.conv2"].bias_overflow.count == 1
    assert rep["bottleneck.conv2"].bias_overflow.worst > 4095
    assert sum(r.bias_overflow.count for r in reports) == 1
    with pytest.raises(ExportError, match=r"bottleneck\.conv2: 0 weights and 1 biases overflow"):
        _export_modified(converted, edit, strict=True)


def test_strict_passes_a_network_that_fits(converted):
    snn, info = converted
    network, _ = export_network(snn, info, HW, QuantSettings(steps=4, strict=True))
    assert isinstance(network, QuantizedNetwork)


def test_non_integer_threshold_ratio_is_refused():
    snn, info = _snn(thresholds=(1.0, 0.3))
    with pytest.raises(ExportError, match=r"threshold 1\.0 is not an integer multiple of the smallest threshold 0\.3"):
        export_network(snn, info, HW, QuantSettings(steps=4))


def test_integer_ratio_that_is_not_a_power_of_two_is_accepted():
    snn, info = _snn(thresholds=(1.5, 0.5))
    network, _ = export_network(snn, info, HW, QuantSettings(steps=4))
    for layer in network.neuron_layers[:-1]:
        assert layer.neuron.thresholds == (3 * layer.neuron.thresholds[1], layer.neuron.thresholds[1])


def test_threshold_beyond_17_bits_is_refused(converted):
    snn, info = converted
    network, _ = export_network(snn, info, HW, QuantSettings(steps=4, theta_unit=2 ** 19))
    assert max(l.neuron.thresholds[0] for l in network.neuron_layers[:-1]) == 2 ** 22
    with pytest.raises(ExportError, match="exceeds the 17-bit"):
        export_network(snn, info, HW, QuantSettings(steps=4, theta_unit=2 ** 20))


def test_quantizing_twice_is_refused(exported):
    from toolchain.lowering.quantize import quantize
    network, _ = exported
    with pytest.raises(ExportError, match="quantize takes a float network, got a QuantizedNetwork"):
        quantize(network, network.meta, QuantSettings(), 1.0)


@pytest.mark.parametrize("kwargs,match", [
    ({"weight_bits": 1}, "weight bits"), ({"weight_bits": 9}, "weight bits"),
    ({"theta_unit": 100}, "theta unit"), ({"theta_unit": 0}, "theta unit"), ({"theta_unit": -64}, "theta unit"),
])
def test_quant_settings_validation(kwargs, match):
    with pytest.raises(ExportError, match=match):
        QuantSettings(**kwargs)


def test_quant_settings_accepts_the_edges():
    assert QuantSettings(weight_bits=2).weight_bits == 2
    assert QuantSettings(weight_bits=8, theta_unit=64).theta_unit == 64
