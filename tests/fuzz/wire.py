"""Fuzzing a running daemon over real sockets: ECR frames, the auth handshake, provider
notifications and the manager page's forms. Shared by the fuzz tests and ``bench/fuzz.py``.

Each driver sends mutated input to one surface and returns the :class:`Findings`: what was
sent, and every answer that breaks the rule "a clear error, never a crash": an ECR error code
outside the protocol's table (-32603 is a caught exception), an HTTP 5xx, a close code that no
rule gives, a result for an unauthenticated connection, or no answer at all within the bound.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .mutate import mutate_bytes, random_text
from .surfaces import Surface, ecr_frame_sample

# Every error code of the ECR protocol's table; -32603 (internal error) is not among them.
ECR_CODES: Final = frozenset({-32700, -32600, -32601, -32602, *range(1001, 1011)})
# Close codes a fuzzed connection may get: normal, protocol error, invalid UTF-8, policy (a
# register that does not read), too big, unauthorized.
CLOSE_CODES: Final = frozenset({1000, 1002, 1007, 1008, 1009, 4401})
ANSWER_TIMEOUT_S: Final = 30.0  # a bound against a hang, far above any answer's time


@dataclass
class Findings:
    """What one driver sent and what broke the rule (each with its reproducer)."""

    surface: str
    sent: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, what: str, reproducer: object) -> None:
        self.problems.append(f"{what}; input {reproducer!r:.300}")


# --------------------------------------------------------------------------------------------
# ECR frames on an authenticated connection


async def fuzz_ecr(url: str, token: str, surface: Surface, rng: random.Random,
                   count: int) -> Findings:
    """Send ``count`` mutated frames, each followed by a ``ping`` sentinel: every answer
    before the sentinel's must carry a protocol error code or a result."""
    found = Findings("ecr frames (socket)")
    ws: ClientConnection | None = None
    try:
        for n in range(count):
            if ws is None:
                ws = await connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                   max_size=2**21, compression=None)
            frame = surface.mutate(surface.sample(rng), rng)
            found.sent += 1
            if not await _one_frame(ws, frame, f"fz{n}", found):
                with contextlib.suppress(ConnectionClosed):
                    await ws.close()
                ws = None
    finally:
        if ws is not None:
            await ws.close()
    return found


async def _one_frame(ws: ClientConnection, frame: bytes, sentinel: str,
                     found: Findings) -> bool:
    """Send ``frame`` and a sentinel ping; False when the connection is gone afterwards."""
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    try:
        await ws.send(text if text is not None else frame)
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": sentinel, "method": "ping"}))
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            while True:
                answer = json.loads(await ws.recv())
                _check_answer(answer, frame, found)
                if answer.get("id") == sentinel:
                    return True
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
        if code not in CLOSE_CODES:
            found.add(f"connection closed with code {code}", frame)
        return False
    except TimeoutError:
        found.add(f"no answer within {ANSWER_TIMEOUT_S:g} s", frame)
        return False


def _check_answer(answer: Any, frame: bytes, found: Findings) -> None:
    if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0":
        found.add(f"answer that is not JSON-RPC: {answer!r:.100}", frame)
    elif "error" in answer:
        error = answer["error"]
        code = error.get("code") if isinstance(error, dict) else None
        data = error.get("data") if isinstance(error, dict) else None
        if code not in ECR_CODES or not isinstance(data, dict) or "reason" not in data:
            found.add(f"error outside the protocol's table: {error!r:.200}", frame)


# --------------------------------------------------------------------------------------------
# The auth handshake


RIGHT: Final = "{right}"
HEADER_SHAPES: Final[tuple[str, ...]] = (
    "Bearer {right}", "bearer {right}", "Bearer  {right}", "Bearer {right} ", "Basic {right}",
    "{right}", "Bearer", "Bearer ", "", "Bearer {right}x", "Bearer x{right}",
    "Bearer " + "A" * 7000, "Token {right}",
)


async def fuzz_auth(host: str, port: int, token: str, rng: random.Random, count: int,
                    *, wrong_tokens: int) -> Findings:
    """``count`` handshakes with a mutated ``Authorization`` header (raw bytes, over a plain
    socket) or a mutated first message. At most ``wrong_tokens`` of them present a
    well-formed but wrong token: each such failure delays the peer's next try (0.25 s,
    doubling), by design."""
    found = Findings("auth handshake")
    budget = wrong_tokens
    for _ in range(count):
        found.sent += 1
        if rng.random() < 0.5:
            header = _auth_header(rng, token)
            if _wrong_but_well_formed(header, token):
                if budget == 0:
                    continue
                budget -= 1
            await _raw_handshake(host, port, header, found)
        else:
            frame = _first_message(rng, token)
            if b'"auth"' in frame and token.encode() not in frame:
                if budget == 0:
                    continue
                budget -= 1
            await _first_message_handshake(f"ws://{host}:{port}/ecr", frame, token, found)
    return found


