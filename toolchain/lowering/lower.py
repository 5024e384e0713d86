"""Lower a Spiking-UNet to the quantized layer graph (the in-memory form of a .net file)."""
from __future__ import annotations

from typing import Any

from ..errors import ExportError
from ..frontend.snn import SpikingNetwork
from ..ir import NetworkMeta, Provenance, QuantizedNetwork
from ..vocab import Lowering
from .quantize import LayerQuantReport, QuantSettings, quantize


def padded_hw(input_hw: tuple[int, int], multiple: int) -> tuple[int, int]:
    """Sides rounded up to multiples of ``multiple`` (inputs are replicate-padded to them)."""
    return -(-input_hw[0] // multiple) * multiple, -(-input_hw[1] // multiple) * multiple


def export_network(snn: SpikingNetwork, spiking: dict[str, Any], input_hw: tuple[int, int],
                   settings: QuantSettings, lowering: Lowering = "compartments",
                   provenance: Provenance | None = None) -> tuple[QuantizedNetwork, list[LayerQuantReport]]:
    """Quantize and annotate an SNN for an input of ``input_hw`` (padded to multiples of its ``multiple``).

    ``spiking`` is the checkpoint's conversion record (thresholds, normalization, output_abs_max).
    """
    spec, config = snn.spec, snn.config
    if spec is None:
        raise ExportError("export needs the network's task (convert it with a task spec)")
    network = snn.to_network(padded_hw(input_hw, snn.multiple))
    meta = NetworkMeta(task=spec.task, in_channels=spec.in_channels, out_channels=spec.out_channels,
                       noise_map=True if spec.noise_map else None,
                       width=None if config is None else config.width, depth=None if config is None else config.depth,
                       multiple=snn.multiple, lowering=lowering,
                       thresholds=tuple(snn.thresholds), normalization=spiking.get("normalization"),
                       percentile=spiking.get("percentile"), provenance=provenance)
    output_abs_max = float(spiking.get("output_abs_max") or 1.0)
    return quantize(network, meta, settings, output_abs_max)
