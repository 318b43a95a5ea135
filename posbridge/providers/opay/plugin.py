"""The crypto payment platform as a posbridge provider plug-in: its section, its adapter,
its keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from posbridge.keyfiles import load_private_key, load_public_key
from posbridge.providers.base import KeySpec, ProviderPlugin
from posbridge.providers.opay.config import OPayConfig, parse_section
from posbridge.providers.opay.envelope import Suite

if TYPE_CHECKING:  # the adapter (and aiohttp) load only when a daemon builds one
    from posbridge.providers.opay.client import OPayProvider

def build(cfg: OPayConfig, notify_url: str) -> OPayProvider:
    """The adapter for a validated ``[opay]`` section. A relative ``notify_url`` (no
    ``public_url`` configured) is replaced by ``set_notify_url`` once the listener is bound."""
    from posbridge.providers.opay.client import OPayProvider

    return OPayProvider(
        base_url=cfg.base_url, app_id=cfg.app_id,
        merchant_key=load_private_key(cfg.private_key_file.read_bytes()),
        platform_key=load_public_key(cfg.platform_public_key_file.read_bytes()),
        coins=cfg.coins, notify_url=notify_url, pay_page=cfg.pay_page_url,
        return_page=cfg.return_page, expires_s=cfg.expires_s,
        order_scene_type=cfg.order_scene_type, amount_style=cfg.amount_style,
        suite=Suite(alphabet=cfg.base64_alphabet, sign_input=cfg.sign_input),
        callback_answer=cfg.callback_answer, detail_app_key=cfg.detail_app_key,
        statement_page_size=cfg.statement_page_size,
        lost_order_settle_s=cfg.lost_order_settle_s, poll_interval_s=cfg.poll_interval_s,
        timeout_s=cfg.timeout_s)


PLUGIN = ProviderPlugin(
    name="opay",
    title="OPay crypto platform (pay-page QR)",
    parse_section=parse_section,
    build=build,
    keys=(KeySpec(config_key="private_key_file", role="merchant",
                  file_name="opay_merchant_key.pem", portal_format="base64",
                  note="register the public half as one line of Base64 (X.509 "
                       "SubjectPublicKeyInfo DER); the platform's key may be given the "
                       "same way, in either Base64 alphabet"),
          KeySpec(config_key="platform_public_key_file", role="provider",
                  file_name="opay_platform_pub.pem")),
    sandbox="posbridge.sandbox.opay_sim:SANDBOX",
    # the coin most crypto shops take first, with its usual decimals: to check with the
    # platform's account (init's to-do list says so)
    setup_defaults={"coins": {"USDT": 6}},
)
