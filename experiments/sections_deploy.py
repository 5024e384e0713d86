"""RESULTS.md sections of the deployment-side experiments (energy, quantized, figures, speed), the
headline summary and what was not done."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import plots
from .markdown import Lines, _by_sigma, _cmd, _table, f2, f3, ratio, sci, signed


def _energy_table(r: dict[str, Any]) -> Lines:
    p, q, fl, lo = r["paper_method"], r["paper_method_synops"], r["float_snn_paper_method"], r["loihi2"]
    ps = r["psnr"]
    rows = [["U-Net (ANN), MACs x 4.6 pJ", f2(ps["ann"]), sci(p["ann_macs"]), sci(p["ann_energy_j"]), "1"],
            ["Spiking-UNet, paper eq. 13 (raw spikes x 0.9 pJ + input-layer MACs x 4.6 pJ), exported net",
             f2(ps["snn_quantized"]), sci(p["snn_flops"]), sci(p["snn_energy_j"]), ratio(p["ann_over_snn"])],
            ["same, float PyTorch SNN's spikes", f2(ps["snn_float"]), sci(fl["spikes"] + fl["input_layer_macs"]),
             sci(fl["snn_energy_j"]), ratio(fl["ann_over_snn"])],
            ["same formula with synaptic ops (spikes x fan-out) instead of spikes", f2(ps["snn_quantized"]),
             sci(q["snn_synops"]), sci(q["snn_energy_j"]), ratio(q["ann_over_snn"])],
            [f"Loihi 2 profile, compartments lowering ({lo['cores']} cores, {lo['chips']} chip{'s' if lo['chips'] != 1 else ''})", f2(ps["snn_quantized"]), "-",
             sci(lo["energy_j"]), ratio(lo["ann_over_snn"])]]
    graded = (lo.get("lowerings") or {}).get("graded")
    if graded and graded.get("energy_profile_j"):
        rows.append([f"Loihi 2 profile, graded-spike lowering ({graded['cores']} cores, {graded['chips']} "
                     f"chip{'s' if graded['chips'] != 1 else ''})", f2(ps["snn_quantized"]), "-",
                     sci(graded["energy_profile_j"]), ratio(p["ann_energy_j"] / graded["energy_profile_j"])])
    return _table(["model / method", "PSNR (dB)", "FLOPs / ops", "energy (J)", "energy vs U-Net"], rows)


def energy(rec: dict[str, Any], figures: Path, results: dict[str, Any]) -> Lines:
    r = rec["results"]
    pt = r["paper_table5"]
    b = r["loihi2"]["breakdown_j"] or {}
    parts = ", ".join(f"{k} {sci(v)} J" for k, v in b.items())
    return ["## Energy (Table 5): the paper's method and the Loihi 2 profile", "", *_cmd(rec),
            f"The SNN fine-tuned at T={r['steps']} (gray, connection-wise MT), exported to Loihi fixed point for a "
            f"{r['side']}x{r['side']} input, on the central {r['side']}x{r['side']} of {r['image']} with noise sigma "
            f"{r['sigma']:g} (noisy input {f2(r['psnr']['noisy'])} dB); spikes recorded by the integer reference "
            "simulator and costed by `toolchain.verbs.hardware_report.profile_report` (Loihi 2 profile; the paper's method with "
            "the Horowitz 45 nm figures). The PyTorch row recounts the paper's figure from the float SNN's spikes.", "",
            *_energy_table(r), "",
            f"The SNN emits {sci(r['paper_method']['snn_spikes'])} spikes in T={r['steps']} steps, but each reaches "
            f"{r['paper_method_synops']['snn_synops'] / max(r['paper_method']['snn_spikes'], 1):.0f} synapses on average: "
            f"{sci(r['paper_method_synops']['snn_synops'])} synaptic operations, "
            f"{r['paper_method_synops']['snn_synops'] / r['paper_method']['ann_macs']:.2f}x the U-Net's "
            f"{sci(r['paper_method']['ann_macs'])} MACs.", "",
            f"Loihi 2 energy breakdown (compartments lowering): {parts}. The U-Net's row is the paper's 45 nm fp32 "
            "MAC figure, not a measured CPU or GPU. The Loihi 2 rows of this table were computed by the experiment "
            f"run of commit {rec.get('git_commit')}, with the profile of that time (Loihi 1 per-operation figures, "
            "8192 compartments per core, 0.1 W static power per chip); the profile calibrated on Intel's measured "
            "runs and its figures for the same demo network are in the Loihi 2 section below.", "",
            f"Paper (CamSeq01, full-size U-Net at 256x256): U-Net {sci(pt['unet_flops'])} FLOPs, {sci(pt['unet_energy_j'])} J; "
            f"Spiking-UNet {sci(pt['snn_flops'])} FLOPs, {sci(pt['snn_energy_j'])} J (431x less). The paper's method "
            "counts a spike as one addition whatever its fan-out; counting each spike's synaptic operations (what a "
            "chip does) shrinks the advantage to the 'synaptic ops' row.", ""]


def quantized(rec: dict[str, Any], figures: Path, results: dict[str, Any]) -> Lines:
    r = rec["results"]
    rows = []
    for task, q in r["rows"].items():
        m = q["mean"]
        rows.append([task, q["steps"], f2(m["float"]), f2(m["float_leveled_input"]), f2(m["quantized"]),
                     f"{q['loss_db']:+.3f}", f"{q['loss_input_db']:+.3f}", f"{q['loss_network_db']:+.3f}"])
    return ["## Quantized (exported, reference simulator) vs float SNN", "", *_cmd(rec),
            f"`toolchain.verbs.fidelity.quantization_psnr` on the fine-tuned SNNs, sigma {r['sigma']:g}, central "
            f"{r['crop']}x{r['crop']} crops: the float SNN, the float SNN fed the integer input levels, and the exported "
            "integer network on the reference simulator.", "",
            *_table(["task", "T", "float", "float, integer input", "quantized", "loss (dB)", "of which input",
                     "of which network"], rows), ""]


def figures_section(rec: dict[str, Any], figures: Path, results: dict[str, Any]) -> Lines:
    r = rec["results"]
    f3d, fr, grid = r["fig3"], r["firing_rates"], r["grid"]
    plots.fig3(f3d, figures / "fig3_activation_vs_rate.png")
    plots.firing_rates(fr, figures / "firing_rates.png")
    rows = []
    for layer in f3d["layers"]:
        lw, cw = f3d["norms"]["layer"][layer], f3d["norms"]["connection"][layer]
        rows.append([layer, f3(lw["fit"]["r2"]), f3(cw["fit"]["r2"]), f3(lw["fit"]["slope"]), f3(cw["fit"]["slope"])])
    lam_rows = [[c["consumer"], ", ".join(f"{k} {v:.2f}" for k, v in c["parts"].items()), f"{c['lambda_concat']:.2f}",
                 f3(c["lambda_consumer"])] for c in f3d.get("concats", [])]
    grid_rows = [[g["task"], g["image"], g["steps"], f2(g["psnr_noisy"]), f2(g["psnr_ann"]), f2(g["psnr_snn"])]
                 for g in grid["rows"]]
    return ["## Figures: activation vs spike rate (Fig. 3), firing rates, denoised images", "", *_cmd(rec),
            f"**Fig. 3.** For each conv layer that reads a skip concat (our depth-2 U-Net has two), the U-Net's "
            f"activation against the converted SNN's rate (flow_out / T, T={f3d['steps']}) per neuron, on "
            f"{', '.join(f3d['images'])} (sigma 25); 1500 random neurons per layer are drawn, R^2 and slope of a "
            "linear fit use all of them.", "",
            *_table(["layer", "R^2 layer-wise", "R^2 connection-wise", "slope layer-wise", "slope connection-wise"], rows),
            "", "The parts' scales (lambda = 99.9th percentile of the ReLU output on the calibration batch):", "",
            *_table(["layer after concat", "lambda of each part", "lambda of the concatenation (layer-wise)",
                     "lambda of the layer"], lam_rows),
            "", "![fig3](figures/fig3_activation_vs_rate.png)", "",
            _fig3_note(f3d, rows), "",
            f"**Firing rate per layer** (spikes per neuron per step, T={fr['steps']}, {fr['image']}):", "",
            "![firing rates](figures/firing_rates.png)", "",
            f"**Denoised images** (central {grid['crop']}x{grid['crop']}, sigma {grid['sigma']:g}):", "",
            *_table(["task", "image", "T", "noisy (dB)", "U-Net (dB)", "Spiking-UNet (dB)"], grid_rows), "",
            "![denoised](figures/denoise_grid.png)", ""]


def _fig3_note(f3d: dict[str, Any], rows: list[list[Any]]) -> str:
    if not rows:
        return ""
    better = all(f3d["norms"]["connection"][l]["fit"]["r2"] >= f3d["norms"]["layer"][l]["fit"]["r2"] for l in f3d["layers"])
    ratios = [max(c["parts"].values()) / max(min(c["parts"].values()), 1e-12) for c in f3d.get("concats", [])]
    spread = f"the parts' scales differ by a factor of {min(ratios):.1f} to {max(ratios):.1f}" if ratios else ""
    return ("Measured: " + "; ".join(f"{row[0]} R^2 {row[1]} (layer-wise) -> {row[2]} (connection-wise)" for row in rows)
            + f". Connection-wise is {'more' if better else 'not always more'} linear here; {spread}. Paper: "
            "layer-wise normalization breaks the linear relation after the skip concats and connection-wise restores it.")


def summary(results: dict[str, Any]) -> Lines:
    """The headline numbers, each from an experiment's JSON (skipped when that experiment has not run)."""
    out: Lines = []
    r = results.get("tables12", {}).get("results")
    if r:
        g = r["denoise"]["gray"]
        t = r["denoise"]["gray"]["finetuned"]
        first = next(iter(t))
        out.append(f"* Gray denoising, sigma 25, T={first}: U-Net {f2(_by_sigma(g['ann'], 'psnr')[25.0])} dB, "
                   f"Spiking-UNet converted {f2(_by_sigma(g['converted'][first], 'psnr')[25.0])} dB, fine-tuned "
                   f"{f2(_by_sigma(t[first], 'psnr')[25.0])} dB (paper, BSD68: U-Net 28.61, fine-tuned 28.72 dB).")
    r = results.get("time_steps", {}).get("results")
    if r:
        m = r["match"]
        n = m["converted_steps_needed"]
        out.append(f"* Converted-only needs {'more than ' + str(r['t_max']) if n is None else n} steps to match the SNN "
                   f"fine-tuned at T={m['finetuned_steps']} (gray, sigma 25; paper: fine-tuning saves about 90 % of the steps).")
    r = results.get("ablation", {}).get("results")
    if r:
        get = {(x["norm"], x["neuron"], x["finetuned"], x["steps"]): x["psnr"] for x in r["rows"]}
        t = r["steps"]
        out.append(f"* Ablation at T={t}: connection- vs layer-wise {signed(get[('connection', 'MT', True, t)] - get[('layer', 'MT', True, t)])} dB "
                   f"after fine-tuning, {signed(get[('connection', 'MT', False, r['long_steps'])] - get[('layer', 'MT', False, r['long_steps'])])} dB "
                   f"converted at T={r['long_steps']}; MT vs IF {signed(get[('connection', 'MT', True, t)] - get[('connection', 'IF', True, t)])} dB "
                   "(the paper finds connection-wise and MT both clearly better).")
    r = results.get("energy", {}).get("results")
    if r:
        out.append(f"* Energy ({r['side']}x{r['side']} input, T={r['steps']}): the SNN needs "
                   f"{ratio(r['paper_method']['ann_over_snn'])} energy than the U-Net by the paper's method (paper: 431x less), "
                   f"{ratio(r['paper_method_synops']['ann_over_snn'])} counting synaptic ops, "
                   f"{ratio(r['loihi2']['ann_over_snn'])} on the Loihi 2 profile.")
    r = results.get("quantized", {}).get("results")
    if r:
        out.append("* Loihi fixed point costs " + ", ".join(f"{q['loss_db']:+.3f} dB ({k})" for k, q in r["rows"].items())
                   + " against the float SNN.")
    r = results.get("speed", {}).get("results")
    if r:
        rows = [x for x in r["rows"] if x.get("fused", True)]
        met = sum(x["ratio"] <= r["goal_ratio"] for x in rows)
        verdict = "met" if met == len(rows) else f"met in {met} of {len(rows)} settings" if met else "not met"
        out.append("* PyTorch SNN time / (T x ANN time): "
                   + ", ".join(f"{x['ratio']:.2f} at T={x['steps']} ({_threads(x.get('torch_threads', r['torch_threads']))})"
                               for x in rows)
                   + f" (goal <= {r['goal_ratio']}: {verdict}).")
    return ["## Headline numbers", "", *out, ""] if out else []


