"""The integer reference simulator, checked against a slow loop implementation of its docstring's
arithmetic (hand-built and traced networks, the exact synapse kernels, the static current); strict
thresholds, saturation and errors. The two MT lowerings, float32 vs float64, quantized vs float SNN and
recording on exported U-Nets: test_refsim_unets.py; graph depths, concat delays and resize of traced
U-Nets: tests/ir/test_unet_graph.py."""
from __future__ import annotations

from dataclasses import replace
from itertools import product

import numpy as np
import pytest
import torch

from toolchain.errors import ConfigError
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.ir import (Accumulator, Concat, Conv, ConvTranspose, FixedSynapses, FloatNetwork, FloatSynapses, Input,
                          MultiThreshold, NetworkMeta, QuantizedNetwork, SumPool, SynapticLayer, assign_depths)
from toolchain.lowering.fixed_point import Overflow
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings
from toolchain.simulators.kernels import SynapseOp, static_current, synapse_current
from toolchain.simulators.reference import ReferenceSimulator

V_LIMIT = 2 ** 23 - 1


# --- The slow oracle: explicit loops over pixels and kernel taps, Python integers throughout.

def _round_shift(v: int, s: int) -> int:
    """v * 2**-s rounded half away from zero (s >= 0)."""
    mag = (abs(v) + (1 << (s - 1))) >> s if s else abs(v)
    return mag if v >= 0 else -mag


def _scale(v: int, e: int) -> int:
    return v << e if e >= 0 else _round_shift(v, -e)


def _to_bias(v: int) -> int:
    """The integer a value becomes in the bias format: 13-bit mantissa, smallest exponent 0..7, saturating."""
    e = next((e for e in range(8) if abs(_round_shift(v, e)) <= 4095), 7)
    return max(-4096, min(4095, _round_shift(v, e))) << e


def _conv(x, w, stride, pad):
    """x[ci][y][x] (lists), w[co][ci][ky][kx] -> out[co][y][x]; torch's conv2d (cross-correlation)."""
    cin, h, wd, cout, k = len(x), len(x[0]), len(x[0][0]), len(w), len(w[0][0])
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = [[[0] * ow for _ in range(oh)] for _ in range(cout)]
    for co, oy, ox in product(range(cout), range(oh), range(ow)):
        for ci, ky, kx in product(range(cin), range(k), range(k)):
            iy, ix = oy * stride - pad + ky, ox * stride - pad + kx
            if 0 <= iy < h and 0 <= ix < wd:
                out[co][oy][ox] += w[co][ci][ky][kx] * x[ci][iy][ix]
    return out


def _conv_t(x, w, stride, pad, out_pad):
    """Transposed convolution, w[ci][co][ky][kx]: input pixel (iy, ix) adds w * x at (iy*s - p + ky, ...)."""
    cin, h, wd, cout, k = len(x), len(x[0]), len(x[0][0]), len(w[0]), len(w[0][0])
    oh, ow = (h - 1) * stride - 2 * pad + k + out_pad, (wd - 1) * stride - 2 * pad + k + out_pad
    out = [[[0] * ow for _ in range(oh)] for _ in range(cout)]
    for ci, iy, ix in product(range(cin), range(h), range(wd)):
        for co, ky, kx in product(range(cout), range(k), range(k)):
            oy, ox = iy * stride - pad + ky, ix * stride - pad + kx
            if 0 <= oy < oh and 0 <= ox < ow:
                out[co][oy][ox] += w[ci][co][ky][kx] * x[ci][iy][ix]
    return out


