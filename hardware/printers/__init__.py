"""Receipt printer transports, chosen by the ``[[printers]]`` ``kind`` of the configuration.

``PRINTERS`` maps each kind to its class; each class takes its own keyword arguments (the keys
of its kind): ``serial`` -> :class:`SerialPrinter` (``device``, ``baudrate``), ``tcp`` ->
:class:`TcpPrinter` (``host``, ``port``), ``file`` -> :class:`FilePrinter` (``path``,
``png_dir``). :class:`RecordingPrinter` is the in-memory fake for tests and the sandbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hardware.lazy import LazyKinds, lazy_attributes
from hardware.printers.base import Printer, PrinterLifecycle

if TYPE_CHECKING:
    from hardware.printers.file import FilePrinter
    from hardware.printers.recording import RecordingPrinter
    from hardware.printers.serial import SerialPrinter
    from hardware.printers.tcp import TcpPrinter

__all__ = ["PRINTERS", "FilePrinter", "Printer", "PrinterLifecycle", "RecordingPrinter",
           "SerialPrinter", "TcpPrinter"]

# A kind's module (pyserial for ``serial``, Pillow for ``file``'s PNGs) is imported when first
# used.
PRINTERS: LazyKinds[Printer] = LazyKinds({
    "serial": "hardware.printers.serial:SerialPrinter",
    "tcp": "hardware.printers.tcp:TcpPrinter",
    "file": "hardware.printers.file:FilePrinter",
})

__getattr__ = lazy_attributes(globals(), [
    *PRINTERS.targets(), "hardware.printers.recording:RecordingPrinter"])