def _auth_header(rng: random.Random, token: str) -> bytes:
    header = rng.choice(HEADER_SHAPES).replace(RIGHT, token).encode()
    roll = rng.random()
    if roll < 0.4:
        header = mutate_bytes(header, rng, max_len=8000)
    elif roll < 0.6:  # bytes a header may carry (obs-text) that are not ASCII
        header = b"Bearer " + bytes(rng.randrange(0x80, 0x100) for _ in range(rng.randint(1, 40)))
    return header


def _wrong_but_well_formed(header: bytes, token: str) -> bool:
    """A header the server hands to the (throttled) token check: ``Bearer`` and a token."""
    scheme, _, rest = header.partition(b" ")
    return scheme == b"Bearer" and bool(rest.strip()) and rest.strip() != token.encode()


# What RFC 9110 allows in a header value; the server's HTTP parser refuses anything else.
_FIELD_VALUE: Final = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")


async def _raw_handshake(host: str, port: int, header: bytes, found: Findings) -> None:
    # Header values may not hold CR, LF or NUL; the server would read those as malformed HTTP.
    value = re.sub(rb"[\r\n\x00]", b"", header)
    key = base64.b64encode(os.urandom(16))
    request = (b"GET /ecr HTTP/1.1\r\nHost: " + host.encode() + b"\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
               b"Sec-WebSocket-Version: 13\r\nAuthorization: " + value + b"\r\n\r\n")
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request)
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
    except TimeoutError:
        found.add("no answer to the handshake", header)
        return
    parts = status_line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    if status is None and _FIELD_VALUE.fullmatch(value) is None:
        return  # not HTTP at all (a control character in a header): closed unanswered
    if status not in (101, 400, 401, 431):
        found.add(f"handshake answered {status_line!r:.80}", header)


def _first_message(rng: random.Random, token: str) -> bytes:
    frame = ecr_frame_sample(rng)
    if rng.random() < 0.6:
        frame = {"jsonrpc": "2.0", "id": 1, "method": "auth",
                 "params": {"token": rng.choice((token, random_text(rng, 43)))}}
    encoded = json.dumps(frame).encode()
    return mutate_bytes(encoded, rng) if rng.random() < 0.7 else encoded


async def _first_message_handshake(url: str, frame: bytes, token: str,
                                   found: Findings) -> None:
    """No header: the first message must be a right ``auth``, else close 4401, no result."""
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT_S), connect(
                url, max_size=2**21, compression=None) as ws:
            try:
                text = frame.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            await ws.send(text if text is not None else frame)
            try:
                answer = json.loads(await ws.recv())
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code not in CLOSE_CODES:
                    found.add(f"closed with code {code} before authentication", frame)
                return
            result = answer.get("result") if isinstance(answer, dict) else None
            if not (isinstance(result, dict) and set(result) == {"name", "role"}
                    and token.encode() in frame):
                found.add(f"an unauthenticated connection got {answer!r:.120}", frame)
    except TimeoutError:
        found.add("no answer and no close to a first message", frame)
    except (InvalidHandshake, OSError) as exc:
        found.add(f"handshake without a header failed: {exc!r:.100}", frame)


# --------------------------------------------------------------------------------------------
# Provider notifications


CONTENT_TYPES: Final = ("application/json", "application/json; charset=UTF-8",
                        "application/x-www-form-urlencoded", "text/plain", "",
                        "multipart/form-data; boundary=x", "application/json; charset=latin-1")


async def fuzz_notify(http: str, provider: str, surface: Surface, rng: random.Random,
                      count: int) -> Findings:
    """POST ``count`` mutated notifications to ``/notify/<provider>`` (and a sub-path):
    each must be answered 200 with the provider's success or failure word, never 5xx."""
    found = Findings(f"/notify/{provider}")
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            body = surface.mutate(surface.sample(rng), rng)
            path = f"/notify/{provider}" + rng.choice(("", "", "/refund", "/x"))
            headers = {"Content-Type": rng.choice(CONTENT_TYPES)}
            found.sent += 1
            try:
                async with asyncio.timeout(ANSWER_TIMEOUT_S), session.post(
                        http + path, data=body, headers=headers) as resp:
                    text = await resp.text(errors="replace")
            except TimeoutError:
                found.add("no answer", body)
                continue
            if resp.status != 200 or not _notify_answer_ok(provider, text):
                found.add(f"answered {resp.status} {text[:80]!r}", body)
    return found


def _notify_answer_ok(provider: str, text: str) -> bool:
    if provider == "codepay":
        return text in ("success", "fail")
    if provider == "opay":  # "success", or "fail: <reason>" (the platform resends then)
        return text == "success" or text.startswith("fail")
    try:
        return json.loads(text).get("return_code") in ("SUCCESS", "FAIL")
    except (ValueError, AttributeError):
        return False


