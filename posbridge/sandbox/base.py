"""What a provider's sandbox simulator offers ``serve --sandbox`` and the tests.

Each simulator module exports a :class:`SandboxSpec`; a provider plug-in names it in its
``sandbox`` field (``"posbridge.sandbox.<name>_sim:SANDBOX"``). The sandbox runtime starts every
simulator of the configured plug-ins, writes their configuration sections and, for the customer
display's "simulate scan & pay" button, asks the simulator of the transaction's provider to pay.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from posbridge.keyfiles import load_private_key


@dataclass(frozen=True)
class SandboxKeys:
    """PEM files in ``<dir>/keys``: ``<name>_private.pem`` and ``<name>_public.pem``."""

    dir: Path

    def private(self, name: str) -> Path:
        return self.dir / f"{name}_private.pem"

    def public(self, name: str) -> Path:
        return self.dir / f"{name}_public.pem"

    def private_key(self, name: str) -> RSAPrivateKey:
        return load_private_key(self.private(name).read_bytes())

    def public_key(self, name: str) -> RSAPublicKey:
        return self.private_key(name).public_key()


@dataclass(frozen=True, slots=True, kw_only=True)
class SimPacing:
    """How fast the simulated world moves (tests make it quick)."""

    approve_delay_s: float = 1.0  # a customer / card holder takes this long to pay
    notify_interval_s: float = 1.0  # between repeated notifications


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgePacing:
    """The bridge's own pacing written into each provider section."""

    poll_interval_s: float = 2.0
    expires_s: int = 180  # card orders
    qr_timeout_s: int = 120  # orders the customer pays by QR


class Simulator(Protocol):
    """A running simulated provider on 127.0.0.1."""

    @property
    def url(self) -> str: ...

    async def stop(self) -> None: ...

    async def scan_and_pay(self, provider_ref: str) -> object:
        """The customer scans the shown QR and pays (the display's sandbox button)."""

    def stats(self, order_no: str) -> dict[str, object]:
        """What the simulator saw of ``order_no`` (JSON-able), for tests in other processes."""

    def totals(self) -> dict[str, int]:
        """Counts since the start (requests, orders, ...), for long runs."""

    def recent_orders(self) -> list[dict[str, Any]]:
        """The orders it remembers, oldest first: at least ``order_no``, ``status`` and
        ``creates`` (for a soak's final-state check)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxSpec:
    """One provider's simulator, as the sandbox runtime uses it."""

    provider: str  # the plug-in it stands in for
    key_names: tuple[str, ...]  # key pairs the sandbox generates for it (merchant's and gateway's)
    start: Callable[[SandboxKeys, SimPacing], Awaitable[Simulator]]
    #: its configuration section (a TOML-shaped mapping) for a running simulator
    section: Callable[[Any, SandboxKeys, BridgePacing], Mapping[str, Any]]
    #: what the simulator does by amount, for the start banner and the README:
    #: (the amount rule, e.g. ".05" or "x.x5", what happens)
    behaviours: tuple[tuple[str, str], ...] = ()
    title: str = ""  # the banner's heading for its behaviours
    #: the simulated card terminals it offers, (serial number, lane name): each lane gets a
    #: web display and a file printer of its name
    terminals: tuple[tuple[str, str], ...] = ()
