"""The experiments' command line: one command per experiment, each writing ``<out>/<name>.json``.

A result is cached: an experiment whose JSON exists with the same settings is not run again
(``--force`` reruns it); trained / fine-tuned models are cached in ``<out>/models`` and shared.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import torch

from toolchain.files import write_json

from . import ablation, deploy, figures, foreign, neurons, real_data, tables, time_steps
from .common import Context, Settings, log

Experiment = Callable[[Context], dict[str, Any]]

EXPERIMENTS: dict[str, tuple[Experiment, str]] = {
    "tables12": (tables.run, "U-Net vs Spiking-UNet, denoising (gray, color) and segmentation (paper Tables 1-2)"),
    "time_steps": (time_steps.run, "quality vs T, converted-only vs fine-tuned; steps saved by fine-tuning"),
    "ablation": (ablation.run_ablation, "layer- vs connection-wise, IF vs MT, with / without fine-tuning (Table 3)"),
    "thresholds": (ablation.run_thresholds, "number and values of the MT thresholds (Table 4)"),
    "energy": (deploy.run_energy, "energy: the paper's method and the Loihi 2 profile (Table 5)"),
    "quantized": (deploy.run_quantized, "exported (Loihi fixed point) vs float SNN PSNR"),
    "figures": (figures.run, "Fig. 3 (activation vs spike rate), firing rates, image grid"),
    "speed": (deploy.run_speed, "PyTorch SNN time vs T x ANN time; export time"),
    "neurons": (neurons.run, "IF / ML / RS / MT neurons, converted + fine-tuned and trained directly (Tables 1-2)"),
    "foreign_unet": (foreign.run, "milesial's U-Net (BatchNorm, MaxPool, F.pad) captured, converted, fine-tuned"),
    "real_data": (real_data.run, "the shipped denoiser beside NL-means / wavelet / TV / BM3D on held-out photos; "
                                 "nuclei segmentation fine-tuned at one T or several"),
}
DEFAULT_OUT = "runs/experiments"
QUICK_OUT = "runs/experiments_quick"


def command(name: str, quick: bool, out: str | Path) -> str:
    default = QUICK_OUT if quick else DEFAULT_OUT
    extra = "" if str(out) == default else f" --out {out}"
    return f"python -m experiments {name}{' --quick' if quick else ''}{extra}"


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1], timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def result_path(out: str | Path, name: str) -> Path:
    return Path(out) / f"{name}.json"


def run_experiment(name: str, out: str | Path, quick: bool = False, force: bool = False) -> dict[str, Any]:
    """Run one experiment (or return its cached result) and write ``<out>/<name>.json``."""
    settings = Settings.quick_settings() if quick else Settings.full()
    target = result_path(out, name)
    wanted = json.loads(json.dumps(settings.to_dict()))
    if target.exists() and not force:
        cached = json.loads(target.read_text())
        if cached.get("settings") == wanted:
            log(f"{name}: cached ({target}); --force reruns it")
            return cached
    ctx = Context(out, settings)
    fn, title = EXPERIMENTS[name]
    log(f"{name}: {title}")
    started = datetime.datetime.now().isoformat(timespec="seconds")
    start = time.perf_counter()
    results = fn(ctx)
    record = {"experiment": name, "title": title, "command": command(name, quick, out), "quick": quick,
              "settings": wanted, "started": started, "seconds": time.perf_counter() - start,
              "git_commit": _commit(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "results": results}
    write_json(target, record)
    log(f"{name}: done in {record['seconds']:.0f} s -> {target}")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=[*EXPERIMENTS, "all", "docs"],
                        help="an experiment, 'all' (every experiment, then docs) or 'docs' (RESULTS.md from the JSON)")
    parser.add_argument("--quick", action="store_true", help="tiny settings (for tests): same structure, meaningless numbers")
    parser.add_argument("--out", help=f"results folder (default {DEFAULT_OUT}; {QUICK_OUT} with --quick)")
    parser.add_argument("--force", action="store_true", help="rerun even if a result with the same settings exists")
    parser.add_argument("--docs-dir", help="where 'docs' writes RESULTS.md and figures/ (default docs; "
                                           "<out>/docs with --quick, so that quick numbers never replace the real ones)")
    a = parser.parse_args(argv)
    if os.environ.get("OMP_NUM_THREADS") is None:
        torch.set_num_threads(1)
    out = Path(a.out or (QUICK_OUT if a.quick else DEFAULT_OUT))
    if a.name != "docs":
        names = list(EXPERIMENTS) if a.name == "all" else [a.name]
        start = time.perf_counter()
        for name in names:
            run_experiment(name, out, a.quick, a.force)
        log(f"{', '.join(names)}: {time.perf_counter() - start:.0f} s in all")
    if a.name in ("docs", "all"):
        from .docs import write_docs
        path = write_docs(out, a.docs_dir or (out / "docs" if a.quick else "docs"))
        log(f"wrote {path}")
    return 0
