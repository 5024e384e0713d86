"""Random training patches and Gaussian noise, drawn from an explicit generator (reproducible)."""
from __future__ import annotations

import numpy as np
import torch

from toolchain.data.embedded import ImageSet
from toolchain.errors import DataError


def random_patches(images: ImageSet, count: int, size: int, rng: np.random.Generator,
                   flips: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``count`` random ``size`` x ``size`` crops (NCHW float32), with their masks (NHW int64) if any."""
    usable = [i for i, im in enumerate(images.images) if min(im.shape[-2:]) >= size]
    if not usable:
        raise DataError(f"no image is at least {size}x{size} pixels (smallest: "
                        f"{min(min(im.shape[-2:]) for im in images.images)})")
    crops, masks = [], []
    for _ in range(count):
        k = usable[rng.integers(len(usable))]
        image = images.images[k]
        top = rng.integers(image.shape[-2] - size + 1)
        left = rng.integers(image.shape[-1] - size + 1)
        crop = image[:, top:top + size, left:left + size]
        mask = None if images.masks is None else images.masks[k][top:top + size, left:left + size]
        if flips and rng.random() < 0.5:
            crop = crop[..., ::-1]
            mask = None if mask is None else mask[..., ::-1]
        if flips and rng.random() < 0.5:
            crop = crop[..., ::-1, :]
            mask = None if mask is None else mask[::-1, :]
        crops.append(np.ascontiguousarray(crop))
        if mask is not None:
            masks.append(np.ascontiguousarray(mask))
    batch = torch.from_numpy(np.stack(crops))
    return batch, (torch.from_numpy(np.stack(masks)) if masks else None)


def add_gaussian_noise(clean: torch.Tensor, sigma_255: float | torch.Tensor,
                       generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """noisy = clean + n, n ~ N(0, (sigma/255)^2), not clipped (the usual denoising benchmark protocol).

    ``sigma_255`` is on the 0..255 scale; a tensor gives one sigma per batch item. Returns (noisy, n).
    """
    sigma = torch.as_tensor(sigma_255, dtype=clean.dtype) / 255.0
    if sigma.ndim == 1:
        sigma = sigma.view(-1, 1, 1, 1)
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype) * sigma
    return clean + noise, noise


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` window of a CHW (or HW) array; smaller sides are kept whole."""
    h, w = image.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[..., top:top + size, left:left + size]
