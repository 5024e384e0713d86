"""Stock lava-dl netx files through `simulate` (reference, lava-cpu, loihi2) and `report`: format detection,
frames given as lava-dl's examples give them (image, .npy frame, the input layer's bias, zero), netx's reset
schedule, the per-image outputs, and the one-line errors."""
from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from cli_helpers import one_error_line
from lava_data import GTS, ROOT

import cli
from netx_export import netx_format, read_any, read_netx
from toolchain.simulators.physical import simulate_cuba
from toolchain.verbs.stock_inputs import schedule, stock_frames, transform

pytestmark = pytest.mark.skipif(not (ROOT / "tiny.net").exists(), reason="lava-dl's netx test data is not installed")
TINY, PILOT = ROOT / "tiny.net", GTS / "pilotnet_lif/network.net"


def test_format_detection(tiny):
    assert netx_format(TINY) == "stock" and netx_format(tiny.net()) == "spiking-unet"
    assert type(read_any(TINY)).__name__ == "StockNetwork" and type(read_any(tiny.net())).__name__ == "QuantizedNetwork"


def test_frames_as_lava_dl_gives_them(tmp_path):
    net = read_netx(PILOT)
    image = np.load(GTS / "pilotnet_lif/image.npy")                          # (x, y, z) int32 bias mantissas
    (frame,) = stock_frames(GTS / "pilotnet_lif/image.npy", net)
    np.testing.assert_array_equal(frame.bias, image.transpose(2, 1, 0))
    np.save(tmp_path / "chw.npy", image.transpose(2, 1, 0).astype(np.int64))   # (C, H, W) is accepted too
    np.testing.assert_array_equal(stock_frames(tmp_path / "chw.npy", net)[0].bias, frame.bias)
    # a float frame in [0, 1] goes through lava-dl's PilotNetDataset transform: int32(2 w x - w + b), w 40, b 36
    x = np.random.default_rng(0).random((3, 66, 200)) * 0.9 + 0.05
    np.save(tmp_path / "frame.npy", x.transpose(2, 1, 0))
    got = stock_frames(tmp_path / "frame.npy", net)[0].bias
    np.testing.assert_array_equal(got, (2 * 40 * x - 40 + 36).astype(np.int32))
    # an image file: read, resized to the input's 66 x 200, transformed the same way
    iio.imwrite(tmp_path / "photo.png", (np.random.default_rng(1).random((132, 400, 3)) * 255).astype(np.uint8))
    photo = stock_frames(tmp_path / "photo.png", net)[0].bias
    assert photo.shape == (3, 66, 200) and photo.min() >= -4 and photo.max() <= 76
    assert (stock_frames("zero", net)[0].bias == 0).all()
    tiny = read_netx(TINY)                             # tinynet's input_bias.npy: float64 holding integers
    assert stock_frames(GTS / "tinynet/input_bias.npy", tiny)[0].bias.max() == 60
    np.testing.assert_array_equal(transform(tiny, np.ones((3, 16, 16))), np.full((3, 16, 16), 2 * 36 - 36 + 34))


def test_schedule_follows_netx():
    net = read_netx(PILOT)
    s = schedule(net, None, 16, 3)
    assert (s.steps, s.steps_per_inference, s.window) == (32, 16, (16, 32))
    assert schedule(net, None, None).window == (0, 16)                       # the file's tSample
    assert schedule(net, 40, 16).window == (24, 40)


def test_simulate_reference_on_a_stock_file(tmp_path):
    out = tmp_path / "sim"
    assert cli.main(["simulate", str(TINY), "--input", str(GTS / "tinynet/input_bias.npy"), "--reset-interval", "17",
                     "--out", str(out)]) == 0
    net = read_netx(TINY)
    bias = np.load(GTS / "tinynet/input_bias.npy").transpose(2, 1, 0).astype(np.int64)
    ref = simulate_cuba(net, bias, 34, reset_interval=17)
    spikes = json.loads((out / "spikes.json").read_text())
    assert spikes["steps"] == 34 and spikes["window"] == [17, 34]
    for name, s in ref.spikes.items():
        assert spikes["layers"][name]["total"] == int(s[17:34].sum()) and spikes["layers"][name]["total_run"] == s.sum()
    rate = np.load(out / "output.npy")
    np.testing.assert_allclose(rate, ref.spikes["conv2"][17:34, 0].sum(0) / 17)
    raster = iio.imread(out / "output.png")
    assert raster.shape == (36 * 8, 34 * 8)                                  # 36 output neurons x 34 steps
    assert (raster > 0).sum() // 64 == ref.spikes["conv2"][:, 0].sum()


