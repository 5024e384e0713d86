"""Tracing a network into the layer graph: robust to neuron state, clear about inputs it cannot run."""
from __future__ import annotations

import pytest
import torch

from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.errors import ExportError
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings
from toolchain.frontend.trace import trace_network
from toolchain.frontend.unet import ScaledAvgPool2d, UNet, UNetConfig


def test_export_after_a_simulation_on_another_size():
    """The SNN holds no neuron state: one simulated on another size exports as before."""
    torch.manual_seed(0)
    ann = UNet(UNetConfig("denoise", 1, 1, width=2, depth=1))
    snn, info = convert(ann, torch.rand(2, 1, 8, 8), ConversionSettings())
    snn.simulate(torch.rand(1, 1, 12, 12), 2)
    network, _ = export_network(snn, info, (8, 8), QuantSettings(steps=2))
    assert network.input.shape == (1, 8, 8)
    again, _ = export_network(snn, info, (8, 8), QuantSettings(steps=2))
    assert all(a.name == b.name for a, b in zip(network.layers, again.layers))


def test_a_network_that_cannot_run_on_the_input_is_an_export_error():
    torch.manual_seed(0)
    ann = UNet(UNetConfig("denoise", 1, 1, width=2, depth=1))
    with pytest.raises(ExportError, match="cannot run on an input of shape"):
        trace_network(ann.core, (3, 8, 8))        # three channels into a one-channel first conv


class _Net(torch.nn.Module):
    """A small network built from a forward function, for the tracer's refusals."""

    def __init__(self, forward, **modules):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        self._forward = forward

    def forward(self, x):
        return self._forward(self, x)


def _conv(c_in=1, c_out=2, **kw):
    return torch.nn.Conv2d(c_in, c_out, 3, padding=1, **kw)


REFUSALS = {   # name: (network, input shape, fragment of the one-line message)
    "untraceable": (_Net(lambda m, x: m.c(x) if float(x.sum()) > 0 else x, c=_conv()), (1, 8, 8), "cannot be traced"),
    "wrong input channels": (_Net(lambda m, x: m.head(m.a(m.c(x))), c=_conv(3), a=torch.nn.ReLU(),
                                  head=_conv(2, 1)), (1, 8, 8), "cannot run on an input of shape"),
    "unknown module": (_Net(lambda m, x: m.head(m.bn(m.a(m.c(x)))), c=_conv(), a=torch.nn.ReLU(),
                            bn=torch.nn.BatchNorm2d(2), head=_conv(2, 1)), (1, 8, 8), "BatchNorm2d is not supported"),
    "synapse on a synapse": (_Net(lambda m, x: m.head(m.c2(m.c(x))), c=_conv(), c2=_conv(2, 2), head=_conv(2, 1)),
                             (1, 8, 8), "its input is not a neuron layer's output"),
    "activation without synapse": (_Net(lambda m, x: m.head(m.a(x)), a=torch.nn.ReLU(), head=_conv(1, 1)),
                                   (1, 8, 8), "an activation must follow a convolution or pooling"),
    "concat on another axis": (_Net(lambda m, x: m.head(torch.cat([m.a(m.c(x)), m.a(m.c(x))], dim=2)),
                                    c=_conv(), a=torch.nn.ReLU(), head=_conv(2, 1)), (1, 8, 8),
                               "only channel concatenation of neuron layers"),
    "output with activation": (_Net(lambda m, x: m.a(m.c(x)), c=_conv(), a=torch.nn.ReLU()), (1, 8, 8),
                               "the network output must be a convolution without activation"),
    "other function": (_Net(lambda m, x: m.head(m.a(m.c(x)) + 1.0), c=_conv(), a=torch.nn.ReLU(), head=_conv(2, 1)),
                       (1, 8, 8), "is not supported by the exporter"),
    "dangling synapse": (_Net(lambda m, x: (m.c2(m.a(m.c(x))), m.head(m.a(m.c(x))))[1], c=_conv(),
                              a=torch.nn.ReLU(), c2=_conv(2, 2), head=_conv(2, 1)), (1, 8, 8),
                         "modules without a following activation"),
    "first layer not a conv": (_Net(lambda m, x: m.head(m.a(m.p(x))), p=ScaledAvgPool2d(2), a=torch.nn.Identity(),
                                    head=_conv(1, 1)), (1, 8, 8), "the first layer must be a convolution of the input"),
    "dilated transposed conv": (_Net(lambda m, x: m.head(m.a2(m.t(m.a(m.c(x))))), c=_conv(), a=torch.nn.ReLU(),
                                     t=torch.nn.ConvTranspose2d(2, 2, 3, dilation=2), a2=torch.nn.ReLU(),
                                     head=_conv(2, 1)), (1, 8, 8), "only undilated transposed"),
    "non-square stride": (_Net(lambda m, x: m.head(m.a(m.c(x))), c=torch.nn.Conv2d(1, 2, 3, stride=(1, 2)),
                               a=torch.nn.ReLU(), head=_conv(2, 1)), (1, 8, 8), "only square, undilated"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_the_tracer_refuses_by_name(case):
    network, shape, fragment = REFUSALS[case]
    with pytest.raises(ExportError) as info:
        trace_network(network, shape)
    assert fragment in str(info.value) and "\n" not in str(info.value)
