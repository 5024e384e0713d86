#!/usr/bin/env python3
"""PyTorch SNN inference time against T x the ANN's forward time, side by side in one process.

Default network: a random U-Net (width 16, depth 2, gray denoising) converted here, on one
256x256 image; or ``--ann ANN.pt --snn SNN.pt`` (e.g. the demo's ``runs/demo/ann.pt`` and
``runs/demo/snn_finetuned.pt``). For every T and torch thread count it prints

    ratio = SNN simulate / (T x ANN forward)     (goal <= 1.3)

(median over --repeat interleaved pairs; "best": fastest SNN run over T x fastest ANN forward)
with the MT neuron run by the fused kernel (``toolchain/neuron/fused.py``, what the toolchain uses)
and, for comparison, by ``mt_step`` op by op; both give identical outputs (checked here too).
``--json PATH`` writes the same figures as JSON. Example::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/snn_speed.py --threads 1 2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolchain.frontend.conversion import ConversionSettings, convert  # noqa: E402
from experiments.speed import time_snn_vs_ann  # noqa: E402
from toolchain.frontend.unet import UNet, UNetConfig  # noqa: E402

GOAL = 1.3


def build(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module, str]:
    if args.ann or args.snn:
        if not (args.ann and args.snn):
            raise SystemExit("error: --ann and --snn go together")
        from toolchain.frontend.checkpoint import load_ann, load_snn
        return load_ann(args.ann)[0], load_snn(args.snn)[0], f"{args.ann} vs {args.snn}"
    torch.manual_seed(args.seed)
    ann = UNet(UNetConfig("denoise", 1, 1, width=args.width, depth=args.depth)).eval()
    snn, _ = convert(ann, torch.rand(4, 1, 64, 64), ConversionSettings())
    return ann, snn.eval(), f"random U-Net width={args.width} depth={args.depth} seed={args.seed}, converted"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ann", help="ANN checkpoint (.pt); with --snn")
    p.add_argument("--snn", help="SNN checkpoint (.pt); with --ann")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--size", type=int, default=256, help="input side (pixels)")
    p.add_argument("--steps", type=int, nargs="+", default=[10, 20], help="values of T")
    p.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()], help="torch thread counts")
    p.add_argument("--repeat", type=int, default=7, help="interleaved repetitions (medians are reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the figures to this path")
    args = p.parse_args(argv)

    ann, snn, source = build(args)
    channels = snn.spec.input_channels if snn.spec is not None else snn.config.in_channels    # + a noise-level channel
    x = torch.rand(1, channels, args.size, args.size, generator=torch.Generator().manual_seed(args.seed))
    settings = [(t, n, fused) for n in args.threads for t in args.steps for fused in (True, False)]
    rows = time_snn_vs_ann(ann, snn, x, settings, args.repeat)

    with torch.no_grad():
        fused_out = snn.simulate(x, args.steps[0])
        plain_out = snn.simulate(x, args.steps[0], kernel="reference")
    identical = bool(torch.equal(fused_out.output, plain_out.output)
                     and [s.counts for s in fused_out.stats] == [s.counts for s in plain_out.stats])

    print(f"network  {source}, input {tuple(x.shape)}")
    print(f"{'T':>4} {'threads':>7} {'MT neuron':>12} {'ANN fwd':>9} {'SNN sim':>9} {'SNN/(T*ANN)':>12} {'best':>6}")
    for r in rows:
        print(f"{r.steps:>4} {r.torch_threads:>7} {'fused' if r.fused else 'op by op':>12} "
              f"{r.ann_forward_s * 1e3:>7.1f}ms {r.snn_simulate_s:>8.3f}s {r.ratio:>12.2f} {r.best_ratio:>6.2f}")
    fused_rows = [r for r in rows if r.fused]
    met = all(r.ratio <= GOAL for r in fused_rows)
    print(f"goal     SNN/(T*ANN) <= {GOAL} with the fused kernel: {'met' if met else 'NOT met'} "
          f"(worst {max(r.ratio for r in fused_rows):.2f}); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"exact    fused kernel and mt_step give {'identical outputs and spike counts' if identical else 'DIFFERENT results'}")
    if args.json:
        figures = {"network": source, "input": list(x.shape), "goal_ratio": GOAL, "goal_met": met,
                   "identical": identical, "rows": [r.to_dict() for r in rows],
                   "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                               "load_average": list(os.getloadavg())}}
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
