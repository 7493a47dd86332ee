"""Per-process Prometheus endpoint and the health gauges every process exports.

/metrics is served by aiohttp on the process's own event loop, not by a
helper thread: if the loop hangs, the scrape fails, and Prometheus sees the
process as down instead of reading a cheerful "ready" from a thread that
kept running.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from hean import __version__


class ServiceGauges:
    """`hean_ready`, `hean_service_info` and `hean_start_time_seconds` for one process."""

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.ready = Gauge("hean_ready", "1 once the process has finished start-up and is doing its job",
                           registry=registry)
        info = Gauge("hean_service_info", "Constant 1, labelled with the service name and version",
                     ["service", "version"], registry=registry)
        info.labels(service, __version__).set(1)
        start = Gauge("hean_start_time_seconds", "Unix time the process started", registry=registry)
        start.set(time.time())


class MetricsServer:
    """Serves `GET /metrics` (Prometheus text) and `GET /healthz` on host:port."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 is_ready: Callable[[], bool] | None = None) -> None:
        self._host, self._port, self._registry, self._is_ready = host, port, registry, is_ready
        self._runner: web.AppRunner | None = None
        self.port = port

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        if server is not None and server.sockets:  # port 0: learn the one the kernel picked
            self.port = server.sockets[0].getsockname()[1]
        return self.port

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _: web.Request) -> web.Response:
        ok = self._is_ready is None or self._is_ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
