"""The PyTorch SNN's speed-ups against what they replace, bit for bit: the fused MT kernel against
its definition ``mt_step`` + ``mt_output``, and the simulation shortcuts (first convolution once per
simulation, neuron outputs in scratch tensors) against plain steps.

Both run whenever no gradient is needed (inference, the recording pass of spiking-flow fine-tuning),
so these tests guard every float figure of the front end.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from toolchain.neuron.fused import fused_mt_step, fused_step_applies
from toolchain.neuron.mt import MultiThresholdNeuron, mt_output, mt_step
from toolchain.frontend.snn import SpikingUNet
from toolchain.frontend.unet import UNetConfig

ROOT = Path(__file__).resolve().parents[1]
THRESHOLD_SETS = [(2.0, 1.0, 0.5, 0.25), (1.0,), (0.7, 0.3, 0.05), (3.1, 1.7, 0.9, 0.41, 0.2)]


def _torch_step(v, current, thresholds, flows=None):
    v, spikes = mt_step(v, current, thresholds)
    out = mt_output(spikes, thresholds)
    counts = np.array([int(s.sum()) for s in spikes], dtype=np.int64)
    if flows is not None:
        flows = (flows[0] + current, flows[1] + out)
    return v, out, counts, flows


@pytest.mark.parametrize("thresholds", THRESHOLD_SETS)
@pytest.mark.parametrize("shape", [(2, 3, 37, 41), (1, 4, 64, 64), (5,)])   # not multiples of the block
def test_kernel_equals_mt_step_bit_for_bit(thresholds, shape):
    gen = torch.Generator().manual_seed(len(thresholds) * 1000 + len(shape))
    v_ref: torch.Tensor | float = 0.0
    v_fused: torch.Tensor | float = 0.0
    flows_ref = (torch.zeros(shape), torch.zeros(shape))
    flows_fused = (torch.zeros(shape), torch.zeros(shape))
    total = np.zeros(len(thresholds), dtype=np.int64)
    for step in range(25):
        current = torch.randn(shape, generator=gen) * (1.5 if step % 2 else 0.4)
        if step == 3:                       # exact threshold values: strict firing must not fire
            current = torch.full(shape, thresholds[-1]) - (v_ref if isinstance(v_ref, torch.Tensor) else 0.0)
        v_ref, out_ref, counts_ref, flows_ref = _torch_step(v_ref, current, thresholds, flows_ref)
        v_fused, out_fused, counts_fused = fused_mt_step(v_fused, current, thresholds, flows_fused)
        assert torch.equal(v_fused, v_ref), f"membrane differs at step {step}"
        assert torch.equal(out_fused, out_ref), f"output differs at step {step}"
        assert counts_fused.tolist() == counts_ref.tolist(), f"counts differ at step {step}"
        total += counts_fused
    assert torch.equal(flows_fused[0], flows_ref[0]) and torch.equal(flows_fused[1], flows_ref[1])
    assert total.sum() > 0


def test_kernel_special_values():
    thresholds = (2.0, 1.0, 0.5, 0.25)
    current = torch.tensor([0.0, -0.0, 0.25, 0.5, 1e-45, -1e-45, 3.4e38, -3.4e38, float("inf"), float("-inf"),
                            float("nan"), 3.75, 3.7500002])
    for start in (0.0, torch.full_like(current, 0.125)):
        v_ref, spikes = mt_step(start, current, thresholds)
        v_fused, out, counts = fused_mt_step(start if isinstance(start, float) else start.clone(), current,
                                             thresholds)
        assert torch.equal(torch.nan_to_num(v_fused, nan=7.0), torch.nan_to_num(v_ref, nan=7.0))
        assert torch.equal(out, mt_output(spikes, thresholds))
        assert counts.tolist() == [int(s.sum()) for s in spikes]


def test_kernel_updates_the_membrane_in_place():
    v = torch.zeros(4)
    v_new, _, _ = fused_mt_step(v, torch.full((4,), 0.6), (0.5,))
    assert v_new.data_ptr() == v.data_ptr() and torch.allclose(v, torch.full((4,), 0.1))


@pytest.mark.parametrize("case, applies", [
    ("float32", True), ("float64", False), ("requires_grad", False), ("other_shape", False), ("int", False)])
def test_when_the_kernel_applies(case, applies):
    current = {"float32": torch.ones(2, 3), "float64": torch.ones(2, 3, dtype=torch.float64),
               "requires_grad": torch.ones(2, 3, requires_grad=True), "other_shape": torch.ones(2, 3),
               "int": torch.ones(2, 3, dtype=torch.int64)}[case]
    v = torch.zeros(3, 3) if case == "other_shape" else 0.0
    assert fused_step_applies(v, current) is applies
    with torch.no_grad():                 # without autograd a requires_grad input is fine
        assert fused_step_applies(0.0, torch.ones(2, 3, requires_grad=True))


def _drive_snn() -> SpikingUNet:
    torch.manual_seed(0)
    snn = SpikingUNet(UNetConfig("denoise", 1, 1, width=4, depth=2), (2.0, 1.0, 0.5, 0.25))
    for p in snn.parameters():
        p.data.mul_(3.0)                   # enough drive for every threshold to fire somewhere
    return snn


@pytest.mark.parametrize("unfused_by", ["switch", "autograd"])
def test_spiking_unet_fused_equals_unfused(unfused_by):
    """A whole simulation (with flow recording) by the kernel equals the op-by-op mt_step path, taken when
    the kernel is switched off or when autograd is on for the input."""
    snn, x = _drive_snn(), torch.rand(2, 1, 20, 24)
    with torch.no_grad():
        fused = snn.run(x, 6, record_flow=True)
    fused_flows = [(m.flow_in.clone(), m.flow_out.clone()) for _, m in snn.neurons()]
    if unfused_by == "switch":
        snn.use_fused_kernel(False)
        with torch.no_grad():
            unfused = snn.run(x, 6, record_flow=True)
        assert not any(m.fused for _, m in snn.neurons())
    else:
        for p in snn.parameters():
            p.requires_grad_(False)
        unfused = snn.run(x.clone().requires_grad_(True), 6, record_flow=True)
        assert snn.neurons()[0][1].v.requires_grad   # the op-by-op path ran (the kernel's membrane has no graph)
    assert not fused.output.requires_grad
    assert torch.equal(fused.output, unfused.output.detach())
    assert [s.counts for s in fused.stats] == [s.counts for s in unfused.stats]
    assert all(c > 0 for s in fused.stats for c in s.counts[-2:])
    for (fi, fo), (_, m) in zip(fused_flows, snn.neurons()):
        assert torch.equal(fi, m.flow_in) and torch.equal(fo, m.flow_out)


def test_speed_benchmark_runs_and_checks_identity(tmp_path):
    out = tmp_path / "speed.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "snn_speed.py"), "--width", "4", "--depth", "1",
                           "--size", "16", "--steps", "2", "--repeat", "1", "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text())
    assert figures["identical"] is True
    assert [(r["steps"], r["torch_threads"], r["fused"]) for r in figures["rows"]] == [(2, 1, True), (2, 1, False)]
    assert all(r["ratio"] == pytest.approx(statistics.median(b / (2 * a) for a, b in zip(r["ann_times_s"], r["snn_times_s"])))
               for r in figures["rows"])
    assert "SNN/(T*ANN)" in proc.stdout


def test_simulation_shortcuts_equal_the_plain_steps():
    """conv1 once per simulation and scratch outputs give what conv1 every step and fresh tensors give."""
    snn, x = _drive_snn(), torch.rand(1, 1, 16, 16)
    first = snn.core.encoders[0].conv1
    with torch.no_grad():
        shortcut = snn.simulate(x, 5)
        snn.reset()
        plain = sum(snn.core(x) for _ in range(5)) / 5          # no shortcuts: conv1 and new outputs every step
    assert snn.core.encoders[0].conv1 is first                 # restored after the simulation
    assert torch.equal(shortcut.output, plain)
    neuron = snn.neurons()[0][1]
    assert not neuron.reuse_output and neuron.scratch is None
    with torch.no_grad(), snn.simulation_shortcuts(x):
        assert snn.core.encoders[0].conv1 is not first
        snn.core(x)
        pointer = neuron.scratch.data_ptr()
        snn.core(x)
        assert neuron.scratch.data_ptr() == pointer            # the same tensor, rewritten
    with torch.no_grad(), pytest.raises(KeyError):
        with snn.simulation_shortcuts(x):
            raise KeyError("interrupted")
    assert snn.core.encoders[0].conv1 is first and not neuron.reuse_output    # restored after an exception too
    with snn.simulation_shortcuts(x):                          # autograd on: nothing changes
        assert snn.core.encoders[0].conv1 is first and not neuron.reuse_output


def test_kernel_writes_into_a_given_output_tensor():
    out = torch.full((4,), 9.0)
    _, written, _ = fused_mt_step(0.0, torch.full((4,), 0.6), (0.5,), out=out)
    assert written is out and out.tolist() == [0.5] * 4
    _, fresh, _ = fused_mt_step(0.0, torch.full((3,), 0.6), (0.5,), out=out)    # wrong shape: a new tensor
    assert fresh is not out and fresh.tolist() == [0.5] * 3


def test_module_falls_back_for_float64():
    neuron = MultiThresholdNeuron((1.0, 0.5))
    out = neuron(torch.full((1, 2), 0.75, dtype=torch.float64))
    assert out.dtype == torch.float64 and out.tolist() == [[0.5, 0.5]]
    assert neuron.spike_counts.tolist() == [0.0, 2.0]
