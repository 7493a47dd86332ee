"""Seed fix #5: a real `hean run watchdog` against the in-test simulator closes stale positions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from hean.exchange.bybit.rest import BybitRestClient
from hean.sim.server import SimServer
from hean.sim.settings import SimSettings
from tests.risk.test_service import BusProbe
from tests.utils import async_wait_for, hean, hean_env, metric, scrape

QTY = {"BTCUSDT": Decimal("0.01"), "ETHUSDT": Decimal("0.1")}


@asynccontextmanager
async def venue(**sim_settings: Any) -> AsyncIterator[tuple[SimServer, BybitRestClient]]:
    """A simulator and the test's own client (the 'trader' that opens positions)."""
    sim = SimServer(SimSettings(**({"rate_limit_scale": 100.0, "tick_interval_s": 0.05} | sim_settings)))
    await sim.start()
    client = BybitRestClient(rest_url=sim.rest_url, api_key="hean-sim-key", api_secret="hean-sim-secret",
                             dry_run=True, is_live=False, timeout_s=5.0, registry=CollectorRegistry())
    await client.start()
    try:
        yield sim, client
    finally:
        await client.close()
        await sim.stop()


async def open_position(client: BybitRestClient, symbol: str, side: str, tag: str) -> None:
    resp = await client.place_order(symbol=symbol, side=side, order_type="Market", qty=QTY[symbol], price=None,
                                    order_link_id=f"test-{tag}")
    assert resp.ok, resp


async def control(sim: SimServer, method: str, route: str, body: dict[str, Any] | None = None) -> Any:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"{sim.control_url}/{route}", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def positions(sim: SimServer) -> dict[str, Decimal]:
    return {s: Decimal(v) for s, v in (await control(sim, "GET", "state"))["positions"].items()}


async def watchdog_orders(sim: SimServer) -> list[dict[str, Any]]:
    return [o for o in (await control(sim, "GET", "orders"))["list"] if o["orderLinkId"].startswith("hwd-")]


def watchdog_env(tmp_path: Path, sim: SimServer, **settings: str) -> dict[str, str]:
    base = {"bybit__rest_url": sim.rest_url, "bybit__ws_public_url": sim.ws_public_url,
            "bybit__ws_private_url": sim.ws_private_url, "position_monitor_check_interval": "0.2",
            "max_hold_seconds": "2", "watchdog__error_backoff_s": "0.2"}
    return hean_env(tmp_path, **(base | settings))


async def checks(port: int) -> float:
    return await asyncio.to_thread(lambda: metric(scrape(port), "hean_watchdog_checks_total"))


async def _ge(port: int, n: float) -> bool:
    return await checks(port) >= n


async def probe_joined(port: int) -> None:
    """Wait until a bus probe holds a subscription on the watchdog (PUB/SUB drops what comes before)."""
    async def joined() -> bool:
        samples = await asyncio.to_thread(scrape, port)
        return metric(samples, "hean_bus_subscribers", **{"class": "critical"}) >= 1
    await async_wait_for(joined, 20, "the bus probe to subscribe to the watchdog")


async def flat(sim: SimServer, symbol: str) -> bool:
    return (await positions(sim)).get(symbol, Decimal(0)) == 0


async def test_stale_long_and_short_are_closed_reduce_only(tmp_path: Path) -> None:
    async with venue() as (sim, client):
        wd = hean(["run", "watchdog"], watchdog_env(tmp_path, sim))
        try:
            async with BusProbe(tmp_path, None, {"watchdog": ["watchdog."]}) as probe:
                await probe_joined(await asyncio.to_thread(wd.wait_ready))
                await open_position(client, "BTCUSDT", "Buy", "long")
                await open_position(client, "ETHUSDT", "Sell", "short")
                assert await positions(sim) == {"BTCUSDT": QTY["BTCUSDT"], "ETHUSDT": -QTY["ETHUSDT"]}
                for sym in ("BTCUSDT", "ETHUSDT"):
                    await async_wait_for(lambda s=sym: flat(sim, s), 20, f"{sym} to be closed")
                await async_wait_for(lambda: len(probe.of_type("POSITION_FORCE_CLOSED")) >= 2, 20,
                                     "two POSITION_FORCE_CLOSED events")
            orders = {o["symbol"]: o for o in await watchdog_orders(sim)}
            assert len(await watchdog_orders(sim)) == 2, "exactly one close per position"
            assert orders["BTCUSDT"]["side"] == "Sell" and orders["ETHUSDT"]["side"] == "Buy"
            for sym, o in orders.items():
                assert o["reduceOnly"] is True and o["orderType"] == "Market" and o["orderStatus"] == "Filled"
                assert Decimal(o["qty"]) == QTY[sym]
            events = {e.data["symbol"]: e.data for e in probe.of_type("POSITION_FORCE_CLOSED")}
            assert events["BTCUSDT"]["side"] == "long" and events["ETHUSDT"]["side"] == "short"
            for sym, data in events.items():
                assert data["reason"] == "max_hold_seconds_exceeded"
                assert data["order_link_id"] == orders[sym]["orderLinkId"]
                assert data["order_id"] == orders[sym]["orderId"]
                assert Decimal(data["size"]) == QTY[sym] and data["age_s"] > 2
                assert data["position"]["symbol"] == sym
            port = int(wd.find("service ready")["metrics_port"])
            samples = await asyncio.to_thread(scrape, port)
            assert metric(samples, "hean_watchdog_force_closes_total", outcome="placed") == 2
        finally:
            wd.kill()


