"""Per-endpoint rate limits and their headers (SPEC §1.6)."""

from __future__ import annotations

import pytest


@pytest.fixture
def settings_overrides() -> dict:
    return {"rate_limit_scale": 0.1}    # queries 5/s, order writes 1/s


async def test_burst_gets_10006_with_reset_header(client, sim) -> None:
    statuses = []
    for _ in range(12):
        status, headers, body = await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT")
        assert status == 200 and headers["X-Bapi-Limit"] == "5"
        statuses.append((body["retCode"], headers))
    limited = [h for code, h in statuses if code == 10006]
    assert limited, "a burst of 12 against a 5/s limit must be throttled"
    assert all(h["X-Bapi-Limit-Status"] == "0" for h in limited)
    assert int(limited[0]["X-Bapi-Limit-Reset-Timestamp"]) > int(statuses[0][1]["X-Bapi-Limit-Reset-Timestamp"])
    ok_remaining = [int(h["X-Bapi-Limit-Status"]) for code, h in statuses if code == 0]
    assert ok_remaining[:2] == [4, 3]


async def test_limits_are_per_endpoint(client) -> None:
    first = await client.create(orderType="Limit", price="40000")
    second = await client.create(orderType="Limit", price="40000")
    assert first["retCode"] == 0 and second["retCode"] == 10006
    assert (await client.state())["orders"] == 1
    _, _, body = await client.get("/v5/order/realtime", "category=linear&symbol=BTCUSDT")
    assert body["retCode"] == 0
