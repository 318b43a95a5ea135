"""The provider plug-ins this posbridge knows, by name.

Adding a provider: its package under ``posbridge/providers/<name>/`` exporting a
:class:`~posbridge.providers.base.ProviderPlugin` as ``PLUGIN``, one line below, its simulator
under ``posbridge/sandbox/`` and its configuration section in the docs. Nothing else in the
bridge names a provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from posbridge.providers.base import ProviderPlugin
from posbridge.providers.codepay.plugin import PLUGIN as CODEPAY
from posbridge.providers.opay.plugin import PLUGIN as OPAY
from posbridge.providers.ucanpay.plugin import PLUGIN as UCANPAY

PLUGINS: Final[Mapping[str, ProviderPlugin]] = {p.name: p for p in (CODEPAY, UCANPAY, OPAY)}
