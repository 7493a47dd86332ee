"""The simulator must be indistinguishable from Bybit for pybit, a client nobody here wrote.

pybit (PyPI ``pybit`` 5.x) is only re-pointed at the simulator's base URLs; its
signing, query building, error mapping and WS bookkeeping run unchanged. The
simulator runs on the test's event loop and pybit's blocking calls run in threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP, WebSocket

from hean.sim import SimServer
from tests.sim.pybit_harness import (
    Inbox,
    capture_pybit_ws_logs,
    pybit_http,
    pybit_ws,
    subscribe,
    subscribed,
    wait_until,
)

KEY, SECRET = "test-key-123", "test-secret-456"   # same as conftest's simulator settings
BTC = {"category": "linear", "symbol": "BTCUSDT"}


async def call(method: Callable[..., Any], **params: Any) -> Any:
    """Run one blocking pybit call off the loop that serves the simulator."""
    return await asyncio.to_thread(method, **params)


@pytest.fixture
async def http(client: Any, sim: SimServer) -> AsyncIterator[HTTP]:
    """pybit session on the simulator (``client`` has pinned BTCUSDT at 50000)."""
    session = pybit_http(sim, KEY, SECRET)
    try:
        yield session
    finally:
        session.client.close()


def only(rows: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(rows) == 1, rows
    return rows[0]


async def test_market_data_through_pybit(http: HTTP, sim: SimServer) -> None:
    clock = await call(http.get_server_time)
    assert clock["retCode"] == 0 and clock["retMsg"] == "OK" and isinstance(clock["time"], int)
    seconds, nanos = clock["result"]["timeSecond"], clock["result"]["timeNano"]
    assert abs(int(seconds) * 1000 - sim.clock()) < 5000 and nanos.startswith(seconds)

    instrument = only((await call(http.get_instruments_info, **BTC))["result"]["list"])
    assert (instrument["symbol"], instrument["contractType"], instrument["status"]) == \
        ("BTCUSDT", "LinearPerpetual", "Trading")
    assert Decimal(instrument["priceFilter"]["tickSize"]) == Decimal("0.1")
    assert Decimal(instrument["lotSizeFilter"]["qtyStep"]) == Decimal("0.001")
    assert Decimal(instrument["lotSizeFilter"]["minNotionalValue"]) == Decimal(5)

    ticker = only((await call(http.get_tickers, **BTC))["result"]["list"])
    assert Decimal(ticker["lastPrice"]) == Decimal(50000)
    assert (Decimal(ticker["bid1Price"]), Decimal(ticker["ask1Price"])) == (Decimal(50000), Decimal("50000.1"))


async def test_order_lifecycle_through_pybit(http: HTTP) -> None:
    limit = await call(http.place_order, **BTC, side="Buy", orderType="Limit", qty="0.01", price="49000",
                       timeInForce="GTC", orderLinkId="pybit-limit-1")
    assert limit["retCode"] == 0 and limit["result"]["orderLinkId"] == "pybit-limit-1"
    resting = only((await call(http.get_open_orders, **BTC, orderLinkId="pybit-limit-1"))["result"]["list"])
    assert resting["orderId"] == limit["result"]["orderId"] and resting["orderStatus"] == "New"
    assert (Decimal(resting["price"]), Decimal(resting["leavesQty"])) == (Decimal(49000), Decimal("0.01"))

    market = await call(http.place_order, **BTC, side="Buy", orderType="Market", qty="0.01",
                        orderLinkId="pybit-mkt-1")
    filled = only((await call(http.get_open_orders, **BTC, orderLinkId="pybit-mkt-1"))["result"]["list"])
    assert filled["orderId"] == market["result"]["orderId"] and filled["orderStatus"] == "Filled"
    assert Decimal(filled["cumExecQty"]) == Decimal("0.01") and Decimal(filled["leavesQty"]) == 0

    cancelled = await call(http.cancel_order, **BTC, orderLinkId="pybit-limit-1")
    assert cancelled["result"]["orderId"] == limit["result"]["orderId"]
    gone = only((await call(http.get_open_orders, **BTC, orderLinkId="pybit-limit-1"))["result"]["list"])
    assert gone["orderStatus"] == "Cancelled", "a query by orderLinkId must still find a cancelled order"

    bulk = {f"pybit-bulk-{i}" for i in range(3)}
    for i, link_id in enumerate(sorted(bulk)):
        await call(http.place_order, **BTC, side="Buy", orderType="Limit", qty="0.001",
                   price=str(Decimal(48000) + 100 * i), orderLinkId=link_id)
    assert len((await call(http.get_open_orders, **BTC))["result"]["list"]) == 3
    swept = await call(http.cancel_all_orders, **BTC)
    assert swept["result"]["success"] == "1"
    assert {row["orderLinkId"] for row in swept["result"]["list"]} == bulk
    assert (await call(http.get_open_orders, **BTC))["result"]["list"] == []

    history = (await call(http.get_order_history, **BTC, limit=50))["result"]["list"]
    statuses = {row["orderLinkId"]: row["orderStatus"] for row in history}
    assert statuses == {"pybit-limit-1": "Cancelled", "pybit-mkt-1": "Filled"} | dict.fromkeys(bulk, "Cancelled")

    fill = only((await call(http.get_executions, category="linear", orderLinkId="pybit-mkt-1"))["result"]["list"])
    assert Decimal(fill["execQty"]) == Decimal("0.01") and fill["isMaker"] is False
    position = only((await call(http.get_positions, category="linear", settleCoin="USDT"))["result"]["list"])
    assert (position["symbol"], position["side"], Decimal(position["size"])) == ("BTCUSDT", "Buy", Decimal("0.01"))
    assert Decimal(position["avgPrice"]) == Decimal(fill["execPrice"]) and position["positionIdx"] == 0

    account = only((await call(http.get_wallet_balance, accountType="UNIFIED"))["result"]["list"])
    usdt = only([c for c in account["coin"] if c["coin"] == "USDT"])
    assert account["accountType"] == "UNIFIED"
    assert Decimal(usdt["walletBalance"]) == Decimal(100000) - Decimal(fill["execFee"])


async def test_duplicate_order_link_id_raises_110072(http: HTTP) -> None:
    first = dict(BTC, side="Buy", orderType="Limit", qty="0.001", price="45000", orderLinkId="pybit-dup")
    await call(http.place_order, **first)
    with pytest.raises(InvalidRequestError) as caught:
        await call(http.place_order, **dict(first, price="45100"))
    assert caught.value.status_code == 110072
    assert caught.value.message == "OrderLinkedID is duplicate"
    rows = (await call(http.get_open_orders, **BTC, orderLinkId="pybit-dup"))["result"]["list"]
    assert Decimal(only(rows)["price"]) == Decimal(45000), "the duplicate must not replace the first order"


async def test_wrong_secret_raises_10004_without_leaking_it(client: Any, sim: SimServer) -> None:
    session = pybit_http(sim, KEY, "not-the-secret")
    try:
        with pytest.raises(InvalidRequestError) as caught:
            await call(session.place_order, **BTC, side="Buy", orderType="Market", qty="0.01")
        with pytest.raises(InvalidRequestError) as caught_get:
            await call(session.get_wallet_balance, accountType="UNIFIED")
    finally:
        session.client.close()
    assert caught.value.status_code == 10004 and caught_get.value.status_code == 10004
    assert "not-the-secret" not in str(caught.value) and SECRET not in str(caught.value)
    assert (await client.state())["orders"] == 0, "a badly signed order must not be placed"


def place_fills(session: HTTP, count: int) -> list[str]:
    """Alternate small market buys and sells so the account stays near flat."""
    order_ids = []
    for i in range(count):
        reply = session.place_order(**BTC, side="Buy" if i % 2 == 0 else "Sell", orderType="Market",
                                    qty="0.001", orderLinkId=f"pybit-fill-{i}")
        order_ids.append(reply["result"]["orderId"])
    return order_ids


def read_all_pages(session: HTTP, limit: int) -> list[list[dict[str, Any]]]:
    """Follow nextPageCursor the way a pybit user would, until it comes back empty."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        result = session.get_executions(**BTC, limit=limit, cursor=cursor)["result"]
        pages.append(result["list"])
        cursor = result["nextPageCursor"]
        if not cursor:
            return pages
        assert len(pages) < 20, "pagination never ended"


