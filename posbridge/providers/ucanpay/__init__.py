"""UCanPay wallet payments: a dynamic QR the customer scans in the UCanPay app.

- :mod:`.signing`  stringA and the three signature schemes (pure)
- :mod:`.messages` request bodies, validation, replies, notifications (pure)
- :mod:`.deeplink` the QR's deeplink, built by encoding (pure)
- :mod:`.client`   :class:`UCanPayProvider`, the aiohttp adapter
"""

from __future__ import annotations

from posbridge.providers.ucanpay.client import UCanPayProvider
from posbridge.providers.ucanpay.deeplink import build_deeplink, check_template
from posbridge.providers.ucanpay.messages import validate_qr_order
from posbridge.providers.ucanpay.signing import SignScheme

__all__ = ["SignScheme", "UCanPayProvider", "build_deeplink", "check_template",
           "validate_qr_order"]
