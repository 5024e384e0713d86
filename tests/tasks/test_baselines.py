"""The classical baselines: each restores a held-out photo better than its noisy input, and the Otsu
segmenter finds a bright (or dark) object exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from toolchain.data.embedded import ImageSet, denoise_split
from toolchain.errors import ConfigError
from toolchain.tasks.baselines import BASELINES, TV_WEIGHTS, classical_denoiser, otsu_segmenter, tv_weight
from toolchain.tasks.sampling import evaluate_denoise, evaluate_segment


@pytest.fixture(scope="module")
def camera() -> ImageSet:
    test = denoise_split(1)[1]
    return ImageSet(test.names[:1], test.images[:1])


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_beats_the_noisy_input(name, camera):
    row = evaluate_denoise(classical_denoiser(name), camera, 25.0, 0, 96)
    (image,) = row["images"]
    assert image["psnr"] > image["noisy_psnr"] + 2.0, (name, image)


def test_baseline_returns_the_noise_it_removed(camera):
    noisy = torch.from_numpy(camera.images[0][:, :32, :32])[None] + 0.1
    predicted = classical_denoiser("wavelet")(noisy, 25.0)
    assert predicted.shape == noisy.shape and predicted.dtype == noisy.dtype
    assert float((noisy - predicted).mean()) == pytest.approx(float(noisy.mean()), abs=0.02)   # restored keeps the mean


def test_tv_weight_is_the_tuned_one_at_the_tuned_levels():
    for sigma, weight in TV_WEIGHTS:
        assert tv_weight(sigma) == weight
    assert TV_WEIGHTS[0][1] < tv_weight(20.0) < TV_WEIGHTS[1][1] and tv_weight(80.0) == TV_WEIGHTS[-1][1]


def test_unknown_baseline():
    with pytest.raises(ConfigError, match="unknown baseline 'median'"):
        classical_denoiser("median")  # type: ignore[arg-type]


@pytest.mark.parametrize("bright_object", [True, False])
def test_otsu_finds_the_object(bright_object):
    rng = np.random.default_rng(0)
    mask = np.zeros((40, 40), np.int64)
    mask[10:25, 5:30] = 1
    level = np.where(mask == 1, 0.8, 0.2) if bright_object else np.where(mask == 1, 0.2, 0.8)
    image = (level + rng.normal(0, 0.03, mask.shape)).astype(np.float32)[None]
    images = ImageSet(("synthetic",), (image,), (mask,))
    predict, threshold = otsu_segmenter(images)
    assert 0.2 < threshold < 0.8                    # anywhere in the gap between the two levels
    scores = evaluate_segment(predict, images, 2)
    assert scores["f1"] > 0.99 and scores["accuracy"] > 0.99     # the wrong side would give f1 0


def test_otsu_needs_gray_masked_images():
    with pytest.raises(ConfigError, match="Otsu"):
        otsu_segmenter(ImageSet(("x",), (np.zeros((3, 8, 8), np.float32),), (np.zeros((8, 8), np.int64),)))
