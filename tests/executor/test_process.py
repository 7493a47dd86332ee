"""Claims about the real `hean run executor` process: kill -9 mid-request, SIGTERM, host guards."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from hean.bus import BusStats, Subscriber
from hean.exchange.account import AccountIdentity
from hean.exchange.bybit.errors import DRY_RUN_MESSAGE, NOT_LIVE_MESSAGE
from hean.executor.journal import Journal
from hean.ids import order_link_id
from hean.statefile import bind_state, recorded_identity
from tests.executor.harness import Peers, executor_settings, intent, sim_control, sim_orders
from tests.utils import async_wait_for, hean, hean_env, metric, scrape


def _env(tmp_path: Path, sim, **extra: str) -> dict[str, str]:
    return hean_env(tmp_path, bybit__rest_url=sim.rest_url, bybit__ws_public_url=sim.ws_public_url,
                    bybit__ws_private_url=sim.ws_private_url, executor__risk_stale_s="2",
                    executor__resolve_interval_s="0.2", **extra)


def _journal_state(tmp_path: Path, intent_id: str) -> str | None:
    db = sqlite3.connect(tmp_path / "data" / "executor.sqlite")
    try:
        row = db.execute("SELECT state FROM intents WHERE intent_id = ?", (intent_id,)).fetchone()
    finally:
        db.close()
    return None if row is None else str(row[0])


async def _ready_for_orders(port: int) -> None:
    """The executor has heard the test's NORMAL heartbeat (its gauge starts at 3 = fail closed)."""
    await async_wait_for(lambda: metric(scrape(port), "hean_executor_risk_state") == 0, 20,
                         "the executor to hear risk state NORMAL")


async def test_kill9_between_journal_write_and_ack_then_restart_places_exactly_once(tmp_path, sim):
    peers = Peers(executor_settings(tmp_path, sim))
    env = _env(tmp_path, sim, bybit__timeout_s="60")  # the held request would hang for a minute
    first = hean(["run", "executor"], env, "executor #1")
    second = None
    try:
        await _ready_for_orders(await asyncio.to_thread(first.wait_ready))
        await sim_control(sim, "faults/timeout-after-accept", {"count": 1})
        data = intent()
        link = order_link_id(data["intent_id"])

        async def applied_on_exchange() -> bool:
            await peers.ctl.publish("intent.order", "ORDER_INTENT", data)
            return len(await sim_orders(sim, link)) == 1
        await async_wait_for(applied_on_exchange, 20, "the order to be applied by the simulator", interval=0.2)
        # The request is hanging: journaled before it left, no answer yet, no outcome published.
        assert _journal_state(tmp_path, data["intent_id"]) == "PENDING"
        first.kill()
        assert peers.outcomes(data["intent_id"]) == []

        second = hean(["run", "executor"], env, "executor #2")
        await asyncio.to_thread(second.wait_ready)
        placed = await peers.submit(data, timeout=20)
        assert placed.type == "ORDER_PLACED"
        orders = await sim_orders(sim, link)
        assert len(orders) == 1 and placed.data["order_id"] == orders[0]["orderId"]
        assert _journal_state(tmp_path, data["intent_id"]) == "PLACED"
        second.wait_record("unresolved order found on the exchange")
        # The journal line an operator greps for: one per outcome, with the fields that trace an order.
        line = second.wait_record("order outcome")
        assert {k: line.get(k) for k in ("order_link_id", "symbol", "risk_state", "outcome")} == {
            "order_link_id": link, "symbol": data["symbol"], "risk_state": "NORMAL", "outcome": "ORDER_PLACED"}
        assert await asyncio.to_thread(second.stop) == 0
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.kill()
        await peers.close()


async def test_sigterm_finishes_the_in_flight_order_and_exits_0(tmp_path, sim):
    peers = Peers(executor_settings(tmp_path, sim))
    proc = hean(["run", "executor"], _env(tmp_path, sim))
    try:
        port = await asyncio.to_thread(proc.wait_ready)
        await _ready_for_orders(port)
        await sim_control(sim, "faults/latency", {"ms": 1500})
        data = intent()
        await peers.ctl.publish("intent.order", "ORDER_INTENT", data)
        await async_wait_for(lambda: metric(scrape(port), "hean_executor_unresolved_orders") == 1, 10,
                             "the order request to be in flight")
        rc = await asyncio.to_thread(proc.stop)
        assert rc == 0
        assert _journal_state(tmp_path, data["intent_id"]) == "PLACED"
        assert len(await sim_orders(sim, order_link_id(data["intent_id"]))) == 1
        await async_wait_for(lambda: peers.outcomes(data["intent_id"]), 10, "ORDER_PLACED sent before exit")
    finally:
        proc.kill()
        await peers.close()


