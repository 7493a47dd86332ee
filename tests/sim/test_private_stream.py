"""execution.fast and private-stream faults as a WS client sees them (SPEC §4.5, §7.3)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from tests.sim.test_ws import auth_args, recv_until

FAST_FIELDS = {"category", "symbol", "orderId", "isMaker", "orderLinkId", "execId", "execPrice", "execQty",
               "side", "execTime", "seq"}


@asynccontextmanager
async def private(client: Any, sim: Any, topics: list[str]) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with client.session.ws_connect(sim.ws_private_url) as ws:
        await ws.send_json({"op": "auth", "args": auth_args(sim.clock() + 5000)})
        assert (await recv_until(ws, lambda m: m.get("op") == "auth", "auth reply"))["success"]
        await ws.send_json({"req_id": "sub", "op": "subscribe", "args": topics})
        assert (await recv_until(ws, lambda m: m.get("op") == "subscribe", "subscribe ack"))["success"]
        yield ws


async def collect(ws: aiohttp.ClientWebSocketResponse, done: Callable[[list[dict]], bool], what: str,
                  timeout: float = 5.0) -> list[dict]:
    """Data messages in arrival order until ``done(messages)``."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while not done(seen):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {what}; got {[m.get('topic') for m in seen]}"
        msg = await ws.receive_json(timeout=left)
        if "topic" in msg:
            seen.append(msg)
    return seen


def items(messages: list[dict], topic: str, link_id: str | None = None) -> list[tuple[int, dict]]:
    """(arrival index, item) of ``topic`` messages, optionally only one orderLinkId."""
    return [(i, d) for i, m in enumerate(messages) if m["topic"] == topic for d in m["data"]
            if link_id is None or d.get("orderLinkId") == link_id]


async def test_execution_fast_is_trade_only_short_and_first(client, sim) -> None:
    async with private(client, sim, ["execution.fast", "execution"]) as ws:
        await client.create(qty="0.01", orderLinkId="fast-taker")
        got = await collect(ws, lambda s: bool(items(s, "execution", "fast-taker")), "the taker fill")
        fast = [(i, m) for i, m in enumerate(got) if m["topic"] == "execution.fast"]
        assert fast and set(fast[0][1]) == {"topic", "creationTime", "data"}, "no id in the fast envelope"
        item = fast[0][1]["data"][0]
        assert set(item) == FAST_FIELDS and item["orderLinkId"] == "fast-taker" and item["isMaker"] is False
        assert isinstance(item["seq"], int) and item["category"] == "linear"
        full_index, full = items(got, "execution", "fast-taker")[0]
        assert fast[0][0] < full_index and item["execId"] == full["execId"], "fast comes before execution"

        await client.create(orderType="Limit", price="49000", orderLinkId="fast-maker")
        await client.control("price", {"symbol": "BTCUSDT", "price": "49000"})
        got = await collect(ws, lambda s: bool(items(s, "execution", "fast-maker")), "the maker fill")
        maker_fast = [d for _, d in items(got, "execution.fast") if d["isMaker"]]
        assert len(maker_fast) == 1 and maker_fast[0]["orderLinkId"] == "", "maker orderLinkId is always \"\""

        await client.control("funding", {"symbol": "BTCUSDT", "rate": "0.0001"})
        got = await collect(ws, lambda s: any(d["execType"] == "Funding" for _, d in items(s, "execution")),
                            "the funding execution")
        assert not items(got, "execution.fast"), "execution.fast carries Trade only"


async def test_categorised_fast_topic(client, sim) -> None:
    async with private(client, sim, ["execution.fast.linear"]) as ws:
        await client.create(qty="0.01", orderLinkId="fast-linear")
        got = await collect(ws, lambda s: bool(s), "a fast push")
        assert got[0]["topic"] == "execution.fast.linear" and got[0]["data"][0]["orderLinkId"] == "fast-linear"


async def test_double_filled_push(client, sim) -> None:
    await client.control("faults/double-filled", {"count": 1})
    async with private(client, sim, ["order"]) as ws:
        await client.create(qty="0.01", orderLinkId="twice")
        got = await collect(ws, lambda s: len(items(s, "order", "twice")) >= 2, "two Filled pushes")
        first, second = (d for _, d in items(got, "order", "twice"))
        assert first["orderStatus"] == second["orderStatus"] == "Filled"
        assert (first["cancelType"], first["rejectReason"]) == ("UNKNOWN", "EC_NoError")
        assert (second["cancelType"], second["rejectReason"]) == ("CancelByUser", "EC_OrigClOrdIDDoesNotExist")
        await client.create(qty="0.01", orderLinkId="once")
        got = await collect(ws, lambda s: bool(items(s, "order", "once")), "the next order push")
        await client.create(qty="0.01", side="Sell", orderLinkId="fence")
        got += await collect(ws, lambda s: bool(items(s, "order", "fence")), "a fence push")
        assert len(items(got, "order", "once")) == 1, "count is honoured"


async def test_execution_first_without_new(client, sim) -> None:
    await client.control("faults/execution-first", {"count": 1})
    async with private(client, sim, ["order", "execution"]) as ws:
        await client.create(orderType="Limit", price="49000", orderLinkId="no-new")
        await client.create(orderType="Limit", price="48000", orderLinkId="with-new")
        got = await collect(ws, lambda s: bool(items(s, "order", "with-new")), "the second order's New")
        assert not items(got, "order", "no-new"), "the faulted order has no New push"
        await client.control("price", {"symbol": "BTCUSDT", "price": "49000"})
        got = await collect(ws, lambda s: bool(items(s, "order", "no-new")), "the faulted order's push")
        (exec_at, _), = items(got, "execution", "no-new")
        (order_at, row), = items(got, "order", "no-new")
        assert exec_at < order_at and row["orderStatus"] == "Filled", "execution before order"


async def test_duplicate_push(client, sim) -> None:
    await client.control("faults/duplicate-push", {"topic": "execution", "count": 1})
    async with private(client, sim, ["execution", "order"]) as ws:
        await client.create(qty="0.01", orderLinkId="dup-push")
        got = await collect(ws, lambda s: len(items(s, "execution", "dup-push")) >= 2, "the duplicated push")
        pushes = [m for m in got if m["topic"] == "execution"]
        assert pushes[0] == pushes[1], "an identical second copy"
        await client.create(qty="0.01", side="Sell", orderLinkId="single")
        got = await collect(ws, lambda s: bool(items(s, "order", "single")) and bool(items(s, "execution", "single")),
                            "the next order and its execution")
        await client.create(qty="0.01", orderLinkId="fence")
        got += await collect(ws, lambda s: bool(items(s, "execution", "fence")), "a fence execution")
        assert len(items(got, "execution", "single")) == 1
