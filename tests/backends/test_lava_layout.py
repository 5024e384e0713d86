"""The numpy side of LavaNetwork (no Lava runtime): the stock-process parameters of each layer kind equal
torch's operation, the pixel shuffle Lava's virtual ports apply puts every phase where torch puts it, the
static bounds bound, and the plan of a U-Net has the processes the docs name."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d

from toolchain.backends.lava.layout import (
    conv_bound,
    conv_matrix,
    convT_as_conv,
    from_xyz,
    interleave,
    lava_conv_weight,
    lava_groups,
    matrix_bound,
    pool_groups,
    pool_weight,
    power_split,
    regroup,
    shuffle_shapes,
    to_xyz,
)
from toolchain.backends.lava.plan import CONV_LIMIT, plan_network
from toolchain.errors import ConfigError
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings

RNG = np.random.default_rng(0)


def _torch(fn, x: np.ndarray, w: np.ndarray, **kw) -> np.ndarray:
    return fn(torch.tensor(x[None], dtype=torch.float64), torch.tensor(w, dtype=torch.float64), **kw)[0].numpy()


def _lava_conv(x_xyz: np.ndarray, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int],
               groups: int = 1) -> np.ndarray:
    """Lava's stock Conv as its docs and ``conv_scipy`` define it: per (out, in) channel a true 2-D
    convolution (scipy ``convolve2d``, valid) of the zero-padded (X, Y) input, strided."""
    px, py = padding
    padded = np.pad(x_xyz, ((px, px), (py, py), (0, 0)))
    c_out, c_in_g = w.shape[0], w.shape[3]
    out = None
    for o in range(c_out):
        g = o // (c_out // groups)
        acc = sum(convolve2d(padded[:, :, g * c_in_g + i], w[o, :, :, i], mode="valid") for i in range(c_in_g))
        acc = acc[::stride[0], ::stride[1]]
        out = np.zeros(acc.shape + (c_out,)) if out is None else out
        out[:, :, o] = acc
    assert out is not None
    return out


@pytest.mark.parametrize("stride, padding", [((1, 1), (1, 1)), ((2, 2), (1, 1)), ((2, 1), (0, 1))])
def test_lava_conv_weight_turns_torch_correlation_into_lava_convolution(stride, padding):
    m = RNG.integers(-128, 128, size=(5, 3, 3, 3))
    x = RNG.integers(0, 4, size=(3, 7, 9))
    expected = _torch(F.conv2d, x, m, stride=stride, padding=padding)
    got = _lava_conv(to_xyz(x), lava_conv_weight(m), stride[::-1], padding[::-1])
    np.testing.assert_array_equal(from_xyz(got), expected)


def test_compartment_interleave_and_depthwise_pool():
    """Compartment i of channel c is channel c N + i, worth factors[i]; a pool is depthwise."""
    m = RNG.integers(-128, 128, size=(4, 3, 3, 3))
    spikes = (RNG.random((2, 3, 6, 5)) < 0.4).astype(np.int64)          # (N, C, H, W)
    factors = [8, 2]
    cat = np.stack([to_xyz(s) for s in spikes], axis=-1).reshape(5, 6, 6)  # (X, Y, C N), index c N + i
    got = _lava_conv(cat, interleave(lava_conv_weight(m), factors), (1, 1), (1, 1))
    expected = sum(f * _torch(F.conv2d, s, m, padding=1) for f, s in zip(factors, spikes))
    np.testing.assert_array_equal(from_xyz(got), expected)
    pooled = _lava_conv(cat, pool_weight(7, 3, (2, 2), factors), (2, 2), (0, 0), groups=pool_groups(3))
    expected = sum(f * 7 * 4 * F.avg_pool2d(torch.tensor(s[None], dtype=torch.float64), 2)[0].numpy()
                   for f, s in zip(factors, spikes))
    np.testing.assert_array_equal(from_xyz(pooled), expected)


def test_wide_pools_use_block_diagonal_groups_an_int8_holds():
    """Lava's Conv keeps ``groups`` in an int8: 256 channels pool as 64 groups of 4 (block-diagonal weights)."""
    assert pool_groups(3) == 3 and pool_groups(127) == 127 and pool_groups(128) == 64 and pool_groups(512) == 64
    assert pool_groups(254) == 127 and pool_groups(131) == 1
    x = RNG.integers(0, 16, size=(256, 4, 6))                                 # graded payloads
    weight = pool_weight(5, 256, (2, 2), [1])
    assert weight.shape == (256, 2, 2, 4)
    got = _lava_conv(to_xyz(x), weight, (2, 2), (0, 0), groups=pool_groups(256))
    expected = 5 * 4 * F.avg_pool2d(torch.tensor(x[None], dtype=torch.float64), 2)[0].numpy()
    np.testing.assert_array_equal(from_xyz(got), expected)


@pytest.mark.parametrize("k, s, p, op", [(3, 2, 1, 1), (2, 2, 0, 0), (4, 2, 1, 0), (3, 1, 1, 0), (3, 3, 0, 0),
                                         (5, 2, 2, 1), (1, 2, 0, 1)])
