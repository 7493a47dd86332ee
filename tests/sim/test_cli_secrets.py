"""`hean sim` takes its credentials from the environment: the secret works and is on no argv."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from tests.sim.conftest import hmac_hex
from tests.utils import Proc, hean, hean_env, wait_for

SECRET = "env-only-secret-7f3a9c"
KEY = "env-key-1"


def ready_url(proc: Proc) -> str:
    line = wait_for(lambda: next((x for x in proc.lines if x.startswith("HEAN-SIM READY ")), None), 30,
                    "the HEAN-SIM READY line")
    return line.split()[-1]


def signed_get(rest_url: str, path: str, key: str, secret: str) -> dict:
    ts = str(int(time.time() * 1000))
    headers = {"X-BAPI-API-KEY": key, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": "20000",
               "X-BAPI-SIGN": hmac_hex(secret, f"{ts}{key}20000"), "X-BAPI-SIGN-TYPE": "2"}
    with urllib.request.urlopen(urllib.request.Request(f"{rest_url}{path}", headers=headers), timeout=10) as resp:
        return json.load(resp)


def cmdlines() -> dict[int, bytes]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return out


def test_credentials_from_environment_never_on_argv(tmp_path) -> None:
    env = hean_env(tmp_path)
    env.update({"HEAN_SIM__API_KEY": KEY, "HEAN_SIM__API_SECRET": SECRET, "HEAN_SIM__UID": "5150"})
    proc = hean(["sim", "--port", "0", "--symbols", "BTCUSDT"], env, "hean sim")
    try:
        rest_url = ready_url(proc)
        info = signed_get(rest_url, "/v5/user/query-api", KEY, SECRET)
        assert info["retCode"] == 0, info
        assert info["result"]["userID"] == 5150 and info["result"]["secret"] == ""
        assert signed_get(rest_url, "/v5/user/query-api", "hean-sim-key", "hean-sim-secret")["retCode"] == 10003
        assert signed_get(rest_url, "/v5/user/query-api", KEY, "hean-sim-secret")["retCode"] == 10004
        own = (Path("/proc") / str(proc.pid) / "cmdline").read_bytes()
        assert b"sim" in own and b"--port" in own
        leaks = [pid for pid, line in cmdlines().items() if SECRET.encode() in line]
        assert leaks == [], f"secret on the command line of {leaks}"
        assert SECRET in (Path("/proc") / str(proc.pid) / "environ").read_bytes().decode(errors="replace")
    finally:
        assert proc.stop() == 0
    assert SECRET not in proc.output()


def test_flags_still_win_over_the_environment(tmp_path) -> None:
    env = hean_env(tmp_path)
    env.update({"HEAN_SIM__API_KEY": KEY, "HEAN_SIM__API_SECRET": SECRET})
    proc = hean(["sim", "--port", "0", "--symbols", "BTCUSDT", "--api-key", "flag-key", "--api-secret", "flag-s"],
                env, "hean sim")
    try:
        rest_url = ready_url(proc)
        assert signed_get(rest_url, "/v5/user/query-api", "flag-key", "flag-s")["retCode"] == 0
        assert signed_get(rest_url, "/v5/user/query-api", KEY, SECRET)["retCode"] == 10003
    finally:
        assert proc.stop() == 0


def test_bad_uid_in_environment_is_a_usage_error(tmp_path) -> None:
    env = hean_env(tmp_path)
    env["HEAN_SIM__UID"] = "abc"
    proc = hean(["sim", "--port", "0"], env, "hean sim")
    assert proc.p.wait(30) == 2
    proc.stop()
    assert "HEAN_SIM__UID" in proc.output()
