"""Market orders are IOC limits against a book of finite depth (SPEC §7.2, create-order.mdx, faq.mdx)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

RT, EXEC = "/v5/order/realtime", "/v5/execution/list"


async def order_row(client: Any, link_id: str) -> dict[str, Any]:
    rows = (await client.ok("GET", RT, f"category=linear&orderLinkId={link_id}"))["list"]
    assert len(rows) == 1, rows
    return rows[0]


async def fills(client: Any, link_id: str) -> list[dict[str, Any]]:
    return (await client.ok("GET", EXEC, f"category=linear&orderLinkId={link_id}"))["list"]


async def test_default_depth_fills_the_demo_sizes_at_the_touch(client) -> None:
    for symbol, qty, ask in (("ETHUSDT", "2", "3000.01"), ("BTCUSDT", "0.01", "50000.1")):
        assert (await client.create(symbol=symbol, qty=qty, orderLinkId=f"demo-{symbol}"))["retCode"] == 0
        row = await order_row(client, f"demo-{symbol}")
        assert row["orderStatus"] == "Filled" and row["cumExecQty"] == qty and row["avgPrice"] == ask
        ticker = (await client.ok("GET", "/v5/market/tickers", f"category=linear&symbol={symbol}"))["list"][0]
        assert Decimal(ticker["ask1Size"]) > 0 and Decimal(ticker["bid1Size"]) > Decimal(qty)


async def test_thin_book_fills_partly_then_cancels_the_rest(client, sim) -> None:
    assert (await client.control("book", {"symbol": "BTCUSDT", "depth": "0.01"}))["depth"] == "0.01"
    body = await client.create(qty="0.05", orderLinkId="thin-1", slippageToleranceType="TickSize",
                               slippageTolerance="2")
    assert body["retCode"] == 0, body
    row = await order_row(client, "thin-1")
    assert row["orderStatus"] == "Cancelled" and Decimal(row["cumExecQty"]) == Decimal("0.03")
    assert Decimal(row["leavesQty"]) == 0 and row["rejectReason"] == "EC_CancelForNoFullFill"
    assert Decimal(row["price"]) == Decimal("50000.3"), "the IOC limit is ask1 + 2 ticks"
    legs = sorted((Decimal(f["execPrice"]), Decimal(f["execQty"])) for f in await fills(client, "thin-1"))
    assert legs == [(Decimal("50000.1"), Decimal("0.01")), (Decimal("50000.2"), Decimal("0.01")),
                    (Decimal("50000.3"), Decimal("0.01"))], "one fill per level, touch outward"
    pos = (await client.ok("GET", "/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"][0]
    assert pos["size"] == "0.03"

    # restoring the default depth makes the book deep again
    await client.control("book", {"symbol": "BTCUSDT", "depth": None})
    assert (await client.create(qty="0.05", orderLinkId="deep-1", slippageToleranceType="TickSize",
                                slippageTolerance="2"))["retCode"] == 0
    assert (await order_row(client, "deep-1"))["orderStatus"] == "Filled"


async def test_liquidity_replenishes_each_tick(client, waiter) -> None:
    await client.control("book", {"symbol": "BTCUSDT", "depth": "0.01"})
    await client.create(qty="0.02", side="Sell", orderLinkId="sweep", slippageToleranceType="TickSize",
                        slippageTolerance="1")

    async def touch_full() -> bool:
        ticker = (await client.ok("GET", "/v5/market/tickers", "category=linear&symbol=BTCUSDT"))["list"][0]
        return ticker["bid1Size"] == "0.01"
    await waiter(touch_full, "the bid to be replenished after a tick")
    await client.create(qty="0.02", side="Sell", orderLinkId="again", slippageToleranceType="TickSize",
                        slippageTolerance="1")
    assert Decimal((await order_row(client, "again"))["cumExecQty"]) == Decimal("0.02")


async def test_ioc_with_no_liquidity_in_range_is_cancelled_unfilled(client) -> None:
    await client.control("book", {"symbol": "BTCUSDT", "depth": "0.01"})
    # a Sell whose IOC limit sits above the bid finds nothing in range
    body = await client.create(qty="0.01", side="Sell", orderType="Limit", price="50000.1", timeInForce="IOC",
                               orderLinkId="nothing")
    assert body["retCode"] == 0
    row = await order_row(client, "nothing")
    assert row["orderStatus"] == "Cancelled" and row["cumExecQty"] == "0"
    assert row["rejectReason"] == "EC_NoImmediateQtyToFill"


async def test_market_qty_above_max_mkt_order_qty_is_10001(client) -> None:
    inst = (await client.ok("GET", "/v5/market/instruments-info", "category=linear&symbol=BTCUSDT"))["list"][0]
    cap = Decimal(inst["lotSizeFilter"]["maxMktOrderQty"])
    assert cap < Decimal(inst["lotSizeFilter"]["maxOrderQty"])
    over = str(cap + Decimal("0.001"))
    body = await client.create(qty=over, orderLinkId="too-big")
    assert body["retCode"] == 10001 and "exceeds maximum limit allowed" in body["retMsg"], body
    assert f"max_qty:{int(cap * 10**8)}" in body["retMsg"]
    limit = await client.create(qty=over, orderType="Limit", price="40000")
    assert limit["retCode"] != 10001, "maxMktOrderQty binds market orders only"
    assert (await client.state())["orders"] == 0


async def test_slippage_tolerance_range_errors(client) -> None:
    ticks = await client.create(slippageToleranceType="TickSize", slippageTolerance="0")
    pct = await client.create(slippageToleranceType="Percent", slippageTolerance="11")
    assert (ticks["retCode"], pct["retCode"]) == (110108, 110109)
