"""Hashed register tokens and the manager PIN: hashing, checking, and slowing down guessers.

Hash format
-----------
A secret is stored as scrypt (``hashlib.scrypt``) with a random 16-byte salt, in a
self-describing text form (Base64 without padding)::

    scrypt$ln=15,r=8,p=1$<salt>$<hash>               a PIN (or any secret without a tag)
    scrypt$ln=15,r=8,p=1,tag=1f2e3d4c$<salt>$<hash>  a register token, with its lookup tag

``ln=15, r=8, p=1`` (N = 32768, 32 MiB of memory) costs about 90 ms per evaluation on the
two-core machine this was tuned on (ln=14: 41 ms, ln=16: 185 ms). The parameters travel with
each hash, so the cost can be raised later without invalidating existing hashes.

Why a lookup tag
----------------
A store may configure hundreds of registers, and a presented token must cost at most one slow
hash (otherwise one wrong token would cost hundreds of scrypt runs: a denial of service). Salted
hashes cannot be searched, so each token hash carries a *tag*: the first 4 bytes of
SHA-256("posbridge token tag" NUL token). The tag picks the single candidate client; only that
client's scrypt hash is then evaluated. An unknown tag costs no slow hash at all.

What the tag reveals: 32 bits of an unsalted fast hash of the token. Register tokens are
generated secrets (``posbridge hash-secret --generate``: 32 random bytes), so with 2^256
possibilities a 32-bit tag leaves 2^224 candidates and does not help an attacker who reads the
configuration. That is *not* true of a short human-chosen secret, so the PIN hash carries no tag
(:func:`hash_secret` tags only secrets of at least :data:`MIN_TAGGED_LENGTH` characters unless
told otherwise, and ``manager.pin_hash`` refuses a tagged hash); PIN checks need only one slow
hash anyway, since there is one PIN.

Caching and throttling
----------------------
A successful token verification is cached in memory, keyed by an HMAC of the token under a
random per-process key (so the cache holds nothing that could be attacked offline); reconnects
then cost no slow hash. The cache holds at most one entry per configured client.

Wrong tokens and PINs are slowed down per peer address by :class:`FailureThrottle`: after the
n-th consecutive failure the peer waits ``base * 2**(n-1)`` seconds (capped, 0.25 s .. 4 s by
default) before its answer and before its next attempt is evaluated; the table is bounded
(least recently failing peers are forgotten first) and a success or ten quiet minutes clear a
peer. The PIN, being guessable, additionally locks out all PIN checks for a while after
repeated failures from any peer, and PIN checks run one at a time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

import structlog

from posbridge.errors import ConfigError


class Register(Protocol):
    """What :class:`TokenIndex` needs of a configured register (``R``)."""

    @property
    def name(self) -> str: ...

    @property
    def token_hash(self) -> str: ...


R = TypeVar("R", bound=Register)

log = structlog.get_logger(__name__)

SCHEME: Final = "scrypt"
DEFAULT_LOG2_N: Final = 15
DEFAULT_R: Final = 8
DEFAULT_P: Final = 1
SALT_BYTES: Final = 16
HASH_BYTES: Final = 32
TAG_BYTES: Final = 4
MIN_TAGGED_LENGTH: Final = 20
# scrypt needs 128 * r * N bytes; refuse configured parameters that would need more than this.
MAX_MEMORY: Final = 256 * 1024 * 1024
# How many slow hashes may run at once (each holds up to 32 MiB at the default cost).
MAX_PARALLEL_HASHES: Final = 4

_TAG_DOMAIN: Final = b"posbridge token tag\x00"
_B64: Final = r"[A-Za-z0-9+/]+"
_FORMAT: Final = re.compile(
    rf"scrypt\$ln=(?P<ln>[0-9]{{1,2}}),r=(?P<r>[0-9]{{1,2}}),p=(?P<p>[0-9]{{1,2}})"
    rf"(?:,tag=(?P<tag>[0-9a-f]{{{2 * TAG_BYTES}}}))?\$(?P<salt>{_B64})\$(?P<hash>{_B64})"
)

SlowVerify = Callable[[str, str], bool]
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class ParsedHash:
    """The parts of an encoded hash."""

    log2_n: int
    r: int
    p: int
    tag: str | None
    salt: bytes
    digest: bytes


def generate_token() -> str:
    """A new register token: 32 random bytes, URL-safe Base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def token_tag(secret: str) -> str:
    """The lookup tag of ``secret``: 4 bytes of a domain-separated SHA-256, as hex."""
    return hashlib.sha256(_TAG_DOMAIN + secret.encode()).digest()[:TAG_BYTES].hex()


