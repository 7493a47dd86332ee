"""`hean bench reconciler`: catch-up speed and feed latency, in one process against the simulator.

1. Reconnect -> all N missed fills published, N = 100, 1,000 and 10,000: the private WS is dropped, N fills
   happen while it is down, and the clock runs from the moment the WS is connected again until the
   N-th fill is received by a bus subscriber (REST catch-up, paging, ledger, publish). Baseline, same
   run: a bare client paging the same N executions from the exchange (no ledger, no bus); the ratio
   is what recording and publishing exactly once costs on top of fetching.
2. Feed: WS frame in -> tick published, p50/p99, from each tick's `recv_ts_ns` to its envelope `ts_ns`.
3. Ledger size: a periodic catch-up (whole, against the simulator) and its position check alone,
   and one fill (record + publish + mark, then the doubt check's exec_qty_for_order), at 10^3
   and 10^6 ledger rows (built by direct SQLite inserts). Baseline, same run: the position check
   as it was before running totals (load and sum every fill of the symbols). The ratios
   10^6 / 10^3 are the figure: history must not make the reconciler slower.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from hean.bus import BusStats, Event, Subscriber
from hean.config import (
    BybitSettings,
    HeanSettings,
    MetricsPorts,
    ReconcilerSettings,
    WsSettings,
)
from hean.exchange.bybit import BybitRestClient
from hean.feed.service import FeedService
from hean.lifecycle import Service
from hean.reconciler.diff import sum_fills
from hean.reconciler.ledger import Ledger
from hean.reconciler.service import ReconcilerService
from hean.sim.server import SimServer
from hean.sim.settings import SimSettings
from hean.sim.validate import OrderRequest

FILL_COUNTS = (100, 1000, 10_000)
FEED_TICKS = 2000
LEDGER_SIZES = (1_000, 1_000_000)
CATCHUPS, CHECKS, FILLS = 15, 50, 200


def _settings(tmp: Path, sim: SimServer) -> HeanSettings:
    return HeanSettings(
        data_dir=tmp / "data", runtime_dir=tmp / "run", log_level="WARNING", symbols=("BTCUSDT", "ETHUSDT"),
        metrics_ports=MetricsPorts(**{k: 0 for k in MetricsPorts.model_fields}),
        bybit=BybitSettings(rest_url=sim.rest_url, ws_public_url=sim.ws_public_url, ws_private_url=sim.ws_private_url),
        ws=WsSettings(backoff_initial_s=1.0, jitter=0), reconciler=ReconcilerSettings(interval_s=3600))


async def _until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark timed out waiting for {what}")
        await asyncio.sleep(0.002)


def _fills_timeout_s(n: int) -> float:
    """Catch-up pages 100 fills a request and records each: allow a fixed start plus a share per fill."""
    return 60 + n * 0.03


def _fills(sim: SimServer, n: int, tag: str) -> None:
    inst = sim.exchange.instruments["BTCUSDT"]
    for i in range(n):
        sim.exchange.place_order(OrderRequest(
            symbol="BTCUSDT", side="Buy" if i % 2 == 0 else "Sell", order_type="Market", qty=inst.min_qty,
            price=None, time_in_force="IOC", order_link_id=f"h-{tag}-{i}", reduce_only=False, close_on_trigger=False))


class _Listener:
    def __init__(self, settings: HeanSettings, source: str, prefix: str) -> None:
        self.events: list[tuple[float, Event]] = []
        self.sub = Subscriber(settings.bus, settings.runtime_dir, BusStats()).connect(source).on(prefix, self._got)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.sub.run(self.stop))

    async def _got(self, ev: Event) -> None:
        self.events.append((time.monotonic(), ev))

    async def close(self) -> None:
        self.stop.set()
        await self.task
        self.sub.close()


async def _serve(service: Service) -> asyncio.Task[int]:
    task = asyncio.create_task(service.serve())
    await _until(lambda: service.is_ready, 30, f"{service.name} ready")
    return task


async def _reconnect_bench(sim: SimServer, settings: HeanSettings) -> dict[str, float]:
    service = ReconcilerService(settings, CollectorRegistry())
    listener = _Listener(settings, "reconciler", "fill.")
    task = await _serve(service)
    results: dict[str, float] = {}
    try:
        await _until(lambda: not service.reconciling and service.ws is not None and service.ws.connected.is_set(),
                     30, "start-up catch-up")
        for n in FILL_COUNTS:
            seen, conns = len(listener.events), service.connections
            await sim.drop_ws("private")
            _fills(sim, n, f"b{n}")
            await _until(lambda: service.connections > conns, 30, "private WS reconnect")
            assert service.last_connected_at is not None
            await _until(lambda: len(listener.events) >= seen + n, _fills_timeout_s(n), f"{n} fills published")
            results[f"reconnect_to_{n}_fills_published_s"] = round(listener.events[-1][0] - service.last_connected_at, 4)
            bare = await _bare_fetch(sim, n)
            results[f"bare_fetch_{n}_executions_s"] = round(bare, 4)
            results[f"reconnect_vs_bare_fetch_{n}"] = round(results[f"reconnect_to_{n}_fills_published_s"] / bare, 2)
    finally:
        service.should_exit.set()
        await task
        await listener.close()
    return results


async def _bare_fetch(sim: SimServer, n: int) -> float:
    """Seconds for a bare client to page the newest n executions (the baseline for the catch-up)."""
    client = BybitRestClient(rest_url=sim.rest_url, api_key="hean-sim-key", api_secret="hean-sim-secret",
                             dry_run=True, is_live=False, registry=CollectorRegistry())
    await client.start()
    try:
        newest = sorted(e.exec_time_ms for e in sim.exchange.executions)[-n]
        started = time.monotonic()
        rows = await client.executions_since(newest)
        elapsed = time.monotonic() - started
    finally:
        await client.close()
    assert len(rows) >= n, f"baseline fetched {len(rows)} of {n}"
    return elapsed


async def _feed_bench(sim: SimServer, settings: HeanSettings) -> dict[str, float]:
    service = FeedService(settings, CollectorRegistry())
    listener = _Listener(settings, "feed", "tick.")
    task = await _serve(service)
    try:
        await _until(lambda: len(listener.events) >= FEED_TICKS, 60, f"{FEED_TICKS} ticks")
    finally:
        service.should_exit.set()
        await task
        await listener.close()
    lat = sorted((ev.ts_ns - ev.data["recv_ts_ns"]) / 1000 for _, ev in listener.events)
    return {"feed_ticks": len(lat), "feed_frame_to_publish_p50_us": round(lat[len(lat) // 2], 1),
            "feed_frame_to_publish_p99_us": round(lat[int(len(lat) * 0.99) - 1], 1)}


def _build_ledger(path: Path, rows: int, now_ms: int) -> None:
    """`rows` old BTCUSDT fills, netting to flat, inserted straight into SQLite (fast, untimed)."""
    Ledger(path).close()                      # the schema, with its indexes
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    start = now_ms - 30 * 24 * 3600 * 1000

    def gen():  # type: ignore[no-untyped-def]
        for i in range(rows):
            side = "Buy" if i % 2 == 0 else "Sell"
            raw = orjson.dumps({"execId": f"x{i}", "execType": "Trade", "symbol": "BTCUSDT", "side": side,
                                "execQty": "0.001", "execPrice": "50000", "execTime": str(start + i),
                                "orderId": f"o{i}", "orderLinkId": f"h-bench-{i}"})
            # Marked long ago (10 ms apart), so a start-up replays only the last few seconds of them.
            yield (f"x{i}", "Trade", "BTCUSDT", side, "0.001", start + i, f"o{i}", f"h-bench-{i}", "rest", raw,
                   1 + i * 10_000_000, 0)
    db.executemany("INSERT INTO executions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", gen())
    db.execute("COMMIT")
    db.close()


def _median_s(samples: list[float]) -> float:
    return statistics.median(samples)


async def _ledger_bench(sim: SimServer, tmp: Path) -> dict[str, float]:
    results: dict[str, float] = {}
    for rows in LEDGER_SIZES:
        # Ten minutes on: the executions of the benchmarks before are outside every catch-up window,
        # so each catch-up reads the same (nothing new) from the exchange at both ledger sizes.
        sim.clock_offset_ms += 10 * 60 * 1000
        settings = _settings(tmp / f"ledger{rows}", sim)
        path = settings.data_dir / "reconciler.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        _build_ledger(path, rows, sim.clock())
        service = ReconcilerService(settings, CollectorRegistry())
        task = await _serve(service)           # opening re-sums the ledger once (rows added behind its back)
        try:
            await _until(lambda: not service.reconciling, 120, "start-up catch-up")
            assert service.ledger is not None and service.client is not None
            catchups = []
            for _ in range(CATCHUPS):
                started = time.perf_counter()
                assert await service.catchup("periodic", gap=False)
                catchups.append(time.perf_counter() - started)
            by_symbol, ts_ms = await service.read_positions()
            checks = []
            for _ in range(CHECKS):
                started = time.perf_counter()
                await service.check_positions(by_symbol, ts_ms)
                checks.append(time.perf_counter() - started)
            symbols = set(settings.symbols)
            started = time.perf_counter()
            fills = service.ledger.fills(symbols)
            for symbol in symbols:
                sum_fills(symbol, None, fills)
            full_scan = time.perf_counter() - started
            fill_costs = []
            for i in range(FILLS):
                row = {"execId": f"bench-{rows}-{i}", "execType": "Trade", "symbol": "BTCUSDT", "side": "Buy",
                       "execQty": "0.001", "execPrice": "50000", "execTime": str(sim.clock()),
                       "orderId": f"bench-o-{i}", "orderLinkId": f"h-bench-new-{i}"}
                started = time.perf_counter()
                await service.record([row], "ws")
                service.ledger.exec_qty_for_order(row["orderId"])
                fill_costs.append(time.perf_counter() - started)
        finally:
            service.should_exit.set()
            await task
        tag = f"{rows:.0e}".replace("+0", "")
        results[f"ledger_{tag}_catchup_ms"] = round(_median_s(catchups) * 1000, 3)
        results[f"ledger_{tag}_position_check_ms"] = round(_median_s(checks) * 1000, 3)
        results[f"ledger_{tag}_fill_us"] = round(_median_s(fill_costs) * 1e6, 1)
        results[f"ledger_{tag}_old_full_scan_check_ms"] = round(full_scan * 1000, 3)
    small, big = (f"{n:.0e}".replace("+0", "") for n in LEDGER_SIZES)
    for what in ("catchup_ms", "position_check_ms", "fill_us", "old_full_scan_check_ms"):
        results[f"ledger_{big}_vs_{small}_{what.rsplit('_', 1)[0]}"] = round(
            results[f"ledger_{big}_{what}"] / max(results[f"ledger_{small}_{what}"], 1e-9), 2)
    return results


async def run(json_out: bool) -> dict[str, Any]:
    """Run the benchmarks (about a minute; building the 10^6-row ledger is most of it); print the figures."""
    sim = SimServer(SimSettings(rate_limit_scale=1000.0, tick_interval_s=0.005, volatility=0.001,
                                initial_balance=Decimal("10000000"), rest_delay_ms=0, ws_delay_ms=0))
    await sim.start()
    try:
        with tempfile.TemporaryDirectory(prefix="hean-bench-") as tmp:
            settings = _settings(Path(tmp), sim)
            results: dict[str, Any] = {}
            results.update(await _reconnect_bench(sim, settings))
            results.update(await _feed_bench(sim, settings))
            results.update(await _ledger_bench(sim, Path(tmp)))
    finally:
        await sim.stop()
    for key, value in results.items():
        print(f"{key:48s} {value}")
    return results


if __name__ == "__main__":
    asyncio.run(run(json_out=False))
