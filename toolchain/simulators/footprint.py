"""How much memory a simulation needs, estimated from the network's shapes before anything is allocated.

Per neuron and image the reference simulator keeps its membrane, its current and the convolution's
temporaries (int64), and one spike map per threshold compartment; ``record="counts"`` adds per-neuron
count and message maps (int64 per compartment), ``record="spikes"`` every spike of every step. The
physical-time path (stock netx networks) keeps u, v and the spikes of every step. The constants are
upper bounds of what ``simulate`` was measured to use (24-36 bytes per neuron without counts, 45-98 with).
"""
from __future__ import annotations

from ..ir import Network, QuantizedNetwork, StockNetwork, SynapticLayer
from ..vocab import Record

STATE_BYTES = 48           # membrane, current and convolution temporaries per neuron (int64)
SPIKE_BYTES = 2            # per compartment: its spike map and the payload built from it
COUNT_BYTES = 16           # per compartment: count and message maps (int64)
PHYSICAL_STEP_BYTES = 17   # u, v (int64) and a spike (bool) per neuron and step, all recorded


def neurons(layer: object) -> int:
    shape = getattr(layer, "shape", (0,))
    total = 1
    for side in shape:
        total *= int(side)
    return total


def simulation_bytes(network: Network, images: int, steps: int, record: Record = "none") -> int:
    """Bytes a run of ``images`` images for ``steps`` steps needs, about (see the module docstring)."""
    total = 0
    if isinstance(network, StockNetwork):
        for layer in network.layers:
            total += neurons(layer) * (STATE_BYTES + PHYSICAL_STEP_BYTES * steps)
        return total * images
    assert isinstance(network, QuantizedNetwork)
    for layer in network.layers:
        if not isinstance(layer, SynapticLayer):
            total += neurons(layer) * 8
            continue
        compartments = int(getattr(layer.neuron, "compartments", 1))
        per_neuron = STATE_BYTES + SPIKE_BYTES * compartments
        if record == "counts":
            per_neuron += COUNT_BYTES * compartments + 8
        elif record == "spikes":
            per_neuron += compartments * steps
        total += neurons(layer) * per_neuron
    return total * images
