"""UCanPay wallet payments: a dynamic QR the customer scans in the UCanPay app.

- :mod:`.signing`  stringA and the three signature schemes (pure)
- :mod:`.messages` request bodies, validation, replies, notifications (pure)
- :mod:`.deeplink` the QR's deeplink, built by encoding (pure)
- :mod:`.client`   :class:`~posbridge.providers.ucanpay.client.UCanPayProvider`, the aiohttp
  adapter
- :mod:`.config`   the ``[ucanpay]`` configuration section
- :mod:`.plugin`   the plug-in declaration (:data:`~posbridge.providers.ucanpay.plugin.PLUGIN`)
"""
