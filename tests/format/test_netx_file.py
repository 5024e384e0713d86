"""The netx-style .net file: round trip, byte stability, atomic writes, the writer's validation, layer table
(bad and fuzzed files: test_netx_file_errors.py)."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import netx_export
import netx_export.writer as writer_module
from netx_export import FORMAT_VERSION, read_network, write_network
from netx_export.schema import FORMAT_VERSION as SCHEMA_FORMAT_VERSION
from netx_export.table import format_table, layer_table
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.errors import ExportError
from toolchain.ir import (Conv, ConvTranspose, FloatNetwork, FloatSynapses, MultiThreshold, QuantizedNetwork, SumPool,
                          SynapticLayer, output_hw)
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings
from toolchain.simulators.reference import ReferenceSimulator
from toolchain.frontend.unet import UNet, UNetConfig

CONFIGS = {"gray": UNetConfig("denoise", 1, 1, width=4, depth=2),
           "color": UNetConfig("segment", 3, 2, width=4, depth=2)}
CASES = [(c, lowering) for c in CONFIGS for lowering in ("compartments", "graded")]
IDS = [f"{c}-{lowering}" for c, lowering in CASES]



def _build(config: UNetConfig, lowering: str, seed: int = 0, hw: tuple[int, int] = (16, 16)):
    torch.manual_seed(seed)
    ann = UNet(config)
    calib = torch.rand(4, config.in_channels, *hw)
    snn, info = convert(ann, calib, ConversionSettings())
    return export_network(snn, info, hw, QuantSettings(steps=4), lowering=lowering)


@pytest.fixture(scope="module")
def networks():
    """(network, reports) per (config, lowering), built the way the real pipeline does."""
    return {case: _build(CONFIGS[case[0]], case[1]) for case in CASES}


def assert_same_value(va, vb, where) -> None:
    """Equal values of the same types; dataclasses (synapses, neurons, sources) field by field, arrays
    by dtype, shape and contents."""
    if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
        assert isinstance(va, np.ndarray) and isinstance(vb, np.ndarray), where
        assert va.dtype == vb.dtype and va.shape == vb.shape, where
        assert np.array_equal(va, vb), where
    elif dataclasses.is_dataclass(va) and not isinstance(va, type):
        assert type(va) is type(vb), (where, type(va), type(vb))
        for field in dataclasses.fields(va):
            assert_same_value(getattr(va, field.name), getattr(vb, field.name), (*where, field.name))
    else:
        assert type(va) is type(vb) and va == vb, (where, va, vb)


def assert_same_network(a: QuantizedNetwork, b: QuantizedNetwork) -> None:
    assert isinstance(a, QuantizedNetwork) and isinstance(b, QuantizedNetwork)
    # the writer stamps the file's format version into the meta (an exported, never written network has none)
    assert b.meta == a.meta.replace(format_version=FORMAT_VERSION)
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        assert type(la) is type(lb), la.name
        for field in dataclasses.fields(la):
            assert_same_value(getattr(la, field.name), getattr(lb, field.name), (la.name, field.name))
        if isinstance(lb, SynapticLayer) and isinstance(lb.neuron, MultiThreshold):
            assert all(type(t) is int for t in lb.neuron.thresholds)


# --- round trip -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_round_trip_is_exact_byte_stable_and_simulates_identically(networks, case, tmp_path):
    net, _ = networks[case]
    first, second, third = tmp_path / "a.net", tmp_path / "b.net", tmp_path / "c.net"
    assert write_network(net, first) == first
    write_network(net, second)
    assert first.read_bytes() == second.read_bytes()
    back = read_network(first)
    assert_same_network(net, back)
    write_network(back, third)
    assert first.read_bytes() == third.read_bytes()
    assert net.meta.format_version is None
    assert_same_network(back, read_network(third))      # a read network round-trips exactly, meta included
    assert read_network(third).meta == back.meta
    assert sorted(os.listdir(tmp_path)) == ["a.net", "b.net", "c.net"]      # no temp files left
    umask = os.umask(0o022)
    os.umask(umask)
    assert first.stat().st_mode & 0o777 == 0o666 & ~umask
    images = np.random.default_rng(1).random((2, net.input.shape[0], 16, 16))
    a = ReferenceSimulator(net).run(images, 4)
    b = ReferenceSimulator(back).run(images, 4)
    assert np.array_equal(a.accumulator, b.accumulator)
    assert a.spike_counts == b.spike_counts and a.saturations == b.saturations
    assert sum(sum(c) for c in a.spike_counts.values()) > 0      # the comparison is not vacuous


def test_file_follows_netx_conventions(networks, tmp_path):
    net, _ = networks[("gray", "graded")]
    path = write_network(net, tmp_path / "n.net")
    with h5py.File(path, "r") as f:
        assert f["format"][0] == b"spiking-unet-netx"
        assert f["formatVersion"][()] == FORMAT_VERSION == SCHEMA_FORMAT_VERSION
        assert list(f["layer"]) == [str(i) for i in range(len(net.layers))]   # creation order
        conv = f["layer/2"]
        assert conv["type"].shape == (1,) and conv["type"][0].decode("ascii") == "conv"   # netx NetDict reads this
        assert conv["shape"][()].tolist() == [4, 16, 16]    # (C, H, W), as stock netx files; netx reads (x, y, z)
        assert conv["weight"].shape == (4, 4, 3, 3) and conv["weight"].dtype == np.int8      # 8-bit mantissas
        assert conv["bias"].dtype == np.int16 and conv["biasExp"].dtype == np.int8 == conv["weightExp"].dtype
        assert conv["stride"].dtype == np.int64 and conv["neuron/thresholds"].dtype == np.int64
        assert np.array_equal(conv["weight"][()], net.layers[2].synapses.weight)
        for key in ("inChannels", "outChannels", "kernelSize", "stride", "padding", "dilation", "groups",
                    "bias", "weightExp", "biasExp", "unit", "depth", "static", "inputs"):
            assert key in conv
        assert conv["unit"].dtype == np.float64 and conv["inputs"][()].tolist() == [1]
        neuron = conv["neuron"]
        thresholds = net.layers[2].neuron.thresholds
        assert neuron["type"][0] == b"MT" and neuron["iDecay"][()] == 4096 and neuron["vDecay"][()] == 0
        assert neuron["vThMant"][()] == thresholds[-1] >> 6 and neuron["refDelay"][()] == 1
        assert neuron["gradedSpike"][()] == 1 and neuron["messageBits"][()] == 4       # r = (8, 4, 2, 1)
        assert neuron["spikeWeights"][()].tolist() == [8, 4, 2, 1]
        assert f["layer/9/type"][0] == b"convT" and f["layer/9/weight"].shape == (16, 8, 3, 3)
        assert f["layer/9/outputPadding"][()].tolist() == [1, 1]
        concat = f["layer/10"]
        assert concat["type"][0] == b"concat" and concat["layers"][()].tolist() == [5, 9]
        assert concat["delays"][()].tolist() == [4, 0] and concat["offsets"][()].tolist() == [0, 8]
        assert f["layer/3/weight"].shape == (1,) and f["layer/17/neuron/type"][0] == b"ACC"
        timestamps = []
        f.visit(lambda name: timestamps.append(h5py.h5o.get_info(f[name].id).ctime))
        assert timestamps and not any(timestamps)
    with h5py.File(write_network(networks[("gray", "compartments")][0], tmp_path / "c.net"), "r") as f:
        assert f["layer/2/neuron/gradedSpike"][()] == 0 and f["layer/2/neuron/messageBits"][()] == 0


def _netx_netdict():
    """netx's own file reader class, loaded from lava-dl's netx/utils.py without importing the Lava
    runtime (importing ``lava.lib.dl.netx`` starts Lava's multiprocessing set-up)."""
    spec = importlib.util.find_spec("lava")
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = Path(base) / "lib" / "dl" / "netx" / "utils.py"
        if path.exists():
            module_spec = importlib.util.spec_from_file_location("_netx_utils_for_tests", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module.NetDict
    pytest.skip("lava-dl is not installed")


def test_netx_netdict_reads_the_netx_keys(networks, tmp_path):
    path = write_network(networks[("gray", "graded")][0], tmp_path / "n.net")
    net_dict = _netx_netdict()(str(path))
    try:
        layers = net_dict["layer"]
        assert len(layers) == 18 and layers[0]["type"] == "input"
        assert layers[2]["type"] == "conv" and list(layers[2]["shape"]) == [4, 16, 16]
        assert layers[2]["weight"].shape == (4, 4, 3, 3) and list(layers[2]["stride"]) == [1, 1]
        assert list(layers[2]["padding"]) == [1, 1] and list(layers[2]["dilation"]) == [1, 1]
        assert layers[2]["groups"] == 1 and layers[2]["bias"].shape == (4,)
        neuron = layers[2]["neuron"]
        assert neuron["type"] == "MT" and neuron["iDecay"] == 4096 and neuron["vDecay"] == 0
        assert neuron["vThMant"] == networks[("gray", "graded")][0].layers[2].neuron.thresholds[-1] >> 6
        assert layers[10]["type"] == "concat" and layers[17]["neuron"]["type"] == "ACC"
    finally:
        net_dict.f.close()


# --- the writer refuses ------------------------------------------------------------------------

def test_writer_refuses_float_and_invalid_networks(networks, tmp_path):
    net, _ = networks[("gray", "compartments")]
    target = tmp_path / "n.net"
    floating = FloatNetwork([dataclasses.replace(l, synapses=FloatSynapses(l.synapses.weight.astype(np.float32)))
                             if isinstance(l, SynapticLayer) else l for l in net.layers])
    with pytest.raises(ExportError, match="quantized"):
        write_network(floating, target)
    for thresholds, reason in [((32768, 16384, 8192, 4095), "integer multiple"), ((8200, 4100, 2050, 1025), "64")]:
        bad = dataclasses.replace(net.layers[4], neuron=MultiThreshold(thresholds))
        with pytest.raises(ExportError, match=rf"cannot write .*n\.net: layer 4 \(encoders.1.conv1\).*{reason}"):
            write_network(net.with_layers(net.layers[:4] + (bad,) + net.layers[5:]), target)
    with pytest.raises(ExportError, match="JSON"):
        write_network(QuantizedNetwork(net.layers, net.meta.replace(extra={**net.meta.extra, "x": object()})), target)
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_no_file_and_keeps_the_old_one(networks, tmp_path, monkeypatch):
    net, _ = networks[("gray", "compartments")]
    target = tmp_path / "n.net"
    real = writer_module.write_layer

    def failing(group, index, entries):
        if index == 5:
            raise RuntimeError("disk full")
        real(group, index, entries)

    monkeypatch.setattr(writer_module, "write_layer", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        write_network(net, target)
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(writer_module, "write_layer", real)
    write_network(net, target)
    before = target.read_bytes()
    monkeypatch.setattr(writer_module, "write_layer", failing)
    with pytest.raises(RuntimeError):
        write_network(net, target)
    assert os.listdir(tmp_path) == ["n.net"] and target.read_bytes() == before


# --- the layer table ---------------------------------------------------------------------------

def _geometry(cls, k, **kw):
    """A one-channel layer of type ``cls`` with kernel k (only its geometry matters to output_hw)."""
    return cls(name="s", shape=(1, 1, 1), inputs=("x",), neuron=MultiThreshold((1.0,)),
               synapses=FloatSynapses(np.zeros(1, np.float32)), kernel=(k, k), **kw)


def test_output_hw_matches_torch():
    assert output_hw(_geometry(Conv, 3, stride=(1, 1), padding=(1, 1)), (16, 16)) == (16, 16)
    assert output_hw(_geometry(Conv, 3, stride=(2, 2), padding=(0, 0)), (15, 9)) == (7, 4)
    assert output_hw(_geometry(ConvTranspose, 3, stride=(2, 2), padding=(1, 1), output_padding=(1, 1)),
                     (4, 5)) == (8, 10)
    assert output_hw(_geometry(SumPool, 2), (9, 8)) == (4, 4)
    x = torch.zeros(1, 1, 15, 9)
    assert tuple(torch.nn.functional.conv2d(x, torch.zeros(1, 1, 3, 3), stride=2).shape[2:]) == (7, 4)


def test_layer_table(networks):
    net, reports = networks[("gray", "compartments")]
    rows = layer_table(net, reports)
    assert [r["index"] for r in rows] == list(range(len(net.layers)))
    first = rows[1]
    # encoders.0.conv1: 1 -> 4 channels, 3x3, padding 1 on 16x16. Per row of outputs the taps that land on
    # real pixels are 2 + 14 * 3 + 2 = 46 (the border outputs lose one column), so 46 * 46 per channel pair.
    assert (first["name"], first["shape"], first["neurons"]) == ("encoders.0.conv1", "4x16x16", 1024)
    assert first["synapses"] == 46 * 46 * 1 * 4
    # Nonzero taps: tap row/column offset -1 or +1 lands on a real pixel for 15 of the 16 outputs, offset 0 for 16.
    valid = np.array([15, 16, 15])
    assert first["nonzero"] == int(((net.layers[1].synapses.weight != 0) * np.multiply.outer(valid, valid)).sum())
    # ups.0.upconv: convT 16 -> 8 channels, 4x4 -> 8x8, k3 s2 p1 op1: input column i reaches outputs
    # 2i-1..2i+1, of which 2 + 3 + 3 + 3 = 11 exist, so 11 * 11 per channel pair.
    assert rows[9]["synapses"] == 11 * 11 * 16 * 8
    assert rows[3]["synapses"] == 4 * 8 * 8 * 4                       # pool: every output sees 2x2 inputs
    assert rows[10]["synapses"] == 0 and rows[10]["delays"] == "4,0" and rows[11]["weight_exp"].count(",") == 1
    assert rows[1]["clipped_weights"] == reports[0].weight_overflow.count
    assert layer_table(net)[1]["clipped_weights"] is None
    text = format_table(rows)
    lines = text.splitlines()
    assert len(lines) == len(rows) + 2 and lines[0].split()[:3] == ["#", "layer", "type"]
    assert "encoders.0.conv1" in lines[2] and lines[-1].split()[0] == "total"
    column = lines[0].index("synapses") + len("synapses")     # numbers are right-aligned under the header
    assert lines[2][:column].endswith(str(first["synapses"]))
    assert format_table([]) == ""


def test_package_exports():
    assert set(netx_export.__all__) == {"FORMAT_VERSION", "read_netx", "read_network", "write_network",
                                        "write_netx_compatible", "netx_format", "read_any"}
