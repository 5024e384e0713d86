"""Data: the folder reader on tiny PNGs, the embedded splits, patches and noise, and the metrics."""
from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from toolchain.tasks import metrics
from toolchain.data.embedded import ImageSet, denoise_split, nuclei, segment_split
from toolchain.data.folder import load_split, read_image, read_mask
from toolchain.data.patches import add_gaussian_noise, center_crop, random_patches
from toolchain.errors import DataError


def _gray(h=12, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w), dtype=np.uint8)


def _color(h=12, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, array)
    return path


def test_read_gray(tmp_path):
    g = _gray()
    path = _write(tmp_path / "g.png", g)
    image = read_image(path, 1)
    assert image.shape == (1, 12, 16) and image.dtype == np.float32
    assert np.allclose(image[0], g / 255.0)
    color = read_image(path, 3)                           # gray -> color repeats the plane
    assert color.shape == (3, 12, 16)
    assert all(np.array_equal(color[c], image[0]) for c in range(3))


def test_read_color_and_conversion(tmp_path):
    c = _color()
    c[0, 0] = (255, 0, 0)
    c[0, 1] = (0, 255, 0)
    path = _write(tmp_path / "c.png", c)
    image = read_image(path, 3)
    assert image.shape == (3, 12, 16) and image.flags["C_CONTIGUOUS"]
    assert np.allclose(image, c.transpose(2, 0, 1) / 255.0)
    gray = read_image(path, 1)
    assert gray.shape == (1, 12, 16)
    # luminance weights of skimage's rgb2gray: 0.2125 R + 0.7154 G + 0.0721 B
    assert gray[0, 0, 0] == pytest.approx(0.2125, abs=1e-4)
    assert gray[0, 0, 1] == pytest.approx(0.7154, abs=1e-4)
    with pytest.raises(DataError, match="channels"):
        read_image(path, 2)


def test_read_rgba_and_16_bit(tmp_path):
    rgba = np.concatenate([_color(), np.full((12, 16, 1), 7, np.uint8)], axis=-1)
    image = read_image(_write(tmp_path / "a.png", rgba), 3)
    assert image.shape == (3, 12, 16) and np.allclose(image, rgba[..., :3].transpose(2, 0, 1) / 255.0)
    deep = (np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 300)
    image = read_image(_write(tmp_path / "d.png", deep), 1)
    assert np.allclose(image[0], deep / 65535.0) and float(image.max()) <= 1.0


def _segment_folder(root, split="train", stems=("a", "b"), size=(12, 16)):
    for k, stem in enumerate(stems):
        _write(root / split / "images" / f"{stem}.png", _gray(*size, seed=k))
        mask = np.zeros(size, np.uint8)
        mask[: size[0] // 2] = 255
        _write(root / split / "masks" / f"{stem}.png", mask)
    return root


def test_load_split_segment_pairs_by_stem(tmp_path):
    root = _segment_folder(tmp_path, stems=("b", "a"))
    labels = np.zeros((12, 16), np.uint8)
    labels[:, :4] = 2
    labels[:, 4:8] = 1
    _write(root / "train" / "images" / "c.png", _color(seed=3))
    _write(root / "train" / "masks" / "c.bmp", labels)                  # another suffix, same stem
    (root / "train" / "images" / "notes.txt").write_text("ignored")
    images = load_split(root, "train", "segment", 1)
    assert images.names == ("a", "b", "c")                               # sorted
    assert all(im.shape == (1, 12, 16) for im in images.images)
    assert np.allclose(images.images[0][0], _gray(seed=1) / 255.0)     # 'a' was written second
    a_mask = images.masks[0]
    assert a_mask.dtype == np.int64 and set(np.unique(a_mask)) == {0, 1}
    assert a_mask[:6].min() == 1 and a_mask[6:].max() == 0
    assert np.array_equal(images.masks[2], labels.astype(np.int64))     # class labels kept as they are


def test_load_split_denoise_needs_no_masks(tmp_path):
    _write(tmp_path / "test" / "images" / "x.png", _color())
    images = load_split(tmp_path, "test", "denoise", 3)
    assert images.names == ("x",) and images.masks is None and images.images[0].shape == (3, 12, 16)


def test_missing_mask_names_the_image(tmp_path):
    root = _segment_folder(tmp_path)
    _write(root / "train" / "images" / "lonely.png", _gray())
    with pytest.raises(DataError, match="lonely.png"):
        load_split(root, "train", "segment", 1)


def test_mask_size_mismatch(tmp_path):
    root = _segment_folder(tmp_path)
    _write(root / "train" / "masks" / "a.png", np.zeros((10, 16), np.uint8))
    with pytest.raises(DataError, match="differs") as info:
        load_split(root, "train", "segment", 1)
    assert "a.png" in str(info.value)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "train" / "images").mkdir(parents=True)
    (tmp_path / "train" / "images" / "readme.md").write_text("no images here")
    with pytest.raises(DataError, match="no image files"):
        load_split(tmp_path, "train", "denoise", 1)
    with pytest.raises(DataError, match="folder not found"):
        load_split(tmp_path, "test", "denoise", 1)
    _write(tmp_path / "train" / "images" / "a.png", _gray())
    with pytest.raises(DataError, match="masks"):                     # segmentation without masks/
        load_split(tmp_path, "train", "segment", 1)


