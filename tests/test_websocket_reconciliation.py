"""Seed fix #3: drop the private WebSocket while fills happen; after reconnect every fill is published once.

A real `hean run reconciler` process against the in-test simulator; the test listens on the bus.
"""

from __future__ import annotations

import asyncio

from tests.reconciler.helpers import (BusListener, async_scrape, make_fills, ready_port, reconciler_env, running_sim,
                                      sim_trade_ids)
from tests.utils import async_wait_for, hean, metric


async def _startup_done(listener: BusListener) -> bool:
    return any(not e.data["reconciling"] for e in listener.of_type("RECONCILE_STATUS"))


async def test_private_ws_drops_while_filling_every_fill_published_exactly_once(tmp_path):
    async with running_sim() as sim:
        proc = hean(["run", "reconciler"], reconciler_env(tmp_path, sim))
        listener = BusListener(tmp_path)
        try:
            port = await ready_port(proc)
            await async_wait_for(lambda: _startup_done(listener), 20, "the start-up catch-up to finish")
            for _ in range(3):
                await async_wait_for(lambda: len(sim.private_hub.connections) == 1, 20, "private WS connected")
                make_fills(sim, 10)                      # seen live on the WS
                await sim.drop_ws("private")
                make_fills(sim, 15)                      # happen while the WS is down: only REST can find them
                await asyncio.sleep(0)
            await async_wait_for(lambda: len(sim.private_hub.connections) == 1, 20, "private WS back")
            make_fills(sim, 5)
            want = sim_trade_ids(sim)
            assert len(want) == 80
            await async_wait_for(lambda: set(listener.fill_ids()) == want, 30, "all 80 fills on the bus")
            assert listener.duplicates() == {}
            assert not [e for e in listener.of_type("ORDER_FILLED") if e.data.get("replay")]
            samples = await async_scrape(port)
            # At least the 45 made while disconnected came by REST; the source split adds up to all 80.
            assert metric(samples, "hean_reconciler_fills_total", source="rest") >= 45
            assert metric(samples, "hean_reconciler_fills_total") == 80
            # Reconnects that land while a catch-up runs are merged into the next one, so >= 1, not == 3.
            assert metric(samples, "hean_reconciler_catchups_total", trigger="reconnect") >= 1
            assert samples.get('hean_ws_reconnects_total{name="private"}', 0) >= 3
            # Each reconnect catch-up announced reconciling=true and then cleared it (its final status
            # follows its fills, after positions and wallet: wait for it).
            def reconnects() -> list[dict]:
                return [e.data for e in listener.of_type("RECONCILE_STATUS") if e.data["trigger"] == "reconnect"]
            await async_wait_for(lambda: not reconnects()[-1]["reconciling"], 20, "the reconnect catch-up to finish")
            assert any(d["reconciling"] for d in reconnects())
        finally:
            proc.kill()
            await listener.close()
