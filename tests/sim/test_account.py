"""API-key info, account info and position mode, through the Bybit API (what `hean preflight` reads)."""

from __future__ import annotations

from datetime import datetime

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from hean.exchange.account import fetch_identity
from hean.exchange.bybit.rest import BybitRestClient
from hean.sim import SimServer
from tests.sim.conftest import KEY, SECRET, BybitTestClient, sim_settings

KEY_INFO_FIELDS = {
    "id", "note", "apiKey", "readOnly", "secret", "permissions", "ips", "type", "deadlineDay", "expiredAt",
    "createdAt", "unified", "uta", "userID", "inviterID", "vipLevel", "mktMakerLevel", "affiliateID",
    "rsaPublicKey", "isMaster", "parentUid", "kycLevel", "kycRegion",
}


def iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


async def key_info(client: BybitTestClient) -> dict:
    return await client.ok("GET", "/v5/user/query-api")


async def test_default_key_passes_a_pre_trade_check(client, sim) -> None:
    info = await key_info(client)
    assert set(info) >= KEY_INFO_FIELDS
    assert info["userID"] == 1 and isinstance(info["userID"], int)
    assert info["apiKey"] == client.key and info["secret"] == ""
    assert info["readOnly"] == 0
    assert info["permissions"]["ContractTrade"] == ["Order", "Position"]
    assert info["ips"] and "*" not in info["ips"]
    assert info["uta"] == 1
    # An IP-bound key does not expire: the docs' example shows the epoch and -2.
    assert info["expiredAt"] == "1970-01-01T00:00:00Z" and info["deadlineDay"] == -2
    assert abs(iso_ms(info["createdAt"]) - sim.clock()) < 60_000


async def test_query_api_is_signed_like_every_private_endpoint(client) -> None:
    _, _, body = await client.get("/v5/user/query-api", secret="wrong-secret")
    assert body["retCode"] == 10004
    _, _, body = await client.get("/v5/user/query-api", key="someone-else")
    assert body["retCode"] == 10003


async def test_uid_comes_from_settings_and_is_stable_across_restarts() -> None:
    for _ in range(2):
        server = SimServer(sim_settings(uid=424242))
        await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                assert (await key_info(BybitTestClient(session, server)))["userID"] == 424242
        finally:
            await server.stop()


async def test_account_info_reports_a_unified_account(client) -> None:
    info = await client.ok("GET", "/v5/account/info")
    assert info["unifiedMarginStatus"] in (3, 4, 5, 6)
    assert info["marginMode"] == "REGULAR_MARGIN"
    assert info["isMasterTrader"] is False and info["spotHedgingStatus"] == "OFF"
    assert info["dcpStatus"] == "OFF" and info["timeWindow"] == 0 and info["smpGroup"] == 0
    assert int(info["updatedTime"]) > 0
    await client.control("account", {"uta": 0})
    assert (await client.ok("GET", "/v5/account/info"))["unifiedMarginStatus"] == 1
    assert (await key_info(client))["uta"] == 0


async def test_read_only_key_cannot_trade_but_can_read(client) -> None:
    await client.control("account", {"read_only": True})
    assert (await key_info(client))["readOnly"] == 1
    body = await client.create()
    assert body["retCode"] == 10005
    await client.ok("GET", "/v5/position/list", "category=linear&symbol=BTCUSDT")
    await client.control("account", {"read_only": False})
    assert (await client.create())["retCode"] == 0


async def test_key_without_contract_order_permission_cannot_trade(client) -> None:
    await client.control("account", {"permissions": {"ContractTrade": ["Position"]}})
    info = await key_info(client)
    assert info["permissions"]["ContractTrade"] == ["Position"]
    assert info["permissions"]["Derivatives"] == ["DerivativesTrade"]   # other kinds untouched
    assert (await client.create())["retCode"] == 10005
    _, _, body = await client.post("/v5/order/cancel-all", {"category": "linear", "symbol": "BTCUSDT"})
    assert body["retCode"] == 10005


