"""Order entry, queries, positions and wallet over REST (SPEC §2.1-2.8, §3)."""

from __future__ import annotations

from decimal import Decimal

import pytest

RT = "/v5/order/realtime"


async def test_limit_create_realtime_cancel_history(client) -> None:
    body = await client.create(orderType="Limit", price="45000", orderLinkId="lim-1")
    assert body["retCode"] == 0
    order_id = body["result"]["orderId"]
    rows = (await client.ok("GET", RT, "category=linear&symbol=BTCUSDT"))["list"]
    assert [r["orderId"] for r in rows] == [order_id]
    row = rows[0]
    assert row["orderStatus"] == "New" and row["price"] == "45000" and row["qty"] == "0.01"
    assert row["positionIdx"] == 0 and row["reduceOnly"] is False and row["leavesQty"] == "0.01"
    assert row["createdTime"].isdigit()
    cancel = await client.ok("POST", "/v5/order/cancel",
                             {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "lim-1"})
    assert cancel == {"orderId": order_id, "orderLinkId": "lim-1"}
    assert (await client.ok("GET", RT, "category=linear&symbol=BTCUSDT"))["list"] == []
    by_link = (await client.ok("GET", RT, "category=linear&orderLinkId=lim-1"))["list"]
    assert by_link[0]["orderStatus"] == "Cancelled" and by_link[0]["cancelType"] == "CancelByUser"
    history = (await client.ok("GET", "/v5/order/history", "category=linear&symbol=BTCUSDT"))["list"]
    assert [h["orderId"] for h in history] == [order_id]
    again = await client.post("/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderId": order_id})
    assert again[2]["retCode"] == 110001


async def test_duplicate_order_link_id_is_110072_and_one_order_exists(client) -> None:
    first = await client.create(orderLinkId="dup-1")
    second = await client.create(orderLinkId="dup-1", qty="0.02")
    assert first["retCode"] == 0
    assert second["retCode"] == 110072 and second["retMsg"] == "OrderLinkedID is duplicate"
    rows = (await client.ok("GET", RT, "category=linear&orderLinkId=dup-1"))["list"]
    assert len(rows) == 1 and rows[0]["qty"] == "0.01"
    assert (await client.state())["orders"] == 1


@pytest.mark.parametrize("fields, code", [
    ({"qty": "0.0015"}, 10001),            # not a multiple of qtyStep
    ({"qty": "0.0001"}, 10001),            # below minOrderQty
    ({"qty": "abc"}, 10001),
    ({"qty": 1e400}, 10001),
    ({"orderType": "Limit", "price": "50000.05"}, 10001),   # off tickSize
    ({"orderType": "Limit"}, 10001),                        # Limit without price
    ({"side": "buy"}, 10001),
    ({"category": "spot"}, 10001),
    ({"symbol": "DOGEUSDT"}, 10001),
    ({"orderLinkId": "x" * 37}, 10001),
    ({"orderLinkId": "bad id!"}, 10001),
    ({"reduceOnly": "yes"}, 10001),
    ({"symbol": "ETHUSDT", "qty": "0.01"}, 110094),         # 30 USDT ok; see below for < 5
    ({"qty": "100"}, 110007),                               # 5M notional vs 100k wallet at 10x
])
async def test_create_rejections(client, fields, code) -> None:
    if code == 110094:
        fields = {"symbol": "ETHUSDT", "orderType": "Limit", "price": "100", "qty": "0.01"}
    body = await client.create(**fields)
    assert body["retCode"] == code, body
    assert body["result"] == {}
    assert (await client.state())["orders"] == 0


async def test_broken_json_is_10001(client) -> None:
    _, _, body = await client.post("/v5/order/create", '{"category": "linear", ')
    assert body["retCode"] == 10001


