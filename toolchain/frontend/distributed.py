"""Data-parallel training under ``torchrun --nproc_per_node N`` (one process per CPU share or GPU).

torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (and the rendezvous address) in every
process it starts; without them everything here is a no-op and training runs in one process.

The design makes N processes with a global batch of B equivalent to one process with batch B:

* every rank seeds the same generators and draws the *same* global batch, then trains on its own
  contiguous slice of B / N samples (:func:`shard`), so the data stream, and a checkpoint's
  generator states, do not depend on N (a run may be resumed with another N);
* gradients are averaged across ranks (DistributedDataParallel's all-reduce), which, with equal
  slices and per-slice mean losses, is the gradient of the mean loss over the global batch;
* the reported loss is the mean of the ranks' losses (:func:`mean_across`);
* only rank 0 writes checkpoints, reports and progress (:attr:`Context.is_main`).

Backend: ``nccl`` with one GPU per rank (``cuda:LOCAL_RANK``) where there are as many GPUs as
local ranks, ``gloo`` on CPU otherwise. (The nccl path has not been run in this project's CI,
which has no GPU.) The process group is created by :func:`session` and destroyed when it ends,
also on errors and Ctrl-C.
"""
from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from toolchain.errors import ConfigError
from toolchain.processes import die_with_parent

ENV_KEYS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


@dataclass(frozen=True)
class Context:
    """Where this process stands in a data-parallel run (world size 1: a plain single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


SINGLE = Context()


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {text!r}") from None


def from_environment() -> Context:
    """The context torchrun describes in the environment (world size 1 when not under torchrun)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"inconsistent torchrun environment: WORLD_SIZE={world}, RANK={rank}, LOCAL_RANK={local}")
    if world == 1:
        return SINGLE
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    backend = "nccl" if gpus >= local_world and dist.is_nccl_available() else "gloo"   # one GPU per rank, or CPU
    return Context(rank, world, local, backend)


def joined() -> Context:
    """The context of the process group this process has joined (:func:`session`); SINGLE if none."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return from_environment()


def is_main_process() -> bool:
    """True unless this is a rank other than 0 of a torchrun job (for printing and writing)."""
    try:
        return from_environment().is_main
    except ConfigError:
        return True


def local_world_size() -> int:
    """The ranks torchrun runs on this machine (``LOCAL_WORLD_SIZE``; 1 when not under torchrun)."""
    return max(1, _env_int("LOCAL_WORLD_SIZE", _env_int("WORLD_SIZE", 1)))


@contextmanager
def session(timeout: timedelta | None = None) -> Iterator[Context]:
    """Join the process group torchrun describes (if any) for the duration of the block.

    ``timeout``: how long a collective waits for the other ranks (default: torch's).

    A group that already exists (a caller set one up) is used and left alone. A rank that torchrun
    started ends (SIGTERM: the verb's clean 'terminated' path) when torchrun dies, even by SIGKILL.
    """
    if os.environ.get("TORCHELASTIC_RUN_ID") is not None:
        die_with_parent(signal.SIGTERM)
    ctx = from_environment()
    if not ctx.active:
        yield ctx
        return
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed: run without torchrun")
    owned = not dist.is_initialized()
    if owned:
        if ctx.backend == "nccl":
            torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group(backend=ctx.backend, rank=ctx.rank, world_size=ctx.world_size, timeout=timeout)
    elif dist.get_world_size() != ctx.world_size or dist.get_rank() != ctx.rank:
        raise ConfigError("the existing process group does not match WORLD_SIZE / RANK")
    try:
        yield ctx
    finally:
        if owned and dist.is_initialized():
            dist.destroy_process_group()


def check_batch(batch: int, ctx: Context) -> int:
    """The global batch must split evenly over the ranks."""
    if batch % ctx.world_size:
        raise ConfigError(f"the batch of {batch} does not split evenly over {ctx.world_size} processes: "
                          f"use a multiple of {ctx.world_size}")
    return batch


def shard(tensor: torch.Tensor, ctx: Context) -> torch.Tensor:
    """This rank's contiguous slice of a global batch (dimension 0), moved to its device."""
    if ctx.active:
        per = tensor.shape[0] // ctx.world_size
        tensor = tensor[ctx.rank * per:(ctx.rank + 1) * per]
    return tensor.to(ctx.device)


def mean_across(value: torch.Tensor, ctx: Context) -> float:
    """The mean of a scalar over all ranks (the loss every rank reports)."""
    if not ctx.active:
        return float(value.detach())
    total = value.detach().reshape(1).to(ctx.device, torch.float64)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return float(total.item()) / ctx.world_size


def wrap(module: torch.nn.Module, ctx: Context) -> torch.nn.Module:
    """The module on this rank's device, in DistributedDataParallel when the run is distributed.

    DDP broadcasts rank 0's parameters when it is built and averages gradients during backward.
    """
    module.to(ctx.device)
    if not ctx.active:
        return module
    from torch.nn.parallel import DistributedDataParallel
    device_ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def barrier(ctx: Context) -> None:
    if ctx.active:
        dist.barrier()
