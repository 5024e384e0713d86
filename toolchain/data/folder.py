"""Images and masks from folders a user supplies.

Layout (file stems pair images with masks; png, jpg, tif, bmp)::

    DIR/train/images/*   DIR/train/masks/*      (masks: integer class labels; segmentation only)
    DIR/test/images/*    DIR/test/masks/*

For denoising only ``images/`` folders are needed.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from toolchain.data.embedded import ImageSet
from toolchain.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")
MIN_SIDE = 8
MAX_PIXELS = 64 * 1024 * 1024


ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")      # PIL modes whose last channel is declared alpha
TIFF_ALPHA = (1, 2)                                   # TIFF ExtraSamples: associated, unassociated alpha


def _check_size(path: Path, w: int, h: int) -> None:
    if min(h, w) < MIN_SIDE or h * w > MAX_PIXELS:
        raise DataError(f"{path}: image size {w}x{h} is outside the supported range "
                        f"({MIN_SIDE} px per side to {MAX_PIXELS} pixels)")


def _header(path: Path) -> bool | None:
    """Check the size the file's header declares before anything is decoded (a huge or hostile
    header costs nothing); returns whether the last channel is a declared alpha channel, or None
    where the header cannot be parsed (the decoder then decides)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile
        try:
            with tifffile.TiffFile(path) as tif:
                pages = len(tif.pages)
                page = tif.pages[0]
                assert isinstance(page, tifffile.TiffPage)
                w, h = int(page.imagewidth), int(page.imagelength)
                extra = tuple(int(e) for e in (page.extrasamples or ()))
        except Exception:   # not a TIFF tifffile reads: let imageio try
            return None
        if pages > 1:
            raise DataError(f"{path}: a TIFF of {pages} pages (a stack); one image per file is supported")
        _check_size(path, w, h)
        return bool(extra) and extra[-1] in TIFF_ALPHA
    import warnings

    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")            # DecompressionBombWarning: we check the size ourselves
            with Image.open(path) as im:
                w, h, mode = im.size[0], im.size[1], im.mode
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: image size is outside the supported range (more than {MAX_PIXELS} pixels)") from exc
    except Exception:   # not a format PIL reads (imageio may): decide after decoding
        return None
    _check_size(path, w, h)
    return mode in ALPHA_MODES


def read_image(path: str | Path, channels: int) -> np.ndarray:
    """An image file as float32 CHW in [0, 1] with ``channels`` channels (1 gray, 3 color).

    Gray and color convert into each other; a declared alpha channel (PNG/GIF/TIFF gray+alpha,
    RGBA) is dropped. Anything else with 2, 4 or more channels (e.g. a 2- or 5-sample
    multispectral TIFF) is refused, as are sides under ``MIN_SIDE`` and more than ``MAX_PIXELS``
    pixels (checked from the header, before decoding, where the format allows).
    """
    import imageio.v3 as iio
    from skimage.color import gray2rgb, rgb2gray

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    alpha = _header(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = np.asarray(iio.imread(path))
    except Exception as exc:  # imageio raises many types for unreadable files
        raise DataError(f"{path}: not a readable image ({type(exc).__name__})") from exc
    if image.ndim == 3 and image.shape[-1] in (2, 4) and alpha:
        image = image[..., : 3 if image.shape[-1] == 4 else 1]
        image = image[..., 0] if image.shape[-1] == 1 else image
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        shape = "x".join(map(str, image.shape))
        raise DataError(f"{path}: unsupported image shape {shape} (expected gray HxW or color HxWx3, "
                        f"optionally with a declared alpha channel)")
    if image.dtype.kind not in "buif":
        raise DataError(f"{path}: unsupported pixel type {image.dtype}")
    h, w = image.shape[:2]
    _check_size(path, w, h)
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
