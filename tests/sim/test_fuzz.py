"""Property test: malformed, correctly signed input never yields a 500 and never changes state.

The simulator runs on its own event loop in a thread; hypothesis drives it with
blocking http.client calls over real sockets.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hean.sim import SimServer, SimSettings

KEY, SECRET = "fuzz-key", "fuzz-secret"
POST_PATHS = ["/v5/order/create", "/v5/order/cancel", "/v5/order/cancel-all"]
GET_PATHS = ["/v5/order/realtime", "/v5/order/history", "/v5/execution/list", "/v5/position/list",
             "/v5/account/wallet-balance", "/v5/market/tickers", "/v5/market/instruments-info"]
FIELDS = ["category", "symbol", "side", "orderType", "qty", "price", "orderLinkId", "reduceOnly", "timeInForce",
          "orderId", "limit", "cursor", "startTime", "endTime", "accountType", "positionIdx", "openOnly"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6),
    json_values,
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)
queries = st.lists(st.tuples(st.sampled_from(FIELDS + ["x"]), st.text(max_size=10)), max_size=5).map(
    lambda pairs: "&".join(f"{k}={''.join(c if c.isascii() and c.isalnum() else '%' + format(ord(c) % 256, '02X') for c in v)}"
                           for k, v in pairs))


@pytest.fixture(scope="module")
def threaded_sim() -> Iterator[SimServer]:
    loop = asyncio.new_event_loop()
    server = SimServer(SimSettings(api_key=KEY, api_secret=SECRET, rate_limit_scale=1000.0,
                                   tick_interval_s=0.05))
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "simulator thread did not start"
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def call(server: SimServer, method: str, path: str, payload: str) -> tuple[int, Any]:
    ts = str(server.clock())
    sign = hmac.new(SECRET.encode(), f"{ts}{KEY}5000{payload}".encode(), hashlib.sha256).hexdigest()
    headers = {"X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": "5000", "X-BAPI-SIGN": sign,
               "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        if method == "GET":
            conn.request("GET", path + ("?" + payload if payload else ""), headers=headers)
        else:
            conn.request("POST", path, body=payload.encode("utf-8", "surrogatepass"), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def snapshot(server: SimServer) -> tuple[Any, ...]:
    ex = server.exchange
    return (len(ex.orders), len(ex.executions), ex.wallet_balance,
            tuple((s, p.size) for s, p in ex.positions.items()))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(POST_PATHS), body=bodies)
def test_random_post_bodies(threaded_sim: SimServer, path: str, body: Any) -> None:
    before = snapshot(threaded_sim)
    payload = body if isinstance(body, str) else json.dumps(body)
    status, raw = call(threaded_sim, "POST", path, payload)
    assert status == 200, raw
    answer = json.loads(raw)
    assert answer["retCode"] not in (0, 10016), answer
    assert snapshot(threaded_sim) == before
    assert threaded_sim.exchange.wallet_balance == Decimal("100000")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(GET_PATHS), query=queries)
def test_random_query_strings(threaded_sim: SimServer, path: str, query: str) -> None:
    before = snapshot(threaded_sim)
    status, raw = call(threaded_sim, "GET", path, query)
    assert status == 200, raw
    assert json.loads(raw)["retCode"] != 10016
    assert snapshot(threaded_sim) == before
