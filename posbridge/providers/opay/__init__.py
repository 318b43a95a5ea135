"""Crypto payments through the OPay open platform: the customer pays on the platform's pay
page, opened from a QR on the lane's display.

- :mod:`.envelope`  the RSA envelope: encrypted ``data`` and ``sign`` (pure)
- :mod:`.messages`  parameters, answers, callbacks, amounts in coins (pure)
- :mod:`.paypage`   the pay page URL the QR encodes (pure)
- :mod:`.statement` the daily statement, where a lost order is looked for (pure)
- :mod:`.config`    the ``[opay]`` section
- :mod:`.client`    :class:`~posbridge.providers.opay.client.OPayProvider`, the aiohttp adapter
- :mod:`.plugin`    the plug-in declaration
"""
