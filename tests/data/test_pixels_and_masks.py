"""How pixels are scaled and masks are read, and the errors the wrong reading used to hide.

Found with the stardist nuclei image (a uint16 TIFF holding 8-bit values, an instance-label mask):
a uint16 file was divided by 65535 (the image then lay in [0, 0.0036] and trained to F1 0), an
instance mask crashed ``train --task segment`` with a traceback and let ``evaluate`` report mIoU
over 100+ "classes". Now the data's bit depth sets the scale (with a warning), instance masks are
read with ``--masks instances`` and any label the network has no class for is refused by name.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
from PIL import Image

import cli
from cli_helpers import one_error_line
from toolchain.data.embedded import ImageSet
from toolchain.data.folder import check_masks, read_image, read_mask
from toolchain.errors import DataError, DataWarning


def test_a_uint16_tiff_of_8_bit_values_is_scaled_by_255_with_a_warning(tmp_path):
    values = (np.arange(16 * 16).reshape(16, 16) % 236).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", values)
    with pytest.warns(DataWarning, match="8-bit data .divided by 255, not 65535"):
        image = read_image(tmp_path / "a.tif", 1)
    np.testing.assert_allclose(image[0], values / 255.0, rtol=1e-6)


@pytest.mark.parametrize("top,bits", [(1000, 10), (4095, 12), (60000, 16)])
def test_bit_depth_follows_the_data(tmp_path, top, bits):
    values = np.linspace(0, top, 256).astype(np.uint16).reshape(16, 16)
    tifffile.imwrite(tmp_path / "a.tif", values)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_image(tmp_path / "a.tif", 1)
    np.testing.assert_allclose(image[0], values / (2 ** bits - 1), rtol=1e-6)
    assert bool(caught) == (bits < 16)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -0.5, 300.0])
def test_float_pixels_must_be_finite_and_in_range(tmp_path, bad):
    values = np.full((16, 16), 0.5, np.float32)
    values[3, 4] = bad
    tifffile.imwrite(tmp_path / "f.tif", values)
    with pytest.raises(DataError, match="finite and in"):
        read_image(tmp_path / "f.tif", 1)


def _mask_file(path, labels) -> None:
    Image.fromarray(np.asarray(labels, np.uint8)).save(path)


def test_mask_kinds(tmp_path):
    labels = np.zeros((16, 16), np.uint8)
    labels[2:5, 2:5], labels[9:12, 9:14] = 1, 7
    _mask_file(tmp_path / "inst.png", labels)
    assert read_mask(tmp_path / "inst.png").max() == 7                             # auto: class indices
    np.testing.assert_array_equal(read_mask(tmp_path / "inst.png", "instances"), (labels > 0).astype(np.int64))
    with pytest.raises(DataError, match="binary mask holds 0/1 or 0/255"):
        read_mask(tmp_path / "inst.png", "binary")
    _mask_file(tmp_path / "bin.png", (labels > 0) * 255)
    np.testing.assert_array_equal(read_mask(tmp_path / "bin.png"), (labels > 0).astype(np.int64))
    with pytest.raises(DataError, match="label 7 but the network has 2 classes.*`masks` instances"):
        check_masks(ImageSet(("inst",), (np.zeros((1, 16, 16), np.float32),), (read_mask(tmp_path / "inst.png"),)), 2)


@pytest.fixture
def instance_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "masks").mkdir(parents=True)
        image = rng.integers(0, 80, (48, 48)).astype(np.uint8)
        labels = np.zeros((48, 48), np.uint8)
        for k in range(1, 30):            # 29 "nuclei", labels up to 29
            y, x = rng.integers(4, 44, 2)
            labels[y - 3:y + 3, x - 3:x + 3] = k
        image[labels > 0] += 150
        Image.fromarray(image).save(tmp_path / split / "images" / "a.png")
        _mask_file(tmp_path / split / "masks" / "a.png", labels)
    return tmp_path


TINY = ["--width", "4", "--depth", "1", "--epochs", "1", "--batches-per-epoch", "2", "--batch", "2", "--patch", "16"]


def test_instance_masks_are_refused_with_the_fix_then_read_as_foreground(instance_folder, tmp_path, capsys):
    out = tmp_path / "s.pt"
    code = cli.main(["train", "--task", "segment", "--data", str(instance_folder), *TINY, "--out", str(out)])
    assert code == 2 and "--masks instances" in one_error_line(capsys) and not out.exists()
    assert cli.main(["train", "--task", "segment", "--data", str(instance_folder), "--masks", "instances", *TINY,
                     "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--data", str(instance_folder), "--masks", "classes"]) == 2
    assert "label 29 but the network has 2 classes" in one_error_line(capsys)
    assert cli.main(["evaluate", str(out)]) == 0        # the recorded reading (instances) is used again


def test_the_cli_prints_a_data_warning_as_one_line(tmp_path, capsys):
    for split in ("train", "test"):
        (tmp_path / split / "images").mkdir(parents=True)
        tifffile.imwrite(tmp_path / split / "images" / "a.tif",
                         np.random.default_rng(1).integers(0, 200, (32, 32)).astype(np.uint16))
    assert cli.main(["train", "--task", "denoise", "--data", str(tmp_path), *TINY, "--out", str(tmp_path / "d.pt")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert err and all("read as 8-bit data" in line for line in err)
