"""Position rows as live Bybit serves them (SPEC §2.7, §7.1): createdTime, openTime, updatedTime, seq."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.sim.test_ws import auth_args, recv_until

POS = "/v5/position/list"
MINUTE = 60_000


async def btc_row(client: Any) -> dict[str, Any]:
    return (await client.ok("GET", POS, "category=linear&symbol=BTCUSDT"))["list"][0]


async def test_created_time_survives_flat_and_reopen_open_time_does_not(client, sim) -> None:
    never = await btc_row(client)
    assert never["createdTime"] == "0" and never["openTime"] == 0 and never["seq"] == -1
    assert (await client.create(qty="0.01"))["retCode"] == 0
    first = await btc_row(client)
    created = int(first["createdTime"])
    assert isinstance(first["openTime"], int) and first["openTime"] == created
    assert Decimal(first["markPrice"]) == Decimal(50000) and isinstance(first["seq"], int) and first["seq"] > 0

    await client.control("clock/advance", {"ms": 10 * MINUTE})
    assert (await client.create(qty="0.01", side="Sell"))["retCode"] == 0
    flat = await btc_row(client)
    assert flat["size"] == "0" and flat["side"] == ""
    assert flat["createdTime"] == first["createdTime"], "a flat row keeps the first creation"
    assert flat["openTime"] == 0, "openTime is 0 while flat"

    await client.control("clock/advance", {"ms": 10 * MINUTE})
    reopen_at = sim.clock()
    assert (await client.create(qty="0.02"))["retCode"] == 0
    again = await btc_row(client)
    assert again["createdTime"] == first["createdTime"], "createdTime must not reset on flat -> open"
    assert again["openTime"] >= reopen_at >= created + 20 * MINUTE
    assert again["seq"] > first["seq"]


async def test_open_time_moves_on_a_flip_not_on_adds_or_partial_closes(client, sim) -> None:
    await client.create(qty="0.02")
    opened = (await btc_row(client))["openTime"]
    await client.control("clock/advance", {"ms": MINUTE})
    await client.create(qty="0.01")
    await client.create(qty="0.01", side="Sell")
    kept = await btc_row(client)
    assert kept["openTime"] == opened and kept["size"] == "0.02"
    await client.control("clock/advance", {"ms": MINUTE})
    flip_at = sim.clock()
    await client.create(qty="0.05", side="Sell")
    flipped = await btc_row(client)
    assert flipped["side"] == "Sell" and flipped["size"] == "0.03"
    assert flipped["openTime"] >= flip_at and flipped["createdTime"] == kept["createdTime"]


async def test_updated_time_moves_at_funding(client, sim) -> None:
    await client.create(qty="0.01")
    before = await btc_row(client)
    await client.control("clock/advance", {"ms": 8 * 60 * MINUTE})
    await client.control("funding", {"symbol": "BTCUSDT", "rate": "0.0001"})
    after = await btc_row(client)
    assert int(after["updatedTime"]) >= int(before["updatedTime"]) + 8 * 60 * MINUTE
    assert after["openTime"] == before["openTime"] and after["createdTime"] == before["createdTime"]


async def test_ws_position_carries_open_and_created_time(client, sim) -> None:
    await client.create(qty="0.01")
    await client.create(qty="0.01", side="Sell")
    created = (await btc_row(client))["createdTime"]
    async with client.session.ws_connect(sim.ws_private_url) as ws:
        await ws.send_json({"op": "auth", "args": auth_args(sim.clock() + 5000)})
        await recv_until(ws, lambda m: m.get("op") == "auth", "auth reply")
        await ws.send_json({"op": "subscribe", "args": ["position"]})
        await recv_until(ws, lambda m: m.get("op") == "subscribe", "subscribe ack")
        await client.control("clock/advance", {"ms": MINUTE})
        reopen_at = sim.clock()
        await client.create(qty="0.01")
        push = await recv_until(ws, lambda m: m.get("topic") == "position" and m["data"][0]["size"] == "0.01",
                                "position push after re-open")
        row = push["data"][0]
        assert row["createdTime"] == created and isinstance(row["openTime"], int) and row["openTime"] >= reopen_at
        assert isinstance(row["seq"], int) and row["markPrice"] == "50000"
        await client.control("clock/advance", {"ms": MINUTE})
        funded_at = sim.clock()
        await client.control("funding", {"symbol": "BTCUSDT", "rate": "0.0001"})
        funded = await recv_until(ws, lambda m: m.get("topic") == "position"
                                  and int(m["data"][0]["updatedTime"]) >= funded_at, "position push at funding")
        assert funded["data"][0]["openTime"] == row["openTime"]


class TestKinderOptions:
    @pytest.fixture
    def settings_overrides(self) -> dict:
        return {"created_time_resets": True, "report_open_time": False}

    async def test_created_time_resets_and_open_time_is_zero(self, client) -> None:
        await client.create(qty="0.01")
        first = await btc_row(client)
        assert first["openTime"] == 0
        await client.control("clock/advance", {"ms": MINUTE})
        await client.create(qty="0.01", side="Sell")
        await client.control("clock/advance", {"ms": MINUTE})
        await client.create(qty="0.01")
        again = await btc_row(client)
        assert int(again["createdTime"]) >= int(first["createdTime"]) + 2 * MINUTE and again["openTime"] == 0
