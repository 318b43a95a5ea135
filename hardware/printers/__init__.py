"""Receipt printer transports, chosen by the ``[[printers]]`` ``kind`` of the configuration.

``PRINTERS`` maps each kind to its class; each class takes its own keyword arguments (the keys
of its kind): ``serial`` -> :class:`SerialPrinter` (``device``, ``baudrate``), ``tcp`` ->
:class:`TcpPrinter` (``host``, ``port``), ``file`` -> :class:`FilePrinter` (``path``,
``png_dir``). :class:`RecordingPrinter` is the in-memory fake for tests and the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable

from hardware.printers.base import Printer, PrinterLifecycle
from hardware.printers.file import FilePrinter
from hardware.printers.recording import RecordingPrinter
from hardware.printers.serial import SerialPrinter
from hardware.printers.tcp import TcpPrinter

__all__ = ["PRINTERS", "FilePrinter", "Printer", "PrinterLifecycle", "RecordingPrinter",
           "SerialPrinter", "TcpPrinter"]

PRINTERS: dict[str, Callable[..., Printer]] = {
    "serial": SerialPrinter,
    "tcp": TcpPrinter,
    "file": FilePrinter,
}