def hash_secret(
    secret: str, *, tagged: bool | None = None, log2_n: int = DEFAULT_LOG2_N,
    r: int = DEFAULT_R, p: int = DEFAULT_P,
) -> str:
    """The encoded scrypt hash of ``secret`` with a fresh random salt.

    ``tagged`` None (the default) adds the lookup tag only to secrets of at least
    MIN_TAGGED_LENGTH characters, i.e. generated tokens, and never to PIN-sized secrets.
    Lower ``log2_n`` only for tests that need many hashes quickly.
    """
    if not secret:
        raise ValueError("an empty secret cannot be hashed")
    if tagged is None:
        tagged = len(secret) >= MIN_TAGGED_LENGTH
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(secret, salt, log2_n, r, p)
    params = f"ln={log2_n},r={r},p={p}" + (f",tag={token_tag(secret)}" if tagged else "")
    return f"{SCHEME}${params}${_b64(salt)}${_b64(digest)}"


def check_hash_format(encoded: str, *, key: str, tagged: bool | None = None) -> ParsedHash:
    """Parse ``encoded`` or raise ConfigError(key, ...) saying what is wrong (never the value).

    ``tagged`` True requires a lookup tag (register tokens), False forbids one (the PIN),
    None accepts either.
    """
    match = _FORMAT.fullmatch(encoded)
    if match is None:
        raise ConfigError(key, "not a hash from `posbridge hash-secret` "
                               "(expected scrypt$ln=..,r=..,p=..$<salt>$<hash>)")
    log2_n, r, p = int(match["ln"]), int(match["r"]), int(match["p"])
    if not (1 <= log2_n <= 24 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ConfigError(key, "scrypt parameters out of range (ln 1-24, r 1-32, p 1-16)")
    if 128 * r * (1 << log2_n) > MAX_MEMORY:
        raise ConfigError(key, "scrypt parameters need more than 256 MiB of memory")
    salt, digest = _unb64(match["salt"]), _unb64(match["hash"])
    if salt is None or digest is None or len(salt) < 4 or len(digest) < 16:
        raise ConfigError(key, "salt or hash is not valid Base64 of a sensible length")
    tag = match["tag"]
    if tagged is True and tag is None:
        raise ConfigError(key, "has no lookup tag; make register tokens with "
                               "`posbridge hash-secret --generate`")
    if tagged is False and tag is not None:
        raise ConfigError(key, "carries a token lookup tag, which would reveal a short PIN; "
                               "hash the PIN with `posbridge hash-secret --pin`")
    return ParsedHash(log2_n, r, p, tag, salt, digest)


def token_tag_of(encoded: str) -> str | None:
    """The lookup tag inside an encoded hash, or None (also for a malformed hash)."""
    match = _FORMAT.fullmatch(encoded)
    return match["tag"] if match else None


def verify_secret(secret: str, encoded: str) -> bool:
    """Whether ``secret`` matches ``encoded``; the final comparison is constant-time.

    This is the slow function (one scrypt evaluation). ``encoded`` must be well-formed
    (validated at load time by check_hash_format); a malformed one raises ConfigError.
    """
    parsed = check_hash_format(encoded, key="hash")
    digest = _scrypt(secret, parsed.salt, parsed.log2_n, parsed.r, parsed.p, len(parsed.digest))
    return hmac.compare_digest(digest, parsed.digest)


def _scrypt(secret: str, salt: bytes, log2_n: int, r: int, p: int,
            dklen: int = HASH_BYTES) -> bytes:
    n = 1 << log2_n
    # maxmem must exceed 128*r*N with some headroom, or OpenSSL refuses the default cost.
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p,
                          maxmem=2 * 128 * r * n + 1024 * 1024, dklen=dklen)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Throttling (pure: the clock is passed in, nothing sleeps here)


@dataclass(slots=True)
class _Failures:
    count: int
    next_allowed: float
    last: float


class FailureThrottle:
    """Per-peer exponential delays after consecutive failures, with bounded memory."""

    def __init__(self, *, base_s: float = 0.25, cap_s: float = 4.0,
                 forget_after_s: float = 600.0, max_peers: int = 4096,
                 clock: Clock = time.monotonic) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.forget_after_s = forget_after_s
        self.max_peers = max_peers
        self._clock = clock
        self._peers: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._peers)

    def _state(self, peer: str) -> _Failures | None:
        state = self._peers.get(peer)
        if state is not None and self._clock() - state.last > self.forget_after_s:
            del self._peers[peer]
            return None
        return state

    def wait_s(self, peer: str) -> float:
        """How long ``peer`` must wait before its next attempt is evaluated."""
        state = self._state(peer)
        return 0.0 if state is None else max(0.0, state.next_allowed - self._clock())

    def failed(self, peer: str) -> float:
        """Record a failure; return the delay now imposed on ``peer``."""
        now = self._clock()
        state = self._state(peer)
        count = 1 if state is None else state.count + 1
        delay = min(self.cap_s, self.base_s * 2.0 ** min(count - 1, 32))
        self._peers[peer] = _Failures(count, now + delay, now)
        self._peers.move_to_end(peer)
        while len(self._peers) > self.max_peers:
            self._peers.popitem(last=False)
        return delay

    def succeeded(self, peer: str) -> None:
        """Forget ``peer``'s failures."""
        self._peers.pop(peer, None)


