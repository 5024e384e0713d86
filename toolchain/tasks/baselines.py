"""Classical denoisers a user compares a U-Net with, as :data:`~toolchain.tasks.sampling.Denoiser`\\ s.

Each is told the true noise level (as the non-blind U-Net is) and gets the noisy image unclipped, as
the networks do; :func:`~toolchain.tasks.sampling.evaluate_denoise` clips every output to [0, 1].

* ``nl-means``: scikit-image's ``denoise_nl_means`` with its gallery settings: 5 x 5 patches, 13 x 13
  search window (distance 6), h = 0.8 sigma, ``fast_mode``.
* ``wavelet``: ``denoise_wavelet``, BayesShrink soft thresholds on a db2 decomposition.
* ``tv``: ``denoise_tv_chambolle`` (Chambolle's total variation) with the weight that maximised mean
  PSNR on the embedded *training* photos at sigma 15 / 25 / 50 (:data:`TV_WEIGHTS`; linear in sigma
  between them, held constant outside).
* ``bm3d``: the ``bm3d`` package (Makinen, Azzari, Foi 2020), ``sigma_psd = sigma / 255``, its
  default profile; colour images channel by channel, as every other method here.

And for binary segmentation, :func:`otsu_segmenter`: one global Otsu threshold of the training images.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import numpy as np
import torch

from toolchain.data.embedded import ImageSet
from toolchain.errors import ConfigError
from toolchain.tasks.sampling import Denoiser, Predictor

Baseline = Literal["nl-means", "wavelet", "tv", "bm3d"]
BASELINES: tuple[Baseline, ...] = get_args(Baseline)

TV_WEIGHTS = ((15.0, 0.0502), (25.0, 0.0795), (50.0, 0.3623))
"""(sigma, weight) of ``denoise_tv_chambolle`` tuned on the training photos (not the test photos)."""

Restore = Callable[[np.ndarray, float], np.ndarray]
"""(one noisy H x W plane in [0, 1] units, sigma / 255) -> the restored plane."""


def _nl_means(plane: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means
    return np.asarray(denoise_nl_means(plane, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                       fast_mode=True))


def _wavelet(plane: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_wavelet
    return np.asarray(denoise_wavelet(plane, sigma=sigma, wavelet="db2", mode="soft", method="BayesShrink",
                                      rescale_sigma=True))


def tv_weight(sigma: float) -> float:
    """The TV weight for noise level ``sigma`` (0..255 scale), interpolated in :data:`TV_WEIGHTS`."""
    levels, weights = zip(*TV_WEIGHTS)
    return float(np.interp(sigma, levels, weights))


def _tv(plane: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle
    return np.asarray(denoise_tv_chambolle(plane, weight=tv_weight(sigma * 255.0)))


def _bm3d(plane: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d
    return np.asarray(bm3d.bm3d(plane, sigma_psd=sigma))


_RESTORE: dict[Baseline, Restore] = {"nl-means": _nl_means, "wavelet": _wavelet, "tv": _tv, "bm3d": _bm3d}


def classical_denoiser(name: Baseline) -> Denoiser:
    """``name``'s method as a Denoiser: (noisy NCHW, sigma) -> noisy - restored, plane by plane."""
    if name not in _RESTORE:
        raise ConfigError(f"unknown baseline {name!r}: one of {', '.join(BASELINES)}")
    restore = _RESTORE[name]

    def predict(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
        planes = noisy.detach().cpu().double().numpy()
        restored = np.empty_like(planes)
        for index in np.ndindex(*planes.shape[:2]):
            restored[index] = restore(planes[index], sigma / 255.0)
        return noisy - torch.from_numpy(restored).to(noisy.dtype)

    return predict


def otsu_segmenter(train: ImageSet) -> tuple[Predictor, float]:
    """Foreground = pixels above (or below) Otsu's threshold of all training pixels pooled, the side
    that agrees with the training masks more often; returns the segmenter (two-class logits, as the
    networks give) and the threshold. Needs a gray, binary-mask training set."""
    from skimage.filters import threshold_otsu

    if train.masks is None or any(image.shape[0] != 1 for image in train.images):
        raise ConfigError("the Otsu baseline needs gray training images with binary masks")
    pixels = np.concatenate([image.ravel() for image in train.images])
    labels = np.concatenate([mask.ravel() for mask in train.masks])
    threshold = float(threshold_otsu(pixels))
    sign = 1.0 if np.mean((pixels > threshold) == (labels > 0)) >= 0.5 else -1.0

    def predict(x: torch.Tensor) -> torch.Tensor:
        margin = sign * (x[:, :1] - threshold)
        return torch.cat([-margin, margin], dim=1)

    return predict, threshold
