"""Spiking-UNet toolchain: train a U-Net, convert it to a Spiking-UNet, fine-tune, evaluate, and
(see the README) export it to Lava-DL netx, simulate it and profile it for Loihi 2.

Every verb has --help. Errors are one line on stderr with a non-zero exit code; outputs are written
atomically, so an error, Ctrl-C (exit 130) or SIGTERM (exit 143) never leaves a half-written file.
`train` and `finetune` save a checkpoint after every epoch and continue from it with --resume;
under `torchrun --nproc_per_node N cli.py train ...` they run data-parallel. `simulate` and `evaluate`
spread their images over worker processes (--workers auto) and, under torchrun, over its ranks.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from toolchain.data.folder import MASK_KINDS
from toolchain.verbs import arguments
from toolchain.vocab import (
    ALIGN_CORNERS_REWRITES,
    LAYOUTS,
    LINEAR_REWRITES,
    LOWERINGS,
    MAXPOOL_REWRITES,
    NORMALIZATIONS,
    TARGETS,
    TASKS,
)

FLAGS = {"width": "--width", "channels": "--channels", "data": "--data DIR", "strict": "--strict",
         "batch": "--batch", "workers": "--workers", "steps": "--steps", "add_noise": "--add-noise",
         "reset_interval": "--reset-interval", "reset_offset": "--reset-offset", "maxpool": "--maxpool",
         "linear": "--linear", "align_corners": "--align-corners", "task": "--task", "classes": "--classes",
         "patch": "--patch", "masks": "--masks", "noise_level": "--noise-level", "max_memory": "--max-memory",
         "sigma": "--sigma", "crop": "--crop", "max_chips": "--max-chips", "lr": "--lr"}
"""Settings named in library messages (as `name`) and the flags that set them."""
MASKS_HELP = ("how --data's folder-layout mask files are read: binary (0/1, 0/255), classes (indices 0..K-1), "
              "instances (0 background, 1..N objects -> foreground); auto: 0/255 as binary, else classes")


def _main_rank() -> bool:
    """False in ranks 1.. of a torchrun job: they neither print summaries nor write reports."""
    from toolchain.frontend.distributed import is_main_process
    return is_main_process()


def _say(text: str) -> None:
    if _main_rank():
        print(text, flush=True)


def _schedule(a: argparse.Namespace) -> Any:
    from toolchain.verbs.runs import Schedule
    return Schedule(a.epochs, a.batches_per_epoch, a.batch, a.patch, a.lr, a.lr_final, a.augment, a.by_area)


def cmd_train(a: argparse.Namespace) -> Any:
    from toolchain.verbs.source import DataSource
    from toolchain.verbs.train import TrainSettings, train
    source = DataSource(a.task, a.channels, a.data, a.layout, a.masks, _memory(a)).resolved()
    report = train(TrainSettings(source, a.out, _schedule(a), a.width, a.depth, a.classes, a.seed, a.resume,
                                 a.noise_map), log=_say)
    _say(f"trained {a.task} U-Net (width {a.width}, depth {a.depth}) in {report.run.seconds:.0f} s, "
         f"final loss {report.final_loss:.4f} -> {a.out}")
    return report


def cmd_convert(a: argparse.Namespace) -> Any:
    from toolchain.frontend.capture import CaptureOptions
    from toolchain.frontend.conversion import ConversionSettings
    from toolchain.verbs.convert import ConvertSettings, convert_checkpoint
    report = convert_checkpoint(ConvertSettings(
        a.checkpoint, a.out, ConversionSettings(a.norm, a.percentile, a.thresholds), a.calibration, a.patch, a.seed,
        a.data, a.layout, a.masks, a.task, a.channels, a.classes,
        CaptureOptions(a.maxpool, a.linear, a.align_corners), _memory(a)))
    capture = report.capture
    if capture is not None:
        kinds = sorted({r["kind"] for r in capture["rewrites"]})
        fid = capture["fidelity"][0] if capture["fidelity"] else None
        print(f"captured {capture['layers']} layers (inputs padded to multiples of {capture['multiple']}); "
              f"rewrites: {', '.join(kinds) or 'none'}"
              + (f"; lowered ANN vs program: max |error| {fid['max_abs_error']:.2e} "
                 f"(output max {fid['output_abs_max']:.3g})" if fid else ""))
        quality = capture.get("quality")
        if quality:
            print(f"ANN {quality['metric']} on {quality['images']} test crops at the export size: "
                  f"{quality['original']:.4g} (the program) -> {quality['converted_ann']:.4g} (after the inexact "
                  f"rewrites; fine-tuning the SNN adapts to them)")
    print(f"converted with {a.norm}-wise normalization, thresholds {list(a.thresholds)} -> {a.out}")
    return report


def cmd_finetune(a: argparse.Namespace) -> Any:
    from toolchain.verbs.train import FinetuneSettings, finetune_checkpoint
    report = finetune_checkpoint(FinetuneSettings(a.checkpoint, a.out, a.steps, _schedule(a), a.seed, a.resume,
                                                  a.data, a.layout, a.masks, _memory(a)), log=_say)
    steps = ",".join(map(str, a.steps))
    _say(f"fine-tuned at T={steps} in {report.run.seconds:.0f} s, final loss {report.final_loss:.4f} -> {a.out}")
    return report


def cmd_evaluate(a: argparse.Namespace) -> Any:
    from toolchain.verbs.evaluate import EvaluateSettings, evaluate_checkpoint
    report = evaluate_checkpoint(EvaluateSettings(a.checkpoint, a.steps, tuple(a.sigma), a.seed, a.crop, a.data,
                                                  a.layout, a.masks, _memory(a), a.workers))
    _say(report.describe_spread())
    for row in report.denoise or []:
        _say(f"sigma {row['sigma']:g}: PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.3f}")
    if report.segmentation is not None:
        _say(", ".join(f"{k} {v:.3f}" for k, v in report.segmentation.items()))
    return report


def cmd_export(a: argparse.Namespace) -> Any:
    from toolchain.verbs.export import DEFAULT_EXPORT_SIDE, ExportSettings, export_checkpoint
    report = export_checkpoint(ExportSettings(a.checkpoint, a.output, a.mt_lowering, a.weight_bits, a.theta_unit,
                                              a.steps, a.input_size or (DEFAULT_EXPORT_SIDE, DEFAULT_EXPORT_SIDE),
                                              a.strict, a.netx_compatible))
    print(report.describe())
    print(f"wrote {a.output}")
    return report


def _profile(a: argparse.Namespace) -> Any:
    from toolchain.verbs.hardware_report import ProfileChoice
    return ProfileChoice(a.profile, tuple(a.set))


def _memory(a: argparse.Namespace) -> Any:
    from toolchain.memory import MemoryLimit
    return MemoryLimit(a.max_memory)


def cmd_simulate(a: argparse.Namespace) -> Any:
    from toolchain.backends import BackendOptions
    from toolchain.verbs.hardware_report import HardwareSummary
    from toolchain.verbs.simulate import SimulateSettings, simulate_file
    options = BackendOptions(timeout_s=a.timeout, reset_interval=a.reset_interval, reset_offset=a.reset_offset)
    report = simulate_file(SimulateSettings(a.network, a.input, a.out, a.backend, a.steps, a.add_noise, a.seed,
                                            _profile(a), options, a.batch, a.workers, a.noise_level, _memory(a)))
    _say(report.describe())
    for row in report.images:
        print(f"{row.image}: {row.spikes:,} spikes in {row.steps} steps, {row.wall_time_s:.2f} s "
              f"on {row.backend} -> {row.out}")
        if row.report is not None:
            print("  " + HardwareSummary(**row.report).describe())
    return report


def cmd_report(a: argparse.Namespace) -> Any:
    from toolchain.verbs.hardware_report import HardwareSummary, ReportSettings, report_file
    report = report_file(ReportSettings(a.network, a.out, a.input, a.steps, _profile(a), a.add_noise, a.seed,
                                        a.max_chips, a.reset_interval, a.reset_offset, _memory(a)))
    print(HardwareSummary(**report["summary"]).describe())
    print(f"wrote {a.out}/report.json, report.md and plots")
    return report["summary"]


def cmd_demo(a: argparse.Namespace) -> Any:
    from toolchain.verbs.demo import describe, run_demo
    report = run_demo(a.out_dir, a.seed, quick=a.quick, retrain=a.retrain, log=lambda line: print(line, flush=True))
    print(describe(report))
    return report


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``error: cli.py VERB: ...``; exit 2) instead of usage and error."""

    def error(self, message: str) -> Any:
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)

    def verb(name: str, helptext: str, handler: Callable[[argparse.Namespace], Any]) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=helptext, description=helptext)
        p.add_argument("--seed", type=arguments.seed, default=0, help="random seed (default 0)")
        p.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
        p.set_defaults(handler=handler)
        return p

    def memory_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--max-memory", type=arguments.memory_size, metavar="SIZE",
                       help="refuse to start what needs more memory than this, estimated first (e.g. 4G; default: "
                            "the smaller of 8G and 80%% of the available memory)")

    def workers_option(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--workers", type=arguments.workers, default="auto", metavar="N|auto",
                       help=f"{what}: N, or auto (default): one per usable core and item within --max-memory, one "
                            f"process for one item; under torchrun per rank, the items spread over the ranks")

    def data_options(p: argparse.ArgumentParser, helptext: str) -> None:
        p.add_argument("--data", metavar="DIR", help=helptext)
        p.add_argument("--layout", choices=LAYOUTS, default="auto", help="layout of --data (default: detected)")
        p.add_argument("--masks", choices=MASK_KINDS, default="auto", help=MASKS_HELP)
        memory_option(p)

    def training_options(p: argparse.ArgumentParser, epochs: int, lr: float, batch: int) -> None:
        p.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default {epochs})")
        p.add_argument("--batches-per-epoch", type=int, default=100, help="batches per epoch (default 100)")
        p.add_argument("--batch", type=int, default=batch,
                       help=f"patches per batch (default {batch}); under torchrun the global batch, split over ranks")
        p.add_argument("--patch", type=int, default=48, help="patch side in pixels (default 48)")
        p.add_argument("--lr", type=float, default=lr, help=f"Adam learning rate (default {lr:g})")
        p.add_argument("--lr-final", type=float, help="cosine decay of the learning rate to this value over the run "
                                                      "(default: constant)")
        p.add_argument("--augment", action="store_true",
                       help="train on every image at scales 1, 0.75, 0.5 and transposed (with the flips: all 8 "
                            "rotations and flips)")
        p.add_argument("--by-area", action="store_true",
                       help="draw training images with probability proportional to their area (default: uniformly)")
        p.add_argument("--resume", action="store_true",
                       help="continue from the checkpoint at --out (saved after every epoch) if there is one")

    p = verb("train", "train a U-Net (the ANN)", cmd_train)
    p.add_argument("--task", choices=TASKS, default="denoise")
    p.add_argument("--channels", type=int, choices=(1, 3), default=1, help="1 gray, 3 color (default 1)")
    p.add_argument("--classes", type=int, default=2, help="segmentation classes (default 2)")
    p.add_argument("--width", type=int, default=64, help="channels of the first stage (paper: 64)")
    p.add_argument("--depth", type=int, default=4, help="number of pooling stages (paper: 4)")
    p.add_argument("--noise-map", action="store_true",
                   help="denoising: tell the network its noise level (one more input channel, sigma / 255; "
                        "FFDNet-style); a blind U-Net removes fine texture as noise")
    p.add_argument("--data", metavar="DIR", help="a dataset folder instead of the embedded photos (see --layout)")
    p.add_argument("--layout", choices=LAYOUTS, default="auto",
                   help="layout of --data: folder = DIR/{train,test}/images[,masks]; or a paper dataset in its "
                        "published layout (default: detected)")
    p.add_argument("--masks", choices=MASK_KINDS, default="auto", help=MASKS_HELP)
    memory_option(p)
    p.add_argument("--out", required=True, help="output checkpoint (.pt)")
    training_options(p, epochs=10, lr=1e-3, batch=16)

    p = verb("convert", "convert an ANN checkpoint, or any U-Net saved with torch.export (.pt2), into a "
                        "Spiking-UNet", cmd_convert)
    p.add_argument("checkpoint", help="ANN checkpoint (.pt) or torch.export.save file (.pt2)")
    p.add_argument("--norm", choices=NORMALIZATIONS, default="connection", help="weight normalization")
    p.add_argument("--percentile", type=arguments.percentile, default=99.9,
                   help="activation percentile or 'max' (99.9)")
    p.add_argument("--thresholds", type=arguments.thresholds, default=(2.0, 1.0, 0.5, 0.25),
                   help="threshold count (4 -> 2,1,0.5,0.25) or explicit list; 1.0 gives an IF neuron")
    p.add_argument("--calibration", type=int, default=32, help="calibration patches (default 32)")
    p.add_argument("--patch", type=int, help="calibration patch side (default 48; a .pt2's export size)")
    data_options(p, "calibration (and test) images from this dataset folder (default: the embedded photos; a "
                    "folder the checkpoint records is read only when named here)")
    p.add_argument("--task", choices=TASKS, help=".pt2: what the network does (a denoiser predicts the noise map)")
    p.add_argument("--channels", type=int, help=".pt2: image channels (checked against the program)")
    p.add_argument("--classes", type=int, help=".pt2 segmentation: classes (checked against the program)")
    p.add_argument("--maxpool", choices=MAXPOOL_REWRITES, default="refuse",
                   help="MaxPool2d has no exact spiking form: refuse, or replace it by AvgPool2d (changes the "
                        "function; fine-tune afterwards)")
    p.add_argument("--linear", choices=LINEAR_REWRITES, default="refuse",
                   help="a layer without activation feeding a concat or a layer: refuse, or an exact signed pair "
                        "of neuron populations (twice its neurons)")
    p.add_argument("--align-corners", choices=ALIGN_CORNERS_REWRITES, default="refuse",
                   help="bilinear upsampling with align_corners=True: refuse, or approximate it by the "
                        "align_corners=False kernel (up to 1/4 pixel shift)")
    p.add_argument("--out", required=True, help="output SNN checkpoint (.pt)")

    p = verb("finetune", "fine-tune a converted Spiking-UNet with the spiking flow", cmd_finetune)
    p.add_argument("checkpoint", help="SNN checkpoint (.pt)")
    p.add_argument("--steps", type=arguments.step_list, default=(10,),
                   help="time steps T, or several (10,20,40,80) that the batches cycle through: the model then "
                        "holds its quality at every T from the smallest up (default 10)")
    data_options(p, "training images from this dataset folder (default: the embedded photos; a folder the "
                    "checkpoint records is read only when named here)")
    p.add_argument("--out", required=True, help="output SNN checkpoint (.pt)")
    training_options(p, epochs=3, lr=1e-4, batch=8)

    p = verb("evaluate", "evaluate an ANN or SNN checkpoint on its test images", cmd_evaluate)
    p.add_argument("checkpoint", help="ANN or SNN checkpoint (.pt)")
    p.add_argument("--steps", type=int, default=10, help="time steps T for an SNN (default 10)")
    p.add_argument("--sigma", type=float, nargs="+", default=[15.0, 25.0, 50.0], help="noise levels (0..255)")
    p.add_argument("--crop", type=int, default=256, help="center crop of test images, 0 = whole (default 256)")
    data_options(p, "evaluate on this dataset folder's test split (default: the embedded photos; a folder the "
                    "checkpoint records is read only when named here)")
    workers_option(p, "worker processes over the test images (and noise levels); auto runs an ANN in one process")

    p = verb("export", "quantize a Spiking-UNet to Loihi fixed point and write a netx HDF5 file", cmd_export)
    p.add_argument("checkpoint", help="SNN checkpoint (.pt), usually fine-tuned")
    p.add_argument("-o", "--output", required=True, help="output .net file")
    p.add_argument("--mt-lowering", choices=LOWERINGS, default="compartments",
                   help="MT neuron as N binary IF compartments on one membrane, or one graded-spike neuron")
    p.add_argument("--weight-bits", type=int, default=8, help="weight mantissa bits (default 8)")
    p.add_argument("--theta-unit", type=int, default=4096, help="smallest threshold in membrane units (default 4096)")
    p.add_argument("--steps", type=int, help="time steps T recorded in the file (default: the fine-tuning T, else 10)")
    p.add_argument("--input-size", type=arguments.height_width, help="nominal input size N or HxW (default 64)")
    p.add_argument("--strict", action="store_true", help="fail instead of saturating values that overflow")
    p.add_argument("--netx-compatible", action="store_true",
                   help="write a stock netx file (CUBA neurons) that lava.lib.dl.netx.hdf5.Network loads: only for "
                        "purely sequential networks of single-threshold neurons, and an approximation (reset to zero)")

    def run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("network", help=".net file written by 'export', or a stock lava-dl netx file (detected)")
        p.add_argument("--steps", type=int,
                       help="time steps T (default: the file's; a stock file: 2 x --reset-interval, else its tSample)")
        p.add_argument("--add-noise", type=float, metavar="SIGMA", help="add Gaussian noise (0..255 scale) first")
        p.add_argument("--profile", default="loihi2", help="hardware profile name or JSON file (default loihi2)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a profile value")
        p.add_argument("--reset-interval", type=int, metavar="R",
                       help="stock netx files: netx's reset_interval (one inference = R steps; neurons reset every R)")
        p.add_argument("--reset-offset", type=int, default=0, metavar="O",
                       help="stock netx files: netx's reset_offset (default 0)")
        memory_option(p)

    p = verb("simulate", "run a .net file on the reference simulator, Lava's CPU simulator or the Loihi 2 profile",
             cmd_simulate)
    run_options(p)
    p.add_argument("--backend", choices=TARGETS, default="reference")
    p.add_argument("--input", required=True,
                   help="an image file or a folder of images; for a stock netx file also a .npy frame (integers: the "
                        "input layer's bias; floats: a frame in [0, 1]) or 'zero' (input bias 0)")
    p.add_argument("--out", required=True, help="output folder: output.npy, spikes.json, output.png (per image)")
    p.add_argument("--timeout", type=float, default=600.0, help="lava-cpu: seconds before a run is abandoned")
    p.add_argument("--noise-level", type=float, metavar="SIGMA",
                   help="a denoiser told its noise level: the sigma (0..255) of inputs that are already noisy "
                        "(default: --add-noise's, else estimated from the image)")
    p.add_argument("--batch", type=int, default=1,
                   help="images of the same padded size simulated together (one Lava run each for lava-cpu; default 1)")
    workers_option(p, "worker processes over the batches of images (reference, loihi2; lava-cpu runs one)")

    p = verb("report", "Loihi 2 cost report: cores, chips, time, spikes, synaptic ops, energy vs the ANN",
             cmd_report)
    run_options(p)
    p.add_argument("--input", help="image file (default: the embedded 'camera' photo at the network's size); a stock "
                                   "netx file needs one: an image, a .npy frame or 'zero' (input bias 0)")
    p.add_argument("--out", default="report", help="output folder (default ./report)")
    p.add_argument("--max-chips", type=int, help="override the profile's chip limit")

    p = verb("demo", "the whole pipeline on the embedded photos", cmd_demo)
    p.add_argument("--out-dir", default="runs/demo", help="where everything is written (default runs/demo)")
    p.add_argument("--quick", action="store_true", help="a tiny, fast configuration (for tests)")
    p.add_argument("--retrain", action="store_true",
                   help="train the U-Net with the shipped denoiser's recipe (12-16 min) instead of taking "
                        "the shipped one")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; the exit code (0, or after exactly one error / interrupted / terminated line on stderr)."""
    from toolchain.verbs.ending import run_verb
    args = build_parser().parse_args(argv)

    def work() -> None:
        _check_outputs(args)
        _emit(args.handler(args), args.json)
    return run_verb(work, FLAGS, _main_rank)


def _check_outputs(a: argparse.Namespace) -> None:
    """Outputs where they can be written, none of them one of the verb's inputs (before any work)."""
    from toolchain.files import check_outputs
    names = vars(a)
    folder_verb = a.verb in ("simulate", "report")
    files = [names[k] for k in ("output", "json") if names.get(k)] + ([a.out] if not folder_verb and
                                                                      names.get("out") else [])
    folders = [names[k] for k in ("out_dir",) if names.get(k)] + ([a.out] if folder_verb else [])
    inputs = [names[k] for k in ("checkpoint", "network", "input", "data") if names.get(k) and names[k] != "zero"]
    check_outputs(files, folders, inputs)


def _emit(report: Any, json_path: str | None) -> None:
    from toolchain.files import write_json
    if json_path and _main_rank():
        write_json(json_path, report if isinstance(report, dict) else report.to_dict())
        print(f"wrote {json_path}")


def run() -> None:
    """The console command's entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
