"""Patch the installed lava-nc 0.10.0 / lava-dl 0.6.0 so that they import on Python 3.11.

Run as ``python -m toolchain.backends.lava.patch`` (scripts/env.sh does) after
``pip install --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0``, with the
environment's interpreter (:data:`INSTALL` says it in one line). It edits the files installed in site-packages
(never a copy in this repository), and it is idempotent: a second run finds both files
already patched and changes nothing.

1. lava/magma/compiler/var_model.py: dataclass fields such as
       x: ByteEncoder = ByteEncoder()
   are rejected by Python 3.11 ("mutable default ... is not allowed: use default_factory"),
   which breaks every Lava process import. Every field of a @dataclass whose default is a
   bare call `Cls()` is rewritten to `field(default_factory=Cls)`, and `field` is imported.
2. lava/lib/dl/slayer/__init__.py imports `object_detection`, which needs torchvision and
   cv2 (absent here; PyPI torchvision does not even load beside the CPU torch). The import
   is made optional, so slayer and netx import without them (`slayer.obd` is then None).
3. lava/magma/runtime/message_infrastructure/multiprocessing.py calls
   `mp.set_start_method('fork')` on import, which raises "context has already been set" once
   anything has touched multiprocessing's default context (tqdm does, by creating its lock).
   The call is made only when the start method is not 'fork' already.

Lava is located with importlib.util.find_spec("lava") without importing it (importing
fails before the patch; `lava` is a namespace package, so find_spec executes nothing).
Afterwards a subprocess checks that the imports work.

Exit status: 0 patched or already patched; 2 the expected source text was not found
(a different Lava version?); 3 the import check failed.
"""
from __future__ import annotations

import argparse
import ast
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

INSTALL = ("pip install --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0 "
           "'asteval>=0.9.31,<0.10' && python -m toolchain.backends.lava.patch")
"""How to get Lava for the lava-cpu backend, in one line (its error message quotes it)."""

MARK = "patched by spiking-unet-loihi"      # files patched by older versions carry it too
EXPECTED_VERSIONS = {"lava-nc": "0.10.0", "lava-dl": "0.6.0"}

VAR_MODEL = Path("magma/compiler/var_model.py")
SLAYER_INIT = Path("lib/dl/slayer/__init__.py")
MP_INFRA = Path("magma/runtime/message_infrastructure/multiprocessing.py")
MP_OLD = "    mp.set_start_method('fork')\n"
MP_NEW = (
    f"    if mp.get_start_method(allow_none=True) != 'fork':  # {MARK}\n"
    "        mp.set_start_method('fork', force=True)\n"
)

SLAYER_OLD = "from . import object_detection as obd\n"
SLAYER_NEW = (
    f"try:  # {MARK}\n"
    "    # object_detection needs torchvision and cv2; slayer and netx work without it.\n"
    "    from . import object_detection as obd\n"
    "except (ImportError, RuntimeError):  # RuntimeError: a torchvision built for another torch\n"
    "    obd = None\n"
)

VERIFY_CODE = """
import multiprocessing, threading
multiprocessing.RLock()  # sets the default context first, as tqdm does
import lava.magma.core.run_configs
from lava.proc.lif.process import LIF
from lava.proc.dense.process import Dense
from lava.lib.dl import netx
from lava.lib.dl.netx import hdf5
print("lava imports ok")
"""


class PatchError(Exception):
    """The installed source is not what this patcher expects."""


def fail(msg: str, code: int) -> None:
    print(f"patch_lava: ERROR: {msg}", file=sys.stderr)
    sys.exit(code)


def lava_roots() -> list[Path]:
    spec = importlib.util.find_spec("lava")
    if spec is None or not spec.submodule_search_locations:
        raise PatchError(
            f"package 'lava' not found for {sys.executable}; install it first with "
            "pip install --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0"
        )
    return [Path(p) for p in spec.submodule_search_locations]


def locate(rel: Path) -> Path:
    roots = lava_roots()
    for root in roots:
        if (root / rel).is_file():
            return root / rel
    raise PatchError(f"lava/{rel} not found under {', '.join(map(str, roots))}")


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _is_dataclass_decorator(node: ast.expr) -> bool:
    if isinstance(node, ast.Call):
        node = node.func
    return (isinstance(node, ast.Name) and node.id == "dataclass") or (
        isinstance(node, ast.Attribute) and node.attr == "dataclass"
    )


