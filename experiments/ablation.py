"""Paper Tables 3 and 4 at small scale, on gray denoising (sigma 25; the paper: CamSeq01 mIoU).

* ``ablation``: layer-wise vs connection-wise normalization x IF vs MT x with / without spiking-flow
  fine-tuning at T=20, and the converted-only networks at a long window (T=200 here; the paper 1000).
* ``thresholds``: number and values of the MT thresholds (the paper's sets), connection-wise,
  converted-only and fine-tuned at T=20.
"""
from __future__ import annotations

from typing import Any

from .common import IF1, MT4, Context, evaluate_denoise_sweep, log

THRESHOLD_SETS: tuple[tuple[float, ...], ...] = (
    (2.0,), (1.0,), (0.5,), (1.0, 0.5), (2.0, 1.0), (2.0, 1.0, 0.5), (2.0, 1.0, 0.5, 0.25),
    (2.0, 1.0, 0.5, 0.25, 0.125))

PAPER_TABLE3 = [  # (LW, CW, MT, FT, T, mIoU) as read from the paper's Table 3 (CamSeq01)
    ("layer", "IF", False, 1000, 0.592), ("layer", "MT", False, 1000, 0.623), ("layer", "IF", False, 20, 0.002),
    ("layer", "IF", True, 20, 0.272), ("layer", "MT", False, 20, 0.144), ("layer", "MT", True, 20, 0.199),
    ("connection", "IF", True, 20, 0.603), ("connection", "MT", True, 20, 0.651)]
PAPER_TABLE4 = {"2": 0.214, "1": 0.199, "0.5": 0.306, "1-0.5": 0.325, "2-1": 0.363, "2-1-0.5": 0.412,
                "2-1-0.5-0.25": 0.651, "2-1-0.5-0.25-0.125": 0.651}


def _metrics(report: dict[int, list[dict[str, Any]]], t: int) -> dict[str, float]:
    row = report[t][0]
    return {"psnr": row["psnr"], "ssim": row["ssim"]}


def run_ablation(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    _, test = ctx.data("gray")
    t, long_t = s.long_t, s.very_long_t
    rows = []
    for norm in ("layer", "connection"):
        for neuron, thresholds in (("IF", IF1), ("MT", MT4)):
            log(f"ablation: {norm}-wise, {neuron}: converted (T={t} and T={long_t})")
            snn, _ = ctx.snn("gray", norm, thresholds)
            conv = evaluate_denoise_sweep(snn, test, (s.sigma,), s.seed, s.sweep_crop, (t, long_t))
            rows.append({"norm": norm, "neuron": neuron, "finetuned": False, "steps": long_t, **_metrics(conv, long_t)})
            rows.append({"norm": norm, "neuron": neuron, "finetuned": False, "steps": t, **_metrics(conv, t)})
            tuned, info = ctx.snn("gray", norm, thresholds, finetune_steps=t)
            log(f"ablation: {norm}-wise, {neuron}: fine-tuned at T={t}")
            ft = evaluate_denoise_sweep(tuned, test, (s.sigma,), s.seed, s.sweep_crop, (t,))
            rows.append({"norm": norm, "neuron": neuron, "finetuned": True, "steps": t, **_metrics(ft, t),
                         "finetune": info["finetune"]})
    ann, _ = ctx.ann("gray")
    ann_metrics = _metrics(evaluate_denoise_sweep(ann, test, (s.sigma,), s.seed, s.sweep_crop), 1)
    return {"sigma": s.sigma, "crop": s.sweep_crop, "test_images": list(test.names), "steps": t,
            "long_steps": long_t, "ann": ann_metrics, "rows": rows,
            "paper_table3": [dict(zip(("norm", "neuron", "finetuned", "steps", "miou"), r)) for r in PAPER_TABLE3]}


def run_thresholds(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    _, test = ctx.data("gray")
    t = s.long_t
    rows = []
    for thresholds in THRESHOLD_SETS:
        log(f"thresholds: {list(thresholds)} (connection-wise), converted and fine-tuned at T={t}")
        snn, _ = ctx.snn("gray", "connection", thresholds)
        conv = _metrics(evaluate_denoise_sweep(snn, test, (s.sigma,), s.seed, s.sweep_crop, (t,)), t)
        tuned, info = ctx.snn("gray", "connection", thresholds, finetune_steps=t)
        ft = _metrics(evaluate_denoise_sweep(tuned, test, (s.sigma,), s.seed, s.sweep_crop, (t,)), t)
        rows.append({"thresholds": list(thresholds), "count": len(thresholds), "converted": conv, "finetuned": ft,
                     "finetune": info["finetune"]})
    ann, _ = ctx.ann("gray")
    return {"sigma": s.sigma, "crop": s.sweep_crop, "test_images": list(test.names), "steps": t,
            "ann": _metrics(evaluate_denoise_sweep(ann, test, (s.sigma,), s.seed, s.sweep_crop), 1),
            "rows": rows, "paper_table4": PAPER_TABLE4}
