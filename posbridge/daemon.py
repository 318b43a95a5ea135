"""The daemon: builds every component from a :class:`~posbridge.config.Config` and runs them.

Start order: pid file (one daemon per data folder) → journal → providers → engine (recovery)
→ HTTP listener → ECR listener → systemd READY. Stop order (SIGTERM): stop accepting registers →
let in-flight payments reach a recorded safe point → stop the HTTP listener → flush and close the
journal → close devices. SIGHUP reloads what can change while running (:meth:`Daemon.reload`);
with ``retention_days`` set, old records are pruned once a day (:meth:`Daemon.prune_journal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from hardware.displays.web import display_routes
from hardware.escpos import PrinterProfile
from posbridge.audit import CONFIG_RELOAD, LOCAL, SYSTEM, AuditEntry, failed, refused
from posbridge.audit_log import AuditTrail
from posbridge.batches import Batches
from posbridge.config import Config, PrinterConfig, load_config
from posbridge.devices import Devices, make_display, make_printer
from posbridge.ecr.hub import EventHub
from posbridge.ecr.methods import Methods
from posbridge.ecr.protocol import METHODS, dumps
from posbridge.ecr.server import EcrServer
from posbridge.engine import Engine, TerminalInfo
from posbridge.errors import (
    ConfigError,
    OutcomeUnknown,
    PaymentError,
    ProviderRejected,
    ProviderUnreachable,
)
from posbridge.http.manager import manager_routes
from posbridge.http.notify import notify_routes, notify_url
from posbridge.http.ops import ops_routes
from posbridge.journal import Journal, now_ms
from posbridge.lifecycle import Transition
from posbridge.metrics import Metrics
from posbridge.pidfile import PidFile
from posbridge.providers.base import Provider
from posbridge.providers.registry import PLUGINS
from posbridge.records import TxnRecord
from posbridge.reload import ReloadPlan, plan_reload
from posbridge.sdnotify import SystemdNotifier, run_watchdog
from posbridge.secrets import PinChecker, TokenIndex
from posbridge.views import rfc3339

if TYPE_CHECKING:
    from posbridge.journal_care import PruneReport
    from posbridge.sandbox.runtime import Simulators

log = structlog.get_logger(__name__)

# A provider that has not been heard from for this long is probed (see Engine.probe).
PROBE_IDLE_S = 300
PROBE_CHECK_S = 30.0

JOURNAL_FILE = "journal.sqlite"
# Pruning (retention_days > 0) runs this long after the start, then once a day.
PRUNE_FIRST_S = 60.0
PRUNE_EVERY_S = 24 * 3600.0
# Each daily run does at most this many bounded units (200 000 transactions or events).
PRUNE_UNITS_PER_RUN = 1000


@dataclass
class Daemon:
    """Everything that runs, wired once. ``await start()``, then ``await stop()``."""

    config: Config
    metrics: Metrics = field(default_factory=Metrics)
    sandbox: Simulators | None = None
    #: the file ``config`` was read from, read again by :meth:`reload` (None: nothing to reload)
    config_path: Path | None = None

    def __post_init__(self) -> None:
        cfg = self.config
        self.hub = EventHub()
        self.journal = Journal(cfg.bridge.data_dir / JOURNAL_FILE, on_events=self.hub.publish)
        self.audit = AuditTrail(self.journal)
        self._pidfile = PidFile(cfg.bridge.data_dir)
        self.providers: dict[str, Provider] = build_providers(cfg)
        terminals = tuple(TerminalInfo(sn=t.sn, name=t.name, provider=t.provider,
                                       display=t.display, printer=t.printer)
                          for t in cfg.terminals)
        self.engine = Engine(journal=self.journal, providers=self.providers, terminals=terminals,
                             displays=frozenset(d.name for d in cfg.displays))
        self.engine.listeners.append(self._count_transaction)
        self.engine.on_terminal_status = lambda sn, _online: self._terminal_status(sn)
        self.engine.on_provider_call = self._count_provider_call
        self._status_tasks: set[asyncio.Task[None]] = set()
        self.tokens = TokenIndex(cfg.ecr_clients)
        self.pins = PinChecker(cfg.manager.pin_hash) if cfg.manager.pin_hash else None
        self.devices = Devices(
            displays={d.name: make_display(d, sandbox=self.sandbox is not None)
                      for d in cfg.displays},
            printers={p.name: (make_printer(p), _profile(p)) for p in cfg.printers},
            terminals=terminals, on_fault=self._device_fault,
            on_recovered=self._device_recovered)
        self.engine.listeners.append(self.devices.on_change)
        self.batches = Batches(
            engine=self.engine, identities=[c.name for c in cfg.ecr_clients],
            on_closed=self._batch_closed)
        self.methods = Methods(engine=self.engine, max_amount=cfg.bridge.max_amount,
                               pin_checker=self.pins, batches=self.batches,
                               terminal_views=self.terminal_views, audit=self.audit)
        self.ecr = EcrServer(
            methods=self.methods, hub=self.hub, authenticator=self.tokens,
            host=cfg.bridge.ecr_listen.host, port=cfg.bridge.ecr_listen.port,
            ssl_context=self._ssl(),
            on_connections=self.metrics.ecr_connections.set,
            on_request=lambda m, o: self.metrics.ecr_requests_total.labels(
                method=_bounded_method(m), outcome=o).inc())
        self.notifier = SystemdNotifier()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._fsyncs_counted = 0
        self.stopped = asyncio.Event()

    def _ssl(self) -> ssl.SSLContext | None:
        b = self.config.bridge
        if b.tls_cert_file is None or b.tls_key_file is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(b.tls_cert_file, b.tls_key_file)
        return ctx

    def _count_provider_call(self, provider: str, what: str, seconds: float,
                             error: PaymentError | None) -> None:
        self.metrics.provider_request_seconds.labels(provider=provider, method=what).observe(
            seconds)
        if error is not None:
            self.metrics.provider_errors_total.labels(
                provider=provider, reason=_error_reason(error)).inc()

    def _count_transaction(self, rec: TxnRecord, step: Transition | None) -> None:
        if rec.is_final and step is not None:
            self.metrics.transactions_total.labels(
                provider=rec.provider, kind=rec.kind.value, state=rec.state.value).inc()
            self.metrics.transaction_seconds.labels(
                provider=rec.provider, kind=rec.kind.value).observe(
                    max(0, rec.updated_at - rec.created_at) / 1000)

    def http_app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024)
        app.add_routes(notify_routes(
            self.engine, self.providers,
            on_rejected=lambda p, r: self.metrics.notifications_rejected_total.labels(
                provider=p, reason=r).inc()))
        app.add_routes(ops_routes(self))
        app.add_routes(manager_routes(self))
        on_pay = self._sandbox_pay if self.sandbox is not None else None
        app.add_routes(display_routes(self.devices.web_displays, on_sandbox_pay=on_pay))
        return app

    async def start(self) -> None:
        self._pidfile.acquire()
        try:
            await self._start()
        except BaseException:
            self._pidfile.release()  # a daemon that did not start holds no data folder
            raise

    async def _start(self) -> None:
        await self.journal.open()
        await self.devices.start()
        await self.engine.recover()
        self._runner = web.AppRunner(self.http_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        h = self.config.bridge.http_listen
        self._site = web.TCPSite(self._runner, h.host, h.port, ssl_context=self._ssl())
        await self._site.start()
        self._fix_notify_urls()
        await self.ecr.start()
        self._tasks.append(asyncio.create_task(self._resume_batches()))
        self._tasks.append(asyncio.create_task(self._probe_providers()))
        self._tasks.append(asyncio.create_task(self.metrics.loop_lag.run()))
        self._tasks.append(asyncio.create_task(run_watchdog(self.notifier, self.alive)))
        if self.config.bridge.retention_days:
            self._tasks.append(asyncio.create_task(self._prune_daily()))
        self.notifier.ready(f"serving registers on port {self.ecr_port}")
        log.info("daemon_started", ecr_port=self.ecr_port, http_port=self.http_port)

    @property
    def ecr_port(self) -> int:
        return self.ecr.bound_port

    @property
    def http_port(self) -> int:
        assert self._runner is not None
        server = self._runner.addresses
        port: int = server[0][1]
        return port

    async def _probe_providers(self) -> None:
        """Probe every provider at start, then each one that has been quiet for a while,
        so that /healthz tells the truth before the first payment and on quiet days."""
        while True:
            now = now_ms()
            for name, health in list(self.engine.provider_health.items()):
                if health.at is None or now - health.at >= PROBE_IDLE_S * 1000:
                    await self.engine.probe(name)
            await asyncio.sleep(PROBE_CHECK_S)

    async def alive(self) -> bool:
        return self.journal.healthy

    # -- journal care and reload ----------------------------------------------------------

    async def prune_journal(self, *, clock: Callable[[], int] = now_ms) -> PruneReport:
        """Remove what ``retention_days`` no longer keeps (:mod:`posbridge.journal_care`), in
        bounded journal units between which the loop serves, at most PRUNE_UNITS_PER_RUN."""
        from posbridge.journal_care import prune_journal  # only daemons with retention_days

        report = await prune_journal(self.journal, retention_days=self.config.bridge.retention_days,
                                     actor=SYSTEM, clock=clock, max_units=PRUNE_UNITS_PER_RUN)
        if report.transactions or report.events:
            log.info("journal_pruned", transactions=report.transactions, events=report.events,
                     units=report.units, finished=report.finished)
        return report

    async def _prune_daily(self) -> None:
        await asyncio.sleep(PRUNE_FIRST_S)
        while True:
            try:
                await self.prune_journal()
            except Exception:  # pruning must never stop the daemon; tomorrow it tries again
                log.exception("journal_prune_failed")
            await asyncio.sleep(PRUNE_EVERY_S)

    def reload_soon(self) -> None:
        """The SIGHUP handler: :meth:`reload` in a task of its own."""
        task = asyncio.get_running_loop().create_task(self._reload_task())
        self._status_tasks.add(task)
        task.add_done_callback(self._status_tasks.discard)

    async def _reload_task(self) -> None:
        await self.reload()

    async def reload(self) -> AuditEntry:
        """Read the configuration file again; apply the registers' tokens and the manager PIN,
        name every other change as needing a restart (:mod:`posbridge.reload`). The outcome is
        recorded in the audit trail (``config.reload``) and returned."""
        entry = await self._reload(AuditEntry(actor=SYSTEM, peer=LOCAL, action=CONFIG_RELOAD))
        log.info("config_reload", outcome=entry.outcome)
        await self.audit.record(entry)
        return entry

    async def _reload(self, entry: AuditEntry) -> AuditEntry:
        if self.config_path is None:
            return entry.ended(refused("this daemon was not started from a configuration file"))
        entry = entry.about(file=str(self.config_path))
        try:
            loaded = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:  # its message names the key, never a secret's value
            return entry.ended(failed(f"configuration error, nothing changed: {exc}"))
        plan = plan_reload(self.config, loaded)
        await self._apply(plan)
        entry = entry.about(applied=list(plan.applied), restart_needed=list(plan.restart_needed))
        if plan.restart_needed:
            return entry.ended(refused(
                "a restart is needed to apply " + ", ".join(plan.restart_needed)
                + (" (the tokens and PIN were applied)" if plan.applied else "")))
        return entry

    async def _apply(self, plan: ReloadPlan) -> None:
        self.config = plan.config
        if plan.new_tokens:
            self.tokens = TokenIndex(plan.config.ecr_clients)
            self.ecr.auth = self.tokens
        if "manager.pin_hash" in plan.applied:
            pin_hash = plan.config.manager.pin_hash
            self.pins = PinChecker(pin_hash) if pin_hash else None
            self.methods.pin_checker = self.pins
        if plan.new_tokens:  # connections made with a replaced token must authenticate again
            await self.ecr.disconnect(plan.new_tokens, "the register's token was changed")

    # -- wiring helpers ------------------------------------------------------------------

    def _fix_notify_urls(self) -> None:
        """With an empty ``public_url`` the notify URLs point at the bound HTTP listener
        (single-box installs, the sandbox and tests on port 0)."""
        if self.config.bridge.public_url:
            return
        host = self.config.bridge.http_listen.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 (a bind-all address is not a URL host)
            host = "127.0.0.1"
        scheme = "https" if self._ssl() is not None else "http"
        base = f"{scheme}://{host}:{self.http_port}"
        for name, provider in self.providers.items():
            provider.set_notify_url(notify_url(base, name))

    async def _resume_batches(self) -> None:
        try:
            await self.batches.resume()
        except Exception:
            log.exception("batch_resume_failed")

    def _batch_closed(self, batch: dict[str, Any]) -> None:
        self.metrics.batch_closes_total.labels(
            outcome="discrepancy" if batch.get("discrepancy") else "ok").inc()
        self.devices.print_batch_report(batch)

    def _device_fault(self, kind: str, name: str, reason: str | None) -> None:
        counter = (self.metrics.printer_faults_total if kind == "printer"
                   else self.metrics.display_faults_total)
        counter.labels(**{kind: name, "reason": _reason_label(reason)}).inc()
        self._announce_device(kind, name, ok=False, reason=reason)

    def _device_recovered(self, kind: str, name: str) -> None:
        self._announce_device(kind, name, ok=True, reason=None)

    def _announce_device(self, kind: str, name: str, *, ok: bool, reason: str | None) -> None:
        for term in self.engine.terminals:
            if name in (term.printer, term.display):
                self._terminal_status(term.sn, {kind: {"name": name, "ok": ok,
                                                       "reason": reason}})

    def _terminal_status(self, sn: str, extra: dict[str, Any] | None = None) -> None:
        """Journal a ``terminal.status`` event for every register (each gets its own seq)."""
        params = {"terminal": sn, "online": self.terminal_online.get(sn), **(extra or {})}
        text = dumps(params)  # once for every register
        identities = [c.name for c in self.config.ecr_clients]

        def unit(tx: Any) -> None:
            for identity in identities:
                tx.emit(identity, "terminal.status", params, text)

        task = asyncio.get_running_loop().create_task(self.journal.run(unit))
        self._status_tasks.add(task)
        task.add_done_callback(self._status_tasks.discard)

    async def _sandbox_pay(self, display: str, order_no: str) -> None:
        """The display's sandbox button: the customer pays the order shown."""
        assert self.sandbox is not None
        rec = await self.engine.get(order_no)
        if rec is None or rec.provider_ref is None:
            return
        await self.sandbox.pay(rec.provider, rec.provider_ref)

    @property
    def terminal_online(self) -> dict[str, bool | None]:
        return self.engine.terminal_online

    async def terminal_views(self) -> list[dict[str, Any]]:
        batches = {b["terminal"]: b for b in await self.batches.status(None)}
        return [{"sn": t.sn, "name": t.name, "provider": t.provider,
                 "online": self.terminal_online.get(t.sn),
                 "open_batch": batches.get(t.sn)} for t in self.engine.terminals]

    async def health(self) -> dict[str, Any]:
        journal_ok = await self.journal.check_writable()
        providers = {name: {"reachable": h.reachable, "error": h.error,
                            "checked_at": rfc3339(h.at)}
                     for name, h in self.engine.provider_health.items()}
        devices = self.devices.status()
        ok = journal_ok and all(p["reachable"] is not False and not p["error"]
                                for p in providers.values())
        return {"status": "ok" if ok else "degraded", "journal": "ok" if journal_ok else "failed",
                "providers": providers, "devices": devices,
                "live_transactions": self.engine.live_count,
                "registers_connected": self.hub.connections}

    def refresh_metrics(self) -> None:
        self.metrics.ecr_connections.set(self.hub.connections)
        for seconds in self.journal.drain_commit_times():
            self.metrics.journal_commit_seconds.observe(seconds)
        fsyncs = self.journal.fsyncs
        self.metrics.journal_fsyncs_total.inc(fsyncs - self._fsyncs_counted)
        self._fsyncs_counted = fsyncs

    async def stop(self, *, grace_s: float = 10.0) -> None:
        self.notifier.stopping()
        log.info("daemon_stopping")
        await self.ecr.stop_accepting()
        await self.engine.stop(grace_s=grace_s)
        await self.ecr.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        for provider in self.providers.values():
            await provider.aclose()
        # Devices drain their queues first: a fault or recovery they report while draining is
        # journaled as a terminal.status event, so the journal closes last.
        await self.devices.stop()
        if self._status_tasks:
            await asyncio.gather(*self._status_tasks, return_exceptions=True)
        await self.journal.close()
        self._pidfile.release()
        log.info("daemon_stopped")
        self.stopped.set()

    async def run_until_signalled(self) -> None:
        """Start, serve until SIGTERM/SIGINT (SIGHUP reloads), then stop gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_soon)
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()


def _profile(cfg: PrinterConfig) -> PrinterProfile:
    return PrinterProfile(width_dots=cfg.width_dots, native_qr=cfg.native_qr,
                          columns=48 if cfg.width_dots >= 576 else 32)


def _reason_label(reason: str | None) -> str:
    text = (reason or "").lower()
    for label in ("paper", "offline", "timeout", "cover"):
        if label in text:
            return label
    return "error"


def _bounded_method(method: str) -> str:
    return method if method in METHODS else "other"


def build_providers(cfg: Config) -> dict[str, Provider]:
    """The adapter of every configured provider, made by its plug-in. Without a
    ``public_url`` the notify URLs are relative until the HTTP listener is bound (see
    :meth:`Daemon._fix_notify_urls`)."""
    return {name: PLUGINS[name].build(section, notify_url(cfg.bridge.public_url, name))
            for name, section in cfg.providers.items()}


def journal_path(data_dir: Path) -> Path:
    return data_dir / JOURNAL_FILE


def _error_reason(error: PaymentError) -> str:
    """A bounded metrics label for a failed provider call."""
    if isinstance(error, OutcomeUnknown):
        return "outcome_unknown"
    if isinstance(error, ProviderUnreachable):
        return "unreachable"
    if isinstance(error, ProviderRejected):
        return "rejected"
    return "other"
