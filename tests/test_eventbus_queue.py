"""Seed fix #1, the in-process queue: utilisation alerts, tick drops, critical backpressure, fast path.

Real ipc sockets between a Publisher and a Subscriber in this process; the
subscriber's handler is held on an asyncio.Event so the queue fills on purpose.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from hean.bus import BusSaturated
from hean.bus.envelope import Event
from tests.bus.harness import bus_pair
from tests.utils import async_wait_for


class Gate:
    """A handler that records events and blocks until released."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.seen: list[Event] = []

    async def __call__(self, ev: Event) -> None:
        await self.open.wait()
        self.seen.append(ev)


async def test_ticks_dropped_and_counted_when_queue_full(tmp_path):
    gate = Gate()
    async with bus_pair(tmp_path, [("tick.", gate, False)], queue_size=10) as p:
        n = 200
        for i in range(n):
            assert await p.pub.publish("tick.trade.BTCUSDT", "TICK", {"i": i})
        await async_wait_for(lambda: p.sub_stats.received["lossy"] == n, 10, "all ticks received")
        dropped = p.sub_stats.queue_dropped["lossy"]
        # 10 fit the queue and at most one more is held by the blocked handler.
        assert n - 11 <= dropped <= n - 10
        gate.open.set()
        await async_wait_for(lambda: len(gate.seen) + dropped == n, 10, "queued ticks handled")
        assert p.sub_stats.queue_failed["lossy"] == 0


async def test_utilization_warning_throttled_and_critical_logged(tmp_path, caplog):
    gate = Gate()
    caplog.set_level(logging.WARNING, logger="hean.bus")
    async with bus_pair(tmp_path, [("tick.", gate, False)], queue_size=20) as p:
        # 1 taken by the blocked handler, then 16/20 = 80 %.
        for i in range(17):
            await p.pub.publish("tick.trade.BTCUSDT", "TICK", {"i": i})
        await async_wait_for(lambda: p.sub_stats.received["lossy"] == 17, 10, "17 ticks")
        warnings = [r for r in caplog.records if "EventBus WARNING" in r.getMessage()]
        assert len(warnings) == 1
        assert warnings[0].levelno == logging.WARNING
        assert not [r for r in caplog.records if r.levelno == logging.CRITICAL]
        # 17 queued = 85 %, still in the warning band: the 30 s throttle holds further warnings back.
        await p.pub.publish("tick.trade.BTCUSDT", "TICK", {"i": 17})
        await async_wait_for(lambda: p.sub_stats.received["lossy"] == 18, 10, "18 ticks")
        assert len([r for r in caplog.records if "EventBus WARNING" in r.getMessage()]) == 1
        # 19 queued of 20 = 95 %: CRITICAL.
        await p.pub.publish("tick.trade.BTCUSDT", "TICK", {"i": 18})
        await p.pub.publish("tick.trade.BTCUSDT", "TICK", {"i": 19})
        await async_wait_for(lambda: [r for r in caplog.records if r.levelno == logging.CRITICAL], 10,
                             "a CRITICAL saturation log")
        crit = [r for r in caplog.records if r.levelno == logging.CRITICAL][0]
        assert "EventBus CRITICAL" in crit.getMessage()
        assert crit.queue_capacity == 20 and crit.queue_size >= 19
        gate.open.set()


async def test_critical_event_backpressured_not_dropped(tmp_path):
    gate = Gate()
    async with bus_pair(tmp_path, [("order.", gate, False)], queue_size=5, critical_timeout_s=5.0) as p:
        n = 12
        for i in range(n):
            await p.pub.publish("order.placed", "ORDER_PLACED", {"i": i})
        # The reader is now waiting for queue room with a critical event in hand.
        await async_wait_for(lambda: p.sub.queue.full() and p.sub_stats.received["critical"] >= 7, 10,
                             "queue full with critical events waiting")
        gate.open.set()
        await async_wait_for(lambda: len(gate.seen) == n, 10, "every critical event handled")
        assert [e.data["i"] for e in gate.seen] == list(range(n))
        assert p.sub_stats.queue_delayed["critical"] >= 1
        assert p.sub_stats.queue_dropped["critical"] == 0
        assert p.sub_stats.queue_failed["critical"] == 0


async def test_critical_event_fails_loudly_after_timeout(tmp_path, caplog):
    gate = Gate()
    caplog.set_level(logging.ERROR, logger="hean.bus")
    async with bus_pair(tmp_path, [("order.", gate, False)], queue_size=2, critical_timeout_s=0.3) as p:
        for i in range(6):
            await p.pub.publish("order.placed", "ORDER_PLACED", {"i": i})
        with pytest.raises(BusSaturated, match=r"EventBus queue full \(2/2\)\. Event processing falling behind"):
            await asyncio.wait_for(p.task, 10)
        assert isinstance(BusSaturated("x"), RuntimeError)  # the seed's exception type
        assert p.sub_stats.queue_failed["critical"] == 1
        assert any(r.levelno == logging.ERROR and "FULL" in r.getMessage() for r in caplog.records)
        gate.open.set()


async def test_fast_path_event_skips_a_full_queue(tmp_path):
    gate = Gate()
    fast_seen: list[Event] = []

    async def on_risk(ev: Event) -> None:
        fast_seen.append(ev)

    handlers = [("tick.", gate, False), ("risk.", on_risk, True)]
    async with bus_pair(tmp_path, handlers, queue_size=5) as p:
        for i in range(30):
            await p.pub.publish("tick.trade.BTCUSDT", "TICK", {"i": i})
        await async_wait_for(lambda: p.sub_stats.received["lossy"] == 30, 10, "ticks in")
        assert p.sub_stats.queue_dropped["lossy"] >= 20  # the queue was full and the handler blocked
        await p.pub.publish("risk.state", "RISK_STATE", {"state": "HARD_STOP"})
        await async_wait_for(lambda: fast_seen, 5, "fast-path risk state despite the full queue")
        assert fast_seen[0].data == {"state": "HARD_STOP"}
        assert not gate.open.is_set()
        gate.open.set()


async def test_queue_metrics_exported(tmp_path):
    gate = Gate()
    async with bus_pair(tmp_path, [("tick.", gate, False)], queue_size=10) as p:
        for i in range(6):
            await p.pub.publish("tick.trade.BTCUSDT", "TICK", {"i": i})
        await async_wait_for(lambda: p.sub_stats.received["lossy"] == 6, 10, "ticks in")
        registry = CollectorRegistry()
        p.sub_stats.register(registry)
        text = generate_latest(registry).decode()
        assert "hean_bus_queue_capacity 10.0" in text
        util = next(line for line in text.splitlines() if line.startswith("hean_bus_queue_utilization "))
        assert 0.4 <= float(util.split()[1]) <= 0.6
        assert 'hean_bus_received_total{class="lossy"} 6.0' in text
        gate.open.set()