async def test_unbound_key_shows_star_and_expires_in_90_days(client, sim) -> None:
    await client.control("account", {"ips": ["*"]})
    info = await key_info(client)
    assert info["ips"] == ["*"]
    assert info["deadlineDay"] == 90
    assert iso_ms(info["expiredAt"]) - iso_ms(info["createdAt"]) == 90 * 86_400_000
    await client.control("clock/advance", {"ms": 85 * 86_400_000})
    assert (await key_info(client))["deadlineDay"] == 5
    await client.control("clock/advance", {"ms": 5 * 86_400_000 + 1000})
    _, _, body = await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT")
    assert body["retCode"] == 33004


async def test_explicit_expiry_and_deadline_day(client, sim) -> None:
    await client.control("account", {"expired_at": "2099-01-01T00:00:00Z", "deadline_day": 3})
    info = await key_info(client)
    assert info["expiredAt"] == "2099-01-01T00:00:00Z" and info["deadlineDay"] == 3
    await client.control("account", {"expired_at": "2000-01-01T00:00:00Z"})
    for path, query in (("/v5/user/query-api", ""), ("/v5/order/realtime", "category=linear&symbol=BTCUSDT")):
        _, _, body = await client.get(path, query)
        assert body["retCode"] == 33004, path
    assert (await client.create())["retCode"] == 33004
    await client.control("account", {"expired_at": None, "deadline_day": None})
    assert (await key_info(client))["deadlineDay"] == -2


async def test_uid_can_change_like_a_different_account(client) -> None:
    result = await client.control("account", {"uid": 777})
    assert result["userID"] == 777
    assert (await key_info(client))["userID"] == 777


async def test_hedge_mode_shows_two_sides_and_refuses_one_way_orders(client) -> None:
    await client.control("account", {"position_mode": "hedge"})
    rows = (await client.ok("GET", "/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"]
    assert [r["positionIdx"] for r in rows] == [1, 2]
    assert all(r["size"] == "0" and r["side"] == "" for r in rows)
    assert (await client.ok("GET", "/v5/position/list", "category=linear&settleCoin=USDT"))["list"] == []
    body = await client.create()
    assert body["retCode"] == 10001 and "position idx" in body["retMsg"]
    await client.control("account", {"position_mode": "oneway"})
    rows = (await client.ok("GET", "/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"]
    assert [r["positionIdx"] for r in rows] == [0]


async def test_mode_switch_refused_with_an_open_position(client) -> None:
    assert (await client.create())["retCode"] == 0
    async with client.session.post(f"{client.server.control_url}/account",
                                   json={"position_mode": "hedge"}) as resp:
        assert resp.status == 400
    rows = (await client.ok("GET", "/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"]
    assert [(r["positionIdx"], r["side"]) for r in rows] == [(0, "Buy")]


@pytest.mark.parametrize("body", [
    {"read_only": "yes"}, {"ips": []}, {"ips": "*"}, {"expired_at": "tomorrow"}, {"uta": 2},
    {"position_mode": "both"}, {"uid": 0}, {"uid": True}, {"permissions": {"Spot": "SpotTrade"}},
    {"deadline_day": "3"}, {"colour": "red"},
])
async def test_bad_account_control_is_400(client, body) -> None:
    async with client.session.post(f"{client.server.control_url}/account", json=body) as resp:
        assert resp.status == 400, body
    assert (await key_info(client))["readOnly"] == 0


async def test_hean_client_reads_the_identity_state_files_are_bound_to(sim) -> None:
    """The contract with hean.exchange.account: userID -> AccountIdentity.uid."""
    rest = BybitRestClient(rest_url=sim.rest_url, api_key=KEY, api_secret=SECRET, dry_run=True, is_live=False,
                           registry=CollectorRegistry())
    await rest.start()
    try:
        identity = await fetch_identity(rest)
    finally:
        await rest.close()
    assert (identity.uid, identity.base_url) == ("1", sim.rest_url)
