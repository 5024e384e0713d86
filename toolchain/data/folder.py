"""Images and masks from folders a user supplies.

Layout (file stems pair images with masks; png, jpg, tif, bmp)::

    DIR/train/images/*   DIR/train/masks/*      (masks: integer class labels; segmentation only)
    DIR/test/images/*    DIR/test/masks/*

For denoising only ``images/`` folders are needed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .embedded import ImageSet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")
MIN_SIDE = 8
MAX_PIXELS = 64 * 1024 * 1024


def read_image(path: str | Path, channels: int) -> np.ndarray:
    """An image file as float32 CHW in [0, 1] with ``channels`` channels (1 gray, 3 color)."""
    import imageio.v3 as iio
    from skimage.color import gray2rgb, rgb2gray

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    try:
        image = np.asarray(iio.imread(path))
    except Exception as exc:  # imageio raises many types for unreadable files
        raise DataError(f"{path}: not a readable image ({type(exc).__name__})") from exc
    if image.ndim == 3 and image.shape[-1] in (2, 4):
        image = image[..., : 3 if image.shape[-1] == 4 else 1]
        image = image[..., 0] if image.shape[-1] == 1 else image
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise DataError(f"{path}: unsupported image shape {image.shape} (expected HxW or HxWx3)")
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE or h * w > MAX_PIXELS:
        raise DataError(f"{path}: image size {w}x{h} is outside the supported range "
                        f"({MIN_SIDE} px per side to {MAX_PIXELS} pixels)")
    if np.issubdtype(image.dtype, np.integer):
        image = image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    image = image.astype(np.float32)
    if channels == 1 and image.ndim == 3:
        image = rgb2gray(image).astype(np.float32)
    elif channels == 3 and image.ndim == 2:
        image = gray2rgb(image).astype(np.float32)
    elif channels not in (1, 3):
        raise DataError(f"{path}: {channels} channels requested; images are read as 1 (gray) or 3 (color)")
    return image[None] if image.ndim == 2 else np.ascontiguousarray(image.transpose(2, 0, 1))


def read_mask(path: Path) -> np.ndarray:
    import imageio.v3 as iio
    try:
        mask = np.asarray(iio.imread(path))
    except Exception as exc:
        raise DataError(f"{path}: not a readable mask ({type(exc).__name__})") from exc
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.dtype == bool or mask.max() == 255:
        mask = (mask > 0)
    return mask.astype(np.int64)


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_split(root: str | Path, split: str, task: str, channels: int) -> ImageSet:
    """``root/split/images`` (+ ``masks`` for segmentation) as an :class:`ImageSet`."""
    root = Path(root)
    files = image_files(root / split / "images")
    images = tuple(read_image(f, channels) for f in files)
    if task != "segment":
        return ImageSet(tuple(f.stem for f in files), images)
    masks_dir = root / split / "masks"
    by_stem = {p.stem: p for p in image_files(masks_dir)}
    masks = []
    for f, image in zip(files, images):
        if f.stem not in by_stem:
            raise DataError(f"{masks_dir}: no mask for image {f.name}")
        mask = read_mask(by_stem[f.stem])
        if mask.shape != image.shape[-2:]:
            raise DataError(f"{by_stem[f.stem]}: mask size {mask.shape} differs from image size {image.shape[-2:]}")
        masks.append(mask)
    return ImageSet(tuple(f.stem for f in files), images, tuple(masks))
