"""Bad input through the command line: every case exits non-zero with one 'error:' line naming the
file, layer or value, and leaves no output (and no temporary file) behind. The seeded fuzz test of
checkpoints is in test_checkpoint_fuzz.py.

Cases covered elsewhere are not repeated here: checkpoint unit cases in test_checkpoint.py, .net
files (and their fuzz test) in test_netx_file.py, T = 0, a missing image and an unknown backend in
test_deploy_cli.py, argparse threshold lists in test_cli.py.
"""
from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from cli_helpers import leftovers, one_error_line

import cli
from toolchain.data import decode
from toolchain.files import MANIFEST

TINY = ["--width", "4", "--depth", "2", "--epochs", "1", "--batches-per-epoch", "2", "--batch", "2", "--patch", "32"]


def _gray(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w), dtype=np.uint8)


@pytest.fixture(scope="module")
def chain(tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("robust")
    img = d / "img.png"
    iio.imwrite(img, _gray(16, 16))
    return {"dir": d, "ann": tiny.ann, "snn": tiny.snn, "net": tiny.net(2, 16), "img": img}


def _fails(capsys, argv: list[str], out: Path, *names: str, code: int = 2) -> str:
    """cli.main(argv) fails with ``code``, one 'error:' line holding every name, nothing in ``out``."""
    capsys.readouterr()
    assert cli.main([str(a) for a in argv]) == code
    line = one_error_line(capsys)
    for name in names:
        assert str(name) in line, (name, line)
    assert leftovers(out) == [], leftovers(out)
    return line


def _argparse_fails(capsys, argv: list[str], *words: str) -> None:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        cli.main([str(a) for a in argv])
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in last
    for word in words:
        assert word in last, (word, last)


# ----------------------------------------------------------------------------------------------- images

def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG whose header declares w x h pixels but holds almost no data (costs nothing to write)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_unreadable_image(chain, tmp_path, capsys):
    bad = tmp_path / "in" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(np.random.default_rng(0).bytes(500))
    out = tmp_path / "out"
    _fails(capsys, ["simulate", chain["net"], "--input", bad, "--out", out], out, bad, "not a readable image")
    # in a folder, one broken image stops the run before anything is written for the good ones
    iio.imwrite(bad.parent / "good.png", _gray(16, 16))
    _fails(capsys, ["simulate", chain["net"], "--input", bad.parent, "--out", out], out, "broken.png")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    _fails(capsys, ["simulate", chain["net"], "--input", text, "--out", out], out, "notes.txt", "not an image file")


@pytest.mark.parametrize("channels", [2, 5])
def test_multichannel_tiff_is_refused(chain, tmp_path, capsys, channels):
    """Gray <-> color conversion is allowed (and a declared alpha channel dropped), but a TIFF with 2
    or 5 samples per pixel has no defined meaning as an image: refused."""
    import tifffile
    path = tmp_path / f"bands{channels}.tif"
    pixels = np.random.default_rng(1).integers(0, 256, (16, 16, channels), dtype=np.uint8)
    tifffile.imwrite(path, pixels, photometric="minisblack", planarconfig="contig")   # 2 or 5 samples per pixel
    out = tmp_path / "out"
    _fails(capsys, ["simulate", chain["net"], "--input", path, "--out", out], out, path.name,
           f"16x16x{channels}", "unsupported image shape")
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, pixels.transpose(2, 0, 1))                          # 2 or 5 gray pages
    _fails(capsys, ["simulate", chain["net"], "--input", stack, "--out", out], out, "stack.tif",
           f"{channels} pages")


