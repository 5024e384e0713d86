"""The simulate verb: a ``.net`` file on every input image, on a backend or the Loihi 2 target.

Every target writes the same three files per image, so results compare file to file:
``output.npy`` (the decoded network output: the noise map for denoising, class logits / T for
segmentation), ``spikes.json`` (per-layer spike counts per threshold) and ``output.png`` (the
restored image, or the segmentation as a label image). The ``loihi2`` target runs the reference
backend keeping per-neuron counts and writes the hardware report over that run beside them.
Stock lava-dl netx files are detected (:func:`netx_export.netx_format`) and run by
:mod:`.simulate_stock` (frames, netx's reset schedule, and what their three files hold).
"""
from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from netx_export import read_any

from ..backends import BackendOptions, SimulatorBackend, get_backend
from ..checks import check_steps, noise_sigma, positive_int
from ..errors import ConfigError, DataError
from ..files import atomic_path, output_folder, safe_name, write_json
from ..hardware import Activity
from ..ir import MultiThreshold, QuantizedNetwork, StockNetwork, resize
from ..memory import MemoryLimit
from ..processes import fork_map
from ..simulators.footprint import simulation_bytes
from ..simulators.result import SimulationResult
from ..vocab import TARGETS, Record, Target
from .hardware_report import ProfileChoice, report_over_run
from .inputs import decode, image_channels, input_images, network_frame, noise_level, padded, save_png, with_noise
from .simulate_stock import simulate_stock


@dataclass(frozen=True)
class SimulateSettings:
    """Run ``network`` on ``inputs`` (an image or a folder) for ``steps`` steps (default: the file's).

    ``batch``: images whose padded sizes agree run together, up to ``batch`` at a time (one Lava run
    per batch for lava-cpu; every per-image figure is what a run of that image alone gives).
    ``workers``: a pool of that many forked processes runs the batches (one torch thread each), for
    the reference and loihi2 targets. Image k's noise comes from seed + k whatever the batching.
    ``memory``: the estimated memory of the largest batch (times the workers) must be within it.
    """

    network: str | os.PathLike[str]
    inputs: str | os.PathLike[str]
    out: str | os.PathLike[str]
    target: Target = "reference"
    steps: int | None = None
    noise_sigma: float | None = None
    seed: int = 0
    profile: ProfileChoice = ProfileChoice()
    options: BackendOptions = field(default_factory=BackendOptions)
    batch: int = 1
    workers: int = 1
    noise_level: float | None = None     # a told denoiser's sigma for inputs that are already noisy
    memory: MemoryLimit = MemoryLimit()  # checked against the simulation's estimate before it starts

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"unknown backend {self.target!r}; choose one of {TARGETS}")
        positive_int("`batch`", self.batch)
        positive_int("`workers`", self.workers)
        if self.steps is not None:
            check_steps(self.steps)
        for name, sigma in (("`add_noise`", self.noise_sigma), ("`noise_level`", self.noise_level)):
            if sigma is not None:
                noise_sigma(name, sigma)
        if self.target == "lava-cpu" and self.workers > 1:
            raise ConfigError("`workers` applies to the reference and loihi2 backends; lava-cpu runs one Lava "
                              "process tree at a time (use `batch` to put several images into one Lava run)")


@dataclass(frozen=True)
class ImageRun:
    """One image's row of the simulate report."""

    image: str
    backend: str
    steps: int
    wall_time_s: float
    spikes: int
    out: str
    report: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        row = {"image": self.image, "backend": self.backend, "steps": self.steps, "wall_time_s": self.wall_time_s,
               "spikes": self.spikes, "out": self.out}
        return row if self.report is None else {**row, "report": self.report}


@dataclass(frozen=True)
class SimulateReport:
    file: str
    backend: str
    batch: int
    workers: int
    images: list[ImageRun]

    def to_dict(self) -> dict[str, Any]:
        return {"verb": "simulate", "file": self.file, "backend": self.backend, "batch": self.batch,
                "workers": self.workers, "images": [row.to_dict() for row in self.images]}


