"""The integer reference simulator, checked against a slow loop implementation of its docstring's
arithmetic; the two MT lowerings; float32 vs float64 exactness; quantized vs float SNN; recording,
saturation and errors; graph depths, concat delays and resize."""
from __future__ import annotations

from itertools import product

import numpy as np
import pytest
import torch

import toolchain.simulators.reference as refsim
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.errors import ConfigError, ExportError
from toolchain.lowering.lower import export_network
from toolchain.ir.graph import Layer, Network, NeuronSpec, assign_depths, resize
from toolchain.lowering.quantize import QuantSettings
from toolchain.simulators.reference import ReferenceSimulator
from toolchain.frontend.trace import trace_network
from toolchain.frontend.unet import UNet, UNetConfig

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
    return [[[int(layer.bias[co]) << int(layer.bias_exp[co])] * w for _ in range(h)] for co in range(c)]


def oracle(network: Network, levels: np.ndarray, steps: int):
    """(accumulator, spike counts per threshold, per-step spikes, saturations). The compartments lowering,
    literally: every threshold's binary spike map is a separate synapse group worth r_i * 2**e_p * m_p."""
    layers = {l.name: l for l in network.layers}
    neuron_layers = [l for l in network.layers if l.neuron is not None]
    accs, saturations = [], {l.name: 0 for l in neuron_layers}
    rec = {l.name: np.zeros((steps, l.neuron.compartments, len(levels), *l.shape), np.uint8)
           for l in neuron_layers if l.neuron.kind == "MT"}
    for n, image in enumerate(levels):
        state = {l.name: _map(lambda _: 0, _bias_map(l)) for l in neuron_layers}
        out, static = {}, {}
        for layer in (l for l in neuron_layers if l.static):
            conv = _conv(image.tolist(), layer.weight.tolist(), layer.stride, layer.padding)
            static[layer.name] = _map(_to_bias, _add(_map(lambda v: _scale(v, layer.weight_exp[0]), conv),
                                                     _bias_map(layer)))
        for t in range(steps):
            for layer in neuron_layers:
                current = static.get(layer.name) or _bias_map(layer)
                src = layers[layer.inputs[0]]
                offset = 0
                for p, name in enumerate(() if layer.static else src.inputs if src.kind == "concat" else (src.name,)):
                    part, pc = layers[name], layers[name].shape[0]
                    for i, theta in enumerate(part.neuron.thresholds):
                        r, s = theta // part.neuron.thresholds[-1], out[name][i]
                        if layer.kind == "pool":
                            y = _pool(s, layer.kernel, int(layer.weight.reshape(-1)[0]))
                        elif layer.kind == "conv":
                            y = _conv(s, layer.weight[:, offset:offset + pc].tolist(), layer.stride, layer.padding)
                        else:
                            y = _conv_t(s, layer.weight[offset:offset + pc].tolist(), layer.stride, layer.padding,
                                        layer.output_padding)
                        current = _add(current, _map(lambda v: v * r * 2 ** layer.weight_exp[p], y))
                    offset += pc
                v = _add(state[layer.name], current)
                saturations[layer.name] += sum(abs(x) > V_LIMIT for ch in v for row in ch for x in row)
                v = _map(lambda x: max(-V_LIMIT, min(V_LIMIT, x)), v)
                maps = []
                for i, theta in enumerate(layer.neuron.thresholds):        # ACC: no thresholds
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
    res = ReferenceSimulator(network, lowering).run(images, steps, record=True)
    acc, counts, spikes, sats = oracle(network, images_levels, steps)
    np.testing.assert_array_equal(res.accumulator, acc)
    assert res.spike_counts == counts
    for name in spikes:
        np.testing.assert_array_equal(res.spikes[name], spikes[name], err_msg=name)
    assert res.saturations == sats and set(res.spikes) == set(spikes)
    np.testing.assert_allclose(res.output, acc / (network.output.unit * steps))
    return res, counts, sats


def _mt(name, kind, shape, inputs, thresholds, weight, weight_exp, bias, bias_exp, **kw):
    return Layer(name, kind, shape, inputs, neuron=NeuronSpec("MT", thresholds), weight=weight, bias=bias,
                 weight_exp=weight_exp, bias_exp=bias_exp, unit=1.0, **kw)


