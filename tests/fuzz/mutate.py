"""Random mutation of valid inputs, shared by the fuzz tests and ``bench/fuzz.py``.

Every function takes a :class:`random.Random`, so a run is reproduced by its seed. Two levels:

* :func:`mutate_bytes` edits the encoded input (flip bits, insert, delete, duplicate and splice
  spans, drop in tokens that parsers trip on: quotes, brackets, escapes, lone surrogates,
  invalid UTF-8, huge numbers, control characters);
* :func:`mutate_json` edits a decoded JSON value (replace a member with an interesting value,
  delete or add members, nest deeper, change a type), so that the input still parses and the
  mutation reaches the validation behind the parser.
"""

from __future__ import annotations

import copy
import random
from typing import Any, Final

# Values that sit on an edge of some rule: types, signs, sizes, digits that are not ASCII,
# control characters, text that cannot be encoded, numbers past every bound.
INTERESTING_TEXT: Final[tuple[str, ...]] = (
    "", " ", "\x00", "\t", "\n", "\x1b@", "\x1d(k", "\x7f", "\x85", "\u202e", "\ufeff",
    "\ud800", "²", "٣", "１２", "0", "-0", "00", "-1", "1", "01", "1.", ".5", "1.000",
    "0.001", "12.34", "10000.00", "10000.01", "9" * 19, "9" * 5000, "1e999999", "1E+2",
    "Infinity", "-Infinity", "NaN", "sNaN", "true", "null", "USD", "usd", "JPY", "KWD", "XXX",
    "lane-1", "A1", "A-1|*@", "a" * 33, "a" * 129, "a" * 70_000, "/=&", "%00", "%ff",
    "2024-05-01T09:30:00Z", "2024-13-45T99:99:99+99:99", "0001-01-01T00:00:00+01:00",
    "SUCCESS", "success", "REFUND", "NOTPAY", "PAYERROR", "ORDERPAID", "SYSTEMERROR",
    "online", "Visa", "sale", "manager", "cashier", "Bearer", "scrypt$ln=15,r=8,p=1$a$b",
)
INTERESTING_VALUES: Final[tuple[object, ...]] = (
    None, True, False, 0, 1, -1, 2, 3, 9, 2**31, 2**53, 2**53 + 1, 2**63, -(2**63) - 1,
    10**4000, 0.5, -0.0, 1e308, float("inf"), float("nan"), [], {}, [[]], {"": None},
    [1, "a", None], {"a": {"b": {"c": []}}}, *INTERESTING_TEXT,
)
TOKENS: Final[tuple[bytes, ...]] = (
    b'"', b"\\", b"\\u0000", b"\\ud800", b"\\udfff", b"\\", b"{", b"}", b"[", b"]", b",",
    b":", b"null", b"true", b"-", b"0", b"1e999999", b"-1e-999999", b"NaN", b"Infinity",
    b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\x1b", b"9" * 40,
    b"[" * 64, b"{" * 40, b'{"a":' * 40, b"%", b"&", b"=", b"+", b"\r\n", b" " * 8,
    b'"jsonrpc"', b'"2.0"', b'"id"', b'"method"', b'"params"', b'"sign"', b'"data"',
)
KEYS: Final[tuple[str, ...]] = (
    "jsonrpc", "id", "method", "params", "token", "terminal", "order_no", "orig_order_no",
    "amount", "tip", "currency", "description", "wait", "timeout_s", "subject", "body",
    "display", "print", "refresh", "state", "since", "limit", "cursor", "since_seq",
    "manager_pin", "sign", "code", "msg", "data", "trans_status", "order_amount",
    "merchant_order_no", "merchant_no", "tradeStatus", "totalAmt", "outTradeNo",
    "outRefundNo", "refundStatus", "merchantId", "errCode", "__proto__", "", "x" * 50,
)


def interesting(rng: random.Random) -> object:
    """An edge value, or now and then a random JSON value."""
    if rng.random() < 0.8:
        return copy.deepcopy(rng.choice(INTERESTING_VALUES))
    return random_json(rng, depth=3)


