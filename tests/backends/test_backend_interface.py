"""The backend interface: every backend that ``toolchain.backends.get_backend`` finds runs this toolchain's
quantized networks with the same SimulationResult, field for field, at every record level; the reference
backend runs stock lava-dl netx networks in physical time; bad names, networks and settings are ConfigErrors.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from lava_data import GTS as LAVA_GTS
from lava_data import ROOT

from netx_export.stock import read_netx
from toolchain.backends import BackendOptions, get_backend
from toolchain.errors import ConfigError
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.ir import FloatNetwork, QuantizedNetwork, StockMeta, StockNetwork
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings
from toolchain.simulators.physical import simulate_cuba
from toolchain.simulators.reference import ReferenceSimulator
from toolchain.vocab import BACKENDS, RECORDS

T = 4
OPTIONS = BackendOptions(timeout_s=240)
NETX, GTS = ROOT, LAVA_GTS           # lava-dl's shipped netx test data, wherever lava-dl is installed
needs_netx_data = pytest.mark.skipif(not (NETX / "tiny.net").exists(), reason="lava-dl's netx test data is not installed")


def _backends() -> list:
    """Every backend name of the registry (Lava-backed ones marked so)."""
    return [pytest.param(name, marks=pytest.mark.lava) if name.startswith("lava") else name for name in BACKENDS]


# ----------------------------------------------------------------------------------------------------------------
# This toolchain's quantized networks: every backend equals the integer reference simulator
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_unet() -> tuple[QuantizedNetwork, FloatNetwork, np.ndarray]:
    """A random width-4, depth-2 U-Net converted and exported for 16x16 inputs (and its float network), 2 images."""
    torch.manual_seed(0)
    ann = UNet(UNetConfig("denoise", 1, 1, width=4, depth=2))
    snn, info = convert(ann, torch.rand(4, 1, 16, 16), ConversionSettings())
    net, _ = export_network(snn, info, (16, 16), QuantSettings(steps=T))
    images = np.random.default_rng(1).random((2, 1, 16, 16))
    return net, snn.to_network((16, 16)), images


@pytest.fixture(scope="module")
def oracle(tiny_unet) -> dict:
    """The integer reference simulator's result at every record level."""
    net, _, images = tiny_unet
    return {record: ReferenceSimulator(net).run(images, T, record) for record in RECORDS}


def _assert_same(got, ref) -> None:
    assert got.steps == ref.steps
    np.testing.assert_array_equal(got.output, ref.output)
    np.testing.assert_array_equal(got.accumulator, ref.accumulator)
    assert got.accumulator.dtype == np.int64
    assert got.spike_counts == ref.spike_counts
    assert got.saturations == ref.saturations
    assert got.image_spike_counts == ref.image_spike_counts and len(got.image_spike_counts) == got.batch
    assert got.image_saturations == ref.image_saturations
    for field in ("spikes", "count_maps", "message_maps"):
        mine, theirs = getattr(got, field), getattr(ref, field)
        assert mine.keys() == theirs.keys(), field
        for name, expected in theirs.items():
            assert mine[name].shape == expected.shape and mine[name].dtype == expected.dtype, (field, name)
            np.testing.assert_array_equal(mine[name], expected, err_msg=f"{field}[{name}]")


def test_the_oracle_is_not_trivial(tiny_unet, oracle):
    net, _, _ = tiny_unet
    spikes = oracle["spikes"].spikes
    mt = [layer.name for layer in net.synaptic_layers if layer is not net.output]
    assert sorted(spikes) == sorted(mt)
    for name in mt:
        assert spikes[name].sum() > 0, f"layer {name} never spikes"
    acc = oracle["none"].accumulator
    assert np.any(acc != acc.flat[0])
    assert oracle["none"].spikes == {} and oracle["none"].count_maps == {} and oracle["none"].message_maps == {}


@pytest.mark.parametrize("name", _backends())
def test_every_backend_gives_the_reference_result(name, tiny_unet, oracle):
    net, _, images = tiny_unet
    backend = get_backend(name, net, OPTIONS)
    assert backend.name == name
    results = {record: backend.run(net, images, T, record) for record in RECORDS}
    for record, result in results.items():
        _assert_same(result, oracle[record])
    spikes, counts = results["spikes"], results["counts"]
    assert spikes.spikes and counts.count_maps and not counts.spikes and not spikes.count_maps
    assert counts.count_maps.keys() == counts.message_maps.keys() == spikes.spikes.keys()
    for layer, recorded in spikes.spikes.items():         # (T, N_thr, N, C, H, W)
        np.testing.assert_array_equal(counts.count_maps[layer], recorded.sum(axis=0, dtype=np.int64), err_msg=layer)
        np.testing.assert_array_equal(counts.message_maps[layer], recorded.any(axis=1).sum(axis=0, dtype=np.int64),
                                      err_msg=layer)
        assert counts.spike_counts[layer] == [int(c) for c in recorded.sum(axis=(0, 2, 3, 4, 5))]


# ----------------------------------------------------------------------------------------------------------------
# Stock netx networks: the reference backend runs them in physical time
# ----------------------------------------------------------------------------------------------------------------
def _tiny():
    net = read_netx(NETX / "tiny.net")
    bias = np.load(GTS / "tinynet/input_bias.npy").transpose(2, 1, 0).astype(np.int64)   # (x,y,z) -> CHW
    return net, bias


def _tiny_golden_output() -> np.ndarray:
    return np.moveaxis(np.load(GTS / "tinynet/output.npy")[0], -1, 0).astype(bool)    # (T, C, H, W)


def _pilotnet():
    net = read_netx(GTS / "pilotnet_lif/network.net")
    image = np.load(GTS / "pilotnet_lif/image.npy").transpose(2, 1, 0).astype(np.int64)
    return net, image


