"""Dataset readers (toolchain/data/readers) on tiny files written here in each published layout."""
from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.data.embedded import ImageSet
from toolchain.data.readers import (LAYOUTS, detect_layout, detect_layouts, extract_patches, load_dataset,
                                    load_test_set, random_fov_patches, reassemble, tiled_predictor)
from toolchain.data.readers import drive
from toolchain.errors import ConfigError, DataError

H, W = 20, 24


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- writers (published layouts)

def fov_disc() -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (((yy - H / 2) / (H / 2.2)) ** 2 + ((xx - W / 2) / (W / 2.2)) ** 2 <= 1.0)


def make_drive(root: Path, train=("21", "22", "23"), test=("01", "02"), test_labels=True) -> dict:
    r = rng(1)
    truth = {}
    for split, numbers in (("training", train), ("test", test)):
        for sub in ("images", "1st_manual", "mask"):
            if sub != "1st_manual" or split == "training" or test_labels:
                (root / "DRIVE" / split / sub).mkdir(parents=True, exist_ok=True)
        for number in numbers:
            rgb = r.integers(0, 256, (H, W, 3), dtype=np.uint8)
            vessel = r.random((H, W)) < 0.3
            tifffile.imwrite(root / "DRIVE" / split / "images" / f"{number}_{split}.tif", rgb, photometric="rgb")
            iio.imwrite(root / "DRIVE" / split / "mask" / f"{number}_{split}_mask.gif",
                        (fov_disc() * 255).astype(np.uint8))
            if split == "training" or test_labels:
                iio.imwrite(root / "DRIVE" / split / "1st_manual" / f"{number}_manual1.gif",
                            (vessel * 255).astype(np.uint8))
            truth[f"{number}_{split}"] = (rgb, vessel)
    return truth


