"""Where lava-dl's shipped netx test data is (``tests/lava/lib/dl/netx`` beside the installed packages):
the stock netx files and golden outputs that tests and benchmarks check this toolchain against.

Located through the installed lava-dl distribution's file list, else the interpreter's site
directories. Nothing is downloaded, and nothing of Lava is imported.
"""
from __future__ import annotations

import importlib.metadata
import sysconfig
from pathlib import Path

NETX_TESTS = Path("tests/lava/lib/dl/netx")


def netx_test_folder() -> Path:
    """lava-dl's netx test folder (it holds ``tiny.net`` and ``gts/``); when lava-dl's test data is
    absent, a path without ``tiny.net`` (callers then skip or say so)."""
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution("lava-dl")
        candidates += [Path(str(dist.locate_file(f))).parent for f in dist.files or ()
                       if Path(f).as_posix().endswith(f"{NETX_TESTS.as_posix()}/tiny.net")]
    except importlib.metadata.PackageNotFoundError:
        pass
    paths = sysconfig.get_paths()
    candidates += [Path(paths[key]) / NETX_TESTS for key in ("purelib", "platlib") if key in paths]
    return next((c for c in candidates if (c / "tiny.net").exists()), candidates[0] if candidates else NETX_TESTS)
