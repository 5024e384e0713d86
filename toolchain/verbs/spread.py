"""Spreading a verb's items (images, or noise levels x images) over processes and torchrun ranks.

:func:`spread_map` maps a per-item function over items and yields the results in item order, whatever the
spread: on this machine over ``workers`` forked processes (:func:`toolchain.processes.fork_map`, one torch
thread each), and under ``torchrun`` over its ranks (item k on rank k % world, each rank with its own
workers), the results gathered to rank 0 over the gloo group (they travel as pickled objects: no shared
filesystem is assumed, so only rank 0 writes). Item k's result never depends on where it ran: the same
function on the same item (noise seeded by the item, not by the process).

``workers="auto"`` (:func:`auto_workers`): as many workers as this rank has cores and items, within the
memory limit; one process for one item. Measured by ``benchmarks/spread.py`` (README, *Scale-out*).
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar

import torch

from ..checks import positive_int
from ..errors import BackendError, ConfigError
from ..frontend import distributed
from ..processes import fork_map

T = TypeVar("T")
R = TypeVar("R")
Workers = int | Literal["auto"]
"""A verb's ``workers`` setting: a count, or "auto" (:func:`auto_workers`)."""
GATHER_TIMEOUT = timedelta(hours=24)
"""How long a rank waits for the others at a gather (one item of a large network can take hours)."""


def check_workers(value: object) -> Workers:
    """``value`` if it is "auto" or a positive integer; a one-line ConfigError otherwise."""
    if value == "auto":
        return "auto"
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"`workers` must be 'auto' or a positive integer, got {value!r}")
    return value


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask; the CPU count where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def auto_workers(items: int, cores: int, local_ranks: int = 1, per_worker_bytes: int = 0,
                 limit_bytes: int | None = None) -> int:
    """The worker count of ``workers="auto"`` for ``items`` items on one rank.

    One worker per core this rank has (``cores`` shared by ``local_ranks`` ranks on the machine) and per
    item, so one item runs in this process with torch's threads; no more workers than ``limit_bytes``
    holds at ``per_worker_bytes`` each (at least one: the verb's own memory check then decides).
    """
    count = min(max(1, cores // max(1, local_ranks)), max(1, items))
    if per_worker_bytes > 0 and limit_bytes is not None:
        count = min(count, max(1, limit_bytes // per_worker_bytes))
    return count


@dataclass(frozen=True)
class Spread:
    """Where a verb's items run: ``workers`` processes on this machine (per rank), on ``world`` torchrun
    ranks of which this process is ``rank`` (world 1: no torchrun)."""

    workers: int = 1
    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        positive_int("`workers`", self.workers)
        if not 0 <= self.rank < self.world:
            raise ConfigError(f"rank {self.rank!r} is not within a world of {self.world!r}")

    @property
    def is_main(self) -> bool:
        """True on the rank that receives every result and writes (rank 0)."""
        return self.rank == 0

    def share(self, count: int) -> list[int]:
        """The indices of the items, out of ``count``, that this rank computes."""
        return list(range(self.rank, count, self.world))

    def to_dict(self) -> dict[str, Any]:
        return {"workers": self.workers, "world_size": self.world}

    def describe(self, count: int, noun: str) -> str:
        """``6 images over 2 worker processes`` (``... over 2 ranks x 1 worker process`` under torchrun)."""
        procs = f"{self.workers} worker process{'es' if self.workers != 1 else ''}"
        return f"{count} {noun} over " + (f"{self.world} ranks x {procs}" if self.world > 1 else procs)


def resolve(workers: Workers, items: int, ctx: distributed.Context = distributed.SINGLE,
            per_worker_bytes: int = 0, limit_bytes: int | None = None, cores: int | None = None) -> Spread:
    """The spread of ``items`` items in the torchrun context ``ctx``: ``workers`` as told, or "auto"'s count
    for the items this rank computes (:func:`auto_workers`)."""
    check_workers(workers)
    if workers == "auto":
        mine = math.ceil(items / ctx.world_size) if items else 0
        local_ranks = distributed.local_world_size() if ctx.active else 1
        workers = auto_workers(mine, usable_cores() if cores is None else cores, local_ranks, per_worker_bytes,
                               limit_bytes)
    return Spread(workers, ctx.rank, ctx.world_size)


def one_thread() -> None:
    """A pool worker's initializer: one torch thread (the workers share the cores)."""
    torch.set_num_threads(1)


def spread_map(function: Callable[[T], R], items: Sequence[T], spread: Spread, what: str = "worker",
               everywhere: bool = False) -> Generator[R, None, None]:
    """``function(item)`` for every item, yielded in item order, computed as ``spread`` says.

    Under torchrun (``spread.world`` > 1, inside :func:`toolchain.frontend.distributed.session`) every rank
    calls this with the same items and computes its share (:meth:`Spread.share`); rank 0 yields every
    result (``everywhere``: every rank does), the other ranks yield nothing. A rank whose function raises
    raises it; the other ranks then raise a one-line BackendError naming it (no rank waits for ever).
    ``what`` names the workers in errors (e.g. "simulate worker").
    """
    mine = [items[k] for k in spread.share(len(items))]
    local = _local_map(function, mine, spread.workers, what)
    if spread.world == 1:
        yield from local
        return
    try:
        for first in range(0, len(items), spread.world):
            index = first + spread.rank
            payload: tuple[bool, Any] = (True, None)
            if index < len(items):
                try:
                    payload = (True, next(local))
                except Exception as exc:
                    _gather((False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"), spread,
                            everywhere)
                    raise
            gathered = _gather(payload, spread, everywhere)
            if gathered is None:
                continue
            for rank, (ok, value) in enumerate(gathered):
                if not ok:
                    raise BackendError(f"torchrun rank {rank} failed ({value}); every rank stops")
            for rank, (_, value) in enumerate(gathered):
                if first + rank < len(items):
                    yield value
    finally:
        local.close()


def _local_map(function: Callable[[T], R], items: list[T], workers: int, what: str) -> Generator[R, None, None]:
    """The results of this process's items: in this process, or over a fork pool of ``workers``."""
    if workers == 1 or len(items) <= 1:
        return (function(item) for item in items)
    return fork_map(function, items, workers, what, one_thread)


def _gather(payload: tuple[bool, Any], spread: Spread, everywhere: bool) -> list[tuple[bool, Any]] | None:
    """Every rank's payload, in rank order, on rank 0 (``everywhere``: on every rank); None elsewhere."""
    import torch.distributed as dist
    if everywhere:
        every: list[Any] = [None] * spread.world
        dist.all_gather_object(every, payload)
        return every
    received: list[Any] | None = [None] * spread.world if spread.is_main else None
    dist.gather_object(payload, received, dst=0)
    return received
