"""Secret hashing, TokenIndex (one slow hash per authenticate) and PinChecker throttling."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from pathlib import Path

import pytest

from posbridge.config import ClientConfig, Role
from posbridge.errors import ConfigError
from posbridge.secrets import (
    FailureThrottle,
    PinChecker,
    TokenIndex,
    check_hash_format,
    generate_token,
    hash_secret,
    token_tag,
    verify_secret,
)

from .conftest import CHEAP, PIN, TOKEN_1, cheap_hash

VECTORS = Path(__file__).parent / "vectors" / "scrypt_vectors.txt"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


# -- hashing -----------------------------------------------------------------------------------


def test_hash_then_verify() -> None:
    encoded = cheap_hash(TOKEN_1)
    assert verify_secret(TOKEN_1, encoded)
    assert not verify_secret(TOKEN_1 + "x", encoded)
    assert not verify_secret("", encoded)


def test_default_cost_is_the_documented_one() -> None:
    encoded = hash_secret(PIN)
    assert encoded.startswith("scrypt$ln=15,r=8,p=1$")
    assert verify_secret(PIN, encoded)


def test_salt_is_random() -> None:
    assert cheap_hash(TOKEN_1) != cheap_hash(TOKEN_1)


def test_tokens_are_tagged_and_pins_are_not() -> None:
    token = generate_token()
    assert len(token) == 43
    assert f",tag={token_tag(token)}$" in cheap_hash(token)
    assert ",tag=" not in cheap_hash(PIN)
    assert ",tag=" not in cheap_hash(token, tagged=False)
    assert check_hash_format(cheap_hash(token), key="k", tagged=True).tag == token_tag(token)


@pytest.mark.parametrize("line", VECTORS.read_text().splitlines())
def test_known_answers_from_openssl(line: str) -> None:
    secret_hex, salt_hex, ln, r, p, key_hex = line.split()
    secret = bytes.fromhex(secret_hex).decode()
    encoded = (f"scrypt$ln={ln},r={r},p={p}$"
               f"{b64(bytes.fromhex(salt_hex))}${b64(bytes.fromhex(key_hex))}")
    assert verify_secret(secret, encoded)
    assert not verify_secret(secret + "!", encoded)


@pytest.mark.parametrize("encoded", [
    "",
    "plain-token",
    "bcrypt$ln=4,r=8,p=1$AAAAAAAAAAA$" + "A" * 43,
    "scrypt$ln=4,r=8$AAAAAAAAAAA$" + "A" * 43,
    "scrypt$ln=0,r=8,p=1$AAAAAAAAAAA$" + "A" * 43,
    "scrypt$ln=22,r=32,p=1$AAAAAAAAAAA$" + "A" * 43,     # > 256 MiB
    "scrypt$ln=4,r=8,p=1$A$" + "A" * 43,                 # salt not Base64 of >= 4 bytes
    "scrypt$ln=4,r=8,p=1$AAAAAAAAAAA$AAAA",              # hash too short
    "scrypt$ln=4,r=8,p=1,tag=XYZ$AAAAAAAAAAA$" + "A" * 43,
])
def test_malformed_hashes_raise_config_error_naming_the_key(encoded: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_hash_format(encoded, key="ecr_clients[0].token_hash")
    assert info.value.key == "ecr_clients[0].token_hash"
    if len(encoded) > 8:
        assert encoded not in str(info.value)  # the value itself is never echoed


# -- TokenIndex --------------------------------------------------------------------------------


class CountingVerify:
    """The slow-hash hook: counts evaluations and the threads they ran on."""

    def __init__(self) -> None:
        self.calls = 0
        self.threads: set[int] = set()

    def __call__(self, secret: str, encoded: str) -> bool:
        self.calls += 1
        self.threads.add(threading.get_ident())
        return verify_secret(secret, encoded)


class FakeTime:
    """A clock that the recorded sleeps advance."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def clients(n: int) -> tuple[list[ClientConfig], list[str]]:
    tokens = [f"register-{i:04d}-{'k' * 30}" for i in range(n)]
    return ([ClientConfig(name=f"lane-{i}", role=Role.CASHIER, token_hash=cheap_hash(t))
             for i, t in enumerate(tokens)], tokens)


async def test_300_clients_cost_at_most_one_slow_hash_per_authenticate() -> None:
    configured, tokens = clients(300)
    verify = CountingVerify()
    index = TokenIndex(configured, slow_verify=verify)
    for i in (0, 150, 299):
        before = verify.calls
        client = await index.authenticate(tokens[i], peer="10.0.0.1")
        assert client is configured[i]
        assert verify.calls - before == 1
    # Reconnects are served from the cache: no slow hash at all.
    before = verify.calls
    assert await index.authenticate(tokens[150], peer="10.0.0.2") is configured[150]
    assert verify.calls == before
    # Slow hashes ran off the event loop's thread.
    assert threading.get_ident() not in verify.threads


async def test_wrong_token_costs_at_most_one_slow_hash() -> None:
    configured, _tokens = clients(300)
    fake = FakeTime()
    verify = CountingVerify()
    # A wrong token whose tag matches a client: exactly one evaluation, then refusal.
    wrong = "wrong-token-" + "w" * 30
    forged = hash_secret("another-secret-" + "z" * 30, log2_n=CHEAP).replace(
        token_tag("another-secret-" + "z" * 30), token_tag(wrong))
    configured.append(ClientConfig(name="victim", role=Role.MANAGER, token_hash=forged))
    index = TokenIndex(configured, slow_verify=verify,
                       throttle=FailureThrottle(clock=fake.clock), sleep=fake.sleep)
    assert await index.authenticate(wrong, peer="10.0.0.9") is None
    assert verify.calls == 1
    # An unknown tag costs no slow hash.
    assert await index.authenticate("nobody-" + "n" * 40, peer="10.0.0.8") is None
    assert await index.authenticate("", peer="10.0.0.7") is None
    assert verify.calls == 1


