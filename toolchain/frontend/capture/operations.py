"""The operations of a U-Net's core-ATen graph, one method each (see :mod:`.lower` for the rules)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch.fx as fx

from ...ir import Concat, Input
from .aten import Owner, refusal, shape_of
from .builder import GraphBuilder, Split, Synapse
from .rewrites import Rewrite, bilinear_kernel, fold_batchnorm, nearest_kernel, read_pairs


class Operations(GraphBuilder):
    """One handler per supported operation; each records its node's value (see :class:`GraphBuilder`)."""

    def convolution(self, node: fx.Node, a: dict[str, Any]) -> None:
        src = self.settled(a["input"], node)
        if any(int(d) != 1 for d in a["dilation"]):
            raise refusal(node, f"dilation {list(a['dilation'])}", "use dilation 1")
        transposed, groups = bool(a["transposed"]), int(a["groups"])
        weight = self.array(a["weight"], node)
        assert weight is not None
        info = self.info[src]
        geometry: dict[str, Any] = {
            "kernel": self.square(weight.shape[2:], "kernel", node), "stride": self.square(a["stride"], "stride", node),
            "padding": self.square(a["padding"], "padding", node),
            "output_padding": self.square(a["output_padding"], "output_padding", node) if transposed else 0}
        if info.paired:
            if groups != 1:
                raise refusal(node, "a grouped convolution of a signed pair", "add a ReLU before it (and retrain)")
            weight = read_pairs(weight, list(info.parts), 0 if transposed else 1)
        if isinstance(self.layer(src), Input) and transposed:
            raise refusal(node, "a transposed convolution of the image", "start with a Conv2d (static coding)")
        bias = self.array(a["bias"], node)
        if isinstance(self.layer(src), Concat) and groups != 1:
            self.value[node.name] = self.split(node, src, weight, bias, transposed, groups, geometry)
            return
        _, _, h, w = shape_of(node)
        self.value[node.name] = Synapse("convT" if transposed else "conv", self.name_for(node), src, node, (h, w),
                                         weight, bias, groups=groups, **geometry)

    def batchnorm(self, node: fx.Node, a: dict[str, Any]) -> None:
        x = a["input"]
        value = self.value.get(x.name)
        pieces = value.pieces if isinstance(value, Split) else [value]
        if not all(isinstance(p, Synapse) and p.kind != "pool" and not p.fixed for p in pieces) or len(x.users) != 1:
            raise refusal(node, "BatchNorm that does not directly follow a convolution (alone)",
                          "put BatchNorm2d right after its Conv2d / ConvTranspose2d, before the ReLU")
        stats = [self.array(a[key], node) for key in ("weight", "bias", "running_mean", "running_var")]
        for syn in pieces:
            assert isinstance(syn, Synapse)
            out = slice(syn.channel_offset, syn.channel_offset + syn.channels)
            gamma, beta, mean, var = (None if t is None else t[out] for t in stats)
            assert mean is not None and var is not None
            syn.weight, syn.bias = fold_batchnorm(syn.weight, syn.bias, syn.kind == "convT", syn.groups,
                                                  gamma, beta, mean, var, float(a["eps"]))
            syn.notes.append(Rewrite(syn.name, Owner.of(node).describe(), "batchnorm-folded", True,
                                     "eval-mode BatchNorm folded into the convolution's weights and bias"))
        self.used.add(x.name)
        self.value[node.name] = ("tuple", value)

    def relu(self, node: fx.Node, x: fx.Node) -> None:
        value = self.value.get(x.name)
        activation = Owner.of(node).path or None
        if isinstance(value, Synapse) and x.name not in self.used:
            self.used.add(x.name)
            self.value[node.name] = self.add(value, activation=activation)
        elif isinstance(value, Split) and x.name not in self.used:
            self.used.add(x.name)
            self.value[node.name] = self.join([self.add(p, activation=activation) for p in value.pieces], node)
        elif isinstance(value, str) and not isinstance(self.layer(value), Input) and not self.info[value].paired:
            self.value[node.name] = value     # ReLU of a neuron layer's output (>= 0): the identity
        else:
            raise refusal(node, "a ReLU of something that is not a convolution or pooling output",
                          "apply ReLU right after a Conv2d / ConvTranspose2d / BatchNorm2d")

    def pool(self, node: fx.Node, a: dict[str, Any], is_max: bool) -> None:
        if is_max and self.options.maxpool != "avg":
            raise refusal(node, "MaxPool2d has no exact spiking equivalent here",
                          "convert with `maxpool` avg (AvgPool2d of the same kernel: changes the function, so "
                          "fine-tune afterwards), or train the model with nn.AvgPool2d")
        k = self.square(a["kernel_size"], "kernel", node)
        s = self.square(a["stride"] or a["kernel_size"], "stride", node)
        p = self.square(a["padding"], "padding", node)
        dilation = self.square(a.get("dilation", 1), "dilation", node) if is_max else 1
        _, _, h_in, w_in = shape_of(a["self"])
        if s != k or p != 0 or dilation != 1 or (a["ceil_mode"] and (h_in % k or w_in % k)) \
                or (not is_max and a["divisor_override"] is not None):
            raise refusal(node, f"pooling kernel {k} stride {s} padding {p} ceil_mode {a['ceil_mode']}",
                          "use non-overlapping pooling: kernel == stride, no padding, no divisor override")
        src = self.source_for(a["self"], node, "pooling")
        _, _, h, w = shape_of(node)
        syn = Synapse("pool", self.name_for(node), src, node, (h, w), np.array([1.0 / (k * k)]), kernel=k, stride=k,
                       fixed=True)
        if is_max:
            syn.notes.append(Rewrite(syn.name, Owner.of(node).describe(), "maxpool-as-avgpool", False,
                                     "MaxPool2d replaced by AvgPool2d of the same kernel: the function changes"))
        with_indices = isinstance(node.meta.get("val"), list | tuple)      # max_pool2d_with_indices
        self.value[node.name] = ("tuple", syn) if with_indices else syn

    def upsample(self, node: fx.Node, a: dict[str, Any], bilinear: bool) -> None:
        x = a["input"]
        _, c, h, w = shape_of(x)
        _, _, oh, ow = shape_of(node)
        if (oh, ow) == (h, w):
            self.value[node.name] = self.value[x.name]
            return
        if oh % h or ow % w or oh // h != ow // w:
            raise refusal(node, f"a resize {h}x{w} -> {oh}x{ow} that is not an integer square scale",
                          "upsample by an integer factor")
        scale = oh // h
        src = self.source_for(x, node, "upsampling")
        channels = self.layer(src).shape[0]
        if not bilinear:
            syn = Synapse("convT", self.name_for(node), src, node, (oh, ow), nearest_kernel(channels, scale),
                           kernel=scale, stride=scale, groups=channels, fixed=True)
            note = Rewrite(syn.name, Owner.of(node).describe(), "nearest-upsample", True,
                           f"nearest upsampling x{scale} as a fixed depthwise ConvTranspose (kernel {scale})")
        else:
            if scale != 2:
                raise refusal(node, f"bilinear upsampling x{scale}", "use scale 2 (or nearest upsampling)")
            if a["align_corners"] and self.options.align_corners != "approx":
                raise refusal(node, "bilinear upsampling with align_corners=True has no fixed-stride kernel",
                              "use align_corners=False, or convert with `align_corners` approx (the "
                              "align_corners=False kernel: a shift of up to 1/4 pixel towards the borders)")
            syn = Synapse("convT", self.name_for(node), src, node, (oh, ow), bilinear_kernel(channels),
                           kernel=4, stride=2, padding=1, groups=channels, fixed=True)
            shift = "; align_corners=True approximated (up to 1/4 pixel shift)" if a["align_corners"] else ""
            note = Rewrite(syn.name, Owner.of(node).describe(), "bilinear-upsample", False,
                           "bilinear x2 as a fixed depthwise ConvTranspose (kernel 4, stride 2, padding 1): exact "
                           f"inside, the outermost rows and columns at 3/4 and the corners at 9/16{shift}")
        syn.notes.append(note)
        self.value[node.name] = syn

    def concat(self, node: fx.Node, a: dict[str, Any]) -> None:
        if int(a["dim"]) not in (1, -3):
            raise refusal(node, f"a concatenation along dim {a['dim']}", "concatenate channels (dim=1)")
        parts = [self.settled(part, node) for part in a["tensors"]]
        if any(isinstance(self.layer(p), Input) for p in parts):
            raise refusal(node, "a concatenation with the image", "concatenate layer outputs only")
        self.value[node.name] = self.join(parts, node)

    def scale(self, node: fx.Node, a: dict[str, Any], divide: bool) -> None:
        x, factor = a["self"], a["other"]
        syn = self.value.get(x.name) if isinstance(x, fx.Node) else None
        if isinstance(factor, fx.Node) and factor.name in self.tensors and self.tensors[factor.name].numel() == 1:
            factor = float(self.tensors[factor.name].reshape(-1)[0])
        if not isinstance(syn, Synapse) or not isinstance(factor, int | float) or len(x.users) != 1 or not factor:
            raise refusal(node, "a multiplication other than a layer's output by a constant scalar",
                          "scale inside the layer (its weights), not between layers")
        factor = 1.0 / factor if divide else float(factor)
        syn.weight = syn.weight * factor
        syn.bias = None if syn.bias is None else syn.bias * factor
        syn.notes.append(Rewrite(syn.name, Owner.of(node).describe(), "scale-folded", True,
                                 f"multiplication by {factor:g} folded into the weights"))
        self.used.add(x.name)
        self.value[node.name] = syn

    def output(self, node: fx.Node) -> None:
        outs = node.args[0]
        if not isinstance(outs, list | tuple) or len(outs) != 1:
            raise refusal(node, f"{len(outs) if isinstance(outs, list | tuple) else '?'} outputs",
                          "return one tensor (the noise map or the class logits)")
        (out,) = outs
        if not isinstance(out, fx.Node):
            raise refusal(node, "the output is not a tensor of the graph", "return the last convolution's output")
        value = self.value.get(out.name)
        if isinstance(value, tuple) and value[0] == "softmax":
            self.rewrites.append(Rewrite(value[1].name, Owner.of(out).describe(), "softmax-dropped", False,
                                         "the final softmax is dropped: the SNN outputs logits (same argmax)"))
            value = value[1]
        if not isinstance(value, Synapse) or value.kind == "pool" or value.fixed or out.name in self.used:
            raise refusal(out, "the network output is not a convolution without activation",
                          "end the model with a Conv2d (its output accumulates over the time steps; no final ReLU)")
        self.add(value, activation=None, output=True)

    # --------------------------------------------------------------------------------------- driver
