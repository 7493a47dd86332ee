"""BybitRestClient against the simulator: sync, orders, duplicates, faults, paging."""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from hean.exchange.bybit.errors import HostGuardError, Outcome
from hean.exchange.bybit.ratelimit import Priority
from hean.exchange.bybit.rest import BybitRestClient
from hean.sim.server import SimServer

from .conftest import SIM_SECRET, control, make_client, sim_rejects, sim_requests

CREATE = "/v5/order/create"
HOUR_MS = 3_600_000


async def _far_limit_buy(client: BybitRestClient, link_id: str) -> Outcome:
    resp = await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit", qty=Decimal("0.001"),
                                    price=Decimal("10000.0"), order_link_id=link_id)
    return resp.outcome


def test_host_guard_at_construction() -> None:
    with pytest.raises(HostGuardError, match="dry_run mode"):
        BybitRestClient(rest_url="https://api.bybit.com", api_key="k", api_secret="s", dry_run=True,
                        is_live=True, registry=CollectorRegistry())
    with pytest.raises(HostGuardError, match="without is_live=true"):
        BybitRestClient(rest_url="https://api-testnet.bybit.com", api_key="k", api_secret="s", dry_run=False,
                        is_live=False, registry=CollectorRegistry())


async def test_start_syncs_clock_and_loads_instruments(sim: SimServer) -> None:
    await control(sim, "clock/advance", {"ms": HOUR_MS})
    rest = make_client(sim)
    await rest.start()
    try:
        skew = rest.server_time_ms() - int(time.time() * 1000)
        assert abs(skew - HOUR_MS) < 5_000, f"offset {skew} should reflect the sim clock advanced by 1 h"
        btc, eth = rest.instruments["BTCUSDT"], rest.instruments["ETHUSDT"]
        assert (btc.tick_size, btc.qty_step) == (Decimal("0.10"), Decimal("0.001"))
        assert eth.qty_step == Decimal("0.01")
        assert (await rest.wallet())["accountType"] == "UNIFIED"
    finally:
        await rest.close()


async def test_place_query_cancel_roundtrip(client: BybitRestClient, sim: SimServer) -> None:
    resp = await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit", qty=Decimal("0.002"),
                                    price=Decimal("10000.0"), order_link_id="rt-1")
    assert resp.outcome is Outcome.OK and resp.result["orderLinkId"] == "rt-1"
    assert client.rate_limiter.limit_of(CREATE) == 1000  # X-Bapi-Limit (10/s x sim scale 100) was applied
    order = await client.query_order(order_link_id="rt-1")
    assert order is not None and order["orderStatus"] == "New" and Decimal(order["qty"]) == Decimal("0.002")
    assert [o["orderLinkId"] for o in await client.open_orders()] == ["rt-1"]
    assert [o["orderLinkId"] for o in await client.open_orders(symbol="BTCUSDT")] == ["rt-1"]
    assert (await client.query_order(order_id=resp.result["orderId"]) or {}).get("orderLinkId") == "rt-1"
    cancel = await client.cancel_order(symbol="BTCUSDT", order_link_id="rt-1")
    assert cancel.outcome is Outcome.OK
    after = await client.query_order(order_link_id="rt-1")
    assert after is not None and after["orderStatus"] == "Cancelled"
    assert await client.open_orders() == []
    again = await client.cancel_order(symbol="BTCUSDT", order_link_id="rt-1")
    assert again.outcome is Outcome.REJECTED and again.ret_code in (110001, 110008, 110010)
    assert await client.query_order(order_link_id="never-placed") is None


async def test_cancel_all_and_reduce_positions_wallet(client: BybitRestClient) -> None:
    for n in range(3):
        assert await _far_limit_buy(client, f"ca-{n}") is Outcome.OK
    resp = await client.cancel_all(symbol="BTCUSDT")
    assert resp.outcome is Outcome.OK and len(resp.result["list"]) == 3
    assert await client.open_orders() == []
    buy = await client.place_order(symbol="ETHUSDT", side="Buy", order_type="Market", qty=Decimal("0.10"),
                                   price=None, order_link_id="pos-open")
    assert buy.outcome is Outcome.OK
    positions = await client.positions()
    assert [(p["symbol"], p["side"], Decimal(p["size"])) for p in positions] == [("ETHUSDT", "Buy", Decimal("0.1"))]
    close = await client.place_order(symbol="ETHUSDT", side="Sell", order_type="Market", qty=Decimal("0.10"),
                                     price=None, order_link_id="pos-close", reduce_only=True)
    assert close.outcome is Outcome.OK
    assert await client.positions(symbol="ETHUSDT") == []
    assert Decimal((await client.wallet())["totalEquity"]) > 0


