"""Bad .net files: each corruption gives a one-line NetFileError naming the file, the layer (index and
name) and the key; unreadable files; fuzzed files give a network or a NetFileError, never another exception."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from netx_export import FORMAT_VERSION, read_network, write_network
from toolchain.errors import NetFileError
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings


def _build(config: UNetConfig, lowering: str, seed: int = 0, hw: tuple[int, int] = (16, 16)):
    torch.manual_seed(seed)
    ann = UNet(config)
    calib = torch.rand(4, config.in_channels, *hw)
    snn, info = convert(ann, calib, ConversionSettings())
    return export_network(snn, info, hw, QuantSettings(steps=4), lowering=lowering)


@pytest.fixture(scope="module")
def gray_bytes(tmp_path_factory):
    """The bytes of a valid file of the gray (width 4, depth 2), compartments network (mutated by the tests)."""
    path = tmp_path_factory.mktemp("valid") / "gray.net"
    write_network(_build(UNetConfig("denoise", 1, 1, width=4, depth=2), "compartments")[0], path)
    return path.read_bytes()

# --- bad files ---------------------------------------------------------------------------------

def _set(f: h5py.File, key: str, value) -> None:
    del f[key]
    f.create_dataset(key, data=value)


def _scale(f: h5py.File, key: str, factor: int) -> None:
    _set(f, key, f[key][()].astype(np.int64) * factor)     # widened: the file may store int8 / int16


def _poke(f: h5py.File, key: str, index: tuple, value) -> None:
    array = f[key][()].astype(np.int64)
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
