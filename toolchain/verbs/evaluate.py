"""The evaluate verb: a model's quality on test images (PSNR / SSIM per noise level, or segmentation scores)."""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checks import check_steps
from ..data.embedded import ImageSet
from ..data.folder import MaskKind, check_masks
from ..errors import ConfigError, ToolchainWarning
from ..frontend.checkpoint import load_any
from ..frontend.snn import SpikingNetwork
from ..frontend.unet import UNet
from ..tasks.sampling import Denoiser, denoiser_input, evaluate_denoise, evaluate_segment
from ..tasks.spec import TaskSpec
from ..vocab import Layout
from .source import DataSource

Model = UNet | SpikingNetwork


@dataclass(frozen=True)
class EvaluateSettings:
    """Score ``checkpoint`` at ``steps`` time steps (an SNN) on its own test split or on ``data``."""

    checkpoint: str | os.PathLike[str]
    steps: int = 10
    sigmas: tuple[float, ...] = (15.0, 25.0, 50.0)
    seed: int = 0
    crop: int = 256
    data: str | None = None
    layout: Layout = "auto"
    masks: MaskKind = "auto"

    def __post_init__(self) -> None:
        check_steps(self.steps)


@dataclass(frozen=True)
class EvaluationReport:
    """Scores of one model: ``denoise`` rows per sigma (PSNR, SSIM, per image) or ``segmentation``."""

    model: str
    task: str
    steps: int | None
    denoise: list[dict[str, Any]] | None = None
    segmentation: dict[str, float] | None = None
    checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.checkpoint is None else {"checkpoint": self.checkpoint}
        out.update(model=self.model, task=self.task, steps=self.steps)
        if self.segmentation is not None:
            out["segmentation"] = self.segmentation
        if self.denoise is not None:
            out["denoise"] = self.denoise
        return out


def predictor(model: Model, steps: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> the model's decoded output (noise map or logits); an SNN runs ``steps`` steps."""
    if isinstance(model, SpikingNetwork):
        check_steps(steps)
        return lambda x: model.simulate(x, steps).output
    return lambda x: model(x)


def model_spec(model: Model) -> TaskSpec:
    spec = model.spec if isinstance(model, SpikingNetwork) else model.config.spec
    if spec is None:
        raise ConfigError("the network has no task spec (convert it with a task)")
    return spec


def denoiser(model: Model, steps: int) -> Denoiser:
    """(noisy, sigma) -> the predicted noise map; a network told its noise level gets the sigma channel."""
    predict, noise_map = predictor(model, steps), model_spec(model).noise_map
    return lambda noisy, sigma: predict(denoiser_input(noisy, sigma, noise_map))


def evaluate_model(model: Model, source: DataSource, steps: int, sigmas: Sequence[float], seed: int, crop: int,
                   test_set: ImageSet | None = None) -> EvaluationReport:
    """Metrics of a model on the test split: PSNR/SSIM per sigma, or segmentation scores."""
    test_set = test_set or source.load_test()
    kind = "snn" if isinstance(model, SpikingNetwork) else "ann"
    step_count = steps if kind == "snn" else None
    spec = model_spec(model)
    if source.task == "segment":
        check_masks(test_set, spec.out_channels)
        return EvaluationReport(kind, source.task, step_count,
                                segmentation=evaluate_segment(predictor(model, steps), test_set, spec.out_channels))
    predict = denoiser(model, steps)
    return EvaluationReport(kind, source.task, step_count,
                            denoise=[evaluate_denoise(predict, test_set, s, seed, crop) for s in sigmas])


def evaluate_checkpoint(settings: EvaluateSettings) -> EvaluationReport:
    """Evaluate on the checkpoint's own test split, or on ``data`` (a folder in ``layout``)."""
    model, ckpt = load_any(settings.checkpoint)
    if isinstance(model, SpikingNetwork):
        warn_outside_finetuned_steps(ckpt.spiking, settings.steps, settings.checkpoint)
    source = DataSource.from_meta(ckpt.meta, ckpt.spec)
    if settings.data is not None:
        source = DataSource(source.task, source.channels, settings.data, settings.layout, settings.masks).resolved()
    report = evaluate_model(model, source, settings.steps, settings.sigmas, settings.seed, settings.crop)
    return EvaluationReport(report.model, report.task, report.steps, report.denoise, report.segmentation,
                            checkpoint=str(Path(settings.checkpoint)))


def warn_outside_finetuned_steps(spiking: dict[str, Any], steps: int, name: str | os.PathLike[str]) -> None:
    """Warn when an SNN fine-tuned at one T runs at another, or one fine-tuned over several T runs below
    the smallest: fine-tuning fits the weights to those T's simulation error, and quality can fall away
    from them (a segmentation net fine-tuned at T = 10 only lost F1 as T grew)."""
    single = spiking.get("finetuned_steps")
    tuned = spiking.get("finetuned_steps_all") or ([single] if single else [])
    if not tuned or (steps >= min(tuned) and len(tuned) > 1) or [steps] == list(tuned):
        return
    listed = ",".join(str(t) for t in tuned)
    hint = (f"; fine-tune over the T you need (finetune --steps {tuned[0]},{2 * tuned[0]},{4 * tuned[0]})"
            if len(tuned) == 1 else "")
    warnings.warn(f"{name}: fine-tuned at T={listed}, run at T={steps}: quality may differ from the fine-tuned "
                  f"figures{hint}", ToolchainWarning, stacklevel=2)
