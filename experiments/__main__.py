"""``python -m experiments <name> [--quick] [--out DIR]``: see :mod:`experiments.runner`."""
import sys

from .runner import main

sys.exit(main())
