"""The Python client for registers: the ECR protocol (docs/ecr-protocol.md) as typed calls.

::

    from posbridge.client import EcrClient, EcrError

    async with await EcrClient.connect("ws://127.0.0.1:8765/ecr", token,
                                       reconnect=True, last_seq=stored_seq) as ecr:
        txn = await ecr.sale(terminal="lane-1", order_no="L1-0042", amount="12.34",
                             currency="USD")
        async for note in ecr.notifications():   # transaction.updated, batch.closed, ...
            handle(note)
            store(note["params"]["seq"])

Amounts are decimal strings (``"12.34"``), never floats. Answers are matched to requests by
id, so calls may run concurrently on one client. Every result is a plain ``dict`` shaped as the
protocol's objects (:class:`Transaction`, :class:`Batch`, ...); an error answer raises
:class:`EcrError` with the protocol's ``code``, ``reason`` and ``field``.

Notifications and reconnecting
------------------------------
Notifications are delivered once each, in ``seq`` order: one whose ``seq`` is not above the
highest delivered (:attr:`EcrClient.last_seq`) is dropped, so live and replayed events may
overlap harmlessly. With ``reconnect=True`` the client follows the protocol's rule "After a
disconnect or a crash": when the connection drops it reconnects with a back-off (0.5 s doubling
to 10 s), authenticates, and calls ``events.replay`` from :attr:`~EcrClient.last_seq` until the
answer is empty; live notifications arriving meanwhile are held and delivered after the replay.
``last_seq`` given to :meth:`EcrClient.connect` (the highest ``seq`` your register processed,
kept durably; 0 on its first run) replays from there at once; with ``reconnect=True`` it
defaults to 0. Without ``last_seq`` and ``reconnect`` (one-shot tools) nothing is replayed.

A request in flight when the connection drops fails with :class:`ConnectionLost`: it may or
may not have reached the bridge, so send it again with the same ``order_no`` (always safe).
Requests made while the client is reconnecting wait for the new connection (within their
timeout). A refused token ends the client: every call then raises :class:`ConnectionLost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Protocol, TypedDict, cast

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from posbridge.errors import PosbridgeError

__all__ = ["Batch", "Card", "ConnectionLost", "EcrClient", "EcrError", "Event", "Identity",
           "Notification", "QrCode", "Terminal", "Transaction", "TransactionError",
           "TransactionPage"]

#: Close code of a connection whose token was refused.
CLOSE_UNAUTHORIZED = 4401
#: How long a waiting payment may take by default at the bridge (``timeout_s``), and the margin
#: the client adds before it stops waiting for the answer.
DEFAULT_WAIT_S = 300.0
ANSWER_MARGIN_S = 30.0


# -- the protocol's objects --------------------------------------------------------------------


class Card(TypedDict):
    brand: str | None
    last4: str | None


class QrCode(TypedDict):
    deeplink: str
    expires_at: str


class TransactionError(TypedDict):
    code: str
    message: str
    provider_code: str | None


class Transaction(TypedDict, total=False):
    """A payment, void or refund (docs/ecr-protocol.md, "Objects")."""

    order_no: str
    kind: str
    provider: str
    terminal: str | None
    amount: str
    tip: str
    currency: str
    state: str
    provider_ref: str | None
    auth_no: str | None
    card: Card | None
    qr: QrCode | None
    orig_order_no: str | None
    refunded_amount: str
    batch_no: str | None
    error: TransactionError | None
    created_at: str
    updated_at: str
    description: str
    subject: str


class TransactionPage(TypedDict):
    items: list[Transaction]
    next_cursor: str | None


class Batch(TypedDict, total=False):
    terminal: str
    batch_no: str
    state: str
    opened_at: str
    closed_at: str | None
    count: int
    totals: dict[str, dict[str, Any]]
    provider_result: dict[str, Any] | None
    discrepancy: dict[str, Any]


class Terminal(TypedDict, total=False):
    sn: str
    name: str
    provider: str
    online: bool | None
    open_batch: dict[str, Any]


class Identity(TypedDict):
    name: str
    role: str


class Event(TypedDict):
    """One answer item of ``events.replay``."""

    seq: int
    type: str
    method: str
    params: dict[str, Any]
    at: str


class Notification(TypedDict):
    """A notification as delivered (live, or made from a replayed :class:`Event`)."""

    jsonrpc: str
    method: str
    params: dict[str, Any]


# -- errors ---------------------------------------------------------------------------------


class _Sender(Protocol):
    """What a request needs of its connection: to send one text frame."""

    async def send(self, message: str) -> None: ...


class EcrError(PosbridgeError):
    """A JSON-RPC error answer from the bridge."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.data = data or {}

    @property
    def reason(self) -> str | None:
        """The machine-readable ``data.reason`` (``invalid_params``, ``forbidden``, ...)."""
        reason = self.data.get("reason")
        return str(reason) if reason is not None else None

    @property
    def field(self) -> str | None:
        """The offending parameter, when the error names one."""
        field = self.data.get("field")
        return str(field) if field is not None else None