async def test_repeated_wrong_tokens_are_slowed_down_per_peer() -> None:
    configured, tokens = clients(3)
    fake = FakeTime()
    index = TokenIndex(configured, throttle=FailureThrottle(clock=fake.clock), sleep=fake.sleep)
    for _ in range(7):
        assert await index.authenticate("bad-" + "b" * 40, peer="10.0.0.66") is None
    assert fake.sleeps == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # doubling, capped
    # Another address is not affected.
    fake.sleeps.clear()
    assert await index.authenticate("bad-" + "b" * 40, peer="10.0.0.67") is None
    assert fake.sleeps == [0.25]
    # A success clears the peer; its next failure starts again at the base delay.
    fake.sleeps.clear()
    assert await index.authenticate(tokens[0], peer="10.0.0.66") is configured[0]
    assert await index.authenticate("bad-" + "b" * 40, peer="10.0.0.66") is None
    assert fake.sleeps == [0.25]


async def test_a_throttled_peer_waits_before_its_next_attempt_is_evaluated() -> None:
    configured, tokens = clients(1)
    fake = FakeTime()
    throttle = FailureThrottle(clock=fake.clock)
    index = TokenIndex(configured, throttle=throttle, sleep=fake.sleep)
    throttle.failed("10.0.0.5")
    throttle.failed("10.0.0.5")  # next attempt not before now + 0.5 s
    assert await index.authenticate(tokens[0], peer="10.0.0.5") is configured[0]
    assert fake.sleeps == [0.5]


async def test_slow_down_is_real_time_with_the_default_sleep() -> None:
    configured, _tokens = clients(1)
    index = TokenIndex(configured, throttle=FailureThrottle(base_s=0.02, cap_s=0.04))
    start = time.monotonic()
    for _ in range(3):
        assert await index.authenticate("bad-" + "b" * 40, peer="127.0.0.1") is None
    # The loop's timers may fire up to a millisecond early against time.monotonic() (libuv
    # keeps whole milliseconds of a time cached at the start of its iteration): allow 1 ms a
    # sleep. Without the sleeps this takes well under 10 ms.
    assert time.monotonic() - start >= 0.02 + 0.04 + 0.04 - 3 * 0.001


def test_throttle_memory_is_bounded_and_forgets_quiet_peers() -> None:
    fake = FakeTime()
    throttle = FailureThrottle(max_peers=10, forget_after_s=60, clock=fake.clock)
    for i in range(50):
        throttle.failed(f"10.0.1.{i}")
    assert len(throttle) == 10
    assert throttle.wait_s("10.0.1.0") == 0.0    # evicted (least recent)
    assert throttle.wait_s("10.0.1.49") == 0.25
    fake.now += 61
    assert throttle.failed("10.0.1.49") == 0.25  # forgotten after a quiet minute


def test_token_index_refuses_untagged_and_colliding_hashes() -> None:
    untagged = ClientConfig(name="a", role=Role.CASHIER, token_hash=cheap_hash(PIN))
    with pytest.raises(ConfigError) as info:
        TokenIndex([untagged])
    assert info.value.key == "ecr_clients[0].token_hash"
    same = [ClientConfig(name=n, role=Role.CASHIER, token_hash=cheap_hash(TOKEN_1))
            for n in ("a", "b")]
    with pytest.raises(ConfigError) as info:
        TokenIndex(same)
    assert info.value.key == "ecr_clients[1].token_hash"


async def test_concurrent_authentications_all_succeed() -> None:
    configured, tokens = clients(20)
    verify = CountingVerify()
    index = TokenIndex(configured, slow_verify=verify)
    found = await asyncio.gather(*(index.authenticate(t, peer="10.0.0.1") for t in tokens))
    assert list(found) == configured
    assert verify.calls == 20


# -- PinChecker --------------------------------------------------------------------------------


async def test_pin_checker_accepts_the_pin_and_slows_down_wrong_ones() -> None:
    fake = FakeTime()
    checker = PinChecker(cheap_hash(PIN), clock=fake.clock, sleep=fake.sleep)
    assert await checker.check(PIN, peer="10.0.0.1")
    assert not await checker.check("000000", peer="10.0.0.1")
    assert not await checker.check("000001", peer="10.0.0.1")
    assert not await checker.check("", peer="10.0.0.1")
    assert fake.sleeps == [0.25, 0.5, 1.0]
    assert "424242" not in repr(checker) and "scrypt" not in repr(checker)


async def test_pin_checker_locks_out_after_repeated_failures_from_any_peer() -> None:
    fake = FakeTime()
    verify = CountingVerify()
    checker = PinChecker(cheap_hash(PIN), slow_verify=verify, lockout_after=3, lockout_s=60,
                         clock=fake.clock, sleep=fake.sleep)
    for peer in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):  # spreading guesses over addresses
        assert not await checker.check("111111", peer=peer)
    assert checker.locked
    calls = verify.calls
    assert not await checker.check(PIN, peer="10.0.0.4")  # even the right PIN, while locked
    assert verify.calls == calls                           # and without a slow hash
    fake.now += 61
    assert not checker.locked
    assert await checker.check(PIN, peer="10.0.0.4")


def test_pin_checker_refuses_a_tagged_hash() -> None:
    with pytest.raises(ConfigError) as info:
        PinChecker(cheap_hash(TOKEN_1))
    assert info.value.key == "manager.pin_hash"
