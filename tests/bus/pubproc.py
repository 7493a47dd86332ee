"""A test publisher process: `python tests/bus/pubproc.py SERVICE TOPIC RATE COUNT [GO_FILE]`.

Publishes COUNT events on TOPIC at about RATE per second (0 = as fast as
possible) through the real HEAN Publisher, then keeps its sockets open until
SIGTERM so subscribers can drain.  Prints `PUBLISHER READY` once bound,
`SUBSCRIBED` once a subscriber is there, and one JSON line of its counters at
the end.  With GO_FILE it waits for that file to exist before sending.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

import uvloop

from hean.bus import BusStats, Publisher
from hean.config import load_settings


async def main(service: str, topic: str, rate: float, count: int, go_file: str | None) -> None:
    settings = load_settings()
    stats = BusStats()
    pub = Publisher(settings.bus, settings.runtime_dir, service, stats).bind()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("PUBLISHER READY", flush=True)
    # Give subscribers a moment to connect: a PUB socket drops what is sent before anyone subscribed.
    while stats.subscribers["lossy"] + stats.subscribers["critical"] == 0 and not stop.is_set():
        await pub.wait_for_subscribers("lossy" if topic.startswith("tick.") else "critical", 0.2)
    print("SUBSCRIBED", flush=True)
    while go_file and not os.path.exists(go_file) and not stop.is_set():
        await asyncio.sleep(0.01)
    start = time.monotonic()
    for i in range(count):
        if stop.is_set():
            break
        await pub.publish(topic, "TICK" if topic.startswith("tick.") else "ECHO", {"i": i})
        if rate:
            delay = start + (i + 1) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    print(json.dumps({"published": stats.published, "dropped": stats.dropped}), flush=True)
    await stop.wait()
    pub.close()


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]),
                   sys.argv[5] if len(sys.argv) > 5 else None))
