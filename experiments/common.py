"""What every experiment shares: sizes, the output folder, the ONE trained ANN per task, cached
converted / fine-tuned SNNs, and batched evaluation that reads every T of a sweep off one run.

Everything here calls the toolchain (``toolchain.verbs.train.train``, ``toolchain.frontend.conversion.convert``,
``toolchain.frontend.training.finetune_spiking_flow``, ``toolchain.tasks``); nothing re-implements its maths.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from toolchain.tasks import metrics
from toolchain.files import write_json
from toolchain.frontend.checkpoint import save_checkpoint
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.data.embedded import ImageSet
from toolchain.data.patches import add_gaussian_noise, center_crop
from toolchain.frontend.checkpoint import load_ann, load_snn, snn_checkpoint
from toolchain.frontend.snn import SpikingNetwork
from toolchain.tasks.sampling import Sampler
from toolchain.frontend.training import finetune_spiking_flow
from toolchain.frontend.unet import UNet
from toolchain.verbs.runs import Schedule
from toolchain.verbs.source import DataSource, calibration_batch, seeded
from toolchain.verbs.train import TrainSettings, train

MT4 = (2.0, 1.0, 0.5, 0.25)
IF1 = (1.0,)
TASKS = {"gray": DataSource("denoise", 1), "color": DataSource("denoise", 3), "segment": DataSource("segment", 1)}


@dataclass(frozen=True)
class Settings:
    """Sizes of a run. ``full()`` is what RESULTS.md reports; ``quick()`` keeps every experiment's
    structure with tiny nets and inputs (for tests)."""

    quick: bool = False
    seed: int = 0
    width: int = 16
    depth: int = 2
    ann_batches: dict[str, int] = field(default_factory=lambda: {"gray": 800, "color": 600, "segment": 1000})
    ann_batch: int = 16
    ann_patch: int = 48
    ann_lr: float = 1e-3
    calib_count: int = 32
    calib_patch: int = 48
    ft_step_budget: int = 1000  # fine-tuning: T x batches, the same compute at every T (100 batches at T=10)
    ft_batch: int = 8
    ft_patch: int = 32
    ft_lr: float = 1e-4
    dt_batches: int = 60
    dt_batch: int = 8
    dt_patch: int = 32
    dt_lr: float = 1e-3
    dt_steps: int = 10
    crop: int = 256            # tables 1-2
    sweep_crop: int = 128      # the sweep-heavy experiments
    sigmas: tuple[float, ...] = (15.0, 25.0, 50.0)
    sigma: float = 25.0
    short_t: int = 10
    long_t: int = 20
    very_long_t: int = 200     # ablation's converted-only rows (the paper: 1000)
    sweep: tuple[int, ...] = (5, 10, 20, 40, 80, 160)
    energy_side: int = 64
    speed_reps: int = 7

    @classmethod
    def full(cls) -> "Settings":
        return cls()

    @classmethod
    def quick_settings(cls) -> "Settings":
        return cls(quick=True, width=4, ann_batches={"gray": 6, "color": 4, "segment": 4}, ann_batch=4,
                   ann_patch=32, calib_count=4, calib_patch=32, ft_step_budget=8, ft_batch=2, ft_patch=16,
                   dt_batches=2, dt_batch=2, dt_patch=16, dt_steps=4, crop=32, sweep_crop=32, short_t=4,
                   long_t=8, very_long_t=24, sweep=(2, 4, 8, 16), energy_side=16, speed_reps=1)

    def ft_batches(self, steps: int) -> int:
        """Fine-tuning batches at ``steps`` time steps (a spiking-flow batch costs about T forward steps)."""
        return max(1, self.ft_step_budget // steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def log(message: str) -> None:
    print(f"[experiments {time.strftime('%H:%M:%S')}] {message}", flush=True)


def thr_name(thresholds: Sequence[float]) -> str:
    return "-".join(f"{t:g}" for t in thresholds)


class Context:
    """The output folder, the settings, and the shared models (trained / converted / fine-tuned once)."""

    def __init__(self, out: str | Path, settings: Settings) -> None:
        self.out = Path(out)
        self.settings = settings
        self.models = self.out / "models"
        self.models.mkdir(parents=True, exist_ok=True)
        self._data: dict[str, tuple[ImageSet, ImageSet]] = {}

    # ------------------------------------------------------------------ data
    def data(self, task: str) -> tuple[ImageSet, ImageSet]:
        if task not in self._data:
            self._data[task] = TASKS[task].load()
        return self._data[task]

    # ------------------------------------------------------------------ sidecar-checked cache
    def _cached(self, path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
        side = path.with_suffix(".json")
        if path.exists() and side.exists():
            record = json.loads(side.read_text())
            if record.get("key") == json.loads(json.dumps(key)):
                return record
        return None

    def _record(self, path: Path, key: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
        record = {"key": key, **info}
        write_json(path.with_suffix(".json"), record)
        return record

    # ------------------------------------------------------------------ the ANN, one per task
    def ann(self, task: str) -> tuple[UNet, dict[str, Any]]:
        """The task's trained U-Net, trained once (``toolchain.verbs.train.train``) and reused by every experiment."""
        s = self.settings
        path = self.models / f"ann_{task}.pt"
        key = {"task": task, "width": s.width, "depth": s.depth, "batches": s.ann_batches[task], "batch": s.ann_batch,
               "patch": s.ann_patch, "lr": s.ann_lr, "seed": s.seed}
        record = self._cached(path, key)
        if record is None:
            log(f"train the {task} U-Net ({s.ann_batches[task]} batches of {s.ann_batch} x {s.ann_patch}^2)")
            start = time.perf_counter()
            epochs = 8 if s.ann_batches[task] % 8 == 0 else 1
            schedule = Schedule(epochs, s.ann_batches[task] // epochs, s.ann_batch, s.ann_patch, s.ann_lr)
            report = train(TrainSettings(TASKS[task], path, schedule, s.width, s.depth, seed=s.seed), progress=False)
            record = self._record(path, key, {"seconds": time.perf_counter() - start,
                                              "final_loss": report.final_loss, "path": path.name})
            log(f"  trained in {record['seconds']:.0f} s, final loss {record['final_loss']:.4f}")
        return load_ann(path)[0], record

    # ------------------------------------------------------------------ converted / fine-tuned SNNs
    def calibration(self, task: str) -> torch.Tensor:
        s = self.settings
        return calibration_batch(TASKS[task], s.calib_count, s.calib_patch, s.seed)

    def convert(self, task: str, norm: str = "connection",
                thresholds: Sequence[float] = MT4) -> tuple[SpikingNetwork, dict[str, Any]]:
        """The task's ANN converted (``toolchain.frontend.conversion.convert``): in memory, it is cheap."""
        ann, _ = self.ann(task)
        return convert(ann, self.calibration(task), ConversionSettings(norm, 99.9, tuple(thresholds)))

    def snn(self, task: str, norm: str = "connection", thresholds: Sequence[float] = MT4,
            finetune_steps: int | None = None) -> tuple[SpikingNetwork, dict[str, Any]]:
        """A converted SNN, fine-tuned with the spiking flow at ``finetune_steps`` (None: converted only).
        Fine-tuned ones are cached as checkpoints in ``out/models`` (shared between experiments)."""
        if finetune_steps is None:
            snn, spiking = self.convert(task, norm, thresholds)
            return snn, {"spiking": spiking, "finetune": None}
        s = self.settings
        path = self.models / f"snn_{task}_{norm}_{thr_name(thresholds)}_ft{finetune_steps}.pt"
        key = {"ann": self.ann(task)[1]["key"], "norm": norm, "thresholds": list(thresholds), "steps": finetune_steps,
               "batches": s.ft_batches(finetune_steps), "batch": s.ft_batch, "patch": s.ft_patch, "lr": s.ft_lr, "seed": s.seed}
        record = self._cached(path, key)
        if record is None:
            snn, spiking = self.convert(task, norm, thresholds)
            report = self.finetune(snn, task, finetune_steps)
            spiking = {**spiking, "finetuned_steps": finetune_steps}
            save_checkpoint(path, snn_checkpoint(snn, spiking, {"data": TASKS[task].to_dict(), "finetune": report}))
            record = self._record(path, key, {"finetune": report, "path": path.name})
        snn, ckpt = load_snn(path)
        return snn, {"spiking": ckpt.spiking, "finetune": record["finetune"]}

    def finetune(self, snn: SpikingNetwork, task: str, steps: int) -> dict[str, Any]:
        """Spiking-flow fine-tuning (paper Algorithm 1) of any SpikingNetwork, in place; returns its report."""
        s = self.settings
        batches = s.ft_batches(steps)
        log(f"fine-tune {task} SNN ({type(snn).__name__}, thresholds {list(snn.thresholds)}) at T={steps}: "
            f"{batches} batches of {s.ft_batch} x {s.ft_patch}^2, lr {s.ft_lr:g}")
        rng, gen = seeded(s.seed + 1)
        sampler = Sampler(TASKS[task].task, self.data(task)[0], s.ft_patch, s.ft_batch, rng, gen)
        start = time.perf_counter()
        snn.train()
        with torch.enable_grad():       # callers may be evaluating under no_grad when a cache miss trains
            history = finetune_spiking_flow(snn, sampler, steps, batches, s.ft_lr, progress=False)
        snn.eval()
        seconds = time.perf_counter() - start
        log(f"  {seconds:.0f} s, loss {np.mean(history[:5]):.4f} -> {np.mean(history[-5:]):.4f}")
        return {"steps": steps, "batches": batches, "batch": s.ft_batch, "patch": s.ft_patch, "lr": s.ft_lr,
                "loss_first5": float(np.mean(history[:5])), "loss_last5": float(np.mean(history[-5:])),
                "seconds": seconds}


# ============================================================================ evaluation

@torch.no_grad()
def prefix_outputs(snn: SpikingNetwork, x: torch.Tensor, steps: Iterable[int]) -> dict[int, torch.Tensor]:
    """The decoded output sum_t head(o(t)) / T for every T in ``steps``, read off ONE simulation of max(steps).

    Identical to ``snn.simulate(x, T).output`` for each T (the membranes start at 0 either way; the
    tests check it): the sweep costs max(T) steps instead of sum(T).
    """
    wanted = sorted(set(int(t) for t in steps))
    h, w = x.shape[-2:]
    total: torch.Tensor | None = None
    outputs = {}
    for t, out in enumerate(snn.step_currents(x, wanted[-1], snn.new_states()), start=1):
        total = out if total is None else total + out
        if t in wanted:
            outputs[t] = (total / t)[..., :h, :w].clone()
    return outputs


def noisy_inputs(test: ImageSet, sigma: float, seed: int, crop: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, clean, noisy) per test image, exactly as ``toolchain.tasks.sampling.evaluate_denoise`` draws them."""
    rows = []
    for k, (name, image) in enumerate(zip(test.names, test.images)):
        clean = torch.from_numpy(np.ascontiguousarray(center_crop(image, crop) if crop else image))[None]
        noisy, _ = add_gaussian_noise(clean, sigma, torch.Generator().manual_seed(seed + k))
        rows.append((name, clean, noisy))
    return rows


def _groups(items: list[tuple[Any, torch.Tensor]]) -> list[tuple[list[Any], torch.Tensor]]:
    """Batch items whose tensors have the same shape (one simulation each)."""
    by_shape: dict[tuple[int, ...], list[tuple[Any, torch.Tensor]]] = {}
    for key, tensor in items:
        by_shape.setdefault(tuple(tensor.shape), []).append((key, tensor))
    return [([k for k, _ in group], torch.cat([t for _, t in group])) for group in by_shape.values()]


def model_outputs(model: UNet | SpikingNetwork, inputs: list[tuple[Any, torch.Tensor]],
                  steps: Sequence[int]) -> dict[int, dict[Any, torch.Tensor]]:
    """Outputs per T (an ANN: the key 1 only) per input key; inputs of one shape run as one batch."""
    result: dict[int, dict[Any, torch.Tensor]] = {}
    for keys, batch in _groups(inputs):
        if isinstance(model, SpikingNetwork):
            per_t = prefix_outputs(model, batch, steps)
        else:
            with torch.no_grad():
                per_t = {1: model(batch)}
        for t, out in per_t.items():
            for i, key in enumerate(keys):
                result.setdefault(t, {})[key] = out[i:i + 1]
    return result


def evaluate_denoise_sweep(model: UNet | SpikingNetwork, test: ImageSet, sigmas: Sequence[float], seed: int, crop: int,
                           steps: Sequence[int] = (1,), ssim_steps: Sequence[int] | None = None,
                           keep: Callable[[float, str], bool] | None = None) -> dict[int, list[dict[str, Any]]]:
    """PSNR/SSIM per T and sigma, as ``evaluate_denoise`` computes them (mean over test images).
    SSIM only at ``ssim_steps`` (default: all). Returns {T: [{sigma, psnr, ssim, images}, ...]}."""
    data = {(sigma, name): (clean, noisy) for sigma in sigmas
            for name, clean, noisy in noisy_inputs(test, sigma, seed, crop)}
    outs = model_outputs(model, [(key, noisy) for key, (_, noisy) in data.items()], steps)
    ssim_at = set(outs) if ssim_steps is None else set(ssim_steps)
    report: dict[int, list[dict[str, Any]]] = {}
    for t, per_key in sorted(outs.items()):
        rows = []
        for sigma in sigmas:
            images = []
            for (sg, name), (clean, noisy) in data.items():
                if sg != sigma:
                    continue
                restored = (noisy - per_key[(sg, name)]).clamp(0.0, 1.0)
                c, r = clean[0].numpy(), restored[0].numpy()
                row = {"image": name, "psnr": metrics.psnr(c, r)}
                if t in ssim_at:
                    row["ssim"] = metrics.ssim(c, r)
                images.append(row)
            entry = {"sigma": sigma, "psnr": float(np.mean([i["psnr"] for i in images])), "images": images}
            if t in ssim_at:
                entry["ssim"] = float(np.mean([i["ssim"] for i in images]))
            rows.append(entry)
        report[t] = rows
    return report


def evaluate_segment_sweep(model: UNet | SpikingNetwork, test: ImageSet, steps: Sequence[int] = (1,)) -> dict[int, dict[str, float]]:
    """F1 / Jaccard / accuracy (and mIoU) of argmax(logits) per T, all test pixels pooled, as
    ``toolchain.tasks.sampling.evaluate_segment`` computes them."""
    assert test.masks is not None
    inputs = [(k, torch.from_numpy(np.ascontiguousarray(im))[None]) for k, im in enumerate(test.images)]
    outs = model_outputs(model, inputs, steps)
    truth = np.concatenate([m.ravel() for m in test.masks])
    report = {}
    for t, per_key in sorted(outs.items()):
        pred = np.concatenate([per_key[k].argmax(dim=1)[0].numpy().ravel() for k in range(len(test.images))])
        report[t] = {**metrics.binary_scores(truth, pred), "miou": metrics.mean_iou(truth, pred, 2)}
    return report
