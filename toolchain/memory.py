"""Memory limits: what a run may allocate, checked before it allocates it.

Sizes a file declares (feature maps of a network, image stacks, padding) are estimated before anything
of that size exists and compared with a :class:`MemoryLimit`; beyond it the run stops with one
:class:`~toolchain.errors.MemoryLimitError` line naming the file and ``max_memory`` (``--max-memory``),
the setting that raises the limit. The default limit is the smaller of 8 GiB and 80 % of the memory
the machine has available. A :class:`DataBudget` adds up what a dataset's files decode to, file by
file, against the same limit (one budget per load: no state is shared).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .errors import ConfigError, MemoryLimitError

DEFAULT_CAP = 8 << 30
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux), else the physical memory; None if neither is known."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def default_limit() -> int:
    """The smaller of 8 GiB and 80 % of the available memory."""
    available = available_bytes()
    return DEFAULT_CAP if available is None else max(1 << 28, min(DEFAULT_CAP, int(available * 0.8)))


def parse_size(text: str) -> int:
    """``123``, ``512K``, ``256M``, ``1.5G``, ``2GiB`` ... (binary units) as bytes; ConfigError otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", str(text).upper())
    if match is None:
        raise ConfigError(f"a memory size is a number of bytes with an optional K, M, G or T, got {text!r}")
    size = int(float(match.group(1)) * _UNITS[match.group(2)])
    if size < 1 << 20:
        raise ConfigError(f"a memory limit below 1M cannot run anything, got {text!r}")
    return size


def format_size(size: int) -> str:
    """``1.5 GiB``-style text of a byte count."""
    for unit, name in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if size >= unit:
            return f"{size / unit:.3g} {name}"
    return f"{size} B"


@dataclass(frozen=True)
class MemoryLimit:
    """The most memory a run may plan for (bytes; None: :func:`default_limit`)."""

    limit: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and (not isinstance(self.limit, int) or isinstance(self.limit, bool)
                                       or self.limit < 1 << 20):
            raise ConfigError(f"`max_memory` must be at least 1 MiB, got {self.limit!r}")

    @property
    def bytes(self) -> int:
        return self.limit if self.limit is not None else default_limit()

    def check(self, need: int, what: str) -> None:
        """MemoryLimitError if ``need`` bytes are beyond the limit; ``what`` names the file and the use."""
        if need > self.bytes:
            raise MemoryLimitError(f"{what} needs about {format_size(need)} of memory, more than the limit of "
                                   f"{format_size(self.bytes)}; raise it with `max_memory` if the machine has it")

    def budget(self) -> DataBudget:
        return DataBudget(self)


@dataclass
class DataBudget:
    """What the files of one dataset load decode to, added up against a :class:`MemoryLimit`."""

    limit: MemoryLimit
    used: int = 0
    files: list[str] = field(default_factory=list)

    def charge(self, need: int, path: str | os.PathLike[str]) -> None:
        """Add a file's decoded size (from its header, before decoding); MemoryLimitError beyond the limit."""
        self.limit.check(self.used + need, f"{path}: decoding it" + (f" (after {len(self.files)} other files)"
                                                                      if self.files else ""))
        self.used += need
        self.files.append(str(path))
