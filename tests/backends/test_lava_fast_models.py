"""Each faster model (toolchain.backends.lava.fast) computes what the model it replaces computes.

Two copies of one process with the same parameters share a RingBuffer source: one runs Lava's own model
(or this project's default model), the other the fast one (``exception_proc_model_map`` per instance);
what they send must be identical at every step. The cases cover binary and graded input, stride, groups,
dilation, padding, pre-shifted weights, the 24-bit wrap, pooling, mixed and uniform delays, odd and
all-negative weights (Lava's truncation and sign-mode detection), negative exponents, and the MT neuron
across windows, clipping and both lowerings. The exact variants stop with an ExactnessError where
Lava's models wrap. Every Lava run is isolated in the backend's worker process (timeouts, no leaks).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from toolchain.backends.lava.runner import run_in_worker
from toolchain.errors import ExactnessError

pytestmark = pytest.mark.lava
STEPS = 9
RNG = np.random.default_rng(3)


@dataclass
class Case:
    """``make()`` builds the process (in the worker); ``data`` (shape..., STEPS) feeds its input port."""

    name: str
    make: Callable[[], Any]
    reference: str                  # model class path, "module:Class"
    fast: str
    data: np.ndarray
    ports: tuple[str, ...] = ("a_out",)
    inport: str = "s_in"
    variables: tuple[str, ...] = ()


def _model(path: str) -> type:
    """A model class by "module:Class" path; "free:module:Class" is its free-running (AsyncProtocol) form."""
    import importlib

    from toolchain.backends.lava.free_running import free_running

    free = path.startswith("free:")
    module, name = path.removeprefix("free:").split(":")
    model = getattr(importlib.import_module(module), name)
    return free_running(model) if free else model


class PairJob:
    """Runs every case's two copies side by side in one Lava graph (what the worker calls)."""

    def __init__(self, cases: list[Case]) -> None:
        self.cases = cases

    def simulate(self, on_runtime: Callable[[Any], None], on_running: Callable[[bool], None]) -> dict[str, Any]:
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.io.sink import PyReceiveModelFixed
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import PySendModelFixed
        from lava.proc.io.source import RingBuffer as Source

        from toolchain.backends.lava.fast import warm_up
        from toolchain.backends.lava.graph import finish_runtime

        warm_up()
        models: dict[Any, type] = {}
        sinks: dict[str, list[list[Any]]] = {}
        procs: dict[str, list[Any]] = {}
        anchor = None
        for case in self.cases:
            source = Source(data=case.data.astype(np.int32))
            models[source] = PySendModelFixed
            pair = [case.make(), case.make()]
            procs[case.name] = pair
            sinks[case.name] = []
            for proc, model in zip(pair, (case.reference, case.fast)):
                port = getattr(proc, case.inport)
                (source.s_out.reshape(port.shape) if source.s_out.shape != port.shape else source.s_out).connect(port)
                models[proc] = _model(model)
                row = []
                for name in case.ports:
                    out = getattr(proc, name)
                    sink = Sink(shape=out.shape, buffer=STEPS)
                    out.connect(sink.a_in)
                    models[sink] = PyReceiveModelFixed
                    row.append(sink)
                sinks[case.name].append(row)
            if anchor is not None:          # one graph: tie the pairs together through a zero-weight Dense
                anchor_tie(anchor, pair[0], models)
            anchor = pair[0]
        assert anchor is not None
        ok = False
        try:
            anchor.create_runtime(run_cfg=Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models))
            on_runtime(anchor.runtime)
            on_running(True)
            anchor.run(condition=RunSteps(num_steps=STEPS))
            on_running(False)
            out = {name: [[np.rint(s.data.get()).astype(np.int64) for s in row] for row in rows]
                   for name, rows in sinks.items()}
            variables = {case.name: [[np.rint(getattr(p, v).get()).astype(np.int64) for v in case.variables]
                                     for p in procs[case.name]] for case in self.cases}
            ok = True
        finally:
            on_running(False)
            finish_runtime(anchor.runtime, anchor.stop, ok)
        return {"sinks": out, "vars": variables}


