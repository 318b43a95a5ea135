"""The dynamic-QR deeplink (seed 001, "动态二维码支付"), built by encoding, never by pasting.

The seed's template is::

    https://ucanpaydev.page.link/?link=https://ucanpaydev.page.link/pay?ucpOrderNo%3D${ucpOrderNo}%26amount%3D${amount}%26item%3D${item}&apn=ca.ucanpay.wapp

i.e. an outer (Firebase dynamic) link whose ``link`` parameter is itself a URL whose query holds
the placeholders. Pasting raw values would break as soon as the subject holds a space, ``&``,
``#``, ``%`` or ``+``. So the template is parsed: every query value that is itself an http(s)
URL holding placeholders is rebuilt recursively, each value is filled in (one pass: a value that
looks like ``${amount}`` is not expanded again) and every query string is re-encoded with all
reserved characters percent-encoded (``%20`` for space). Parsing the result with
``urllib.parse`` - the outer URL, then its ``link`` - gives back exactly ``ucpOrderNo``, the
amount in minor units as a decimal integer, and the item text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = ["PLACEHOLDERS", "build_deeplink", "check_template"]

PLACEHOLDERS: Final = ("ucpOrderNo", "amount", "item")
_PLACEHOLDER_RE: Final = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _query_values(url: str) -> list[str]:
    """Every placeholder-bearing query value of ``url``, recursing into nested URLs."""
    found: list[str] = []
    for _name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if _is_url(value) and _PLACEHOLDER_RE.search(value):
            found.extend(_query_values(value))
        else:
            found.append(value)
    return found


def check_template(template: str) -> None:
    """Raise ``ValueError`` naming the problem if ``template`` cannot be filled.

    Each of ``${ucpOrderNo}``, ``${amount}`` and ``${item}`` must appear in a query value (of
    the URL or of a URL nested in one of its query values); no other placeholder may appear.
    """
    if not _is_url(template):
        raise ValueError("deeplink template must be an http(s) URL")
    names: set[str] = set()
    for value in _query_values(template):
        names.update(_PLACEHOLDER_RE.findall(value))
    for name in PLACEHOLDERS:
        if name not in names:
            raise ValueError(f"deeplink template lacks the placeholder ${{{name}}} "
                             "in a query value")
    unknown = sorted(names.difference(PLACEHOLDERS))
    if unknown:
        raise ValueError(f"deeplink template has an unknown placeholder ${{{unknown[0]}}}")


def _fill(url: str, values: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    pairs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if _is_url(value) and _PLACEHOLDER_RE.search(value):
            pairs.append((name, _fill(value, values)))
        else:
            pairs.append((name, _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], value)))
    query = urlencode(pairs, quote_via=quote, safe="")
    return urlunsplit(parts._replace(query=query))


def build_deeplink(template: str, *, ucp_order_no: str, amount_minor: int, item: str) -> str:
    """The deeplink for one order: ``template`` filled with properly encoded values.

    ``amount_minor`` is written as a decimal integer of minor units (seed: ``amount`` in cents).
    ``template`` must pass :func:`check_template` (``ValueError`` otherwise).
    """
    check_template(template)
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor < 0:
        raise ValueError("amount_minor must be a non-negative integer")
    values = {"ucpOrderNo": ucp_order_no, "amount": str(amount_minor), "item": item}
    return _fill(template, values)
