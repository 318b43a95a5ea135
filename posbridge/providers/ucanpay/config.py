"""The ``[ucanpay]`` configuration section (see config/README.md for every key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from posbridge import money
from posbridge.config_table import Table, url_of

DEFAULT_DEEPLINK_TEMPLATE: Final = (
    "https://ucanpaydev.page.link/?link=https://ucanpaydev.page.link/pay?ucpOrderNo%3D"
    "${ucpOrderNo}%26amount%3D${amount}%26item%3D${item}&apn=ca.ucanpay.wapp"
)
DEEPLINK_PLACEHOLDERS: Final = ("${ucpOrderNo}", "${amount}", "${item}")

SignScheme = Literal["double_hash", "rsa_sha256", "md5"]
SIGN_SCHEMES: Final[tuple[SignScheme, ...]] = ("double_hash", "rsa_sha256", "md5")


@dataclass(frozen=True, slots=True, kw_only=True)
class UCanPayConfig:
    """The ``[ucanpay]`` section (wallet payments by dynamic QR)."""

    base_url: str
    merchant_id: str
    private_key_file: Path | None = None
    public_key_file: Path | None = None
    currency: str = "CAD"
    deeplink_template: str = DEFAULT_DEEPLINK_TEMPLATE
    qr_timeout_s: int = 120
    sign_scheme: SignScheme = "double_hash"
    md5_key: str | None = field(default=None, repr=False)
    poll_interval_s: float = 2.0
    timeout_s: float = 10.0


def parse_section(t: Table) -> UCanPayConfig:
    """Validate the ``[ucanpay]`` table; ConfigError names the first wrong key."""
    scheme = t.choice("sign_scheme", SIGN_SCHEMES, default="double_hash")
    private_key = t.readable_file("private_key_file")
    public_key = t.readable_file("public_key_file")
    md5_key = t.optional_text("md5_key")
    if scheme == "md5":
        if md5_key is None:
            raise t.fail("md5_key", 'missing: sign_scheme "md5" needs the shared key')
    else:
        for key, value in (("private_key_file", private_key), ("public_key_file", public_key)):
            if value is None:
                raise t.fail(key, f'missing: sign_scheme "{scheme}" needs both key files')
    currency = t.text("currency", default="CAD")
    if currency not in money.CURRENCIES:
        raise t.fail("currency", f"must be an ISO 4217 code in upper case, not {currency!r}")
    template = t.text("deeplink_template", default=DEFAULT_DEEPLINK_TEMPLATE)
    absent = [p for p in DEEPLINK_PLACEHOLDERS if p not in template]
    if absent:
        raise t.fail("deeplink_template", f"must contain {', '.join(absent)}")
    config = UCanPayConfig(
        base_url=url_of(t, "base_url"), merchant_id=t.text("merchant_id"),
        private_key_file=private_key, public_key_file=public_key, currency=currency,
        deeplink_template=template, qr_timeout_s=t.integer("qr_timeout_s", default=120),
        sign_scheme=scheme, md5_key=md5_key,
        poll_interval_s=t.seconds("poll_interval_s", default=2.0),
        timeout_s=t.seconds("timeout_s", default=10.0))
    t.done()
    return config