def anchor_tie(a: Any, b: Any, models: dict[Any, type]) -> None:
    """Connect process b's first output to a's first input through a zero Dense (so one run covers both)."""
    from lava.proc.dense.models import PyDenseModelBitAcc
    from lava.proc.dense.process import Dense

    out = next(iter(b.out_ports))
    inp = next(iter(a.in_ports))
    tie = Dense(weights=np.zeros((int(np.prod(inp.shape)), int(np.prod(out.shape))), np.int32), num_message_bits=8)
    models[tie] = PyDenseModelBitAcc
    out.flatten().connect(tie.s_in)
    tie.a_out.reshape(inp.shape).connect(inp)


def _run(cases: list[Case]) -> dict[str, Any]:
    return run_in_worker(PairJob(cases), 240.0)  # type: ignore[arg-type]


def _binary(shape: tuple[int, ...], density: float = 0.4) -> np.ndarray:
    data = (RNG.random(shape + (STEPS,)) < density).astype(np.int64)
    data[..., 2] = 0                                  # one all-zero step
    return data


def _graded(shape: tuple[int, ...], high: int = 16) -> np.ndarray:
    data = RNG.integers(0, high, size=shape + (STEPS,))
    data[..., 2] = 0
    return data


STOCK_CONV, FAST_CONV = "lava.proc.conv.models:PyConvModelFixed", "toolchain.backends.lava.fast:TorchConvModel"
STOCK_DS, FAST_DS = "lava.proc.sparse.models:PyDelaySparseModelBitAcc", "toolchain.backends.lava.fast:FastDelaySparseModel"


