"""The demo: the whole pipeline on the embedded photos, with a summary a person can read.

Every figure reported here is computed in this run; ``runs/demo/demo_report.json`` holds them all.
"""
from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..files import write_json
from ..frontend.checkpoint import load_ann, load_snn
from ..frontend.conversion import ConversionSettings
from ..tasks.baselines import BASELINES, classical_denoiser
from ..tasks.sampling import evaluate_denoise
from .convert import ConvertSettings, convert_checkpoint
from .evaluate import evaluate_model
from .pretrained import DENOISER, train_recipe
from .runs import Log, Schedule
from .source import DataSource
from .train import FinetuneSettings, TrainSettings, finetune_checkpoint, train


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo run; ``quick`` is a tiny variant for tests (it trains a 4-wide U-Net itself).

    The SNN has 6 thresholds (2 .. 1/16) and percentile-99 normalization: at T = 10 that converts the
    shipped denoiser within 0.05 dB of its ANN, where 4 thresholds lose 0.3-0.9 dB (docs/RESULTS.md).
    Fine-tuning is gentle (lr 1e-5, cosine): at the former 1e-4 it lowered a converted SNN's SSIM.
    """

    width: int = 16
    depth: int = 2
    epochs: int = 8                # --quick / a retrain of the quick net only: the shipped recipe has its own
    finetune_epochs: int = 3
    batches_per_epoch: int = 100
    batch: int = 16
    finetune_batch: int = 16
    finetune_lr: float = 1e-5
    patch: int = 48
    thresholds: tuple[float, ...] = (2.0, 1.0, 0.5, 0.25, 0.125, 0.0625)
    percentile: float = 99.0
    steps: int = 10
    sigma: float = 25.0            # the deployment's (export, Lava check, Loihi 2 report) noise level
    sigmas: tuple[float, ...] = (15.0, 25.0, 50.0)
    crop: int = 256
    sweep: tuple[int, ...] = (10, 20, 40, 80, 160, 320)
    sweep_crop: int = 128
    deploy_side: int = 64

    @classmethod
    def quick(cls) -> DemoSettings:
        return cls(width=4, depth=2, epochs=1, finetune_epochs=1, batches_per_epoch=4, batch=4,
                   finetune_batch=2, patch=32, steps=4, sigmas=(25.0,), crop=32, sweep=(4, 8), sweep_crop=16,
                   deploy_side=32)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


def _quiet(_line: str) -> None:
    pass


class _Stage:
    """Logs one line per pipeline stage and keeps its wall time."""

    def __init__(self, log: Log) -> None:
        self.timings: dict[str, float] = {}
        self.log = log

    def __call__(self, name: str, work: Callable[[], Any]) -> Any:
        self.log(f"[demo] {name} ...")
        start = time.perf_counter()
        result = work()
        self.timings[name] = time.perf_counter() - start
        return result


def _scores(rows: list[dict[str, Any]] | None) -> dict[str, Any]:
    """{sigma: {psnr, ssim, per-image psnr}} of evaluate_denoise's rows."""
    assert rows is not None, "a denoising evaluation has rows"
    return {f"{r['sigma']:g}": {"psnr": r["psnr"], "ssim": r["ssim"],
                                "images": {im["image"]: round(im["psnr"], 4) for im in r["images"]}} for r in rows}


def _obtain_ann(out: Path, s: DemoSettings, seed: int, quick: bool, retrain: bool, stage: _Stage,
                log: Log) -> str:
    """Put the U-Net at ``out/ann.pt``: the shipped denoiser, or trained here (``retrain``, ``quick``)."""
    if quick:
        stage("train the U-Net", lambda: train(TrainSettings(
            DataSource("denoise", 1), out / "ann.pt", Schedule(s.epochs, s.batches_per_epoch, s.batch, s.patch, 1e-3),
            s.width, s.depth, seed=seed, noise_map=True), log=log))
        return "trained (quick)"
    if retrain:
        stage(f"train the U-Net ({DENOISER.command(str(out / 'ann.pt'))})",
              lambda: train_recipe(DENOISER, out / "ann.pt", log=log))
        return "retrained with the shipped recipe"
    stage(f"take the shipped U-Net ({DENOISER.path.name})", lambda: shutil.copyfile(DENOISER.path, out / "ann.pt"))
    return f"shipped ({DENOISER.name}, {DENOISER.recorded()['commit'][:10]})"


