"""BybitWebSocket against the simulator: public tickers, private auth + pushes, drop/reconnect."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry

from hean.exchange.bybit.errors import Outcome
from hean.exchange.bybit.rest import BybitRestClient
from hean.exchange.bybit.ws import BybitWebSocket
from hean.sim.server import SimServer

from .conftest import SIM_KEY, SIM_SECRET, control
from .helpers import wait_until


@contextlib.asynccontextmanager
async def running(ws: BybitWebSocket) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(ws.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def _ws(url: str, topics: list[str], sink: list[dict[str, Any]], **kw: Any) -> BybitWebSocket:
    async def on_message(msg: dict[str, Any]) -> None:
        sink.append(msg)
    return BybitWebSocket(url, topics=topics, on_message=on_message, backoff_initial_s=0.05,
                          backoff_factor=1.5, backoff_max_s=1.0, jitter=0.0, registry=CollectorRegistry(), **kw)


async def test_public_tickers_arrive(sim: SimServer) -> None:
    received: list[dict[str, Any]] = []
    ws = _ws(sim.ws_public_url, ["tickers.BTCUSDT", "publicTrade.ETHUSDT"], received, name="pub")
    async with running(ws):
        await wait_until(lambda: any(m.get("topic") == "tickers.BTCUSDT" for m in received), "a BTCUSDT ticker")
        first = next(m for m in received if m["topic"] == "tickers.BTCUSDT")
        assert first["type"] == "snapshot" and Decimal(first["data"]["lastPrice"]) > 0


async def test_private_auth_and_execution_push(sim: SimServer, client: BybitRestClient) -> None:
    received: list[dict[str, Any]] = []
    ws = _ws(sim.ws_private_url, ["execution", "order"], received, api_key=SIM_KEY, api_secret=SIM_SECRET,
             name="priv")
    async with running(ws):
        await wait_until(ws.connected.is_set, "private connection authenticated and subscribed")
        resp = await client.place_order(symbol="ETHUSDT", side="Buy", order_type="Market", qty=Decimal("0.01"),
                                        price=None, order_link_id="ws-exec-1")
        assert resp.outcome is Outcome.OK

        def executions() -> list[dict[str, Any]]:
            return [row for m in received if m.get("topic") == "execution" for row in m["data"]
                    if row.get("orderLinkId") == "ws-exec-1"]
        await wait_until(lambda: bool(executions()), "execution push for ws-exec-1")
        assert Decimal(executions()[0]["execQty"]) == Decimal("0.01")
        await wait_until(lambda: any(m.get("topic") == "order" for m in received), "order push")


async def test_private_wrong_secret_never_connects(sim: SimServer) -> None:
    ws = _ws(sim.ws_private_url, ["execution"], [], api_key=SIM_KEY, api_secret="wrong-secret", name="bad")
    async with running(ws):
        await wait_until(lambda: len(ws.backoff_history) >= 2, "auth refusal followed by retries")
        assert not ws.connected.is_set()


async def test_sim_drop_reconnects_with_backoff_and_calls_hook(sim: SimServer) -> None:
    received: list[dict[str, Any]] = []
    hook_calls: list[int] = []

    async def on_connected() -> None:
        hook_calls.append(len(hook_calls) + 1)
    ws = _ws(sim.ws_private_url, ["execution"], received, api_key=SIM_KEY, api_secret=SIM_SECRET, name="drop",
             on_connected=on_connected)
    async with running(ws):
        await wait_until(lambda: hook_calls == [1], "first connection and catch-up hook")
        dropped = await control(sim, "faults/ws-drop", {"stream": "private"})
        assert dropped["dropped"] >= 1
        await wait_until(lambda: hook_calls == [1, 2] and ws.connected.is_set(), "reconnect + second hook call")
        # the connection was healthy before the drop, so the backoff starts from the initial delay
        assert ws.backoff_history == [0.05] and ws.reconnects == 1
        await control(sim, "faults/ws-drop", {"stream": "private"})
        await wait_until(lambda: hook_calls == [1, 2, 3], "second reconnect")
        assert ws.backoff_history == [0.05, 0.05]
