"""The merchant's notification endpoint for provider tests: a real HTTP listener on
127.0.0.1 that verifies with the adapter under test, records and answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from posbridge.errors import NotificationRejected
from posbridge.providers.base import Provider, ProviderReport


@dataclass
class Receiver:
    """Verifies each notification with ``provider``, records it, answers as the provider
    expects; ``refuse_first`` valid ones are answered "not recorded" (the provider resends)."""

    provider: Provider
    url: str = ""
    reports: list[ProviderReport] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    refuse_first: int = 0
    wait_s: float = 10.0  # how long wait_for waits unless told
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        try:
            report = self.provider.parse_notification(await request.read(), request.headers)
        except NotificationRejected as exc:
            self.rejected.append(exc.message)
            answer = self.provider.notification_answer(False, "rejected")
        else:
            if self.refuse_first > 0:
                self.refuse_first -= 1
                answer = self.provider.notification_answer(False, "not recorded")
            else:
                self.reports.append(report)
                answer = self.provider.notification_answer(True)
        self.arrived.set()
        return web.Response(status=answer.status, body=answer.body,
                            headers={"Content-Type": answer.content_type})

    async def wait_for(self, predicate: Callable[[list[ProviderReport]], bool],
                       timeout: float | None = None) -> None:
        """Until ``predicate(reports)`` holds (TimeoutError after ``timeout`` seconds, by
        default :attr:`wait_s`)."""
        async with asyncio.timeout(self.wait_s if timeout is None else timeout):
            while not predicate(self.reports):
                self.arrived.clear()
                await self.arrived.wait()


@asynccontextmanager
async def listening(provider: Provider, path: str, *, extra_paths: tuple[str, ...] = (),
                    wait_s: float = 10.0) -> AsyncIterator[Receiver]:
    """A :class:`Receiver` for ``provider`` listening at ``path`` (and ``extra_paths``) on a
    free port; the provider is told the URL of ``path``."""
    rec = Receiver(provider, wait_s=wait_s)
    app = web.Application()
    for route in (path, *extra_paths):
        app.router.add_post(route, rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}{path}"
    provider.set_notify_url(rec.url)
    try:
        yield rec
    finally:
        await runner.cleanup()
