"""Provider notification endpoints: verify, check against the journal, record, then answer.

A provider gets its "success" answer only once the result is durably in the journal; any
other outcome gets a failure answer so the provider sends it again. A forged or mismatching
notification is logged and counted, never acted on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web

from posbridge.engine import Engine
from posbridge.errors import JournalError, NotificationRejected
from posbridge.providers.base import NotificationAnswer, Provider, notify_path

log = structlog.get_logger(__name__)

MAX_NOTIFICATION_BYTES = 64 * 1024


def notify_url(public_url: str, provider: str) -> str:
    """The URL ``provider`` sends its notifications to, under ``public_url``."""
    return public_url.rstrip("/") + notify_path(provider)


def notify_routes(
    engine: Engine,
    providers: Mapping[str, Provider],
    *,
    on_rejected: Callable[[str, str], None] | None = None,
) -> list[web.RouteDef]:
    routes = []
    for name, provider in providers.items():
        path = notify_path(name)
        handler = _handler(engine, name, provider, on_rejected)
        routes.append(web.post(path, handler))
        routes.append(web.post(path + "/{kind}", handler))  # e.g. a refund notify URL
    return routes


def _handler(
    engine: Engine,
    name: str,
    provider: Provider,
    on_rejected: Callable[[str, str], None] | None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > MAX_NOTIFICATION_BYTES:
            return _answer(provider.notification_answer(False, "too large"))
        body = await request.content.read(MAX_NOTIFICATION_BYTES + 1)
        if len(body) > MAX_NOTIFICATION_BYTES:
            return _answer(provider.notification_answer(False, "too large"))
        try:
            report = provider.parse_notification(body, request.headers)
            await engine.on_notification(name, report)
        except NotificationRejected as exc:
            log.warning("notification_rejected", provider=name, reason=exc.message,
                        peer=request.remote)
            if on_rejected is not None:
                on_rejected(name, _reason(exc.message))
            return _answer(provider.notification_answer(False, "rejected"))
        except JournalError as exc:
            log.error("notification_not_recorded", provider=name, error=str(exc))
            return _answer(provider.notification_answer(False, "not recorded; retry"))
        log.info("notification_recorded", provider=name, order_no=report.order_no,
                 outcome=report.outcome.value)
        return _answer(provider.notification_answer(True))

    return handle


def _answer(answer: NotificationAnswer) -> web.Response:
    content_type = answer.content_type.partition(";")[0].strip()  # aiohttp adds the charset
    return web.Response(status=answer.status, body=answer.body, content_type=content_type)


def _reason(message: str) -> str:
    """A bounded label for metrics from a rejection message."""
    for word in ("signature", "amount", "no "):
        if word in message:
            return {"no ": "unknown_order"}.get(word, word)
    return "malformed"
