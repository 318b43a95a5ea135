"""sd_notify against a real AF_UNIX datagram socket standing in for systemd's."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from posbridge.sdnotify import (
    MAX_STATUS_CHARS,
    SystemdNotifier,
    encode_message,
    parse_notify_socket,
    run_watchdog,
    watchdog_interval_from_env,
)

pytestmark = pytest.mark.timeout(15)

MS = 0.001  # the one time unit of these tests
WATCHDOG_USEC = 100_000  # 100 ms watchdog: a ping every 50 ms
PING_S = WATCHDOG_USEC / 1_000_000 / 2


@pytest.fixture
def notify_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A short directory: AF_UNIX paths are limited to 108 bytes.
    return tmp_path_factory.mktemp("sd")


@pytest.fixture
def listener(notify_dir: Path) -> Iterator[tuple[socket.socket, str]]:
    """systemd's side: a bound datagram socket and the NOTIFY_SOCKET value naming it."""
    path = notify_dir / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    with sock:
        yield sock, str(path)


async def receive(sock: socket.socket, timeout: float = 500 * MS) -> bytes:
    async with asyncio.timeout(timeout):
        return await asyncio.get_running_loop().sock_recv(sock, 4096)


async def nothing_within(sock: socket.socket, seconds: float) -> bool:
    try:
        await receive(sock, seconds)
    except TimeoutError:
        return True
    return False


def drain(sock: socket.socket) -> list[bytes]:
    got = []
    with contextlib.suppress(BlockingIOError):
        while True:
            got.append(sock.recv(4096))
    return got