def test_gray_color_and_alpha_are_converted(chain, tmp_path, capsys):
    rng = np.random.default_rng(2)
    color, gray_alpha = tmp_path / "in" / "color.png", tmp_path / "in" / "ga.png"
    color.parent.mkdir()
    iio.imwrite(color, rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    iio.imwrite(gray_alpha, rng.integers(0, 256, (16, 16, 2), dtype=np.uint8))     # PNG mode LA
    out = tmp_path / "out"
    assert cli.main(["simulate", str(chain["net"]), "--input", str(color.parent), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.name != MANIFEST) == ["color", "ga"]
    assert np.load(out / "color" / "output.npy").shape == (1, 16, 16)       # the gray network's output


def test_tiny_and_huge_images(chain, tmp_path, capsys):
    out = tmp_path / "out"
    tiny = tmp_path / "tiny.png"
    iio.imwrite(tiny, _gray(5, 20))
    _fails(capsys, ["simulate", chain["net"], "--input", tiny, "--out", out], out, "tiny.png", "20x5")
    huge = tmp_path / "huge.png"
    _png_header_only(huge, 10_000, 10_000)               # 100 Mpx > 64 Mpx, refused from the header
    t0 = time.monotonic()
    _fails(capsys, ["simulate", chain["net"], "--input", huge, "--out", out], out, "huge.png", "10000x10000",
           str(decode.MAX_PIXELS))
    assert time.monotonic() - t0 < 10
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 60_000, 60_000)               # beyond PIL's own decompression-bomb limit
    _fails(capsys, ["simulate", chain["net"], "--input", bomb, "--out", out], out, "bomb.png", "size")


def test_huge_image_that_decodes(chain, tmp_path, capsys, monkeypatch):
    """The limit also holds for an image that really has that many pixels (limit lowered to keep it cheap)."""
    monkeypatch.setattr(decode, "MAX_PIXELS", 1000)
    big = tmp_path / "big.png"
    iio.imwrite(big, _gray(40, 40))
    out = tmp_path / "out"
    _fails(capsys, ["simulate", chain["net"], "--input", big, "--out", out], out, "big.png", "40x40", "1000 pixels")


def test_empty_folders(chain, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("no images here")
    out = tmp_path / "out"
    _fails(capsys, ["simulate", chain["net"], "--input", empty, "--out", out], out, empty, "no image files")
    data = tmp_path / "data"
    (data / "train" / "images").mkdir(parents=True)
    _fails(capsys, ["train", "--data", data, *TINY, "--out", out / "x.pt"], out, data / "train" / "images",
           "no image files")


def test_same_stem_twice_in_a_folder(chain, tmp_path, capsys):
    images = tmp_path / "in"
    images.mkdir()
    iio.imwrite(images / "a.png", _gray(16, 16))
    iio.imwrite(images / "a.bmp", _gray(16, 16, seed=1))
    out = tmp_path / "out"
    _fails(capsys, ["simulate", chain["net"], "--input", images, "--out", out], out, "'a'")


# ------------------------------------------------------------------------------------------- .net files

def _rewrite(f, key: str, value) -> None:
    del f[key]
    f.create_dataset(key, data=value)


NET_CASES = {   # the reader's cases are in test_netx_file.py; these go through the verbs that read files
    "not hdf5": (None, ["not.net"]),
    "newer version": (lambda f: _rewrite(f, "formatVersion", np.int64(f["formatVersion"][()] + 1)), ["newer toolchain"]),
    "unknown layer type": (lambda f: _rewrite(f, "layer/4/type", np.array([b"dense"])), ["layer 4", "unknown layer type"]),
    "weight outside Loihi range": (lambda f: _rewrite(f, "layer/4/weight", f["layer/4/weight"][()] * 0 + 300),
                                   ["layer 4", "weight mantissa 300"]),
    "float weights": (lambda f: _rewrite(f, "layer/4/weight", f["layer/4/weight"][()].astype(float)),
                      ["layer 4", "'weight'"]),
    "missing key": (lambda f: f.__delitem__("layer/4/bias"), ["layer 4", "missing required key(s) bias"]),
}


@pytest.mark.parametrize("case", list(NET_CASES))
def test_bad_net_files_through_simulate_and_report(chain, tmp_path, capsys, case):
    import h5py
    mutate, words = NET_CASES[case]
    bad = tmp_path / ("not.net" if mutate is None else "bad.net")
    if mutate is None:
        bad.write_text("plain text, not HDF5\n")
    else:
        bad.write_bytes(chain["net"].read_bytes())
        with h5py.File(bad, "r+") as f:
            mutate(f)
    out = tmp_path / "out"
    _fails(capsys, ["simulate", bad, "--input", chain["img"], "--out", out], out, bad.name, *words)
    _fails(capsys, ["report", bad, "--out", out], out, bad.name, *words)


# -------------------------------------------------------------------------------------------- arguments

@pytest.mark.parametrize("verb", ["evaluate", "finetune", "simulate", "report"])
def test_negative_time_steps(chain, tmp_path, capsys, verb):
    out = tmp_path / "out"
    argv = {"evaluate": ["evaluate", chain["snn"], "--steps", "-3", "--json", out / "r.json"],
            "finetune": ["finetune", chain["snn"], "--steps", "-3", "--out", out / "f.pt"],
            "simulate": ["simulate", chain["net"], "--steps", "-3", "--input", chain["img"], "--out", out],
            "report": ["report", chain["net"], "--steps", "-3", "--out", out]}[verb]
    _fails(capsys, argv, out, "time steps", "-3")


@pytest.mark.parametrize("text", ["1,1", "2,1,1", "0.5,0", "inf", "nan", "-1", "1,,0.5"])
def test_thresholds_not_decreasing_or_not_positive(chain, tmp_path, capsys, text):
    out = tmp_path / "out"
    _argparse_fails(capsys, ["convert", chain["ann"], "--thresholds", text, "--out", out / "s.pt"], "thresholds",
                    repr(text))
    assert leftovers(out) == []


def test_unknown_profile(chain, tmp_path, capsys):
    out = tmp_path / "out"
    _fails(capsys, ["report", chain["net"], "--profile", "loihi9", "--out", out], out, "loihi9")
    _fails(capsys, ["simulate", chain["net"], "--backend", "loihi2", "--profile", "loihi9", "--input", chain["img"],
                    "--out", out], out, "loihi9")
    broken = tmp_path / "mine.json"
    broken.write_text("{not json")
    _fails(capsys, ["report", chain["net"], "--profile", broken, "--out", out], out, "mine.json", "JSON")


@pytest.mark.parametrize("override, words", [
    ("energy.synop=-1", ["energy.synop", "-1"]),
    ("energy.synop=abc", ["energy.synop"]),
    ("energy.synopp=1", ["energy.synopp", "no such key"]),
    ("energy.synop", ["energy.synop", "KEY=VALUE"]),
])
def test_out_of_range_profile_values(chain, tmp_path, capsys, override, words):
    out = tmp_path / "out"
    _fails(capsys, ["report", chain["net"], "--set", override, "--out", out], out, *words)
    _fails(capsys, ["simulate", chain["net"], "--backend", "loihi2", "--set", override, "--input", chain["img"],
                    "--out", out], out, *words)


@pytest.mark.parametrize("extra, words", [
    (["--batch", "0"], ["--batch", "0"]),
    (["--workers", "-1"], ["--workers", "-1"]),
    (["--backend", "lava-cpu", "--workers", "2"], ["lava-cpu", "--workers"]),
])
def test_simulate_batch_and_workers_arguments(chain, tmp_path, capsys, extra, words):
    out = tmp_path / "out"
    _fails(capsys, ["simulate", chain["net"], "--input", chain["img"], "--out", out, *extra], out, *words)


@pytest.mark.parametrize("lr", ["0", "-0.1", "nan", "inf"])
def test_learning_rate(chain, tmp_path, capsys, lr):
    out = tmp_path / "out"
    _fails(capsys, ["train", *TINY, "--lr", lr, "--out", out / "a.pt"], out, "learning rate", lr)
    _fails(capsys, ["finetune", chain["snn"], "--steps", "2", *TINY[4:], "--lr", lr, "--out", out / "f.pt"], out,
           "learning rate")


def test_resume_with_other_settings_is_refused(chain, tmp_path, capsys):
    out = tmp_path / "out"
    target = out / "a.pt"
    assert cli.main(["train", *TINY, "--out", str(target)]) == 0
    before = target.read_bytes()
    capsys.readouterr()
    assert cli.main(["train", *TINY, "--lr", "0.01", "--resume", "--out", str(target)]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error:") and "a.pt" in line and "lr" in line and "0.01" in line
    assert target.read_bytes() == before and leftovers(out) == ["a.pt"]
    # a checkpoint without training state (a converted one) cannot be resumed as a fine-tuning run
    ft = out / "f.pt"
    ft.write_bytes(chain["snn"].read_bytes())
    assert cli.main(["finetune", str(chain["snn"]), "--steps", "2", *TINY[4:], "--resume", "--out", str(ft)]) == 2
    assert "no training state" in capsys.readouterr().err