class ConnectionLost(PosbridgeError, ConnectionError):
    """The connection to the bridge is gone (or, without ``reconnect``, was never there).
    A request it interrupted may or may not have been received: send it again unchanged."""


# -- the client ----------------------------------------------------------------------------------


class EcrClient:
    """One register's connection to the bridge; make it with :meth:`connect`."""

    def __init__(self, url: str, token: str, *, header: bool, open_timeout: float,
                 reconnect: bool, last_seq: int | None, backoff_s: tuple[float, float]) -> None:
        self.url = url
        self._token = token
        self._header = header
        self._open_timeout = open_timeout
        self._reconnect = reconnect
        self._replay_at_connect = last_seq is not None or reconnect
        self._last_seq = last_seq or 0
        self._backoff_s = backoff_s
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._notes: asyncio.Queue[Notification] = asyncio.Queue()
        self._held: list[Notification] | None = None  # live notes held during a replay
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._fatal: BaseException | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.reconnects = 0  # how many times the connection was made again

    def __repr__(self) -> str:  # the token stays out
        return f"EcrClient(url={self.url!r}, last_seq={self._last_seq})"

    @classmethod
    async def connect(cls, url: str, token: str, *, header: bool = True,
                      open_timeout: float = 10.0, reconnect: bool = False,
                      last_seq: int | None = None,
                      backoff_s: tuple[float, float] = (0.5, 10.0)) -> EcrClient:
        """Connect and authenticate (by the ``Authorization`` header, or with ``header=False``
        by an ``auth`` message, as browsers must), then replay from ``last_seq`` when given
        (see the module's documentation). The first connection's failure is raised
        (OSError, TimeoutError, websockets' InvalidStatus for a refused token, EcrError)."""
        client = cls(url, token, header=header, open_timeout=open_timeout,
                     reconnect=reconnect, last_seq=last_seq, backoff_s=backoff_s)
        ws = await client._open()
        client._supervisor = asyncio.create_task(client._supervise(ws))
        return client

    @property
    def last_seq(self) -> int:
        """The highest ``seq`` delivered; replays start after it."""
        return self._last_seq

    @property
    def connected(self) -> bool:
        """Whether a connection is open and authenticated now."""
        return self._ws is not None and self._connected.is_set()

    async def __aenter__(self) -> EcrClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection and stop reconnecting; calls in flight fail."""
        self._closing = True
        ws, self._ws = self._ws, None
        self._connected.set()  # wakes calls waiting for a reconnect: they see the close
        if ws is not None:
            await ws.close()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._fail_waiting(ConnectionLost("the client was closed"))

    # -- calls -------------------------------------------------------------------------------

    async def call(self, method: str, params: Mapping[str, Any] | None = None, *,
                   timeout: float = 60.0) -> Any:
        """Send one request and return its ``result``; EcrError for an error answer,
        ConnectionLost when the connection goes, TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):  # unlike wait_for, no extra task per call
            ws = await self._connection()
            return await self._request(ws, method, params)

    async def ping(self) -> dict[str, str]:
        return cast(dict[str, str], await self.call("ping"))

    async def sale(self, *, terminal: str, order_no: str, amount: str, currency: str,
                   tip: str | None = None, description: str | None = None, wait: bool = True,
                   timeout_s: float | None = None) -> Transaction:
        """A card sale; with ``wait`` the answer comes when it is final or ``timeout_s``
        passed (then with its current state)."""
        params = _params(terminal=terminal, order_no=order_no, amount=amount,
                         currency=currency, tip=tip, description=description, wait=wait,
                         timeout_s=timeout_s)
        return cast(Transaction, await self.call("sale", params, timeout=_answer_within(
            wait, timeout_s)))

    async def qr_sale(self, *, order_no: str, amount: str, currency: str, subject: str,
                      body: str | None = None, display: str | None = None,
                      print_slip: bool = False, terminal: str | None = None,
                      wait: bool = True, timeout_s: float | None = None) -> Transaction:
        """A wallet QR sale; the answer's ``qr.deeplink`` is what the QR code encodes."""
        params = _params(order_no=order_no, amount=amount, currency=currency, subject=subject,
                         body=body, display=display, terminal=terminal, wait=wait,
                         timeout_s=timeout_s)
        if print_slip:
            params["print"] = True
        return cast(Transaction, await self.call("qr_sale", params, timeout=_answer_within(
            wait, timeout_s)))

    async def void(self, *, order_no: str, orig_order_no: str, terminal: str | None = None,
                   manager_pin: str | None = None) -> Transaction:
        params = _params(order_no=order_no, orig_order_no=orig_order_no, terminal=terminal,
                         manager_pin=manager_pin)
        return cast(Transaction, await self.call("void", params,
                                                 timeout=_answer_within(True, None)))

    async def refund(self, *, order_no: str, orig_order_no: str, amount: str,
                     description: str | None = None,
                     manager_pin: str | None = None) -> Transaction:
        params = _params(order_no=order_no, orig_order_no=orig_order_no, amount=amount,
                         description=description, manager_pin=manager_pin)
        return cast(Transaction, await self.call("refund", params,
                                                 timeout=_answer_within(True, None)))

    async def cancel(self, order_no: str) -> Transaction:
        return cast(Transaction, await self.call("cancel", {"order_no": order_no},
                                                 timeout=_answer_within(True, None)))

    async def status(self, order_no: str, *, refresh: bool = False) -> Transaction:
        return cast(Transaction, await self.call("status", {"order_no": order_no,
                                                            "refresh": refresh}))

    async def transactions(self, *, terminal: str | None = None, state: str | None = None,
                           since: str | None = None, limit: int | None = None,
                           cursor: str | None = None) -> TransactionPage:
        params = _params(terminal=terminal, state=state, since=since, limit=limit,
                         cursor=cursor)
        return cast(TransactionPage, await self.call("transactions.list", params))

    async def terminals(self) -> list[Terminal]:
        return cast(list[Terminal], await self.call("terminals.list"))

    async def batch_status(self, terminal: str | None = None) -> list[Batch]:
        return cast(list[Batch], await self.call("batch.status", _params(terminal=terminal)))

    async def batch_close(self, terminal: str, *, manager_pin: str | None = None) -> Batch:
        params = _params(terminal=terminal, manager_pin=manager_pin)
        return cast(Batch, await self.call("batch.close", params,
                                           timeout=_answer_within(True, None)))

    async def replay(self, since_seq: int) -> list[Event]:
        """One ``events.replay`` answer (the client replays by itself; see above)."""
        return cast(list[Event], await self.call("events.replay", {"since_seq": since_seq}))

    # -- notifications -----------------------------------------------------------------------

    async def next_notification(self, timeout: float = 10.0) -> Notification:
        """The next notification; TimeoutError if none comes within ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            return await self._notes.get()

    async def notifications(self) -> AsyncIterator[Notification]:
        """Every notification, in ``seq`` order, each once."""
        while True:
            yield await self._notes.get()

    def _deliver(self, note: Notification) -> None:
        if self._held is not None:
            self._held.append(note)
            return
        seq = note.get("params", {}).get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            if seq <= self._last_seq:
                return  # seen already: live and replayed events overlap
            self._last_seq = seq
        self._notes.put_nowait(note)

    # -- the connection ----------------------------------------------------------------------------

    async def _connection(self) -> ClientConnection:
        """The open connection, waiting for a reconnect in progress."""
        while True:
            if self._fatal is not None:
                raise ConnectionLost(f"the client stopped: {self._fatal}")
            if self._closing:
                raise ConnectionLost("the client was closed")
            ws = self._ws
            if ws is not None and self._connected.is_set():
                return ws
            if not self._reconnect:
                raise ConnectionLost("the bridge closed the connection")
            await self._connected.wait()  # set again by a reconnect, a close or a refusal

    async def _open(self) -> ClientConnection:
        """Connect, authenticate, replay; the connection is in use once this returns."""
        headers = {"Authorization": f"Bearer {self._token}"} if self._header else None
        ws = await connect(self.url, additional_headers=headers,
                           open_timeout=self._open_timeout, max_size=2**20, compression=None)
        if self._replay_at_connect:
            # Live notifications start at once: hold them until the replay has caught up.
            self._held = []
        reader = asyncio.create_task(self._read(ws))
        try:
            if not self._header:
                await self._request(ws, "auth", {"token": self._token}, timeout=10.0)
            if self._replay_at_connect:
                await self._replay(ws)
        except BaseException:
            self._held = None  # the next connection replays what they held
            await ws.close()
            reader.cancel()
            raise
        self._ws = ws
        self._reader = reader
        self._connected.set()
        return ws

    async def _replay(self, ws: ClientConnection) -> None:
        """``events.replay`` from :attr:`last_seq` until empty, then the held live notes."""
        try:
            for _ in itertools.count():  # ends when the bridge has nothing newer
                events = await self._request(ws, "events.replay",
                                             {"since_seq": self._last_seq}, timeout=30.0)
                if not events:
                    break
                held, self._held = self._held, None
                for event in events:
                    self._deliver(_as_notification(event))
                self._held = held
        finally:
            held, self._held = self._held or [], None
            for note in sorted(held, key=_seq_of):
                self._deliver(note)

    async def _supervise(self, ws: ClientConnection | None) -> None:
        """Wait for the connection to end; then reconnect (when asked to) with back-off."""
        while ws is not None:
            assert self._reader is not None
            await self._reader
            self._connected.clear()
            if self._ws is ws:
                self._ws = None
            if ws.close_code == CLOSE_UNAUTHORIZED:
                self._stop(ConnectionLost("the bridge refused the token"))
            if self._closing or self._fatal is not None or not self._reconnect:
                self._connected.set()  # calls waiting for a reconnect see why there is none
                return
            ws = await self._reopen()

    def _stop(self, why: BaseException) -> None:
        self._fatal = why
        self._ws = None
        self._connected.set()

    async def _reopen(self) -> ClientConnection | None:
        """A new connection, trying with back-off until one opens; None if the token is
        refused."""
        delay, longest = self._backoff_s
        while True:
            await asyncio.sleep(delay)
            try:
                ws = await self._open()
            except InvalidStatus as exc:
                if exc.response.status_code == 401:
                    self._stop(ConnectionLost("the bridge refused the token"))
                    return None
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, EcrError):
                pass
            else:
                self.reconnects += 1
                return ws
            delay = min(delay * 2, longest)

    async def _request(self, ws: _Sender, method: str,
                       params: Mapping[str, Any] | None, *, timeout: float | None = None) -> Any:
        call_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = fut
        frame: dict[str, Any] = {"jsonrpc": "2.0", "id": call_id, "method": method}
        if params is not None:
            frame["params"] = dict(params)
        try:
            try:
                await ws.send(json.dumps(frame))
            except ConnectionClosed as exc:
                raise ConnectionLost("the bridge closed the connection") from exc
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self._waiting.pop(call_id, None)
            if fut.done() and not fut.cancelled():
                # The reader failed it while the send was still going (the send then raised
                # ConnectionLost itself): read its outcome, so that asyncio does not report an
                # exception that was never retrieved.
                fut.exception()

    def _fail_waiting(self, error: BaseException) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(error)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if not isinstance(msg, dict):
                    continue
                if msg.get("id") is not None and "method" not in msg:
                    fut = self._waiting.get(msg["id"])
                    if fut is None or fut.done():
                        continue
                    if "error" in msg:
                        fut.set_exception(_error(msg["error"]))
                    else:
                        fut.set_result(msg.get("result"))
                elif "id" in msg and "error" in msg:
                    # An error the bridge could not tie to a request (e.g. a parse error).
                    waiting = [f for f in self._waiting.values() if not f.done()]
                    if waiting:
                        waiting[0].set_exception(_error(msg["error"]))
                elif isinstance(msg.get("method"), str):
                    self._deliver(cast(Notification, msg))
        except ConnectionClosed:
            pass
        finally:
            self._fail_waiting(ConnectionLost(
                "the connection to the bridge was lost; the request may or may not have "
                "reached it: send it again with the same order_no"))


def _error(err: dict[str, Any]) -> EcrError:
    return EcrError(err.get("code", 0), err.get("message", ""), err.get("data"))


def _params(**given: Any) -> dict[str, Any]:
    """The given parameters, without those left out (None)."""
    return {k: v for k, v in given.items() if v is not None}


def _answer_within(wait: bool, timeout_s: float | None) -> float:
    """How long to wait for the answer of a call the bridge may hold for ``timeout_s``."""
    return (timeout_s or DEFAULT_WAIT_S) + ANSWER_MARGIN_S if wait else 60.0


def _as_notification(event: Event) -> Notification:
    return {"jsonrpc": "2.0", "method": event.get("method") or event["type"],
            "params": event["params"]}


def _seq_of(note: Notification) -> int:
    seq = note.get("params", {}).get("seq")
    return seq if isinstance(seq, int) else 0

