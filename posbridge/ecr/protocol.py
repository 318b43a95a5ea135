"""The ECR JSON-RPC 2.0 wire format, without I/O: error codes, frame parsing, frame encoding.

The WebSocket server hands every text frame to :func:`parse_frame` and gets a :class:`Call`
or a :class:`~posbridge.errors.RequestError`; it answers with :func:`result_frame` or
:func:`error_frame` and pushes :func:`notification_frame`. Per-method parameter validation
lives in :mod:`posbridge.ecr.params`, which builds on this module's error table.

Choices where JSON-RPC 2.0 leaves room (published in ``docs/ecr-protocol.md``):

* Batches (a JSON array at the top level) are refused with -32600.
* By-position ``params`` (an array) are refused with -32602, field ``params``: the request is
  valid JSON-RPC, but no method of this protocol takes positional parameters. ``params`` of
  any other non-object type is not valid JSON-RPC at all and gets -32600.
* ``"id": null`` is refused (-32600): a request has a string or integer id, a notification
  has no ``id`` member. Fractional and boolean ids are refused too.
* Input that is not strict, unambiguous JSON is a parse error (-32700): invalid UTF-8,
  ``NaN``/``Infinity``, duplicate object keys, numbers longer than :data:`MAX_NUMBER_CHARS`,
  nesting deeper than :data:`MAX_DEPTH`, lone UTF-16 surrogates in strings.
* Members other than ``jsonrpc``, ``id``, ``method``, ``params`` are refused (-32600).
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from posbridge.errors import RequestError

JSONRPC_VERSION: Final = "2.0"
# The transport refuses larger frames (close 1009); checked here again so the core is safe alone.
MAX_FRAME_BYTES: Final = 64 * 1024
# No legitimate request nests deeper than params -> object; 32 leaves room for extensions.
MAX_DEPTH: Final = 32
# Long enough for any 64-bit integer or double literal; stops 4000-digit integers early.
MAX_NUMBER_CHARS: Final = 32
MAX_METHOD_CHARS: Final = 64
MAX_ID_CHARS: Final = 128
# Integer ids must survive a JavaScript client (Number.MAX_SAFE_INTEGER).
MAX_SAFE_INTEGER: Final = 2**53 - 1

RequestId = int | str
Role = Literal["cashier", "manager"]


class ErrorCode(enum.IntEnum):
    """Every error code of the ECR protocol; :attr:`reason` is its ``data.reason`` string."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    # JSON-RPC's reserved "internal error": a bug or a journal failure, never bad input.
    INTERNAL_ERROR = -32603
    UNAUTHORIZED = 1001
    FORBIDDEN = 1002
    UNKNOWN_TERMINAL = 1003
    ORDER_NO_CONFLICT = 1004
    ORIGINAL_NOT_FOUND = 1005
    AMOUNT_EXCEEDS_REFUNDABLE = 1006
    PROVIDER_UNREACHABLE = 1007
    PROVIDER_REJECTED = 1008
    RATE_LIMITED = 1009
    NOT_ALLOWED = 1010

    @property
    def reason(self) -> str:
        """The machine-readable snake_case reason, e.g. ``"order_no_conflict"``."""
        return self.name.lower()

    def error(
        self,
        message: str,
        *,
        field: str | None = None,
        provider_code: str | None = None,
    ) -> RequestError:
        """A :class:`RequestError` with this code and reason."""
        return RequestError(
            int(self), self.reason, message, field=field, provider_code=provider_code
        )


class FrameError(RequestError):
    """A frame-level error that knows the request ``id`` to answer with (None: answer null)."""

    def __init__(self, code: ErrorCode, message: str, *, id: RequestId | None = None,
                 field: str | None = None) -> None:
        super().__init__(int(code), code.reason, message, field=field)
        self.id = id


# -- constructors: one per error of the table --------------------------------------------


def parse_error(message: str) -> FrameError:
    return FrameError(ErrorCode.PARSE_ERROR, message)


def invalid_request(message: str, *, id: RequestId | None = None) -> FrameError:
    return FrameError(ErrorCode.INVALID_REQUEST, message, id=id)


def method_not_found(method: str) -> RequestError:
    return ErrorCode.METHOD_NOT_FOUND.error(f"no method {method[:MAX_METHOD_CHARS]!r}",
                                            field="method")


def invalid_params(field: str, message: str) -> RequestError:
    """Bad parameter ``field``; the message says what is wrong, never echoes a secret."""
    return ErrorCode.INVALID_PARAMS.error(f"{field}: {message}", field=field)


def internal_error(message: str) -> RequestError:
    return ErrorCode.INTERNAL_ERROR.error(message)


def unauthorized(message: str = "authenticate first") -> RequestError:
    return ErrorCode.UNAUTHORIZED.error(message)


