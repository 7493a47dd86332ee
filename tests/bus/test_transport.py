"""The bus over tcp:// (several hosts) works like ipc://: same envelope, same sequence checks."""

from __future__ import annotations

import random
import socket

from hean.bus import PUBLISHERS, endpoint
from hean.bus.envelope import Event
from hean.config import BusSettings
from tests.bus.harness import bus_pair
from tests.utils import async_wait_for


def free_run(n: int) -> int:
    """A port p with p .. p+n-1 free on loopback, below the ephemeral range (32768+ on Linux), where an
    outgoing connection could take one of them between this check and the bind (it did, in CI)."""
    for _ in range(200):
        port = random.randrange(20000, 32768 - n)
        socks = []
        try:
            for q in range(port, port + n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", q))
            return port
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise AssertionError(f"no {n} adjacent free ports")


def _free_pair() -> int:
    """A port p with p and p+1 free on loopback (the lossy and critical sockets of one publisher)."""
    return free_run(2)


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
