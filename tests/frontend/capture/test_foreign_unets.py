"""Four foreign U-Nets through the whole pipeline: capture, convert, fine-tune, save and reload (a graph
checkpoint), export, and lava-cpu against the integer reference simulator, spike for spike.

The nets are written as their users write them (``foreign_unets.py``): milesial's with BatchNorm,
MaxPool, bilinear upsampling and ``F.pad``; milesial's with ConvTranspose k2; a depthwise-separable
U-Net; and one whose concat order is ``[up, skip]``.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from foreign_unets import DepthwiseUNet, UpFirstUNet, milesial

from toolchain.backends.lava import run_lava
from toolchain.frontend.capture import CaptureOptions, from_model
from toolchain.frontend.checkpoint import load_snn, save_checkpoint, snn_checkpoint
from toolchain.frontend.conversion import ConversionSettings
from toolchain.frontend.snn import SpikingNetwork
from toolchain.frontend.training import finetune_spiking_flow
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings
from toolchain.simulators.reference import ReferenceSimulator
from toolchain.tasks.spec import TaskSpec

T, SIDE = 4, 16
NETS = {
    "milesial bilinear + F.pad": (lambda: milesial(True, align_corners=False), CaptureOptions(maxpool="avg")),
    "milesial convT k2": (lambda: milesial(False), CaptureOptions(maxpool="avg", linear="pair")),
    "depthwise separable": (lambda: DepthwiseUNet().eval(), CaptureOptions()),
    "concat [up, skip]": (lambda: UpFirstUNet().eval(), CaptureOptions()),
}


class _Sampler:
    """Random segmentation batches (the fine-tuning loop only needs ``()`` and ``task``)."""

    task = "segment"

    def __init__(self, seed: int) -> None:
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand(2, 1, SIDE, SIDE, generator=self.gen)
        return x, (x[:, 0] > 0.5).long()


@functools.cache
def _converted(name: str) -> tuple[SpikingNetwork, dict]:
    build, options = NETS[name]
    torch.manual_seed(0)
    calibration = torch.rand(8, 1, SIDE, SIDE)
    return from_model(build(), calibration, TaskSpec("segment", 1, 2), ConversionSettings(), options)


@pytest.mark.parametrize("name", list(NETS))
def test_converted_snn_approaches_its_ann(name):
    snn, info = _converted(name)
    x = torch.rand(2, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ann = snn.ann_forward(x)
        errors = [float((snn.simulate(x, steps).output - ann).abs().mean()) for steps in (4, 32)]
    assert errors[1] < errors[0], errors           # more steps, closer to the ANN it came from
    assert info["capture"]["layers"] == len(snn.network.layers)


@pytest.mark.parametrize("name", list(NETS))
def test_finetune_save_reload(name, tmp_path):
    snn, info = _converted(name)
    snn = SpikingNetwork(snn.to_network(), snn.multiple, spec=snn.spec)      # a copy: the cache stays untouched
    before = {k: v.clone() for k, v in snn.state_dict().items()}
    losses = finetune_spiking_flow(snn, _Sampler(0), steps=T, iterations=3, lr=1e-3, progress=False)
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert any(not torch.equal(before[k], v) for k, v in snn.state_dict().items())
    path = tmp_path / "snn.pt"
    save_checkpoint(path, snn_checkpoint(snn, info, {"note": name}))
    loaded, ckpt = load_snn(path)
    assert ckpt.config is None and ckpt.graph is not None and ckpt.spec == TaskSpec("segment", 1, 2)
    x = torch.rand(1, 1, SIDE, SIDE)
    assert torch.equal(loaded.simulate(x, T).output, snn.simulate(x, T).output)
    save_checkpoint(tmp_path / "again.pt", snn_checkpoint(loaded, ckpt.spiking, ckpt.meta))
    assert (tmp_path / "again.pt").read_bytes() == path.read_bytes()


@pytest.mark.lava
@pytest.mark.parametrize("name", list(NETS))
def test_exported_network_runs_identically_on_lava(name):
    snn, info = _converted(name)
    net, _ = export_network(snn, info, (SIDE, SIDE), QuantSettings(steps=T))
    images = np.random.default_rng(1).random((1,) + tuple(net.input.shape))
    ref = ReferenceSimulator(net).run(images, T, record="spikes")
    assert sum(map(sum, ref.spike_counts.values())) > 0
    got = run_lava(net, images, T, record="spikes", timeout_s=240)
    np.testing.assert_array_equal(got.accumulator, ref.accumulator)
    assert got.spike_counts == ref.spike_counts
    for layer, expected in ref.spikes.items():
        np.testing.assert_array_equal(got.spikes[layer], expected, err_msg=layer)


@pytest.mark.parametrize("name", list(NETS))
def test_quantized_network_follows_the_float_snn(name):
    """The 8-bit network against the float SNN it was exported from, with the tolerances of this
    toolchain's own U-Nets (tests/simulators/test_refsim_unets.py): mean |error| < 3 % of the mean
    |output|, spike counts within 2 %."""
    snn, info = _converted(name)
    steps = 8
    net, _ = export_network(snn, info, (SIDE, SIDE), QuantSettings(steps=steps))
    images = np.random.default_rng(2).integers(0, 256, (2,) + tuple(net.input.shape)) / 255.0
    fixed = ReferenceSimulator(net).run(images, steps)
    with torch.no_grad():
        floating = snn.simulate(torch.from_numpy(images).float(), steps)
    out = floating.output.double().numpy()
    assert np.abs(fixed.output - out).mean() / np.abs(out).mean() < 0.03
    float_spikes = sum(sum(s.counts) for s in floating.stats)
    assert abs(sum(map(sum, fixed.spike_counts.values())) / float_spikes - 1.0) < 0.02
