"""The operator's console against a real `hean up` (own simulator): every command finds it by itself,
money and open orders in `hean status`, cancel and partial close through the executor, a safe reset,
the simulator's metrics; and what `hean up` says and does when it stops."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.uphelp import SERVICES, last_json, wait_all_running
from tests.utils import PYTHON, ROOT, hean, hean_env, metric, scrape, wait_for

MONEY = ("realised_pnl", "fees", "funding", "unrealised_pnl", "equity")


def _env(tmp: Path) -> dict[str, str]:
    env = hean_env(tmp)
    # Found like an operator finds it: no HEAN_RUNTIME_DIR, only the pointer of this user's `hean up`
    # (in a private temp dir, so other test runs on this machine do not interfere).
    del env["HEAN_RUNTIME_DIR"]
    (tmp / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(tmp / "tmp")
    return env


def _cli(args: list[str], env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "hean.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _sim(doc: dict[str, Any], path: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(doc["sim_url"] + path, method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    """A `hean up --no-demo` (no strategy: the test is the only trader), found through its pointer."""
    tmp = tmp_path_factory.mktemp("console")
    env = _env(tmp)
    state = tmp / "state"
    up = hean(["up", "--sim-port", "0", "--no-demo", "--state-dir", str(state)], env, "up")
    try:
        doc = wait_all_running(state, tuple(s for s in SERVICES if s != "strategy"))
        yield up, env, doc
    finally:
        up.signal(signal.SIGTERM)
        try:
            up.p.wait(90)
        finally:
            up.kill()


def _status(env: dict[str, str]) -> dict[str, Any]:
    res = _cli(["status", "--json"], env)
    assert res.returncode == 0, res
    return json.loads(res.stdout)


def test_no_demo_runs_no_strategy_and_says_so(system):
    up, _, doc = system
    assert "strategy" not in doc["services"]
    wait_for(lambda: any("no strategy runs" in line for line in up.lines), 30, "the banner line")


def test_the_simulator_serves_metrics_and_reads_up(system):
    up, _, doc = system
    sim_port = doc["services"]["sim"]["metrics_port"]
    assert sim_port, "the sim's metrics port is recorded"
    assert any(k.startswith("hean_sim_") for k in scrape(sim_port)), "the simulator's own metrics"
    assert metric(scrape(doc["up_metrics_port"]), "hean_up_child_up", service="sim") == 1
    assert any(f"127.0.0.1:{sim_port}/metrics" in line for line in up.lines), "the banner shows it"


def test_status_lists_money_and_open_orders_and_cancel_goes_through_the_executor(system):
    _, env, doc = system
    placed = _cli(["order", "buy", "BTCUSDT", "0.01", "--limit", "30000", "--json"], env)
    assert placed.returncode == 0, placed
    link = json.loads(placed.stdout)["order_link_id"]
    st = wait_for(lambda: (s := _status(env)) and any(o["order_link_id"] == link for o in s["open_orders"]) and s,
                  60, "the resting order in hean status")
    row = next(o for o in st["open_orders"] if o["order_link_id"] == link)
    up = system[0]
    wait_for(lambda: any("order New" in ln and link in ln for ln in up.lines), 30, "the live view shows the order")
    assert (row["symbol"], row["side"], row["qty"], row["strategy"]) == ("BTCUSDT", "Buy", "0.01", "operator")
    assert row["age_s"] is not None and Decimal(row["price"]) > 0
    for key in MONEY:
        assert key in st and st[key] is not None, key
    table = _cli(["status"], env)
    assert "OPEN ORDER" in table.stdout and link in table.stdout and "MONEY (USDT)" in table.stdout

    cancelled = _cli(["order", "cancel", link], env)
    assert cancelled.returncode == 0, cancelled
    assert "cancelled 1 order" in cancelled.stdout and link in cancelled.stdout
    wait_for(lambda: not [o for o in _status(env)["open_orders"] if o["order_link_id"] == link], 60,
             "the order gone from hean status")
    again = _cli(["order", "cancel", link], env)
    assert again.returncode == 1 and "no open order matches" in again.stdout + again.stderr


def test_partial_close_closes_qty_and_refuses_more_than_the_position(system):
    _, env, doc = system
    assert _cli(["order", "buy", "ETHUSDT", "0.3"], env).returncode == 0
    wait_for(lambda: Decimal(_sim(doc, "/sim/state")["positions"]["ETHUSDT"]) == Decimal("0.3"), 60, "0.3 ETH")
    too_much = _cli(["order", "close", "ETHUSDT", "0.5"], env)
    assert too_much.returncode == 2 and "only 0.3" in too_much.stderr, too_much
    part = _cli(["order", "close", "ETHUSDT", "0.1"], env)
    assert part.returncode == 0, part
    wait_for(lambda: Decimal(_sim(doc, "/sim/state")["positions"]["ETHUSDT"]) == Decimal("0.2"), 60, "0.2 ETH left")
    assert _cli(["order", "close", "ETHUSDT"], env).returncode == 0
    wait_for(lambda: Decimal(_sim(doc, "/sim/state")["positions"]["ETHUSDT"]) == 0, 60, "flat")
    money = _status(env)
    assert Decimal(money["by_symbol"]["ETHUSDT"]["fees"]) > 0, "fees from the exchange's execFee"
    rec = scrape(doc["services"]["reconciler"]["metrics_port"])
    assert metric(rec, "hean_reconciler_fees_usdt", symbol="ETHUSDT") > 0
    assert metric(rec, "hean_reconciler_equity_usdt") > 0


def test_a_reset_that_would_retrip_is_refused_and_a_rebase_works(system):
    _, env, doc = system
    # A loss of >20 % of the wallet: a position and a price crash at the simulator.
    assert _cli(["order", "buy", "BTCUSDT", "1"], env).returncode == 0
    wait_for(lambda: Decimal(_sim(doc, "/sim/state")["positions"]["BTCUSDT"]) == 1, 60, "1 BTC")
    price = Decimal(_sim(doc, "/sim/state")["prices"]["BTCUSDT"])
    _sim(doc, "/sim/price", {"symbol": "BTCUSDT", "price": format((price * Decimal("0.5")).quantize(1), "f")})
    wait_for(lambda: _status(env)["risk"]["state"] == "HARD_STOP", 90, "HARD_STOP")
    refused = _cli(["risk", "reset", "--operator", "alice"], env)
    assert refused.returncode == 1, refused
    assert "REFUSED" in refused.stderr and "--initial-capital" in refused.stderr, refused
    assert _status(env)["risk"]["state"] == "HARD_STOP"
    equity = Decimal(_status(env)["equity"]).quantize(Decimal("0.01"))
    ok = _cli(["risk", "reset", "--operator", "alice", "--initial-capital", str(equity)], env)
    assert ok.returncode == 0 and "NORMAL" in ok.stdout, ok


def test_flatten_on_exit_and_the_duration_summary_carry_the_money(tmp_path):
    env = _env(tmp_path)
    res = subprocess.run([PYTHON, "-m", "hean.cli", "up", "--sim-port", "0", "--demo", "--json", "--duration", "15",
                          "--flatten-on-exit", "--state-dir", str(tmp_path / "state")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = res.stdout.splitlines()
    summary = last_json(lines)
    for key in MONEY:
        assert key in summary and summary[key] is not None, key
    assert summary["fills"] > 0 and Decimal(summary["fees"]) > 0
    assert any(line.startswith("left open: nothing") for line in lines), res.stdout[-2000:]
    assert summary["open_positions"] == 0 and summary["open_orders"] == 0
