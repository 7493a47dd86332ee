"""Real `hean run reconciler` against the in-test simulator: every fill on the bus exactly once."""

from __future__ import annotations

from tests.reconciler.helpers import (BusListener, async_scrape, make_fills, ready_port, reconciler_env, running_sim,
                                     sim_trade_ids)
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