def _hand_net_small(seed=0):
    """input 1x5x5 -> static conv 3x3 (2 ch, MT) -> conv 3x3 (1 ch, ACC)."""
    rng = np.random.default_rng(seed)
    th = (4 * 4096, 2 * 4096, 4096)
    layers = [
        Layer("input", "input", (1, 5, 5)),
        _mt("c1", "conv", (2, 5, 5), ("input",), th, rng.integers(-127, 128, (2, 1, 3, 3)).astype(np.int32), (-2,),
            np.array([-900, 1300]), np.array([1, 0]), kernel=3, padding=1, static=True),
        Layer("out", "conv", (1, 5, 5), ("c1",), neuron=NeuronSpec("ACC"),
              weight=rng.integers(-127, 128, (1, 2, 3, 3)).astype(np.int32), weight_exp=(3,),
              bias=np.array([-77]), bias_exp=np.array([2]), kernel=3, padding=1, unit=512.0),
    ]
    return assign_depths(Network(layers, {}, quantized=True))


def _hand_net_odd(seed=1):
    """Odd geometry: a 3x3 pool, a stride-3 convT and a concat whose parts have different widths."""
    rng = np.random.default_rng(seed)
    w = lambda *s: rng.integers(-127, 128, s).astype(np.int32)
    layers = [
        Layer("input", "input", (1, 6, 6)),
        _mt("c1", "conv", (3, 6, 6), ("input",), (2 * 4096, 4096), w(3, 1, 3, 3), (-3,), np.array([500, -200, 90]),
            np.array([0, 3, 1]), kernel=3, padding=1, static=True),
        _mt("p", "pool", (3, 2, 2), ("c1",), (8 * 2048, 4 * 2048, 2 * 2048, 2048), np.array([90], np.int32), (5,),
            np.zeros(3, np.int64), np.zeros(3, np.int64), kernel=3, stride=3),
        _mt("u", "convT", (2, 6, 6), ("p",), (3 * 4096, 4096), w(3, 2, 3, 3), (4,), np.array([100, -3000]),
            np.array([2, 0]), kernel=3, stride=3),
        Layer("cat", "concat", (5, 6, 6), ("c1", "u")),
        Layer("out", "conv", (1, 6, 6), ("cat",), neuron=NeuronSpec("ACC"), weight=w(1, 5, 3, 3), weight_exp=(2, 5),
              bias=np.array([11]), bias_exp=np.array([0]), kernel=3, padding=1, unit=64.0),
    ]
    return assign_depths(Network(layers, {}, quantized=True))


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
    layer = Layer("s", kind, (1, 1, 1), ("x",), kernel=k, stride=stride, padding=pad, output_padding=out_pad)
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
    got = refsim._synapse(layer, torch.from_numpy(x), weight, payload_max)
    assert got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), np.array(want, dtype=np.int64))


@pytest.mark.parametrize("exp", [-3, 0, 4])
def test_static_current_matches_loops(exp):
    """conv(levels, m) * 2**e + bias, rounded (halves away) into the 13-bit-mantissa bias format, saturating."""
    from toolchain.lowering.fixed_point import Overflow
    layer = _hand_net_small()["c1"]
    layer.weight_exp = (exp,)
    levels, over = np.random.default_rng(exp + 10).integers(0, 256, (3, 1, 5, 5)), Overflow()
    got = refsim.static_current(layer, levels, over).numpy()
    want = []
    for img in levels:
        conv = _conv(img.tolist(), layer.weight.tolist(), 1, 1)
        want.append([[[_to_bias(_scale(v, exp) + (int(layer.bias[c]) << int(layer.bias_exp[c]))) for v in row]
                      for row in conv[c]] for c in range(2)])
    np.testing.assert_array_equal(got, np.array(want))
    assert (np.abs(got) > 4095).any()                    # the exponent part of the format is exercised
    assert (over.count > 0) == (exp == 4)                # 2**4 * |conv| reaches beyond 4095 * 2**7


def test_equal_to_threshold_does_not_fire():
    """A constant current of exactly theta_N: V = theta_N does not fire (strict H), 2 theta_N fires once."""
    net = _hand_net_small()
    net["c1"].weight[:], net["c1"].bias[:], net["c1"].bias_exp[:] = 0, 2048, 1     # 2048 << 1 = 4096 = theta_N
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
    assert {"pool", "convT", "concat"} <= {l.kind for l in net}
    lv, images = _levels(np.random.default_rng(7), 2, (1, 6, 6))
    for lowering in ("compartments", "graded"):
        _, counts, _ = _check_against_oracle(net, lv, images, 5, lowering)
    assert sum(sum(c) for c in counts.values()) > 100


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
    assert comp.meta["lowering"] == "compartments" and grad.meta["lowering"] == "graded"
    for a, b in zip(comp, grad):         # lowering does not change quantization
        assert a.neuron == b.neuron and a.weight_exp == b.weight_exp
    images = np.random.default_rng(1).integers(0, 256, (2, *comp.input.shape)) / 255.0
    a = ReferenceSimulator(comp).run(images, 6, record=True)
    b = ReferenceSimulator(grad).run(images, 6, record=True)
    assert ReferenceSimulator(grad).lowering == "graded"
    _assert_same(a, b)
    assert sum(map(sum, a.spike_counts.values())) > 0
    # the override of the file's lowering
    _assert_same(ReferenceSimulator(comp, "graded").run(images, 6, record=True), a)


