"""Deployment verbs: export a Spiking-UNet to a .net file, simulate a .net file on a backend,
and profile it for Loihi 2. ``cli.py`` parses arguments and calls these.

Every backend writes the same three files per image, so results compare file to file:
``output.npy`` (the decoded network output: the noise map for denoising, class logits / T for
segmentation), ``spikes.json`` (per-layer spike counts per threshold) and ``output.png`` (the
restored image, or the segmentation as a label image).
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from tqdm import tqdm

from toolchain.files import atomic_path, write_json
from toolchain.frontend.checkpoint import file_sha256
from toolchain.data.folder import IMAGE_SUFFIXES, image_files, read_image
from toolchain.data.patches import add_gaussian_noise
from toolchain.errors import ConfigError, DataError
from toolchain.lowering.lower import export_network
from toolchain.ir.graph import Network, resize
from toolchain.frontend.models import load_snn
from toolchain.lowering.quantize import QuantSettings
from toolchain.simulators.reference import ReferenceResult, ReferenceSimulator
from toolchain.frontend.snn import check_steps

BACKENDS = ("reference", "lava-cpu", "loihi2")
DEFAULT_EXPORT_SIDE = 64


def export_checkpoint(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], lowering: str,
                      weight_bits: int, strict: bool, steps: int | None, input_hw: tuple[int, int] | None,
                      theta_unit: int = 4096, netx_compatible: bool = False) -> dict[str, Any]:
    """Quantize and write a .net file; returns the layer table and the quantization report.

    ``netx_compatible`` writes a stock netx file instead (:func:`netx_export.write_netx_compatible`).
    """
    from netx_export import write_network
    from netx_export.table import format_table, layer_table

    snn, ckpt = load_snn(checkpoint)
    steps = check_steps(steps if steps is not None else int(ckpt.spiking.get("finetuned_steps") or 10))
    hw = input_hw or (DEFAULT_EXPORT_SIDE, DEFAULT_EXPORT_SIDE)
    provenance = {"source_checkpoint": Path(checkpoint).name, "source_sha256": file_sha256(checkpoint),
                  "finetuned_steps": ckpt.spiking.get("finetuned_steps")}
    network, reports = export_network(snn, ckpt.spiking, hw, QuantSettings(weight_bits, theta_unit, steps, strict),
                                      lowering, provenance)
    if netx_compatible:
        from netx_export import write_netx_compatible
        compat = write_netx_compatible(network, out)
        print(f"wrote a stock netx file (CUBA neurons: an approximation of the SNN, see netx_export.compat); "
              f"run it for T + {network.latency} steps")
        return {"verb": "export", "file": str(out), "netx_compatible": compat.to_dict(), "steps": steps}
    write_network(network, out)
    rows = layer_table(network, reports)
    print(format_table(rows))
    worst = max(reports, key=lambda r: r.weight_error)
    print(f"latency {network.latency} steps; T = {steps}; lowering {lowering}; "
          f"largest weight quantization error {worst.weight_error:.2%} ({worst.name})")
    return {"verb": "export", "file": str(out), "latency": network.latency, "steps": steps, "lowering": lowering,
            "layers": rows, "quantization": [r.to_dict() for r in reports]}


def input_images(path: str | os.PathLike[str], channels: int) -> list[tuple[str, np.ndarray]]:
    """One image file, or every image in a folder, as (stem, CHW float image)."""
    path = Path(path)
    if path.is_dir():
        return [(f.stem, read_image(f, channels)) for f in image_files(path)]
    if not path.exists():
        raise DataError(f"{path}: no such image file or folder")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{path}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
    return [(path.stem, read_image(path, channels))]


def padded(image: np.ndarray, multiple: int) -> np.ndarray:
    """Replicate-pad a CHW image at the bottom/right to sides that are multiples of ``multiple``."""
    h, w = image.shape[-2:]
    return np.pad(image, ((0, 0), (0, (-h) % multiple), (0, (-w) % multiple)), mode="edge")


def run_backend(backend: str, network: Network, batch: np.ndarray, steps: int, timeout_s: float = 600.0) -> ReferenceResult:
    """Run one batch (N, C, H, W in [0, 1], sides fitting the network) on a backend."""
    if backend == "lava-cpu":
        from toolchain.backends.lava import run_lava
        return run_lava(network, batch, steps, timeout_s=timeout_s)
    if backend in ("reference", "loihi2"):
        return ReferenceSimulator(network).run(batch, steps)
    raise ConfigError(f"unknown backend {backend!r}; choose one of {BACKENDS}")


def _save_png(target: Path, image: np.ndarray) -> None:
    import imageio.v3 as iio
    with atomic_path(target) as tmp:
        iio.imwrite(tmp, image, extension=".png")


def decode(network: Network, result: ReferenceResult, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(decoded output cropped to the image, PNG-ready picture): the restored image or the label map."""
    h, w = noisy.shape[-2:]
    output = result.output[0, :, :h, :w]
    if network.meta.get("task") == "segment":
        labels = output.argmax(axis=0)
        scale = 255 // max(1, output.shape[0] - 1)
        return output, (labels * scale).astype(np.uint8)
    restored = np.clip(noisy - output, 0.0, 1.0)
    picture = np.round(restored * 255).astype(np.uint8)
    return output, picture[0] if picture.shape[0] == 1 else picture.transpose(1, 2, 0)


