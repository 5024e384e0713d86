"""The PyTorch MT cell on explicit state: step bookkeeping (counts, flows, membrane), the spiking-flow
pass of Algorithm 1, and the single-threshold IF case, by both step implementations."""
from __future__ import annotations

import pytest
import torch

from toolchain.errors import ConfigError
from toolchain.frontend.cells import MTCell, RunOptions

THETAS = (2.0, 1.0, 0.5, 0.25)


def _stepper(thresholds, record_flow=False, kernel="fused"):
    """(cell, state, step): step(x) runs one step of the cell on its explicit state."""
    cell, run = MTCell(thresholds), RunOptions(kernel=kernel, record_flow=record_flow)
    state = cell.new_state()
    return cell, state, lambda x: cell.step(state, x, run)


@pytest.mark.parametrize("kernel", ["fused", "reference"])
def test_cell_steps_accumulate(kernel):
    _, state, step = _stepper(THETAS, record_flow=True, kernel=kernel)
    x = torch.tensor([[1.0, 0.3, 5.0]])        # one batch item, three neurons
    outs = [step(x).clone() for _ in range(4)]
    # per-step outputs from the golden tables (0.3: 0.25 x 4)
    assert [o[0, 0].item() for o in outs] == [0.75, 1.0, 1.0, 1.0]
    assert [o[0, 1].item() for o in outs] == [0.25] * 4
    assert [o[0, 2].item() for o in outs] == [3.75] * 4
    assert state.steps == 4 and state.neurons == 3
    # counts per threshold: 1.0 -> (0,3,1,1); 0.3 -> (0,0,0,4); 5.0 -> (4,4,4,4)
    assert state.counts.tolist() == [4.0, 7.0, 5.0, 9.0]
    assert torch.allclose(state.flow_in, torch.tensor([[4.0, 1.2, 20.0]]))
    assert torch.allclose(state.flow_out, torch.tensor([[3.75, 1.0, 15.0]]))
    assert torch.allclose(state.v, torch.tensor([[0.25, 0.2, 5.0]]))
    fresh = MTCell(THETAS).new_state()
    assert fresh.steps == 0 and fresh.flow_in is None and fresh.flow_out is None
    assert fresh.counts.tolist() == [0.0] * 4 and fresh.v == 0.0


def test_cell_without_record_flow_keeps_no_flows():
    _, state, step = _stepper(THETAS)
    for _ in range(3):
        step(torch.ones(2, 5))
    assert state.flow_in is None and state.flow_out is None
    assert state.counts.tolist() == [0.0, 20.0, 10.0, 10.0]   # (0,2,1,1) per neuron, 10 neurons


def test_cell_flow_value_and_gradient():
    torch.manual_seed(0)
    cell, state, step = _stepper(THETAS, record_flow=True)
    drive = torch.randn(2, 6) * 2
    for _ in range(5):
        step(drive)
    x = torch.tensor([[-1.0, 0.5, 2.0, -0.1, 3.0, 0.2], [0.7, -2.0, 0.0, 1.0, -0.3, 4.0]], requires_grad=True)
    y = cell.flow(state, x)
    assert torch.allclose(y.detach(), state.flow_out / 5)
    weights = torch.arange(1.0, 13.0).view(2, 6)
    (y * weights).sum().backward()
    assert torch.equal(x.grad, weights * (x.detach() > 0).float())   # the ReLU mask of the input


def test_cell_flow_needs_a_recording():
    cell = MTCell(THETAS)
    with pytest.raises(RuntimeError):
        cell.flow(cell.new_state(), torch.ones(1, 2))


def test_single_threshold_is_if_with_reset_by_subtraction():
    steps = 2000
    for theta in (1.0, 2.0):
        _, state, step = _stepper((theta,))
        x = theta * torch.tensor([[0.05, 0.37, 0.5, 0.9, 0.999]])
        out_total = torch.zeros_like(x)
        for _ in range(steps):
            out_total += step(x)
        rate = out_total / theta / steps
        assert torch.allclose(rate, x / theta, atol=1.0 / steps)
        # reset by subtraction: the membrane keeps the remainder, in (0, theta] for positive input
        assert bool(((state.v > 0) & (state.v <= theta)).all())
        assert torch.allclose(state.v, steps * x - out_total, atol=1e-3)
    # negative and zero input: never fires
    _, state, step = _stepper((1.0,))
    for _ in range(50):
        step(torch.tensor([[-0.3, 0.0]]))
    assert state.counts.tolist() == [0.0]


@pytest.mark.parametrize("bad", [(1.0, 2.0), (1.0, 0.0), (), (float("nan"),)])
def test_cell_refuses_bad_thresholds(bad):
    with pytest.raises(ConfigError):
        MTCell(bad)
