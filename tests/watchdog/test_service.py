"""`hean run watchdog`: the disabled setting, and escalation when closing keeps failing."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

from tests.risk.test_service import BusProbe
from tests.test_position_monitor import (
    QTY,
    _ge,
    control,
    flat,
    open_position,
    positions,
    probe_joined,
    venue,
    watchdog_env,
    watchdog_orders,
)
from tests.utils import async_wait_for, hean, metric, scrape


async def test_disabled_watchdog_stays_up_and_closes_nothing(tmp_path: Path) -> None:
    async with venue() as (sim, client):
        await open_position(client, "BTCUSDT", "Buy", "long")
        await control(sim, "POST", "clock/advance", {"ms": 60_000})  # far past max_hold_seconds=2
        wd = hean(["run", "watchdog"], watchdog_env(tmp_path, sim, position_monitor_enabled="false"))
        try:
            port = await asyncio.to_thread(wd.wait_ready)
            assert wd.find("Position monitor disabled in config") is not None
            # Readiness and metrics work; the monitor never checks (compare: the enabled runs count checks).
            ready = await asyncio.to_thread(lambda: metric(scrape(port), "hean_ready"))
            assert ready == 1
            # A negative claim needs an observation window: ten check intervals, polled, never closed.
            deadline = time.monotonic() + 10 * 0.2
            while time.monotonic() < deadline:
                assert (await positions(sim))["BTCUSDT"] == QTY["BTCUSDT"], "disabled watchdog closed a position"
                await asyncio.sleep(0.05)
            assert await watchdog_orders(sim) == []
            assert await asyncio.to_thread(lambda: metric(scrape(port), "hean_watchdog_checks_total")) == 0
            assert wd.stop() == 0
        finally:
            wd.kill()


async def test_escalation_cancels_orders_then_alerts_and_asks_for_quarantine(tmp_path: Path) -> None:
    async with venue() as (sim, client):
        env = watchdog_env(tmp_path, sim, watchdog__close_attempts_before_escalation="2")
        wd = hean(["run", "watchdog"], env)
        try:
            async with BusProbe(tmp_path, None, {"watchdog": ["watchdog.", "risk.request"]}) as probe:
                port = await asyncio.to_thread(wd.wait_ready)
                await probe_joined(port)
                await open_position(client, "BTCUSDT", "Buy", "long")
                # A resting order on the symbol: escalation step 1 must cancel it.
                resting = await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit",
                                                   qty=QTY["BTCUSDT"], price=Decimal("1000"),
                                                   order_link_id="test-resting")
                assert resting.ok, resting
                await control(sim, "POST", "faults/http-error",
                              {"when": "before", "status": 503, "count": 50, "path": "/v5/order/create"})
                alert = await probe.wait_event(lambda e: e.type == "WATCHDOG_ALERT", "WATCHDOG_ALERT")
                request = await probe.wait_event(lambda e: e.type == "RISK_REQUEST", "RISK_REQUEST")
                assert alert.data["kind"] == "close_failed" and alert.data["symbol"] == "BTCUSDT"
                assert alert.data["failed_attempts"] == 3
                assert request.data["state"] == "QUARANTINE"
                assert request.data["reason"] == "WATCHDOG_CLOSE_FAILED"
                assert len(probe.of_type("ERROR")) >= 3
                assert not probe.of_type("POSITION_FORCE_CLOSED")
            [order] = (await control(sim, "GET", "orders?orderLinkId=test-resting"))["list"]
            assert order["orderStatus"] == "Cancelled", "the symbol's open orders are cancelled before retrying"
            assert wd.find("force close keeps failing; cancelled the symbol's open orders before retrying")
            samples = await asyncio.to_thread(scrape, port)
            assert metric(samples, "hean_watchdog_alerts_total") == 1
            # Once the venue accepts orders again the watchdog still closes the position (and alerts once).
            await control(sim, "POST", "faults/reset", {})
            await async_wait_for(lambda: flat(sim, "BTCUSDT"), 20, "the close to go through after the faults")
            await async_wait_for(lambda: _ge(port, 1), 5, "metrics")
            assert metric(await asyncio.to_thread(scrape, port), "hean_watchdog_alerts_total") == 1
        finally:
            wd.kill()
