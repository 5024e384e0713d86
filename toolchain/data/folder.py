"""Images and masks from folders a user supplies.

Layout (file stems pair images with masks; png, jpg, tif, bmp)::

    DIR/train/images/*   DIR/train/masks/*      (segmentation only)
    DIR/test/images/*    DIR/test/masks/*

For denoising only ``images/`` folders are needed.

Pixels: integer images are scaled to [0, 1] by the largest value their bit depth holds, where the
bit depth is the smallest of 8, 10, 12, 14, 16 (..., the type's) that holds the file's largest value:
an 8-bit image saved as uint16 is divided by 255, not 65535, and a :class:`~toolchain.errors.DataWarning`
says so. Float images must be finite and in [0, 1] (or [0, 255]).

Masks (:func:`read_mask`, :data:`MaskKind`): ``binary`` files (bool, 0/1 or 0/255) become 0/1;
``classes`` files hold class indices 0..K-1 as they are; ``instances`` files hold instance labels
(0 background, 1..N objects, e.g. the 2018 Data Science Bowl's) and become foreground = label > 0.
``auto`` (the default) reads 0/255 and bool as binary and anything else as class indices; a label
the network has no class for is refused by :func:`check_masks`, naming the file and suggesting
``instances``.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from toolchain.data.embedded import ImageSet
from toolchain.errors import DataError, DataWarning

MaskKind = Literal["auto", "binary", "classes", "instances"]
MASK_KINDS: tuple[MaskKind, ...] = get_args(MaskKind)
BIT_DEPTHS = (8, 10, 12, 14, 16, 24, 32, 64)

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
    if np.issubdtype(image.dtype, np.integer) or image.dtype == bool:
        image = image.astype(np.float64) / integer_scale(image, path)
    elif not np.isfinite(image).all() or image.min() < 0 or image.max() > 255:
        raise DataError(f"{path}: float pixels must be finite and in [0, 1] (or [0, 255])")
    elif image.max() > 1.0:
        image = image / 255.0
    image = image.astype(np.float32)
    if channels == 1 and image.ndim == 3:
        image = rgb2gray(image).astype(np.float32)
    elif channels == 3 and image.ndim == 2:
        image = gray2rgb(image).astype(np.float32)
    elif channels not in (1, 3):
        raise DataError(f"{path}: {channels} channels requested; images are read as 1 (gray) or 3 (color)")
    return image[None] if image.ndim == 2 else np.ascontiguousarray(image.transpose(2, 0, 1))


def integer_scale(image: np.ndarray, path: Path) -> float:
    """The value that maps an integer image to 1.0: 2**b - 1 for the smallest usual bit depth b that
    holds its largest value (module docstring); warns when that is below the type's own maximum."""
    if image.dtype == bool:
        return 1.0
    if image.size and int(image.min()) < 0:
        raise DataError(f"{path}: negative pixel values ({int(image.min())}) in an integer image")
    top, type_bits = int(image.max(initial=0)), np.iinfo(image.dtype).bits
    bits = next(b for b in BIT_DEPTHS if b >= type_bits or top < 2 ** b)
    if bits < type_bits:
        warnings.warn(f"{path}: {image.dtype} pixels up to {top}: read as {bits}-bit data (divided by "
                      f"{2 ** bits - 1}, not {2 ** type_bits - 1})", DataWarning, stacklevel=2)
    return float(2 ** bits - 1)


def read_mask(path: Path, kind: MaskKind = "auto") -> np.ndarray:
    """A mask file as int64 HxW labels, read as ``kind`` says (module docstring)."""
    import imageio.v3 as iio
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mask = np.asarray(iio.imread(path))
    except Exception as exc:
        raise DataError(f"{path}: not a readable mask ({type(exc).__name__})") from exc
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.dtype.kind == "f":
        if not np.isfinite(mask).all() or not np.array_equal(mask, np.round(mask)):
            raise DataError(f"{path}: a float mask must hold whole numbers (labels)")
        mask = mask.astype(np.int64)
    if mask.dtype != bool and not np.issubdtype(mask.dtype, np.integer):
        raise DataError(f"{path}: unsupported mask type {mask.dtype}")
    if mask.size and int(mask.min()) < 0:
        raise DataError(f"{path}: negative labels in a mask")
    values = np.unique(mask)
    binary_file = mask.dtype == bool or set(values.tolist()) <= {0, 255}
    if kind == "instances" or (kind in ("auto", "binary") and binary_file):
        return (mask > 0).astype(np.int64)
    if kind == "binary" and not set(values.tolist()) <= {0, 1}:
        raise DataError(f"{path}: a binary mask holds 0/1 or 0/255, this one {values.size} values up to "
                        f"{int(values[-1])} (read it as `masks` instances or classes)")
    return mask.astype(np.int64)


def check_masks(images: ImageSet, classes: int) -> None:
    """Every mask label must be a class of the network (0..classes-1); one line naming the image if not."""
    for name, mask in zip(images.names, images.masks or ()):
        top = int(mask.max(initial=0))
        if top >= classes:
            raise DataError(f"mask of {name}: label {top} but the network has {classes} classes (0..{classes - 1}); "
                            f"instance labels (0 background, 1..N objects) are read as foreground with "
                            f"`masks` instances")


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_split(root: str | Path, split: str, task: str, channels: int, masks: MaskKind = "auto") -> ImageSet:
    """``root/split/images`` (+ ``masks`` for segmentation, read as ``masks`` says) as an :class:`ImageSet`."""
    root = Path(root)
    files = image_files(root / split / "images")
    images = tuple(read_image(f, channels) for f in files)
    if task != "segment":
        return ImageSet(tuple(f.stem for f in files), images)
    masks_dir = root / split / "masks"
    by_stem = {p.stem: p for p in image_files(masks_dir)}
    labels = []
    for f, image in zip(files, images):
        if f.stem not in by_stem:
            raise DataError(f"{masks_dir}: no mask for image {f.name}")
        mask = read_mask(by_stem[f.stem], masks)
        if mask.shape != image.shape[-2:]:
            raise DataError(f"{by_stem[f.stem]}: mask size {mask.shape} differs from image size {image.shape[-2:]}")
        labels.append(mask)
    return ImageSet(tuple(f.stem for f in files), images, tuple(labels))