async def test_execution_cursor_pagination_through_pybit(http: HTTP) -> None:
    order_ids = await asyncio.to_thread(place_fills, http, 125)
    pages = await asyncio.to_thread(read_all_pages, http, 50)
    assert [len(p) for p in pages] == [50, 50, 25]
    rows = [row for page in pages for row in page]
    exec_ids = [row["execId"] for row in rows]
    assert len(set(exec_ids)) == len(exec_ids) == 125, "every execution exactly once"
    assert {row["orderId"] for row in rows} == set(order_ids)
    times = [int(row["execTime"]) for row in rows]
    assert times == sorted(times, reverse=True), "executions newest first across pages"


async def test_public_streams_through_pybit(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                            sim: SimServer, client: Any) -> None:
    capture_pybit_ws_logs(caplog)
    tickers, books = Inbox(), Inbox()
    async with pybit_ws(monkeypatch, sim, "linear") as ws:
        await subscribe(ws.ticker_stream, symbol="BTCUSDT", callback=tickers)
        await subscribe(ws.orderbook_stream, depth=1, symbol="BTCUSDT", callback=books)
        await wait_until(subscribed(caplog, "tickers.BTCUSDT"), "pybit to accept the tickers subscribe ack")
        await wait_until(subscribed(caplog, "orderbook.1.BTCUSDT"), "pybit to accept the orderbook subscribe ack")
        first = await tickers.wait(lambda m: m["data"].get("lastPrice") == "50000", "ticker snapshot at 50000")
        assert first["topic"] == "tickers.BTCUSDT" and first["data"]["fundingRate"]
        await books.wait(lambda m: m["data"]["b"][0][0] == "50000" and m["data"]["a"][0][0] == "50000.1",
                         "order book 50000 / 50000.1")

        await client.control("price", {"symbol": "BTCUSDT", "price": "50100"})
        moved = await tickers.wait(lambda m: m["data"].get("lastPrice") == "50100", "ticker at 50100")
        # pybit merges deltas into the snapshot, so unchanged fields must still be there.
        assert moved["data"]["fundingRate"] == first["data"]["fundingRate"]
        assert moved["data"]["symbol"] == "BTCUSDT" and moved["type"] == "snapshot"
        await books.wait(lambda m: m["data"]["b"][0][0] == "50100" and m["data"]["a"][0][0] == "50100.1",
                         "order book 50100 / 50100.1")