# --------------------------------------------------------------------------------------------
# The asyncio layer


class TokenIndex(Generic[R]):
    """Authenticates register tokens against the configured clients.

    Each :meth:`authenticate` call costs at most one evaluation of ``slow_verify`` (run in a
    worker thread), whatever the number of clients; a cached success costs none. ``slow_verify``
    is the hook tests use to count evaluations.
    """

    def __init__(
        self, clients: Iterable[R], *, slow_verify: SlowVerify = verify_secret,
        throttle: FailureThrottle | None = None, sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._by_tag: dict[str, R] = {}
        for i, client in enumerate(clients):
            key = f"ecr_clients[{i}].token_hash"
            tag = check_hash_format(client.token_hash, key=key, tagged=True).tag
            assert tag is not None  # tagged=True guarantees it
            if tag in self._by_tag:
                raise ConfigError(key, "has the same lookup tag as another client's")
            self._by_tag[tag] = client
        self._slow_verify = slow_verify
        self._throttle = throttle if throttle is not None else FailureThrottle()
        self._sleep = sleep
        self._cache_key = os.urandom(32)
        self._cache: dict[bytes, R] = {}
        self._hashing = asyncio.Semaphore(MAX_PARALLEL_HASHES)

    async def authenticate(self, token: str, *, peer: str) -> R | None:
        """The client whose token this is, or None after the peer's failure delay."""
        wait = self._throttle.wait_s(peer)
        if wait > 0:
            await self._sleep(wait)
        client = await self._match(token)
        if client is not None:
            self._throttle.succeeded(peer)
            return client
        delay = self._throttle.failed(peer)
        log.info("token_refused", peer=peer, delay_s=delay)
        await self._sleep(delay)
        return None

    async def _match(self, token: str) -> R | None:
        if not token:
            return None
        cache_key = hmac.digest(self._cache_key, token.encode(), "sha256")
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        candidate = self._by_tag.get(token_tag(token))
        if candidate is None:
            return None
        async with self._hashing:
            ok = await asyncio.to_thread(self._slow_verify, token, candidate.token_hash)
        if not ok:
            return None
        # One entry per client: drop an older entry for the same client before adding.
        for key in [k for k, v in self._cache.items() if v is candidate]:
            del self._cache[key]
        self._cache[cache_key] = candidate
        return candidate


class PinChecker:
    """Checks the manager PIN, slowing down and then locking out guessers.

    Per peer, failures are delayed like tokens. After ``lockout_after`` consecutive wrong PINs
    from any peers, every PIN check fails without evaluation for ``lockout_s`` seconds: a PIN
    has few possibilities, so spreading guesses over many addresses must not help. Checks run
    one at a time, so parallel guesses cannot bypass the delays.
    """

    def __init__(
        self, pin_hash: str, *, slow_verify: SlowVerify = verify_secret,
        throttle: FailureThrottle | None = None, lockout_after: int = 10,
        lockout_s: float = 300.0, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep,
    ) -> None:
        check_hash_format(pin_hash, key="manager.pin_hash", tagged=False)
        self._pin_hash = pin_hash
        self._slow_verify = slow_verify
        self._throttle = throttle if throttle is not None else FailureThrottle(clock=clock)
        self._lockout_after = lockout_after
        self._lockout_s = lockout_s
        self._clock = clock
        self._sleep = sleep
        self._failures = 0
        self._locked_until = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PinChecker(failures={self._failures})"

    @property
    def locked(self) -> bool:
        """Whether PIN checks are currently locked out."""
        return self._clock() < self._locked_until

    async def check(self, pin: str, *, peer: str) -> bool:
        """Whether ``pin`` is the manager PIN (False while locked out)."""
        async with self._lock:
            if self.locked:
                log.warning("pin_locked_out", peer=peer)
                return False
            wait = self._throttle.wait_s(peer)
            if wait > 0:
                await self._sleep(wait)
            ok = bool(pin) and await asyncio.to_thread(self._slow_verify, pin, self._pin_hash)
            if ok:
                self._failures = 0
                self._throttle.succeeded(peer)
                return True
            self._failures += 1
            if self._failures >= self._lockout_after:
                self._failures = 0
                self._locked_until = self._clock() + self._lockout_s
                log.warning("pin_lockout_started", peer=peer, lockout_s=self._lockout_s)
            delay = self._throttle.failed(peer)
            log.info("pin_refused", peer=peer, delay_s=delay)
            await self._sleep(delay)
            return False


__all__ = [
    "FailureThrottle",
    "ParsedHash",
    "PinChecker",
    "TokenIndex",
    "check_hash_format",
    "generate_token",
    "hash_secret",
    "token_tag",
    "token_tag_of",
    "verify_secret",
]
