"""Paper Tables 1-2 at small scale: U-Net vs Spiking-UNet (converted, and fine-tuned with the spiking
flow), denoising PSNR/SSIM at sigma 15/25/50 gray and color at T=10 and T=20, and the nuclei binary
segmentation (F1 / Jaccard / accuracy) at T=10. Connection-wise normalization, MT(2, 1, 0.5, 0.25)."""
from __future__ import annotations

from typing import Any

from .common import Context, evaluate_denoise_sweep, evaluate_segment_sweep, log


def _denoise(ctx: Context, task: str) -> dict[str, Any]:
    s = ctx.settings
    _, test = ctx.data(task)
    steps = (s.short_t, s.long_t)
    ann, ann_record = ctx.ann(task)
    log(f"tables12 {task}: evaluate the U-Net and the converted SNN (T = {steps}) on {list(test.names)}")
    result: dict[str, Any] = {
        "test_images": list(test.names), "crop": s.crop,
        "ann": evaluate_denoise_sweep(ann, test, s.sigmas, s.seed, s.crop)[1],
        "ann_training": ann_record, "ann_parameters": sum(p.numel() for p in ann.parameters()),
    }
    snn, _ = ctx.snn(task)
    converted = evaluate_denoise_sweep(snn, test, s.sigmas, s.seed, s.crop, steps)
    result["converted"] = {str(t): converted[t] for t in steps}
    result["finetuned"], result["finetune"] = {}, {}
    for t in steps:
        tuned, info = ctx.snn(task, finetune_steps=t)
        log(f"tables12 {task}: evaluate the SNN fine-tuned at T={t}")
        result["finetuned"][str(t)] = evaluate_denoise_sweep(tuned, test, s.sigmas, s.seed, s.crop, (t,))[t]
        result["finetune"][str(t)] = info["finetune"]
    return result


def _segment(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    _, test = ctx.data("segment")
    ann, ann_record = ctx.ann("segment")
    log("tables12 segment: U-Net, converted and fine-tuned SNN at T=%d" % s.short_t)
    snn, _ = ctx.snn("segment")
    tuned, info = ctx.snn("segment", finetune_steps=s.short_t)
    return {"test_images": list(test.names), "steps": s.short_t,
            "pixels": int(sum(m.size for m in test.masks or ())),
            "ann": evaluate_segment_sweep(ann, test)[1], "ann_training": ann_record,
            "converted": evaluate_segment_sweep(snn, test, (s.short_t,))[s.short_t],
            "finetuned": evaluate_segment_sweep(tuned, test, (s.short_t,))[s.short_t],
            "finetune": info["finetune"]}


def run(ctx: Context) -> dict[str, Any]:
    return {"denoise": {"gray": _denoise(ctx, "gray"), "color": _denoise(ctx, "color")},
            "segment": _segment(ctx)}