def spikes_report(network: QuantizedNetwork, result: SimulationResult) -> dict[str, Any]:
    thresholds = {lay.name: list(lay.neuron.thresholds) for lay in network.synaptic_layers
                  if isinstance(lay.neuron, MultiThreshold)}
    return {"steps": result.steps, "total": int(sum(sum(v) for v in result.spike_counts.values())),
            "layers": {name: {"per_threshold": counts, "thresholds": thresholds.get(name), "total": int(sum(counts)),
                              "membrane_saturations": result.saturations.get(name, 0)}
                       for name, counts in result.spike_counts.items()}}


def simulate_file(settings: SimulateSettings) -> SimulateReport:
    """Run a .net file on every input image (see :class:`SimulateSettings`); write output.npy,
    spikes.json and output.png per image. Everything is checked (the file, the profile, every image)
    before the first output is written."""
    network = read_any(settings.network)
    hw = settings.profile.load() if settings.target == "loihi2" else None   # a bad profile fails before any output
    if isinstance(network, StockNetwork):
        stock_rows = simulate_stock(network, str(settings.inputs), str(settings.out), settings.target, settings.steps,
                                    settings.noise_sigma, settings.seed, hw, settings.options, settings.batch,
                                    settings.workers, settings.memory, str(settings.network))
        return SimulateReport(str(settings.network), settings.target, settings.batch, settings.workers,
                              [ImageRun(**row) for row in stock_rows])
    if settings.options.reset_interval is not None or settings.options.reset_offset:
        raise ConfigError("`reset_interval` and `reset_offset` apply to stock netx files (this toolchain's networks "
                          "reset nothing: T steps are one inference)")
    steps = check_steps(settings.steps if settings.steps is not None else int(network.meta.steps or 10))
    images = [(safe_name(stem), image) for stem, image in input_images(settings.inputs, image_channels(network))]
    stems = [stem for stem, _ in images]
    for stem in stems:
        if stems.count(stem) > 1:
            raise DataError(f"{settings.inputs}: several images are named {stem!r} (different suffixes, or names "
                            f"that differ in a leading dot or a separator); their outputs would go to the same folder")
    noisy_images = [with_noise(image, settings.noise_sigma, settings.seed + k) for k, (_, image) in enumerate(images)]
    levels = [noise_level(im, settings.noise_sigma, settings.noise_level, stem) if network.meta.noise_map else None
              for (stem, _), im in zip(images, noisy_images)]
    groups = _batches([padded(network_frame(network, im, level), int(network.meta.multiple or 1))
                       for im, level in zip(noisy_images, levels)], settings.batch)
    record: Record = "counts" if settings.target == "loihi2" else "none"
    check_memory(network, groups, steps, record, min(settings.workers, len(groups)), settings.memory,
                 str(settings.network))
    backend = get_backend("lava-cpu" if settings.target == "lava-cpu" else "reference", network, settings.options)
    out = Path(settings.out)
    rows: dict[int, ImageRun] = {}
    with output_folder(out) as staged, tqdm(total=len(images), desc=f"simulate ({settings.target})",
                                            disable=len(images) < 2) as bar, \
            contextlib.closing(_run_groups(backend, network, groups, steps, record, settings.workers)) as runs:
        for indices, stacked, result, seconds in runs:
            sized = resize(network, stacked.shape[-2:])
            for i, k in enumerate(indices):
                stem = images[k][0]
                target = staged if len(images) == 1 else staged / stem
                item = result.item(i)
                report = None
                if hw is not None:
                    report = report_over_run(sized, item, Activity.from_result(sized, item), steps, target,
                                             hw)["summary"]
                row = _write_outputs(target, stem, settings.target, sized, item, noisy_images[k],
                                     seconds / len(indices), report)
                rows[k] = replace(row, out=str(out if len(images) == 1 else out / stem))
                bar.update(1)
    return SimulateReport(str(settings.network), settings.target, settings.batch, settings.workers,
                          [rows[k] for k in sorted(rows)])


