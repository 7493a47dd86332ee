"""The simulator's Prometheus registry on a port of its own (`hean sim --metrics-port`).

HEAN's supervisor and dashboards scrape every service on its configured metrics port; the
simulator already serves `/metrics` beside its Bybit API, and this listener offers the same
registry where the configuration says the sim's metrics live.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start a `/metrics`-only HTTP server; returns its runner (cleanup to stop) and bound port."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    server = site._server  # aiohttp exposes bound sockets only here
    assert server is not None
    return runner, server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