def spikes_report(network: Network, result: ReferenceResult) -> dict[str, Any]:
    thresholds = {l.name: list(l.neuron.thresholds) for l in network.neuron_layers if l.neuron.kind == "MT"}  # type: ignore[union-attr]
    return {"steps": result.steps, "total": int(sum(sum(v) for v in result.spike_counts.values())),
            "layers": {name: {"per_threshold": counts, "thresholds": thresholds.get(name), "total": int(sum(counts)),
                              "membrane_saturations": result.saturations.get(name, 0)}
                       for name, counts in result.spike_counts.items()}}


def simulate_file(net_path: str | os.PathLike[str], backend: str, inputs: str | os.PathLike[str], steps: int | None,
                  out_dir: str | os.PathLike[str], noise_sigma: float | None = None, seed: int = 0,
                  profile: str = "loihi2", overrides: Iterable[str] = (), timeout_s: float = 600.0,
                  batch: int = 1, workers: int = 1) -> dict[str, Any]:
    """Run a .net file on every input image; write output.npy, spikes.json and output.png per image.

    ``batch``: images whose padded sizes agree run together, up to ``batch`` at a time (the
    reference simulator and the Lava processes are batched, one Lava run per batch; every per-image
    figure is what a run of that image alone gives). ``workers``: a pool of that many forked
    processes runs the batches (one torch thread each), for the reference and loihi2 backends (a
    lava-cpu run is already an isolated process tree of its own). Image k's noise comes from seed + k whatever the batching, so results do not depend
    on ``batch`` or ``workers``. Everything is checked (the file, the profile, every image) before
    the first output is written.
    """
    from netx_export import read_network

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    for name, value in (("--batch", batch), ("--workers", workers)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if backend == "lava-cpu" and workers > 1:
        raise ConfigError("--workers applies to the reference and loihi2 backends; lava-cpu runs one Lava "
                          "process tree at a time (use --batch to put several images into one Lava run)")
    network = read_network(net_path)
    steps = check_steps(steps if steps is not None else int(network.meta.get("steps", 10)))
    if backend == "loihi2":
        from toolchain.hardware import load_profile
        load_profile(profile, list(overrides))          # a bad profile fails before any output
    images = input_images(inputs, network.input.shape[0])
    stems = [stem for stem, _ in images]
    for stem in stems:
        if stems.count(stem) > 1:
            raise DataError(f"{inputs}: several images are named {stem!r} (different suffixes); their outputs "
                            f"would go to the same folder")
    multiple = int(network.meta.get("multiple", 1))
    noisy_images = []
    for k, (_stem, image) in enumerate(images):
        if noise_sigma is not None:
            image = add_gaussian_noise(torch.from_numpy(image)[None], noise_sigma,
                                       torch.Generator().manual_seed(seed + k))[0][0].numpy()
        noisy_images.append(image)
    groups = _batches([padded(im, multiple) for im in noisy_images], batch)
    out = Path(out_dir)
    rows: dict[int, dict[str, Any]] = {}
    bar = tqdm(total=len(images), desc=f"simulate ({backend})", disable=len(images) < 2)
    with contextlib.closing(_run_groups(backend, network, groups, steps, timeout_s, workers)) as runs:
        for indices, stacked, result, seconds in runs:
            sized = resize(network, stacked.shape[-2:])
            for i, k in enumerate(indices):
                stem = images[k][0]
                target = out if len(images) == 1 else out / stem
                rows[k] = _write_outputs(target, stem, backend, sized, _item(result, i, len(indices)),
                                         noisy_images[k], seconds / len(indices))
                if backend == "loihi2":
                    rows[k]["report"] = profile_report(sized, stacked[i:i + 1], steps, target, profile,
                                                       overrides)["summary"]
                bar.update(1)
    bar.close()
    return {"verb": "simulate", "file": str(net_path), "backend": backend, "batch": batch, "workers": workers,
            "images": [rows[k] for k in sorted(rows)]}


def _write_outputs(target: Path, stem: str, backend: str, network: Network, result: ReferenceResult,
                   noisy: np.ndarray, seconds: float) -> dict[str, Any]:
    """output.npy, spikes.json and output.png of one image (each written atomically); its report row."""
    output, picture = decode(network, result, noisy)
    with atomic_path(target / "output.npy") as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, output)
    spikes = spikes_report(network, result)
    write_json(target / "spikes.json", {"backend": backend, "image": stem, "wall_time_s": seconds, **spikes})
    _save_png(target / "output.png", picture)
    return {"image": stem, "backend": backend, "steps": result.steps, "wall_time_s": seconds,
            "spikes": spikes["total"], "out": str(target)}


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


