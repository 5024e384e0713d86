"""What a task is for training and evaluation: batches, losses and metrics for denoise / segment."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from toolchain.data.embedded import ImageSet
from toolchain.data.patches import add_gaussian_noise, center_crop
from toolchain.data.readers import random_fov_patches
from toolchain.tasks import metrics

Predictor = Callable[[torch.Tensor], torch.Tensor]
Denoiser = Callable[[torch.Tensor, float], torch.Tensor]
"""(noisy NCHW, sigma on the 0..255 scale) -> the predicted noise map (a blind network ignores sigma)."""
SIGMA_TRAIN_MAX = 55.0


def denoiser_input(noisy: torch.Tensor, sigma: float | torch.Tensor, noise_map: bool) -> torch.Tensor:
    """What a denoiser takes: the noisy batch, and for one told its noise level (``noise_map``) one more
    channel holding sigma / 255 everywhere (``sigma`` a number or one per batch item)."""
    if not noise_map:
        return noisy
    level = torch.as_tensor(sigma, dtype=noisy.dtype) / 255.0
    plane = level.view(-1, 1, 1, 1).expand(noisy.shape[0], 1, *noisy.shape[2:])
    return torch.cat([noisy, plane], dim=1)


@dataclass
class Sampler:
    """Draws training batches: noisy patches (with their noise-level channel for a denoiser with
    ``noise_map``) and their noise maps, sigma ~ U(0, 55); or image patches and masks."""

    task: str
    images: ImageSet
    patch: int
    batch: int
    rng: np.random.Generator
    generator: torch.Generator
    noise_map: bool = False
    by_area: bool = False           # draw images by area, not uniformly (toolchain.data.patches.random_patches)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        clean, masks = random_fov_patches(self.images, self.batch, self.patch, self.rng, by_area=self.by_area)
        if self.task == "segment":
            assert masks is not None
            return clean, masks
        sigma = torch.from_numpy(self.rng.uniform(0.0, SIGMA_TRAIN_MAX, size=self.batch)).float()
        noisy, noise = add_gaussian_noise(clean, sigma, self.generator)
        return denoiser_input(noisy, sigma, self.noise_map), noise


def task_loss(task: str, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Denoising: L1 between the predicted and the true noise map (paper eq. 12, with I_in^L / T).

    Segmentation: cross-entropy of the logits; for an SNN they are the decoded mean output I_in^L / T,
    the ANN's logit units at every T. (Paper eq. 11 takes CE of T x mean: its scale changes with T, so
    fine-tuning at one T shrinks the decoded margins and fine-tuning over several T contradicts itself;
    a model fine-tuned that way lost F1 as T grew.)
    """
    if task == "segment":
        return F.cross_entropy(prediction, target)
    return F.l1_loss(prediction, target)


@torch.no_grad()
def evaluate_denoise(predict: Denoiser, images: ImageSet, sigma: float, seed: int,
                     crop: int = 0) -> dict[str, object]:
    """PSNR / SSIM of clip(noisy - predict(noisy, sigma)) against the clean image, image by image.

    Image k gets noise from a generator seeded with ``seed + k``, so every model sees the same noise.
    """
    return denoise_row(sigma, [denoise_image(predict, images, k, sigma, seed, crop) for k in range(len(images.images))])


@torch.no_grad()
def denoise_image(predict: Denoiser, images: ImageSet, k: int, sigma: float, seed: int,
                  crop: int = 0) -> dict[str, Any]:
    """Image k's row of :func:`evaluate_denoise` (its noise seeded by ``seed + k``, wherever it runs)."""
    image = images.images[k]
    clean = torch.from_numpy(np.ascontiguousarray(center_crop(image, crop) if crop else image))[None]
    noisy, _ = add_gaussian_noise(clean, sigma, torch.Generator().manual_seed(seed + k))
    restored = (noisy - predict(noisy, sigma)).clamp(0.0, 1.0)
    c, r = clean[0].numpy(), restored[0].numpy()
    return {"image": images.names[k], "psnr": metrics.psnr(c, r), "ssim": metrics.ssim(c, r),
            "noisy_psnr": metrics.psnr(c, noisy[0].clamp(0, 1).numpy())}


def denoise_row(sigma: float, per_image: list[dict[str, Any]]) -> dict[str, object]:
    """The row of one sigma: mean PSNR and SSIM over the images' rows (in image order)."""
    return {"sigma": sigma, "psnr": float(np.mean([p["psnr"] for p in per_image])),
            "ssim": float(np.mean([p["ssim"] for p in per_image])), "images": per_image}


@torch.no_grad()
def evaluate_segment(predict: Predictor, images: ImageSet, classes: int) -> dict[str, float]:
    """F1 / Jaccard / accuracy (binary) or mIoU (multi-class) of argmax(logits), all test pixels pooled
    (only the pixels inside ``images.regions`` where the dataset has them, e.g. DRIVE's field of view)."""
    return segment_scores(images, [segment_image(predict, images, k) for k in range(len(images.images))], classes)


@torch.no_grad()
def segment_image(predict: Predictor, images: ImageSet, k: int) -> np.ndarray:
    """Image k's predicted classes, flattened, at the pixels it is scored on (see :func:`evaluate_segment`)."""
    logits = predict(torch.from_numpy(np.ascontiguousarray(images.images[k]))[None])
    keep = images.regions[k].ravel() if images.regions is not None else slice(None)
    return logits.argmax(dim=1)[0].numpy().ravel()[keep]


def segment_scores(images: ImageSet, predictions: list[np.ndarray], classes: int) -> dict[str, float]:
    """The scores of :func:`evaluate_segment` from every image's :func:`segment_image` (pooled in image order)."""
    assert images.masks is not None
    truths = [mask.ravel()[images.regions[k].ravel() if images.regions is not None else slice(None)]
              for k, mask in enumerate(images.masks)]
    truth, pred = np.concatenate(truths), np.concatenate(predictions)
    if classes == 2:
        return {**metrics.binary_scores(truth, pred), "miou": metrics.mean_iou(truth, pred, classes)}
    return {"miou": metrics.mean_iou(truth, pred, classes), "accuracy": float(np.mean(truth == pred))}