def speed(rec: dict[str, Any], figures: Path, results: dict[str, Any]) -> Lines:
    r = rec["results"]
    def goal(x: dict[str, Any]) -> str:
        if not x.get("fused", True):
            return "(for comparison)"
        return "yes" if x["ratio"] <= r["goal_ratio"] else "**no**"

    rows = [[x["steps"], x.get("torch_threads", r["torch_threads"]),
             "fused kernel" if x.get("fused", True) else "`mt_step` op by op", f"{x['ann_forward_s'] * 1000:.0f} ms",
             f"{x['snn_simulate_s']:.2f} s", f"{x['ratio']:.2f}", _opt(x.get("best_ratio")), goal(x)] for x in r["rows"]]
    ex = [[f"{e['side']}x{e['side']}", f"{e['trace_quantize_s']:.2f} s", f"{e['export_s']:.2f} s",
           f"{e['file_bytes'] / 1024:.0f} KiB"] for e in r["exports"]]
    top = ", ".join(f"{o['op']} {100 * o['share']:.0f} %" for o in r["profile"]["top_ops"])
    return ["## Speed: PyTorch SNN vs ANN, export", "", *_cmd(rec),
            f"Input {r['input_shape']}; the ANN forward and the SNN simulation are timed interleaved in one run "
            f"(medians of {rec['settings']['speed_reps']}), load average "
            f"{', '.join(f'{x:.1f}' for x in r['load_average'])} on 2 cores.", "",
            *_table(["T", "torch threads", "MT neuron", "ANN forward", "SNN simulate", "SNN / (T x ANN)",
                     "fastest / fastest", f"<= {r['goal_ratio']}?"], rows), "",
            "The ratio is the median over repetitions of (SNN simulation) / (T ANN forwards), each pair timed back "
            "to back; 'fastest / fastest' divides the fastest SNN run by T times the fastest ANN forward, the "
            "figure least disturbed by other work on a shared machine (both vary by 10-30 % run to run here).", "",
            f"Where the SNN's time goes (torch profiler, one T={r['rows'][0]['steps']} run, "
            f"{r['torch_threads']} thread): convolutions {100 * r['profile']['convolution_share']:.0f} %, the MT "
            f"kernel {100 * r['profile'].get('mt_kernel_share', 0.0):.0f} %; top ops: {top}. "
            "`mt_step_fused` is the MT neuron: one cache-blocked numba kernel per layer and step "
            "(`toolchain/neuron/fused.py`, bit-identical to `mt_step` + `mt_output`, checked by "
            "`tests/neuron/test_fused_kernel.py`) instead of ~5 tensor passes per threshold; a simulation also evaluates "
            "the first convolution once and lets each neuron layer rewrite one output tensor "
            "(`SpikingNetwork.run`). The kernel runs on one thread, so with more torch threads only "
            "the convolutions get faster and the ratio grows.", "",
            *_table(["export input", "trace + quantize", "+ write .net", "file size"], ex), ""]


