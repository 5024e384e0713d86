"""Issue 17: compact .net files. Mantissas and exponents in the narrowest integer dtype (int8 weights),
deflate where it pays, files of the old encoding (every integer int64) still load, lava-dl's netx
reader reads the compact files, and a file is no larger than its int8 weights plus 10 %."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from test_netx_file import assert_same_network

from netx_export import read_network, schema, write_network
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.ir import SynapticLayer
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings
from toolchain.simulators.reference import ReferenceSimulator

LEGACY = Path(__file__).parent / "data" / "legacy_v1_int64.net"   # written by the int64 writer (before issue 17)


def _build(width: int, depth: int, hw: int, weight_bits: int = 8, lowering: str = "graded"):
    torch.manual_seed(0)
    ann = UNet(UNetConfig("denoise", 1, 1, width=width, depth=depth))
    snn, info = convert(ann, torch.rand(2, 1, hw, hw), ConversionSettings())
    return export_network(snn, info, (hw, hw), QuantSettings(steps=4, weight_bits=weight_bits), lowering=lowering)[0]


def _weights(net) -> int:
    return sum(int(np.asarray(layer.synapses.weight).size) for layer in net.synaptic_layers)


def _datasets(path: Path) -> dict[str, h5py.Dataset]:
    out: dict[str, tuple] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, (obj.dtype, obj.compression, obj.shuffle))
                     if isinstance(obj, h5py.Dataset) else None)
    return out


def test_narrowest_int_and_entropy():
    assert [schema.narrowest_int(np.array(v)) for v in ([-128, 127], [128], [-129], [2 ** 15], [-2 ** 31 - 1], [])] \
        == [np.int8, np.int16, np.int16, np.int32, np.int64, np.int8]
    assert schema.byte_entropy(np.zeros(1000, np.int8)) == 0.0
    assert schema.byte_entropy(np.arange(256 * 8).astype(np.uint8)) == pytest.approx(8.0)
    # int16 planes: low bytes uniform (8 bits), high bytes constant (0 bits) -> 4 bits per byte
    assert schema.byte_entropy(np.tile(np.arange(256, dtype=np.int16), 8)) == pytest.approx(4.0)
    uniform = np.random.default_rng(0).integers(-128, 128, 1 << 14).astype(np.int8)
    assert not schema.compression_pays(uniform) and schema.compression_pays(uniform // 16)
    assert not schema.compression_pays(np.zeros(100, np.int8))               # too small to pay
    assert schema.chunk_shape((1024, 1024, 3, 3), 1) == (113, 1024, 3, 3)
    assert schema.chunk_shape((3,), 8) == (3,)


def test_old_int64_files_still_load_and_rewrite_compactly(tmp_path):
    kinds = _datasets(LEGACY)
    assert kinds["layer/2/weight"][0] == np.int64 and kinds["layer/2/bias"][0] == np.int64   # a real old file
    old = read_network(LEGACY)
    new_path = write_network(old, tmp_path / "new.net")
    new = read_network(new_path)
    assert_same_network(old, new)
    assert _datasets(new_path)["layer/2/weight"][0] == np.int8
    assert new_path.stat().st_size < LEGACY.stat().st_size
    images = np.random.default_rng(3).random((2, 1, 8, 8))
    a, b = ReferenceSimulator(old).run(images, 4), ReferenceSimulator(new).run(images, 4)
    assert np.array_equal(a.accumulator, b.accumulator) and a.spike_counts == b.spike_counts
    assert sum(map(sum, a.spike_counts.values())) > 0


def test_low_entropy_weights_are_compressed_and_read_back_exactly(tmp_path):
    net = _build(width=16, depth=2, hw=16, weight_bits=4)           # 4-bit mantissas: deflate pays
    path = write_network(net, tmp_path / "w4.net")
    again = write_network(net, tmp_path / "w4b.net")
    assert path.read_bytes() == again.read_bytes()                  # compressed files stay byte-stable
    kinds = _datasets(path)
    compressed = [name for name, (_, compression, _) in kinds.items() if compression == "gzip"]
    big = [i for i, layer in enumerate(net.layers) if isinstance(layer, SynapticLayer)
           and layer.synapses.weight.size >= schema.COMPRESS_MIN_BYTES]
    assert big and {f"layer/{i}/weight" for i in big} <= set(compressed)
    assert all(kinds[name][0] == np.int8 for name in compressed)
    assert_same_network(net, read_network(path))
    with h5py.File(path, "r") as f:                                # 4-bit values in int8: deflate saves > 40 %
        stored = sum(f[name].id.get_storage_size() for name in compressed)
        raw = sum(f[name].nbytes for name in compressed)
    assert stored < 0.6 * raw, (stored, raw)


def _netx_netdict():
    """lava-dl's netx file reader class (see test_netx_file.py)."""
    spec = importlib.util.find_spec("lava")
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = Path(base) / "lib" / "dl" / "netx" / "utils.py"
        if path.exists():
            module_spec = importlib.util.spec_from_file_location("_netx_utils_compact", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module.NetDict
    pytest.skip("lava-dl is not installed")


def test_lava_dl_netx_reads_narrow_and_compressed_datasets(tmp_path):
    net = _build(width=16, depth=2, hw=16, weight_bits=4)
    path = write_network(net, tmp_path / "w4.net")
    net_dict = _netx_netdict()(str(path))
    try:
        for i, layer in enumerate(net.layers):
            if isinstance(layer, SynapticLayer):
                entry = net_dict["layer"][i]
                assert np.array_equal(entry["weight"], layer.synapses.weight), layer.name
                assert np.array_equal(entry["bias"], layer.synapses.bias), layer.name
                assert list(entry["shape"]) == list(layer.shape)
    finally:
        net_dict.f.close()


@pytest.mark.parametrize("width,depth", [(48, 3), pytest.param(64, 4, marks=pytest.mark.slow)])   # 64/4: the paper's
def test_file_is_at_most_its_int8_weights_plus_ten_percent(width, depth, tmp_path):
    """The budget is 1.1 bytes per weight mantissa; bias, exponents, neurons and HDF5 structure fit in the rest."""
    net = _build(width=width, depth=depth, hw=2 ** depth)
    weights = _weights(net)
    assert all(np.abs(layer.synapses.weight).max() <= 127 for layer in net.synaptic_layers)
    path = write_network(net, tmp_path / "n.net")
    size = os.path.getsize(path)
    assert size <= 1.1 * weights, (size, weights, size / weights)
    assert size < 8 * weights / 7                                   # the int64 encoding needed 8 bytes a weight
