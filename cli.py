#!/usr/bin/env python3
"""Spiking-UNet toolchain: train a U-Net, convert it to a Spiking-UNet, fine-tune, evaluate, and
(see the README) export it to Lava-DL netx, simulate it and profile it for Loihi 2.

Every verb has --help. Errors are one line on stderr with a non-zero exit code; outputs are written
atomically, so an error, Ctrl-C (exit 130) or SIGTERM (exit 143) never leaves a half-written file.
`train` and `finetune` save a checkpoint after every epoch and continue from it with --resume;
under `torchrun --nproc_per_node N cli.py train ...` they run data-parallel.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any, Callable, Sequence


LAYOUT_CHOICES = ("auto", "folder", "drive", "isbi2012", "camseq01", "bsd68", "cbsd68", "set12")


def _thresholds(text: str) -> tuple[float, ...]:
    """``4`` -> Theorem 3.1's default (2, 1, 0.5, 0.25); ``2,1,0.5`` -> that list."""
    from toolchain.errors import ConfigError
    from toolchain.neuron.mt import default_thresholds, validate_thresholds
    try:
        if "," not in text and "." not in text:
            return default_thresholds(int(text))
        return validate_thresholds(float(v) for v in text.split(","))
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f"thresholds must be a count (4) or a list (2,1,0.5,0.25), got {text!r}")


def _percentile(text: str) -> float | None:
    if text == "max":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"percentile must be a number or 'max', got {text!r}")


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same clean exit as Ctrl-C (temporary files removed, Lava stopped)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _main_rank() -> bool:
    """False in ranks 1.. of a torchrun job: they neither print summaries nor write reports."""
    from toolchain.frontend.distributed import is_main_process
    return is_main_process()


def _emit(report: dict[str, Any], json_path: str | None) -> None:
    from toolchain.files import write_json
    if json_path and _main_rank():
        write_json(json_path, report)
        print(f"wrote {json_path}")


def cmd_train(a: argparse.Namespace) -> dict[str, Any]:
    from toolchain.verbs.workflows import DataSource, train
    report = train(DataSource(a.task, a.channels, a.data, a.layout).resolved(), a.width, a.depth, a.epochs, a.batches_per_epoch,
                   a.batch, a.patch, a.lr, a.seed, a.out, classes=a.classes, resume=a.resume)
    if _main_rank():
        print(f"trained {a.task} U-Net (width {a.width}, depth {a.depth}) in {report['seconds']:.0f} s, "
          f"final loss {report['final_loss']:.4f} -> {a.out}")
    return report


def cmd_convert(a: argparse.Namespace) -> dict[str, Any]:
    from toolchain.frontend.conversion import ConversionSettings
    from toolchain.verbs.workflows import convert_checkpoint
    settings = ConversionSettings(a.norm, a.percentile, a.thresholds)
    report = convert_checkpoint(a.checkpoint, settings, a.calibration, a.patch, a.seed, a.out)
    print(f"converted with {a.norm}-wise normalization, thresholds {list(a.thresholds)} -> {a.out}")
    return report


def cmd_finetune(a: argparse.Namespace) -> dict[str, Any]:
    from toolchain.verbs.workflows import finetune_checkpoint
    report = finetune_checkpoint(a.checkpoint, a.steps, a.epochs, a.batches_per_epoch, a.batch, a.patch,
                                 a.lr, a.seed, a.out, resume=a.resume)
    if _main_rank():
        print(f"fine-tuned at T={a.steps} in {report['seconds']:.0f} s, final loss {report['final_loss']:.4f} -> {a.out}")
    return report


def cmd_evaluate(a: argparse.Namespace) -> dict[str, Any]:
    from toolchain.verbs.workflows import evaluate_checkpoint
    report = evaluate_checkpoint(a.checkpoint, a.steps, a.sigma, a.seed, a.crop, a.data, a.layout)
    for row in report.get("denoise", []):
        print(f"sigma {row['sigma']:g}: PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.3f}")
    if "segmentation" in report:
        print(", ".join(f"{k} {v:.3f}" for k, v in report["segmentation"].items()))
    return report


def _hw(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"input size must be N or HxW, got {text!r}")
    return (parts[0], parts[-1])


def cmd_export(a: argparse.Namespace) -> dict[str, Any]:
    from toolchain.verbs.deploy import export_checkpoint
    report = export_checkpoint(a.checkpoint, a.output, a.mt_lowering, a.weight_bits, a.strict, a.steps, a.input_size,
                               a.theta_unit, netx_compatible=a.netx_compatible)
    print(f"wrote {a.output}")
    return report