def test_unreadable_image_names_the_path(tmp_path):
    bad = tmp_path / "train" / "images" / "broken.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    with pytest.raises(DataError) as info:
        read_image(bad, 1)
    assert str(bad) in str(info.value)
    with pytest.raises(DataError, match="broken.png"):
        load_split(tmp_path, "train", "denoise", 1)
    with pytest.raises(DataError, match="no such image"):
        read_image(tmp_path / "nothing.png", 1)
    with pytest.raises(DataError) as info:
        read_mask(bad)
    assert str(bad) in str(info.value)


def test_too_small_image(tmp_path):
    small = _write(tmp_path / "tiny.png", _gray(4, 20))
    with pytest.raises(DataError, match="size 20x4") as info:
        read_image(small, 1)
    assert str(small) in str(info.value)
    assert read_image(_write(tmp_path / "ok.png", _gray(8, 8)), 1).shape == (1, 8, 8)   # MIN_SIDE is allowed


def test_embedded_denoise_split():
    train, test = denoise_split(1)
    assert len(train.images) == 19 and len(test.images) == 6
    assert test.names == ("camera", "clock", "chelsea", "ascent", "china", "grace_hopper")
    assert not set(train.names) & set(test.names)                 # split by image
    train_pixels = {image.tobytes() for image in train.images}
    assert not any(image.tobytes() in train_pixels for image in test.images)
    for image in train.images + test.images:
        assert image.ndim == 3 and image.shape[0] == 1 and image.dtype == np.float32
        assert image.min() >= 0.0 and image.max() <= 1.0 and image.std() > 0.01
    color_train, color_test = denoise_split(3)
    assert color_test.names == ("chelsea", "china", "grace_hopper") and set(color_train.names) <= set(train.names)
    assert all(image.shape[0] == 3 for image in color_train.images + color_test.images)
    with pytest.raises(DataError):
        denoise_split(2)


def test_embedded_segment_split():
    train, test = segment_split()
    for images in (train, test):
        (image,), (mask,) = images.images, images.masks
        assert image.shape[0] == 1 and image.shape[1:] == mask.shape
        assert set(np.unique(mask)) == {0, 1}
        assert 0.1 < mask.mean() < 0.9                  # both classes substantially present
    assert train.names == ("nuclei[left]",) and test.names == ("nuclei[right]",)
    image, labels = nuclei()                            # the shipped instance labels: 183 nuclei
    assert image.shape == (1, 512, 512) and labels.max() == 183 and abs((labels > 0).mean() - 0.199) < 0.001
    width = train.images[0].shape[-1] + test.images[0].shape[-1]
    assert train.images[0].shape[-1] == int(width * 0.6)
    with pytest.raises(DataError):
        ImageSet((), ())


