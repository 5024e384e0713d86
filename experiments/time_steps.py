"""Quality vs the number of time steps T, converted-only vs fine-tuned (gray denoising, sigma 25), and
the T the converted-only SNN needs to match the SNN fine-tuned at T=10 (the paper: "about 90% fewer
steps"). One simulation of max(T) steps per network gives the PSNR at every T from 1 to max(T)."""
from __future__ import annotations

from typing import Any

from .common import Context, evaluate_denoise_sweep, log


def _curve(report: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    every = {str(t): rows[0]["psnr"] for t, rows in sorted(report.items())}
    return {"psnr_every_t": every,
            "at": {str(t): {"psnr": rows[0]["psnr"], "ssim": rows[0]["ssim"]}
                   for t, rows in sorted(report.items()) if "ssim" in rows[0]}}


def steps_to_match(curve: dict[str, float], target: float) -> int | None:
    """The smallest T whose PSNR reaches ``target`` (None: not within the curve)."""
    for t, value in sorted(((int(k), v) for k, v in curve.items())):
        if value >= target:
            return t
    return None


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    _, test = ctx.data("gray")
    t_max = max(s.sweep)
    every = range(1, t_max + 1)
    curves: dict[str, Any] = {}
    models = {"converted": ctx.snn("gray")[0]}
    for t in (s.short_t, s.long_t):
        models[f"finetuned_T{t}"] = ctx.snn("gray", finetune_steps=t)[0]
    for name, snn in models.items():
        log(f"time_steps: {name}, T = 1..{t_max}")
        curves[name] = _curve(evaluate_denoise_sweep(snn, test, (s.sigma,), s.seed, s.sweep_crop, every, s.sweep))
    ann, _ = ctx.ann("gray")
    ann_psnr = evaluate_denoise_sweep(ann, test, (s.sigma,), s.seed, s.sweep_crop)[1][0]["psnr"]
    target = curves[f"finetuned_T{s.short_t}"]["psnr_every_t"][str(s.short_t)]
    match = steps_to_match(curves["converted"]["psnr_every_t"], target)
    target_long = curves[f"finetuned_T{s.long_t}"]["psnr_every_t"][str(s.long_t)]
    match_long = steps_to_match(curves["converted"]["psnr_every_t"], target_long)
    return {"sigma": s.sigma, "crop": s.sweep_crop, "test_images": list(test.names), "sweep": list(s.sweep),
            "t_max": t_max, "ann_psnr": ann_psnr, "curves": curves,
            "match": {"finetuned_steps": s.short_t, "finetuned_psnr": target, "converted_steps_needed": match,
                      "reduction": None if match is None else 1.0 - s.short_t / match},
            "match_long": {"finetuned_steps": s.long_t, "finetuned_psnr": target_long,
                           "converted_steps_needed": match_long,
                           "reduction": None if match_long is None else 1.0 - s.long_t / match_long}}
