"""A network delay by default (SimSettings rest_delay_ms / ws_delay_ms) that keeps WS frame order."""

from __future__ import annotations

import time

import pytest

from hean.sim import SimSettings
from tests.sim.test_ws import recv_until


def test_a_realistic_delay_is_the_default() -> None:
    settings = SimSettings()
    assert settings.rest_delay_ms > 0 and settings.ws_delay_ms > 0 and 0 < settings.delay_jitter < 1


class TestSlowNetwork:
    @pytest.fixture
    def settings_overrides(self) -> dict:
        return {"rest_delay_ms": 60.0, "ws_delay_ms": 40.0, "delay_jitter": 0.9}

    async def test_rest_pays_the_delay_on_both_legs(self, client) -> None:
        started = time.monotonic()
        await client.ok("GET", "/v5/market/time")
        assert time.monotonic() - started >= 2 * 0.060 * 0.1, "request and reply legs are both delayed"

    async def test_ws_frames_keep_their_order_under_jitter(self, client, sim) -> None:
        async with client.session.ws_connect(sim.ws_public_url) as ws:
            started = time.monotonic()
            await ws.send_json({"req_id": "p", "op": "ping"})
            await recv_until(ws, lambda m: m.get("op") == "ping", "pong")
            assert time.monotonic() - started >= 2 * 0.040 * 0.1
            await ws.send_json({"req_id": "s", "op": "subscribe", "args": ["tickers.BTCUSDT", "publicTrade.BTCUSDT",
                                                                         "orderbook.1.BTCUSDT"]})
            await recv_until(ws, lambda m: m.get("op") == "subscribe", "subscribe ack")
            for step in range(30):
                await client.control("price", {"symbol": "BTCUSDT", "price": str(50000 + 10 * (step + 1))})
            seen: dict[str, list[int]] = {"tickers": [], "publicTrade": [], "orderbook": []}

            def record(m: dict) -> bool:
                kind = m.get("topic", "").split(".")[0]
                if kind == "tickers":
                    seen[kind].append(m["cs"])
                elif kind == "publicTrade":
                    seen[kind] += [t["seq"] for t in m["data"]]
                elif kind == "orderbook":
                    seen[kind].append(m["data"]["u"])
                return m.get("topic") == "tickers.BTCUSDT" and m["data"].get("lastPrice") == "50300"
            await recv_until(ws, record, "the last ticker", timeout=10)
        for kind, numbers in seen.items():
            assert len(numbers) >= 10 and numbers == sorted(numbers), (kind, numbers)
