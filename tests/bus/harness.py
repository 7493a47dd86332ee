"""An in-process publisher/subscriber pair on real ipc sockets, for bus unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hean.bus import BusStats, Publisher, Subscriber
from hean.config import BusSettings


@dataclass
class Pair:
    pub: Publisher
    sub: Subscriber
    pub_stats: BusStats
    sub_stats: BusStats
    stop: asyncio.Event
    task: asyncio.Task[None]


@asynccontextmanager
async def bus_pair(tmp_path: Path, handlers: list[tuple[str, Any, bool]], **bus: Any) -> AsyncIterator[Pair]:
    settings = BusSettings(**bus)
    pub_stats, sub_stats = BusStats(), BusStats()
    pub = Publisher(settings, tmp_path, "bench", pub_stats).bind()
    sub = Subscriber(settings, tmp_path, sub_stats).connect("bench")
    for prefix, handler, fast in handlers:
        sub.on(prefix, handler, fast=fast)
    stop = asyncio.Event()
    task = asyncio.create_task(sub.run(stop))
    try:
        for klass in ("lossy", "critical"):
            assert await pub.wait_for_subscribers(klass, 10), f"subscriber never subscribed ({klass})"
        yield Pair(pub, sub, pub_stats, sub_stats, stop, task)
    finally:
        stop.set()
        if not task.done():
            try:
                await asyncio.wait_for(task, 10)
            except Exception:  # noqa: BLE001 - the test body already asserted what it needed
                task.cancel()
        sub.close()
        pub.close()