def _run_group(backend: str, network: Network, stacked: np.ndarray, steps: int,
               timeout_s: float) -> tuple[ReferenceResult, float]:
    sized = resize(network, stacked.shape[-2:])
    start = time.perf_counter()
    result = run_backend(backend, sized, stacked, steps, timeout_s)
    return result, time.perf_counter() - start


def _pool_init() -> None:
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # the parent handles Ctrl-C and terminates the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)     # Pool.terminate() must end a worker at once
    torch.set_num_threads(1)


def _pool_run(job: tuple[str, Network, int, float], stacked: np.ndarray) -> tuple[ReferenceResult, float]:
    backend, network, steps, timeout_s = job
    return _run_group(backend, network, stacked, steps, timeout_s)


def _run_groups(backend: str, network: Network, groups: list[Group], steps: int, timeout_s: float,
                workers: int) -> Iterable[tuple[list[int], np.ndarray, ReferenceResult, float]]:
    """(indices, stacked images, result, seconds) per group, in order; in a fork pool if ``workers`` > 1."""
    if workers == 1 or len(groups) == 1:
        for indices, stacked in groups:
            yield (indices, stacked, *_run_group(backend, network, stacked, steps, timeout_s))
        return
    import functools
    import multiprocessing
    run = functools.partial(_pool_run, (backend, network, steps, timeout_s))
    pool = multiprocessing.get_context("fork").Pool(min(workers, len(groups)), initializer=_pool_init)
    try:
        for (indices, stacked), (result, seconds) in zip(groups, pool.imap(run, [g[1] for g in groups])):
            yield indices, stacked, result, seconds
        pool.close()
    finally:
        pool.terminate()          # also on errors and Ctrl-C: no worker outlives the call
        pool.join()


def _item(result: ReferenceResult, i: int, count: int) -> ReferenceResult:
    """Batch item ``i`` of a result as a result of its own (per-image statistics)."""
    if count == 1:
        return result
    if len(result.image_spike_counts) != count:
        raise ConfigError("this backend reports batch totals only: simulate with --batch 1")
    return ReferenceResult(output=result.output[i:i + 1], accumulator=result.accumulator[i:i + 1],
                           steps=result.steps, spike_counts=result.image_spike_counts[i],
                           saturations=result.image_saturations[i], static_overflow=result.static_overflow)


