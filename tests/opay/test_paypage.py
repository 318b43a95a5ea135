"""The pay page URL: the documents' parameters, percent-encoded, parsed back exactly."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from posbridge.providers.opay.messages import Payer
from posbridge.providers.opay.paypage import pay_page_url

BASE = "https://service.example.com/platform/pay.html"


def test_the_documents_example_form() -> None:
    url = pay_page_url(BASE, app_key="xxx", order_num="1000000009",
                       payer=Payer(open_id="2ae04ed9", token="tok"))
    assert url == f"{BASE}?appKey=xxx&openId=2ae04ed9&token=tok&orderNum=1000000009"


def test_user_id_without_token() -> None:
    url = pay_page_url(BASE, app_key="k", order_num="7", payer=Payer(user_id="2023203"))
    assert url == f"{BASE}?appKey=k&userId=2023203&orderNum=7"


def test_values_are_encoded_and_parse_back() -> None:
    payer = Payer(open_id="o-1.2_3", token="a+b/c=d&e?f")
    url = pay_page_url(BASE, app_key="lyo trade_5157", order_num="N&1", payer=payer)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == BASE
    assert parse_qsl(parts.query, strict_parsing=True) == [
        ("appKey", "lyo trade_5157"), ("openId", "o-1.2_3"), ("token", "a+b/c=d&e?f"),
        ("orderNum", "N&1")]
    assert " " not in url and url.count("?") == 1