@pytest.mark.parametrize("case", ["gray-d2", "color-d1"])
def test_float64_path_gives_identical_results(lowered, case, monkeypatch):
    net = lowered[case]["graded"]
    images = np.random.default_rng(2).integers(0, 256, (2, *net.input.shape)) / 255.0
    seen, original = [], refsim._exact_dtype
    monkeypatch.setattr(refsim, "_exact_dtype", lambda *args: seen.append(original(*args)) or seen[-1])
    fast = ReferenceSimulator(net).run(images, 5, record=True)
    assert torch.float32 in seen                       # the fast path really was taken
    monkeypatch.setattr(refsim, "_exact_dtype", lambda *args: torch.float64)
    _assert_same(fast, ReferenceSimulator(net).run(images, 5, record=True))


def test_exact_dtype_boundary():     # 127 * 255 * 518 < 2**24 <= 127 * 255 * 519
    assert [refsim._exact_dtype(np.array([-127]), 255, n) for n in (518, 519)] == [torch.float32, torch.float64]
    assert [refsim._exact_dtype(np.ones(1), 2 ** 24 - d, 1) for d in (1, 0)] == [torch.float32, torch.float64]


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


# --- (e) recording, (f) saturation, (g) errors

def test_record_shapes_and_sums(lowered):
    net = lowered["color-d2"]["compartments"]
    images = np.random.default_rng(3).integers(0, 256, (3, *net.input.shape)) / 255.0
    res = ReferenceSimulator(net).run(images, 4, record=True)
    mt = [l for l in net.neuron_layers if l.neuron.kind == "MT"]
    assert set(res.spikes) == {l.name for l in mt}
    for layer in mt:
        s = res.spikes[layer.name]
        assert s.shape == (4, 4, 3, *layer.shape) and s.dtype == np.uint8
        assert set(np.unique(s)) <= {0, 1}
        assert s.sum(axis=(0, 2, 3, 4, 5)).tolist() == res.spike_counts[layer.name]
    assert ReferenceSimulator(net).run(images, 4).spikes == {}
    assert res.output.shape == res.accumulator.shape == (3, 2, *net.input.shape[1:])


def test_membrane_saturation_is_counted(monkeypatch):
    net = _hand_net_small()
    net["c1"].weight[:], net["c1"].bias[:], net["c1"].bias_exp[:] = 0, 4095, 7    # 524160 per step; sum(theta) 28672
    lv, images = _levels(np.random.default_rng(0), 1, (1, 5, 5))
    steps, limits, original = 20, [], refsim.mt_step
    spy = lambda v, i, th, v_limit=None: limits.append(v_limit) or original(v, i, th, v_limit)  # noqa: E731
    monkeypatch.setattr(refsim, "mt_step", spy)
    res, _, sats = _check_against_oracle(net, lv, images, steps, "compartments")
    assert limits == [V_LIMIT] * steps                  # the membrane clip is the 24-bit one
    # V grows by 524160 - 28672 per step until it clips at 2**23 - 1: from step 17 on every neuron saturates
    first = next(k for k in range(1, steps + 1) if k * 524160 - (k - 1) * 28672 > V_LIMIT)
    assert first == 17 and res.saturations["c1"] == 2 * 25 * (steps - first + 1)
    assert res.spike_counts["c1"] == [2 * 25 * steps] * 3


def test_accumulator_saturation_and_static_overflow():
    net = _hand_net_small()
    net["out"].weight[:], net["out"].weight_exp = 127, (7,)
    res = ReferenceSimulator(net).run(np.ones((1, 1, 5, 5)), 30)
    assert res.saturations["out"] > 0 and np.abs(res.accumulator).max() == V_LIMIT
    assert res.static_overflow.count == 0
    net["c1"].weight[:], net["c1"].weight_exp = 127, (6,)     # 9 * 255 * 127 * 64 >> the bias format
    res = ReferenceSimulator(net).run(np.ones((1, 1, 5, 5)), 2)
    assert res.static_overflow.count == 2 * 25 and res.static_overflow.worst > 4095


