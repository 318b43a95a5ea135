"""The ``[opay]`` configuration section: the crypto payment platform (optional section).

Every reading of the platform's documents that they do not state outright is a key here with
its default (see :mod:`.envelope`, :mod:`.messages` and :mod:`.statement` for why), and
config/README.md lists them all:

- ``pay_page_url`` (``base_url`` + ``/platform/pay.html``): the page the QR opens;
- ``coins`` (required): the accepted coins and their decimals;
- ``expires_s`` (600): seconds a crypto QR stays payable;
- ``return_page`` (the bridge's public URL): ``returnPage``, which the documents require;
- ``order_scene_type`` (none): ``orderSceneType``, digits;
- ``amount_style`` (``plain``): ``orderAmount`` as ``12.5``, or ``fixed`` ``12.500000``;
- ``base64_alphabet`` (``urlsafe``): the alphabet written (both are always read);
- ``sign_input`` (``md5_hex``): sign the MD5 hex of the JSON text, or ``json``: the text;
- ``callback_answer`` (``text``): answer ``success``, or ``json``: ``{"data":"success"}``;
- ``detail_app_key`` (true): send ``appKey`` inside orderDetail's parameters;
- ``statement_page_size`` (2000): lines per merchantBillingDay page (at most 2000);
- ``lost_order_settle_s`` (600): wait after expiry before a lost order counts as absent;
- ``poll_interval_s`` (2), ``timeout_s`` (10): status query pace, one request's time limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from posbridge.config_table import Table, url_of
from posbridge.providers.opay.envelope import Alphabet, SignInput
from posbridge.providers.opay.messages import COIN_RE, AmountStyle, CallbackAnswer

PAY_PAGE_PATH: Final = "/platform/pay.html"
MAX_DECIMALS: Final = 18  # ETH's wei; no coin the platform lists has more



@dataclass(frozen=True, slots=True, kw_only=True)
class OPayConfig:
    """The ``[opay]`` section (crypto payments through the platform's pay page)."""

    base_url: str
    app_id: str
    private_key_file: Path
    platform_public_key_file: Path
    coins: Mapping[str, int]
    pay_page_url: str
    expires_s: int = 600
    return_page: str | None = None
    order_scene_type: str | None = None
    amount_style: AmountStyle = AmountStyle.PLAIN
    base64_alphabet: Alphabet = Alphabet.URLSAFE
    sign_input: SignInput = SignInput.MD5_HEX
    callback_answer: CallbackAnswer = CallbackAnswer.TEXT
    detail_app_key: bool = True
    statement_page_size: int = 2000
    lost_order_settle_s: int = 600
    poll_interval_s: float = 2.0
    timeout_s: float = 10.0


def parse_section(t: Table) -> OPayConfig:
    """Validate the ``[opay]`` table; ConfigError names the first wrong key."""
    base_url = url_of(t, "base_url")
    private_key = t.readable_file("private_key_file")
    platform_key = t.readable_file("platform_public_key_file")
    for key, value in (("private_key_file", private_key),
                       ("platform_public_key_file", platform_key)):
        if value is None:
            raise t.fail(key, "missing (required): the envelope needs both keys")
    assert private_key is not None and platform_key is not None
    coins = t.integer_map("coins", key_re=COIN_RE, low=0, high=MAX_DECIMALS)
    if coins is None:
        raise t.fail("coins", "missing (required): the accepted coins and their decimals, "
                              "e.g. { USDT = 6 }")
    scene = t.optional_text("order_scene_type")
    if scene is not None and not re.fullmatch(r"[0-9]{1,16}", scene):
        raise t.fail("order_scene_type", "must be digits (a numerical enumeration)")
    return_page = url_of(t, "return_page", empty_ok=True) or None
    amount_style = t.choice("amount_style", ("plain", "fixed"), default="plain")
    alphabet = t.choice("base64_alphabet", ("urlsafe", "standard"), default="urlsafe")
    sign_input = t.choice("sign_input", ("md5_hex", "json"), default="md5_hex")
    answer = t.choice("callback_answer", ("text", "json"), default="text")
    config = OPayConfig(
        base_url=base_url, app_id=t.text("app_id"), private_key_file=private_key,
        platform_public_key_file=platform_key, coins=coins,
        pay_page_url=url_of(t, "pay_page_url", default=base_url + PAY_PAGE_PATH),
        expires_s=t.integer("expires_s", default=600, low=10, high=86_400),
        return_page=return_page, order_scene_type=scene,
        amount_style=AmountStyle(amount_style), base64_alphabet=Alphabet(alphabet),
        sign_input=SignInput(sign_input), callback_answer=CallbackAnswer(answer),
        detail_app_key=t.boolean("detail_app_key", default=True),
        statement_page_size=t.integer("statement_page_size", default=2000, high=2000),
        lost_order_settle_s=t.integer("lost_order_settle_s", default=600, low=0,
                                      high=7 * 86_400),
        poll_interval_s=t.seconds("poll_interval_s", default=2.0),
        timeout_s=t.seconds("timeout_s", default=10.0))
    t.done()
    return config
