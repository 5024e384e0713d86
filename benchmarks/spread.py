#!/usr/bin/env python3
"""One process with torch's threads against N worker processes of one thread, for simulate and evaluate.

Side by side in one run, wall time of the command as a user runs it (``cli.py``, process start included):

* (a) ``--workers 1``: one process, torch's default threads (every usable core; OMP_NUM_THREADS unset);
* (b) ``--workers N``: N forked processes x 1 torch thread (N: the usable cores, or ``--workers``);

for ``simulate`` of a folder of images on the reference backend and on the loihi2 target (which also
writes a hardware report and plots per image), and ``evaluate`` of an SNN and of its ANN checkpoint (the
embedded test photos at the default sigmas 15, 25, 50). ``speedup = (a) / (b)`` (median over ``--repeat``
interleaved runs). The network is the shipped denoiser (``toolchain/data/pretrained/denoise_gray_w16d2.pt``),
converted and exported here as the README's *Using it* commands do; the images are central crops of the
embedded test photos. Both ways write the same files and metrics (the tests check it). Example::

    python benchmarks/spread.py --images 12 --size 128 --repeat 3 --json spread.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from toolchain.verbs.spread import usable_cores  # noqa: E402

SHIPPED = REPO / "toolchain" / "data" / "pretrained" / "denoise_gray_w16d2.pt"


def cli(args: list[str], threads: int | None = None) -> float:
    """Seconds ``cli.py ARGS`` takes (OMP_NUM_THREADS set to ``threads``, or unset: torch's default)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    run = subprocess.run([sys.executable, str(REPO / "cli.py"), *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"error: cli.py {' '.join(args)} failed: {run.stderr.strip()[-500:]}")
    return seconds


def prepare(work: Path, images: int, size: int) -> dict[str, Path]:
    """The SNN (converted from the shipped ANN), its .net file and a folder of ``images`` crops."""
    import numpy as np
    from PIL import Image

    from toolchain.data.embedded import denoise_split
    from toolchain.data.patches import center_crop
    snn, net, photos = work / "snn.pt", work / "model.net", work / "photos"
    cli(["convert", str(SHIPPED), "--norm", "connection", "--percentile", "99",
         "--thresholds", "2,1,0.5,0.25,0.125,0.0625", "--out", str(snn)], threads=1)
    cli(["export", str(snn), "-o", str(net), "--input-size", "64"], threads=1)
    photos.mkdir()
    test = denoise_split(1)[1]
    for k in range(images):
        image = test.images[k % len(test.images)]
        shift = 16 * (k // len(test.images))          # more images than photos: other crops of them
        crop = center_crop(image[..., shift:, shift:], size)
        Image.fromarray((np.clip(crop[0], 0, 1) * 255).round().astype(np.uint8)).save(photos / f"im{k:03d}.png")
    return {"snn": snn, "net": net, "photos": photos}


def cases(files: dict[str, Path], out: Path) -> dict[str, list[str]]:
    simulate = ["simulate", str(files["net"]), "--input", str(files["photos"]), "--add-noise", "25"]
    return {"simulate reference": [*simulate, "--backend", "reference", "--out", str(out / "ref")],
            "simulate loihi2": [*simulate, "--backend", "loihi2", "--out", str(out / "loihi2")],
            "evaluate snn (T=10)": ["evaluate", str(files["snn"]), "--steps", "10"],
            "evaluate ann": ["evaluate", str(SHIPPED)]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=usable_cores(), help="N of (b) (default: the usable cores)")
    p.add_argument("--images", type=int, default=12, help="images in simulate's folder (default 12)")
    p.add_argument("--size", type=int, default=128, help="their side in pixels (default 128)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved runs of each way (medians; default 3)")
    p.add_argument("--only", nargs="+", help="run only the cases whose names start with these words")
    p.add_argument("--json", help="also write the figures to this path")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spread-bench-") as tmp:
        work = Path(tmp)
        files = prepare(work, args.images, args.size)
        todo = {name: argv_ for name, argv_ in cases(files, work).items()
                if not args.only or any(name.startswith(word) for word in args.only)}
        print(f"{platform.processor() or platform.machine()}, {usable_cores()} usable cores, {args.images} images "
              f"of {args.size}x{args.size} for simulate, the 6 embedded test photos x 3 sigmas for evaluate; "
              f"median of {args.repeat}", flush=True)
        print(f"{'case':<22} {'(a) 1 process':>16} {f'(b) {args.workers} x 1 thread':>20} {'speedup':>8}", flush=True)
        rows = {}
        for name, command in todo.items():
            one: list[float] = []
            many: list[float] = []
            for _ in range(args.repeat):
                one.append(cli([*command, "--workers", "1"]))
                many.append(cli([*command, "--workers", str(args.workers)], threads=1))
            a, b = statistics.median(one), statistics.median(many)
            rows[name] = {"one_process_s": a, "workers_s": b, "speedup": a / b, "runs_one": one, "runs_workers": many}
            print(f"{name:<22} {a:>14.2f} s {b:>18.2f} s {a / b:>7.2f}x", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"workers": args.workers, "cores": usable_cores(), "images": args.images,
                                               "size": args.size, "repeat": args.repeat, "cases": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