# --------------------------------------------------------------------------------------------
# The manager page's forms


FORM_FIELDS: Final = ("csrf", "order_no", "terminal", "batch_no", "pin", "q", "x")


async def fuzz_manager(http: str, pin: str, order_nos: Sequence[str], terminals: Sequence[str],
                       rng: random.Random, count: int, *, wrong_pins: int) -> Findings:
    """Log in, then send ``count`` mutated requests to the page and its forms (query, close,
    batch-close, logout, the search, the confirmation step); each is answered below 500.
    Then ``wrong_pins`` logins with mutated PINs (they lock the login out, by design)."""
    found = Findings("manager page")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        csrf = await _login(session, http, pin)
        if csrf is None:
            found.add("the right PIN did not log in", pin)
            return found
        for _ in range(count):
            method, path, kwargs = _manager_request(rng, csrf, order_nos, terminals)
            found.sent += 1
            await _request(session, method, http + path, kwargs, found)
            if path == "/manager/logout":
                csrf = await _login(session, http, pin) or csrf
        for _ in range(wrong_pins):
            found.sent += 1
            wrong = mutate_bytes(pin.encode(), rng).decode("utf-8", "replace")
            await _request(session, "POST", http + "/manager/login",
                           {"data": {"pin": wrong}}, found)
    return found


async def _login(session: aiohttp.ClientSession, http: str, pin: str) -> str | None:
    async with session.post(http + "/manager/login", data={"pin": pin}) as resp:
        page = await resp.text()
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    return match.group(1) if match else None


def _manager_request(rng: random.Random, csrf: str, order_nos: Sequence[str],
                     terminals: Sequence[str]) -> tuple[str, str, dict[str, Any]]:
    path = rng.choice(("/manager/query", "/manager/close", "/manager/batch-close",
                       "/manager/batch-close", "/manager", "/manager/logout",
                       "/manager/login", "/manager/query/x", "/manager?q="))
    fields: dict[str, str] = {}
    for name in FORM_FIELDS:
        if rng.random() < 0.6:
            fields[name] = _form_value(rng, name, csrf, order_nos, terminals)
    if path in ("/manager", "/manager?q=") or (path == "/manager/batch-close"
                                              and rng.random() < 0.5):
        query = {"q" if path != "/manager/batch-close" else "terminal":
                 _form_value(rng, "terminal", csrf, order_nos, terminals)}
        return "GET", path.split("?")[0] + "?" + urllib.parse.urlencode(
            query, errors="surrogatepass"), {}
    roll = rng.random()
    if roll < 0.5:
        body = urllib.parse.urlencode(fields, errors="surrogatepass").encode()
        if rng.random() < 0.3:
            body = mutate_bytes(body, rng)
        return "POST", path, {"data": body, "headers": {
            "Content-Type": "application/x-www-form-urlencoded"}}
    if roll < 0.7:
        form = aiohttp.FormData()
        for name, value in fields.items():
            if rng.random() < 0.2:
                form.add_field(name, value.encode("utf-8", "surrogatepass"), filename="f.bin")
            else:
                form.add_field(name, value.encode("utf-8", "surrogatepass").decode(
                    "utf-8", "replace"))
        return "POST", path, {"data": form}
    if roll < 0.85:
        return "POST", path, {"data": json.dumps(fields).encode(), "headers": {
            "Content-Type": rng.choice(("application/json", "text/plain", ""))}}
    size = rng.choice((1, 300 * 1024))
    return "POST", path, {"data": b"a" * size, "headers": {
        "Content-Type": "application/x-www-form-urlencoded"}}


def _form_value(rng: random.Random, name: str, csrf: str, order_nos: Sequence[str],
                terminals: Sequence[str]) -> str:
    roll = rng.random()
    if name == "csrf" and roll < 0.7:
        return csrf
    if name == "order_no" and roll < 0.5 and order_nos:
        return rng.choice(order_nos)
    if name == "terminal" and roll < 0.5 and terminals:
        return rng.choice(terminals)
    if name == "batch_no" and roll < 0.5:
        return str(rng.choice((0, 1, 2, -1, 10**30)))
    return random_text(rng, rng.choice((8, 64, 300)))


async def _request(session: aiohttp.ClientSession, method: str, url: str,
                   kwargs: dict[str, Any], found: Findings) -> None:
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT_S), session.request(
                method, url, allow_redirects=False, **kwargs) as resp:
            await resp.read()
    except TimeoutError:
        found.add("no answer", (method, url, kwargs))
        return
    if resp.status >= 500:
        found.add(f"answered {resp.status}", (method, url, kwargs))
