"""The errors of the device layer, and the root they share with the daemon's.

``PosbridgeError`` is the root of every error the product raises on purpose; it is defined
here, in the lowest layer, so that ``hardware`` needs nothing from ``posbridge``.
:mod:`posbridge.errors` re-exports all of these and draws the whole tree.
"""

from __future__ import annotations


class PosbridgeError(Exception):
    """Root of every error posbridge raises on purpose."""


class DeviceError(PosbridgeError):
    """Hardware trouble: reported and retried, never allowed to block or fail a payment."""


class PrinterError(DeviceError):
    """A receipt printer is off-line, out of paper or otherwise unable to print."""


class DisplayError(DeviceError):
    """A customer display cannot be reached or refused a frame."""
