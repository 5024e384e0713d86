"""Hardware profiles as data: one JSON file per target (``loihi2``, ``loihi1``, ``generic45nm``).

Shipped as package data and found through :mod:`importlib.resources` (see
:mod:`toolchain.hardware.profile`, which loads and validates them).
"""
