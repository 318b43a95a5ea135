"""Operations endpoints: ``/healthz`` (JSON, 200 or 503) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from posbridge.metrics import Metrics


class OpsHost(Protocol):
    """What the operations endpoints need of the daemon."""

    metrics: Metrics

    async def health(self) -> dict[str, Any]: ...

    def refresh_metrics(self) -> None: ...


def ops_routes(daemon: OpsHost) -> list[web.RouteDef]:
    async def healthz(request: web.Request) -> web.Response:
        report = await daemon.health()
        return web.json_response(report, status=200 if report["status"] == "ok" else 503)

    async def metrics(request: web.Request) -> web.Response:
        daemon.refresh_metrics()
        body, content_type = daemon.metrics.render()
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp

    return [web.get("/healthz", healthz), web.get("/metrics", metrics)]
