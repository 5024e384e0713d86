"""The embedded default data: real photos and one real segmentation mask, shipped inside this project's
dependencies or this repository (nothing is downloaded at run time).

The split is by image (by region for the one segmentation image), so no test pixel is ever seen in
training. Photos come from scikit-image, PyWavelets (aero, ascent), scikit-learn (china, flower) and
matplotlib (grace_hopper); the licences their docstrings state are in the README.

* gray denoising: train on the 19 photos of :data:`TRAIN` (color ones converted to gray); test on
  camera, clock, chelsea, ascent, china, grace_hopper (:data:`GRAY_TEST`).
* color denoising: train on the color photos of :data:`TRAIN` (:data:`COLOR_TRAIN`); test on chelsea,
  china, grace_hopper.
* binary segmentation: the 2018 Data Science Bowl nuclei image with its hand-made instance mask
  (``assets/``, CC0; foreground = label > 0); the left 60 % of the columns train, the right 40 % test.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

from toolchain.errors import DataError

TRAIN = ("moon", "coins", "cell", "text", "page", "brick", "grass", "gravel", "aero", "microaneurysms",
         "astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "motorcycle_left",
         "motorcycle_right", "retina", "flower")
GRAY_TEST = ("camera", "clock", "chelsea", "ascent", "china", "grace_hopper")
COLOR_TRAIN = ("astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "motorcycle_left",
               "motorcycle_right", "retina", "flower")
COLOR_TEST = ("chelsea", "china", "grace_hopper")
SEGMENT_NAME = "nuclei"
SEGMENT_TRAIN_FRACTION = 0.6


def _pixels(name: str) -> np.ndarray:
    """The photo ``name`` as its package ships it (uint8 HxW or HxWx3)."""
    if name in ("aero", "ascent"):
        import pywt.data
        return np.asarray(getattr(pywt.data, name)())
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image
        return np.asarray(load_sample_image(f"{name}.jpg"))
    if name == "grace_hopper":
        import imageio.v3 as iio
        import matplotlib.cbook
        return np.asarray(iio.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    import skimage.data
    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return np.asarray(left if name.endswith("left") else right)
    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise DataError(f"no embedded image named {name!r}")
    return np.asarray(loader())


def load_photo(name: str, channels: int) -> np.ndarray:
    """An embedded photo as float32 CHW in [0, 1], converted to ``channels`` (1 gray, 3 color)."""
    from skimage.color import gray2rgb, rgb2gray

    image = _pixels(name)
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
    train, test = (TRAIN, GRAY_TEST) if channels == 1 else (COLOR_TRAIN, COLOR_TEST)
    return (ImageSet(train, tuple(load_photo(n, channels) for n in train)),
            ImageSet(test, tuple(load_photo(n, channels) for n in test)))


def nuclei() -> tuple[np.ndarray, np.ndarray]:
    """The nuclei image (float32 1xHxW in [0, 1]) and its instance labels (int64 HxW, 0 = background)."""
    import imageio.v3 as iio

    folder = resources.files("toolchain.data") / "assets"
    with resources.as_file(folder / "nuclei.png") as path:
        image = np.asarray(iio.imread(path)).astype(np.float32) / 255.0
    with resources.as_file(folder / "nuclei_labels.png") as path:
        labels = np.asarray(iio.imread(path)).astype(np.int64)
    return image[None], labels


def segment_split() -> tuple[ImageSet, ImageSet]:
    """The embedded binary segmentation task (nuclei vs background), split by columns into train and test."""
    image, labels = nuclei()
    mask = (labels > 0).astype(np.int64)
    cut = int(image.shape[-1] * SEGMENT_TRAIN_FRACTION)
    return (ImageSet((f"{SEGMENT_NAME}[left]",), (image[..., :cut],), (mask[:, :cut],)),
            ImageSet((f"{SEGMENT_NAME}[right]",), (image[..., cut:],), (mask[:, cut:],)))