def test_patches_and_noise():
    images = ImageSet(("a", "b"), (np.random.default_rng(0).random((1, 40, 50), dtype=np.float32),
                                   np.zeros((1, 20, 20), np.float32)),
                      (np.ones((40, 50), np.int64), np.zeros((20, 20), np.int64)))
    batch, masks = random_patches(images, 6, 32, np.random.default_rng(1))
    assert batch.shape == (6, 1, 32, 32) and masks.shape == (6, 32, 32)
    assert bool((masks == 1).all())                      # only the 40x50 image is large enough
    again, _ = random_patches(images, 6, 32, np.random.default_rng(1))
    assert torch.equal(batch, again)                     # reproducible from the generator
    with pytest.raises(DataError):
        random_patches(images, 1, 64, np.random.default_rng(0))
    clean = torch.full((2, 1, 64, 64), 0.5)
    noisy, noise = add_gaussian_noise(clean, torch.tensor([25.0, 50.0]), torch.Generator().manual_seed(0))
    assert torch.equal(noisy, clean + noise)
    assert float(noise[0].std()) == pytest.approx(25 / 255, rel=0.1)
    assert float(noise[1].std()) == pytest.approx(50 / 255, rel=0.1)
    window = center_crop(np.arange(120).reshape(1, 10, 12), 4)
    assert window.shape == (1, 4, 4) and window[0, 0, 0] == 3 * 12 + 4


def test_psnr():
    rng = np.random.default_rng(0)
    a = rng.random((1, 16, 16)).astype(np.float32)
    with pytest.warns(RuntimeWarning):
        same = metrics.psnr(a, a)
    assert same == float("inf") or same > 100
    clean = np.full((1, 16, 16), 0.5, np.float64)
    assert metrics.psnr(clean, clean + 0.1) == pytest.approx(20.0, abs=1e-6)     # MSE 0.01
    assert metrics.psnr(clean, clean - 0.01) == pytest.approx(40.0, abs=1e-6)    # MSE 1e-4
    half = clean.copy()
    half[..., :8] += 0.2                                  # MSE = 0.04 / 2 = 0.02 -> 10 log10(50)
    assert metrics.psnr(clean, half) == pytest.approx(10 * np.log10(50), abs=1e-6)


def test_ssim():
    rng = np.random.default_rng(1)
    a = rng.random((3, 32, 32))
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    assert metrics.ssim(a[:1], a[:1]) == pytest.approx(1.0)
    assert metrics.ssim(a, rng.random((3, 32, 32))) < 0.2


def test_binary_scores_by_hand():
    truth = np.array([1, 1, 0, 0, 1, 0])
    pred = np.array([1, 0, 1, 0, 1, 0])
    # TP = 2 (0, 4), FP = 1 (2), FN = 1 (1), TN = 2 (3, 5)
    scores = metrics.binary_scores(truth, pred)
    assert scores["f1"] == pytest.approx(4 / 6)           # 2TP / (2TP + FP + FN)
    assert scores["jaccard"] == pytest.approx(2 / 4)      # TP / (TP + FP + FN)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    empty = metrics.binary_scores(np.zeros(5), np.zeros(5))
    assert empty == {"f1": 1.0, "jaccard": 1.0, "accuracy": 1.0}
    wrong = metrics.binary_scores(np.ones(4), np.zeros(4))
    assert wrong == {"f1": 0.0, "jaccard": 0.0, "accuracy": 0.0}


def test_mean_iou_by_hand():
    truth = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    # class 0: T {0,1}, P {0,5}: 1/3; class 1: T {2,3}, P {1,2,3}: 2/3; class 2: T {4,5}, P {4}: 1/2
    assert metrics.mean_iou(truth, pred, 3) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert metrics.mean_iou(truth, pred, 4) == pytest.approx(0.5)    # an absent class is skipped
    assert metrics.mean_iou(truth, truth, 3) == 1.0
