"""Operations endpoints: ``/healthz`` (JSON, 200 or 503) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from posbridge.daemon import Daemon


def ops_routes(daemon: Daemon) -> list[web.RouteDef]:
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
