"""CodePay adapter: the thin aiohttp layer over :mod:`.messages` and :mod:`.signing`.

Every method is ``POST {base_url}/api/entry`` with a flat JSON body. This is the one module
that talks to aiohttp for CodePay, and its errors become posbridge errors here:

- connection refused, DNS failure, connect timeout (nothing was sent): ``ProviderUnreachable``;
- a timeout, a reset or a dropped connection after sending, an HTTP 5xx, an answer that is
  not JSON or whose signature does not verify: ``OutcomeUnknown`` (``BadSignature``) — the
  engine then queries; an HTTP timeout on create is never a failure;
- HTTP 4xx (e.g. Basic auth refused) and ``code != "0"``: ``ProviderRejected``.

Nothing is retried here: a create must not be sent twice blindly, and the engine owns retries.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from typing import Final

import aiohttp
import structlog
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge.errors import ConfigError, OutcomeUnknown, ProviderRejected, ProviderUnreachable
from posbridge.providers.base import (
    BatchFigures,
    Capabilities,
    NotificationAnswer,
    Pacing,
    PaymentOrder,
    PreparedCreate,
    Provider,
    ProviderReport,
    TxnKind,
)
from posbridge.providers.codepay import messages as m

__all__ = ["ENTRY_PATH", "CodePayProvider"]

log = structlog.get_logger(__name__)

ENTRY_PATH: Final = "/api/entry"
#: Answers are small; anything bigger is not CodePay talking.
MAX_ANSWER_BYTES: Final = 1 << 20
_HEADERS: Final = {"Content-Type": "application/json; charset=UTF-8"}
#: A create signed ahead (while the intent commits) is re-signed if it waited longer than
#: this: its ``timestamp`` must stay well inside the gateway's tolerance.
PREPARED_MAX_AGE_S: Final = 30.0


class CodePayProvider(Provider):
    """Card payments on CodePay terminals as a :class:`posbridge.providers.base.Provider`.

    ``create`` sends ``wisehub.cloud.pay.order`` (SALE, VOID, REFUND), ``query`` ``order.query``
    by ``merchant_order_no``, ``close`` ``wisehub.cloud.pay.close``. ``batch_close`` and
    ``open_batch`` serve the end-of-day flow. ``sign_type="RSA2"`` signs with ``private_key``
    and verifies answers and notifications with ``gateway_public_key``; ``"NONE"`` uses HTTP
    Basic auth (answers are then verified only if a gateway key is given, and notifications,
    which cannot be verified without one, are rejected — results then come by polling).
    """

    name = "codepay"

    def __init__(
        self,
        *,
        base_url: str,
        app_id: str,
        merchant_no: str,
        store_no: str | None,
        private_key: RSAPrivateKey | None,
        gateway_public_key: RSAPublicKey | None,
        sign_type: str = "RSA2",
        basic_auth: tuple[str, str] | None = None,
        notify_url: str | None,
        expires_s: int = 180,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        open_batch_method: str = m.DEFAULT_OPEN_BATCH_METHOD,
        poll_interval_s: float = 2.0,
    ) -> None:
        if sign_type == "RSA2":
            if private_key is None:
                raise ConfigError("codepay.private_key_file", "needed when sign_type is RSA2")
            if gateway_public_key is None:
                raise ConfigError("codepay.gateway_public_key_file",
                                  "needed when sign_type is RSA2")
            self._sign_type: m.SignType = "RSA2"
        elif sign_type == "NONE":
            if basic_auth is None:
                raise ConfigError("codepay.basic_auth_user", "needed when sign_type is NONE")
            self._sign_type = "NONE"
        else:
            raise ConfigError("codepay.sign_type", f"must be RSA2 or NONE, not {sign_type!r}")
        if expires_s <= 0:
            raise ConfigError("codepay.expires_s", "must be a positive whole number")
        self._url = base_url.rstrip("/") + ENTRY_PATH
        self._app_id = app_id
        self._merchant_no = merchant_no
        self._store_no = store_no
        self._private_key = private_key
        self._gateway_key = gateway_public_key
        self._headers = dict(_HEADERS)
        if basic_auth is not None and sign_type == "NONE":
            self._headers["Authorization"] = _basic_header(*basic_auth)
        self._notify_url = notify_url
        self._expires_s = expires_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=timeout_s)
        self._clock = clock
        self._open_batch_method = open_batch_method
        self._session: aiohttp.ClientSession | None = None
        self._log = log.bind(provider=self.name, merchant_no=merchant_no)
        self.caps = Capabilities(
            kinds=frozenset({TxnKind.SALE, TxnKind.VOID, TxnKind.REFUND}),
            pacing=Pacing(expires_s=expires_s, poll_interval_s=poll_interval_s),
            sign_ahead=True, batch_close=True, batch_figures=True)

    def __repr__(self) -> str:  # keys and passwords stay out of reprs
        return f"CodePayProvider(url={self._url!r}, app_id={self._app_id!r})"

    # -- Provider surface ------------------------------------------------------------------

    def set_notify_url(self, url: str) -> None:
        """Results are notified to ``url`` (sent as ``notify_url`` with every create)."""
        self._notify_url = url

    def prepare_create(self, order: PaymentOrder) -> PreparedCreate:
        """The signed ``wisehub.cloud.pay.order`` for ``order``, not sent (see :meth:`create`)."""
        expires = order.expires_s if order.expires_s > 0 else self._expires_s
        # Without a gateway key a notification cannot be verified and would be refused, so
        # the gateway would retry it for hours: ask for none, results come by polling.
        notify = self._notify_url if self._gateway_key is not None else None
        business = m.create_body(order, merchant_no=self._merchant_no, store_no=self._store_no,
                                 notify_url=notify, expires_s=expires)
        now = self._clock()
        return PreparedCreate(order_no=order.order_no, body=self._signed(m.CREATE, business, now),
                              signed_at=now)

    async def create(self, order: PaymentOrder,
                     prepared: PreparedCreate | None = None) -> ProviderReport:
        """Push the order to its terminal; the report is PENDING (closable) with ``trans_no``.

        The order's ``expires_s`` is sent as ``expires`` (the provider's default if not
        positive). A lost answer or a "duplicate merchant_order_no" is OutcomeUnknown.
        ``prepared`` (from :meth:`prepare_create`) is sent as it is when it belongs to this
        order and is at most ``PREPARED_MAX_AGE_S`` old; otherwise the request is signed now.
        """
        if (prepared is None or prepared.order_no != order.order_no
                or not 0 <= self._clock() - prepared.signed_at <= PREPARED_MAX_AGE_S):
            prepared = self.prepare_create(order)
        body = await self._send(m.CREATE, prepared.body, order_no=order.order_no)
        return m.parse_create_response(body, order, gateway_key=self._gateway_key)

    async def query(self, order: PaymentOrder) -> ProviderReport:
        """``order.query`` by ``merchant_order_no``; NOT_FOUND if CodePay has no such order."""
        business = m.query_body(merchant_no=self._merchant_no, merchant_order_no=order.order_no)
        body = await self._post(m.QUERY, business, order_no=order.order_no)
        return m.parse_query_response(body, order, gateway_key=self._gateway_key)

    async def close(self, order: PaymentOrder) -> None:
        """``wisehub.cloud.pay.close``: ProviderRejected if CodePay will not close it
        (only a not-yet-paid order, status 9, can be closed)."""
        business = m.close_body(order, merchant_no=self._merchant_no, store_no=self._store_no,
                                reason="cancelled at the register")
        body = await self._post(m.CLOSE, business, order_no=order.order_no)
        m.parse_response(body, gateway_key=self._gateway_key)

    def parse_notification(self, body: bytes, headers: Mapping[str, str]) -> ProviderReport:
        """Verify and read a result notification; NotificationRejected if it must be ignored."""
        del headers  # CodePay signs the body's fields; headers carry nothing to check
        return m.parse_notification(body, gateway_key=self._gateway_key,
                                    merchant_no=self._merchant_no)

    def notification_answer(self, ok: bool, reason: str = "") -> NotificationAnswer:
        """Plain text ``success`` once recorded; ``fail`` otherwise (the gateway retries)."""
        del reason  # CodePay reads only the word
        return NotificationAnswer(status=200, body=m.notification_answer_body(ok),
                                  content_type="text/plain")

    async def aclose(self) -> None:
        """Close the HTTP session (a later call opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- batches ----------------------------------------------------------------------------

    async def batch_close(self, terminal_sn: str) -> dict[str, object]:
        """``batch.close`` for one terminal; the answer's ``data`` (amounts as CodePay's text)."""
        business = m.batch_close_body(merchant_no=self._merchant_no, terminal_sn=terminal_sn)
        body = await self._post(m.BATCH_CLOSE, business, terminal_sn=terminal_sn)
        return m.plain_data(m.parse_response(body, gateway_key=self._gateway_key))

    async def batch_figures(self, terminal_sn: str,
                            orders: list[PaymentOrder]) -> list[BatchFigures]:
        """The terminal's open batch as CodePay counts it (Get Open Batch): one currency,
        that of the batch's orders (CodePay's ``price_currency`` when there are none)."""
        data = await self.open_batch(terminal_sn)
        return [m.open_batch_figures(data, orders[0].currency if orders else None)]

    async def open_batch(self, terminal_sn: str) -> dict[str, object]:
        """Get Open Batch for one terminal: ``data`` such as ``{"count": 3,
        "total_amount": "12.30"}`` (amounts as CodePay's text, never floats)."""
        business = m.open_batch_body(merchant_no=self._merchant_no, store_no=self._store_no,
                                     terminal_sn=terminal_sn)
        body = await self._post(self._open_batch_method, business, terminal_sn=terminal_sn)
        return m.plain_data(m.parse_response(body, gateway_key=self._gateway_key))

    # -- transport ----------------------------------------------------------------------------

    def _signed(self, method: str, business: Mapping[str, object], now_s: float) -> bytes:
        """The request body as sent: envelope + business fields, signed (RSA2 mode)."""
        payload = m.envelope(method, business, app_id=self._app_id, sign_type=self._sign_type,
                             now_s=now_s, private_key=self._private_key)
        return m.dumps(payload).encode("utf-8")

    async def _post(self, method: str, business: Mapping[str, object], **context: str) -> bytes:
        """POST one signed request; the raw answer body, or a posbridge PaymentError."""
        return await self._send(method, self._signed(method, business, self._clock()), **context)

    async def _send(self, method: str, data: bytes, **context: str) -> bytes:
        """POST one request body as it is; the raw answer body, or a posbridge PaymentError."""
        session = self._session_now()
        started = time.monotonic()
        try:
            async with session.post(self._url, data=data, headers=self._headers) as resp:
                body = await _read_capped(resp)
                status = resp.status
        except aiohttp.ClientConnectorError as exc:
            self._log.warning("codepay_unreachable", method=method, error=type(exc).__name__,
                              **context)
            raise ProviderUnreachable(f"CodePay cannot be reached: {exc.os_error}") from exc
        except aiohttp.ConnectionTimeoutError as exc:
            self._log.warning("codepay_unreachable", method=method, error="connect timeout",
                              **context)
            raise ProviderUnreachable("CodePay did not accept the connection in time") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._log.warning("codepay_no_answer", method=method, error=type(exc).__name__,
                              **context)
            raise OutcomeUnknown(f"no answer from CodePay to {method} "
                                 f"({type(exc).__name__})") from exc
        self._log.debug("codepay_answer", method=method, http_status=status,
                        ms=round((time.monotonic() - started) * 1000), **context)
        if 400 <= status < 500:
            raise ProviderRejected(f"CodePay refused {method} with HTTP {status}",
                                   provider_code=f"HTTP_{status}")
        if status != 200:
            raise OutcomeUnknown(f"CodePay answered {method} with HTTP {status}")
        return body

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar())  # no cookies here
        return self._session


def _basic_header(user: str, password: str) -> str:
    """``Basic base64(user:password)`` (RFC 7617, UTF-8)."""
    if ":" in user:
        raise ConfigError("codepay.basic_auth_user", "must not contain ':'")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    """The body, refusing more than MAX_ANSWER_BYTES (as an unreadable answer)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise aiohttp.ClientPayloadError("CodePay answer too large")
        chunks.append(chunk)
    return b"".join(chunks)
