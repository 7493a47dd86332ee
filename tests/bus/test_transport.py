"""The bus over tcp:// (several hosts) works like ipc://: same envelope, same sequence checks."""

from __future__ import annotations

import socket

from hean.bus import PUBLISHERS, endpoint
from hean.bus.envelope import Event
from hean.config import BusSettings
from tests.bus.harness import bus_pair
from tests.utils import async_wait_for


def _free_pair() -> int:
    """A port p with p and p+1 free on loopback (the lossy and critical sockets of one publisher)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise AssertionError("no two adjacent free ports")


def test_tcp_endpoints_are_distinct_per_publisher_and_class(tmp_path):
    bus = BusSettings(transport="tcp", tcp_base_port=6000)
    eps = {endpoint(bus, tmp_path, s, k) for s in PUBLISHERS for k in ("lossy", "critical")}
    assert len(eps) == 2 * len(PUBLISHERS)
    assert all(ep.startswith("tcp://127.0.0.1:") for ep in eps)


async def test_events_flow_over_tcp(tmp_path):
    port = _free_pair()
    base = port - 2 * PUBLISHERS.index("bench")
    seen: list[Event] = []

    async def record(ev: Event) -> None:
        seen.append(ev)

    async with bus_pair(tmp_path, [("", record, False)], transport="tcp", tcp_base_port=base) as p:
        assert p.pub.endpoints["lossy"] == f"tcp://127.0.0.1:{port}"
        for i in range(5):
            await p.pub.publish("order.placed", "ORDER_PLACED", {"i": i})
            await p.pub.publish("tick.trade.BTCUSDT", "TICK", {"i": i})
        await async_wait_for(lambda: len(seen) == 10, 10, "10 events over tcp")
        assert [e.data["i"] for e in seen if e.topic == "order.placed"] == list(range(5))
        assert p.sub_stats.lost == {}
