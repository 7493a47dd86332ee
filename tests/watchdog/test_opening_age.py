"""`hean run watchdog` ages the CURRENT position, never Bybit's first-ever `createdTime` (SPEC §7.1).

The simulator models live Bybit: `createdTime` is the first position ever on the
symbol and survives flat -> open; `openTime` is the current position's (or always 0
with `report_open_time=False`, when the watchdog must walk the executions).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hean.exchange.bybit.rest import BybitRestClient
from hean.sim.server import SimServer
from tests.risk.test_service import BusProbe
from tests.test_position_monitor import checks, control, flat, positions, venue, watchdog_env, watchdog_orders
from tests.utils import Proc, async_wait_for, hean, metric, scrape, scrape_when

DAY_MS = 86_400_000
SOURCE = {True: "open_time", False: "executions"}


async def trade(client: BybitRestClient, symbol: str, side: str, qty: str, link: str) -> dict[str, Any]:
    """A market order by the test's 'trader'; returns its first execution row."""
    resp = await client.place_order(symbol=symbol, side=side, order_type="Market", qty=Decimal(qty), price=None,
                                    order_link_id=link)
    assert resp.ok, resp
    order = await client.query_order(order_link_id=link)
    assert order is not None and order["orderStatus"] == "Filled", order
    window = (int(order["createdTime"]) - 1, int(order["updatedTime"]) + 1)
    rows = [e for e in await client.executions_since(*window, symbol=symbol) if e["orderLinkId"] == link]
    assert rows, order
    return min(rows, key=lambda e: (int(e["execTime"]), e["execId"]))  # one per book level swept


async def advance(sim: SimServer, client: BybitRestClient, ms: int) -> None:
    """Move the exchange clock (the test's client follows; a watchdog started later sees it)."""
    await control(sim, "POST", "clock/advance", {"ms": ms})
    await client.sync_time()


def logged(proc: Proc, prefix: str) -> list[dict[str, Any]]:
    """The process's log records whose message starts with `prefix` (messages carry details)."""
    return [r for r in proc.records() if str(r.get("message", "")).startswith(prefix)]


async def closes(probe: BusProbe, symbol: str) -> list[Any]:
    return [e.data for e in probe.of_type("POSITION_FORCE_CLOSED") if e.data["symbol"] == symbol]


@pytest.mark.parametrize("report_open_time", [True, False])
async def test_reopened_position_on_a_long_traded_symbol_is_closed_on_time_not_at_once(
        tmp_path: Path, report_open_time: bool) -> None:
    async with venue(report_open_time=report_open_time) as (sim, client):
        await trade(client, "BTCUSDT", "Buy", "0.01", "test-first-open")
        await trade(client, "BTCUSDT", "Sell", "0.01", "test-first-close")
        await advance(sim, client, 30 * DAY_MS)  # the symbol was first traded a month ago
        wd = hean(["run", "watchdog"], watchdog_env(tmp_path, sim, max_hold_seconds="3"))
        try:
            async with BusProbe(tmp_path, None, {"watchdog": ["watchdog."]}) as probe:
                await asyncio.to_thread(wd.wait_ready)
                opening = await trade(client, "BTCUSDT", "Buy", "0.01", "test-second-open")
                opened_ms = int(opening["execTime"])
                [row] = await client.positions(symbol="BTCUSDT")
                assert int(row["createdTime"]) <= opened_ms - 30 * DAY_MS, "the simulator keeps the first-ever"
                assert row["openTime"] == (opened_ms if report_open_time else 0)
                await async_wait_for(lambda: flat(sim, "BTCUSDT"), 30, "the re-opened position to be closed")
                await async_wait_for(lambda: closes(probe, "BTCUSDT"), 10, "POSITION_FORCE_CLOSED")
            [order] = await watchdog_orders(sim)
            assert int(order["createdTime"]) - opened_ms >= 3000, "closed before max_hold since it opened"
            [event] = await closes(probe, "BTCUSDT")
            assert event["order_link_id"] == order["orderLinkId"]
            assert event["age_source"] == SOURCE[report_open_time] and event["opened_ms"] == opened_ms
            assert event["opening_exec_id"] == (None if report_open_time else opening["execId"])
            assert 3 < event["age_s"] < 30 * 86_400
            assert event["created_time_ms"] == int(row["createdTime"])
            port = int(wd.find("service ready")["metrics_port"])
            samples = await asyncio.to_thread(scrape, port)
            assert metric(samples, "hean_watchdog_force_closes_total", outcome="placed") == 1
            assert metric(samples, "hean_watchdog_close_orders_final_total", result="filled") == 1
            lookups = metric(samples, "hean_watchdog_opening_lookups_total", kind="full")
            assert lookups == (0 if report_open_time else 1), "one walk per position, then the cache"
            stale = next(r for r in wd.records() if r.get("message", "").startswith("STALE POSITION"))
            assert stale["symbol"] == "BTCUSDT" and stale["age_source"] == SOURCE[report_open_time]
        finally:
            wd.kill()


