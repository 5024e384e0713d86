"""The shipped denoiser: the file is the one its record describes, it reproduces its recorded metrics on
the held-out photos, and it meets the goals beside the classical denoisers measured here and now."""
from __future__ import annotations

import pytest

from toolchain.data.embedded import denoise_split
from toolchain.frontend.checkpoint import file_sha256, load_checkpoint
from toolchain.tasks.baselines import classical_denoiser
from toolchain.tasks.sampling import evaluate_denoise
from toolchain.verbs.pretrained import CROP, DENOISER, SIGMAS, measure


@pytest.fixture(scope="module")
def recorded():
    return DENOISER.recorded()


@pytest.fixture(scope="module")
def measured():
    return measure(DENOISER.path)


def test_the_file_is_the_recorded_one(recorded):
    assert file_sha256(DENOISER.path) == recorded["sha256"]
    ckpt = load_checkpoint(DENOISER.path, expect_kind="ann")
    assert ckpt.training_state is None                           # shipped without optimizer state
    assert ckpt.meta["train"]["config"] == DENOISER.config.to_dict() == recorded["train"]["config"]
    assert DENOISER.settings("unused.pt").config == DENOISER.config      # what train() builds
    assert recorded["command"] == DENOISER.command(f"toolchain/data/pretrained/{DENOISER.name}.pt")
    assert recorded["train"]["batches"] == DENOISER.schedule.epochs * DENOISER.schedule.batches_per_epoch
    assert len(recorded["commit"]) == 40 and DENOISER.path.stat().st_size < 1_000_000
    assert recorded["test_images"] == list(denoise_split(1)[1].names) and recorded["crop"] == CROP


def test_reproduces_its_recorded_metrics(recorded, measured):
    for sigma in SIGMAS:
        key = f"{sigma:g}"
        assert measured[key]["psnr"] == pytest.approx(recorded["metrics"][key]["psnr"], abs=0.005)
        assert measured[key]["ssim"] == pytest.approx(recorded["metrics"][key]["ssim"], abs=5e-5)


def test_beats_nl_means_at_every_sigma_and_is_near_bm3d(measured):
    """Issue 15's goal, on photos outside the training set: above NL-means at sigma 15 / 25 / 50, within
    1 dB of BM3D at 25 (both told the noise level, the same noise)."""
    test = denoise_split(1)[1]
    for sigma in SIGMAS:
        nl_means = evaluate_denoise(classical_denoiser("nl-means"), test, sigma, 0, CROP)["psnr"]
        assert measured[f"{sigma:g}"]["psnr"] > nl_means, sigma
    bm3d = evaluate_denoise(classical_denoiser("bm3d"), test, 25.0, 0, CROP)["psnr"]
    assert measured["25"]["psnr"] > bm3d - 1.0
