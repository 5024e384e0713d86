"""DRIVE (retinal vessels), in its published layout, preprocessed as the paper and retina-unet.

Layout (``root`` is the ``DRIVE`` folder or its parent)::

    DRIVE/training/images/21_training.tif    DRIVE/training/1st_manual/21_manual1.gif
    DRIVE/training/mask/21_training_mask.gif
    DRIVE/test/images/01_test.tif            DRIVE/test/1st_manual/01_manual1.gif
    DRIVE/test/mask/01_test_mask.gif

The image number (``21``) pairs the files. ``1st_manual`` is the ground truth (vessel = class 1);
``mask`` is the field of view (FOV), returned as the ImageSet's ``regions`` (metrics count FOV
pixels only; training patches are centred inside it). Some copies lack ``test/1st_manual``: then
the test split cannot be evaluated and loading fails with a clear error, unless ``holdout=N``
is given, which tests on the last N training images instead of DRIVE/test.

Preprocessing (paper 4.2.1; retina-unet's ``my_PreProc``), with ``preprocess=True`` (default):

1. gray: 0.299 R + 0.587 G + 0.114 B;
2. dataset-wide standardization (mean and std over all pixels of the split), then each image
   rescaled to [0, 1] by its own min and max (as retina-unet; together these two steps equal a
   per-image min-max rescaling, so train and test statistics never mix);
3. CLAHE: ``skimage.exposure.equalize_adapthist`` with 8x8 tiles and ``clip_limit=2/256``,
   the equivalent of OpenCV's ``createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))`` used there;
4. gamma 1.2 in retina-unet's convention: ``out = in ** (1 / 1.2)``;
5. values in [0, 1] (float32, 1 channel).

The preprocessed images are gray, so ``channels`` must be 1; ``preprocess=False`` returns the raw
RGB (or gray, per ``channels``) pixels in [0, 1].
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from toolchain.data.embedded import ImageSet
from toolchain.data.readers.common import (
    Layout,
    as_rgb,
    binary,
    fail,
    positive_int,
    read_array,
    require_dir,
    to_channels,
    to_unit,
)
from toolchain.errors import ConfigError
from toolchain.memory import DataBudget

EXPECTED = ("DRIVE: expected DRIVE/training/images/*_training.tif, DRIVE/training/1st_manual/*_manual1.gif, "
            "DRIVE/training/mask/*_training_mask.gif and DRIVE/test/images/*_test.tif, "
            "DRIVE/test/1st_manual/*_manual1.gif, DRIVE/test/mask/*_test_mask.gif")
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
CLAHE_TILES = 8
CLAHE_CLIP = 2.0 / 256
GAMMA = 1.2
SPLITS = {"train": "training", "test": "test"}


def base_folder(root: Path) -> Path | None:
    """The folder holding ``training/`` and ``test/``: ``root`` itself or ``root/DRIVE``."""
    for base in (root, root / "DRIVE"):
        if (base / "training" / "images").is_dir():
            return base
    return None


def detect(root: Path) -> bool:
    base = base_folder(root)
    return base is not None and any((base / "training" / "images").glob("*_training.tif*"))


def gray(rgb: np.ndarray) -> np.ndarray:
    """Weighted gray of an HxWx3 image (ITU-R BT.601 weights, as retina-unet's rgb2gray)."""
    r, g, b = GRAY_WEIGHTS
    return (r * rgb[..., 0] + g * rgb[..., 1] + b * rgb[..., 2]).astype(np.float64)


def preprocess(rgbs: list[np.ndarray]) -> list[np.ndarray]:
    """HxWx3 images in [0, 1] -> preprocessed gray HxW float32 images in [0, 1] (steps 1-5 above)."""
    from skimage.exposure import equalize_adapthist

    grays = [gray(rgb) for rgb in rgbs]
    pixels = np.concatenate([g.ravel() for g in grays])
    mean, std = float(pixels.mean()), float(pixels.std()) or 1.0
    out = []
    for g in grays:
        z = (g - mean) / std
        low, high = float(z.min()), float(z.max())
        z = (z - low) / (high - low) if high > low else np.zeros_like(z)
        kernel = (max(1, g.shape[0] // CLAHE_TILES), max(1, g.shape[1] // CLAHE_TILES))
        equalized = equalize_adapthist(z, kernel_size=kernel, clip_limit=CLAHE_CLIP, nbins=256)
        out.append(np.clip(equalized ** (1.0 / GAMMA), 0.0, 1.0).astype(np.float32))
    return out


def numbered(folder: Path, suffix: str) -> dict[str, Path]:
    """{image number: file} for the files named ``<number><suffix>.<ext>`` in ``folder``."""
    found = {}
    for path in sorted(folder.iterdir()):
        stem = path.name[: -len(path.suffix)] if path.suffix else path.name
        if path.is_file() and stem.endswith(suffix) and stem != suffix:
            found[stem[: -len(suffix)]] = path
    return found


def read_split(base: Path, split: str, labelled: bool,
               budget: DataBudget | None = None) -> tuple[list[str], list[np.ndarray], list, list]:
    """Names, raw RGB images in [0, 1], vessel masks (or None) and FOV masks of one DRIVE split."""
    folder = require_dir(base / split, EXPECTED)
    images = numbered(require_dir(folder / "images", EXPECTED), f"_{split}")
    if not images:
        raise fail(EXPECTED, f"{folder / 'images'}: no *_{split}.tif images")
    fovs = numbered(require_dir(folder / "mask", EXPECTED), f"_{split}_mask")
    manuals = numbered(require_dir(folder / "1st_manual", EXPECTED), "_manual1") if labelled else {}
    for kind, files in (("mask", fovs), ("1st_manual", manuals)):
        if (kind == "mask" or labelled) and len(files) != len(images):
            raise fail(EXPECTED, f"{folder / kind}: {len(files)} files for {len(images)} images in "
                                 f"{folder / 'images'} (mismatched counts)")
    names, rgbs, vessels, regions = [], [], [], []
    for number, path in images.items():
        rgb = to_unit(as_rgb(read_array(path, EXPECTED, budget), path, EXPECTED), path, EXPECTED)
        wanted = {"mask": (fovs, f"{number}_{split}_mask.gif")}
        if labelled:
            wanted["1st_manual"] = (manuals, f"{number}_manual1.gif")
        masks = {}
        for kind, (files, filename) in wanted.items():
            if number not in files:
                raise fail(EXPECTED, f"{folder / kind / filename}: missing file (for {path.name})")
            masks[kind] = binary(read_array(files[number], EXPECTED, budget))
            if masks[kind].shape != rgb.shape[:2]:
                raise fail(EXPECTED, f"{files[number]}: size {masks[kind].shape} differs from image "
                                     f"{path.name} size {rgb.shape[:2]}")
        names.append(path.name[: -len(path.suffix)])
        rgbs.append(rgb)
        vessels.append(masks["1st_manual"].astype(np.int64) if labelled else None)
        regions.append(masks["mask"])
    return names, rgbs, vessels, regions


def image_set(names, rgbs, vessels, regions, channels: int, preprocessed: bool) -> ImageSet:
    images = preprocess(rgbs) if preprocessed else rgbs
    return ImageSet(tuple(names), tuple(to_channels(im, channels) for im in images),
                    tuple(vessels), tuple(regions))


def load(root: Path, task: str, channels: int, require_train: bool = True, preprocess: bool = True,
         holdout: int | None = None, budget: DataBudget | None = None) -> tuple[ImageSet, ImageSet]:
    """DRIVE train and test ImageSets (masks: 1 = vessel; regions: the FOV); see the module doc."""
    if preprocess and channels != 1:
        raise ConfigError("DRIVE preprocessing (gray, CLAHE, gamma; paper 4.2.1) gives gray images: "
                          "use 1 channel, or preprocess=False for the raw colour images")
    base = base_folder(root)
    if base is None:
        raise fail(EXPECTED, f"{root / 'DRIVE' / 'training' / 'images'}: missing folder "
                             f"(neither {root} nor {root / 'DRIVE'} holds training/images)")
    train = read_split(base, "training", labelled=True, budget=budget)
    if holdout is not None:
        holdout = positive_int("DRIVE holdout", holdout)
        if holdout >= len(train[0]):
            raise ConfigError(f"DRIVE holdout {holdout} leaves no training image (there are {len(train[0])})")
        cut = len(train[0]) - holdout
        names, rgbs, vessels, regions = train
        return (image_set(names[:cut], rgbs[:cut], vessels[:cut], regions[:cut], channels, preprocess),
                image_set(names[cut:], rgbs[cut:], vessels[cut:], regions[cut:], channels, preprocess))
    if not (base / "test" / "1st_manual").is_dir():
        raise fail(EXPECTED, f"{base / 'test' / '1st_manual'}: missing folder: this copy of DRIVE has no "
                             "test ground truth, so the test split cannot be evaluated (holdout=N tests "
                             "on the last N training images instead)")
    test = read_split(base, "test", labelled=True, budget=budget)
    return image_set(*train, channels, preprocess), image_set(*test, channels, preprocess)


LAYOUT = Layout("drive", ("segment",), EXPECTED, load, detect, ("preprocess", "holdout"))
