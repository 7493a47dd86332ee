"""Real processes: equity aged from the exchange's reading, crashes seen from feed marks, transfers (issue 11)."""

from __future__ import annotations

import asyncio
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from hean import topics
from hean.sim.server import SimServer
from tests.risk.test_service import EQ, BusProbe, equity, now_ms, risk_env, transition_with
from tests.test_position_monitor import control, venue
from tests.utils import async_wait_for, hean, hean_env, metric, scrape

POS = topics.EventType.POSITION_UPDATE.value
TRANSFER = topics.EventType.TRANSFER.value


def sim_env(tmp_path: Path, sim: Any, **settings: str) -> dict[str, str]:
    return hean_env(tmp_path, bybit__rest_url=sim.rest_url, bybit__ws_public_url=sim.ws_public_url,
                    bybit__ws_private_url=sim.ws_private_url, **settings)


async def open_long(sim: Any, client: Any, notional: Decimal) -> tuple[Decimal, Decimal]:
    """Hold the BTC price and buy `notional` worth; returns (price, qty)."""
    price = Decimal((await control(sim, "GET", "state"))["prices"]["BTCUSDT"])
    await control(sim, "POST", "price", {"symbol": "BTCUSDT", "price": str(price), "hold": True})
    qty = (notional / price).quantize(Decimal("0.001"), rounding=ROUND_DOWN)
    opened = await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Market", qty=qty, price=None,
                                      order_link_id="rtest-open")
    assert opened.ok, opened
    return price, qty


async def test_equity_stale_fires_while_the_wallet_endpoint_fails(tmp_path: Path) -> None:
    """Re-published copies of an old reading are not fresh: EQUITY_STALE fires (on main it never did)."""
    async with venue(initial_balance=Decimal("10000")) as (sim, client):
        await open_long(sim, client, Decimal("20000"))
        env = sim_env(tmp_path, sim, risk__heartbeat_s="0.2", risk__equity_stale_s="3",
                      reconciler__interval_s="0.5", reconciler__state_republish_s="0.2")
        procs = {name: hean(["run", name], env) for name in ("risk", "reconciler")}
        try:
            async with BusProbe(tmp_path, None, {"risk": ["risk.state"], "reconciler": ["account.equity"]}) as probe:
                ports = {name: await asyncio.to_thread(p.wait_ready, 30) for name, p in procs.items()}
                await probe.wait_event(lambda e: e.type == "RISK_STATE" and e.data["equity"] is not None,
                                       "the reconciler's equity to reach the risk process", timeout=30)
                await control(sim, "POST", "faults/http-error", {"when": "before", "status": 503, "fraction": 1.0,
                                                                 "path": "/v5/account/wallet-balance"})
                n = len(probe.events)
                stale = await probe.wait_event(transition_with("EQUITY_STALE"), "EQUITY_STALE", timeout=30)
                assert stale.data["state"] == "QUARANTINE"
                assert stale.data["transition"]["value"] > 3.0
                # The reconciler kept re-publishing its cached reading all along: copies are not readings.
                copies = [e for e in probe.events[n:] if e.type == "EQUITY_UPDATE"]
                assert len(copies) >= 5, "the reconciler should have gone on re-publishing"
                assert metric(scrape(ports["risk"]), "hean_risk_equity_age_seconds") > 3.0
        finally:
            for p in procs.values():
                p.kill()


async def test_crash_under_an_open_position_is_seen_from_the_feed_mark(tmp_path: Path) -> None:
    """No new wallet reading at all: the feed's mark price alone takes risk to HARD_STOP."""
    async with venue(initial_balance=Decimal("10000")) as (sim, client):
        price, qty = await open_long(sim, client, Decimal("40000"))  # 4x: -6 % price is -24 % equity
        env = sim_env(tmp_path, sim, risk__heartbeat_s="0.2", risk__equity_stale_s="60",
                      risk__initial_capital="10000")
        procs = {name: hean(["run", name], env) for name in ("risk", "feed")}
        try:
            async with BusProbe(tmp_path, "reconciler", {"risk": ["risk.state"]}) as probe:
                port = await asyncio.to_thread(procs["risk"].wait_ready, 30)
                await asyncio.to_thread(procs["feed"].wait_ready, 30)
                await probe.wait_subscribed()
                read_at = now_ms()  # one wallet reading and one position row, re-published unchanged
                probe.keep_publishing(topics.equity(), EQ, equity("10000", ts_ms=read_at))
                probe.keep_publishing(topics.position("BTCUSDT"), POS, {
                    "symbol": "BTCUSDT", "side": "Buy", "size": str(qty), "avg_price": str(price),
                    "mark_price": str(price), "unrealised_pnl": "0", "seq": 7, "open_time_ms": read_at,
                    "ts_ms": read_at, "foreign": False})
                await probe.wait_event(lambda e: e.data["equity"] == "10000", "the reading accepted")
                crash = (price * Decimal("0.94")).quantize(Decimal("0.1"))
                await control(sim, "POST", "price", {"symbol": "BTCUSDT", "price": str(crash), "hold": True})
                hard = await probe.wait_event(transition_with("MAX_DRAWDOWN_HARD"), "HARD_STOP from the mark")
                assert hard.data["state"] == "HARD_STOP"
                assert Decimal(hard.data["equity"]) == 10000 + (crash - price) * qty
                assert metric(scrape(port), "hean_risk_marked_positions") == 1
        finally:
            for p in procs.values():
                p.kill()