def _threads(count: int) -> str:
    return f"{count} torch thread{'s' if count != 1 else ''}"


def _opt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def not_done(results: dict[str, dict[str, Any]]) -> Lines:
    s = next(iter(results.values()))["settings"] if results else {}
    return ["## What was not done", "",
            "* The paper's datasets and full-size networks (see the first table); no number here is comparable "
            "with the paper's in absolute terms.",
            "* Multi-class segmentation (CamSeq01 mIoU): the ablation and threshold studies use gray denoising PSNR "
            "instead; binary segmentation is one nuclei image.",
            "* Fig. 3 covers the two layers after concats that a depth-2 U-Net has (the paper: four).",
            "* The paper's ML and RS neurons exactly: ours are simple versions in the same spirit "
            "(`experiments/variants.py` says what they are).",
            "* A direct-training (BPTT) budget comparable to the paper's 100 epochs: BPTT costs several times a "
            "spiking-flow step per batch on 2 CPU cores, so every DT row here had "
            f"{s.get('dt_batches')} batches.",
            f"* The converted-only rows at T=1000 (T={s.get('very_long_t')} here) and the paper's 100-epoch "
            f"fine-tuning at lr 1e-6 (T x batches = {s.get('ft_step_budget')} at lr {s.get('ft_lr')} here).",
            "* Loihi 2: time and energy are calibrated on one measured network (PilotNet LIF) and not validated on a "
            "second one (no other compute-bound Loihi 2 run with timing and power is public); the paper-size U-Net "
            "is costed with random (converted, untrained) weights; traffic between chips is not modelled.", ""]


