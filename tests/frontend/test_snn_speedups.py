"""The PyTorch SNN's speed-ups against what they replace, bit for bit: the fused MT kernel against
``mt_step`` op by op in whole simulations, and the simulation shortcuts (first convolution once per
simulation, neuron outputs in scratch tensors) against plain steps; and the speed benchmark."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from toolchain.frontend.cells import RunOptions
from toolchain.frontend.snn import SpikingNetwork, spiking_unet
from toolchain.frontend.unet import UNetConfig, UNetCore
from toolchain.frontend.trace import trace_network
from toolchain.ir import MultiThreshold

ROOT = Path(__file__).resolve().parents[2]
THETAS = (2.0, 1.0, 0.5, 0.25)


def _drive_snn() -> SpikingNetwork:
    torch.manual_seed(0)
    config = UNetConfig("denoise", 1, 1, width=4, depth=2)
    network = trace_network(UNetCore(config), (1, 4, 4), lambda _m: MultiThreshold(THETAS))
    snn = SpikingNetwork(network, config.multiple, config=config)
    for p in snn.parameters():
        p.data.mul_(3.0)                   # enough drive for every threshold to fire somewhere
    return snn


@pytest.mark.parametrize("unfused_by", ["switch", "autograd"])
def test_spiking_network_fused_equals_unfused(unfused_by):
    """A whole simulation (with flow recording) by the kernel equals the op-by-op mt_step path, taken when
    the kernel is switched off or when autograd is on for the input."""
    snn, x = _drive_snn(), torch.rand(2, 1, 20, 24)
    with torch.no_grad():
        fused = snn.run(x, 6, record_flow=True)
    if unfused_by == "switch":
        with torch.no_grad():
            unfused = snn.run(x, 6, record_flow=True, kernel="reference")
    else:
        for p in snn.parameters():
            p.requires_grad_(False)
        unfused = snn.run(x.clone().requires_grad_(True), 6, record_flow=True)
        first = next(iter(unfused.states.values()))
        assert first.v.requires_grad           # the op-by-op path ran (the kernel's membrane has no graph)
    assert not fused.output.requires_grad
    assert torch.equal(fused.output, unfused.output.detach())
    assert [s.counts for s in fused.stats] == [s.counts for s in unfused.stats]
    assert all(c > 0 for s in fused.stats for c in s.counts[-2:])
    for name, state in fused.states.items():
        other = unfused.states[name]
        assert torch.equal(state.flow_in, other.flow_in.detach()) and torch.equal(state.flow_out, other.flow_out.detach())


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
    with torch.no_grad():
        shortcut = snn.simulate(x, 5)
    with torch.no_grad():
        plain = snn.run(x, 5, shortcuts=False)       # conv1 every step, fresh output tensors
    assert torch.equal(shortcut.output, plain.output)
    assert [s.counts for s in shortcut.stats] == [s.counts for s in plain.stats]
    assert all(s.scratch is None for s in shortcut.states.values())   # the scratch tensors are let go after the run


def test_scratch_outputs_are_rewritten_in_place():
    snn, x = _drive_snn(), torch.rand(1, 1, 16, 16)
    states = snn.new_states()
    with torch.no_grad():
        steps = snn.step_currents(x, 3, states)
        next(steps)
        pointers = {i: s.scratch.data_ptr() for i, s in states.items()}
        next(steps)
        assert {i: s.scratch.data_ptr() for i, s in states.items()} == pointers    # the same tensors, rewritten
        steps.close()
    assert all(s.scratch is None for s in states.values())          # released when the run ends, also early


def test_cell_falls_back_for_float64():
    snn = spiking_unet(UNetConfig("denoise", 1, 1, width=2, depth=1), (1.0, 0.5))
    cell = snn.neurons()[0][1]
    state = cell.new_state()
    out = cell.step(state, torch.full((1, 2), 0.75, dtype=torch.float64), RunOptions())
    assert out.dtype == torch.float64 and out.tolist() == [[0.5, 0.5]]
    assert state.counts.tolist() == [0.0, 2.0]
