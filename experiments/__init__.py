"""Small-scale reproductions of the Spiking-UNet paper's results on the embedded photos.

``python -m experiments <name> [--quick] [--out DIR] [--force]``, ``python -m experiments all`` and
``python -m experiments docs`` (RESULTS.md from the JSON files, nothing recomputed). See
:mod:`experiments.runner` for the list and ``docs/RESULTS.md`` for what they measured.
"""
