"""Issue 16, hostile and broken images (cases 5, 10 and 12 of the issue): an animation is refused from its
header before a frame is decoded, an image stack is checked against --max-memory from its header, float pixels
must be finite and in range, a truncated file or a PNG with missing rows is refused, and single-frame GIFs and
CMYK JPEGs are read."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hostile_helpers import GB, TINY, assert_one_error, gray, main_fails, run_cli, words
from PIL import Image

import cli
from toolchain.data.folder import read_image
from toolchain.errors import MemoryLimitError


def test_5_animated_gif_refused_before_decoding(files, tmp_path):
    frames = []
    for k in range(400):
        im = np.zeros((512, 512), np.uint8)
        im[k % 512, (7 * k) % 512] = 255
        frames.append(Image.fromarray(im).convert("P"))
    gif = tmp_path / "frames.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=10)
    # decoding every frame as RGB needs 400 * 512 * 512 * 3 = 315 MB (and copies); the header says 400 frames
    rc, _, err, seconds = run_cli(["simulate", files["net"], "--input", gif, "--out", tmp_path / "o"],
                                  mem=int(1.5 * GB))
    line = assert_one_error(err, gif.name, code=2, rc=rc)
    assert "frame" in words(line, gif)


def test_5_isbi_stacks_checked_from_the_header(tmp_path):
    import tifffile
    root = tmp_path / "isbi"
    root.mkdir()
    stack = np.zeros((30, 2048, 2048), np.uint8)             # 126 MB as uint8, 1 GB as float64
    tifffile.imwrite(root / "train-volume.tif", stack, compression="zlib")
    tifffile.imwrite(root / "train-labels.tif", stack + 255, compression="zlib")
    del stack
    rc, _, err, _ = run_cli(["train", "--task", "segment", "--data", root, "--layout", "isbi2012", *TINY,
                             "--out", tmp_path / "m.pt", "--max-memory", "256M"], mem=2 * GB)
    line = assert_one_error(err, "train-volume.tif", "--max-memory", code=2, rc=rc)
    assert "memory" in words(line, root)
    assert not (tmp_path / "m.pt").exists()


def test_5_a_folder_of_images_is_charged_as_a_whole(tmp_path):
    from toolchain.memory import MemoryLimit
    from toolchain.verbs.source import DataSource
    root = tmp_path / "d"
    for split in ("train", "test"):
        (root / split / "images").mkdir(parents=True)
        for k in range(4):
            Image.fromarray(gray(1024, 1024, k)).save(root / split / "images" / f"{k}.png")
    source = DataSource("denoise", 1, str(root), "folder", memory=MemoryLimit(64 << 20))
    with pytest.raises(MemoryLimitError, match=r"\d\.png.*other files.*memory.*max_memory"):
        source.load()             # 8 images of 1 Mpixel: about 9 MB each decoded, more than 64 MB together
    DataSource("denoise", 1, str(root), "folder", memory=MemoryLimit(1 << 30)).load()


# ============================================================ 10. wrong results with exit 0

@pytest.mark.parametrize("name, values", [
    ("nan.tif", lambda b: np.where(b > 0.9, np.nan, b)), ("inf.tif", lambda b: np.where(b > 0.9, np.inf, b)),
    ("negative.tif", lambda b: b - 5.0), ("huge.tif", lambda b: b * 1e6)])
def test_10_float_tiff_out_of_range_refused(capsys, files, tmp_path, name, values):
    import tifffile
    base = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    tifffile.imwrite(tmp_path / name, values(base).astype(np.float32))
    main_fails(capsys, ["simulate", files["net"], "--input", tmp_path / name, "--out", tmp_path / "o"], name)
    assert not (tmp_path / "o").exists()


def test_10_float_tiff_in_range_accepted(files, tmp_path):
    import tifffile
    tifffile.imwrite(tmp_path / "ok.tif", np.random.default_rng(0).random((16, 16)).astype(np.float32))
    assert cli.main(["simulate", str(files["net"]), "--input", str(tmp_path / "ok.tif"), "--out",
                     str(tmp_path / "o")]) == 0


def _png(path, h: int = 64, w: int = 64, rows: int = 32, interlace: int = 0) -> None:
    """A gray PNG whose image data holds only ``rows`` of its ``h`` rows (a valid zlib stream that ends early)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    img = gray(h, w)
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(rows))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, interlace))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_10_png_with_missing_rows_refused(capsys, files, tmp_path):
    _png(tmp_path / "short.png")
    main_fails(capsys, ["simulate", files["net"], "--input", tmp_path / "short.png", "--out", tmp_path / "o"],
               "short.png", "rows")
    _png(tmp_path / "whole.png", rows=64)                     # the same file with every row reads
    assert read_image(tmp_path / "whole.png", 1).shape == (1, 64, 64)


def test_10_interlaced_pngs_are_measured_by_their_passes(tmp_path):
    Image.fromarray(gray(37, 53)).save(tmp_path / "i.png", interlace=1)      # PIL writes Adam7 when asked
    Image.fromarray(np.stack([gray(37, 53)] * 3, -1)).save(tmp_path / "c.png")
    for name in ("i.png", "c.png"):
        assert read_image(tmp_path / name, 1).shape == (1, 37, 53)


@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_10_truncated_image_refused(capsys, files, tmp_path, kind):
    Image.fromarray(gray(64, 64)).save(tmp_path / f"full.{kind}", **({"compress_level": 0} if kind == "png" else {}))
    data = (tmp_path / f"full.{kind}").read_bytes()
    (tmp_path / f"cut.{kind}").write_bytes(data[: len(data) // 2])
    main_fails(capsys, ["simulate", files["net"], "--input", tmp_path / f"cut.{kind}", "--out", tmp_path / "o"],
               f"cut.{kind}")


# ====================================================================== 12. smaller

def test_12_single_frame_gif_accepted(files, tmp_path):
    Image.fromarray(gray(16, 16)).save(tmp_path / "one.gif")
    assert cli.main(["simulate", str(files["net"]), "--input", str(tmp_path / "one.gif"), "--out",
                     str(tmp_path / "o")]) == 0
    assert np.allclose(read_image(tmp_path / "one.gif", 1)[0], gray(16, 16) / 255.0, atol=1e-6)


def test_12_cmyk_jpeg_accepted(files, tmp_path):
    rgb = np.stack([gray(16, 16)] * 3, -1)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    assert cli.main(["simulate", str(files["net"]), "--input", str(tmp_path / "cmyk.jpg"), "--out",
                     str(tmp_path / "o")]) == 0
    assert np.abs(read_image(tmp_path / "cmyk.jpg", 1)[0] - gray(16, 16) / 255.0).mean() < 0.05