def run_demo(out_dir: str, seed: int = 0, quick: bool = False, retrain: bool = False,
             log: Log = _quiet) -> dict[str, Any]:
    """The shipped denoiser (or one trained here with ``retrain``), converted (layer- and connection-wise),
    fine-tuned, scored beside NL-means, wavelet, TV and BM3D on held-out photos, exported, run on Lava
    CPU against the reference simulator and profiled for Loihi 2; ``log`` receives one line per stage.
    Returns the report (also written to ``demo_report.json``)."""
    s = DemoSettings.quick() if quick else DemoSettings()
    # One thread: the figures then reproduce bit for bit on any machine (float sums do not depend on
    # how many threads split them), and nothing oversubscribes a small, shared machine.
    torch.set_num_threads(1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = DataSource("denoise", 1)
    stage = _Stage(log)
    test_set = source.load()[1]
    origin = _obtain_ann(out, s, seed, quick, retrain, stage, log)
    conversion = {norm: ConversionSettings(norm, s.percentile, s.thresholds) for norm in ("layer", "connection")}
    for norm, settings in conversion.items():
        convert = ConvertSettings(out / "ann.pt", out / f"snn_{norm}.pt", settings, 32, s.patch, seed)
        stage(f"convert ({norm}-wise normalization)", functools.partial(convert_checkpoint, convert))
    stage(f"fine-tune with the spiking flow at T={s.steps}", lambda: finetune_checkpoint(FinetuneSettings(
        out / "snn_connection.pt", out / "snn_finetuned.pt", s.steps,
        Schedule(s.finetune_epochs, s.batches_per_epoch, s.finetune_batch, s.patch, s.finetune_lr,
                 lr_final=s.finetune_lr / 100)), log=log))
    ann = load_ann(out / "ann.pt")[0]
    snns = {name: load_snn(out / f"snn_{name}.pt")[0] for name in ("layer", "connection", "finetuned")}
    tuned_snn = snns["finetuned"]

    def evaluate(model: Any, steps: int) -> dict[str, Any]:
        return _scores(evaluate_model(model, source, steps, list(s.sigmas), seed, s.crop, test_set).denoise)

    scores = stage("evaluate the ANN and the SNNs", lambda: {
        "ann": evaluate(ann, 1), "converted_layer": evaluate(snns["layer"], s.steps),
        "converted_connection": evaluate(snns["connection"], s.steps), "finetuned": evaluate(tuned_snn, s.steps)})
    scores["baselines"] = stage(f"classical baselines ({', '.join(BASELINES)})", lambda: {
        name: _scores([evaluate_denoise(classical_denoiser(name), test_set, sigma, seed, s.crop)
                       for sigma in s.sigmas]) for name in BASELINES})

    def sweep() -> dict[str, Any]:
        """Converted-only SNN at growing T until it reaches the fine-tuned SNN's PSNR at T = s.steps,
        both scored on the central ``sweep_crop`` pixels (cheaper than the full evaluation crop)."""
        def score(model: Any, steps: int) -> float:
            report = evaluate_model(model, source, steps, [s.sigma], seed, s.sweep_crop, test_set)
            return float(_scores(report.denoise)[f"{s.sigma:g}"]["psnr"])
        target = score(tuned_snn, s.steps)
        curve = {}
        for steps in s.sweep:
            curve[steps] = score(snns["connection"], steps)
            if curve[steps] >= target:
                return {"crop": s.sweep_crop, "finetuned_psnr": target, "curve": curve, "steps_to_match": steps}
        return {"crop": s.sweep_crop, "finetuned_psnr": target, "curve": curve, "steps_to_match": None}

    match = stage("time steps a converted-only SNN needs to match the fine-tuned one", sweep)
    report = {"settings": s.to_dict(), "seed": seed, "ann": origin, "sigmas": list(s.sigmas), "sigma": s.sigma,
              "steps": s.steps, "scores": scores, "converted_sweep": match,
              "test_images": list(test_set.names), "crop": s.crop}
    report["deploy"] = _deploy(out, s, seed, tuned_snn, test_set, stage)
    report["timings_s"] = stage.timings
    write_json(out / "demo_report.json", report)
    log(f"[demo] wrote {out / 'demo_report.json'}")
    return report


def _deploy(out: Path, s: DemoSettings, seed: int, snn: Any, test_set: Any, stage: _Stage) -> dict[str, Any]:
    """Export, quantized-vs-float PSNR, lava-cpu against the reference simulator, Loihi 2 report."""
    import numpy as np
    import torch

    from netx_export import read_network

    from ..backends import get_backend
    from ..data.patches import add_gaussian_noise, center_crop
    from ..tasks.sampling import denoiser_input
    from .export import ExportSettings, export_checkpoint
    from .fidelity import compare_results, quantization_psnr
    from .hardware_report import profile_report

    side = s.deploy_side
    stage("export to Loihi fixed point (netx HDF5)",
          lambda: export_checkpoint(ExportSettings(out / "snn_finetuned.pt", out / "demo.net", steps=s.steps,
                                                   input_hw=(side, side))))
    spiking = load_snn(out / "snn_finetuned.pt")[1].spiking
    quant = stage("quantized (reference simulator) vs float SNN",
                  lambda: quantization_psnr(snn, spiking, test_set, s.steps, s.sigma, s.crop, seed))
    network = read_network(out / "demo.net")
    clean = np.ascontiguousarray(center_crop(test_set.images[0], side))
    noisy = add_gaussian_noise(torch.from_numpy(clean)[None], s.sigma, torch.Generator().manual_seed(seed))[0]
    frame = denoiser_input(noisy, s.sigma, bool(network.meta.noise_map)).numpy()
    reference = stage("reference simulator on one crop (every spike recorded)",
                      lambda: get_backend("reference", network).run(network, frame, s.steps, "spikes"))
    lava = stage("Lava CPU simulator (Loihi2SimCfg fixed_pt) on the same crop",
                 lambda: get_backend("lava-cpu", network).run(network, frame, s.steps, "spikes"))
    match = compare_results(network, reference, lava)
    hardware = stage("Loihi 2 profile report",
                     lambda: profile_report(network, frame, s.steps, out / "report"))
    return {"net_file": str(out / "demo.net"), "input_side": side, "latency_steps": network.latency,
            "quantization": quant, "lava_matches_reference": match,
            "lava_timing": lava.timing.to_dict() if lava.timing else None,
            "loihi2": hardware["summary"], "report_dir": str(out / "report")}


def describe(report: dict[str, Any]) -> str:
    """The demo's summary, as a person reads it."""
    from .hardware_report import HardwareSummary
    steps, scores, sigmas = report["steps"], report["scores"], [f"{v:g}" for v in report["sigmas"]]
    lines = [f"\nDenoising held-out photos {', '.join(report['test_images'])} (center {report['crop']} px, gray), "
             f"SNNs at T = {steps}; U-Net: {report['ann']}",
             f"  {'PSNR dB / SSIM at sigma':42s}" + "".join(f"{'sigma ' + v:>17s}" for v in sigmas)]
    rows = [("U-Net (ANN)", scores["ann"]), ("Spiking-UNet, layer-wise, converted", scores["converted_layer"]),
            ("Spiking-UNet, connection-wise, converted", scores["converted_connection"]),
            ("Spiking-UNet, fine-tuned (spiking flow)", scores["finetuned"]),
            *((f"{name} (classical)", row) for name, row in scores["baselines"].items())]
    for label, row in rows:
        lines.append(f"  {label:42s}" + "".join(f"{row[v]['psnr']:>10.2f} / {row[v]['ssim']:.3f}" for v in sigmas))
    gap = "  ".join(f"{scores['finetuned'][v]['psnr'] - scores['ann'][v]['psnr']:+.2f} dB" for v in sigmas)
    lines.append(f"  fine-tuned SNN vs ANN: {gap}")
    m = report["converted_sweep"]
    if m["steps_to_match"] is None:
        lines.append(f"  converted-only never matched the fine-tuned SNN within T <= {max(m['curve'])} "
                     f"(central {m['crop']} px, sigma {report['sigma']:g})")
    else:
        lines.append(f"  converted-only needs T = {m['steps_to_match']} to match the fine-tuned SNN at T = {steps} "
                     f"({m['finetuned_psnr']:.2f} dB on the central {m['crop']} px, sigma {report['sigma']:g})")
    d = report["deploy"]
    q = d["quantization"]["mean"]
    lines.append(f"\nExported network {d['net_file']} ({d['input_side']}x{d['input_side']} input, "
                 f"sigma {report['sigma']:g}, latency {d['latency_steps']} steps)")
    lines.append(f"  quantized (integer reference simulator) PSNR {q['quantized']:.2f} dB "
                 f"vs float SNN {q['float']:.2f} dB ({d['quantization']['loss_db']:+.3f} dB loss)")
    m = d["lava_matches_reference"]
    verdict = "IDENTICAL to" if m["identical"] else "DIFFERENT from"
    lines.append(f"  lava-cpu run: every spike of {len(m['layers'])} layers at every step and the output are {verdict} "
          f"the reference simulator's")
    lines.append("  " + HardwareSummary(**d["loihi2"]).describe() + f"; report in {d['report_dir']}")
    return "\n".join(lines)