def test_simulate_loihi2_and_report_on_pilotnet(tmp_path, capsys):
    out = tmp_path / "sim"
    argv = ["--input", "zero", "--reset-interval", "16", "--reset-offset", "3"]
    assert cli.main(["simulate", str(PILOT), "--backend", "loihi2", *argv, "--out", str(out),
                     "--json", str(tmp_path / "s.json")]) == 0
    printed = capsys.readouterr().out
    assert "74 cores on 1 chip(s), 151.3 us per step" in printed and "int8" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["network"]["kind"] == "stock netx" and report["lowering"] == "binary"
    assert [r["cores"] for r in report["layers"]] == [13, 25, 13, 3, 3, 2, 12, 1, 1, 1]
    assert report["totals"]["synops_nonzero"] == 36_315_366 and report["timing"]["busiest_layer"] == "conv3"
    assert (out / "report.md").read_text().count("| dense7 |") == 2 and (out / "core_utilization.png").is_file()
    rep = tmp_path / "rep"
    assert cli.main(["report", str(PILOT), *argv, "--out", str(rep)]) == 0
    assert json.loads((rep / "report.json").read_text())["totals"] == report["totals"]
    summary = json.loads((tmp_path / "s.json").read_text())["images"][0]["report"]
    assert summary["cores"] == 74 and summary["energy_profile_low_j"] < summary["energy_profile_j"]


@pytest.mark.lava
def test_simulate_lava_cpu_on_a_stock_file_equals_reference(tmp_path):
    frame = ["--input", str(GTS / "tinynet/input_bias.npy"), "--reset-interval", "17"]
    assert cli.main(["simulate", str(TINY), *frame, "--out", str(tmp_path / "ref")]) == 0
    assert cli.main(["simulate", str(TINY), "--backend", "lava-cpu", *frame, "--out", str(tmp_path / "lava")]) == 0
    ref, lava = (json.loads((tmp_path / d / "spikes.json").read_text()) for d in ("ref", "lava"))
    assert ref["layers"] == lava["layers"] and ref["total"] > 0
    np.testing.assert_array_equal(np.load(tmp_path / "ref/output.npy"), np.load(tmp_path / "lava/output.npy"))


def test_stock_errors_are_one_line(tiny, tmp_path, capsys):
    out = str(tmp_path / "o")
    assert cli.main(["report", str(PILOT), "--out", out]) == 2
    assert "needs an input" in one_error_line(capsys)
    assert cli.main(["simulate", str(tiny.net()), "--input", str(GTS / "tinynet/input_bias.npy"), "--reset-interval",
                     "4", "--out", out]) == 2
    assert "--reset-interval" in one_error_line(capsys)
    np.save(tmp_path / "bad.npy", np.zeros((5, 5)))
    assert cli.main(["simulate", str(TINY), "--input", str(tmp_path / "bad.npy"), "--out", out]) == 2
    assert "does not fit the input layer (3, 16, 16)" in one_error_line(capsys)
    assert cli.main(["simulate", str(TINY), "--input", "zero", "--add-noise", "5", "--out", out]) == 2
    assert "--add-noise" in one_error_line(capsys)
    assert cli.main(["simulate", str(TINY), "--input", "zero", "--batch", "2", "--out", out]) == 2
    assert "--batch" in one_error_line(capsys)
    assert cli.main(["simulate", str(TINY), "--input", "zero", "--reset-interval", "0", "--out", out]) == 2
    assert "reset interval" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()
