"""Lava's own arithmetic as an independent oracle of this toolchain's integers.

With Lava's STOCK fixed_pt models (``PyConvModelFixed``, ``PyDelaySparseModelBitAcc``: code this project
did not write) for every synapse, a LavaNetwork of a small U-Net (both lowerings, pooling, transposed
convs, concats with delays carried by a DelayLine or by stock DelaySparse, 3 or 4 thresholds, two
images streamed) gives every layer's spikes at every step, the accumulator and every counter identical
to the reference simulator. Also: where Lava's Conv wraps (24 bits) the exact models stop with an
ExactnessError while Lava's own give other spikes; a stock netx file becomes lava-dl's own Network.
"""
from __future__ import annotations

import dataclasses
import functools
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from toolchain.backends.lava import run_lava
from toolchain.backends.lava.plan import plan_network
from toolchain.errors import BackendError, ExactnessError
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.ir import QuantizedNetwork
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings
from toolchain.simulators.reference import ReferenceSimulator

pytestmark = pytest.mark.lava
T = 5
NETX_DATA = Path(sysconfig.get_paths()["purelib"]) / "tests/lava/lib/dl/netx"


@functools.lru_cache(maxsize=None)
def _network(lowering: str, thresholds: tuple[float, ...] = (2.0, 1.0, 0.5, 0.25), task: str = "denoise",
             channels: int = 1, seed: int = 1) -> QuantizedNetwork:
    torch.manual_seed(seed)
    ann = UNet(UNetConfig(task, channels, channels if task == "denoise" else 3, width=4, depth=2))
    snn, info = convert(ann, torch.rand(4, channels, 16, 16), ConversionSettings(thresholds=thresholds))
    net, _ = export_network(snn, info, (16, 16), QuantSettings(steps=T), lowering=lowering)
    return net


def _assert_identical(got, ref) -> None:
    np.testing.assert_array_equal(got.accumulator, ref.accumulator)
    assert got.spike_counts == ref.spike_counts and got.saturations == ref.saturations
    assert got.image_spike_counts == ref.image_spike_counts and got.image_saturations == ref.image_saturations
    assert got.spikes.keys() == ref.spikes.keys() and len(ref.spikes) == 14
    for name, expected in ref.spikes.items():
        assert expected.sum() > 0, f"layer {name} never spikes: the comparison would be empty"
        for k in range(T):
            np.testing.assert_array_equal(got.spikes[name][k], expected[k], err_msg=f"layer {name}, step {k}")


@pytest.mark.parametrize("delays", ["line", "sparse"])
@pytest.mark.parametrize("lowering", ["compartments", "graded"])
def test_lava_stock_models_give_the_reference_spikes(lowering, delays):
    net = _network(lowering)
    kinds = plan_network(net, delays=delays)
    assert any(g.shuffle for g in kinds.convs) and any(g.groups > 1 for g in kinds.convs)   # convT, pool
    assert bool(kinds.sparse) == (delays == "sparse") and kinds.unproven() == []
    images = np.random.default_rng(2).random((2,) + tuple(net.input.shape))
    ref = ReferenceSimulator(net).run(images, T, record="spikes")
    got = run_lava(net, images, T, record="spikes", timeout_s=280, delays=delays, fast=False)
    _assert_identical(got, ref)


@pytest.mark.parametrize("delays", ["line", "sparse"])
def test_lava_stock_models_with_three_thresholds_and_color(delays):
    """Spike weights 3, 2, 1: a weight 3 is two DelaySparse groups (2**1 + 2**0) under the compartments lowering."""
    net = _network("compartments", (1.5, 1.0, 0.5), task="segment", channels=3, seed=2)
    images = np.random.default_rng(4).random((1,) + tuple(net.input.shape))
    ref = ReferenceSimulator(net).run(images, T, record="spikes")
    got = run_lava(net, images, T, record="spikes", timeout_s=280, delays=delays, fast=False)
    _assert_identical(got, ref)


def test_fast_models_with_delay_sparse_give_the_reference_spikes():
    net = _network("compartments")
    images = np.random.default_rng(5).random((1,) + tuple(net.input.shape))
    ref = ReferenceSimulator(net).run(images, T, record="spikes")
    _assert_identical(run_lava(net, images, T, record="spikes", timeout_s=280, delays="sparse"), ref)


