"""Loihi 2 profile arithmetic and reports: the paper's Table 5 counts on the paper's U-Net graph, and a small real
U-Net end to end (simulate, profile, report files). Hand-built networks: test_hardware_profile.py."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.hardware import Geometry, collect_activity, load_profile, paper_energy, profile_network, write_report
from toolchain.ir import (Accumulator, Concat, Conv, ConvTranspose, FloatNetwork, FloatSynapses, Input,
                          MultiThreshold, SumPool, derived_shape)
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings
from toolchain.simulators.reference import ReferenceSimulator

PJ = 1e-12


def validate_shapes(net) -> bool:
    """Every layer's shape follows from its sources (the hand-built graph is the U-Net it claims to be)."""
    shapes = {}
    for layer in net:
        shapes[layer.name] = layer.shape if isinstance(layer, Input) else derived_shape(
            layer, [shapes[s] for s in layer.inputs])
        assert shapes[layer.name] == layer.shape, layer.name
    return True


# ----------------------------------------------------------------------------------------------------------------
# The paper's Table 5 arithmetic
# ----------------------------------------------------------------------------------------------------------------
def paper_unet_graph(h=256, w=256, width=64, depth=4, c_in=3, classes=32) -> FloatNetwork:
    """The paper's CamSeq01 U-Net as a shape-only float layer graph (no weight values are needed to count MACs:
    every weight is a zero-strided view of the right shape)."""
    thr = MultiThreshold((2.0, 1.0, 0.5, 0.25))
    ch = [width * 2 ** i for i in range(depth + 1)]
    layers = [Input(name="input", shape=(c_in, h, w))]
    channels = {"input": c_in}

    def synapses(weight_shape, c_out):
        return FloatSynapses(weight=np.broadcast_to(np.float32(0), weight_shape), bias=np.zeros(c_out, np.float32))

    def add(name, cls, shape, src, neuron=thr, **kw):
        c_out, c_in_ = shape[0], channels[src]
        if cls is SumPool:
            syn = FloatSynapses(weight=np.array([0.25], np.float32))
        elif cls is ConvTranspose:
            syn = synapses((c_in_, c_out, *kw["kernel"]), c_out)
        else:
            syn = synapses((c_out, c_in_, *kw["kernel"]), c_out)
        layers.append(cls(name=name, shape=shape, inputs=(src,), neuron=neuron, synapses=syn, **kw))
        channels[name] = c_out
        return name

    x, skips, size = "input", [], (h, w)
    for i in range(depth + 1):
        stage = f"enc{i}" if i < depth else "bottleneck"
        x = add(f"{stage}.conv1", Conv, (ch[i], *size), x, kernel=(3, 3), padding=(1, 1), static=(i == 0))
        x = add(f"{stage}.conv2", Conv, (ch[i], *size), x, kernel=(3, 3), padding=(1, 1))
        if i < depth:
            skips.append((x, size))
            size = (size[0] // 2, size[1] // 2)
            x = add(f"down{i}", SumPool, (ch[i], *size), x, kernel=(2, 2), pool_weight=0.25)
    for i in reversed(range(depth)):
        skip, size = skips[i]
        up = add(f"up{i}.upconv", ConvTranspose, (ch[i], *size), x, kernel=(3, 3), stride=(2, 2), padding=(1, 1),
                 output_padding=(1, 1))
        layers.append(Concat(name=f"concat{i}", shape=(2 * ch[i], *size), inputs=(skip, up)))
        channels[f"concat{i}"] = 2 * ch[i]
        x = add(f"up{i}.conv1", Conv, (ch[i], *size), f"concat{i}", kernel=(3, 3), padding=(1, 1))
        x = add(f"up{i}.conv2", Conv, (ch[i], *size), x, kernel=(3, 3), padding=(1, 1))
    add("head", Conv, (classes, h, w), x, neuron=Accumulator(), kernel=(1, 1))
    return FloatNetwork(layers)


def test_paper_table5_arithmetic():
    ref = load_profile("generic45nm")
    net = paper_unet_graph()
    assert validate_shapes(net)
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
# A small real U-Net, end to end: simulate, profile, report
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_unet():
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
    estimated = profile_network(net, ReferenceSimulator(net).run(images, 4, record="none"), load_profile("loihi2"))
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
        header = "| layer | type | shape | neurons | compartments | cores | synapses | spikes | synops |"
        assert header in md and "paper eq. 13" in md and "MT lowerings compared" in md
        assert "int8" in md                                                     # the ANN at 0.23 pJ per MAC beside fp32
        assert not list((tmp_path / name).glob("*.part"))
    assert data["energy"]["profile"] is None and data["mapping"] is None          # generic45nm: no cores
    loihi1 = json.loads((tmp_path / "loihi1" / "report.json").read_text())
    assert loihi1["lowerings"]["graded"]["fits"] is False                          # binary spikes only
    l2 = json.loads((tmp_path / "loihi2" / "report.json").read_text())
    band = l2["energy"]["profile"]["band_j"]
    assert band["low"] < band["value"] < band["high"] and l2["mapping"]["model"] == "compiler"
    assert "band" in l2["timing"] and "synops (non-zero w)" in (tmp_path / "loihi2" / "report.md").read_text()
