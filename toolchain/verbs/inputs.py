"""What the deployment verbs feed a network and what they make of its output: image files, noise,
padding, and the decoded picture."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..data.folder import IMAGE_SUFFIXES, image_files, read_image
from ..data.patches import add_gaussian_noise
from ..errors import DataError, DataWarning
from ..files import atomic_path
from ..ir import QuantizedNetwork
from ..simulators.result import SimulationResult
from ..tasks.sampling import denoiser_input


def input_images(path: str | os.PathLike[str], channels: int) -> list[tuple[str, np.ndarray]]:
    """One image file, or every image in a folder, as (stem, CHW float image)."""
    path = Path(path)
    if path.is_dir():
        return [(f.stem, read_image(f, channels)) for f in image_files(path)]
    if not path.exists():
        raise DataError(f"{path}: no such image file or folder")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{path}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
    return [(path.stem, read_image(path, channels))]


def image_channels(network: QuantizedNetwork) -> int:
    """The image channels a network takes (its input, less the noise-level channel of a told denoiser)."""
    return network.input.shape[0] - int(bool(network.meta.noise_map))


def noise_level(image: np.ndarray, added: float | None, given: float | None, stem: str) -> float:
    """The noise level (0..255 scale) a told denoiser is given for ``image``: the noise added to it,
    the level the user gave, or scikit-image's wavelet estimate (with a warning)."""
    if added is not None:
        return float(added)
    if given is not None:
        return float(given)
    from skimage.restoration import estimate_sigma
    channel_axis = 0 if image.shape[0] > 1 else None
    estimate = float(np.mean(estimate_sigma(image if channel_axis is not None else image[0],
                                            channel_axis=channel_axis))) * 255.0
    warnings.warn(f"{stem}: no noise level given: estimated sigma {estimate:.1f} (on the 0..255 scale) from the "
                  f"image; give it with `noise_level`", DataWarning, stacklevel=2)
    return estimate


def network_frame(network: QuantizedNetwork, noisy: np.ndarray, sigma: float | None) -> np.ndarray:
    """What the network takes for a (noisy) CHW image: the image, or [image, sigma / 255] for a told denoiser."""
    if not network.meta.noise_map:
        return noisy
    assert sigma is not None
    return denoiser_input(torch.from_numpy(noisy)[None], sigma, True)[0].numpy()


def with_noise(image: np.ndarray, sigma: float | None, seed: int) -> np.ndarray:
    """The image with seeded Gaussian noise of ``sigma`` (0..255 scale) added, unclipped (or as it is)."""
    if sigma is None:
        return image
    return add_gaussian_noise(torch.from_numpy(image)[None], sigma, torch.Generator().manual_seed(seed))[0][0].numpy()


def padded(image: np.ndarray, multiple: int) -> np.ndarray:
    """Replicate-pad a CHW image at the bottom/right to sides that are multiples of ``multiple``."""
    h, w = image.shape[-2:]
    return np.pad(image, ((0, 0), (0, (-h) % multiple), (0, (-w) % multiple)), mode="edge")


def save_png(target: Path, image: np.ndarray) -> None:
    import imageio.v3 as iio
    with atomic_path(target) as tmp:
        iio.imwrite(tmp, image, extension=".png")


def decode(network: QuantizedNetwork, result: SimulationResult, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(decoded output cropped to the image, PNG-ready picture): the restored image or the label map."""
    h, w = noisy.shape[-2:]
    output = result.output[0, :, :h, :w]
    if network.meta.task == "segment":
        labels = output.argmax(axis=0)
        scale = 255 // max(1, output.shape[0] - 1)
        return output, (labels * scale).astype(np.uint8)
    restored = np.clip(noisy - output, 0.0, 1.0)
    picture = np.round(restored * 255).astype(np.uint8)
    return output, picture[0] if picture.shape[0] == 1 else picture.transpose(1, 2, 0)
