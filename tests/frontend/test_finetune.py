"""Spiking-flow fine-tuning (paper Algorithm 1) and BPTT on a tiny converted Spiking-UNet."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.data.embedded import denoise_split
from toolchain.frontend.snn import SpikingNetwork
from toolchain.tasks.sampling import Sampler, task_loss
from toolchain.frontend.training import bptt_forward, finetune_spiking_flow
from toolchain.frontend.unet import UNet, UNetConfig

CONFIG = UNetConfig("denoise", 1, 1, width=4, depth=2)
STEPS = 6



def _converted(seed: int = 0) -> tuple[SpikingNetwork, torch.Tensor]:
    torch.manual_seed(seed)
    ann = UNet(CONFIG).eval()
    x = torch.rand(2, 1, 32, 32)
    snn, _ = convert(ann, x, ConversionSettings())
    return snn, x


def _synapses(snn: SpikingNetwork) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in snn.core.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def test_flow_forward_value_equals_simulated_output():
    snn, x = _converted(0)
    flow = snn.flow_forward(x, STEPS)
    assert flow.requires_grad
    simulated = snn.simulate(x, STEPS).output
    assert flow.shape == simulated.shape == (2, 1, 32, 32)
    assert float(simulated.abs().mean()) > 1e-3
    assert torch.allclose(flow.detach(), simulated, atol=1e-5, rtol=0)
    # and on an input that needs padding (cropped back the same way)
    x_odd = x[..., :30, :29]
    assert torch.allclose(snn.flow_forward(x_odd, 3).detach(), snn.simulate(x_odd, 3).output, atol=1e-5, rtol=0)


def test_flow_pass_inputs_equal_recorded_input_flows():
    """Each neuron's input in the differentiable pass is I_in / T of the simulation: the bias
    enters T times, as in inference (the reference code's conv1(x*T) defect gave b/T)."""
    snn, x = _converted(1)
    with torch.no_grad():                       # make the biases matter
        for _, m in _synapses(snn):
            m.bias.add_(0.05)
    # A neuron layer's input is its synapse module's output; the flow pass is each module's last call.
    flow_inputs: dict[str, torch.Tensor] = {}
    names = [name for name, _ in snn.neurons()]
    for name in names:
        snn.core.get(name).register_forward_hook(
            lambda _m, _i, out, name=name: flow_inputs.__setitem__(name, out.detach().clone()))
    recorded = {name: state for name, state in snn.run(x, STEPS, record_flow=True).states.items()}
    snn.flow_forward(x, STEPS)
    assert len(flow_inputs) == len(names) == 14
    for name in names:
        assert recorded[name].steps == STEPS
        assert torch.allclose(flow_inputs[name], recorded[name].flow_in / STEPS, atol=1e-5, rtol=1e-5), name
    # the static first layer: conv1(x) + b every step, so I_in / T = conv1(x) + b, not conv1(x) + b / T
    conv1 = snn.core.encoders[0].conv1
    with torch.no_grad():
        expected = conv1(x)
        b_over_t = expected - conv1.bias.view(1, -1, 1, 1) * (1 - 1 / STEPS)
    assert torch.allclose(flow_inputs["encoders.0.conv1"], expected, atol=1e-6)
    assert not torch.allclose(flow_inputs["encoders.0.conv1"], b_over_t, atol=1e-3)


def test_flow_gradients_nonzero_and_finite():
    snn, x = _converted(2)
    target = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.1
    loss = F.l1_loss(snn.flow_forward(x, STEPS), target)
    loss.backward()
    synapses = _synapses(snn)
    assert len(synapses) == 13                  # 12 convs feeding neurons + the head
    for name, m in synapses:
        for pname, p in (("weight", m.weight), ("bias", m.bias)):
            assert p.grad is not None, (name, pname)
            assert bool(torch.isfinite(p.grad).all()), (name, pname)
        assert float(m.weight.grad.abs().sum()) > 0, name


def test_flow_gradient_is_relu_mask_of_input_flow():
    """Backward through a neuron in the flow pass = ReLU derivative at I_in (zero where I_in <= 0)."""
    snn, x = _converted(3)
    # the neuron layer of ups.1.convs.conv1: its input is that module's output, its output the next conv's input
    seen: dict[str, torch.Tensor] = {}

    def keep(key):
        def hook(tensor):
            if tensor.requires_grad:          # the differentiable flow pass (the T recording steps have no graph)
                tensor.retain_grad()
                seen[key] = tensor
        return hook

    snn.core.ups[1].convs.conv1.register_forward_hook(lambda _m, _i, out: keep("x")(out))
    snn.core.ups[1].convs.conv2.register_forward_pre_hook(lambda _m, args: keep("out")(args[0]))
    snn.flow_forward(x, STEPS).square().sum().backward()     # the last calls are the flow pass
    mask = (seen["x"].detach() > 0).float()
    assert 0 < float(mask.mean()) < 1
    assert torch.allclose(seen["x"].grad, seen["out"].grad * mask)


def test_finetune_spiking_flow_reduces_loss():
    train, _ = denoise_split(1)
    assert len(train.images) == 19
    torch.manual_seed(0)
    ann = UNet(CONFIG).eval()
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    sampler = Sampler("denoise", train, 32, 4, rng, gen)
    snn, _ = convert(ann, sampler()[0], ConversionSettings())
    before = {k: v.clone() for k, v in snn.state_dict().items()}
    history = finetune_spiking_flow(snn, sampler, 4, 30, lr=1e-3, progress=False)
    assert len(history) == 30 and all(np.isfinite(history))
    first, last = np.mean(history[:3]), np.mean(history[-3:])
    assert last < 0.85 * first, (first, last)
    changed = [k for k, v in snn.state_dict().items() if not torch.equal(v, before[k])]
    assert "core.encoders.0.conv1.weight" in changed and "core.head.weight" in changed
    assert not any("pool.scale" in k for k in changed)            # buffers are not trained


def test_bptt_forward_gradients():
    snn, x = _converted(4)
    out = bptt_forward(snn, x, 4)
    assert out.shape == (2, 1, 32, 32) and out.requires_grad
    with torch.no_grad():
        assert torch.allclose(out.detach(), snn.simulate(x, 4).output, atol=1e-6)   # same forward values
    out = bptt_forward(snn, x, 4)
    out.abs().mean().backward()
    for name, m in _synapses(snn):
        assert m.weight.grad is not None and bool(torch.isfinite(m.weight.grad).all()), name
    nonzero = [n for n, m in _synapses(snn) if float(m.weight.grad.abs().sum()) > 0]
    assert "head" in nonzero and "encoders.0.conv1" in nonzero
    assert len(nonzero) >= 12
    with torch.no_grad():    # the surrogate lives only in the BPTT run: a plain run uses the exact Heaviside
        assert torch.equal(snn.simulate(x, 4).output, snn.simulate(x, 4, kernel="reference").output)


def test_task_loss():
    prediction = torch.tensor([[0.1, -0.2], [0.3, 0.0]]).view(1, 1, 2, 2)
    target = torch.zeros(1, 1, 2, 2)
    assert float(task_loss("denoise", prediction, target)) == pytest.approx(0.15)
    # segmentation: cross-entropy of the decoded mean output, whatever T: logits (1, 0) -> log(1 + e^-1)
    logits = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    labels = torch.zeros(1, 1, 1, dtype=torch.long)
    assert float(task_loss("segment", logits, labels)) == pytest.approx(np.log1p(np.exp(-1.0)), rel=1e-6)


def test_spiking_flow_cycles_through_steps(monkeypatch):
    """Batch k of a fine-tuning over several T runs at steps[k % n], and the report records them all."""
    snn, _ = _converted(4)
    seen: list[int] = []
    original = type(snn).flow_forward
    monkeypatch.setattr(type(snn), "flow_forward", lambda self, x, steps: (seen.append(steps), original(self, x, steps))[1])
    train, _ = denoise_split(1)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    history = finetune_spiking_flow(snn, Sampler("denoise", train, 16, 2, rng, gen), (2, 3, 5), 7, progress=False)
    assert seen == [2, 3, 5, 2, 3, 5, 2] and len(history) == 7