def test_transposed_conv_is_a_phase_conv_and_a_pixel_shuffle(k, s, p, op):
    m = RNG.integers(-128, 128, size=(3, 4, k, k))           # (C_in, C_out, k, k)
    x = RNG.integers(0, 5, size=(3, 5, 6))                   # a non-square input
    expected = _torch(F.conv_transpose2d, x, m, stride=s, padding=p, output_padding=op)
    phase = convT_as_conv(m, (5, 6), expected.shape[1:], (k, k), (s, s), (p, p))
    conv = _torch(F.conv2d, x, phase.weight, padding=phase.padding)       # (s^2 C_out, 5, 6)
    first, axes, final = shuffle_shapes(tuple(to_xyz(conv).shape), phase.stride)
    shuffled = to_xyz(conv).reshape(first).transpose(axes).reshape(final)   # what Lava's virtual ports do
    np.testing.assert_array_equal(from_xyz(shuffled), expected)
    lava = _lava_conv(to_xyz(x), lava_conv_weight(phase.weight), (1, 1), phase.padding[::-1])
    np.testing.assert_array_equal(lava, to_xyz(conv))


@pytest.mark.parametrize("c_in, c_out, groups", [(6, 4, 2), (4, 4, 4), (256, 256, 256), (136, 272, 136)])
def test_grouped_convs_keep_their_groups_or_join_them_block_diagonally(c_in, c_out, groups):
    """torch's grouped conv as Lava's: the same groups up to 127, else lava_groups(G) block-diagonal ones;
    with compartments (channel c N + i) each channel's maps stay in its group."""
    assert lava_groups(4) == 4 and lava_groups(127) == 127 and lava_groups(256) == 64 and lava_groups(136) == 68
    m = RNG.integers(-128, 128, size=(c_out, c_in // groups, 3, 3))
    spikes = (RNG.random((2, c_in, 5, 4)) < 0.4).astype(np.int64)            # (N, C, H, W)
    factors = [3, 1]
    cat = np.stack([to_xyz(s) for s in spikes], axis=-1).reshape(4, 5, 2 * c_in)
    weight, lava = regroup(interleave(lava_conv_weight(m), factors), groups)
    assert lava == lava_groups(groups) and weight.shape == (c_out, 3, 3, 2 * c_in // lava)
    got = _lava_conv(cat, weight, (1, 1), (1, 1), groups=lava)
    expected = sum(f * _torch(F.conv2d, s, m, padding=1, groups=groups) for f, s in zip(factors, spikes))
    np.testing.assert_array_equal(from_xyz(got), expected)


@pytest.mark.parametrize("c, groups, k, s, p", [(4, 4, 2, 2, 0), (3, 3, 4, 2, 1), (4, 2, 3, 2, 1), (130, 130, 2, 2, 0)])
def test_grouped_transposed_conv_is_a_grouped_phase_conv_and_a_pixel_shuffle(c, groups, k, s, p):
    """Depthwise (nearest x2: k 2 s 2; bilinear x2: k 4 s 2 p 1, the fixed kernels of captured U-Nets) and
    grouped transposed convs: group-major phase channels, the shuffle splitting the groups off first."""
    m = RNG.integers(-128, 128, size=(c, 2 * c // groups, k, k))            # (C_in, C_out / G, k, k)
    x = RNG.integers(0, 5, size=(c, 3, 4))
    expected = _torch(F.conv_transpose2d, x, m, stride=s, padding=p, output_padding=1 if k == 3 else 0,
                      groups=groups)
    phase = convT_as_conv(m, (3, 4), expected.shape[1:], (k, k), (s, s), (p, p), groups)
    assert phase.groups == groups and phase.weight.shape[:2] == (s * s * 2 * c, c // groups)
    weight, lava = regroup(lava_conv_weight(phase.weight), groups)
    conv = _lava_conv(to_xyz(x), weight, (1, 1), phase.padding[::-1], groups=lava)
    first, axes, final = shuffle_shapes(conv.shape, phase.stride, groups)
    np.testing.assert_array_equal(from_xyz(conv.reshape(first).transpose(axes).reshape(final)), expected)


def test_transposed_conv_without_a_conv_form_is_refused():
    with pytest.raises(ValueError, match="multiple of its stride"):
        convT_as_conv(np.ones((1, 1, 3, 3)), (5, 5), (9, 9), (3, 3), (2, 2), (1, 1))


@pytest.mark.parametrize("compartment", [(0, 1), (2, 3)])
def test_conv_matrix_equals_torch(compartment):
    m = RNG.integers(-128, 128, size=(2, 3, 3, 3))
    x = (RNG.random((3, 6, 7)) < 0.5).astype(np.int64)
    i, n = compartment
    cat = np.zeros((7, 6, 3, n), np.int64)
    cat[..., i] = to_xyz(x)
    for stride in (1, 2):
        expected = _torch(F.conv2d, x, m, stride=stride, padding=1)
        out_chw = expected.shape
        matrix = conv_matrix(m, (3, 6, 7), out_chw, (stride, stride), (1, 1), compartment)
        got = (matrix @ cat.reshape(-1)).reshape(out_chw[2], out_chw[1], out_chw[0])
        np.testing.assert_array_equal(from_xyz(got), expected)
        assert matrix_bound(matrix, 1) >= np.abs(expected).max()


def test_grouped_conv_matrix_equals_torch():
    m = RNG.integers(-128, 128, size=(6, 2, 3, 3))                        # groups 2: 4 -> 6 channels
    x = (RNG.random((4, 5, 6)) < 0.5).astype(np.int64)
    expected = _torch(F.conv2d, x, m, padding=1, groups=2)
    matrix = conv_matrix(m, (4, 5, 6), expected.shape, (1, 1), (1, 1), groups=2)
    np.testing.assert_array_equal(from_xyz((matrix @ to_xyz(x).reshape(-1)).reshape(6, 5, 6)), expected)


def test_static_bounds_bound_and_are_reached():
    w = lava_conv_weight(RNG.integers(-128, 128, size=(4, 2, 3, 3)))
    bound = conv_bound(w, 5)
    worst = np.sign(w[0])[::-1, ::-1] * 5          # an interior neuron fed the worst input of channel 0
    x = np.zeros((3, 3, 2))
    x[...] = worst
    assert np.abs(_lava_conv(x, w, (1, 1), (0, 0))).max() <= bound
    assert np.abs(_lava_conv(x, w[:1], (1, 1), (0, 0))).max() == conv_bound(w[:1], 5)
    for _ in range(20):
        y = _lava_conv(RNG.integers(-5, 6, size=(6, 5, 2)), w, (1, 1), (1, 1))
        assert np.abs(y).max() <= bound


def test_power_split():
    assert power_split(1) == [0] and power_split(8) == [3] and power_split(6) == [1, 2] and power_split(7) == [0, 1, 2]


def _unet(lowering: str, thresholds=(2.0, 1.0, 0.5, 0.25)):
    torch.manual_seed(0)
    ann = UNet(UNetConfig("denoise", 1, 1, width=4, depth=2))
    snn, info = convert(ann, torch.rand(2, 1, 16, 16), ConversionSettings(thresholds=thresholds))
    net, _ = export_network(snn, info, (16, 16), QuantSettings(steps=4), lowering=lowering)
    return net


@pytest.mark.parametrize("lowering", ["compartments", "graded"])
def test_plan_of_a_unet(lowering):
    net = _unet(lowering, thresholds=(1.5, 1.0, 0.5))                      # spike weights 3, 2, 1
    line = plan_network(net, delays="line")
    assert line.static is not None and line.static.name == "encoders.0.conv1" and not line.sparse
    assert sum(layer.kind == "pool" for layer in net.synaptic_layers) == sum(g.groups > 1 for g in line.convs) == 2
    assert sum(g.shuffle == (2, 2) for g in line.convs) == 2                  # the two transposed convs
    assert sorted(g.delay for g in line.convs if g.delay) == [4, 10]          # the two skips, by DelayLine
    assert line.unproven() == [] and all(g.bound < CONV_LIMIT for g in line.convs)
    sparse = plan_network(net, delays="sparse")
    per_part = 1 if lowering == "graded" else 4                               # 3 = 2 + 1: two groups for r = 3
    assert len(sparse.sparse) == 2 * per_part and len(sparse.convs) == len(line.convs) - 2
    assert all(np.all(g.weights.data % 2 == 0) and np.abs(g.weights.data).max() <= 256 for g in sparse.sparse)
    for group in sparse.sparse:                  # Lava's weight_exp: e_p + k - 1 for the term 2**k of r_i
        layer = net[group.target]
        exps = dict(zip([src.name for src, _, _ in net.parts(layer)], layer.synapses.weight_exp))
        k = 0 if lowering == "graded" else int(group.name.split("#")[-1].partition("k")[2] or 0)
        assert group.weight_exp == exps[group.source] + k - 1
    if lowering == "compartments":
        terms = sorted(g.name.split("#")[1] for g in sparse.sparse if g.target == "ups.1.convs.conv1")
        assert terms == ["c0", "c0k1", "c1k1", "c2"]


def test_plan_flags_groups_that_can_wrap_and_refuses_bad_options():
    net = _unet("graded")
    layers = [dataclasses.replace(layer, synapses=dataclasses.replace(
        layer.synapses, weight_exp=tuple(e + 10 for e in layer.synapses.weight_exp)))
        if layer.name == "encoders.0.conv2" else layer for layer in net.layers]
    assert plan_network(net.with_layers(layers)).unproven() == ["encoders.0.conv2"]
    with pytest.raises(ConfigError, match="delays"):
        plan_network(net, delays="fifo")     # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lowering"):
        plan_network(net, lowering="bogus")  # type: ignore[arg-type]
