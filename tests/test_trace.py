"""Tracing a network into the layer graph: robust to neuron state, clear about inputs it cannot run."""
from __future__ import annotations

import pytest
import torch

from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.errors import ExportError
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings
from toolchain.frontend.trace import trace_network
from toolchain.frontend.unet import UNet, UNetConfig


def test_export_after_a_simulation_on_another_size():
    """Tracing resets the neurons first: a simulated SNN (membranes of another shape) still exports."""
    torch.manual_seed(0)
    ann = UNet(UNetConfig("denoise", 1, 1, width=2, depth=1))
    snn, info = convert(ann, torch.rand(2, 1, 8, 8), ConversionSettings())
    snn.simulate(torch.rand(1, 1, 12, 12), 2)
    network, _ = export_network(snn, info, (8, 8), QuantSettings(steps=2))
    assert network.input.shape == (1, 8, 8)
    assert all(not isinstance(n.v, torch.Tensor) for _, n in snn.neurons())


def test_a_network_that_cannot_run_on_the_input_is_an_export_error():
    torch.manual_seed(0)
    ann = UNet(UNetConfig("denoise", 1, 1, width=2, depth=1))
    with pytest.raises(ExportError, match="cannot run on an input of shape"):
        trace_network(ann.core, (3, 8, 8))        # three channels into a one-channel first conv
