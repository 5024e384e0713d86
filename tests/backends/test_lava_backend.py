"""The lava-cpu backend reproduces the integer reference simulator spike for spike.

Networks are built exactly as the pipeline builds them (random U-Net -> convert -> export_network);
every MT layer's spikes at every logical step, the accumulator, the decoded output, the spike counts
and the saturation counts must equal ``ReferenceSimulator(net).run(images, T, record="spikes")``.
Also: failures inside a Lava process model (an exception, a hang, Ctrl-C) end in a BackendError or
KeyboardInterrupt within the timeout and leave no process or /dev/shm segment behind. Faults are
injected through run_lava's public ``models`` seam (a subclass of the process model, built in the
worker) and each run's worker and segments are observed through its ``on_worker`` seam.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from toolchain.backends.lava import TIME_OFFSET, WorkerRecord, run_lava
from toolchain.errors import BackendError, ConfigError
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.ir import QuantizedNetwork
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings
from toolchain.simulators.reference import ReferenceSimulator

pytestmark = pytest.mark.lava
REPO = Path(__file__).resolve().parents[2]
T = 6


@functools.lru_cache(maxsize=None)
def _network(task: str, channels: int, lowering: str, width: int = 4, depth: int = 2, side: int = 16,
             steps: int = T, seed: int = 0) -> QuantizedNetwork:
    torch.manual_seed(seed)
    out = channels if task == "denoise" else 3
    ann = UNet(UNetConfig(task, channels, out, width=width, depth=depth))
    calib = torch.rand(4, channels, side, side)
    snn, info = convert(ann, calib, ConversionSettings())
    net, _ = export_network(snn, info, (side, side), QuantSettings(steps=steps), lowering=lowering)
    return net


def _images(net: QuantizedNetwork, count: int = 2, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((count,) + tuple(net.input.shape))


def _assert_identical(got, ref, net: QuantizedNetwork) -> None:
    assert got.steps == ref.steps
    np.testing.assert_array_equal(got.accumulator, ref.accumulator)
    assert got.accumulator.dtype == np.int64
    np.testing.assert_array_equal(got.output, ref.output)
    assert got.spike_counts == ref.spike_counts
    assert got.saturations == ref.saturations
    assert got.image_spike_counts == ref.image_spike_counts and len(got.image_spike_counts) == len(got.output)
    assert got.image_saturations == ref.image_saturations
    assert (got.static_overflow.count, got.static_overflow.worst) == (ref.static_overflow.count,
                                                                      ref.static_overflow.worst)
    assert got.spikes.keys() == ref.spikes.keys()
    for name, expected in ref.spikes.items():
        actual = got.spikes[name]
        assert actual.shape == expected.shape and actual.dtype == expected.dtype, name
        for k in range(expected.shape[0]):
            np.testing.assert_array_equal(actual[k], expected[k], err_msg=f"layer {name}, logical step {k}")


def _assert_not_trivial(ref, net: QuantizedNetwork) -> None:
    """The comparison means something: every MT layer spikes, at several steps, and the output moves."""
    for name, spikes in ref.spikes.items():
        assert spikes.sum() > 0, f"layer {name} never spikes"
        assert (spikes.reshape(spikes.shape[0], -1).sum(axis=1) > 0).sum() >= 2, name
    assert np.any(ref.accumulator != ref.accumulator.flat[0])


@pytest.mark.parametrize("lowering", ["compartments", "graded"])
@pytest.mark.parametrize("channels", [1, 3], ids=["gray", "color"])
@pytest.mark.parametrize("task", ["denoise", "segment"])
def test_spike_for_spike_depth2(task, channels, lowering):
    net = _network(task, channels, lowering)
    images = _images(net)
    ref = ReferenceSimulator(net).run(images, T, record="spikes")
    _assert_not_trivial(ref, net)
    got = run_lava(net, images, T, record="spikes", timeout_s=240)
    _assert_identical(got, ref, net)
    assert got.timing is not None
    assert got.timing.lava_steps == net.output.depth + len(images) * T == net.latency + len(images) * T  # streamed
    assert got.timing.run_s > 0 and got.timing.total_s >= got.timing.run_s


@pytest.mark.parametrize("lowering", ["compartments", "graded"])
def test_fast_models_in_lock_step_give_the_same_spikes(lowering):
    """The default runs the fast models free-running (AsyncProtocol); in LoihiProtocol's lock step they
    give the same spikes (the step order is fixed by the channels, not by the barrier)."""
    net = _network("denoise", 1, lowering)
    images = _images(net)
    ref = ReferenceSimulator(net).run(images, T, record="spikes")
    _assert_identical(run_lava(net, images, T, record="spikes", timeout_s=240, free_running=False), ref, net)


def test_without_record_same_counts_and_output():
    net = _network("denoise", 1, "compartments")
    images = _images(net, count=1, seed=5)
    ref = ReferenceSimulator(net).run(images, T)
    got = run_lava(net, images, T, timeout_s=240)
    assert got.spikes == {}
    _assert_identical(got, ref, net)


def _saturating(net: QuantizedNetwork) -> QuantizedNetwork:
    """The same network with weight exponents raised by 6 (beyond Loihi's 7, on purpose) and the largest
    bias (4095 << 7) in two MT layers and the output, so that membranes and the accumulator clip within
    10 steps while no synapse group's sum reaches 2**23 (Lava's Conv wraps there: see
    test_lava_network.py::test_a_wrapping_conv_sum_is_an_exactness_error)."""
    layers = []
    for layer in net.layers:
        if layer.name in ("encoders.0.conv2", "ups.0.convs.conv1") or layer is net.output:
            synapses = dataclasses.replace(layer.synapses, weight_exp=tuple(e + 6 for e in layer.synapses.weight_exp),
                                           bias=np.full_like(layer.synapses.bias, 4095),
                                           bias_exp=np.full_like(layer.synapses.bias_exp, 7))
            layer = dataclasses.replace(layer, synapses=synapses)
        layers.append(layer)
    return net.with_layers(layers)


def test_saturation_matches():
    net = _saturating(_network("segment", 1, "graded"))
    images = _images(net, count=1, seed=3)
    ref = ReferenceSimulator(net).run(images, 10, record="spikes")
    assert ref.saturations["encoders.0.conv2"] > 0 and ref.saturations["ups.0.convs.conv1"] > 0
    assert ref.saturations[net.output.name] > 0
    got = run_lava(net, images, 10, record="spikes", timeout_s=240)
    _assert_identical(got, ref, net)


def test_time_offset_is_documented_value():
    assert TIME_OFFSET == 1   # layer l's logical step k is Lava step depth(l) + k + 1


def test_missing_lava_is_a_backend_error(monkeypatch):
    from toolchain.backends.lava import runner

    monkeypatch.setattr(runner, "lava_installed", lambda: False)
    net = _network("denoise", 1, "compartments")
    with pytest.raises(BackendError, match="needs Lava"):
        run_lava(net, _images(net), T)


def test_bad_arguments_raise_config_error():
    net = _network("denoise", 1, "compartments")
    with pytest.raises(ConfigError):
        run_lava(net, np.zeros((1, 1, 8, 8)), T)
    with pytest.raises(ConfigError):
        run_lava(net, _images(net), 0)
    with pytest.raises(ConfigError):
        run_lava(net, _images(net), T, lowering="bogus")


# ----------------------------------------------------------------------------- failures and leaks

def _stat(pid: str) -> tuple[int, int] | None:
    """(ppid, session id) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[3])