def profile_report(network: Network, batch: np.ndarray, steps: int, out_dir: str | os.PathLike[str],
                   profile: str = "loihi2", overrides: Iterable[str] = (), max_chips: int | None = None) -> dict[str, Any]:
    """Loihi 2 (or another profile's) cost report of a network on a batch; writes report.json/.md and PNGs."""
    from toolchain.hardware import collect_activity, load_profile, profile_network, write_report

    hw = load_profile(profile, list(overrides))
    result, activity = collect_activity(network, batch, steps)
    report = profile_network(network, result, hw, steps, activity=activity, max_chips=max_chips)
    report["summary"] = report_summary(report)
    write_report(report, out_dir)
    return report


def report_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The figures a person looks at first: cores, chips, spikes, synops, energy by both methods."""
    t, e = report["totals"], report["energy"]
    return {"profile": report["profile"]["name"], "lowering": report["lowering"], "steps": report["activity"]["steps"],
            "cores": t.get("cores"), "chips": t.get("chips"), "spikes": int(t["spikes"]), "synops": int(t["synops"]),
            "energy_paper_j": t["energy_paper_j"], "energy_profile_j": t.get("energy_profile_j"),
            "energy_ann_j": t["energy_ann_j"], "ann_over_paper": e["ratios"]["ann_over_paper"],
            "ann_over_profile": e["ratios"].get("ann_over_profile")}


def format_summary(summary: dict[str, Any]) -> str:
    """One paragraph: the mapping, the activity, and the energy by both methods against the ANN."""
    def j(x: float | None) -> str:
        return "-" if x is None else f"{x:.3g} J"

    def versus(ratio: float | None) -> str:
        if not ratio:
            return ""
        return f" ({ratio:.3g}x less than the ANN)" if ratio >= 1 else f" ({1 / ratio:.3g}x more than the ANN)"
    return (f"{summary['profile']} ({summary['lowering']}, T={summary['steps']}): {summary['cores']} cores on "
            f"{summary['chips']} chip(s); {summary['spikes']:,} spikes, {summary['synops']:,} synaptic ops; "
            f"energy per inference {j(summary['energy_paper_j'])} by the paper's method{versus(summary['ann_over_paper'])}, "
            f"{j(summary['energy_profile_j'])} by the profile{versus(summary.get('ann_over_profile'))}; "
            f"ANN {j(summary['energy_ann_j'])}")


def report_file(net_path: str | os.PathLike[str], image_path: str | os.PathLike[str] | None, steps: int | None,
                out_dir: str | os.PathLike[str], profile: str = "loihi2", overrides: Iterable[str] = (),
                noise_sigma: float | None = None, seed: int = 0, max_chips: int | None = None) -> dict[str, Any]:
    """The cost report of a .net file on one image (default: the embedded camera photo, centre crop
    at the file's input size, with Gaussian noise of sigma 25 for denoising networks)."""
    from netx_export import read_network

    from toolchain.data.embedded import load_photo
    from toolchain.data.patches import center_crop

    network = read_network(net_path)
    steps = check_steps(steps if steps is not None else int(network.meta.get("steps", 10)))
    channels, h, w = network.input.shape
    if image_path is None:
        image = center_crop(load_photo("camera", channels), max(h, w))[:, :h, :w]
        if noise_sigma is None and network.meta.get("task") == "denoise":
            noise_sigma = 25.0
    else:
        image = input_images(image_path, channels)[0][1]
    if noise_sigma is not None:
        image = add_gaussian_noise(torch.from_numpy(image)[None], noise_sigma,
                                   torch.Generator().manual_seed(seed))[0][0].numpy()
    batch = padded(image, int(network.meta.get("multiple", 1)))[None]
    return profile_report(resize(network, batch.shape[-2:]), batch, steps, out_dir, profile, overrides, max_chips)
