#!/usr/bin/env python3
"""Wall time per step of the lava-cpu backend against the integer reference simulator, side by side.

Default network: a freshly converted random U-Net (width 16, depth 2, gray denoising) on one
64x64 image, T = 10. Or ``--checkpoint SNN.pt`` (an SNN checkpoint, exported here as the pipeline
does). Both simulators run the same quantized network on the same images in this one process,
``--repeat`` times each, interleaved (reference, lava, reference, lava, ...: a shared machine's load
hits both alike); the script checks that every lava run's accumulators, spike and saturation counts
equal the reference's, and prints the best and the median of the runs:

    reference     per step: run / T                 (torch on --ref-threads threads, after a warm-up)
    lava-cpu      per logical step: run_s / T       (a run is latency + N T Lava steps for N images:
                                                     the pipeline's fill is included)
                  per Lava step: run_s / (latency + N T)
    ratio         lava / reference, per logical step; and per Lava step against the reference's time
                  per image-step (run / (N T): a Lava step advances one image by one step)

``--batch N``: N images, side by side in the reference simulator, streamed one window after the
other through the LavaNetwork (the latency is paid once). ``--lava-models``: Lava's own stock models
instead of the fast ones (in lock step, as Lava ships them); ``--lock-step``: the fast models in
LoihiProtocol's lock step instead of free-running. ``--json PATH`` writes the figures as JSON. Example::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lava_vs_reference.py --ref-threads 1 --repeat 5
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolchain.backends.lava import run_lava  # noqa: E402
from toolchain.frontend.conversion import ConversionSettings, convert  # noqa: E402
from toolchain.frontend.unet import UNet, UNetConfig  # noqa: E402
from toolchain.lowering.lower import export_network  # noqa: E402
from toolchain.lowering.quantize import QuantSettings  # noqa: E402
from toolchain.simulators.reference import ReferenceSimulator  # noqa: E402


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
    p.add_argument("--repeat", type=int, default=3, help="runs of each simulator, interleaved (best and median)")
    p.add_argument("--ref-threads", type=int, default=1, help="torch threads for the reference simulator")
    p.add_argument("--delays", choices=("line", "sparse"), default="line", help="LavaNetwork's concat delays")
    p.add_argument("--lava-models", action="store_true", help="Lava's own stock models (slow), not the fast ones")
    p.add_argument("--lock-step", action="store_true",
                   help="the fast models in LoihiProtocol's lock step, not free-running (AsyncProtocol)")
    p.add_argument("--timeout", type=float, default=600.0, help="lava-cpu timeout (s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the figures to this path")
    args = p.parse_args(argv)

    net, source = build_network(args)
    rng = np.random.default_rng(args.seed)
    images = rng.random((args.batch,) + tuple(net.input.shape))
    T = args.steps
    torch.set_num_threads(args.ref_threads)
    sim = ReferenceSimulator(net, args.lowering)
    sim.run(images, 1)                                # warm-up (first-call allocations)
    load_before = os.getloadavg()
    ref_runs, lava_runs, exact = [], [], True
    timing = None
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        ref = sim.run(images, T)
        ref_runs.append(time.perf_counter() - t0)
        lava = run_lava(net, images, T, timeout_s=args.timeout, lowering=args.lowering, delays=args.delays,
                        fast=not args.lava_models, free_running=not args.lock_step and not args.lava_models)
        timing = lava.timing
        assert timing is not None
        lava_runs.append(timing)
        exact &= bool(np.array_equal(lava.accumulator, ref.accumulator) and lava.spike_counts == ref.spike_counts
                      and lava.saturations == ref.saturations)
    assert timing is not None
    load_after = os.getloadavg()
    run_s = [t.run_s for t in lava_runs]
    best_ref, med_ref = min(ref_runs), statistics.median(ref_runs)
    best_lava, med_lava = min(run_s), statistics.median(run_s)
    lava_steps = timing.lava_steps
    figures = {
        "network": source, "input": list(images.shape), "steps": T, "lowering": args.lowering, "delays": args.delays,
        "models": "lava" if args.lava_models else "fast", "lock_step": bool(args.lock_step or args.lava_models), "latency": net.output.depth, "lava_steps": lava_steps,
        "lava_processes": timing.processes, "repeat": len(ref_runs),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load_average_before": list(load_before),
                    "load_average_after": list(load_after)},
        "reference": {"torch_threads": args.ref_threads, "runs_s": ref_runs, "per_step_s_best": best_ref / T,
                      "per_step_s_median": med_ref / T},
        "lava_cpu": {"runs": [t.to_dict() for t in lava_runs], "per_step_s_best": best_lava / T,
                     "per_step_s_median": med_lava / T, "per_lava_step_s_best": best_lava / lava_steps,
                     "per_lava_step_s_median": med_lava / lava_steps},
        "ratio_per_step_best": best_lava / best_ref, "ratio_per_step_median": med_lava / med_ref,
        # one Lava step advances one image by one step: compare with the reference's time per image-step
        "ratio_per_lava_step_best": (best_lava / lava_steps) / (best_ref / (T * args.batch)),
        "ratio_end_to_end_median": statistics.median(t.total_s for t in lava_runs) / med_ref,
        "exact_match": exact,
    }
    print(f"network   {source}, input {tuple(images.shape)}, T={T}, {args.lowering}, latency {net.output.depth}, "
          f"{lava_steps} Lava steps, {timing.processes} processes, {figures['models']} models{' in lock step' if figures['lock_step'] else ' free-running'}, delays {args.delays}")
    print(f"reference {best_ref / T * 1e3:9.2f} ms/step best, {med_ref / T * 1e3:.2f} median "
          f"(torch threads {args.ref_threads}; {len(ref_runs)} runs: "
          f"{', '.join(f'{r / T * 1e3:.1f}' for r in ref_runs)})")
    print(f"lava-cpu  {best_lava / T * 1e3:9.2f} ms/logical step best, {med_lava / T * 1e3:.2f} median "
          f"({', '.join(f'{r / T * 1e3:.1f}' for r in run_s)}); per Lava step "
          f"{best_lava / lava_steps * 1e3:.2f} best, {med_lava / lava_steps * 1e3:.2f} median")
    print(f"          compile+start {statistics.median(t.compile_s for t in lava_runs):.2f} s, end to end "
          f"{statistics.median(t.total_s for t in lava_runs):.2f} s (medians)")
    print(f"ratio     {figures['ratio_per_step_best']:.2f}x per logical step (best / best), "
          f"{figures['ratio_per_step_median']:.2f}x (median / median); per Lava step (against the reference's "
          f"time per image-step) {figures['ratio_per_lava_step_best']:.2f}x; load average "
          f"{load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"exact     {'yes' if exact else 'NO: the accumulators or spike counts differ'}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
