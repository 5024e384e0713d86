"""What every dataset reader shares: the :class:`Layout` record, file reading and channel handling.

Every problem with the files raises :class:`~toolchain.errors.DataError` with one line that names
the file or folder and says which layout was expected; a bad argument (an option out of range, a
task the layout does not serve) raises :class:`~toolchain.errors.ConfigError`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolchain.data.decode import decode, decode_stack
from toolchain.data.embedded import ImageSet
from toolchain.data.folder import IMAGE_SUFFIXES
from toolchain.errors import ConfigError, DataError, MemoryLimitError
from toolchain.memory import DataBudget

# (root, task, channels, require_train, **options) -> (train or None, test)
Loader = Callable[..., "tuple[ImageSet | None, ImageSet]"]


@dataclass(frozen=True)
class Layout:
    """A dataset layout: how to recognise it in a folder and how to read it.

    ``load(root, task, channels, require_train=True, **options)`` returns ``(train, test)``; with
    ``require_train=False`` a layout whose folder has no training part returns ``(None, test)``.
    ``options`` names the keyword options ``load`` accepts (documented in its module).
    """

    name: str
    tasks: tuple[str, ...]
    expected: str
    load: Loader
    detect: Callable[[Path], bool]
    options: tuple[str, ...] = ()


def fail(expected: str, problem: str) -> DataError:
    """A DataError whose one line says what went wrong and which layout was expected."""
    return DataError(f"{problem} ({expected})")


def require_dir(path: Path, expected: str) -> Path:
    if not path.is_dir():
        raise fail(expected, f"{path}: missing folder")
    return path


def require_file(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise fail(expected, f"{path}: missing file")
    return path


def read_array(path: Path, expected: str, budget: DataBudget | None = None, stack: bool = False) -> np.ndarray:
    """The raw pixels of one file (:func:`toolchain.data.decode.decode`: one image, its size, frames and
    damage checked from the header; ``stack``: a multi-page TIFF, its declared size checked first)."""
    require_file(path, expected)
    try:
        array = decode_stack(path, budget) if stack else decode(path, budget)[0]
    except MemoryLimitError:
        raise
    except DataError as exc:
        raise fail(expected, str(exc)) from exc
    if array.size == 0:
        raise fail(expected, f"{path}: empty image")
    return array


def to_unit(array: np.ndarray, path: Path, expected: str) -> np.ndarray:
    """Pixels as float32 in [0, 1]: integers by their type's maximum, floats as they are (or /255)."""
    if array.dtype == bool:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        return (array.astype(np.float64) / float(np.iinfo(array.dtype).max)).astype(np.float32)
    if not np.issubdtype(array.dtype, np.floating):
        raise fail(expected, f"{path}: unsupported pixel type {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
        raise fail(expected, f"{path}: float pixels outside [0, 1] and [0, 255]")
    return array / 255.0 if array.max() > 1.0 else array


def as_rgb(array: np.ndarray, path: Path, expected: str) -> np.ndarray:
    """An HxWx3 array (alpha dropped), or an error naming the file."""
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if array.ndim != 3 or array.shape[-1] != 3:
        raise fail(expected, f"{path}: shape {array.shape} is not an RGB image (expected HxWx3)")
    return array


def as_gray(array: np.ndarray, path: Path, expected: str) -> np.ndarray:
    """An HxW array; a colour file with equal channels (palette GIF, RGB-saved gray) is accepted."""
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3]
        if not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])):
            raise fail(expected, f"{path}: a colour image where a gray one is expected")
        array = array[..., 0]
    if array.ndim != 2:
        raise fail(expected, f"{path}: shape {array.shape} is not a gray image (expected HxW)")
    return array


def binary(array: np.ndarray) -> np.ndarray:
    """A 0/255 (or 0/1) mask file as bool HW: any non-black pixel is True."""
    if array.ndim == 3:
        array = array[..., :3].max(axis=-1)
    return array > 0


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """HW or HWC float in [0, 1] -> float32 CHW with ``channels`` (1 gray, 3 colour), as folder.read_image."""
    from skimage.color import gray2rgb, rgb2gray
    if channels == 1 and image.ndim == 3:
        image = rgb2gray(image)
    elif channels == 3 and image.ndim == 2:
        image = gray2rgb(image)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    return image[None] if image.ndim == 2 else np.ascontiguousarray(image.transpose(2, 0, 1))


def image_files(folder: Path) -> list[Path]:
    """The image files directly inside ``folder`` (sorted; empty if the folder does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def child(folder: Path, name: str) -> Path | None:
    """``folder/name`` matched case-insensitively (exact spelling first), or None."""
    exact = folder / name
    if exact.exists():
        return exact
    if folder.is_dir():
        for entry in sorted(folder.iterdir()):
            if entry.name.lower() == name.lower():
                return entry
    return None


def positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ConfigError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)
