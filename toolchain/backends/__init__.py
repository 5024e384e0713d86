"""Simulator backends behind one interface (:mod:`.base`): the integer reference simulator
(:mod:`.reference`; stock netx networks in physical time, :mod:`.physical`) and Lava's CPU
simulator (:mod:`.lava`)."""
from .base import BackendOptions, SimulatorBackend, get_backend

__all__ = ["BackendOptions", "SimulatorBackend", "get_backend"]
