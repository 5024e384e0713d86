"""Training loops: the ANN (back-propagation) and the SNN (spiking-flow fine-tuning, or BPTT).

:func:`train_epochs` is the one loop: epochs of batches, a callback after every epoch (the verbs
save a resumable checkpoint there), optionally data-parallel (see :mod:`toolchain.distributed`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn
from tqdm import tqdm

from toolchain.frontend import distributed
from toolchain.frontend.distributed import Context
from toolchain.frontend.snn import SpikingNetwork
from toolchain.frontend.unet import UNet
from toolchain.tasks.sampling import Sampler, task_loss

Forward = Callable[[torch.Tensor], torch.Tensor]
EpochCallback = Callable[[int, list[float]], None]


def train_epochs(forward: Forward, optimizer: torch.optim.Optimizer, sampler: Sampler, task: str, epochs: int,
                 batches_per_epoch: int, *, start_epoch: int = 0,
                 history: Iterable[float] = (), on_epoch: EpochCallback | None = None,
                 ctx: Context = distributed.SINGLE, desc: str = "training", progress: bool = True,
                 lr_at: Callable[[int], float] | None = None,
                 on_batch: Callable[[int], None] | None = None) -> list[float]:
    """Adam (or any optimizer) on ``task_loss(forward(x), target)``, epochs ``start_epoch + 1 .. epochs``.

    ``history`` is the loss per batch so far (a resumed run continues it); ``on_epoch(epoch, history)``
    runs after each epoch; ``lr_at(k)`` sets the learning rate of the run's k-th batch and
    ``on_batch(k)`` runs before it (the spiking flow picks that batch's T). Under a
    distributed ``ctx`` every rank draws the same global batch and
    trains on its slice; ``forward`` must then average gradients across ranks (a DDP module does).
    Returns the loss history (the mean over the global batch, the same on every rank).
    """
    history = list(history)
    for epoch in range(start_epoch, epochs):
        label = f"{desc} {epoch + 1}/{epochs}" if epochs > 1 else desc
        bar = tqdm(range(batches_per_epoch), desc=label, disable=not (progress and ctx.is_main))
        for i in bar:
            k = epoch * batches_per_epoch + i
            if lr_at is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(k)
            if on_batch is not None:
                on_batch(k)
            x, target = sampler()
            x, target = distributed.shard(x, ctx), distributed.shard(target, ctx)
            loss = task_loss(task, forward(x), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.append(distributed.mean_across(loss, ctx))
            bar.set_postfix(loss=f"{history[-1]:.4f}")
        if on_epoch is not None:
            on_epoch(epoch + 1, history)
    return history


def fit(forward: Forward, parameters: Iterable[torch.nn.Parameter], sampler: Sampler, task: str,
        iterations: int, lr: float, desc: str = "training", progress: bool = True,
        on_batch: Callable[[int], None] | None = None) -> list[float]:
    """Adam on ``task_loss(forward(x), target)`` for ``iterations`` batches; returns the loss history."""
    optimizer = torch.optim.Adam(list(parameters), lr=lr)
    return train_epochs(forward, optimizer, sampler, task, 1, iterations, desc=desc, progress=progress,
                        on_batch=on_batch)


def train_ann(ann: UNet, sampler: Sampler, iterations: int, lr: float = 1e-3, progress: bool = True) -> list[float]:
    """Train the U-Net to predict the noise map (denoise) or class logits (segment)."""
    ann.train()
    return fit(ann, ann.parameters(), sampler, ann.config.task, iterations, lr, desc="train ANN", progress=progress)


class SpikingFlow(nn.Module):
    """``x -> snn.flow_forward(x, T)`` as a module, so that DistributedDataParallel can wrap it.

    ``steps`` is one T or several: batch k then runs at ``steps[k % len(steps)]`` (set by
    :meth:`at_batch`), so the weights fit no single T's simulation error and the model holds its
    quality for every T at or above the smallest.

    DDP and the two-pass structure of Algorithm 1 get along: the T simulation steps run under
    ``no_grad`` (no autograd graph, so no DDP hook fires), the single differentiable flow pass uses
    every parameter once, and its backward all-reduces the gradients exactly as for an ANN.
    """

    def __init__(self, snn: SpikingNetwork, steps: int | Sequence[int]) -> None:
        super().__init__()
        self.snn = snn
        self.schedule = (steps,) if isinstance(steps, int) else tuple(steps)
        self.steps = self.schedule[0]

    def at_batch(self, k: int) -> None:
        self.steps = self.schedule[k % len(self.schedule)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.snn.flow_forward(x, self.steps)


def finetune_spiking_flow(snn: SpikingNetwork, sampler: Sampler, steps: int | Sequence[int], iterations: int,
                          lr: float = 1e-4, progress: bool = True) -> list[float]:
    """Paper Algorithm 1: T steps without gradients, then one backward pass on the spiking flows
    (T cycles through ``steps`` batch by batch when several are given)."""
    flow = SpikingFlow(snn, steps)
    label = ",".join(str(t) for t in flow.schedule)
    return fit(flow, snn.parameters(), sampler, sampler.task, iterations, lr,
               desc=f"fine-tune (spiking flow, T={label})", progress=progress, on_batch=flow.at_batch)


def bptt_forward(snn: SpikingNetwork, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Back-propagation through time with a surrogate spike gradient (for contrast and direct training)."""
    return snn.run(x, steps, surrogate=True).output
