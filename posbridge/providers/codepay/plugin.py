"""CodePay as a posbridge provider plug-in: its section, its adapter, its keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from posbridge.keyfiles import load_private_key, load_public_key
from posbridge.providers.base import KeySpec, ProviderPlugin
from posbridge.providers.codepay.config import CodePayConfig, parse_section

if TYPE_CHECKING:  # the adapter (and aiohttp) load only when a daemon builds one
    from posbridge.providers.codepay.client import CodePayProvider

def build(cfg: CodePayConfig, notify_url: str) -> CodePayProvider:
    """The adapter for a validated ``[codepay]`` section."""
    from posbridge.providers.codepay.client import CodePayProvider

    basic = None
    if cfg.sign_type == "NONE":
        assert cfg.basic_auth_user is not None and cfg.basic_auth_password is not None
        basic = (cfg.basic_auth_user, cfg.basic_auth_password)
    return CodePayProvider(
        base_url=cfg.base_url, app_id=cfg.app_id, merchant_no=cfg.merchant_no,
        store_no=cfg.store_no,
        private_key=(load_private_key(cfg.private_key_file.read_bytes())
                     if cfg.private_key_file else None),
        gateway_public_key=(load_public_key(cfg.gateway_public_key_file.read_bytes())
                            if cfg.gateway_public_key_file else None),
        sign_type=cfg.sign_type, basic_auth=basic, notify_url=notify_url,
        expires_s=cfg.expires_s, timeout_s=cfg.timeout_s,
        poll_interval_s=cfg.poll_interval_s, open_batch_method=cfg.open_batch_method,
        tip_adjustment=cfg.tip_adjustment_amount,
        completion_max_percent=cfg.completion_max_percent, return_url=cfg.return_url)


PLUGIN = ProviderPlugin(
    name="codepay",
    title="CodePay Cloud Open API (card terminals)",
    parse_section=parse_section,
    build=build,
    terminals=True,
    keys=(KeySpec(config_key="private_key_file", role="merchant",
                  file_name="codepay_private.pem", portal_format="base64"),
          KeySpec(config_key="gateway_public_key_file", role="provider",
                  file_name="codepay_gateway_public.pem")),
    notify_url_max=256,  # notify_url <= 256 characters (seed 003)
    sandbox="posbridge.sandbox.codepay_sim:SANDBOX",
)