def make_isbi(root: Path, slices: int = 8, label_slices: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    volume = rng(2).integers(0, 256, (slices, H, W), dtype=np.uint8)
    labels = np.where(rng(3).random((label_slices or slices, H, W)) < 0.25, 0, 255).astype(np.uint8)
    for name, stack in (("train-volume", volume), ("train-labels", labels), ("test-volume", volume)):
        tifffile.imwrite(root / f"{name}.tif", stack, photometric="minisblack")
    return volume, labels


CAMSEQ_COLORS = "64 128 64\tAnimal\n192 0 128\tArchway\n0 128 192\tBicyclist\n\n0 0 0\tVoid\n"
PALETTE = np.array([[64, 128, 64], [192, 0, 128], [0, 128, 192], [0, 0, 0]], dtype=np.uint8)


def make_camseq(root: Path, frames: int = 5, colors: str = CAMSEQ_COLORS) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    (root / "label_colors.txt").write_text(colors)
    r = rng(4)
    truth = {}
    for k in range(frames):
        stem = f"0016E5_{7959 + 2 * k:05d}"
        classes = r.integers(0, len(PALETTE), (H, W))
        iio.imwrite(root / f"{stem}.png", r.integers(0, 256, (H, W, 3), dtype=np.uint8))
        iio.imwrite(root / f"{stem}_L.png", PALETTE[classes])
        truth[stem] = classes
    return truth


def write_pngs(folder: Path, stems, color: bool, seed: int = 5) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    r = rng(seed)
    for stem in stems:
        shape = (H, W, 3) if color else (H, W)
        iio.imwrite(folder / f"{stem}.png", r.integers(0, 256, shape, dtype=np.uint8))


# --------------------------------------------------------------------------- DRIVE

def test_drive_loads_published_layout(tmp_path):
    truth = make_drive(tmp_path)
    for root in (tmp_path, tmp_path / "DRIVE"):
        train, test = load_dataset(root, "drive", "segment", 1)
        assert train.names == ("21_training", "22_training", "23_training")
        assert test.names == ("01_test", "02_test")
        for s in (train, test):
            for name, image, mask, region in zip(s.names, s.images, s.masks, s.regions):
                assert image.shape == (1, H, W) and image.dtype == np.float32
                assert 0.0 <= image.min() and image.max() <= 1.0
                assert mask.dtype == np.int64 and np.array_equal(mask, truth[name][1].astype(np.int64))
                assert region.dtype == bool and np.array_equal(region, fov_disc())


def test_drive_gray_weights_on_a_known_pixel():
    pixel = np.array([[[0.2, 0.6, 1.0]]])
    assert drive.gray(pixel)[0, 0] == pytest.approx(0.299 * 0.2 + 0.587 * 0.6 + 0.114 * 1.0)


def test_drive_preprocessing_matches_the_retina_unet_steps(tmp_path):
    from skimage.exposure import equalize_adapthist
    truth = make_drive(tmp_path)
    train, _ = load_dataset(tmp_path, "drive", "segment", 1)
    rgb = truth["21_training"][0] / 255.0
    g = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    g = (g - g.min()) / (g.max() - g.min())  # standardization + min-max rescale
    expected = equalize_adapthist(g, kernel_size=(H // 8, W // 8), clip_limit=2 / 256, nbins=256) ** (1 / 1.2)
    np.testing.assert_allclose(train.images[0][0], expected, atol=1e-6)
    # the split's statistics never leak into an image: alone it preprocesses the same
    alone = drive.preprocess([rgb])[0]
    np.testing.assert_allclose(drive.preprocess([rgb, truth["22_training"][0] / 255.0])[0], alone, atol=1e-6)
    raw, _ = load_dataset(tmp_path, "drive", "segment", 3, preprocess=False)
    np.testing.assert_allclose(raw.images[0], rgb.transpose(2, 0, 1), atol=1e-6)


def test_drive_without_test_ground_truth(tmp_path):
    make_drive(tmp_path, test_labels=False)
    with pytest.raises(DataError, match=r"test[/\\]1st_manual.*holdout"):
        load_dataset(tmp_path, "drive", "segment", 1)
    train, test = load_dataset(tmp_path, "drive", "segment", 1, holdout=1)
    assert train.names == ("21_training", "22_training") and test.names == ("23_training",)
    with pytest.raises(ConfigError, match="holdout"):
        load_dataset(tmp_path, "drive", "segment", 1, holdout=3)


def test_drive_malformed(tmp_path):
    make_drive(tmp_path)
    base = tmp_path / "DRIVE"
    with pytest.raises(ConfigError, match="gray"):
        load_dataset(tmp_path, "drive", "segment", 3)
    (base / "training" / "1st_manual" / "22_manual1.gif").unlink()
    with pytest.raises(DataError, match=r"1st_manual.*mismatched counts.*DRIVE: expected"):
        load_dataset(tmp_path, "drive", "segment", 1)
    iio.imwrite(base / "training" / "1st_manual" / "22_manual1.gif", np.zeros((H, W + 1), np.uint8))
    with pytest.raises(DataError, match="22_manual1.gif: size"):
        load_dataset(tmp_path, "drive", "segment", 1)
    (base / "training" / "1st_manual" / "22_manual1.gif").rename(base / "training" / "1st_manual" / "29_manual1.gif")
    with pytest.raises(DataError, match="22_manual1.gif: missing file"):
        load_dataset(tmp_path, "drive", "segment", 1)
    (base / "training" / "1st_manual" / "29_manual1.gif").unlink()
    iio.imwrite(base / "training" / "1st_manual" / "22_manual1.gif", np.zeros((H, W), np.uint8))
    (base / "test" / "images" / "02_test.tif").write_bytes(b"not a tiff")
    with pytest.raises(DataError, match="02_test.tif: not a readable image"):
        load_dataset(tmp_path, "drive", "segment", 1)
    for sub in ("mask", "images"):
        folder = base / "training" / sub
        folder.rename(folder.with_name("gone"))
        with pytest.raises(DataError, match=rf"training[/\\]{sub}: missing folder.*DRIVE: expected"):
            load_dataset(tmp_path, "drive", "segment", 1)
        folder.with_name("gone").rename(folder)


# --------------------------------------------------------------------------- ISBI-2012

def test_isbi_split_and_foreground(tmp_path):
    volume, labels = make_isbi(tmp_path)
    train, test = load_dataset(tmp_path, "isbi2012", "segment", 1, test_slices=2)
    assert len(train.images) == 6 and len(test.images) == 2
    assert test.names == ("train-volume[06]", "train-volume[07]")
    np.testing.assert_allclose(test.images[1][0], volume[7] / 255.0, atol=1e-6)
    assert np.array_equal(train.masks[0], (labels[0] == 0).astype(np.int64))  # membrane = black = class 1
    _, interior = load_dataset(tmp_path, "isbi2012", "segment", 3, foreground="interior")
    assert interior.images[0].shape == (3, H, W) and len(interior.images) == 6  # default: last 6 of 8
    assert np.array_equal(interior.masks[-1], (labels[-1] == 255).astype(np.int64))
    with pytest.raises(ConfigError, match="foreground"):
        load_dataset(tmp_path, "isbi2012", "segment", 1, foreground="cells")


def test_isbi_malformed(tmp_path):
    make_isbi(tmp_path, slices=8, label_slices=7)
    with pytest.raises(DataError, match=r"train-labels.tif: label stack shape \(7, 20, 24\) differs"):
        load_dataset(tmp_path, "isbi2012", "segment", 1)
    make_isbi(tmp_path, slices=3)
    with pytest.raises(DataError, match="train-volume.tif: 3 slices leave none"):
        load_dataset(tmp_path, "isbi2012", "segment", 1, test_slices=3)
    tifffile.imwrite(tmp_path / "train-volume.tif", np.zeros((3, H, W, 3), np.uint8), photometric="rgb")
    with pytest.raises(DataError, match=r"train-volume.tif: stack shape .*ISBI-2012: expected"):
        load_dataset(tmp_path, "isbi2012", "segment", 1)
    (tmp_path / "train-labels.tif").unlink()
    with pytest.raises(DataError, match="train-labels.tif: missing file"):
        load_dataset(tmp_path, "isbi2012", "segment", 1)


# --------------------------------------------------------------------------- CamSeq01

def test_camseq_colour_to_class_and_split(tmp_path):
    truth = make_camseq(tmp_path / "CamSeq01")
    train, test = load_dataset(tmp_path, "camseq01", "segment", 3, size=None)
    assert train.names == tuple(sorted(truth))[:4] and test.names == (sorted(truth)[4],)  # last 20 %
    for s in (train, test):
        for name, image, mask in zip(s.names, s.images, s.masks):
            assert image.shape == (3, H, W) and 0 <= image.min() and image.max() <= 1
            assert np.array_equal(mask, truth[name])  # line order of label_colors.txt
    small, _ = load_dataset(tmp_path / "CamSeq01", "camseq01", "segment", 1, size=16, test_fraction=0.4)
    assert len(small.images) == 3 and small.images[0].shape == (1, 16, 16)
    assert small.masks[0].shape == (16, 16) and set(np.unique(small.masks[0])) <= {0, 1, 2, 3}
    paper, _ = load_dataset(tmp_path, "camseq01", "segment", 3)  # the paper's 256 x 256 by default
    assert paper.images[0].shape == (3, 256, 256) and np.array_equal(np.unique(paper.masks[0]), [0, 1, 2, 3])


def test_camseq_unknown_colour_and_void(tmp_path):
    make_camseq(tmp_path)
    label = iio.imread(tmp_path / "0016E5_07961_L.png").copy()
    label[3, 4] = (1, 2, 3)
    iio.imwrite(tmp_path / "0016E5_07961_L.png", label)
    with pytest.raises(DataError, match=r"0016E5_07961_L.png: colour \(1, 2, 3\) \(1 pixels\) is not in"):
        load_dataset(tmp_path, "camseq01", "segment", 3, size=None)
    train, _ = load_dataset(tmp_path, "camseq01", "segment", 3, size=None, unknown="void")
    assert train.masks[1][3, 4] == 3
    (tmp_path / "label_colors.txt").write_text(CAMSEQ_COLORS.replace("0 0 0\tVoid\n", ""))
    with pytest.raises(DataError, match="no class is named Void"):
        load_dataset(tmp_path, "camseq01", "segment", 3, unknown="void")


def test_camseq_malformed(tmp_path):
    make_camseq(tmp_path)
    (tmp_path / "label_colors.txt").write_text("64 128 64 Animal\n300 0 0 Bad\n")
    with pytest.raises(DataError, match="label_colors.txt: line 2"):
        load_dataset(tmp_path, "camseq01", "segment", 3)
    (tmp_path / "label_colors.txt").write_text(CAMSEQ_COLORS)
    (tmp_path / "0016E5_07963_L.png").unlink()
    with pytest.raises(DataError, match="0016E5_07963_L.png: missing label image"):
        load_dataset(tmp_path, "camseq01", "segment", 3)
    iio.imwrite(tmp_path / "0016E5_07963_L.png", np.zeros((H + 2, W, 3), np.uint8))
    with pytest.raises(DataError, match="0016E5_07963_L.png: size"):
        load_dataset(tmp_path, "camseq01", "segment", 3)
    (tmp_path / "0016E5_07963.png").unlink()
    with pytest.raises(DataError, match="label image without a frame"):
        load_dataset(tmp_path, "camseq01", "segment", 3)


# --------------------------------------------------------------------------- BSD68 / CBSD68 / Set12

def test_denoising_sets(tmp_path):
    write_pngs(tmp_path / "BSD68", [f"test{k:03d}" for k in (1, 2, 3)], color=False)
    write_pngs(tmp_path / "train", ["a", "b"], color=True)
    train, test = load_dataset(tmp_path, "bsd68", "denoise", 1)
    assert test.names == ("test001", "test002", "test003") and train.names == ("a", "b")
    assert test.images[0].shape == (1, H, W) and test.masks is None
    np.testing.assert_allclose(test.images[0][0], iio.imread(tmp_path / "BSD68" / "test001.png") / 255.0, atol=1e-6)
    with pytest.raises(DataError, match=r"no training folder.*BSD68: expected"):
        load_dataset(tmp_path / "BSD68", "bsd68", "denoise", 1)
    assert load_test_set(tmp_path / "BSD68", "bsd68", "denoise", 1).names == test.names
    with pytest.raises(ConfigError, match="gray"):
        load_dataset(tmp_path, "bsd68", "denoise", 3)
    write_pngs(tmp_path / "testsets" / "CBSD68", ["101085", "101087"], color=True)
    cbsd = load_test_set(tmp_path, "cbsd68", "denoise", 3)
    assert cbsd.images[0].shape == (3, H, W) and 0 <= cbsd.images[0].min() and cbsd.images[0].max() <= 1
    write_pngs(tmp_path / "set" / "test", ["01", "02"], color=False)
    write_pngs(tmp_path / "set" / "BSD400", ["x"], color=False)
    train, test = load_dataset(tmp_path / "set", "set12", "denoise", 1)
    assert test.names == ("01", "02") and train.names == ("x",)
    with pytest.raises(DataError, match="no test images.*Set12: expected"):
        load_dataset(tmp_path / "testsets", "set12", "denoise", 1)


# --------------------------------------------------------------------------- folder, detection, API

def test_folder_layout_delegates(tmp_path):
    for split in ("train", "test"):
        write_pngs(tmp_path / split / "images", ["p", "q"], color=True)
        (tmp_path / split / "masks").mkdir()
        for stem in ("p", "q"):
            iio.imwrite(tmp_path / split / "masks" / f"{stem}.png", np.full((H, W), 255, np.uint8))
    train, test = load_dataset(tmp_path, "folder", "segment", 3)
    assert train.names == ("p", "q") and np.all(test.masks[0] == 1)
    assert detect_layout(tmp_path) == "folder"


def test_detect_layout(tmp_path):
    make_drive(tmp_path / "d")
    make_isbi(tmp_path / "i")
    make_camseq(tmp_path / "c" / "CamSeq01")
    write_pngs(tmp_path / "b" / "BSD68", ["test001"], color=False)
    write_pngs(tmp_path / "flat", ["test001", "test002"], color=False)
    write_pngs(tmp_path / "s", ["01", "02"], color=False)
    write_pngs(tmp_path / "cb" / "test", ["101085"], color=True)
    expected = {"d": "drive", "d/DRIVE": "drive", "i": "isbi2012", "c": "camseq01", "c/CamSeq01": "camseq01",
                "b": "bsd68", "flat": "bsd68", "s": "set12", "cb": "cbsd68"}
    for folder, layout in expected.items():
        assert detect_layout(tmp_path / folder) == layout, folder
    for name in ("CBSD68", "Set12"):
        write_pngs(tmp_path / "b" / name, ["x1"], color=False)
    assert detect_layouts(tmp_path / "b") == ["bsd68", "cbsd68", "set12"] and detect_layout(tmp_path / "b") is None
    assert detect_layout(tmp_path / "nothing") is None and detect_layout(tmp_path / "d" / "DRIVE" / "test") is None
    train, _ = load_dataset(tmp_path / "i", "auto", "segment", 1)
    assert len(train.images) == 2
    with pytest.raises(DataError, match="several layouts"):
        load_dataset(tmp_path / "b", None, "denoise", 1)


def test_load_dataset_arguments(tmp_path):
    make_isbi(tmp_path)
    assert set(LAYOUTS) == {"folder", "drive", "isbi2012", "camseq01", "bsd68", "cbsd68", "set12"}
    with pytest.raises(DataError, match="nowhere: dataset folder not found"):
        load_dataset(tmp_path / "nowhere", "drive", "segment", 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: holds no known dataset layout"):
        load_dataset(tmp_path / "empty", "auto", "segment", 1)
    with pytest.raises(ConfigError, match="unknown dataset layout"):
        load_dataset(tmp_path, "kitti", "segment", 1)
    with pytest.raises(ConfigError, match="not for task 'denoise'"):
        load_dataset(tmp_path, "isbi2012", "denoise", 1)
    with pytest.raises(ConfigError, match="no option holdout"):
        load_dataset(tmp_path, "isbi2012", "segment", 1, holdout=2)
    with pytest.raises(ConfigError, match="channels"):
        load_dataset(tmp_path, "isbi2012", "segment", 2)


# --------------------------------------------------------------------------- patches

@settings(max_examples=80, deadline=None)
@given(h=st.integers(1, 30), w=st.integers(1, 30), size=st.integers(1, 12), data=st.data(),
       channels=st.sampled_from([0, 1, 3]))
def test_patch_round_trip(h, w, size, data, channels):
    stride = data.draw(st.integers(1, size))
    shape = (h, w) if channels == 0 else (channels, h, w)
    x = np.random.default_rng(h * 1000 + w).random(shape, dtype=np.float32)
    patches = extract_patches(x, size, stride)
    rows, cols = (1 if n <= size else 1 + -(-(n - size) // stride) for n in (h, w))
    assert patches.shape == (rows * cols, max(channels, 1), size, size)
    back = reassemble(patches, shape, size, stride)
    assert back.shape == shape and back.dtype == np.float32 and np.array_equal(back, x)


def test_reassemble_averages_overlaps_and_checks_arguments():
    patches = np.stack([np.full((1, 4, 4), k, np.float32) for k in range(4)])  # 6x6 image, stride 2
    out = reassemble(patches, (6, 6), 4, 2)
    assert out[0, 0] == 0 and out[0, 5] == 1 and out[5, 0] == 2 and out[2, 2] == pytest.approx(1.5)
    with pytest.raises(ConfigError, match="4 patches"):
        reassemble(patches[:3], (6, 6), 4, 2)
    with pytest.raises(ConfigError, match="stride"):
        extract_patches(np.zeros((6, 6)), 4, 5)
    assert extract_patches(np.zeros((1, 50, 50)), stride=24).shape == (4, 1, 48, 48)  # 50 -> padded 72


def test_random_fov_patches_centres_inside_the_region():
    ys, xs = np.mgrid[:H, :W]
    image = np.stack([ys, xs]).astype(np.float32)  # each pixel knows its position
    region = np.zeros((H, W), bool)
    region[12:15, 5:9] = True
    images = ImageSet(("a",), (image,), (np.zeros((H, W), np.int64),), (region,))
    crops, masks = random_fov_patches(images, 40, 8, rng(), flips=False)
    assert crops.shape == (40, 2, 8, 8) and masks.shape == (40, 8, 8)
    centre_y, centre_x = crops[:, 0, 4, 4].long(), crops[:, 1, 4, 4].long()
    assert region[centre_y.numpy(), centre_x.numpy()].all()
    flipped, _ = random_fov_patches(images, 5, 8, rng(), flips=True)
    assert flipped.shape == (5, 2, 8, 8)
    with pytest.raises(DataError, match="field-of-view"):
        random_fov_patches(images, 1, 20, rng())
    with pytest.raises(DataError, match="regions"):
        ImageSet(("a",), (image,), None, (region, region))


def test_tiled_predictor_averages_patch_outputs():
    x = torch.rand(1, 1, 30, 37)
    identity = tiled_predictor(lambda p: p, size=16, stride=6, batch=5)
    assert torch.equal(identity(x), x)
    two = tiled_predictor(lambda p: torch.cat([p, 1 - p], dim=1), size=16, stride=16)
    out = two(x)
    assert out.shape == (1, 2, 30, 37) and torch.allclose(out[:, 1], 1 - x[:, 0])