async def test_private_streams_through_pybit(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                             sim: SimServer, http: HTTP) -> None:
    capture_pybit_ws_logs(caplog)
    executions, orders = Inbox(), Inbox()
    async with pybit_ws(monkeypatch, sim, "private", api_key=KEY, api_secret=SECRET) as ws:
        await wait_until(lambda: ws.auth, "pybit to accept the simulator's auth reply")
        await subscribe(ws.execution_stream, callback=executions)
        await subscribe(ws.order_stream, callback=orders)
        await wait_until(subscribed(caplog, "execution"), "pybit to accept the execution subscribe ack")
        await wait_until(subscribed(caplog, "order"), "pybit to accept the order subscribe ack")

        placed = await call(http.place_order, **BTC, side="Buy", orderType="Market", qty="0.01",
                            orderLinkId="pybit-ws-1")
        order_id = placed["result"]["orderId"]

        def mine(message: dict[str, Any]) -> list[dict[str, Any]]:
            return [d for d in message["data"] if d["orderLinkId"] == "pybit-ws-1"]

        fill_msg = await executions.wait(lambda m: bool(mine(m)), "execution push for pybit-ws-1")
        assert fill_msg["topic"] == "execution" and isinstance(fill_msg["creationTime"], int)
        fill = only(mine(fill_msg))
        assert (fill["orderId"], fill["category"], fill["execType"]) == (order_id, "linear", "Trade")
        assert Decimal(fill["execQty"]) == Decimal("0.01") and isinstance(fill["seq"], int)
        done = await orders.wait(lambda m: any(d["orderStatus"] == "Filled" for d in mine(m)),
                                 "order push with Filled for pybit-ws-1")
        assert done["topic"] == "order" and only(mine(done))["orderId"] == order_id


async def outlive_two_pongs(ws: WebSocket) -> None:
    """Wait for two pong frames: the second comes a full interval after pybit's first JSON ping
    was answered. pybit sets ``exited`` when a reply it cannot route makes it drop the socket."""
    app = ws.ws   # websocket-client's WebSocketApp, which records pong-frame arrival times
    await wait_until(lambda: ws.exited or app.last_pong_tm > 0, f"first pong frame on {ws.endpoint}")
    first = app.last_pong_tm
    await wait_until(lambda: ws.exited or app.last_pong_tm > first, f"second pong frame on {ws.endpoint}")
    assert ws.is_connected() and not ws.exited, f"pybit dropped {ws.endpoint} after a JSON pong"


async def test_heartbeats_keep_pybit_connections_alive(monkeypatch: pytest.MonkeyPatch, sim: SimServer,
                                                       http: HTTP, client: Any) -> None:
    """pybit answers each pong frame with a JSON ``ping``; the simulator's JSON pongs (public
    ``ret_msg: pong``, private ``op: pong``) must be swallowed by pybit, or it drops the socket."""
    tickers, orders = Inbox(), Inbox()
    beat = {"ping_interval": 1, "ping_timeout": 0.9}   # pybit's own knobs, shortened from 20 s / 10 s
    async with pybit_ws(monkeypatch, sim, "linear", **beat) as public, \
            pybit_ws(monkeypatch, sim, "private", api_key=KEY, api_secret=SECRET, **beat) as private:
        await subscribe(public.ticker_stream, symbol="BTCUSDT", callback=tickers)
        await subscribe(private.order_stream, callback=orders)
        for ws in (public, private):
            await outlive_two_pongs(ws)

        await client.control("price", {"symbol": "BTCUSDT", "price": "50200"})
        await tickers.wait(lambda m: m["data"].get("lastPrice") == "50200", "ticker after heartbeats")
        await call(http.place_order, **BTC, side="Buy", orderType="Market", qty="0.01", orderLinkId="pybit-hb")
        await orders.wait(lambda m: any(d["orderLinkId"] == "pybit-hb" for d in m["data"]),
                          "order push after heartbeats")
