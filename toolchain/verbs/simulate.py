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
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from netx_export import read_any

from ..backends import BackendOptions, SimulatorBackend, get_backend
from ..checks import check_steps, noise_sigma, positive_int
from ..errors import ConfigError, DataError
from ..files import atomic_path, output_folder, safe_name, write_bytes, write_json
from ..frontend import distributed
from ..hardware import Activity
from ..hardware.profile import Profile
from ..ir import MultiThreshold, QuantizedNetwork, StockNetwork, resize
from ..memory import MemoryLimit
from ..simulators.footprint import simulation_bytes
from ..simulators.result import SimulationResult
from ..vocab import TARGETS, Record, Target
from .hardware_report import ProfileChoice, report_over_run
from .inputs import decode, image_channels, input_images, network_frame, noise_level, padded, save_png, with_noise
from .simulate_stock import simulate_stock
from .spread import GATHER_TIMEOUT, Spread, Workers, check_workers, resolve, spread_map


@dataclass(frozen=True)
class SimulateSettings:
    """Run ``network`` on ``inputs`` (an image or a folder) for ``steps`` steps (default: the file's).

    ``batch``: images whose padded sizes agree run together, up to ``batch`` at a time (one Lava run
    per batch for lava-cpu; every per-image figure is what a run of that image alone gives).
    ``workers``: a pool of that many forked processes runs the batches (one torch thread each), for
    the reference and loihi2 targets; "auto" (the default): one per usable core and batch, within
    ``memory`` (:func:`.spread.auto_workers`); one for lava-cpu and stock netx files. Under torchrun the
    batches are spread over the ranks as well. Image k's noise comes from seed + k whatever the spread.
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
    workers: Workers = "auto"
    noise_level: float | None = None     # a told denoiser's sigma for inputs that are already noisy
    memory: MemoryLimit = MemoryLimit()  # checked against the simulation's estimate before it starts

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"unknown backend {self.target!r}; choose one of {TARGETS}")
        positive_int("`batch`", self.batch)
        check_workers(self.workers)
        if self.steps is not None:
            check_steps(self.steps)
        for name, sigma in (("`add_noise`", self.noise_sigma), ("`noise_level`", self.noise_level)):
            if sigma is not None:
                noise_sigma(name, sigma)
        if self.target == "lava-cpu" and self.workers not in ("auto", 1):
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
    """Every image's row (rank 0's report under torchrun), and the worker processes per rank and ranks used."""

    file: str
    backend: str
    batch: int
    workers: int
    images: list[ImageRun]
    world_size: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"verb": "simulate", "file": self.file, "backend": self.backend, "batch": self.batch,
                "workers": self.workers, "world_size": self.world_size,
                "images": [row.to_dict() for row in self.images]}

    def describe(self) -> str:
        """``simulate: 6 images over 2 worker processes`` (``... over 2 ranks x 1 worker process``)."""
        spread = Spread(self.workers, 0, self.world_size)
        return f"simulate: {spread.describe(len(self.images), 'image' if len(self.images) == 1 else 'images')}"


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
    before the first output is written. Under torchrun the batches are spread over the ranks
    (:mod:`.spread`) and rank 0 writes every file; the other ranks' reports list no images."""
    with distributed.session(GATHER_TIMEOUT) as ctx:
        network = read_any(settings.network)
        hw = settings.profile.load() if settings.target == "loihi2" else None   # a bad profile fails before output
        if isinstance(network, StockNetwork):
            return _simulate_stock(network, settings, hw, ctx)
        if settings.target == "lava-cpu" and ctx.active:
            raise ConfigError("lava-cpu runs one Lava process tree at a time: run it without torchrun")
        return _simulate_network(network, settings, hw, ctx)


def _simulate_stock(network: StockNetwork, settings: SimulateSettings, hw: Profile | None,
                    ctx: distributed.Context) -> SimulateReport:
    if ctx.active:
        raise ConfigError("a stock netx file runs one frame at a time in one process: run it without torchrun")
    workers = 1 if settings.workers == "auto" else settings.workers
    stock_rows = simulate_stock(network, str(settings.inputs), str(settings.out), settings.target, settings.steps,
                                settings.noise_sigma, settings.seed, hw, settings.options, settings.batch,
                                workers, settings.memory, str(settings.network))
    return SimulateReport(str(settings.network), settings.target, settings.batch, workers,
                          [ImageRun(**row) for row in stock_rows])


