"""Bring your own U-Net: milesial's U-Net (BatchNorm, MaxPool, ConvTranspose k2 up, ``F.pad``; the class a
user would bring, ``examples/milesial_unet.py``) trained as a denoiser on the embedded gray photos,
captured with torch.export and converted by ``toolchain.frontend.capture.from_model``, then fine-tuned
with the spiking flow; PSNR at sigma 25 on the held-out photos at T = 10.

Two trainings of the same architecture: with MaxPool2d, as milesial's repository trains it, converted with
``maxpool="avg"`` (the rewrite's cost is the ANN's PSNR before and after it, and what fine-tuning wins
back), and with AvgPool2d from the start (nothing to rewrite). Both need ``linear="pair"`` for the
ConvTranspose without activation before each concat (exact; its cost is reported in neurons). Each is
converted with the default normalization percentile (99.9) and with 99: BatchNorm nets have
heavy-tailed activations, so the 99.9th percentile leaves most neurons firing rarely at T = 10.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from examples.milesial_unet import MilesialUNet
from toolchain.frontend.capture import CaptureOptions, from_model
from toolchain.frontend.conversion import ConversionSettings
from toolchain.frontend.snn import SpikingNetwork
from toolchain.frontend.training import fit
from toolchain.ir import resize
from toolchain.tasks.sampling import Sampler
from toolchain.tasks.spec import TaskSpec
from toolchain.verbs.source import seeded

from .common import Context, evaluate_denoise_sweep, log

SPEC = TaskSpec("denoise", 1, 1)


class _AsANN(nn.Module):
    """A converted network evaluated as the ReLU graph it was converted from (its ``ann_forward``)."""

    def __init__(self, snn: SpikingNetwork) -> None:
        super().__init__()
        self.snn = snn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.snn.ann_forward(x)


def _train(ctx: Context, pool: str) -> tuple[MilesialUNet, dict[str, Any]]:
    s = ctx.settings
    path = ctx.models / f"milesial_{pool}pool.pt"
    key = {"pool": pool, "width": s.width, "depth": s.depth, "batches": s.ann_batches["gray"], "batch": s.ann_batch,
           "patch": s.ann_patch, "lr": s.ann_lr, "seed": s.seed}
    torch.manual_seed(s.seed)
    model = MilesialUNet(1, 1, bilinear=False, width=s.width, depth=s.depth, pool=pool)   # type: ignore[arg-type]
    record = ctx._cached(path, key)
    if record is None:
        log(f"foreign_unet: train milesial's U-Net with {pool} pooling ({s.ann_batches['gray']} batches)")
        rng, gen = seeded(s.seed)
        sampler = Sampler("denoise", ctx.data("gray")[0], s.ann_patch, s.ann_batch, rng, gen)
        start = time.perf_counter()
        model.train()
        history = fit(model, model.parameters(), sampler, "denoise", s.ann_batches["gray"], s.ann_lr,
                      desc=f"train milesial ({pool} pool)", progress=False)
        torch.save(model.state_dict(), path)
        record = ctx._record(path, key, {"seconds": time.perf_counter() - start,
                                         "final_loss": float(np.mean(history[-20:]))})
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval(), record


def _psnr(model: nn.Module, ctx: Context, steps: int = 1) -> float:
    s = ctx.settings
    rows = evaluate_denoise_sweep(model, ctx.data("gray")[1], (s.sigma,), s.seed, s.crop, (steps,))   # type: ignore[arg-type]
    return float(rows[steps][0]["psnr"])


def _pair_neurons(snn: SpikingNetwork, info: dict[str, Any], side: int) -> dict[str, int]:
    """Neurons of the network at ``side`` x ``side``, and how many of them the signed pairs added."""
    network = resize(snn.network, (side, side))
    paired = {r["layer"] for r in info["capture"]["rewrites"] if r["kind"] == "signed-pair"}
    return {"neurons": sum(layer.neurons for layer in network.synaptic_layers[:-1]),
            "pair_extra": sum(layer.neurons // 2 for layer in network.synaptic_layers if layer.name in paired)}


def _row(ctx: Context, pool: str, percentile: float = 99.9) -> dict[str, Any]:
    s = ctx.settings
    model, record = _train(ctx, pool)
    options = CaptureOptions(maxpool="avg" if pool == "max" else "refuse", linear="pair")
    snn, info = from_model(model, ctx.calibration("gray"), SPEC, ConversionSettings(percentile=percentile), options)
    row: dict[str, Any] = {
        "pool": pool, "percentile": percentile, "training": record, "ann_psnr": _psnr(model, ctx), "rewritten_ann_psnr": _psnr(_AsANN(snn), ctx),
        "rewrites": sorted({r["kind"] for r in info["capture"]["rewrites"]}),
        "fidelity": info["capture"]["fidelity"], "size": _pair_neurons(snn, info, s.energy_side)}
    row["converted_psnr"] = _psnr(snn, ctx, s.short_t)
    row["finetune"] = ctx.finetune(snn, "gray", s.short_t)
    row["finetuned_psnr"] = _psnr(snn, ctx, s.short_t)
    log(f"foreign_unet {pool} pool, percentile {percentile:g}: ANN {row['ann_psnr']:.2f} dB, rewritten {row['rewritten_ann_psnr']:.2f}, "
        f"SNN T={s.short_t} converted {row['converted_psnr']:.2f}, fine-tuned {row['finetuned_psnr']:.2f}")
    return row


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    return {"sigma": s.sigma, "steps": s.short_t, "crop": s.crop, "test_images": list(ctx.data("gray")[1].names),
            "side": s.energy_side, "rows": [_row(ctx, "max"), _row(ctx, "avg"), _row(ctx, "max", 99.0),
                                            _row(ctx, "avg", 99.0)],
            "model": str(Path("examples/milesial_unet.py"))}
