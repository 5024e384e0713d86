"""The integer reference simulator on exported U-Nets: (b) the two MT lowerings agree, (c) float32 and
float64 kernels give identical results, (d) the quantized network approximates the float SNN, (e) the
spike recording (the loop oracle and hand-built networks: test_refsim.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.ir import Conv, ConvTranspose, MultiThreshold, SumPool, SynapticLayer
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings
from toolchain.simulators.kernels import exact_dtype, part_weight
from toolchain.simulators.reference import ReferenceSimulator


def _export(config, hw, lowering="compartments", seed=0, steps=4, weight_bits=8, thresholds=(2.0, 1.0, 0.5, 0.25)):
    torch.manual_seed(seed)
    ann = UNet(config)
    calib = torch.rand(4, config.in_channels, *hw)
    snn, info = convert(ann, calib, ConversionSettings(thresholds=thresholds))
    network, _ = export_network(snn, info, hw, QuantSettings(steps=steps, weight_bits=weight_bits), lowering=lowering)
    return network, snn


# --- (b) the two lowerings, (c) float32 vs float64

CASES = {"gray-d1": (UNetConfig("denoise", 1, 1, width=4, depth=1), (8, 12)),
         "gray-d2": (UNetConfig("denoise", 1, 1, width=4, depth=2), (16, 16)),
         "color-d1": (UNetConfig("segment", 3, 2, width=4, depth=1), (12, 8)),
         "color-d2": (UNetConfig("segment", 3, 2, width=4, depth=2), (16, 12))}


@pytest.fixture(scope="module")
def lowered():
    return {name: {lw: _export(config, hw, lowering=lw, seed=11)[0] for lw in ("compartments", "graded")}
            for name, (config, hw) in CASES.items()}


def _assert_same(a, b):
    np.testing.assert_array_equal(a.accumulator, b.accumulator)
    np.testing.assert_array_equal(a.output, b.output)
    assert a.spike_counts == b.spike_counts and a.saturations == b.saturations
    assert set(a.spikes) == set(b.spikes)
    for k in a.spikes:
        np.testing.assert_array_equal(a.spikes[k], b.spikes[k], err_msg=k)


@pytest.mark.parametrize("case", list(CASES))
def test_lowerings_agree(lowered, case):
    comp, grad = lowered[case]["compartments"], lowered[case]["graded"]
    assert comp.meta.lowering == "compartments" and grad.meta.lowering == "graded"
    assert comp.lowering == "compartments" and grad.lowering == "graded"
    for a, b in zip(comp, grad):         # lowering does not change quantization
        assert type(a) is type(b) and a.name == b.name
        if isinstance(a, SynapticLayer):
            assert a.neuron == b.neuron and a.synapses.weight_exp == b.synapses.weight_exp
            assert np.array_equal(a.synapses.weight, b.synapses.weight) and a.synapses.unit == b.synapses.unit
    images = np.random.default_rng(1).integers(0, 256, (2, *comp.input.shape)) / 255.0
    a = ReferenceSimulator(comp).run(images, 6, record="spikes")
    b = ReferenceSimulator(grad).run(images, 6, record="spikes")
    assert ReferenceSimulator(grad).lowering == "graded"
    _assert_same(a, b)
    assert sum(map(sum, a.spike_counts.values())) > 0
    # the override of the file's lowering
    _assert_same(ReferenceSimulator(comp, "graded").run(images, 6, record="spikes"), a)


@pytest.mark.parametrize("case", ["gray-d2", "color-d1"])
def _chosen_dtypes(net):
    """The dtypes the exact kernels choose for the graded lowering's synapse groups (payloads up to sum(r_i))."""
    seen = set()
    for layer in net.synaptic_layers:
        if isinstance(layer, Conv) and layer.static:
            continue
        for src, _, offset in net.parts(layer):
            weight = part_weight(layer, offset, src.shape[0])
            kh, kw = layer.kernel
            fan_in = kh * kw if isinstance(layer, SumPool) else \
                weight.shape[0 if isinstance(layer, ConvTranspose) else 1] * kh * kw
            seen.add(exact_dtype(weight, sum(src.neuron.spike_weights()), fan_in))
    return seen


@pytest.mark.parametrize("case", ["gray-d2", "color-d1"])
def test_float64_path_gives_identical_results(lowered, case):
    net = lowered[case]["graded"]
    images = np.random.default_rng(2).integers(0, 256, (2, *net.input.shape)) / 255.0
    assert torch.float32 in _chosen_dtypes(net)        # the default run really takes the fast path somewhere
    fast = ReferenceSimulator(net).run(images, 5, record="spikes")
    exact = ReferenceSimulator(net, float64=True)      # every convolution in float64
    assert exact.float64 and not ReferenceSimulator(net).float64
    _assert_same(fast, exact.run(images, 5, record="spikes"))


def test_exact_dtype_boundary():     # 127 * 255 * 518 < 2**24 <= 127 * 255 * 519
    assert [exact_dtype(np.array([-127]), 255, n) for n in (518, 519)] == [torch.float32, torch.float64]
    assert [exact_dtype(np.ones(1), 2 ** 24 - d, 1) for d in (1, 0)] == [torch.float32, torch.float64]


# --- (d) quantized vs float SNN

def _relative_error(config, hw, weight_bits, steps=8):
    net, snn = _export(config, hw, seed=0, steps=steps, weight_bits=weight_bits)
    images = np.random.default_rng(0).integers(0, 256, (2, config.in_channels, *hw)) / 255.0
    q = ReferenceSimulator(net).run(images, steps)
    f = snn.simulate(torch.from_numpy(images).float(), steps)
    fo = f.output.double().numpy()
    err = np.abs(q.output - fo).mean() / np.abs(fo).mean()
    return err, sum(map(sum, q.spike_counts.values())) / sum(sum(s.counts) for s in f.stats) - 1.0


@pytest.mark.parametrize("config", [UNetConfig("denoise", 1, 1, width=4, depth=2),
                                    UNetConfig("segment", 3, 2, width=4, depth=1)], ids=["gray", "color"])
def test_quantized_matches_float_snn(config):
    # measured (seeds 0-3): 8-bit mean abs error 0.07 %..1.1 % of mean |output|, spikes within 0.25 %;
    # 2-bit 4 %..19 %
    err8, spikes8 = _relative_error(config, (16, 16), 8)
    assert err8 < 0.03 and abs(spikes8) < 0.02
    err2, _ = _relative_error(config, (16, 16), 2)
    assert err2 > 5 * err8 and err2 > 0.02


# --- (e) recording

def test_record_shapes_and_sums(lowered):
    net = lowered["color-d2"]["compartments"]
    images = np.random.default_rng(3).integers(0, 256, (3, *net.input.shape)) / 255.0
    res = ReferenceSimulator(net).run(images, 4, record="spikes")
    mt = [l for l in net.neuron_layers if isinstance(l.neuron, MultiThreshold)]
    assert set(res.spikes) == {l.name for l in mt}
    for layer in mt:
        s = res.spikes[layer.name]
        assert s.shape == (4, 4, 3, *layer.shape) and s.dtype == np.uint8
        assert set(np.unique(s)) <= {0, 1}
        assert s.sum(axis=(0, 2, 3, 4, 5)).tolist() == res.spike_counts[layer.name]
    assert ReferenceSimulator(net).run(images, 4).spikes == {}
    assert res.output.shape == res.accumulator.shape == (3, 2, *net.input.shape[1:])
