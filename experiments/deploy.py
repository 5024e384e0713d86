"""The deployment side: energy (paper Table 5, and the Loihi 2 profile), quantized vs float PSNR, and
the PyTorch SNN's speed against the ANN's.

* ``energy``: the fine-tuned gray SNN exported in memory (``toolchain.lowering.lower.export_network``,
  Loihi fixed point), run on a 64x64 noisy crop by the reference simulator with every spike recorded,
  and costed by ``toolchain.verbs.hardware_report.profile_report``: the paper's method (eq. 13: raw spikes x 0.9 pJ
  + input-layer MACs x 4.6 pJ vs ANN MACs x 4.6 pJ), its synaptic-op variant, and the Loihi 2 profile.
  The float PyTorch SNN's own spike count gives the paper's figure a second time, independently.
* ``quantized``: ``toolchain.verbs.fidelity.quantization_psnr`` (float SNN vs exported integer network).
* ``speed``: PyTorch SNN inference time vs T x the ANN's forward time (``experiments.speed``, interleaved in
  one run): T = 10 and 20 with the fused MT kernel, T = 10 op by op (``mt_step``), and on every core.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolchain.tasks import metrics
from toolchain.verbs.hardware_report import profile_report
from toolchain.lowering.lower import export_network
from toolchain.verbs.fidelity import quantization_psnr
from toolchain.lowering.quantize import QuantSettings
from toolchain.simulators.reference import ReferenceSimulator
from experiments.speed import time_snn_vs_ann

from .common import Context, log, noisy_inputs

E_AC_PJ, E_MAC_PJ = 0.9, 4.6        # Horowitz 2014, as the paper uses them


def conv_macs(model: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    """MACs per layer in the paper's (thop) convention, as the hardware report counts them: output
    elements x (C_in x k^2 + 1) for convolutions (transposed ones too), x (k^2 + 1) for average pooling."""
    from toolchain.frontend.unet import ScaledAvgPool2d

    macs: dict[str, float] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, ScaledAvgPool2d)):
            def hook(m: Any, _inputs: Any, out: torch.Tensor, name: str = name) -> None:
                if isinstance(m, ScaledAvgPool2d):
                    macs[name] = float(out[0].numel() * (m.kernel ** 2 + 1))
                else:
                    k2 = m.kernel_size[0] * m.kernel_size[1]
                    macs[name] = float(out[0].numel() * (m.in_channels * k2 + (m.bias is not None)))
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return macs


def run_energy(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    _, test = ctx.data("gray")
    side, t = s.energy_side, s.short_t
    name, clean, noisy = noisy_inputs(test, s.sigma, s.seed, side)[0]
    ann, _ = ctx.ann("gray")
    snn, info = ctx.snn("gray", finetune_steps=t)
    log(f"energy: export the fine-tuned SNN for {side}x{side}, reference simulator T={t}, Loihi 2 profile")
    network, _ = export_network(snn, info["spiking"], (side, side), QuantSettings(steps=t), "compartments")
    batch = noisy.numpy().astype(np.float64)
    report = profile_report(network, batch, t, ctx.out / "energy_report")
    e, tot = report["energy"], report["totals"]

    # the paper's method once more, from the float PyTorch SNN's own spikes (all MT layers, pooling included)
    sim = snn.simulate(noisy, t)
    float_spikes = sum(st.spikes for st in sim.stats)
    macs = conv_macs(ann.core, noisy)
    first = next(iter(macs))
    float_paper_j = (float_spikes * E_AC_PJ + macs[first] * E_MAC_PJ) * 1e-12
    ann_j = sum(macs.values()) * E_MAC_PJ * 1e-12
    ref_out = ReferenceSimulator(network).run(batch, t).output
    psnr = {"noisy": metrics.psnr(clean[0].numpy(), noisy[0].clamp(0, 1).numpy()),
            "ann": metrics.psnr(clean[0].numpy(), (noisy - ann(noisy)).clamp(0, 1)[0].detach().numpy()),
            "snn_float": metrics.psnr(clean[0].numpy(), (noisy - sim.output).clamp(0, 1)[0].numpy()),
            "snn_quantized": metrics.psnr(clean[0].numpy(), np.clip(batch[0] - ref_out[0, :, :side, :side], 0, 1))}
    return {
        "image": name, "side": side, "sigma": s.sigma, "steps": t, "psnr": psnr,
        "paper_method": {"snn_flops": e["paper"]["flops"], "snn_spikes": e["paper"]["spikes"],
                         "input_layer_macs": e["paper"]["input_macs"], "snn_energy_j": e["paper"]["energy_j"],
                         "snn_energy_excluding_pool_j": e["paper"]["energy_excluding_pool_j"],
                         "ann_macs": e["ann"]["macs"], "ann_energy_j": e["ann"]["energy_j"],
                         "ann_over_snn": e["ratios"]["ann_over_paper"]},
        "paper_method_synops": {"snn_synops": e["paper_synops"]["synops"], "snn_energy_j": e["paper_synops"]["energy_j"],
                                "ann_over_snn": e["ratios"]["ann_over_paper_synops"]},
        "float_snn_paper_method": {"spikes": float_spikes, "input_layer_macs": macs[first],
                                   "snn_energy_j": float_paper_j, "ann_macs": sum(macs.values()),
                                   "ann_energy_j": ann_j, "ann_over_snn": ann_j / float_paper_j},
        "loihi2": {"energy_j": e["profile"]["energy_j"] if e.get("profile") else None,
                   "breakdown_j": e["profile"]["breakdown_j"] if e.get("profile") else None,
                   "ann_over_snn": e["ratios"].get("ann_over_profile"), "cores": tot.get("cores"),
                   "chips": tot.get("chips"), "synops": tot.get("synops"), "spikes": tot.get("spikes"),
                   "lowerings": report["lowerings"], "latency_steps": report["network"]["latency_steps"]},
        "paper_table5": {"unet_flops": 6.55e10, "unet_energy_j": 3.01e-1, "snn_flops": 2.92e8, "snn_energy_j": 6.98e-4,
                         "dataset": "CamSeq01 (960x720 resized to 256x256), paper's full-size U-Net"},
        "report_dir": str((ctx.out / "energy_report").relative_to(ctx.out)),
    }


def run_quantized(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    rows = {}
    for task, t in (("gray", s.short_t), ("color", s.long_t)):
        _, test = ctx.data(task)
        snn, info = ctx.snn(task, finetune_steps=t)
        log(f"quantized: {task} SNN fine-tuned at T={t}: float vs exported (reference simulator)")
        rows[task] = quantization_psnr(snn, info["spiking"], test, t, s.sigma, s.sweep_crop, s.seed)
    return {"sigma": s.sigma, "crop": s.sweep_crop, "rows": rows}


def run_speed(ctx: Context) -> dict[str, Any]:
    from netx_export import write_network

    s = ctx.settings
    _, test = ctx.data("gray")
    ann, _ = ctx.ann("gray")
    snn, info = ctx.snn("gray", finetune_steps=s.short_t)
    x = noisy_inputs(test, s.sigma, s.seed, s.crop)[0][2]
    log(f"speed: ANN forward vs SNN simulate on {tuple(x.shape)}, {s.speed_reps} interleaved repetitions")
    threads = torch.get_num_threads()
    settings = [(s.short_t, threads, True), (s.long_t, threads, True), (s.short_t, threads, False)]
    if (os.cpu_count() or 1) > threads:
        settings.append((s.short_t, os.cpu_count() or 1, True))
    rows = [row.to_dict() for row in time_snn_vs_ann(ann, snn, x, settings, s.speed_reps)]
    from torch.profiler import profile
    with profile() as prof:
        snn.simulate(x, s.short_t)
    ops = sorted(((ev.key, ev.self_cpu_time_total) for ev in prof.key_averages()), key=lambda kv: -kv[1])
    total = sum(v for _, v in ops) or 1.0
    conv = sum(v for k, v in ops if "conv" in k or "mkldnn" in k)
    exports = []
    for side in (s.energy_side, s.crop):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            network, _ = export_network(snn, info["spiking"], (side, side), QuantSettings(steps=s.short_t))
            quantize_s = time.perf_counter() - start
            write_network(network, Path(tmp) / "model.net")
            exports.append({"side": side, "export_s": time.perf_counter() - start, "trace_quantize_s": quantize_s,
                            "file_bytes": (Path(tmp) / "model.net").stat().st_size})
    return {"input_shape": list(x.shape), "rows": rows, "goal_ratio": 1.3,
            "profile": {"convolution_share": conv / total,
                        "mt_kernel_share": sum(v for k, v in ops if k == "mt_step_fused") / total,
                        "top_ops": [{"op": k, "share": v / total} for k, v in ops[:6]]},
            "exports": exports, "load_average": list(os.getloadavg()), "torch_threads": torch.get_num_threads()}
