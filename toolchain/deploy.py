"""Deployment verbs: export a Spiking-UNet to a .net file, simulate a .net file on a backend,
and profile it for Loihi 2. ``cli.py`` parses arguments and calls these.

Every backend writes the same three files per image, so results compare file to file:
``output.npy`` (the decoded network output: the noise map for denoising, class logits / T for
segmentation), ``spikes.json`` (per-layer spike counts per threshold) and ``output.png`` (the
restored image, or the segmentation as a label image).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from tqdm import tqdm

from .atomic import atomic_path, write_json
from .checkpoint import file_sha256
from .data.folder import IMAGE_SUFFIXES, image_files, read_image
from .data.patches import add_gaussian_noise
from .errors import ConfigError, DataError
from .export import export_network
from .graph import Network, resize
from .models import load_snn
from .quantize import QuantSettings
from .refsim import ReferenceResult, ReferenceSimulator
from .snn import check_steps

BACKENDS = ("reference", "lava-cpu", "loihi2")
DEFAULT_EXPORT_SIDE = 64


def export_checkpoint(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], lowering: str,
                      weight_bits: int, strict: bool, steps: int | None, input_hw: tuple[int, int] | None,
                      theta_unit: int = 4096) -> dict[str, Any]:
    """Quantize and write a .net file; returns the layer table and the quantization report."""
    from netx_export import write_network
    from netx_export.table import format_table, layer_table

    snn, ckpt = load_snn(checkpoint)
    steps = check_steps(steps if steps is not None else int(ckpt.spiking.get("finetuned_steps") or 10))
    hw = input_hw or (DEFAULT_EXPORT_SIDE, DEFAULT_EXPORT_SIDE)
    provenance = {"source_checkpoint": Path(checkpoint).name, "source_sha256": file_sha256(checkpoint),
                  "finetuned_steps": ckpt.spiking.get("finetuned_steps")}
    network, reports = export_network(snn, ckpt.spiking, hw, QuantSettings(weight_bits, theta_unit, steps, strict),
                                      lowering, provenance)
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
        from .lava_backend import run_lava
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
                  profile: str = "loihi2", overrides: Iterable[str] = (), timeout_s: float = 600.0) -> dict[str, Any]:
    """Run a .net file on every input image; write output.npy, spikes.json and output.png per image."""
    from netx_export import read_network

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    network = read_network(net_path)
    steps = check_steps(steps if steps is not None else int(network.meta.get("steps", 10)))
    images = input_images(inputs, network.input.shape[0])
    out = Path(out_dir)
    rows = []
    for k, (stem, image) in enumerate(tqdm(images, desc=f"simulate ({backend})", disable=len(images) < 2)):
        noisy = image
        if noise_sigma is not None:
            noisy = add_gaussian_noise(torch.from_numpy(image)[None], noise_sigma,
                                       torch.Generator().manual_seed(seed + k))[0][0].numpy()
        batch = padded(noisy, int(network.meta.get("multiple", 1)))[None]
        sized = resize(network, batch.shape[-2:])
        start = time.perf_counter()
        result = run_backend(backend, sized, batch, steps, timeout_s)
        seconds = time.perf_counter() - start
        target = out if len(images) == 1 else out / stem
        output, picture = decode(sized, result, noisy)
        with atomic_path(target / "output.npy") as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, output)
        spikes = spikes_report(sized, result)
        write_json(target / "spikes.json", {"backend": backend, "image": stem, "wall_time_s": seconds, **spikes})
        _save_png(target / "output.png", picture)
        row = {"image": stem, "backend": backend, "steps": steps, "wall_time_s": seconds,
               "spikes": spikes["total"], "out": str(target)}
        if backend == "loihi2":
            row["report"] = profile_report(sized, batch, steps, target, profile, overrides)["summary"]
        rows.append(row)
    return {"verb": "simulate", "file": str(net_path), "backend": backend, "images": rows}


def profile_report(network: Network, batch: np.ndarray, steps: int, out_dir: str | os.PathLike[str],
                   profile: str = "loihi2", overrides: Iterable[str] = (), max_chips: int | None = None) -> dict[str, Any]:
    """Loihi 2 (or another profile's) cost report of a network on a batch; writes report.json/.md and PNGs."""
    from .hardware import collect_activity, load_profile, profile_network, write_report

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
    def j(x: float | None) -> str:
        return "-" if x is None else f"{x:.3g} J"
    ratio = summary.get("ann_over_profile")
    return (f"{summary['profile']} ({summary['lowering']}, T={summary['steps']}): {summary['cores']} cores on "
            f"{summary['chips']} chip(s); {summary['spikes']:,} spikes, {summary['synops']:,} synaptic ops; "
            f"energy {j(summary['energy_paper_j'])} (paper's method), {j(summary['energy_profile_j'])} (profile); "
            f"ANN {j(summary['energy_ann_j'])} = {summary['ann_over_paper']:.0f}x the paper's SNN estimate"
            + (f", {ratio:.3g}x the profile's" if ratio else ""))


def report_file(net_path: str | os.PathLike[str], image_path: str | os.PathLike[str] | None, steps: int | None,
                out_dir: str | os.PathLike[str], profile: str = "loihi2", overrides: Iterable[str] = (),
                noise_sigma: float | None = None, seed: int = 0, max_chips: int | None = None) -> dict[str, Any]:
    """The cost report of a .net file on one image (default: the embedded camera photo, centre crop
    at the file's input size, with Gaussian noise of sigma 25 for denoising networks)."""
    from netx_export import read_network

    from .data.embedded import load_photo
    from .data.patches import center_crop

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