def transfer(id_: str, amount: str, ts_ms: int) -> dict[str, Any]:
    return {"id": id_, "amount": amount, "currency": "USDT", "ts_ms": ts_ms}


async def test_withdrawal_is_not_a_loss_and_is_applied_once(tmp_path: Path, sim: SimServer) -> None:
    env = risk_env(tmp_path, sim, risk__heartbeat_s="0.1", risk__equity_stale_s="60")
    risk = hean(["run", "risk"], env)
    try:
        async with BusProbe(tmp_path, "reconciler", {"risk": ["risk.state"]}) as probe:
            port = await asyncio.to_thread(risk.wait_ready)
            await probe.wait_subscribed()
            await probe.publish(topics.equity(), EQ, equity("1000"))
            await probe.wait_event(lambda e: e.data["initial_capital"] == "1000", "initial capital 1000")
            out = transfer("tx-1", "-300", now_ms())
            for _ in range(3):  # re-sent, as the reconciler may after a restart: applied once
                await probe.publish(topics.transfer(), TRANSFER, out)
            await probe.wait_event(lambda e: e.data["initial_capital"] == "700", "base moved by the withdrawal")
            await async_wait_for(lambda: now_ms() > out["ts_ms"], 1, "the clock to move on")
            probe.keep_publishing(topics.equity(), EQ, equity("700"))
            await probe.wait_event(lambda e: e.data["equity"] == "700", "the reading with the withdrawal")
            n = len(probe.events)
            await async_wait_for(lambda: len(probe.events) > n + 10, 10, "heartbeats after the withdrawal")
            assert all(e.data["state"] == "NORMAL" and not e.data["transition"] for e in probe.events)
            assert all(e.data["initial_capital"] == "700" for e in probe.events[n:])
            samples = scrape(port)
            assert metric(samples, "hean_risk_transfers_total", direction="out") == 1
            assert metric(samples, "hean_risk_transferred_amount") == -300
        logged = [r for r in risk.records() if r.get("message") == "transfer moved the drawdown base"]
        assert [(r["id"], r["amount"], r["initial_capital"]) for r in logged] == [("tx-1", "-300", "700")]
        risk.kill()
        risk = hean(["run", "risk"], env)  # the seen id is persisted: a restart does not apply it again
        async with BusProbe(tmp_path, "reconciler", {"risk": ["risk.state"]}) as probe:
            await asyncio.to_thread(risk.wait_ready)
            await probe.wait_subscribed()
            await probe.publish(topics.transfer(), TRANSFER, out)
            probe.keep_publishing(topics.equity(), EQ, equity("700"))
            await probe.wait_event(lambda e: e.data["equity"] == "700", "the restarted process's reading")
            n = len(probe.events)
            await async_wait_for(lambda: len(probe.events) > n + 10, 10, "heartbeats after the restart")
            assert all(e.data["initial_capital"] == "700" and e.data["state"] == "NORMAL" for e in probe.events)
    finally:
        risk.kill()


async def test_the_same_drop_without_a_transfer_is_a_hard_stop(tmp_path: Path, sim: SimServer) -> None:
    risk = hean(["run", "risk"], risk_env(tmp_path, sim, risk__heartbeat_s="0.1", risk__equity_stale_s="60"))
    try:
        async with BusProbe(tmp_path, "reconciler", {"risk": ["risk.state"]}) as probe:
            await asyncio.to_thread(risk.wait_ready)
            await probe.wait_subscribed()
            await probe.publish(topics.equity(), EQ, equity("1000"))
            await probe.wait_event(lambda e: e.data["initial_capital"] == "1000", "initial capital 1000")
            probe.keep_publishing(topics.equity(), EQ, equity("700"))
            hard = await probe.wait_event(transition_with("MAX_DRAWDOWN_HARD"), "HARD_STOP")
            assert hard.data["initial_capital"] == "1000"
    finally:
        risk.kill()
