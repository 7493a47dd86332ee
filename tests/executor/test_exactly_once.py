"""Exactly once against the simulator's faults: timeout after accept, 5xx before/after, 10006, 110072."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from prometheus_client import CollectorRegistry

from hean.exchange.bybit.rest import BybitRestClient
from hean.ids import order_link_id
from tests.executor.harness import executor_settings, intent, running, sample, sim_control, sim_orders


def _rejects(sim, code: int) -> float:
    return sim.registry.get_sample_value("hean_sim_rejects_total", {"ret_code": str(code)}) or 0.0


def _requests(sim, path: str) -> float:
    return sim.registry.get_sample_value("hean_sim_rest_requests_total", {"path": path}) or 0.0


async def test_timeout_after_accept_leaves_exactly_one_order(tmp_path, sim):
    async with running(executor_settings(tmp_path, sim, timeout_s=0.5)) as (svc, peers):
        await sim_control(sim, "faults/timeout-after-accept", {"count": 1})
        data = intent()
        placed = await peers.submit(data)
        assert placed.type == "ORDER_PLACED" and placed.data["order_id"]
        orders = await sim_orders(sim, order_link_id(data["intent_id"]))
        assert len(orders) == 1 and orders[0]["orderId"] == placed.data["order_id"]
        assert sample(svc, "hean_executor_ambiguous_total") == 1
        assert sample(svc, "hean_executor_ambiguous_resolved_total", result="placed") == 1


async def test_5xx_after_apply_is_resolved_as_placed(tmp_path, sim):
    async with running(executor_settings(tmp_path, sim)) as (svc, peers):
        await sim_control(sim, "faults/http-error", {"when": "after", "status": 502, "count": 1,
                                                     "path": "/v5/order/create"})
        data = intent()
        placed = await peers.submit(data)
        assert placed.type == "ORDER_PLACED"
        assert len(await sim_orders(sim, order_link_id(data["intent_id"]))) == 1
        assert _requests(sim, "/v5/order/create") == 1  # resolved by query, not by resending
        assert sample(svc, "hean_executor_ambiguous_resolved_total", result="placed") == 1


async def test_5xx_before_apply_is_sent_again_once(tmp_path, sim):
    async with running(executor_settings(tmp_path, sim)) as (svc, peers):
        await sim_control(sim, "faults/http-error", {"when": "before", "status": 503, "count": 1,
                                                     "path": "/v5/order/create"})
        data = intent()
        placed = await peers.submit(data)
        assert placed.type == "ORDER_PLACED"
        assert len(await sim_orders(sim, order_link_id(data["intent_id"]))) == 1
        # First attempt failed before applying; the query said "absent"; then exactly one more send.
        assert _requests(sim, "/v5/order/create") == 2
        assert sample(svc, "hean_executor_ambiguous_resolved_total", result="absent") == 1


async def test_10006_burst_every_intent_placed_once_without_busy_retry(tmp_path, sim):
    async with running(executor_settings(tmp_path, sim)) as (svc, peers):
        await sim_control(sim, "faults/rate-limit", {"count": 0, "seconds": 1.0})
        # Different sizes: identical orders would (rightly) trip the fingerprint guard.
        intents = [intent(symbol="BTCUSDT", qty=f"0.00{i}") for i in range(1, 4)]
        intents += [intent(symbol="ETHUSDT", qty=f"0.0{i}") for i in range(1, 4)]
        outcomes = await asyncio.gather(*(peers.submit(d, timeout=30) for d in intents))
        assert [o.type for o in outcomes] == ["ORDER_PLACED"] * len(intents)
        for data in intents:
            assert len(await sim_orders(sim, order_link_id(data["intent_id"]))) == 1
        refused = _rejects(sim, 10006)
        assert refused >= 1, "the fault never fired"
        # The client holds the endpoint until the reset time: a busy retry would be refused hundreds of times.
        assert refused <= 3 * len(intents), refused


async def test_duplicate_link_id_means_already_placed(tmp_path, sim):
    data = intent()
    link = order_link_id(data["intent_id"])
    other = BybitRestClient(rest_url=sim.rest_url, api_key="hean-sim-key", api_secret="hean-sim-secret",
                            dry_run=True, is_live=False, registry=CollectorRegistry())
    await other.start()
    try:
        first = await other.place_order(symbol="BTCUSDT", side="Buy", order_type="Market", qty=Decimal("0.01"),
                                        price=None, order_link_id=link)
        assert first.ok
    finally:
        await other.close()
    async with running(executor_settings(tmp_path, sim)) as (svc, peers):
        placed = await peers.submit(data)
        assert placed.type == "ORDER_PLACED"
        assert placed.data["order_id"] == first.result["orderId"]
        assert len(await sim_orders(sim, link)) == 1
        assert sample(svc, "hean_executor_ambiguous_total") == 0  # 110072 is not ambiguous: it is "placed"


def _sans_replay(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "replay"}


async def test_redelivered_intent_is_answered_from_the_journal(tmp_path, sim):
    settings = executor_settings(tmp_path, sim)
    data = intent()
    async with running(settings) as (svc, peers):
        placed = await peers.submit(data)
        assert placed.type == "ORDER_PLACED"
        peers.events.clear()
        again = await peers.submit(data)  # same intent id once more
        # The same answer (a copy re-sent to a late joiner differs only by its replay flag).
        assert again.type == "ORDER_PLACED" and _sans_replay(again.data) == _sans_replay(placed.data)
        assert sample(svc, "hean_executor_duplicates_blocked_total", kind="same_intent") >= 1
        assert _requests(sim, "/v5/order/create") == 1
    # After a restart the journal still answers: no second order.
    async with running(settings) as (svc, peers):
        again = await peers.submit(data)
        assert again.type == "ORDER_PLACED" and again.data["order_id"] == placed.data["order_id"]
    assert len(await sim_orders(sim, order_link_id(data["intent_id"]))) == 1


async def test_bad_intents_are_rejected_and_the_executor_keeps_running(tmp_path, sim):
    bad = [intent(symbol="DOGEUSDT"), intent(qty="0"), intent(qty="-0.01"), intent(qty="NaN"),
           intent(qty="Infinity"), intent(qty=0.01), intent(qty="lots"), intent(price="50000"),
           intent(order_type="Limit", price=None), intent(side="Long"), intent(order_type="StopLimit"),
           intent(symbol=None), intent(qty=None), intent(intent_id="bad id!")]
    async with running(executor_settings(tmp_path, sim)) as (svc, peers):
        for data in bad:
            event = await peers.submit(data)
            assert event.type == "ORDER_REJECTED", (data, event)
            assert event.data["reason"].startswith("invalid_intent: "), event.data
        # Garbage without any usable id is counted and answered too, then a good intent still goes through.
        await peers.ctl.publish("intent.order", "ORDER_INTENT", {"nonsense": True})
        good = intent()
        assert (await peers.submit(good)).type == "ORDER_PLACED"
        assert sample(svc, "hean_executor_orders_rejected_total", reason="invalid_intent") >= len(bad)
    assert _requests(sim, "/v5/order/create") == 1
