"""Patch tools for patch-trained segmentation (DRIVE: 48x48 patches, as the retina-unet code).

* :func:`random_fov_patches` draws training patches whose centres lie inside each image's
  ``regions`` (the field of view), with the same return value as ``data.patches.random_patches``.
* :func:`extract_patches` / :func:`reassemble` cut an image into overlapping ``size`` x ``size``
  patches on a ``stride`` grid and put them back, averaging overlaps. The image is padded at the
  bottom and right (zeros by default, as retina-unet) so that the grid covers it exactly; the
  padding is cropped away again. ``reassemble(extract_patches(x, s, t), x.shape, s, t) == x``
  exactly (overlaps are summed in float64, where k equal float32 values divide back exactly).
* :func:`tiled_predictor` wraps a whole-image predictor into one that predicts patch by patch and
  averages the overlapping outputs (the paper's DRIVE evaluation on 48x48 patches).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from toolchain.data.embedded import ImageSet
from toolchain.data.patches import random_patches
from toolchain.errors import ConfigError, DataError


def check_grid(size: int, stride: int | None) -> tuple[int, int]:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"patch size must be a positive integer, got {size!r}")
    stride = size if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= size:
        raise ConfigError(f"patch stride must be an integer from 1 to the patch size {size}, got {stride!r}")
    return size, stride


def padded_side(n: int, size: int, stride: int) -> int:
    """The smallest side >= n (and >= size) that a stride grid of size-wide windows covers exactly."""
    return size if n <= size else size + math.ceil((n - size) / stride) * stride


def grid(height: int, width: int, size: int, stride: int) -> tuple[list[int], list[int], int, int]:
    """Window tops, window lefts (row-major order) and the padded height and width."""
    hp, wp = padded_side(height, size, stride), padded_side(width, size, stride)
    return list(range(0, hp - size + 1, stride)), list(range(0, wp - size + 1, stride)), hp, wp


def extract_patches(image: np.ndarray, size: int = 48, stride: int | None = None,
                    pad_mode: Literal["constant", "edge", "reflect", "symmetric"] = "constant") -> np.ndarray:
    """CHW (or HW) image -> (N, C, size, size) patches on a ``stride`` grid, row-major.

    ``stride`` defaults to ``size`` (no overlap); the image is padded at the bottom/right with
    ``np.pad(mode=pad_mode)`` so that the grid ends exactly on the padded border.
    """
    size, stride = check_grid(size, stride)
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ConfigError(f"extract_patches needs a CHW or HW image, got shape {array.shape}")
    _, h, w = array.shape
    tops, lefts, hp, wp = grid(h, w, size, stride)
    padded = np.pad(array, ((0, 0), (0, hp - h), (0, wp - w)), mode=pad_mode)
    return np.stack([padded[:, t:t + size, left:left + size] for t in tops for left in lefts])


def reassemble(patches: np.ndarray, image_shape: tuple[int, ...], size: int = 48,
               stride: int | None = None) -> np.ndarray:
    """Inverse of :func:`extract_patches`: average the overlapping patches into an ``image_shape`` array.

    ``image_shape`` is (C, H, W) or (H, W); ``patches`` is (N, C', size, size) (or (N, size, size)),
    where C' may differ from C (e.g. logits of a segmentation network): the result has C' channels
    for a CHW shape, and is HW when ``image_shape`` is HW and C' is 1.
    """
    size, stride = check_grid(size, stride)
    array = np.asarray(patches)
    if array.ndim == 3:
        array = array[:, None]
    h, w = image_shape[-2:]
    tops, lefts, hp, wp = grid(h, w, size, stride)
    if array.ndim != 4 or array.shape[0] != len(tops) * len(lefts) or array.shape[-2:] != (size, size):
        raise ConfigError(f"reassemble: {len(tops) * len(lefts)} patches of {size}x{size} expected for an "
                          f"image of {h}x{w} at stride {stride}, got shape {array.shape}")
    total = np.zeros((array.shape[1], hp, wp), dtype=np.float64)
    count = np.zeros((hp, wp), dtype=np.float64)
    k = 0
    for t in tops:
        for left in lefts:
            total[:, t:t + size, left:left + size] += array[k]
            count[t:t + size, left:left + size] += 1.0
            k += 1
    out = (total / count)[:, :h, :w].astype(array.dtype if np.issubdtype(array.dtype, np.floating) else np.float64)
    return out[0] if len(image_shape) == 2 and out.shape[0] == 1 else out


def fov_centres(region: np.ndarray, size: int) -> np.ndarray:
    """Flat indices (into the HxW image) of the FOV pixels that can centre a whole size x size patch."""
    h, w = region.shape
    half = size // 2
    window = np.zeros_like(region, dtype=bool)
    window[half:h - size + half + 1, half:w - size + half + 1] = True
    return np.flatnonzero(region & window)


def random_fov_patches(images: ImageSet, count: int, size: int, rng: np.random.Generator,
                       flips: bool = True, by_area: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``count`` random ``size`` x ``size`` patches whose centres lie inside ``images.regions``.

    As retina-unet's training patches: an image is drawn uniformly, then a centre uniformly among
    its FOV pixels whose patch fits inside the image. Without regions this is ``random_patches``.
    Returns (NCHW float32, NHW int64 masks or None), optionally flipped like ``random_patches``.
    """
    if images.regions is None:
        return random_patches(images, count, size, rng, flips, by_area)
    centres = [fov_centres(region, size) for region in images.regions]
    usable = [k for k, c in enumerate(centres) if c.size]
    if not usable:
        raise DataError(f"no image has a field-of-view pixel that can centre a {size}x{size} patch")
    crops, masks = [], []
    for _ in range(count):
        k = usable[rng.integers(len(usable))]
        image = images.images[k]
        cy, cx = np.unravel_index(centres[k][rng.integers(centres[k].size)], image.shape[-2:])
        top, left = int(cy) - size // 2, int(cx) - size // 2
        crop = image[:, top:top + size, left:left + size]
        mask = None if images.masks is None else images.masks[k][top:top + size, left:left + size]
        if flips and rng.random() < 0.5:
            crop, mask = crop[..., ::-1], None if mask is None else mask[..., ::-1]
        if flips and rng.random() < 0.5:
            crop, mask = crop[..., ::-1, :], None if mask is None else mask[::-1, :]
        crops.append(np.ascontiguousarray(crop))
        if mask is not None:
            masks.append(np.ascontiguousarray(mask))
    return torch.from_numpy(np.stack(crops)), (torch.from_numpy(np.stack(masks)) if masks else None)


def tiled_predictor(predict: Callable[[torch.Tensor], torch.Tensor], size: int = 48, stride: int | None = None,
                    batch: int = 64) -> Callable[[torch.Tensor], torch.Tensor]:
    """x (1, C, H, W) -> predict on overlapping ``size`` patches, batched, outputs averaged (1, K, H, W)."""
    size, stride = check_grid(size, stride)

    def tiled(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[0] != 1:
            raise ConfigError(f"tiled prediction takes one image (1, C, H, W), got shape {tuple(x.shape)}")
        patches = torch.from_numpy(extract_patches(x[0].detach().cpu().numpy(), size, stride))
        outputs = np.concatenate([predict(patches[i:i + batch]).detach().cpu().numpy()
                                  for i in range(0, len(patches), batch)])
        return torch.from_numpy(reassemble(outputs, tuple(x.shape[1:]), size, stride))[None]
    return tiled
