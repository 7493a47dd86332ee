"""kill -9 of the reconciler mid-stream, then restart: no fill published twice, none missed."""

from __future__ import annotations

import asyncio

from hean.exchange.bybit import BybitRestClient
from tests.reconciler.helpers import (BusListener, async_record, async_scrape, make_fills, ready_port,
                                      reconciler_env, running_sim)
from tests.utils import async_wait_for, hean, metric


async def _fill_stream(sim, stop: asyncio.Event) -> None:
    while not stop.is_set():
        make_fills(sim, 2)
        await asyncio.sleep(0.005)


async def test_kill9_mid_stream_then_restart_publishes_every_fill_once(tmp_path):
    async with running_sim() as sim:
        start_ms = sim.clock() - 1000
        env = reconciler_env(tmp_path, sim)
        first = hean(["run", "reconciler"], env, "reconciler #1")
        listener = BusListener(tmp_path, prefixes=("fill.",))
        second = None
        stop = asyncio.Event()
        stream = None
        try:
            await ready_port(first)
            await async_record(first, "catch-up done")
            stream = asyncio.create_task(_fill_stream(sim, stop))
            await async_wait_for(lambda: len(listener.fill_ids()) >= 150, 30, "150 fills published by #1")
            first.kill()                                       # SIGKILL while fills keep coming
            seen_by_first = len(listener.fill_ids())
            await asyncio.sleep(0.3)                           # fills that happen while nobody is there
            second = hean(["run", "reconciler"], env, "reconciler #2")
            port = await ready_port(second)
            await async_record(second, "catch-up done")
            await asyncio.sleep(0.2)
            stop.set()
            await stream

            client = BybitRestClient(rest_url=sim.rest_url, api_key="hean-sim-key", api_secret="hean-sim-secret",
                                     dry_run=True, is_live=False)
            await client.start()
            try:
                rows = await client.executions_since(start_ms)
            finally:
                await client.close()
            want = {r["execId"] for r in rows if r["execType"] == "Trade"}
            assert len(want) > seen_by_first
            await async_wait_for(lambda: set(listener.fill_ids()) == want, 30,
                                 f"all {len(want)} fills from the simulator's execution/list on the bus")
            assert listener.duplicates() == {}, "an execId was published twice"
            samples = await async_scrape(port)
            assert metric(samples, "hean_reconciler_fills_total", source="rest") > 0
        finally:
            stop.set()
            if stream is not None:
                await asyncio.gather(stream, return_exceptions=True)
            first.kill()
            if second is not None:
                second.kill()
            await listener.close()


async def test_a_subscriber_that_joins_late_gets_the_fills_published_before_it(tmp_path):
    """PUB/SUB drops what was sent before a peer subscribed: the reconciler re-sends its last seconds."""
    async with running_sim() as sim:
        proc = hean(["run", "reconciler"], reconciler_env(tmp_path, sim), "reconciler")
        early = BusListener(tmp_path, prefixes=("fill.",))
        late = None
        try:
            await ready_port(proc)
            await async_record(proc, "catch-up done")
            make_fills(sim, 6)
            await async_wait_for(lambda: len(early.fill_ids()) >= 6, 30, "6 fills on the bus")
            late = BusListener(tmp_path, prefixes=("fill.",))     # connects after they went out
            await async_wait_for(lambda: set(late.fill_ids()) >= set(early.fill_ids()), 15,
                                 "the late subscriber to get the fills it missed")
            assert all(e.data["replay"] for e in late.of_type("ORDER_FILLED"))
            assert early.duplicates() == {} and late.duplicates() == {}
            await async_record(proc, "re-sent recent once-only events to a peer that subscribed late")
        finally:
            proc.kill()
            await early.close()
            if late is not None:
                await late.close()