def _pool(x, k, m):
    c, h, wd = len(x), len(x[0]), len(x[0][0])
    return [[[m * sum(x[ci][oy * k + dy][ox * k + dx] for dy in range(k) for dx in range(k))
              for ox in range(wd // k)] for oy in range(h // k)] for ci in range(c)]


def _add(a, b):
    return [[[p + q for p, q in zip(ra, rb)] for ra, rb in zip(ca, cb)] for ca, cb in zip(a, b)]


def _map(f, a):
    return [[[f(v) for v in row] for row in ch] for ch in a]


def _bias_map(layer):
    c, h, w = layer.shape
    syn = layer.synapses
    return [[[int(syn.bias[co]) << int(syn.bias_exp[co])] * w for _ in range(h)] for co in range(c)]


def _static(layer) -> bool:
    return isinstance(layer, Conv) and layer.static


def _side(pair) -> int:
    """One side of a square kernel / stride / padding pair (the loops below are written for squares)."""
    assert pair[0] == pair[1], pair
    return pair[0]


def oracle(network: QuantizedNetwork, levels: np.ndarray, steps: int):
    """(accumulator, spike counts per threshold, per-step spikes, saturations). The compartments lowering,
    literally: every threshold's binary spike map is a separate synapse group worth r_i * 2**e_p * m_p."""
    layers = {l.name: l for l in network.layers}
    neuron_layers = [l for l in network.layers if isinstance(l, SynapticLayer)]
    accs, saturations = [], {l.name: 0 for l in neuron_layers}
    rec = {l.name: np.zeros((steps, l.neuron.compartments, len(levels), *l.shape), np.uint8)
           for l in neuron_layers if isinstance(l.neuron, MultiThreshold)}
    for n, image in enumerate(levels):
        state = {l.name: _map(lambda _: 0, _bias_map(l)) for l in neuron_layers}
        out, static = {}, {}
        for layer in (l for l in neuron_layers if _static(l)):
            syn = layer.synapses
            conv = _conv(image.tolist(), syn.weight.tolist(), _side(layer.stride), _side(layer.padding))
            static[layer.name] = _map(_to_bias, _add(_map(lambda v: _scale(v, syn.weight_exp[0]), conv),
                                                     _bias_map(layer)))
        for t in range(steps):
            for layer in neuron_layers:
                syn = layer.synapses
                current = static.get(layer.name) or _bias_map(layer)
                src = layers[layer.inputs[0]]
                offset = 0
                for p, name in enumerate(() if _static(layer) else src.inputs if isinstance(src, Concat)
                                         else (src.name,)):
                    part, pc = layers[name], layers[name].shape[0]
                    for i, theta in enumerate(part.neuron.thresholds):
                        r, s = theta // part.neuron.thresholds[-1], out[name][i]
                        if isinstance(layer, SumPool):
                            y = _pool(s, _side(layer.kernel), int(syn.weight.reshape(-1)[0]))
                        elif isinstance(layer, Conv):
                            y = _conv(s, syn.weight[:, offset:offset + pc].tolist(), _side(layer.stride),
                                      _side(layer.padding))
                        else:
                            y = _conv_t(s, syn.weight[offset:offset + pc].tolist(), _side(layer.stride),
                                        _side(layer.padding), _side(layer.output_padding))
                        current = _add(current, _map(lambda v: v * r * 2 ** syn.weight_exp[p], y))
                    offset += pc
                v = _add(state[layer.name], current)
                saturations[layer.name] += sum(abs(x) > V_LIMIT for ch in v for row in ch for x in row)
                v = _map(lambda x: max(-V_LIMIT, min(V_LIMIT, x)), v)
                maps = []
                for i, theta in enumerate(getattr(layer.neuron, "thresholds", ())):        # ACC: no thresholds
                    s = _map(lambda x: 1 if x > theta else 0, v)
                    v = _add(v, _map(lambda q: -theta * q, s))
                    maps.append(s)
                    rec[layer.name][t, i, n] = np.array(s, dtype=np.uint8)
                state[layer.name], out[layer.name] = v, maps
        accs.append(state[network.output.name])
    counts = {name: [int(x) for x in r.sum(axis=(0, 2, 3, 4, 5))] for name, r in rec.items()}
    return np.array(accs, dtype=np.int64), counts, rec, saturations


def _levels(rng, n, shape):
    """Random 8-bit images as floats that map exactly to their levels."""
    lv = rng.integers(0, 256, size=(n, *shape))
    return lv, lv / 255.0


def _check_against_oracle(network, images_levels, images, steps, lowering):
    res = ReferenceSimulator(network, lowering).run(images, steps, record="spikes")
    acc, counts, spikes, sats = oracle(network, images_levels, steps)
    np.testing.assert_array_equal(res.accumulator, acc)
    assert res.spike_counts == counts
    for name in spikes:
        np.testing.assert_array_equal(res.spikes[name], spikes[name], err_msg=name)
    assert res.saturations == sats and set(res.spikes) == set(spikes)
    np.testing.assert_allclose(res.output, acc / (network.output.synapses.unit * steps))
    return res, counts, sats


def _fixed(weight, weight_exp, bias, bias_exp, unit=1.0):
    return FixedSynapses(weight=weight, weight_exp=weight_exp, bias=np.asarray(bias, np.int64),
                         bias_exp=np.asarray(bias_exp, np.int64), unit=unit)


def _mt(cls, name, shape, inputs, thresholds, weight, weight_exp, bias, bias_exp, **kw):
    return cls(name=name, shape=shape, inputs=inputs, neuron=MultiThreshold(thresholds),
               synapses=_fixed(weight, weight_exp, bias, bias_exp), **kw)


def _edit(network, name, **synapses):
    """The network with layer ``name``'s synapses changed (layers are frozen: a new network)."""
    layer = network[name]
    return network.with_layers([replace(l, synapses=replace(l.synapses, **synapses)) if l is layer else l
                                for l in network.layers])


def _hand_net_small(seed=0):
    """input 1x5x5 -> static conv 3x3 (2 ch, MT) -> conv 3x3 (1 ch, ACC)."""
    rng = np.random.default_rng(seed)
    th = (4 * 4096, 2 * 4096, 4096)
    layers = [
        Input(name="input", shape=(1, 5, 5)),
        _mt(Conv, "c1", (2, 5, 5), ("input",), th, rng.integers(-127, 128, (2, 1, 3, 3)).astype(np.int32), (-2,),
            [-900, 1300], [1, 0], kernel=(3, 3), padding=(1, 1), static=True),
        Conv(name="out", shape=(1, 5, 5), inputs=("c1",), neuron=Accumulator(),
             synapses=_fixed(rng.integers(-127, 128, (1, 2, 3, 3)).astype(np.int32), (3,), [-77], [2], unit=512.0),
             kernel=(3, 3), padding=(1, 1)),
    ]
    return assign_depths(QuantizedNetwork(layers, NetworkMeta(weight_bits=8)))


def _hand_net_odd(seed=1):
    """Odd geometry: a 3x3 pool, a stride-3 convT and a concat whose parts have different widths."""
    rng = np.random.default_rng(seed)
    w = lambda *s: rng.integers(-127, 128, s).astype(np.int32)
    layers = [
        Input(name="input", shape=(1, 6, 6)),
        _mt(Conv, "c1", (3, 6, 6), ("input",), (2 * 4096, 4096), w(3, 1, 3, 3), (-3,), [500, -200, 90], [0, 3, 1],
            kernel=(3, 3), padding=(1, 1), static=True),
        _mt(SumPool, "p", (3, 2, 2), ("c1",), (8 * 2048, 4 * 2048, 2 * 2048, 2048), np.array([90], np.int32), (5,),
            np.zeros(3), np.zeros(3), kernel=(3, 3)),
        _mt(ConvTranspose, "u", (2, 6, 6), ("p",), (3 * 4096, 4096), w(3, 2, 3, 3), (4,), [100, -3000], [2, 0],
            kernel=(3, 3), stride=(3, 3)),
        Concat(name="cat", shape=(5, 6, 6), inputs=("c1", "u")),
        Conv(name="out", shape=(1, 6, 6), inputs=("cat",), neuron=Accumulator(),
             synapses=_fixed(w(1, 5, 3, 3), (2, 5), [11], [0], unit=64.0), kernel=(3, 3), padding=(1, 1)),
    ]
    return assign_depths(QuantizedNetwork(layers, NetworkMeta(weight_bits=8)))


@pytest.mark.parametrize("lowering", ["compartments", "graded"])
def test_oracle_small_hand_built(lowering):
    net = _hand_net_small()
    lv, images = _levels(np.random.default_rng(5), 3, (1, 5, 5))
    res, counts, _ = _check_against_oracle(net, lv, images, 7, lowering)
    assert all(c > 0 for c in counts["c1"])          # every threshold fires somewhere
    assert np.abs(res.accumulator).max() > 0


@pytest.mark.parametrize("lowering", ["compartments", "graded"])
def test_oracle_odd_geometry_pool_convT_concat(lowering):
    net = _hand_net_odd()
    assert net["cat"].delays == (2, 0) and net["out"].depth == 3
    lv, images = _levels(np.random.default_rng(6), 2, (1, 6, 6))
    res, counts, _ = _check_against_oracle(net, lv, images, 6, lowering)
    assert all(sum(c) > 0 for c in res.spike_counts.values()) and len(res.spike_counts) == 3
    assert counts["p"][0] > 0                     # the pool's largest threshold is reached: graded payloads > 9


@pytest.mark.parametrize("kind,k,stride,pad,out_pad", [
    ("conv", 3, 1, 1, 0), ("conv", 3, 2, 1, 0), ("conv", 2, 2, 0, 0), ("convT", 3, 2, 1, 1), ("convT", 3, 3, 0, 0),
    ("convT", 2, 2, 0, 0), ("pool", 2, 2, 0, 0), ("pool", 3, 3, 0, 0), ("pool", 5, 5, 0, 0), ("pool", 7, 7, 0, 0)])
@pytest.mark.parametrize("payload_max", [1, 15, 255, 2 ** 16 - 1])   # the last: float64 path
def test_synapse_matches_loops(kind, k, stride, pad, out_pad, payload_max):
    """Single synapse groups on random integer payloads (float32 and float64 paths) against the loops.

    Pools of kernel 5 and 7 catch window sums computed as mean * k**2, which is not exact in floating point.
    """
    rng = np.random.default_rng(payload_max + k)
    geometry = {"conv": dict(stride=(stride, stride), padding=(pad, pad)), "pool": {},
                "convT": dict(stride=(stride, stride), padding=(pad, pad), output_padding=(out_pad, out_pad))}[kind]
    cls = {"conv": Conv, "convT": ConvTranspose, "pool": SumPool}[kind]
    layer = cls(name="s", shape=(1, 1, 1), inputs=("x",), neuron=MultiThreshold((1,)),
                synapses=_fixed(np.zeros(1, np.int32), (0,), [0], [0]), kernel=(k, k), **geometry)
    op = SynapseOp.of(layer)
    assert (op.kind, op.kernel, op.stride) == (kind, (k, k), (stride, stride))
    x = rng.integers(0, payload_max + 1, (2, 3, 14, 14) if kind == "pool" else (2, 3, 9, 9))
    if kind == "pool":
        weight = np.array([rng.integers(1, 128)], np.int32)
        want = [_pool(img.tolist(), k, int(weight[0])) for img in x]
    elif kind == "conv":
        weight = rng.integers(-128, 128, (4, 3, k, k)).astype(np.int32)
        want = [_conv(img.tolist(), weight.tolist(), stride, pad) for img in x]
    else:
        weight = rng.integers(-128, 128, (3, 4, k, k)).astype(np.int32)
        want = [_conv_t(img.tolist(), weight.tolist(), stride, pad, out_pad) for img in x]
    got = synapse_current(op, torch.from_numpy(x), weight, payload_max)
    assert got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), np.array(want, dtype=np.int64))
    forced = synapse_current(op, torch.from_numpy(x), weight, payload_max, float64=True)    # the float64 path
    assert forced.dtype == torch.int64
    np.testing.assert_array_equal(forced.numpy(), np.array(want, dtype=np.int64))


@pytest.mark.parametrize("exp", [-3, 0, 4])
def test_static_current_matches_loops(exp):
    """conv(levels, m) * 2**e + bias, rounded (halves away) into the 13-bit-mantissa bias format, saturating."""
    layer = _edit(_hand_net_small(), "c1", weight_exp=(exp,))["c1"]
    syn = layer.synapses
    levels, over = np.random.default_rng(exp + 10).integers(0, 256, (3, 1, 5, 5)), Overflow()
    got = static_current(layer, levels, over).numpy()
    want = []
    for img in levels:
        conv = _conv(img.tolist(), syn.weight.tolist(), 1, 1)
        want.append([[[_to_bias(_scale(v, exp) + (int(syn.bias[c]) << int(syn.bias_exp[c]))) for v in row]
                      for row in conv[c]] for c in range(2)])
    np.testing.assert_array_equal(got, np.array(want))
    np.testing.assert_array_equal(static_current(layer, levels, Overflow(), float64=True).numpy(), got)
    assert (np.abs(got) > 4095).any()                    # the exponent part of the format is exercised
    assert (over.count > 0) == (exp == 4)                # 2**4 * |conv| reaches beyond 4095 * 2**7


def test_equal_to_threshold_does_not_fire():
    """A constant current of exactly theta_N: V = theta_N does not fire (strict H), 2 theta_N fires once."""
    net = _edit(_hand_net_small(), "c1", weight=np.zeros((2, 1, 3, 3), np.int32), bias=np.full(2, 2048),
                bias_exp=np.full(2, 1))                                           # 2048 << 1 = 4096 = theta_N
    lv, images = _levels(np.random.default_rng(0), 1, (1, 5, 5))
    res, _, _ = _check_against_oracle(net, lv, images, 6, "compartments")
    # V: 4096 (no spike), 8192 -> only theta_N fires (8192 > 8192 is false for theta_2), 4096, 8192 ...
    assert res.spike_counts["c1"] == [0, 0, 50 * 5]


def _export(config, hw, lowering="compartments", seed=0, steps=4, weight_bits=8, thresholds=(2.0, 1.0, 0.5, 0.25)):
    torch.manual_seed(seed)
    ann = UNet(config)
    calib = torch.rand(4, config.in_channels, *hw)
    snn, info = convert(ann, calib, ConversionSettings(thresholds=thresholds))
    network, _ = export_network(snn, info, hw, QuantSettings(steps=steps, weight_bits=weight_bits), lowering=lowering)
    return network, snn


def test_oracle_traced_unet_depth1():
    """A traced width-2 depth-1 U-Net: static conv, conv, pool, convT, concat, ACC head."""
    net, _ = _export(UNetConfig("denoise", 1, 1, width=2, depth=1), (6, 6), seed=3)
    assert {SumPool, ConvTranspose, Concat} <= {type(l) for l in net}
    lv, images = _levels(np.random.default_rng(7), 2, (1, 6, 6))
    for lowering in ("compartments", "graded"):
        _, counts, _ = _check_against_oracle(net, lv, images, 5, lowering)
    assert sum(sum(c) for c in counts.values()) > 100


# --- (f) saturation, (g) errors

def test_membrane_saturation_is_counted():
    net = _edit(_hand_net_small(), "c1", weight=np.zeros((2, 1, 3, 3), np.int32), bias=np.full(2, 4095),
                bias_exp=np.full(2, 7))                                    # 524160 per step; sum(theta) 28672
    lv, images = _levels(np.random.default_rng(0), 1, (1, 5, 5))
    steps = 20
    res, _, sats = _check_against_oracle(net, lv, images, steps, "compartments")   # the oracle clips at 2**23 - 1
    # V grows by 524160 - 28672 per step until it clips at 2**23 - 1 (the 24-bit membrane): from step 17 on
    # every neuron saturates, and only from then (a clip at any other limit would count other steps)
    first = next(k for k in range(1, steps + 1) if k * 524160 - (k - 1) * 28672 > V_LIMIT)
    assert first == 17 and res.saturations["c1"] == 2 * 25 * (steps - first + 1)
    assert sats["c1"] == res.saturations["c1"] and res.image_saturations == [res.saturations]
    for short in (first - 1, first):              # the count starts exactly at step 17
        assert ReferenceSimulator(net).run(images, short).saturations["c1"] == 2 * 25 * (short - first + 1)
    assert res.spike_counts["c1"] == [2 * 25 * steps] * 3


def test_accumulator_saturation_and_static_overflow():
    net = _edit(_hand_net_small(), "out", weight=np.full((1, 2, 3, 3), 127, np.int32), weight_exp=(7,))
    res = ReferenceSimulator(net).run(np.ones((1, 1, 5, 5)), 30)
    assert res.saturations["out"] > 0 and np.abs(res.accumulator).max() == V_LIMIT
    assert res.static_overflow.count == 0
    net = _edit(net, "c1", weight=np.full((2, 1, 3, 3), 127, np.int32), weight_exp=(6,))  # 9*255*127*64 >> bias format
    res = ReferenceSimulator(net).run(np.ones((1, 1, 5, 5)), 2)
    assert res.static_overflow.count == 2 * 25 and res.static_overflow.worst > 4095


def test_errors():
    net = _hand_net_small()
    floating = FloatNetwork([replace(l, synapses=FloatSynapses(l.synapses.weight.astype(np.float32)))
                             if isinstance(l, SynapticLayer) else l for l in net.layers])
    with pytest.raises(ConfigError, match="quantized"):
        ReferenceSimulator(floating)
    with pytest.raises(ConfigError, match="lowering"):
        ReferenceSimulator(net, "spiky")
    with pytest.raises(ConfigError, match="nope"):
        ReferenceSimulator(QuantizedNetwork(net.layers, net.meta.replace(lowering="nope")))
    for steps in (0, -3, 2.5):
        with pytest.raises(ConfigError, match="time steps"):
            ReferenceSimulator(net).run(np.zeros((1, 1, 5, 5)), steps)
