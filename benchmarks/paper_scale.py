#!/usr/bin/env python3
"""The paper-size U-Net (width 64, depth 4, 34.5 M parameters) through export, simulation and the
Loihi 2 report, side by side in one process so that the ratios hold on a noisy machine.

For each input side (``--sizes``, default 64; the paper's images are 256) and T (default 10) it prints

    float SNN      s per step   the PyTorch SNN (fused float32 MT kernel), ``simulate``
    reference      s per step   the exact integer reference simulator (warm runs: plans made, numba compiled;
                                the first run, planning included, is printed too); float SNN and reference
                                run as --repeat interleaved pairs, the fastest of each is reported
    lava-cpu       s per step   Lava's CPU simulator, the stepping (``--no-lava`` skips it)
    report         s            the Loihi 2 profile report (reference run keeping count maps + report files)
    peak memory    MiB          the largest resident set above the phase's start (freed heap memory given
                                back first; sampled every 10 ms); for lava-cpu the proportional set size
                                (PSS) summed over its process tree, every 200 ms

and once: the .net file's size against its int8 weights (the budget: + 10 %) and the float32 weights.
``--memory-check`` adds, at the smallest side, the peak memory of the report's count run (per-neuron
spike counts per threshold) at T and at 4T. Every result is checked: the reference and lava-cpu
accumulators agree exactly. ``--json PATH`` writes the figures. torch runs on ``--threads`` threads
(default 1). Examples (the second: the paper's image size, without lava-cpu)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/paper_scale.py --sizes 64 128 --memory-check --json /tmp/ps.json
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/paper_scale.py --sizes 256 --no-lava
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netx_export import read_network, write_network  # noqa: E402
from toolchain.backends.base import BackendOptions, get_backend  # noqa: E402
from toolchain.frontend.conversion import ConversionSettings, convert  # noqa: E402
from toolchain.frontend.unet import UNet, UNetConfig  # noqa: E402
from toolchain.hardware.costs import collect_activity  # noqa: E402
from toolchain.lowering.lower import export_network  # noqa: E402
from toolchain.lowering.quantize import QuantSettings  # noqa: E402
from toolchain.simulators.reference import ReferenceSimulator  # noqa: E402
from toolchain.verbs.hardware_report import profile_report  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _pss(pid: int) -> int:
    """Proportional set size (shared pages divided among their sharers: sums over processes correctly)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _release() -> None:
    """Give freed heap memory back to the system, so that a phase's allocations show in its RSS."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


class PeakMemory:
    """Peak resident memory above the start of a ``with`` block (this process, or its process tree)."""

    def __init__(self, tree: bool = False, interval: float = 0.01) -> None:
        self.tree, self.interval, self.peak, self._stop = tree, interval, 0, threading.Event()

    def _now(self) -> int:
        return sum(_pss(p) for p in _tree(os.getpid())) if self.tree else _rss(os.getpid())

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._now())
            self._stop.wait(self.interval * (20 if self.tree else 1))

    def __enter__(self) -> PeakMemory:
        _release()
        self.start = self._now()
        self.peak = self.start
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._now())

    @property
    def mib(self) -> float:
        return (self.peak - self.start) / 2 ** 20


def timed(fn: Any, tree: bool = False) -> tuple[Any, float, float]:
    with PeakMemory(tree) as mem:
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
    return out, seconds, mem.mib


def file_figures(net: Any, params: int) -> dict[str, Any]:
    """The .net file's size against its int8 weights (budget: + 10 %) and float32 weights; write / read time."""
    with tempfile.TemporaryDirectory() as tmp:
        path, write_s, _ = timed(lambda: write_network(net, Path(tmp) / "paper.net"))
        size = path.stat().st_size
        _, read_s, _ = timed(lambda: read_network(path))
    weights = sum(int(np.asarray(layer.synapses.weight).size) for layer in net.synaptic_layers)
    print(f"file     {size / 1e6:.1f} MB = {size / weights:.3f} x its int8 weights ({weights / 1e6:.1f} MB; budget "
          f"1.1x), float32 weights {4 * params / 1e6:.1f} MB; write {write_s:.1f} s, read {read_s:.1f} s")
    return {"bytes": size, "int8_weights_bytes": weights, "budget_bytes": int(1.1 * weights),
            "float32_weights_bytes": 4 * params, "write_s": write_s, "read_s": read_s,
            "within_budget": size <= 1.1 * weights}


