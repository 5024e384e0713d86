"""Graph depths, concat delays and resize on traced U-Nets (small hand-built graphs: test_ir.py)."""
from __future__ import annotations

import pytest
import torch

from toolchain.errors import ExportError
from toolchain.frontend.trace import trace_network
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.ir import Concat, Conv, Input, SynapticLayer, assign_depths, resize


# --- depths and delays

@pytest.mark.parametrize("depth", [2, 3])
def test_depths_and_delays(depth):
    side = 2 ** depth * 2
    net = trace_network(UNet(UNetConfig("denoise", 1, 1, width=2, depth=depth)).core, (1, side, side))
    for layer in net:
        if isinstance(layer, Input):
            assert layer.depth == -1
        elif isinstance(layer, Conv) and layer.static:
            assert layer.depth == 0 and layer.name == "encoders.0.conv1"
        elif isinstance(layer, Concat):
            parts = [net[s].depth for s in layer.inputs]
            assert layer.depth == max(parts)
            assert layer.delays == tuple(layer.depth - d for d in parts)
        else:
            assert layer.depth == net[layer.inputs[0]].depth + 1, layer.name
    assert net.latency == net.output.depth == 6 * depth + 2
    concats = [l for l in net if isinstance(l, Concat)]
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


# --- resize

@pytest.mark.parametrize("depth,hw", [(2, (24, 40)), (3, (8, 56)), (1, (6, 2))])
def test_resize_matches_torch_shapes(depth, hw):
    torch.manual_seed(0)
    ann = UNet(UNetConfig("denoise", 1, 1, width=2, depth=depth))
    net = trace_network(ann.core, (1, 2 ** depth * 2, 2 ** depth * 2))
    sized = resize(net, hw)
    shapes, modules = {}, dict(ann.core.named_modules())
    hooks = [modules[l.source.synapse].register_forward_hook(
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
    assert [(l.depth, getattr(l, "delays", None)) for l in sized] == \
        [(l.depth, getattr(l, "delays", None)) for l in retraced]
    for a, b in zip(sized, net):      # weights are shared, not copied
        if isinstance(a, SynapticLayer):
            assert a.synapses is b.synapses and a.synapses.weight is b.synapses.weight


def test_resize_refuses_sizes_that_do_not_fit():
    net = trace_network(UNet(UNetConfig("denoise", 1, 1, width=2, depth=2)).core, (1, 8, 8))
    with pytest.raises(ExportError, match=r"layer concat0: parts of sizes .* 18x20 input"):
        resize(net, (18, 20))
