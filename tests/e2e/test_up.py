"""`hean up` as a supervisor: status schema, kill -9 of a child, manual orders, bad config, no orphans,
no secret on any command line.

Each test is independent of the others' order: the read-only tests share one system, a test that
kills or stops processes starts its own."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from hean.exchange.account import api_key_info
from hean.exchange.bybit import BybitRestClient
from tests.e2e.uphelp import SERVICES, alive, assert_no_survivors, last_json, up_doc, wait_all_running
from tests.utils import PYTHON, ROOT, hean, hean_env, wait_for

# A key pair of the user's own, in an env file (paper mode: our simulator is told to accept it).
KEY = f"e2e-key-{uuid.uuid4().hex[:12]}"
SECRET = f"e2e-secret-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    """One demo `hean up` (own simulator, all ports ephemeral, keys from an env file), shared by the
    read-only tests of this module: none of them kills or stops anything."""
    tmp = tmp_path_factory.mktemp("up")
    env = hean_env(tmp)
    env_file = tmp / "keys.env"
    env_file.write_text(f"HEAN_BYBIT__API_KEY={KEY}\nHEAN_BYBIT__API_SECRET={SECRET}\n")
    state = tmp / "state"
    up = hean(["up", "--sim-port", "0", "--json", "--demo", "--env-file", str(env_file), "--state-dir", str(state)],
              env, "up")
    try:
        doc = wait_all_running(state, SERVICES)
        yield up, state, env, doc
    finally:
        up.signal(signal.SIGTERM)
        try:
            up.p.wait(60)
        finally:
            up.kill()


def _cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "hean.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_status_json_schema_against_a_running_system(system):
    _, state, env, _ = system
    # The demo's stale holder opens within seconds; wait until status sees a position.
    def status() -> dict | None:
        res = _cli(["status", "--json", "--state-dir", str(state), "--listen", "1.5"], env)
        assert res.returncode in (0, 1), res.stderr
        st = json.loads(res.stdout)
        return st if st["positions"] and st["equity"] and st["risk"]["state"] else None
    st = wait_for(status, 60, "hean status to report risk, equity and an open position")
    assert st["mode"] == "up" and st["all_up"] is True
    assert set(st["services"]) == set(SERVICES)
    for name, svc in st["services"].items():
        assert svc["up"] is True and svc["ready"] is True, name
        assert svc["uptime_s"] > 0 and svc["restarts"] == 0 and isinstance(svc["metrics_port"], int)
        assert set(svc["bus"]) == {"utilization", "dropped", "lost", "send_failed"}
        assert 0 <= svc["bus"]["utilization"] <= 1
    assert st["risk"]["state"] in ("NORMAL", "SOFT_BRAKE", "QUARANTINE", "HARD_STOP")
    assert isinstance(st["risk"]["drawdown_pct"], (int, float))
    float(st["equity"])
    pos = st["positions"][0]
    assert {"symbol", "side", "size", "avg_price", "unrealised_pnl", "age_s"} <= pos.keys()
    assert pos["side"] in ("Buy", "Sell") and pos["age_s"] >= 0
    assert st["last_reconcile_s"] is None or st["last_reconcile_s"] >= 0
    table = _cli(["status", "--state-dir", str(state), "--listen", "1"], env)
    assert table.returncode == 0 and "executor" in table.stdout and "risk:" in table.stdout


def _cmdlines() -> dict[int, bytes]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:   # gone meanwhile, or not ours to read
                pass
    return out


def test_no_secret_on_any_command_line(system):
    up, state, _, doc = system
    ours = [up.pid, doc["services"]["sim"]["pid"], *(doc["services"][s]["pid"] for s in SERVICES)]
    lines = _cmdlines()
    assert all(pid in lines for pid in ours), "every process of hean up is visible in /proc"
    assert b"hean.cli" in lines[doc["services"]["sim"]["pid"]]
    leaks = {pid: line.replace(b"\0", b" ").decode(errors="replace") for pid, line in lines.items()
             if SECRET.encode() in line or KEY.encode() in line}
    assert not leaks, f"the API key/secret is on a command line: {leaks}"

    # ... and still the simulator got them: it accepts a request signed with the env file's key.
    async def signed_call() -> dict:
        client = BybitRestClient(rest_url=up_doc(state)["sim_url"], api_key=KEY, api_secret=SECRET, dry_run=True,
                                 is_live=False)
        await client.start()
        try:
            return await api_key_info(client)
        finally:
            await client.close()
    assert asyncio.run(signed_call())["apiKey"] == KEY


@pytest.fixture
def own_system(tmp_path):
    """A `hean up` of this test alone (a test that kills or stops processes must not share one).
    Strategy, feed and watchdog are skipped: the manual order needs risk, executor and reconciler."""
    env = hean_env(tmp_path)
    state = tmp_path / "state"
    up = hean(["up", "--sim-port", "0", "--json", "--no-demo", "--state-dir", str(state),
               "--skip", "strategy", "--skip", "feed", "--skip", "watchdog"], env, "up")
    try:
        yield up, state, env, wait_all_running(state, ("risk", "reconciler", "executor"))
    finally:
        up.kill()


def test_kill9_of_a_child_is_restarted_and_the_system_carries_on(own_system):
    up, state, env, doc = own_system
    victim = doc["services"]["executor"]["pid"]
    os.kill(victim, signal.SIGKILL)

    def restarted() -> dict | None:
        d = up_doc(state)
        ex = d["services"]["executor"] if d else {}
        return d if ex.get("restarts") == 1 and ex.get("running") and ex.get("pid") != victim else None
    wait_for(restarted, 30, "hean up to restart the executor")
    assert any("RESTART" in ln and "executor" in ln for ln in up.lines), "the restart is shown to the operator"
    # The restarted executor places orders again: a manual order goes all the way through.
    res = wait_for(lambda: (r := _cli(["order", "buy", "BTCUSDT", "0.002", "--json", "--state-dir", str(state)], env))
                   .returncode == 0 and r, 60, "a manual order through the restarted executor")
    out = json.loads(res.stdout)
    assert out["outcome"] == "ORDER_PLACED" and out["strategy_id"] == "operator" and out["order_id"]
    st = json.loads(_cli(["status", "--json", "--state-dir", str(state), "--listen", "0.5"], env).stdout)
    assert st["services"]["executor"]["restarts"] == 1

    # Finally: SIGTERM stops everything cleanly, with a summary counting the restart, and nothing left behind.
    up.signal(signal.SIGTERM)
    assert up.p.wait(60) == 0, up.output()[-3000:]
    summary = last_json(up.lines)
    assert summary["restarts"] == 1 and summary["orders"] > 0 and summary["fills"] > 0
    assert len(summary["pids"]["executor"]) == 2 and summary["pids"]["risk"] == [doc["services"]["risk"]["pid"]]
    assert_no_survivors([p for ps in summary["pids"].values() for p in ps])


def test_bad_strategy_path_stops_hean_up_with_a_clear_error(tmp_path):
    env = hean_env(tmp_path, strategy__paths="hean.strategy.examples:RoundTrip,no.such.module:Nope")
    up = hean(["up", "--sim-port", "0", "--no-demo", "--state-dir", str(tmp_path / "state")], env, "up")
    assert up.p.wait(90) == 78, up.output()[-3000:]
    up.kill()
    assert any("HEAN_STRATEGY__PATHS" in ln and "no.such.module:Nope" in ln for ln in up.lines), up.output()
    doc = up_doc(tmp_path / "state")
    assert doc is not None
    assert_no_survivors([p for s in doc["services"].values() for p in s["pids"]])


def test_kill9_of_the_supervisor_leaves_no_orphans(tmp_path):
    up = hean(["up", "--sim-port", "0", "--no-demo", "--state-dir", str(tmp_path / "state")], hean_env(tmp_path), "up")
    try:
        # --no-demo without a configured strategy starts no strategy runner.
        doc = wait_all_running(tmp_path / "state", tuple(s for s in SERVICES if s != "strategy"))
        pids = [s["pid"] for s in doc["services"].values()]
        assert all(alive(p) for p in pids)
        os.kill(up.pid, signal.SIGKILL)   # only the supervisor, not its group
        assert_no_survivors(pids)
    finally:
        up.kill()
