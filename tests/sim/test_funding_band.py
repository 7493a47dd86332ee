"""Funding execution rows (SPEC §7.3) and the futures price band (set-price-limit.mdx, SPEC §7.2)."""

from __future__ import annotations

from decimal import Decimal

from tests.sim.test_ws import auth_args, recv_until

EXEC, RT = "/v5/execution/list", "/v5/order/realtime"


async def test_funding_row_has_position_size_side_and_order_id(client, sim) -> None:
    await client.create(qty="0.03", side="Sell")
    async with client.session.ws_connect(sim.ws_private_url) as ws:
        await ws.send_json({"op": "auth", "args": auth_args(sim.clock() + 5000)})
        await recv_until(ws, lambda m: m.get("op") == "auth", "auth reply")
        await ws.send_json({"op": "subscribe", "args": ["execution"]})
        await recv_until(ws, lambda m: m.get("op") == "subscribe", "subscribe ack")
        await client.control("funding", {"symbol": "BTCUSDT", "rate": "0.0001"})
        push = await recv_until(ws, lambda m: m.get("topic") == "execution"
                                and m["data"][0]["execType"] == "Funding", "funding execution push")
    rows = (await client.ok("GET", EXEC, "category=linear&execType=Funding"))["list"]
    assert len(rows) == 1
    for row in (rows[0], push["data"][0]):
        assert row["execQty"] == "0.03" and row["side"] == "Sell" and row["orderId"], row
        assert row["orderType"] == "UNKNOWN" and row["orderLinkId"] == ""
        assert Decimal(row["execFee"]) < 0, "a short receives positive funding: negative fee"
    assert rows[0]["orderId"] == push["data"][0]["orderId"] and rows[0]["execId"] == push["data"][0]["execId"]


async def test_limit_price_beyond_the_band_moves_to_the_edge(client) -> None:
    inst = (await client.ok("GET", "/v5/market/instruments-info", "category=linear&symbol=BTCUSDT"))["list"][0]
    ratio = Decimal(inst["riskParameters"]["priceLimitRatioX"])
    high, low = Decimal(50000) * (1 + ratio), Decimal(50000) * (1 - ratio)
    buy = await client.create(orderType="Limit", price="60000", orderLinkId="band-buy")
    assert buy["retCode"] == 0, "futures default modifies the price, it does not reject"
    row = (await client.ok("GET", RT, "category=linear&orderLinkId=band-buy"))["list"][0]
    assert Decimal(row["price"]) == high and row["orderStatus"] == "Filled"
    assert Decimal(row["avgPrice"]) == Decimal("50000.1")
    sell = await client.create(orderType="Limit", side="Sell", price="30000", qty="0.01", orderLinkId="band-sell",
                               timeInForce="IOC")
    assert sell["retCode"] == 0
    row = (await client.ok("GET", RT, "category=linear&orderLinkId=band-sell"))["list"][0]
    assert Decimal(row["price"]) == low
    inside = await client.create(orderType="Limit", price="45000", orderLinkId="band-inside")
    assert inside["retCode"] == 0
    row = (await client.ok("GET", RT, "category=linear&orderLinkId=band-inside"))["list"][0]
    assert row["price"] == "45000" and row["orderStatus"] == "New", "a passive buy far below is not touched"
