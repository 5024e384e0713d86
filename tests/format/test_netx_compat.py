"""Issue 3: a purely sequential network written by the exporter loads in stock lava-dl netx.

A traced + quantized Conv -> MT -> Conv -> MT -> Conv (ACC) network is written with
:func:`netx_export.compat.write_netx_compatible`; the file reads back with the stock reader, runs
in lava-dl's own ``netx.hdf5.Network`` on ``Loihi2SimCfg(select_tag='fixed_pt')`` with the same
spikes as :func:`toolchain.simulators.physical.simulate_cuba`, and approximates the project's MT
reference simulation (reset to zero instead of by subtraction, rounded biases).

Time alignment: T logical steps are run as T + latency physical steps with netx's
``reset_interval`` = T + latency (layer i forgets its bias-only transient at step i); the input
layer (the static layer) is driven by :func:`netx_input_bias` as its per-neuron bias.
"""
from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from netx_export.compat import decode_output, netx_input_bias, plan_netx_compatible, write_netx_compatible
from netx_export.stock import read_netx
from toolchain.errors import ExportError
from toolchain.frontend.snn import SpikingNetwork
from toolchain.ir import (Accumulator, Conv, Cuba, FixedSynapses, FloatNetwork, FloatSynapses, Input, MultiThreshold,
                          NetworkMeta, QuantizedNetwork, StockNetwork, SynapticLayer, assign_depths)
from toolchain.lowering.quantize import QuantSettings, quantize
from toolchain.simulators.reference import ReferenceSimulator
from toolchain.simulators.physical import simulate_cuba
from toolchain.frontend.trace import trace_network

T = 16
HW = 8


def _sequential() -> nn.Sequential:
    """Conv -> activation -> Conv -> activation -> Conv; tracing makes the activations MT neurons."""
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(4, 2, 1))
    with torch.no_grad():          # enough drive for both hidden layers to spike
        seq[0].weight.mul_(4)
        seq[2].weight.mul_(3)
        seq[2].bias.add_(0.1)
    return seq


def _quantized(thresholds: tuple[float, ...] = (1.0,)) -> tuple[QuantizedNetwork, np.ndarray]:
    seq = _sequential()
    images = torch.rand(2, 1, HW, HW, generator=torch.Generator().manual_seed(1))
    network = trace_network(seq, (1, HW, HW), neuron_of=lambda _m: MultiThreshold(tuple(thresholds)))
    float_out = SpikingNetwork(network).simulate(images, T).output    # the float SNN: sum_t head(o(t)) / T
    qnet, _ = quantize(network, NetworkMeta(), QuantSettings(steps=T), float(float_out.abs().max()))
    assert qnet.meta.steps == T
    return qnet, images.numpy()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    qnet, images = _quantized()
    path = tmp_path_factory.mktemp("compat") / "seq.net"
    report = write_netx_compatible(qnet, path)
    return qnet, images, path, report


def test_trace_gives_a_static_first_layer_and_an_acc_output(written):
    qnet, _, _, report = written
    assert [(l.kind, getattr(l, "static", False), type(getattr(l, "neuron", None))) for l in qnet] == [
        ("input", False, type(None)), ("conv", True, MultiThreshold), ("conv", False, MultiThreshold),
        ("conv", False, Accumulator)]
    assert report.latency == 2 and report.run_steps(T) == T + 2
    assert [p.index for p in report.layers] == [0, 1, 2]
    assert report.layers[-1].output and report.layers[-1].vth == 1 << 17


def test_round_trip_through_the_stock_reader(written):
    qnet, _, path, report = written
    net = read_netx(path)
    assert [l.kind for l in net] == ["input", "conv", "conv"]
    assert isinstance(net, StockNetwork) and net.meta.t_sample == T + 2
    chain = qnet.synaptic_layers
    assert len(chain) == len(net.layers) == 3
    for ours, theirs, plan in zip(chain, net.layers, report.layers):
        assert theirs.shape == ours.shape
        n = theirs.neuron
        assert (type(n), n.du, n.dv, n.bias_exp, n.vth) == (Cuba, 4095, 0, 6, plan.vth)
        if isinstance(theirs, Conv):
            assert np.array_equal(theirs.synapses.weight, plan.weight)
            assert np.array_equal(theirs.synapses.bias, plan.bias)
            assert theirs.kernel == ours.kernel and theirs.padding == ours.padding
            # the folded weight exponent: thresholds scaled by 2**-e instead of the weights by 2**e
            if not plan.output:
                assert plan.vth == ours.neuron.thresholds[0] >> ours.synapses.weight_exp[0]
    with h5py.File(path) as f:
        assert "format" not in f and f["layer/1/neuron/type"][()] == b"CUBA"
        assert int(f["layer/1/neuron/iDecay"][()]) == 4096 and int(f["layer/1/neuron/refDelay"][()]) == 1
    # deterministic
    again = path.with_name("again.net")
    write_netx_compatible(qnet, again)
    assert read_netx(again).layers[2].synapses.bias.tolist() == net.layers[2].synapses.bias.tolist()