async def test_duplicate_order_link_id_is_reported_as_duplicate(client: BybitRestClient, sim: SimServer) -> None:
    assert await _far_limit_buy(client, "dup-1") is Outcome.OK
    resp = await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit", qty=Decimal("0.001"),
                                    price=Decimal("10000.0"), order_link_id="dup-1")
    assert resp.outcome is Outcome.DUPLICATE and resp.ret_code == 110072
    orders = await control(sim, "orders?orderLinkId=dup-1")
    assert len(orders["list"]) == 1


async def test_rate_limit_10006_waits_for_reset_without_busy_retry(client: BybitRestClient,
                                                                   sim: SimServer) -> None:
    before = sim_requests(sim, CREATE)
    await control(sim, "faults/rate-limit", {"count": 0, "seconds": 0.3})
    resp = await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit", qty=Decimal("0.001"),
                                    price=Decimal("10000.0"), order_link_id="rl-1", priority=Priority.OPEN)
    assert resp.outcome is Outcome.OK
    # one refused attempt, then one after the reset timestamp: no hammering in between
    assert sim_requests(sim, CREATE) - before == 2
    assert sim_rejects(sim, 10006) == 1
    assert (await client.query_order(order_link_id="rl-1")) is not None


async def test_before_send_is_checked_before_every_attempt(client: BybitRestClient, sim: SimServer) -> None:
    """The caller's check runs after the limiter wait and again before the retry after a 10006."""
    checks: list[str] = []

    def check() -> str | None:
        checks.append("checked")
        return None if len(checks) == 1 else "risk_changed"

    before = sim_requests(sim, CREATE)
    await control(sim, "faults/rate-limit", {"count": 1})
    resp = await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit", qty=Decimal("0.001"),
                                    price=Decimal("10000.0"), order_link_id="bs-1", before_send=check)
    assert resp.outcome is Outcome.NOT_SENT and resp.ret_msg == "risk_changed" and len(checks) == 2
    assert sim_requests(sim, CREATE) - before == 1   # the refused attempt only; the retry never left
    withdrawn = await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit", qty=Decimal("0.001"),
                                         price=Decimal("10000.0"), order_link_id="bs-2",
                                         before_send=lambda: "HARD_STOP")
    assert withdrawn.outcome is Outcome.NOT_SENT and sim_requests(sim, CREATE) - before == 1
    assert await client.query_order(order_link_id="bs-1") is None
    assert await client.query_order(order_link_id="bs-2") is None


async def test_clock_jump_gives_10002_then_resync_succeeds(client: BybitRestClient, sim: SimServer) -> None:
    await control(sim, "clock/advance", {"ms": 60_000})
    assert await _far_limit_buy(client, "clock-1") is Outcome.OK
    assert sim_rejects(sim, 10002) == 1
    assert abs(client.server_time_ms() - sim.clock()) < 5_000


async def test_timeout_after_accept_is_ambiguous_then_query_finds_order(sim: SimServer) -> None:
    rest = make_client(sim, timeout_s=0.5)
    await rest.start()
    try:
        await control(sim, "faults/timeout-after-accept", {"count": 1})
        resp = await rest.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit", qty=Decimal("0.001"),
                                      price=Decimal("10000.0"), order_link_id="tmo-1")
        assert resp.outcome is Outcome.AMBIGUOUS and resp.http_status is None and resp.error
        assert sim_requests(sim, CREATE) == 1  # an ambiguous create is never resent blindly
        found = await rest.query_order(order_link_id="tmo-1")
        assert found is not None and found["orderLinkId"] == "tmo-1"
    finally:
        await rest.close()


