"""Training loops: the ANN (back-propagation) and the SNN (spiking-flow fine-tuning, or BPTT)."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from tqdm import tqdm

from .snn import SpikingUNet
from .tasks import Sampler, task_loss
from .unet import UNet

Forward = Callable[[torch.Tensor], torch.Tensor]


def fit(forward: Forward, parameters: Iterable[torch.nn.Parameter], sampler: Sampler, task: str,
        iterations: int, lr: float, steps: int = 1, desc: str = "training",
        progress: bool = True) -> list[float]:
    """Adam on ``task_loss(forward(x), target)`` for ``iterations`` batches; returns the loss history."""
    optimizer = torch.optim.Adam(list(parameters), lr=lr)
    history = []
    bar = tqdm(range(iterations), desc=desc, disable=not progress)
    for _ in bar:
        x, target = sampler()
        loss = task_loss(task, forward(x), target, steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    return history


def train_ann(ann: UNet, sampler: Sampler, iterations: int, lr: float = 1e-3, progress: bool = True) -> list[float]:
    """Train the U-Net to predict the noise map (denoise) or class logits (segment)."""
    ann.train()
    return fit(ann, ann.parameters(), sampler, ann.config.task, iterations, lr, desc="train ANN", progress=progress)


def finetune_spiking_flow(snn: SpikingUNet, sampler: Sampler, steps: int, iterations: int,
                          lr: float = 1e-4, progress: bool = True) -> list[float]:
    """Paper Algorithm 1: T steps without gradients, then one backward pass on the spiking flows."""
    return fit(lambda x: snn.flow_forward(x, steps), snn.parameters(), sampler, snn.config.task,
               iterations, lr, steps, desc=f"fine-tune (spiking flow, T={steps})", progress=progress)


def bptt_forward(snn: SpikingUNet, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Back-propagation through time with a surrogate spike gradient (for contrast and direct training)."""
    return snn.run(x, steps, surrogate=True).output
