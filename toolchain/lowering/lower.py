"""Lower a Spiking-UNet to the quantized layer graph (the in-memory form of a .net file)."""
from __future__ import annotations

from typing import Any

from toolchain.errors import ExportError
from toolchain.ir.graph import LOWERINGS, Network
from toolchain.lowering.quantize import LayerQuantReport, QuantSettings, quantize
from toolchain.frontend.snn import SpikingUNet
from toolchain.frontend.trace import trace_network

FORMAT_VERSION = 1


def export_network(snn: SpikingUNet, spiking: dict[str, Any], input_hw: tuple[int, int],
                   settings: QuantSettings, lowering: str = "compartments",
                   provenance: dict[str, Any] | None = None) -> tuple[Network, list[LayerQuantReport]]:
    """Trace, quantize and annotate an SNN for an input of ``input_hw`` (padded to 2**depth multiples).

    ``spiking`` is the checkpoint's conversion record (thresholds, normalization, output_abs_max).
    """
    if lowering not in LOWERINGS:
        raise ExportError(f"MT lowering must be one of {LOWERINGS}, got {lowering!r}")
    config = snn.config
    m = config.multiple
    h, w = (-(-input_hw[0] // m) * m, -(-input_hw[1] // m) * m)
    network = trace_network(snn.core, (config.in_channels, h, w))
    network.meta.update({
        "format_version": FORMAT_VERSION, "task": config.task, "in_channels": config.in_channels,
        "out_channels": config.out_channels, "width": config.width, "depth": config.depth,
        "multiple": m, "steps": settings.steps, "lowering": lowering,
        "thresholds": list(snn.thresholds), "normalization": spiking.get("normalization"),
        "percentile": spiking.get("percentile"), **(provenance or {})})
    output_abs_max = float(spiking.get("output_abs_max") or 1.0)
    return quantize(network, settings, output_abs_max)
