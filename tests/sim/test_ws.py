"""Public and private WebSocket conformance (SPEC §4.2-4.6)."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import aiohttp

KEY, SECRET = "test-key-123", "test-secret-456"   # same as conftest's simulator settings


async def recv_until(ws: aiohttp.ClientWebSocketResponse, match: Any, what: str, timeout: float = 5.0) -> dict:
    """Read JSON frames until ``match(msg)``; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ws.receive_json(timeout=left)
        except TimeoutError:
            break
        if match(msg):
            return msg
    raise AssertionError(f"timed out waiting for {what}")


def auth_args(expires: int, secret: str = SECRET) -> list[Any]:
    sign = hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    return [KEY, expires, sign]


async def test_public_subscribe_ack_snapshot_then_delta(client, sim) -> None:
    async with client.session.ws_connect(sim.ws_public_url) as ws:
        await ws.send_json({"req_id": "sub-1", "op": "subscribe", "args": ["tickers.BTCUSDT", "orderbook.1.BTCUSDT",
                                                                          "publicTrade.BTCUSDT"]})
        ack = await recv_until(ws, lambda m: m.get("op") == "subscribe", "subscribe ack")
        assert ack["success"] is True and ack["req_id"] == "sub-1" and ack["ret_msg"] == ""
        assert isinstance(ack["conn_id"], str)
        snap = await recv_until(ws, lambda m: m.get("topic") == "tickers.BTCUSDT", "ticker snapshot")
        assert snap["type"] == "snapshot" and snap["data"]["lastPrice"] == "50000"
        assert isinstance(snap["cs"], int) and isinstance(snap["ts"], int)
        book = await recv_until(ws, lambda m: m.get("topic") == "orderbook.1.BTCUSDT", "orderbook snapshot")
        assert book["type"] == "snapshot" and book["data"]["b"][0][0] == "50000"
        assert book["data"]["a"][0][0] == "50000.1" and isinstance(book["data"]["u"], int)
        await client.control("price", {"symbol": "BTCUSDT", "price": "50100"})
        seen: dict[str, dict] = {}
        await recv_until(ws, lambda m: seen.setdefault(m.get("topic", ""), m) is not None and
                         {"tickers.BTCUSDT", "publicTrade.BTCUSDT"} <= set(seen), "ticker delta and trade")
        delta, trade = seen["tickers.BTCUSDT"], seen["publicTrade.BTCUSDT"]
        assert delta["type"] == "delta" and delta["data"]["lastPrice"] == "50100"
        assert "fundingRate" not in delta["data"]   # unchanged fields are absent
        item = trade["data"][0]
        assert item["p"] == "50100" and item["S"] == "Buy" and item["s"] == "BTCUSDT" and isinstance(item["T"], int)
        book2 = await recv_until(ws, lambda m: m.get("topic") == "orderbook.1.BTCUSDT", "next book")
        assert book2["data"]["u"] > book["data"]["u"]


async def test_public_ping_and_bad_topic(client, sim) -> None:
    async with client.session.ws_connect(sim.ws_public_url) as ws:
        await ws.send_json({"req_id": "p1", "op": "ping"})
        pong = await recv_until(ws, lambda m: m.get("op") == "ping", "pong")
        assert pong["ret_msg"] == "pong" and pong["success"] is True and pong["req_id"] == "p1"
        await ws.send_json({"req_id": "s2", "op": "subscribe", "args": ["tickers.NOPEUSDT"]})
        fail = await recv_until(ws, lambda m: m.get("op") == "subscribe", "failed ack")
        assert fail["success"] is False and fail["req_id"] == "s2" and fail["ret_msg"]
        await ws.send_json({"op": "subscribe", "args": ["tickers.ETHUSDT"]})
        ok = await recv_until(ws, lambda m: m.get("op") == "subscribe", "ack without req_id")
        assert ok["success"] is True and ok["req_id"] == ""
        await ws.send_json({"req_id": "u1", "op": "unsubscribe", "args": ["tickers.ETHUSDT"]})
        unsub = await recv_until(ws, lambda m: m.get("op") == "unsubscribe", "unsubscribe ack")
        assert unsub["success"] is True and unsub["req_id"] == "u1"


async def test_private_auth_required_and_bad_signature(client, sim) -> None:
    async with client.session.ws_connect(sim.ws_private_url) as ws:
        await ws.send_json({"req_id": "s0", "op": "subscribe", "args": ["order"]})
        fail = await recv_until(ws, lambda m: m.get("op") == "subscribe", "unauthorised subscribe reply")
        assert fail["success"] is False
        await ws.send_json({"req_id": "a0", "op": "auth", "args": auth_args(sim.clock() + 5000, "wrong")})
        bad = await recv_until(ws, lambda m: m.get("op") == "auth", "auth failure")
        assert bad["success"] is False and bad["ret_msg"]
        await ws.send_json({"req_id": "a1", "op": "auth", "args": auth_args(sim.clock() - 1)})
        expired = await recv_until(ws, lambda m: m.get("op") == "auth", "expired auth")
        assert expired["success"] is False


async def test_private_auth_subscribe_and_pushes_after_order(client, sim) -> None:
    async with client.session.ws_connect(sim.ws_private_url) as ws:
        await ws.send_json({"req_id": "a1", "op": "auth", "args": auth_args(sim.clock() + 1000)})
        auth = await recv_until(ws, lambda m: m.get("op") == "auth", "auth reply")
        assert auth["success"] is True and auth["ret_msg"] == "" and auth["conn_id"]
        await ws.send_json({"req_id": "ping-1", "op": "ping"})
        pong = await recv_until(ws, lambda m: m.get("op") == "pong", "private pong")
        assert pong["req_id"] == "ping-1" and pong["args"][0].isdigit()
        await ws.send_json({"req_id": "s1", "op": "subscribe", "args": ["order", "execution", "position", "wallet"]})
        ack = await recv_until(ws, lambda m: m.get("op") == "subscribe", "subscribe ack")
        assert ack["success"] is True and ack["req_id"] == "s1"
        body = await client.create(qty="0.01", orderLinkId="ws-1")
        assert body["retCode"] == 0
        got: dict[str, dict] = {}
        deadline = time.monotonic() + 5
        while len(got) < 4 and time.monotonic() < deadline:
            msg = await ws.receive_json(timeout=deadline - time.monotonic())
            if "topic" in msg:
                got.setdefault(msg["topic"], msg)
        assert set(got) == {"order", "execution", "position", "wallet"}, set(got)
        for msg in got.values():
            assert isinstance(msg["data"], list) and isinstance(msg["creationTime"], int) and msg["id"]
        execution = got["execution"]["data"][0]
        assert execution["orderLinkId"] == "ws-1" and execution["execType"] == "Trade"
        assert execution["category"] == "linear" and isinstance(execution["seq"], int)
        assert got["order"]["data"][0]["orderLinkId"] == "ws-1"
        position = got["position"]["data"][0]
        assert "entryPrice" in position and "avgPrice" not in position and position["size"] == "0.01"
        wallet = got["wallet"]["data"][0]
        assert wallet["accountType"] == "UNIFIED" and wallet["coin"][0]["coin"] == "USDT"
