"""`hean preflight` against the simulator: every check passes, and each fails on its own fault.

Real processes: a `hean sim` per test (its key given through the environment) and the
`hean preflight` command, configured like every HEAN process (HEAN_BYBIT__*).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import pytest

from tests.preflight.harness import KEY, SECRET, Venue, checks, preflight, stripping_proxy

ALWAYS = {"endpoints", "exchange", "clock", "key permissions", "key ip binding", "key expiry", "unified account",
          "position mode", "instrument BTCUSDT", "instrument ETHUSDT", "rate-limit headers", "private ws"}


@pytest.fixture
def venue(tmp_path):
    v = Venue(tmp_path / "sim")
    yield v
    v.stop()


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text and KEY not in text


def _only_failure(result: dict[str, tuple[str, str]], name: str, status: str = "FAIL") -> str:
    assert result[name][0] == status, result[name]
    others = {n: s for n, s in result.items() if n != name and s[0] != "PASS"}
    assert not others, f"only {name} should be {status}: {others}"
    return result[name][1]


def test_every_check_passes_and_the_test_order_is_gone(tmp_path, venue):
    rc, out, err = preflight(venue.settings_env(tmp_path), "--json", "--place-test-order")
    assert rc == 0, out + err
    result = checks(out)
    assert set(result) == ALWAYS | {"test order"}
    assert all(status == "PASS" for status, _ in result.values()), result
    link = re.search(r"\((preflight-[0-9a-f]+)\)", result["test order"][1]).group(1)
    orders = venue.control(f"/sim/orders?orderLinkId={link}")
    rows = orders["list"] if isinstance(orders, dict) else orders
    assert [r["orderStatus"] for r in rows] == ["Cancelled"], rows
    assert rows[0]["timeInForce"] == "PostOnly" and rows[0]["cumExecQty"] in ("0", "0.000")
    assert venue.control("/sim/state")["open_orders"] == 0, "nothing left resting"
    _no_secret(out, err)


def test_one_line_per_check_for_a_human(tmp_path, venue):
    rc, out, err = preflight(venue.settings_env(tmp_path))
    assert rc == 0, out + err
    lines = out.strip().splitlines()
    assert len(lines) == len(ALWAYS) + 1 and lines[-1].startswith("preflight: ok")
    assert all(line.startswith("PASS  ") for line in lines[:-1]), out
    _no_secret(out, err)


IN_3_DAYS = datetime.fromtimestamp(time.time() + 3 * 86400, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(("fault", "name", "status", "says"), [
    ({"read_only": True}, "key permissions", "FAIL", "read-only"),
    ({"permissions": {"ContractTrade": ["Position"]}}, "key permissions", "FAIL", "Order and Position"),
    ({"ips": ["*"]}, "key ip binding", "FAIL", "not bound"),
    ({"expired_at": IN_3_DAYS}, "key expiry", "WARN", "expires in"),
    ({"uta": 0}, "unified account", "FAIL", "not a unified"),
    ({"position_mode": "hedge"}, "position mode", "FAIL", "hedge mode on BTCUSDT, ETHUSDT"),
])
def test_each_account_fault_fails_its_check(tmp_path, venue, fault, name, status, says):
    venue.control("/sim/account", fault)
    rc, out, err = preflight(venue.settings_env(tmp_path), "--json")
    assert rc == (1 if status == "FAIL" else 0), out + err
    assert says in _only_failure(checks(out), name, status)
    _no_secret(out, err)


def test_an_expired_key_fails_the_expiry_check(tmp_path, venue):
    venue.control("/sim/account", {"expired_at": "2020-01-01T00:00:00Z"})
    rc, out, err = preflight(venue.settings_env(tmp_path), "--json")
    result = checks(out)
    assert rc == 1 and result["key expiry"][0] == "FAIL" and "expired" in result["key expiry"][1], result
    assert result["exchange"][0] == result["clock"][0] == "PASS"


def test_a_key_bound_to_other_ips_fails_the_ip_check(tmp_path, venue):
    venue.control("/sim/account", {"ips": ["203.0.113.7"]})
    rc, out, err = preflight(venue.settings_env(tmp_path), "--json")
    result = checks(out)
    assert rc == 1 and result["key ip binding"][0] == "FAIL", result
    assert "IP" in result["key ip binding"][1] and "10010" in result["key ip binding"][1]


def test_a_clock_beyond_the_recv_window_fails(tmp_path, venue):
    venue.control("/sim/clock/advance", {"ms": 3_600_000})
    rc, out, err = preflight(venue.settings_env(tmp_path), "--json")
    assert rc == 1, out + err
    assert "fix NTP" in _only_failure(checks(out), "clock")


def test_a_symbol_the_exchange_does_not_list_fails(tmp_path, venue):
    rc, out, err = preflight(venue.settings_env(tmp_path, HEAN_SYMBOLS="BTCUSDT,SOLUSDT"), "--json")
    result = checks(out)
    assert rc == 1 and result["instrument SOLUSDT"][0] == "FAIL", result
    assert result["instrument BTCUSDT"][0] == "PASS"


def test_missing_rate_limit_headers_fail(tmp_path, venue):
    with stripping_proxy(venue.rest_url) as proxied:
        rc, out, err = preflight(venue.settings_env(tmp_path, rest_url=proxied), "--json")
    assert rc == 1, out + err
    assert "X-Bapi-Limit" in _only_failure(checks(out), "rate-limit headers")


def test_a_private_ws_that_refuses_the_key_fails(tmp_path, venue):
    # The stream of another venue (a testnet key against the mainnet stream): REST works, WS auth does not.
    other = Venue(tmp_path / "other", key="someone-elses-key", secret="someone-elses-secret")
    try:
        env = venue.settings_env(tmp_path, ws_private=f"ws://{other.host}/v5/private")
        rc, out, err = preflight(env, "--json")
    finally:
        other.stop()
    assert rc == 1, out + err
    assert "auth" in _only_failure(checks(out), "private ws")
    _no_secret(out, err)


def test_a_test_order_the_key_may_not_place_fails(tmp_path, venue):
    venue.control("/sim/account", {"read_only": True})
    rc, out, err = preflight(venue.settings_env(tmp_path), "--json", "--place-test-order")
    result = checks(out)
    assert rc == 1 and result["test order"][0] == "FAIL" and "refused" in result["test order"][1], result


def test_live_mode_without_keys_is_a_config_error(tmp_path, venue):
    env = venue.settings_env(tmp_path, HEAN_MODE="live", HEAN_IS_LIVE="true", HEAN_DRY_RUN="false")
    del env["HEAN_BYBIT__API_KEY"], env["HEAN_BYBIT__API_SECRET"]
    rc, out, err = preflight(env)
    assert rc == 78 and len(err.strip().splitlines()) == 1 and "HEAN_BYBIT__API_KEY" in err, out + err


def test_live_mode_checks_the_configured_urls(tmp_path, venue):
    # Live settings with keys but the simulator's loopback URLs: every account check runs against
    # what is configured (here it answers), and the endpoints line says this is no real exchange.
    env = venue.settings_env(tmp_path, HEAN_MODE="live", HEAN_IS_LIVE="true", HEAN_DRY_RUN="false")
    rc, out, err = preflight(env, "--json")
    assert rc == 1, out + err
    assert "loopback" in _only_failure(checks(out), "endpoints")
    _no_secret(out, err)