def _processes() -> dict[int, tuple[int, int]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(entry)
            if st is not None:
                out[int(entry)] = st
    return out


def _children_of(pid: int) -> set[int]:
    return {p for p, (ppid, _) in _processes().items() if ppid == pid}


def _in_session(sid: int) -> set[int]:
    return {p for p, (_, s) in _processes().items() if s == sid}


def _shm() -> set[str]:
    return set(os.listdir("/dev/shm"))


@pytest.fixture
def tracked() -> list[WorkerRecord]:
    """Collects the worker record (pid = its session id, its segments) of every run_lava call given
    ``on_worker=tracked.append``."""
    return []


def _assert_nothing_left(seen: list[WorkerRecord], children_before: set[int]) -> None:
    assert seen, "run_lava did not start a worker"
    for record in seen:
        deadline = time.monotonic() + 5
        while _in_session(record.pid) and time.monotonic() < deadline:   # SIGKILLed orphans: init reaps them
            time.sleep(0.05)
        assert not _in_session(record.pid), f"processes of the Lava worker's session {record.pid} are still alive"
        assert record.segments, "the worker reported no shared-memory segments"
        assert not (set(record.segments) & _shm()), "shared-memory segments of the run are left in /dev/shm"
    assert _children_of(os.getpid()) <= children_before, "run_lava left child processes behind"


def test_no_leak_after_normal_runs(tracked):
    net = _network("denoise", 1, "graded")
    children, shm_before = _children_of(os.getpid()), _shm()
    run_lava(net, _images(net, count=1, seed=1), 2, record="spikes", timeout_s=240, on_worker=tracked.append)
    _assert_nothing_left(tracked, children)
    ours = {name for record in tracked for name in record.segments}
    assert not ((_shm() - shm_before) & ours)


# Faults, injected through run_lava's `models` seam: each factory receives (in the worker, where Lava is
# imported; the caller's process never imports Lava: a program that used tqdm, as torch.fx tracing does,
# cannot import Lava any more, multiprocessing's start method being fixed) the process model the backend
# would run and returns a subclass of it that fails.

def _boom_at_step_3(model: type) -> type:
    class BoomAtStep3(model):
        def run_spk(self):
            if self.time_step >= 3:
                raise RuntimeError("injected failure in a synapse model")
            super().run_spk()
    return BoomAtStep3


def _hang_at_step_3(model: type) -> type:
    class HangAtStep3(model):
        def run_spk(self):
            if self.time_step >= 3:
                time.sleep(3600)
            super().run_spk()
    return HangAtStep3


def _boom_in_init(model: type) -> type:
    class BoomInInit(model):
        def __init__(self, proc_params):
            super().__init__(proc_params)
            raise RuntimeError("injected failure while building the accumulator model")
    return BoomInInit


FAILURES = {
    "exception": ("Conv", _boom_at_step_3, "injected failure in a synapse model"),
    "init": ("Accumulator", _boom_in_init, "injected failure while building"),
    "hang": ("MTNeuron", _hang_at_step_3, "lava-cpu run timed out after 6 s"),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_failure_in_process_model_raises_backend_error_and_cleans_up(failure, tracked):
    process, faulty, message = FAILURES[failure]
    net = _network("denoise", 1, "compartments")
    children = _children_of(os.getpid())
    timeout = 6.0 if failure == "hang" else 60.0
    t0 = time.monotonic()
    with pytest.raises(BackendError) as info:
        run_lava(net, _images(net, count=1), T, timeout_s=timeout, models={process: faulty},
                 on_worker=tracked.append)
    elapsed = time.monotonic() - t0
    assert message in str(info.value)
    if failure == "hang":
        assert timeout <= elapsed < timeout + 15
    else:
        assert elapsed < timeout / 2     # reported when it happens, not at the timeout
    _assert_nothing_left(tracked, children)


def test_bad_model_overrides_raise_config_error():
    net = _network("denoise", 1, "compartments")
    with pytest.raises(ConfigError, match="process names"):
        run_lava(net, _images(net), T, models={"LIF": _boom_at_step_3})
    with pytest.raises(ConfigError, match="process names"):
        run_lava(net, _images(net), T, models={"Synapse": "not callable"})


CTRL_C_SCRIPT = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {repo!r})
    import numpy as np, torch
    from toolchain.frontend.unet import UNet, UNetConfig
    from toolchain.frontend.conversion import ConversionSettings, convert
    from toolchain.lowering.lower import export_network
    from toolchain.lowering.quantize import QuantSettings
    from toolchain.backends.lava import run_lava

    def hang_at_step_3(model):
        class HangAtStep3(model):
            def run_spk(self):
                if self.time_step == 3:
                    with open({marker!r}, "w") as f:
                        f.write(str(os.getsid(0)))
                    time.sleep(3600)
                super().run_spk()
        return HangAtStep3

    def on_worker(record):
        with open({segments!r}, "w") as f:
            f.write("\\n".join(record.segments))

    torch.manual_seed(0)
    ann = UNet(UNetConfig("denoise", 1, 1, width=4, depth=2))
    snn, info = convert(ann, torch.rand(2, 1, 16, 16), ConversionSettings())
    net, _ = export_network(snn, info, (16, 16), QuantSettings(steps=4))
    try:
        run_lava(net, np.random.rand(1, 1, 16, 16), 4, timeout_s=200, models={{"MTNeuron": hang_at_step_3}},
                 on_worker=on_worker)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
""")


def test_ctrl_c_leaves_nothing_running(tmp_path):
    """SIGINT to the caller's process group (what a terminal's Ctrl-C does) kills the whole run."""
    marker, segments = tmp_path / "lava_session", tmp_path / "segments"
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT.format(repo=str(REPO), marker=str(marker), segments=str(segments)))
    # SIGINT back to default in the child: a runner started in the background inherits it ignored.
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.1)
        assert marker.exists(), "the run never reached step 3"
        lava_session = int(marker.read_text())
        assert lava_session != proc.pid and _in_session(lava_session)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130 and "interrupted" in out, out
    deadline = time.monotonic() + 5
    while _in_session(lava_session) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _in_session(lava_session), "Lava processes survived Ctrl-C"
    names = set(segments.read_text().split())
    assert names, "the worker reported no shared-memory segments"
    assert not (names & _shm()), "shared-memory segments survived Ctrl-C"


@pytest.mark.slow
@pytest.mark.parametrize("task, channels, lowering, width, depth, side, steps", [
    ("segment", 3, "compartments", 8, 3, 32, 8),
    ("segment", 3, "graded", 8, 3, 32, 8),
    ("denoise", 1, "compartments", 16, 2, 64, 10),      # the benchmark's network
    ("denoise", 3, "graded", 8, 4, 64, 8),              # concat delays up to 2 * 4 + 2
], ids=["w8d3-32px-compartments", "w8d3-32px-graded", "w16d2-64px-compartments", "w8d4-64px-graded"])
def test_spike_for_spike_bigger(task, channels, lowering, width, depth, side, steps):
    net = _network(task, channels, lowering, width=width, depth=depth, side=side, steps=steps)
    images = _images(net, count=2, seed=7)
    ref = ReferenceSimulator(net).run(images, steps, record="spikes")
    _assert_not_trivial(ref, net)
    got = run_lava(net, images, steps, record="spikes", timeout_s=290)
    _assert_identical(got, ref, net)
