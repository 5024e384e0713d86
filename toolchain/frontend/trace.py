"""Trace a U-Net core (ANN or SNN) with torch.fx into the float layer graph of :mod:`toolchain.graph`.

Synaptic modules (Conv2d, ConvTranspose2d, ScaledAvgPool2d) are fused with the activation that
follows them (ReLU / Identity in the ANN, an MT neuron in the SNN) into one layer; ``torch.cat``
becomes a concat layer; a synaptic module with no activation after it is the output accumulator.
Anything else is refused with an error naming the module or function.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from toolchain.errors import ExportError
from toolchain.ir.graph import Layer, Network, NeuronSpec, assign_depths
from toolchain.neuron.mt import MultiThresholdNeuron
from toolchain.frontend.unet import ScaledAvgPool2d

SYNAPSES = (nn.Conv2d, nn.ConvTranspose2d, ScaledAvgPool2d)
ACTIVATIONS = (nn.ReLU, nn.Identity, MultiThresholdNeuron)
NeuronOf = Callable[[nn.Module], NeuronSpec]


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, SYNAPSES + ACTIVATIONS) or super().is_leaf_module(m, qualname)


def neuron_of_module(module: nn.Module) -> NeuronSpec:
    """MT spec of an SNN activation; ANN activations map to a placeholder one-threshold spec."""
    if isinstance(module, MultiThresholdNeuron):
        return NeuronSpec("MT", module.thresholds)
    return NeuronSpec("MT", (1.0,))


def _shape(node: fx.Node) -> tuple[int, int, int]:
    meta = node.meta.get("tensor_meta")
    if meta is None:
        raise ExportError(f"no shape could be inferred for {node.name}")
    return tuple(int(s) for s in meta.shape[1:])  # type: ignore[return-value]


def _synapse_layer(name: str, module: nn.Module, src: str, shape: tuple[int, int, int]) -> Layer:
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.dilation != (1, 1) or module.stride[0] != module.stride[1]:
            raise ExportError(f"module {name}: only square, ungrouped, undilated convolutions are supported")
        return Layer(name, "conv", shape, (src,), weight=module.weight.detach().numpy().astype(np.float32),
                     bias=None if module.bias is None else module.bias.detach().numpy().astype(np.float32),
                     kernel=module.kernel_size[0], stride=module.stride[0], padding=module.padding[0])
    if isinstance(module, nn.ConvTranspose2d):
        if module.groups != 1 or module.dilation != (1, 1):
            raise ExportError(f"module {name}: only ungrouped, undilated transposed convolutions are supported")
        return Layer(name, "convT", shape, (src,), weight=module.weight.detach().numpy().astype(np.float32),
                     bias=None if module.bias is None else module.bias.detach().numpy().astype(np.float32),
                     kernel=module.kernel_size[0], stride=module.stride[0], padding=module.padding[0],
                     output_padding=module.output_padding[0])
    assert isinstance(module, ScaledAvgPool2d)
    return Layer(name, "pool", shape, (src,), kernel=module.kernel, stride=module.kernel,
                 pool_weight=float(module.scale) / module.kernel ** 2)


def trace_network(core: nn.Module, input_shape: tuple[int, int, int],
                  neuron_of: NeuronOf = neuron_of_module) -> Network:
    """Trace ``core`` on an input of ``input_shape`` (C, H, W) into a float :class:`Network` with depths."""
    try:
        graph_module = fx.GraphModule(core, _Tracer().trace(core))
    except Exception as exc:  # fx raises many types for untraceable code
        raise ExportError(f"the network cannot be traced: {exc}") from exc
    neurons = [m for m in core.modules() if isinstance(m, MultiThresholdNeuron)]
    was_training = core.training
    core.eval()
    try:
        for neuron in neurons:      # a simulation may have left membranes of another input size
            neuron.reset()
        with torch.no_grad():
            ShapeProp(graph_module).propagate(torch.zeros(1, *input_shape))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"the network cannot run on an input of shape {tuple(input_shape)}: {first}") from exc
    finally:
        core.train(was_training)
        for neuron in neurons:      # and shape propagation must leave none behind
            neuron.reset()

    modules = dict(core.named_modules())
    layers: list[Layer] = []
    value_of: dict[str, str] = {}        # fx node -> the layer whose output it is
    pending: dict[str, Layer] = {}       # fx node -> synaptic layer awaiting its activation
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            layers.append(Layer("input", "input", _shape(node)))
            value_of[node.name] = "input"
        elif node.op == "call_module":
            module = modules[node.target]
            (arg,) = node.args
            if isinstance(module, SYNAPSES):
                if arg.name not in value_of:
                    raise ExportError(f"module {node.target}: its input is not a neuron layer's output")
                layer = _synapse_layer(node.target, module, value_of[arg.name], _shape(node))
                layer.source["synapse"] = node.target
                pending[node.name] = layer
            elif isinstance(module, ACTIVATIONS):
                if arg.name not in pending:
                    raise ExportError(f"module {node.target}: an activation must follow a convolution or pooling")
                layer = pending.pop(arg.name)
                layer.neuron = neuron_of(module)
                layer.source["activation"] = node.target
                layers.append(layer)
                value_of[node.name] = layer.name
            else:
                raise ExportError(f"module {node.target} of type {type(module).__name__} is not supported "
                                  f"by the exporter")
        elif node.op == "call_function" and node.target is torch.cat:
            parts = node.args[0]
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            if dim != 1 or any(p.name not in value_of for p in parts):
                raise ExportError(f"{node.name}: only channel concatenation of neuron layers is supported")
            name = f"concat{sum(1 for l in layers if l.kind == 'concat')}"
            layers.append(Layer(name, "concat", _shape(node), tuple(value_of[p.name] for p in parts)))
            value_of[node.name] = name
        elif node.op == "output":
            (arg,) = node.args
            if arg.name not in pending:
                raise ExportError("the network output must be a convolution without activation")
            layer = pending.pop(arg.name)
            layer.neuron = NeuronSpec("ACC")
            layers.append(layer)
        else:
            raise ExportError(f"{node.op} {node.target} is not supported by the exporter")
    if pending:
        raise ExportError(f"modules without a following activation: {sorted(l.name for l in pending.values())}")
    first = layers[1]
    if first.kind != "conv" or first.inputs != ("input",):
        raise ExportError("the first layer must be a convolution of the input (static coding)")
    first.static = True
    return assign_depths(Network(layers))
