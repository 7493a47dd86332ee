"""Saturation between real processes: a slow subscriber, then a stalled one.

The publisher is this test process (service name `bench`); the subscriber is
a real `hean run echo` process that re-publishes every critical event it
handles, so the test can check from outside that each one arrived.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from hean.bus import BusSaturated, BusStats, Publisher, Subscriber
from hean.bus.envelope import Event
from hean.config import BusSettings
from tests.utils import async_wait_for, hean, hean_env, metric, scrape


SATURATION_DEADLINE_S = 30.0


async def _echo_listener(tmp_path, seen: list[Event]) -> tuple[Subscriber, asyncio.Event, asyncio.Task[None]]:
    async def record(ev: Event) -> None:
        seen.append(ev)

    sub = Subscriber(BusSettings(), tmp_path / "run", BusStats()).connect("echo").on("echo.order.", record)
    stop = asyncio.Event()
    return sub, stop, asyncio.create_task(sub.run(stop))


@pytest.fixture
def slow_echo(tmp_path):
    env = hean_env(tmp_path, echo__sources="bench", echo__prefixes="tick.,order.", echo__handler_delay_s="0.002",
                   bus__queue_size="50", bus__rcvhwm="100")
    proc = hean(["run", "echo"], env)
    port = proc.wait_ready()
    yield proc, port
    proc.kill()


async def test_slow_subscriber_drops_ticks_but_every_critical_event_arrives(tmp_path, slow_echo):
    proc, port = slow_echo
    stats = BusStats()
    pub = Publisher(BusSettings(sndhwm=100), tmp_path / "run", "bench", stats).bind()
    seen: list[Event] = []
    sub, stop, task = await _echo_listener(tmp_path, seen)
    try:
        assert await pub.wait_for_subscribers("critical", 15)
        await async_wait_for(lambda: metric(scrape(port), "hean_bus_subscribers") >= 1, 15, "test listener on echo")
        n_critical = 200
        for i in range(n_critical * 100):
            pub.publish_nowait("tick.trade.BTCUSDT", "TICK", {"i": i})
            if i % 100 == 0:
                assert await pub.publish("order.placed", "ORDER_PLACED", {"i": i // 100})
            if i % 1000 == 0:
                await asyncio.sleep(0)  # let the zmq I/O thread breathe, as a real feed would
        await async_wait_for(lambda: len(seen) == n_critical, 60, "every critical event echoed")
        assert [e.data["data"]["i"] for e in seen] == list(range(n_critical))
        assert stats.send_failed["critical"] == 0
        dropped_at_publisher = stats.dropped["lossy"]
        samples = scrape(port)
        dropped_in_queue = metric(samples, "hean_bus_queue_dropped_total", **{"class": "lossy"})
        assert dropped_at_publisher + dropped_in_queue > 0, "a slow subscriber must make ticks drop"
        # One last tick once the subscriber has caught up: every publisher-side drop is now a visible gap.
        await async_wait_for(lambda: metric(scrape(port), "hean_bus_queue_depth") == 0, 30, "echo drained")
        assert pub.publish_nowait("tick.trade.BTCUSDT", "TICK", {"i": -1})
        await async_wait_for(
            lambda: metric(scrape(port), "hean_bus_received_total", **{"class": "lossy"})
            + metric(scrape(port), "hean_bus_lost_total", source="bench", **{"class": "lossy"})
            == n_critical * 100 + 1, 20, "received + lost == sent")
        assert metric(scrape(port), "hean_bus_lost_total", source="bench", **{"class": "lossy"}) == dropped_at_publisher
        assert metric(scrape(port), "hean_bus_lost_total", source="bench", **{"class": "critical"}) == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        sub.close()
        pub.close()
    assert proc.stop() == 0


async def test_stalled_subscriber_makes_the_critical_publisher_fail_loudly(tmp_path, slow_echo, caplog):
    proc, port = slow_echo
    stats = BusStats()
    pub = Publisher(BusSettings(sndhwm=100, critical_timeout_s=0.5), tmp_path / "run", "bench", stats).bind()
    seen: list[Event] = []
    sub, stop, task = await _echo_listener(tmp_path, seen)
    sent: list[int] = []
    try:
        assert await pub.wait_for_subscribers("critical", 15)
        await async_wait_for(lambda: metric(scrape(port), "hean_bus_subscribers") >= 1, 15, "test listener on echo")
        proc.signal(signal.SIGSTOP)
        # Its own deadline: if saturation is never detected, fail saying so (not by pytest-timeout),
        # whether publish() keeps accepting (checked per event) or blocks for good (asyncio.timeout).
        deadline = time.monotonic() + SATURATION_DEADLINE_S
        never = (f"critical events to a stopped subscriber: saturation not reported within "
                 f"{SATURATION_DEADLINE_S:.0f} s")
        try:
            async with asyncio.timeout(SATURATION_DEADLINE_S + 5):
                with pytest.raises(BusSaturated,
                                   match=r"EventBus queue full \(100/100\)\. Event processing falling behind"):
                    for i in range(200_000):
                        if time.monotonic() > deadline:
                            pytest.fail(f"{len(sent)} accepted {never}")
                        await pub.publish("order.placed", "ORDER_PLACED", {"i": i})
                        sent.append(i)
                    pytest.fail(f"all {len(sent)} accepted {never}")
        except TimeoutError:
            pytest.fail(f"publish() blocked after {len(sent)} {never}")
        assert stats.send_failed["critical"] == 1
        assert any(r.levelname == "ERROR" and "FULL" in r.getMessage() for r in caplog.records)
        proc.signal(signal.SIGCONT)
        # Nothing that publish() accepted was lost: all of it reaches the subscriber once it reads again.
        await async_wait_for(lambda: len(seen) == len(sent), 60, f"{len(sent)} accepted events echoed")
        assert [e.data["data"]["i"] for e in seen] == sent
    finally:
        proc.signal(signal.SIGCONT)
        stop.set()
        await asyncio.wait_for(task, 10)
        sub.close()
        pub.close()
