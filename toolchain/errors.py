"""The project's one exceptions module.

Every failure a user can cause (a bad file, a bad argument, a network that does not fit) raises a
subclass of :class:`ToolchainError`. ``cli.py`` turns these into a one-line message and a non-zero
exit code; anything else escaping is a bug in the toolchain.
"""
from __future__ import annotations


class ToolchainError(Exception):
    """Base class of every error the toolchain reports to its user."""

    exit_code = 2


class ConfigError(ToolchainError):
    """An argument or configuration value is out of range or inconsistent."""


class CheckpointError(ToolchainError):
    """A checkpoint file is missing, unreadable, unsafe or does not match its architecture."""


class NetFileError(ToolchainError):
    """A netx HDF5 (.net) file is missing, malformed or outside the supported format."""


class DataError(ToolchainError):
    """An image, mask or dataset folder is missing, unreadable or of the wrong layout."""


class ExportError(ToolchainError):
    """A network cannot be lowered, quantized or written (unknown module, overflow under --strict)."""


class ConversionError(ToolchainError):
    """A model holds an operation (or a use of one) with no spiking equivalent here; the message names
    the module, its type, its graph node and what to change."""


class HardwareLimitError(ToolchainError):
    """A network does not fit the limits of a hardware profile."""


class ProfileError(ToolchainError):
    """A hardware profile file is malformed or has out-of-range values."""


class ToolchainWarning(UserWarning):
    """Something a user should know that does not stop the run (``cli.py`` prints it as one
    ``warning:`` line): e.g. how an image's pixels were scaled."""


class DataWarning(ToolchainWarning):
    """An input was read in a way its file alone does not say (pixel range, mask meaning)."""


class BackendError(ToolchainError):
    """A simulator backend failed (unknown backend, Lava deadlock or worker failure)."""

    exit_code = 3


class ExactnessError(BackendError):
    """A Lava model would compute another integer than the reference simulator (a stock synapse's sum
    would wrap: Conv at 24 bits, DelaySparse at 32 bits), so the run stops instead of giving other spikes."""
