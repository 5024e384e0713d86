"""Inputs and schedule of a stock lava-dl netx network, given the way lava-dl's examples give them.

A stock network's input layer is a population of CUBA neurons driven by a per-neuron bias mantissa: the
frame. It can be given as

* an image file: read as gray or color to the input's channels, resized (bilinear) to the input's H x W,
  and turned into bias mantissas by the input layer's stored transform exactly as lava-dl's
  ``PilotNetDataset`` does: ``bias = int32(2 w x - w + b)`` for pixel values x in [0, 1], with the file's
  input ``weight`` w and ``bias`` b (netx's defaults 64 and 0);
* a ``.npy`` frame: an array of integer values (of any dtype) is the input layer's bias mantissas
  themselves (the frame written as the input layer's bias, like ``gts/pilotnet_lif/image.npy`` or
  ``gts/tinynet/input_bias.npy``); an array with fractional values is a frame in [0, 1], given the
  transform above. Its layout is netx's (x, y, z) = (W, H, C), as lava-dl ships frames, or (C, H, W)
  (when both fit, netx's);
* ``zero``: input bias 0 (how lava-dl's PilotNet benchmark actually ran on Loihi 2: it assigned the frame to
  a ``bias`` attribute that Lava's LIF does not have);
* a folder of such files.

Schedule (netx's ``reset_interval`` R / ``reset_offset``): one inference is R steps (without R: the file's
``tSample``, else the whole run); a run with R lasts 2 R steps by default (the second inference is the
steady one), and its last inference is what the outputs and the hardware report count.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.folder import IMAGE_SUFFIXES, read_image
from ..errors import ConfigError, DataError
from ..ir import StockNetwork
from .inputs import with_noise

ZERO = "zero"
BIAS_LIMIT = 1 << 12            # Lava LIF bias_mant: 13-bit signed
NETX_DEFAULT_WEIGHT, NETX_DEFAULT_BIAS = 64, 0


@dataclass(frozen=True)
class Frame:
    """One input of a stock network: its name and the input layer's bias mantissas (C, H, W)."""

    stem: str
    bias: np.ndarray


@dataclass(frozen=True)
class StockSchedule:
    """Steps of a run and the window [start, steps) of the inference it counts."""

    steps: int
    steps_per_inference: int
    reset_interval: int | None
    reset_offset: int

    @property
    def window(self) -> tuple[int, int]:
        return self.steps - self.steps_per_inference, self.steps


def schedule(network: StockNetwork, steps: int | None, reset_interval: int | None,
             reset_offset: int = 0) -> StockSchedule:
    """The run length and counted inference (module docstring)."""
    per = reset_interval or network.meta.t_sample or steps
    if per is None:
        raise ConfigError(f"{network.meta.path}: the file gives no tSample; say how many `steps` to run "
                          "(or the `reset_interval` of one inference)")
    total = steps if steps is not None else (2 * per if reset_interval else per)
    if total < per:
        raise ConfigError(f"`steps` {total} is shorter than one inference ({per} steps)")
    return StockSchedule(total, per, reset_interval, reset_offset)


def transform(network: StockNetwork, frame: np.ndarray) -> np.ndarray:
    """lava-dl's input transform: int32(2 w x - w + b) of a frame x in [0, 1] (C, H, W)."""
    src = network.input.source
    w = NETX_DEFAULT_WEIGHT if src.input_weight is None else src.input_weight
    b = NETX_DEFAULT_BIAS if src.input_bias is None else src.input_bias
    return (2 * w * np.asarray(frame, np.float64) - w + b).astype(np.int32).astype(np.int64)


def _layout(array: np.ndarray, shape: tuple[int, int, int], where: str) -> np.ndarray:
    c, h, w = shape
    if array.ndim == 1 and array.size == c * h * w:
        return array.reshape(shape)
    if array.ndim == 2 and c == 1 and array.shape == (w, h):
        return array.T[None]
    if array.ndim == 3 and array.shape == (w, h, c):
        return array.transpose(2, 1, 0)
    if array.ndim == 3 and array.shape == (c, h, w):
        return array
    raise DataError(f"{where}: a frame of shape {array.shape} does not fit the input layer ({c}, {h}, {w}) "
                    f"(give netx's (x, y, z) = ({w}, {h}, {c}) or ({c}, {h}, {w}))")