async def test_reduce_only_rules(client) -> None:
    flat = await client.create(reduceOnly=True, side="Sell")
    assert flat["retCode"] == 110017
    assert (await client.create(qty="0.02"))["retCode"] == 0
    same_side = await client.create(reduceOnly=True, side="Buy")
    assert same_side["retCode"] == 110017
    close = await client.create(reduceOnly=True, side="Sell", qty="0.05", orderLinkId="ro-close")
    assert close["retCode"] == 0
    row = (await client.ok("GET", RT, "category=linear&orderLinkId=ro-close"))["list"][0]
    assert row["qty"] == "0.02" and row["orderStatus"] == "Filled"
    pos = (await client.ok("GET", "/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"][0]
    assert pos["size"] == "0" and pos["side"] == ""


async def test_market_fill_updates_position_wallet_and_executions(client) -> None:
    body = await client.create(qty="0.1", orderLinkId="mkt-1")
    assert body["retCode"] == 0
    row = (await client.ok("GET", RT, "category=linear&orderLinkId=mkt-1"))["list"][0]
    # a deep book fills at the touch (ask 50000.1); the order's price is its IOC limit: the band edge
    fill = Decimal("50000.1")
    assert row["orderStatus"] == "Filled" and Decimal(row["avgPrice"]) == fill
    assert Decimal(row["price"]) == Decimal("50500") and row["timeInForce"] == "IOC"
    execs = (await client.ok("GET", "/v5/execution/list", "category=linear&orderLinkId=mkt-1"))["list"]
    assert len(execs) == 1
    e = execs[0]
    assert e["execType"] == "Trade" and e["isMaker"] is False and e["feeRate"] == "0.00055"
    assert Decimal(e["execFee"]) == Decimal(e["execValue"]) * Decimal("0.00055")
    pos = (await client.ok("GET", "/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"][0]
    assert pos["side"] == "Buy" and pos["size"] == "0.1" and Decimal(pos["avgPrice"]) == fill
    await client.control("price", {"symbol": "BTCUSDT", "price": "51000"})
    pos = (await client.ok("GET", "/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"][0]
    upl = (Decimal("51000") - fill) * Decimal("0.1")
    assert Decimal(pos["unrealisedPnl"]) == upl
    wallet = (await client.ok("GET", "/v5/account/wallet-balance", "accountType=UNIFIED"))["list"][0]
    balance = Decimal("100000") - Decimal(e["execFee"])
    assert Decimal(wallet["totalWalletBalance"]) == balance
    assert Decimal(wallet["totalEquity"]) == balance + upl


async def test_position_created_time_kept_on_adds_and_flip(client, sim) -> None:
    await client.create(qty="0.01")
    first = (await client.ok("GET", "/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"][0]
    await client.control("clock/advance", {"ms": 60_000})
    await client.create(qty="0.01")
    added = (await client.ok("GET", "/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"][0]
    assert added["createdTime"] == first["createdTime"] and added["size"] == "0.02"
    await client.control("clock/advance", {"ms": 60_000})
    await client.create(qty="0.05", side="Sell")
    flipped = (await client.ok("GET", "/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"][0]
    assert flipped["side"] == "Sell" and flipped["size"] == "0.03"
    assert flipped["createdTime"] == first["createdTime"], "createdTime is the first-ever creation (SPEC 7.1)"
    assert flipped["openTime"] >= int(first["createdTime"]) + 120_000
    only_open = (await client.ok("GET", "/v5/position/list", "category=linear&settleCoin=USDT"))["list"]
    assert [p["symbol"] for p in only_open] == ["BTCUSDT"]


async def test_resting_limit_fills_when_price_crosses(client) -> None:
    await client.create(orderType="Limit", price="49000", orderLinkId="rest-1")
    await client.control("price", {"symbol": "BTCUSDT", "price": "49000"})
    row = (await client.ok("GET", RT, "category=linear&orderLinkId=rest-1"))["list"][0]
    assert row["orderStatus"] == "Filled" and row["avgPrice"] == "49000"
    e = (await client.ok("GET", "/v5/execution/list", "category=linear&orderLinkId=rest-1"))["list"][0]
    assert e["isMaker"] is True and e["feeRate"] == "0.0002"


async def test_cancel_all_returns_list(client) -> None:
    for i in range(3):
        await client.create(orderType="Limit", price="40000", orderLinkId=f"ca-{i}")
    result = await client.ok("POST", "/v5/order/cancel-all", {"category": "linear", "symbol": "BTCUSDT"})
    assert result["success"] == "1" and sorted(r["orderLinkId"] for r in result["list"]) == ["ca-0", "ca-1", "ca-2"]
    empty = await client.ok("POST", "/v5/order/cancel-all", {"category": "linear", "symbol": "BTCUSDT"})
    assert empty["list"] == []


async def test_funding_is_an_execution_not_a_fill(client) -> None:
    await client.create(qty="0.1")
    before = (await client.ok("GET", "/v5/account/wallet-balance", "accountType=UNIFIED"))["list"][0]
    funding = await client.control("funding", {"symbol": "BTCUSDT", "rate": "0.0001"})
    assert funding["execType"] == "Funding" and funding["orderType"] == "UNKNOWN"
    after = (await client.ok("GET", "/v5/account/wallet-balance", "accountType=UNIFIED"))["list"][0]
    assert Decimal(before["totalWalletBalance"]) - Decimal(after["totalWalletBalance"]) == Decimal(funding["execFee"])
    assert Decimal(funding["execFee"]) > 0
    rows = (await client.ok("GET", "/v5/execution/list", "category=linear&execType=Funding"))["list"]
    assert [r["execId"] for r in rows] == [funding["execId"]]
    assert (await client.state())["orders"] == 1