def _conv(**kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        from lava.proc.conv.process import Conv
        return Conv(**kw)
    return make


def _delay_sparse(**kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        from lava.proc.sparse.process import DelaySparse
        from lava.utils.weightutils import SignMode
        if kw.pop("mixed", False):
            kw["sign_mode"] = SignMode.MIXED
        return DelaySparse(**kw)
    return make


def _compartments(weight: np.ndarray, ratios: tuple[int, ...]) -> np.ndarray:
    """Conv weights over a compartments input: channel c N + i worth ratios[i] (what the planner writes)."""
    from toolchain.backends.lava.layout import interleave

    return interleave(weight, ratios)


def _conv_cases() -> list[Case]:
    w4 = RNG.integers(-128, 128, size=(4, 3, 3, 3))
    w6 = RNG.integers(-128, 128, size=(6, 3, 3, 2))
    folded = _compartments(RNG.integers(-128, 128, size=(5, 3, 3, 3)), (32 << 3, 16 << 3, 8 << 3, 4 << 3))
    return [
        Case("conv over compartments (folded: 4 per channel), binary, padding 1", _conv(
            weight=folded, input_shape=(7, 6, 12), padding=1), STOCK_CONV, FAST_CONV, _binary((7, 6, 12))),
        Case("conv over compartments, groups 3 (each channel's compartments in its group), graded", _conv(
            weight=_compartments(RNG.integers(-128, 128, size=(6, 3, 3, 1)), (4, 2, 1)), input_shape=(7, 6, 9),
            padding=1, groups=3, num_message_bits=5), STOCK_CONV, FAST_CONV, _graded((7, 6, 9))),
        Case("conv over compartments, ratios 3 and 5 (not powers of two), wraps at 24 bits", _conv(
            weight=_compartments(RNG.integers(-2 ** 16, 2 ** 16, size=(2, 3, 3, 2)), (3, 5)), input_shape=(7, 6, 4),
            padding=1, num_message_bits=5), STOCK_CONV, FAST_CONV, _graded((7, 6, 4))),
        Case("conv binary padding 1 (weight_exp ignored by both)", _conv(weight=w4, input_shape=(7, 6, 3), padding=1,
             weight_exp=4), STOCK_CONV, FAST_CONV, _binary((7, 6, 3))),
        Case("conv graded stride 2 groups 2 padding (1, 0)", _conv(weight=w6, input_shape=(7, 6, 4), padding=(1, 0),
             stride=2, groups=2, num_message_bits=5), STOCK_CONV, FAST_CONV, _graded((7, 6, 4))),
        Case("conv graded dilation 2, weights m << 7", _conv(
            weight=RNG.integers(-128, 128, size=(3, 3, 3, 4)) << 7, input_shape=(7, 6, 4), padding=2, dilation=2,
            num_message_bits=5), STOCK_CONV, FAST_CONV, _graded((7, 6, 4))),
        Case("conv wraps at 24 bits", _conv(weight=RNG.integers(-2 ** 19, 2 ** 19, size=(2, 3, 3, 4)),
             input_shape=(7, 6, 4), padding=1, num_message_bits=5), STOCK_CONV, FAST_CONV, _graded((7, 6, 4))),
        Case("conv depthwise sum pool k2 s2", _conv(weight=np.full((4, 2, 2, 1), 96 << 5), input_shape=(7, 6, 4),
             stride=2, groups=4, num_message_bits=5), STOCK_CONV, FAST_CONV, _graded((7, 6, 4))),
        Case("conv int8-sized kernel 1x1 with 4 phases (a pixel-shuffle conv)", _conv(
            weight=RNG.integers(-64, 64, size=(8, 1, 1, 3)), input_shape=(5, 4, 3)), STOCK_CONV, FAST_CONV,
            _binary((5, 4, 3))),
    ]


def _sparse_cases() -> list[Case]:
    n_in = 7 * 6 * 3
    odd = RNG.integers(-256, 256, size=(10, n_in))
    odd[RNG.random(odd.shape) < 0.7] = 0
    even = RNG.integers(-128, 128, size=(9, n_in)) * 2
    even[RNG.random(even.shape) < 0.5] = 0
    negative = -np.abs(even)
    negative[0, 0] = -256                              # all <= 0: Lava detects INHIBITORY and clips -256 to -255
    delays = RNG.integers(0, 4, size=odd.shape) * (odd != 0)
    return [
        Case("delay sparse binary, odd weights (truncated), delays 0..3, exp 1", _delay_sparse(
            weights=csr_matrix(odd), delays=csr_matrix(delays), weight_exp=1), STOCK_DS, FAST_DS, _binary((n_in,))),
        Case("delay sparse graded, 2m weights, uniform delay 2, exp -1", _delay_sparse(
            weights=csr_matrix(even), delays=2, max_delay=2, weight_exp=-1, num_message_bits=5, mixed=True),
            STOCK_DS, FAST_DS, _graded((n_in,))),
        Case("delay sparse binary, all-negative weights (inhibitory), delay 3, exp 4", _delay_sparse(
            weights=csr_matrix(negative), delays=3, max_delay=3, weight_exp=4), STOCK_DS, FAST_DS, _binary((n_in,))),
    ]


def _own_cases() -> list[Case]:
    def mt(lowering: str) -> Callable[[], Any]:
        def make() -> Any:
            from toolchain.backends.lava.procs.process import MTNeuron
            return MTNeuron(shape=(5, 4, 3), thresholds=(256, 128, 64), bias_mant=[3, -2, 100], bias_exp=[2, 0, 7],
                            start=2, window=3, images=2, lowering=lowering, v_limit=2000, record=True)
        return make

    def line() -> Any:
        from toolchain.backends.lava.procs.process import DelayLine
        return DelayLine(shape=(5, 4, 6), delay=3)

    currents = RNG.integers(-400, 1200, size=(5, 4, 3, STEPS))
    own = "toolchain.backends.lava"
    return [Case(f"MT neuron {lowering}, numba kernel, int8 messages", mt(lowering),
                 f"{own}.procs.models:PyMTNeuronModel", f"{own}.fast:FastMTNeuronModelInt8", currents,
                 ports=("s_out", "rec_out"), inport="a_in", variables=("v", "spike_counts", "saturations"))
            for lowering in ("compartments", "graded")] + [
        Case("delay line, int8 messages", line, f"{own}.procs.models:PyDelayLineModel",
             f"{own}.fast:DelayLineModelInt8", _binary((5, 4, 6)), ports=("s_out",))]


def _assert_pairs_send_the_same(cases: list[Case], result: dict[str, Any]) -> None:
    """Both copies of every case sent the same at every step on every port, and not only zeros."""
    for case in cases:
        (reference, fast) = result["sinks"][case.name]
        for port, a, b in zip(case.ports, reference, fast):
            assert np.count_nonzero(a) > 0, f"{case.name} {port}: the reference model sent only zeros"
            np.testing.assert_array_equal(b, a, err_msg=f"{case.name} ({case.fast}): {port}")


@pytest.mark.parametrize("group", ["conv", "delay_sparse", "own"])
def test_fast_models_equal_the_models_they_replace(group):
    cases = {"conv": _conv_cases, "delay_sparse": _sparse_cases, "own": _own_cases}[group]()
    result = _run(cases)
    _assert_pairs_send_the_same(cases, result)
    for case in cases:
        ref_vars, fast_vars = result["vars"][case.name]
        for name, a, b in zip(case.variables, ref_vars, fast_vars):
            np.testing.assert_array_equal(b, a, err_msg=f"{case.name}: Var {name}")
    if group == "own":                                # the windows restarted and the membrane clipped
        saturations = result["vars"][cases[0].name][0][2]
        assert saturations.shape == (2,) and saturations.min() > 0


@pytest.mark.parametrize("which", ["conv", "delay_sparse"])
def test_exact_models_stop_where_lava_wraps(which):
    n_in = 7 * 6 * 3
    if which == "conv":
        case = Case("wrapping conv", _conv(weight=np.full((2, 3, 3, 4), 2 ** 18), input_shape=(7, 6, 4), padding=1,
                    num_message_bits=5, name="big"), STOCK_CONV, "toolchain.backends.lava.fast:ExactTorchConvModel",
                    _graded((7, 6, 4)))
        message = r"Conv 'big' at Lava step \d+: a synaptic sum reaches \d+ >= 2\*\*23"
    else:
        case = Case("wrapping delay sparse", _delay_sparse(
            weights=csr_matrix(np.full((4, n_in), 254)), delays=1, max_delay=1, weight_exp=24, mixed=True, name="big"),
            STOCK_DS, "toolchain.backends.lava.fast:ExactFastDelaySparseModel", _binary((n_in,), 0.9))
        message = "DelaySparse 'big' at Lava step .* overflows int32"
    with pytest.raises(ExactnessError, match=message):
        _run([case])


def test_compartment_fold_finds_the_spike_weights_and_only_exact_factorizations():
    from toolchain.backends.lava.integers import compartment_fold

    base = RNG.integers(-128, 128, size=(4, 3, 3, 5))
    factors, folded = compartment_fold(_compartments(base, (96, 48, 24, 12, 6, 3)))
    assert factors.tolist() == [32, 16, 8, 4, 2, 1]
    np.testing.assert_array_equal(_compartments(folded, factors), _compartments(base, (96, 48, 24, 12, 6, 3)))
    assert compartment_fold(base) is None                         # five independent input channels
    sparse = base.copy()
    sparse[:2] = 0                                                # leading all-zero taps (a phase conv's)
    factors, folded = compartment_fold(_compartments(sparse, (4, 2, 1)))
    assert factors.tolist() == [4, 2, 1] and np.array_equal(folded, sparse)
    assert compartment_fold(np.zeros((2, 3, 3, 4), np.int64)) is None
    broken = _compartments(base, (2, 1))
    broken[0, 0, 0, 1] += 1                                       # one weight off the pattern
    assert compartment_fold(broken) is None


def test_free_running_models_send_what_their_lock_step_models_send():
    """The AsyncProtocol forms (own sync domain) beside the LoihiProtocol models they wrap, in one graph."""
    cases = [replace(case, fast=f"free:{case.fast}") for case in (_conv_cases()[:2] + _sparse_cases()[:1]
                                                                   + _own_cases()[:1])]
    _assert_pairs_send_the_same(cases, _run(cases))
