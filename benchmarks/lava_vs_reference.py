#!/usr/bin/env python3
"""Wall time per step of the lava-cpu backend against the integer reference simulator, side by side.

Default network: a freshly converted random U-Net (width 16, depth 2, gray denoising) on one
64x64 image, T = 10. Or ``--checkpoint SNN.pt`` (an SNN checkpoint, exported here as the pipeline
does). Both simulators run the same quantized network on the same images in this one process; the
script checks that their accumulators agree exactly and prints

    lava-cpu   per step: run_s / T   (the stepping; plus compile/start and end-to-end figures)
    reference  per step: run / T     (best of --repeat runs, after a warm-up; torch's default threads
                                      and 1 thread)
    ratio      lava / reference

``--json PATH`` writes the same figures as JSON. Example::

    .venv/bin/python benchmarks/lava_vs_reference.py --json /tmp/lava_bench.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolchain.frontend.conversion import ConversionSettings, convert  # noqa: E402
from toolchain.lowering.lower import export_network  # noqa: E402
from toolchain.backends.lava import run_lava  # noqa: E402
from toolchain.lowering.quantize import QuantSettings  # noqa: E402
from toolchain.simulators.reference import ReferenceSimulator  # noqa: E402
from toolchain.frontend.unet import UNet, UNetConfig  # noqa: E402


def build_network(args: argparse.Namespace):
    hw = (args.size, args.size)
    if args.checkpoint:
        from toolchain.frontend.checkpoint import load_snn
        snn, ckpt = load_snn(args.checkpoint)
        info, source = ckpt.spiking, str(args.checkpoint)
        channels = snn.config.in_channels
    else:
        torch.manual_seed(args.seed)
        channels = args.channels
        out = channels if args.task == "denoise" else 2
        ann = UNet(UNetConfig(args.task, channels, out, width=args.width, depth=args.depth))
        snn, info = convert(ann, torch.rand(4, channels, *hw), ConversionSettings())
        source = f"random U-Net {args.task} C={channels} width={args.width} depth={args.depth} seed={args.seed}"
    net, _ = export_network(snn, info, hw, QuantSettings(steps=args.steps), lowering=args.lowering)
    return net, source


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="SNN checkpoint (.pt); default: a random U-Net converted here")
    p.add_argument("--task", choices=("denoise", "segment"), default="denoise")
    p.add_argument("--channels", type=int, default=1, help="input channels of the random U-Net")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--size", type=int, default=64, help="input side (pixels)")
    p.add_argument("--steps", type=int, default=10, help="T")
    p.add_argument("--batch", type=int, default=1, help="images per run")
    p.add_argument("--lowering", choices=("compartments", "graded"), default="compartments")
    p.add_argument("--repeat", type=int, default=2, help="reference runs (the best is reported)")
    p.add_argument("--ref-threads", type=int, default=0,
                   help="torch threads for the reference simulator (0: torch's default); it is also "
                        "measured on 1 thread")
    p.add_argument("--timeout", type=float, default=600.0, help="lava-cpu timeout (s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the figures to this path")
    args = p.parse_args(argv)

    net, source = build_network(args)
    rng = np.random.default_rng(args.seed)
    images = rng.random((args.batch,) + tuple(net.input.shape))
    T = args.steps

    default_threads = torch.get_num_threads()
    sim = ReferenceSimulator(net, args.lowering)
    reference = {}
    for threads in dict.fromkeys([args.ref_threads or default_threads, 1]):   # as configured, then 1 thread
        torch.set_num_threads(threads)
        sim.run(images, 1)                            # warm-up (first-call allocations)
        times = []
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            ref = sim.run(images, T)
            times.append(time.perf_counter() - t0)
        reference[threads] = times
    torch.set_num_threads(default_threads)
    threads = args.ref_threads or default_threads
    ref_s = min(reference[threads])
    ref1_s = min(reference[1])

    lava = run_lava(net, images, T, timeout_s=args.timeout, lowering=args.lowering)
    timing = lava.timing
    assert timing is not None
    exact = bool(np.array_equal(lava.accumulator, ref.accumulator) and lava.spike_counts == ref.spike_counts
                 and lava.saturations == ref.saturations)

    figures = {
        "network": source, "input": list(images.shape), "steps": T, "lowering": args.lowering,
        "latency": net.output.depth, "lava_steps": timing.lava_steps, "lava_processes": timing.processes,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "load_average": list(os.getloadavg())},
        "reference": {"torch_threads": threads, "run_s": ref_s, "runs_s": reference[threads], "per_step_s": ref_s / T},
        "reference_1_thread": {"run_s": ref1_s, "runs_s": reference[1], "per_step_s": ref1_s / T},
        "lava_cpu": timing.to_dict(),
        "ratio_per_step": timing.per_step_s / (ref_s / T),
        "ratio_per_step_vs_1_thread": timing.per_step_s / (ref1_s / T),
        "ratio_end_to_end": timing.total_s / ref_s,
        "exact_match": exact,
    }
    print(f"network   {source}, input {tuple(images.shape)}, T={T}, {args.lowering}, latency {net.output.depth}")
    print(f"reference {ref_s / T * 1e3:9.2f} ms/step  ({ref_s:.3f} s for T={T}, torch threads {threads}); "
          f"{ref1_s / T * 1e3:.2f} ms/step on 1 thread")
    print(f"lava-cpu  {timing.per_step_s * 1e3:9.2f} ms/step  ({timing.run_s:.3f} s for {timing.lava_steps} "
          f"Lava steps, {timing.per_lava_step_s * 1e3:.2f} ms each, {timing.processes} processes)")
    print(f"          compile+start {timing.compile_s:.2f} s, read {timing.read_s:.2f} s, stop {timing.stop_s:.2f} s, "
          f"end to end {timing.total_s:.2f} s")
    print(f"ratio     {figures['ratio_per_step']:.2f}x per step (lava / reference), "
          f"{figures['ratio_per_step_vs_1_thread']:.2f}x against the 1-thread reference, "
          f"{figures['ratio_end_to_end']:.2f}x end to end; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"exact     {'yes' if exact else 'NO: the accumulators or spike counts differ'}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
