"""Auth and envelope conformance (SPEC §1.2-1.5)."""

from __future__ import annotations

import json
import re

from hean.sim import SimServer

WALLET = "/v5/account/wallet-balance"


async def test_good_signature_returns_envelope_with_types(client) -> None:
    status, headers, body = await client.get(WALLET, "accountType=UNIFIED")
    assert status == 200
    assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    assert body["retCode"] == 0 and body["retMsg"] == "OK"
    assert isinstance(body["time"], int) and isinstance(body["retExtInfo"], dict)
    account = body["result"]["list"][0]
    assert account["accountType"] == "UNIFIED" and account["totalEquity"] == "100000"
    for name in ("X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp"):
        assert headers[name].isdigit(), name


async def test_wrong_signature_is_10004(client) -> None:
    _, _, body = await client.get(WALLET, "accountType=UNIFIED", secret="not-the-secret")
    assert body["retCode"] == 10004
    assert "test-secret" not in json.dumps(body)


async def test_unknown_key_is_10003(client) -> None:
    _, _, body = await client.get(WALLET, "accountType=UNIFIED", key="someone-else")
    assert body["retCode"] == 10003


async def test_missing_auth_headers_is_10003(client, sim: SimServer) -> None:
    async with client.session.get(f"{sim.rest_url}{WALLET}?accountType=UNIFIED") as resp:
        body = await resp.json()
        assert resp.status == 200 and "X-Bapi-Limit" in resp.headers
    assert body["retCode"] == 10003


async def test_stale_timestamp_is_10002_with_live_message(client, sim: SimServer) -> None:
    stale = sim.clock() - 6000
    _, _, body = await client.get(WALLET, "accountType=UNIFIED", ts=stale)
    assert body["retCode"] == 10002
    match = re.fullmatch(
        r"invalid request, please check your server timestamp or recv_window param\. "
        r"req_timestamp\[(\d+)\],server_timestamp\[(\d+)\],recv_window\[5000\]", body["retMsg"])
    assert match and int(match.group(1)) == stale and int(match.group(2)) >= stale + 6000


async def test_timestamp_too_far_in_future_is_10002(client, sim: SimServer) -> None:
    _, _, body = await client.get(WALLET, "accountType=UNIFIED", ts=sim.clock() + 5000)
    assert body["retCode"] == 10002


async def test_larger_recv_window_accepts_older_timestamp(client, sim: SimServer) -> None:
    _, _, body = await client.get(WALLET, "accountType=UNIFIED", ts=sim.clock() - 6000, recv_window="20000")
    assert body["retCode"] == 0


async def test_get_verifies_raw_unsorted_query(client) -> None:
    await client.create(orderLinkId="raw-q-1")
    _, _, body = await client.get("/v5/order/realtime", "symbol=BTCUSDT&orderLinkId=raw-q-1&category=linear")
    assert body["retCode"] == 0 and body["result"]["list"][0]["orderLinkId"] == "raw-q-1"


async def test_get_signature_over_encoded_query_as_sent(client) -> None:
    _, _, body = await client.get(WALLET, "accountType=UNIFIED&coin=USDT%2CUSDC")
    assert body["retCode"] == 0
    assert [c["coin"] for c in body["result"]["list"][0]["coin"]] == ["USDT"]


async def test_post_with_default_and_compact_separators_verifies(client) -> None:
    order = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
             "qty": "0.01", "price": "40000", "orderLinkId": "sep-1"}
    _, _, body = await client.post("/v5/order/create", json.dumps(order))
    assert body["retCode"] == 0 and body["result"]["orderLinkId"] == "sep-1"
    order["orderLinkId"] = "sep-2"
    _, _, body = await client.post("/v5/order/create", json.dumps(order, separators=(",", ":")))
    assert body["retCode"] == 0


async def test_post_signed_over_other_bytes_is_rejected(client, sim: SimServer) -> None:
    order = json.dumps({"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
                        "qty": "0.01"})
    headers = client.headers(order.replace(", ", ","))
    async with client.session.post(f"{sim.rest_url}/v5/order/create", data=order, headers=headers) as resp:
        body = await resp.json()
    assert body["retCode"] == 10004
    assert (await client.state())["orders"] == 0


async def test_public_endpoints_need_no_auth(client, sim: SimServer) -> None:
    async with client.session.get(f"{sim.rest_url}/v5/market/time") as resp:
        body = await resp.json()
    assert body["retCode"] == 0
    assert body["result"]["timeSecond"] == str(int(body["result"]["timeNano"]) // 10**9)


async def test_unknown_path_is_http_404(client, sim: SimServer) -> None:
    status, _, _ = await client.get("/v5/order/nonexistent", "category=linear")
    assert status == 404