def test_errors():
    net = _hand_net_small()
    with pytest.raises(ConfigError, match="quantized"):
        ReferenceSimulator(Network(net.layers, {}, quantized=False))
    with pytest.raises(ConfigError, match="lowering"):
        ReferenceSimulator(net, "spiky")
    with pytest.raises(ConfigError, match="nope"):
        ReferenceSimulator(Network(net.layers, {"lowering": "nope"}, quantized=True))
    for steps in (0, -3, 2.5):
        with pytest.raises(ConfigError, match="time steps"):
            ReferenceSimulator(net).run(np.zeros((1, 1, 5, 5)), steps)


# --- (h) depths and delays, (i) resize

@pytest.mark.parametrize("depth", [2, 3])
def test_depths_and_delays(depth):
    side = 2 ** depth * 2
    net = trace_network(UNet(UNetConfig("denoise", 1, 1, width=2, depth=depth)).core, (1, side, side))
    for layer in net:
        if layer.kind == "input":
            assert layer.depth == -1
        elif layer.static:
            assert layer.depth == 0 and layer.name == "encoders.0.conv1"
        elif layer.kind == "concat":
            parts = [net[s].depth for s in layer.inputs]
            assert layer.depth == max(parts)
            assert layer.delays == tuple(layer.depth - d for d in parts)
        else:
            assert layer.depth == net[layer.inputs[0]].depth + 1, layer.name
    assert net.latency == net.output.depth == 6 * depth + 2
    concats = [l for l in net if l.kind == "concat"]
    assert len(concats) == depth
    for j, concat in enumerate(concats):       # concat j joins encoder level i = depth - 1 - j
        i = depth - 1 - j
        assert concat.inputs == (f"encoders.{i}.conv2", f"ups.{j}.upconv")
        assert concat.delays == (6 * depth - 6 * i - 2, 0)
    edges = net.to_networkx().edges(data=True)
    assert {(u, v, d["delay"]) for u, v, d in edges if v == concats[-1].name} == \
        {("encoders.0.conv2", concats[-1].name, 6 * depth - 2), (f"ups.{depth - 1}.upconv", concats[-1].name, 0)}


def test_too_deep_is_refused():
    net = trace_network(UNet(UNetConfig("denoise", 1, 1, width=2, depth=1)).core, (1, 4, 4))
    assert net["concat0"].delays == (4, 0)           # needs a synaptic delay of 5
    assert assign_depths(net, max_delay=5)["concat0"].delays == (4, 0)
    with pytest.raises(ExportError, match=r"layer concat0: input encoders\.0\.conv2 needs a synaptic delay of 5"):
        assign_depths(net, max_delay=4)
    deep = trace_network(UNet(UNetConfig("denoise", 1, 1, width=2, depth=2)).core, (1, 8, 8))
    with pytest.raises(ExportError, match="concat"):
        assign_depths(deep, max_delay=3)


@pytest.mark.parametrize("depth,hw", [(2, (24, 40)), (3, (8, 56)), (1, (6, 2))])
def test_resize_matches_torch_shapes(depth, hw):
    torch.manual_seed(0)
    ann = UNet(UNetConfig("denoise", 1, 1, width=2, depth=depth))
    net = trace_network(ann.core, (1, 2 ** depth * 2, 2 ** depth * 2))
    sized = resize(net, hw)
    shapes, modules = {}, dict(ann.core.named_modules())
    hooks = [modules[l.source["synapse"]].register_forward_hook(
        lambda m, i, o, name=l.name: shapes.__setitem__(name, tuple(o.shape[1:]))) for l in net.neuron_layers]
    with torch.no_grad():
        ann.core(torch.zeros(1, 1, *hw))
    for h in hooks:
        h.remove()
    for layer in sized.neuron_layers:
        assert layer.shape == shapes[layer.name], layer.name
    assert sized.input.shape == (1, *hw)
    retraced = trace_network(ann.core, (1, *hw))
    assert [l.shape for l in sized] == [l.shape for l in retraced]
    assert [(l.depth, l.delays) for l in sized] == [(l.depth, l.delays) for l in retraced]
    for a, b in zip(sized, net):      # weights are shared, not copied
        assert a.weight is b.weight


def test_resize_refuses_sizes_that_do_not_fit():
    net = trace_network(UNet(UNetConfig("denoise", 1, 1, width=2, depth=2)).core, (1, 8, 8))
    with pytest.raises(ExportError, match=r"layer concat0: parts of sizes .* 18x20 input"):
        resize(net, (18, 20))

