"""The report verb: a Loihi 2 (or other profile's) cost report of a ``.net`` file, computed over a
backend run (the reference simulator by default) that keeps per-neuron spike counts. A stock lava-dl netx
file is run in physical time on one frame (:mod:`.stock_inputs`) and profiled over its last inference."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from netx_export import read_any

from ..backends import BackendOptions, SimulatorBackend
from ..checks import check_steps
from ..data.embedded import load_photo
from ..data.patches import center_crop
from ..errors import ConfigError
from ..hardware import collect_activity, load_profile, profile_network, write_report
from ..ir import QuantizedNetwork, StockNetwork, resize
from .inputs import image_channels, input_images, network_frame, noise_level, padded, with_noise


@dataclass(frozen=True)
class ProfileChoice:
    """A hardware profile by name or JSON file, with ``KEY=VALUE`` overrides."""

    name: str = "loihi2"
    overrides: tuple[str, ...] = ()

    def load(self) -> Any:
        return load_profile(self.name, list(self.overrides))


@dataclass(frozen=True)
class HardwareSummary:
    """The figures a person looks at first: cores, chips, spikes, synops, time, energy by every method."""

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
    energy_ann_int8_j: float | None = None
    energy_profile_low_j: float | None = None
    energy_profile_high_j: float | None = None
    time_per_step_s: float | None = None
    fits_target: bool | None = None
    max_chips: int | None = None
    smallest_system: str | None = None
    largest_layer: str | None = None
    synops_nonzero: int | None = None

    @classmethod
    def of(cls, report: dict[str, Any]) -> HardwareSummary:
        t, e, m = report["totals"], report["energy"], report.get("mapping") or {}
        band = (e.get("profile") or {}).get("band_j") or {}
        system = m.get("smallest_system") or {}
        largest = (m.get("largest_layers") or [{}])[0]
        return cls(report["profile"]["name"], report["lowering"], report["activity"]["steps"], t.get("cores"),
                   t.get("chips"), int(t["spikes"]), int(t["synops"]), t["energy_paper_j"], t.get("energy_profile_j"),
                   t["energy_ann_j"], e["ratios"]["ann_over_paper"], e["ratios"].get("ann_over_profile"),
                   t.get("energy_ann_int8_j"), band.get("low"), band.get("high"),
                   (report.get("timing") or {}).get("time_per_step_s"), m.get("fits_target"), m.get("max_chips"),
                   system.get("name"),
                   f"{largest['layer']} ({largest['cores']} cores, {largest['binding']})" if largest else None,
                   None if t.get("synops_nonzero") is None else int(t["synops_nonzero"]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One paragraph: the mapping, the activity, and the energy by every method against the ANN."""
        def j(x: float | None) -> str:
            return "-" if x is None else f"{x:.3g} J"

        def versus(ratio: float | None) -> str:
            if not ratio:
                return ""
            return f" ({ratio:.3g}x less than the ANN)" if ratio >= 1 else f" ({1 / ratio:.3g}x more than the ANN)"
        where = ""
        if self.fits_target is False:
            where = (f" (more than the target's {self.max_chips}; smallest listed system: "
                     f"{self.smallest_system or 'none large enough'}; largest layer {self.largest_layer})")
        band = (f" [{self.energy_profile_low_j:.3g}..{self.energy_profile_high_j:.3g} J]"
                if self.energy_profile_low_j is not None and self.energy_profile_high_j is not None else "")
        step = f", {self.time_per_step_s * 1e6:.1f} us per step" if self.time_per_step_s else ""
        int8 = f", int8 {j(self.energy_ann_int8_j)}" if self.energy_ann_int8_j is not None else ""
        return (f"{self.profile} ({self.lowering}, T={self.steps}): {self.cores} cores on {self.chips} chip(s){where}"
                f"{step}; {self.spikes:,} spikes, {self.synops:,} synaptic ops"
                + (f" ({self.synops_nonzero:,} on non-zero weights)" if self.synops_nonzero is not None else "")
                + "; energy per inference "
                f"{j(self.energy_paper_j)} by the paper's method (eq. 13){versus(self.ann_over_paper)}, "
                f"{j(self.energy_profile_j)}{band} by the profile{versus(self.ann_over_profile)}; ANN "
                f"{j(self.energy_ann_j)} (45 nm fp32 MACs){int8}")


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
    input size, with Gaussian noise of sigma 25 for denoising networks). A stock netx file needs ``image``
    (an image, a .npy frame or ``zero``) and takes netx's ``reset_interval`` / ``reset_offset``."""

    network: str | os.PathLike[str]
    out: str | os.PathLike[str] = "report"
    image: str | os.PathLike[str] | None = None
    steps: int | None = None
    profile: ProfileChoice = ProfileChoice()
    noise_sigma: float | None = None
    seed: int = 0
    max_chips: int | None = None
    reset_interval: int | None = None
    reset_offset: int = 0

    def __post_init__(self) -> None:
        if self.steps is not None:
            check_steps(self.steps)
        BackendOptions(reset_interval=self.reset_interval, reset_offset=self.reset_offset)   # validates


def _report_stock(network: StockNetwork, settings: ReportSettings) -> dict[str, Any]:
    from ..hardware import profile_stock
    from .simulate_stock import run_frame, run_settings, summary_of
    from .stock_inputs import schedule, stock_frames

    hw = settings.profile.load()
    if settings.image is None:
        raise ConfigError("a stock netx network needs an input: an image, a .npy frame or 'zero' (input bias 0)")
    sched = schedule(network, settings.steps, settings.reset_interval, settings.reset_offset)
    frame = stock_frames(settings.image, network, settings.noise_sigma, settings.seed)[0]
    trace, _ = run_frame(network, frame, sched, "reference", BackendOptions())
    report = profile_stock(network, trace, hw, sched.window, max_chips=settings.max_chips,
                           settings=run_settings(sched, frame))
    report["summary"] = summary_of(report)
    write_report(report, settings.out)
    return report


def report_file(settings: ReportSettings) -> dict[str, Any]:
    """The cost report of a .net file on one image (see :class:`ReportSettings`)."""
    network = read_any(settings.network)
    if isinstance(network, StockNetwork):
        return _report_stock(network, settings)
    if settings.reset_interval is not None or settings.reset_offset:
        raise ConfigError("`reset_interval` and `reset_offset` apply to stock netx files")
    steps = check_steps(settings.steps if settings.steps is not None else int(network.meta.steps or 10))
    _, h, w = network.input.shape
    channels = image_channels(network)
    sigma = settings.noise_sigma
    if settings.image is None:
        image = center_crop(load_photo("camera", channels), max(h, w))[:, :h, :w]
        if sigma is None and network.meta.task == "denoise":
            sigma = 25.0
    else:
        image = input_images(settings.image, channels)[0][1]
    noisy = with_noise(image, sigma, settings.seed)
    level = noise_level(noisy, sigma, None, "report input") if network.meta.noise_map else None
    batch = padded(network_frame(network, noisy, level), int(network.meta.multiple or 1))[None]
    return profile_report(resize(network, batch.shape[-2:]), batch, steps, settings.out, settings.profile,
                          settings.max_chips)
