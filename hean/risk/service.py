"""`hean run risk`: the risk governor process (seed fix #4) around the pure `RiskGovernorCore`.

Inputs: `account.equity`, `position.<SYM>` and `account.transfer` from the reconciler,
`tick.ticker.<SYM>` (mark prices) from the feed, `risk.request` from the watchdog,
`risk.reset` from the operator CLI (`ctl`). The equity judged is the last wallet
reading marked to the feed's mark price (`hean.risk.account`), aged from the exchange's
time of its oldest input, so a crash under an open position is seen at the next tick
and a silent source shows as stale. Output: `risk.state` at once on
every transition (with `transition`) and every `risk.heartbeat_s` otherwise,
so the executor can fail closed when the heartbeat stops. A reset that the next
reading would undo (drawdown still at a limit, from the old or the requested base) is
refused: the answer is a RISK_STATE carrying `reset_refused` (reason, drawdown,
threshold, the `--initial-capital` option) and the state does not move. The snapshot is
saved in `<data_dir>/risk.sqlite` before a transition is published, so a
restart resumes the same state, `state_since` and initial capital. That file belongs
to one exchange account (base URL and UID, asked once at start-up with the only REST
call risk makes): a file of another account refuses the start (exit 78) unless
HEAN_ARCHIVE_FOREIGN_STATE=true archives it.

Metrics (prefix hean_risk_):
    hean_risk_state                      current state as a number (0 NORMAL .. 3 HARD_STOP)
    hean_risk_state_info{state}          1 for the current state, 0 for the others
    hean_risk_drawdown_pct               drawdown from initial capital (negative in gain)
    hean_risk_equity                     last accepted equity (USDT)
    hean_risk_initial_capital            the base drawdown is measured from
    hean_risk_transitions_total{reason}  transitions by reason code
    hean_risk_invalid_equity_total       equity updates rejected (NaN, negative, zero capital, garbage)
    hean_risk_equity_age_seconds         age of the equity judged (exchange time of its oldest input)
    hean_risk_transfers_total{direction} transfers (in / out) that moved the drawdown base
    hean_risk_transferred_amount         net amount transferred, as recorded in risk.sqlite
    hean_risk_marked_positions           open positions currently marked to the feed
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from hean import topics
from hean.bus.envelope import Event
from hean.config import ConfigError, HeanSettings
from hean.exchange.account import fetch_identity
from hean.exchange.connect import rest_client
from hean.lifecycle import Service
from hean.risk.account import AccountView
from hean.risk.core import (
    InvalidEquity,
    ResetRefused,
    RiskGovernorCore,
    RiskState,
    RiskThresholds,
    RiskTransition,
)
from hean.risk.inputs import AccountInputs
from hean.risk.metrics import RiskMetrics
from hean.risk.store import RiskStore
from hean.statefile import bind_state

log = logging.getLogger("hean.risk")

_RESET_MEMORY = 256  # request ids remembered so a re-sent reset is acknowledged, not applied twice


def thresholds_from(settings: HeanSettings) -> RiskThresholds:
    try:
        return RiskThresholds.from_settings(settings.risk)
    except ValueError as exc:
        raise ConfigError(f"HEAN_RISK__*: {exc}") from None


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


class RiskService(AccountInputs, Service):
    """Drives the core from bus events and a clock; persists, publishes, logs, measures."""

    name = "risk"

    def __init__(self, settings: HeanSettings, registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__(settings, registry)
        self.thresholds = thresholds_from(settings)
        self.risk_metrics = RiskMetrics(registry)
        self.store: RiskStore | None = None
        self.core = RiskGovernorCore(self.thresholds)
        self.account = AccountView(settings.risk.mark_max_age_s)
        self._started = time.time()
        self._saved_snapshot: dict[str, Any] | None = None
        self._saved_at = 0.0
        self._saved_profit = False
        self._resets_seen: dict[str, dict[str, Any]] = {}

    # ---- lifecycle ---------------------------------------------------------------------
    async def startup(self) -> None:
        # The base and the latch describe one account: never judge another with them (contract 2).
        path = self.settings.data_dir / "risk.sqlite"
        client = rest_client(self.settings, self.registry)
        try:
            await client.start()
            identity = await fetch_identity(client)
        finally:
            await client.close()
        bind_state(path, identity, archive_foreign=self.settings.archive_foreign_state)
        self.store = RiskStore(path)
        snapshot = self.store.load()
        configured = self.settings.risk.initial_capital
        if snapshot is None:
            self.core = RiskGovernorCore(self.thresholds, state_since=time.time(), initial_capital=configured)
            log.info("risk state: fresh start", extra={"state": self.core.state.value,
                                                       "initial_capital": _money(configured)})
            if configured is not None:
                self._save()
        else:
            # A corrupt snapshot raises: guessing NORMAL would silently undo a HARD_STOP.
            self.core = RiskGovernorCore.from_snapshot(self.thresholds, snapshot)
            self._saved(self.core.snapshot())
            log.info("risk state resumed from disk", extra=dict(snapshot))
            if configured is not None and self.core.initial_capital not in (None, configured):
                log.warning("configured initial capital differs from the persisted one; the persisted one "
                            "stays in force until `hean risk reset --initial-capital`",
                            extra={"configured": _money(configured),
                                   "persisted": _money(self.core.initial_capital)})
        # After a (re)start the equity clock starts now: the reconciler gets equity_stale_s to speak.
        self._started = time.time()
        self.risk_metrics.transferred.set(float(sum((Decimal(t["amount"]) for t in self.store.transfers()
                                                     if t["applied"]), Decimal(0))))
        self.risk_metrics.show(self.core)
        self.make_publisher()
        sub = self.make_subscriber()
        sub.connect("reconciler").connect("watchdog").connect("ctl").connect("feed")
        sub.on(topics.equity(), self._on_equity)
        sub.on(topics.transfer(), self._on_transfer)
        sub.on(topics.position(""), self._on_position)
        sub.on(topics.tick("ticker", ""), self._on_tick)
        sub.on(topics.risk_control("request"), self._on_request)
        sub.on(topics.risk_control("reset"), self._on_reset)

    async def main_loop(self) -> None:
        """Heartbeat: re-publish the state and check for stale equity, every `heartbeat_s`."""
        period = self.settings.risk.heartbeat_s
        while not self.should_exit.is_set():
            await self._check_stale()
            await self._publish_state(None)
            try:
                await asyncio.wait_for(self.should_exit.wait(), period)
            except TimeoutError:
                pass

    async def shutdown(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    # ---- inputs ------------------------------------------------------------------------
    async def _on_request(self, ev: Event) -> None:
        if ev.type != topics.EventType.RISK_REQUEST.value or not isinstance(ev.data, dict):
            return
        try:
            requested = RiskState(ev.data.get("state"))
            reason = str(ev.data.get("reason") or "")
            transition = self.core.on_external(requested, reason, time.time())
        except ValueError as exc:
            log.warning("invalid risk request ignored", extra={"source": ev.source, "error": str(exc)[:200]})
            return
        log.info("risk request", extra={"source": ev.source, "requested": requested.value, "reason": reason,
                                        "applied": transition is not None, "detail": ev.data.get("detail")})
        if transition is not None:
            await self._apply(transition)

    async def _on_reset(self, ev: Event) -> None:
        if ev.source != "ctl" or ev.type != topics.EventType.RISK_RESET.value or not isinstance(ev.data, dict):
            return
        data = ev.data
        request_id = str(data.get("request_id") or "")
        if request_id and request_id in self._resets_seen:
            # The CLI re-sends until it hears an answer: answer again, do not reset twice.
            seen = self._resets_seen[request_id]
            if "reset_refused" in seen:
                await self._publish_state(None, reset_refused=seen["reset_refused"])
            else:
                await self._publish_state(seen)
            return
        operator = data.get("operator")
        raw_capital = data.get("new_initial_capital")
        try:
            capital = None if raw_capital is None else Decimal(str(raw_capital))
            now = time.time()
            transition = self.core.reset(now, operator if isinstance(operator, str) else "", capital,
                                         equity_age_s=self.equity_age(now),
                                         max_equity_age_s=self.settings.risk.equity_stale_s)
        except ResetRefused as refused:
            await self._refuse_reset(refused, str(operator), request_id)
            return
        except (ValueError, InvalidOperation, InvalidEquity) as exc:
            log.error("operator risk reset refused", extra={"operator": operator, "error": str(exc)[:200]})
            return
        log.warning("operator risk reset", extra={"operator": operator, "requested_at": data.get("at"),
                                                  "new_initial_capital": raw_capital,
                                                  "changed": transition is not None})
        if transition is None:
            # Already NORMAL with nothing to re-base: still acknowledge, so the operator is told.
            transition = RiskTransition(RiskState.NORMAL, RiskState.NORMAL, ("OPERATOR_RESET",),
                                        "initial_capital", float(self.core.initial_capital or 0), 0.0, now,
                                        operator=str(operator))
            event = transition.to_event() | {"noop": True}
        else:
            event = await self._apply(transition, announce=False)
        if request_id:
            event["request_id"] = request_id
            self._resets_seen[request_id] = event
            while len(self._resets_seen) > _RESET_MEMORY:
                self._resets_seen.pop(next(iter(self._resets_seen)))
        await self._publish_state(event)

    async def _refuse_reset(self, refused: ResetRefused, operator: str, request_id: str) -> None:
        """Answer the CLI with why not, and what would work (a re-base on the current equity)."""
        answer = {"request_id": request_id, "operator": operator, "reason": str(refused),
                  "state": self.core.state.value, "would_be": refused.would_be.value,
                  "drawdown_pct": refused.drawdown_pct, "threshold_pct": refused.threshold_pct,
                  "equity": _money(refused.equity), "initial_capital": _money(self.core.initial_capital),
                  "option": "--initial-capital"}
        log.warning("operator risk reset refused", extra={"operator": operator, "reason": str(refused),
                                                          "drawdown_pct": refused.drawdown_pct,
                                                          "threshold_pct": refused.threshold_pct})
        if request_id:
            self._resets_seen[request_id] = {"reset_refused": answer}
        await self._publish_state(None, reset_refused=answer)

    # ---- effects -----------------------------------------------------------------------
    def equity_age(self, now: float) -> float:
        """Age of the equity judged: of its oldest input, or since start-up before the first reading."""
        est = self.account.estimate(now)
        return max(0.0, now - self._started) if est is None else est.age(now)

    async def _check_stale(self) -> None:
        if self.account.anchor is not None:
            await self._revalue()  # a mark that aged out falls back to the anchor (and its age)
        age = self.equity_age(time.time())
        self.risk_metrics.equity_age.set(age)
        limit = self.settings.risk.equity_stale_s
        if age > limit:
            transition = self.core.on_equity_stale(time.time(), age_s=age, max_age_s=limit)
            if transition is not None:
                await self._apply(transition)

    async def _apply(self, transition: RiskTransition, *, announce: bool = True) -> dict[str, Any]:
        """Persist, count, log and (unless the caller will) publish one transition."""
        event = transition.to_event()
        assert self.store is not None
        snapshot = self.core.snapshot()
        self.store.record_transition(event, snapshot)
        self._saved(snapshot)
        for code in transition.reason_codes:
            self.risk_metrics.transitions.labels(code).inc()
        self.risk_metrics.show(self.core)
        escalation = transition.to_state.level > transition.from_state.level
        log.log(logging.WARNING if escalation else logging.INFO,
                f"Risk state {transition.from_state.value} -> {transition.to_state.value}",
                extra={"transition": event, "state": transition.to_state.value,
                       "reason_codes": list(transition.reason_codes), "metric": transition.metric,
                       "value": transition.value, "threshold": transition.threshold})
        if announce:
            await self._publish_state(event)
        return event

    def _save(self) -> None:
        assert self.store is not None
        snapshot = self.core.snapshot()
        self.store.save(snapshot, time.time())
        self._saved(snapshot)

    def _saved(self, snapshot: dict[str, Any]) -> None:
        self._saved_snapshot, self._saved_at, self._saved_profit = snapshot, time.time(), self.core.profit_mode

    async def _publish_state(self, transition: dict[str, Any] | None, **extra: Any) -> None:
        if self.publisher is None:
            return
        core = self.core
        await self.publish(topics.risk_state(), topics.EventType.RISK_STATE.value, extra | {
            "state": core.state.value,
            "level": core.state.level,
            "drawdown_pct": core.drawdown_pct,
            "equity": _money(core.equity),
            "initial_capital": _money(core.initial_capital),
            "since": core.state_since,
            "profit_mode": core.profit_mode,
            "equity_age_s": round(self.equity_age(time.time()), 3),
            "transition": transition,
        })
