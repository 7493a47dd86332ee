"""Fixtures for simulator conformance tests.

The signer here is written independently of hean.sim.auth (and of hean.exchange),
straight from SPEC §1.3, so a shared signing bug cannot hide.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from hean.sim import SimServer, SimSettings

KEY = "test-key-123"
SECRET = "test-secret-456"


def hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


class BybitTestClient:
    """A minimal hand-rolled Bybit v5 client for conformance tests."""

    def __init__(self, session: aiohttp.ClientSession, server: SimServer, key: str = KEY,
                 secret: str = SECRET) -> None:
        self.session, self.server, self.key, self.secret = session, server, key, secret

    def headers(self, payload: str, *, ts: int | None = None, recv_window: str = "5000",
                key: str | None = None, secret: str | None = None) -> dict[str, str]:
        ts = ts if ts is not None else self.server.clock()
        key = key if key is not None else self.key
        sign = hmac_hex(secret if secret is not None else self.secret, f"{ts}{key}{recv_window}{payload}")
        return {"X-BAPI-API-KEY": key, "X-BAPI-TIMESTAMP": str(ts), "X-BAPI-RECV-WINDOW": recv_window,
                "X-BAPI-SIGN": sign, "X-BAPI-SIGN-TYPE": "2", "Content-Type": "application/json"}

    async def get(self, path: str, query: str = "", **sign_kw: Any) -> tuple[int, dict[str, Any], Any]:
        """GET with ``query`` sent verbatim (already in wire form, no leading ?)."""
        url = f"{self.server.rest_url}{path}" + (f"?{query}" if query else "")
        async with self.session.get(aiohttp.client.URL(url, encoded=True),
                                    headers=self.headers(query, **sign_kw)) as resp:
            return resp.status, dict(resp.headers), await self._body(resp)

    async def post(self, path: str, body: dict[str, Any] | str, **sign_kw: Any
                   ) -> tuple[int, dict[str, Any], Any]:
        raw = body if isinstance(body, str) else json.dumps(body)
        async with self.session.post(f"{self.server.rest_url}{path}", data=raw.encode(),
                                     headers=self.headers(raw, **sign_kw)) as resp:
            return resp.status, dict(resp.headers), await self._body(resp)

    @staticmethod
    async def _body(resp: aiohttp.ClientResponse) -> Any:
        text = await resp.text()
        try:
            return json.loads(text)
        except ValueError:
            return text

    async def ok(self, method: str, path: str, payload: Any = "") -> dict[str, Any]:
        """Call and assert retCode 0; return ``result``."""
        status, _, body = await (self.get(path, payload) if method == "GET" else self.post(path, payload))
        assert status == 200 and body["retCode"] == 0, body
        return body["result"]

    async def create(self, **fields: Any) -> dict[str, Any]:
        order = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.01"}
        order.update(fields)
        _, _, body = await self.post("/v5/order/create", order)
        return body

    async def control(self, route: str, body: dict[str, Any] | None = None) -> Any:
        async with self.session.post(f"{self.server.control_url}/{route}", json=body or {}) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def state(self) -> dict[str, Any]:
        async with self.session.get(f"{self.server.control_url}/state") as resp:
            return await resp.json()


async def wait_for(check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 5.0) -> None:
    """Poll ``check`` every 20 ms until true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sim_settings(**overrides: Any) -> SimSettings:
    base: dict[str, Any] = {"api_key": KEY, "api_secret": SECRET, "rate_limit_scale": 100.0,
                            "tick_interval_s": 0.05, "initial_balance": Decimal("100000")}
    base.update(overrides)
    return SimSettings(**base)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change the simulator's settings."""
    return {}


@pytest.fixture
async def sim(settings_overrides: dict[str, Any]) -> AsyncIterator[SimServer]:
    server = SimServer(sim_settings(**settings_overrides))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[BybitTestClient]:
    async with aiohttp.ClientSession() as session:
        api = BybitTestClient(session, sim)
        await api.control("price", {"symbol": "BTCUSDT", "price": "50000"})
        await api.control("price", {"symbol": "ETHUSDT", "price": "3000"})
        yield api


@pytest.fixture
def waiter() -> Callable[..., Awaitable[None]]:
    return wait_for
