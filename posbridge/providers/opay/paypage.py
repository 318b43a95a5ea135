"""The payment page URL the customer's QR encodes (pure).

The crypto payment API, "Payment Page": ``GET {pay_page_url}?appKey=…&openId=…&token=…&orderNum=…``
("After the final payment page is assembled as …"), with ``userId`` in place of ``openId`` for a
payer known by UID ("Either UID or OpenID is required"), and ``token`` only when the order has
one. The parameters keep the documents' order; every value is percent-encoded, so parsing the
URL gives back exactly what was put in.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from posbridge.providers.opay.messages import Payer

__all__ = ["pay_page_url"]


def pay_page_url(base: str, *, app_key: str, order_num: str, payer: Payer) -> str:
    """The pay page of platform order ``order_num`` for ``payer``."""
    id_name, id_value = payer.id_param()
    query = [("appKey", app_key), (id_name, id_value)]
    if payer.token:
        query.append(("token", payer.token))
    query.append(("orderNum", order_num))
    return f"{base}?{urlencode(query, quote_via=quote, safe='')}"
