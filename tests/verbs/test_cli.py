"""The command line, run in-process on tiny settings: the train -> convert -> finetune -> evaluate
chain for denoising and segmentation, and one-line errors with non-zero exit codes."""
from __future__ import annotations

import json
import math

import pytest
import torch

import cli
from cli_helpers import one_error_line
from toolchain.frontend.checkpoint import load_checkpoint

TINY = ["--width", "4", "--depth", "2", "--epochs", "1", "--batches-per-epoch", "3", "--batch", "2",
        "--patch", "32"]



@pytest.fixture(scope="module")
def denoise_chain(tmp_path_factory):
    d = tmp_path_factory.mktemp("denoise")
    x, y, z = str(d / "X.pt"), str(d / "Y.pt"), str(d / "Z.pt")
    codes = [cli.main(["train", "--task", "denoise", *TINY, "--out", x, "--json", str(d / "train.json")]),
             cli.main(["convert", x, "--calibration", "4", "--patch", "32", "--out", y]),
             cli.main(["finetune", y, "--steps", "3", "--epochs", "1", "--batches-per-epoch", "2", "--batch", "2",
                       "--patch", "32", "--out", z])]
    return d, (x, y, z), codes


@pytest.fixture(scope="module")
def segment_ann(tmp_path_factory):
    d = tmp_path_factory.mktemp("segment")
    s = str(d / "S.pt")
    code = cli.main(["train", "--task", "segment", *TINY, "--out", s])
    return d, s, code