def _simulate_network(network: QuantizedNetwork, settings: SimulateSettings, hw: Profile | None,
                      ctx: distributed.Context) -> SimulateReport:
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
    if settings.target == "lava-cpu":
        spread = Spread(1, ctx.rank, ctx.world_size)
    else:
        spread = resolve(settings.workers, len(groups), ctx, largest_need(network, groups, steps, record)[0],
                         settings.memory.bytes)
    check_memory(network, groups, steps, record, min(spread.workers, len(spread.share(len(groups)))),
                 settings.memory, str(settings.network))
    backend = get_backend("lava-cpu" if settings.target == "lava-cpu" else "reference", network, settings.options)
    job = _Job(backend, network, steps, record, settings.target, hw, groups, stems, noisy_images)
    runs = spread_map(functools.partial(_render_group, job), range(len(groups)), spread, "simulate worker")
    with contextlib.closing(runs):         # a worker that dies, an error or Ctrl-C: every worker is killed
        if not spread.is_main:
            for _ in runs:                 # this rank computes its share; rank 0 writes
                pass
            return SimulateReport(str(settings.network), settings.target, settings.batch, spread.workers, [],
                                  spread.world)
        rows = _write_all(Path(settings.out), groups, stems, runs, settings.target)
    return SimulateReport(str(settings.network), settings.target, settings.batch, spread.workers, rows, spread.world)


def _write_all(out: Path, groups: list[Group], stems: list[str], runs: Iterator[list[Rendered]],
               target: str) -> list[ImageRun]:
    """Every image's files from the rendered groups, written into ``out``; the rows in image order."""
    rows: dict[int, ImageRun] = {}
    single = len(stems) == 1
    with output_folder(out) as staged, tqdm(total=len(stems), desc=f"simulate ({target})",
                                            disable=len(stems) < 2) as bar:
        for (indices, _), rendered in zip(groups, runs):
            for k, image in zip(indices, rendered):
                folder = staged if single else staged / stems[k]
                for name, payload in image.files.items():
                    write_bytes(folder / name, payload)
                rows[k] = replace(image.row, out=str(out if single else out / stems[k]))
                bar.update(1)
    return [rows[k] for k in sorted(rows)]


def largest_need(network: QuantizedNetwork, groups: list[Group], steps: int,
                 record: Record) -> tuple[int, tuple[int, ...], int]:
    """(estimated bytes, padded shape) of the batch that needs the most memory, and the largest batch size."""
    need = 0
    shape: tuple[int, ...] = (0, 0)
    for indices, stacked in groups:
        size = simulation_bytes(resize(network, stacked.shape[-2:]), len(indices), steps, record)
        if size > need:
            need, shape = size, stacked.shape[-2:]
    count = max(len(indices) for indices, _ in groups) if groups else 0
    return need, shape, count


def check_memory(network: QuantizedNetwork, groups: list[Group], steps: int, record: Record, concurrent: int,
                 memory: MemoryLimit, name: str) -> None:
    """The largest batch's estimated memory (times the batches run at once) within ``memory``."""
    need, shape, count = largest_need(network, groups, steps, record)
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


@dataclass(frozen=True)
class Rendered:
    """One image's files (name in its output folder -> bytes) and its report row, made where it ran."""

    files: dict[str, bytes]
    row: ImageRun


@dataclass(frozen=True)
class _Job:
    """What every batch of a run shares (reaches pool workers by fork, torchrun ranks by computing it)."""

    backend: SimulatorBackend
    network: QuantizedNetwork
    steps: int
    record: Record
    target: str
    hw: Profile | None
    groups: list[Group]
    stems: list[str]
    noisy: list[np.ndarray]


def _render_group(job: _Job, g: int) -> list[Rendered]:
    """Run batch ``g`` and make each of its images' files (and hardware report) in a private folder."""
    indices, stacked = job.groups[g]
    result, seconds = _run_group(job.backend, job.network, stacked, job.steps, job.record)
    sized = resize(job.network, stacked.shape[-2:])
    rendered = []
    for i, k in enumerate(indices):
        item = result.item(i)
        with tempfile.TemporaryDirectory(prefix="simulate-") as tmp:
            folder = Path(tmp)
            report = None
            if job.hw is not None:
                report = report_over_run(sized, item, Activity.from_result(sized, item), job.steps, folder,
                                         job.hw)["summary"]
            row = _write_outputs(folder, job.stems[k], job.target, sized, item, job.noisy[k],
                                 seconds / len(indices), report)
            files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        rendered.append(Rendered(files, row))
    return rendered
