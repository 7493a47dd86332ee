"""Risk gating end to end: the executor hears RISK_STATE / RECONCILE_STATUS on the bus and acts."""

from __future__ import annotations

import asyncio

from hean.ids import order_link_id
from tests.executor.harness import (
    executor_settings,
    intent,
    running,
    sample,
    sim_control,
    wait_sample,
    sim_orders,
    wait_view,
)


async def _open_long(peers, qty: str = "0.01") -> None:
    assert (await peers.submit(intent(qty=qty))).type == "ORDER_PLACED"


async def _set_risk(svc, peers, state: str) -> None:
    peers.risk = state
    await wait_view(svc, lambda v: v.state == state and not v.stale, state)


async def test_normal_and_soft_brake_sizes(tmp_path, sim):
    async with running(executor_settings(tmp_path, sim, soft_brake_factor=0.5)) as (svc, peers):
        full = intent(qty="0.02")
        assert (await peers.submit(full)).data["qty"] == "0.02"
        await _set_risk(svc, peers, "SOFT_BRAKE")
        braked = intent(qty="0.03")
        event = await peers.submit(braked)
        assert event.type == "ORDER_PLACED" and event.data["qty"] == "0.015"
        assert (await sim_orders(sim, order_link_id(braked["intent_id"])))[0]["qty"] == "0.015"
        too_small = await peers.submit(intent(qty="0.001"))  # 0.0005 rounds below minOrderQty
        assert too_small.type == "ORDER_BLOCKED_RISK" and too_small.data["reason"] == "SOFT_BRAKE"


async def test_quarantine_allows_only_reduce_only(tmp_path, sim):
    async with running(executor_settings(tmp_path, sim)) as (svc, peers):
        await _open_long(peers)
        await _set_risk(svc, peers, "QUARANTINE")
        blocked = await peers.submit(intent(qty="0.002"))
        assert blocked.type == "ORDER_BLOCKED_RISK" and blocked.data["reason"] == "QUARANTINE"
        close = await peers.submit(intent(side="Sell", qty="0.01", reduce_only=True))
        assert close.type == "ORDER_PLACED"
        assert sample(svc, "hean_executor_risk_blocked_total", state="QUARANTINE") == 1
        await wait_sample(svc, "hean_executor_risk_state", 2)


async def test_hard_stop_cancels_open_orders_and_allows_only_closing(tmp_path, sim):
    async with running(executor_settings(tmp_path, sim)) as (svc, peers):
        await sim_control(sim, "price", {"symbol": "BTCUSDT", "price": "50000", "hold": True})
        await _open_long(peers)
        resting = intent(order_type="Limit", price="48000", qty="0.003")  # below market: stays open
        assert (await peers.submit(resting)).type == "ORDER_PLACED"
        link = order_link_id(resting["intent_id"])
        await _set_risk(svc, peers, "HARD_STOP")
        deadline = 10.0
        cancelled = None
        for _ in range(int(deadline / 0.05)):
            cancelled = next((e for e in peers.outcomes(resting["intent_id"]) if e.type == "ORDER_CANCELLED"), None)
            if cancelled is not None:
                break
            await asyncio.sleep(0.05)
        assert cancelled is not None, "no ORDER_CANCELLED for the resting order after HARD_STOP"
        assert (await sim_orders(sim, link))[0]["orderStatus"] == "Cancelled"
        assert (await peers.submit(intent(qty="0.004"))).data["reason"] == "HARD_STOP"
        close = await peers.submit(intent(side="Sell", qty="0.01", reduce_only=True))
        assert close.type == "ORDER_PLACED"


async def test_stale_risk_state_fails_closed(tmp_path, sim):
    async with running(executor_settings(tmp_path, sim, risk_stale_s=0.5)) as (svc, peers):
        await _open_long(peers)
        peers.risk = None  # the risk process goes silent
        await wait_view(svc, lambda v: v.stale, "risk state to go stale")
        blocked = await peers.submit(intent(qty="0.002"))
        assert blocked.type == "ORDER_BLOCKED_RISK" and blocked.data["reason"] == "risk_stale"
        assert blocked.data["risk_state"] == "HARD_STOP"
        await wait_sample(svc, "hean_executor_risk_state", 3)
        assert (await peers.submit(intent(side="Sell", qty="0.01", reduce_only=True))).type == "ORDER_PLACED"
        # Heard again: opening orders flow again, and a stale state never cancelled anything.
        await _set_risk(svc, peers, "NORMAL")
        assert (await peers.submit(intent(qty="0.003"))).type == "ORDER_PLACED"
        assert sample(svc, "hean_executor_cancel_all_total", result="ok") == 0


