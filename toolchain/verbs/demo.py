"""The demo: the whole pipeline on the embedded photos, with a summary a person can read.

Every figure reported here is computed in this run; ``runs/demo/demo_report.json`` holds them all.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..files import write_json
from ..frontend.checkpoint import load_ann, load_snn
from ..frontend.conversion import ConversionSettings
from .convert import ConvertSettings, convert_checkpoint
from .evaluate import evaluate_model
from .runs import Log, Schedule
from .source import DataSource
from .train import FinetuneSettings, TrainSettings, finetune_checkpoint, train


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo run; ``quick`` is a tiny variant for tests."""

    width: int = 16
    depth: int = 2
    epochs: int = 8
    finetune_epochs: int = 3
    batches_per_epoch: int = 100
    batch: int = 16
    finetune_batch: int = 8
    patch: int = 48
    steps: int = 10
    sigma: float = 25.0
    crop: int = 256
    sweep: tuple[int, ...] = (10, 20, 40, 80, 160, 320)
    sweep_crop: int = 128
    deploy_side: int = 64

    @classmethod
    def quick(cls) -> DemoSettings:
        return cls(width=4, depth=2, epochs=1, finetune_epochs=1, batches_per_epoch=4, batch=4,
                   finetune_batch=2, patch=32, steps=4, crop=32, sweep=(4, 8), sweep_crop=16, deploy_side=32)


def _psnr(report: Any) -> float:
    return float(report.denoise[0]["psnr"])


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


