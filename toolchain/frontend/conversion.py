"""ANN -> SNN conversion: calibration, layer-wise / connection-wise weight normalization (paper eqs. 7, 8).

For a layer l with output scale lambda^l (the p-th percentile of its ReLU output on a calibration
batch) and input parts i with scales lambda_i^{l-1}::

    W~_i = W_i * lambda_i^{l-1} / lambda^l,     b~ = b / lambda^l

Connection-wise: after a concat, part i's input channels (every one of them, whatever the parts'
widths) get the lambda of the layer that produced that part. Layer-wise: one lambda for the whole
input, that of the concatenated activation. lambda of the raw image is 1, and the output layer
keeps ANN units (lambda = 1). Average pooling is a layer too: its synaptic scale becomes
lambda_in / lambda_pool.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..ir import Concat, Conv, FloatNetwork, MultiThreshold, SynapticLayer
from ..neuron.mt import validate_thresholds
from ..vocab import NORMALIZATIONS, Normalization
from .snn import SpikingNetwork
from .trace import trace_network
from .unet import ScaledAvgPool2d, UNet, pad_to_multiple


@dataclass(frozen=True)
class ConversionSettings:
    """How to convert: normalization kind, percentile (``None`` means the maximum) and thresholds."""

    normalization: Normalization = "connection"
    percentile: float | None = 99.9
    thresholds: tuple[float, ...] = (2.0, 1.0, 0.5, 0.25)

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.percentile is not None and not 0 < self.percentile <= 100:
            raise ConfigError(f"percentile must be in (0, 100], got {self.percentile}")
        validate_thresholds(self.thresholds)


def _scale_of(values: torch.Tensor, percentile: float | None) -> float:
    flat = values.detach().reshape(-1).double().numpy()
    value = float(flat.max()) if percentile is None else float(np.percentile(flat, percentile))
    return value if value > 0 else 1.0   # a dead layer: keep its weights as they are


@torch.no_grad()
def calibrate(ann: UNet, images: torch.Tensor, network: FloatNetwork,
              percentile: float | None) -> tuple[dict[str, float], float]:
    """lambda per neuron layer and per concat (the scale of the concatenated activation), and the
    largest |output| of the ANN on the calibration batch (the quantizer sizes the accumulator by it)."""
    modules = dict(ann.core.named_modules())
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    for layer in network.synaptic_layers:
        if isinstance(layer.neuron, MultiThreshold) and layer.source.activation is not None:
            def hook(_m: nn.Module, _i: Any, out: torch.Tensor, name: str = layer.name) -> None:
                captured[name] = out
            hooks.append(modules[layer.source.activation].register_forward_hook(hook))
    try:
        padded, _ = pad_to_multiple(images, ann.config.multiple)
        output = ann.core(padded)
    finally:
        for h in hooks:
            h.remove()
    lambdas = {name: _scale_of(t, percentile) for name, t in captured.items()}
    for concat in network:
        if isinstance(concat, Concat):
            joined = torch.cat([captured[s].reshape(-1) for s in concat.inputs])
            lambdas[concat.name] = _scale_of(joined, percentile)
    return lambdas, float(output.abs().max())


def _input_scales(network: FloatNetwork, layer: SynapticLayer, lambdas: dict[str, float],
                  normalization: Normalization) -> list[tuple[int, int, float]]:
    """(channel offset, channel count, lambda_in) for each input part of a layer."""
    if isinstance(layer, Conv) and layer.static:
        return [(0, network.input.shape[0], 1.0)]
    src = network[layer.source_name]
    if isinstance(src, Concat) and normalization == "layer":
        return [(0, src.shape[0], lambdas[src.name])]
    return [(offset, part.shape[0], lambdas[part.name]) for part, _, offset in network.parts(layer)]


@torch.no_grad()
def convert(ann: UNet, calibration: torch.Tensor,
            settings: ConversionSettings) -> tuple[SpikingNetwork, dict[str, Any]]:
    """Build the normalized Spiking-UNet from a trained ANN and a calibration batch (NCHW)."""
    ann.eval()
    c, h, w = pad_to_multiple(calibration[:1], ann.config.multiple)[0].shape[1:]
    thresholds = MultiThreshold(tuple(settings.thresholds))
    network = trace_network(ann.core, (c, h, w), lambda _m: thresholds)
    lambdas, output_abs_max = calibrate(ann, calibration, network, settings.percentile)

    snn = SpikingNetwork(network, ann.config.multiple, config=ann.config)
    for layer in network.synaptic_layers:
        lam_out = lambdas[layer.name] if isinstance(layer.neuron, MultiThreshold) else 1.0
        module = snn.core.get(layer.name)
        parts = _input_scales(network, layer, lambdas, settings.normalization)
        if isinstance(module, ScaledAvgPool2d):
            (_, _, lam_in), = parts
            module.scale.fill_(lam_in / lam_out)
            continue
        weight = module.weight
        for offset, count, lam_in in parts:
            if isinstance(layer, Conv):
                weight[:, offset:offset + count] *= lam_in / lam_out
            else:  # convT weights are (in, out, k, k)
                weight[offset:offset + count] *= lam_in / lam_out
        if module.bias is not None:
            module.bias /= lam_out
    info = {"thresholds": list(settings.thresholds), "normalization": settings.normalization,
            "percentile": settings.percentile, "lambdas": lambdas, "output_abs_max": output_abs_max,
            "calibration_images": int(calibration.shape[0])}
    return snn, info
