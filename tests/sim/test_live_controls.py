"""Controls other suites drive live-exchange faults with: held REST replies, Bybit restarts (SPEC §7.2)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.sim.test_ws import auth_args, recv_until

RT, HIST, POS = "/v5/order/realtime", "/v5/order/history", "/v5/position/list"


async def metric(client: Any, needle: str) -> bool:
    async with client.session.get(client.server.metrics_url) as resp:
        return needle in await resp.text()


async def test_delayed_reply_is_an_older_snapshot_arriving_after_newer_ws_state(client, sim, waiter) -> None:
    async with client.session.ws_connect(sim.ws_private_url) as ws:
        await ws.send_json({"op": "auth", "args": auth_args(sim.clock() + 5000)})
        await recv_until(ws, lambda m: m.get("op") == "auth", "auth reply")
        await ws.send_json({"op": "subscribe", "args": ["position"]})
        await recv_until(ws, lambda m: m.get("op") == "subscribe", "subscribe ack")
        await client.control("faults/delay-reply", {"path": POS, "ms": 800, "count": 1})
        arrivals: list[str] = []

        async def snapshot() -> dict:
            _, _, body = await client.get(POS, "category=linear&symbol=BTCUSDT")
            arrivals.append("rest")
            return body

        held = asyncio.create_task(snapshot())
        await waiter(lambda: metric(client, 'kind="delay_reply"} 1.0'), "the held position/list to be answered")
        assert (await client.create(qty="0.01"))["retCode"] == 0
        push = await recv_until(ws, lambda m: m.get("topic") == "position" and m["data"][0]["size"] == "0.01",
                                "position push after the fill")
        arrivals.append("ws")
        body = await held
        assert arrivals == ["ws", "rest"], "the WS push must overtake the held REST reply"
        row = body["result"]["list"][0]
        assert row["size"] == "0", "the held reply shows the state read when the request arrived"
        assert body["time"] <= push["creationTime"]
        # count is honoured: the next call is not held
        assert (await client.ok("GET", POS, "category=linear&symbol=BTCUSDT"))["list"][0]["size"] == "0.01"
        assert await metric(client, 'kind="delay_reply"} 1.0')


async def place_many(client: Any, count: int) -> None:
    for start in range(0, count, 50):
        bodies = await asyncio.gather(*(client.create(qty="0.001", side="Buy" if i % 2 else "Sell")
                                        for i in range(start, min(count, start + 50))))
        assert all(b["retCode"] == 0 for b in bodies), bodies


async def test_realtime_finds_closed_orders_only_among_the_500_most_recent(client) -> None:
    assert (await client.create(qty="0.001", orderLinkId="oldest"))["retCode"] == 0
    assert (await client.create(qty="0.001", side="Sell", orderLinkId="second"))["retCode"] == 0
    await place_many(client, 499)
    assert (await client.ok("GET", RT, "category=linear&orderLinkId=oldest"))["list"] == []
    assert (await client.ok("GET", RT, "category=linear&orderLinkId=second"))["list"][0]["orderStatus"] == "Filled"
    recent = (await client.ok("GET", RT, "category=linear&symbol=BTCUSDT&openOnly=1&limit=50"))
    assert len(recent["list"]) == 50 and recent["nextPageCursor"]
    history = (await client.ok("GET", HIST, "category=linear&orderLinkId=oldest"))["list"]
    assert [h["orderStatus"] for h in history] == ["Filled"], "order/history still has it"


async def test_realtime_cache_clear_is_a_bybit_restart(client) -> None:
    assert (await client.create(qty="0.001", orderLinkId="filled-before"))["retCode"] == 0
    resting = await client.create(orderType="Limit", price="40000", qty="0.001", orderLinkId="resting")
    assert (await client.ok("GET", RT, "category=linear&orderLinkId=filled-before"))["list"]
    assert (await client.control("faults/realtime-cache-clear", {}))["dropped"] == 1
    assert (await client.ok("GET", RT, "category=linear&orderLinkId=filled-before"))["list"] == []
    assert (await client.ok("GET", RT, "category=linear&symbol=BTCUSDT&openOnly=1"))["list"] == []
    by_id = (await client.ok("GET", RT, f"category=linear&orderId={resting['result']['orderId']}"))["list"]
    assert [r["orderStatus"] for r in by_id] == ["New"], "open orders are not part of the cleared cache"
    history = (await client.ok("GET", HIST, "category=linear&orderLinkId=filled-before"))["list"]
    assert [h["orderStatus"] for h in history] == ["Filled"]
    assert (await client.create(qty="0.001", orderLinkId="filled-after"))["retCode"] == 0
    assert (await client.ok("GET", RT, "category=linear&orderLinkId=filled-after"))["list"], "cache refills"