def forbidden(message: str, *, field: str | None = None) -> RequestError:
    return ErrorCode.FORBIDDEN.error(message, field=field)


def unknown_terminal(name: str, *, field: str = "terminal") -> RequestError:
    return ErrorCode.UNKNOWN_TERMINAL.error(f"no terminal or display {name!r}", field=field)


def order_no_conflict(order_no: str) -> RequestError:
    return ErrorCode.ORDER_NO_CONFLICT.error(
        f"order_no {order_no!r} is already used with different parameters", field="order_no"
    )


def original_not_found(order_no: str, *, field: str = "orig_order_no") -> RequestError:
    return ErrorCode.ORIGINAL_NOT_FOUND.error(f"no transaction {order_no!r}", field=field)


def amount_exceeds_refundable(message: str) -> RequestError:
    return ErrorCode.AMOUNT_EXCEEDS_REFUNDABLE.error(message, field="amount")


def provider_unreachable(message: str) -> RequestError:
    return ErrorCode.PROVIDER_UNREACHABLE.error(message)


def provider_rejected(message: str, *, provider_code: str | None) -> RequestError:
    return ErrorCode.PROVIDER_REJECTED.error(message, provider_code=provider_code)


def rate_limited(message: str) -> RequestError:
    return ErrorCode.RATE_LIMITED.error(message)


def not_allowed(message: str, *, field: str | None = None) -> RequestError:
    return ErrorCode.NOT_ALLOWED.error(message, field=field)


# -- methods and roles ---------------------------------------------------------------------

# Who may call what. ``auth`` is answered before any role exists; it is listed so that the
# table covers every method.
METHOD_ROLES: Final[dict[str, Role]] = {
    "auth": "cashier",
    "ping": "cashier",
    "sale": "cashier",
    "void": "manager",
    "refund": "manager",
    "qr_sale": "cashier",
    "crypto_sale": "cashier",
    "preauth": "cashier",
    "preauth.cancel": "manager",
    "completion": "cashier",
    "tip.adjust": "manager",
    "checkout_qr": "cashier",
    "cancel": "cashier",
    "status": "cashier",
    "transactions.list": "cashier",
    "terminals.list": "cashier",
    "batch.status": "cashier",
    "batch.close": "manager",
    "events.replay": "cashier",
}
METHODS: Final = frozenset(METHOD_ROLES)
# Methods that accept ``manager_pin``, letting a cashier token act as a manager once.
PIN_METHODS: Final = frozenset(m for m, role in METHOD_ROLES.items() if role == "manager")


# -- parsing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """One well-formed JSON-RPC request. ``id`` None means a notification: never answered."""

    id: RequestId | None
    method: str
    params: Mapping[str, object]

    @property
    def is_notification(self) -> bool:
        return self.id is None


class _Hostile(ValueError):
    """Raised inside the JSON decoder hooks; becomes a parse error."""


# A string literal (to the closing quote, or to the end if there is none) or a bracket.
# Possessive and always matching at a quote, so one pass is linear even on hostile input.
_DEPTH_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"?|[\[\]{}]', re.DOTALL)
_MEMBERS = frozenset({"jsonrpc", "id", "method", "params"})


def parse_frame(data: str | bytes) -> Call:
    """Turn one text frame into a :class:`Call`, or raise :class:`FrameError`.

    The error's ``id`` is the request's id once that id is known to be valid, else None.
    ``params`` is returned as given (an object; absent means ``{}``): per-method
    validation is :func:`posbridge.ecr.params.parse_params`.
    """
    obj = _decode(data)
    if isinstance(obj, list):
        raise invalid_request("batches (JSON arrays) are not supported; send one request a frame")
    if not isinstance(obj, dict):
        raise invalid_request("a request is a JSON object")
    call_id = _request_id(obj)
    if obj.get("jsonrpc") != JSONRPC_VERSION:
        raise invalid_request('"jsonrpc" must be "2.0"', id=call_id)
    extra = sorted(set(obj) - _MEMBERS)
    if extra:
        raise invalid_request(f"unknown members {', '.join(m[:40] for m in extra)}", id=call_id)
    method = obj.get("method")
    if not isinstance(method, str):
        raise invalid_request('"method" must be a string', id=call_id)
    if not 0 < len(method) <= MAX_METHOD_CHARS:
        raise invalid_request(f'"method" must be 1-{MAX_METHOD_CHARS} characters', id=call_id)
    params = obj.get("params", {})
    if isinstance(params, list):
        raise FrameError(ErrorCode.INVALID_PARAMS,
                         "params: parameters are named; send an object, not an array",
                         id=call_id, field="params")
    if not isinstance(params, dict):
        raise invalid_request('"params" must be an object', id=call_id)
    return Call(call_id, method, params)