def run_demo(out_dir: str, seed: int = 0, quick: bool = False, log: Log = _quiet) -> dict[str, Any]:
    """Train, convert (layer- and connection-wise), fine-tune, evaluate, export, check the Lava CPU run
    against the reference simulator and profile for Loihi 2, all on the embedded photos; ``log``
    receives one line per stage. Returns the report (also written to ``demo_report.json``)."""
    s = DemoSettings.quick() if quick else DemoSettings()
    # One thread: the figures then reproduce bit for bit on any machine (float sums do not depend on
    # how many threads split them), and nothing oversubscribes a small, shared machine.
    torch.set_num_threads(1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = DataSource("denoise", 1)
    stage = _Stage(log)
    test_set = source.load()[1]

    def evaluate(model: Any, steps: int) -> float:
        return _psnr(evaluate_model(model, source, steps, [s.sigma], seed, s.crop, test_set))

    stage("train the U-Net", lambda: train(TrainSettings(
        source, out / "ann.pt", Schedule(s.epochs, s.batches_per_epoch, s.batch, s.patch, 1e-3), s.width, s.depth,
        seed=seed), log=log))
    for norm in ("layer", "connection"):
        settings = ConvertSettings(out / "ann.pt", out / f"snn_{norm}.pt", ConversionSettings(norm), 32, s.patch, seed)
        stage(f"convert ({norm}-wise normalization)", functools.partial(convert_checkpoint, settings))
    stage(f"fine-tune with the spiking flow at T={s.steps}", lambda: finetune_checkpoint(FinetuneSettings(
        out / "snn_connection.pt", out / "snn_finetuned.pt", s.steps,
        Schedule(s.finetune_epochs, s.batches_per_epoch, s.finetune_batch, s.patch, 1e-4), seed), log=log))
    ann = load_ann(out / "ann.pt")[0]
    layer_snn = load_snn(out / "snn_layer.pt")[0]
    conn_snn = load_snn(out / "snn_connection.pt")[0]
    tuned_snn = load_snn(out / "snn_finetuned.pt")[0]
    psnr = stage("evaluate", lambda: {
        "ann": evaluate(ann, 1), "converted_layer": evaluate(layer_snn, s.steps),
        "converted_connection": evaluate(conn_snn, s.steps), "finetuned": evaluate(tuned_snn, s.steps)})

    def sweep() -> dict[str, Any]:
        """Converted-only SNN at growing T until it reaches the fine-tuned SNN's PSNR at T = s.steps,
        both scored on the central ``sweep_crop`` pixels (cheaper than the full evaluation crop)."""
        def score(model: Any, steps: int) -> float:
            return _psnr(evaluate_model(model, source, steps, [s.sigma], seed, s.sweep_crop, test_set))
        target = score(tuned_snn, s.steps)
        curve = {}
        for steps in s.sweep:
            curve[steps] = score(conn_snn, steps)
            if curve[steps] >= target:
                return {"crop": s.sweep_crop, "finetuned_psnr": target, "curve": curve, "steps_to_match": steps}
        return {"crop": s.sweep_crop, "finetuned_psnr": target, "curve": curve, "steps_to_match": None}

    match = stage("time steps a converted-only SNN needs to match the fine-tuned one", sweep)
    report = {"settings": s.__dict__ | {"sweep": list(s.sweep)}, "seed": seed, "sigma": s.sigma,
              "steps": s.steps, "psnr": psnr, "converted_sweep": match,
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
    noisy = add_gaussian_noise(torch.from_numpy(clean)[None], s.sigma, torch.Generator().manual_seed(seed))[0].numpy()
    reference = stage("reference simulator on one crop (every spike recorded)",
                      lambda: get_backend("reference", network).run(network, noisy, s.steps, "spikes"))
    lava = stage("Lava CPU simulator (Loihi2SimCfg fixed_pt) on the same crop",
                 lambda: get_backend("lava-cpu", network).run(network, noisy, s.steps, "spikes"))
    match = compare_results(network, reference, lava)
    hardware = stage("Loihi 2 profile report",
                     lambda: profile_report(network, noisy, s.steps, out / "report"))
    return {"net_file": str(out / "demo.net"), "input_side": side, "latency_steps": network.latency,
            "quantization": quant, "lava_matches_reference": match,
            "lava_timing": lava.timing.to_dict() if lava.timing else None,
            "loihi2": hardware["summary"], "report_dir": str(out / "report")}


def describe(report: dict[str, Any]) -> str:
    """The demo's summary, as a person reads it."""
    from .hardware_report import HardwareSummary
    lines: list[str] = []
    p, steps = report["psnr"], report["steps"]
    lines.append(f"\nDenoising, sigma {report['sigma']:g}, test images {', '.join(report['test_images'])} "
          f"(center {report['crop']} px), T = {steps}")
    lines.append(f"  U-Net (ANN)                              PSNR {p['ann']:.2f} dB")
    lines.append(f"  Spiking-UNet, layer-wise, converted      PSNR {p['converted_layer']:.2f} dB")
    lines.append(f"  Spiking-UNet, connection-wise, converted PSNR {p['converted_connection']:.2f} dB")
    lines.append(f"  Spiking-UNet, fine-tuned (spiking flow)  PSNR {p['finetuned']:.2f} dB "
          f"({p['finetuned'] - p['ann']:+.2f} dB vs ANN)")
    m = report["converted_sweep"]
    if m["steps_to_match"] is None:
        lines.append(f"  converted-only never matched the fine-tuned SNN within T <= {max(m['curve'])} "
              f"(central {m['crop']} px)")
    else:
        lines.append(f"  converted-only needs T = {m['steps_to_match']} to match the fine-tuned SNN at T = {steps} "
              f"({m['finetuned_psnr']:.2f} dB on the central {m['crop']} px)")
    d = report["deploy"]
    q = d["quantization"]["mean"]
    lines.append(f"\nExported network {d['net_file']} ({d['input_side']}x{d['input_side']} input, "
                 f"latency {d['latency_steps']} steps)")
    lines.append(f"  quantized (integer reference simulator) PSNR {q['quantized']:.2f} dB "
                 f"vs float SNN {q['float']:.2f} dB ({d['quantization']['loss_db']:+.3f} dB loss)")
    m = d["lava_matches_reference"]
    verdict = "IDENTICAL to" if m["identical"] else "DIFFERENT from"
    lines.append(f"  lava-cpu run: every spike of {len(m['layers'])} layers at every step and the output are {verdict} "
          f"the reference simulator's")
    lines.append("  " + HardwareSummary(**d["loihi2"]).describe() + f"; report in {d['report_dir']}")
    return "\n".join(lines)
