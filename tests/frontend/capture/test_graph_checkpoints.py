"""Checkpoints of foreign networks (version 2: task spec + layer graph), the structure JSON, the task spec,
the state_dict wrapper, and ``cli.py convert`` on .pt2 files.

Round trips are exact (NIR style: structure -> JSON -> structure, checkpoint -> file -> checkpoint);
every tampered field is refused with one line naming the layer and the key, before anything is
built; the CLI maps the library's named settings to its flags.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from foreign_unets import DepthwiseUNet, milesial

import cli
from cli_helpers import one_error_line
from toolchain.errors import CheckpointError, ConfigError
from toolchain.frontend.capture import CaptureOptions, from_model
from toolchain.frontend.checkpoint import (
    load_ann,
    load_checkpoint,
    load_snn,
    save_checkpoint,
    snn_checkpoint,
    wrap_state_dict,
)
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.ir import FloatSynapses
from toolchain.ir.structure import structure_from_json, structure_json
from toolchain.tasks.spec import TaskSpec

SPEC = TaskSpec("segment", 1, 2)


@pytest.fixture(scope="module")
def converted():
    torch.manual_seed(0)
    snn, info = from_model(DepthwiseUNet().eval(), torch.rand(4, 1, 16, 16), SPEC)
    return snn, info


def _weights_from(network):
    by_name = {layer.name: layer for layer in network.synaptic_layers}

    def weights(layer, weight_shape, bias):
        syn = by_name[layer.name].synapses
        assert tuple(syn.weight.shape) == (weight_shape if weight_shape != (1,) else syn.weight.shape)
        return FloatSynapses(syn.weight, syn.bias if bias is not None else None)
    return weights


def test_structure_round_trips_exactly(converted):
    snn, _ = converted
    network = snn.to_network()
    data = json.loads(json.dumps(structure_json(network)))
    again = structure_from_json(data, _weights_from(network))
    assert structure_json(again) == data
    assert [(a.name, a.shape, a.inputs, a.depth) for a in again.layers] == \
        [(b.name, b.shape, b.inputs, b.depth) for b in network.layers]
    grouped = [layer for layer in again.synaptic_layers if getattr(layer, "groups", 1) > 1]
    assert grouped and all(layer.groups == layer.shape[0] for layer in grouped)     # depthwise survives


def test_graph_checkpoint_round_trip_is_byte_identical(converted, tmp_path):
    snn, info = converted
    path = tmp_path / "a.pt"
    save_checkpoint(path, snn_checkpoint(snn, info, {"note": "x"}))
    loaded, ckpt = load_snn(path)
    assert ckpt.spec == SPEC and ckpt.config is None and loaded.multiple == snn.multiple
    save_checkpoint(tmp_path / "b.pt", snn_checkpoint(loaded, ckpt.spiking, ckpt.meta))
    assert (tmp_path / "b.pt").read_bytes() == path.read_bytes()
    assert torch.load(path, weights_only=True)["version"] == 2


def _tampered(converted, tmp_path, edit):
    snn, info = converted
    payload = snn_checkpoint(snn, info, {}).to_payload()
    edit(payload)
    path = tmp_path / "t.pt"
    torch.save(payload, path)
    return path


def _layer(payload, name):
    return next(layer for layer in payload["graph"]["layers"] if layer["name"] == name)


TAMPERING = {
    "missing weight": (lambda p: p["state_dict"].pop("head.weight"), "missing head.weight"),
    "extra weight": (lambda p: p["state_dict"].update(extra=torch.zeros(1)), "unexpected 'extra'"),
    "wrong shape": (lambda p: p["state_dict"].update({"head.weight": torch.zeros(2, 5, 1, 1)}), "head.weight"),
    "huge channels": (lambda p: _layer(p, "head").update(shape=[1 << 20, 16, 16]), "'shape'"),
    "shape not derived": (lambda p: _layer(p, "head").update(shape=[2, 8, 8]), "its sources give"),
    "unknown kind": (lambda p: _layer(p, "head").update(kind="lstm"), "'kind'"),
    "bad name": (lambda p: _layer(p, "head").update(name="../head"), "'name'"),
    "nested name": (lambda p: _layer(p, "head").update(name="stem.x"), "nests in another"),
    "unknown source": (lambda p: _layer(p, "head").update(inputs=["nowhere"]), "'inputs'"),
    "bad groups": (lambda p: _layer(p, "enc.0.dw").update(groups=3), "'groups'"),
    "static elsewhere": (lambda p: _layer(p, "head").update(static=True), "'static'"),
    "bad thresholds": (lambda p: _layer(p, "stem")["neuron"].update(thresholds=[1.0, 2.0]), "decreasing"),
    "spec mismatch": (lambda p: p.update(spec={"task": "segment", "in_channels": 3, "out_channels": 2}),
                      "the task spec's channels"),
    "bad multiple": (lambda p: p["graph"].update(multiple=1 << 30), "'multiple'"),
    "graph for an ann": (lambda p: p.update(kind="ann"), "holds an SNN"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampered_graph_checkpoints_are_refused_by_name(converted, tmp_path, case):
    edit, fragment = TAMPERING[case]
    path = _tampered(converted, tmp_path, edit)
    with pytest.raises(CheckpointError) as info:
        load_snn(path) if case != "graph for an ann" else load_checkpoint(path)
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_task_spec_checks_its_values():
    assert TaskSpec.from_dict(SPEC.to_dict()) == SPEC
    for bad in ({"task": "segment", "in_channels": 1, "out_channels": 1}, {"task": "denoise", "in_channels": 1,
                "out_channels": 3}, {"task": "classify", "in_channels": 1, "out_channels": 2}):
        with pytest.raises(CheckpointError):
            TaskSpec.from_dict(bad)
    with pytest.raises(ConfigError, match="classes"):
        TaskSpec("segment", 1, 1)


def test_wrap_state_dict_of_this_toolchains_unet(tmp_path):
    config = UNetConfig("denoise", 1, 1, width=4, depth=2)
    torch.manual_seed(3)
    ann = UNet(config)
    path = tmp_path / "plain.pt"
    torch.save(ann.state_dict(), path)
    with pytest.raises(CheckpointError, match="wrap_state_dict"):
        load_checkpoint(path)
    save_checkpoint(tmp_path / "ann.pt", wrap_state_dict(torch.load(path, weights_only=True), config))
    wrapped, _ = load_ann(tmp_path / "ann.pt")
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(wrapped(x), ann.eval()(x))
    with pytest.raises(CheckpointError, match="does not match|has shape"):
        wrap_state_dict(ann.state_dict(), UNetConfig("denoise", 1, 1, width=8, depth=2))


@pytest.fixture(scope="module")
def pt2_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pt2")
    for name, model in (("milesial", milesial(False, classes=1)), ("depthwise", DepthwiseUNet(1, 1).eval())):
        torch.export.save(torch.export.export(model.eval(), (torch.rand(1, 1, 32, 32),)), d / f"{name}.pt2")
    return d


def test_cli_convert_pt2_then_finetune_and_export(pt2_files, tmp_path, capsys):
    src, out = str(pt2_files / "depthwise.pt2"), tmp_path / "snn.pt"
    assert cli.main(["convert", src, "--task", "denoise", "--calibration", "4", "--out", str(out),
                     "--json", str(tmp_path / "c.json")]) == 0
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["capture"]["exact"] and report["capture"]["fidelity"][0]["max_abs_error"] < 1e-5
    assert load_checkpoint(out).meta["converted_from"] == src
    assert cli.main(["finetune", str(out), "--steps", "3", "--epochs", "1", "--batches-per-epoch", "2",
                     "--batch", "2", "--patch", "32", "--out", str(tmp_path / "ft.pt")]) == 0
    assert cli.main(["export", str(tmp_path / "ft.pt"), "-o", str(tmp_path / "m.net"), "--input-size", "32"]) == 0


def test_cli_convert_reports_the_maxpool_cost(pt2_files, tmp_path):
    out = tmp_path / "m.pt"
    assert cli.main(["convert", str(pt2_files / "milesial.pt2"), "--task", "denoise", "--maxpool", "avg",
                     "--linear", "pair", "--calibration", "4", "--out", str(out),
                     "--json", str(tmp_path / "m.json")]) == 0
    capture = json.loads((tmp_path / "m.json").read_text())["capture"]
    assert not capture["exact"] and {"maxpool-as-avgpool", "signed-pair"} <= {r["kind"] for r in capture["rewrites"]}
    quality = capture["quality"]
    assert quality["metric"] == "psnr_sigma25" and np.isfinite([quality["original"], quality["converted_ann"]]).all()


@pytest.mark.parametrize("args,fragment", [
    ([], "--task"),
    (["--task", "denoise"], "--maxpool avg"),
    (["--task", "denoise", "--maxpool", "avg"], "--linear pair"),
    (["--task", "denoise", "--channels", "3"], "--channels is 3, the program has 1"),
    (["--task", "denoise", "--patch", "16"], "smaller than the program's export size"),
])
def test_cli_convert_pt2_errors_name_the_flag(pt2_files, tmp_path, capsys, args, fragment):
    code = cli.main(["convert", str(pt2_files / "milesial.pt2"), *args, "--out", str(tmp_path / "x.pt")])
    assert code == 2 and fragment in one_error_line(capsys)
    assert not (tmp_path / "x.pt").exists()


def test_cli_convert_ann_with_data_flag_rejects_pt2_flags(tmp_path, capsys):
    config = UNetConfig("denoise", 1, 1, width=4, depth=2)
    save_checkpoint(tmp_path / "ann.pt", wrap_state_dict(UNet(config).state_dict(), config))
    assert cli.main(["convert", str(tmp_path / "ann.pt"), "--task", "denoise", "--out", str(tmp_path / "s.pt")]) == 2
    assert "describe a .pt2 file" in one_error_line(capsys)
    assert cli.main(["convert", str(tmp_path / "ann.pt"), "--data", str(tmp_path / "nowhere"),
                     "--out", str(tmp_path / "s.pt")]) == 2
    assert "nowhere" in one_error_line(capsys)


def test_capture_options_are_checked():
    with pytest.raises(ConfigError, match="maxpool"):
        CaptureOptions(maxpool="max")   # type: ignore[arg-type]