def _refuses(tmp_path: Path, message: str, **settings: str) -> None:
    proc = hean(["run", "executor"], hean_env(tmp_path, **settings))
    try:
        assert proc.p.wait(30) == 78
    finally:
        proc.kill()
    errors = [line for line in proc.err if "config error" in line]
    assert len(errors) == 1 and message in errors[0], proc.output()


def test_dry_run_never_reaches_a_real_bybit_host(tmp_path):
    _refuses(tmp_path, DRY_RUN_MESSAGE, bybit__rest_url="https://api.bybit.com")


def test_real_host_without_is_live_refuses(tmp_path):
    _refuses(tmp_path, NOT_LIVE_MESSAGE, dry_run="false", bybit__rest_url="https://api.bybit.com")


def _foreign_journal(tmp_path: Path, sim) -> Path:
    """An executor journal written for another account (uid 999) of the same exchange, with an open row."""
    path = tmp_path / "data" / "executor.sqlite"
    bind_state(path, AccountIdentity(sim.rest_url.rstrip("/"), "999"), archive_foreign=False)
    journal = Journal(path)
    data = intent()
    journal.insert(data["intent_id"], order_link_id(data["intent_id"]), "BTCUSDT", "PENDING", data)
    journal.close()
    return path


async def test_journal_of_another_account_refuses_to_start_with_one_line(tmp_path, sim):
    path = _foreign_journal(tmp_path, sim)
    proc = hean(["run", "executor"], _env(tmp_path, sim))
    try:
        assert await asyncio.to_thread(proc.p.wait, 30) == 78
    finally:
        proc.kill()
    errors = [line for line in proc.err if "config error" in line]
    assert len(errors) == 1 and "belongs to uid 999" in errors[0] and "not to uid 1" in errors[0], proc.output()
    assert "HEAN_ARCHIVE_FOREIGN_STATE" in errors[0]
    assert recorded_identity(path) == AccountIdentity(sim.rest_url.rstrip("/"), "999")  # left as it was


async def test_archive_foreign_state_moves_the_journal_aside_and_starts(tmp_path, sim):
    path = _foreign_journal(tmp_path, sim)
    proc = hean(["run", "executor"], _env(tmp_path, sim, archive_foreign_state="true"))
    try:
        await asyncio.to_thread(proc.wait_ready)
        proc.wait_record("state file of another account archived; starting fresh")
        archived = list(path.parent.glob("executor.sqlite.*.archived"))
        assert len(archived) == 1 and recorded_identity(archived[0]).uid == "999"
        assert recorded_identity(path) == AccountIdentity(sim.rest_url.rstrip("/"), "1")
        assert proc.find("journal recovered")["open_rows"] == 0     # the other account's row is not ours
        assert await asyncio.to_thread(proc.stop) == 0
    finally:
        proc.kill()


async def test_a_subscriber_that_joins_late_still_gets_the_outcome_published_before_it(tmp_path, sim):
    """PUB/SUB drops what precedes a subscription: the executor re-sends its last seconds of outcomes."""
    peers = Peers(executor_settings(tmp_path, sim))
    proc = hean(["run", "executor"], _env(tmp_path, sim))
    late = None
    try:
        await _ready_for_orders(await asyncio.to_thread(proc.wait_ready))
        data = intent()
        placed = await peers.submit(data, timeout=20)
        assert placed.type == "ORDER_PLACED"
        got: list = []

        async def record(ev) -> None:
            got.append(ev)
        late = Subscriber(peers.settings.bus, peers.settings.runtime_dir, BusStats()).connect("executor")
        late.on("order.", record)
        stop = asyncio.Event()
        reader = asyncio.create_task(late.run(stop))
        await async_wait_for(lambda: [e for e in got if e.data.get("intent_id") == data["intent_id"]], 15,
                             "the late subscriber to get the outcome it missed")
        resent = next(e for e in got if e.data.get("intent_id") == data["intent_id"])
        assert resent.type == "ORDER_PLACED" and resent.data["replay"] is True
        assert resent.data["order_id"] == placed.data["order_id"]
        stop.set()
        await reader
    finally:
        proc.kill()
        if late is not None:
            late.close()
        await peers.close()
