"""Where lava-dl's shipped netx test data is (``tests/lava/lib/dl/netx`` beside the installed packages).

Located through the installed lava-dl distribution's file list, else the interpreter's site directories;
a path without ``tiny.net`` (the tests that need it then skip) when lava-dl's test data is absent.
Nothing is downloaded.
"""
from __future__ import annotations

import importlib.metadata
import sysconfig
from pathlib import Path

NETX_TESTS = Path("tests/lava/lib/dl/netx")


def _lava_dl_netx_tests() -> Path:
    """lava-dl's shipped netx test folder (``tests/lava/lib/dl/netx`` beside the installed packages):
    located through the installed lava-dl distribution's file list, else the interpreter's site
    directories; a path without ``tiny.net`` (the tests then skip) when lava-dl's test data is absent."""
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution("lava-dl")
        candidates += [Path(dist.locate_file(f)).parent for f in dist.files or ()
                       if Path(f).as_posix().endswith(f"{NETX_TESTS.as_posix()}/tiny.net")]
    except importlib.metadata.PackageNotFoundError:
        pass
    paths = sysconfig.get_paths()
    candidates += [Path(paths[key]) / NETX_TESTS for key in ("purelib", "platlib") if key in paths]
    return next((c for c in candidates if (c / "tiny.net").exists()), candidates[0] if candidates else NETX_TESTS)


ROOT = _lava_dl_netx_tests()
GTS = ROOT / "gts"
