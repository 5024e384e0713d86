"""Simulating a folder in batches and with worker processes gives exactly the files of one image
at a time: output.npy, output.png and spikes.json (but for its wall time) per image; lava-cpu's
batched Lava runs also give the reference simulator's outputs."""
from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from cli_helpers import read_outputs

import cli


@pytest.fixture(scope="module")
def setup(tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    images = d / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    # three sizes: 16x16 (x3), 18x20 (pads to 20x20, x2), 24x16 (x2), interleaved so groups form across the list
    small = d / "small"                 # for loihi2, which also writes a report and plots per image
    small.mkdir()
    pair = d / "pair"                   # for lava-cpu (seconds per Lava run): two images of one size
    pair.mkdir()
    for k, (h, w) in enumerate([(16, 16), (18, 20), (16, 16), (24, 16), (18, 20), (16, 16), (24, 16)]):
        pixels = rng.integers(0, 256, (h, w), dtype=np.uint8)
        iio.imwrite(images / f"im{k}.png", pixels)
        if k < 4:
            iio.imwrite(small / f"im{k}.png", pixels)
        if k in (0, 2):
            iio.imwrite(pair / f"im{k}.png", pixels)
    return tiny.net(3, 16), images, small, pair


_read = read_outputs


@pytest.mark.parametrize("backend", ["reference", "loihi2", "lava-cpu"])
def test_batches_and_workers_give_the_same_files(setup, tmp_path, backend, lava_cleanup):
    net, images, small, pair = setup
    images, names = {"reference": (images, range(7)), "loihi2": (small, range(4)), "lava-cpu": (pair, (0, 2))}[backend]
    runs = {}
    configs = {"reference": ((1, 1), (2, 2), (3, 1)), "loihi2": ((1, 1), (2, 2)),   # loihi2 also plots
               "lava-cpu": ((1, 1), (2, 1))}[backend]                               # Lava: batches, no pool
    for batch, workers in configs:
        out = tmp_path / f"b{batch}w{workers}"
        argv = ["simulate", str(net), "--backend", backend, "--input", str(images), "--add-noise", "20",
                "--out", str(out), "--batch", str(batch), "--workers", str(workers),
                "--json", str(tmp_path / f"b{batch}w{workers}.json")]
        assert cli.main(argv) == 0
        runs[(batch, workers)] = _read(out)
        report = json.loads((tmp_path / f"b{batch}w{workers}.json").read_text())
        assert [row["image"] for row in report["images"]] == [f"im{k}" for k in names]
    reference = runs[(1, 1)]
    assert len([n for n in reference if n.endswith("output.npy")]) == len(names)
    assert sum(v["total"] for n, v in reference.items() if n.endswith("spikes.json")) > 0
    for key, files in runs.items():
        assert files.keys() == reference.keys(), key
        for name, content in reference.items():
            assert files[name] == content, (key, name)
    if backend == "lava-cpu":                      # and they are the reference simulator's numbers
        out = tmp_path / "ref"
        assert cli.main(["simulate", str(net), "--input", str(images), "--add-noise", "20", "--out", str(out)]) == 0
        ref = _read(out)
        for name, content in reference.items():
            if name.endswith(("output.npy", "output.png")):
                assert ref[name] == content, name
            elif name.endswith("spikes.json"):
                assert {k: v for k, v in ref[name].items() if k != "backend"} == \
                    {k: v for k, v in content.items() if k != "backend"}, name
