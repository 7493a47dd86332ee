"""Real processes: sim price drop -> reconciler equity -> risk escalates -> executor blocks; kill -9 of risk."""

from __future__ import annotations

import asyncio
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from hean import topics
from hean.bus import Event
from hean.ids import new_intent_id
from tests.risk.test_service import BusProbe
from tests.test_position_monitor import control, venue
from tests.utils import hean, hean_env

NOTIONAL = Decimal("40000")  # 4x the 10 000 USDT wallet: a 1 % price move is a 4 % drawdown


def opening_intent() -> dict[str, Any]:
    return {"intent_id": new_intent_id("itest"), "strategy_id": "itest", "symbol": "ETHUSDT", "side": "Buy",
            "qty": "0.1", "order_type": "Market", "price": None, "reduce_only": False, "take_profit": None,
            "stop_loss": None, "time_in_force": None, "created_ns": time.time_ns()}


def risk_state(state: str, epoch: int | None = None) -> Any:
    def pred(e: Event) -> bool:
        return (e.type == "RISK_STATE" and e.data["state"] == state
                and (epoch is None or e.epoch != epoch))
    return pred


async def blocked(probe: BusProbe, reason: str, what: str) -> Event:
    """Send fresh opening intents until one comes back ORDER_BLOCKED_RISK with `reason`."""
    seen: list[tuple[str, Any]] = []

    async def attempt() -> Event | None:
        data = opening_intent()
        await probe.publish(topics.intent(), topics.EventType.ORDER_INTENT.value, data)
        try:
            ev = await probe.wait_event(lambda e: e.data.get("intent_id") == data["intent_id"],
                                        f"an outcome for {data['intent_id']}", timeout=5)
        except AssertionError as exc:
            seen.append(("no outcome", str(exc)[:80]))
            return None
        seen.append((ev.type, ev.data.get("reason")))
        return ev if ev.type == "ORDER_BLOCKED_RISK" and ev.data["reason"] == reason else None

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ev = await attempt()
        if ev is not None:
            return ev
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; outcomes seen: {seen[-5:]}")


async def test_price_drop_escalates_and_executor_fails_closed(tmp_path: Path) -> None:
    async with venue(initial_balance=Decimal("10000")) as (sim, client):
        price = Decimal((await control(sim, "GET", "state"))["prices"]["BTCUSDT"])
        await control(sim, "POST", "price", {"symbol": "BTCUSDT", "price": str(price), "hold": True})
        qty = (NOTIONAL / price).quantize(Decimal("0.001"), rounding=ROUND_DOWN)
        opened = await client.place_order(symbol="BTCUSDT", side="Buy", order_type="Market", qty=qty, price=None,
                                          order_link_id="itest-open")
        assert opened.ok, opened
        env = hean_env(tmp_path, bybit__rest_url=sim.rest_url, bybit__ws_public_url=sim.ws_public_url,
                       bybit__ws_private_url=sim.ws_private_url, risk__initial_capital="10000",
                       risk__heartbeat_s="0.2", risk__equity_stale_s="30", reconciler__interval_s="0.3",
                       reconciler__state_republish_s="0.2", executor__risk_stale_s="1.5")
        procs = {name: hean(["run", name], env) for name in ("risk", "reconciler", "executor")}
        try:
            async with BusProbe(tmp_path, "ctl", {"risk": ["risk.state"], "executor": ["order."]}) as probe:
                for p in procs.values():
                    await asyncio.to_thread(p.wait_ready, 30)
                await probe.wait_subscribed()
                await probe.wait_event(lambda e: e.type == "RISK_STATE" and e.data["equity"] is not None,
                                       "the reconciler's equity to reach the risk process", timeout=30)

                async def drop_to(pct: str) -> None:
                    new = (price * (1 - Decimal(pct) / 100)).quantize(Decimal("0.1"))
                    await control(sim, "POST", "price", {"symbol": "BTCUSDT", "price": str(new), "hold": True})

                await drop_to("3")  # ~12 % drawdown
                soft = await probe.wait_event(risk_state("SOFT_BRAKE"), "SOFT_BRAKE", timeout=30)
                assert soft.data["transition"]["reason_codes"] == ["MAX_DRAWDOWN_SOFT"]
                await drop_to("4.2")  # ~17 %
                await probe.wait_event(risk_state("QUARANTINE"), "QUARANTINE", timeout=30)
                ev = await blocked(probe, "QUARANTINE", "the executor to block an opening order in QUARANTINE")
                assert ev.data["risk_state"] == "QUARANTINE"
                await drop_to("6")  # ~24 %
                hard = await probe.wait_event(risk_state("HARD_STOP"), "HARD_STOP", timeout=30)
                assert hard.data["transition"]["reason_codes"] == ["MAX_DRAWDOWN_HARD"]

                procs["risk"].kill()  # kill -9: the executor must not fall back to "allowed"
                await blocked(probe, "risk_stale", "the executor to fail closed on a silent risk process")
                await control(sim, "POST", "price", {"symbol": "BTCUSDT", "price": str(price), "hold": True})
                procs["risk"] = hean(["run", "risk"], env)
                await asyncio.to_thread(procs["risk"].wait_ready, 30)
                back = await probe.wait_event(lambda e: e.type == "RISK_STATE" and e.epoch != hard.epoch,
                                              "the restarted risk process", timeout=30)
                # Persisted, not re-derived: equity has recovered but HARD_STOP stays latched.
                assert back.data["state"] == "HARD_STOP" and back.data["since"] == hard.data["since"]
                await blocked(probe, "HARD_STOP", "the executor to follow the resumed HARD_STOP")
        finally:
            for p in procs.values():
                p.kill()
