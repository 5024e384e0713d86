"""A seeded fuzz test of checkpoints: whatever the damage (truncated or flipped bytes, mutated
payloads, unexpected types, code-running pickles), loading raises CheckpointError or gives a valid
checkpoint, never another exception, never code execution, in bounded time; through the CLI, one
'error:' line and nothing written."""
from __future__ import annotations

import io
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import leftovers

import cli
from toolchain.errors import CheckpointError
from toolchain.frontend.checkpoint import FORMAT, VERSION, load_ann, load_any, load_checkpoint, load_snn

FINETUNE = ["--batches-per-epoch", "2", "--batch", "2", "--patch", "32"]


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _pick(rng: np.random.Generator, options: list):
    return options[int(rng.integers(len(options)))]


def _random_value(rng: np.random.Generator, depth: int = 0):
    kind = int(rng.integers(12 if depth < 3 else 8))
    if kind == 0:
        return int(rng.integers(-2 ** 40, 2 ** 40))
    if kind == 1:
        return float(_pick(rng, [0.0, -1.0, 1e308, float("nan"), float("inf"), rng.normal()]))
    if kind == 2:
        return "".join(chr(int(c)) for c in rng.integers(32, 0x2FF, size=rng.integers(0, 12)))
    if kind == 3:
        return bool(rng.integers(2))
    if kind == 4:
        return None
    if kind in (5, 6, 7):
        shape = tuple(int(s) for s in rng.integers(0, 5, size=rng.integers(0, 4)))
        dtype = [torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool,
                 torch.complex64, torch.bfloat16][int(rng.integers(8))]
        t = torch.from_numpy(np.asarray(rng.normal(size=shape) * 10)).to(dtype)
        if rng.random() < 0.2 and t.is_floating_point() and t.numel():
            t.view(-1)[0] = float("nan")
        return t
    if kind in (8, 9):
        return {(_random_key(rng)): _random_value(rng, depth + 1) for _ in range(rng.integers(0, 5))}
    if kind == 10:
        return [_random_value(rng, depth + 1) for _ in range(rng.integers(0, 5))]
    return tuple(_random_value(rng, depth + 1) for _ in range(rng.integers(0, 4)))


def _random_key(rng: np.random.Generator):
    return ["format", "version", "kind", "config", "state_dict", "spiking", "meta", "training_state", "width",
            "thresholds", "head.weight", 0, 1, "x"][int(rng.integers(14))]


def _mutate_payload(payload: dict, rng: np.random.Generator) -> dict:
    """Replace or delete one field somewhere in a valid payload (configs, state, spiking, training state)."""
    payload = {k: (dict(v) if isinstance(v, dict) else v) for k, v in payload.items()}
    payload["state_dict"] = dict(payload["state_dict"])
    choice = int(rng.integers(6))
    if choice == 0:
        key = list(payload)[int(rng.integers(len(payload)))]
        if rng.random() < 0.3:
            del payload[key]
        else:
            payload[key] = _random_value(rng)
    elif choice == 1:
        config = payload["config"]
        key = list(config)[int(rng.integers(len(config)))]
        config[key] = _pick(rng, [0, -1, 10 ** 9, 2 ** 70, "4", 4.0, True, None, [4], "segment", 9, 3])
    elif choice == 2:
        state = payload["state_dict"]
        key = list(state)[int(rng.integers(len(state)))]
        state[key] = _random_value(rng) if rng.random() < 0.5 else torch.zeros(
            tuple(int(s) for s in rng.integers(1, 5, size=rng.integers(0, 5))))
    elif choice == 3:
        payload["spiking"] = dict(payload.get("spiking") or {})
        payload["spiking"]["thresholds"] = _pick(rng, [[1.0, 2.0], [2, 1, 0], "2,1", 5, [[1.0]], ["a"],
                                                      [float("nan")], [], [True, False], None])
    elif choice == 4:
        ts = dict(payload.get("training_state") or {})
        if ts:
            key = list(ts)[int(rng.integers(len(ts)))]
            ts[key] = _random_value(rng)
        payload["training_state"] = ts if ts else _random_value(rng)
    else:
        payload = _random_value(rng)
        if isinstance(payload, dict) and rng.random() < 0.5:
            payload.update({"format": FORMAT, "version": VERSION, "kind": "snn"})
    return payload


