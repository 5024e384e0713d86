#!/usr/bin/env python3
"""Bring your own U-Net: train milesial's U-Net for a few batches with a plain PyTorch loop, as a user
would, and save it with ``torch.export.save``; then the toolchain takes the .pt2 file (no Python class
needed) through convert, fine-tune, export and simulation::

    .venv/bin/python examples/byo_unet.py --out runs/byo          # writes runs/byo/milesial.pt2
    .venv/bin/python cli.py convert runs/byo/milesial.pt2 --task denoise --maxpool avg --linear pair --percentile 99 \\
        --out runs/byo/snn.pt
    .venv/bin/python cli.py finetune runs/byo/snn.pt --steps 10 --epochs 1 --out runs/byo/snn_ft.pt
    .venv/bin/python cli.py export runs/byo/snn_ft.pt -o runs/byo/milesial.net --input-size 64
    .venv/bin/python cli.py simulate runs/byo/milesial.net --backend lava-cpu --input photo.png \\
        --add-noise 25 --out runs/byo/sim

The denoiser predicts the noise map (the residual), as this toolchain's own U-Net does. The same in
Python, without a file: ``toolchain.frontend.capture.from_model(model, calibration, TaskSpec(...))``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples.milesial_unet import MilesialUNet  # noqa: E402
from toolchain.data.embedded import denoise_split  # noqa: E402
from toolchain.tasks.sampling import Sampler  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/byo", help="output folder (default runs/byo)")
    parser.add_argument("--batches", type=int, default=200, help="training batches (default 200)")
    parser.add_argument("--width", type=int, default=8, help="channels of the first stage (milesial: 64)")
    parser.add_argument("--depth", type=int, default=2, help="down-sampling stages (milesial: 4)")
    parser.add_argument("--side", type=int, default=64, help="export size (a multiple of 2**depth)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = MilesialUNet(n_channels=1, n_classes=1, width=args.width, depth=args.depth)
    train, _ = denoise_split(1)                     # the embedded gray training photos
    sampler = Sampler("denoise", train, 48, 16, np.random.default_rng(0), torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for step in range(args.batches):
        noisy, noise = sampler()
        loss = F.l1_loss(model(noisy), noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % 50 == 0:
            print(f"batch {step + 1}/{args.batches}: L1 loss {loss.item():.4f}", flush=True)
    model.eval()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    program = torch.export.export(model, (torch.rand(1, 1, args.side, args.side),))
    torch.export.save(program, out / "milesial.pt2")
    print(f"wrote {out / 'milesial.pt2'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
