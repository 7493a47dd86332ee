"""Resolution of unknown outcomes never re-sends a finished intent, nor one that may still land."""

from __future__ import annotations

import dataclasses
import time

from hean.executor import journal as j
from hean.ids import order_link_id
from tests.executor.harness import executor_settings, intent, running, sim_orders


def _creates(sim) -> float:
    return sim.registry.get_sample_value("hean_sim_rest_requests_total", {"path": "/v5/order/create"}) or 0.0


async def test_a_finished_intent_is_never_sent_again_by_the_resolver(tmp_path, sim):
    """A resolver pass that listed a row before it was finished must not act on that stale copy."""
    async with running(executor_settings(tmp_path, sim)) as (svc, peers):
        data = intent(qty="100")                      # far beyond the wallet: the exchange rejects it
        rejected = await peers.submit(data)
        assert rejected.type == "ORDER_REJECTED" and rejected.data["reason"] == "exchange_rejected"
        row = svc.journal.get(data["intent_id"])
        assert row is not None and row.state == j.REJECTED
        stale = dataclasses.replace(row, state=j.UNKNOWN, updated_ms=0)   # what an earlier listing saw
        creates = _creates(sim)
        assert await svc.placer.resolve(stale) is True
        assert _creates(sim) == creates, "a finished intent was sent to the exchange again"
        assert svc.journal.get(data["intent_id"]).state == j.REJECTED


async def test_absent_is_not_final_until_the_recv_window_has_passed(tmp_path, sim):
    """An order not (yet) on the exchange right after its request may still land: keep it unresolved."""
    async with running(executor_settings(tmp_path, sim)) as (svc, peers):
        data = intent()
        link = order_link_id(data["intent_id"])
        svc.journal.insert(data["intent_id"], link, "BTCUSDT", j.UNKNOWN, data)
        row = svc.journal.get(data["intent_id"])
        assert await svc.placer.resolve(row) is False            # just written: inside the window
        assert await sim_orders(sim, link) == []                 # and nothing was sent
        assert svc.journal.get(data["intent_id"]).state == j.UNKNOWN
        old = dataclasses.replace(row, updated_ms=row.updated_ms - svc.placer.settle_ms - 1)
        assert await svc.placer.resolve(old) is True             # past the window: absent is final, send it
        assert len(await sim_orders(sim, link)) == 1


async def test_an_expired_intent_is_rejected_not_sent(tmp_path, sim):
    """An intent older than intent_max_age_s (e.g. redelivered after an outage) is refused as expired."""
    async with running(executor_settings(tmp_path, sim, intent_max_age_s=30)) as (svc, peers):
        data = intent(created_ns=time.time_ns() - 600 * 10**9)       # ten minutes old
        rejected = await peers.submit(data)
        assert rejected.type == "ORDER_REJECTED" and rejected.data["reason"] == "expired"
        assert await sim_orders(sim, order_link_id(data["intent_id"])) == []
        fresh = await peers.submit(intent())
        assert fresh.type == "ORDER_PLACED"
