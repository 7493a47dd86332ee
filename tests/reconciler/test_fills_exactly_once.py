"""Real `hean run reconciler` against the in-test simulator: every fill on the bus exactly once."""

from __future__ import annotations

from tests.reconciler.helpers import (BusListener, async_scrape, make_fills, ready_port, reconciler_env, running_sim,
                                     sim_trade_ids)
from tests.executor.harness import sim_control
from tests.utils import async_wait_for, hean, metric


async def test_ws_fills_are_published_once_and_counted_by_source(tmp_path):
    async with running_sim() as sim:
        proc = hean(["run", "reconciler"], reconciler_env(tmp_path, sim))
        listener = BusListener(tmp_path)
        try:
            port = await ready_port(proc)
            await async_wait_for(lambda: len(sim.private_hub.connections) == 1, 20, "private WS to connect")
            await async_wait_for(lambda: any(not e.data["reconciling"] for e in listener.of_type("RECONCILE_STATUS")),
                                 20, "the start-up catch-up to finish")
            make_fills(sim, 20)
            want = sim_trade_ids(sim)
            await async_wait_for(lambda: set(listener.fill_ids()) == want, 20, "all 20 fills on the bus")
            assert listener.duplicates() == {}
            samples = await async_scrape(port)
            assert metric(samples, "hean_reconciler_fills_total", source="ws") == 20
            assert metric(samples, "hean_reconciler_fills_total", source="rest") == 0
        finally:
            proc.kill()
            await listener.close()


async def test_double_filled_fills_before_new_and_duplicated_pushes_have_one_effect_each(tmp_path):
    """Bybit may push Filled twice, an execution before its order (and no New), any message twice:
    each fill is still published once, each order state once, and no doubt catch-up is started."""
    async with running_sim() as sim:
        proc = hean(["run", "reconciler"], reconciler_env(tmp_path, sim, reconciler__interval_s="3600"))
        listener = BusListener(tmp_path, prefixes=("fill.", "reconcile.", "order."))
        try:
            port = await ready_port(proc)
            await async_wait_for(lambda: any("order" in c.topics for c in sim.private_hub.connections), 20,
                                 "private WS subscribed")
            await async_wait_for(lambda: any(not e.data["reconciling"] for e in listener.of_type("RECONCILE_STATUS")),
                                 20, "the start-up catch-up to finish")
            for route, body in (("faults/double-filled", {"count": 4}), ("faults/execution-first", {"count": 4}),
                                ("faults/duplicate-push", {"topic": "order", "count": 6}),
                                ("faults/duplicate-push", {"topic": "execution", "count": 6})):
                await sim_control(sim, route, body)
            make_fills(sim, 8)
            want = sim_trade_ids(sim)
            await async_wait_for(lambda: set(listener.fill_ids()) == want, 20, "all 8 fills on the bus")
            orders = {o.order_id for o in sim.exchange.orders.values()}

            def filled_updates() -> list[str]:
                return [e.data["order_id"] for e in listener.of_type("ORDER_UPDATE") if e.data["order_status"] == "Filled"]
            await async_wait_for(lambda: set(filled_updates()) == orders, 20, "every order's Filled update")
            # Let the doubt checks (1 s after an order update with fills) run, then count.
            statuses = len(listener.of_type("RECONCILE_STATUS"))
            await async_wait_for(lambda: len(listener.of_type("RECONCILE_STATUS")) >= statuses + 5, 10,
                                 "a few re-published statuses")
            assert listener.duplicates() == {}
            assert sorted(filled_updates()) == sorted(orders), "an order's Filled was published twice"
            states = [(e.data["order_id"], e.data["order_status"], e.data["cum_exec_qty"])
                      for e in listener.of_type("ORDER_UPDATE")]
            assert len(states) == len(set(states)), "an order state was published twice"
            samples = await async_scrape(port)
            assert metric(samples, "hean_reconciler_catchups_total", trigger="doubt") == 0
            assert metric(samples, "hean_reconciler_fills_total", source="ws") == 8
        finally:
            proc.kill()
            await listener.close()