def _pilot_golden_spikes(name: str) -> np.ndarray:
    g = np.load(GTS / f"pilotnet_lif/{name}.npy")
    if g.ndim == 2:
        return np.moveaxis(g, -1, 0)[:, :, None, None]
    return np.moveaxis(g.transpose(2, 1, 0, 3), -1, 0)


PILOT_GOLDEN = ["input"] + [f"conv-{i}" for i in range(5)] + [f"fc-{i}" for i in range(3)]


def _assert_physical(result, net: StockNetwork, bias: np.ndarray, steps: int, reset: int, record: str) -> None:
    """A physical-time result is simulate_cuba's run, laid out as a SimulationResult."""
    trace = simulate_cuba(net, bias, steps, reset_interval=reset)
    out = trace.output.sum(axis=0, dtype=np.int64)                        # (N, C, H, W)
    assert result.steps == steps
    np.testing.assert_array_equal(result.accumulator, out)
    np.testing.assert_array_equal(result.output, out / steps)
    assert result.spike_counts == {layer.name: [int(trace.spikes[layer.name].sum())] for layer in net.neuron_layers}
    assert result.saturations == {}
    if record == "spikes":
        assert result.spikes.keys() == trace.spikes.keys()
        for name, s in trace.spikes.items():
            np.testing.assert_array_equal(result.spikes[name], s[:, None].astype(np.uint8), err_msg=name)
    elif record == "counts":
        assert result.count_maps.keys() == trace.spikes.keys()
        for name, s in trace.spikes.items():
            np.testing.assert_array_equal(result.count_maps[name], s.sum(axis=0, dtype=np.int64)[None], err_msg=name)
            np.testing.assert_array_equal(result.message_maps[name], s.sum(axis=0, dtype=np.int64), err_msg=name)


@needs_netx_data
@pytest.mark.parametrize("record", RECORDS)
def test_reference_backend_runs_tinynet_in_physical_time(record):
    net, bias = _tiny()
    backend = get_backend("reference", net, BackendOptions(reset_interval=17))
    assert backend.name == "reference"
    result = backend.run(net, bias[None], 17, record)
    _assert_physical(result, net, bias, 17, 17, record)
    if record == "spikes":     # lava-dl's own golden check: output[..., 2:17] == gt[..., 1:]
        assert np.array_equal(result.spikes["conv2"][2:17, 0, 0], _tiny_golden_output()[1:16])
        assert result.trace is not None and result.trace.steps == 17


@needs_netx_data
def test_reference_backend_runs_pilotnet_lif_like_loihi():
    net, image = _pilotnet()
    result = get_backend("reference", net, BackendOptions(reset_interval=16)).run(net, image[None], 16, "spikes")
    _assert_physical(result, net, image, 16, 16, "spikes")
    for layer, golden in zip(net.neuron_layers, PILOT_GOLDEN):        # Loihi's golden spike traces
        np.testing.assert_array_equal(result.spikes[layer.name][:, 0, 0], _pilot_golden_spikes(golden)[:16],
                                      err_msg=layer.name)


@needs_netx_data
@pytest.mark.lava
@pytest.mark.timeout(240)
def test_lava_cpu_backend_runs_tinynet_like_the_reference():
    net, bias = _tiny()
    options = BackendOptions(timeout_s=200, reset_interval=17)
    ref = get_backend("reference", net, options).run(net, bias[None], 17, "spikes")
    got = get_backend("lava-cpu", net, options).run(net, bias[None], 17, "spikes")
    _assert_same(got, ref)


# ----------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["loihi2", "bogus", "", "Reference"])
def test_unknown_backend_names_are_config_errors(name, tiny_unet):
    net, _, _ = tiny_unet
    with pytest.raises(ConfigError, match="unknown backend"):
        get_backend(name, net)


@pytest.mark.parametrize("name", BACKENDS)
def test_a_float_network_is_refused_by_every_backend(name, tiny_unet):
    _, float_net, images = tiny_unet
    with pytest.raises(ConfigError, match="FloatNetwork"):
        get_backend(name, float_net, OPTIONS).run(float_net, images, T)


@needs_netx_data
def test_wrong_network_forms_and_inputs_are_config_errors(tiny_unet):
    net, _, images = tiny_unet
    stock, bias = _tiny()
    physical = get_backend("reference", stock)                    # a backend chosen for a stock network
    with pytest.raises(ConfigError, match="stock netx"):
        physical.run(net, images, T)                              # ... refuses a quantized one
    with pytest.raises(ConfigError, match="quantized"):
        get_backend("reference", net).run(stock, bias[None], T)   # and the other way round
    with pytest.raises(ConfigError, match="read_netx"):          # lava-cpu loads stock networks from their file
        pathless = dataclasses.replace(stock, meta=StockMeta())
        get_backend("lava-cpu", pathless).run(pathless, bias[None], T)
    with pytest.raises(ConfigError, match="one stock netx input"):
        get_backend("lava-cpu", stock).run(stock, np.stack([bias, bias]), T)
    for name in BACKENDS:
        with pytest.raises(ConfigError, match="record"):
            get_backend(name, net, OPTIONS).run(net, images, T, "everything")
    with pytest.raises(ConfigError, match="record"):
        physical.run(stock, bias[None], T, "everything")
    with pytest.raises(ConfigError, match="images must be"):
        get_backend("lava-cpu", net, OPTIONS).run(net, images[:, :, :8, :8], T)


@pytest.mark.parametrize("options", [dict(timeout_s=0), dict(timeout_s=-1.0), dict(reset_interval=0),
                                     dict(reset_interval=2.5)])
def test_bad_backend_options_are_config_errors(options):
    with pytest.raises(ConfigError):
        BackendOptions(**options)
