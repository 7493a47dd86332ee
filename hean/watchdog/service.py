"""`hean run watchdog`: closes positions held longer than `max_hold_seconds` (seed fix #5, stronger).

Every `position_monitor_check_interval` s it reads `position/list` (the
authority, including `createdTime`) plus the reconciler's latest
`position.<SYM>` events (which cover a position opened after the REST read, or
the whole picture while REST is down), lets the pure `evaluate` decide, and
closes stale positions itself by REST with a reduce-only market order -- it
must protect the account even when the executor is down, and it closes
positions HEAN did not open too unless `watchdog.include_foreign` is false.

Idempotence: each close attempt has a link id derived from the position and
the attempt number. Before attempt k the previous attempt is looked up by its
link id; only a final, unfilled (or not found) attempt lets k go out. After a
restart the attempts already on the exchange are discovered the same way.
Escalation: after `watchdog.close_attempts_before_escalation` failed attempts
the symbol's open orders are cancelled (a resting reduce-only order can block
a close) and the close is retried; if that fails too, WATCHDOG_ALERT is
published and the risk governor is asked for QUARANTINE.

Metrics (prefix hean_watchdog_):
    hean_watchdog_positions_tracked              open positions seen in the last check
    hean_watchdog_oldest_position_age_seconds    age of the oldest of them (0 when none)
    hean_watchdog_force_closes_total{outcome}    placed | duplicate | failed | ambiguous
    hean_watchdog_errors_total                   failed checks, queries and closes
    hean_watchdog_alerts_total                   positions escalated (close kept failing)
    hean_watchdog_checks_total                   completed position checks
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from hean import topics
from hean.bus.envelope import Event
from hean.config import HeanSettings
from hean.exchange.bybit import BybitRestClient
from hean.exchange.bybit.errors import ExchangeUnavailable, Outcome
from hean.exchange.connect import rest_client
from hean.lifecycle import Service
from hean.watchdog.core import MAX_ATTEMPT, DecisionKind, PositionAge, close_order_for, evaluate

log = logging.getLogger("hean.watchdog")

WARN_BEFORE_S = 180.0  # the seed logs when less than 3 minutes remain
REASON = "max_hold_seconds_exceeded"
_OPEN_STATUSES = {"New", "PartiallyFilled", "Untriggered", "Created", "Triggered"}
_FILLED_STATUSES = {"Filled", "PartiallyFilledCanceled"}


@dataclass
class _Tracked:
    """What the watchdog knows about closing one position (keyed by its identity)."""

    attempt: int = 0  # last attempt number sent; 0 = none
    recovered: bool = False  # attempts already on the exchange were looked up
    failed: set[int] = field(default_factory=set)
    placed: set[int] = field(default_factory=set)
    filled_waits: int = 0
    cancelled_at: int | None = None  # len(failed) when the symbol's orders were cancelled
    escalated: bool = False


def _identity(pos: PositionAge) -> tuple[str, str, int, int]:
    return pos.symbol, pos.side, pos.created_ms, pos.position_idx


def _direction(pos: PositionAge) -> str:
    return "long" if pos.side == "Buy" else "short"


def _row_from_event(data: dict[str, Any]) -> dict[str, Any]:
    """A reconciler POSITION_UPDATE in the shape of a REST position row."""
    return {"symbol": data.get("symbol"), "side": data.get("side"), "size": data.get("size"),
            "avgPrice": data.get("avg_price"), "createdTime": str(data.get("created_time_ms") or ""),
            "updatedTime": str(data.get("updated_time_ms") or ""), "positionIdx": 0, "source": "bus"}


class WatchdogMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tracked = Gauge("hean_watchdog_positions_tracked", "Open positions seen in the last check",
                             registry=registry)
        self.oldest = Gauge("hean_watchdog_oldest_position_age_seconds", "Age of the oldest open position",
                            registry=registry)
        self.closes = Counter("hean_watchdog_force_closes_total", "Force-close attempts by outcome",
                              ["outcome"], registry=registry)
        self.errors = Counter("hean_watchdog_errors_total", "Failed checks, queries and closes",
                              registry=registry)
        self.checks = Counter("hean_watchdog_checks_total", "Completed position checks", registry=registry)
        self.alerts = Counter("hean_watchdog_alerts_total", "Positions escalated because closing kept failing",
                              registry=registry)


class WatchdogService(Service):
    name = "watchdog"

    def __init__(self, settings: HeanSettings, registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__(settings, registry)
        self.wd_metrics = WatchdogMetrics(registry)
        self.client: BybitRestClient | None = None
        self._tracked: dict[tuple[str, str, int, int], _Tracked] = {}
        self._bus_positions: dict[str, dict[str, Any]] = {}

    async def startup(self) -> None:
        s = self.settings
        if not s.position_monitor_enabled:
            log.info("Position monitor disabled in config")
            return
        self.client = rest_client(s, self.registry)
        self.make_publisher()
        sub = self.make_subscriber()
        sub.connect("reconciler").on("position.", self._on_position)
        delay = 0.5
        while True:  # ready only once the exchange answers: a watchdog that cannot see positions is not up
            try:
                await self.client.start()
                break
            except ExchangeUnavailable as exc:
                log.warning("exchange not reachable at start-up; retrying", extra={"error": str(exc)[:200]})
                if self.should_exit.is_set():
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, s.watchdog.error_backoff_s)
        log.info(f"Position monitor started: checking every {s.position_monitor_check_interval}s, "
                 f"TTL={s.max_hold_seconds}s",
                 extra={"include_foreign": s.watchdog.include_foreign,
                        "escalate_after": s.watchdog.close_attempts_before_escalation})

    async def main_loop(self) -> None:
        if self.client is None:
            await self.should_exit.wait()
            return
        s = self.settings
        while not self.should_exit.is_set():
            try:
                ok = await self.check_once()
            except Exception as exc:  # the loop must outlive any one bad check, as in the seed
                log.error("Error in position monitor loop", extra={"error": repr(exc)[:300]}, exc_info=True)
                self.wd_metrics.errors.inc()
                ok = False
            pause = s.position_monitor_check_interval if ok else s.watchdog.error_backoff_s
            try:
                await asyncio.wait_for(self.should_exit.wait(), pause)
            except TimeoutError:
                pass

    async def shutdown(self) -> None:
        if self.client is not None:
            await self.client.close()
        log.info("Position monitor stopped")

    async def _on_position(self, ev: Event) -> None:
        if ev.source == "reconciler" and isinstance(ev.data, dict) and isinstance(ev.data.get("symbol"), str):
            self._bus_positions[ev.data["symbol"]] = ev.data

    # ---- one check -------------------------------------------------------------------
    async def check_once(self) -> bool:
        """Evaluate every open position once; False when something failed (back off)."""
        assert self.client is not None
        s = self.settings
        ok = True
        asked_ms = self.client.server_time_ms()
        try:
            rows: list[dict[str, Any]] = await self.client.positions()
            rest_ok = True
        except ExchangeUnavailable as exc:
            log.error("Error checking stale positions: position/list failed", extra={"error": str(exc)[:200]})
            self.wd_metrics.errors.inc()
            rows, rest_ok, ok = [], False, False
        rows += self._bus_rows({r.get("symbol") for r in rows}, rest_ok, asked_ms)
        foreign = {sym for sym, d in self._bus_positions.items() if d.get("foreign") is True}
        decisions = evaluate(rows, self.client.server_time_ms(), s.max_hold_seconds, warn_before_s=WARN_BEFORE_S,
                             include_foreign=s.watchdog.include_foreign,
                             hean_symbols=set(s.symbols) - foreign)
        live = [d.position for d in decisions if d.position is not None]
        self.wd_metrics.tracked.set(len(live))
        self.wd_metrics.oldest.set(max((p.age_s for p in live), default=0.0))
        for d in decisions:
            pos = d.position
            if d.kind is DecisionKind.SKIP_INVALID:
                log.warning("position row not understood; not acted on", extra={"reason": d.reason,
                                                                                 "symbol": d.symbol})
            elif d.kind is DecisionKind.WARN and pos is not None:
                log.info(f"Position {pos.symbol}_{_direction(pos)} age={pos.age_s:.0f}s, "
                         f"will force-close in {pos.remaining_s:.0f}s",
                         extra={"symbol": pos.symbol, "age_s": pos.age_s, "remaining_s": pos.remaining_s})
            elif d.kind is DecisionKind.CLOSE and pos is not None:
                ok = await self._force_close(pos, d.row) and ok
        keep = {_identity(p) for p in live}
        self._tracked = {k: v for k, v in self._tracked.items() if k in keep}
        self.wd_metrics.checks.inc()
        return ok

    def _bus_rows(self, rest_symbols: set[Any], rest_ok: bool, asked_ms: int) -> list[dict[str, Any]]:
        """Reconciler positions REST did not list: all of them if REST failed, else only newer ones."""
        rows = []
        for sym, data in self._bus_positions.items():
            if sym in rest_symbols:
                continue
            updated = data.get("updated_time_ms")
            if rest_ok and not (isinstance(updated, int) and updated > asked_ms):
                continue
            rows.append(_row_from_event(data))
        return rows

    # ---- closing ---------------------------------------------------------------------
    async def _force_close(self, pos: PositionAge, row: Any) -> bool:
        assert self.client is not None
        st = self._tracked.setdefault(_identity(pos), _Tracked())
        fields = {"symbol": pos.symbol, "side": _direction(pos), "size": format(pos.size, "f"),
                  "age_s": round(pos.age_s, 3), "max_hold_s": self.settings.max_hold_seconds}
        log.warning(f"STALE POSITION DETECTED: {pos.symbol} {_direction(pos)} size={pos.size} held for "
                    f"{pos.age_s:.0f}s (max: {self.settings.max_hold_seconds}s). Force closing...", extra=fields)
        try:
            if not st.recovered:
                st.attempt = await self._attempts_on_exchange(pos)
                st.placed.update(range(1, st.attempt + 1))
                st.recovered = True
            if st.attempt and not await self._previous_attempt_final(pos, st):
                return True  # previous close still working or just filled: do not send another
        except ExchangeUnavailable as exc:
            await self._error(pos, row, f"Force close lookup failed: {exc}", None)
            return False
        if st.attempt >= MAX_ATTEMPT:
            await self._error(pos, row, "Force close gave up: attempt numbers exhausted", None)
            return False
        attempt = st.attempt + 1
        order = close_order_for(pos, attempt)
        log.warning(f"FORCE CLOSING POSITION: {pos.symbol} {_direction(pos)} size={pos.size} via "
                    f"{order.side} market order", extra=fields | {"order_link_id": order.order_link_id})
        resp = await self.client.place_order(symbol=order.symbol, side=order.side, order_type="Market",
                                             qty=order.qty, price=None, order_link_id=order.order_link_id,
                                             reduce_only=True)
        st.attempt, st.filled_waits = attempt, 0
        if resp.outcome in (Outcome.OK, Outcome.DUPLICATE):
            st.placed.add(attempt)
            order_id = resp.result.get("orderId")
            self.wd_metrics.closes.labels("placed" if resp.ok else "duplicate").inc()
            log.info(f"Force close order placed: {order_id} {pos.symbol} {order.side} {pos.size}",
                     extra=fields | {"order_id": order_id, "order_link_id": order.order_link_id,
                                     "attempt": attempt})
            await self.publish(topics.watchdog("force_closed"), topics.EventType.POSITION_FORCE_CLOSED.value,
                               {"position": row, "reason": REASON, "order_id": order_id,
                                "order_link_id": order.order_link_id, "symbol": pos.symbol,
                                "side": _direction(pos), "size": format(pos.size, "f"),
                                "age_s": round(pos.age_s, 3), "attempt": attempt})
            return True
        self.wd_metrics.closes.labels("ambiguous" if resp.outcome is Outcome.AMBIGUOUS else "failed").inc()
        detail = f"{resp.outcome.value} retCode={resp.ret_code} {resp.error or resp.ret_msg}"
        await self._error(pos, row, f"Force close failed: {detail}", order.order_link_id)
        if resp.outcome is not Outcome.AMBIGUOUS:
            st.failed.add(attempt)  # an ambiguous attempt is judged by its lookup next time
        await self._after_failure(pos, row, st)
        return False

    async def _attempts_on_exchange(self, pos: PositionAge) -> int:
        """Highest attempt number already on the exchange for this position (after a restart)."""
        assert self.client is not None
        attempt = 0
        while attempt < MAX_ATTEMPT:
            link = close_order_for(pos, attempt + 1).order_link_id
            if await self.client.query_order(order_link_id=link) is None:
                return attempt
            attempt += 1
        return attempt

    async def _previous_attempt_final(self, pos: PositionAge, st: _Tracked) -> bool:
        """True when attempt `st.attempt` can no longer close the position, so the next may go."""
        assert self.client is not None
        link = close_order_for(pos, st.attempt).order_link_id
        found = await self.client.query_order(order_link_id=link)
        status = None if found is None else found.get("orderStatus")
        if status in _OPEN_STATUSES:
            log.info("previous force close still open; waiting", extra={"order_link_id": link, "status": status})
            return False
        if status in _FILLED_STATUSES and st.filled_waits < 1:
            st.filled_waits += 1  # give the position one check to reflect the fill
            log.info("previous force close filled; waiting for the position to reflect it",
                     extra={"order_link_id": link, "status": status})
            return False
        if status not in _FILLED_STATUSES and st.attempt not in st.failed:
            st.failed.add(st.attempt)  # placed (or ambiguous) but ended unfilled: a failed attempt
            await self._after_failure(pos, None, st)
        return True

    async def _after_failure(self, pos: PositionAge, row: Any, st: _Tracked) -> None:
        """Escalation ladder: cancel the symbol's orders, then alert and ask for QUARANTINE."""
        assert self.client is not None
        limit = self.settings.watchdog.close_attempts_before_escalation
        failures = len(st.failed)
        if st.cancelled_at is None and failures >= limit:
            resp = await self.client.cancel_all(symbol=pos.symbol)
            st.cancelled_at = failures
            log.warning("force close keeps failing; cancelled the symbol's open orders before retrying",
                        extra={"symbol": pos.symbol, "failures": failures, "cancel_outcome": resp.outcome.value})
        elif st.cancelled_at is not None and failures > st.cancelled_at and not st.escalated:
            st.escalated = True
            self.wd_metrics.alerts.inc()
            detail = {"symbol": pos.symbol, "side": _direction(pos), "size": format(pos.size, "f"),
                      "age_s": round(pos.age_s, 3), "failed_attempts": failures}
            log.critical("force close failed even after cancelling open orders; asking risk for QUARANTINE",
                         extra=detail)
            await self.publish(topics.watchdog("alert"), topics.EventType.WATCHDOG_ALERT.value,
                               {"kind": "close_failed", "position": row, **detail})
            await self.publish(topics.risk_control("request"), topics.EventType.RISK_REQUEST.value,
                               {"state": "QUARANTINE", "reason": "WATCHDOG_CLOSE_FAILED", "source": self.name,
                                "detail": detail})

    async def _error(self, pos: PositionAge, row: Any, error: str, link: str | None) -> None:
        self.wd_metrics.errors.inc()
        log.error(f"Failed to force close position {pos.symbol} {_direction(pos)}",
                  extra={"error": error[:300], "order_link_id": link})
        await self.publish(topics.watchdog("error"), topics.EventType.ERROR.value,
                           {"error": error[:300], "position": row, "symbol": pos.symbol, "order_link_id": link})
