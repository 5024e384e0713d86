"""Where lava-dl's shipped netx test data is (``tests/lava/lib/dl/netx`` beside the installed packages).

Located through the installed lava-dl distribution's file list, else the interpreter's site directories;
a path without ``tiny.net`` (the tests that need it then skip) when lava-dl's test data is absent.
Nothing is downloaded.
"""
from __future__ import annotations

from toolchain.backends.lava_dl_data import netx_test_folder

ROOT = netx_test_folder()
GTS = ROOT / "gts"
