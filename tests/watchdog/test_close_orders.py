"""`hean run watchdog` closes what live Bybit lets a market order do (SPEC §7.2).

A close larger than `lotSizeFilter.maxMktOrderQty` is split; on a thin book a
close fills partly (`Cancelled` with `cumExecQty` > 0) and the rest follows until
the position is flat.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from tests.test_position_monitor import control, flat, venue, watchdog_env, watchdog_orders
from tests.utils import async_wait_for, hean, metric, scrape, scrape_when
from tests.watchdog.test_opening_age import logged, trade


async def test_close_larger_than_max_market_qty_is_split(tmp_path: Path) -> None:
    async with venue(initial_balance=Decimal("10000000")) as (sim, client):
        max_mkt = client.instruments["BTCUSDT"].max_mkt_qty
        assert max_mkt == Decimal("119")
        for n, qty in enumerate(("119", "119", "12")):  # the trader too must split its market orders
            await trade(client, "BTCUSDT", "Buy", qty, f"test-open-{n}")
        wd = hean(["run", "watchdog"], watchdog_env(tmp_path, sim, max_hold_seconds="1"))
        try:
            port = await asyncio.to_thread(wd.wait_ready)
            await async_wait_for(lambda: flat(sim, "BTCUSDT"), 30, "the 250 BTC long to be closed")
            orders = await watchdog_orders(sim)
            assert sorted(Decimal(o["qty"]) for o in orders) == [Decimal(12), max_mkt, max_mkt], orders
            assert len({o["orderLinkId"] for o in orders}) == 3
            assert all(o["reduceOnly"] and o["orderStatus"] == "Filled" and o["side"] == "Sell" for o in orders)
            # counted when each order's reply is handled, which may come after the position is flat
            samples = await scrape_when(port, "hean_watchdog_force_closes_total", 3, 10, outcome="placed")
            assert metric(samples, "hean_watchdog_force_closes_total", outcome="placed") == 3
            assert metric(samples, "hean_watchdog_force_closes_total", outcome="failed") == 0
        finally:
            wd.kill()


async def test_thin_book_partial_close_goes_on_until_flat(tmp_path: Path) -> None:
    async with venue(slippage_bps=Decimal("0.1")) as (sim, client):
        await trade(client, "BTCUSDT", "Buy", "0.1", "test-open")
        # 0.005 BTC per level and an IOC limit 0.1 bps (5 ticks) away: ~0.03 BTC per market order.
        await control(sim, "POST", "book", {"symbol": "BTCUSDT", "depth": "0.005"})
        wd = hean(["run", "watchdog"], watchdog_env(tmp_path, sim, max_hold_seconds="1"))
        try:
            port = await asyncio.to_thread(wd.wait_ready)
            await async_wait_for(lambda: flat(sim, "BTCUSDT"), 30, "the long to be closed on a thin book")
            orders = await watchdog_orders(sim)
            partial = [o for o in orders if o["orderStatus"] == "Cancelled" and Decimal(o["cumExecQty"]) > 0]
            assert partial, orders
            assert sum(Decimal(o["cumExecQty"]) for o in orders) == Decimal("0.1")
            assert len({o["orderLinkId"] for o in orders}) == len(orders)
            assert all(o["reduceOnly"] and o["side"] == "Sell" for o in orders)
            # A partial close is progress: never a failure that escalates (cancel orders, alert, QUARANTINE).
            assert wd.find("force close keeps failing; cancelled the symbol's open orders before retrying") is None
            samples = await asyncio.to_thread(scrape, port)
            assert metric(samples, "hean_watchdog_alerts_total") == 0
            assert metric(samples, "hean_watchdog_close_orders_final_total", result="partial") >= 1
        finally:
            wd.kill()


async def test_reduce_only_refused_because_already_flat_is_not_a_failure(tmp_path: Path) -> None:
    """110017 on a reduce-only close: re-read the position; flat -> done, no error, no escalation."""
    async with venue() as (sim, client):
        await trade(client, "BTCUSDT", "Buy", "0.01", "test-open")
        # The watchdog's first position read is answered from the state on arrival but delivered late:
        # the trader closes the position meanwhile, so the watchdog closes a position that is gone.
        await control(sim, "POST", "faults/delay-reply", {"path": "/v5/position/list", "ms": 2000, "count": 1})
        wd = hean(["run", "watchdog"], watchdog_env(tmp_path, sim, max_hold_seconds="1"))
        try:
            port = await asyncio.to_thread(wd.wait_ready)
            await async_wait_for(lambda: not sim.faults.delay_replies, 20, "the held position read")
            await trade(client, "BTCUSDT", "Sell", "0.01", "test-close")
            await async_wait_for(lambda: [r for r in wd.records() if r.get("ret_code") == 110017], 20,
                                 "the watchdog's close to be refused 110017")
            await async_wait_for(lambda: _ge_checks(port, 3), 20, "three checks")
            assert not logged(wd, "Failed to force close position"), "110017 when flat is not a failure"
            samples = await asyncio.to_thread(scrape, port)
            assert metric(samples, "hean_watchdog_errors_total") == 0
            [refused] = logged(wd, "reduce-only close refused (110017): re-reading the position")
            assert refused["symbol"] == "BTCUSDT" and refused["order_link_id"].startswith("hwd-BTCUSDT")
            assert metric(samples, "hean_watchdog_force_closes_total", outcome="already_smaller") == 1
            assert await flat(sim, "BTCUSDT")
        finally:
            wd.kill()


async def _ge_checks(port: int, n: float) -> bool:
    samples = await asyncio.to_thread(scrape, port)
    return metric(samples, "hean_watchdog_checks_total") >= n
