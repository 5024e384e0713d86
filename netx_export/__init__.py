"""Write quantized Spiking-UNet networks to netx-style HDF5 ``.net`` files and read them back.

The layout follows Lava-DL netx's ``layer/<i>`` protocol (shapes stored (C, H, W), read reversed
by netx, torch weight layouts, a CUBA-compatible ``neuron`` group) with the extensions a U-Net
needs: general DAG wiring (``inputs``), per-part weight exponents, MT thresholds, depths and concat
delays. See
:mod:`netx_export.schema` for every key. :func:`read_netx` reads STOCK netx files (lava-dl's,
strictly sequential, CUBA neurons) into a physical-time network (:mod:`netx_export.stock`);
:func:`write_netx_compatible` writes a purely sequential network as a stock netx file (CUBA
approximation of the SNN, :mod:`netx_export.compat`). :func:`read_any` reads either kind, told apart by
:func:`netx_format` (:mod:`netx_export.detect`).
"""
from netx_export.compat import write_netx_compatible
from netx_export.detect import netx_format, read_any
from netx_export.reader import read_network
from netx_export.schema import FORMAT_VERSION
from netx_export.stock import read_netx
from netx_export.writer import write_network

__all__ = ["FORMAT_VERSION", "netx_format", "read_any", "read_netx", "read_network", "write_netx_compatible",
           "write_network"]
