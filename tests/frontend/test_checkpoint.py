"""Checkpoints: round trips through toolchain.frontend.checkpoint, and every bad input refused as CheckpointError
naming the file; atomic writing."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from toolchain.files import atomic_path, write_bytes, write_json
from toolchain.frontend.checkpoint import FORMAT, VERSION, Checkpoint, load_checkpoint, save_checkpoint
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.errors import CheckpointError
from toolchain.frontend.checkpoint import ann_checkpoint, load_ann, load_any, load_snn, snn_checkpoint
from toolchain.frontend.unet import UNet, UNetConfig

CONFIG = UNetConfig("denoise", 1, 1, width=4, depth=2)



@pytest.fixture
def ann():
    torch.manual_seed(0)
    return UNet(CONFIG).eval()


@pytest.fixture
def ann_file(tmp_path, ann):
    path = tmp_path / "ann.pt"
    save_checkpoint(path, ann_checkpoint(ann, {"seed": 0, "note": "x"}))
    return path


@pytest.fixture
def snn_file(tmp_path, ann):
    torch.manual_seed(1)
    snn, spiking = convert(ann, torch.rand(2, 1, 32, 32), ConversionSettings(thresholds=(1.0, 0.5, 0.25)))
    path = tmp_path / "snn.pt"
    save_checkpoint(path, snn_checkpoint(snn, spiking, {"seed": 1}))
    return path, snn


def _refused(path, loader=load_checkpoint, match=None):
    with pytest.raises(CheckpointError, match=match) as info:
        loader(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    return message


def test_ann_round_trip(ann, ann_file):
    loaded, ckpt = load_ann(ann_file)
    assert ckpt.kind == "ann" and ckpt.config == CONFIG and ckpt.meta == {"seed": 0, "note": "x"}
    assert not loaded.training
    for k, v in ann.core.state_dict().items():
        assert torch.equal(loaded.core.state_dict()[k], v), k
    x = torch.rand(1, 1, 20, 20)
    with torch.no_grad():
        assert torch.equal(loaded(x), ann(x))
    assert isinstance(load_any(ann_file)[0], UNet)
    # the payload holds only plain data: it loads with weights_only=True and has the documented layout
    payload = torch.load(ann_file, weights_only=True)
    assert payload["format"] == FORMAT and payload["version"] == VERSION == 1
    assert payload["config"] == CONFIG.to_dict() and payload["spiking"] == {}


def test_snn_round_trip(snn_file):
    path, snn = snn_file
    loaded, ckpt = load_snn(path)
    assert ckpt.kind == "snn" and ckpt.spiking["thresholds"] == [1.0, 0.5, 0.25]
    assert loaded.thresholds == (1.0, 0.5, 0.25)
    assert set(ckpt.spiking["lambdas"]) >= {"encoders.0.conv1", "concat0", "downs.1.pool"}
    assert float(loaded.core.downs[0].pool.scale) == float(snn.core.downs[0].pool.scale) != 1.0
    x = torch.rand(1, 1, 32, 32)
    assert torch.equal(loaded.simulate(x, 5).output, snn.simulate(x, 5).output)
    model, _ = load_any(path)
    assert type(model).__name__ == "SpikingNetwork"


def test_not_a_file(tmp_path):
    message = _refused(tmp_path / "missing.pt")
    assert "no such checkpoint" in message
    _refused(tmp_path / "missing.pt", load_ann)
    _refused(tmp_path / "missing.pt", load_any)


def test_a_directory(tmp_path):
    folder = tmp_path / "ckpt.pt"
    folder.mkdir()
    _refused(folder)


def test_truncated_file(tmp_path, ann_file):
    data = ann_file.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    _refused(cut)
    _refused(cut, load_ann)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    _refused(empty)


def test_text_file(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("this is not a checkpoint\n" * 20)
    _refused(text)


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_pickle_that_would_run_code_is_refused(tmp_path, writer):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pt"
    payload = {"format": FORMAT, "version": VERSION, "kind": "ann", "config": CONFIG.to_dict(),
               "state_dict": {}, "meta": {"x": _Exploit(marker)}}
    if writer == "torch":
        torch.save(payload, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(payload, handle, protocol=2)
    assert not marker.exists()
    message = _refused(path)
    assert not marker.exists(), "loading the checkpoint ran code"
    if writer == "torch":
        assert "refused" in message


def test_dict_without_config(tmp_path, ann):
    path = tmp_path / "noconfig.pt"
    torch.save({"format": FORMAT, "version": VERSION, "kind": "ann", "state_dict": ann.core.state_dict()}, path)
    _refused(path, match="config")
    bad = tmp_path / "badconfig.pt"
    config = {**CONFIG.to_dict(), "width": 0}
    torch.save({"format": FORMAT, "version": VERSION, "kind": "ann", "config": config,
                "state_dict": ann.core.state_dict()}, bad)
    _refused(bad)


def test_not_our_format(tmp_path, ann):
    plain = tmp_path / "plain.pt"
    torch.save(ann.core.state_dict(), plain)      # a bare state_dict, as PyTorch users save them
    _refused(plain, match=FORMAT)
    listing = tmp_path / "list.pt"
    torch.save([1, 2, 3], listing)
    _refused(listing)


def test_wrong_kind(ann_file, snn_file):
    path, _ = snn_file
    assert "expected an ANN checkpoint, got an SNN one" in _refused(path, load_ann)
    assert "expected an SNN checkpoint, got an ANN one" in _refused(ann_file, load_snn)


def test_unknown_kind_and_version(tmp_path, ann_file):
    payload = torch.load(ann_file, weights_only=True)
    for key, value, words in (("version", 2, "version 2"), ("version", None, "version None"),
                              ("kind", "cnn", "kind 'cnn'")):
        path = tmp_path / f"{key}-{value}.pt"
        torch.save({**payload, key: value}, path)
        assert words in _refused(path)


def test_shape_mismatch(tmp_path, ann):
    state = dict(ann.core.state_dict())
    state["encoders.0.conv1.weight"] = torch.zeros(5, 1, 3, 3)
    path = tmp_path / "shape.pt"
    save_checkpoint(path, Checkpoint("ann", CONFIG, state))
    message = _refused(path, load_ann)
    assert "encoders.0.conv1.weight" in message and "(5, 1, 3, 3)" in message and "(4, 1, 3, 3)" in message
    # the same weights under a config with another width: mismatch too
    wide = tmp_path / "wide.pt"
    save_checkpoint(wide, Checkpoint("ann", UNetConfig("denoise", 1, 1, width=8, depth=2), ann.core.state_dict()))
    _refused(wide, load_ann)


def test_missing_and_unexpected_keys(tmp_path, ann):
    state = dict(ann.core.state_dict())
    del state["head.bias"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "keys.pt"
    save_checkpoint(path, Checkpoint("ann", CONFIG, state))
    message = _refused(path, load_ann)
    assert "head.bias" in message and "extra.weight" in message


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights(tmp_path, ann, bad):
    state = dict(ann.core.state_dict())
    state["ups.0.upconv.bias"] = state["ups.0.upconv.bias"].clone()
    state["ups.0.upconv.bias"][1] = bad
    path = tmp_path / "nan.pt"
    save_checkpoint(path, Checkpoint("ann", CONFIG, state))
    assert "ups.0.upconv.bias" in _refused(path, load_ann)


def test_snn_without_valid_thresholds(tmp_path, ann):
    for spiking in ({}, {"thresholds": [1.0, 2.0]}):
        path = tmp_path / "thr.pt"
        save_checkpoint(path, Checkpoint("snn", CONFIG, ann.core.state_dict(), spiking=spiking))
        _refused(path, load_snn)


def test_state_dict_not_tensors(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"format": FORMAT, "version": VERSION, "kind": "ann", "config": CONFIG.to_dict(),
                "state_dict": {"head.weight": [1.0, 2.0]}}, path)
    _refused(path, match="state_dict")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp != target
            tmp.write_bytes(b"half written")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("{broken")
            raise KeyboardInterrupt
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_save_failure_leaves_no_file(tmp_path):
    class Unsaveable(Checkpoint):
        def to_payload(self):
            raise RuntimeError("cannot serialize")

    target = tmp_path / "ckpt.pt"
    with pytest.raises(RuntimeError):
        save_checkpoint(target, Unsaveable("ann", CONFIG, {}))
    assert list(tmp_path.iterdir()) == []