async def test_no_risk_state_at_start_up_fails_closed(tmp_path, sim):
    from tests.executor.harness import Peers
    settings = executor_settings(tmp_path, sim, risk_stale_s=0.5)
    peers = Peers(settings)
    peers.risk = None
    try:
        async with running(settings, peers) as (svc, _):
            event = await peers.submit(intent())
            assert event.type == "ORDER_BLOCKED_RISK" and event.data["reason"] == "risk_stale"
    finally:
        await peers.close()


async def test_reconciling_allows_only_reduce_only(tmp_path, sim):
    async with running(executor_settings(tmp_path, sim)) as (svc, peers):
        await _open_long(peers)
        peers.reconciling = True
        await wait_view(svc, lambda v: v.reconciling, "reconciling=true")
        blocked = await peers.submit(intent(qty="0.002"))
        assert blocked.type == "ORDER_BLOCKED_RISK" and blocked.data["reason"] == "reconciling"
        assert (await peers.submit(intent(side="Sell", qty="0.01", reduce_only=True))).type == "ORDER_PLACED"
        peers.reconciling = False
        await wait_view(svc, lambda v: not v.reconciling, "reconciling=false")
        assert (await peers.submit(intent(qty="0.003"))).type == "ORDER_PLACED"


async def test_unknown_outcome_counts_as_exposure_until_resolved(tmp_path, sim):
    async with running(executor_settings(tmp_path, sim)) as (svc, peers):
        # The order is applied but its answer lost, and lookups fail for a while: the outcome stays unknown.
        await sim_control(sim, "faults/http-error", {"when": "after", "status": 502, "count": 1,
                                                     "path": "/v5/order/create"})
        await sim_control(sim, "faults/http-error", {"when": "before", "status": 503, "count": 0, "fraction": 1.0,
                                                     "path": "/v5/order/realtime"})
        first = intent(qty="0.005")
        await peers.ctl.publish("intent.order", "ORDER_INTENT", first)
        await wait_view(svc, lambda v: "BTCUSDT" in v.unresolved_symbols, "BTCUSDT to have an unknown outcome")
        assert sample(svc, "hean_executor_open_exposure", symbol="BTCUSDT") == 0.005
        assert sample(svc, "hean_executor_unresolved_orders") == 1
        blocked = await peers.submit(intent(qty="0.002"))
        assert blocked.type == "ORDER_BLOCKED_RISK" and blocked.data["reason"] == "unresolved_exposure"
        assert (await peers.submit(intent(symbol="ETHUSDT", qty="0.02"))).type == "ORDER_PLACED"
        await sim_control(sim, "faults/reset", {})
        placed = await peers.submit(first, timeout=20)
        assert placed.type == "ORDER_PLACED"
        assert len(await sim_orders(sim, order_link_id(first["intent_id"]))) == 1
        assert sample(svc, "hean_executor_open_exposure", symbol="BTCUSDT") == 0


async def test_hard_stop_keeps_cancelling_through_an_exchange_outage(tmp_path, sim):
    """cancel-all failing again and again (5xx) is retried for as long as HARD_STOP holds."""
    async with running(executor_settings(tmp_path, sim)) as (svc, peers):
        await sim_control(sim, "price", {"symbol": "BTCUSDT", "price": "50000", "hold": True})
        resting = intent(order_type="Limit", price="48000", qty="0.003")
        assert (await peers.submit(resting)).type == "ORDER_PLACED"
        await sim_control(sim, "faults/http-error", {"when": "before", "status": 503, "count": 6,
                                                     "path": "/v5/order/cancel-all"})
        await _set_risk(svc, peers, "HARD_STOP")
        await wait_sample(svc, "hean_executor_cancel_all_total", 6, result="failed", timeout=30)
        link = order_link_id(resting["intent_id"])
        for _ in range(400):
            if (await sim_orders(sim, link))[0]["orderStatus"] == "Cancelled":
                break
            await asyncio.sleep(0.05)
        assert (await sim_orders(sim, link))[0]["orderStatus"] == "Cancelled"
