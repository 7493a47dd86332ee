"""Control API behaviour that the demo and other helpers rely on."""

from __future__ import annotations

from decimal import Decimal

import pytest


@pytest.fixture
def settings_overrides() -> dict:
    return {"volatility": 0.01}


async def test_scripted_path_then_resume_walk(client, sim, waiter) -> None:
    await client.control("price-path", {"symbol": "BTCUSDT", "steps": [[0.05, "50500"], [0.05, "51000"]]})
    await waiter(lambda: sim.exchange.last("BTCUSDT") == Decimal("51000"), "scripted price 51000")
    held = await client.state()
    assert held["prices"]["BTCUSDT"] == "51000"
    await client.control("resume", {"symbol": "BTCUSDT"})
    await waiter(lambda: sim.exchange.last("BTCUSDT") != Decimal("51000"), "random walk to move the price")
    assert sim.exchange.last("ETHUSDT") == Decimal("3000")   # still held


async def test_wallet_credit_and_debit(client) -> None:
    assert (await client.control("wallet", {"amount": "-250.5"}))["wallet_balance"] == "99749.5"
    wallet = (await client.ok("GET", "/v5/account/wallet-balance", "accountType=UNIFIED&coin=USDT"))["list"][0]
    assert wallet["coin"][0]["walletBalance"] == "99749.5"


async def test_clock_advance_moves_server_time(client, sim) -> None:
    before = (await client.ok("GET", "/v5/market/time"))
    await client.control("clock/advance", {"ms": 3_600_000})
    after = (await client.ok("GET", "/v5/market/time"))
    assert int(after["timeSecond"]) - int(before["timeSecond"]) >= 3600


async def test_metrics_count_orders_rejects_and_executions(client, sim) -> None:
    await client.create(orderLinkId="m-1")
    await client.create(orderLinkId="m-1")
    async with client.session.get(sim.metrics_url) as resp:
        text = await resp.text()
    assert 'hean_sim_orders_created_total{symbol="BTCUSDT"} 1.0' in text
    assert 'hean_sim_rejects_total{ret_code="110072"} 1.0' in text
    assert 'hean_sim_executions_total{exec_type="Trade",symbol="BTCUSDT"} 1.0' in text
    async with client.session.get(f"{sim.control_url}/orders?orderLinkId=m-1") as resp:
        assert len((await resp.json())["list"]) == 1
