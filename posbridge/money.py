"""Exact money: integers in minor units inside, decimal strings at the edges.

No float ever holds an amount. ``parse_amount("12.34", "USD") == 1234`` and
``format_amount(1234, "USD") == "12.34"``. The number of decimals is the currency's
ISO 4217 exponent (JPY 0, USD 2, KWD 3), or, for a provider's coin that is no ISO 4217
currency (``USDT``, ``BTC``), the exponent its configuration gives (``exp=``), at most
:data:`MAX_EXPONENT`.
"""

from __future__ import annotations

import re
from decimal import Decimal

# ISO 4217 active alphabetic codes whose minor-unit exponent is not 2.
_EXPONENT_NOT_2: dict[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}

# ISO 4217 active alphabetic codes with exponent 2 (funds codes and metals excluded).
_EXPONENT_2 = frozenset(
    [
        "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD",
        "BDT", "BGN", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
        "CDF", "CHF", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP",
        "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD",
        "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR", "JMD", "KES", "KGS", "KHR",
        "KPW", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD",
        "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN",
        "NIO", "NOK", "NPR", "NZD", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "QAR", "RON",
        "RSD", "RUB", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD",
        "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TOP", "TRY", "TTD", "TWD",
        "TZS", "UAH", "USD", "UYU", "UZS", "VES", "WST", "XCD", "XCG", "YER", "ZAR", "ZMW",
        "ZWG",
    ]
)

CURRENCIES: frozenset[str] = _EXPONENT_2 | frozenset(_EXPONENT_NOT_2)

#: The most decimals a coin may have (ETH's wei: 18).
MAX_EXPONENT = 18
#: The largest amount in minor units the journal can hold (SQLite's INTEGER).
MAX_MINOR = 2**63 - 1

_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,17})(?:\.([0-9]{1,18}))?")


class AmountError(ValueError):
    """An amount or currency that cannot be represented exactly; the message says why."""


def exponent(currency: str) -> int:
    """The ISO 4217 minor-unit exponent of ``currency``; unknown codes raise AmountError."""
    if currency not in CURRENCIES:
        raise AmountError(f"unknown ISO 4217 currency code {currency!r}")
    return _EXPONENT_NOT_2.get(currency, 2)


def parse_decimal(text: object, max_decimals: int = MAX_EXPONENT) -> Decimal:
    """The exact value of a plain decimal string (``"12.34"``) with at most ``max_decimals``
    decimals, for amounts whose decimals are not known yet; refuses what
    :func:`parse_amount` refuses for its shape."""
    if not isinstance(text, str):
        raise AmountError("must be a decimal string such as \"12.34\", not a JSON number")
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise AmountError(f"{text[:40]!r} is not a plain decimal amount such as \"12.34\"")
    if len(match.group(2) or "") > max_decimals:
        raise AmountError(f"at most {max_decimals} decimals")
    return Decimal(text)


def parse_amount(text: object, currency: str, exp: int | None = None) -> int:
    """Parse a decimal string in major units into minor units.

    Refuses JSON numbers, signs, exponents, blanks and more decimals than the currency has
    (``exp`` when given, else its ISO 4217 exponent). Zero is allowed here; callers decide
    whether zero is acceptable.
    """
    if not isinstance(text, str):
        raise AmountError("must be a decimal string such as \"12.34\", not a JSON number")
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise AmountError(f"{text[:40]!r} is not a plain decimal amount such as \"12.34\"")
    if exp is None:
        exp = exponent(currency)
    whole, frac = match.group(1), match.group(2) or ""
    if len(frac) > exp:
        raise AmountError(f"{currency} allows at most {exp} decimals")
    scale: int = 10**exp
    minor = int(whole) * scale + (int(frac.ljust(exp, "0")) if exp else 0)
    if minor > MAX_MINOR:
        raise AmountError(f"{text[:40]!r} is too large")
    return minor


def format_amount(minor: int, currency: str, exp: int | None = None) -> str:
    """Minor units as a decimal string in major units with exactly the exponent's decimals
    (``exp`` when given, else the currency's ISO 4217 exponent)."""
    if exp is None:
        exp = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}" if exp else f"{sign}{whole}"
