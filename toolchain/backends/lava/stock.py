"""Run a stock netx ``.net`` file with lava-dl's own ``netx.hdf5.Network`` on Lava's CPU simulator.

For CUBA networks (:func:`netx_export.read_netx`) the lava-cpu backend does not rebuild the
network from its own processes: it loads the very file as a :class:`~.procs.network.LavaNetwork`,
which wraps stock ``lava.lib.dl.netx.hdf5.Network`` for stock files
(``reset_interval`` / ``reset_offset`` as given, so stock ``LIFReset`` neurons), sets the input
layer's ``bias_mant`` to the image and runs ``Loihi2SimCfg(select_tag='fixed_pt')`` in the
backend's isolated worker (:mod:`.runner`). Every neuron layer's spikes leave, step by step, through
the backend's :class:`~.procs.process.Recorder`; the final u and v are read with ``Var.get()``.
The result is laid out as :class:`toolchain.simulators.physical.PhysicalResult` (step t = Lava step
t + 1) and equals :func:`toolchain.simulators.physical.simulate_cuba` on the same file.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from toolchain.errors import BackendError, ConfigError
from toolchain.simulators.physical import PhysicalResult


@dataclass
class StockJob:
    """What the worker needs: the file, the input bias (C, H, W), steps and netx's reset settings."""

    path: str
    input_bias: np.ndarray
    steps: int
    reset_interval: int | None = None
    reset_offset: int = 0

    def simulate(self, on_runtime: Callable[[Any], None], on_running: Callable[[bool], None]) -> dict[str, Any]:
        from lava.magma.core.run_conditions import RunSteps

        from .graph import finish_runtime
        from .procs.models import recorder_model
        from .procs.network import LavaNetwork
        from .procs.process import Recorder

        net = LavaNetwork(net_config=self.path, reset_interval=self.reset_interval, reset_offset=self.reset_offset)
        net.netx.in_layer.neuron.bias_mant.init = self.input_bias.transpose(2, 1, 0).astype(np.int32)  # (x, y, z)
        ports = [layer.neuron.s_out for layer in net.layers]
        recorder = Recorder(shapes=[p.shape for p in ports], buffer_size=4, name="recorder")
        for i, port in enumerate(ports):
            port.connect(getattr(recorder, f"in{i}"))
        cfg = net.run_config(extra={recorder: recorder_model(len(ports))})
        ok = False
        try:
            try:
                net.create_runtime(run_cfg=cfg)
            finally:
                if net.runtime is not None:
                    on_runtime(net.runtime)
            on_running(True)
            net.run(condition=RunSteps(num_steps=self.steps, blocking=False))
            spikes: list[list[np.ndarray]] = [[] for _ in ports]
            for _ in range(self.steps):
                for store, data in zip(spikes, recorder.receive()):
                    store.append(np.asarray(data).astype(bool))
            net.wait()
            on_running(False)
            u = [np.rint(layer.neuron.u.get()).astype(np.int64) for layer in net.layers]
            v = [np.rint(layer.neuron.v.get()).astype(np.int64) for layer in net.layers]
            ok = True
        finally:
            on_running(False)
            finish_runtime(net.runtime, net.stop, ok)
        return {"spikes": [np.stack(s) for s in spikes], "u": u, "v": v}


def _chw(x: np.ndarray) -> np.ndarray:
    """netx's (x, y, z) / (n,) layout -> our (C, H, W) (a leading time axis kept)."""
    if x.ndim in (1, 2):
        return x.reshape(x.shape + (1, 1))
    return np.swapaxes(x, -1, -3)


def run_stock_lava(path: str | os.PathLike[str], input_bias: np.ndarray, steps: int,
                   reset_interval: int | None = None, reset_offset: int = 0,
                   timeout_s: float = 600.0) -> PhysicalResult:
    """Run a stock netx file on Lava (fixed_pt) in an isolated worker.

    ``input_bias``: (C, H, W) integer bias mantissas of the input layer. Returns a
    :class:`PhysicalResult` whose ``spikes`` are (T, 1, C, H, W) per neuron layer (named as
    :func:`netx_export.read_netx` names them) and whose ``u`` / ``v`` hold the final step only,
    (1, 1, C, H, W). Raises BackendError if Lava fails or times out.
    """
    from netx_export.stock import read_netx

    from .patch import INSTALL
    from .runner import lava_installed, run_in_worker

    if not lava_installed():
        raise BackendError(f"the lava-cpu backend needs Lava (lava-nc 0.10.0, lava-dl 0.6.0, patched for Python "
                           f"3.11); install it with: {INSTALL}")
    network = read_netx(path)          # validates the file; gives the layer names
    bias = np.asarray(input_bias)
    if bias.shape != tuple(network.input.shape):
        raise ConfigError(f"input bias must be {network.input.shape}, got {bias.shape}")
    job = StockJob(str(path), bias.astype(np.int64), int(steps), reset_interval, reset_offset)
    payload = run_in_worker(job, float(timeout_s))  # type: ignore[arg-type]
    result = PhysicalResult(int(steps))
    for layer, s, u, v in zip(network.neuron_layers, payload["spikes"], payload["u"], payload["v"]):
        result.spikes[layer.name] = _chw(s)[:, None]
        result.u[layer.name] = _chw(u)[None, None]
        result.v[layer.name] = _chw(v)[None, None]
    return result