@pytest.mark.parametrize("report_open_time", [True, False])
async def test_restart_does_not_restart_the_clock(tmp_path: Path, report_open_time: bool) -> None:
    """Age comes from the exchange (openTime, or the opening fill when openTime is 0): after a restart
    the close happens at once, not max_hold later."""
    async with venue(report_open_time=report_open_time) as (sim, client):
        await open_position(client, "BTCUSDT", "Buy", "long")
        env = watchdog_env(tmp_path, sim, max_hold_seconds="600")
        wd = hean(["run", "watchdog"], env)
        try:
            port = await asyncio.to_thread(wd.wait_ready)
            await async_wait_for(lambda: _ge(port, 3), 20, "three checks of the first watchdog")
            samples = await asyncio.to_thread(scrape, port)
            assert metric(samples, "hean_watchdog_positions_tracked") == 1
            assert not await flat(sim, "BTCUSDT")
            wd.kill()
            # While it is down the position ages past max_hold (server clock, as Bybit's openTime).
            await control(sim, "POST", "clock/advance", {"ms": 601_000})
            wd = hean(["run", "watchdog"], env)
            await asyncio.to_thread(wd.wait_ready)
            # Far sooner than the 600 s a clock restarted by the new process would need.
            await async_wait_for(lambda: flat(sim, "BTCUSDT"), 20, "the restarted watchdog to close at once")
            [order] = await watchdog_orders(sim)
            assert order["reduceOnly"] is True and order["side"] == "Sell"
        finally:
            wd.kill()


async def test_failing_close_publishes_error_and_is_retried(tmp_path: Path) -> None:
    async with venue() as (sim, client):
        wd = hean(["run", "watchdog"], watchdog_env(tmp_path, sim))
        try:
            async with BusProbe(tmp_path, None, {"watchdog": ["watchdog."]}) as probe:
                await probe_joined(await asyncio.to_thread(wd.wait_ready))
                await open_position(client, "ETHUSDT", "Sell", "short")
                await control(sim, "POST", "faults/http-error",
                              {"when": "before", "status": 503, "count": 1, "path": "/v5/order/create"})
                closed = await probe.wait_event(lambda e: e.type == "POSITION_FORCE_CLOSED", "the retried close")
                errors = probe.of_type("ERROR")
                assert errors and probe.events.index(errors[0]) < probe.events.index(closed)
                assert "Force close failed" in errors[0].data["error"]
                assert errors[0].data["position"]["symbol"] == "ETHUSDT"
                assert closed.data["order_link_id"].endswith("-2"), "the retry is a new attempt"
            await async_wait_for(lambda: flat(sim, "ETHUSDT"), 20, "ETHUSDT to be closed")
            [order] = await watchdog_orders(sim)  # the failed attempt never reached the book
            assert order["orderLinkId"] == closed.data["order_link_id"]
            assert order["reduceOnly"] is True and order["side"] == "Buy"
            samples = await asyncio.to_thread(scrape, int(wd.find("service ready")["metrics_port"]))
            assert metric(samples, "hean_watchdog_errors_total") >= 1
            assert metric(samples, "hean_watchdog_force_closes_total", outcome="ambiguous") == 1
        finally:
            wd.kill()


async def test_fresh_position_is_left_alone_but_warned_about(tmp_path: Path) -> None:
    async with venue() as (sim, client):
        await open_position(client, "BTCUSDT", "Buy", "long")
        wd = hean(["run", "watchdog"], watchdog_env(tmp_path, sim, max_hold_seconds="120"))
        try:
            port = await asyncio.to_thread(wd.wait_ready)
            await async_wait_for(lambda: _ge(port, 10), 20, "ten watchdog checks")
            assert await watchdog_orders(sim) == []
            assert await positions(sim) == {"BTCUSDT": QTY["BTCUSDT"], "ETHUSDT": Decimal(0)}
            warn = next(r for r in wd.records() if "will force-close in" in r.get("message", ""))
            assert warn["level"] == "INFO" and warn["message"].startswith("Position BTCUSDT_long age=")
            assert 0 < warn["remaining_s"] <= 120
            samples = await asyncio.to_thread(scrape, port)
            assert metric(samples, "hean_watchdog_positions_tracked") == 1
            assert metric(samples, "hean_watchdog_oldest_position_age_seconds") > 0
        finally:
            wd.kill()
