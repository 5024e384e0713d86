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

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..ir import Concat, Conv, FloatNetwork, MultiThreshold, SynapticLayer
from ..neuron.mt import validate_thresholds
from ..tasks.spec import TaskSpec
from ..vocab import NORMALIZATIONS, Normalization
from .snn import SpikingNetwork
from .trace import trace_network
from .unet import ScaledAvgPool2d, UNet, UNetConfig, pad_to_multiple


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
def calibrate(snn: SpikingNetwork, images: torch.Tensor, percentile: float | None) -> tuple[dict[str, float], float]:
    """lambda per neuron layer and per concat (the scale of the concatenated activation), from the
    graph run as its ANN (:meth:`SpikingNetwork.ann_forward`) on a calibration batch, and the largest
    |output| of that ANN on the padded inputs (the quantizer sizes the accumulator by it)."""
    captured: dict[str, torch.Tensor] = {}
    output = snn.ann_forward(images, captured, crop=False)
    lambdas = {name: _scale_of(t, percentile) for name, t in captured.items()}
    for concat in snn.network:
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


def with_thresholds(network: FloatNetwork, thresholds: tuple[float, ...]) -> FloatNetwork:
    """The graph with every neuron layer's placeholder replaced by MT neurons of ``thresholds``."""
    neuron = MultiThreshold(tuple(thresholds))
    return network.with_layers([replace(layer, neuron=neuron) if isinstance(layer, SynapticLayer)
                                and isinstance(layer.neuron, MultiThreshold) else layer for layer in network.layers])


@torch.no_grad()
def convert_network(network: FloatNetwork, calibration: torch.Tensor, settings: ConversionSettings,
                    multiple: int, spec: TaskSpec, config: UNetConfig | None = None
                    ) -> tuple[SpikingNetwork, dict[str, Any]]:
    """The normalized SNN of a traced ANN graph (float weights, ReLU neuron layers) and a
    calibration batch (NCHW), whatever network the graph came from (see the module docstring)."""
    snn = SpikingNetwork(with_thresholds(network, settings.thresholds), multiple, config=config, spec=spec)
    lambdas, output_abs_max = calibrate(snn, calibration, settings.percentile)
    for layer in snn.network.synaptic_layers:
        lam_out = lambdas[layer.name] if isinstance(layer.neuron, MultiThreshold) else 1.0
        module = snn.core.get(layer.name)
        parts = _input_scales(snn.network, layer, lambdas, settings.normalization)
        if isinstance(module, ScaledAvgPool2d):
            (_, _, lam_in), = parts
            module.scale.mul_(lam_in / lam_out)
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


def convert(ann: UNet, calibration: torch.Tensor,
            settings: ConversionSettings) -> tuple[SpikingNetwork, dict[str, Any]]:
    """Build the normalized Spiking-UNet from this toolchain's trained U-Net and a calibration batch
    (NCHW); any other network goes through :func:`toolchain.frontend.capture.from_model`."""
    ann.eval()
    c, h, w = pad_to_multiple(calibration[:1], ann.config.multiple)[0].shape[1:]
    network = trace_network(ann.core, (c, h, w))
    return convert_network(network, calibration, settings, ann.config.multiple, ann.config.spec, ann.config)
