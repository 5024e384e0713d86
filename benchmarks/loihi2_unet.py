#!/usr/bin/env python3
"""What the calibrated Loihi 2 model (hw_profiles/loihi2.json) says about this toolchain's U-Nets.

Cases (``--cases``, default all):

* ``demo``: the demo network (width 16, depth 2, gray denoising, fine-tuned at T = 10, this toolchain's
  export at 64x64: ``runs/demo/demo.net`` from ``bash scripts/demo.sh``, or ``--demo-net FILE``);
* ``paper64`` / ``paper256``: the paper-size U-Net (width 64, depth 4) exported at 64x64 / 256x256. No trained
  paper-size network exists here, so it is a RANDOMLY INITIALISED U-Net (seed 0) converted with connection-wise
  normalization on 8 noisy embedded training patches (64x64) and exported at T = 10: its spike activity is
  not a trained network's, only its shapes are the paper's.

Each network runs on the embedded ``camera`` photo (centre crop at its size, Gaussian noise sigma 25, seed 0)
on the integer reference simulator, and is profiled for both MT lowerings (compartments, graded): cores,
chips, time per step and per inference, energy per inference with the calibration's band, whether it fits
one Kapoho Point board (8 chips), else the smallest listed system and the layers that bind; the ANN beside it
at 45 nm fp32 MACs (the paper's figure) and int8 MACs, and the paper's eq. 13 figure.

    python benchmarks/loihi2_unet.py [--cases demo,paper64,paper256] [--demo-net FILE] [--json FILE]

With ``--json FILE`` an existing file's other cases are kept (so the slow paper256 case can run on its own).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netx_export import read_network  # noqa: E402
from toolchain.data.embedded import load_photo  # noqa: E402
from toolchain.data.patches import center_crop  # noqa: E402
from toolchain.frontend.conversion import ConversionSettings, convert  # noqa: E402
from toolchain.frontend.unet import UNet, UNetConfig  # noqa: E402
from toolchain.hardware import collect_activity, load_profile, profile_network  # noqa: E402
from toolchain.ir import resize  # noqa: E402
from toolchain.lowering.lower import export_network  # noqa: E402
from toolchain.lowering.quantize import QuantSettings  # noqa: E402
from toolchain.verbs.inputs import image_channels, network_frame, padded, with_noise  # noqa: E402
from toolchain.verbs.source import DataSource, calibration_batch  # noqa: E402

STEPS, SIGMA, SEED = 10, 25.0, 0


def paper_network(side: int) -> Any:
    torch.manual_seed(SEED)
    ann = UNet(UNetConfig("denoise", 1, 1, width=64, depth=4))
    calib = calibration_batch(DataSource("denoise", 1), 8, 64, SEED)
    snn, info = convert(ann, calib, ConversionSettings())
    network, _ = export_network(snn, info, (side, side), QuantSettings(steps=STEPS))
    return network


def lowering_row(report: dict[str, Any], lowering: str) -> dict[str, Any]:
    s = report["lowerings"][lowering]
    row: dict[str, Any] = {k: s.get(k) for k in ("fits", "reasons", "compartments", "synapses", "synops",
                                                 "synops_nonzero", "cores", "chips", "synmem_words", "fits_target",
                                                 "smallest_system", "time_per_step_s", "latency_s",
                                                 "energy_profile_j", "energy_profile_band_j", "energy_dynamic_j",
                                                 "energy_static_j")}
    return row


def profile_case(network: Any, name: str, source: str) -> dict[str, Any]:
    channels, h, w = network.input.shape
    image = center_crop(load_photo("camera", image_channels(network)), max(h, w))[:, :h, :w]
    frame = network_frame(network, with_noise(image, SIGMA, SEED), SIGMA)    # + the sigma channel of a told denoiser
    batch = padded(frame, int(network.meta.multiple or 1))[None]
    network = resize(network, batch.shape[-2:])
    start = time.perf_counter()
    result, activity = collect_activity(network, batch, STEPS)
    sim_s = time.perf_counter() - start
    profile = load_profile("loihi2")
    out: dict[str, Any] = {"case": name, "source": source, "input": [channels, h, w], "steps": STEPS,
                           "width": network.meta.width, "depth": network.meta.depth, "simulate_s": sim_s,
                           "lowerings": {}}
    for lowering in ("compartments", "graded"):
        report = profile_network(network, result, profile, STEPS, activity=activity, lowering=lowering, strict=False)
        row = lowering_row(report, lowering)
        if report["mapping"]:
            m = report["mapping"]
            row.update(largest_layers=m["largest_layers"], max_chips=m["max_chips"],
                       target_systems_needed=m["target_systems_needed"],
                       timing=report["timing"], energy=report["energy"]["profile"],
                       per_layer=[{"layer": r["layer"], "cores": r.get("cores"), "synops": r["synops"],
                                   "synops_nonzero": r.get("synops_nonzero")} for r in report["layers"]])
        out["lowerings"][lowering] = row
        e = report["energy"]
        out["ann"] = {"macs": e["ann"]["macs"], "fp32_j": e["ann"]["energy_j"], "int8_j": e["ann"]["energy_int8_j"]}
        out["paper_eq13"] = {"spikes": e["paper"]["spikes"], "input_macs": e["paper"]["input_macs"],
                             "energy_j": e["paper"]["energy_j"], "label": e["paper"]["label"]}
        out["spikes"] = report["totals"]["spikes"]
    return out


def _j(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g} J"


def describe(case: dict[str, Any]) -> list[str]:
    lines = [f"== {case['case']}: {case['source']}; input {case['input']}, T = {case['steps']}, "
             f"{case['spikes']:.4g} spikes (simulated in {case['simulate_s']:.0f} s)",
             f"   ANN: {case['ann']['macs']:.3g} MACs = {_j(case['ann']['fp32_j'])} (45 nm fp32, the paper's figure), "
             f"{_j(case['ann']['int8_j'])} (45 nm int8); paper's eq. 13 (its method): {_j(case['paper_eq13']['energy_j'])}"]
    for lw, r in case["lowerings"].items():
        if not r["fits"]:
            lines.append(f"   {lw:12}: does not fit: {r['reasons'][0]}" + (f" (+{len(r['reasons']) - 1} more)"
                                                                            if len(r["reasons"]) > 1 else ""))
            continue
        band = r["energy_profile_band_j"]
        where = ("fits one Kapoho Point board" if r["fits_target"] else
                 f"does NOT fit one Kapoho Point board (8 chips): {r['target_systems_needed']} boards' worth; smallest "
                 f"listed system: {r['smallest_system']}")
        largest = ", ".join(f"{x['layer']} {x['cores']} ({x['binding']})" for x in r["largest_layers"])
        lines.append(f"   {lw:12}: {r['cores']:,} cores, {r['chips']} chips ({where}); {r['time_per_step_s'] * 1e6:.1f} us "
                     f"per step (busiest: {r['timing']['busiest_layer']}), {r['timing']['interval_s'] * 1e3:.2f} ms per "
                     f"inference, latency {r['latency_s'] * 1e3:.2f} ms; energy {band['value']:.3g} J "
                     f"[{band['low']:.3g}..{band['high']:.3g}] (dynamic {r['energy_dynamic_j']:.3g}, static "
                     f"{r['energy_static_j']:.3g}); largest layers: {largest}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="demo,paper64,paper256")
    parser.add_argument("--demo-net", default=str(ROOT / "runs/demo/demo.net"))
    parser.add_argument("--json", help="write (merge) the results into this JSON file")
    a = parser.parse_args()
    torch.set_num_threads(1)
    results: dict[str, Any] = {}
    if a.json and Path(a.json).exists():
        results = json.loads(Path(a.json).read_text())
    for case in a.cases.split(","):
        if case == "demo":
            path = Path(a.demo_net)
            if not path.exists():
                print(f"{path}: no demo network; run `bash scripts/demo.sh` or give --demo-net FILE")
                return 2
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            results[case] = profile_case(read_network(path), case, f"the demo network (trained, fine-tuned), "
                                         f"{path.name}, sha256 {digest}")
        elif case in ("paper64", "paper256"):
            side = 64 if case == "paper64" else 256
            results[case] = profile_case(paper_network(side), case, "paper-size U-Net (width 64, depth 4), RANDOMLY "
                                         "initialised (seed 0), converted on 8 noisy training patches, not trained")
        else:
            parser.error(f"unknown case {case!r}")
        print("\n".join(describe(results[case])), flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1))
    if a.json:
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