def _resize(image: np.ndarray, h: int, w: int) -> np.ndarray:
    if image.shape[1:] == (h, w):
        return image
    from PIL import Image
    planes = [np.asarray(Image.fromarray(p.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR))
              for p in image]
    return np.clip(np.stack(planes).astype(np.float64), 0.0, 1.0)


def _checked(bias: np.ndarray, where: str) -> np.ndarray:
    if bias.size and (bias.min() < -BIAS_LIMIT or bias.max() >= BIAS_LIMIT):
        raise DataError(f"{where}: bias mantissas {bias.min()}..{bias.max()} are outside Lava's 13-bit range "
                        f"{-BIAS_LIMIT}..{BIAS_LIMIT - 1}")
    return bias.astype(np.int64)


def _noisy(frame: np.ndarray, sigma: float | None, seed: int) -> np.ndarray:
    """The frame with seeded noise, clipped to [0, 1] (lava-dl's frames are pixel values / 255)."""
    return np.clip(with_noise(frame, sigma, seed), 0.0, 1.0)


def _read_npy(path: Path, elements: int) -> np.ndarray:
    """A .npy frame whose header declares at most ``elements`` values, all of them stored in the file
    (np.load allocates what the header declares before it reads a byte of data)."""
    try:
        with open(path, "rb") as handle:
            major, _ = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(handle)
            stored = path.stat().st_size - handle.tell()
        count = int(np.prod(shape, dtype=object)) if shape else 1
        if dtype.hasobject or count > elements or count * dtype.itemsize > stored:
            raise DataError(f"{path}: the .npy header declares shape {tuple(shape)} of {dtype} ({count} values, "
                            f"{stored} bytes stored); a frame holds the input's {elements} values")
        return np.load(path, allow_pickle=False)
    except DataError:
        raise
    except (OSError, ValueError, TypeError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({' '.join(str(exc).split())[:80]})") from exc


def _frame(path: Path, network: StockNetwork, sigma: float | None, seed: int) -> Frame:
    c, h, w = network.input.shape
    where = str(path)
    if path.suffix.lower() == ".npy":
        array = _read_npy(path, c * h * w)
        array = _layout(np.asarray(array), (c, h, w), where)
        numeric = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
        if not numeric or not np.isfinite(array).all():
            raise DataError(f"{where}: a frame must hold integers (bias mantissas) or finite floats in [0, 1]")
        if (array == np.round(array)).all():
            if sigma is not None:
                raise ConfigError(f"{where}: noise (`add_noise`) applies to images and float frames, not to bias "
                                  "mantissas")
            return Frame(path.stem, _checked(array.astype(np.int64), where))
        if array.min() < 0 or array.max() > 1:
            raise DataError(f"{where}: a frame with fractional values must lie in [0, 1] (pixel values / 255); "
                            f"got {array.min():.3g}..{array.max():.3g}")
        return Frame(path.stem, _checked(transform(network, _noisy(array.astype(np.float64), sigma, seed)), where))
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{where}: not an image or .npy frame ({', '.join(IMAGE_SUFFIXES)}, .npy)")
    if c not in (1, 3):
        raise DataError(f"{where}: the input layer has {c} channels; give a .npy frame")
    image = _resize(read_image(path, c), h, w)
    return Frame(path.stem, _checked(transform(network, _noisy(image, sigma, seed)), where))


def stock_frames(source: str | os.PathLike[str], network: StockNetwork, sigma: float | None = None,
                 seed: int = 0) -> list[Frame]:
    """Every frame named by ``source`` (module docstring); frame k's noise comes from seed + k."""
    if str(source) == ZERO:
        if sigma is not None:
            raise ConfigError("noise (`add_noise`) needs an image or a float frame, not the zero input")
        return [Frame(ZERO, np.zeros(network.input.shape, np.int64))]
    path = Path(source)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in (*IMAGE_SUFFIXES, ".npy"))
        if not files:
            raise DataError(f"{path}: no images or .npy frames in this folder")
        return [_frame(f, network, sigma, seed + k) for k, f in enumerate(files)]
    if not path.exists():
        raise DataError(f"{path}: no such image, frame or folder (or give 'zero' for input bias 0)")
    return [_frame(path, network, sigma, seed)]
