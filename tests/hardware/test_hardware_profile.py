"""The byte-memory resource model (``resource_model: bytes``, Loihi 1's) on hand-built quantized networks: exact
per-layer costs, energy by two methods, border-exact geometry and the core mapper (the paper's Table 5 and a real
U-Net's report: test_hardware_report.py; the calibrated Loihi 2 compiler model: test_compiler_model.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolchain.errors import HardwareLimitError
from toolchain.hardware import (Activity, Geometry, axis_taps, collect_activity, fits, layer_costs, load_profile,
                                map_network, plan, profile_network)
from toolchain.ir import (Accumulator, Concat, Conv, ConvTranspose, FixedSynapses, Input, MultiThreshold,
                          NetworkMeta, QuantizedNetwork, SumPool, assign_depths)
from toolchain.lowering.fixed_point import Overflow
from toolchain.simulators.reference import ReferenceSimulator
from toolchain.simulators.result import SimulationResult

THR = (512, 256, 128, 64)          # integer MT thresholds: spike weights r = 8, 4, 2, 1
PJ = 1e-12


# ----------------------------------------------------------------------------------------------------------------
# Hand-built quantized networks
# ----------------------------------------------------------------------------------------------------------------
def _fixed(c_out, weight_shape, rng=None):
    """Fixed-point synapses: random int32 mantissas (exponent 0), zero bias, unit 64."""
    rng = rng or np.random.default_rng(0)
    return FixedSynapses(weight=rng.integers(-60, 60, size=weight_shape).astype(np.int32), weight_exp=(0,),
                         bias=np.zeros(c_out, dtype=np.int64), bias_exp=np.zeros(c_out, dtype=np.int64), unit=64.0)


def _conv(name, src, c_out, c_in, k, pad, neuron, static=False, rng=None):
    return Conv(name=name, shape=(c_out, 4, 4), inputs=(src,), neuron=neuron,
                synapses=_fixed(c_out, (c_out, c_in, k, k), rng), kernel=(k, k), padding=(pad, pad), static=static)


def _quantized(layers, **meta) -> QuantizedNetwork:
    return assign_depths(QuantizedNetwork(layers, NetworkMeta(weight_bits=8, **meta)))


def two_layer_net() -> QuantizedNetwork:
    """input 1x4x4 -> static conv 3x3 pad 1, 2 channels, MT (4 thresholds) -> conv 1x1 to 1 channel, ACC."""
    layers = [Input(name="input", shape=(1, 4, 4)),
              _conv("conv1", "input", 2, 1, 3, 1, MultiThreshold(THR), static=True),
              _conv("head", "conv1", 1, 2, 1, 0, Accumulator())]
    return _quantized(layers, lowering="compartments")


def three_layer_net() -> QuantizedNetwork:
    """... static conv (2 ch) -> conv 3x3 pad 1 (3 ch, MT) -> head 1x1 (ACC): for border-exact synops."""
    layers = [Input(name="input", shape=(1, 4, 4)),
              _conv("conv1", "input", 2, 1, 3, 1, MultiThreshold(THR), static=True),
              _conv("conv2", "conv1", 3, 2, 3, 1, MultiThreshold(THR)),
              _conv("head", "conv2", 1, 3, 1, 0, Accumulator())]
    return _quantized(layers, lowering="compartments")


def hand_result(net: QuantizedNetwork, steps: int,
                events: dict[str, list[tuple[int, int, int, int, int]]]) -> SimulationResult:
    """A result recorded with record="spikes" (batch 1) whose spikes (step, threshold, c, y, x) are set by hand."""
    spikes, counts = {}, {}
    for layer in net.neuron_layers:
        if not isinstance(layer.neuron, MultiThreshold):
            continue
        rec = np.zeros((steps, 4, 1) + layer.shape, dtype=np.uint8)
        for t, i, c, y, x in events.get(layer.name, []):
            rec[t, i, 0, c, y, x] = 1
        spikes[layer.name] = rec
        counts[layer.name] = [int(rec[:, i].sum()) for i in range(4)]
    out = np.zeros((1,) + net.output.shape)
    return SimulationResult(output=out, accumulator=out.astype(np.int64), steps=steps, spike_counts=counts,
                            saturations={}, static_overflow=Overflow(), spikes=spikes)


# Loihi 1's profile with the byte-model limits the Loihi 2 profile had before its calibration (issue 13):
# 8192 compartments, 192 KB, 65536 axons, shared kernels; Loihi 1's per-op energies.
BYTES_L2 = ["core.compartments=8192", "core.memory=196608", "core.fan_in=65536", "core.fan_out=65536",
            "core.weight_bits=8", "core.graded_payload_bits=32", 'memory_model.synapse_encoding="shared"',
            "memory_model.state_bytes_per_compartment=8", "memory_model.axon_in_bytes=4",
            "memory_model.axon_out_bytes=4"]


def loihi2(*extra: str):
    """A bytes-model profile (see BYTES_L2) without static power."""
    return load_profile("loihi1", [*BYTES_L2, "power.static_per_chip=0", *extra])


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
    rows = axis_taps(kind == "convT", h, ho, k, s, p)
    cols = axis_taps(kind == "convT", w, wo, k, s, p)
    np.testing.assert_array_equal(np.outer(rows.sum(0), cols.sum(0)) * c_out, fanout)   # fan-out per source pixel
    assert rows.sum() * cols.sum() * 2 * c_out == total                                  # weight taps (synapses)


# ----------------------------------------------------------------------------------------------------------------
# Mapper: never exceeds a limit, places every neuron exactly once (hypothesis)
# ----------------------------------------------------------------------------------------------------------------
def _random_net(h, w, c1, c2, kind, n_thr):
    thr = MultiThreshold(tuple(64 * 2 ** i for i in reversed(range(n_thr))))
    layers = [Input(name="input", shape=(1, h, w)),
              Conv(name="c1", shape=(c1, h, w), inputs=("input",), neuron=thr, synapses=_fixed(c1, (c1, 1, 3, 3)),
                   kernel=(3, 3), padding=(1, 1), static=True)]
    if kind == "conv":
        layers.append(Conv(name="mid", shape=(c2, h, w), inputs=("c1",), neuron=thr,
                           synapses=_fixed(c2, (c2, c1, 3, 3)), kernel=(3, 3), padding=(1, 1)))
    elif kind == "pool":
        layers.append(SumPool(name="mid", shape=(c1, h // 2, w // 2), inputs=("c1",), neuron=thr,
                              synapses=_fixed(c1, (1,)), kernel=(2, 2), pool_weight=0.25))
    else:
        layers.append(ConvTranspose(name="mid", shape=(c2, 2 * h, 2 * w), inputs=("c1",), neuron=thr,
                                    synapses=_fixed(c2, (c1, c2, 3, 3)), kernel=(3, 3), stride=(2, 2),
                                    padding=(1, 1), output_padding=(1, 1)))
    mid = layers[-1].shape
    layers.append(Concat(name="cat", shape=(c1 + mid[0], h, w), inputs=("c1", "mid")) if kind == "conv" else
                  Conv(name="skip", shape=(c2, mid[1], mid[2]), inputs=("mid",), neuron=thr,
                       synapses=_fixed(c2, (c2, mid[0], 1, 1)), kernel=(1, 1)))
    src = layers[-1]
    layers.append(Conv(name="head", shape=(1, src.shape[1], src.shape[2]), inputs=(src.name,), neuron=Accumulator(),
                       synapses=_fixed(1, (1, src.shape[0], 3, 3)), kernel=(3, 3), padding=(1, 1)))
    return _quantized(layers)


def _reads(geo, tile):
    """Brute force (autograd through an all-ones convolution): source pixels feeding output tile rows/cols."""
    layer = geo.layer
    h_in, w_in = geo.in_hw
    x = torch.zeros(1, 1, h_in, w_in, dtype=torch.float64, requires_grad=True)
    ones = torch.ones(1, 1, *layer.kernel, dtype=torch.float64)
    if isinstance(layer, ConvTranspose):
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
    profile = load_profile("loihi1", [*BYTES_L2, f"core.compartments={comps}", f"core.memory={memory}",
                                      f"core.fan_in={fan_in}", f"core.fan_out={fan_out}",
                                      f"memory_model.synapse_encoding=\"{encoding}\"", "chip.max_chips=100000"])
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
        n_comp = len(layer.neuron.thresholds) if isinstance(layer.neuron, MultiThreshold) and lowering == "compartments" else 1
        assert lm.compartments.sum() == layer.neurons * n_comp
        # fan-in per core checked by brute force against an all-ones convolution
        geo = geos[lm.layer]
        if geo.static:
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
        if not isinstance(layer.neuron, MultiThreshold):
            assert lm.fan_out.max() == 0
            continue
        reached = np.zeros(layer.shape, dtype=np.int64)
        for dest in mapping.layers:
            geo = geos[dest.layer]
            if layer.name not in [p.source.name for p in geo.parts] or geo.static:
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
