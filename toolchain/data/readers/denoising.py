"""BSD68, CBSD68 and Set12 (denoising test sets), with a training folder beside them.

The three sets are plain image folders as published with DnCNN / FFDNet / KAIR (``testsets/``)::

    BSD68/test001.png .. test068.png   68 gray 481 x 321 images       (layout ``bsd68``)
    CBSD68/101085.png ..               68 colour images, the same scenes (layout ``cbsd68``)
    Set12/01.png .. 12.png             12 gray images                  (layout ``set12``)

``root`` may be that folder itself (test images only: evaluation), or a parent holding it as
``<Name>/``, ``testsets/<Name>/`` or ``test/`` (names matched case-insensitively), together with
clean training images (the paper trains on BSD200; BSD400 / Train400 are the usual alternatives)
in the first of::

    train/  BSD200/  BSD400/  Train400/  trainsets/{BSD200,BSD400,Train400}/  BSDS300/images/train/

Training and test images are read as they are (any size, png/jpg/tif/bmp) and converted to
``channels``; BSD68 and Set12 are gray, so they need ``channels`` 1. Noise is added at evaluation
time (``tasks.evaluate_denoise``): these readers load clean images only.
"""
from __future__ import annotations

import re
from pathlib import Path

from toolchain.data.embedded import ImageSet
from toolchain.data.folder import read_image
from toolchain.data.readers.common import Layout, child, fail, image_files
from toolchain.errors import ConfigError
from toolchain.memory import DataBudget

TRAIN_FOLDERS = ("train", "BSD200", "BSD400", "Train400", "trainsets/BSD200", "trainsets/BSD400",
                 "trainsets/Train400", "BSDS300/images/train")
SETS = {  # layout: (folder name, gray only, file-stem pattern used by detect_layout on unnamed folders)
    "bsd68": ("BSD68", True, re.compile(r"test\d{3}")),
    "cbsd68": ("CBSD68", False, re.compile(r"\d{5,6}")),
    "set12": ("Set12", True, re.compile(r"\d{2}")),
}


def expected(layout: str) -> str:
    name = SETS[layout][0]
    return (f"{name}: expected the test images in DIR/{name}/, DIR/testsets/{name}/, DIR/test/ or DIR "
            f"itself, and for training clean images in one of DIR/{{{', '.join(TRAIN_FOLDERS)}}}/")


def lookup(root: Path, relative: str) -> Path | None:
    folder: Path | None = root
    for part in relative.split("/"):
        folder = child(folder, part) if folder is not None else None
    return folder if folder is not None and folder.is_dir() else None


def test_folder(root: Path, layout: str) -> Path | None:
    name = SETS[layout][0]
    for relative in (name, f"testsets/{name}", "test"):
        folder = lookup(root, relative)
        if folder is not None and image_files(folder):
            return folder
    return root if image_files(root) else None


def train_folder(root: Path, test: Path) -> Path | None:
    if test == root:
        return None
    for relative in TRAIN_FOLDERS:
        folder = lookup(root, relative)
        if folder is not None:
            return folder
    return None


def matches(folder: Path, layout: str) -> bool:
    """A folder of this set: named after it, or all image stems in the set's naming pattern."""
    name, _, pattern = SETS[layout]
    files = image_files(folder)
    if not files:
        return False
    if folder.name.lower() == name.lower():
        return True
    return all(pattern.fullmatch(f.stem) for f in files)


def detect_set(layout: str):
    name = SETS[layout][0]

    def detect(root: Path) -> bool:
        for relative in (name, f"testsets/{name}"):
            folder = lookup(root, relative)
            if folder is not None and image_files(folder):
                return True
        test = lookup(root, "test")
        return matches(test, layout) if test is not None else matches(root, layout)
    return detect


def read_all(folder: Path, channels: int, layout: str, budget: DataBudget | None = None) -> ImageSet:
    files = image_files(folder)
    if not files:
        raise fail(expected(layout), f"{folder}: no image files")
    return ImageSet(tuple(f.stem for f in files), tuple(read_image(f, channels, budget) for f in files))


def loader(layout: str):
    name, gray_only, _ = SETS[layout]

    def load(root: Path, task: str, channels: int, require_train: bool = True,
             budget: DataBudget | None = None) -> tuple[ImageSet | None, ImageSet]:
        if gray_only and channels != 1:
            raise ConfigError(f"{name} is a gray test set: use 1 channel"
                              + (" (CBSD68 is the colour version of BSD68)" if layout == "bsd68" else ""))
        test = test_folder(root, layout)
        if test is None:
            raise fail(expected(layout), f"{root}: no test images (looked in {name}/, testsets/{name}/, "
                                         "test/ and the folder itself)")
        train = train_folder(root, test)
        if train is None and require_train:
            raise fail(expected(layout), f"{root}: no training folder beside the test images {test} "
                                         "(evaluation alone needs only the test images)")
        test_set = read_all(test, channels, layout, budget)
        return (read_all(train, channels, layout, budget) if train is not None else None), test_set
    return load


LAYOUTS = {layout: Layout(layout, ("denoise",), expected(layout), loader(layout), detect_set(layout))
           for layout in SETS}
