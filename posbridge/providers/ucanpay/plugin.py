"""UCanPay as a posbridge provider plug-in: its section, its adapter, its keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from posbridge.keyfiles import load_private_key, load_public_key
from posbridge.providers.base import KeySpec, ProviderPlugin
from posbridge.providers.ucanpay.config import UCanPayConfig, parse_section
from posbridge.providers.ucanpay.messages import NOTIFY_URL_MAX
from posbridge.providers.ucanpay.signing import SignScheme

if TYPE_CHECKING:  # the adapter (and aiohttp) load only when a daemon builds one
    from posbridge.providers.ucanpay.client import UCanPayProvider

def build(cfg: UCanPayConfig, notify_url: str) -> UCanPayProvider:
    """The adapter for a validated ``[ucanpay]`` section."""
    from posbridge.providers.ucanpay.client import UCanPayProvider

    return UCanPayProvider(
        base_url=cfg.base_url, merchant_id=cfg.merchant_id,
        private_key=(load_private_key(cfg.private_key_file.read_bytes())
                     if cfg.private_key_file else None),
        public_key=(load_public_key(cfg.public_key_file.read_bytes())
                    if cfg.public_key_file else None),
        scheme=SignScheme(cfg.sign_scheme), md5_key=cfg.md5_key, currency=cfg.currency,
        # Without a public_url the notify URLs are relative here; set_notify_url gives both
        # their absolute form once the HTTP listener is bound.
        notify_url=notify_url,
        refund_notify_url=notify_url + "/refund" if notify_url.startswith("http") else None,
        deeplink_template=cfg.deeplink_template,
        qr_timeout_s=cfg.qr_timeout_s, poll_interval_s=cfg.poll_interval_s,
        timeout_s=cfg.timeout_s)


PLUGIN = ProviderPlugin(
    name="ucanpay",
    title="UCanPay (wallet payments by dynamic QR)",
    parse_section=parse_section,
    build=build,
    keys=(KeySpec(config_key="private_key_file", role="merchant",
                  file_name="ucanpay_private.pem", portal_format="pem",
                  note="UCanPay's documents declare sign as String(256), but a 2048-bit key "
                       "signs in 344 Base64 characters (a 1024-bit key in 172); ask UCanPay "
                       "which size it takes and use --bits 1024 if it holds to 256"),
          KeySpec(config_key="public_key_file", role="provider",
                  file_name="ucanpay_public.pem")),
    notify_suffixes=("", "/refund"),
    notify_url_max=NOTIFY_URL_MAX,
    sandbox="posbridge.sandbox.ucanpay_sim:SANDBOX",
)
