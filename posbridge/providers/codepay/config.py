"""The ``[codepay]`` configuration section (see config/README.md for every key)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from posbridge.config_table import Table, url_of
from posbridge.providers.codepay.messages import (
    MAX_URL,
    TIP_ADJUSTMENT_MODES,
    TipAdjustmentMode,
)

SignType = Literal["RSA2", "NONE"]
SIGN_TYPES: Final[tuple[SignType, ...]] = ("RSA2", "NONE")


@dataclass(frozen=True, slots=True, kw_only=True)
class CodePayConfig:
    """The ``[codepay]`` section (card terminals through the CodePay Cloud Open API)."""

    base_url: str
    app_id: str
    merchant_no: str
    store_no: str | None = None
    private_key_file: Path | None = None
    gateway_public_key_file: Path | None = None
    expires_s: int = 180
    sign_type: SignType = "RSA2"
    basic_auth_user: str | None = None
    basic_auth_password: str | None = field(default=None, repr=False)
    poll_interval_s: float = 2.0
    timeout_s: float = 10.0
    # Seed 003 describes "Get Open Batch" without naming its method: a switch (PROVIDERS.md).
    open_batch_method: str = "batch.open.query"
    # Seed 003 does not say whether tip_adjustment_amount is the new total tip or the change;
    # CodePay's public clients describe it as setting the tip: "total" (config/README.md).
    tip_adjustment_amount: TipAdjustmentMode = "total"
    #: A completion may capture at most this percentage of the authorised amount.
    completion_max_percent: int = 100
    #: Where CodePay's hosted checkout sends the customer once done (none: CodePay's page).
    return_url: str | None = None


def parse_section(t: Table) -> CodePayConfig:
    """Validate the ``[codepay]`` table; ConfigError names the first wrong key."""
    sign_type = t.choice("sign_type", SIGN_TYPES, default="RSA2")
    private_key = t.readable_file("private_key_file")
    gateway_key = t.readable_file("gateway_public_key_file")
    user, password = t.optional_text("basic_auth_user"), t.optional_text("basic_auth_password")
    if sign_type == "RSA2":
        for key, value in (("private_key_file", private_key),
                           ("gateway_public_key_file", gateway_key)):
            if value is None:
                raise t.fail(key, 'missing: sign_type "RSA2" needs both key files')
    else:
        for key, text in (("basic_auth_user", user), ("basic_auth_password", password)):
            if text is None:
                raise t.fail(key, 'missing: sign_type "NONE" uses HTTP Basic auth')
    config = CodePayConfig(
        base_url=url_of(t, "base_url"), app_id=t.text("app_id"),
        merchant_no=t.text("merchant_no"), store_no=t.optional_text("store_no"),
        private_key_file=private_key, gateway_public_key_file=gateway_key,
        expires_s=t.integer("expires_s", default=180), sign_type=sign_type,
        basic_auth_user=user, basic_auth_password=password,
        poll_interval_s=t.seconds("poll_interval_s", default=2.0),
        timeout_s=t.seconds("timeout_s", default=10.0),
        open_batch_method=_method_name(t, "open_batch_method", "batch.open.query"),
        tip_adjustment_amount=t.choice("tip_adjustment_amount", TIP_ADJUSTMENT_MODES,
                                       default="total"),
        completion_max_percent=t.integer("completion_max_percent", default=100, low=100,
                                         high=1000),
        return_url=_return_url(t))
    t.done()
    return config


def _method_name(t: Table, key: str, default: str) -> str:
    name = t.text(key, default=default)
    if not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*", name) or len(name) > 32:
        raise t.fail(key, f"must be a CodePay method name such as {default!r} "
                          "(dotted lower-case words, at most 32 characters)")
    return name


def _return_url(t: Table) -> str | None:
    url = url_of(t, "return_url", empty_ok=True)
    if len(url) > MAX_URL:
        raise t.fail("return_url", f"must be at most {MAX_URL} characters (CodePay's limit)")
    return url or None
