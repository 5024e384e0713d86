"""Data for the figures that need a simulation of their own (the rest are drawn from other experiments'
JSON by :mod:`experiments.plots`):

* paper Fig. 3: for each conv layer right after a skip concat, ANN activation vs SNN rate
  (flow_out / T from ``SpikingNetwork.run(x, T, record_flow=True)``), layer-wise vs connection-wise,
  with the R^2 of a linear fit;
* firing rate per layer (spikes per neuron per step) of the converted (LW, CW) and fine-tuned SNNs;
* an image grid: noisy / U-Net / Spiking-UNet / clean, gray and color.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from toolchain.tasks import metrics

from .common import Context, log, noisy_inputs
from .plots import image_grid

FIG3_STEPS = 100
POINTS = 1500


def _after_concat(depth: int) -> list[str]:
    """Module names of the activations of the convs that read a skip concat (decoder block's first conv)."""
    return [f"ups.{i}.convs.act1" for i in range(depth)]


def _layer_of(activation: str) -> str:
    """The layer (named after its synapse) whose neurons an activation module of the U-Net is."""
    return activation.replace(".act1", ".conv1")


def linear_fit(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Least-squares y = a x + b and its R^2."""
    if x.size < 2 or float(np.var(x)) == 0.0:
        return {"slope": 0.0, "intercept": float(y.mean()) if y.size else 0.0, "r2": 0.0}
    a, b = np.polyfit(x, y, 1)
    ss_res = float(np.sum((y - (a * x + b)) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {"slope": float(a), "intercept": float(b), "r2": 1.0 - ss_res / ss_tot if ss_tot else 0.0}


@torch.no_grad()
def activation_vs_rate(ctx: Context, steps: int) -> dict[str, Any]:
    s = ctx.settings
    _, test = ctx.data("gray")
    x = torch.cat([noisy for _, _, noisy in noisy_inputs(test, s.sigma, s.seed, s.sweep_crop)])
    ann, _ = ctx.ann("gray")
    names = _after_concat(ann.config.depth)
    modules = dict(ann.core.named_modules())
    captured: dict[str, torch.Tensor] = {}
    hooks = [modules[n].register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(n, out)) for n in names]
    try:
        ann(x)
    finally:
        for h in hooks:
            h.remove()
    rng = np.random.default_rng(s.seed)
    result: dict[str, Any] = {"steps": steps, "layers": names, "images": list(test.names), "norms": {}}
    for norm in ("layer", "connection"):
        snn, info = ctx.snn("gray", norm)
        log(f"figures: activation vs spike rate, {norm}-wise, T={steps}")
        states = snn.run(x, steps, record_flow=True).states
        per_layer = {}
        for n in names:
            act = captured[n].reshape(-1).numpy()
            rate = (states[_layer_of(n)].flow_out / steps).reshape(-1).numpy()
            pick = rng.choice(act.size, size=min(POINTS, act.size), replace=False)
            per_layer[n] = {"fit": linear_fit(act, rate), "ann": np.round(act[pick], 4).tolist(),
                            "rate": np.round(rate[pick], 4).tolist()}
        result["norms"][norm] = per_layer
    result["concats"] = concat_scales(ann, info["spiking"]["lambdas"], tuple(x.shape[1:]))
    return result


def concat_scales(ann: Any, lambdas: dict[str, float], shape: tuple[int, ...]) -> list[dict[str, Any]]:
    """Per skip concat: the lambda (99.9th percentile) of each part, of the concatenation, of the layer after it."""
    from toolchain.frontend.trace import trace_network
    from toolchain.ir import Concat

    network = trace_network(ann.core, shape)
    rows = []
    for layer in network:
        if isinstance(layer, Concat):
            consumer = next(l for l in network if l.inputs and l.inputs[0] == layer.name)
            rows.append({"concat": layer.name, "parts": {p: lambdas[p] for p in layer.inputs},
                         "lambda_concat": lambdas[layer.name], "consumer": consumer.name,
                         "lambda_consumer": lambdas.get(consumer.name)})
    return rows


@torch.no_grad()
def firing_rates(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    _, test = ctx.data("gray")
    x = noisy_inputs(test, s.sigma, s.seed, s.sweep_crop)[0][2]
    t = s.short_t
    models = {"converted, layer-wise": ctx.snn("gray", "layer")[0],
              "converted, connection-wise": ctx.snn("gray", "connection")[0],
              f"fine-tuned (T={t}), connection-wise": ctx.snn("gray", finetune_steps=t)[0]}
    rows = {}
    for label, snn in models.items():
        stats = snn.simulate(x, t).stats
        rows[label] = {st.layer: {"rate": st.rate, "spikes": st.spikes, "per_threshold": st.counts} for st in stats}
    return {"steps": t, "image": test.names[0], "crop": s.sweep_crop, "models": rows}


@torch.no_grad()
def grid(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    panels, rows = [], []
    for task, t in (("gray", s.short_t), ("color", s.long_t)):
        _, test = ctx.data(task)
        name, clean, noisy = noisy_inputs(test, s.sigma, s.seed, s.sweep_crop)[0]
        ann, _ = ctx.ann(task)
        snn, _ = ctx.snn(task, finetune_steps=t)
        restored_ann = (noisy - ann(noisy)).clamp(0, 1)
        restored_snn = (noisy - snn.simulate(noisy, t).output).clamp(0, 1)
        c = clean[0].numpy()
        images = [noisy[0].clamp(0, 1).numpy(), restored_ann[0].numpy(), restored_snn[0].numpy(), c]
        psnrs = [metrics.psnr(c, im) for im in images[:3]]
        titles = [f"noisy (sigma {s.sigma:g})\n{psnrs[0]:.2f} dB", f"U-Net\n{psnrs[1]:.2f} dB",
                  f"Spiking-UNet (FT, T={t})\n{psnrs[2]:.2f} dB", f"clean\n({name})"]
        panels.append(list(zip(images, titles)))
        rows.append({"task": task, "image": name, "steps": t, "psnr_noisy": psnrs[0], "psnr_ann": psnrs[1],
                     "psnr_snn": psnrs[2]})
    target = ctx.out / "figures" / "denoise_grid.png"
    image_grid(panels, target)
    return {"crop": s.sweep_crop, "sigma": s.sigma, "rows": rows, "png": str(target.relative_to(ctx.out))}


def run(ctx: Context) -> dict[str, Any]:
    steps = FIG3_STEPS if not ctx.settings.quick else 10
    return {"fig3": activation_vs_rate(ctx, steps), "firing_rates": firing_rates(ctx), "grid": grid(ctx)}
