"""Helpers shared by the CLI tests (a plain module: pytest puts tests/ on sys.path)."""
from __future__ import annotations


def one_error_line(capsys) -> str:
    """What the CLI wrote to stderr since the last read: exactly one line, starting with 'error:'."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    return lines[0]


def leftovers(folder) -> list[str]:
    """Every path under ``folder`` (relative), sorted; [] if it does not exist."""
    from pathlib import Path

    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def read_outputs(folder):
    """Every file under ``folder`` by relative name: spikes.json as data without its wall time, .npy files as
    their array bytes, the others as bytes (what must be identical however a simulation was spread)."""
    import json

    import numpy as np
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            name = str(path.relative_to(folder))
            if path.name == "spikes.json":
                data = json.loads(path.read_text())
                data.pop("wall_time_s")
                files[name] = data
            elif path.suffix == ".npy":
                files[name] = np.load(path).tobytes()
            else:
                files[name] = path.read_bytes()
    return files


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args, cwd, ranks: int = 2):
    """``torchrun --nproc_per_node RANKS cli.py ARGS`` on this machine (gloo on CPU, one thread per rank)."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    launcher = Path(sys.executable).parent / "torchrun"
    command = [str(launcher)] if launcher.exists() else [sys.executable, "-m", "torch.distributed.run"]
    command += ["--nproc_per_node", str(ranks), "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                str(repo / "cli.py"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