async def test_5xx_before_apply_is_ambiguous_and_query_finds_nothing(client: BybitRestClient,
                                                                     sim: SimServer) -> None:
    await control(sim, "faults/http-error", {"when": "before", "status": 503, "count": 1, "path": CREATE})
    resp = await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit", qty=Decimal("0.001"),
                                    price=Decimal("10000.0"), order_link_id="5xx-before")
    assert resp.outcome is Outcome.AMBIGUOUS and resp.http_status == 503
    assert sim_requests(sim, CREATE) == 1
    assert await client.query_order(order_link_id="5xx-before") is None


async def test_5xx_after_apply_is_ambiguous_and_query_finds_order(client: BybitRestClient,
                                                                  sim: SimServer) -> None:
    await control(sim, "faults/http-error", {"when": "after", "status": 502, "count": 1, "path": CREATE})
    resp = await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit", qty=Decimal("0.001"),
                                    price=Decimal("10000.0"), order_link_id="5xx-after")
    assert resp.outcome is Outcome.AMBIGUOUS and resp.http_status == 502
    assert (await client.query_order(order_link_id="5xx-after") or {}).get("orderStatus") == "New"


async def test_get_5xx_is_retried_until_success(client: BybitRestClient, sim: SimServer) -> None:
    path = "/v5/order/realtime"
    await control(sim, "faults/http-error", {"when": "before", "status": 503, "count": 2, "path": path})
    before = sim_requests(sim, path)
    assert await client.open_orders() == []
    assert sim_requests(sim, path) - before == 3


async def test_executions_since_pages_all_rows_across_windows(sim: SimServer) -> None:
    rest = make_client(sim)
    await rest.start()
    try:
        start_ms = rest.server_time_ms() - 20 * 24 * HOUR_MS  # 20 days back: three 7-day windows
        gate = asyncio.Semaphore(16)

        async def market(n: int) -> None:
            async with gate:
                resp = await rest.place_order(symbol="ETHUSDT", side="Buy" if n % 2 else "Sell",
                                              order_type="Market", qty=Decimal("0.01"), price=None,
                                              order_link_id=f"ex-{n}")
                assert resp.outcome is Outcome.OK, resp
        await asyncio.gather(*(market(n) for n in range(260)))
        expected = (await control(sim, "state"))["executions"]
        assert expected >= 260
        rows = await rest.executions_since(start_ms)
        assert len(rows) == expected
        assert len({r["execId"] for r in rows}) == expected
        assert [int(r["execTime"]) for r in rows] == sorted(int(r["execTime"]) for r in rows)
        assert sim_requests(sim, "/v5/execution/list") >= 3 + 2  # >= 3 pages + the 2 earlier empty windows
    finally:
        await rest.close()


async def test_wrong_secret_rejected_and_secret_never_logged(sim: SimServer,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    rest = make_client(sim, api_secret="not-the-secret-xyz")
    await rest.start()  # public endpoints only: works without a valid key
    try:
        with caplog.at_level(logging.DEBUG, logger="hean"):
            resp = await rest.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit",
                                          qty=Decimal("0.001"), price=Decimal("10000.0"), order_link_id="sec-1")
        assert resp.outcome is Outcome.REJECTED and resp.ret_code == 10004
        warned = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert warned and getattr(warned[0], "ret_code", None) == 10004
        for record in caplog.records:
            text = record.getMessage() + repr(record.__dict__)
            assert "not-the-secret-xyz" not in text and SIM_SECRET not in text
            assert "X-BAPI-SIGN" not in text
        assert "not-the-secret-xyz" not in repr(rest) + repr(resp)
    finally:
        await rest.close()


async def test_place_order_rejects_bad_arguments_before_sending(client: BybitRestClient, sim: SimServer) -> None:
    with pytest.raises(TypeError):
        await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit", qty=0.001,  # type: ignore[arg-type]
                                 price=Decimal("10000.0"), order_link_id="bad-1")
    with pytest.raises(ValueError):
        await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit", qty=Decimal("0.001"),
                                 price=Decimal("10000.0"), order_link_id="x" * 37)
    with pytest.raises(ValueError):
        await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Limit", qty=Decimal("0.001"),
                                 price=None, order_link_id="bad-3")
    assert sim_requests(sim, CREATE) == 0
