"""UCanPay adapter: the thin I/O layer over :mod:`.messages` and :mod:`.signing`.

Requests go through :class:`posbridge.providers.http.JsonPoster` (connection refused:
``ProviderUnreachable``; timeout, reset, an HTTP 5xx: ``OutcomeUnknown``, so the engine
queries, never resends; HTTP 4xx: ``ProviderRejected``). Of the replies:

- garbage: ``OutcomeUnknown``;
- an unverifiable reply: ``BadSignature`` (an ``OutcomeUnknown``);
- ``SYSTEMERROR`` / ``BIZERR_NEED_RETRY``: the request is resent up to ``retries`` times,
  ``retry_delay_s`` apart; if it never clears, ``OutcomeUnknown``;
- on a create (unifiedorder, refund), a refusal that does not show the request was not carried
  out - an error naming no documented code, or ``ORDERPAID`` / ``OUT_TRADE_NO_USED`` /
  ``ORDERCLOSED`` (the number exists at UCanPay) - is ``OutcomeUnknown``: the engine queries.

A retried request keeps its parameters - numbers (``outTradeNo``, ``outRefundNo``) and amounts,
as the seed asks ("请用相同参数重新调用") - but gets a fresh ``nonceStr`` and signature: seed 000
says "The nonceStr and sign parameters are unique for each request".

Notify URLs (payment, and refund = payment + ``/refund`` unless given) longer than notifyUrl's
64 characters raise ``ConfigError`` naming ``bridge.public_url`` at construction and in
:meth:`UCanPayProvider.set_notify_url`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge import money
from posbridge.errors import (
    OutcomeUnknown,
    ProviderRejected,
)
from posbridge.providers import crypto_threads
from posbridge.providers.base import (
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
from posbridge.providers.ucanpay import messages as m
from posbridge.providers.ucanpay.deeplink import build_deeplink
from posbridge.providers.ucanpay.signing import SigningKey, SignScheme, VerifyingKey, sign_params

__all__ = ["UCanPayProvider"]

log = structlog.get_logger(__name__)

# Orders younger than this are remembered with their creation time for reverse's 15 s rule.
_CREATED_MEMORY = 10_000


class UCanPayProvider(Provider):
    """UCanPay wallet payments as a :class:`posbridge.providers.base.Provider`.

    ``create`` handles ``QR_SALE`` (unifiedorder) and ``QR_REFUND`` (refund; ``orig_order_no`` is
    the original ``outTradeNo``, ``order_no`` the ``outRefundNo``). ``close`` is closeorder for an
    unpaid order; ``reverse`` is separate and only for a lost answer.
    """

    name = "ucanpay"

    def __init__(
        self,
        *,
        base_url: str,
        merchant_id: str,
        private_key: RSAPrivateKey | None,
        public_key: RSAPublicKey | None,
        scheme: SignScheme = SignScheme.DOUBLE_HASH,
        md5_key: str | None = None,
        currency: str = "CAD",
        notify_url: str | None,
        refund_notify_url: str | None,
        deeplink_template: str | None = None,
        qr_timeout_s: int = 120,
        poll_interval_s: float = 2.0,
        timeout_s: float = 10.0,
        retries: int = 3,
        retry_delay_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._signing_key: SigningKey
        self._verifying_key: VerifyingKey
        if scheme is SignScheme.MD5:
            if not md5_key:
                raise ValueError("the md5 scheme needs md5_key")
            self._signing_key = self._verifying_key = md5_key
        else:
            if private_key is None or public_key is None:
                raise ValueError(f"the {scheme.value} scheme needs private_key and public_key")
            self._signing_key, self._verifying_key = private_key, public_key
        self._base_url = base_url.rstrip("/")
        self._merchant_id = merchant_id
        self._scheme = scheme
        self._currency = currency
        for url in (notify_url, refund_notify_url):
            if url is not None:
                m.check_notify_url(url)
        self._notify_url = notify_url
        self._refund_notify_url = refund_notify_url
        self._qr_timeout_s = qr_timeout_s
        self._retries = max(0, retries)
        self._retry_delay_s = retry_delay_s
        self._clock = clock
        self._created: dict[str, float] = {}
        self._log = log.bind(provider=self.name, merchant_id=merchant_id)
        self._http = JsonPoster(title="UCanPay", timeout_s=timeout_s, log=self._log)
        self._deeplink_template = deeplink_template
        self.caps = Capabilities(
            kinds=frozenset({TxnKind.QR_SALE, TxnKind.QR_REFUND}),
            currencies={currency: money.exponent(currency)},
            # unifiedorder has no expiry field (seed 001): the bridge closes the order itself
            pacing=Pacing(expires_s=qr_timeout_s, poll_interval_s=poll_interval_s),
            reversible=True, max_refunds=m.MAX_REFUNDS)

    @property
    def qr_timeout_s(self) -> int:
        """Seconds a QR stays payable. unifiedorder has no expiry field (seed), so the engine
        closes the order itself when this runs out."""
        return self._qr_timeout_s

    def __repr__(self) -> str:  # keys and secrets stay out of reprs
        return f"UCanPayProvider(base_url={self._base_url!r}, merchant_id={self._merchant_id!r})"

    # -- Provider surface ------------------------------------------------------------------

    def set_notify_url(self, url: str) -> None:
        """Payment notifications go to ``url``; refund ones to ``url + "/refund"`` unless set.

        ``ConfigError`` (``bridge.public_url``) if either would exceed 64 characters.
        """
        m.check_notify_url(url)
        if self._refund_notify_url is None:
            m.check_notify_url(_refund_form(url))
            self._refund_notify_url = _refund_form(url)
        self._notify_url = url

    def check(self, order: PaymentOrder) -> None:
        """UCanPay's own input limits (``outTradeNo``/``outRefundNo`` letters and digits,
        subject and body lengths and characters), naming the register's field."""
        if order.kind is TxnKind.QR_SALE:
            m.validate_qr_order(order.order_no, order.subject, order.body, order.amount,
                                order.currency)
        elif order.kind is TxnKind.QR_REFUND:
            assert order.orig_order_no is not None
            m.validate_refund(order.order_no, order.orig_order_no, order.amount, order.currency)

    async def create(self, order: PaymentOrder,
                     prepared: PreparedCreate | None = None) -> ProviderReport:
        """unifiedorder (QR_SALE: PENDING with ``provider_ref = ucpOrderNo`` and the QR's
        deeplink) or refund."""
        if order.kind is TxnKind.QR_SALE:
            return await self._unifiedorder(order)
        if order.kind is TxnKind.QR_REFUND:
            return await self._refund(order)
        raise ProviderRejected(f"UCanPay does not do {order.kind.value} transactions")

    async def query(self, order: PaymentOrder) -> ProviderReport:
        """orderquery / refundquery; ``NOT_FOUND`` when UCanPay has no such order or refund."""
        if order.kind is TxnKind.QR_REFUND:
            body = m.refundquery(
                merchant_id=self._merchant_id, order_no=order.orig_order_no,
                ucp_order_no=order.orig_provider_ref, refund_no=order.order_no,
                ucp_refund_no=order.provider_ref, nonce=_nonce(), scheme=self._scheme)
            try:
                data = await self._call(m.Method.REFUNDQUERY, body)
            except ProviderRejected as exc:
                if exc.provider_code == "REFUNDNOTEXIST":
                    return ProviderReport(order_no=order.order_no, outcome=Outcome.NOT_FOUND)
                raise
            return m.refund_report(data, order.order_no)
        data_or_none = await self._orderquery(order)
        if data_or_none is None:
            return ProviderReport(order_no=order.order_no, outcome=Outcome.NOT_FOUND)
        return self._with_deeplink(m.order_report(data_or_none, order.order_no), order)

    def probe_order(self) -> PaymentOrder:
        """A QR order that does not exist (orderquery by its outTradeNo)."""
        return PaymentOrder(order_no="PBHEALTHPROBE", kind=TxnKind.QR_SALE, amount=1,
                            currency=self._currency)

    def _with_deeplink(self, report: ProviderReport, order: PaymentOrder) -> ProviderReport:
        """``report`` with the dynamic-QR deeplink of its ``ucpOrderNo`` (seed 001)."""
        if (self._deeplink_template is None or report.provider_ref is None
                or order.kind is not TxnKind.QR_SALE):
            return report
        link = build_deeplink(self._deeplink_template, ucp_order_no=report.provider_ref,
                              amount_minor=order.amount, item=order.subject)
        return dataclasses.replace(report, qr_text=link)

    async def close(self, order: PaymentOrder) -> None:
        """closeorder for an unpaid QR order; an already closed one counts as closed.

        ``ORDERPAID`` and other refusals raise ``ProviderRejected`` (the engine then queries).
        """
        if order.kind is not TxnKind.QR_SALE:
            raise ProviderRejected("only a wallet QR order can be closed at UCanPay")
        body = m.closeorder(merchant_id=self._merchant_id, order_no=order.order_no,
                            ucp_order_no=order.provider_ref, nonce=_nonce(), scheme=self._scheme)
        try:
            await self._call(m.Method.CLOSEORDER, body)
        except ProviderRejected as exc:
            if exc.provider_code == "ORDERCLOSED":
                return
            raise

    async def reverse(self, order: PaymentOrder) -> ProviderReport:
        """reverse a QR order whose answer was lost (closes it, or returns the money).

        UCanPay allows it from 15 s after the order until 7 days after; outside that window
        ``ProviderRejected`` is raised without calling UCanPay; an order UCanPay does not have
        is a ``NOT_FOUND`` report. The order's time is the one
        this adapter created it at, else ``tranTime`` from an orderquery. The seed says to
        reverse only when a query gives no clear payment result: when that orderquery does
        give one (paid, refunded, closed, revoked, failed), its report is returned and
        nothing is reversed.
        """
        if order.kind is not TxnKind.QR_SALE:
            raise ProviderRejected("only a wallet QR order can be reversed at UCanPay")
        created = self._created.get(order.order_no)
        ucp_order_no = order.provider_ref
        if created is None:
            data = await self._orderquery(order)
            if data is None:
                return ProviderReport(order_no=order.order_no, outcome=Outcome.NOT_FOUND)
            if m.clear_trade_status(data):
                report = m.order_report(data, order.order_no)
                self._log.info("reverse_not_needed", order_no=order.order_no,
                               trade_status=report.provider_code)
                return report
            created = m.tran_time(data)
            ucp_order_no = ucp_order_no or m.order_report(data, order.order_no).provider_ref
            if created is None:
                raise ProviderRejected("UCanPay did not say when the order was made; "
                                       "cannot honour the reverse time window")
        problem = m.reverse_window_problem(created, self._clock())
        if problem is not None:
            raise ProviderRejected(problem)
        body = m.reverse(merchant_id=self._merchant_id, order_no=order.order_no,
                         ucp_order_no=ucp_order_no, nonce=_nonce(), scheme=self._scheme)
        data = await self._call(m.Method.REVERSE, body)
        report = m.order_report(data, order.order_no)
        return dataclasses.replace(report, reversed=report.provider_code == "REVOKED")

    def parse_notification(self, body: bytes, headers: Mapping[str, str]) -> ProviderReport:
        """Verify and read a payment or refund notification (``NotificationRejected`` if bad)."""
        del headers  # UCanPay signs the body only
        return m.parse_notification(body, key=self._verifying_key, scheme=self._scheme,
                                    merchant_id=self._merchant_id)

    def notification_answer(self, ok: bool, reason: str = "") -> NotificationAnswer:
        """``{"return_code":"SUCCESS","return_msg":"OK"}`` or ``FAIL`` with ``reason``."""
        return m.notification_answer(ok, reason)

    async def aclose(self) -> None:
        """Close the HTTP session (a later call opens a new one)."""
        await self._http.aclose()

    # -- methods -----------------------------------------------------------------------------

    async def _unifiedorder(self, order: PaymentOrder) -> ProviderReport:
        m.validate_qr_order(order.order_no, order.subject, order.body, order.amount,
                            order.currency)
        if self._notify_url is None:
            raise ProviderRejected("no notify URL is set for UCanPay")
        body = m.unifiedorder(
            merchant_id=self._merchant_id, order_no=order.order_no, subject=order.subject,
            body=order.body, amount=order.amount, currency=order.currency or self._currency,
            notify_url=self._notify_url, nonce=_nonce(), scheme=self._scheme,
            device_no=order.terminal_sn)
        self._remember(order.order_no)
        data = await self._create_call(m.Method.UNIFIEDORDER, body)
        report = m.order_report(data, order.order_no)
        if report.provider_ref is None:
            raise OutcomeUnknown("UCanPay accepted the order but gave no ucpOrderNo")
        return self._with_deeplink(report, order)

    async def _refund(self, order: PaymentOrder) -> ProviderReport:
        if order.orig_order_no is None or order.orig_amount is None:
            raise ProviderRejected("a UCanPay refund needs the original order and its amount")
        m.validate_refund(order.order_no, order.orig_order_no, order.amount, order.currency)
        notify = self._refund_notify_url or self._notify_url
        if notify is None:
            raise ProviderRejected("no refund notify URL is set for UCanPay")
        body = m.refund(
            merchant_id=self._merchant_id, order_no=order.orig_order_no,
            ucp_order_no=order.orig_provider_ref, refund_no=order.order_no,
            total_amount=order.orig_amount, refund_amount=order.amount,
            reason=order.description or order.subject or "refund", notify_url=notify,
            nonce=_nonce(), scheme=self._scheme)
        data = await self._create_call(m.Method.REFUND, body)
        return m.refund_report(data, order.order_no)

    async def _orderquery(self, order: PaymentOrder) -> dict[str, Any] | None:
        """The verified orderquery data, or None if UCanPay has no such order."""
        body = m.orderquery(merchant_id=self._merchant_id, order_no=order.order_no,
                            ucp_order_no=order.provider_ref, nonce=_nonce(), scheme=self._scheme)
        try:
            return await self._call(m.Method.ORDERQUERY, body)
        except ProviderRejected as exc:
            if exc.provider_code == "ORDERNOTEXIST":
                return None
            raise

    def _remember(self, order_no: str) -> None:
        if len(self._created) >= _CREATED_MEMORY:
            # Oldest first (dicts keep insertion order); reverse falls back to orderquery.
            del self._created[next(iter(self._created))]
        self._created[order_no] = self._clock()

    # -- transport ---------------------------------------------------------------------------

    async def _create_call(self, method: m.Method,
                           params: Mapping[str, object]) -> dict[str, Any]:
        """:meth:`_call` for a create: a refusal that does not prove nothing was done is
        ``OutcomeUnknown`` (the engine queries before deciding)."""
        try:
            return await self._call(method, params)
        except m.UnrecognizedRefusal as exc:
            raise OutcomeUnknown(f"{exc.message}; it may have been carried out",
                                 provider_code=exc.provider_code) from exc
        except ProviderRejected as exc:
            if m.refusal_is_final(method, exc.provider_code):
                raise
            raise OutcomeUnknown(f"{exc.message}; the number exists at UCanPay",
                                 provider_code=exc.provider_code) from exc

    async def _call(self, method: m.Method, params: Mapping[str, object]) -> dict[str, Any]:
        """Sign, POST, open the reply; on a retryable error resend the same parameters with
        a fresh nonce and signature."""
        attempt = 0
        while True:
            if attempt:
                params = {**params, "nonceStr": _nonce()}
            # RSA releases the GIL: in the signing threads, 20 QR sales signing at once do
            # not stall the event loop (bench_qr's loop lag) and use the other core.
            body = await crypto_threads.to_thread(sign_params, params, self._signing_key,
                                                  self._scheme)
            raw = await self._post(method, body)
            try:
                return await crypto_threads.to_thread(m.open_reply, raw,
                                                      key=self._verifying_key,
                                                      scheme=self._scheme)
            except m.RetryableError as exc:
                if attempt >= self._retries:
                    raise
                attempt += 1
                self._log.info("retrying", method=method.value, code=exc.provider_code,
                               attempt=attempt)
                await asyncio.sleep(self._retry_delay_s)
            except ProviderRejected as exc:
                self._log.info("rejected", method=method.value, code=exc.provider_code)
                raise

    async def _post(self, method: m.Method, body: Mapping[str, object]) -> bytes:
        return await self._http.post(self._base_url + method.path,
                                     json.dumps(body).encode("utf-8"), what=method.value)


def _refund_form(url: str) -> str:
    """The refund notify URL made from the payment one."""
    return url.rstrip("/") + "/refund"


def _nonce() -> str:
    """nonceStr: 32 random hex characters (seed: "不长于32位")."""
    return secrets.token_hex(16)
