"""The export verb: quantize a Spiking-UNet checkpoint to Loihi fixed point and write a ``.net`` file."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netx_export import write_network, write_netx_compatible
from netx_export.table import format_table, layer_table

from ..checks import check_steps, positive_int
from ..errors import ConfigError
from ..frontend.checkpoint import file_sha256, load_snn
from ..ir import Provenance
from ..lowering.lower import export_network
from ..lowering.quantize import QuantSettings
from ..vocab import LOWERINGS, Lowering

DEFAULT_EXPORT_SIDE = 64


@dataclass(frozen=True)
class ExportSettings:
    """Export ``checkpoint`` to ``out`` for a nominal ``input_hw`` input at ``steps`` time steps
    (default: the fine-tuning T, else 10); ``netx_compatible`` writes a stock netx file instead."""

    checkpoint: str | os.PathLike[str]
    out: str | os.PathLike[str]
    lowering: Lowering = "compartments"
    weight_bits: int = 8
    theta_unit: int = 4096
    steps: int | None = None
    input_hw: tuple[int, int] = (DEFAULT_EXPORT_SIDE, DEFAULT_EXPORT_SIDE)
    strict: bool = False
    netx_compatible: bool = False

    def __post_init__(self) -> None:
        if self.lowering not in LOWERINGS:
            raise ConfigError(f"MT lowering must be one of {LOWERINGS}, got {self.lowering!r}")
        if self.steps is not None:
            check_steps(self.steps)
        for side in self.input_hw:
            positive_int("input size", side)


@dataclass(frozen=True)
class ExportReport:
    """The written file, its latency and T, the per-layer table and what quantization did."""

    file: str
    steps: int
    latency: int
    lowering: Lowering
    layers: list[dict[str, Any]] = field(default_factory=list)
    quantization: list[dict[str, Any]] = field(default_factory=list)
    netx_compatible: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.netx_compatible is not None:
            return {"verb": "export", "file": self.file, "netx_compatible": self.netx_compatible, "steps": self.steps}
        return {"verb": "export", "file": self.file, "latency": self.latency, "steps": self.steps,
                "lowering": self.lowering, "layers": self.layers, "quantization": self.quantization}

    def describe(self) -> str:
        """The lines a person reads: the layer table and the largest quantization error."""
        if self.netx_compatible is not None:
            return (f"wrote a stock netx file (CUBA neurons: an approximation of the SNN, see netx_export.compat); "
                    f"run it for T + {self.latency} steps")
        worst = max(self.quantization, key=lambda r: r["weight_rel_error"])
        return (format_table(self.layers) + f"\nlatency {self.latency} steps; T = {self.steps}; lowering "
                f"{self.lowering}; largest weight quantization error {worst['weight_rel_error']:.2%} "
                f"({worst['layer']})")


def export_checkpoint(settings: ExportSettings) -> ExportReport:
    """Quantize and write a .net file (or a stock netx file); returns the report."""
    snn, ckpt = load_snn(settings.checkpoint)
    finetuned = ckpt.spiking.get("finetuned_steps")
    steps = check_steps(settings.steps if settings.steps is not None else int(finetuned or 10))
    provenance = Provenance(Path(settings.checkpoint).name, file_sha256(settings.checkpoint), finetuned)
    quant = QuantSettings(settings.weight_bits, settings.theta_unit, steps, settings.strict)
    network, reports = export_network(snn, ckpt.spiking, settings.input_hw, quant, settings.lowering, provenance)
    if settings.netx_compatible:
        compat = write_netx_compatible(network, settings.out)
        return ExportReport(str(settings.out), steps, network.latency, settings.lowering,
                            netx_compatible=compat.to_dict())
    write_network(network, settings.out)
    return ExportReport(str(settings.out), steps, network.latency, settings.lowering,
                        layer_table(network, reports), [r.to_dict() for r in reports])
