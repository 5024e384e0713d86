#!/usr/bin/env python3
"""Quantized (exported, integer reference simulator) vs float Spiking-UNet on the embedded test photos.

For every test image (centre crop) the same seeded noisy input goes to: the float SNN; the float SNN
on the integer input levels the hardware path receives (round(255 x), 10-bit signed); and the
exported integer network on the reference simulator. Their PSNRs are printed side by side, with
the loss split into input quantization and network quantization.

    .venv/bin/python benchmarks/quantization_psnr.py runs/demo/snn_finetuned.pt [--steps 10 --sigma 25 --crop 256]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(checkpoint: str, steps: int, sigma: float, crop: int, seed: int, lowering: str) -> dict:
    from toolchain.verbs.fidelity import quantization_psnr
    from toolchain.frontend.checkpoint import load_snn
    from toolchain.verbs.source import DataSource

    snn, ckpt = load_snn(checkpoint)
    _, test = DataSource.from_meta(ckpt.meta, ckpt.spec).load()
    return {"checkpoint": checkpoint, **quantization_psnr(snn, ckpt.spiking, test, steps, sigma, crop, seed, lowering)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", default=str(ROOT / "runs/demo/snn_finetuned.pt"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lowering", choices=("compartments", "graded"), default="graded",
                        help="both give identical integers; graded simulates faster")
    parser.add_argument("--json", help="write the figures to this JSON file")
    a = parser.parse_args()
    result = measure(a.checkpoint, a.steps, a.sigma, a.crop, a.seed, a.lowering)
    for r in result["images"]:
        print(f"{r['image']:8s} float {r['float']:.2f} dB | float, leveled input {r['float_leveled_input']:.2f} dB | "
              f"quantized (reference simulator) {r['quantized']:.2f} dB")
    m = result["mean"]
    print(f"mean     float {m['float']:.2f} dB | float, leveled input {m['float_leveled_input']:.2f} dB | quantized {m['quantized']:.2f} dB")
    print(f"PSNR loss of the deployed network: {result['loss_db']:.3f} dB (input levels: {result['loss_input_db']:.3f} dB, "
          f"network fixed point: {result['loss_network_db']:.3f} dB); goal <= 0.1 dB")
    if a.json:
        from toolchain.files import write_json
        write_json(a.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
