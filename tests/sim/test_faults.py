"""Fault injection observed by a plain aiohttp client (brief: faults)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

RT = "/v5/order/realtime"


async def test_timeout_after_accept_applies_order_but_never_answers(client, sim) -> None:
    await client.control("faults/timeout-after-accept", {"count": 1})
    body = json.dumps({"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
                       "qty": "0.01", "orderLinkId": "held-1"})
    with pytest.raises(asyncio.TimeoutError):
        async with client.session.post(f"{sim.rest_url}/v5/order/create", data=body, headers=client.headers(body),
                                       timeout=aiohttp.ClientTimeout(total=0.5)) as resp:
            await resp.read()
    rows = (await client.ok("GET", RT, "category=linear&orderLinkId=held-1"))["list"]
    assert len(rows) == 1 and rows[0]["orderStatus"] == "Filled"
    assert (await client.create(orderLinkId="after-held"))["retCode"] == 0


@pytest.mark.parametrize("when, orders_after", [("before", 0), ("after", 1)])
async def test_http_5xx_before_or_after_apply(client, when, orders_after) -> None:
    await client.control("faults/http-error", {"when": when, "status": 503, "count": 1,
                                                "path": "/v5/order/create"})
    status, _, _ = await client.post("/v5/order/create", {
        "category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.01",
        "orderLinkId": "five-xx"})
    assert status == 503
    rows = (await client.ok("GET", RT, "category=linear&orderLinkId=five-xx"))["list"]
    assert len(rows) == orders_after
    assert (await client.create(orderLinkId="next-ok"))["retCode"] == 0


async def test_forced_10006_for_next_k_requests(client) -> None:
    await client.control("faults/rate-limit", {"count": 2})
    codes = [(await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))[2]["retCode"]
             for _ in range(3)]
    assert codes == [10006, 10006, 0]


async def test_forced_10006_for_a_duration_then_reset(client) -> None:
    await client.control("faults/rate-limit", {"seconds": 60})
    _, headers, body = await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT")
    assert body["retCode"] == 10006 and body["retMsg"] == "Too many visits!"
    assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) >= body["time"] + 59_000
    await client.control("faults/reset")
    assert (await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))[2]["retCode"] == 0


async def test_fraction_of_requests_fail(client) -> None:
    await client.control("faults/http-error", {"when": "before", "status": 502, "fraction": 0.5})
    statuses = [(await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))[0] for _ in range(40)]
    assert 502 in statuses and 200 in statuses


async def test_latency_fault_is_counted(client, sim) -> None:
    await client.control("faults/latency", {"ms": 20})
    await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT")
    async with client.session.get(f"{sim.rest_url}/metrics") as resp:
        text = await resp.text()
    assert 'hean_sim_faults_injected_total{kind="latency"} 1.0' in text


@pytest.mark.parametrize("stream", ["public", "private"])
async def test_ws_drop_closes_connections(client, sim, waiter, stream) -> None:
    url = sim.ws_public_url if stream == "public" else sim.ws_private_url
    async with client.session.ws_connect(url) as ws:
        await waiter(lambda: (len(sim.public_hub.connections) + len(sim.private_hub.connections)) == 1,
                     "server to register the connection")
        result = await client.control("faults/ws-drop", {"stream": stream})
        assert result["dropped"] == 1
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)


async def test_ws_drop_every(client, sim) -> None:
    await client.control("faults/ws-drop-every", {"seconds": 0.2})
    async with client.session.ws_connect(sim.ws_public_url) as ws:
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_control_rejects_bad_input(client, sim) -> None:
    async with client.session.post(f"{sim.control_url}/price", json={"symbol": "NOPE", "price": "1"}) as resp:
        assert resp.status == 400
    async with client.session.post(f"{sim.control_url}/faults/http-error", json={"when": "never"}) as resp:
        assert resp.status == 400