def _decode(data: str | bytes) -> object:
    if len(data) > MAX_FRAME_BYTES:
        raise parse_error(f"frame larger than {MAX_FRAME_BYTES} bytes")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise parse_error("frame is not valid UTF-8") from None
    else:
        text = data
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
        raise parse_error(f"frame larger than {MAX_FRAME_BYTES} bytes")
    _check_depth(text)
    try:
        obj: object = _DECODER.decode(text)
    except _Hostile as exc:
        raise parse_error(str(exc)) from None
    except ValueError:
        # json.JSONDecodeError and friends; their text could echo the frame, so say it plainly.
        raise parse_error("frame is not valid JSON") from None
    _check_strings(obj)
    return obj


def _check_depth(text: str) -> None:
    """Refuse deep nesting before the recursive decoder ever sees it."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return  # not enough opening brackets (in strings or not) to nest any deeper
    depth = 0
    for match in _DEPTH_TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
        elif token in ("]", "}"):
            depth -= 1
        if depth > MAX_DEPTH:
            raise parse_error(f"JSON nested deeper than {MAX_DEPTH} levels")


def _check_strings(obj: object) -> None:
    r"""Refuse lone surrogates (``"\ud800"``): valid JSON escapes, but not encodable text."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            raise parse_error("string with a lone UTF-16 surrogate") from None
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _check_strings(key)
            _check_strings(value)
    elif isinstance(obj, list):
        for item in obj:
            _check_strings(item)


def _unique_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _Hostile(f"duplicate key {key[:40]!r}")
        result[key] = value
    return result


def _bounded_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _Hostile(f"number longer than {MAX_NUMBER_CHARS} characters")
    return int(literal)


def _finite_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _Hostile(f"number longer than {MAX_NUMBER_CHARS} characters")
    value = float(literal)
    if not math.isfinite(value):  # "1e999" overflows to inf
        raise _Hostile("number out of range")
    return value


def _no_constant(name: str) -> object:
    raise _Hostile(f"{name} is not JSON")


#: One decoder for every frame (``json.loads`` with hooks would build one per call).
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_object, parse_int=_bounded_int,
                            parse_float=_finite_float, parse_constant=_no_constant)


def _request_id(obj: dict[str, object]) -> RequestId | None:
    """The request id, or None for a notification; a malformed id cannot be echoed back."""
    if "id" not in obj:
        return None
    value = obj["id"]
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid_request('"id" must be a string or an integer; omit it for a notification')
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        raise invalid_request(f'"id" must be an integer within ±{MAX_SAFE_INTEGER}')
    if isinstance(value, str) and len(value) > MAX_ID_CHARS:
        raise invalid_request(f'"id" must be at most {MAX_ID_CHARS} characters')
    return value


# -- encoding ------------------------------------------------------------------------------


def dumps(obj: object) -> str:
    """``obj`` as the bridge writes it in a frame (compact JSON, UTF-8 kept)."""
    # allow_nan=False: a NaN from a bug must fail here, not reach a register as invalid JSON.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Raw(str):
    """JSON text already encoded (by :func:`dumps`), put into a frame as it is."""

    __slots__ = ()


def result_frame(id: RequestId, result: object) -> str:
    """A success response. ``result`` must be JSON-able (TypeError otherwise: a bug), or
    :class:`Raw` JSON text."""
    if isinstance(result, Raw):
        return f'{{"jsonrpc":"2.0","id":{dumps(id)},"result":{result}}}'
    return dumps({"jsonrpc": JSONRPC_VERSION, "id": id, "result": result})


def error_frame(id: RequestId | None, err: RequestError) -> str:
    """An error response: ``data`` has ``reason``, and ``field``/``provider_code`` when set."""
    data: dict[str, object] = {"reason": err.reason}
    if err.field is not None:
        data["field"] = err.field
    if err.provider_code is not None:
        data["provider_code"] = err.provider_code
    error = {"code": int(err.code), "message": err.message, "data": data}
    return dumps({"jsonrpc": JSONRPC_VERSION, "id": id, "error": error})


def notification_frame(method: str, params: Mapping[str, object]) -> str:
    """A server-to-register notification (no id), e.g. ``transaction.updated``."""
    return dumps({"jsonrpc": JSONRPC_VERSION, "method": method, "params": dict(params)})


def event_frame(method: str, seq: int, params_json: str) -> str:
    """The notification of an event whose params are JSON text (an object): the text of
    ``notification_frame(method, {"seq": seq, **params})``, without encoding them again."""
    rest = params_json[1:] if params_json == "{}" else "," + params_json[1:]
    return f'{{"jsonrpc":"2.0","method":{dumps(method)},"params":{{"seq":{seq:d}{rest}}}'
