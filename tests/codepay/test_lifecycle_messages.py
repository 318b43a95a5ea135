"""The card lifecycle's pure core: which API and trans_type each order takes, which fields each
body carries, the seed's limits, and how answers of the new methods are read."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from posbridge.errors import OutcomeUnknown, ProviderRejected
from posbridge.providers.base import Outcome, PaymentOrder, ProviderReport, TxnKind
from posbridge.providers.codepay import messages as m
from posbridge.providers.codepay.signing import sign

from .conftest import MERCHANT_NO, TERMINAL, signed_answer


def po(kind: TxnKind = TxnKind.SALE, amount: int = 1000, **fields: Any) -> PaymentOrder:
    fields.setdefault("order_no", "N1")
    fields.setdefault("currency", "USD")
    fields.setdefault("terminal_sn", TERMINAL)
    return PaymentOrder(kind=kind, amount=amount, **fields)


def body_of(order: PaymentOrder) -> dict[str, object]:
    return m.create_body(order, merchant_no=MERCHANT_NO, store_no=None, notify_url=None,
                         expires_s=60)


# -- trans_type and route ----------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "orig_kind", "cashback", "trans_type"), [
    (TxnKind.SALE, None, 0, 1),
    (TxnKind.SALE, None, 500, 11),
    (TxnKind.VOID, TxnKind.SALE, 0, 2),
    (TxnKind.VOID, None, 0, 2),
    (TxnKind.REFUND, TxnKind.SALE, 0, 3),
    (TxnKind.REFUND, None, 0, 3),
    (TxnKind.PREAUTH, None, 0, 4),
    (TxnKind.PREAUTH_CANCEL, TxnKind.PREAUTH, 0, 5),
    (TxnKind.COMPLETION, TxnKind.PREAUTH, 0, 6),
    (TxnKind.VOID, TxnKind.COMPLETION, 0, 7),
    (TxnKind.REFUND, TxnKind.COMPLETION, 0, 8),
])
def test_every_trans_type_mapping(kind: TxnKind, orig_kind: TxnKind | None, cashback: int,
                                  trans_type: int) -> None:
    order = po(kind, orig_kind=orig_kind, cashback=cashback, orig_order_no="O1")
    assert m.route(order) is m.Route.CREATE_ORDER
    assert m.trans_type_for(order) == trans_type
    assert body_of(order)["trans_type"] == trans_type


@pytest.mark.parametrize(("kind", "orig_kind"), [
    (TxnKind.VOID, TxnKind.PREAUTH), (TxnKind.REFUND, TxnKind.PREAUTH),
    (TxnKind.COMPLETION, TxnKind.SALE), (TxnKind.PREAUTH_CANCEL, TxnKind.COMPLETION),
    (TxnKind.VOID, TxnKind.QR_SALE), (TxnKind.QR_SALE, None), (TxnKind.CRYPTO_SALE, None),
])
def test_kinds_no_terminal_does_are_refused_before_sending(kind: TxnKind,
                                                           orig_kind: TxnKind | None) -> None:
    with pytest.raises(ProviderRejected):
        body_of(po(kind, orig_kind=orig_kind, orig_order_no="O1"))


@pytest.mark.parametrize(("order", "route"), [
    (po(TxnKind.REFUND, card_present=False, orig_order_no="S1"), m.Route.REFUND_SUBMIT),
    (po(TxnKind.REFUND, orig_order_no="S1"), m.Route.CREATE_ORDER),
    (po(TxnKind.TIP_ADJUST, orig_order_no="S1"), m.Route.TIP_ADJUST),
    (po(TxnKind.CHECKOUT_QR), m.Route.CHECKOUT),
    (po(TxnKind.PREAUTH), m.Route.CREATE_ORDER),
])
def test_route_names_the_api_of_each_kind(order: PaymentOrder, route: m.Route) -> None:
    assert m.route(order) is route


# -- fields present and absent per kind -----------------------------------------------------------

@pytest.mark.parametrize(("kind", "orig_kind"), [
    (TxnKind.VOID, TxnKind.SALE), (TxnKind.REFUND, TxnKind.SALE),
    (TxnKind.PREAUTH_CANCEL, TxnKind.PREAUTH), (TxnKind.COMPLETION, TxnKind.PREAUTH),
    (TxnKind.VOID, TxnKind.COMPLETION), (TxnKind.REFUND, TxnKind.COMPLETION),
])
def test_every_child_names_its_original_and_needs_it(kind: TxnKind,
                                                     orig_kind: TxnKind) -> None:
    assert body_of(po(kind, orig_kind=orig_kind, orig_order_no="O-1"))[
        "orig_merchant_order_no"] == "O-1"
    with pytest.raises(ProviderRejected, match="original"):
        body_of(po(kind, orig_kind=orig_kind))
    with pytest.raises(ProviderRejected):
        body_of(po(kind, orig_kind=orig_kind, orig_order_no="bad no"))


@pytest.mark.parametrize("order", [po(), po(TxnKind.PREAUTH), po(cashback=100)])
def test_new_payments_name_no_original(order: PaymentOrder) -> None:
    assert body_of(order)["orig_merchant_order_no"] is None


def test_cashback_is_sent_only_with_trans_type_11() -> None:
    cashback = body_of(po(amount=2000, tip=300, cashback=4000))
    assert (cashback["trans_type"], cashback["order_amount"], cashback["tip_amount"],
            cashback["cashback_amount"]) == (11, "20.00", "3.00", "40.00")
    assert body_of(po())["cashback_amount"] is None
    assert body_of(po(TxnKind.PREAUTH))["cashback_amount"] is None


@pytest.mark.parametrize(("kind", "orig_kind"), [
    (TxnKind.SALE, None), (TxnKind.PREAUTH, None), (TxnKind.REFUND, TxnKind.SALE)])
def test_on_screen_tip_is_sent_true_for_1_3_4(kind: TxnKind, orig_kind: TxnKind | None) -> None:
    body = body_of(po(kind, orig_kind=orig_kind, orig_order_no="O1", on_screen_tip=True))
    assert body["on_screen_tip"] is True and body["tip_amount"] is None
    # false is the seed's default: it is left out rather than sent
    assert body_of(po(kind, orig_kind=orig_kind, orig_order_no="O1"))["on_screen_tip"] is None


@pytest.mark.parametrize("order", [
    po(cashback=100, on_screen_tip=True),
    po(TxnKind.COMPLETION, orig_kind=TxnKind.PREAUTH, orig_order_no="P1", on_screen_tip=True),
    po(TxnKind.VOID, orig_kind=TxnKind.SALE, orig_order_no="S1", on_screen_tip=True),
    po(TxnKind.PREAUTH_CANCEL, orig_kind=TxnKind.PREAUTH, orig_order_no="P1",
       on_screen_tip=True),
])
def test_on_screen_tip_elsewhere_is_refused_naming_the_field(order: PaymentOrder) -> None:
    problem = m.order_problem(order)
    assert problem is not None and problem[0] == "on_screen_tip"
    with pytest.raises(ProviderRejected, match="on_screen_tip"):
        body_of(order)


def test_a_completion_captures_its_amount_with_the_tip_added() -> None:
    body = body_of(po(TxnKind.COMPLETION, 4250, tip=500, orig_kind=TxnKind.PREAUTH,
                      orig_order_no="P1", orig_amount=5000))
    assert (body["order_amount"], body["tip_amount"], body["trans_type"]) == (
        "42.50", "5.00", 6)


@pytest.mark.parametrize(("order", "field"), [
    (po(order_no="has space"), "order_no"),
    (po(cashback=-1), "cashback"),
    (po(TxnKind.PREAUTH, cashback=100), "cashback"),
    (po(TxnKind.REFUND, cashback=100, orig_order_no="S1"), "cashback"),
    (po(on_screen_tip=True, tip=100), "tip"),
    (po(TxnKind.CHECKOUT_QR, tip=100), "tip"),
    (po(TxnKind.CHECKOUT_QR, on_screen_tip=True), "on_screen_tip"),
    (po(TxnKind.CHECKOUT_QR, expires_s=7 * 24 * 3600 + 1), "expires_s"),
    (po(TxnKind.TIP_ADJUST, tip=-1, orig_order_no="S1"), "tip"),
])
def test_order_problem_names_the_field(order: PaymentOrder, field: str) -> None:
    problem = m.order_problem(order)
    assert problem is not None and problem[0] == field
    with pytest.raises(ProviderRejected, match=field):
        build_any(order)


def build_any(order: PaymentOrder) -> dict[str, object]:
    """The body of ``order`` for the API it goes to."""
    if order.kind is TxnKind.CHECKOUT_QR:
        return m.checkout_body(order, merchant_no="M", store_no=None, notify_url=None,
                               return_url=None, expires_s=order.expires_s)
    if order.kind is TxnKind.TIP_ADJUST:
        return m.tip_adjustment_body(order, merchant_no="M", mode="total")
    return body_of(order)


@pytest.mark.parametrize("order", [
    po(), po(tip=100), po(on_screen_tip=True), po(cashback=100, tip=100),
    po(TxnKind.CHECKOUT_QR, expires_s=7 * 24 * 3600),
    po(TxnKind.TIP_ADJUST, amount=-100, tip=0, orig_order_no="S1"),
])
def test_orders_codepay_takes_have_no_problem(order: PaymentOrder) -> None:
    assert m.order_problem(order) is None


# -- description limits ---------------------------------------------------------------------------

def test_descriptions_are_cut_to_each_methods_limit() -> None:
    long = "é" * 200
    assert body_of(po(description=long))["description"] == "é" * 128
    refund = m.refund_submit_body(po(TxnKind.REFUND, 500, card_present=False,
                                     orig_order_no="S1", description=long),
                                  merchant_no="M", notify_url=None)
    assert refund["description"] == "é" * 64
    checkout = m.checkout_body(po(TxnKind.CHECKOUT_QR, description=long), merchant_no="M",
                               store_no=None, notify_url=None, return_url=None, expires_s=60)
    assert checkout["description"] == "é" * 128


def test_descriptions_have_a_default_when_the_register_gives_none() -> None:
    assert body_of(po(TxnKind.PREAUTH, order_no="P9"))["description"] == "preauth P9"
    refund = m.refund_submit_body(po(TxnKind.REFUND, card_present=False, orig_order_no="S1"),
                                  merchant_no="M", notify_url=None)
    assert refund["description"] == "refund"
    checkout = m.checkout_body(po(TxnKind.CHECKOUT_QR, subject="Two mugs"), merchant_no="M",
                               store_no=None, notify_url=None, return_url=None, expires_s=60)
    assert checkout["description"] == "Two mugs"


# -- the other request bodies -----------------------------------------------------------------

def test_refund_submit_names_the_original_and_carries_no_terminal() -> None:
    body = m.refund_submit_body(po(TxnKind.REFUND, 1234, card_present=False,
                                   orig_order_no="S1", currency="JPY"),
                                merchant_no="M", notify_url="https://x.example/n")
    assert body == {"merchant_no": "M", "orig_merchant_order_no": "S1",
                    "merchant_order_no": "N1", "price_currency": "JPY", "order_amount": "1234",
                    "description": "refund", "notify_url": "https://x.example/n"}
    with pytest.raises(ProviderRejected):
        m.refund_submit_body(po(TxnKind.REFUND, card_present=False), merchant_no="M",
                             notify_url=None)


@pytest.mark.parametrize(("mode", "sent"), [("total", "4.50"), ("delta", "-1.50")])
def test_tip_adjustment_sends_the_total_or_the_change(mode: m.TipAdjustmentMode,
                                                      sent: str) -> None:
    order = po(TxnKind.TIP_ADJUST, -150, tip=450, orig_tip=600, orig_order_no="S1")
    assert m.tip_adjustment_body(order, merchant_no="M", mode=mode) == {
        "merchant_no": "M", "merchant_order_no": "S1", "tip_adjustment_amount": sent}


def test_checkout_carries_no_card_and_at_most_seven_days() -> None:
    body = m.checkout_body(po(TxnKind.CHECKOUT_QR, 1500), merchant_no="M", store_no=None,
                           notify_url=None, return_url=None, expires_s=600)
    assert not {"card", "card_info", "billing_address", "terminal_sn"} & set(body)
    assert body["return_url"] is None and body["expires"] == 600
    with pytest.raises(ProviderRejected, match="7 days"):
        m.checkout_body(po(TxnKind.CHECKOUT_QR), merchant_no="M", store_no=None,
                        notify_url=None, return_url=None, expires_s=7 * 24 * 3600 + 1)


# -- answers ------------------------------------------------------------------------------------

def test_refund_submit_answer_without_status_is_pending_never_closable(
        gateway_key: RSAPrivateKey) -> None:
    order = po(TxnKind.REFUND, 500, card_present=False, orig_order_no="S1")
    report = m.parse_refund_submit_response(
        signed_answer(gateway_key, {"trans_no": "519018719199919", "trans_amount": "5.00",
                             "trans_fee_c": "0", "vat_amount": "0"}),
        order, gateway_key=gateway_key.public_key())
    assert (report.outcome, report.provider_ref, report.amount, report.closable) == (
        Outcome.PENDING, "519018719199919", 500, False)
    stated = m.parse_refund_submit_response(
        signed_answer(gateway_key, {"trans_no": "5", "trans_status": 9, "order_amount": "5.00"}),
        order, gateway_key=gateway_key.public_key())
    assert (stated.outcome, stated.closable) == (Outcome.PENDING, False)
    with pytest.raises(OutcomeUnknown):
        m.parse_refund_submit_response(signed_answer(gateway_key, None, code="ORDER_DUPLICATE"),
                                       order, gateway_key=gateway_key.public_key())


def test_checkout_answer_gives_the_pay_url_exactly(gateway_key: RSAPrivateKey) -> None:
    url = "https://pay.example/checkout/ab_C-1?x=1&y=ü"
    report = m.parse_checkout_response(signed_answer(gateway_key, {"pay_url": url}),
                                       po(TxnKind.CHECKOUT_QR),
                                       gateway_key=gateway_key.public_key())
    assert (report.outcome, report.closable, report.qr_text, report.provider_ref) == (
        Outcome.PENDING, True, url, None)
    for data in ({}, {"pay_url": ""}, {"pay_url": 5}):
        with pytest.raises(OutcomeUnknown):
            m.parse_checkout_response(signed_answer(gateway_key, data), po(TxnKind.CHECKOUT_QR),
                                      gateway_key=gateway_key.public_key())
    with pytest.raises(OutcomeUnknown):
        m.parse_checkout_response(signed_answer(gateway_key, None, code="E", msg="duplicate order"),
                                  po(TxnKind.CHECKOUT_QR), gateway_key=gateway_key.public_key())


@pytest.mark.parametrize(("data", "outcome", "tip"), [
    (None, Outcome.APPROVED, 450), ({}, Outcome.APPROVED, 450),
    ({"trans_status": 2, "trans_time": "2025-09-10 20:07:21"}, Outcome.APPROVED, 450),
    ({"trans_status": 1, "trans_error_code": "X1"}, Outcome.DECLINED, None),
])
def test_tip_adjustment_answers_at_once(gateway_key: RSAPrivateKey, data: dict[str, Any] | None,
                                        outcome: Outcome, tip: int | None) -> None:
    order = po(TxnKind.TIP_ADJUST, 150, tip=450, orig_order_no="S1")
    report = m.parse_tip_adjustment_response(signed_answer(gateway_key, data), order,
                                             gateway_key=gateway_key.public_key())
    assert (report.order_no, report.outcome, report.tip, report.amount) == (
        "N1", outcome, tip, None)
    assert not report.closable


def test_a_refused_tip_adjustment_is_rejected(gateway_key: RSAPrivateKey) -> None:
    with pytest.raises(ProviderRejected) as err:
        m.parse_tip_adjustment_response(signed_answer(gateway_key, None, code="BATCH_CLOSED"),
                                        po(TxnKind.TIP_ADJUST, orig_order_no="S1"),
                                        gateway_key=gateway_key.public_key())
    assert err.value.provider_code == "BATCH_CLOSED"


@pytest.mark.parametrize(("stated_tip", "mode", "outcome"), [
    (450, "total", Outcome.APPROVED), (450, "delta", Outcome.APPROVED),
    (300, "total", Outcome.NOT_FOUND), (None, "total", Outcome.NOT_FOUND),
    (300, "delta", None), (None, "delta", None),
])
def test_a_lost_tip_adjustment_is_judged_by_the_originals_tip(
        stated_tip: int | None, mode: m.TipAdjustmentMode, outcome: Outcome | None) -> None:
    order = po(TxnKind.TIP_ADJUST, 150, tip=450, orig_order_no="S1")
    original = ProviderReport(order_no="S1", outcome=Outcome.APPROVED, tip=stated_tip)
    if outcome is None:
        with pytest.raises(OutcomeUnknown):
            m.tip_adjustment_from_original(original, order, mode=mode)
        return
    report = m.tip_adjustment_from_original(original, order, mode=mode)
    assert (report.order_no, report.outcome) == ("N1", outcome)
    assert report.tip == (450 if outcome is Outcome.APPROVED else None)


def test_results_state_tip_cashback_and_trans_amount() -> None:
    report = m.report_from_data({"trans_status": 2, "trans_type": 11, "order_amount": "20.00",
                                 "tip_amount": "3.00", "cashback_amount": "40.00",
                                 "trans_amount": "63.00", "price_currency": "USD"}, "C1", None)
    assert (report.amount, report.tip, report.cashback) == (2000, 300, 4000)
    # only trans_amount (a refund's answer): the amount is what is left after tip and cash back
    only_total = m.report_from_data({"trans_status": 2, "trans_amount": "63.00",
                                     "tip_amount": "3.00", "cashback_amount": "40.00"},
                                    "C1", "USD")
    assert only_total.amount == 2000
    none = m.report_from_data({"trans_status": 0}, "C1", "USD")
    assert (none.amount, none.tip, none.cashback) == (None, None, None)


def test_closable_can_be_denied_for_orders_that_never_close() -> None:
    assert m.report_from_data({"trans_status": 9}, "R1", "USD").closable
    assert not m.report_from_data({"trans_status": 9}, "R1", "USD", closable=False).closable


def test_a_query_stating_another_trans_type_is_unknown(gateway_key: RSAPrivateKey) -> None:
    key = gateway_key.public_key()
    data = {"trans_status": 2, "trans_type": 3, "order_amount": "5.00"}
    refund = po(TxnKind.REFUND, 500, orig_kind=TxnKind.SALE, orig_order_no="S1")
    assert m.parse_query_response(signed_answer(gateway_key, data), refund, gateway_key=key,
                                  trans_types=m.query_trans_types(refund)).amount == 500
    completion_refund = po(TxnKind.REFUND, 500, orig_kind=TxnKind.COMPLETION,
                           orig_order_no="P1")
    with pytest.raises(OutcomeUnknown, match="trans_type 3"):
        m.parse_query_response(signed_answer(gateway_key, data), completion_refund, gateway_key=key,
                               trans_types=m.query_trans_types(completion_refund))


def test_query_trans_types_of_a_child_whose_original_kind_is_unknown() -> None:
    assert m.query_trans_types(po(TxnKind.VOID, orig_order_no="S1")) == {2, 7}
    assert m.query_trans_types(po(TxnKind.REFUND, orig_order_no="S1")) == {3, 8}
    assert m.query_trans_types(po(cashback=1)) == {11}


def test_a_notification_states_the_tip_entered_on_the_terminal(
        gateway_key: RSAPrivateKey) -> None:
    note: dict[str, Any] = {"merchant_no": MERCHANT_NO, "merchant_order_no": "OT1",
                            "trans_no": "5", "trans_status": 2, "trans_type": 1,
                            "order_amount": "1800", "tip_amount": "270",
                            "price_currency": "JPY", "sign_type": "RSA2"}
    note["sign"] = sign(note, gateway_key)
    report = m.parse_notification(m.dumps(note).encode(), gateway_key=gateway_key.public_key(),
                                  merchant_no=MERCHANT_NO)
    assert (report.order_no, report.outcome, report.amount, report.tip) == (
        "OT1", Outcome.APPROVED, 1800, 270)
