"""Issue 16, one line always (cases 9 and 10 of the issue): every error path of the CLI ends in exactly one
'error:' line and no traceback: a full disk or file size limit, an output path that is a folder, a file or not
writable, running out of memory, hostile JSON profiles, out-of-range flags; NaN / inf noise levels are refused,
and a diverging training run stops with a line and writes no NaN checkpoint."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
import torch
from hostile_helpers import GB, TINY, assert_one_error, main_fails, part_files, run_cli, text, words

from toolchain.frontend.checkpoint import load_checkpoint


def _unwritable(folder: Path) -> bool:
    """True if a file cannot be created in ``folder`` (root ignores permissions, not sysfs)."""
    if not folder.is_dir():
        return False
    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return True
    os.close(fd)
    os.unlink(name)
    return False


ERROR_PATHS = {
    # id: (argv builder (files, tmp_path) -> argv, names the line must hold, run_cli options)
    "export-out-is-folder": (lambda f, t: ["export", f["snn"], "-o", t, "--input-size", "16"], ["folder"], {}),
    "train-out-is-folder": (lambda f, t: ["train", *TINY, "--out", t], ["folder"], {}),
    "train-out-under-a-file": (lambda f, t: ["train", *TINY, "--out", text(t / "f", "x") / "m.pt"], ["not a folder"],
                               {}),
    "simulate-out-is-file": (lambda f, t: ["simulate", f["net"], "--input", f["img"], "--out", text(t / "f", "x")],
                             ["not a folder"], {}),
    "report-json-is-folder": (lambda f, t: ["report", f["net"], "--out", t / "r", "--json", t], ["folder"], {}),
    "demo-out-dir-is-file": (lambda f, t: ["demo", "--quick", "--out-dir", text(t / "f", "x")], ["not a folder"], {}),
    "export-not-writable": (lambda f, t: ["export", f["snn"], "-o", "/sys/x.net", "--input-size", "16"], ["/sys"], {}),
    "report-not-writable": (lambda f, t: ["report", f["net"], "--out", "/sys/r"], ["/sys"], {}),
    "export-file-too-large": (lambda f, t: ["export", f["snn"], "-o", t / "big.net", "--input-size", "16"],
                              ["big.net", "too large"], {"fsize": 100_000}),
    "report-file-too-large": (lambda f, t: ["report", f["net"], "--out", t / "r"], ["too large"], {"fsize": 20_000}),
    "train-out-of-memory": (lambda f, t: ["train", "--width", "4", "--depth", "2", "--epochs", "1",
                                          "--batches-per-epoch", "1", "--batch", "256", "--patch", "512",
                                          "--out", t / "m.pt"], ["memory"], {"mem": int(2.5 * GB)}),
    "profile-deep-json": (lambda f, t: ["report", f["net"], "--out", t / "r", "--profile", text(
        t / "deep.json", '{"name": "x", "a": ' + "[" * 100_000 + "]" * 100_000 + "}")], ["deep.json"], {}),
    "profile-long-number": (lambda f, t: ["report", f["net"], "--out", t / "r", "--profile", text(
        t / "long.json", '{"name": "x", "core": {"neurons": ' + "9" * 100_000 + "}}")], ["long.json"], {}),
    "profile-set-long-number": (lambda f, t: ["report", f["net"], "--out", t / "r", "--set",
                                              "core.neurons=" + "9" * 5000], ["core.neurons"], {}),
    "train-seed-negative": (lambda f, t: ["train", *TINY, "--seed", "-1", "--out", t / "m.pt"], ["seed"], {}),
    "evaluate-seed-negative": (lambda f, t: ["evaluate", f["ann"], "--seed", "-1", "--crop", "32", "--sigma", "25"],
                               ["seed"], {}),
    "simulate-seed-huge": (lambda f, t: ["simulate", f["net"], "--input", f["img"], "--out", t / "o", "--seed",
                                         str(2 ** 64), "--add-noise", "25"], ["seed"], {}),
    "evaluate-crop-3": (lambda f, t: ["evaluate", f["ann"], "--crop", "3", "--sigma", "25"], ["--crop"], {}),
    "evaluate-crop-negative": (lambda f, t: ["evaluate", f["ann"], "--crop", "-1", "--sigma", "25"], ["--crop"], {}),
    "train-patch-0": (lambda f, t: ["train", *TINY[:-1], "0", "--out", t / "m.pt"], ["patch"], {}),
    "convert-thresholds-1025": (lambda f, t: ["convert", f["ann"], "--thresholds", "1025", "--calibration", "4",
                                              "--patch", "32", "--out", t / "c.pt"], ["thresholds"], {}),
    "report-max-chips-0": (lambda f, t: ["report", f["net"], "--out", t / "r", "--max-chips", "0"], ["--max-chips"],
                           {}),
    "simulate-max-memory-tiny": (lambda f, t: ["simulate", f["net"], "--input", f["img"], "--out", t / "o",
                                               "--max-memory", "1K"], ["memory"], {}),
}


@pytest.mark.parametrize("case", sorted(ERROR_PATHS))
def test_9_every_error_path_is_one_line(files, tmp_path, case):
    build, names, opts = ERROR_PATHS[case]
    if "/sys" in names and not _unwritable(Path("/sys")):
        pytest.skip("needs an unwritable /sys")
    argv = build(files, tmp_path)
    before = set(part_files(tmp_path))
    rc, _, err, _ = run_cli(argv, **opts)
    assert_one_error(err, *names, code=2, rc=rc)
    assert set(part_files(tmp_path)) == before          # no .part left (not even by a crashing HDF5)


def test_9_export_below_the_receptive_field_is_padded(files, tmp_path):
    """--input-size 1: the input is padded to the network's multiple (the issue saw torch.fx's traceback)."""
    rc, _, err, _ = run_cli(["export", files["snn"], "-o", tmp_path / "x.net", "--input-size", "1"])
    assert rc == 0 and "Traceback" not in err and (tmp_path / "x.net").is_file()


# ============================================================ 10. wrong results with exit 0

@pytest.mark.parametrize("argv, flag", [
    (lambda f, t: ["simulate", f["net"], "--input", f["img"], "--out", t / "o", "--add-noise", "nan"], "--add-noise"),
    (lambda f, t: ["simulate", f["net"], "--input", f["img"], "--out", t / "o", "--add-noise", "inf"], "--add-noise"),
    (lambda f, t: ["simulate", f["net"], "--input", f["img"], "--out", t / "o", "--add-noise", "-25"], "--add-noise"),
    (lambda f, t: ["simulate", f["net"], "--input", f["img"], "--out", t / "o", "--noise-level", "nan"],
     "--noise-level"),
    (lambda f, t: ["report", f["net"], "--out", t / "r", "--add-noise", "nan"], "--add-noise"),
    (lambda f, t: ["evaluate", f["ann"], "--sigma", "nan", "--crop", "32"], "--sigma"),
    (lambda f, t: ["evaluate", f["ann"], "--sigma", "inf", "--crop", "32"], "--sigma"),
    (lambda f, t: ["evaluate", f["ann"], "--sigma", "-25", "--crop", "32"], "--sigma"),
], ids=["add-noise-nan", "add-noise-inf", "add-noise-negative", "noise-level-nan", "report-add-noise-nan",
        "sigma-nan", "sigma-inf", "sigma-negative"])
def test_10_noise_levels_must_be_finite_and_non_negative(capsys, files, tmp_path, argv, flag):
    main_fails(capsys, argv(files, tmp_path), flag)
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


def test_10_nan_loss_stops_training_without_a_nan_checkpoint(capsys, tmp_path):
    out = tmp_path / "m.pt"
    line = main_fails(capsys, ["train", *TINY, "--epochs", "2", "--lr", "1e30", "--out", out], "--lr")
    assert re.search(r"nan|inf|diverge", words(line, out))
    assert not out.exists() or all(torch.isfinite(v).all() for v in load_checkpoint(out).state_dict.values())
