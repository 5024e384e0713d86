"""Issue 17: exact integer convolutions in float32 (toolchain/simulators/exact.py). Adversarial bounds
(weights near +-127, large fan-in, payloads at their maximum) where one naive float32 convolution is
wrong, against the loop oracle of test_refsim.py: input-channel chunks, weight digits, grouped layers,
transposed convolutions, the float64 fallback, and a whole network against the oracle."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_refsim import _check_against_oracle, _conv, _conv_t, _fixed, _mt

from toolchain.errors import ConfigError
from toolchain.ir import Accumulator, Conv, ConvTranspose, Input, NetworkMeta, QuantizedNetwork, assign_depths
from toolchain.simulators.exact import (FLOAT32_EXACT, channel_chunks, plan_synapse, weight_digits)
from toolchain.simulators.kernels import SynapseOp
from toolchain.simulators.reference import ReferenceSimulator


def _cancelling(rng, shape, axis):
    """Mantissas in 100..127, positive on the first half of the input channels (``axis``), negative on
    the second: partial sums climb past 2**24 and the total comes back to a small number."""
    w = rng.integers(100, 128, shape)
    half = [slice(None)] * len(shape)
    half[axis] = slice(shape[axis] // 2, None)
    w[tuple(half)] *= -1
    return w.astype(np.int32)


def _naive(op, x, w):
    x, w = torch.from_numpy(x).float(), torch.from_numpy(w).float()
    if op.kind == "conv":
        return F.conv2d(x, w, stride=op.stride, padding=op.padding, groups=op.groups).to(torch.int64).numpy()
    return F.conv_transpose2d(x, w, stride=op.stride, padding=op.padding,
                              output_padding=op.output_padding).to(torch.int64).numpy()


def test_channel_chunks_where_one_float32_convolution_is_wrong():
    rng = np.random.default_rng(0)
    op = SynapseOp("conv", (3, 3), padding=(1, 1))
    w = _cancelling(rng, (2, 256, 3, 3), axis=1)                 # fan-in 2304, L1 bound 255 * ~260k > 2**24
    x = np.full((1, 256, 4, 4), 255, np.int64)
    x[0, :, 0, 0] = rng.integers(200, 256, 256)                    # not all equal
    plan = plan_synapse(op, w, 255)
    assert len(plan.terms) >= 2 and plan.dtypes == {torch.float32} and all(t.shift == 0 for t in plan.terms)
    for t in plan.terms:                                           # every chunk within the float32 bound
        assert 255 * np.abs(w[:, t.start:t.stop]).sum(axis=(1, 2, 3)).max() < FLOAT32_EXACT
    want = np.array([_conv(x[0].tolist(), w.tolist(), 1, 1)], np.int64)
    np.testing.assert_array_equal(plan(torch.from_numpy(x)).numpy(), want)
    assert not np.array_equal(_naive(op, x, w), want)             # the test is adversarial
    assert np.abs(want).max() < FLOAT32_EXACT                     # ... although the result itself is small


def test_transposed_convolution_chunks():
    """torch sums a transposed convolution tap by tap (a GEMM over the input channels per tap, then
    col2im), so its partial sums pass 2**24 only past ~520 channels of +-127 x 255: 1536 here."""
    rng = np.random.default_rng(1)
    op = SynapseOp("convT", (3, 3), (2, 2), (1, 1), (1, 1))
    w = _cancelling(rng, (1536, 2, 3, 3), axis=0)                 # convT layout (in, out, k, k)
    x = rng.integers(230, 256, (1, 1536, 2, 2))
    plan = plan_synapse(op, w, 255)
    assert len(plan.terms) >= 2 and plan.dtypes == {torch.float32}
    want = np.array([_conv_t(x[0].tolist(), w.tolist(), 2, 1, 1)], np.int64)
    np.testing.assert_array_equal(plan(torch.from_numpy(x)).numpy(), want)
    assert not np.array_equal(_naive(op, x, w), want)


@pytest.mark.parametrize("groups", [1, 4])
def test_weight_digits_when_one_channel_exceeds_the_bound(groups):
    """Payloads up to 2**16 - 1: one 3x3 tap group of +-127 already sums past 2**24, so channel chunks
    cannot help and the mantissas are split into digits (grouped layers always take this path)."""
    rng = np.random.default_rng(2 + groups)
    op = SynapseOp("conv", (3, 3), padding=(1, 1), groups=groups)
    w = rng.integers(-127, 128, (4, 8 // groups, 3, 3)).astype(np.int32)
    w[:, :, 1, 1] = 127
    assert channel_chunks(op, w, 2 ** 16 - 1) is None
    plan = plan_synapse(op, w, 2 ** 16 - 1)
    assert plan.dtypes == {torch.float32} and len({t.shift for t in plan.terms}) >= 2
    x = rng.integers(2 ** 16 - 300, 2 ** 16, (1, 8, 4, 4))
    per = 8 // groups
    want = np.concatenate([np.array(_conv(x[0, g * per:(g + 1) * per].tolist(),
                                          w[g * (4 // groups):(g + 1) * (4 // groups)].tolist(), 1, 1))
                           for g in range(groups)])[None]
    np.testing.assert_array_equal(plan(torch.from_numpy(x)).numpy(), want)
    assert not np.array_equal(_naive(op, x, w), want)


def test_weight_digits_reassemble_the_mantissas():
    w = np.arange(-255, 256).reshape(1, -1, 1, 1)
    for count in range(1, 9):
        digits = weight_digits(w, count)
        assert len(digits) == count
        assert np.array_equal(sum(d.astype(np.int64) << s for d, s in digits), w)
        width = digits[1][1] if count > 1 else 9
        assert all(np.abs(d).max() <= 1 << (width - 1) for d, _ in digits[:-1])


def test_float64_fallback_and_beyond():
    op = SynapseOp("conv", (1, 1))
    w = np.array([[[[1]]]], np.int32)
    plan = plan_synapse(op, w, 2 ** 24)                            # a single product reaches 2**24
    assert plan.dtypes == {torch.float64}
    x = torch.tensor([[[[2 ** 24 - 1]]]])
    assert int(plan(x)) == 2 ** 24 - 1
    with pytest.raises(ConfigError, match="2\\*\\*53"):
        plan_synapse(op, np.full((1, 4, 1, 1), 127, np.int32), 2 ** 50)
    pool = plan_synapse(SynapseOp("pool", (2, 2), (2, 2)), np.array([3], np.int32), 2 ** 22)
    assert pool.dtypes == {torch.float64}                          # 4 taps of 2**22: the window sum reaches 2**24
    assert plan_synapse(op, w, 15).dtypes == {torch.float32}


def _adversarial_net():
    """input 1x4x4 -> static conv (256 ch; MT with 8 thresholds r = 128..1, a bias that fires them all
    every step: graded payloads 255) -> conv 3x3 256 -> 2 (ACC) with cancelling +-(100..127) mantissas."""
    rng = np.random.default_rng(7)
    thresholds = tuple(64 * 2 ** i for i in range(7, -1, -1))
    bias = rng.integers(3000, 4096, 256)
    layers = [
        Input(name="input", shape=(1, 4, 4)),
        _mt(Conv, "c1", (256, 4, 4), ("input",), thresholds, rng.integers(-20, 21, (256, 1, 3, 3)).astype(np.int32),
            (0,), bias, np.full(256, 7), kernel=(3, 3), padding=(1, 1), static=True),
        Conv(name="out", shape=(2, 4, 4), inputs=("c1",), neuron=Accumulator(),
             synapses=_fixed(_cancelling(rng, (2, 256, 3, 3), axis=1), (0,), [0, 0], [0, 0], unit=64.0),
             kernel=(3, 3), padding=(1, 1)),
    ]
    return assign_depths(QuantizedNetwork(layers, NetworkMeta(weight_bits=8)))


def test_network_with_adversarial_bounds_matches_the_loop_oracle():
    net = _adversarial_net()
    sim = ReferenceSimulator(net, "graded")
    plan = sim.plans(net["out"])[0][3]
    assert len(plan.terms) >= 2 and plan.dtypes == {torch.float32}
    levels = np.random.default_rng(8).integers(0, 256, (1, 1, 4, 4))
    res, counts, sats = _check_against_oracle(net, levels, levels / 255.0, 2, "graded")
    assert counts["c1"] == [2 * 256 * 16] * 8                       # every threshold, every neuron, every step
    assert sats["out"] == 0 and np.abs(res.accumulator).max() > 0
    payload = np.full((1, 256, 4, 4), 255, np.int64)               # what c1 sends: one naive conv is wrong on it
    want = plan(torch.from_numpy(payload)).numpy()
    assert not np.array_equal(_naive(SynapseOp.of(net["out"]), payload, net["out"].synapses.weight), want)
