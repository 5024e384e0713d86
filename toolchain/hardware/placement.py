"""What every placement of a network on cores shares: cores summed over its layers, chips, a layer by name."""
from __future__ import annotations

import math
from typing import Generic, Protocol, TypeVar


class LayerPlacement(Protocol):
    """One layer's share of a placement."""

    layer: str

    @property
    def cores(self) -> int: ...


L = TypeVar("L", bound=LayerPlacement)


class Placement(Generic[L]):
    """Mixin of a placement dataclass with ``layers`` and ``cores_per_chip`` fields."""

    layers: list[L]
    cores_per_chip: int

    @property
    def cores(self) -> int:
        return sum(m.cores for m in self.layers)

    @property
    def chips(self) -> int:
        """ceil(cores / cores per chip), at least one."""
        return max(1, math.ceil(self.cores / self.cores_per_chip))

    def layer(self, name: str) -> L:
        return next(m for m in self.layers if m.layer == name)
