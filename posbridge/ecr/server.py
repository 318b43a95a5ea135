"""The ECR WebSocket server: a thin pump between frames and :class:`~posbridge.ecr.methods.Methods`.

Per connection:

* authentication by ``Authorization: Bearer`` at the upgrade (a wrong header is refused with
  HTTP 401) or by an ``auth`` message within 5 s (else close 4401); until then nothing but
  ``auth`` is answered;
* every request runs as its own task, so a ``sale`` that waits never blocks a ``cancel`` or
  ``status`` on the same connection; at most ``MAX_IN_FLIGHT`` at once (else 1009);
* one writer task sends responses and notifications from a bounded outbox; a register that
  does not read is disconnected (it reconnects and replays events; nothing is lost);
* frames over 64 KiB close the connection with 1009 (the websockets library enforces it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Collection
from http import HTTPStatus
from typing import Any, Protocol

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from posbridge.ecr import protocol as proto
from posbridge.ecr.hub import EventHub
from posbridge.ecr.methods import Caller, Methods
from posbridge.ecr.params import parse_auth
from posbridge.errors import JournalError, RequestError

log = structlog.get_logger(__name__)

AUTH_TIMEOUT_S = 5.0
MAX_FRAME = 64 * 1024
MAX_IN_FLIGHT = 32
OUTBOX_SIZE = 1024
CLOSE_UNAUTHORIZED = 4401


class Identity(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def role(self) -> Any: ...


class Authenticator(Protocol):
    async def authenticate(self, token: str, *, peer: str) -> Identity | None: ...


class EcrConnection:
    """One live register connection (a hub subscriber)."""

    def __init__(self, ws: ServerConnection, caller: Caller) -> None:
        self.ws = ws
        self.caller = caller
        self.identity = caller.name
        self.outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=OUTBOX_SIZE)
        self.log = log.bind(register=caller.name, peer=caller.peer)

    def deliver(self, frame: str) -> bool:
        return self.send(frame)

    def send(self, frame: str) -> bool:
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            self.log.warning("outbox_full_closing")
            asyncio.get_running_loop().create_task(
                self.ws.close(1008, "too slow; reconnect and replay"))
            return False
        return True

    async def pump(self) -> None:
        while True:
            frame = await self.outbox.get()
            await self.ws.send(frame)


class EcrServer:
    """Serves ``/ecr``. ``async with`` or :meth:`start` / :meth:`stop`."""

    def __init__(
        self,
        *,
        methods: Methods,
        hub: EventHub,
        authenticator: Authenticator,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        on_connections: Callable[[int], None] | None = None,
        on_request: Callable[[str, str], None] | None = None,
    ) -> None:
        self.methods = methods
        self.hub = hub
        self.auth = authenticator
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._server: Server | None = None
        self._pre_auth: dict[int, Caller] = {}
        self._conns: set[EcrConnection] = set()
        self._on_connections = on_connections
        self._on_request = on_request
        self._accepting = True

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        sock = next(iter(self._server.sockets))
        port: int = sock.getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=MAX_FRAME,
            ssl=self.ssl_context,
            compression=None,
            ping_interval=20,
            ping_timeout=20,
        )

    async def stop_accepting(self) -> None:
        """Refuse new connections; live ones keep being served."""
        self._accepting = False
        if self._server is not None:
            self._server.server.close()

    async def disconnect(self, names: Collection[str], reason: str) -> int:
        """Close the live connections of the registers ``names`` (code 4401, as for a wrong
        token): they must authenticate again. How many were closed."""
        closing = [c for c in self._conns if c.caller.name in names]
        for conn in closing:
            conn.log.info("register_disconnected_by_bridge", reason=reason)
        await asyncio.gather(*(c.ws.close(CLOSE_UNAUTHORIZED, reason) for c in closing),
                             return_exceptions=True)
        return len(closing)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None

    # -- handshake ---------------------------------------------------------------------

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if not self._accepting:
            return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
        if request.path.split("?", 1)[0] != "/ecr":
            return ws.respond(HTTPStatus.NOT_FOUND, "the ECR endpoint is /ecr\n")
        header = request.headers.get("Authorization")
        if header is None:
            return None
        peer = _peer(ws)
        scheme, _, token = header.partition(" ")
        client = None
        if scheme == "Bearer" and token:
            client = await self.auth.authenticate(token.strip(), peer=peer)
        if client is None:
            log.warning("auth_refused", peer=peer, how="header")
            return ws.respond(HTTPStatus.UNAUTHORIZED, "wrong or malformed bearer token\n")
        self._pre_auth[id(ws)] = Caller(client.name, str(client.role), peer)
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        caller = self._pre_auth.pop(id(ws), None)
        if caller is None:
            caller = await self._auth_message(ws)
            if caller is None:
                return
        conn = EcrConnection(ws, caller)
        conn.log.info("register_connected")
        self.hub.add(conn)
        self._conns.add(conn)
        self._count()
        pump = asyncio.create_task(conn.pump())
        in_flight: set[asyncio.Task[None]] = set()
        try:
            async for message in ws:
                if len(in_flight) >= MAX_IN_FLIGHT:
                    conn.send(_early_error(message, RequestError(
                        1009, "rate_limited", f"at most {MAX_IN_FLIGHT} requests at once")))
                    continue
                task = asyncio.create_task(self._serve_one(conn, message))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
        except ConnectionClosed:
            pass
        finally:
            self.hub.remove(conn)
            self._conns.discard(conn)
            self._count()
            # Requests already running finish on their own: their effects are in the
            # journal and the register learns them by replay.
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await pump
            conn.log.info("register_disconnected")

    async def _auth_message(self, ws: ServerConnection) -> Caller | None:
        """Wait for ``auth`` as the first message; close 4401 on anything else."""
        peer = _peer(ws)
        try:
            message = await asyncio.wait_for(ws.recv(), timeout=AUTH_TIMEOUT_S)
        except TimeoutError:
            await ws.close(CLOSE_UNAUTHORIZED, "authenticate within 5 s")
            return None
        except ConnectionClosed:
            return None
        try:
            call = proto.parse_frame(message)
            if call.method != "auth":
                raise RequestError(1001, "unauthorized", "authenticate first")
            client = await self.auth.authenticate(parse_auth(call.params).token, peer=peer)
        except RequestError:
            client = None
            call = None
        if client is None or call is None:
            log.warning("auth_refused", peer=peer, how="message")
            await ws.close(CLOSE_UNAUTHORIZED, "unauthorized")
            return None
        caller = Caller(client.name, str(client.role), peer)
        if call.id is not None:
            await ws.send(proto.result_frame(call.id, {"name": caller.name, "role": caller.role}))
        return caller

    async def _reauth(self, conn: EcrConnection, params: object) -> object:
        """``auth`` on a connection that is already authenticated: the same token (or another
        of the same register) answers ``{name, role}`` again; a wrong token closes the
        connection with 4401 like a wrong first login."""
        token = parse_auth(params).token
        client = await self.auth.authenticate(token, peer=conn.caller.peer)
        if client is None:
            log.warning("auth_refused", peer=conn.caller.peer, how="message")
            await conn.ws.close(CLOSE_UNAUTHORIZED, "unauthorized")
            raise RequestError(1001, "unauthorized", "wrong token")
        if client.name != conn.caller.name:
            raise RequestError(1001, "unauthorized",
                               f"this connection is register {conn.caller.name!r}; "
                               "open a new connection for another one", field="token")
        return {"name": conn.caller.name, "role": conn.caller.role}

    # -- requests ----------------------------------------------------------------------

    async def _serve_one(self, conn: EcrConnection, message: str | bytes) -> None:
        call_id: Any = None
        method = "?"
        is_notification = False
        try:
            call = proto.parse_frame(message)
            call_id, method = call.id, call.method
            is_notification = call.id is None
            if method == "auth":
                result: object = await self._reauth(conn, call.params)
            else:
                result = await self.methods.call(conn.caller, method, call.params)
            outcome = "ok"
            frame = proto.result_frame(call_id, result) if call_id is not None else None
        except RequestError as exc:
            outcome = exc.reason
            call_id = getattr(exc, "id", call_id)
            frame = proto.error_frame(call_id, exc)
        except JournalError as exc:
            conn.log.error("journal_error", error=str(exc))
            outcome = "journal_error"
            frame = proto.error_frame(call_id, RequestError(
                -32603, "internal_error", "the journal could not record the request"))
        except Exception:
            conn.log.exception("request_failed", method=method)
            outcome = "internal_error"
            frame = proto.error_frame(call_id, RequestError(
                -32603, "internal_error", "internal error; the request may be retried"))
        if self._on_request is not None:
            self._on_request(method, outcome)
        if frame is not None and not is_notification:  # JSON-RPC: never answer a notification
            conn.send(frame)

    def _count(self) -> None:
        if self._on_connections is not None:
            self._on_connections(self.hub.connections)


def _early_error(message: str | bytes, err: RequestError) -> str:
    try:
        call_id = proto.parse_frame(message).id
    except RequestError:
        call_id = None
    return proto.error_frame(call_id, err)


def _peer(ws: ServerConnection) -> str:
    addr = ws.remote_address
    return str(addr[0]) if addr else "?"

