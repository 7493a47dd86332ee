"""Per-process Prometheus endpoint and the health gauges every process exports.

/metrics is served by aiohttp on the process's own event loop, not by a
helper thread: if the loop hangs, the scrape fails, and Prometheus sees the
process as down instead of reading a cheerful "ready" from a thread that
kept running.

    GET /metrics             Prometheus text
    GET /healthz             {"ready", "live", "reason"}: 200 when both, else 503
    GET /system/bus/metrics  this process's bus figures as JSON (queue, published, dropped, ...)

The bus JSON is read from the registry's own `hean_bus_*` families, so it says
exactly what Prometheus would scrape at that moment, with no second set of books.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from hean import __version__

LAG_TICK_S = 0.25     # how often the loop-lag probe wakes up
LAG_LIMIT_S = 2.0     # a loop this late (or a probe this silent) is not live
ReadyCheck = Callable[[], "bool | tuple[bool, str]"]
_BUS_COUNTERS = ("published", "received", "dropped", "delayed", "send_failed",
                 "queue_dropped", "queue_delayed", "queue_failed")


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


def bus_figures(registry: CollectorRegistry) -> dict[str, Any]:
    """The `hean_bus_*` families of `registry` as one JSON-able dict (totals per class, gaps per source)."""
    fams = {f.name: f for f in registry.collect() if f.name.startswith("hean_bus_")}
    out: dict[str, Any] = {"present": bool(fams)}

    def gauge(name: str) -> float:
        fam = fams.get(name)
        return float(sum(s.value for s in fam.samples)) if fam else 0.0

    depth, capacity = gauge("hean_bus_queue_depth"), gauge("hean_bus_queue_capacity")
    out["queue"] = {"size": int(depth), "capacity": int(capacity),
                    "utilization": round(depth / capacity, 6) if capacity else 0.0}
    for key in _BUS_COUNTERS:
        fam = fams.get(f"hean_bus_{key}")
        by_class = {s.labels.get("class", ""): int(s.value) for s in fam.samples
                    if s.name.endswith("_total")} if fam else {}
        out[key] = {"total": sum(by_class.values()), "by_class": by_class}
    lost = fams.get("hean_bus_lost")
    by_source: dict[str, int] = {}
    lost_class: dict[str, int] = {}
    for s in lost.samples if lost else ():
        if s.name.endswith("_total"):
            by_source[s.labels["source"]] = by_source.get(s.labels["source"], 0) + int(s.value)
            lost_class[s.labels["class"]] = lost_class.get(s.labels["class"], 0) + int(s.value)
    out["lost"] = {"total": sum(by_source.values()), "by_class": lost_class, "by_source": by_source}
    subs = fams.get("hean_bus_subscribers")
    out["subscribers"] = {s.labels.get("class", ""): int(s.value) for s in subs.samples} if subs else {}
    return out


class MetricsServer:
    """Serves `GET /metrics`, `GET /healthz` and `GET /system/bus/metrics` on host:port.

    `is_ready` returns a bool, or (bool, reason). Liveness is the event loop's own:
    a probe task notes how late each of its wake-ups is; a loop that stalls (or a
    probe that stopped) makes /healthz say live=false with the lag as the reason.
    """

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 is_ready: ReadyCheck | None = None) -> None:
        self._host, self._port, self._registry, self._is_ready = host, port, registry, is_ready
        self._runner: web.AppRunner | None = None
        self._probe: asyncio.Task[None] | None = None
        self._was_ready = False
        self._last_tick = time.monotonic()
        self._last_lag = 0.0
        self.port = port

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/system/bus/metrics", self._bus)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        if server is not None and server.sockets:  # port 0: learn the one the kernel picked
            self.port = server.sockets[0].getsockname()[1]
        self._last_tick = time.monotonic()
        self._probe = asyncio.create_task(self._lag_probe(), name="metrics_loop_probe")
        return self.port

    async def _lag_probe(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(LAG_TICK_S)
            self._last_tick = time.monotonic()
            self._last_lag = max(0.0, self._last_tick - before - LAG_TICK_S)

    def health(self) -> dict[str, Any]:
        """{"ready", "live", "reason"}: reason is "" when both hold."""
        since_tick = time.monotonic() - self._last_tick
        lag = max(self._last_lag, since_tick - LAG_TICK_S)
        live = self._probe is not None and not self._probe.done() and lag < LAG_LIMIT_S
        answer = True if self._is_ready is None else self._is_ready()
        ready, why = answer if isinstance(answer, tuple) else (bool(answer), "")
        if ready:
            self._was_ready = True
        reasons = []
        if not live:
            reasons.append(f"event loop lagging {lag:.1f}s" if self._probe and not self._probe.done()
                           else "event loop probe not running")
        if not ready:
            reasons.append(why or ("stopping" if self._was_ready else "starting up"))
        return {"ready": ready and live, "live": live, "reason": "; ".join(reasons),
                "loop_lag_s": round(lag, 4)}

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _: web.Request) -> web.Response:
        doc = self.health()
        return web.json_response(doc, status=200 if doc["ready"] else 503)

    async def _bus(self, _: web.Request) -> web.Response:
        return web.json_response(bus_figures(self._registry))

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
            self._probe = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
