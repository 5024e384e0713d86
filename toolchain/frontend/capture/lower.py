"""Lower a core-ATen ExportedProgram to the float layer graph (the ANN form conversion starts from).

One pass over the graph's nodes. A conv / convT / pool / upsample node starts a synaptic layer whose
neuron is decided by what consumes it: a ReLU makes it a neuron layer, the graph output makes it the
output accumulator, BatchNorm and scalar multiplications fold into it, and any other consumer
(a concat, another layer) needs its output to be >= 0 (then a ReLU population is exact) or, with
``linear="pair"``, makes it a signed pair (see :mod:`.rewrites`). Layers are named after the model's
modules (``inc.double_conv.0``); an operation that a container module calls itself is named
``<module>.<op>``; concats are ``concat0, concat1, ...``. Everything else is refused by
:func:`~.aten.refusal`, naming the module, its type, its graph node and what to change.
"""
from __future__ import annotations

import math
import operator
from fractions import Fraction

import torch
import torch.fx as fx

from ...ir import FloatNetwork, Input, assign_depths
from .aten import argument, bind, op_name, refusal, shape_of
from .builder import Info, Synapse
from .operations import Operations
from .options import DEFAULT_OPTIONS, CaptureOptions
from .rewrites import Rewrite

aten = torch.ops.aten
IDENTITIES = {aten.clone.default, aten.alias.default, aten.detach.default}
ACTIVATIONS = {"leaky_relu", "gelu", "silu", "sigmoid", "tanh", "hardtanh", "elu", "hardswish", "mish", "prelu",
               "_prelu_kernel", "softplus", "clamp", "abs"}


class _Lowering(Operations):
    """One pass over the graph (see the module docstring)."""

    def run(self) -> FloatNetwork:
        for node in self.graph.nodes:
            if node.op == "placeholder":
                if node.name not in self.tensors:
                    if self.layers:
                        raise refusal(node, "a second input", "give the model one image tensor")
                    _, c, h, w = shape_of(node)
                    self.layers.append(Input(name="input", shape=(c, h, w)))
                    self.info["input"] = Info(((c, False),), Fraction(1))
                    self.value[node.name] = "input"
                continue
            if node.op == "output":
                self.output(node)
                continue
            self.call(node)
        return assign_depths(FloatNetwork(tuple(self.layers)))

    def call(self, node: fx.Node) -> None:
        t, a = node.target, bind(node)
        if t == aten.convolution.default:
            self.convolution(node, a)
        elif t == aten._native_batch_norm_legit_no_training.default:
            self.batchnorm(node, a)
        elif getattr(t, "overloadpacket", None) in (aten._native_batch_norm_legit_functional,
                                                    aten._native_batch_norm_legit):
            raise refusal(node, "BatchNorm in training mode", "call model.eval() before exporting")
        elif t == operator.getitem:
            source = argument(node)
            value = self.value.get(source.name)
            if not (isinstance(value, tuple) and value[0] == "tuple" and node.args[1] == 0):
                raise refusal(node, f"uses output {node.args[1]} of {source.name}", "use only the main output")
            self.value[node.name] = value[1]
        elif t == aten.relu.default:
            self.relu(node, a["self"])
        elif t in (aten.avg_pool2d.default, aten.max_pool2d_with_indices.default, aten.max_pool2d.default):
            self.pool(node, a, is_max=t != aten.avg_pool2d.default)
        elif t in (aten.upsample_nearest2d.vec, aten.upsample_nearest2d.default):
            self.upsample(node, a, bilinear=False)
        elif t in (aten.upsample_bilinear2d.vec, aten.upsample_bilinear2d.default):
            self.upsample(node, a, bilinear=True)
        elif t in (aten.constant_pad_nd.default, aten.pad.default):
            if any(int(p) != 0 for p in a["pad"]):
                raise refusal(node, f"F.pad by {list(a['pad'])} at the export size",
                              "export at a size whose sides are multiples of 2**(number of down-samplings), "
                              "where a U-Net's pads are all zero")
            self.value[node.name] = self.value[a["self"].name]
        elif t == aten.cat.default:
            self.concat(node, a)
        elif t in (aten.mul.Tensor, aten.mul.Scalar, aten.div.Tensor, aten.div.Scalar):
            self.scale(node, a, divide=t in (aten.div.Tensor, aten.div.Scalar))
        elif t in IDENTITIES or (t == aten.dropout.default and not a["train"]):
            self.value[node.name] = self.value[argument(node).name]
        elif t in (aten._softmax.default, aten._log_softmax.default) and int(a["dim"]) in (1, -3) \
                and isinstance(self.value.get(a["self"].name), Synapse):
            self.value[node.name] = ("softmax", self.value[a["self"].name])
        elif op_name(node) in ACTIVATIONS:
            raise refusal(node, f"the activation {op_name(node)} has no multi-threshold IF equivalent",
                          "use ReLU (and retrain)")
        else:
            raise refusal(node, "an operation the spiking converter does not support",
                          "build the U-Net from Conv2d, ConvTranspose2d, BatchNorm2d, ReLU, AvgPool2d, "
                          "Upsample and torch.cat")


def lower_program(ep: torch.export.ExportedProgram, options: CaptureOptions = DEFAULT_OPTIONS
                  ) -> tuple[FloatNetwork, int, list[Rewrite]]:
    """The float layer graph of a core-ATen program, the side multiple its inputs need (the largest
    down-sampling factor) and the rewrites made (see the module docstring)."""
    lowering = _Lowering(ep, options)
    network = lowering.run()
    multiple = math.lcm(*(info.scale.numerator for info in lowering.info.values()))
    return network, multiple, lowering.rewrites
