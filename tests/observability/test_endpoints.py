"""The seed's per-process endpoints: GET /system/bus/metrics and GET /healthz on a real aiohttp server."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from prometheus_client import CollectorRegistry

from hean.bus import BusStats
from hean.metrics import MetricsServer, ServiceGauges


async def _get(port: int, path: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
            return resp.status, await resp.json()


def test_bus_metrics_json_reports_the_registry_figures() -> None:
    async def main() -> None:
        reg = CollectorRegistry()
        stats = BusStats().register(reg)
        ServiceGauges("risk", reg)
        stats.queue_capacity = 200
        stats.queue_depth = lambda: 50
        stats.published["critical"] = 7
        stats.published["lossy"] = 3
        stats.dropped["lossy"] = 2
        stats.delayed["critical"] = 4
        stats.lost[("executor", "critical")] = 5
        stats.lost[("feed", "lossy")] = 1
        server = MetricsServer("127.0.0.1", 0, reg)
        port = await server.start()
        try:
            status, doc = await _get(port, "/system/bus/metrics")
        finally:
            await server.stop()
        assert status == 200
        assert doc["queue"] == {"size": 50, "capacity": 200, "utilization": 0.25}
        assert doc["published"] == {"total": 10, "by_class": {"lossy": 3, "critical": 7}}
        assert doc["dropped"]["total"] == 2 and doc["delayed"]["by_class"]["critical"] == 4
        assert doc["lost"] == {"total": 6, "by_class": {"critical": 5, "lossy": 1},
                               "by_source": {"executor": 5, "feed": 1}}
    asyncio.run(main())


def test_healthz_says_why_not_ready_starting_then_stopping() -> None:
    async def main() -> None:
        ready = {"v": False}
        server = MetricsServer("127.0.0.1", 0, CollectorRegistry(), lambda: ready["v"])
        port = await server.start()
        try:
            starting = await _get(port, "/healthz")
            ready["v"] = True
            ok = await _get(port, "/healthz")
            ready["v"] = False
            stopping = await _get(port, "/healthz")
        finally:
            await server.stop()
        assert starting == (503, {"ready": False, "live": True, "reason": "starting up",
                                  "loop_lag_s": starting[1]["loop_lag_s"]})
        assert ok[0] == 200 and ok[1]["ready"] and ok[1]["live"] and ok[1]["reason"] == ""
        assert stopping[0] == 503 and stopping[1]["reason"] == "stopping"
    asyncio.run(main())


def test_healthz_reports_a_stalled_event_loop_as_not_live() -> None:
    async def main() -> None:
        server = MetricsServer("127.0.0.1", 0, CollectorRegistry(), lambda: (True, ""))
        port = await server.start()
        try:
            await asyncio.sleep(0)          # let the probe start its first wait
            time.sleep(2.5)                 # the loop is blocked: the fault under test, not a wait
            status, doc = await _get(port, "/healthz")
        finally:
            await server.stop()
        assert status == 503 and doc["live"] is False and "event loop lagging" in doc["reason"]
    asyncio.run(main())
