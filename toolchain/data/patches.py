"""Random training patches and Gaussian noise, drawn from an explicit generator (reproducible)."""
from __future__ import annotations

import numpy as np
import torch

from toolchain.data.embedded import ImageSet
from toolchain.errors import DataError


def random_patches(images: ImageSet, count: int, size: int, rng: np.random.Generator,
                   flips: bool = True, by_area: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``count`` random ``size`` x ``size`` crops (NCHW float32), with their masks (NHW int64) if any.

    An image is drawn uniformly, or with probability proportional to its area (``by_area``: every
    pixel equally likely, so a 100 x 100 crop does not weigh as much as a 1400 x 1400 photo)."""
    usable = [i for i, im in enumerate(images.images) if min(im.shape[-2:]) >= size]
    if not usable:
        raise DataError(f"no image is at least {size}x{size} pixels (smallest: "
                        f"{min(min(im.shape[-2:]) for im in images.images)})")
    area = np.array([images.images[i].shape[-2] * images.images[i].shape[-1] for i in usable], dtype=np.float64)
    crops, masks = [], []
    for _ in range(count):
        k = usable[rng.choice(len(usable), p=area / area.sum()) if by_area else rng.integers(len(usable))]
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


AUGMENT_SCALES = (1.0, 0.75, 0.5)


def augmented(images: ImageSet, scales: tuple[float, ...] = AUGMENT_SCALES) -> ImageSet:
    """Every image at each of ``scales`` (anti-aliased bicubic downscaling) and transposed: with the
    patch sampler's two flips, all 8 rotations and flips at every scale (DnCNN's multi-scale training
    set). Masks are resized by nearest neighbour."""
    from skimage.transform import rescale

    if images.regions is not None:
        raise DataError("multi-scale augmentation keeps no field-of-view regions: train this dataset without it")
    names: list[str] = []
    out_images: list[np.ndarray] = []
    out_masks: list[np.ndarray] = []
    for k, (name, image) in enumerate(zip(images.names, images.images)):
        mask = None if images.masks is None else images.masks[k]
        for scale in scales:
            if scale == 1.0:
                im, mk = image, mask
            else:
                im = rescale(image, (1.0, scale, scale), anti_aliasing=True, order=3).astype(np.float32)
                mk = None if mask is None else rescale(mask, scale, order=0, preserve_range=True,
                                                       anti_aliasing=False).astype(mask.dtype)
            for transpose in (False, True):
                names.append(f"{name}@{scale:g}{'T' if transpose else ''}")
                out_images.append(np.ascontiguousarray(im.transpose(0, 2, 1) if transpose else im))
                if mk is not None:
                    out_masks.append(np.ascontiguousarray(mk.T if transpose else mk))
    return ImageSet(tuple(names), tuple(out_images), tuple(out_masks) if images.masks is not None else None)


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
