"""Loihi 2 profile: hardware profiles as data, exact per-layer costs, energy by two methods, core mapping, report."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolchain.errors import HardwareLimitError
from toolchain.lowering.fixed_point import Overflow
from toolchain.ir.graph import Layer, Network, NeuronSpec, assign_depths
from toolchain.hardware import (Activity, Geometry, axis_taps, collect_activity, fits, layer_costs, load_profile,
                                map_network, paper_energy, plan, profile_network, write_report)
from toolchain.simulators.reference import ReferenceResult, ReferenceSimulator

THR = (512, 256, 128, 64)          # integer MT thresholds: spike weights r = 8, 4, 2, 1
PJ = 1e-12


# ----------------------------------------------------------------------------------------------------------------
# Hand-built quantized networks
# ----------------------------------------------------------------------------------------------------------------
def _conv(name, src, c_out, c_in, k, pad, neuron, static=False, rng=None):
    rng = rng or np.random.default_rng(0)
    return Layer(name, "conv", (c_out, 4, 4), (src,), neuron=neuron,
                 weight=rng.integers(-60, 60, size=(c_out, c_in, k, k)).astype(np.int32),
                 bias=np.zeros(c_out, dtype=np.int64), bias_exp=np.zeros(c_out, dtype=np.int64),
                 kernel=k, padding=pad, static=static, weight_exp=(0,), unit=64.0)


def two_layer_net() -> Network:
    """input 1x4x4 -> static conv 3x3 pad 1, 2 channels, MT (4 thresholds) -> conv 1x1 to 1 channel, ACC."""
    layers = [Layer("input", "input", (1, 4, 4)),
              _conv("conv1", "input", 2, 1, 3, 1, NeuronSpec("MT", THR), static=True),
              _conv("head", "conv1", 1, 2, 1, 0, NeuronSpec("ACC"))]
    return assign_depths(Network(layers, {"weight_bits": 8, "lowering": "compartments"}, quantized=True))


def three_layer_net() -> Network:
    """... static conv (2 ch) -> conv 3x3 pad 1 (3 ch, MT) -> head 1x1 (ACC): for border-exact synops."""
    layers = [Layer("input", "input", (1, 4, 4)),
              _conv("conv1", "input", 2, 1, 3, 1, NeuronSpec("MT", THR), static=True),
              _conv("conv2", "conv1", 3, 2, 3, 1, NeuronSpec("MT", THR)),
              _conv("head", "conv2", 1, 3, 1, 0, NeuronSpec("ACC"))]
    return assign_depths(Network(layers, {"weight_bits": 8, "lowering": "compartments"}, quantized=True))


def hand_result(net: Network, steps: int, events: dict[str, list[tuple[int, int, int, int, int]]]) -> ReferenceResult:
    """A recorded ReferenceResult (batch 1) with spikes (step, threshold, c, y, x) set by hand."""
    spikes, counts = {}, {}
    for layer in net.neuron_layers:
        if layer.neuron.kind != "MT":
            continue
        rec = np.zeros((steps, 4, 1) + layer.shape, dtype=np.uint8)
        for t, i, c, y, x in events.get(layer.name, []):
            rec[t, i, 0, c, y, x] = 1
        spikes[layer.name] = rec
        counts[layer.name] = [int(rec[:, i].sum()) for i in range(4)]
    out = np.zeros((1,) + net.output.shape)
    return ReferenceResult(out, out.astype(np.int64), steps, counts, {}, Overflow(), spikes)


def loihi2(*extra: str):
    return load_profile("loihi2", ["power.static_per_chip=0", *extra])


# ----------------------------------------------------------------------------------------------------------------
# Hand-computed resources, synops and energy
# ----------------------------------------------------------------------------------------------------------------
# Spikes of conv1 (T = 2, one image): channel 0 pixel (0,0) fires threshold 4 at step 0 and thresholds 3 and 4
# at step 1; channel 1 pixel (2,1) fires threshold 2 at step 1.
# Per threshold [0, 1, 1, 2] -> 4 spikes; graded messages (neuron-steps with a spike) = 3.
HAND_EVENTS = {"conv1": [(0, 3, 0, 0, 0), (1, 2, 0, 0, 0), (1, 3, 0, 0, 0), (1, 1, 1, 2, 1)]}


def test_hand_costs_two_layer_network():
    net = two_layer_net()
    act = Activity.from_result(net, hand_result(net, 2, HAND_EVENTS))
    assert act.exact
    rows = {r["layer"]: r for r in layer_costs(net, act, "compartments")}
    c1, head = rows["conv1"], rows["head"]
    # conv1: 2x4x4 = 32 neurons x 4 compartments; its conv(x) runs on the host: no on-chip synapses.
    assert (c1["neurons"], c1["compartments"], c1["synapses"]) == (32, 128, 0)
    # host MACs, paper/thop convention: 32 outputs x (1 x 9 + 1 bias) = 320; border-exact taps: rows of a
    # 3-tap pad-1 conv over 4 pixels read 2+3+3+2 = 10 inputs, so 10 x 10 taps x 2 channel pairs = 200.
    assert (c1["host_macs"], c1["host_macs_valid"], c1["ann_macs"]) == (320, 200, 320)
    assert c1["spikes_per_threshold"] == [0, 1, 1, 2] and c1["spikes"] == 4 and c1["messages"] == 4
    # neuron updates: 128 compartments x 2 steps; active = the 4 compartment spikes
    assert (c1["neuron_updates"], c1["active_updates"]) == (256, 4)
    # head: 1x1 conv 2 -> 1 over 16 pixels: 32 weight taps, x 4 source compartments = 128 synapses
    assert (head["neurons"], head["compartments"], head["connections"], head["synapses"]) == (16, 16, 32, 128)
    assert head["ann_macs"] == 16 * (2 * 1 + 1)
    assert head["synops"] == 4            # every spike reaches exactly 1 output (1x1 conv, 1 channel)
    assert head["neuron_updates"] == 32 and head["active_updates"] == 0
    graded = {r["layer"]: r for r in layer_costs(net, act, "graded")}
    assert graded["conv1"]["compartments"] == 32 and graded["head"]["synapses"] == 32
    assert graded["conv1"]["messages"] == 3 and graded["head"]["synops"] == 3
    assert graded["head"]["synops_spikes"] == 4


def test_hand_energy_and_mapping_two_layer_network():
    net = two_layer_net()
    report = profile_network(net, hand_result(net, 2, HAND_EVENTS), loihi2())
    e = report["energy"]
    # paper: 4 spikes x 0.9 pJ + 320 input MACs x 4.6 pJ = 1475.6 pJ; synops variant: 4 synops -> the same
    assert e["paper"]["energy_j"] == pytest.approx(1475.6 * PJ)
    assert e["paper"]["flops"] == 4 + 320
    assert e["paper_synops"]["energy_j"] == pytest.approx(1475.6 * PJ)
    # ANN: (320 + 48) MACs x 4.6 pJ
    assert e["ann"]["energy_j"] == pytest.approx(368 * 4.6 * PJ)
    # profile (Loihi 1 figures, scale 1, static power 0):
    #   synops 4 x 23.6 = 94.4; conv1 updates 4 x 81 + 252 x 52 = 13428; head 32 x 52 = 1664;
    #   packets 4 (one destination core each) x (1.7 + 2 hops x 3.5) = 34.8; host 320 x 4.6 = 1472
    assert e["profile"]["energy_j"] == pytest.approx((94.4 + 13428 + 1664 + 34.8 + 1472) * PJ)
    assert e["profile"]["breakdown_j"]["static"] == 0
    m = report["mapping"]
    assert (m["cores"], m["chips"]) == (2, 1)
    # memory of the head's core (shared encoding): weights 4 compartments x 2 channels x 1 tap x 12 bits = 12 B,
    # state 16 x 8 B = 128 B, fan-in 4 x 2 x 16 pixels = 128 axons x 4 B = 512 B  ->  652 B
    head = next(x for x in m["layers"] if x["layer"] == "head")
    assert head["memory_bytes"] == 652 and head["fan_in_util_max"] == pytest.approx(128 / 65536)
    # conv1's core: state 128 x 8 B + fan-out 128 output axons (each unit reaches the head's one core) x 4 B
    conv1 = next(x for x in m["layers"] if x["layer"] == "conv1")
    assert conv1["memory_bytes"] == 1024 + 512 and conv1["fan_out_util_max"] == pytest.approx(128 / 65536)
    explicit = profile_network(net, hand_result(net, 2, HAND_EVENTS),
                               loihi2("memory_model.synapse_encoding=\"explicit\""))
    # explicit: 128 synapses x 12 bits = 192 B
    assert next(x for x in explicit["layers"] if x["layer"] == "head")["synapse_bytes"] == 192


def test_hand_network_through_the_reference_simulator():
    net = two_layer_net()
    images = np.random.default_rng(1).random((2, 1, 4, 4))
    result, act = collect_activity(net, images, 5)
    direct = ReferenceSimulator(net).run(images, 5)
    assert result.spike_counts == direct.spike_counts
    np.testing.assert_array_equal(result.accumulator, direct.accumulator)
    assert act.counts["conv1"].sum() == sum(direct.spike_counts["conv1"])
    rows = {r["layer"]: r for r in layer_costs(net, act, "compartments")}
    assert rows["head"]["synops"] == pytest.approx(sum(direct.spike_counts["conv1"]) / 2)   # fan-out 1, per image


# ----------------------------------------------------------------------------------------------------------------
# Border-exact synaptic operations
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pixel, reached", [((0, 0), 4), ((0, 3), 4), ((3, 3), 4), ((0, 1), 6), ((1, 2), 9)])
def test_border_exact_synops(pixel, reached):
    """A spike at a corner of a 3x3 pad-1 conv reaches 4 outputs per output channel, an edge 6, the interior 9."""
    net = three_layer_net()
    y, x = pixel
    act = Activity.from_result(net, hand_result(net, 1, {"conv1": [(0, 3, 1, y, x)]}))
    rows = {r["layer"]: r for r in layer_costs(net, act, "compartments")}
    assert rows["conv2"]["synops"] == reached * 3            # 3 output channels


def _torch_fanout_and_taps(kind, c_in, c_out, h, w, k, s, p, op):
    x = torch.ones(1, c_in, h, w, dtype=torch.float64, requires_grad=True)
    wt = torch.ones((c_out, c_in, k, k) if kind != "convT" else (c_in, c_out, k, k), dtype=torch.float64)
    if kind == "conv":
        y = F.conv2d(x, wt, stride=s, padding=p)
    else:
        y = F.conv_transpose2d(x, wt, stride=s, padding=p, output_padding=op)
    y.sum().backward()
    return x.grad[0, 0].numpy(), float(y.detach().sum()), tuple(y.shape[1:])


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["conv", "convT"]), h=st.integers(1, 9), w=st.integers(1, 9), k=st.integers(1, 4),
       s=st.integers(1, 3), p=st.integers(0, 2), op=st.integers(0, 2))
def test_geometry_matches_torch_convolution_of_ones(kind, h, w, k, s, p, op):
    if kind == "conv" and (h + 2 * p < k or w + 2 * p < k):
        return
    if kind == "convT" and (op >= s or p >= k or (h - 1) * s - 2 * p + k + op < 1 or (w - 1) * s - 2 * p + k + op < 1):
        return
    fanout, total, (c_out, ho, wo) = _torch_fanout_and_taps(kind, 2, 3, h, w, k, s, p, op)
    rows = axis_taps(kind, h, ho, k, s, p)
    cols = axis_taps(kind, w, wo, k, s, p)
    np.testing.assert_array_equal(np.outer(rows.sum(0), cols.sum(0)) * c_out, fanout)   # fan-out per source pixel
    assert rows.sum() * cols.sum() * 2 * c_out == total                                  # weight taps (synapses)


# ----------------------------------------------------------------------------------------------------------------
# Mapper: never exceeds a limit, places every neuron exactly once (hypothesis)
# ----------------------------------------------------------------------------------------------------------------
def _random_net(h, w, c1, c2, kind, n_thr):
    thr = tuple(64 * 2 ** i for i in reversed(range(n_thr)))
    layers = [Layer("input", "input", (1, h, w)),
              Layer("c1", "conv", (c1, h, w), ("input",), NeuronSpec("MT", thr), bias=np.zeros(c1), kernel=3,
                    padding=1, static=True)]
    if kind == "conv":
        layers.append(Layer("mid", "conv", (c2, h, w), ("c1",), NeuronSpec("MT", thr), bias=np.zeros(c2), kernel=3, padding=1))
    elif kind == "pool":
        layers.append(Layer("mid", "pool", (c1, h // 2, w // 2), ("c1",), NeuronSpec("MT", thr), kernel=2, stride=2))
    else:
        layers.append(Layer("mid", "convT", (c2, 2 * h, 2 * w), ("c1",), NeuronSpec("MT", thr), bias=np.zeros(c2),
                            kernel=3, stride=2, padding=1, output_padding=1))
    mid = layers[-1].shape
    layers.append(Layer("cat", "concat", (c1 + mid[0], h, w), ("c1", "mid")) if kind == "conv" else
                  Layer("skip", "conv", (c2, mid[1], mid[2]), ("mid",), NeuronSpec("MT", thr), bias=np.zeros(c2),
                        kernel=1))
    src = layers[-1]
    layers.append(Layer("head", "conv", (1, src.shape[1], src.shape[2]), (src.name,), NeuronSpec("ACC"),
                        bias=np.zeros(1), kernel=3, padding=1))
    return assign_depths(Network(layers, {"weight_bits": 8}, quantized=True))


def _reads(geo, tile):
    """Brute force (autograd through an all-ones convolution): source pixels feeding output tile rows/cols."""
    layer = geo.layer
    h_in, w_in = geo.in_hw
    x = torch.zeros(1, 1, h_in, w_in, dtype=torch.float64, requires_grad=True)
    ones = torch.ones(1, 1, layer.kernel, layer.kernel, dtype=torch.float64)
    if layer.kind == "convT":
        y = F.conv_transpose2d(x + 1, ones, stride=layer.stride, padding=layer.padding, output_padding=layer.output_padding)
    else:
        y = F.conv2d(x + 1, ones, stride=layer.stride, padding=layer.padding)
    (_, _), (y0, y1), (x0, x1) = tile
    y[..., y0:y1, x0:x1].sum().backward()
    return x.grad[0, 0].numpy() != 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.sampled_from([2, 4, 6]), w=st.sampled_from([2, 4, 6]), c1=st.integers(1, 4), c2=st.integers(1, 4),
       kind=st.sampled_from(["conv", "pool", "convT"]), n_thr=st.integers(1, 4),
       lowering=st.sampled_from(["compartments", "graded"]), comps=st.integers(4, 96),
       memory=st.integers(256, 8192), fan_in=st.integers(16, 512), fan_out=st.integers(16, 512),
       encoding=st.sampled_from(["shared", "explicit"]))
def test_mapper_respects_limits_and_places_every_neuron_once(h, w, c1, c2, kind, n_thr, lowering, comps, memory,
                                                              fan_in, fan_out, encoding):
    net = _random_net(h, w, c1, c2, kind, n_thr)
    profile = load_profile("loihi2", [f"core.compartments={comps}", f"core.memory={memory}", f"core.fan_in={fan_in}",
                                      f"core.fan_out={fan_out}", f"memory_model.synapse_encoding=\"{encoding}\"",
                                      "chip.max_chips=100000"])
    mapping, reasons = plan(net, profile, lowering)
    if mapping is None:
        assert reasons and all("single" in r for r in reasons)
        return
    limits = {"compartments": comps, "memory": memory, "fan_in": fan_in, "fan_out": fan_out}
    geos = {l.name: Geometry(net, l) for l in net.neuron_layers}
    for lm in mapping.layers:
        layer = net[lm.layer]
        for res, limit in limits.items():
            assert lm.resource(res).max() <= limit, (lm.layer, res)
        placed = np.zeros(layer.shape, dtype=np.int64)
        for (c0, c1_), (y0, y1), (x0, x1) in lm.core_tiles():
            placed[c0:c1_, y0:y1, x0:x1] += 1
        assert (placed == 1).all()                                   # every neuron exactly once
        n_comp = len(layer.neuron.thresholds) if layer.neuron.kind == "MT" and lowering == "compartments" else 1
        assert lm.compartments.sum() == layer.neurons * n_comp
        # fan-in per core checked by brute force against an all-ones convolution
        geo = geos[lm.layer]
        if layer.static:
            assert lm.fan_in.max() == 0
            continue
        u = {p.source.name: (len(p.source.neuron.thresholds) if lowering == "compartments" else 1) for p in geo.parts}
        for idx, tile in enumerate(lm.core_tiles()):
            reads = int(_reads(geo, tile).sum())
            chans = (tile[0][1] - tile[0][0]) if geo.depthwise else None
            expect = sum(u[p.source.name] * (chans if chans is not None else p.channels) for p in geo.parts) * reads
            assert lm.fan_in.ravel()[idx] == expect
    # fan-out per core by brute force: (emitting unit, destination core) pairs
    for lm in mapping.layers:
        layer = net[lm.layer]
        if layer.neuron.kind != "MT":
            assert lm.fan_out.max() == 0
            continue
        reached = np.zeros(layer.shape, dtype=np.int64)
        for dest in mapping.layers:
            geo = geos[dest.layer]
            if layer.name not in [p.source.name for p in geo.parts] or geo.layer.static:
                continue
            for tile in dest.core_tiles():
                mask = _reads(geo, tile)
                if geo.depthwise:
                    reached[tile[0][0]:tile[0][1]] += mask
                else:
                    reached += mask[None]
        n_emit = len(layer.neuron.thresholds) if lowering == "compartments" else 1
        for idx, ((c0, c1_), (y0, y1), (x0, x1)) in enumerate(lm.core_tiles()):
            assert lm.fan_out.ravel()[idx] == n_emit * reached[c0:c1_, y0:y1, x0:x1].sum()
    assert mapping.chips == math.ceil(mapping.cores / 128)


def test_network_that_does_not_fit_names_the_layer():
    net = three_layer_net()
    # a conv2 neuron reads 2 channels x 9 pixels x 4 compartments = 72 input axons
    with pytest.raises(HardwareLimitError, match=r"conv2.*fan-in 72 > .*limit 64.*graded lowering"):
        map_network(net, loihi2("core.fan_in=64"), "compartments")
    assert map_network(net, loihi2("core.fan_in=64"), "graded").cores >= 3       # graded: 18 axons fit
    ok, reasons = fits(net, loihi2("core.fan_in=64"))
    assert not ok and any("conv2" in r for r in reasons)
    assert fits(net, loihi2()) == (True, [])
    # more chips than allowed
    with pytest.raises(HardwareLimitError, match=r"max_chips 1.*largest layers: conv"):
        map_network(net, loihi2("core.compartments=8", "chip.cores_per_chip=2", "chip.max_chips=1"), "compartments")
    # Loihi 1 has binary spikes only
    ok, reasons = fits(net, load_profile("loihi1"), "graded")
    assert not ok and "payload" in reasons[0]
    with pytest.raises(HardwareLimitError, match="conv2"):
        profile_network(net, hand_result(net, 1, {}), loihi2("core.fan_in=64"))


# ----------------------------------------------------------------------------------------------------------------
# The paper's Table 5 arithmetic
# ----------------------------------------------------------------------------------------------------------------
def paper_unet_graph(h=256, w=256, width=64, depth=4, c_in=3, classes=32) -> Network:
    """The paper's CamSeq01 U-Net as a shape-only layer graph (no weights needed to count MACs)."""
    thr = NeuronSpec("MT", (2.0, 1.0, 0.5, 0.25))
    ch = [width * 2 ** i for i in range(depth + 1)]
    layers = [Layer("input", "input", (c_in, h, w))]

    def add(name, kind, shape, src, **kw):
        neuron = kw.pop("neuron", thr)
        bias = None if kind == "pool" else np.zeros(shape[0])
        layers.append(Layer(name, kind, shape, (src,), neuron=neuron, bias=bias, **kw))
        return name

    x, skips, size = "input", [], (h, w)
    for i in range(depth + 1):
        stage = f"enc{i}" if i < depth else "bottleneck"
        x = add(f"{stage}.conv1", "conv", (ch[i], *size), x, kernel=3, padding=1, static=(i == 0))
        x = add(f"{stage}.conv2", "conv", (ch[i], *size), x, kernel=3, padding=1)
        if i < depth:
            skips.append((x, size))
            size = (size[0] // 2, size[1] // 2)
            x = add(f"down{i}", "pool", (ch[i], *size), x, kernel=2, stride=2)
    for i in reversed(range(depth)):
        skip, size = skips[i]
        up = add(f"up{i}.upconv", "convT", (ch[i], *size), x, kernel=3, stride=2, padding=1, output_padding=1)
        layers.append(Layer(f"concat{i}", "concat", (2 * ch[i], *size), (skip, up)))
        x = add(f"up{i}.conv1", "conv", (ch[i], *size), f"concat{i}", kernel=3, padding=1)
        x = add(f"up{i}.conv2", "conv", (ch[i], *size), x, kernel=3, padding=1)
    add("head", "conv", (classes, h, w), x, kernel=1, neuron=NeuronSpec("ACC"))
    return Network(layers)


def test_paper_table5_arithmetic():
    ref = load_profile("generic45nm")
    net = paper_unet_graph()
    geos = [Geometry(net, l) for l in net.neuron_layers]
    ann_macs = sum(g.thop_macs() for g in geos)
    assert f"{ann_macs:.2e}" == "6.55e+10"                                  # Table 5: U-Net 6.55e10 FLOPs
    assert ann_macs * 4.6 * PJ == pytest.approx(0.301, abs=5e-4)           # ... and 0.301 J
    assert 6.55e10 * 4.6 * PJ == pytest.approx(0.301, abs=5e-4)
    # Spiking-UNet: FLOPs 2.92e8 = spikes + input-layer MACs, E = spikes x 0.9 pJ + input MACs x 4.6 pJ = 6.98e-4 J.
    input_macs = geos[0].thop_macs()                                        # 256^2 x 64 x (3 x 9 + 1) = 1.174e8
    assert input_macs == 256 * 256 * 64 * 28
    spikes = 2.92e8 - input_macs
    tot = {"spikes": spikes, "synops_spikes": 0.0, "host_macs": input_macs, "ann_macs": ann_macs,
           "spikes_excluding_pool": spikes}
    e = paper_energy(tot, ref)
    assert e["paper"]["flops"] == pytest.approx(2.92e8)
    assert e["paper"]["energy_j"] == spikes * 0.9 * PJ + input_macs * 4.6 * PJ
    assert e["paper"]["energy_j"] == pytest.approx(6.98e-4, rel=2e-3)       # consistent with Table 5
    assert e["ann"]["energy_j"] == pytest.approx(0.301, abs=5e-4)
    assert e["ratios"]["ann_over_paper"] == pytest.approx(0.301 / 6.98e-4, rel=5e-3)
    # the arithmetic for arbitrary given counts
    e2 = paper_energy({**tot, "spikes": 1e6, "host_macs": 2e5, "synops_spikes": 3e7}, ref)
    assert e2["paper"]["energy_j"] == pytest.approx(1e6 * 0.9e-12 + 2e5 * 4.6e-12)
    assert e2["paper_synops"]["energy_j"] == pytest.approx(3e7 * 0.9e-12 + 2e5 * 4.6e-12)


# ----------------------------------------------------------------------------------------------------------------
# Profiles: loading, overrides, validation
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_unet():
    from toolchain.frontend.conversion import ConversionSettings, convert
    from toolchain.lowering.lower import export_network
    from toolchain.lowering.quantize import QuantSettings
    from toolchain.frontend.unet import UNet, UNetConfig
    torch.manual_seed(0)
    ann = UNet(UNetConfig("denoise", 1, 1, 4, 2))
    snn, info = convert(ann, torch.rand(4, 1, 16, 16), ConversionSettings())
    net, _ = export_network(snn, info, (16, 16), QuantSettings(steps=4))
    images = np.random.default_rng(0).random((2, 1, 16, 16))
    result, activity = collect_activity(net, images, 4)
    return net, images, result, activity


def test_small_unet_profile_is_consistent(small_unet):
    net, images, result, activity = small_unet
    report = profile_network(net, result, load_profile("loihi2"), 4, activity=activity)
    rows, tot = report["layers"], report["totals"]
    assert activity.exact and report["activity"]["exact"]
    for key in ("neurons", "compartments", "synapses", "spikes", "synops", "neuron_updates", "ann_macs"):
        assert tot[key] == pytest.approx(sum(r[key] for r in rows)), key
    assert tot["spikes"] == pytest.approx(sum(map(sum, result.spike_counts.values())) / 2)
    mt = [r for r in rows if r["neuron"] == "MT"]
    assert tot["compartments"] == 4 * sum(r["neurons"] for r in mt) + net.output.neurons
    assert tot["synops"] == tot["synops_spikes"] >= tot["spikes"] > 0       # every spike has fan-out >= 1
    for r in rows:
        assert r["core_synops_check"] == pytest.approx(r["synops"])         # per-core events add up
        assert r["synapses"] == (4 * r["connections"] if not r["type"].endswith("(static)") else 0)
    lw = report["lowerings"]
    assert lw["graded"]["compartments"] == tot["neurons"]
    assert lw["graded"]["messages"] <= lw["compartments"]["messages"] == tot["spikes"]
    assert lw["graded"]["synops"] <= lw["compartments"]["synops"]
    assert lw["graded"]["synapses"] * 4 == lw["compartments"]["synapses"]
    assert lw["compartments"]["fits"] and lw["graded"]["fits"]
    e = report["energy"]
    assert e["paper"]["energy_j"] == pytest.approx(tot["spikes"] * 0.9 * PJ + tot["host_macs"] * 4.6 * PJ)
    assert e["ann"]["energy_j"] == pytest.approx(tot["ann_macs"] * 4.6 * PJ)
    assert e["profile"]["energy_j"] == pytest.approx(sum(e["profile"]["breakdown_j"].values()))
    assert e["profile"]["energy_j"] == pytest.approx(sum(x["energy_j"] for x in e["profile"]["per_layer"])
                                                     + e["profile"]["breakdown_j"]["static"])
    assert report["mapping"]["cores"] == sum(x["cores"] for x in report["mapping"]["layers"])
    assert max(max(v) for v in report["mapping"]["per_core"].values()) <= 1.0
    assert report["timing"]["latency_steps"] == 4 + net.latency
    # without recorded spike maps the per-threshold totals stay exact, synops are estimated
    estimated = profile_network(net, ReferenceSimulator(net).run(images, 4), load_profile("loihi2"))
    assert not estimated["activity"]["exact"]
    assert estimated["totals"]["spikes"] == tot["spikes"]
    assert estimated["totals"]["synops"] == pytest.approx(tot["synops"], rel=0.2)


def test_report_files(small_unet, tmp_path):
    net, _, result, activity = small_unet
    for name in ("loihi2", "loihi1", "generic45nm"):
        report = profile_network(net, result, load_profile(name), activity=activity)
        paths = write_report(report, tmp_path / name)
        for key in ("json", "markdown", "spikes_per_layer.png", "firing_rate.png", "energy_breakdown.png",
                    "core_utilization.png"):
            assert paths[key].is_file() and paths[key].stat().st_size > 0, (name, key)
        data = json.loads(paths["json"].read_text())
        assert data["totals"]["spikes"] > 0 and data["totals"]["energy_paper_j"] > 0
        assert data["profile"]["name"] == name
        md = paths["markdown"].read_text()
        assert "| layer | type | shape | neurons | compartments | cores | synapses | spikes | synops | energy (J) |" in md
        assert "paper eq. 13" in md and "MT lowerings compared" in md
        assert not list((tmp_path / name).glob("*.part"))
    assert data["energy"]["profile"] is None and data["mapping"] is None          # generic45nm: no cores
    loihi1 = json.loads((tmp_path / "loihi1" / "report.json").read_text())
    assert loihi1["lowerings"]["graded"]["fits"] is False                          # binary spikes only
