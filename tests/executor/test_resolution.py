"""Resolution of unknown outcomes never re-sends a finished intent, nor one that may still land."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from typing import Any

import orjson
from aiohttp import web

from hean import topics
from hean.exchange.bybit import constants as c
from hean.executor import journal as j
from hean.ids import order_link_id
from hean.sim.server import SimServer
from tests.executor.harness import (
    executor_settings,
    intent,
    running,
    sample,
    sim_control,
    sim_orders,
    sim_settings,
    wait_view,
)
from tests.utils import async_wait_for

T = topics.EventType


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

        async def sent_once() -> bool:
            return len(await sim_orders(sim, link)) == 1
        await async_wait_for(sent_once, 10, "the absent order to be sent")


async def test_an_expired_intent_is_rejected_not_sent(tmp_path, sim):
    """An intent older than intent_max_age_s (e.g. redelivered after an outage) is refused as expired."""
    async with running(executor_settings(tmp_path, sim, intent_max_age_s=30)) as (svc, peers):
        data = intent(created_ns=time.time_ns() - 600 * 10**9)       # ten minutes old
        rejected = await peers.submit(data)
        assert rejected.type == "ORDER_REJECTED" and rejected.data["reason"] == "expired"
        assert await sim_orders(sim, order_link_id(data["intent_id"])) == []
        fresh = await peers.submit(intent())
        assert fresh.type == "ORDER_PLACED"


class _HistoryLagSim(SimServer):
    """The simulator, with `order/history` not (yet) showing the orders in `lagging`.

    Models the documented lag ("the data returned from this endpoint may delay", order-list.mdx)
    that the simulator does not have; `history_queries` counts the lookups per orderLinkId.
    """

    lagging: set[str]
    history_queries: dict[str, int]

    def _build_app(self) -> web.Application:
        self.lagging, self.history_queries = set(), {}
        app = super()._build_app()

        @web.middleware
        async def lag(request: web.Request, handler: Any) -> web.StreamResponse:
            response = await handler(request)
            link = request.query.get("orderLinkId", "")
            if request.path != c.PATH_ORDER_HISTORY or not link or not isinstance(response, web.Response):
                return response
            self.history_queries[link] = self.history_queries.get(link, 0) + 1
            if link not in self.lagging or not response.text:
                return response
            body = orjson.loads(response.text)
            body["result"]["list"] = []
            headers = {k: v for k, v in response.headers.items() if k.lower().startswith("x-bapi")}
            return web.json_response(body, headers=headers)

        app.middlewares.append(lag)
        return app


def _rejects(sim, code: int) -> float:
    return sim.registry.get_sample_value("hean_sim_rejects_total", {"ret_code": str(code)}) or 0.0


async def test_ambiguous_order_is_resolved_from_history_after_the_realtime_cache_was_emptied(tmp_path, sim):
    """A Bybit service restart empties order/realtime's closed orders: the filled order is in history."""
    async with running(executor_settings(tmp_path, sim, timeout_s=1.0)) as (svc, peers):
        await sim_control(sim, "faults/timeout-after-accept", {"count": 1})
        data = intent()                                   # a market order: filled, closed at once
        link = order_link_id(data["intent_id"])
        await peers.ctl.publish(topics.intent(), T.ORDER_INTENT.value, data)
        await async_wait_for(lambda: sim_orders(sim, link), 10, "the simulator to accept the order")
        assert (await sim_control(sim, "faults/realtime-cache-clear", {}))["dropped"] >= 1
        placed = await peers.submit(data)
        orders = await sim_orders(sim, link)
        assert placed.type == "ORDER_PLACED" and placed.data["order_id"] == orders[0]["orderId"]
        assert len(orders) == 1 and orders[0]["orderStatus"] == "Filled"
        assert _creates(sim) == 1 and sample(svc, "hean_executor_ambiguous_resolved_total", result="placed") == 1


