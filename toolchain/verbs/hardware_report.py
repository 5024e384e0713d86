"""The report verb: a Loihi 2 (or other profile's) cost report of a ``.net`` file, computed over a
backend run (the reference simulator by default) that keeps per-neuron spike counts."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from netx_export import read_network

from ..backends import SimulatorBackend
from ..checks import check_steps
from ..data.embedded import load_photo
from ..data.patches import center_crop
from ..hardware import collect_activity, load_profile, profile_network, write_report
from ..ir import QuantizedNetwork, resize
from .inputs import input_images, padded, with_noise


@dataclass(frozen=True)
class ProfileChoice:
    """A hardware profile by name or JSON file, with ``KEY=VALUE`` overrides."""

    name: str = "loihi2"
    overrides: tuple[str, ...] = ()

    def load(self) -> Any:
        return load_profile(self.name, list(self.overrides))


@dataclass(frozen=True)
class HardwareSummary:
    """The figures a person looks at first: cores, chips, spikes, synops, energy by both methods."""

    profile: str
    lowering: str
    steps: int
    cores: int | None
    chips: int | None
    spikes: int
    synops: int
    energy_paper_j: float
    energy_profile_j: float | None
    energy_ann_j: float
    ann_over_paper: float | None
    ann_over_profile: float | None

    @classmethod
    def of(cls, report: dict[str, Any]) -> HardwareSummary:
        t, e = report["totals"], report["energy"]
        return cls(report["profile"]["name"], report["lowering"], report["activity"]["steps"], t.get("cores"),
                   t.get("chips"), int(t["spikes"]), int(t["synops"]), t["energy_paper_j"], t.get("energy_profile_j"),
                   t["energy_ann_j"], e["ratios"]["ann_over_paper"], e["ratios"].get("ann_over_profile"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One paragraph: the mapping, the activity, and the energy by both methods against the ANN."""
        def j(x: float | None) -> str:
            return "-" if x is None else f"{x:.3g} J"

        def versus(ratio: float | None) -> str:
            if not ratio:
                return ""
            return f" ({ratio:.3g}x less than the ANN)" if ratio >= 1 else f" ({1 / ratio:.3g}x more than the ANN)"
        return (f"{self.profile} ({self.lowering}, T={self.steps}): {self.cores} cores on {self.chips} chip(s); "
                f"{self.spikes:,} spikes, {self.synops:,} synaptic ops; energy per inference "
                f"{j(self.energy_paper_j)} by the paper's method{versus(self.ann_over_paper)}, "
                f"{j(self.energy_profile_j)} by the profile{versus(self.ann_over_profile)}; ANN {j(self.energy_ann_j)}")


def profile_report(network: QuantizedNetwork, batch: np.ndarray, steps: int, out_dir: str | os.PathLike[str],
                   profile: ProfileChoice = ProfileChoice(), max_chips: int | None = None,
                   backend: SimulatorBackend | None = None) -> dict[str, Any]:
    """Run ``batch`` on a backend (counts kept) and write its cost report (report.json/.md, PNGs);
    returns the report with its ``summary``."""
    hw = profile.load()
    result, activity = collect_activity(network, batch, steps, backend)
    return report_over_run(network, result, activity, steps, out_dir, hw, max_chips)


def report_over_run(network: QuantizedNetwork, result: Any, activity: Any, steps: int,
                    out_dir: str | os.PathLike[str], hw: Any, max_chips: int | None = None) -> dict[str, Any]:
    """The cost report of a finished run (its activity), written to ``out_dir``."""
    report = profile_network(network, result, hw, steps, activity=activity, max_chips=max_chips)
    report["summary"] = HardwareSummary.of(report).to_dict()
    write_report(report, out_dir)
    return report


@dataclass(frozen=True)
class ReportSettings:
    """Report ``network`` on ``image`` (default: the embedded camera photo, centre crop at the file's
    input size, with Gaussian noise of sigma 25 for denoising networks)."""

    network: str | os.PathLike[str]
    out: str | os.PathLike[str] = "report"
    image: str | os.PathLike[str] | None = None
    steps: int | None = None
    profile: ProfileChoice = ProfileChoice()
    noise_sigma: float | None = None
    seed: int = 0
    max_chips: int | None = None

    def __post_init__(self) -> None:
        if self.steps is not None:
            check_steps(self.steps)


def report_file(settings: ReportSettings) -> dict[str, Any]:
    """The cost report of a .net file on one image (see :class:`ReportSettings`)."""
    network = read_network(settings.network)
    steps = check_steps(settings.steps if settings.steps is not None else int(network.meta.steps or 10))
    channels, h, w = network.input.shape
    sigma = settings.noise_sigma
    if settings.image is None:
        image = center_crop(load_photo("camera", channels), max(h, w))[:, :h, :w]
        if sigma is None and network.meta.task == "denoise":
            sigma = 25.0
    else:
        image = input_images(settings.image, channels)[0][1]
    batch = padded(with_noise(image, sigma, settings.seed), int(network.meta.multiple or 1))[None]
    return profile_report(resize(network, batch.shape[-2:]), batch, steps, settings.out, settings.profile,
                          settings.max_chips)

