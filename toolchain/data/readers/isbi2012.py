"""ISBI-2012 EM segmentation (neuronal membranes), in its published layout.

Layout (``root`` holds the challenge files)::

    train-volume.tif   30 x 512 x 512 multi-page TIFF, 8-bit gray
    train-labels.tif   30 x 512 x 512 multi-page TIFF: 255 (white) = cell interior, 0 (black) = membrane
    test-volume.tif    30 x 512 x 512, no labels (not read: it cannot be evaluated)

Since the test volume has no labels, the labelled training volume is split by slice:
``test_slices`` (default 6) last slices test, the others (default the first 24) train.

Foreground (class 1) is chosen by ``foreground``: ``"membrane"`` (default; the paper segments the
membranes, i.e. the black label pixels) or ``"interior"`` (the white pixels, as the raw labels).
Label pixels are binarized at half their type's range (>= 128 for 8 bit is interior), so 0/255
and 0/1 label files both work. Any stack size is accepted as long as the volume and the labels
have the same N x H x W shape; ``channels`` 3 repeats the gray slice.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from toolchain.data.embedded import ImageSet
from toolchain.data.readers.common import Layout, fail, positive_int, read_array, require_file, to_channels, to_unit
from toolchain.errors import ConfigError
from toolchain.memory import DataBudget

EXPECTED = ("ISBI-2012: expected train-volume.tif and train-labels.tif, multi-page TIFF stacks of "
            "the same N x H x W shape (30 x 512 x 512; labels 255 = cell interior, 0 = membrane)")
VOLUME, LABELS = "train-volume.tif", "train-labels.tif"
FOREGROUNDS = ("membrane", "interior")
TEST_SLICES = 6


def detect(root: Path) -> bool:
    return (root / VOLUME).is_file() and (root / LABELS).is_file()


def read_stack(path: Path, budget: DataBudget | None = None) -> np.ndarray:
    """A multi-page TIFF as N x H x W (one page: 1 x H x W), or an error naming the file; its declared size
    is checked (and charged to ``budget``) before it is decoded."""
    stack = read_array(path, EXPECTED, budget, stack=True)
    if stack.ndim == 4 and stack.shape[-1] == 1:
        stack = stack[..., 0]
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise fail(EXPECTED, f"{path}: stack shape {stack.shape} is not N x H x W gray slices")
    return stack


def binarize(labels: np.ndarray, path: Path) -> np.ndarray:
    """True where the label is 'interior' (white)."""
    if labels.dtype == bool:
        return labels
    high: float
    if np.issubdtype(labels.dtype, np.integer):
        high = 1 if labels.max() <= 1 else np.iinfo(labels.dtype).max
    elif np.issubdtype(labels.dtype, np.floating):
        high = 1.0 if labels.max() <= 1.0 else 255.0
    else:
        raise fail(EXPECTED, f"{path}: unsupported label type {labels.dtype}")
    return labels >= high / 2


def load(root: Path, task: str, channels: int, require_train: bool = True, test_slices: int = TEST_SLICES,
         foreground: str = "membrane", budget: DataBudget | None = None) -> tuple[ImageSet, ImageSet]:
    """Train / test ImageSets from the first / last ``test_slices`` slices of the training volume."""
    if foreground not in FOREGROUNDS:
        raise ConfigError(f"ISBI-2012 foreground must be one of {', '.join(FOREGROUNDS)}, got {foreground!r}")
    test_slices = positive_int("ISBI-2012 test_slices", test_slices)
    volume_path, labels_path = require_file(root / VOLUME, EXPECTED), require_file(root / LABELS, EXPECTED)
    volume, labels = read_stack(volume_path, budget), read_stack(labels_path, budget)
    if volume.shape != labels.shape:
        raise fail(EXPECTED, f"{labels_path}: label stack shape {labels.shape} differs from "
                             f"{volume_path} shape {volume.shape}")
    if test_slices >= volume.shape[0]:
        raise fail(EXPECTED, f"{volume_path}: {volume.shape[0]} slices leave none for training "
                             f"after {test_slices} test slices")
    images = to_unit(volume, volume_path, EXPECTED)
    interior = binarize(labels, labels_path)
    masks = (interior if foreground == "interior" else ~interior).astype(np.int64)
    names = tuple(f"train-volume[{k:02d}]" for k in range(volume.shape[0]))
    cut = volume.shape[0] - test_slices

    def part(ks: range) -> ImageSet:
        return ImageSet(tuple(names[k] for k in ks), tuple(to_channels(images[k], channels) for k in ks),
                        tuple(np.ascontiguousarray(masks[k]) for k in ks))
    return part(range(cut)), part(range(cut, volume.shape[0]))


LAYOUT = Layout("isbi2012", ("segment",), EXPECTED, load, detect, ("test_slices", "foreground"))
