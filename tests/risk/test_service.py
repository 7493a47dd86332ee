"""`hean run risk` as a real process: persistence across kill -9, invalid and stale equity, operator reset."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hean import topics
from hean.bus import BusStats, Event, Publisher, Subscriber
from hean.config import HeanSettings
from hean.sim.server import SimServer
from tests.utils import async_wait_for, hean, hean_env, metric, scrape

RISK_ENV = {"risk__heartbeat_s": "0.1", "risk__equity_stale_s": "60"}


def risk_env(tmp_path: Path, sim: SimServer, **settings: str) -> dict[str, str]:
    """A risk process's environment: the simulator answers its one start-up question (whose account)."""
    return hean_env(tmp_path, bybit__rest_url=sim.rest_url, **settings)


class BusProbe:
    """The test's own bus ends: publish as `service`, record what `listen` sources publish."""

    def __init__(self, tmp_path: Path, service: str | None, listen: dict[str, list[str]]) -> None:
        self.settings = HeanSettings(runtime_dir=tmp_path / "run", data_dir=tmp_path / "data")
        stats = BusStats()
        bus, run_dir = self.settings.bus, self.settings.runtime_dir
        self.pub = Publisher(bus, run_dir, service, stats).bind() if service else None
        self.sub = Subscriber(bus, run_dir, stats)
        self.events: list[Event] = []
        for source, prefixes in listen.items():
            self.sub.connect(source)
            for prefix in prefixes:
                self.sub.on(prefix, self._record, fast=prefix.startswith("risk.state"))
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._latest: dict[str, tuple[str, dict[str, Any] | Callable[[], dict[str, Any]]]] = {}

    async def _record(self, ev: Event) -> None:
        self.events.append(ev)

    async def __aenter__(self) -> BusProbe:
        self._tasks.append(asyncio.create_task(self.sub.run(self._stop)))
        if self.pub is not None:
            self._tasks.append(asyncio.create_task(self.pub.track_subscriptions(self._stop)))
            self._tasks.append(asyncio.create_task(self._republish()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._tasks[2:]:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.sub.close()
        if self.pub is not None:
            self.pub.close()

    async def wait_subscribed(self, timeout: float = 20) -> None:
        assert self.pub is not None
        await async_wait_for(lambda: self.pub.stats.subscribers["critical"] > 0, timeout,
                             f"a subscriber on {self.pub.service}'s bus socket")

    async def publish(self, topic: str, type_: str, data: dict[str, Any]) -> None:
        assert self.pub is not None
        await self.pub.publish(topic, type_, data)

    def keep_publishing(self, topic: str, type_: str,
                        data: dict[str, Any] | Callable[[], dict[str, Any]] | None) -> None:
        """Re-send `data` on `topic` every 50 ms, like the reconciler's periodic state (None stops).

        A callable is called for each send (a fresh reading each time)."""
        if data is None:
            self._latest.pop(topic, None)
        else:
            self._latest[topic] = (type_, data)

    async def _republish(self) -> None:
        while True:
            for topic, (type_, data) in list(self._latest.items()):
                await self.publish(topic, type_, data() if callable(data) else data)
            await asyncio.sleep(0.05)

    def of_type(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]

    async def wait_event(self, pred: Any, what: str, timeout: float = 20) -> Event:
        async def found() -> Event | None:
            return next((e for e in list(self.events) if pred(e)), None)
        return await async_wait_for(found, timeout, what)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def equity(value: str, ts_ms: int | None = None) -> dict[str, Any]:
    """An EQUITY_UPDATE as the reconciler sends it (contract 3): read now unless `ts_ms` says when."""
    now = now_ms()
    return {"equity": value, "wallet_balance": value, "available_balance": value, "unrealised_pnl": "0",
            "ts_ms": now if ts_ms is None else ts_ms, "published_ms": now, "source": "rest"}


def fresh_equity(value: str) -> Callable[[], dict[str, Any]]:
    """A new reading on each send, like a wallet polled again and again."""
    return lambda: equity(value)


def transition_with(code: str) -> Any:
    def pred(e: Event) -> bool:
        t = e.data.get("transition")
        return e.type == "RISK_STATE" and isinstance(t, dict) and code in t["reason_codes"]
    return pred


EQ = topics.EventType.EQUITY_UPDATE.value


async def test_restart_after_kill9_resumes_hard_stop_and_capital(tmp_path: Path, sim: SimServer) -> None:
    env = risk_env(tmp_path, sim, **RISK_ENV)
    risk = hean(["run", "risk"], env)
    try:
        async with BusProbe(tmp_path, "reconciler", {"risk": ["risk.state"]}) as probe:
            await asyncio.to_thread(risk.wait_ready)
            await probe.wait_subscribed()
            probe.keep_publishing(topics.equity(), EQ, equity("1000"))
            await probe.wait_event(lambda e: e.data["initial_capital"] == "1000", "initial capital 1000")
            probe.keep_publishing(topics.equity(), EQ, equity("790"))
            hard = await probe.wait_event(transition_with("MAX_DRAWDOWN_HARD"), "HARD_STOP transition")
            assert hard.data["state"] == "HARD_STOP" and hard.data["transition"]["threshold"] == 20.0
            risk.kill()  # kill -9: nothing graceful
            old_epoch = hard.epoch
            probe.keep_publishing(topics.equity(), EQ, fresh_equity("1000"))  # full recovery while it was down
            risk = hean(["run", "risk"], env)
            await asyncio.to_thread(risk.wait_ready)
            first = await probe.wait_event(lambda e: e.epoch != old_epoch, "state from the restarted process")
            # Resumed, not NORMAL: the latch and its start time survive; the base is the persisted one.
            assert first.data["state"] == "HARD_STOP"
            assert first.data["since"] == hard.data["since"]
            assert first.data["initial_capital"] == "1000"
            await probe.wait_event(lambda e: e.epoch != old_epoch and e.data["equity"] == "1000",
                                   "the restarted process to take the new equity")
            later = [e for e in probe.events if e.epoch != old_epoch]
            assert all(e.data["state"] == "HARD_STOP" for e in later), "HARD_STOP must stay latched"
    finally:
        risk.kill()


async def test_invalid_equity_is_counted_and_never_moves_the_state(tmp_path: Path, sim: SimServer) -> None:
    risk = hean(["run", "risk"], risk_env(tmp_path, sim, **RISK_ENV))
    try:
        async with BusProbe(tmp_path, "reconciler", {"risk": ["risk.state"]}) as probe:
            port = await asyncio.to_thread(risk.wait_ready)
            await probe.wait_subscribed()

            async def invalid_count(n: int) -> None:
                await async_wait_for(lambda: metric(scrape(port), "hean_risk_invalid_equity_total") == n, 10,
                                     f"{n} invalid equity updates counted")

            await probe.publish(topics.equity(), EQ, equity("0"))  # zero initial capital
            await invalid_count(1)
            await probe.publish(topics.equity(), EQ, equity("1000"))
            await probe.wait_event(lambda e: e.data["initial_capital"] == "1000", "initial capital 1000")
            for bad in ("NaN", "-5", "abc", "Infinity"):
                await probe.publish(topics.equity(), EQ, equity(bad))
            await probe.publish(topics.equity(), EQ, {"ts_ms": 0})  # no equity field at all
            await invalid_count(6)
            samples = scrape(port)
            assert metric(samples, "hean_risk_state") == 0
            assert metric(samples, "hean_risk_equity") == 1000
            assert not [e for e in probe.events if e.data.get("transition")]
            # The same pipe does act on a valid reading: the invalid ones were refused, not lost.
            await probe.publish(topics.equity(), EQ, equity("850"))
            await probe.wait_event(transition_with("MAX_DRAWDOWN_QUARANTINE"), "QUARANTINE from 15 % drawdown")
            samples = scrape(port)
            assert metric(samples, "hean_risk_state") == 2
            assert metric(samples, "hean_risk_state_info", state="QUARANTINE") == 1
            assert metric(samples, "hean_risk_state_info", state="NORMAL") == 0
            assert metric(samples, "hean_risk_transitions_total", reason="MAX_DRAWDOWN_QUARANTINE") == 1
            assert metric(samples, "hean_risk_drawdown_pct") == 15.0
    finally:
        risk.kill()


async def test_stale_equity_raises_quarantine(tmp_path: Path, sim: SimServer) -> None:
    risk = hean(["run", "risk"], risk_env(tmp_path, sim, risk__heartbeat_s="0.1", risk__equity_stale_s="1"))
    try:
        async with BusProbe(tmp_path, "reconciler", {"risk": ["risk.state"]}) as probe:
            port = await asyncio.to_thread(risk.wait_ready)
            await probe.wait_subscribed()
            probe.keep_publishing(topics.equity(), EQ, fresh_equity("1000"))
            await probe.wait_event(lambda e: e.data["equity"] == "1000", "equity accepted")
            n = len(probe.events)
            await async_wait_for(lambda: len(probe.events) > n + 20, 10, "20 heartbeats while equity flows")
            assert all(e.data["state"] == "NORMAL" for e in probe.events), "fresh equity must not quarantine"
            probe.keep_publishing(topics.equity(), EQ, None)  # the reconciler goes quiet
            stale = await probe.wait_event(transition_with("EQUITY_STALE"), "EQUITY_STALE transition")
            assert stale.data["state"] == "QUARANTINE"
            assert stale.data["transition"]["metric"] == "equity_age_s"
            assert stale.data["transition"]["value"] > 1.0
            samples = scrape(port)
            assert metric(samples, "hean_risk_transitions_total", reason="EQUITY_STALE") == 1
            assert metric(samples, "hean_risk_equity_age_seconds") > 1.0
        stale_log = risk.wait_record("Risk state NORMAL -> QUARANTINE")
        assert stale_log["level"] == "WARNING" and stale_log["reason_codes"] == ["EQUITY_STALE"]
    finally:
        risk.kill()


async def test_operator_reset_with_the_cli(tmp_path: Path, sim: SimServer) -> None:
    env = risk_env(tmp_path, sim, **RISK_ENV)
    # With no risk process the CLI must fail clearly instead of pretending.
    lonely = hean(["risk", "reset", "--operator", "alice", "--timeout", "1"], env)
    assert await asyncio.to_thread(lonely.p.wait, 30) == 3   # nothing answered (hean.ops.locate)
    assert "FAILED" in lonely.output()
    lonely.kill()
    risk = hean(["run", "risk"], env)
    try:
        async with BusProbe(tmp_path, "reconciler", {"risk": ["risk.state"]}) as probe:
            await asyncio.to_thread(risk.wait_ready)
            await probe.wait_subscribed()
            probe.keep_publishing(topics.equity(), EQ, equity("1000"))
            await probe.wait_event(lambda e: e.data["initial_capital"] == "1000", "initial capital 1000")
            probe.keep_publishing(topics.equity(), EQ, equity("800"))
            hard = await probe.wait_event(transition_with("MAX_DRAWDOWN_HARD"), "HARD_STOP")

            # Still 20 % down and no re-base: refused, never NORMAL for the half second until the next reading.
            ctl = hean(["risk", "reset", "--operator", "alice"], env)
            assert await asyncio.to_thread(ctl.p.wait, 30) == 1, ctl.output()
            said = ctl.output()
            ctl.kill()
            assert "REFUSED" in said and "drawdown 20.00 %" in said and "threshold 20 %" in said, said
            assert "--initial-capital 800" in said, said
            assert "risk state is now NORMAL" not in said
            n = len(probe.events)
            await async_wait_for(lambda: len(probe.events) > n + 10, 10, "heartbeats after the refusal")
            after = probe.events[probe.events.index(hard):]
            assert all(e.data["state"] == "HARD_STOP" for e in after), "a refused reset must not leave HARD_STOP"
            assert not [e for e in probe.events if transition_with("OPERATOR_RESET")(e)]

            ctl = hean(["risk", "reset", "--operator", "bob", "--initial-capital", "800"], env)
            assert await asyncio.to_thread(ctl.p.wait, 30) == 0, ctl.output()
            ctl.kill()
            rebased = await probe.wait_event(transition_with("CAPITAL_REBASED"), "CAPITAL_REBASED")
            assert rebased.data["initial_capital"] == "800" and rebased.data["state"] == "NORMAL"
            n = probe.events.index(rebased)
            await async_wait_for(lambda: len(probe.events) > n + 20, 10, "heartbeats after the re-base")
            assert all(e.data["state"] == "NORMAL" for e in probe.events[n:])
        logged = [r for r in risk.records() if r.get("message") == "operator risk reset"]
        assert [r["operator"] for r in logged] == ["bob"]
        refusals = [r for r in risk.records() if r.get("message") == "operator risk reset refused"]
        assert [r["operator"] for r in refusals] == ["alice"]
        db = sqlite3.connect(tmp_path / "data" / "risk.sqlite")
        operators = [r[0] for r in db.execute("SELECT operator FROM risk_transitions WHERE operator IS NOT NULL")]
        db.close()
        assert operators == ["bob"]
    finally:
        risk.kill()
