"""The embedded default data: real photos that ship inside scikit-image (no download at run time).

The split is by image, so no test pixel is ever seen in training:

* gray denoising: train on moon, coins, cell, text, page, brick, grass, gravel; test on camera, clock.
* color denoising: train on astronaut, coffee, rocket, hubble_deep_field, immunohistochemistry,
  retina; test on chelsea.
* binary segmentation: coins, with a pseudo ground truth made by a classical pipeline (Gaussian
  smoothing, Otsu threshold, hole filling, small-object removal). It is a smoke-test task, not a
  benchmark: the left 60 % of the columns train, the right 40 % test.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toolchain.errors import DataError

GRAY_TRAIN = ("moon", "coins", "cell", "text", "page", "brick", "grass", "gravel")
GRAY_TEST = ("camera", "clock")
COLOR_TRAIN = ("astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
COLOR_TEST = ("chelsea",)
SEGMENT_IMAGE = "coins"
SEGMENT_TRAIN_FRACTION = 0.6


def load_photo(name: str, channels: int) -> np.ndarray:
    """A scikit-image photo as float32 CHW in [0, 1], converted to ``channels`` (1 gray, 3 color)."""
    import skimage.data
    from skimage.color import gray2rgb, rgb2gray

    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise DataError(f"scikit-image has no embedded image named {name!r}")
    image = np.asarray(loader())
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    image = image.astype(np.float32)
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if channels == 1 and image.ndim == 3:
        image = rgb2gray(image).astype(np.float32)
    if channels == 3 and image.ndim == 2:
        image = gray2rgb(image).astype(np.float32)
    return image[None] if image.ndim == 2 else np.ascontiguousarray(image.transpose(2, 0, 1))


@dataclass(frozen=True)
class ImageSet:
    """Images (float32 CHW in [0, 1]) with optional integer masks (HW) and their names.

    ``regions`` optionally marks, per image, the pixels that count (bool HW, True = valid): e.g.
    DRIVE's field-of-view masks, where segmentation metrics are computed inside the FOV only and
    training patches are centred inside it. None means every pixel counts.
    """

    names: tuple[str, ...]
    images: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray, ...] | None = None
    regions: tuple[np.ndarray, ...] | None = None

    def __post_init__(self) -> None:
        if not self.images:
            raise DataError("an image set needs at least one image")
        if self.regions is not None:
            if len(self.regions) != len(self.images):
                raise DataError(f"an image set has {len(self.images)} images but {len(self.regions)} regions")
            for name, image, region in zip(self.names, self.images, self.regions):
                if region.shape != image.shape[-2:]:
                    raise DataError(f"{name}: region size {region.shape} differs from image size "
                                    f"{image.shape[-2:]}")


def denoise_split(channels: int) -> tuple[ImageSet, ImageSet]:
    """The embedded train and test photos for gray (1) or color (3) denoising."""
    if channels not in (1, 3):
        raise DataError(f"embedded denoising data is gray (1) or color (3), not {channels} channels")
    train, test = (GRAY_TRAIN, GRAY_TEST) if channels == 1 else (COLOR_TRAIN, COLOR_TEST)
    return (ImageSet(train, tuple(load_photo(n, channels) for n in train)),
            ImageSet(test, tuple(load_photo(n, channels) for n in test)))


def coins_pseudo_mask(image: np.ndarray) -> np.ndarray:
    """Binary coin mask of a 1xHxW coins photo by smoothing, Otsu, hole filling and cleaning."""
    from scipy import ndimage
    from skimage.filters import gaussian, threshold_otsu
    from skimage.morphology import remove_small_objects

    smooth = gaussian(image[0], sigma=2)
    mask = ndimage.binary_fill_holes(smooth > threshold_otsu(smooth))
    return remove_small_objects(mask, max_size=64).astype(np.int64)


def segment_split() -> tuple[ImageSet, ImageSet]:
    """The embedded binary segmentation task, split by columns into train and test."""
    image = load_photo(SEGMENT_IMAGE, 1)
    mask = coins_pseudo_mask(image)
    cut = int(image.shape[-1] * SEGMENT_TRAIN_FRACTION)
    return (ImageSet(("coins[left]",), (image[..., :cut],), (mask[:, :cut],)),
            ImageSet(("coins[right]",), (image[..., cut:],), (mask[:, cut:],)))
