"""A real `hean run executor`: QUARANTINE and HARD_STOP leave no opening order resting.

Checked through the exchange's own API (`order/realtime` of every configured symbol), with
a failing cancel-all and a late-landing order, while reduce-only orders are left alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hean.exchange.bybit.rest import BybitRestClient
from hean.ids import order_link_id
from hean.sim.server import SimServer
from tests.executor.harness import Peers, executor_settings, intent, sim_control
from tests.utils import async_wait_for, hean, hean_env, metric, scrape

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _env(tmp_path: Path, sim: SimServer) -> dict[str, str]:
    return hean_env(tmp_path, bybit__rest_url=sim.rest_url, bybit__ws_public_url=sim.ws_public_url,
                    bybit__ws_private_url=sim.ws_private_url, executor__risk_stale_s="2",
                    executor__resolve_interval_s="0.2")


@pytest.fixture
async def exchange(sim: SimServer) -> AsyncIterator[BybitRestClient]:
    """The test's own client of the same account: to read open orders and to land orders behind HEAN's back."""
    client = BybitRestClient(rest_url=sim.rest_url, api_key="hean-sim-key", api_secret="hean-sim-secret",
                             dry_run=True, is_live=False, registry=CollectorRegistry())
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def _resting(exchange: BybitRestClient) -> dict[str, list[dict]]:
    return {s: await exchange.open_orders(symbol=s) for s in SYMBOLS}


def _opening(resting: dict[str, list[dict]]) -> list[str]:
    return [o["orderLinkId"] for orders in resting.values() for o in orders if not o.get("reduceOnly")]


@pytest.mark.parametrize("state", ["QUARANTINE", "HARD_STOP"])
async def test_reduce_only_state_cancels_every_resting_opening_order_and_keeps_reduce_only(
        tmp_path, sim, exchange, state):
    peers = Peers(executor_settings(tmp_path, sim))
    proc = hean(["run", "executor"], _env(tmp_path, sim))
    try:
        port = await asyncio.to_thread(proc.wait_ready)
        await async_wait_for(lambda: metric(scrape(port), "hean_executor_risk_state") == 0, 20,
                             "the executor to hear risk state NORMAL")
        for symbol, price in (("BTCUSDT", "50000"), ("ETHUSDT", "3000")):
            await sim_control(sim, "price", {"symbol": symbol, "price": price, "hold": True})
        assert (await peers.submit(intent(qty="0.01"))).type == "ORDER_PLACED"        # a long to reduce
        opening = [intent(order_type="Limit", price=p, qty="0.002") for p in ("48000", "47000", "46000")]
        opening += [intent(symbol="ETHUSDT", order_type="Limit", price=p, qty="0.05") for p in ("2800", "2700")]
        reduce_only = intent(side="Sell", order_type="Limit", price="53000", qty="0.005", reduce_only=True)
        for data in (*opening, reduce_only):
            assert (await peers.submit(data)).type == "ORDER_PLACED"
        assert len(_opening(await _resting(exchange))) == 5
        # The first cancel-all calls fail (5xx: it may or may not have happened); the sweep must verify.
        await sim_control(sim, "faults/http-error", {"when": "before", "status": 503, "count": 2,
                                                     "path": "/v5/order/cancel-all"})
        peers.risk = state

        async def none_opening_left() -> bool:
            return _opening(await _resting(exchange)) == []
        await async_wait_for(none_opening_left, 20, f"no opening order resting under {state}", interval=0.1)
        left = await _resting(exchange)
        assert [o["orderLinkId"] for o in left["BTCUSDT"]] == [order_link_id(reduce_only["intent_id"])]
        await async_wait_for(lambda: {d["intent_id"] for d in opening} <= {
            e.data["intent_id"] for e in peers.events if e.type == "ORDER_CANCELLED"}, 10,
            "ORDER_CANCELLED for each of HEAN's cancelled orders")
        cancelled = {e.data["intent_id"] for e in peers.events if e.type == "ORDER_CANCELLED"}
        assert reduce_only["intent_id"] not in cancelled
        assert metric(scrape(port), "hean_executor_cancel_all_total", result="failed") >= 1

        # An order landing after the sweep (one that was on the wire, or placed by hand) is cancelled too.
        late = await exchange.place_order(symbol="ETHUSDT", side="Buy", order_type="Limit", qty=Decimal("0.05"),
                                          price=Decimal("2600"), order_link_id="late-landing-1")
        assert late.ok
        await async_wait_for(none_opening_left, 20, "the late-landing order to be cancelled", interval=0.1)
        assert (await exchange.query_order(order_link_id="late-landing-1") or {}).get("orderStatus") == "Cancelled"
        assert [o["orderLinkId"] for o in (await _resting(exchange))["BTCUSDT"]] == [
            order_link_id(reduce_only["intent_id"])]
        assert await asyncio.to_thread(proc.stop) == 0
    finally:
        proc.kill()
        await peers.close()