async def test_110072_is_never_read_as_absent_nor_resent(tmp_path):
    """110072 proves the order exists: it is looked up until found, never sent again, never risk-blocked.

    The order filled while its request timed out; the realtime cache was emptied and history lags,
    so the executor finds nothing, sends it again (same orderLinkId) and gets 110072. Then HARD_STOP:
    the order must still come out ORDER_PLACED (it is filled), with the state it was sent under.
    """
    sim = _HistoryLagSim(sim_settings())
    await sim.start()
    try:
        settings = executor_settings(tmp_path, sim, timeout_s=1.0, recv_window_ms=1000)
        async with running(settings) as (svc, peers):
            await sim_control(sim, "faults/timeout-after-accept", {"count": 1})
            data = intent()
            link = order_link_id(data["intent_id"])
            await peers.ctl.publish(topics.intent(), T.ORDER_INTENT.value, data)
            await async_wait_for(lambda: sim_orders(sim, link), 10, "the simulator to accept the order")
            sim.lagging.add(link)
            await sim_control(sim, "faults/realtime-cache-clear", {})
            await async_wait_for(lambda: _rejects(sim, 110072) == 1, 20, "the resend to be answered 110072")
            peers.risk = "HARD_STOP"
            await wait_view(svc, lambda v: v.state == "HARD_STOP", "HARD_STOP")
            # Longer than the settle window (recv_window + 1 s): today's "absent" would have come by now.
            seen = sim.history_queries.get(link, 0)
            await async_wait_for(lambda: sim.history_queries.get(link, 0) >= seen + 15, 30,
                                 "the executor to keep looking the order up")
            assert peers.outcomes(data["intent_id"]) == []
            sim.lagging.discard(link)
            placed = await peers.submit(data)
            orders = await sim_orders(sim, link)
            assert placed.type == "ORDER_PLACED" and placed.data["order_id"] == orders[0]["orderId"]
            assert placed.data["risk_state"] == "NORMAL"
            assert len(orders) == 1 and _rejects(sim, 110072) == 1 and _creates(sim) == 2
            assert [e.type for e in peers.outcomes(data["intent_id"])] == ["ORDER_PLACED"]
    finally:
        await sim.stop()


async def test_110072_order_never_found_is_reported_placed_after_the_search_window(tmp_path):
    """Not resting and never found: reported placed without an orderId, so its symbol is not blocked for ever."""
    sim = _HistoryLagSim(sim_settings())
    await sim.start()
    try:
        settings = executor_settings(tmp_path, sim, timeout_s=1.0, recv_window_ms=1000, exists_search_s=1.0)
        async with running(settings) as (svc, peers):
            await sim_control(sim, "faults/timeout-after-accept", {"count": 1})
            data = intent()
            link = order_link_id(data["intent_id"])
            await peers.ctl.publish(topics.intent(), T.ORDER_INTENT.value, data)
            await async_wait_for(lambda: sim_orders(sim, link), 10, "the simulator to accept the order")
            sim.lagging.add(link)
            await sim_control(sim, "faults/realtime-cache-clear", {})
            placed = await peers.submit(data, timeout=30)
            assert placed.type == "ORDER_PLACED" and placed.data["reason"] == "exists_not_found"
            assert placed.data["order_id"] is None and _rejects(sim, 110072) == 1
            assert svc.journal.get(data["intent_id"]).state == j.PLACED
            assert "BTCUSDT" not in svc.view().unresolved_symbols
    finally:
        await sim.stop()


async def test_an_intent_without_created_ns_is_stamped_on_receipt_and_expires(tmp_path, sim):
    """No `created_ns`: its age counts from receipt, so a resend after an outage is refused as expired too."""
    settings = executor_settings(tmp_path, sim, recv_window_ms=1000, intent_max_age_s=1.0)
    async with running(settings) as (svc, peers):
        await sim_control(sim, "faults/http-error", {"when": "before", "status": 503, "count": 1,
                                                     "path": "/v5/order/create"})
        data = intent()
        del data["created_ns"]
        # The first request fails before the exchange applied it; "absent" is final only after the settle
        # window (2 s), by which time the intent is older than intent_max_age_s.
        rejected = await peers.submit(data)
        assert rejected.type == "ORDER_REJECTED" and rejected.data["reason"] == "expired"
        assert await sim_orders(sim, order_link_id(data["intent_id"])) == []
        assert type(svc.journal.get(data["intent_id"]).intent["created_ns"]) is int


async def test_a_journaled_intent_without_created_ns_ages_from_its_journal_row(tmp_path, sim):
    """A row journaled (before stamping existed) without `created_ns`, left open by a crash, expires too."""
    settings = executor_settings(tmp_path, sim, intent_max_age_s=30.0)
    data = intent()
    del data["created_ns"]
    path = settings.data_dir / "executor.sqlite"
    journal = j.Journal(path)
    journal.insert(data["intent_id"], order_link_id(data["intent_id"]), "BTCUSDT", j.PENDING, data)
    journal.close()
    db = sqlite3.connect(path)
    with db:   # received ten minutes ago, never answered
        db.execute("UPDATE intents SET created_ms = created_ms - 600000, updated_ms = updated_ms - 600000")
    db.close()
    async with running(settings) as (svc, peers):
        rejected = await peers.submit(data)
        assert rejected.type == "ORDER_REJECTED" and rejected.data["reason"] == "expired"
        assert await sim_orders(sim, order_link_id(data["intent_id"])) == []
