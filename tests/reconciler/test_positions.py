"""Foreign activity is flagged, never adopted; a mismatch that survives catch-ups escalates once."""

from __future__ import annotations

import sqlite3

import orjson

from tests.reconciler.helpers import (BusListener, async_record, async_scrape, make_fills, ready_port,
                                      reconciler_env, running_sim)
from tests.utils import async_wait_for, hean, metric


async def test_orders_and_positions_without_hean_link_id_are_flagged(tmp_path):
    async with running_sim() as sim:
        proc = hean(["run", "reconciler"], reconciler_env(tmp_path, sim, reconciler__interval_s="0.5"))
        listener = BusListener(tmp_path, prefixes=("reconcile.", "position."))
        try:
            port = await ready_port(proc)
            await async_record(proc, "catch-up done")
            # Trade only once the private WS listens: this test is about what the WS reports.
            await async_wait_for(lambda: any("order" in c.topics for c in sim.private_hub.connections), 20,
                                 "private WS subscribed")
            make_fills(sim, 1, symbol="ETHUSDT", link_prefix="manual-")   # someone else trades the account
            make_fills(sim, 1, symbol="BTCUSDT")                           # HEAN's own
            await async_wait_for(lambda: {e.data["kind"] for e in listener.of_type("FOREIGN_ACTIVITY")}
                                 == {"order", "position"}, 20, "foreign order and position events")
            foreign = listener.of_type("FOREIGN_ACTIVITY")
            assert {e.data.get("symbol") for e in foreign} == {"ETHUSDT"}
            await async_wait_for(lambda: any(e.data["symbol"] == "ETHUSDT" and e.data["foreign"]
                                             for e in listener.of_type("POSITION_UPDATE")), 10,
                                 "the ETH position published with foreign=true")
            positions = {e.data["symbol"]: e.data for e in listener.of_type("POSITION_UPDATE")}
            assert positions["BTCUSDT"]["foreign"] is False and positions["BTCUSDT"]["side"] == "Buy"
            # Flagged once, not on every periodic catch-up.
            await async_wait_for(lambda: sum(1 for ln in proc.records() if ln.get("message") == "catch-up done") >= 4,
                                 20, "a few more catch-ups")
            assert len(listener.of_type("FOREIGN_ACTIVITY")) == 2
            samples = await async_scrape(port)
            assert metric(samples, "hean_reconciler_foreign_total", kind="order") == 1
            assert metric(samples, "hean_reconciler_foreign_total", kind="position") == 1
        finally:
            proc.kill()
            await listener.close()


async def test_a_foreign_order_filled_while_the_ws_was_down_is_flagged_as_an_order(tmp_path):
    """It is never an open order, so only its executions (found by REST) can tell of it."""
    async with running_sim() as sim:
        proc = hean(["run", "reconciler"], reconciler_env(tmp_path, sim, reconciler__interval_s="3600"))
        listener = BusListener(tmp_path, prefixes=("reconcile.",))
        try:
            port = await ready_port(proc)
            await async_wait_for(lambda: any("order" in c.topics for c in sim.private_hub.connections), 20,
                                 "private WS subscribed")
            await async_wait_for(lambda: any(not e.data["reconciling"] for e in listener.of_type("RECONCILE_STATUS")),
                                 20, "the start-up catch-up")
            await sim.drop_ws("private")
            make_fills(sim, 1, symbol="ETHUSDT", link_prefix="manual-")
            order_id = next(o.order_id for o in sim.exchange.orders.values() if o.order_link_id.startswith("manual-"))
            await async_wait_for(lambda: any(e.data["kind"] == "order" for e in listener.of_type("FOREIGN_ACTIVITY")),
                                 20, "the foreign order flagged")
            flagged = [e.data for e in listener.of_type("FOREIGN_ACTIVITY") if e.data["kind"] == "order"]
            assert [d["order_id"] for d in flagged] == [order_id] and flagged[0]["symbol"] == "ETHUSDT"
            samples = await async_scrape(port)
            assert metric(samples, "hean_reconciler_foreign_total", kind="order") == 1
            assert metric(samples, "hean_reconciler_fills_total", source="rest") == 1
        finally:
            proc.kill()
            await listener.close()


async def test_unexplained_position_escalates_once_instead_of_looping(tmp_path):
    async with running_sim() as sim:
        env = reconciler_env(tmp_path, sim, reconciler__interval_s="0.3", reconciler__mismatch_escalate_after="3")
        first = hean(["run", "reconciler"], env, "reconciler #1")
        await ready_port(first)
        await async_record(first, "catch-up done")
        assert first.stop() == 0
        # The ledger now claims a HEAN fill the exchange never had: the ETH position cannot be explained.
        db = sqlite3.connect(tmp_path / "data" / "reconciler.sqlite")
        with db:
            raw = orjson.dumps({"execId": "bogus-1", "execType": "Trade", "symbol": "ETHUSDT", "side": "Buy",
                                "execQty": "1", "execPrice": "3000", "orderId": "o-1", "orderLinkId": "h-x1"})
            db.execute("INSERT INTO executions VALUES ('bogus-1', 'Trade', 'ETHUSDT', 'Buy', '1', ?, 'o-1', 'h-x1',"
                       " 'ws', ?, 1, 0)", (sim.clock() - 1000, raw))
        db.close()
        second = hean(["run", "reconciler"], env, "reconciler #2")
        listener = BusListener(tmp_path, prefixes=("reconcile.alert",))
        try:
            port = await ready_port(second)
            await async_wait_for(lambda: listener.of_type("RECONCILE_ALERT"), 20, "a RECONCILE_ALERT")
            alert = listener.of_type("RECONCILE_ALERT")[0].data
            assert alert["kind"] == "position_mismatch" and alert["symbol"] == "ETHUSDT"
            assert alert["exchange_size"] == "0" and alert["ledger_size"] == "1"
            done = sum(1 for r in second.records() if r.get("message") == "catch-up done")
            await async_wait_for(lambda: sum(1 for r in second.records() if r.get("message") == "catch-up done")
                                 >= done + 4, 20, "four more catch-ups after the alert")
            assert len(listener.of_type("RECONCILE_ALERT")) == 1
            samples = await async_scrape(port)
            assert metric(samples, "hean_reconciler_alerts_total", kind="position_mismatch") == 1
            assert metric(samples, "hean_reconciler_mismatches") == 1
        finally:
            second.kill()
            await listener.close()
