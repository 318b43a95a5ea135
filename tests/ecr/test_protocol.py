"""The ECR wire format: error table, frame parsing (including hostile JSON), frame encoding."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from posbridge.ecr import protocol as proto
from posbridge.ecr.protocol import Call, ErrorCode, FrameError
from posbridge.errors import RequestError

# The error table of ECR-PROTOCOL.md, written out independently of the enum.
CONTRACT_ERRORS = [
    (-32700, "parse_error"),
    (-32600, "invalid_request"),
    (-32601, "method_not_found"),
    (-32602, "invalid_params"),
    (1001, "unauthorized"),
    (1002, "forbidden"),
    (1003, "unknown_terminal"),
    (1004, "order_no_conflict"),
    (1005, "original_not_found"),
    (1006, "amount_exceeds_refundable"),
    (1007, "provider_unreachable"),
    (1008, "provider_rejected"),
    (1009, "rate_limited"),
    (1010, "not_allowed"),
]


def frame(**members: object) -> str:
    return json.dumps({"jsonrpc": "2.0", **members})


def refused(data: str | bytes) -> FrameError:
    with pytest.raises(FrameError) as info:
        proto.parse_frame(data)
    return info.value


# -- error table ---------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "reason"), CONTRACT_ERRORS)
def test_every_contract_error_has_its_code_and_reason(code: int, reason: str) -> None:
    assert ErrorCode(code).reason == reason
    err = ErrorCode(code).error("text")
    assert (err.code, err.reason, err.message) == (code, reason, "text")


def test_the_enum_adds_only_json_rpc_internal_error() -> None:
    extra = {(c.value, c.reason) for c in ErrorCode} - set(CONTRACT_ERRORS)
    assert extra == {(-32603, "internal_error")}


@pytest.mark.parametrize(
    ("err", "code", "reason", "field", "provider_code"),
    [
        (proto.invalid_params("amount", "bad"), -32602, "invalid_params", "amount", None),
        (proto.method_not_found("nope"), -32601, "method_not_found", "method", None),
        (proto.unauthorized(), 1001, "unauthorized", None, None),
        (proto.forbidden("no", field="manager_pin"), 1002, "forbidden", "manager_pin", None),
        (proto.unknown_terminal("lane-9"), 1003, "unknown_terminal", "terminal", None),
        (proto.order_no_conflict("A1"), 1004, "order_no_conflict", "order_no", None),
        (proto.original_not_found("A1"), 1005, "original_not_found", "orig_order_no", None),
        (proto.amount_exceeds_refundable("too much"), 1006, "amount_exceeds_refundable",
         "amount", None),
        (proto.provider_unreachable("down"), 1007, "provider_unreachable", None, None),
        (proto.provider_rejected("no", provider_code="SIGNERROR"), 1008, "provider_rejected",
         None, "SIGNERROR"),
        (proto.rate_limited("slow down"), 1009, "rate_limited", None, None),
        (proto.not_allowed("closed"), 1010, "not_allowed", None, None),
        (proto.internal_error("bug"), -32603, "internal_error", None, None),
    ],
)
def test_constructors_fill_code_reason_field(
    err: RequestError, code: int, reason: str, field: str | None, provider_code: str | None
) -> None:
    assert isinstance(err, RequestError)
    assert (err.code, err.reason, err.field, err.provider_code) == (
        code, reason, field, provider_code)


def test_roles_need_a_manager_for_money_back_and_batch_close_only() -> None:
    managers = {m for m, role in proto.METHOD_ROLES.items() if role == "manager"}
    assert managers == {"void", "refund", "batch.close", "preauth.cancel",
                        "tip.adjust"} == proto.PIN_METHODS
    assert set(proto.METHOD_ROLES.values()) == {"cashier", "manager"}
    every_method = {
        "auth", "ping", "sale", "void", "refund", "qr_sale", "crypto_sale", "cancel", "status",
        "transactions.list", "terminals.list", "batch.status", "batch.close", "events.replay",
        "preauth", "preauth.cancel", "completion", "tip.adjust", "checkout_qr"}
    assert every_method == proto.METHODS


# -- well-formed frames ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (frame(id=1, method="ping"), Call(1, "ping", {})),
        (frame(id="a-1", method="status", params={"order_no": "A1"}),
         Call("a-1", "status", {"order_no": "A1"})),
        (frame(method="ping"), Call(None, "ping", {})),
        (frame(id=-(2**53 - 1), method="ping"), Call(-(2**53 - 1), "ping", {})),
        (frame(id=0, method="ping", params={}).encode(), Call(0, "ping", {})),
    ],
)
def test_parse_frame_accepts_requests_and_notifications(
    data: str | bytes, expected: Call
) -> None:
    call = proto.parse_frame(data)
    assert call == expected
    assert call.is_notification is (expected.id is None)


def test_parse_frame_keeps_unicode_text() -> None:
    data = frame(id=1, method="sale", params={"description": "Café ☕ 咖啡 🧾"}).encode()
    assert proto.parse_frame(data).params == {"description": "Café ☕ 咖啡 🧾"}
    raw = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"\\u00e9\\ud83e\\uddfe"}}'
    assert proto.parse_frame(raw).params == {"x": "é🧾"}


# -- malformed frames: (frame, code, reason, id the error answers with, field) --------------

MALFORMED: list[tuple[str, str | bytes, int, str, object, str | None]] = [
    ("not json", "{jsonrpc", -32700, "parse_error", None, None),
    ("empty", "", -32700, "parse_error", None, None),
    ("trailing garbage", frame(id=1, method="ping") + "x", -32700, "parse_error", None, None),
    ("invalid utf-8", b'{"jsonrpc":"2.0","id":1,"method":"\xff"}', -32700, "parse_error",
     None, None),
    ("NaN", '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":NaN}}', -32700,
     "parse_error", None, None),
    ("Infinity", '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":-Infinity}}', -32700,
     "parse_error", None, None),
    ("float overflow", '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":1e999}}', -32700,
     "parse_error", None, None),
    ("huge integer", '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":' + "9" * 5000
     + "}}", -32700, "parse_error", None, None),
    ("huge id", '{"jsonrpc":"2.0","id":' + "1" * 40 + ',"method":"ping"}', -32700,
     "parse_error", None, None),
    ("duplicate key", '{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}', -32700, "parse_error",
     None, None),
    ("nested duplicate key",
     '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":1,"a":1}}', -32700, "parse_error",
     None, None),
    ("lone surrogate", '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"\\ud800"}}',
     -32700, "parse_error", None, None),
    ("deep nesting", '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":'
     + "[" * 40 + "]" * 40 + "}}", -32700, "parse_error", None, None),
    ("too large", frame(id=1, method="ping", params={"x": "a" * (64 * 1024)}), -32700,
     "parse_error", None, None),
    ("batch", "[" + frame(id=1, method="ping") + "]", -32600, "invalid_request", None, None),
    ("empty batch", "[]", -32600, "invalid_request", None, None),
    ("not an object", '"ping"', -32600, "invalid_request", None, None),
    ("number", "42", -32600, "invalid_request", None, None),
    ("null", "null", -32600, "invalid_request", None, None),
    ("no jsonrpc", json.dumps({"id": 3, "method": "ping"}), -32600, "invalid_request", 3, None),
    ("jsonrpc 1.0", json.dumps({"jsonrpc": "1.0", "id": 3, "method": "ping"}), -32600,
     "invalid_request", 3, None),
    ("jsonrpc number", json.dumps({"jsonrpc": 2.0, "id": "x", "method": "ping"}), -32600,
     "invalid_request", "x", None),
    ("no method", frame(id=4), -32600, "invalid_request", 4, None),
    ("method number", frame(id=4, method=7), -32600, "invalid_request", 4, None),
    ("method null", frame(id=4, method=None), -32600, "invalid_request", 4, None),
    ("method empty", frame(id=4, method=""), -32600, "invalid_request", 4, None),
    ("method too long", frame(id=4, method="m" * 65), -32600, "invalid_request", 4, None),
    ("id bool", frame(id=True, method="ping"), -32600, "invalid_request", None, None),
    ("id float", frame(id=1.5, method="ping"), -32600, "invalid_request", None, None),
    ("id integral float", frame(id=1.0, method="ping"), -32600, "invalid_request", None, None),
    ("id object", frame(id={"a": 1}, method="ping"), -32600, "invalid_request", None, None),
    ("id array", frame(id=[1], method="ping"), -32600, "invalid_request", None, None),
    ("id null", frame(id=None, method="ping"), -32600, "invalid_request", None, None),
    ("id beyond 2^53", frame(id=2**53, method="ping"), -32600, "invalid_request", None, None),
    ("id string too long", frame(id="i" * 129, method="ping"), -32600, "invalid_request", None,
     None),
    ("params array", frame(id=5, method="sale", params=["lane-1", "A1"]), -32602,
     "invalid_params", 5, "params"),
    ("params string", frame(id=5, method="sale", params="x"), -32600, "invalid_request", 5,
     None),
    ("params null", frame(id=5, method="sale", params=None), -32600, "invalid_request", 5,
     None),
    ("params number", frame(id=5, method="sale", params=1), -32600, "invalid_request", 5, None),
    ("unknown member", frame(id=6, method="ping", extra=1), -32600, "invalid_request", 6, None),
    ("a response, not a request", frame(id=6, result={}), -32600, "invalid_request", 6, None),
]


@pytest.mark.parametrize(
    ("data", "code", "reason", "answer_id", "field"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_parse_frame_refuses_malformed_input(
    data: str | bytes, code: int, reason: str, answer_id: object, field: str | None
) -> None:
    err = refused(data)
    assert (err.code, err.reason, err.id, err.field) == (code, reason, answer_id, field)
    reply = json.loads(proto.error_frame(err.id, err))
    assert reply["id"] == answer_id
    assert reply["error"]["code"] == code
    assert reply["error"]["data"]["reason"] == reason


def test_nesting_up_to_the_bound_is_accepted() -> None:
    # The request object plus params is 2 levels; fill the rest of MAX_DEPTH with arrays.
    inner = "[" * (proto.MAX_DEPTH - 2) + "]" * (proto.MAX_DEPTH - 2)
    call = proto.parse_frame('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":'
                             + inner + "}}")
    assert call.method == "ping"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "[" * 100 + '\\"{{{'
    call = proto.parse_frame(frame(id=1, method="ping", params={"x": text}))
    assert call.params == {"x": text}


@pytest.mark.parametrize(
    "data",
    [
        '"' + 'a\\"' * 20000,  # an unterminated string full of escaped quotes
        '"' + "\\" * 60000,
        '["]' * 20000,
        '"["' * 20000,
        "[" * 60000,
        "1" * 60000,
    ],
    ids=["escaped quotes", "backslashes", "quote brackets", "bracket quotes", "open brackets",
         "digits"],
)
def test_hostile_frames_are_refused_in_linear_time(data: str) -> None:
    started = time.perf_counter()
    err = refused(data)
    assert err.code == -32700
    assert time.perf_counter() - started < 0.5


def test_parse_error_messages_do_not_echo_the_frame() -> None:
    err = refused('{"token":"s3cr3t-token" oops}')
    assert "s3cr3t" not in err.message


# -- encoding ------------------------------------------------------------------------------


def test_result_frame_is_compact_json_with_raw_unicode() -> None:
    text = proto.result_frame(7, {"description": "Café ☕", "amount": "1.00"})
    assert text == '{"jsonrpc":"2.0","id":7,"result":{"description":"Café ☕","amount":"1.00"}}'


def test_error_frame_carries_reason_field_and_provider_code() -> None:
    err = RequestError(1008, "provider_rejected", "order already paid", field="order_no",
                       provider_code="ORDERPAID")
    assert json.loads(proto.error_frame("r-1", err)) == {
        "jsonrpc": "2.0",
        "id": "r-1",
        "error": {
            "code": 1008,
            "message": "order already paid",
            "data": {"reason": "provider_rejected", "field": "order_no",
                     "provider_code": "ORDERPAID"},
        },
    }


def test_error_frame_without_field_has_only_reason() -> None:
    reply = json.loads(proto.error_frame(None, proto.rate_limited("at most 32 at once")))
    assert reply == {"jsonrpc": "2.0", "id": None, "error": {
        "code": 1009, "message": "at most 32 at once", "data": {"reason": "rate_limited"}}}


def test_notification_frame_has_no_id() -> None:
    text = proto.notification_frame("terminal.status", {"terminal": "SN1", "online": True})
    assert text == ('{"jsonrpc":"2.0","method":"terminal.status",'
                    '"params":{"terminal":"SN1","online":true}}')


@pytest.mark.parametrize("params", [
    {"transaction": {"order_no": "A1", "description": "Café ☕", "card": None}},
    {"terminal": "SN1", "online": True},
    {},
])
def test_an_event_frame_from_encoded_params_is_the_notification_frame(
        params: dict[str, object]) -> None:
    """Events carry their params as the JSON text stored in the journal; the frame made from
    that text is, byte for byte, the one encoded from the params."""
    expected = proto.notification_frame("transaction.updated", {"seq": 12, **params})
    assert proto.event_frame("transaction.updated", 12, proto.dumps(params)) == expected


def test_a_raw_result_is_the_result_encoded() -> None:
    result = {"order_no": "A1", "description": "Café ☕", "amount": "1.00"}
    for call_id in (7, "r-1"):
        assert (proto.result_frame(call_id, proto.Raw(proto.dumps(result)))
                == proto.result_frame(call_id, result))


def test_encoders_refuse_nan_rather_than_emit_invalid_json() -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        proto.result_frame(1, {"x": float("nan")})


def test_encoded_frames_parse_back() -> None:
    request = frame(id=9, method="status", params={"order_no": "A1", "refresh": True})
    call = proto.parse_frame(request)
    reply = json.loads(proto.result_frame(call.id if call.id is not None else 0, call.params))
    assert reply["result"] == {"order_no": "A1", "refresh": True}


def test_the_published_reference_covers_every_method_and_error() -> None:
    reference = (Path(__file__).parents[2] / "docs" / "ecr-protocol.md").read_text("utf-8")
    for method in proto.METHODS:
        assert f"### {method}" in reference, method
    for code in ErrorCode:
        assert f"| {code.value} | `{code.reason}` |" in reference, code
    assert "ws://HOST:8765/ecr" in reference