def check_memory(network: QuantizedNetwork, groups: list[Group], steps: int, record: Record, concurrent: int,
                 memory: MemoryLimit, name: str) -> None:
    """The largest batch's estimated memory (times the batches run at once) within ``memory``."""
    need = 0
    shape: tuple[int, ...] = (0, 0)
    for indices, stacked in groups:
        size = simulation_bytes(resize(network, stacked.shape[-2:]), len(indices), steps, record)
        if size > need:
            need, shape = size, stacked.shape[-2:]
    count = max(len(indices) for indices, _ in groups) if groups else 0
    memory.check(need * concurrent, f"{name}: simulating it on {count} image(s) padded to {shape[0]}x{shape[1]}"
                 + (f" in {concurrent} workers at once" if concurrent > 1 else ""))


def _write_outputs(target: Path, stem: str, backend: str, network: QuantizedNetwork, result: SimulationResult,
                   noisy: np.ndarray, seconds: float, report: dict[str, Any] | None) -> ImageRun:
    """output.npy, spikes.json and output.png of one image (each written atomically); its report row."""
    output, picture = decode(network, result, noisy)
    with atomic_path(target / "output.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, output)
    spikes = spikes_report(network, result)
    write_json(target / "spikes.json", {"backend": backend, "image": stem, "wall_time_s": seconds, **spikes})
    save_png(target / "output.png", picture)
    return ImageRun(stem, backend, result.steps, seconds, spikes["total"], str(target), report)


Group = tuple[list[int], np.ndarray]          # (image indices, their padded images stacked: N, C, H, W)


def _batches(padded_images: list[np.ndarray], size: int) -> list[Group]:
    """Consecutive runs of up to ``size`` images per padded shape, in the order their first image comes."""
    open_groups: dict[tuple[int, ...], list[int]] = {}
    groups: list[list[int]] = []
    for k, image in enumerate(padded_images):
        members = open_groups.setdefault(image.shape, [])
        if not members:
            groups.append(members)
        members.append(k)
        if len(members) == size:
            del open_groups[image.shape]
    return [(members, np.stack([padded_images[k] for k in members])) for members in groups]


def _run_group(backend: SimulatorBackend, network: QuantizedNetwork, stacked: np.ndarray, steps: int,
               record: Record) -> tuple[SimulationResult, float]:
    sized = resize(network, stacked.shape[-2:])
    start = time.perf_counter()
    result = backend.run(sized, stacked, steps, record)
    return result, time.perf_counter() - start


def _pool_init() -> None:
    torch.set_num_threads(1)


def _pool_run(job: tuple[SimulatorBackend, QuantizedNetwork, int, Record],
              stacked: np.ndarray) -> tuple[SimulationResult, float]:
    return _run_group(*job[:2], stacked, *job[2:])


def _run_groups(backend: SimulatorBackend, network: QuantizedNetwork, groups: list[Group], steps: int,
                record: Record,
                workers: int) -> Generator[tuple[list[int], np.ndarray, SimulationResult, float], None, None]:
    """(indices, stacked images, result, seconds) per group, in order; in a fork pool if ``workers`` > 1."""
    if workers == 1 or len(groups) == 1:
        for indices, stacked in groups:
            yield (indices, stacked, *_run_group(backend, network, stacked, steps, record))
        return
    run = functools.partial(_pool_run, (backend, network, steps, record))
    results = fork_map(run, [g[1] for g in groups], workers, "simulate worker", _pool_init)
    with contextlib.closing(results):         # a worker that dies, an error or Ctrl-C: every worker is killed
        for (indices, stacked), (result, seconds) in zip(groups, results):
            yield indices, stacked, result, seconds
