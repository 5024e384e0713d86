"""One Markdown section per experiment, from its JSON record (see :mod:`experiments.docs`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from . import plots

Lines = list[str]


def f2(x: Any) -> str:
    return "-" if x is None else f"{x:.2f}"


def f3(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def sci(x: Any) -> str:
    return "-" if x is None else f"{x:.3g}"


def signed(x: float) -> str:
    return f"{x:+.2f}"


def _table(header: list[str], rows: list[list[Any]]) -> Lines:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(str(c) for c in row) + " |" for row in rows]]


def _cmd(record: dict[str, Any]) -> Lines:
    return [f"Regenerate: `{record['command']}` ({record['seconds'] / 60:.1f} min in this run).", ""]


def _by_sigma(rows: list[dict[str, Any]], key: str) -> dict[float, float]:
    return {float(r["sigma"]): r.get(key) for r in rows}


def _psnr_ssim(rows: list[dict[str, Any]], sigmas: list[float]) -> list[str]:
    p, s = _by_sigma(rows, "psnr"), _by_sigma(rows, "ssim")
    return [f2(p[x]) for x in sigmas] + [f3(s.get(x)) for x in sigmas]


# ------------------------------------------------------------------------------------------ tables 1-2
def tables12(rec: dict[str, Any], figures: Path, results: dict[str, Any]) -> Lines:
    r, st = rec["results"], rec["settings"]
    sig = [float(x) for x in st["sigmas"]]
    lines = ["## Tables 1-2: U-Net vs Spiking-UNet (denoising and segmentation)", "", *_cmd(rec)]
    paper = {"gray": ("BSD68, T=10", "31.02 / 28.61 / 25.72", "31.08 / 28.72 / 25.86"),
             "color": ("CBSD68, T=20", "33.32 / 30.59 / 27.14", "33.14 / 30.57 / 27.24")}
    for task in ("gray", "color"):
        d = r["denoise"][task]
        head = ["model", "T"] + [f"PSNR s{x:g}" for x in sig] + [f"SSIM s{x:g}" for x in sig]
        rows = [["U-Net (ANN)", "-", *_psnr_ssim(d["ann"], sig)]]
        for t, v in d["converted"].items():
            rows.append(["Spiking-UNet, converted", t, *_psnr_ssim(v, sig)])
        for t, v in d["finetuned"].items():
            rows.append([f"Spiking-UNet, fine-tuned at T={t}", t, *_psnr_ssim(v, sig)])
        name = "gray" if task == "gray" else "color"
        lines += [f"**Denoising, {name}** (test: {', '.join(d['test_images'])}; central {d['crop']}x{d['crop']}; "
                  f"U-Net with {d.get('ann_parameters', 0):,} parameters; connection-wise, MT (2, 1, 0.5, 0.25))", "",
                  *_table(head, rows), ""]
        gaps = []
        for t, v in d["finetuned"].items():
            ann25, snn25 = _by_sigma(d["ann"], "psnr"), _by_sigma(v, "psnr")
            conv = _by_sigma(d["converted"][t], "psnr")
            gaps.append(f"at T={t} the fine-tuned SNN is {signed(snn25[25.0] - ann25[25.0])} dB from the U-Net at "
                        f"sigma 25 (converted only: {signed(conv[25.0] - ann25[25.0])} dB)")
        p = paper[task]
        lines += [f"Measured: {'; '.join(gaps)}. Paper ({p[0]}): U-Net {p[1]} dB, MT fine-tuned {p[2]} dB, i.e. the "
                  "fine-tuned Spiking-UNet matches or slightly beats the U-Net.", ""]
    g = r["segment"]
    head = ["model", "T", "F1", "JS", "ACC"]
    rows = [["U-Net (ANN)", "-", f3(g["ann"]["f1"]), f3(g["ann"]["jaccard"]), f3(g["ann"]["accuracy"])]]
    for key, label in (("converted", "Spiking-UNet, converted"), ("finetuned", f"Spiking-UNet, fine-tuned at T={g['steps']}")):
        rows.append([label, g["steps"], f3(g[key]["f1"]), f3(g[key]["jaccard"]), f3(g[key]["accuracy"])])
    lines += [f"**Binary segmentation** (coins pseudo ground truth, test: {', '.join(g['test_images'])}, "
              f"{g['pixels']:,} pixels)", "", *_table(head, rows), "",
              "Paper (DRIVE, T=10): U-Net F1 0.806 / JS 0.675 / ACC 0.970; MT fine-tuned 0.794 / 0.658 / 0.970. "
              "The coins task is far easier than vessel segmentation (a smoke test), so all three rows are close "
              "to each other by construction.", ""]
    return lines


# ------------------------------------------------------------------------------------------ neurons
def neurons(rec: dict[str, Any], figures: Path, results: dict[str, Any]) -> Lines:
    r = rec["results"]
    sig = [float(x) for x in r["sigmas"]]
    head = ["neuron", "training"] + [f"PSNR s{x:g}" for x in sig] + [f"SSIM s{x:g}" for x in sig] + ["spikes / pixel"]
    rows = [["noisy input", "-", *[f2(r["noisy_psnr"][str(x)]) for x in sig], *["-"] * len(sig), "-"],
            ["U-Net (ANN)", "full budget", *_psnr_ssim(r["ann"], sig), "-"],
            ["U-Net (ANN)", "DT's budget", *_psnr_ssim(r["ann_dt_budget"], sig), "-"]]
    for name, row in r["neurons"].items():
        for key, label in (("converted", "converted"), ("finetuned", "FT"), ("direct", "DT")):
            if key in row:
                sp = row[f"spikes_{key}"]
                rows.append([row["description"], label, *_psnr_ssim(row[key], sig), f2(sp["spikes"] / sp["pixels"])])
    mt, iff = r["neurons"]["MT"], r["neurons"]["IF"]
    best = max(r["neurons"], key=lambda n: _by_sigma(r["neurons"][n]["finetuned"], "psnr")[25.0])
    lines = ["## Neuron models: IF, multi-level (ML), real spike (RS), multi-threshold (MT)", "", *_cmd(rec),
             f"Gray denoising, T={r['steps']} (training and test), central {r['crop']}x{r['crop']} of "
             f"{', '.join(r['test_images'])}. Every neuron starts from the same shared U-Net, converted "
             "connection-wise (FT rows: then fine-tuned with the spiking flow, same budget for all); DT rows are "
             "trained from a random initialisation with surrogate-gradient BPTT. 'spikes / pixel' counts every "
             "spike of every layer in one inference (an ML spike of level k counts k).", "",
             *_table(head, rows), "",
             "What the neurons are (see `experiments/variants.py`): **IF** = one threshold 1.0, reset by subtraction; "
             "**ML** = one membrane emitting floor(V/1.0) spikes per step, at most 4 (uniform levels; same number of "
             "spike lines and about the same top output per step as MT); **RS** = IF with binary spikes whose "
             "downstream weight is a learned real scale per channel (initialised at 1, folds into the next layer's "
             "weights at deployment); **MT** = the toolchain's neuron, thresholds (2, 1, 0.5, 0.25).", "",
             f"Measured: after fine-tuning the best neuron at sigma 25 is **{best}**; MT FT "
             f"{f2(_by_sigma(mt['finetuned'], 'psnr')[25.0])} dB vs IF FT {f2(_by_sigma(iff['finetuned'], 'psnr')[25.0])} dB. "
             "Paper (BSD68, T=10, sigma 25): ML DT/FT 22.71/25.98, RS 23.73/26.13, MT 25.06/28.72 dB.", ""]
    if "rs_scales" in r["neurons"].get("RS", {}):
        s = r["neurons"]["RS"]["rs_scales"]
        lines += [f"RS's learned spike scales after fine-tuning span {f3(s.get('min'))} .. {f3(s.get('max'))} "
                  f"(mean {f3(s.get('mean'))}).", ""]
    dt = [n for n in r["neurons"] if "direct" in r["neurons"][n]]
    if dt:
        lines += [f"Direct training ({', '.join(dt)}) got a tiny budget "
                  f"({r['neurons'][dt[0]]['direct_training']['batches']} batches); the 'DT's budget' U-Net row is an "
                  "ANN trained with exactly that budget, to tell 'spiking' from 'little training'.", ""]
    return lines


# ------------------------------------------------------------------------------------------ ablation
def ablation(rec: dict[str, Any], figures: Path, results: dict[str, Any]) -> Lines:
    r = rec["results"]
    paper = {(p["norm"], p["neuron"], p["finetuned"], p["steps"]): p["miou"] for p in r["paper_table3"]}
    head = ["normalization", "neuron", "fine-tuned", "T", "PSNR", "SSIM", "paper mIoU (T=1000 -> here T=%d)" % r["long_steps"]]
    rows = []
    for row in r["rows"]:
        key = (row["norm"], row["neuron"], row["finetuned"], 1000 if row["steps"] == r["long_steps"] else row["steps"])
        rows.append([f"{row['norm']}-wise", row["neuron"], "yes" if row["finetuned"] else "no", row["steps"],
                     f2(row["psnr"]), f3(row["ssim"]), f3(paper.get(key))])
    get = {(x["norm"], x["neuron"], x["finetuned"], x["steps"]): x["psnr"] for x in r["rows"]}
    t = r["steps"]
    cw_lw_ft = get[("connection", "MT", True, t)] - get[("layer", "MT", True, t)]
    cw_lw_conv = get[("connection", "MT", False, t)] - get[("layer", "MT", False, t)]
    mt_if = get[("connection", "MT", True, t)] - get[("connection", "IF", True, t)]
    ft_gain = get[("connection", "MT", True, t)] - get[("connection", "MT", False, t)]
    verdict = "better" if cw_lw_ft > 0 else "worse"
    return ["## Ablation (Table 3): normalization, MT neuron, fine-tuning", "", *_cmd(rec),
            f"Gray denoising, sigma {r['sigma']:g}, central {r['crop']}x{r['crop']} of {', '.join(r['test_images'])}; "
            f"U-Net: {f2(r['ann']['psnr'])} dB. The converted-only rows at a long window use T={r['long_steps']} "
            "(the paper: 1000) to save time.", "", *_table(head, rows), "",
            f"Measured at T={t}: connection-wise is {signed(cw_lw_ft)} dB vs layer-wise after fine-tuning "
            f"({signed(cw_lw_conv)} dB converted only) — connection-wise is **{verdict}** here; MT is "
            f"{signed(mt_if)} dB vs IF (both connection-wise, fine-tuned); fine-tuning adds {signed(ft_gain)} dB "
            "(connection-wise MT).",
            "",
            "Paper (CamSeq01, mIoU): MT + CW + FT 0.651 is the best row, layer-wise + MT + FT 0.199, CW without MT "
            "0.603; without fine-tuning T=20 is far from enough.", "", *_concat_note(results)]


def _concat_note(results: dict[str, Any]) -> Lines:
    fig = results.get("figures", {}).get("results", {}).get("fig3")
    if not fig or not fig.get("concats"):
        return []
    parts = []
    for c in fig["concats"]:
        lam = list(c["parts"].items())
        parts.append(f"{c['consumer']} reads {' + '.join(f'{k} (lambda {v:.2f})' for k, v in lam)}, "
                     f"ratio {max(v for _, v in lam) / max(min(v for _, v in lam), 1e-12):.1f}")
    return ["Our depth-2 U-Net has two skip concats (the paper's depth-4 net has four): "
            + "; ".join(parts) + ". Layer-wise normalization gives both parts the concatenation's lambda; "
            "connection-wise gives each its own (see the Fig. 3 section for what that does to the spike rates).", ""]


def thresholds(rec: dict[str, Any], figures: Path, results: dict[str, Any]) -> Lines:
    r = rec["results"]
    head = ["N", "thresholds", "converted PSNR", "converted SSIM", "fine-tuned PSNR", "fine-tuned SSIM", "paper mIoU (FT)"]
    rows = []
    for row in r["rows"]:
        key = "-".join(f"{t:g}" for t in row["thresholds"])
        rows.append([row["count"], ", ".join(f"{t:g}" for t in row["thresholds"]), f2(row["converted"]["psnr"]),
                     f3(row["converted"]["ssim"]), f2(row["finetuned"]["psnr"]), f3(row["finetuned"]["ssim"]),
                     f3(r["paper_table4"].get(key))])
    plots.thresholds(r, figures / "thresholds.png")
    best = max(r["rows"], key=lambda x: x["finetuned"]["psnr"])
    four = next(x for x in r["rows"] if x["count"] == 4)
    five = next(x for x in r["rows"] if x["count"] == 5)
    return ["## Thresholds (Table 4): number and values", "", *_cmd(rec),
            f"Connection-wise, gray denoising sigma {r['sigma']:g}, T={r['steps']}, both converted-only and fine-tuned "
            f"(every set fine-tuned with the same budget); U-Net {f2(r['ann']['psnr'])} dB.", "",
            *_table(head, rows), "", "![thresholds](figures/thresholds.png)", "",
            f"Measured: the best fine-tuned set is ({', '.join(f'{t:g}' for t in best['thresholds'])}) at "
            f"{f2(best['finetuned']['psnr'])} dB; 4 thresholds {f2(four['finetuned']['psnr'])} dB, 5 thresholds "
            f"{f2(five['finetuned']['psnr'])} dB. Paper: quality grows with the number of thresholds up to 4 "
            "(0.651 mIoU) and a 5th adds nothing.", ""]


# ------------------------------------------------------------------------------------------ time steps
def time_steps(rec: dict[str, Any], figures: Path, results: dict[str, Any]) -> Lines:
    r = rec["results"]
    names = list(r["curves"])
    head = ["T"] + [n.replace("finetuned_T", "fine-tuned at T=") + " PSNR / SSIM" for n in names]
    rows = []
    for t in r["sweep"]:
        rows.append([t] + [f"{f2(r['curves'][n]['at'][str(t)]['psnr'])} / {f3(r['curves'][n]['at'][str(t)]['ssim'])}"
                           for n in names])
    plots.quality_vs_t(r, figures / "quality_vs_T.png")
    lines = ["## Quality vs time steps; steps saved by fine-tuning", "", *_cmd(rec),
             f"Gray denoising, sigma {r['sigma']:g}, central {r['crop']}x{r['crop']} of {', '.join(r['test_images'])}, "
             f"connection-wise MT; U-Net {f2(r['ann_psnr'])} dB. One simulation of {r['t_max']} steps per network "
             "gives the PSNR at every T (the plot shows every T).", "", *_table(head, rows), "",
             "![quality vs T](figures/quality_vs_T.png)", ""]
    for key in ("match", "match_long"):
        m = r[key]
        if m["converted_steps_needed"] is None:
            lines.append(f"* The converted-only SNN does **not** reach the SNN fine-tuned at T={m['finetuned_steps']} "
                         f"({f2(m['finetuned_psnr'])} dB) within T <= {r['t_max']}.")
        elif m["converted_steps_needed"] <= m["finetuned_steps"]:
            lines.append(f"* The converted-only SNN already reaches the SNN fine-tuned at T={m['finetuned_steps']} "
                         f"({f2(m['finetuned_psnr'])} dB) at T={m['converted_steps_needed']}: fine-tuning saves no steps.")
        else:
            lines.append(f"* The converted-only SNN needs **T={m['converted_steps_needed']}** to reach the SNN "
                         f"fine-tuned at T={m['finetuned_steps']} ({f2(m['finetuned_psnr'])} dB): fine-tuning saves "
                         f"{100 * m['reduction']:.0f} % of the time steps.")
    lines += ["", "Paper: fine-tuning cuts the time window by about 90 % (converted T=1000 vs fine-tuned T=20 on CamSeq01).", ""]
    return lines


def ratio(x: Any) -> str:
    """ANN energy over SNN energy, as words."""
    if x is None:
        return "-"
    return f"{x:.3g}x less" if x >= 1 else f"{1 / x:.3g}x more"


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
            [f"Loihi 2 profile ({lo['cores']} cores, {lo['chips']} chip)", f2(ps["snn_quantized"]), "-",
             sci(lo["energy_j"]), ratio(lo["ann_over_snn"])]]
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
            "simulator and costed by `toolchain.deploy.profile_report` (Loihi 2 profile; the paper's method with "
            "the Horowitz 45 nm figures). The PyTorch row recounts the paper's figure from the float SNN's spikes.", "",
            *_energy_table(r), "",
            f"Loihi 2 energy breakdown: {parts}. Intel has not published Loihi 2's per-operation energies: the "
            "profile's figures are assumptions derived from Loihi 1 (see `hw_profiles/loihi2.json`).", "",
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
            f"`toolchain.fidelity.quantization_psnr` on the fine-tuned SNNs, sigma {r['sigma']:g}, central "
            f"{r['crop']}x{r['crop']} crops: the float SNN, the float SNN fed the integer input levels, and the exported "
            "integer network on the reference simulator.", "",
            *_table(["task", "T", "float", "float, integer input", "quantized", "loss (dB)", "of which input",
                     "of which network"], rows), ""]


# ------------------------------------------------------------------------------------------ figures, speed
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
            "Paper: layer-wise normalization breaks the linear relation after the skip concats and connection-wise "
            "restores it.", "",
            f"**Firing rate per layer** (spikes per neuron per step, T={fr['steps']}, {fr['image']}):", "",
            "![firing rates](figures/firing_rates.png)", "",
            f"**Denoised images** (central {grid['crop']}x{grid['crop']}, sigma {grid['sigma']:g}):", "",
            *_table(["task", "image", "T", "noisy (dB)", "U-Net (dB)", "Spiking-UNet (dB)"], grid_rows), "",
            "![denoised](figures/denoise_grid.png)", ""]


def speed(rec: dict[str, Any], figures: Path, results: dict[str, Any]) -> Lines:
    r = rec["results"]
    rows = [[x["steps"], f"{x['ann_forward_s'] * 1000:.0f} ms", f"{x['snn_simulate_s']:.2f} s", f"{x['ratio']:.2f}",
             "yes" if x["ratio"] <= r["goal_ratio"] else "**no**"] for x in r["rows"]]
    ex = [[f"{e['side']}x{e['side']}", f"{e['trace_quantize_s']:.2f} s", f"{e['export_s']:.2f} s",
           f"{e['file_bytes'] / 1024:.0f} KiB"] for e in r["exports"]]
    top = ", ".join(f"{o['op']} {100 * o['share']:.0f} %" for o in r["profile"]["top_ops"])
    return ["## Speed: PyTorch SNN vs ANN, export", "", *_cmd(rec),
            f"Input {r['input_shape']}; the ANN forward and the SNN simulation are timed interleaved in one run "
            f"(medians), {r['torch_threads']} torch thread, load average {', '.join(f'{x:.1f}' for x in r['load_average'])} "
            "on 2 shared cores (other work was running).", "",
            *_table(["T", "ANN forward", "SNN simulate", "SNN / (T x ANN)", f"<= {r['goal_ratio']}?"], rows), "",
            f"Where the SNN's time goes (torch profiler, one T={r['rows'][0]['steps']} run): convolutions "
            f"{100 * r['profile']['convolution_share']:.0f} %; top ops: {top}. The rest is the MT neuron's "
            "element-wise work (compare, subtract, bool-to-float copies, spike counting) in `toolchain/neuron.py`.", "",
            *_table(["export input", "trace + quantize", "+ write .net", "file size"], ex), ""]


def not_done(results: dict[str, dict[str, Any]]) -> Lines:
    s = next(iter(results.values()))["settings"] if results else {}
    return ["## What was not done", "",
            "* The paper's datasets and full-size networks (see the first table); no number here is comparable "
            "with the paper's in absolute terms.",
            "* Multi-class segmentation (CamSeq01 mIoU): the ablation and threshold studies use gray denoising PSNR "
            "instead; the segmentation table is the coins smoke test.",
            "* Direct training (BPTT) of the ML and RS neurons, and a DT budget comparable to the paper's 100 epochs: "
            "BPTT costs several times a spiking-flow step per batch on 2 CPU cores.",
            f"* The converted-only rows at T=1000 (T={s.get('very_long_t')} here) and the paper's 100-epoch "
            f"fine-tuning at lr 1e-6 (T x batches = {s.get('ft_step_budget')} at lr {s.get('ft_lr')} here).", ""]


SECTIONS: list[tuple[str, Callable[[dict[str, Any], Path, dict[str, Any]], Lines]]] = [
    ("tables12", tables12), ("neurons", neurons), ("ablation", ablation), ("thresholds", thresholds),
    ("time_steps", time_steps), ("energy", energy), ("quantized", quantized), ("figures", figures_section),
    ("speed", speed)]