def test_cuba_file_approximates_the_mt_reference(written):
    qnet, images, path, _ = written
    net = read_netx(path)
    steps = T + 2
    bias = netx_input_bias(qnet, images)
    sim = simulate_cuba(net, bias, steps, reset_interval=steps)
    ref = ReferenceSimulator(qnet).run(images, T, record="spikes")
    # the static layer's first step: same current (rounded to 2**s0), same threshold, no reset yet
    ours0 = ref.spikes["0"][0, 0].astype(bool)                      # (N, C, H, W)
    assert (sim.spikes["input0"][0] == ours0).mean() > 0.98
    assert sim.spikes["input0"].sum() > 50 and sim.spikes["conv1"].sum() > 50
    decoded = decode_output(qnet, sim.v["conv2"][-1], T)
    corr = float(np.corrcoef(decoded.ravel(), ref.output.ravel())[0, 1])
    err = float(np.abs(decoded - ref.output).max() / np.abs(ref.output).max())
    counts = {k: int(sim.spikes[k].sum()) for k in ("input0", "conv1")}
    print(f"\nCUBA vs MT reference: output correlation {corr:.3f}, max |diff| / max |ref| {err:.3f}; "
          f"spikes CUBA {counts} vs MT {ref.spike_counts}")
    assert corr > 0.8            # loose: reset to zero + rounded biases is an approximation


def test_input_bias_is_the_static_current_scaled_to_13_bits(written):
    from toolchain.lowering.fixed_point import Overflow, round_half_away
    from toolchain.simulators.kernels import image_levels, static_current
    qnet, images, _, report = written
    s0 = report.layers[0].shift
    assert s0 > 0 and report.layers[0].vth == qnet["0"].neuron.thresholds[0] >> s0
    current = static_current(qnet["0"], image_levels(images), Overflow()).numpy()
    bias = netx_input_bias(qnet, images)
    assert np.array_equal(bias, round_half_away(current / 2 ** s0))
    assert np.abs(bias).max() <= 4095 < np.abs(current).max()          # Lava's int16 bias_mant
    extreme = netx_input_bias(qnet, np.stack([np.zeros((1, HW, HW)), np.ones((1, HW, HW))]))
    assert np.abs(extreme).max() <= 4095


def test_unet_is_refused_naming_the_layer():
    from toolchain.frontend.conversion import ConversionSettings, convert
    from toolchain.lowering.lower import export_network
    from toolchain.frontend.unet import UNet, UNetConfig
    torch.manual_seed(0)
    snn, info = convert(UNet(UNetConfig("denoise", 1, 1, 4, 1)), torch.rand(2, 1, 8, 8), ConversionSettings())
    qnet, _ = export_network(snn, info, (8, 8), QuantSettings(steps=4))
    with pytest.raises(ExportError, match=r"layer \S+ \((pool|concat|convT)\) has no stock netx equivalent; "
                                          r"use the project's own \.net format and lava-cpu backend"):
        write_netx_compatible(qnet, "/nonexistent/never.net")


def test_four_thresholds_are_refused(tmp_path):
    qnet, _ = _quantized((8.0, 4.0, 2.0, 1.0))
    with pytest.raises(ExportError, match="layer 0: MT neurons with 4 thresholds have no stock netx equivalent"):
        write_netx_compatible(qnet, tmp_path / "x.net")
    assert not (tmp_path / "x.net").exists()


def _fixed(c_out: int, c_in: int) -> FixedSynapses:
    return FixedSynapses(weight=np.ones((c_out, c_in, 1, 1), np.int32), weight_exp=(0,), bias=np.zeros(c_out, np.int64),
                         bias_exp=np.zeros(c_out, np.int64), unit=1.0)


def test_branching_and_float_networks_are_refused():
    mt = MultiThreshold((4096,))
    layers = [Input(name="input", shape=(1, 4, 4)),
              Conv(name="a", shape=(2, 4, 4), inputs=("input",), neuron=mt, synapses=_fixed(2, 1), kernel=(1, 1),
                   static=True),
              Conv(name="b", shape=(2, 4, 4), inputs=("a",), neuron=mt, synapses=_fixed(2, 2), kernel=(1, 1)),
              Conv(name="c", shape=(2, 4, 4), inputs=("a",), neuron=Accumulator(), synapses=_fixed(2, 2),
                   kernel=(1, 1))]
    with pytest.raises(ExportError, match="layer c is not fed by the layer before it"):
        plan_netx_compatible(assign_depths(QuantizedNetwork(layers, NetworkMeta(weight_bits=8))))
    floating = [replace(l, synapses=FloatSynapses(l.synapses.weight.astype(np.float32)))
                if isinstance(l, SynapticLayer) else l for l in layers]
    with pytest.raises(ExportError, match="quantized"):
        plan_netx_compatible(FloatNetwork(floating))


@pytest.mark.lava
@pytest.mark.timeout(300)
def test_stock_netx_runs_the_file_like_the_reference(written):
    from toolchain.backends.lava.stock import run_stock_lava

    qnet, images, path, report = written
    net = read_netx(path)
    steps = report.run_steps(T)
    bias = netx_input_bias(qnet, images)[0]
    ref = simulate_cuba(net, bias, steps, reset_interval=steps)
    got = run_stock_lava(path, bias, steps, reset_interval=steps)
    for layer in net.neuron_layers:
        assert np.array_equal(got.spikes[layer.name], ref.spikes[layer.name]), layer.name
        assert np.array_equal(got.v[layer.name][0], ref.v[layer.name][-1]), layer.name
        assert np.array_equal(got.u[layer.name][0], ref.u[layer.name][-1]), layer.name
    assert got.spikes["input0"].sum() > 20 and got.spikes["conv1"].sum() > 20
    assert np.array_equal(decode_output(qnet, got.v["conv2"][0], T), decode_output(qnet, ref.v["conv2"][-1], T))