def _mutable_default_fields(tree: ast.Module) -> list[tuple[str, ast.AnnAssign, str]]:
    """(class name, field node, factory source) for each `name: T = Cls()` in a dataclass."""
    found = []
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        if not any(_is_dataclass_decorator(d) for d in cls.decorator_list):
            continue
        for stmt in cls.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.value, ast.Call)):
                continue
            call = stmt.value
            if call.args or call.keywords:
                continue
            if isinstance(call.func, ast.Name) and call.func.id == "field":
                continue  # already field(...)
            if isinstance(call.func, (ast.Name, ast.Attribute)):
                found.append((cls.name, stmt, ast.unparse(call.func)))
    return found


def patch_var_model(path: Path) -> str:
    src = path.read_text(encoding="utf-8")
    tree = ast.parse(src)
    fields = _mutable_default_fields(tree)
    if not fields:
        if MARK in src and "field(default_factory=ByteEncoder)" in src:
            return f"already patched: {path}"
        raise PatchError(
            f"{path}: found no `x: ByteEncoder = ByteEncoder()`-style dataclass fields and "
            "no earlier patch; this is not the lava-nc 0.10.0 source this patcher knows"
        )

    lines = src.splitlines(keepends=True)
    names = []
    # Replace from the bottom up so that earlier offsets stay valid.
    for cls_name, stmt, factory in sorted(fields, key=lambda f: f[1].lineno, reverse=True):
        call = stmt.value
        assert call is not None            # the fields collected all have a default value
        if call.lineno != call.end_lineno:
            raise PatchError(f"{path}:{call.lineno}: multi-line default, not handled")
        i = call.lineno - 1
        line = lines[i]
        # ast column offsets are in UTF-8 bytes; these lines are ASCII in practice.
        b = line.encode("utf-8")
        new = b[: call.col_offset] + f"field(default_factory={factory})".encode() + b[call.end_col_offset :]
        lines[i] = new.decode("utf-8")
        names.append(f"{cls_name}.{stmt.target.id if isinstance(stmt.target, ast.Name) else '?'}")

    text = "".join(lines)
    # Make sure `field` is imported from dataclasses.
    if not re.search(r"^from dataclasses import [^\n]*\bfield\b", text, re.M):
        m = re.search(r"^from dataclasses import ([^\n(]+)$", text, re.M)
        if not m:
            raise PatchError(f"{path}: no single-line `from dataclasses import ...` to extend")
        text = (
            text[: m.start()]
            + f"from dataclasses import {m.group(1).rstrip()}, field  # {MARK}"
            + text[m.end() :]
        )
    else:
        # Still leave the marker so that the idempotency check recognises the file.
        text = text.rstrip("\n") + f"\n# {MARK}\n"
    ast.parse(text)  # never write a file that does not parse
    write_atomic(path, text)
    return f"patched {path}: {len(names)} field(s) -> field(default_factory=...): " + ", ".join(
        reversed(names)
    )


def replace_once(path: Path, old: str, new: str, what: str) -> str:
    """Replace the one occurrence of ``old`` in an installed file (idempotent via MARK)."""
    src = path.read_text(encoding="utf-8")
    if MARK in src:
        return f"already patched: {path}"
    if src.count(old) != 1:
        raise PatchError(
            f"{path}: expected exactly one line {old.strip()!r}; this is not the "
            "Lava source this patcher knows"
        )
    text = src.replace(old, new)
    ast.parse(text)
    write_atomic(path, text)
    return f"patched {path}: {what}"


def patch_slayer_init(path: Path) -> str:
    return replace_once(path, SLAYER_OLD, SLAYER_NEW, "optional `object_detection` import")


def patch_start_method(path: Path) -> str:
    return replace_once(path, MP_OLD, MP_NEW, "tolerate an already-set 'fork' start method")


def verify() -> None:
    # Run from a neutral directory so that nothing in the caller's cwd shadows lava.
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(
            [sys.executable, "-c", VERIFY_CODE],
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        fail("import check failed after patching (see traceback above)", 3)
    print("patch_lava: import check ok (lava.magma.core.run_configs, LIF, Dense, netx)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-verify", action="store_true", help="skip the import check")
    args = ap.parse_args()

    for dist, want in EXPECTED_VERSIONS.items():
        try:
            have = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            fail(f"{dist} is not installed for {sys.executable}", 2)
        if have != want:
            print(f"patch_lava: WARNING: {dist} {have} installed, written for {want}", file=sys.stderr)

    try:
        for msg in (patch_var_model(locate(VAR_MODEL)), patch_slayer_init(locate(SLAYER_INIT)),
                    patch_start_method(locate(MP_INFRA))):
            print(f"patch_lava: {msg}")
    except PatchError as e:
        fail(str(e), 2)

    if not args.no_verify:
        verify()


if __name__ == "__main__":
    main()
