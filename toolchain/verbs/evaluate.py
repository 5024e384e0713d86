"""The evaluate verb: a model's quality on test images (PSNR / SSIM per noise level, or segmentation scores)."""
from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..checks import check_steps, noise_sigma, strict_isinstance
from ..data.decode import MIN_SIDE
from ..data.embedded import ImageSet
from ..data.folder import MaskKind, check_masks
from ..errors import ConfigError, ToolchainError, ToolchainWarning
from ..frontend import distributed
from ..frontend.checkpoint import load_any
from ..frontend.snn import SpikingNetwork
from ..frontend.unet import UNet
from ..ir import resize
from ..memory import MemoryLimit
from ..simulators.footprint import neurons
from ..tasks.sampling import Denoiser, denoise_image, denoise_row, denoiser_input, segment_image, segment_scores
from ..tasks.spec import TaskSpec
from ..vocab import Layout
from .source import DataSource
from .spread import GATHER_TIMEOUT, Spread, Workers, check_workers, resolve, spread_map

Model = UNet | SpikingNetwork
NEURON_BYTES = 24     # float32 membrane, current, spikes and convolution temporaries per SNN neuron, about


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
    memory: MemoryLimit = MemoryLimit()
    workers: Workers = "auto"         # processes over the (sigma, image) items: .spread.resolve

    def __post_init__(self) -> None:
        check_steps(self.steps)
        check_workers(self.workers)
        for sigma in self.sigmas:
            noise_sigma("`sigma`", sigma)
        if not strict_isinstance(self.crop, int) or not (self.crop == 0 or self.crop >= MIN_SIDE):
            raise ConfigError(f"`crop` must be 0 (the whole image) or at least {MIN_SIDE} pixels, got {self.crop!r}")


@dataclass(frozen=True)
class EvaluationReport:
    """Scores of one model: ``denoise`` rows per sigma (PSNR, SSIM, per image) or ``segmentation``;
    ``spread``: the processes its items (sigma x image, or image) ran on; ``items``: the test images."""

    model: str
    task: str
    steps: int | None
    denoise: list[dict[str, Any]] | None = None
    segmentation: dict[str, float] | None = None
    checkpoint: str | None = None
    spread: Spread = Spread()
    items: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.checkpoint is None else {"checkpoint": self.checkpoint}
        out.update(model=self.model, task=self.task, steps=self.steps, **self.spread.to_dict())
        if self.segmentation is not None:
            out["segmentation"] = self.segmentation
        if self.denoise is not None:
            out["denoise"] = self.denoise
        return out

    def describe_spread(self) -> str:
        """``evaluate: 6 images x 3 noise levels over 2 worker processes`` (``6 images over ...``: segmentation)."""
        noun = "image" if self.items == 1 else "images"
        if self.denoise is not None:
            noun += f" x {len(self.denoise)} noise level{'s' if len(self.denoise) != 1 else ''}"
        return f"evaluate: {self.spread.describe(self.items, noun)}"


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
                   test_set: ImageSet | None = None, workers: Workers = 1,
                   memory: MemoryLimit = MemoryLimit()) -> EvaluationReport:
    """Metrics of a model on the test split: PSNR/SSIM per sigma, or segmentation scores.

    The (sigma, image) items (images, for segmentation) run over ``workers`` processes ("auto": an SNN's
    as :func:`.spread.resolve` says, an ANN's in this process, where forked workers were no faster) and, under
    torchrun (inside :func:`~toolchain.frontend.distributed.session`), over its ranks: every rank gets the
    whole report, the same floats as one process (image k's noise is seeded by seed + k wherever it runs).
    """
    test_set = test_set or source.load_test()
    kind = "snn" if isinstance(model, SpikingNetwork) else "ann"
    step_count = steps if kind == "snn" else None
    spec = model_spec(model)
    count = len(test_set.images)
    ctx = distributed.joined()
    if workers == "auto" and kind == "ann":
        workers = 1        # one ANN forward per item: forked workers measured no faster than torch's threads
    if source.task == "segment":
        check_masks(test_set, spec.out_channels)
        spread = resolve(workers, count, ctx, inference_bytes(model, test_set, 0), memory.bytes)
        run_segment = functools.partial(segment_image, predictor(model, steps), test_set)
        predictions = list(spread_map(run_segment, range(count), spread, "evaluate worker", everywhere=True))
        return EvaluationReport(kind, source.task, step_count,
                                segmentation=segment_scores(test_set, predictions, spec.out_channels),
                                spread=spread, items=count)
    items = [(sigma, k) for sigma in sigmas for k in range(count)]
    spread = resolve(workers, len(items), ctx, inference_bytes(model, test_set, crop), memory.bytes)
    run_denoise = functools.partial(_denoise_item, denoiser(model, steps), test_set, seed, crop)
    rows = list(spread_map(run_denoise, items, spread, "evaluate worker", everywhere=True))
    return EvaluationReport(kind, source.task, step_count,
                            denoise=[denoise_row(s, rows[i * count:(i + 1) * count]) for i, s in enumerate(sigmas)],
                            spread=spread, items=count)


def _denoise_item(predict: Denoiser, test_set: ImageSet, seed: int, crop: int,
                  item: tuple[float, int]) -> dict[str, Any]:
    sigma, k = item
    return denoise_image(predict, test_set, k, sigma, seed, crop)


def inference_bytes(model: Model, test_set: ImageSet, crop: int) -> int:
    """A rough estimate of one worker's memory for the largest test image (cropped to ``crop``): float32
    state of every SNN neuron (membrane, current, spikes, temporaries), or some 16 full-size feature maps
    of the first stage's width for the ANN."""
    sides = [image.shape[-2:] if not crop else (min(crop, image.shape[-2]), min(crop, image.shape[-1]))
             for image in test_set.images]
    multiple = int(getattr(model, "multiple", 1) or 1)
    height, width = max(sides, key=lambda hw: int(hw[0]) * int(hw[1]))
    padded = (-(-int(height) // multiple) * multiple, -(-int(width) // multiple) * multiple)
    if isinstance(model, SpikingNetwork):
        try:
            return sum(neurons(layer) for layer in resize(model.network, padded).layers) * NEURON_BYTES
        except ToolchainError:
            return 0                     # a size the graph cannot take: the model's own error says so
    return padded[0] * padded[1] * model.config.width * 16 * 4


def evaluate_checkpoint(settings: EvaluateSettings) -> EvaluationReport:
    """Evaluate on the checkpoint's own test split, or on ``data`` (a folder in ``layout``); under torchrun
    the items are spread over the ranks as well (:func:`evaluate_model`)."""
    model, ckpt = load_any(settings.checkpoint)
    if isinstance(model, SpikingNetwork):
        warn_outside_finetuned_steps(ckpt.spiking, settings.steps, settings.checkpoint)
    source = DataSource.for_checkpoint(settings.checkpoint, ckpt.meta, ckpt.spec, settings.data, settings.layout,
                                       settings.masks, settings.memory)
    with distributed.session(GATHER_TIMEOUT):
        report = evaluate_model(model, source, settings.steps, settings.sigmas, settings.seed, settings.crop,
                                workers=settings.workers, memory=settings.memory)
    return replace(report, checkpoint=str(Path(settings.checkpoint)))


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
