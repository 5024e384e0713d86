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
    import numpy as np
    import torch

    from toolchain import metrics
    from toolchain.data.patches import add_gaussian_noise, center_crop
    from toolchain.export import export_network
    from toolchain.models import load_snn
    from toolchain.quantize import QuantSettings
    from toolchain.refsim import ReferenceSimulator, image_levels
    from toolchain.workflows import DataSource

    snn, ckpt = load_snn(checkpoint)
    source = DataSource.from_meta(ckpt.meta, ckpt.config)
    _, test = source.load()
    rows = []
    for k, (name, image) in enumerate(zip(test.names, test.images)):
        clean = center_crop(image, crop)
        network, _ = export_network(snn, ckpt.spiking, clean.shape[-2:], QuantSettings(steps=steps), lowering)
        noisy = add_gaussian_noise(torch.from_numpy(np.ascontiguousarray(clean))[None], sigma,
                                   torch.Generator().manual_seed(seed + k))[0]
        leveled = torch.from_numpy(image_levels(noisy.numpy()) / 255.0).float()
        float_out = snn.simulate(noisy, steps).output
        float8_out = snn.simulate(leveled, steps).output
        ref = ReferenceSimulator(network).run(noisy.numpy(), steps)

        def psnr(noise_map: np.ndarray) -> float:
            return metrics.psnr(clean, np.clip(noisy[0].numpy() - noise_map[0], 0.0, 1.0))

        rows.append({"image": name, "float": psnr(float_out.numpy()), "float_leveled_input": psnr(float8_out.numpy()),
                     "quantized": psnr(ref.output),
                     "output_mae": float(np.abs(ref.output - float8_out.numpy()).mean())})
    mean = {key: float(np.mean([r[key] for r in rows])) for key in ("float", "float_leveled_input", "quantized")}
    return {"checkpoint": checkpoint, "steps": steps, "sigma": sigma, "crop": crop, "lowering": lowering,
            "images": rows, "mean": mean, "loss_db": mean["float"] - mean["quantized"],
            "loss_input_db": mean["float"] - mean["float_leveled_input"],
            "loss_network_db": mean["float_leveled_input"] - mean["quantized"]}


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
        from toolchain.atomic import write_json
        write_json(a.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