def _wrapping(net: QuantizedNetwork) -> QuantizedNetwork:
    """Weight exponents + 10 in one layer: its synaptic sums pass 2**23, where Lava's Conv wraps."""
    layers = [dataclasses.replace(layer, synapses=dataclasses.replace(
        layer.synapses, weight_exp=tuple(e + 10 for e in layer.synapses.weight_exp)))
        if layer.name == "encoders.0.conv2" else layer for layer in net.layers]
    return net.with_layers(layers)


def test_a_wrapping_conv_sum_is_an_exactness_error():
    net = _wrapping(_network("graded"))
    assert plan_network(net).unproven() == ["encoders.0.conv2"]
    images = np.random.default_rng(3).random((1,) + tuple(net.input.shape))
    ref = ReferenceSimulator(net).run(images, T, record="spikes")
    assert ref.saturations["encoders.0.conv2"] > 0             # the reference saturates the membrane
    with pytest.raises(ExactnessError, match=r"Conv 'encoders.0.conv2' at Lava step \d+: .* >= 2\*\*23") as info:
        run_lava(net, images, T, timeout_s=200)
    assert isinstance(info.value, BackendError)
    # Lava's own Conv model wraps silently: other spikes than the reference (the discrepancy the check catches).
    lava = run_lava(net, images, T, record="spikes", timeout_s=280, fast=False)
    assert not np.array_equal(lava.spikes["encoders.0.conv2"], ref.spikes["encoders.0.conv2"])


@pytest.mark.skipif(not (NETX_DATA / "tiny.net").exists(), reason="lava-dl's netx test data is not installed")
def test_a_stock_netx_file_becomes_lava_dl_s_own_network():
    from lava.lib.dl import netx

    from toolchain import LavaNetwork

    net = LavaNetwork(net_config=str(NETX_DATA / "tiny.net"))
    assert net.stock and isinstance(net.netx, netx.hdf5.Network) and net.layers is net.netx.layers
    assert net.inp.shape == net.netx.inp.shape and net.out.shape == net.netx.out.shape
    assert net.processes() == [] and list(net.model_map()) == [net]


class StreamJob:
    """A user's script, in the backend's isolated worker: LavaNetwork with an unbounded stream of windows,
    a one-column RingBuffer source (the same image in every window) and a RingBuffer sink on ``out``."""

    def __init__(self, net: QuantizedNetwork, image: np.ndarray, windows: int) -> None:
        self.net, self.image, self.windows = net, image, windows

    def simulate(self, on_runtime, on_running):
        from lava.magma.core.run_conditions import RunSteps
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source

        from toolchain import LavaNetwork
        from toolchain.backends.lava.graph import finish_runtime

        net = LavaNetwork(net_config=self.net)              # images=None: window after window
        source = Source(data=net.encode(self.image)[..., None])
        sink = Sink(shape=net.out.shape, buffer=net.lava_steps(self.windows))
        source.s_out.connect(net.inp)
        net.out.connect(sink.a_in)
        ok = False
        try:
            net.create_runtime(run_cfg=net.run_config())
            on_runtime(net.runtime)
            on_running(True)
            net.run(condition=RunSteps(num_steps=net.lava_steps(self.windows)))
            on_running(False)
            data = sink.data.get()
            ok = True
        finally:
            on_running(False)
            finish_runtime(net.runtime, net.stop, ok)
        return {"out": [data[..., net.output_step(j) - 1] for j in range(self.windows)],
                "decoded": net.decode(data[..., net.output_step(0) - 1]), "steps": net.lava_steps(self.windows)}


def test_a_stream_of_windows_restarts_every_layer_each_window(tmp_path):
    from netx_export import write_network
    from toolchain.backends.lava.runner import run_in_worker

    net = _network("graded")
    path = tmp_path / "unet.net"
    write_network(net, path)
    image = np.random.default_rng(6).random(tuple(net.input.shape))
    ref = ReferenceSimulator(net).run(image[None], T)
    result = run_in_worker(StreamJob(net, image, 3), 240.0)  # type: ignore[arg-type]
    assert result["steps"] == net.latency + 3 * T
    for j, frame in enumerate(result["out"]):
        np.testing.assert_array_equal(np.rint(frame).astype(np.int64).transpose(2, 1, 0), ref.accumulator[0],
                                      err_msg=f"window {j}")
    np.testing.assert_allclose(result["decoded"], ref.output[0], rtol=0, atol=1e-12)
