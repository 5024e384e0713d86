#!/usr/bin/env python3
"""Peak memory of one fine-tuning step: spiking flow (paper Algorithm 1) vs BPTT, at T=10 and T=50.

Each configuration runs in a fresh child process; its figure is the growth of the process's peak
resident memory (ru_maxrss) over one training step, after the model and batch are built and a
warm-up step at T=1 has run (so allocator and library start-up are not counted). The ratios are
measured side by side in one run.

    .venv/bin/python benchmarks/finetune_memory.py [--width 16 --depth 2 --batch 8 --patch 48] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(method: str, steps: int, width: int, depth: int, batch: int, patch: int) -> float:
    """One training step in this process; returns the peak-RSS growth in MiB."""
    sys.path.insert(0, str(ROOT))
    import torch
    from toolchain.frontend.conversion import ConversionSettings, convert
    from toolchain.tasks.sampling import task_loss
    from toolchain.frontend.training import bptt_forward
    from toolchain.frontend.unet import UNet, UNetConfig

    torch.manual_seed(0)
    ann = UNet(UNetConfig("denoise", 1, 1, width=width, depth=depth))
    x = torch.rand(batch, 1, patch, patch)
    snn, _ = convert(ann, x, ConversionSettings())
    target = torch.zeros_like(x)

    def step(t: int) -> None:
        out = snn.flow_forward(x, t) if method == "flow" else bptt_forward(snn, x, t)
        task_loss("denoise", out, target).backward()
        snn.zero_grad(set_to_none=True)

    step(1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step(steps)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (after - before) / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "T"), help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.child:
        print(child(a.child[0], int(a.child[1]), a.width, a.depth, a.batch, a.patch))
        return 0
    figures: dict[str, float] = {}
    for method in ("flow", "bptt"):
        for steps in (10, 50):
            cmd = [sys.executable, __file__, "--child", method, str(steps), "--width", str(a.width),
                   "--depth", str(a.depth), "--batch", str(a.batch), "--patch", str(a.patch)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            figures[f"{method}_T{steps}_mib"] = float(out)
            print(f"{method:5s} T={steps:3d}: peak memory growth {float(out):8.1f} MiB", flush=True)
    figures["flow_ratio_T50_T10"] = figures["flow_T50_mib"] / max(figures["flow_T10_mib"], 1e-9)
    figures["bptt_ratio_T50_T10"] = figures["bptt_T50_mib"] / max(figures["bptt_T10_mib"], 1e-9)
    print(f"spiking flow T50/T10 = {figures['flow_ratio_T50_T10']:.2f} (goal <= 1.2); "
          f"BPTT T50/T10 = {figures['bptt_ratio_T50_T10']:.2f}")
    if a.json:
        sys.path.insert(0, str(ROOT))
        from toolchain.files import write_json
        write_json(a.json, {"settings": vars(a) | {"child": None}, **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
