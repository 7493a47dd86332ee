"""`/v5/account/transaction-log` through the Bybit API: transfers, trades, funding, windows, paging."""

from __future__ import annotations

import re
from decimal import Decimal

DAY_MS = 86_400_000
LOG = "/v5/account/transaction-log"


async def log(client, query: str = "accountType=UNIFIED") -> dict:
    return await client.ok("GET", LOG, query)


async def wallet_balance(client) -> Decimal:
    account = (await client.ok("GET", "/v5/account/wallet-balance", "accountType=UNIFIED"))["list"][0]
    return Decimal(account["totalWalletBalance"])


async def test_wallet_credit_and_debit_are_transfers(client) -> None:
    credit = await client.control("wallet", {"amount": "500"})
    debit = await client.control("wallet", {"amount": "-120.5"})
    rows = (await log(client))["list"]
    assert [r["type"] for r in rows] == ["TRANSFER_OUT", "TRANSFER_IN"]
    out, into = rows
    assert into["id"] == credit["transaction_id"] and out["id"] == debit["transaction_id"]
    assert into["id"] != out["id"]
    assert (into["change"], into["cashFlow"], into["cashBalance"]) == ("500", "500", "100500")
    assert (out["change"], out["cashFlow"], out["cashBalance"]) == ("-120.5", "-120.5", "100379.5")
    assert into["currency"] == "USDT" and int(into["transactionTime"]) <= int(out["transactionTime"])
    assert Decimal(out["cashBalance"]) == await wallet_balance(client)


async def test_trades_and_funding_replay_the_wallet(client) -> None:
    initial = await wallet_balance(client)
    assert (await client.create(orderLinkId="open-1"))["retCode"] == 0
    await client.control("funding", {"symbol": "BTCUSDT", "rate": "0.0001"})
    await client.control("price", {"symbol": "BTCUSDT", "price": "50500"})
    assert (await client.create(side="Sell", reduceOnly=True, orderLinkId="close-1"))["retCode"] == 0
    await client.control("wallet", {"amount": "10"})
    rows = (await log(client))["list"]
    assert [r["type"] for r in rows] == ["TRANSFER_IN", "TRADE", "SETTLEMENT", "TRADE"]
    assert Decimal(rows[0]["cashBalance"]) == await wallet_balance(client)
    assert sum(Decimal(r["change"]) for r in rows) == await wallet_balance(client) - initial
    for row in rows:
        assert Decimal(row["change"]) == (Decimal(row["cashFlow"]) + Decimal(row["funding"] or 0)
                                          - Decimal(row["fee"]))
    executions = (await client.ok("GET", "/v5/execution/list", "category=linear&symbol=BTCUSDT"))["list"]
    by_id = {e["execId"]: e for e in executions}
    close, funding, opening = rows[1], rows[2], rows[3]
    assert opening["orderLinkId"] == "open-1" and opening["side"] == "Buy" and opening["size"] == "0.01"
    assert opening["fee"] == by_id[opening["tradeId"]]["execFee"] and opening["cashFlow"] == "0"
    assert close["orderLinkId"] == "close-1" and close["size"] == "0" and Decimal(close["cashFlow"]) > 0
    assert funding["category"] == "linear" and funding["symbol"] == "BTCUSDT"
    assert Decimal(funding["funding"]) == -Decimal(by_id[funding["tradeId"]]["execFee"])
    assert funding["fee"] == "0" and funding["feeRate"] == "0.0001" and funding["size"] == "0.01"


async def test_filters(client) -> None:
    await client.control("wallet", {"amount": "5"})
    await client.create()
    assert [r["type"] for r in (await log(client, "type=TRANSFER_IN"))["list"]] == ["TRANSFER_IN"]
    assert [r["type"] for r in (await log(client, "category=linear"))["list"]] == ["TRADE"]
    assert [r["type"] for r in (await log(client, "baseCoin=BTC"))["list"]] == ["TRADE"]
    assert len((await log(client, "currency=USDT"))["list"]) == 2
    assert (await log(client, "baseCoin=ETH"))["list"] == []
    assert (await log(client, "transSubType=movePosition"))["list"] == []
    for bad in ("accountType=CONTRACT", "category=futures", "limit=0", "limit=51", "cursor=%21%21"):
        _, _, body = await client.get(LOG, bad)
        assert body["retCode"] == 10001, bad


async def test_paging_newest_first_with_an_opaque_cursor(client) -> None:
    for i in range(25):
        await client.control("wallet", {"amount": str(i + 1)})
    first = await log(client)
    assert len(first["list"]) == 20 and first["nextPageCursor"]
    seen, cursor, pages = [], "", 0
    while True:
        page = await log(client, "limit=10" + (f"&cursor={cursor}" if cursor else ""))
        seen += [r["change"] for r in page["list"]]
        pages += 1
        cursor = page["nextPageCursor"]
        if not cursor:
            break
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
        await client.control("wallet", {"amount": "1000"})   # newer rows never shift older pages
    assert pages == 3
    assert seen == [str(n) for n in range(25, 0, -1)]


async def test_time_window_is_24h_by_default_and_at_most_7_days(client, sim) -> None:
    await client.control("wallet", {"amount": "1"})
    then = sim.clock()
    await client.control("clock/advance", {"ms": DAY_MS + 60_000})
    assert (await log(client))["list"] == []
    assert len((await log(client, f"startTime={then - 60_000}"))["list"]) == 1
    assert len((await log(client, f"endTime={then + 60_000}"))["list"]) == 1
    assert (await log(client, f"endTime={then + 2 * DAY_MS}"))["list"] == []
    ok = f"startTime={then - 1000}&endTime={then - 1000 + 7 * DAY_MS}"
    assert len((await log(client, ok))["list"]) == 1
    for bad in (f"startTime={then}&endTime={then + 7 * DAY_MS + 1}", f"startTime={then}&endTime={then - 1}"):
        _, _, body = await client.get(LOG, bad)
        assert body["retCode"] == 10001, bad