def foreign_unet(rec: dict[str, Any], figures: Path, results: dict[str, Any]) -> Lines:
    r = rec["results"]
    rows = []
    for row in r["rows"]:
        size = row["size"]
        rows.append([f"{row['pool']}pool", f"{row.get('percentile', 99.9):g}", f2(row["ann_psnr"]), f2(row["rewritten_ann_psnr"]),
                     f2(row["converted_psnr"]), f2(row["finetuned_psnr"]), ", ".join(row["rewrites"]),
                     f"{size['pair_extra'] / max(1, size['neurons'] - size['pair_extra']):+.0%}"])
    t = r["steps"]
    return ["## Bring your own U-Net: milesial's U-Net through the toolchain", "", *_cmd(rec),
            f"`{r['model']}` (BatchNorm, MaxPool or AvgPool, ConvTranspose k2 up, `F.pad`) trained as a denoiser on "
            f"the gray training photos, converted with `toolchain.frontend.capture.from_model` (torch.export), "
            f"fine-tuned with the spiking flow at T={t}. PSNR (dB) at sigma {r['sigma']:g} on "
            f"{', '.join(r['test_images'])} (central {r['crop']}x{r['crop']}). *rewritten ANN*: the captured graph "
            "run as a ReLU network, i.e. with MaxPool replaced by AvgPool (`--maxpool avg`): the rewrite's cost "
            "before any spikes. *pair neurons*: the neurons the exact signed pairs add (`--linear pair`, for the "
            f"ConvTranspose without activation before each concat), at {r['side']}x{r['side']}.", "",
            *_table(["trained with", "percentile", "ANN", "rewritten ANN", f"SNN T={t}, converted", f"SNN T={t}, fine-tuned",
                     "rewrites", "pair neurons"], rows), ""]

