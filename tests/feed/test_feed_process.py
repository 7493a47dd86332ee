"""`hean run feed` against a scripted public WS server of our own (and the simulator for a drop)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import WSMsgType, web

from tests.reconciler.helpers import async_scrape, ready_port, running_sim
from tests.utils import async_wait_for, hean, hean_env, metric

from hean.bus import BusStats, Event, Subscriber
from hean.config import BusSettings

Script = Callable[[web.WebSocketResponse, int], Any]


class FakePublicWs:
    """Acks every subscribe, records every op, then runs `script(ws, connection_number)`."""

    def __init__(self, script: Script, refuse_first: int = 0) -> None:
        self.script, self.ops, self.connections, self.refuse_first = script, [], 0, refuse_first

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        n = self.connections
        runner = None
        if n <= self.refuse_first:           # close before the subscribe is answered: never healthy
            await ws.close()
            return ws
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            req = json.loads(msg.data)
            self.ops.append((n, req.get("op"), tuple(req.get("args") or ())))
            if req.get("op") in ("subscribe", "unsubscribe"):
                await ws.send_str(json.dumps({"success": True, "op": req["op"], "req_id": req.get("req_id")}))
                if runner is None:
                    runner = asyncio.create_task(self.script(ws, n))
        if runner is not None:
            runner.cancel()
        return ws


@asynccontextmanager
async def fake_server(script: Script, refuse_first: int = 0) -> AsyncIterator[tuple[FakePublicWs, str]]:
    fake = FakePublicWs(script, refuse_first)
    app = web.Application()
    app.router.add_get("/ws", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield fake, f"ws://127.0.0.1:{port}/ws"
    finally:
        await runner.cleanup()


def feed_env(tmp_path, url: str, **extra: Any) -> dict[str, str]:
    return hean_env(tmp_path, bybit__ws_public_url=url, symbols="BTCUSDT", ws__jitter="0", **extra)


class Ticks:
    def __init__(self, tmp_path) -> None:
        self.events: list[Event] = []
        self.sub = Subscriber(BusSettings(), tmp_path / "run", BusStats()).connect("feed").on("tick.", self._got)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.sub.run(self._stop))

    async def _got(self, ev: Event) -> None:
        self.events.append(ev)

    async def close(self) -> None:
        self._stop.set()
        await asyncio.wait_for(self._task, 5)
        self.sub.close()


def ticker(price: str, ts: int = 1_700_000_000_000) -> str:
    return json.dumps({"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": ts,
                       "data": {"symbol": "BTCUSDT", "lastPrice": price, "bid1Price": price, "ask1Price": price,
                                "markPrice": price}})


def book(kind: str, u: int) -> str:
    return json.dumps({"topic": "orderbook.1.BTCUSDT", "type": kind, "ts": 1_700_000_000_000,
                       "data": {"s": "BTCUSDT", "b": [["100.1", "2"]], "a": [["100.2", "3"]], "u": u, "seq": u}})


async def test_failed_connections_back_off_on_the_configured_schedule(tmp_path):
    async def script(ws: web.WebSocketResponse, n: int) -> None:
        while True:
            await ws.send_str(ticker("100.5"))
            await asyncio.sleep(0.05)

    async with fake_server(script, refuse_first=4) as (fake, url):
        env = feed_env(tmp_path, url, ws__backoff_initial_s="0.2", ws__backoff_factor="2", ws__backoff_max_s="0.8")
        proc = hean(["run", "feed"], env)
        ticks = Ticks(tmp_path)
        try:
            await ready_port(proc)
            await async_wait_for(lambda: ticks.events, 30, "ticks once the server behaves")
            delays = [r["delay_s"] for r in proc.records() if r.get("message") == "ws reconnecting"]
            assert delays[:4] == [0.2, 0.4, 0.8, 0.8]      # x2 per failure, capped at 0.8 (jitter 0 here)
            tick = ticks.events[-1]
            assert tick.topic == "tick.ticker.BTCUSDT" and tick.data["last_price"] == "100.5"
            assert tick.data["exchange_ts_ms"] == 1_700_000_000_000 and tick.data["recv_ts_ns"] <= tick.ts_ns
        finally:
            proc.kill()
            await ticks.close()


async def test_orderbook_gap_resubscribes_and_malformed_frames_are_skipped(tmp_path):
    async def script(ws: web.WebSocketResponse, n: int) -> None:
        for frame in (book("snapshot", 10), book("delta", 11), book("delta", 14),   # hole: 12, 13 missing
                      "this is not json", "[1, 2]", ticker("abc")):
            await ws.send_str(frame)
        while True:
            await ws.send_str(ticker("101"))
            await asyncio.sleep(0.05)

    async with fake_server(script) as (fake, url):
        proc = hean(["run", "feed"], feed_env(tmp_path, url))
        ticks = Ticks(tmp_path)
        try:
            port = await ready_port(proc)
            topic = ("orderbook.1.BTCUSDT",)
            await async_wait_for(lambda: (1, "unsubscribe", topic) in fake.ops, 20, "the feed to unsubscribe the book")
            subs = [op for op in fake.ops if op[1] == "subscribe" and topic[0] in op[2]]
            assert len(subs) == 2 and subs[-1][0] == 1       # re-subscribed on the same connection
            await async_wait_for(lambda: any(e.data.get("last_price") == "101" for e in ticks.events), 20,
                                 "good ticks after the bad frames")
            samples = await async_scrape(port)
            assert metric(samples, "hean_feed_resubscribes_total", symbol="BTCUSDT") == 1
            assert samples.get('hean_ws_malformed_total{name="public"}', 0) == 2       # not JSON, not an object
            assert metric(samples, "hean_feed_malformed_total", reason="content") == 1  # price "abc"
            assert fake.connections == 1                     # nothing above broke the connection
        finally:
            proc.kill()
            await ticks.close()


async def test_simulator_drop_reconnects_and_ticks_resume(tmp_path):
    async with running_sim(volatility=0.001) as sim:     # a moving price: ticker deltas on every step
        env = feed_env(tmp_path, sim.ws_public_url, ws__backoff_initial_s="0.2")
        proc = hean(["run", "feed"], env)
        ticks = Ticks(tmp_path)
        try:
            port = await ready_port(proc)
            await async_wait_for(lambda: {e.topic for e in ticks.events} >= {"tick.ticker.BTCUSDT", "tick.book.BTCUSDT"},
                                 20, "ticker and book ticks")
            await sim.drop_ws("public")
            before = len(ticks.events)
            await async_wait_for(lambda: len(sim.public_hub.connections) == 1, 20, "the feed to reconnect")
            await async_wait_for(lambda: len(ticks.events) > before + 5, 20, "ticks after the reconnect")
            samples = await async_scrape(port)
            assert samples.get('hean_ws_reconnects_total{name="public"}', 0) >= 1
            assert metric(samples, "hean_feed_resubscribes_total") == 0
        finally:
            proc.kill()
            await ticks.close()
