"""CamSeq01 (driving video, 32 classes), in its published flat layout.

Layout (``root`` is the CamSeq01 folder, or its parent holding ``CamSeq01/``)::

    0016E5_07959.png     a frame (960 x 720 RGB)
    0016E5_07959_L.png   its label image, colour-coded (one RGB colour per class)
    ...                  (101 frame / label pairs)
    label_colors.txt     one class a line: ``R G B Name`` (e.g. ``64 128 64	Animal``), 32 lines

Class k is the k-th line of ``label_colors.txt`` (0-based; CamVid's file starts with Animal and
lists Void last). A label colour that is not in the file is an error naming the file and the
colour; ``unknown="void"`` maps such pixels to the class named Void instead (the file must define
one).

Frames and label maps are resized to ``size`` x ``size`` (default 256, as the paper; ``None``
keeps 960 x 720): frames bilinearly with anti-aliasing, label maps by nearest neighbour.

Split: the frames are one video sequence, sorted by name (= time); the last ``test_fraction``
(default 0.2: 20 of 101) test, the earlier ones train. A contiguous split is used because an
interleaved one (every 5th frame) would test on near-duplicates of training frames.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from toolchain.data.embedded import ImageSet
from toolchain.data.readers.common import (
    Layout,
    as_rgb,
    fail,
    fraction,
    positive_int,
    read_array,
    require_file,
    to_channels,
    to_unit,
)
from toolchain.errors import ConfigError
from toolchain.memory import DataBudget

EXPECTED = ("CamSeq01: expected a folder of frames *.png with colour-coded label images *_L.png "
            "(same stem + _L) and label_colors.txt (lines 'R G B Name')")
COLORS = "label_colors.txt"
LABEL_SUFFIX = "_L"
SIZE = 256
TEST_FRACTION = 0.2
UNKNOWN = ("error", "void")


def base_folder(root: Path) -> Path:
    for base in (root, root / "CamSeq01"):
        if (base / COLORS).is_file():
            return base
    return root


def detect(root: Path) -> bool:
    base = base_folder(root)
    return (base / COLORS).is_file() and any(base.glob(f"*{LABEL_SUFFIX}.png"))


def read_label_colors(path: Path) -> tuple[list[str], np.ndarray]:
    """Class names and their colours (K x 3 int) from a ``label_colors.txt``."""
    require_file(path, EXPECTED)
    try:
        lines = path.read_text(encoding="utf-8", errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(EXPECTED, f"{path}: not a readable text file ({type(exc).__name__})") from exc
    names: list[str] = []
    colors: list[list[int]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split(None, 3)
        try:
            rgb = [int(v) for v in parts[:3]]
        except ValueError:
            rgb = []
        if len(parts) < 4 or len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise fail(EXPECTED, f"{path}: line {number} {line.strip()!r} is not 'R G B Name' (0..255)")
        if rgb in colors:
            raise fail(EXPECTED, f"{path}: line {number}: colour {tuple(rgb)} is already class "
                                 f"{names[colors.index(rgb)]!r}")
        names.append(parts[3].strip())
        colors.append(rgb)
    if len(names) < 2:
        raise fail(EXPECTED, f"{path}: {len(names)} classes (at least 2 needed)")
    return names, np.asarray(colors, dtype=np.int64)


def class_names(root: str | Path) -> list[str]:
    """The class names, in class-index order (what ``--classes`` must count: 32 for CamSeq01)."""
    return read_label_colors(base_folder(Path(root)) / COLORS)[0]


def colour_key(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def label_indices(label: np.ndarray, colors: np.ndarray, void: int | None, path: Path) -> np.ndarray:
    """An HxWx3 colour-coded label image -> HxW class indices (unknown colours: ``void`` or an error)."""
    keys = colour_key(colors)
    order = np.argsort(keys)
    sorted_keys = keys[order]
    pixels = colour_key(label)
    at = np.clip(np.searchsorted(sorted_keys, pixels), 0, len(keys) - 1)
    known = sorted_keys[at] == pixels
    classes = order[at].astype(np.int64)
    if not known.all():
        if void is None:
            bad = label[~known][0]
            raise fail(EXPECTED, f"{path}: colour {tuple(int(v) for v in bad)} ({int((~known).sum())} pixels) "
                                 f"is not in {COLORS}")
        classes[~known] = void
    return classes


def resize_pair(image: np.ndarray, classes: np.ndarray, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    if size is None or image.shape[:2] == (size, size):
        return image, classes
    from skimage.transform import resize
    image = resize(image, (size, size), order=1, anti_aliasing=True, preserve_range=True)
    classes = resize(classes, (size, size), order=0, anti_aliasing=False, preserve_range=True)
    return image, np.rint(classes).astype(np.int64)


def load(root: Path, task: str, channels: int, require_train: bool = True, size: int | None = SIZE,
         test_fraction: float = TEST_FRACTION, unknown: str = "error",
         budget: DataBudget | None = None) -> tuple[ImageSet, ImageSet]:
    """CamSeq01 train / test ImageSets (masks: class indices by label_colors.txt); see the module doc."""
    if unknown not in UNKNOWN:
        raise ConfigError(f"CamSeq01 unknown must be one of {', '.join(UNKNOWN)}, got {unknown!r}")
    if size is not None:
        size = positive_int("CamSeq01 size", size, 8)
    test_fraction = fraction("CamSeq01 test_fraction", test_fraction)
    base = base_folder(root)
    names, colors = read_label_colors(base / COLORS)
    void = None
    if unknown == "void":
        voids = [k for k, name in enumerate(names) if name.lower() == "void"]
        if not voids:
            raise fail(EXPECTED, f"{base / COLORS}: unknown='void' but no class is named Void")
        void = voids[0]
    labels = sorted(base.glob(f"*{LABEL_SUFFIX}.png"))
    frames = sorted(p for p in base.glob("*.png") if not p.stem.endswith(LABEL_SUFFIX))
    if not frames:
        raise fail(EXPECTED, f"{base}: no frames *.png")
    label_of = {p.stem[: -len(LABEL_SUFFIX)]: p for p in labels}
    for frame in frames:
        if frame.stem not in label_of:
            raise fail(EXPECTED, f"{base / (frame.stem + LABEL_SUFFIX + '.png')}: missing label image "
                                 f"for frame {frame.name}")
    orphans = sorted(set(label_of) - {f.stem for f in frames})
    if orphans:
        raise fail(EXPECTED, f"{label_of[orphans[0]]}: label image without a frame "
                             f"{orphans[0]}.png ({len(labels)} labels for {len(frames)} frames)")
    n_test = max(1, int(round(len(frames) * test_fraction)))
    if n_test >= len(frames):
        raise fail(EXPECTED, f"{base}: {len(frames)} frames are too few to split with "
                             f"test_fraction {test_fraction}")
    images, masks = [], []
    for frame in frames:
        rgb = to_unit(as_rgb(read_array(frame, EXPECTED, budget), frame, EXPECTED), frame, EXPECTED)
        label_path = label_of[frame.stem]
        label = as_rgb(read_array(label_path, EXPECTED, budget), label_path, EXPECTED)
        if label.shape[:2] != rgb.shape[:2]:
            raise fail(EXPECTED, f"{label_path}: size {label.shape[:2]} differs from frame "
                                 f"{frame.name} size {rgb.shape[:2]}")
        if label.dtype != np.uint8:
            raise fail(EXPECTED, f"{label_path}: label pixels are {label.dtype}, expected 8-bit RGB")
        rgb, classes = resize_pair(rgb, label_indices(label, colors, void, label_path), size)
        images.append(to_channels(rgb, channels))
        masks.append(classes)
    cut = len(frames) - n_test
    stems = tuple(f.stem for f in frames)
    return (ImageSet(stems[:cut], tuple(images[:cut]), tuple(masks[:cut])),
            ImageSet(stems[cut:], tuple(images[cut:]), tuple(masks[cut:])))


LAYOUT = Layout("camseq01", ("segment",), EXPECTED, load, detect, ("size", "test_fraction", "unknown"))
