"""The daemon, the simulators and the CLI run on uvloop; so do the tests."""

from __future__ import annotations

import asyncio

import uvloop

from posbridge import aio


def test_run_uses_uvloop_and_returns_the_result() -> None:
    async def main() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert aio.run(main()).startswith("uvloop")


async def test_the_tests_run_on_the_daemons_loop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