def random_json(rng: random.Random, depth: int = 4) -> object:
    """A random JSON-like value (floats included; NaN and infinities too)."""
    kind = rng.randrange(8 if depth > 0 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice((rng.randint(-10, 10), rng.randint(-(2**64), 2**64)))
    if kind == 3:
        return rng.choice((rng.uniform(-1e6, 1e6), float("nan"), float("inf"), 1e-320))
    if kind in (4, 5):
        return random_text(rng)
    if kind == 6:
        return [random_json(rng, depth - 1) for _ in range(rng.randrange(4))]
    return {random_text(rng, 12) if rng.random() < 0.5 else rng.choice(KEYS):
            random_json(rng, depth - 1) for _ in range(rng.randrange(4))}


def random_text(rng: random.Random, max_len: int = 40) -> str:
    """Text from a mix of ASCII, controls, Latin-1, other planes and surrogates."""
    alphabet = rng.choice((
        "abcXYZ019_-|*@.", "0123456789.", " \t\n\x00\x1b\x7f\x85", "äéßÿ€漢字🙂\u202e",
        "\ud800\udfff", "\"\\/=&%{}[]:,",
    ))
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(max_len + 1)))


def mutate_bytes(data: bytes, rng: random.Random, *, max_len: int = 70_000) -> bytes:
    """``data`` after one to four random edits (never longer than ``max_len``)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        pos = rng.randrange(len(out) + 1)
        if op == 0 and out:  # flip a bit
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and out:  # a random byte
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif op == 2:  # insert random bytes
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3:  # insert a token
            out[pos:pos] = rng.choice(TOKENS)
        elif op == 4 and out:  # delete a span
            end = min(len(out), pos + rng.randint(1, 16))
            del out[pos:end]
        elif op == 5 and out:  # duplicate a span
            start = rng.randrange(len(out))
            out[pos:pos] = out[start:start + rng.randint(1, 32)]
        elif op == 6:  # truncate
            del out[pos:]
        elif op == 7 and out:  # replace a span with a token
            end = min(len(out), pos + rng.randint(1, 8))
            out[pos:end] = rng.choice(TOKENS)
        else:  # repeat the whole input (size and nesting)
            out = out * rng.randint(2, 4)
    return bytes(out[:max_len])


def mutate_json(value: Any, rng: random.Random) -> Any:
    """A deep copy of ``value`` after one to three structure-aware edits."""
    root = {"": copy.deepcopy(value)}
    for _ in range(rng.randint(1, 3)):
        parent, key = _pick(root, rng)
        op = rng.randrange(7)
        if op in (0, 1):
            parent[key] = interesting(rng)
        elif op == 2 and isinstance(parent, dict) and parent is not root:
            del parent[key]
        elif op == 3 and isinstance(parent[key], dict):
            parent[key][rng.choice(KEYS)] = interesting(rng)
        elif op == 4:  # nest deeper
            parent[key] = rng.choice(([parent[key]], {"a": parent[key]}))
        elif op == 5:  # the same value as another JSON type
            current = parent[key]
            parent[key] = (str(current) if not isinstance(current, str)
                           else _number_or_text(current))
        else:
            parent[key] = random_json(rng, depth=2)
    return root[""]


def _number_or_text(text: str) -> object:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return [text]


def _pick(root: dict[str, Any], rng: random.Random) -> tuple[Any, Any]:
    """A random (container, key) in the tree under ``root`` (``root`` itself included)."""
    places: list[tuple[Any, Any]] = []
    stack: list[tuple[Any, Any]] = [(root, "")]
    while stack and len(places) < 500:
        parent, key = stack.pop()
        places.append((parent, key))
        child = parent[key]
        if isinstance(child, dict):
            stack.extend((child, k) for k in child)
        elif isinstance(child, list):
            stack.extend((child, i) for i in range(len(child)))
    return rng.choice(places)
