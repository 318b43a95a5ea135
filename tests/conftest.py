"""Every async test runs on the event loop the daemon runs on (uvloop, see posbridge.aio)."""

from __future__ import annotations

import asyncio
import warnings


def _loop_policy() -> asyncio.AbstractEventLoopPolicy:
    import uvloop

    with warnings.catch_warnings():  # uvloop's policy class is deprecated on newer Pythons
        warnings.simplefilter("ignore", DeprecationWarning)
        return uvloop.EventLoopPolicy()


asyncio.set_event_loop_policy(_loop_policy())
