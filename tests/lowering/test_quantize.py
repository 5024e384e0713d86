"""The quantizer (toolchain.lowering.quantize) on a tiny converted U-Net: thresholds, exponents, mantissas,
errors, overflow. The rounding and format helpers of toolchain.lowering.fixed_point: test_fixed_point.py."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.errors import ExportError
from toolchain.ir import Accumulator, Concat, Conv, ConvTranspose, Input, MultiThreshold, QuantizedNetwork, SumPool
from toolchain.lowering.lower import export_network
from toolchain.lowering.fixed_point import (bias_value, round_half_away)
from toolchain.lowering.quantize import QuantSettings
from toolchain.frontend.unet import UNet, UNetConfig


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
