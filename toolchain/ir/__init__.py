"""The layer graph (IR): the contract between the front end, the quantizer, the simulators, the
backends, the ``.net`` format and the hardware report.

One frozen dataclass per operation (:class:`Input`, :class:`Conv`, :class:`ConvTranspose`,
:class:`SumPool`, :class:`Concat`, :class:`Dense`, :class:`Flatten`) and per neuron kind
(:class:`MultiThreshold`, :class:`Accumulator`, :class:`Cuba`); a network in one of three forms
(:class:`FloatNetwork`, :class:`QuantizedNetwork`, :class:`StockNetwork`); shapes and latency
(:mod:`.shapes`); and the one semantic check, :func:`validate`.
"""
from .network import FloatNetwork, Network, NetworkMeta, Provenance, QuantizedNetwork, StockMeta, StockNetwork
from .nodes import (
                    Accumulator,
                    Concat,
                    Conv,
                    ConvTranspose,
                    Cuba,
                    Dense,
                    FixedSynapses,
                    Flatten,
                    FloatSynapses,
                    Input,
                    Layer,
                    LayerSource,
                    MultiThreshold,
                    Neuron,
                    NeuronLayer,
                    Pair,
                    Shape,
                    SpatialLayer,
                    StockSynapses,
                    SumPool,
                    Synapses,
                    SynapticLayer,
                    pair,
                    weight_shape,
)
from .shapes import MAX_SYNAPTIC_DELAY, assign_depths, derived_shape, output_hw, resize
from .validate import validate

__all__ = ["Accumulator", "Concat", "Conv", "ConvTranspose", "Cuba", "Dense", "FixedSynapses", "Flatten",
           "FloatNetwork", "FloatSynapses", "Input", "Layer", "LayerSource", "MAX_SYNAPTIC_DELAY", "MultiThreshold",
           "Network", "NetworkMeta", "Neuron", "NeuronLayer", "Pair", "Provenance", "QuantizedNetwork", "Shape",
           "SpatialLayer", "StockMeta", "StockNetwork", "StockSynapses", "SumPool", "Synapses", "SynapticLayer",
           "assign_depths", "derived_shape", "output_hw", "pair", "resize", "validate", "weight_shape"]
