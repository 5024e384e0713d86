"""The netx-style .net file: round trip, byte stability, atomic writes, validation, fuzzing, layer table."""
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
from toolchain.ir.graph import output_hw
from netx_export.table import format_table, layer_table
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.errors import ExportError, NetFileError
from toolchain.lowering.lower import FORMAT_VERSION as TOOLCHAIN_FORMAT_VERSION
from toolchain.lowering.lower import export_network
from toolchain.ir.graph import Network, NeuronSpec
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


@pytest.fixture(scope="module")
def gray_bytes(networks, tmp_path_factory):
    """The bytes of a valid file of the gray, compartments network (mutated by the bad-file tests)."""
    path = tmp_path_factory.mktemp("valid") / "gray.net"
    write_network(networks[("gray", "compartments")][0], path)
    return path.read_bytes()


def assert_same_network(a: Network, b: Network) -> None:
    assert b.quantized is True and a.quantized is True
    assert a.meta == b.meta
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        for field in dataclasses.fields(la):
            va, vb = getattr(la, field.name), getattr(lb, field.name)
            if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
                assert isinstance(va, np.ndarray) and isinstance(vb, np.ndarray), (la.name, field.name)
                assert va.dtype == vb.dtype and va.shape == vb.shape, (la.name, field.name)
                assert np.array_equal(va, vb), (la.name, field.name)
            else:
                assert type(va) is type(vb) and va == vb, (la.name, field.name, va, vb)
        if la.neuron is not None:
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
        assert f["formatVersion"][()] == FORMAT_VERSION == TOOLCHAIN_FORMAT_VERSION
        assert list(f["layer"]) == [str(i) for i in range(len(net.layers))]   # creation order
        conv = f["layer/2"]
        assert conv["type"].shape == (1,) and conv["type"][0].decode("ascii") == "conv"   # netx NetDict reads this
        assert conv["shape"][()].tolist() == [4, 16, 16]    # (C, H, W), as stock netx files; netx reads (x, y, z)
        assert conv["weight"].shape == (4, 4, 3, 3) and conv["weight"].dtype == np.int64
        assert np.array_equal(conv["weight"][()], net.layers[2].weight)
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
    with pytest.raises(ExportError, match="quantized"):
        write_network(Network(net.layers, net.meta, quantized=False), target)
    for thresholds, reason in [((32768, 16384, 8192, 4095), "integer multiple"), ((8200, 4100, 2050, 1025), "64")]:
        bad = dataclasses.replace(net.layers[4], neuron=NeuronSpec("MT", thresholds))
        with pytest.raises(ExportError, match=rf"cannot write .*n\.net: layer 4 \(encoders.1.conv1\).*{reason}"):
            write_network(Network(net.layers[:4] + [bad] + net.layers[5:], net.meta, quantized=True), target)
    with pytest.raises(ExportError, match="JSON"):
        write_network(Network(net.layers, {**net.meta, "x": object()}, quantized=True), target)
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


# --- bad files ---------------------------------------------------------------------------------

def _set(f: h5py.File, key: str, value) -> None:
    del f[key]
    f.create_dataset(key, data=value)


def _scale(f: h5py.File, key: str, factor: int) -> None:
    _set(f, key, f[key][()] * factor)


def _poke(f: h5py.File, key: str, index: tuple, value) -> None:
    array = f[key][()]
    array[index] = value
    _set(f, key, array)


