"""The deployment verbs end to end through cli.main on a tiny network: export (table, file, both
lowerings, byte-reproducible), simulate (padding and crop, outputs per image, folders), report, and
one-line errors that leave no output behind."""
from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from cli_helpers import one_error_line

import cli
from netx_export import read_network
from toolchain.files import MANIFEST
from toolchain.ir import MultiThreshold, QuantizedNetwork, resize
from toolchain.simulators.reference import ReferenceSimulator

MT_LAYERS = 14



def _write_gray(path: Path, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.clip(128 + 80 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.normal(0, 10, (h, w)), 0, 255)
    image = image.astype(np.uint8)
    iio.imwrite(path, image)
    return image


@pytest.fixture(scope="module")
def chain(tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("deploy")
    image = _write_gray(d / "IMG.png", 35, 38, seed=0)     # H=35, W=38: neither a multiple of 4
    return {"dir": d, "ann": tiny.ann, "snn": tiny.snn, "net": tiny.net(3, 32), "graded": tiny.net(3, 32, "graded"),
            "img": d / "IMG.png", "pixels": image}


def _files(folder: Path) -> list[str]:
    """What a run wrote into ``folder`` (less the manifest that marks it as this toolchain's output)."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != MANIFEST)


@pytest.mark.parametrize("lowering", ["compartments", "graded"])
def test_export_prints_the_table_and_writes_the_file(chain, tmp_path, capsys, lowering):
    out = tmp_path / "E.net"
    capsys.readouterr()
    code = cli.main(["export", str(chain["snn"]), "-o", str(out), "--steps", "3", "--input-size", "32",
                     "--mt-lowering", lowering])
    assert code == 0
    text = capsys.readouterr().out
    for name in ("encoders.0.conv1", "downs.1.pool", "ups.0.upconv", "concat1", "head"):
        assert name in text
    assert "CxHxW" in text and "1x32x32" in text
    assert f"latency 14 steps; T = 3; lowering {lowering}" in text and f"wrote {out}" in text
    assert out.is_file()
    network = read_network(out)
    assert isinstance(network, QuantizedNetwork) and network.meta.lowering == lowering and network.meta.steps == 3
    assert network.input.shape == (1, 32, 32) and network.latency == 14
    assert len([l for l in network.neuron_layers if isinstance(l.neuron, MultiThreshold)]) == MT_LAYERS


def test_export_is_byte_reproducible(chain, tmp_path):
    again = tmp_path / "again.net"
    assert cli.main(["export", str(chain["snn"]), "-o", str(again), "--steps", "3", "--input-size", "32"]) == 0
    assert again.read_bytes() == chain["net"].read_bytes()
    other = tmp_path / "other.net"      # a different T gives a different file (the comparison can fail)
    assert cli.main(["export", str(chain["snn"]), "-o", str(other), "--steps", "4", "--input-size", "32"]) == 0
    assert other.read_bytes() != chain["net"].read_bytes()


def test_simulate_one_image_with_noise(chain, tmp_path, capsys):
    out = tmp_path / "D"
    capsys.readouterr()
    code = cli.main(["simulate", str(chain["net"]), "--backend", "reference", "--input", str(chain["img"]),
                     "--out", str(out), "--add-noise", "25"])
    assert code == 0
    assert "IMG:" in capsys.readouterr().out
    assert _files(out) == ["output.npy", "output.png", "spikes.json"]
    output = np.load(out / "output.npy")
    assert output.shape == (1, 35, 38) and output.dtype == np.float64 and np.isfinite(output).all()
    picture = iio.imread(out / "output.png")
    assert picture.shape == (35, 38) and picture.dtype == np.uint8
    spikes = json.loads((out / "spikes.json").read_text())
    assert spikes["backend"] == "reference" and spikes["image"] == "IMG" and spikes["steps"] == 3
    network = read_network(chain["net"])
    mt = [l for l in network.neuron_layers if isinstance(l.neuron, MultiThreshold)]
    assert list(spikes["layers"]) == [l.name for l in mt]
    for layer in mt:
        row = spikes["layers"][layer.name]
        assert len(row["per_threshold"]) == 4 and all(isinstance(c, int) and c >= 0 for c in row["per_threshold"])
        assert row["total"] == sum(row["per_threshold"])
        assert row["thresholds"] == list(layer.neuron.thresholds)
    assert spikes["total"] == sum(r["total"] for r in spikes["layers"].values()) > 0
    # the same seed gives the same noise and output; the noise really was added
    again = tmp_path / "D2"
    assert cli.main(["simulate", str(chain["net"]), "--input", str(chain["img"]), "--out", str(again),
                     "--add-noise", "25"]) == 0
    np.testing.assert_array_equal(np.load(again / "output.npy"), output)
    clean = tmp_path / "D3"
    assert cli.main(["simulate", str(chain["net"]), "--input", str(chain["img"]), "--out", str(clean)]) == 0
    assert not np.array_equal(np.load(clean / "output.npy"), output)


def test_simulate_pads_runs_and_crops_like_the_reference(chain, tmp_path):
    """Without noise: output.npy is the reference simulation of the edge-padded image, cropped;
    output.png is the restored image clip(x - noise map)."""
    out = tmp_path / "D"
    assert cli.main(["simulate", str(chain["net"]), "--input", str(chain["img"]), "--out", str(out)]) == 0
    x = chain["pixels"].astype(np.float32)[None] / 255.0                      # (1, 35, 38)
    padded = np.pad(x, ((0, 0), (0, 1), (0, 2)), mode="edge")[None]          # to 36 x 40
    network = read_network(chain["net"])
    result = ReferenceSimulator(resize(network, (36, 40))).run(padded, 3)
    expected = result.output[0, :, :35, :38]
    np.testing.assert_array_equal(np.load(out / "output.npy"), expected)
    picture = np.round(np.clip(x - expected, 0, 1) * 255).astype(np.uint8)[0]
    np.testing.assert_array_equal(iio.imread(out / "output.png"), picture)
    # the graded file is the same network, simulated the other way: identical results
    graded = tmp_path / "G"
    assert cli.main(["simulate", str(chain["graded"]), "--input", str(chain["img"]), "--out", str(graded)]) == 0
    np.testing.assert_array_equal(np.load(graded / "output.npy"), expected)
    a, b = (json.loads((p / "spikes.json").read_text())["layers"] for p in (out, graded))
    assert a == b


def test_simulate_a_folder(chain, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    _write_gray(folder / "one.png", 35, 38, seed=1)
    _write_gray(folder / "two.png", 21, 16, seed=2)
    out = tmp_path / "D"
    assert cli.main(["simulate", str(chain["net"]), "--input", str(folder), "--out", str(out), "--steps", "2"]) == 0
    assert _files(out) == ["one", "one/output.npy", "one/output.png", "one/spikes.json",
                           "two", "two/output.npy", "two/output.png", "two/spikes.json"]
    assert np.load(out / "one" / "output.npy").shape == (1, 35, 38)
    assert np.load(out / "two" / "output.npy").shape == (1, 21, 16)
    assert iio.imread(out / "two" / "output.png").shape == (21, 16)
    assert json.loads((out / "two" / "spikes.json").read_text())["steps"] == 2


def test_report(chain, tmp_path, capsys):
    out = tmp_path / "R"
    capsys.readouterr()
    assert cli.main(["report", str(chain["net"]), "--out", str(out), "--steps", "3"]) == 0
    text = capsys.readouterr().out
    assert "T=3" in text and f"wrote {out}/report.json" in text
    for name in ("report.json", "report.md", "spikes_per_layer.png", "firing_rate.png", "energy_breakdown.png",
                 "core_utilization.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in ("spikes_per_layer.png", "firing_rate.png"):
        assert iio.imread(out / name).ndim == 3
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["steps"] == 3 and report["summary"]["spikes"] > 0
    assert "encoders.0.conv1" in (out / "report.md").read_text()


def test_export_errors_leave_no_file(chain, tmp_path, capsys):
    out = tmp_path / "X.net"
    capsys.readouterr()
    assert cli.main(["export", str(tmp_path / "missing.pt"), "-o", str(out)]) == 2
    assert "missing.pt" in one_error_line(capsys)
    assert cli.main(["export", str(chain["ann"]), "-o", str(out)]) == 2     # an ANN, not a Spiking-UNet
    one_error_line(capsys)
    assert cli.main(["export", str(chain["snn"]), "-o", str(out), "--steps", "0"]) == 2
    assert "time steps" in one_error_line(capsys)
    assert cli.main(["export", str(chain["snn"]), "-o", str(out), "--steps", "-2"]) == 2
    one_error_line(capsys)
    assert _files(tmp_path) == []


def test_simulate_errors_leave_no_output(chain, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.net"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    out = tmp_path / "D"
    capsys.readouterr()
    assert cli.main(["simulate", str(corrupt), "--input", str(chain["img"]), "--out", str(out)]) == 2
    assert "corrupt.net" in one_error_line(capsys)
    assert cli.main(["simulate", str(chain["net"]), "--input", str(chain["img"]), "--out", str(out),
                     "--steps", "0"]) == 2
    assert "time steps" in one_error_line(capsys)
    assert cli.main(["simulate", str(chain["net"]), "--input", str(tmp_path / "nope.png"), "--out", str(out)]) == 2
    assert "nope.png" in one_error_line(capsys)
    assert cli.main(["simulate", str(tmp_path / "none.net"), "--input", str(chain["img"]), "--out", str(out)]) == 2
    one_error_line(capsys)
    assert cli.main(["report", str(chain["net"]), "--out", str(out), "--steps", "0"]) == 2
    one_error_line(capsys)
    assert not out.exists()
    with pytest.raises(SystemExit) as exc:
        cli.main(["simulate", str(chain["net"]), "--backend", "bogus", "--input", str(chain["img"]),
                  "--out", str(out)])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    assert not out.exists()
