"""Any PyTorch U-Net to a Spiking-UNet: capture (torch.export), lower, check against the model, convert.

The two ways in share everything after the capture:

* :func:`from_model`: an ``nn.Module`` (exported here on the first calibration image);
* :func:`from_program`: an ExportedProgram, e.g. from :func:`~.pt2.load_pt2` (never ``torch.export.load``).

The lowered graph run as an ANN (:meth:`SpikingNetwork.ann_forward`, before normalization) is
compared with the original on the calibration batch: the report's ``max_abs_error`` is what the
rewrites changed (0 up to float rounding when every rewrite is exact). Since export specialises
the model to the example's size, :func:`from_model` also compares at twice that size, where a
model with size-dependent code would differ. Then conversion normalizes the graph like any other
(:func:`toolchain.frontend.conversion.convert_network`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...errors import ConversionError
from ...ir import FloatNetwork
from ...tasks.spec import TaskSpec
from ..conversion import ConversionSettings, convert_network
from ..snn import SpikingNetwork
from .lower import lower_program
from .options import DEFAULT_OPTIONS, CaptureOptions
from .program import Forward, canonical, export_module, input_shape, program_forward
from .rewrites import Rewrite


@dataclass(frozen=True)
class Fidelity:
    """How far the lowered ANN is from the original on some inputs: max |difference| and max |original|."""

    inputs: str
    max_abs_error: float
    output_abs_max: float

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "max_abs_error": self.max_abs_error, "output_abs_max": self.output_abs_max}


@dataclass(frozen=True)
class CaptureReport:
    """What capture did: the export size, the side multiple, every rewrite and the measured fidelity."""

    export_shape: tuple[int, ...]
    multiple: int
    layers: int
    rewrites: tuple[Rewrite, ...]
    fidelity: tuple[Fidelity, ...]

    @property
    def exact(self) -> bool:
        return all(r.exact for r in self.rewrites)

    def to_dict(self) -> dict[str, Any]:
        return {"export_shape": list(self.export_shape), "multiple": self.multiple, "layers": self.layers,
                "exact": self.exact, "rewrites": [r.to_dict() for r in self.rewrites],
                "fidelity": [f.to_dict() for f in self.fidelity]}


@dataclass(frozen=True)
class Captured:
    """A model's float layer graph (its ANN form, weights as trained), its side multiple and the report."""

    network: FloatNetwork
    multiple: int
    report: CaptureReport

    def ann(self, spec: TaskSpec | None = None) -> SpikingNetwork:
        """The graph as a module whose :meth:`~SpikingNetwork.ann_forward` is the captured ANN."""
        return SpikingNetwork(self.network, self.multiple, spec=spec)


def _check_spec(network: FloatNetwork, spec: TaskSpec) -> None:
    c_in, c_out = network.input.shape[0], network.layers[-1].shape[0]
    if (c_in, c_out) != (spec.in_channels, spec.out_channels):
        raise ConversionError(f"the model maps {c_in} to {c_out} channels, but the task {spec.task} says "
                              f"{spec.in_channels} to {spec.out_channels}")


@torch.no_grad()
def fidelity(ann: SpikingNetwork, original: Forward, inputs: torch.Tensor, label: str) -> Fidelity:
    reference = original(inputs).to(torch.float32)
    lowered = ann.ann_forward(inputs)
    if reference.shape != lowered.shape:
        raise ConversionError(f"the lowered graph gives shape {tuple(lowered.shape)} on {label}, the model "
                              f"{tuple(reference.shape)}")
    return Fidelity(label, float((lowered - reference).abs().max()), float(reference.abs().max()))


def capture_program(ep: torch.export.ExportedProgram, options: CaptureOptions = DEFAULT_OPTIONS,
                    reference: torch.Tensor | None = None) -> Captured:
    """Lower an ExportedProgram; with ``reference`` (inputs at the export size) measure the fidelity."""
    network, multiple, rewrites = lower_program(canonical(ep), options)
    shape = input_shape(ep)
    checks: tuple[Fidelity, ...] = ()
    if reference is not None:
        h, w = shape[2:]
        if reference.shape[-2] < h or reference.shape[-1] < w:
            raise ConversionError(f"reference inputs of {tuple(reference.shape[-2:])} are smaller than the export "
                                  f"size {h}x{w}")
        crop = reference[..., :h, :w]
        checks = (fidelity(SpikingNetwork(network, multiple), program_forward(ep), crop,
                           f"{crop.shape[0]} calibration images at the export size {h}x{w}"),)
    report = CaptureReport(shape, multiple, len(network.layers), tuple(rewrites), checks)
    return Captured(network, multiple, report)


def capture_module(model: nn.Module, calibration: torch.Tensor, options: CaptureOptions = DEFAULT_OPTIONS) -> Captured:
    """Export ``model`` on the first calibration image, lower it and measure the fidelity on the
    calibration batch and on a 2 x 2 tiling of it (twice the size: size-dependent code would show)."""
    was_training = model.training
    try:
        ep = export_module(model, calibration[:1])
        captured = capture_program(ep, options)
        ann = SpikingNetwork(captured.network, captured.multiple)
        with torch.no_grad():
            tiled = torch.cat([torch.cat([calibration[:2]] * 2, dim=-1)] * 2, dim=-2)
            checks = (fidelity(ann, model, calibration, f"{calibration.shape[0]} calibration images"),
                      fidelity(ann, model, tiled, f"{tiled.shape[0]} calibration images tiled 2x2"))
    finally:
        model.train(was_training)
    report = captured.report
    return Captured(captured.network, captured.multiple,
                    CaptureReport(report.export_shape, report.multiple, report.layers, report.rewrites, checks))


def _convert(captured: Captured, calibration: torch.Tensor, spec: TaskSpec,
             settings: ConversionSettings) -> tuple[SpikingNetwork, dict[str, Any]]:
    _check_spec(captured.network, spec)
    snn, info = convert_network(captured.network, calibration, settings, captured.multiple, spec)
    return snn, {**info, "capture": captured.report.to_dict()}


def from_model(model: nn.Module, calibration: torch.Tensor, spec: TaskSpec,
               settings: ConversionSettings = ConversionSettings(),
               options: CaptureOptions = DEFAULT_OPTIONS) -> tuple[SpikingNetwork, dict[str, Any]]:
    """The normalized Spiking-UNet of any traceable U-Net (``nn.Module``) and a calibration batch
    (NCHW, noisy images for a denoiser); ``info`` is the conversion record with the capture report.

    The result fine-tunes, evaluates, saves (:func:`toolchain.frontend.checkpoint.snn_checkpoint`)
    and exports like a converted U-Net of this toolchain's own.
    """
    return _convert(capture_module(model, calibration, options), calibration, spec, settings)


def from_program(ep: torch.export.ExportedProgram, calibration: torch.Tensor, spec: TaskSpec,
                 settings: ConversionSettings = ConversionSettings(),
                 options: CaptureOptions = DEFAULT_OPTIONS) -> tuple[SpikingNetwork, dict[str, Any]]:
    """As :func:`from_model`, from an ExportedProgram (the calibration batch must be at least the
    export size: the fidelity check runs the program there)."""
    return _convert(capture_program(ep, options, reference=calibration), calibration, spec, settings)
