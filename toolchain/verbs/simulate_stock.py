"""``simulate`` and ``report`` on a stock lava-dl netx file (CUBA neurons, physical time).

Per frame (:mod:`.stock_inputs`), the same three files as for this toolchain's networks:

* ``output.npy``: the output layer's spike rate over the counted inference (spikes in its last T steps / T),
  float64 (C, H, W): the decoded output of a rate-coded stock network (PilotNet LIF: its one readout neuron);
* ``spikes.json``: per layer the spikes of the counted inference (``per_threshold``: one entry, a CUBA neuron
  has one threshold) and of the whole run;
* ``output.png``: the output layer's spike raster over the whole run (one row per output neuron, up to 512,
  one column per step, white = spike; each cell 8 x 8 pixels), since a stock network's output is not an image.

``loihi2`` also writes the hardware report of the counted inference beside them
(:func:`toolchain.hardware.profile_stock`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import BackendOptions, get_backend
from ..errors import ConfigError
from ..files import atomic_path, write_json
from ..hardware import profile_stock, write_report
from ..hardware.profile import Profile
from ..ir import StockNetwork
from ..simulators.physical import PhysicalResult
from .inputs import save_png
from .stock_inputs import Frame, StockSchedule, schedule, stock_frames

RASTER_ROWS, RASTER_CELL = 512, 8


def raster(spikes: np.ndarray) -> np.ndarray:
    """(T, C, H, W) spikes of one layer as an 8-bit picture: neurons down, steps across."""
    s = spikes.reshape(spikes.shape[0], -1)[:, :RASTER_ROWS].T.astype(np.uint8) * 255
    return np.kron(s, np.ones((RASTER_CELL, RASTER_CELL), np.uint8))


def run_frame(network: StockNetwork, frame: Frame, sched: StockSchedule, backend_name: str,
              options: BackendOptions) -> tuple[PhysicalResult, float]:
    """Run one frame on the reference (physical-time) or lava-cpu backend; the whole physical record."""
    opts = BackendOptions(options.timeout_s, sched.reset_interval, sched.reset_offset)
    backend = get_backend("lava-cpu" if backend_name == "lava-cpu" else "reference", network, opts)
    start = time.perf_counter()
    result = backend.run(network, frame.bias[None], sched.steps, record="spikes")
    return result.trace, time.perf_counter() - start


def spikes_summary(network: StockNetwork, trace: PhysicalResult, sched: StockSchedule) -> dict[str, Any]:
    t0, t1 = sched.window
    layers = {}
    for layer in network.neuron_layers:
        s = trace.spikes[layer.name][:, 0]
        window = int(s[t0:t1].sum())
        layers[layer.name] = {"per_threshold": [window], "thresholds": None, "total": window,
                              "total_run": int(s.sum()), "membrane_saturations": 0}
    return {"steps": sched.steps, "window": [t0, t1], "steps_per_inference": sched.steps_per_inference,
            "reset_interval": sched.reset_interval, "reset_offset": sched.reset_offset,
            "total": sum(v["total"] for v in layers.values()), "layers": layers}


def write_frame_outputs(target: Path, network: StockNetwork, frame: Frame, trace: PhysicalResult,
                        sched: StockSchedule, backend: str, seconds: float) -> dict[str, Any]:
    t0, t1 = sched.window
    out_spikes = trace.spikes[network.neuron_layers[-1].name][:, 0]
    rate = out_spikes[t0:t1].sum(axis=0, dtype=np.int64) / float(t1 - t0)
    with atomic_path(target / "output.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, rate.astype(np.float64))
    spikes = spikes_summary(network, trace, sched)
    write_json(target / "spikes.json", {"backend": backend, "image": frame.stem, "wall_time_s": seconds, **spikes})
    save_png(target / "output.png", raster(out_spikes))
    return spikes


def simulate_stock(network: StockNetwork, inputs: str, out: str, target: str, steps: int | None,
                   noise_sigma: float | None, seed: int, profile: Profile | None, options: BackendOptions,
                   batch: int, workers: int) -> list[dict[str, Any]]:
    """Run every frame and write its outputs (and, for ``loihi2``, its hardware report); one row per frame."""
    if batch != 1 or workers != 1:
        raise ConfigError("`batch` and `workers` apply to this toolchain's networks; a stock netx file runs one "
                          "frame at a time")
    sched = schedule(network, steps, options.reset_interval, options.reset_offset)
    frames = stock_frames(inputs, network, noise_sigma, seed)
    stems = [f.stem for f in frames]
    for stem in stems:
        if stems.count(stem) > 1:
            raise ConfigError(f"{inputs}: several frames are named {stem!r}; their outputs would go to one folder")
    rows = []
    for frame in frames:
        folder = Path(out) if len(frames) == 1 else Path(out) / frame.stem
        trace, seconds = run_frame(network, frame, sched, target, options)
        spikes = write_frame_outputs(folder, network, frame, trace, sched, target, seconds)
        report = None
        if profile is not None:
            full = profile_stock(network, trace, profile, sched.window, settings=run_settings(sched, frame))
            full["summary"] = summary_of(full)
            write_report(full, folder)
            report = full["summary"]
        rows.append({"image": frame.stem, "backend": target, "steps": sched.steps, "wall_time_s": seconds,
                     "spikes": spikes["total"], "out": str(folder), "report": report})
    return rows


def run_settings(sched: StockSchedule, frame: Frame) -> dict[str, Any]:
    return {"steps": sched.steps, "steps_per_inference": sched.steps_per_inference, "window": list(sched.window),
            "reset_interval": sched.reset_interval, "reset_offset": sched.reset_offset, "input": frame.stem}


def summary_of(report: dict[str, Any]) -> dict[str, Any]:
    from .hardware_report import HardwareSummary
    return HardwareSummary.of(report).to_dict()
