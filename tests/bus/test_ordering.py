"""Critical events stay in order under backpressure: none overtakes one that is waiting for room."""

from __future__ import annotations

import asyncio

from hean.bus.envelope import Event
from tests.bus.harness import bus_pair
from tests.utils import async_wait_for


async def test_concurrent_critical_publishes_arrive_in_sequence(tmp_path):
    release = asyncio.Event()
    seen: list[Event] = []

    async def slow(ev: Event) -> None:
        await release.wait()
        seen.append(ev)

    async with bus_pair(tmp_path, [("fill.", slow, False)], sndhwm=5, rcvhwm=5, queue_size=2,
                        critical_timeout_s=10.0) as p:
        n = 300
        # Many producers at once (as a WS handler and a catch-up would): most of them meet a full pipe.
        # 4 KB each, 1.2 MB in all: more than the kernel's socket buffers hold beyond the HWMs, so
        # publishers really wait however fast the backpressure retries.
        pad = "x" * 4096
        tasks = [asyncio.create_task(p.pub.publish("fill.BTCUSDT", "ORDER_FILLED", {"i": i, "pad": pad}))
                 for i in range(n)]
        await async_wait_for(lambda: p.sub.queue.full() and p.pub_stats.published["critical"] < n, 10,
                             "the subscriber full and publishers waiting for room")
        release.set()
        assert all(await asyncio.gather(*tasks))
        await async_wait_for(lambda: len(seen) == n, 20, f"all {n} events handled")
        assert [e.data["i"] for e in seen] == list(range(n))
        assert p.sub_stats.malformed.get("stale_seq", 0) == 0
        assert dict(p.sub_stats.lost) == {}
