"""Neuron maths as pure step functions on explicit state (norse's ``functional`` style).

* :mod:`.mt`: the multi-threshold IF step :func:`~.mt.mt_step` (the definition every simulator uses);
* :mod:`.fused`: a fused numba implementation of the same step for float32 CPU tensors;
* :mod:`.cuba`: Lava's fixed-point LIF step (stock netx networks);
* :mod:`.surrogate`: the surrogate spike gradient for direct training.
"""