def cmd_simulate(a: argparse.Namespace) -> dict[str, Any]:
    from toolchain.verbs.deploy import format_summary, simulate_file
    report = simulate_file(a.network, a.backend, a.input, a.steps, a.out, a.add_noise, a.seed, a.profile, a.set,
                           a.timeout, batch=a.batch, workers=a.workers)
    for row in report["images"]:
        print(f"{row['image']}: {row['spikes']:,} spikes in {row['steps']} steps, {row['wall_time_s']:.2f} s "
              f"on {row['backend']} -> {row['out']}")
        if "report" in row:
            print("  " + format_summary(row["report"]))
    return report


def cmd_report(a: argparse.Namespace) -> dict[str, Any]:
    from toolchain.verbs.deploy import format_summary, report_file
    report = report_file(a.network, a.input, a.steps, a.out, a.profile, a.set, a.add_noise, a.seed, a.max_chips)
    print(format_summary(report["summary"]))
    print(f"wrote {a.out}/report.json, report.md and plots")
    return report["summary"]


def cmd_demo(a: argparse.Namespace) -> dict[str, Any]:
    from toolchain.verbs.demo import run_demo
    return run_demo(a.out_dir, a.seed, quick=a.quick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cli.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)

    def verb(name: str, helptext: str, handler: Callable[[argparse.Namespace], dict[str, Any]]) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=helptext, description=helptext)
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        p.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
        p.set_defaults(handler=handler)
        return p

    def training_options(p: argparse.ArgumentParser, epochs: int, lr: float, batch: int) -> None:
        p.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default {epochs})")
        p.add_argument("--batches-per-epoch", type=int, default=100, help="batches per epoch (default 100)")
        p.add_argument("--batch", type=int, default=batch,
                       help=f"patches per batch (default {batch}); under torchrun the global batch, split over ranks")
        p.add_argument("--patch", type=int, default=48, help="patch side in pixels (default 48)")
        p.add_argument("--lr", type=float, default=lr, help=f"Adam learning rate (default {lr:g})")
        p.add_argument("--resume", action="store_true",
                       help="continue from the checkpoint at --out (saved after every epoch) if there is one")

    p = verb("train", "train a U-Net (the ANN)", cmd_train)
    p.add_argument("--task", choices=("denoise", "segment"), default="denoise")
    p.add_argument("--channels", type=int, choices=(1, 3), default=1, help="1 gray, 3 color (default 1)")
    p.add_argument("--classes", type=int, default=2, help="segmentation classes (default 2)")
    p.add_argument("--width", type=int, default=64, help="channels of the first stage (paper: 64)")
    p.add_argument("--depth", type=int, default=4, help="number of pooling stages (paper: 4)")
    p.add_argument("--data", metavar="DIR", help="a dataset folder instead of the embedded photos (see --layout)")
    p.add_argument("--layout", choices=LAYOUT_CHOICES, default="auto",
                   help="layout of --data: folder = DIR/{train,test}/images[,masks]; or a paper dataset in its "
                        "published layout (default: detected)")
    p.add_argument("--out", required=True, help="output checkpoint (.pt)")
    training_options(p, epochs=10, lr=1e-3, batch=16)

    p = verb("convert", "convert an ANN checkpoint into a Spiking-UNet", cmd_convert)
    p.add_argument("checkpoint", help="ANN checkpoint (.pt)")
    p.add_argument("--norm", choices=("layer", "connection"), default="connection", help="weight normalization")
    p.add_argument("--percentile", type=_percentile, default=99.9, help="activation percentile or 'max' (99.9)")
    p.add_argument("--thresholds", type=_thresholds, default=(2.0, 1.0, 0.5, 0.25),
                   help="threshold count (4 -> 2,1,0.5,0.25) or explicit list; 1.0 gives an IF neuron")
    p.add_argument("--calibration", type=int, default=32, help="calibration patches (default 32)")
    p.add_argument("--patch", type=int, default=48, help="calibration patch side (default 48)")
    p.add_argument("--out", required=True, help="output SNN checkpoint (.pt)")

    p = verb("finetune", "fine-tune a converted Spiking-UNet with the spiking flow", cmd_finetune)
    p.add_argument("checkpoint", help="SNN checkpoint (.pt)")
    p.add_argument("--steps", type=int, default=10, help="time steps T (default 10)")
    p.add_argument("--out", required=True, help="output SNN checkpoint (.pt)")
    training_options(p, epochs=3, lr=1e-4, batch=8)

    p = verb("evaluate", "evaluate an ANN or SNN checkpoint on its test images", cmd_evaluate)
    p.add_argument("checkpoint", help="ANN or SNN checkpoint (.pt)")
    p.add_argument("--steps", type=int, default=10, help="time steps T for an SNN (default 10)")
    p.add_argument("--sigma", type=float, nargs="+", default=[15.0, 25.0, 50.0], help="noise levels (0..255)")
    p.add_argument("--crop", type=int, default=256, help="center crop of test images, 0 = whole (default 256)")
    p.add_argument("--data", metavar="DIR", help="evaluate on this dataset folder instead of the checkpoint's test split")
    p.add_argument("--layout", choices=LAYOUT_CHOICES, default="auto", help="layout of --data (default: detected)")

    p = verb("export", "quantize a Spiking-UNet to Loihi fixed point and write a netx HDF5 file", cmd_export)
    p.add_argument("checkpoint", help="SNN checkpoint (.pt), usually fine-tuned")
    p.add_argument("-o", "--output", required=True, help="output .net file")
    p.add_argument("--mt-lowering", choices=("compartments", "graded"), default="compartments",
                   help="MT neuron as N binary IF compartments on one membrane, or one graded-spike neuron")
    p.add_argument("--weight-bits", type=int, default=8, help="weight mantissa bits (default 8)")
    p.add_argument("--theta-unit", type=int, default=4096, help="smallest threshold in membrane units (default 4096)")
    p.add_argument("--steps", type=int, help="time steps T recorded in the file (default: the fine-tuning T, else 10)")
    p.add_argument("--input-size", type=_hw, help="nominal input size N or HxW (default 64)")
    p.add_argument("--strict", action="store_true", help="fail instead of saturating values that overflow")
    p.add_argument("--netx-compatible", action="store_true",
                   help="write a stock netx file (CUBA neurons) that lava.lib.dl.netx.hdf5.Network loads: only for "
                        "purely sequential networks of single-threshold neurons, and an approximation (reset to zero)")

    def run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("network", help=".net file written by 'export'")
        p.add_argument("--steps", type=int, help="time steps T (default: the file's)")
        p.add_argument("--add-noise", type=float, metavar="SIGMA", help="add Gaussian noise (0..255 scale) first")
        p.add_argument("--profile", default="loihi2", help="hardware profile name or JSON file (default loihi2)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a profile value")

    p = verb("simulate", "run a .net file on the reference simulator, Lava's CPU simulator or the Loihi 2 profile",
             cmd_simulate)
    run_options(p)
    p.add_argument("--backend", choices=("reference", "lava-cpu", "loihi2"), default="reference")
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="output folder: output.npy, spikes.json, output.png (per image)")
    p.add_argument("--timeout", type=float, default=600.0, help="lava-cpu: seconds before a run is abandoned")
    p.add_argument("--batch", type=int, default=1,
                   help="images of the same padded size simulated together (one Lava run each for lava-cpu; default 1)")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes over the images (reference, loihi2; default 1)")

    p = verb("report", "Loihi 2 cost report: cores, chips, spikes, synaptic ops, energy vs the ANN", cmd_report)
    run_options(p)
    p.add_argument("--input", help="image file (default: the embedded 'camera' photo at the network's size)")
    p.add_argument("--out", default="report", help="output folder (default ./report)")
    p.add_argument("--max-chips", type=int, help="override the profile's chip limit")

    p = verb("demo", "the whole pipeline on the embedded photos", cmd_demo)
    p.add_argument("--out-dir", default="runs/demo", help="where everything is written (default runs/demo)")
    p.add_argument("--quick", action="store_true", help="a tiny, fast configuration (for tests)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from toolchain.errors import ToolchainError
    previous = _install_sigterm()
    try:
        report = args.handler(args)
        _emit(report, args.json)
    except ToolchainError as exc:
        _stderr_line(f"error: {' '.join(str(exc).splitlines())}")
        return exc.exit_code
    except Terminated:
        _stderr_line("terminated: no partial output was left behind")
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        _stderr_line("interrupted: no partial output was left behind")
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _stderr_line(text: str) -> None:
    """One line in a single write: lines of several processes (torchrun ranks) never interleave."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _install_sigterm() -> Any:
    """SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) while a verb runs, so a kill takes the
    same clean path as Ctrl-C: atomic writes drop their temporary files, the lava-cpu backend kills
    its worker group, a torchrun rank leaves its process group. Returns the handler to restore."""
    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:          # not the main thread (cli.main called from a thread): leave it alone
        return None


if __name__ == "__main__":
    sys.exit(main())
