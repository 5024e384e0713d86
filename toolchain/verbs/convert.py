"""The convert verb: an ANN checkpoint of this toolchain's U-Net, or any U-Net as a torch.export ``.pt2``
file, into a normalized Spiking-UNet checkpoint that every later verb takes.

A ``.pt2`` is read by :func:`toolchain.frontend.capture.load_pt2` (never ``torch.export.load``,
which would run code from the file); its task comes from ``task`` (the channels from the program,
checked against ``channels`` / ``classes`` when given). Calibration patches come from the
checkpoint's data, the embedded photos or ``data``; for a ``.pt2`` they default to the export size,
where the program can run beside the lowered graph. When a rewrite changes the function (MaxPool
-> AvgPool, the bilinear border, a dropped softmax), the report gives the ANN's quality before and
after it on the test images, cropped to the export size.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checks import positive_int
from ..data.embedded import ImageSet
from ..data.folder import MaskKind
from ..errors import ConfigError
from ..frontend.capture import CaptureOptions, from_program, load_pt2
from ..frontend.capture.program import Forward, input_shape, program_forward
from ..frontend.checkpoint import file_sha256, load_ann, save_checkpoint, snn_checkpoint
from ..frontend.conversion import ConversionSettings, convert
from ..frontend.snn import SpikingNetwork
from ..tasks.sampling import Denoiser, denoiser_input, evaluate_denoise, evaluate_segment
from ..tasks.spec import TaskSpec
from ..vocab import Layout, Task
from .source import DataSource, calibration_batch

Path_ = str | os.PathLike[str]
DEFAULT_PATCH = 48
QUALITY_SIGMA = 25.0


@dataclass(frozen=True)
class ConvertSettings:
    """Convert ``checkpoint`` (an ANN ``.pt`` or a ``.pt2`` program) with ``conversion``, calibrated on
    ``calibration`` random training patches of ``patch`` pixels (default 48; a .pt2's export size)
    from the checkpoint's data, the embedded photos or ``data`` (a folder in ``layout``).
    ``task``, ``channels`` and ``classes`` describe a ``.pt2``; ``options`` are its rewrites."""

    checkpoint: Path_
    out: Path_
    conversion: ConversionSettings = ConversionSettings()
    calibration: int = 32
    patch: int | None = None
    seed: int = 0
    data: str | None = None
    layout: Layout = "auto"
    masks: MaskKind = "auto"
    task: Task | None = None
    channels: int | None = None
    classes: int | None = None
    options: CaptureOptions = field(default_factory=CaptureOptions)

    def __post_init__(self) -> None:
        positive_int("calibration images", self.calibration)
        if self.patch is not None:
            positive_int("patch", self.patch)
        if not self.is_program and (self.task, self.channels, self.classes) != (None, None, None):
            raise ConfigError(f"{self.checkpoint}: an ANN checkpoint records its task and channels; "
                              f"`task`, `channels` and `classes` describe a .pt2 file")
        if self.is_program and self.task is None:
            raise ConfigError(f"{self.checkpoint}: say what the program does with `task` (denoise or segment)")

    @property
    def is_program(self) -> bool:
        return Path(self.checkpoint).suffix == ".pt2"


@dataclass(frozen=True)
class ConvertReport:
    normalization: str
    percentile: float | None
    thresholds: list[float]
    lambdas: dict[str, float]
    capture: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"verb": "convert", **asdict(self)}


def _crops(images: ImageSet, hw: tuple[int, int]) -> ImageSet | None:
    """The test images (and masks) at least ``hw`` large, center-cropped to it; None if there is none."""
    h, w = hw
    keep = [i for i, image in enumerate(images.images) if image.shape[-2] >= h and image.shape[-1] >= w]
    if not keep:
        return None

    def crop(a: np.ndarray) -> np.ndarray:
        top, left = (a.shape[-2] - h) // 2, (a.shape[-1] - w) // 2
        return np.ascontiguousarray(a[..., top:top + h, left:left + w])
    return ImageSet(tuple(images.names[i] for i in keep), tuple(crop(images.images[i]) for i in keep),
                    None if images.masks is None else tuple(crop(images.masks[i]) for i in keep),
                    None if images.regions is None else tuple(crop(images.regions[i]) for i in keep))


def ann_quality(original: Forward, converted: Forward, test: ImageSet, spec: TaskSpec, seed: int) -> dict[str, Any]:
    """The original and the converted ANN on the same images: PSNR at sigma 25, or segmentation scores."""
    if spec.task == "denoise":
        def told(forward: Forward) -> Denoiser:
            return lambda noisy, sigma: forward(denoiser_input(noisy, sigma, spec.noise_map))
        scores = [evaluate_denoise(told(f), test, QUALITY_SIGMA, seed)["psnr"] for f in (original, converted)]
        return {"images": len(test.images), "metric": f"psnr_sigma{QUALITY_SIGMA:g}",
                "original": scores[0], "converted_ann": scores[1]}
    key = "f1" if spec.out_channels == 2 else "miou"
    scores = [evaluate_segment(f, test, spec.out_channels)[key] for f in (original, converted)]
    return {"images": len(test.images), "metric": key, "original": scores[0], "converted_ann": scores[1]}


def _program_spec(settings: ConvertSettings, shape: tuple[int, ...], out_channels: int) -> TaskSpec:
    assert settings.task is not None
    in_channels = shape[1]
    for flag, given, actual in (("channels", settings.channels, in_channels),
                                ("classes" if settings.task == "segment" else "channels", settings.classes,
                                 out_channels)):
        if given is not None and given != actual:
            raise ConfigError(f"{settings.checkpoint}: `{flag}` is {given}, the program has {actual}")
    return TaskSpec(settings.task, in_channels, out_channels)


def _convert_program(settings: ConvertSettings) -> tuple[SpikingNetwork, dict[str, Any], dict[str, Any]]:
    ep = load_pt2(settings.checkpoint)
    shape = input_shape(ep)
    out_shape = next(n for n in ep.graph.nodes if n.op == "output").args[0][0].meta["val"].shape
    spec = _program_spec(settings, shape, int(out_shape[1]))
    source = DataSource(spec.task, spec.in_channels, settings.data, settings.layout, settings.masks).resolved()
    patch = settings.patch or max(shape[2:])
    if patch < max(shape[2:]):
        raise ConfigError(f"calibration `patch` {patch} is smaller than the program's export size "
                          f"{shape[2]}x{shape[3]}")
    calibration = calibration_batch(source, settings.calibration, patch, settings.seed)
    snn, spiking = from_program(ep, calibration, spec, settings.conversion, settings.options)
    capture = spiking["capture"]
    if not capture["exact"]:
        test = _crops(source.load_test(), (shape[2], shape[3]))
        if test is not None:       # normalization keeps a ReLU graph's function: ann_forward is the converted ANN
            capture["quality"] = ann_quality(program_forward(ep), snn.ann_forward, test, spec, settings.seed)
    meta = {"data": source.to_dict(), "converted_from": str(settings.checkpoint),
            "source_sha256": file_sha256(settings.checkpoint)}
    return snn, spiking, meta


def convert_checkpoint(settings: ConvertSettings) -> ConvertReport:
    """Convert an ANN checkpoint or a .pt2 program into a normalized Spiking-UNet checkpoint."""
    if settings.is_program:
        snn, spiking, meta = _convert_program(settings)
    else:
        ann, ckpt = load_ann(settings.checkpoint)
        source = DataSource.from_meta(ckpt.meta, ckpt.spec)
        if settings.data is not None:
            source = DataSource(source.task, source.channels, settings.data, settings.layout, settings.masks).resolved()
        calibration = calibration_batch(source, settings.calibration, settings.patch or DEFAULT_PATCH, settings.seed,
                                        ckpt.spec.noise_map)
        with torch.no_grad():
            snn, spiking = convert(ann, calibration, settings.conversion)
        meta = {**ckpt.meta, "converted_from": str(settings.checkpoint)}
        if settings.data is not None:
            meta["data"] = source.to_dict()
    save_checkpoint(settings.out, snn_checkpoint(snn, spiking, meta))
    c = settings.conversion
    return ConvertReport(c.normalization, c.percentile, list(c.thresholds), spiking["lambdas"],
                         spiking.get("capture"))
