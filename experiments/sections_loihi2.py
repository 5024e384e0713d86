"""RESULTS.md section: the Loihi 2 profile checked against Intel's measured PilotNet LIF runs, and what the
calibrated model says about the U-Nets. Read from ``docs/results/loihi2_pilotnet.json`` (+ ``_details``) and
``docs/results/loihi2_unet.json``, which the two benchmarks write (not ``python -m experiments``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .markdown import Lines, _table, sci

PILOTNET_CMD = ("python benchmarks/loihi2_pilotnet.py --json docs/results/loihi2_pilotnet.json "
                "--details docs/results/loihi2_pilotnet_details.json")
UNET_CMD = "python benchmarks/loihi2_unet.py --demo-net runs/demo/demo.net --json docs/results/loihi2_unet.json"


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / name
    return json.loads(path.read_text()) if path.exists() else None


def _mj(x: float) -> str:
    return f"{x * 1e3:.3f}"


def _validation(a: dict[str, Any], d: dict[str, Any]) -> Lines:
    meas, pred, b, g = a["measured"], a["predicted"], d["bands"], d["goals"]
    mt, me = meas["time_per_step_s"], meas["energy_per_inference_j"]

    def ok(key: str) -> str:
        return "yes" if g[key]["ok"] else "**no**"
    rows = [["cores", pred["cores"], meas["cores"], ok("cores")],
            ["cores per layer (network order)", " ".join(str(x["cores"]) for x in pred["layers"]),
             " ".join(str(x["cores"]) for x in meas["layers"]), "exact"],
            ["chips", pred["chips"], meas["chips"], ""],
            ["time per step (us)", f"{pred['time_per_step_s'] * 1e6:.1f} ({b['time_per_step_s']['low'] * 1e6:.1f}-"
             f"{b['time_per_step_s']['high'] * 1e6:.1f})", f"{mt['min'] * 1e6:.1f}-{mt['max'] * 1e6:.1f}",
             ok("time_per_step_s")],
            ["inferences/s", f"{d['inferences_per_s']:.1f}", f"{meas['inferences_per_s']['min']:.2f}-"
             f"{meas['inferences_per_s']['max']:.2f}", ""]]
    for k in ("static", "dynamic", "total"):
        bb = b[f"energy_{k}_j"]
        rows.append([f"{k} energy per inference (mJ)", f"{_mj(pred['energy_per_inference_j'][k])} "
                     f"({_mj(bb['low'])}-{_mj(bb['high'])})", f"{_mj(me[k]['min'])}-{_mj(me[k]['max'])}",
                     ok(f"energy_{k}_j")])
    return _table(["quantity", "model (band)", "measured (runs A-D, Oheo Gulch)", "goal met"], rows)


def _calibration(d: dict[str, Any]) -> Lines:
    c, held = d["calibration"], d["held_out"]
    fit = c["fit"]
    rows = [["`core.neurons` 4095, `core.synmem_words` 12000 (64-bit), `core.neuron_groups` 8, `core.axons_in` 16000, "
             "conv kernels once per core at 8 bits, dense words = axons x ceil((n (nwb + 12) + 16) / 64), x-first tiling",
             "PilotNet LIF compiler table (74 cores; SynMem log) and the compiler's utilisation denominators",
             f"PilotNet SDNN {held['pilotnet_sdnn']['model_total']} / {held['pilotnet_sdnn']['measured_total']} cores, "
             f"YOLO-KP {held['yolo_kp']['model_total']} / {held['yolo_kp']['measured_total']}, every layer equal"],
            [f"`time.synop` {fit['time.synop_ns']:.3f} ns per synaptic op (non-zero weights), band 0.70-1.043 ns",
             "runs A-D: mean time per step / the busiest core's simulated load (conv3, "
             f"{c['busiest_core_synops_per_step']:,.0f} ops per step)",
             "the measured per-step time series (period 4) bounds the band; no second compute-bound network is "
             "public"],
            ["`time.floor` 30.98 us", "S4D sCIFAR, 6 cores (its measured time per step)", "-"],
            [f"`energy.scale` {fit['energy.scale']:.3f} (sd {fit['energy.scale_sd']:.3f}; band "
             f"{fit['energy.scale_low']:.3f}-{fit['energy.scale_high']:.3f}) on Loihi 1's per-op energies",
             "runs A-D: measured dynamic energy / the Loihi 1 mix on the simulated activity "
             f"({c['dynamic_energy_loihi1_per_op_j'] * 1e3:.3f} mJ)", "-"],
            [f"`power.static_per_chip` {fit['power.static_per_chip_w']:.3f} W (band {fit['power.static_low_w']:.3f}-"
             f"{fit['power.static_high_w']:.3f} W)", "runs A-D (board level, measured after each run)", "-"]]
    res = ", ".join(f"{k} {v * 1e3:+.3f}" for k, v in c["dynamic_residual_j_per_run"].items())
    return [*_table(["profile value", "calibrated on", "checked on held-out data"], rows), "",
            f"Residual of the energy fit per run (measured - model dynamic energy, mJ): {res} (A-D calibrate; "
            "E, F are the Kapoho Point runs, a different board, 1.19x slower, not calibrated on). One workload "
            "identifies one energy scale only: the split between synaptic ops, neuron updates and routing keeps "
            "Loihi 1's ratios (assumed). Time and energy are therefore fits on this network, not validations; the "
            "resource model is validated on the two held-out tables."]


def _unet(u: dict[str, Any]) -> Lines:
    rows = []
    for case in ("demo", "paper64", "paper256"):
        r = u.get(case)
        if r is None:
            continue
        name = {"demo": "demo (w16 d2, trained) 64x64", "paper64": "paper-size (w64 d4, random) 64x64",
                "paper256": "paper-size (w64 d4, random) 256x256"}[case]
        for lw, x in r["lowerings"].items():
            if not x["fits"]:
                reason = x["reasons"][0].split(";")[0]
                more = f" (+{len(x['reasons']) - 1} more layers)" if len(x["reasons"]) > 1 else ""
                rows.append([name, lw, "does not fit", "-", f"no system: {reason}{more}", "-", "-", "-", "-"])
                continue
            band = x["energy_profile_band_j"]
            boards = x.get("target_systems_needed")
            system = "yes" if x["fits_target"] else (f"no ({boards} boards' worth); smallest listed system: "
                                                      f"{x['smallest_system']}")
            binds = "; ".join(f"{y['layer']} {y['cores']} cores, bound by {y['binding']}" for y in x["largest_layers"][:2])
            rows.append([name, lw, f"{x['cores']:,}", x["chips"], f"{system}; largest layers: {binds}",
                         f"{x['time_per_step_s'] * 1e6:.0f} ({x['timing']['busiest_layer']})",
                         f"{x['timing']['interval_s'] * 1e3:.2f} / {x['latency_s'] * 1e3:.2f}",
                         f"{sci(band['value'])} ({sci(band['low'])}-{sci(band['high'])})",
                         f"{sci(r['ann']['fp32_j'])} / {sci(r['ann']['int8_j'])} / {sci(r['paper_eq13']['energy_j'])}"])
    return _table(["network, input", "lowering", "cores", "chips", "fits one Kapoho Point (8 chips)? layers that bind",
                   "time per step (us) (busiest layer)", "ms per inference / latency",
                   "energy per inference, J (band)", "ANN fp32 / ANN int8 / paper eq. 13 (J)"], rows)


def section(results_dir: Path) -> Lines:
    a, d = _load(results_dir, "loihi2_pilotnet.json"), _load(results_dir, "loihi2_pilotnet_details.json")
    u = _load(results_dir, "loihi2_unet.json")
    out: Lines = ["## Loihi 2 profile against silicon (PilotNet LIF), and the U-Nets on it", ""]
    if a is None or d is None:
        return out + [f"Not run yet: `{PILOTNET_CMD}`.", ""]
    same = d["network_identity"]
    out += [f"Regenerate: `{PILOTNET_CMD}` (seconds) and `{UNET_CMD}` (the 256x256 case takes minutes), then "
            "`python -m experiments docs`.", "",
            "Intel's only public Loihi 2 measurements of a whole network are the hardware-profiler outputs committed "
            "in lava-dl's PilotNet LIF benchmark notebook (`hw_profiles/measured/pilotnet_lif.json` lists the six "
            "runs with repository, path and commit). The wheel's `gts/pilotnet_lif/network.net` is the benchmark's "
            f"network: git blob `{same['git_blob_sha1']}` ({same['bytes']:,} bytes) in both, layer tables identical. "
            "The benchmark runs it through the physical-time reference simulator as the notebook did (netx "
            "reset_interval 16, reset_offset 3, 16-step inferences, the second inference counted) with **input "
            "bias 0**: the notebook's `net.in_layer.neuron.bias = image` sets an attribute that Lava's LIF does not "
            "have (its bias is `bias_mant`), so the chip never saw the frame; the profiler's per-core activity "
            "confirms it (below), and with the frame the model would predict "
            f"{d['with_frame']['time_per_step_s']['value'] * 1e6:.1f} us per step and "
            f"{d['with_frame']['energy_total_j']['value'] * 1e3:.3f} mJ per inference.", "",
            *_validation(a, d), "",
            "Goal: cores within 15 %; time per step and energy inside the measured band or within 30 % of its "
            "nearest end (`tests/hardware/test_loihi2_calibration.py` pins it). The band after each model figure "
            "is the model's uncertainty: the profile evaluated at the low and high ends of its banded values "
            "(the four runs' min..max of static power and of the energy scale; 0.70-1.043 ns per synaptic op). "
            "The runs' own spread is large: identical activity, 0.41-0.79 W total.", "",
            "Busiest core of each conv layer, synaptic ops per step, model (input bias 0) vs the profiler's plot: "
            + ", ".join(f"{k} {v['model_input_zero']:,.0f} vs {v['digitized']:,} ({v['rel_zero']:+.1%}; with the "
                        f"frame {v['rel_frame']:+.0%})" for k, v in d["activity_vs_profiler"].items()) + ".", "",
            "### What is calibrated on what", "", *_calibration(d), ""]
    if u is None:
        return out + [f"U-Net figures not computed yet: `{UNET_CMD}`.", ""]
    out += ["### The U-Nets on the calibrated model", "",
            "Each network on the embedded camera photo (sigma 25), T = 10, integer reference simulator; both MT "
            "lowerings costed from the same spikes. Energy per inference = dynamic + static power x chips x T steps "
            "(inferences back to back, as the benchmark measures); latency = T + the network's depth in steps. "
            "The paper-size U-Net has no trained weights here: it is **randomly initialised and converted** (seed 0), "
            "so its spike counts are not a trained network's; its cores, chips and binding layers do not depend on "
            "them. 'Bound by' names the per-core resource that limits each of the largest layers (neurons: 4,095 "
            "compartments per core; synmem_words: the layer's kernel slice fills SynMem, so a core holds few "
            "output channels); a network of more than 8 chips needs several linked boards (not modelled: no "
            "multi-chip traffic cost) or a larger system.", "", *_unet(u), "",
            "The ANN column gives the paper's 45 nm fp32 MAC figure (4.6 pJ, Horowitz) beside an int8 one (0.23 pJ) "
            "and the paper's own eq. 13 figure (raw spikes x 0.9 pJ + input-layer MACs x 4.6 pJ), which counts no "
            "synaptic operation and is the paper's method, not a hardware estimate.", ""]
    return out
