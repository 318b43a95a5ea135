"""CodePay Cloud Open API (card terminals running "CodePay Register").

- :mod:`.signing`  the canonical string and RSA2 signatures (pure);
- :mod:`.messages` request bodies, response / notification parsing, status mapping (pure);
- :mod:`.client`   :class:`~posbridge.providers.codepay.client.CodePayProvider`, the aiohttp layer.
"""