@pytest.mark.timeout(240)
def test_fuzzed_checkpoints_give_a_checkpoint_or_checkpoint_error(tiny, tmp_path):
    """Truncations, byte flips, random payloads, wrong config values and types, damaged training
    states and code-running pickles: loading (as the verbs do) gives a valid model or a one-line
    CheckpointError naming the file, never another exception, never code execution, each within
    a few seconds."""
    marker = tmp_path / "MARKER"
    sources = {"ann": tiny.ann.read_bytes(), "snn": tiny.snn.read_bytes()}
    payloads = {k: torch.load(getattr(tiny, k), weights_only=True) for k in sources}
    assert "training_state" in payloads["ann"] and "training_state" not in payloads["snn"]
    rng = np.random.default_rng(7)
    path = tmp_path / "fuzz.pt"
    outcomes = {"loaded": 0, "refused": 0}
    loaders = [load_checkpoint, load_any, load_ann, load_snn]
    for case in range(300):
        kind = ["ann", "snn"][case % 2]
        valid = sources[kind]
        mode = case % 5
        if mode == 0:
            path.write_bytes(valid[: int(rng.integers(len(valid)))])
        elif mode == 1:
            data = bytearray(valid)
            for _ in range(int(rng.integers(1, 12))):
                data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
            path.write_bytes(bytes(data))
        elif mode in (2, 3):
            buffer = io.BytesIO()
            torch.save(_mutate_payload(payloads[kind], rng), buffer)
            path.write_bytes(buffer.getvalue())
        else:
            payload = dict(payloads[kind])
            where = ["meta", "spiking", "config", "training_state"][int(rng.integers(4))]
            payload[where] = {"x": _Exploit(marker)}
            if rng.random() < 0.5:
                torch.save(payload, path)
            else:
                path.write_bytes(pickle.dumps(payload, protocol=int(rng.integers(2, 6))))
        loader = loaders[int(rng.integers(len(loaders)))]
        t0 = time.monotonic()
        try:
            loader(path)
            outcomes["loaded"] += 1
        except CheckpointError as exc:
            message = str(exc)
            assert "\n" not in message and str(path) in message, message
            assert len(message) < 400, message
            outcomes["refused"] += 1
        assert time.monotonic() - t0 < 10, f"case {case} took {time.monotonic() - t0:.1f} s"
        assert not marker.exists(), f"case {case}: loading a checkpoint ran code"
    assert outcomes["refused"] > 200, outcomes


def test_fuzzed_checkpoints_through_the_cli(tiny, tmp_path, capsys):
    """A few damaged checkpoints through the verbs that read them: one error line, exit 2, no output."""
    rng = np.random.default_rng(3)
    valid = tiny.snn.read_bytes()
    for case in range(6):
        out = tmp_path / f"out{case}"
        bad = tmp_path / f"bad{case}.pt"
        if case % 2:
            bad.write_bytes(valid[: int(rng.integers(len(valid)))])
        else:
            buffer = io.BytesIO()
            torch.save(_mutate_payload(torch.load(tiny.snn, weights_only=True), rng), buffer)
            bad.write_bytes(buffer.getvalue())
        verb = ["export", "finetune", "evaluate"][case % 3]
        argv = {"export": ["export", bad, "-o", out / "x.net"],
                "finetune": ["finetune", bad, "--steps", "2", *FINETUNE, "--out", out / "f.pt"],
                "evaluate": ["evaluate", bad, "--steps", "2", "--json", out / "r.json"]}[verb]
        capsys.readouterr()
        code = cli.main([str(a) for a in argv])
        err = capsys.readouterr().err.strip().splitlines()
        if code == 0:        # a mutation that happens to leave a valid checkpoint
            continue
        assert code == 2 and len(err) == 1 and err[0].startswith("error:") and bad.name in err[0], err
        assert leftovers(out) == []
