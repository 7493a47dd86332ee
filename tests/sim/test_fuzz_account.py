"""Property test for the account endpoints: malformed, signed input never yields a 500 / 10016."""

from __future__ import annotations

import http.client
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hean.sim import SimServer
from tests.sim.test_fuzz import call, json_values, snapshot, threaded_sim  # noqa: F401 - fixture

FIELDS = ["accountType", "category", "currency", "baseCoin", "type", "transSubType", "startTime", "endTime",
          "limit", "cursor", "symbol", "coin", "mode"]
GET_PATHS = ["/v5/user/query-api", "/v5/account/info", "/v5/account/transaction-log"]
queries = st.lists(st.tuples(st.sampled_from(FIELDS + ["x"]), st.text(max_size=10)), max_size=5).map(
    lambda pairs: "&".join(f"{k}={''.join(c if c.isascii() and c.isalnum() else '%' + format(ord(c) % 256, '02X') for c in v)}"
                           for k, v in pairs))
bodies = st.one_of(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5), json_values)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(GET_PATHS), query=queries)
def test_random_account_queries(threaded_sim: SimServer, path: str, query: str) -> None:  # noqa: F811
    status, raw = call(threaded_sim, "GET", path, query)
    assert status == 200, raw
    assert json.loads(raw)["retCode"] != 10016


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_random_switch_mode_bodies(threaded_sim: SimServer, body: Any) -> None:  # noqa: F811
    before = snapshot(threaded_sim)
    status, raw = call(threaded_sim, "POST", "/v5/position/switch-mode", json.dumps(body))
    assert status == 200, raw
    assert json.loads(raw)["retCode"] != 10016
    assert snapshot(threaded_sim) == before


account_fields = st.sampled_from(["read_only", "permissions", "ips", "expired_at", "deadline_day", "uta",
                                  "position_mode", "uid"])
account_values = st.one_of(json_values, st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+01:00",
                                                          "2030-01-01T00:00:00Z", "hedge", "oneway"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(account_fields, account_values, max_size=3))
def test_random_account_control_then_key_info(threaded_sim: SimServer, body: dict) -> None:  # noqa: F811
    conn = http.client.HTTPConnection("127.0.0.1", threaded_sim.port, timeout=10)
    try:
        conn.request("POST", "/sim/account", body=json.dumps(body), headers={"Content-Type": "application/json"})
        status = conn.getresponse().status
    finally:
        conn.close()
    assert status in (200, 400)
    for path in GET_PATHS:
        status, raw = call(threaded_sim, "GET", path, "")
        assert status == 200 and json.loads(raw)["retCode"] in (0, 10010, 33004), raw
    reset = {"read_only": False, "ips": ["127.0.0.1"], "expired_at": None, "deadline_day": None, "uta": 1,
             "position_mode": "oneway", "uid": 1, "permissions": {"ContractTrade": ["Order", "Position"]}}
    conn = http.client.HTTPConnection("127.0.0.1", threaded_sim.port, timeout=10)
    try:
        conn.request("POST", "/sim/account", body=json.dumps(reset), headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
    finally:
        conn.close()