@pytest.mark.parametrize("report_open_time", [True, False])
async def test_two_successive_positions_get_different_close_ids(tmp_path: Path, report_open_time: bool) -> None:
    """On Bybit the second close with a createdTime-derived id would be refused 110072 and never happen."""
    async with venue(report_open_time=report_open_time) as (sim, client):
        wd = hean(["run", "watchdog"], watchdog_env(tmp_path, sim, max_hold_seconds="1"))
        try:
            await asyncio.to_thread(wd.wait_ready)
            for n in (1, 2):
                await trade(client, "ETHUSDT", "Sell", "0.1", f"test-short-{n}")
                await async_wait_for(lambda: flat(sim, "ETHUSDT"), 30, f"short #{n} to be closed")
            orders = await watchdog_orders(sim)
            assert len(orders) == 2 and all(o["orderStatus"] == "Filled" and o["reduceOnly"] for o in orders)
            assert all(len(o["orderLinkId"]) <= 36 and o["orderLinkId"].startswith("hwd-") for o in orders)
            # Each position's own id, first attempt: not the first position's id with a higher attempt
            # (found only while Bybit still returns that old order by its link id).
            stems = {o["orderLinkId"].rsplit("-", 1)[0] for o in orders}
            assert len(stems) == 2 and all(o["orderLinkId"].endswith("-1") for o in orders), orders
            # Counted when the order's reply is handled, which may come after the position is flat.
            port = int(wd.find("service ready")["metrics_port"])
            samples = await scrape_when(port, "hean_watchdog_force_closes_total", 2, 10, outcome="placed")
            assert metric(samples, "hean_watchdog_force_closes_total", outcome="placed") == 2
            assert metric(samples, "hean_watchdog_force_closes_total", outcome="duplicate") == 0
        finally:
            wd.kill()


async def test_open_time_zero_walks_executions_across_windows_and_funding(tmp_path: Path) -> None:
    """openTime 0: BTC opened 8 days ago (added to since, funding in between) is stale; an ETH short
    opened 1 day ago on a symbol first traded 8 days ago is not."""
    async with venue(report_open_time=False) as (sim, client):
        await trade(client, "ETHUSDT", "Buy", "0.1", "test-eth-first")
        await trade(client, "ETHUSDT", "Sell", "0.1", "test-eth-first-close")
        btc_open = await trade(client, "BTCUSDT", "Buy", "0.01", "test-btc-open")
        await advance(sim, client, 2 * DAY_MS)
        await control(sim, "POST", "funding", {"symbol": "BTCUSDT", "rate": "0.0001"})  # execQty = size
        await advance(sim, client, 5 * DAY_MS)
        await trade(client, "ETHUSDT", "Sell", "0.1", "test-eth-short")
        await control(sim, "POST", "funding", {"symbol": "ETHUSDT", "rate": "0.0001"})
        await advance(sim, client, DAY_MS)
        await trade(client, "BTCUSDT", "Buy", "0.01", "test-btc-add")
        wd = hean(["run", "watchdog"], watchdog_env(tmp_path, sim, max_hold_seconds=str(4 * 86_400)))
        try:
            port = await asyncio.to_thread(wd.wait_ready)
            await async_wait_for(lambda: flat(sim, "BTCUSDT"), 30, "the 8-day-old BTC position to be closed")
            # The close may come at the first check, before a bus probe could join: read the log line.
            [event] = await async_wait_for(lambda: logged(wd, "Force close order placed: "), 10, "the close")
            # A negative claim needs an observation window: five more checks leave ETH alone.
            seen = await checks(port)
            await async_wait_for(lambda: _checks_at_least(port, seen + 5), 20, "five more checks")
            assert (await positions(sim))["ETHUSDT"] == Decimal("-0.1"), "the 1-day-old ETH short was closed"
            assert [o["symbol"] for o in await watchdog_orders(sim)] == ["BTCUSDT"]
            assert event["symbol"] == "BTCUSDT" and event["order_link_id"].startswith("hwd-BTCUSDT")
            assert event["age_source"] == "executions" and event["opening_exec_id"] == btc_open["execId"]
            assert event["opened_ms"] == int(btc_open["execTime"]) and event["age_s"] >= 8 * 86_400
            assert Decimal(event["size"]) == Decimal("0.02")
            warn = [r for r in wd.records() if r.get("symbol") == "ETHUSDT" and "age_s" in r]
            assert not warn or all(r["age_s"] < 2 * 86_400 for r in warn)
            samples = await asyncio.to_thread(scrape, port)
            assert metric(samples, "hean_watchdog_positions_by_age_source", source="executions") == 1
        finally:
            wd.kill()


async def _checks_at_least(port: int, n: float) -> bool:
    return await checks(port) >= n
