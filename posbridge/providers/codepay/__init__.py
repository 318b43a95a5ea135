"""CodePay Cloud Open API (card terminals running "CodePay Register").

- :mod:`.signing`  the canonical string and RSA2 signatures (pure);
- :mod:`.messages` request bodies, response / notification parsing, status mapping (pure);
- :mod:`.client`   :class:`~posbridge.providers.codepay.client.CodePayProvider`, the aiohttp layer;
- :mod:`.config`   the ``[codepay]`` configuration section;
- :mod:`.plugin`   the plug-in declaration (:data:`~posbridge.providers.codepay.plugin.PLUGIN`).
"""
