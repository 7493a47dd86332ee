"""The seed's integration test, end to end: `hean up` paper-trades against a simulator the test owns.

The test starts its own simulator (so it can read the exchange's books after
`hean up` has stopped), runs `hean up --demo --duration N --json` against it
on a fresh temp dir, and checks from the summary AND from the simulator that
orders were placed and filled, that every fill HEAN saw is an execution the
simulator made (same orders, same quantities), and that no process is left.
"""

from __future__ import annotations

import json
import urllib.request
from collections import defaultdict
from decimal import Decimal

from hean.ids import order_link_id
from tests.e2e.uphelp import assert_no_survivors, last_json
from tests.utils import hean, hean_env, wait_for

KEYS = {"ticks", "intents", "orders", "fills", "risk_transitions", "force_closes", "restarts"}


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def test_hean_up_trades_and_hean_fills_match_the_exchange(tmp_path):
    sim = hean(["sim", "--port", "0", "--initial-balance", "10000"], hean_env(tmp_path / "sim"), "sim")
    try:
        line = wait_for(lambda: next((ln for ln in sim.lines if ln.startswith("HEAN-SIM READY")), None), 30,
                        "the simulator to be ready")
        rest = line.split()[-1]
        host = rest.removeprefix("http://")
        env = hean_env(tmp_path, bybit__rest_url=rest, bybit__ws_public_url=f"ws://{host}/v5/public/linear",
                       bybit__ws_private_url=f"ws://{host}/v5/private")
        up = hean(["up", "--demo", "--duration", "32", "--json", "--state-dir", str(tmp_path / "state"),
                   "--data-dir", str(tmp_path / "data")], env, "up")
        assert up.p.wait(120) == 0, up.output()[-3000:]
        up.kill()
        summary = last_json(up.lines)
        assert KEYS <= summary.keys()
        assert summary["intents"] > 0 and summary["orders"] > 0 and summary["fills"] > 0, summary
        assert summary["ticks"] > 0, summary
        assert summary["restarts"] == 0
        # Demo settings: the scripted dip and the 20 s max hold are visible within the run.
        assert summary["risk_transitions"] >= 1 and summary["force_closes"] >= 1, summary
        assert "sim" not in summary["pids"], "hean up must not start a simulator when a Bybit URL is configured"
        pids = [p for ps in summary["pids"].values() for p in ps]
        assert_no_survivors(pids)

        detail = json.loads((tmp_path / "state" / "summary.json").read_text())
        state = _get(f"{rest}/sim/state")
        assert state["executions"] == summary["fills"], (state, summary)
        orders = {o["orderLinkId"]: o for o in _get(f"{rest}/sim/orders")["list"]}
        hean_qty: dict[str, Decimal] = defaultdict(Decimal)
        for exec_id, fill in detail["fills_detail"].items():
            assert fill["exec_id"] == exec_id
            hean_qty[fill["order_link_id"]] += Decimal(fill["exec_qty"])
        assert set(hean_qty) == {link for link, o in orders.items() if Decimal(o["cumExecQty"]) > 0}
        for link, qty in hean_qty.items():
            assert qty == Decimal(orders[link]["cumExecQty"]), (link, qty, orders[link])
        for intent_id in detail["placed_intents"]:
            assert order_link_id(intent_id) in orders, intent_id
        force_links = {f["order_link_id"] for f in detail["force_closes_detail"]}
        assert force_links <= set(orders), "every force-close is a real order on the exchange"
    finally:
        sim.stop()
