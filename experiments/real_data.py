"""Real data (issue 15): the shipped denoiser and its SNNs beside classical denoisers on held-out photos,
and segmentation of the nuclei image against its real mask, with fine-tuning at one T or over several.

Denoising uses the shipped ANN (``toolchain/data/pretrained``; ``scripts/make_pretrained.py`` retrains it),
the toolchain's evaluation (``toolchain.verbs.evaluate``: the same seeded noise for every method) and its
baselines (``toolchain.tasks.baselines``). Segmentation trains its own U-Net on the nuclei image's left
60 % and scores the right 40 %.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from toolchain.frontend.checkpoint import load_ann
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.frontend.snn import SpikingNetwork
from toolchain.frontend.training import finetune_spiking_flow
from toolchain.tasks.baselines import BASELINES, classical_denoiser, otsu_segmenter
from toolchain.tasks.sampling import Sampler, evaluate_denoise, evaluate_segment
from toolchain.verbs.evaluate import denoiser, predictor
from toolchain.verbs.pretrained import DENOISER
from toolchain.verbs.source import DataSource, calibration_batch, seeded

from .common import MT4, Context, evaluate_segment_sweep, log

MT6 = (2.0, 1.0, 0.5, 0.25, 0.125, 0.0625)
SEGMENT_STEPS = (10, 20, 40, 80, 160)
FINETUNE_RANGE = (10, 20, 40, 80)


def _scores(predict: Any, test: Any, sigmas: Sequence[float], seed: int, crop: int) -> dict[str, Any]:
    rows = [evaluate_denoise(predict, test, sigma, seed, crop) for sigma in sigmas]
    return {f"{r['sigma']:g}": {"psnr": r["psnr"], "ssim": r["ssim"],
                                "images": {im["image"]: {"psnr": im["psnr"], "ssim": im["ssim"],
                                                         "noisy_psnr": im["noisy_psnr"]} for im in r["images"]}}
            for r in rows}


def _denoise(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    source = DataSource("denoise", 1)
    train, test = ctx.data("gray")
    ann = load_ann(DENOISER.path)[0].eval()
    sigmas = s.sigmas
    calibration = calibration_batch(source, s.calib_count, s.calib_patch, s.seed, noise_map=True)
    result: dict[str, Any] = {"ann_file": DENOISER.path.name, "ann_commit": DENOISER.recorded()["commit"],
                              "test_images": list(test.names), "crop": s.crop, "sigmas": list(sigmas)}
    log("real data: the shipped ANN on the held-out photos")
    result["ann"] = _scores(denoiser(ann, 1), test, sigmas, s.seed, s.crop)
    result["baselines"] = {}
    for name in BASELINES:
        log(f"real data: {name}")
        result["baselines"][name] = _scores(classical_denoiser(name), test, sigmas, s.seed, s.crop)
    rows = []
    variants = [("4 thresholds, p99.9", MT4, 99.9, (10,)), ("6 thresholds, p99", MT6, 99.0, (5, 10, 20))]
    for label, thresholds, percentile, steps in variants:
        snn, _ = convert(ann, calibration, ConversionSettings("connection", percentile, thresholds))
        for t in steps:
            log(f"real data: SNN {label}, converted, T={t}")
            rows.append({"label": label, "finetuned": False, "steps": t,
                         "scores": _scores(denoiser(snn, t), test, sigmas, s.seed, s.crop)})
        if thresholds == MT6:
            batches = 300 if not s.quick else 2
            rng, gen = seeded(s.seed + 1)
            sampler = Sampler("denoise", train, s.ann_patch, 16 if not s.quick else 2, rng, gen, noise_map=True)
            log(f"real data: fine-tune gently ({batches} batches of 16, lr 1e-5) at T=10")
            snn.train()
            with torch.enable_grad():
                finetune_spiking_flow(snn, sampler, 10, batches, lr=1e-5, progress=False)
            snn.eval()
            rows.append({"label": label, "finetuned": True, "steps": 10, "finetune": {"batches": batches, "batch": 16,
                                                                                       "lr": 1e-5, "steps": 10},
                         "scores": _scores(denoiser(snn, 10), test, sigmas, s.seed, s.crop)})
    result["snn"] = rows
    result["contrast"] = _contrast(ctx, ann, test)
    return result


def _contrast(ctx: Context, shipped: Any, test: Any) -> dict[str, Any]:
    """The contrast fault: the experiments' blind U-Net (the former demo recipe, 800 batches) against the
    shipped one, on held-out photos: noisy -> PSNR at sigma 15, and the clean photo itself as input
    (told sigma 15): a denoiser that removes real texture as noise scores low on its own clean input."""
    s = ctx.settings
    blind = ctx.ann("gray")[0].eval()
    out: dict[str, Any] = {}
    for name, model in (("blind", blind), ("shipped", shipped)):
        predict = denoiser(model, 1)
        noisy = evaluate_denoise(predict, test, 15.0, s.seed, s.crop)
        clean_in = evaluate_denoise(lambda x, sigma, p=predict: p(x, 15.0), test, 0.0, s.seed, s.crop)
        out[name] = {"sigma15": {im["image"]: {"psnr": im["psnr"], "noisy_psnr": im["noisy_psnr"]}
                                 for im in noisy["images"]},
                     "clean_input": {im["image"]: im["psnr"] for im in clean_in["images"]}}
    return out


def _segment(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    train, test = ctx.data("segment")
    steps = SEGMENT_STEPS if not s.quick else (2, 4, 8)
    tune_range = FINETUNE_RANGE if not s.quick else (2, 4)
    predict_otsu, threshold = otsu_segmenter(train)
    result: dict[str, Any] = {"train": list(train.names), "test": list(test.names), "steps": list(steps),
                              "otsu": {**evaluate_segment(predict_otsu, test, 2), "threshold": threshold * 255}}
    ann, record = ctx.ann("segment")
    result["ann"] = evaluate_segment(predictor(ann, 1), test, 2)
    result["ann_training"] = {k: record[k] for k in ("seconds", "final_loss")}
    calibration = ctx.calibration("segment")
    settings = ConversionSettings("connection", 99.9, MT4)
    converted, _ = convert(ann, calibration, settings)
    result["converted"] = _sweep(converted, test, steps)
    batches = 300 if not s.quick else 2
    for key, schedule in (("finetuned_single", tune_range[:1]), ("finetuned_range", tune_range)):
        snn, _ = convert(ann, calibration, settings)
        rng, gen = seeded(s.seed + 1)
        sampler = Sampler("segment", train, s.ft_patch, s.ft_batch, rng, gen)
        log(f"real data: fine-tune the nuclei SNN at T={','.join(map(str, schedule))} ({batches} batches)")
        snn.train()
        with torch.enable_grad():
            history = finetune_spiking_flow(snn, sampler, schedule, batches, s.ft_lr, progress=False)
        snn.eval()
        result[key] = {"finetune": {"steps": list(schedule), "batches": batches, "batch": s.ft_batch,
                                    "patch": s.ft_patch, "lr": s.ft_lr, "loss_last20": float(np.mean(history[-20:]))},
                       "scores": _sweep(snn, test, steps)}
    return result


def _sweep(snn: SpikingNetwork, test: Any, steps: Sequence[int]) -> dict[str, Any]:
    return {str(t): scores for t, scores in evaluate_segment_sweep(snn, test, steps).items()}


def run(ctx: Context) -> dict[str, Any]:
    return {"denoise": _denoise(ctx), "segment": _segment(ctx)}
