"""The typed IR itself: frozen, keyword-only nodes; the structural checks of a network; NetworkMeta's JSON
form; shapes and latency (output_hw, resize, assign_depths) on small hand-built graphs; validate refusing
each class of problem it checks, naming the layer index, name and field; and the NIR-style round trip
through the ``.net`` file (equal layers, byte-identical rewrites). Traced U-Nets: test_unet_graph.py."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import replace

import numpy as np
import pytest

from netx_export import FORMAT_VERSION, read_network, write_network
from toolchain.errors import ExportError, NetFileError
from toolchain.ir import (Accumulator, Concat, Conv, ConvTranspose, Cuba, Dense, FixedSynapses, Flatten, FloatNetwork,
                          FloatSynapses, Input, LayerSource, MultiThreshold, NetworkMeta, Provenance, QuantizedNetwork,
                          StockNetwork, StockSynapses, SumPool, SynapticLayer, assign_depths, output_hw, pair, resize,
                          validate)

MT = MultiThreshold((2 * 4096, 4096))


def _fixed(weight, weight_exp, c_out, unit=1.0, bias=None, bias_exp=None):
    return FixedSynapses(weight=np.asarray(weight, np.int32), weight_exp=tuple(weight_exp),
                         bias=np.asarray(bias if bias is not None else np.arange(c_out) * 7 - 3, np.int64),
                         bias_exp=np.asarray(bias_exp if bias_exp is not None else np.arange(c_out) % 3, np.int64),
                         unit=unit)


def _w(*shape, seed=0):
    return np.random.default_rng(seed + len(shape)).integers(-128, 128, shape)


def _base(lowering="compartments", **meta) -> QuantizedNetwork:
    """input 1x6x6 -> static conv (MT) -> 2x2 pool (MT) -> 2x2 stride-2 convT (MT) -> concat(c1, u) -> conv (ACC)."""
    layers = [
        Input(name="input", shape=(1, 6, 6)),
        Conv(name="c1", shape=(2, 6, 6), inputs=("input",), neuron=MT, synapses=_fixed(_w(2, 1, 3, 3), (-2,), 2),
             kernel=(3, 3), padding=(1, 1), static=True, source=LayerSource(synapse="c1", activation="act1")),
        SumPool(name="p", shape=(2, 3, 3), inputs=("c1",), neuron=MT, synapses=_fixed([90], (3,), 2), kernel=(2, 2),
                pool_weight=0.25),
        ConvTranspose(name="u", shape=(2, 6, 6), inputs=("p",), neuron=MT, synapses=_fixed(_w(2, 2, 2, 2), (1,), 2),
                      kernel=(2, 2), stride=(2, 2)),
        Concat(name="cat", shape=(4, 6, 6), inputs=("c1", "u")),
        Conv(name="out", shape=(1, 6, 6), inputs=("cat",), neuron=Accumulator(),
             synapses=_fixed(_w(1, 4, 3, 3), (2, 3), 1, unit=64.0), kernel=(3, 3), padding=(1, 1)),
    ]
    return assign_depths(QuantizedNetwork(layers, NetworkMeta(weight_bits=8, lowering=lowering, steps=4, **meta)))


def _layer(net, name, **changes):
    return net.with_layers([replace(l, **changes) if l.name == name else l for l in net.layers])


def _syn(net, name, **changes):
    return _layer(net, name, synapses=replace(net[name].synapses, **changes))


def _insert(net, index, layer):
    return net.with_layers(net.layers[:index] + (layer,) + net.layers[index:])


# --- nodes -------------------------------------------------------------------------------------

def test_nodes_are_frozen_keyword_only_dataclasses():
    net = _base()
    conv, pool = net["c1"], net["p"]
    assert Input(name="x", shape=(1, 2, 2)).depth == -1 and conv.depth == 0
    with pytest.raises(TypeError):
        Conv("c", (1, 1, 1), ("input",), MT, conv.synapses, (3, 3))         # keyword-only
    for obj, attr in ((conv, "name"), (conv, "kernel"), (conv.synapses, "weight"), (MT, "thresholds"),
                      (net.meta, "steps"), (net, "layers"), (LayerSource(), "synapse")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, None)
    moved = replace(conv, name="c2", padding=(0, 0))      # replace makes a new node, the old one is unchanged
    assert (moved.name, moved.padding, conv.name, conv.padding) == ("c2", (0, 0), "c1", (1, 1))
    assert moved.synapses is conv.synapses and isinstance(net.layers, tuple)
    assert [l.kind for l in net] == ["input", "conv", "pool", "convT", "concat", "conv"]
    assert (Dense.kind, Flatten.kind) == ("dense", "flatten")
    assert pool.stride == (2, 2) and pool.padding == (0, 0) and conv.stride == (1, 1)
    assert (conv.neurons, conv.channels, net["cat"].neurons, net.input.neurons) == (72, 2, 0, 0)
    assert Input(name="x", shape=(2, 3, 3), neuron=Cuba(vth=10, du=0, dv=0)).neurons == 18
    assert conv.source_name == "input" and net["out"].source_name == "cat"
    assert pair(3) == (3, 3) and pair([2, 1]) == (2, 1) and pair((1, 0)) == (1, 0)


def test_neurons():
    assert MT.compartments == 2 and MT.spike_weights() == (2, 1) and Accumulator.compartments == 1
    assert MultiThreshold((12.0, 4.0)).spike_weights() == (3, 1)
    assert Cuba(vth=5, du=1, dv=2).bias_exp == 6 and Cuba(vth=5, du=1, dv=2) == Cuba(vth=5, du=1, dv=2, bias_exp=6)
    with pytest.raises(ExportError, match="needs thresholds"):
        MultiThreshold(())
    with pytest.raises(ExportError, match=r"threshold 1\.0 is not an integer multiple of the smallest threshold 0\.3"):
        MultiThreshold((1.0, 0.3)).spike_weights()


def test_layer_source():
    source = LayerSource(synapse="a.conv", activation="a.act", input_weight=2.0)
    assert source.to_dict() == {"synapse": "a.conv", "activation": "a.act", "weight": 2.0}
    assert LayerSource.from_dict(source.to_dict()) == source and LayerSource().to_dict() == {}
    with pytest.raises(ValueError, match=r"unknown source keys \['x'\]"):
        LayerSource.from_dict({"synapse": "s", "x": 1})


# --- networks ----------------------------------------------------------------------------------

def test_network_checks_names_wiring_and_synapse_form():
    net = _base()
    layers = list(net.layers)
    with pytest.raises(ExportError, match="layer names are not unique"):
        QuantizedNetwork(layers + [replace(layers[-1], inputs=("c1",))], net.meta)
    with pytest.raises(ExportError, match="layer c1: input 'p' is not an earlier layer"):
        QuantizedNetwork([layers[0], replace(layers[1], inputs=("p",)), *layers[2:]], net.meta)
    with pytest.raises(ExportError, match="layer c1: input 'nowhere' is not an earlier layer"):
        QuantizedNetwork([layers[0], replace(layers[1], inputs=("nowhere",)), *layers[2:]], net.meta)
    floating = [replace(l, synapses=FloatSynapses(l.synapses.weight.astype(np.float32)))
                if isinstance(l, SynapticLayer) else l for l in layers]
    with pytest.raises(ExportError, match="layer c1: a QuantizedNetwork holds FixedSynapses, not FloatSynapses"):
        QuantizedNetwork(floating, net.meta)
    with pytest.raises(ExportError, match="layer c1: a FloatNetwork holds FloatSynapses, not FixedSynapses"):
        FloatNetwork(layers)
    with pytest.raises(ExportError, match="layer c1: a StockNetwork holds StockSynapses, not FixedSynapses"):
        StockNetwork(layers)
    assert isinstance(FloatNetwork(floating), FloatNetwork) and FloatNetwork(floating).layers[1].synapses.bias is None


def test_network_accessors():
    net = _base()
    assert net["p"] is net.layers[2] and net.index("cat") == 4 and len(net) == 6 and list(net) == list(net.layers)
    assert net.input.name == "input" and net.output.name == "out" and net.latency == 3
    assert [l.name for l in net.synaptic_layers] == [l.name for l in net.neuron_layers] == ["c1", "p", "u", "out"]
    assert [(part.name, delay, offset) for part, delay, offset in net.parts(net["out"])] == [("c1", 2, 0), ("u", 0, 2)]
    assert [(part.name, delay, offset) for part, delay, offset in net.parts(net["u"])] == [("p", 0, 0)]
    assert net.lowering == "compartments" and QuantizedNetwork(net.layers).lowering == "compartments"
    assert _base("graded").lowering == "graded"
    edges = {(u, v): (d["port"], d["delay"]) for u, v, d in net.to_networkx().edges(data=True)}
    assert edges == {("input", "c1"): (0, 0), ("c1", "p"): (0, 0), ("p", "u"): (0, 0), ("c1", "cat"): (0, 2),
                     ("u", "cat"): (1, 0), ("cat", "out"): (0, 0)}
    shorter = net.with_layers(net.layers[:4])
    assert type(shorter) is QuantizedNetwork and shorter.meta is net.meta and len(shorter) == 4
    stock = StockNetwork([Input(name="in", shape=(2, 2, 2), neuron=Cuba(vth=8, du=0, dv=0)),
                          Flatten(name="f", shape=(8, 1, 1), inputs=("in",)),
                          Dense(name="d", shape=(3, 1, 1), inputs=("f",), neuron=Cuba(vth=8, du=0, dv=0),
                                synapses=StockSynapses(np.ones((3, 8), np.int32), np.zeros(3, np.int64)))])
    assert [l.name for l in stock.neuron_layers] == ["in", "d"] and [l.name for l in stock.synaptic_layers] == ["d"]
    assert resize(stock, (3, 3))["f"].shape == (18, 1, 1) and resize(stock, (3, 3))["d"].shape == (3, 1, 1)


# --- NetworkMeta -------------------------------------------------------------------------------

def test_network_meta_round_trips_through_its_json_form():
    meta = NetworkMeta(format_version=1, task="denoise", in_channels=1, out_channels=1, width=4, depth=2, multiple=4,
                       steps=8, lowering="graded", thresholds=(2.0, 1.0), percentile=99.9, theta_unit=4096,
                       provenance=Provenance("ckpt.pt", "ab" * 32, None), weight_bits=8, v_limit=2 ** 23 - 1,
                       input_levels=255, input_level_range=(-512, 511), extra={"future_key": [1, 2], "note": "x"})
    data = meta.to_dict()
    assert data["thresholds"] == [2.0, 1.0] and data["input_level_range"] == [-512, 511]
    assert data["normalization"] is None and "provenance" not in data and "extra" not in data
    assert (data["source_checkpoint"], data["source_sha256"], data["finetuned_steps"]) == ("ckpt.pt", "ab" * 32, None)
    assert data["future_key"] == [1, 2] and data["note"] == "x"
    back = NetworkMeta.from_dict(data)
    assert back == meta and back.thresholds == (2.0, 1.0) and back.extra == {"future_key": [1, 2], "note": "x"}
    assert back.to_dict() == data
    # only the keys always written; an incomplete provenance is kept verbatim in extra
    assert NetworkMeta().to_dict() == {"normalization": None, "percentile": None}
    partial = NetworkMeta.from_dict({"weight_bits": 4, "source_checkpoint": "c.pt", "x": {"y": 1}})
    assert partial.provenance is None and partial.weight_bits == 4
    assert partial.extra == {"source_checkpoint": "c.pt", "x": {"y": 1}}
    assert partial.to_dict() == {"weight_bits": 4, "normalization": None, "percentile": None,
                                 "source_checkpoint": "c.pt", "x": {"y": 1}}
    assert meta.replace(steps=2).steps == 2 and meta.steps == 8


# --- shapes and latency ------------------------------------------------------------------------

def test_output_hw():
    net = _base()
    assert output_hw(net["c1"], (6, 6)) == (6, 6) and output_hw(net["p"], (7, 5)) == (3, 2)
    assert output_hw(net["u"], (3, 4)) == (6, 8)
    assert output_hw(replace(net["c1"], stride=(2, 1), padding=(0, 1)), (9, 4)) == (4, 4)
    assert output_hw(replace(net["u"], kernel=(3, 3), padding=(1, 1), output_padding=(1, 0)), (4, 5)) == (8, 9)
    with pytest.raises(ValueError, match="no spatial output rule for a concat layer"):
        output_hw(net["cat"], (6, 6))


def test_assign_depths_and_delays():
    net = _base()
    assert [l.depth for l in net] == [-1, 0, 1, 2, 2, 3] and net["cat"].delays == (2, 0)
    scrambled = net.with_layers([replace(l, depth=9) if not isinstance(l, Concat) else replace(l, depth=9, delays=())
                                 for l in net.layers])
    again = assign_depths(scrambled)
    assert [l.depth for l in again] == [-1, 0, 1, 2, 2, 3] and again["cat"].delays == (2, 0)
    assert [l.depth for l in scrambled] == [9] * 6                  # a copy: the argument is unchanged
    assert assign_depths(net, max_delay=3)["cat"].delays == (2, 0)  # delay 2 needs a synaptic delay of 3
    with pytest.raises(ExportError, match=r"layer cat: input c1 needs a synaptic delay of 3 steps, beyond the "
                                          r"hardware's 2"):
        assign_depths(net, max_delay=2)


def test_resize():
    net = _base()
    big = resize(net, (8, 12))
    assert [l.shape for l in big] == [(1, 8, 12), (2, 8, 12), (2, 4, 6), (2, 8, 12), (4, 8, 12), (1, 8, 12)]
    assert all(a.synapses is b.synapses for a, b in zip(big.synaptic_layers, net.synaptic_layers))
    assert big.meta is net.meta and [l.depth for l in big] == [l.depth for l in net]
    validate(big)
    with pytest.raises(ExportError, match=r"layer cat: parts of sizes \[\(5, 5\), \(4, 4\)\] cannot be concatenated "
                                          r"for a 5x5 input"):
        resize(net, (5, 5))


# --- validate ----------------------------------------------------------------------------------

INVALID = {   # name: (change of the valid network, layer index, layer name, field, message fragment)
    "input depth": (lambda n: _layer(n, "input", depth=0), 0, "input", "depth", "the input layer's depth is -1, got 0"),
    "input not first": (lambda n: n.with_layers((Concat(name="x", shape=(1, 6, 6)),) + n.layers), 0, "x", "type",
                        "layer 0, and only layer 0, must be the input layer"),
    "second input": (lambda n: _insert(n, 5, Input(name="in2", shape=(1, 6, 6))), 5, "in2", "type", "only layer 0"),
    "flatten": (lambda n: _insert(n, 2, Flatten(name="f", shape=(72, 1, 1), inputs=("c1",))), 2, "f", "type",
                "a flatten layer cannot be part of this toolchain's networks"),
    "dense": (lambda n: _insert(n, 2, Dense(name="d", shape=(3, 1, 1), inputs=("c1",), neuron=MT, depth=1,
                                            synapses=_fixed(np.ones((3, 72)), (0,), 3))), 2, "d", "type",
              "a dense layer cannot be part"),
    "concat empty": (lambda n: _layer(n, "cat", inputs=()), 4, "cat", "inputs", "a concat needs at least one part"),
    "concat part": (lambda n: _layer(n, "cat", inputs=("input", "u")), 4, "cat", "inputs",
                    "part input is not a spiking (MT) layer"),
    "concat part size": (lambda n: _layer(n, "cat", inputs=("c1", "p")), 4, "cat", "shape", "part p is 3x3, the concat 6x6"),
    "concat channels": (lambda n: _layer(n, "cat", shape=(5, 6, 6)), 4, "cat", "shape", "concat has 5 channels, its parts 4"),
    "delay count": (lambda n: _layer(n, "cat", delays=(2,)), 4, "cat", "delays", "needs one delay per part (2), got 1"),
    "delay range": (lambda n: _layer(n, "cat", delays=(62, 0)), 4, "cat", "delays", "delay 62 is outside the range 0..61"),
    "concat depth": (lambda n: _layer(n, "cat", depth=3), 4, "cat", "depth", "is 3, expected 2 (the deepest part)"),
    "delays": (lambda n: _layer(n, "cat", delays=(1, 0)), 4, "cat", "delays", "is [1, 0], expected [2, 0]"),
    "two inputs": (lambda n: _layer(n, "out", inputs=("cat", "u")), 5, "out", "inputs",
                   "a conv layer has exactly one input, got 2"),
    "not static": (lambda n: _layer(n, "c1", static=False), 1, "c1", "static",
                   "a layer fed by the input must be a static conv"),
    "static misuse": (lambda n: _layer(n, "out", static=True), 5, "out", "static",
                      "only a conv fed directly by the input layer can be static"),
    "pool after concat": (lambda n: _insert(n, 5, SumPool(name="q", shape=(4, 3, 3), inputs=("cat",), neuron=MT, depth=3,
                                                          synapses=_fixed([1], (0,), 4), kernel=(2, 2))),
                          5, "q", "inputs", "a pool layer cannot be fed by a concat"),
    "shape": (lambda n: _layer(n, "u", shape=(2, 5, 5)), 3, "u", "shape",
              "5x5 does not follow from the 3x3 input of p (expected 6x6)"),
    "output padding": (lambda n: _layer(n, "u", output_padding=(2, 2), shape=(2, 8, 8)), 3, "u", "output_padding",
                       "(2, 2) must be smaller than the stride (2, 2)"),
    "weight shape": (lambda n: _syn(n, "c1", weight=np.zeros((2, 1, 3, 2), np.int32)), 1, "c1", "weight",
                     "has shape (2, 1, 3, 2), expected (2, 1, 3, 3)"),
    "weight range": (lambda n: _syn(n, "p", weight=np.array([128], np.int32)), 2, "p", "weight",
                     "weight mantissa 128 is outside the range -128..127"),
    "weight bits": (lambda n: QuantizedNetwork(n.layers, n.meta.replace(weight_bits=7)), 1, "c1", "weight",
                    "outside the range -64..63"),
    "weight dtype": (lambda n: _syn(n, "c1", weight=n["c1"].synapses.weight.astype(np.float32)), 1, "c1", "weight",
                     "must hold integers, got dtype float32"),
    "weight_exp count": (lambda n: _syn(n, "out", weight_exp=(2,)), 5, "out", "weight_exp",
                         "needs one exponent per input part (2), got 1"),
    "static exponent": (lambda n: _syn(n, "c1", weight_exp=(-9,)), 1, "c1", "weight_exp",
                        "weight exponent -9 is outside the range -8..7"),
    "negative exponent": (lambda n: _syn(n, "p", weight_exp=(-1,)), 2, "p", "weight_exp",
                          "weight exponent -1 is outside the range 0..7"),
    "exponent": (lambda n: _syn(n, "u", weight_exp=(8,)), 3, "u", "weight_exp", "weight exponent 8 is outside the range 0..7"),
    "bias shape": (lambda n: _syn(n, "c1", bias=np.zeros(3, np.int64)), 1, "c1", "bias", "has shape (3,), expected (2,)"),
    "bias_exp shape": (lambda n: _syn(n, "p", bias_exp=np.zeros((2, 1), np.int64)), 2, "p", "bias_exp",
                       "has shape (2, 1), expected (2,)"),
    "bias range": (lambda n: _syn(n, "u", bias=np.array([0, -4097])), 3, "u", "bias",
                   "bias mantissa -4097 is outside the range -4096..4095"),
    "bias_exp range": (lambda n: _syn(n, "out", bias_exp=np.array([8])), 5, "out", "bias_exp",
                       "bias exponent 8 is outside the range 0..7"),
    "acc not last": (lambda n: _layer(n, "p", neuron=Accumulator()), 2, "p", "neuron",
                     "the last layer must be the ACC output accumulator, and only it"),
    "last not acc": (lambda n: _layer(n, "out", neuron=MT), 5, "out", "neuron", "the last layer must be the ACC output"),
    "cuba neuron": (lambda n: _layer(n, "p", neuron=Cuba(vth=64, du=0, dv=0)), 2, "p", "neuron",
                    "a Cuba neuron cannot be part of this toolchain's networks (MT or ACC)"),
    "float thresholds": (lambda n: _layer(n, "u", neuron=MultiThreshold((8192.5, 4096.0))), 3, "u", "thresholds",
                         "must be integers in a quantized network"),
    "threshold range": (lambda n: _layer(n, "u", neuron=MultiThreshold((2 ** 23, 4096))), 3, "u", "thresholds",
                        "threshold (17-bit mantissa << 6) 8388608 is outside the range 1..8388544"),
    "zero threshold": (lambda n: _layer(n, "u", neuron=MultiThreshold((4096, 0))), 3, "u", "thresholds",
                       "0 is outside the range 1.."),
    "increasing": (lambda n: _layer(n, "c1", neuron=MultiThreshold((4096, 8192))), 1, "c1", "thresholds",
                   "must be strictly decreasing, got [4096, 8192]"),
    "ratio": (lambda n: _layer(n, "c1", neuron=MultiThreshold((8256, 4096))), 1, "c1", "thresholds",
              "must be integer multiples of the smallest threshold"),
    "threshold shift": (lambda n: _layer(n, "c1", neuron=MultiThreshold((200, 100))), 1, "c1", "thresholds",
                        "must be multiples of 64"),
    "depth": (lambda n: _layer(n, "p", depth=5), 2, "p", "depth", "is 5, expected 1 (one step after c1)"),
    "unit": (lambda n: _syn(n, "c1", unit=0.0), 1, "c1", "unit", "a neuron layer needs a positive membrane unit, got 0.0"),
}


def test_the_base_network_is_valid():
    net = _base()
    assert validate(net) is net and validate(_base("graded"), error=NetFileError) is not None


@pytest.mark.parametrize("name", list(INVALID))
def test_validate_refuses_naming_layer_and_field(name):
    change, index, layer, key, fragment = INVALID[name]
    bad = change(_base())
    prefix = re.escape(f"layer {index} ({layer}): '{key}': ")
    with pytest.raises(ExportError, match=f"^{prefix}.*{re.escape(fragment)}"):
        validate(bad)
    with pytest.raises(NetFileError, match=f"^{prefix}"):       # the caller chooses the error class
        validate(bad, error=NetFileError)


@pytest.mark.parametrize("change,message", [
    (lambda n: QuantizedNetwork(n.layers, n.meta.replace(weight_bits=9)), "meta: weight_bits must be an integer in "
                                                                          "2..8, got 9"),
    (lambda n: QuantizedNetwork(n.layers, n.meta.replace(weight_bits=None)), "meta: weight_bits must be an integer"),
    (lambda n: QuantizedNetwork(n.layers, n.meta.replace(weight_bits=True)), "meta: weight_bits must be an integer"),
    (lambda n: QuantizedNetwork(n.layers, n.meta.replace(lowering="spiky")), "meta: lowering must be one of"),
    (lambda n: n.with_layers(n.layers[:1]), "a network needs an input and at least one layer, got 1 layer(s)"),
    (lambda n: n.with_layers(n.layers[:5]), "layer 4 (cat): the last layer must be the ACC output accumulator"),
], ids=["weight bits", "no weight bits", "bool weight bits", "lowering", "one layer", "concat last"])
def test_validate_refuses_whole_network_problems(change, message):
    with pytest.raises(ExportError, match=f"^{re.escape(message)}"):
        validate(change(_base()))


# --- the NIR-style round trip through the file -------------------------------------------------

def _same(a, b, where):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), where
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), where
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), (*where, f.name))
    else:
        assert type(a) is type(b) and a == b, (where, a, b)


@pytest.mark.parametrize("lowering", ["compartments", "graded"])
def test_write_read_gives_equal_layers_and_identical_rewrites(lowering, tmp_path):
    net = _base(lowering, task="denoise", thresholds=(2.0, 1.0), provenance=Provenance("a.pt", "0" * 64, 3),
                extra={"future": {"nested": [1, 2]}})
    first = write_network(net, tmp_path / "a.net")
    back = read_network(first)
    assert isinstance(back, QuantizedNetwork) and len(back.layers) == len(net.layers)
    for a, b in zip(net.layers, back.layers):
        _same(a, b, (a.name,))
    assert back["c1"].source == LayerSource(synapse="c1", activation="act1")
    assert back.meta == net.meta.replace(format_version=FORMAT_VERSION)
    assert back.meta.extra == {"future": {"nested": [1, 2]}} and back.meta.provenance == net.meta.provenance
    second = write_network(back, tmp_path / "b.net")
    assert second.read_bytes() == first.read_bytes()
    third = write_network(read_network(second), tmp_path / "c.net")
    assert third.read_bytes() == first.read_bytes()
