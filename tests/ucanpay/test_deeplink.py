"""The dynamic-QR deeplink: filled by encoding, read back exactly by urllib.parse."""

from __future__ import annotations

import random
from urllib.parse import parse_qs, urlsplit

import pytest

from posbridge.providers.ucanpay.deeplink import build_deeplink, check_template

SEED_TEMPLATE = ("https://ucanpaydev.page.link/?link=https://ucanpaydev.page.link/pay?ucpOrderNo%3D"
                 "${ucpOrderNo}%26amount%3D${amount}%26item%3D${item}&apn=ca.ucanpay.wapp")

AWKWARD = [
    "Coffee", "Latte Coffee", "a+b", "100%", "50%25", "#1", "a&b=c", "a/b?c", "咖啡 ☕",
    "${amount}", "${item}", "  spaced  ", "tab\there", "quote\"'", "emoji 🎉+%#&", "%%%",
    "plus+space +", "semi;colon", "back\\slash", "ä" * 30,
]


def read_back(link: str) -> dict[str, list[str]]:
    outer = parse_qs(urlsplit(link).query, keep_blank_values=True)
    assert outer["apn"] == ["ca.ucanpay.wapp"]
    (inner,) = outer["link"]
    assert inner.startswith("https://ucanpaydev.page.link/pay?")
    return parse_qs(urlsplit(inner).query, keep_blank_values=True)


@pytest.mark.parametrize("item", AWKWARD)
def test_round_trip_of_awkward_subjects(item: str) -> None:
    link = build_deeplink(SEED_TEMPLATE, ucp_order_no="377654578511872", amount_minor=850,
                          item=item)
    assert read_back(link) == {"ucpOrderNo": ["377654578511872"], "amount": ["850"],
                               "item": [item]}
    assert urlsplit(link).fragment == ""  # a '#' in the item never cuts the URL


def test_round_trip_of_random_subjects() -> None:
    pool = "aZ09 +%#&=/?;:@$,{}\"'<>\\|^~`[]é咖☕\t"
    rng = random.Random(20240501)
    for _ in range(300):
        item = "".join(rng.choice(pool) for _ in range(rng.randint(1, 30)))
        amount = rng.randint(0, 10**9)
        link = build_deeplink(SEED_TEMPLATE, ucp_order_no="12", amount_minor=amount, item=item)
        assert read_back(link) == {"ucpOrderNo": ["12"], "amount": [str(amount)],
                                   "item": [item]}


def test_amount_is_minor_units_as_a_decimal_integer() -> None:
    link = build_deeplink(SEED_TEMPLATE, ucp_order_no="1", amount_minor=100005, item="x")
    assert read_back(link)["amount"] == ["100005"]


def test_the_inner_link_is_fully_percent_encoded_in_the_outer_url() -> None:
    link = build_deeplink(SEED_TEMPLATE, ucp_order_no="1", amount_minor=1, item="a b")
    query = urlsplit(link).query
    assert query.startswith("link=https%3A%2F%2Fucanpaydev.page.link%2Fpay%3FucpOrderNo%3D1%26")
    assert query.endswith("&apn=ca.ucanpay.wapp")
    assert "%2520" in query  # the space, encoded in the inner query, then again in the outer


def test_seed_template_passes_the_check() -> None:
    check_template(SEED_TEMPLATE)


@pytest.mark.parametrize("missing", ["ucpOrderNo", "amount", "item"])
def test_check_names_the_missing_placeholder(missing: str) -> None:
    template = SEED_TEMPLATE.replace("${" + missing + "}", "fixed")
    with pytest.raises(ValueError, match=r"\$\{" + missing + r"\}"):
        check_template(template)


def test_check_refuses_unknown_placeholders_and_non_urls() -> None:
    with pytest.raises(ValueError, match=r"\$\{sign\}"):
        check_template(SEED_TEMPLATE + "&sig=${sign}")
    with pytest.raises(ValueError, match="http"):
        check_template("ucanpay://pay?o=${ucpOrderNo}&a=${amount}&i=${item}")


def test_a_flat_template_works_too() -> None:
    link = build_deeplink("https://pay.example/q?o=${ucpOrderNo}&a=${amount}&i=${item}",
                          ucp_order_no="9", amount_minor=5, item="x&y")
    assert parse_qs(urlsplit(link).query) == {"o": ["9"], "a": ["5"], "i": ["x&y"]}
