"""The systemd notify protocol (``sd_notify(3)``), a few lines instead of a dependency.

Theory of operation: systemd passes a ``Type=notify`` service the address of a datagram socket in
``NOTIFY_SOCKET`` — a file-system path (``/run/systemd/notify``) or a Linux abstract name written
with a leading ``@``. The service sends newline-separated ``KEY=value`` assignments to it:
``READY=1`` once it serves, ``STATUS=…`` for ``systemctl status``, ``STOPPING=1`` when a graceful
stop begins and ``WATCHDOG=1`` at least once per ``WATCHDOG_USEC``; systemd restarts the service
when the pings stop. ``WATCHDOG_PID``, when set, names the one process the watchdog applies to.

The pure part (:func:`parse_notify_socket`, :func:`watchdog_interval_from_env`,
:func:`encode_message`) reads the environment and builds datagrams; :class:`SystemdNotifier` sends
them; :func:`run_watchdog` is the asyncio task that pings from the event loop itself, so a loop
that is stuck — or a daemon whose ``health()`` says it is not alive, e.g. a journal that can no
longer commit — stops pinging and systemd restarts it.

Everything is a no-op when ``NOTIFY_SOCKET`` is unset (a terminal, the tests, the sandbox).
A failure to send never raises: the daemon's job is payments, not systemd; the first failure is
logged, later ones are only counted (a watchdog ping every 15 s must not flood the journal).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

import structlog

log = structlog.get_logger(__name__)

#: Largest datagram we send; systemd reads notify messages into a buffer of this order and a
#: STATUS line longer than a screen says nothing more to an operator.
MAX_STATUS_CHARS = 512


def parse_notify_socket(value: str | None) -> str | None:
    """The ``sendto`` address for a ``NOTIFY_SOCKET`` value, or ``None`` when there is none.

    ``/path`` is returned unchanged; ``@name`` becomes the abstract address ``"\\0name"``. Any other
    form (a relative path, ``vsock:`` of newer systemd versions) is not supported: ``None``,
    the same answer ``sd_notify(3)`` gives for an address it cannot use.
    """
    if not value:
        return None
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def watchdog_interval_from_env(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or ``None`` when no watchdog applies.

    ``None`` when ``WATCHDOG_USEC`` is unset, not a positive integer, or when ``WATCHDOG_PID`` is
    set and is not ``pid`` (the watchdog is meant for another process, as ``sd_watchdog_enabled``
    decides). Half the interval is what ``sd_watchdog_enabled(3)`` recommends: one late ping
    is then not yet a missed one.
    """
    usec_text = env.get("WATCHDOG_USEC", "")
    if not usec_text.isdigit() or int(usec_text) <= 0:
        return None
    pid_text = env.get("WATCHDOG_PID")
    if pid_text is not None and (not pid_text.isdigit() or int(pid_text) != pid):
        return None
    return int(usec_text) / 1_000_000 / 2


def encode_message(**fields: str) -> bytes:
    """One datagram of ``KEY=value`` lines, in the order given.

    A value cannot span lines in this protocol, so newlines inside a value become spaces, and a
    ``STATUS`` is cut to :data:`MAX_STATUS_CHARS`.
    """
    lines = []
    for key, value in fields.items():
        flat = value.replace("\r", " ").replace("\n", " ")
        if key == "STATUS":
            flat = flat[:MAX_STATUS_CHARS]
        lines.append(f"{key}={flat}")
    return "\n".join(lines).encode("utf-8")


class SystemdNotifier:
    """Sends sd_notify messages to the socket systemd named in the environment.

    ``env`` and ``pid`` default to ``os.environ`` and ``os.getpid()``; they are read once, at
    construction. Every method returns ``True`` when the datagram was handed to the socket and
    ``False`` when notification is disabled or sending failed — callers may ignore it.
    """

    def __init__(self, *, env: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        source = os.environ if env is None else env
        self._address = parse_notify_socket(source.get("NOTIFY_SOCKET"))
        self._interval = watchdog_interval_from_env(source, os.getpid() if pid is None else pid)
        self.failures = 0  # datagrams that could not be sent (only the first one is logged)
        if source.get("NOTIFY_SOCKET") and self._address is None:
            log.warning("sdnotify_unsupported_socket")

    @property
    def enabled(self) -> bool:
        """Whether a notify socket is configured at all."""
        return self._address is not None

    def ready(self, status: str = "") -> bool:
        """Tell systemd start-up is complete (``READY=1``), with an optional status line."""
        if status:
            return self._send(encode_message(READY="1", STATUS=status))
        return self._send(encode_message(READY="1"))

    def stopping(self) -> bool:
        """Tell systemd a graceful stop has begun (``STOPPING=1``)."""
        return self._send(encode_message(STOPPING="1"))

    def status(self, text: str) -> bool:
        """Set the free-form line ``systemctl status`` shows (``STATUS=…``)."""
        return self._send(encode_message(STATUS=text))

    def watchdog(self) -> bool:
        """One keep-alive ping (``WATCHDOG=1``)."""
        return self._send(encode_message(WATCHDOG="1"))

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of ``WATCHDOG_USEC``), ``None`` without a watchdog."""
        return self._interval if self.enabled else None

    def _send(self, datagram: bytes) -> bool:
        if self._address is None:
            return False
        try:
            # A fresh socket per message, as sd_notify(3) does: nothing to close at exit and
            # nothing stale after systemd re-executes itself. Non-blocking, because this runs on
            # the event loop: a full receive queue is reported, never waited on.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(datagram, self._address)
        except OSError as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning("sdnotify_send_failed", error=exc.strerror or type(exc).__name__)
            return False
        return True


async def run_watchdog(
    notifier: SystemdNotifier,
    health: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    """Ping the systemd watchdog every :meth:`SystemdNotifier.watchdog_interval` seconds.

    Runs until cancelled; returns at once when no watchdog applies. Before each ping ``health()``
    is awaited (bounded by one interval): a ping is sent only when it returns ``True``. ``False``,
    an exception or a ``health()`` that does not answer in time withholds the ping, so systemd
    sees a daemon that is not alive and restarts it after ``WatchdogSec``. Because the pings come
    from this event loop, a blocked loop withholds them too.
    """
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    loop = asyncio.get_running_loop()
    withheld = False
    next_at = loop.time()
    while True:
        alive = await _is_alive(health, interval)
        if alive:
            notifier.watchdog()
            if withheld:
                log.info("watchdog_resumed")
        elif not withheld:
            log.error("watchdog_withheld")
        withheld = not alive
        # A fixed schedule rather than sleep(interval) after each ping, so a slow health check
        # does not stretch the period towards the limit.
        next_at = max(next_at + interval, loop.time())
        await asyncio.sleep(next_at - loop.time())


async def _is_alive(health: Callable[[], Awaitable[bool]] | None, limit: float) -> bool:
    if health is None:
        return True
    try:
        async with asyncio.timeout(limit):
            return bool(await health())
    except TimeoutError:
        return False
    except Exception:
        # A health check that crashes is an unhealthy daemon, not a reason to stop the watchdog
        # task (which would also stop the pings, but silently).
        log.exception("watchdog_health_failed")
        return False
