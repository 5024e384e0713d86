"""Readers for the paper's datasets, from a folder the user supplies, in their published layouts.

``LAYOUTS`` maps a layout name to its :class:`~.common.Layout`:

=========  ========  ============================================================================
name       task      folder (details and the documented choices in each module's docstring)
=========  ========  ============================================================================
folder     both      DIR/{train,test}/images/* (+ masks/* for segmentation): ``data.folder``
drive      segment   DRIVE/{training,test}/{images,1st_manual,mask}: gray, CLAHE, gamma; FOV
                     masks as ``ImageSet.regions``                              (``drive.py``)
isbi2012   segment   train-volume.tif + train-labels.tif, split by slice          (``isbi2012.py``)
camseq01   segment   *.png + *_L.png + label_colors.txt, 256 x 256, tail split    (``camseq01.py``)
bsd68      denoise   BSD68 gray test images (+ a training folder)                (``denoising.py``)
cbsd68     denoise   CBSD68 colour test images (+ a training folder)             (``denoising.py``)
set12      denoise   Set12 gray test images (+ a training folder)                (``denoising.py``)
=========  ========  ============================================================================

:func:`load_dataset` returns ``(train, test)``; :func:`load_test_set` only the test set (enough to
evaluate, e.g. on a bare BSD68 folder); :func:`detect_layout` names the layout a folder holds.
Layout-specific options (e.g. ``holdout`` for DRIVE, ``test_slices`` and ``foreground`` for
ISBI-2012, ``size``, ``test_fraction`` and ``unknown`` for CamSeq01) are keyword arguments.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from toolchain.data import folder as plain
from toolchain.data.embedded import ImageSet
from toolchain.data.readers import camseq01, denoising, drive, isbi2012
from toolchain.data.readers.common import Layout
from toolchain.data.readers.patches import extract_patches, random_fov_patches, reassemble, tiled_predictor
from toolchain.errors import ConfigError, DataError

TASKS = ("denoise", "segment")
AUTO = "auto"


def plain_detect(root: Path) -> bool:
    return (root / "train" / "images").is_dir() and (root / "test" / "images").is_dir()


def plain_load(root: Path, task: str, channels: int, require_train: bool = True,
               masks: plain.MaskKind = "auto") -> tuple[ImageSet | None, ImageSet]:
    if masks not in plain.MASK_KINDS:
        raise ConfigError(f"`masks` must be one of {', '.join(plain.MASK_KINDS)}, got {masks!r}")
    if not require_train and not (root / "train" / "images").is_dir():
        return None, plain.load_split(root, "test", task, channels, masks)
    train = plain.load_split(root, "train", task, channels, masks)   # training data first: its errors come first
    return train, plain.load_split(root, "test", task, channels, masks)


LAYOUTS: dict[str, Layout] = {
    "folder": Layout("folder", TASKS, "folder: expected DIR/train/images/*, DIR/test/images/* "
                     "(and DIR/*/masks/* with the same file stems for segmentation)", plain_load, plain_detect,
                     ("masks",)),
    "drive": drive.LAYOUT,
    "isbi2012": isbi2012.LAYOUT,
    "camseq01": camseq01.LAYOUT,
    **denoising.LAYOUTS,
}


def detect_layouts(root: str | Path) -> list[str]:
    """Every layout whose files ``root`` holds, in ``LAYOUTS`` order (a quick look, nothing is read)."""
    root = Path(root)
    return [name for name, layout in LAYOUTS.items() if root.is_dir() and layout.detect(root)]


def detect_layout(root: str | Path) -> str | None:
    """The one layout ``root`` holds, or None when it holds none or several (e.g. a testsets/ folder
    with BSD68, CBSD68 and Set12: name one with ``layout``)."""
    found = detect_layouts(root)
    return found[0] if len(found) == 1 else None


def resolve(root: str | Path, layout: str | None, task: str, channels: int,
            options: dict[str, Any]) -> tuple[Path, Layout]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    if layout is None or layout == AUTO:
        found = detect_layouts(root)
        if len(found) != 1:
            what = f"several layouts ({', '.join(found)})" if found else "no known dataset layout"
            raise DataError(f"{root}: holds {what}; name the layout, one of {', '.join(LAYOUTS)}")
        layout = found[0]
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown dataset layout {layout!r}; known: {', '.join(LAYOUTS)}, {AUTO}")
    spec = LAYOUTS[layout]
    if task not in spec.tasks:
        raise ConfigError(f"the {layout} layout is a {' / '.join(spec.tasks)} dataset, not for task {task!r}")
    if channels not in (1, 3):
        raise ConfigError(f"images are read as 1 (gray) or 3 (colour) channels, not {channels}")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ConfigError(f"the {layout} layout has no option {', '.join(unknown)}; its options: "
                          f"{', '.join(spec.options) or 'none'}")
    return root, spec


def load_dataset(root: str | Path, layout: str | None, task: str, channels: int,
                 **options: Any) -> tuple[ImageSet, ImageSet]:
    """(train, test) ImageSets of the dataset in ``root`` (``layout`` None or "auto": detected)."""
    root, spec = resolve(root, layout, task, channels, options)
    train, test = spec.load(root, task, channels, require_train=True, **options)
    assert train is not None
    return train, test


def load_test_set(root: str | Path, layout: str | None, task: str, channels: int, **options: Any) -> ImageSet:
    """The test ImageSet alone: a folder without training images is fine (evaluation)."""
    root, spec = resolve(root, layout, task, channels, options)
    return spec.load(root, task, channels, require_train=False, **options)[1]


__all__ = ["LAYOUTS", "Layout", "detect_layout", "detect_layouts", "load_dataset", "load_test_set",
           "extract_patches", "reassemble", "random_fov_patches", "tiled_predictor"]
