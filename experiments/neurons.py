"""The neuron comparison of paper Tables 1-2 (columns ML / RS / MT, DT and FT), plus the plain IF
neuron, on gray denoising at T=10: each neuron converted from the shared U-Net (connection-wise),
then fine-tuned with the spiking flow (FT); and trained from scratch with surrogate-gradient BPTT
(DT), every neuron with the same budget. See :mod:`experiments.variants` for what ML and RS are here."""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from toolchain.frontend.snn import SpikingNetwork
from toolchain.tasks.sampling import Sampler
from toolchain.frontend.training import bptt_forward, fit, train_ann
from toolchain.frontend.unet import UNet
from toolchain.verbs.source import seeded

from .common import IF1, Context, evaluate_denoise_sweep, log, noisy_inputs
from .variants import NEURONS, NeuronSpec, fold_real_spike_scales, spec_for, variant_snn, with_neurons

DT_NEURONS = NEURONS          # every neuron is also trained directly (BPTT, surrogate gradient), as in the paper


def spike_figures(snn: SpikingNetwork, x: torch.Tensor, steps: int) -> dict[str, float]:
    """Spikes per inference and the mean firing rate (spikes per neuron per step) on one input."""
    stats = snn.simulate(x, steps).stats
    spikes = sum(st.spikes for st in stats)
    neurons = sum(st.neurons for st in stats)
    return {"spikes": float(spikes), "rate": float(spikes / max(1, neurons * steps * x.shape[0])),
            "pixels": int(x[0, 0].numel())}


def _converted(ctx: Context, name: str) -> SpikingNetwork:
    spec = spec_for(name)
    if spec.kind == "mt":
        return ctx.snn("gray", thresholds=spec.thresholds)[0]
    return with_neurons(ctx.convert("gray", thresholds=IF1)[0], spec)


def _finetuned(ctx: Context, name: str, steps: int) -> tuple[SpikingNetwork, dict[str, Any]]:
    spec = spec_for(name)
    if spec.kind == "mt":
        snn, info = ctx.snn("gray", thresholds=spec.thresholds, finetune_steps=steps)
        return snn, info["finetune"]
    snn = with_neurons(ctx.convert("gray", thresholds=IF1)[0], spec)
    return snn, ctx.finetune(snn, "gray", steps)


def _direct(ctx: Context, spec: NeuronSpec) -> tuple[SpikingNetwork, dict[str, Any]]:
    """A fresh (randomly initialised) Spiking-UNet trained by BPTT with the surrogate spike gradient."""
    s = ctx.settings
    ann, _ = ctx.ann("gray")
    torch.manual_seed(s.seed + 7)
    snn = variant_snn(ann.config, spec)
    rng, gen = seeded(s.seed + 2)
    sampler = Sampler("denoise", ctx.data("gray")[0], s.dt_patch, s.dt_batch, rng, gen)
    log(f"direct training (BPTT, surrogate gradient) of {spec.describe()} at T={s.dt_steps}: "
        f"{s.dt_batches} batches of {s.dt_batch} x {s.dt_patch}^2, lr {s.dt_lr:g}")
    start = time.perf_counter()
    snn.train()
    with torch.enable_grad():
        history = fit(lambda x: bptt_forward(snn, x, s.dt_steps), snn.parameters(), sampler, "denoise",
                      s.dt_batches, s.dt_lr, desc="BPTT", progress=False)
    snn.eval()
    seconds = time.perf_counter() - start
    log(f"  {seconds:.0f} s, loss {np.mean(history[:5]):.4f} -> {np.mean(history[-5:]):.4f}")
    return snn, {"steps": s.dt_steps, "batches": s.dt_batches, "batch": s.dt_batch, "patch": s.dt_patch,
                 "lr": s.dt_lr, "loss_first5": float(np.mean(history[:5])),
                 "loss_last5": float(np.mean(history[-5:])), "seconds": seconds}


def _ann_same_budget(ctx: Context) -> tuple[UNet, dict[str, Any]]:
    """The U-Net trained with DT's budget (batches, batch, patch, lr): separates 'spiking' from 'little training'."""
    s = ctx.settings
    ann, _ = ctx.ann("gray")
    torch.manual_seed(s.seed + 7)
    fresh = UNet(ann.config)
    rng, gen = seeded(s.seed + 2)
    start = time.perf_counter()
    history = train_ann(fresh, Sampler("denoise", ctx.data("gray")[0], s.dt_patch, s.dt_batch, rng, gen),
                        s.dt_batches, s.dt_lr, progress=False)
    fresh.eval()
    return fresh, {"batches": s.dt_batches, "loss_last5": float(np.mean(history[-5:])),
                   "seconds": time.perf_counter() - start}


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    steps, crop = s.short_t, s.sweep_crop
    _, test = ctx.data("gray")
    probe = noisy_inputs(test, s.sigma, s.seed, crop)[0][2]

    def evaluate(model: Any, t: int = steps) -> list[dict[str, Any]]:
        return evaluate_denoise_sweep(model, test, s.sigmas, s.seed, crop, (t,))[t]

    ann, _ = ctx.ann("gray")
    result: dict[str, Any] = {"steps": steps, "crop": crop, "sigmas": list(s.sigmas), "test_images": list(test.names),
                              "ann": evaluate(ann, 1), "neurons": {}, "dt_neurons": list(DT_NEURONS)}
    for name in NEURONS:
        spec = spec_for(name)
        log(f"neurons: {spec.describe()}")
        converted = _converted(ctx, name)
        tuned, report = _finetuned(ctx, name, steps)
        row: dict[str, Any] = {"description": spec.describe(), "converted": evaluate(converted),
                               "finetuned": evaluate(tuned), "finetune": report,
                               "spikes_converted": spike_figures(converted, probe, steps),
                               "spikes_finetuned": spike_figures(tuned, probe, steps)}
        if spec.kind == "rs":
            row["rs_scales"] = fold_real_spike_scales(tuned)   # type: ignore[arg-type]
        if name in DT_NEURONS:
            direct, dt_report = _direct(ctx, spec)
            row["direct"], row["direct_training"] = evaluate(direct), dt_report
            row["spikes_direct"] = spike_figures(direct, probe, steps)
        result["neurons"][name] = row
    same, same_report = _ann_same_budget(ctx)
    result["ann_dt_budget"], result["ann_dt_budget_training"] = evaluate(same, 1), same_report
    result["noisy_psnr"] = {str(r["sigma"]): float(np.mean([i["noisy_psnr"] for i in r["images"]]))
                            for r in _noisy_psnr(test, s)}
    return result


def _noisy_psnr(test: Any, s: Any) -> list[dict[str, Any]]:
    """PSNR of the noisy input itself (what 'doing nothing' scores), per sigma."""
    from toolchain.tasks import metrics
    rows = []
    for sigma in s.sigmas:
        images = [{"noisy_psnr": metrics.psnr(c[0].numpy(), noisy[0].clamp(0, 1).numpy())}
                  for _, c, noisy in noisy_inputs(test, sigma, s.seed, s.sweep_crop)]
        rows.append({"sigma": sigma, "images": images})
    return rows

