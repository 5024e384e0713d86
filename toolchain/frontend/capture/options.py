"""What conversion may do to a model beyond exact rewrites: the user's choices (see :mod:`toolchain.vocab`)."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from ...vocab import (
    ALIGN_CORNERS_REWRITES,
    LINEAR_REWRITES,
    MAXPOOL_REWRITES,
    AlignCornersRewrite,
    LinearRewrite,
    MaxPoolRewrite,
)


@dataclass(frozen=True)
class CaptureOptions:
    """The rewrites conversion may make that change or extend the model (see :mod:`toolchain.vocab`)."""

    maxpool: MaxPoolRewrite = "refuse"
    linear: LinearRewrite = "refuse"
    align_corners: AlignCornersRewrite = "refuse"

    def __post_init__(self) -> None:
        for name, allowed in (("maxpool", MAXPOOL_REWRITES), ("linear", LINEAR_REWRITES),
                              ("align_corners", ALIGN_CORNERS_REWRITES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"`{name}` must be one of {allowed}, got {getattr(self, name)!r}")


DEFAULT_OPTIONS = CaptureOptions()
