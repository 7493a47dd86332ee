"""execution/list paging and time-window rules (SPEC §2.6)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

EXEC = "/v5/execution/list"
DAY = 24 * 3600 * 1000


async def test_cursor_pagination_returns_every_exec_id_once(client) -> None:
    for i in range(130):
        for side in ("Buy", "Sell"):
            assert (await client.create(side=side, qty="0.001"))["retCode"] == 0
    assert (await client.state())["executions"] == 260
    seen: list[str] = []
    times: list[int] = []
    cursor = ""
    pages = 0
    while True:
        query = "category=linear&limit=100" + (f"&cursor={cursor}" if cursor else "")
        result = await client.ok("GET", EXEC, query)
        seen += [e["execId"] for e in result["list"]]
        times += [int(e["execTime"]) for e in result["list"]]
        pages += 1
        cursor = result["nextPageCursor"]
        if not cursor:
            break
        assert quote(cursor, safe="") == cursor, "cursor must be URL-safe"
        # a new fill arriving mid-paging must not shift the pages
        if pages == 1:
            assert (await client.create(side="Buy", qty="0.001"))["retCode"] == 0
    assert pages == 3
    assert len(seen) == 260 and len(set(seen)) == 260
    assert times == sorted(times, reverse=True)


async def test_default_limit_is_50(client) -> None:
    for _ in range(30):
        await client.create(side="Buy", qty="0.001")
        await client.create(side="Sell", qty="0.001")
    result = await client.ok("GET", EXEC, "category=linear")
    assert len(result["list"]) == 50 and result["nextPageCursor"]


@pytest.mark.parametrize("extra", ["limit=0", "limit=101", "limit=x", "cursor=%%%", "category=spot"])
async def test_bad_paging_params_are_10001(client, extra) -> None:
    query = "category=linear&" + extra if not extra.startswith("category") else extra
    _, _, body = await client.get(EXEC, query)
    assert body["retCode"] == 10001, body


async def test_window_longer_than_seven_days_is_10001(client, sim) -> None:
    now = sim.clock()
    _, _, body = await client.get(EXEC, f"category=linear&startTime={now - 8 * DAY}&endTime={now}")
    assert body["retCode"] == 10001
    _, _, body = await client.get(EXEC, f"category=linear&startTime={now}&endTime={now - DAY}")
    assert body["retCode"] == 10001


async def test_time_window_filters_and_defaults(client, sim) -> None:
    await client.create(qty="0.001", orderLinkId="old")
    old_time = sim.clock()
    await client.control("clock/advance", {"ms": 8 * DAY})
    await client.create(qty="0.001", side="Sell", orderLinkId="new")
    default = (await client.ok("GET", EXEC, "category=linear"))["list"]
    assert [e["orderLinkId"] for e in default] == ["new"]
    start_only = (await client.ok("GET", EXEC, f"category=linear&startTime={old_time - 1000}"))["list"]
    assert [e["orderLinkId"] for e in start_only] == ["old"]
    end_only = (await client.ok("GET", EXEC, f"category=linear&endTime={old_time + 1000}"))["list"]
    assert [e["orderLinkId"] for e in end_only] == ["old"]
    order_hist = (await client.ok("GET", "/v5/order/history", "category=linear&symbol=BTCUSDT"))["list"]
    assert [o["orderLinkId"] for o in order_hist] == ["new"]