BAD = {   # name: (mutation of the gray compartments file, fragments the one-line message must hold)
    "missing format": (lambda f: f.__delitem__("format"), ["'format'", "missing"]),
    "wrong format": (lambda f: _set(f, "format", np.array([b"other"])), ["not a spiking-unet-netx file"]),
    "missing version": (lambda f: f.__delitem__("formatVersion"), ["'formatVersion'", "missing"]),
    "newer version": (lambda f: _set(f, "formatVersion", np.int64(FORMAT_VERSION + 1)),
                      [f"written by a newer toolchain: version {FORMAT_VERSION + 1} > {FORMAT_VERSION}"]),
    "version string": (lambda f: _set(f, "formatVersion", np.array([b"1"])), ["'formatVersion'", "integers"]),
    "missing meta": (lambda f: f.__delitem__("meta"), ["'meta'", "missing"]),
    "meta not json": (lambda f: _set(f, "meta/json", np.array([b"{oops"])), ["meta", "JSON"]),
    "meta weight bits": (lambda f: _set(f, "meta/json", np.array([b'{"lowering": "graded"}'])), ["weight_bits"]),
    "missing weight": (lambda f: f.__delitem__("layer/4/weight"), ["layer 4", "missing", "weight"]),
    "missing thresholds": (lambda f: f.__delitem__("layer/4/neuron/thresholds"), ["layer 4", "thresholds"]),
    "missing neuron": (lambda f: f.__delitem__("layer/4/neuron"), ["layer 4", "neuron"]),
    "missing delays": (lambda f: f.__delitem__("layer/10/delays"), ["layer 10", "delays"]),
    "missing layer": (lambda f: f.__delitem__("layer/5"), ["layer", "0..L-1"]),
    "float weight": (lambda f: _set(f, "layer/4/weight", f["layer/4/weight"][()].astype(float)),
                     ["layer 4 (encoders.1.conv1)", "'weight'", "integers"]),
    "string stride": (lambda f: _set(f, "layer/4/stride", np.array([b"1"])), ["layer 4", "'stride'", "integers"]),
    "int unit": (lambda f: _set(f, "layer/4/unit", np.int64(3)), ["layer 4", "'unit'", "float"]),
    "group for dataset": (lambda f: (f.__delitem__("layer/4/bias"), f.create_group("layer/4/bias")),
                          ["layer 4", "'bias'", "not a dataset"]),
    "weight shape": (lambda f: _set(f, "layer/4/weight", f["layer/4/weight"][:-1]), ["layer 4", "'weight'", "shape"]),
    "in channels": (lambda f: _set(f, "layer/4/inChannels", np.int64(5)), ["layer 4", "'inChannels'"]),
    "spatial shape": (lambda f: _set(f, "layer/4/shape", np.array([8, 8, 9])), ["layer 4", "'shape'", "8x9"]),
    "shape channels": (lambda f: _set(f, "layer/4/shape", np.array([9, 8, 8])), ["layer 4", "'outChannels'"]),
    "bias length": (lambda f: _set(f, "layer/4/bias", f["layer/4/bias"][:-1]), ["layer 4", "'bias'", "shape"]),
    "forward input": (lambda f: _set(f, "layer/4/inputs", np.array([6])), ["layer 4", "'inputs'", "earlier"]),
    "negative input": (lambda f: _set(f, "layer/4/inputs", np.array([-1])), ["layer 4", "'inputs'"]),
    "input out of range": (lambda f: _set(f, "layer/4/inputs", np.array([99])), ["layer 4", "'inputs'"]),
    "two inputs": (lambda f: _set(f, "layer/4/inputs", np.array([2, 3])), ["layer 4", "'inputs'", "exactly one"]),
    "concat channels": (lambda f: _set(f, "layer/10/shape", np.array([17, 8, 8])), ["layer 10", "channels"]),
    "concat offsets": (lambda f: _set(f, "layer/10/offsets", np.array([0, 7])), ["layer 10", "'offsets'"]),
    "concat layers": (lambda f: _set(f, "layer/10/layers", np.array([5, 8])), ["layer 10", "'layers'"]),
    "unsorted thresholds": (lambda f: _set(f, "layer/4/neuron/thresholds", f["layer/4/neuron/thresholds"][()][::-1]),
                            ["layer 4", "'thresholds'", "decreasing"]),
    "zero threshold": (lambda f: _poke(f, "layer/4/neuron/thresholds", (-1,), 0), ["layer 4", "'thresholds'"]),
    "threshold mantissa": (lambda f: _scale(f, "layer/4/neuron/thresholds", 2 ** 12),
                           ["layer 4", "'thresholds'", "outside"]),
    "spike weights": (lambda f: _set(f, "layer/4/neuron/spikeWeights", np.array([8, 4, 2, 2])),
                      ["layer 4", "'spikeWeights'"]),
    "vth mantissa": (lambda f: _set(f, "layer/4/neuron/vThMant", np.int64(1)), ["layer 4", "'vThMant'"]),
    "message bits": (lambda f: _set(f, "layer/4/neuron/messageBits", np.int64(4)), ["layer 4", "'messageBits'"]),
    "unknown layer type": (lambda f: _set(f, "layer/4/type", np.array([b"dense"])), ["layer 4", "unknown layer type"]),
    "unknown neuron type": (lambda f: _set(f, "layer/4/neuron/type", np.array([b"LIF"])),
                            ["layer 4", "unknown neuron type"]),
    "acc not last": (lambda f: (_set(f, "layer/16/neuron/type", np.array([b"ACC"])),
                                _set(f, "layer/16/neuron/compartments", np.int64(1))), ["layer 16", "ACC"]),
    "concat last": (lambda f: [f.__delitem__(f"layer/{i}") for i in (15, 16, 17)], ["layer 14", "ACC"]),
    "weight range": (lambda f: _poke(f, "layer/4/weight", (0, 0, 0, 0), 200), ["layer 4", "weight mantissa 200"]),
    "weight exp high": (lambda f: _set(f, "layer/4/weightExp", np.array([8])), ["layer 4", "weight exponent 8"]),
    "weight exp negative": (lambda f: _set(f, "layer/4/weightExp", np.array([-1])), ["layer 4", "weight exponent -1"]),
    "static exp": (lambda f: _set(f, "layer/1/weightExp", np.array([-9])), ["layer 1", "weight exponent -9"]),
    "weight exp count": (lambda f: _set(f, "layer/11/weightExp", np.array([2])), ["layer 11", "'weightExp'"]),
    "bias range": (lambda f: _poke(f, "layer/4/bias", (0,), 5000), ["layer 4", "bias mantissa 5000"]),
    "bias exp range": (lambda f: _poke(f, "layer/4/biasExp", (0,), 8), ["layer 4", "bias exponent 8"]),
    "delay range": (lambda f: _set(f, "layer/10/delays", np.array([62, 0])), ["layer 10", "delay 62"]),
    "delay mismatch": (lambda f: _set(f, "layer/10/delays", np.array([3, 0])), ["layer 10", "expected [4, 0]"]),
    "depth": (lambda f: _set(f, "layer/5/depth", np.int64(9)), ["layer 5", "'depth'"]),
    "concat depth": (lambda f: _set(f, "layer/10/depth", np.int64(7)), ["layer 10", "'depth'"]),
    "static misuse": (lambda f: _set(f, "layer/4/static", np.int64(1)), ["layer 4", "'static'"]),
    "duplicate name": (lambda f: _set(f, "layer/4/name", np.array([b"encoders.0.conv2"])), ["layer 4", "'name'"]),
    "non-square kernel": (lambda f: _set(f, "layer/4/kernelSize", np.array([3, 5])), ["layer 4", "square"]),
    "output padding": (lambda f: _set(f, "layer/9/outputPadding", np.array([2, 2])), ["layer 9", "'outputPadding'"]),
    "pool stride": (lambda f: _set(f, "layer/3/stride", np.array([1, 1])), ["layer 3", "'stride'"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_file_gives_one_line_error_naming_the_place(gray_bytes, tmp_path, name):
    mutate, fragments = BAD[name]
    path = tmp_path / "bad.net"
    path.write_bytes(gray_bytes)
    with h5py.File(path, "r+") as f:
        mutate(f)
    with pytest.raises(NetFileError) as info:
        read_network(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_unreadable_files(gray_bytes, tmp_path):
    cases = {"random.net": np.random.default_rng(0).bytes(4096), "truncated.net": gray_bytes[: len(gray_bytes) // 2],
             "empty.net": b"", "header-only.net": gray_bytes[:600]}
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(NetFileError, match=name):
            read_network(tmp_path / name)
    with pytest.raises(NetFileError, match="no such file"):
        read_network(tmp_path / "missing.net")
    with pytest.raises(NetFileError, match="not a file"):
        read_network(tmp_path)


# --- fuzzing -----------------------------------------------------------------------------------

def _random_array(rng: np.random.Generator):
    shape = tuple(int(s) for s in rng.integers(0, 4, size=rng.integers(0, 3)))
    choice = rng.integers(6)
    if choice == 0:
        return rng.normal(size=shape)
    if choice == 1:
        return rng.integers(-300, 300, size=shape)
    if choice == 2:
        return np.array([b"junk"])
    if choice == 3:
        return rng.integers(0, 2, size=shape).astype(bool)
    if choice == 4:
        return rng.integers(0, 2 ** 62, size=shape, dtype=np.int64).astype(np.uint64) * np.uint64(3)
    return np.int8(rng.integers(-5, 5))


@pytest.mark.timeout(60)
def test_fuzzed_files_give_a_network_or_net_file_error(tmp_path):
    """Byte flips, deleted keys and datasets replaced by random arrays: never another exception."""
    net, _ = _build(UNetConfig("denoise", 1, 1, width=2, depth=1), "graded", hw=(8, 8))
    valid = write_network(net, tmp_path / "valid.net").read_bytes()
    with h5py.File(tmp_path / "valid.net", "r") as f:
        names: list[str] = []
        f.visit(names.append)
        datasets = [n for n in names if isinstance(f[n], h5py.Dataset)]
    rng = np.random.default_rng(20240607)
    outcomes = {"network": 0, "error": 0}
    path = tmp_path / "fuzz.net"
    for case in range(120):
        mode = case % 3
        if mode == 0:
            data = bytearray(valid)
            for _ in range(rng.integers(1, 16)):
                data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
            path.write_bytes(bytes(data))
        else:
            path.write_bytes(valid)
            with h5py.File(path, "r+") as f:
                for _ in range(rng.integers(1, 4)):
                    key = (names if mode == 1 else datasets)[rng.integers(len(names if mode == 1 else datasets))]
                    if key in f:
                        del f[key]
                        if mode == 2:
                            f.create_dataset(key, data=_random_array(rng))
        try:
            read_network(path)
            outcomes["network"] += 1
        except NetFileError as exc:
            assert "\n" not in str(exc)
            outcomes["error"] += 1
    assert outcomes["error"] > 80, outcomes


# --- the layer table ---------------------------------------------------------------------------

def test_output_hw_matches_torch():
    assert output_hw("conv", (16, 16), 3, 1, 1) == (16, 16)
    assert output_hw("conv", (15, 9), 3, 2, 0) == (7, 4)
    assert output_hw("convT", (4, 5), 3, 2, 1, 1) == (8, 10)
    assert output_hw("pool", (9, 8), 2, 2, 0) == (4, 4)
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
    assert first["nonzero"] == int(((net.layers[1].weight != 0) * np.multiply.outer(valid, valid)).sum())
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
    assert set(netx_export.__all__) == {"FORMAT_VERSION", "read_network", "write_network", "write_netx_compatible"}
