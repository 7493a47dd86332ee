"""BybitWebSocket against a tiny loopback server: malformed frames, backoff, stale, auth, pings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from hean.exchange.bybit.errors import HostGuardError
from hean.exchange.bybit.ws import BybitWebSocket

from .helpers import ScriptedWsServer, wait_until

TOPIC = "tickers.BTCUSDT"


@contextlib.asynccontextmanager
async def running(ws: BybitWebSocket) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(ws.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def _client(url: str, received: list[dict[str, Any]], **kw: Any) -> BybitWebSocket:
    async def on_message(msg: dict[str, Any]) -> None:
        received.append(msg)
    options: dict[str, Any] = dict(topics=[TOPIC], on_message=on_message, backoff_initial_s=0.05,
                                   backoff_factor=2.0, backoff_max_s=0.15, jitter=0.0,
                                   registry=CollectorRegistry(), name="t")
    options.update(kw)
    return BybitWebSocket(url, **options)


async def test_malformed_frames_are_counted_and_skipped() -> None:
    async def script(ws: web.WebSocketResponse, number: int) -> None:
        for bad in ("not json {", "[1, 2]", "42", '"text"'):
            await ws.send_str(bad)
        await ws.send_bytes(b"\xff\xfe")
        await ws.send_str('{"topic": "tickers.BTCUSDT", "type": "snapshot", "data": {"lastPrice": "1"}}')

    server = ScriptedWsServer(after_subscribe=script)
    await server.start()
    registry = CollectorRegistry()
    received: list[dict[str, Any]] = []
    ws = _client(f"{server.url}/v5/public/linear", received, registry=registry)
    try:
        async with running(ws):
            await wait_until(lambda: len(received) == 1, "the valid ticker after the malformed frames")
            assert received[0]["data"] == {"lastPrice": "1"}
            assert registry.get_sample_value("hean_ws_malformed_total", {"name": "t"}) == 5
            assert ws.reconnects == 0 and ws.connected.is_set()
    finally:
        await server.stop()


async def test_refused_connects_follow_backoff_schedule_then_reset_after_healthy() -> None:
    async def drop_first(ws: web.WebSocketResponse, number: int) -> None:
        if number == 1:
            await ws.close()  # a healthy connection that then drops

    server = ScriptedWsServer(refuse_first=4, after_subscribe=drop_first)
    await server.start()
    connected_calls: list[int] = []

    async def on_connected() -> None:
        connected_calls.append(server.connections)
    ws = _client(f"{server.url}/v5/public/linear", [], on_connected=on_connected)
    try:
        async with running(ws):
            await wait_until(lambda: server.connections == 2 and ws.connected.is_set(), "second connection")
            # 4 refusals: 0.05, 0.10, 0.15 (cap), 0.15; then healthy, dropped -> reset to 0.05
            assert ws.backoff_history == pytest.approx([0.05, 0.1, 0.15, 0.15, 0.05])
            assert ws.reconnects == 5
            assert connected_calls == [1, 2]
            subscribes = [m for m in server.received if m.get("op") == "subscribe"]
            assert len(subscribes) == 2 and all(m["args"] == [TOPIC] for m in subscribes)
    finally:
        await server.stop()


async def test_jitter_stays_within_bounds() -> None:
    server = ScriptedWsServer(refuse_first=3)
    await server.start()
    ws = _client(f"{server.url}/v5/public/linear", [], jitter=0.5, backoff_factor=1.0, backoff_max_s=0.05)
    try:
        async with running(ws):
            await wait_until(lambda: ws.connected.is_set(), "connection after refusals")
    finally:
        await server.stop()
    assert len(ws.backoff_history) == 3
    assert all(0.025 <= d <= 0.075 for d in ws.backoff_history)


async def test_silent_connection_is_treated_as_stale_and_reconnected() -> None:
    server = ScriptedWsServer()
    await server.start()
    ws = _client(f"{server.url}/v5/public/linear", [], stale_after_s=0.3, ping_interval_s=60)
    try:
        async with running(ws):
            await wait_until(lambda: server.connections >= 2, "reconnect after the stale timeout")
            assert ws.reconnects >= 1
    finally:
        await server.stop()


async def test_unanswered_subscribe_fails_and_retries() -> None:
    server = ScriptedWsServer(answer_subscribe=False)
    await server.start()
    hook_calls: list[int] = []

    async def on_connected() -> None:
        hook_calls.append(1)
    ws = _client(f"{server.url}/v5/public/linear", [], stale_after_s=0.2, on_connected=on_connected)
    try:
        async with running(ws):
            await wait_until(lambda: server.connections >= 2, "a retry after the unanswered subscribe")
            assert ws.reconnects >= 1 and hook_calls == [] and not ws.connected.is_set()
    finally:
        await server.stop()


async def test_json_ping_sent_periodically() -> None:
    server = ScriptedWsServer()
    await server.start()
    ws = _client(f"{server.url}/v5/public/linear", [], ping_interval_s=0.05)
    try:
        async with running(ws):
            await wait_until(lambda: sum(m.get("op") == "ping" for m in server.received) >= 2, "two JSON pings")
    finally:
        await server.stop()


async def test_private_auth_signature_accepted_and_wrong_secret_refused() -> None:
    server = ScriptedWsServer(secret="s3cret")
    await server.start()
    try:
        good = _client(f"{server.url}/v5/private", [], topics=["execution"], api_key="k", api_secret="s3cret")
        async with running(good):
            await wait_until(good.connected.is_set, "authenticated private connection")
        bad = _client(f"{server.url}/v5/private", [], topics=["execution"], api_key="k", api_secret="wrong")
        async with running(bad):
            await wait_until(lambda: len(bad.backoff_history) >= 2, "refused auth retried with backoff")
            assert not bad.connected.is_set()
        auth = [m for m in server.received if m.get("op") == "auth"]
        assert isinstance(auth[0]["args"][1], int) and auth[0]["args"][0] == "k"
    finally:
        await server.stop()


async def test_resubscribe_sends_unsubscribe_then_subscribe() -> None:
    server = ScriptedWsServer()
    await server.start()
    ws = _client(f"{server.url}/v5/public/linear", [])
    try:
        async with running(ws):
            await wait_until(ws.connected.is_set, "connected")
            await ws.resubscribe(TOPIC)
            await wait_until(lambda: [m.get("op") for m in server.received if m.get("op") != "ping"][-2:]
                             == ["unsubscribe", "subscribe"], "unsubscribe+subscribe pair")
            assert ws.reconnects == 0
    finally:
        await server.stop()


async def test_handler_exception_does_not_kill_connection() -> None:
    async def script(ws: web.WebSocketResponse, number: int) -> None:
        await ws.send_str('{"topic": "tickers.BTCUSDT", "data": {"n": 1}}')
        await ws.send_str('{"topic": "tickers.BTCUSDT", "data": {"n": 2}}')

    server = ScriptedWsServer(after_subscribe=script)
    await server.start()
    seen: list[int] = []

    async def on_message(msg: dict[str, Any]) -> None:
        seen.append(msg["data"]["n"])
        if msg["data"]["n"] == 1:
            raise RuntimeError("handler bug")
    ws = _client(f"{server.url}/v5/public/linear", [], on_message=on_message)
    try:
        async with running(ws):
            await wait_until(lambda: seen == [1, 2], "both messages despite the handler error")
            assert ws.reconnects == 0
    finally:
        await server.stop()


def test_host_guard_on_real_ws_host() -> None:
    async def noop(msg: dict[str, Any]) -> None:
        return None
    with pytest.raises(HostGuardError, match="dry_run mode"):
        BybitWebSocket("wss://stream.bybit.com/v5/public/linear", topics=[], on_message=noop)
    with pytest.raises(HostGuardError, match="without is_live=true"):
        BybitWebSocket("wss://stream.bybit.com/v5/private", topics=[], on_message=noop, dry_run=False)