@contextlib.asynccontextmanager
async def watchdog_task(
    notifier: SystemdNotifier, health: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(run_watchdog(notifier, health))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- pure parts ------------------------------------------------------------------------------


def test_parse_notify_socket_accepts_paths_and_abstract_names() -> None:
    assert parse_notify_socket("/run/systemd/notify") == "/run/systemd/notify"
    assert parse_notify_socket("@sd-notify") == "\0sd-notify"


@pytest.mark.parametrize("value", [None, "", "@", "relative/path", "vsock:2:1234"])
def test_parse_notify_socket_refuses_what_it_cannot_use(value: str | None) -> None:
    assert parse_notify_socket(value) is None


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval_from_env({"WATCHDOG_USEC": "30000000"}, pid=42) == 15.0
    assert watchdog_interval_from_env({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"},
                                      pid=42) == 15.0


@pytest.mark.parametrize("env", [
    {},
    {"WATCHDOG_USEC": "0"},
    {"WATCHDOG_USEC": "-5"},
    {"WATCHDOG_USEC": "thirty"},
    {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "43"},  # meant for another process
    {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"},
])
def test_watchdog_interval_none_when_no_watchdog_applies(env: dict[str, str]) -> None:
    assert watchdog_interval_from_env(env, pid=42) is None


def test_encode_message_keeps_each_value_on_one_line() -> None:
    assert encode_message(READY="1", STATUS="a\nb\rc") == b"READY=1\nSTATUS=a b c"
    long = encode_message(STATUS="x" * (MAX_STATUS_CHARS + 100))
    assert long == b"STATUS=" + b"x" * MAX_STATUS_CHARS


# -- messages over a real socket -------------------------------------------------------------


async def test_ready_status_and_stopping_reach_the_socket(
        listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier(env={"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("serving registers on port 8765")
    assert await receive(sock) == b"READY=1\nSTATUS=serving registers on port 8765"
    assert notifier.ready()
    assert await receive(sock) == b"READY=1"
    assert notifier.status("2 registers, 1 payment in flight")
    assert await receive(sock) == b"STATUS=2 registers, 1 payment in flight"
    assert notifier.watchdog()
    assert await receive(sock) == b"WATCHDOG=1"
    assert notifier.stopping()
    assert await receive(sock) == b"STOPPING=1"


async def test_abstract_socket_name_is_used() -> None:
    name = f"posbridge-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        notifier = SystemdNotifier(env={"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready("up")
        assert await receive(sock) == b"READY=1\nSTATUS=up"


async def test_reads_the_process_environment_by_default(
        listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = SystemdNotifier()
    assert notifier.watchdog_interval() == 15.0
    assert notifier.stopping()
    assert await receive(sock) == b"STOPPING=1"


async def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = SystemdNotifier(env={"WATCHDOG_USEC": "100000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval() is None
    assert not notifier.ready("x")
    assert not notifier.stopping()
    assert not notifier.watchdog()
    async with asyncio.timeout(100 * MS):
        await run_watchdog(notifier)  # returns at once: nothing to ping
    assert notifier.failures == 0


def test_send_failure_never_raises_and_is_logged_once(notify_dir: Path) -> None:
    notifier = SystemdNotifier(env={"NOTIFY_SOCKET": str(notify_dir / "nobody-listens")})
    with capture_logs() as logs:
        assert not notifier.ready("x")
        assert not notifier.watchdog()
        assert not notifier.stopping()
    assert notifier.failures == 3
    assert [e["event"] for e in logs] == ["sdnotify_send_failed"]


def test_unsupported_socket_address_disables_notification() -> None:
    with capture_logs() as logs:
        notifier = SystemdNotifier(env={"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert not notifier.ready()
    assert [e["event"] for e in logs] == ["sdnotify_unsupported_socket"]


# -- the watchdog task -------------------------------------------------------------------------


async def test_watchdog_pings_repeatedly_at_half_the_interval(
        listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    assert notifier.watchdog_interval() == pytest.approx(PING_S)
    loop = asyncio.get_running_loop()
    arrivals = []
    async with watchdog_task(notifier):
        for _ in range(6):
            assert await receive(sock) == b"WATCHDOG=1"
            arrivals.append(loop.time())
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    mean_gap = sum(gaps) / len(gaps)
    # Every gap well below the 100 ms watchdog; on average the 50 ms schedule.
    assert max(gaps) < WATCHDOG_USEC / 1_000_000
    assert PING_S * 0.8 <= mean_gap <= PING_S * 1.5


async def test_watchdog_withholds_pings_while_unhealthy_and_resumes(
        listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    healthy = True

    async def health() -> bool:
        return healthy

    with capture_logs() as logs:
        async with watchdog_task(notifier, health):
            assert await receive(sock) == b"WATCHDOG=1"
            healthy = False
            await asyncio.sleep(PING_S + 10 * MS)  # at most one ping was already under way
            drain(sock)
            assert await nothing_within(sock, 4 * PING_S)
            healthy = True
            assert await receive(sock) == b"WATCHDOG=1"
    events = [e["event"] for e in logs]
    assert events.count("watchdog_withheld") == 1  # once per outage, not once per tick
    assert events.count("watchdog_resumed") == 1


async def test_watchdog_withholds_pings_when_health_hangs_or_crashes(
        listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    never = asyncio.Event()

    async def hangs() -> bool:
        await never.wait()
        return True

    async def crashes() -> bool:
        raise RuntimeError("journal gone")

    with capture_logs():
        for health in (hangs, crashes):
            async with watchdog_task(notifier, health) as task:
                assert await nothing_within(sock, 4 * PING_S)
                assert not task.done()  # still running, ready to resume


async def test_a_blocked_event_loop_stops_the_pings(
        listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    sock.setblocking(True)
    sock.settimeout(20 * MS)
    arrivals: list[float] = []
    stop = threading.Event()

    def record() -> None:
        # Received in a thread: the event loop is the thing being blocked.
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                if sock.recv(4096) == b"WATCHDOG=1":
                    arrivals.append(time.monotonic())

    notifier = SystemdNotifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    receiver = threading.Thread(target=record)
    receiver.start()
    try:
        async with watchdog_task(notifier):
            await asyncio.sleep(3 * PING_S)
            blocked_at = time.monotonic()
            time.sleep(6 * PING_S)  # a blocking call on the loop, as a bug would make
            blocked_until = time.monotonic()
            await asyncio.sleep(3 * PING_S)
    finally:
        stop.set()
        receiver.join(timeout=3)
    during = [t for t in arrivals if blocked_at + 5 * MS < t < blocked_until]
    assert during == []
    assert any(t < blocked_at for t in arrivals)
    assert any(t > blocked_until for t in arrivals)