def test_denoise_chain(denoise_chain, capsys):
    d, (x, y, z), codes = denoise_chain
    assert codes == [0, 0, 0]
    kinds = [load_checkpoint(p).kind for p in (x, y, z)]
    assert kinds == ["ann", "snn", "snn"]
    snn = load_checkpoint(z)
    assert snn.config.width == 4 and snn.config.depth == 2 and snn.config.task == "denoise"
    assert snn.spiking["thresholds"] == [2.0, 1.0, 0.5, 0.25] and snn.spiking["finetuned_steps"] == 3
    assert snn.spiking["normalization"] == "connection" and snn.spiking["calibration_images"] == 4
    assert snn.meta["finetune"]["steps"] == [3] and snn.meta["converted_from"] == x
    train_report = json.loads((d / "train.json").read_text())
    assert train_report["batches"] == 3 and train_report["config"]["width"] == 4
    assert math.isfinite(train_report["final_loss"])
    # fine-tuning changed the weights
    y_state, z_state = load_checkpoint(y).state_dict, load_checkpoint(z).state_dict
    assert not torch.equal(y_state["head.weight"], z_state["head.weight"])

    report_path = d / "R.json"
    capsys.readouterr()
    assert cli.main(["evaluate", z, "--steps", "3", "--sigma", "25", "--crop", "64", "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "sigma 25: PSNR" in out and f"wrote {report_path}" in out
    report = json.loads(report_path.read_text())
    assert report["model"] == "snn" and report["steps"] == 3 and report["task"] == "denoise"
    (row,) = report["denoise"]
    assert row["sigma"] == 25.0
    assert isinstance(row["psnr"], float) and 5.0 < row["psnr"] < 60.0
    assert [im["image"] for im in row["images"]] == ["camera", "clock", "chelsea", "ascent", "china", "grace_hopper"]
    assert row["psnr"] == pytest.approx(sum(im["psnr"] for im in row["images"]) / 6)


def test_finetune_over_several_steps_and_the_warning_outside_them(denoise_chain, tmp_path, capsys):
    """--steps 2,4 fine-tunes over both T; evaluate warns below the smallest (and a single-T model at
    any other T), not at or above it."""
    _d, (_x, y, z), _codes = denoise_chain
    out = str(tmp_path / "R.pt")
    assert cli.main(["finetune", y, "--steps", "2,4", "--epochs", "1", "--batches-per-epoch", "2", "--batch", "2",
                     "--patch", "32", "--out", out]) == 0
    tuned = load_checkpoint(out)
    assert tuned.spiking["finetuned_steps"] == 2 and tuned.spiking["finetuned_steps_all"] == [2, 4]
    assert "fine-tuned at T=2,4 in" in capsys.readouterr().out
    evaluate = ["evaluate", "--sigma", "25", "--crop", "32", "--steps"]
    warned = {}
    for path, steps in ((out, "1"), (out, "3"), (out, "8"), (z, "3"), (z, "5")):
        assert cli.main([*evaluate[:-1], path, "--steps", steps]) == 0
        warned[(path == out, steps)] = "warning:" in capsys.readouterr().err
    assert warned == {(True, "1"): True, (True, "3"): False, (True, "8"): False, (False, "3"): False, (False, "5"): True}
    with pytest.raises(SystemExit):
        cli.main(["finetune", y, "--steps", "2,x", "--out", out])
    assert "time steps must be an integer or a list" in capsys.readouterr().err
    assert cli.main(["finetune", y, "--steps", "4,0", "--out", out]) == 2
    assert "time steps" in one_error_line(capsys)


def test_evaluate_ann_several_sigmas(denoise_chain, capsys):
    d, (x, _, _), _ = denoise_chain
    path = d / "ann.json"
    assert cli.main(["evaluate", x, "--sigma", "15", "50", "--crop", "32", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["model"] == "ann" and report["steps"] is None
    assert [r["sigma"] for r in report["denoise"]] == [15.0, 50.0]
    # the same noisy images for the same seed, so more noise gives a lower noisy-input PSNR
    noisy = [r["images"][0]["noisy_psnr"] for r in report["denoise"]]
    assert noisy[0] > noisy[1] + 5


def test_segment_chain(segment_ann, capsys):
    d, s, code = segment_ann
    assert code == 0
    ckpt = load_checkpoint(s)
    assert ckpt.config.task == "segment" and ckpt.config.out_channels == 2
    assert ckpt.state_dict["head.weight"].shape == (2, 4, 1, 1)
    capsys.readouterr()
    assert cli.main(["evaluate", s, "--json", str(d / "ann.json")]) == 0
    out = capsys.readouterr().out
    assert "f1 " in out and "jaccard" in out and "miou" in out
    scores = json.loads((d / "ann.json").read_text())["segmentation"]
    assert 0.0 <= scores["f1"] <= 1.0 and 0.0 <= scores["accuracy"] <= 1.0
    snn = str(d / "SS.pt")
    assert cli.main(["convert", s, "--calibration", "4", "--patch", "32", "--norm", "layer",
                     "--percentile", "max", "--thresholds", "2", "--out", snn]) == 0
    converted = load_checkpoint(snn)
    assert converted.spiking["normalization"] == "layer" and converted.spiking["percentile"] is None
    assert converted.spiking["thresholds"] == [2.0, 1.0]
    capsys.readouterr()
    assert cli.main(["evaluate", snn, "--steps", "2"]) == 0
    assert "f1 " in capsys.readouterr().out


def test_evaluate_missing_file(tmp_path, capsys):
    missing = tmp_path / "missing.pt"
    assert cli.main(["evaluate", str(missing)]) == 2
    line = one_error_line(capsys)
    assert str(missing) in line


def test_convert_wrong_kind(denoise_chain, tmp_path, capsys):
    _, (_, y, _), _ = denoise_chain
    out = tmp_path / "W.pt"
    capsys.readouterr()
    assert cli.main(["convert", y, "--out", str(out)]) == 2
    assert "expected an ANN checkpoint, got an SNN one" in one_error_line(capsys)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert cli.main(["finetune", denoise_chain[1][0], "--steps", "2", "--out", str(out)]) == 2
    assert "got an ANN one" in one_error_line(capsys)


def test_steps_zero(denoise_chain, tmp_path, capsys):
    _, (_, y, z), _ = denoise_chain
    capsys.readouterr()
    assert cli.main(["evaluate", z, "--steps", "0"]) == 2
    assert "time steps" in one_error_line(capsys)
    assert cli.main(["finetune", y, "--steps", "0", "--out", str(tmp_path / "F.pt")]) == 2
    assert "time steps" in one_error_line(capsys)
    assert not (tmp_path / "F.pt").exists()


@pytest.mark.parametrize("argv", [
    ["convert", "x.pt", "--out", "y.pt", "--thresholds", "1,2"],
    ["convert", "x.pt", "--out", "y.pt", "--thresholds", "0"],
    ["convert", "x.pt", "--out", "y.pt", "--thresholds", "2,1,-0.5"],
    ["convert", "x.pt", "--out", "y.pt", "--thresholds", "two"],
    ["convert", "x.pt", "--out", "y.pt", "--percentile", "high"],
    ["convert", "x.pt", "--out", "y.pt", "--norm", "channel"],
    ["train", "--task", "classify", "--out", "y.pt"],
    ["train", "--channels", "2", "--out", "y.pt"],
    ["evaluate"],
    [],
])
def test_argparse_errors_exit_2(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, words", [
    (["--patch", "30"], "multiple of 2**depth"),
    (["--epochs", "0"], "epochs"),
    (["--batch", "0"], "batch"),
    (["--width", "0"], "width"),
])
def test_train_config_errors(extra, words, tmp_path, capsys):
    out = tmp_path / "B.pt"
    argv = ["train", "--task", "denoise", *TINY, *extra, "--out", str(out)]
    assert cli.main(argv) == 2
    assert words in one_error_line(capsys)
    assert not out.exists()


def test_convert_calibration_zero(denoise_chain, tmp_path, capsys):
    _, (x, _, _), _ = denoise_chain
    capsys.readouterr()
    assert cli.main(["convert", x, "--calibration", "0", "--patch", "32", "--out", str(tmp_path / "Y.pt")]) == 2
    assert "calibration" in one_error_line(capsys)


def test_thresholds_parser():
    from toolchain.cli import build_parser
    parse = build_parser().parse_args
    assert parse(["convert", "a", "--out", "b"]).thresholds == (2.0, 1.0, 0.5, 0.25)
    assert parse(["convert", "a", "--out", "b", "--thresholds", "4"]).thresholds == (2.0, 1.0, 0.5, 0.25)
    assert parse(["convert", "a", "--out", "b", "--thresholds", "1.0"]).thresholds == (1.0,)
    assert parse(["convert", "a", "--out", "b", "--thresholds", "3,1.5"]).thresholds == (3.0, 1.5)
    assert parse(["convert", "a", "--out", "b", "--percentile", "max"]).percentile is None
    assert parse(["convert", "a", "--out", "b", "--percentile", "99"]).percentile == 99.0