def measure(args: argparse.Namespace, snn: Any, info: Any, side: int, params: int,
            figures: dict[str, Any]) -> dict[str, Any]:
    """Every figure of one input side, side by side."""
    T = args.steps
    (net, _), export_s, _ = timed(lambda: export_network(snn, info, (side, side), QuantSettings(steps=T),
                                                         lowering=args.lowering))
    row: dict[str, Any] = {"export_s": export_s}
    if "file" not in figures:
        figures["file"] = file_figures(net, params)
    x = np.random.default_rng(args.seed).random((1, 1, side, side))
    xt = torch.from_numpy(x).float()
    sim = ReferenceSimulator(net)
    with torch.no_grad():
        snn.simulate(xt, 1)                                                  # warm-up
    ref, first_s, first_mib = timed(lambda: sim.run(x, T))                   # plans made, numba compiled
    float_runs, ref_runs, float_mib, ref_mib = [], [], 0.0, first_mib
    for _ in range(max(1, args.repeat)):                                     # interleaved pairs
        with torch.no_grad():
            _, seconds, mib = timed(lambda: snn.simulate(xt, T))
        float_runs.append(seconds)
        float_mib = max(float_mib, mib)
        ref, seconds, mib = timed(lambda: sim.run(x, T))
        ref_runs.append(seconds)
        ref_mib = max(ref_mib, mib)
    float_s, ref_s = min(float_runs), min(ref_runs)
    row.update({"float_snn_per_step_s": float_s / T, "float_snn_peak_mib": float_mib,
                "reference_per_step_s": ref_s / T, "reference_first_run_s": first_s,
                "reference_peak_mib": ref_mib, "reference_over_float": ref_s / float_s,
                "float_snn_runs_s": float_runs, "reference_runs_s": ref_runs})
    print(f"{side:4d} px  float SNN {float_s / T:7.3f} s/step ({float_mib:6.0f} MiB)   reference {ref_s / T:7.3f} "
          f"s/step ({ref_mib:6.0f} MiB; first run {first_s:.1f} s) = {ref_s / float_s:.2f}x float")
    if not args.no_lava:
        backend = get_backend("lava-cpu", net, BackendOptions(timeout_s=args.timeout))
        lava, lava_total_s, lava_mib = timed(lambda: backend.run(net, x, T), tree=True)
        run_s = float(getattr(lava.timing, "run_s", lava_total_s))
        exact = bool(np.array_equal(lava.accumulator, ref.accumulator) and lava.spike_counts == ref.spike_counts)
        row.update({"lava_per_step_s": run_s / T, "lava_total_s": lava_total_s, "lava_peak_mib": lava_mib,
                    "lava_over_reference": run_s / ref_s, "lava_exact": exact})
        print(f"         lava-cpu  {run_s / T:7.3f} s/step ({lava_mib:6.0f} MiB, PSS of the process tree; end to "
              f"end {lava_total_s:.1f} s) = {run_s / ref_s:.2f}x reference; {'exact' if exact else 'NOT EXACT'}")
    if not args.no_report:
        with tempfile.TemporaryDirectory() as tmp:
            _, report_s, report_mib = timed(lambda: profile_report(net, x, T, tmp))
        row.update({"report_s": report_s, "report_peak_mib": report_mib})
        print(f"         report    {report_s:7.1f} s        ({report_mib:6.0f} MiB)")
    if args.memory_check and side == min(args.sizes):
        growth = {}
        for steps in (T, 4 * T):                   # the counts the report needs: memory independent of T
            _, _, growth[steps] = timed(lambda steps=steps: collect_activity(net, x, steps))
        row["counts_peak_mib"] = {str(k): v for k, v in growth.items()}
        print(f"         counts    peak {growth[T]:.0f} MiB at T = {T}, {growth[4 * T]:.0f} MiB at T = {4 * T} "
              f"(ratio {growth[4 * T] / growth[T]:.2f})")
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[64], help="input sides (the paper: 256)")
    p.add_argument("--steps", type=int, default=10, help="T")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--lowering", choices=("compartments", "graded"), default="graded",
                   help="MT lowering (graded: the paper-size net does not fit Loihi 2 as compartments)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved float SNN / reference pairs (best reported)")
    p.add_argument("--no-lava", action="store_true", help="skip lava-cpu")
    p.add_argument("--no-report", action="store_true", help="skip the Loihi 2 report")
    p.add_argument("--memory-check", action="store_true",
                   help="at the smallest side: peak memory of the report's count run at T and at 4T")
    p.add_argument("--timeout", type=float, default=3600.0, help="lava-cpu timeout (s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the figures to this path")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    T = args.steps

    torch.manual_seed(args.seed)
    ann = UNet(UNetConfig("denoise", 1, 1, width=args.width, depth=args.depth))
    params = sum(int(q.numel()) for q in ann.parameters())
    calib = min(args.sizes)
    snn, info = convert(ann, torch.rand(4, 1, calib, calib), ConversionSettings())
    snn.eval()
    figures: dict[str, Any] = {
        "network": f"random U-Net denoise width={args.width} depth={args.depth} seed={args.seed}",
        "parameters": params, "steps": T, "lowering": args.lowering, "torch_threads": args.threads,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "load_average_start": list(os.getloadavg())}, "sizes": {}}
    print(f"network  {figures['network']}: {params / 1e6:.1f} M parameters, T={T}, {args.lowering}, "
          f"torch threads {args.threads}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    for side in args.sizes:
        row = measure(args, snn, info, side, params, figures)
        figures["sizes"][str(side)] = row
        if row.get("lava_exact") is False:
            return 1
    figures["machine"]["load_average_end"] = list(os.getloadavg())
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
