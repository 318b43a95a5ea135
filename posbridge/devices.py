"""Customer displays and receipt printers, driven by transaction changes.

The engine calls :meth:`Devices.on_change` after each commit; this module decides what the
customer sees and what is printed, and hands the work to the devices' own tasks. Nothing here
can block or fail a payment: every device call is bounded, runs in its own task, and device
trouble is logged, counted and announced to the registers as ``terminal.status``. QR pictures
and QR slips are drawn in the render pool's worker process (:mod:`hardware.qr_pool`), which
:meth:`Devices.start` starts and :meth:`Devices.stop` closes.

What a transaction shows or prints follows its row of :data:`posbridge.operations.OPERATIONS`:
a payment the customer makes by QR (``shows_qr``) shows its QR and prints a QR slip when asked;
an operation with a receipt prints one when it ends.

Which devices serve a transaction: a card transaction uses its terminal's ``display`` and
``printer``; a QR payment uses the ``display`` it names, else its terminal's, else the only
display configured; its slip prints on the printer of the same name as the display, else its
terminal's printer, else the only printer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from hardware.displays import DISPLAYS
from hardware.displays.frames import DisplayFrame, FrameState
from hardware.displays.web import WebDisplay
from hardware.escpos import PrinterProfile
from hardware.print_queue import PrintQueue
from hardware.printers import PRINTERS
from hardware.receipts import batch_report_from_view, card_receipt, qr_slip
from posbridge.config import DisplayConfig, PrinterConfig
from posbridge.engine import TerminalInfo
from posbridge.errors import DeviceError
from posbridge.lifecycle import State, Transition
from posbridge.money import format_amount
from posbridge.operations import OPERATIONS
from posbridge.records import TxnRecord
from posbridge.views import rfc3339

if TYPE_CHECKING:
    from hardware.qr_pool import RenderPool

log = structlog.get_logger(__name__)

# How long "paid" / "failed" stays on the customer display before it returns to idle.
RESULT_HOLD_S = 8.0
DISPLAY_TIMEOUT_S = 5.0


def make_display(cfg: DisplayConfig, *, sandbox: bool) -> Any:
    cls = DISPLAYS[cfg.kind]
    if cfg.kind == "web":
        return cls(name=cfg.name, sandbox=sandbox)
    if cfg.kind == "serial":
        return cls(name=cfg.name, device=cfg.device, baudrate=cfg.baudrate,
                   columns=cfg.columns, rows=cfg.rows)
    return cls(name=cfg.name, dir=cfg.dir)


def make_printer(cfg: PrinterConfig) -> Any:
    cls = PRINTERS[cfg.kind]
    if cfg.kind == "serial":
        return cls(name=cfg.name, device=cfg.device, baudrate=cfg.baudrate)
    if cfg.kind == "tcp":
        return cls(name=cfg.name, host=cfg.host, port=cfg.port)
    return cls(name=cfg.name, path=cfg.path, png_dir=cfg.png_dir)


class Devices:
    def __init__(
        self,
        *,
        displays: Mapping[str, Any],
        printers: Mapping[str, tuple[Any, PrinterProfile]],
        terminals: tuple[TerminalInfo, ...],
        on_fault: Callable[[str, str, str | None], None] | None = None,
        on_recovered: Callable[[str, str], None] | None = None,
    ) -> None:
        self.displays = dict(displays)
        self.profiles = {name: profile for name, (_p, profile) in printers.items()}
        self.printers = {name: p for name, (p, _profile) in printers.items()}
        self.terminals = {t.sn: t for t in terminals}
        self._on_fault = on_fault
        self._on_recovered = on_recovered
        self.queues: dict[str, PrintQueue] = {}
        # (kind, name) -> current fault: a lane's display and printer may share a name
        self.faults: dict[tuple[str, str], str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slips: set[asyncio.Task[None]] = set()  # QR slips being built (in the pool)
        self._pool_started = False
        self._idle_timers: dict[str, asyncio.TimerHandle] = {}
        self._seq = 0

    @property
    def web_displays(self) -> dict[str, WebDisplay]:
        return {n: d for n, d in self.displays.items() if isinstance(d, WebDisplay)}

    async def start(self) -> None:
        if self.displays or self.printers:  # QR pictures and slips render in its process
            await _pool().start()
            self._pool_started = True
        for name, printer in self.printers.items():
            queue = PrintQueue(
                printer,
                on_fault=lambda p, reason: self._fault("printer", p, reason),
                on_recovered=lambda p: self._recovered("printer", p),
            )
            self.queues[name] = queue
            await queue.start()
        for display in self.displays.values():
            try:
                await asyncio.wait_for(display.open(), DISPLAY_TIMEOUT_S)
            except (DeviceError, OSError, TimeoutError) as exc:
                self._fault("display", display.name, str(exc))
            await self._show(display, DisplayFrame(state=FrameState.IDLE, seq=self._next()))

    async def stop(self, *, drain_s: float = 3.0) -> None:
        for timer in self._idle_timers.values():
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._slips:  # a slip being built is queued, then drained with the others
            await asyncio.wait(self._slips, timeout=drain_s)
        for queue in self.queues.values():
            await queue.stop(drain_s)
        for display in self.displays.values():
            try:
                await asyncio.wait_for(display.close(), DISPLAY_TIMEOUT_S)
            except (DeviceError, OSError, TimeoutError) as exc:
                log.warning("display_close_failed", display=display.name, error=str(exc))
        if self._pool_started:
            self._pool_started = False
            await _pool().close()

    # -- engine listener ---------------------------------------------------------------

    def on_change(self, rec: TxnRecord, step: Transition | None) -> None:
        """Called by the engine after each commit."""
        op = OPERATIONS[rec.kind]
        if op.shows_qr:
            self._qr_change(rec)
        elif step is not None and step.new.is_final and op.receipt:
            self._receipt(rec)

    def _qr_change(self, rec: TxnRecord) -> None:
        display = self._display_for(rec)
        cur = rec.currency
        amount = format_amount(rec.amount, cur, rec.exponent)
        if rec.state == State.IN_PROGRESS and rec.qr_deeplink:
            frame = DisplayFrame(state=FrameState.QR, amount_text=amount, currency=cur,
                                 deeplink=rec.qr_deeplink, expires_at=rec.expires_at / 1000,
                                 order_no=rec.order_no, seq=self._next())
            if display is not None:
                self._spawn(self._show(display, frame))
            printer = self._printer_for(rec)
            if rec.print_slip and printer is not None:
                # Built in the render pool's process: sizing or drawing its QR calls zxing-cpp.
                slip = _pool().run(qr_slip, deeplink=rec.qr_deeplink, amount_text=amount,
                                   currency=cur, subject=rec.subject, order_no=rec.order_no,
                                   expires_text=rfc3339(rec.expires_at) or "",
                                   profile=self.profiles[printer])
                task = asyncio.get_running_loop().create_task(
                    self._print_slip(printer, f"qr-{rec.order_no}", slip))
                self._slips.add(task)
                task.add_done_callback(self._slips.discard)
        elif rec.is_final and display is not None:
            paid = rec.state == State.APPROVED
            frame = DisplayFrame(
                state=FrameState.PAID if paid else FrameState.FAILED, amount_text=amount,
                currency=cur, order_no=rec.order_no, seq=self._next(),
                message="Paid - thank you" if paid else f"Payment {rec.state.value}")
            self._spawn(self._show(display, frame))
            self._back_to_idle(display)

    async def _print_slip(self, printer: str, job_id: str, slip: Awaitable[bytes]) -> None:
        try:
            data = await slip
        except Exception:  # like a listener's error: logged, the payment goes on
            log.exception("slip_build_failed", job=job_id)
            return
        self.queues[printer].submit(job_id, data)

    def _receipt(self, rec: TxnRecord) -> None:
        printer = self._printer_for(rec)
        if printer is None:
            return
        cur = rec.currency
        data = card_receipt(
            kind=rec.kind.value, state=rec.state.value,
            amount_text=format_amount(rec.amount + rec.tip, cur, rec.exponent), currency=cur,
            card_brand=rec.card_brand, card_last4=rec.card_last4, auth_no=rec.auth_no,
            order_no=rec.order_no, time_text=rfc3339(rec.updated_at) or "",
            profile=self.profiles[printer])
        self.queues[printer].submit(f"{rec.kind.value}-{rec.order_no}-{rec.state.value}", data)

    def print_batch_report(self, batch: dict[str, Any]) -> None:
        term = self.terminals.get(str(batch.get("terminal")))
        if term is None or term.printer is None or term.printer not in self.queues:
            return
        data = batch_report_from_view(batch, profile=self.profiles[term.printer])
        self.queues[term.printer].submit(f"batch-{term.sn}-{batch.get('batch_no')}", data)

    # -- choosing devices --------------------------------------------------------------

    def _display_for(self, rec: TxnRecord) -> Any | None:
        term = self.terminals.get(rec.terminal_sn or "")
        name = rec.display or (term.display if term else None)
        if name is None and len(self.displays) == 1:
            name = next(iter(self.displays))
        return self.displays.get(name) if name else None

    def _printer_for(self, rec: TxnRecord) -> str | None:
        term = self.terminals.get(rec.terminal_sn or "")
        shows_qr = OPERATIONS[rec.kind].shows_qr
        for name in (rec.display if shows_qr else None,
                     term.printer if term else None):
            if name is not None and name in self.queues:
                return name
        if len(self.queues) == 1 and (shows_qr or term is None):
            return next(iter(self.queues))
        return None

    # -- plumbing ----------------------------------------------------------------------

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _show(self, display: Any, frame: DisplayFrame) -> None:
        try:
            await asyncio.wait_for(display.show(frame), DISPLAY_TIMEOUT_S)
        except (DeviceError, OSError, TimeoutError) as exc:
            self._fault("display", display.name, str(exc) or type(exc).__name__)
            return
        if ("display", display.name) in self.faults:
            self._recovered("display", display.name)

    def _back_to_idle(self, display: Any) -> None:
        old = self._idle_timers.pop(display.name, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._idle_timers[display.name] = loop.call_later(
            RESULT_HOLD_S,
            lambda: self._spawn(self._show(display, DisplayFrame(state=FrameState.IDLE,
                                                                 seq=self._next()))))

    def _fault(self, kind: str, name: str, reason: str | None) -> None:
        first = (kind, name) not in self.faults
        self.faults[kind, name] = reason or "fault"
        if first:
            log.warning("device_fault", device=kind, name=name, reason=reason)
        if self._on_fault is not None:
            self._on_fault(kind, name, reason)

    def _recovered(self, kind: str, name: str) -> None:
        if self.faults.pop((kind, name), None) is not None:
            log.info("device_recovered", device=kind, name=name)
            if self._on_recovered is not None:
                self._on_recovered(kind, name)

    def status(self) -> dict[str, object]:
        return {
            "displays": {n: self.faults.get(("display", n)) or "ok" for n in self.displays},
            "printers": {n: self.faults.get(("printer", n)) or "ok" for n in self.printers},
            "checked_at": time.time(),
        }


def _pool() -> RenderPool:
    """The render pool. Its module (and multiprocessing) loads only for a daemon with
    displays or printers: the only ones that start it."""
    from hardware.qr_pool import POOL

    return POOL
