#!/usr/bin/env python3
"""The toolchain's command line (also installed as the ``spiking-unet`` command): see ``toolchain.cli``."""
import sys

from toolchain.cli import main

if __name__ == "__main__":
    sys.exit(main())
