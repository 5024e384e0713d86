"""Trace this toolchain's U-Net core with torch.fx into the float layer graph of :mod:`toolchain.ir`.

Fast (no weights needed: checkpoints rebuild their structure on the meta device with it); any other
model goes through :mod:`toolchain.frontend.capture` (torch.export, with BatchNorm folding,
upsampling and the other rewrites), which gives this U-Net the same graph (a test checks it).

Synaptic modules (Conv2d, ConvTranspose2d, ScaledAvgPool2d) are fused with the activation that
follows them (ReLU, or Identity after pooling) into one layer whose neuron ``neuron_of(activation)``
decides (a one-threshold placeholder by default; conversion gives the SNN's thresholds);
``torch.cat`` on channels becomes a concat layer; a synaptic module with no activation after it is
the output accumulator. Anything else is refused with an error naming the module or function.
Layers are named after their synaptic modules (``encoders.0.conv1``), concats ``concat0, 1, ...``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import ExportError
from ..ir import (
    Accumulator,
    Concat,
    Conv,
    ConvTranspose,
    FloatNetwork,
    FloatSynapses,
    Input,
    Layer,
    LayerSource,
    MultiThreshold,
    Neuron,
    Shape,
    SumPool,
    SynapticLayer,
    assign_depths,
    pair,
)
from .unet import ScaledAvgPool2d

SYNAPSES = (nn.Conv2d, nn.ConvTranspose2d, ScaledAvgPool2d)
ACTIVATIONS = (nn.ReLU, nn.Identity)
NeuronOf = Callable[[nn.Module], Neuron]


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, SYNAPSES + ACTIVATIONS) or super().is_leaf_module(m, qualname)


def placeholder_neuron(module: nn.Module) -> Neuron:
    """The neuron of an ANN activation before conversion: a one-threshold placeholder."""
    return MultiThreshold((1.0,))


def _shape(node: fx.Node) -> Shape:
    meta = node.meta.get("tensor_meta")
    if meta is None:
        raise ExportError(f"no shape could be inferred for {node.name}")
    c, h, w = (int(s) for s in meta.shape[1:])
    return c, h, w


def _weight(t: torch.Tensor, weights: bool) -> np.ndarray:
    if not weights or t.is_meta:
        return np.zeros(tuple(t.shape), np.float32)
    return t.detach().numpy().astype(np.float32)


def _array(t: torch.Tensor | None, weights: bool) -> np.ndarray | None:
    return None if t is None else _weight(t, weights)


def synapse_layer(name: str, module: nn.Module, src: str, shape: Shape, neuron: Neuron,
                  weights: bool = True) -> SynapticLayer:
    """The layer of one synaptic module (weights copied as float32; zeros when ``weights`` is off)."""
    common: dict[str, Any] = {"name": name, "shape": shape, "inputs": (src,), "neuron": neuron,
                                  "source": LayerSource(synapse=name)}
    if isinstance(module, nn.Conv2d):
        if module.dilation != (1, 1) or isinstance(module.padding, str) or module.stride[0] != module.stride[1]:
            raise ExportError(f"module {name}: only square, undilated convolutions with numeric padding are supported")
        return Conv(**common, synapses=FloatSynapses(_weight(module.weight, weights), _array(module.bias, weights)),
                    kernel=pair(module.kernel_size), stride=pair(module.stride), padding=pair(module.padding),
                    groups=module.groups)
    if isinstance(module, nn.ConvTranspose2d):
        if module.dilation != (1, 1):
            raise ExportError(f"module {name}: only undilated transposed convolutions are supported")
        return ConvTranspose(**common, synapses=FloatSynapses(_weight(module.weight, weights),
                                                              _array(module.bias, weights)),
                             kernel=pair(module.kernel_size), stride=pair(module.stride),
                             padding=pair(module.padding), output_padding=pair(module.output_padding),
                             groups=module.groups)
    assert isinstance(module, ScaledAvgPool2d)
    scale = float(module.scale) if weights and not module.scale.is_meta else 1.0
    weight = scale / module.kernel ** 2
    return SumPool(**common, synapses=FloatSynapses(np.array([weight], np.float32)), kernel=pair(module.kernel),
                   pool_weight=weight)


def trace_network(core: nn.Module, input_shape: Shape, neuron_of: NeuronOf = placeholder_neuron,
                  weights: bool = True) -> FloatNetwork:
    """Trace ``core`` on an input of ``input_shape`` (C, H, W) into a float network with depths.

    ``weights=False`` describes the structure only (zero weights; ``core`` may live on the meta device).
    """
    try:
        graph_module = fx.GraphModule(core, _Tracer().trace(core))
    except Exception as exc:  # fx raises many types for untraceable code
        raise ExportError(f"the network cannot be traced: {exc}") from exc
    was_training = core.training
    core.eval()
    device = next((p.device for p in core.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad():
            ShapeProp(graph_module).propagate(torch.zeros(1, *input_shape, device=device))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"the network cannot run on an input of shape {tuple(input_shape)}: {first}") from exc
    finally:
        core.train(was_training)

    modules = dict(core.named_modules())
    layers: list[Layer] = []
    value_of: dict[str, str] = {}        # fx node -> the layer whose output it is
    pending: dict[str, tuple[str, nn.Module, str]] = {}   # fx node -> synaptic module awaiting its activation
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            layers.append(Input(name="input", shape=_shape(node)))
            value_of[node.name] = "input"
        elif node.op == "call_module":
            module = modules[node.target]
            (arg,) = node.args
            if isinstance(module, SYNAPSES):
                if arg.name not in value_of:
                    raise ExportError(f"module {node.target}: its input is not a neuron layer's output")
                pending[node.name] = (node.target, module, value_of[arg.name])
            elif isinstance(module, ACTIVATIONS):
                if arg.name not in pending:
                    raise ExportError(f"module {node.target}: an activation must follow a convolution or pooling")
                name, synapse, src = pending.pop(arg.name)
                layer = synapse_layer(name, synapse, src, _shape(arg), neuron_of(module), weights)
                layers.append(replace(layer, source=LayerSource(synapse=name, activation=node.target)))
                value_of[node.name] = name
            else:
                raise ExportError(f"module {node.target} of type {type(module).__name__} is not supported "
                                  f"by the exporter (convert other models with toolchain.frontend.capture.from_model)")
        elif node.op == "call_function" and node.target is torch.cat:
            parts = node.args[0]
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            if dim != 1 or any(p.name not in value_of for p in parts):
                raise ExportError(f"{node.name}: only channel concatenation of neuron layers is supported")
            name = f"concat{sum(1 for lay in layers if isinstance(lay, Concat))}"
            layers.append(Concat(name=name, shape=_shape(node), inputs=tuple(value_of[p.name] for p in parts)))
            value_of[node.name] = name
        elif node.op == "output":
            (arg,) = node.args
            if arg.name not in pending:
                raise ExportError("the network output must be a convolution without activation")
            name, synapse, src = pending.pop(arg.name)
            layers.append(synapse_layer(name, synapse, src, _shape(arg), Accumulator(), weights))
        else:
            raise ExportError(f"{node.op} {node.target} is not supported by the exporter")
    if pending:
        raise ExportError(f"modules without a following activation: {sorted(name for name, _, _ in pending.values())}")
    head = layers[1]
    if not isinstance(head, Conv) or head.inputs != ("input",):
        raise ExportError("the first layer must be a convolution of the input (static coding)")
    layers[1] = replace(head, static=True)
    return assign_depths(FloatNetwork(tuple(layers)))

