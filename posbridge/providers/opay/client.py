"""The crypto payment platform's adapter: the thin I/O layer over the pure modules.

Requests go through :class:`posbridge.providers.http.JsonPoster`, which turns transport
failures into posbridge errors (unreachable, outcome unknown, HTTP 4xx refused); of the
answers themselves:

- one that is not an answer object: ``OutcomeUnknown``;
- one that does not open or verify: ``BadSignature`` (an ``OutcomeUnknown``);
- any other ``code`` than ``"0"``: ``ProviderRejected`` with that code.

A refused createThirdOrder is final (``failed``, nothing to pay): the bridge never sends a
second create for an order number (``Capabilities.query_by_order_no`` is False), so a refusal
cannot hide an earlier attempt of its own. A create whose answer is lost is looked for in the
daily statement (:meth:`OPayProvider.find_lost`), never sent again.

Callbacks state the amount without the coin, and a coin's decimals give the amount its minor
units: the adapter remembers the coin of each order it creates, queries or looks for (the
engine queries every open order at start-up), and otherwise reads the callback's own
``payCoinSymbol``, or the one number of decimals all configured coins share.

RSA work (encrypting, decrypting, signing) runs in the providers' signing threads
(:mod:`posbridge.providers.crypto_threads`) for requests, so that many sales at once do not
stall the event loop, except a sale's create, which the engine has sealed ahead on the loop
while the sale's intent commits (:meth:`OPayProvider.prepare_create`); callbacks are opened
where they are parsed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import structlog
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge.errors import NotificationRejected, OutcomeUnknown, ProviderRejected, RequestError
from posbridge.money import MAX_EXPONENT
from posbridge.providers import crypto_threads
from posbridge.providers.base import (
    BatchFigures,
    Capabilities,
    NotificationAnswer,
    Outcome,
    Pacing,
    PaymentOrder,
    PreparedCreate,
    Provider,
    ProviderReport,
    TxnKind,
)
from posbridge.providers.http import JsonPoster
from posbridge.providers.opay import messages as m
from posbridge.providers.opay import statement as st
from posbridge.providers.opay.envelope import DEFAULT_SUITE, Suite, seal
from posbridge.providers.opay.paypage import pay_page_url

__all__ = ["NO_REFUND_REASON", "OPayProvider"]

log = structlog.get_logger(__name__)

NO_REFUND_REASON: Final = ("the crypto platform has no refund: a paid crypto sale cannot be "
                           "voided or refunded through the bridge")
_COIN_MEMORY: Final = 10_000  # orders whose coin is remembered for their callbacks
_MAX_PAGES: Final = 50  # statement pages read for one day (50 x 2000 orders)


class OPayProvider(Provider):
    """Crypto sales through the platform's pay page, as a
    :class:`posbridge.providers.base.Provider`.

    ``create`` makes the platform order (createThirdOrder) and reports it PENDING with
    ``provider_ref`` = ``orderNum`` and ``qr_text`` = the pay page URL; ``query`` is
    orderDetail by ``orderNum``; ``close`` is cancelOrder; ``find_lost`` reads the daily
    statement. The payer comes from ``PaymentOrder.extra`` (``open_id`` or ``user_id``, and
    an optional ``token``); ``currency`` is the coin and ``amount`` is in its configured
    decimals.
    """

    name = "opay"

    def __init__(
        self,
        *,
        base_url: str,
        app_id: str,
        merchant_key: RSAPrivateKey,
        platform_key: RSAPublicKey,
        coins: Mapping[str, int],
        notify_url: str | None,
        pay_page: str | None = None,
        return_page: str | None = None,
        expires_s: int = 600,
        order_scene_type: str | None = None,
        amount_style: m.AmountStyle = m.AmountStyle.PLAIN,
        suite: Suite = DEFAULT_SUITE,
        callback_answer: m.CallbackAnswer = m.CallbackAnswer.TEXT,
        detail_app_key: bool = True,
        statement_page_size: int = 2000,
        lost_order_settle_s: int = 600,
        poll_interval_s: float = 2.0,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not coins:
            raise ValueError("at least one coin must be configured")
        self._base_url = base_url.rstrip("/")
        self._pay_page = pay_page or self._base_url + "/platform/pay.html"
        self._app_id = app_id
        self._merchant_key = merchant_key
        self._platform_key = platform_key
        self._coins = dict(coins)
        self._notify_url: str | None = None
        self._return_page = return_page
        self._scene_type = order_scene_type
        self._amount_style = amount_style
        self._suite = suite
        self._callback_answer = callback_answer
        self._detail_app_key = detail_app_key
        self._page_size = statement_page_size
        self._expires_s = expires_s
        self._settle_s = lost_order_settle_s
        self._clock = clock
        self._order_coins: OrderedDict[str, str] = OrderedDict()
        self._log = log.bind(provider=self.name, app_id=app_id)
        self._http = JsonPoster(title="the crypto platform", timeout_s=timeout_s, log=self._log)
        if notify_url is not None and notify_url.startswith(("http://", "https://")):
            self.set_notify_url(notify_url)
        self.caps = Capabilities(
            kinds=frozenset({TxnKind.CRYPTO_SALE}), currencies=dict(coins), coins=True,
            pacing=Pacing(expires_s=expires_s, poll_interval_s=poll_interval_s),
            closable=True, reversible=False, query_by_order_no=False, sign_ahead=True,
            batch_figures=True, no_refund_reason=NO_REFUND_REASON)

    def __repr__(self) -> str:  # keys stay out of reprs
        return f"OPayProvider(base_url={self._base_url!r}, app_id={self._app_id!r})"

    # -- Provider surface ------------------------------------------------------------------

    def set_notify_url(self, url: str) -> None:
        """``notifyPage`` for new orders; without a configured ``return_page`` its site root
        (the bridge's public URL) is sent as ``returnPage``, which the documents require."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the notify URL must be an absolute http(s) URL")
        self._notify_url = url
        if self._return_page is None:
            self._return_page = f"{parts.scheme}://{parts.netloc}/"

    def check(self, order: PaymentOrder) -> None:
        """The configured coins, the coin's decimals, a positive amount and the payer
        (RequestError -32602 naming ``coin``, ``amount`` or ``payer``)."""
        if order.kind is TxnKind.CRYPTO_SALE:
            self._payer(order)

    def prepare_create(self, order: PaymentOrder) -> PreparedCreate:
        """createThirdOrder for ``order``, sealed now and sent by :meth:`create`."""
        now = self._clock()
        body = seal(self._create_params(order), app_id=self._app_id, now_ms=int(now * 1000),
                    receiver_key=self._platform_key, sender_key=self._merchant_key,
                    suite=self._suite)
        return PreparedCreate(order_no=order.order_no, body=_bytes(body), signed_at=now)

    async def create(self, order: PaymentOrder,
                     prepared: PreparedCreate | None = None) -> ProviderReport:
        """createThirdOrder: PENDING, closable, with ``orderNum`` and the pay page URL."""
        if order.kind is not TxnKind.CRYPTO_SALE:
            raise ProviderRejected(f"the crypto platform does not do {order.kind.value}")
        payer = self._payer(order)
        self._remember(order.order_no, order.currency)
        if prepared is None or prepared.order_no != order.order_no:
            prepared = await crypto_threads.to_thread(self.prepare_create, order)
        raw = await self._post(m.Method.CREATE, prepared.body)
        data = await self._open(m.Method.CREATE, raw)
        assert data is not None
        order_num = m.text_field(data, "orderNum")
        if order_num is None:
            raise OutcomeUnknown("the crypto platform accepted the order but gave no orderNum")
        stated = m.text_field(data, "appOrderId")
        if stated is not None and stated != order.order_no:
            raise OutcomeUnknown(f"the crypto platform answered about order {stated[:32]!r}")
        self._log.info("created", order_no=order.order_no, order_num=order_num)
        return ProviderReport(order_no=order.order_no, outcome=Outcome.PENDING,
                              provider_ref=order_num, closable=True,
                              qr_text=self._pay_page_of(order_num, payer))

    async def query(self, order: PaymentOrder) -> ProviderReport:
        """orderDetail by ``orderNum``; without one (a lost create), :meth:`find_lost`."""
        if order.provider_ref is None:
            return await self.find_lost(order)
        coin, decimals = self._coin(order)
        self._remember(order.order_no, coin)
        payer = _payer_or_none(order)
        params = m.detail_params(app_id=self._app_id, order_num=order.provider_ref,
                                 token=payer.token if payer else None,
                                 with_app_key=self._detail_app_key)
        data = await self._call(m.Method.DETAIL, params)
        assert data is not None
        qr = self._pay_page_of(order.provider_ref, payer) if payer else None
        return m.order_report(data, order_no=order.order_no, decimals=decimals, coin=coin,
                              order_num=order.provider_ref, qr_text=qr)

    async def close(self, order: PaymentOrder) -> None:
        """cancelOrder for an unpaid order; ProviderRejected when the platform refuses (paid,
        already ended) or no ``orderNum`` is known. The engine queries afterwards."""
        if order.kind is not TxnKind.CRYPTO_SALE:
            raise ProviderRejected("only a crypto sale can be cancelled at the crypto platform")
        if order.provider_ref is None:
            raise ProviderRejected("no orderNum is known: a lost order cannot be cancelled")
        await self._call(m.Method.CANCEL, m.cancel_params(order.provider_ref),
                         data_required=False)
        self._log.info("cancelled", order_no=order.order_no, order_num=order.provider_ref)

    async def find_lost(self, order: PaymentOrder) -> ProviderReport:
        """Look for ``order_no`` in the statement days around the order's creation
        (:func:`.statement.days_around`).

        Found: APPROVED when paid, else PENDING (with ``orderNum`` when the line gives it).
        Not found: ``NOT_FOUND`` once :func:`.statement.absence_is_final`, else
        ``OutcomeUnknown``. An order without ``created_at_ms`` (the health probe's) is looked
        for in today's statement only, and its absence there is final.
        """
        coin, decimals = self._coin(order)
        self._remember(order.order_no, coin)
        now_ms = int(self._clock() * 1000)
        created = order.created_at_ms
        days = [st.day_of(now_ms)] if created is None else st.days_around(created)
        entries: list[st.Entry] = []
        for day in days:
            entries += await self._statement(day)
            found = st.find(entries, order.order_no)
            if found is not None and found.paid:
                break  # a paid line settles it: the later days need not be read
        found = st.find(entries, order.order_no)
        if found is not None:
            report = st.entry_report(found, coin=coin, decimals=decimals)
            payer = _payer_or_none(order)
            if report.provider_ref is not None and payer is not None:
                report = dataclasses.replace(
                    report, qr_text=self._pay_page_of(report.provider_ref, payer))
            self._log.info("lost_order_found", order_no=order.order_no,
                           outcome=report.outcome.value, order_num=report.provider_ref)
            return report
        if created is None or st.absence_is_final(created_ms=created, now_ms=now_ms,
                                                  expires_s=self._expires_s,
                                                  settle_s=self._settle_s):
            return ProviderReport(order_no=order.order_no, outcome=Outcome.NOT_FOUND,
                                  provider_code="statement:absent")
        raise OutcomeUnknown(f"order {order.order_no} is not in the crypto platform's "
                             "statement yet")

    async def batch_figures(self, terminal_sn: str,
                            orders: list[PaymentOrder]) -> list[BatchFigures]:
        """The statement's count and total of the batch's crypto sales, per coin: each order
        counts when its statement days show it paid (the platform's own amount)."""
        del terminal_sn  # the platform knows no terminals; the orders name the batch
        days: dict[str, list[st.Entry]] = {}
        figures = []
        by_coin: dict[str, list[PaymentOrder]] = {}
        for order in orders:
            by_coin.setdefault(order.currency, []).append(order)
        for coin, group in sorted(by_coin.items()):
            decimals = self._coins.get(coin)
            if decimals is None:
                continue
            count, total, missing = 0, 0, []
            for order in group:
                when = order.created_at_ms or int(self._clock() * 1000)
                entries: list[st.Entry] = []
                for day in st.days_around(when):
                    if day not in days:
                        days[day] = await self._statement(day)
                    entries.extend(days[day])
                entry = st.find(entries, order.order_no)
                if entry is None or not entry.paid:
                    missing.append(order.order_no)
                    continue
                report = st.entry_report(entry, coin=coin, decimals=decimals)
                count += 1
                total += report.amount if report.amount is not None else 0
            figures.append(BatchFigures(
                currency=coin, count=count, total=total, exponent=decimals,
                detail={"source": "merchantBillingDay", "days": sorted(days),
                        "not_paid_in_statement": missing[:20]}))
        return figures

    def probe_order(self) -> PaymentOrder:
        """An order that does not exist and has no ``orderNum``: its query reads today's
        statement, which proves the network, the keys and the envelope both ways."""
        coin = min(self._coins)
        return PaymentOrder(order_no="PBHEALTHPROBE", kind=TxnKind.CRYPTO_SALE, amount=1,
                            currency=coin, exponent=self._coins[coin])

    def parse_notification(self, body: bytes, headers: Mapping[str, str]) -> ProviderReport:
        """Open and verify a payment callback (``NotificationRejected`` if it must be
        ignored). When the callback does not name its coin and the order is not known here,
        its amount is handed on as written (``amount_text``) for the engine to read with the
        journal's decimals."""
        del headers  # the platform signs the body only
        data = m.open_callback(body, app_id=self._app_id, merchant_key=self._merchant_key,
                               platform_key=self._platform_key, suite=self._suite)
        order_no = m.callback_order_no(data)
        coin = m.callback_coin(data) or self._order_coins.get(order_no)
        if coin is None and len(set(self._coins.values())) == 1:
            coin = next(iter(self._coins))
        try:
            if coin is not None and coin in self._coins:
                return m.order_report(data, order_no=order_no, decimals=self._coins[coin])
            # The callback does not name its coin and this adapter has not seen the order
            # (e.g. since a restart): the journal knows the coin, and reads the amount.
            report = m.order_report(data, order_no=order_no, decimals=MAX_EXPONENT)
        except OutcomeUnknown as exc:
            raise NotificationRejected(exc.message) from exc
        written = data.get("payAmount", data.get("orderAmount"))
        return dataclasses.replace(
            report, amount=None,
            amount_text=str(written) if isinstance(written, str | int) else None)

    def notification_answer(self, ok: bool, reason: str = "") -> NotificationAnswer:
        """``success`` (or ``{"data":"success"}``), or ``fail`` with ``reason``."""
        return m.callback_answer(ok, self._callback_answer, reason)

    async def aclose(self) -> None:
        """Close the HTTP session (a later call opens a new one)."""
        await self._http.aclose()

    # -- helpers -----------------------------------------------------------------------------

    def _coin(self, order: PaymentOrder) -> tuple[str, int]:
        decimals = self._coins.get(order.currency)
        if decimals is None:
            raise ProviderRejected(f"{order.currency[:16]} is not a configured coin")
        return order.currency, decimals

    def _payer(self, order: PaymentOrder) -> m.Payer:
        return m.check_sale(coin=order.currency, amount=order.amount, exponent=order.exponent,
                            extra=order.extra, coins=self._coins)

    def _create_params(self, order: PaymentOrder) -> dict[str, str]:
        if self._notify_url is None or self._return_page is None:
            raise ProviderRejected("no notify URL is set for the crypto platform")
        payer = self._payer(order)
        coin, decimals = self._coin(order)
        return m.create_params(
            order_no=order.order_no,
            amount=m.coin_text(order.amount, decimals, self._amount_style), coin=coin,
            payer=payer, return_page=self._return_page, notify_page=self._notify_url,
            scene_type=self._scene_type,
            goods=m.goods_text(order.subject or order.description, order.body))

    def _pay_page_of(self, order_num: str, payer: m.Payer) -> str:
        return pay_page_url(self._pay_page, app_key=self._app_id, order_num=order_num,
                            payer=payer)

    def _remember(self, order_no: str, coin: str) -> None:
        self._order_coins[order_no] = coin
        self._order_coins.move_to_end(order_no)
        if len(self._order_coins) > _COIN_MEMORY:
            self._order_coins.popitem(last=False)

    async def _statement(self, day: str) -> list[st.Entry]:
        """Every payment-order line of ``day``'s statement, page by page (bounded)."""
        entries: list[st.Entry] = []
        for page_no in range(1, _MAX_PAGES + 1):
            params = m.statement_params(day=day, page=page_no, page_size=self._page_size)
            data = await self._call(m.Method.STATEMENT, params)
            assert data is not None
            page = st.read_page(data)
            entries.extend(page.entries)
            raw_list = data.get("list")
            lines = len(raw_list) if isinstance(raw_list, list) else 0
            if lines < self._page_size or (page.count is not None
                                           and page_no * self._page_size >= page.count):
                return entries
        raise OutcomeUnknown(f"the statement of {day} has more than {_MAX_PAGES} pages")

    # -- transport ---------------------------------------------------------------------------

    async def _call(self, method: m.Method, params: Mapping[str, object], *,
                    data_required: bool = True) -> dict[str, Any] | None:
        now_ms = int(self._clock() * 1000)
        body = await crypto_threads.to_thread(
            seal, params, app_id=self._app_id, now_ms=now_ms, receiver_key=self._platform_key,
            sender_key=self._merchant_key, suite=self._suite)
        raw = await self._post(method, _bytes(body))
        return await self._open(method, raw, data_required=data_required)

    async def _open(self, method: m.Method, raw: bytes, *,
                    data_required: bool = True) -> dict[str, Any] | None:
        try:
            return await crypto_threads.to_thread(
                m.open_answer, raw, merchant_key=self._merchant_key,
                platform_key=self._platform_key, suite=self._suite,
                data_required=data_required, what=method.value)
        except ProviderRejected as exc:
            self._log.info("rejected", method=method.value, code=exc.provider_code)
            raise

    async def _post(self, method: m.Method, body: bytes) -> bytes:
        return await self._http.post(self._base_url + method.path, body, what=method.value)


def _bytes(body: Mapping[str, str]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("ascii")


def _payer_or_none(order: PaymentOrder) -> m.Payer | None:
    """The order's payer when its ``extra`` names one (a stored order may not)."""
    try:
        return m.payer_of(order.extra)
    except RequestError:
        return None
