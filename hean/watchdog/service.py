"""`hean run watchdog`: closes positions held longer than `max_hold_seconds` (seed fix #5, stronger).

Every `position_monitor_check_interval` s it reads `position/list` (the
authority) plus the reconciler's latest `position.<SYM>` events (which cover a
position opened after the REST read, or the whole picture while REST is down),
learns when each CURRENT position opened (`openTime`, else the symbol's
executions walked back to the last flat point: `resolver.py`; never Bybit's
`createdTime`, the first-ever position on the symbol), lets the pure `evaluate`
decide, and closes stale positions itself by REST (`closer.py`) -- it must
protect the account even when the executor is down, and it closes positions HEAN
did not open too unless `watchdog.include_foreign` is false. A position whose
opening cannot be learnt is reported, never aged by createdTime instead.

Metrics (prefix hean_watchdog_):
    hean_watchdog_positions_tracked              open positions seen in the last check
    hean_watchdog_positions_by_age_source{source} of them, aged by open_time | executions
    hean_watchdog_oldest_position_age_seconds    age of the oldest of them (0 when none)
    hean_watchdog_opening_lookups_total{kind}    execution walks: full | incremental
    hean_watchdog_force_closes_total{outcome}    placed | duplicate | failed | ambiguous | already_smaller
    hean_watchdog_close_orders_final_total{result} filled | partial | unfilled
    hean_watchdog_errors_total                   failed checks, queries and closes
    hean_watchdog_alerts_total                   positions escalated (close kept failing)
    hean_watchdog_checks_total                   completed position checks
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from hean.bus.envelope import Event
from hean.config import HeanSettings
from hean.exchange.bybit import BybitRestClient
from hean.exchange.bybit.errors import ExchangeUnavailable
from hean.exchange.connect import rest_client
from hean.lifecycle import Service
from hean.watchdog.closer import Closer, direction, identity
from hean.watchdog.core import DecisionKind, PositionAge, evaluate
from hean.watchdog.opening import InvalidExecution, Opening
from hean.watchdog.resolver import OpeningResolver

log = logging.getLogger("hean.watchdog")

WARN_BEFORE_S = 180.0  # the seed logs when less than 3 minutes remain
DAY_MS = 86_400_000


def _row_from_event(data: dict[str, Any]) -> dict[str, Any]:
    """A reconciler POSITION_UPDATE in the shape of a REST position row (contract 3: open_time_ms)."""
    open_time = data.get("open_time_ms")
    return {"symbol": data.get("symbol"), "side": data.get("side"), "size": data.get("size"),
            "avgPrice": data.get("avg_price"), "createdTime": str(data.get("created_time_ms") or ""),
            "updatedTime": str(data.get("updated_time_ms") or ""), "positionIdx": 0, "source": "bus",
            "openTime": open_time if isinstance(open_time, int) and not isinstance(open_time, bool) else 0}


class WatchdogMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tracked = Gauge("hean_watchdog_positions_tracked", "Open positions seen in the last check",
                             registry=registry)
        self.by_source = Gauge("hean_watchdog_positions_by_age_source",
                               "Open positions by where their opening came from", ["source"], registry=registry)
        self.oldest = Gauge("hean_watchdog_oldest_position_age_seconds", "Age of the oldest open position",
                            registry=registry)
        self.lookups = Counter("hean_watchdog_opening_lookups_total", "Execution walks by kind", ["kind"],
                               registry=registry)
        self.closes = Counter("hean_watchdog_force_closes_total", "Force-close attempts by outcome",
                              ["outcome"], registry=registry)
        self.close_results = Counter("hean_watchdog_close_orders_final_total",
                                     "Force-close orders by how they ended", ["result"], registry=registry)
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
        self.closer: Closer | None = None
        self.resolver: OpeningResolver | None = None
        self._bus_positions: dict[str, dict[str, Any]] = {}

    async def startup(self) -> None:
        s = self.settings
        if not s.position_monitor_enabled:
            log.info("Position monitor disabled in config")
            return
        self.client = rest_client(s, self.registry)
        self.resolver = OpeningResolver(self.client, int(s.watchdog.opening_lookback_days * DAY_MS),
                                        on_lookup=lambda kind: self.wd_metrics.lookups.labels(kind).inc())
        self.closer = Closer(self.client, self.wd_metrics, escalate_after=s.watchdog.close_attempts_before_escalation,
                             max_hold_s=s.max_hold_seconds, publish=self.publish,
                             current_size=self._current_size)
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
        assert self.client is not None and self.closer is not None
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
        openings, resolved = await self._openings(rows)
        ok = ok and resolved
        foreign = {sym for sym, d in self._bus_positions.items() if d.get("foreign") is True}
        decisions = evaluate(rows, self.client.server_time_ms(), s.max_hold_seconds, warn_before_s=WARN_BEFORE_S,
                             include_foreign=s.watchdog.include_foreign,
                             hean_symbols=set(s.symbols) - foreign, openings=openings)
        live = [d.position for d in decisions if d.position is not None]
        self.wd_metrics.tracked.set(len(live))
        for source in ("open_time", "executions"):
            self.wd_metrics.by_source.labels(source).set(sum(p.opening.source == source for p in live))
        self.wd_metrics.oldest.set(max((p.age_s for p in live), default=0.0))
        for d in decisions:
            pos = d.position
            if d.kind is DecisionKind.SKIP_INVALID:
                log.warning("position row not understood; not acted on", extra={"reason": d.reason,
                                                                                 "symbol": d.symbol})
            elif d.kind is DecisionKind.AGE_UNKNOWN:  # never aged by createdTime instead: retried next check
                log.warning("position age unknown; not acted on", extra={"reason": d.reason, "symbol": d.symbol})
            elif d.kind is DecisionKind.WARN and pos is not None:
                log.info(f"Position {pos.symbol}_{direction(pos)} age={pos.age_s:.0f}s, "
                         f"will force-close in {pos.remaining_s:.0f}s",
                         extra={"symbol": pos.symbol, "age_s": pos.age_s, "remaining_s": pos.remaining_s,
                                "age_source": pos.opening.source, "opened_ms": pos.opened_ms})
            elif d.kind is DecisionKind.CLOSE and pos is not None:
                ok = await self.closer.close(pos, d.row) and ok
        self.closer.forget_except({identity(p) for p in live})
        self.wd_metrics.checks.inc()
        return ok

    async def _openings(self, rows: list[dict[str, Any]]) -> tuple[dict[str, Opening], bool]:
        """Openings learnt from executions for the open rows without openTime; False if any failed."""
        assert self.resolver is not None and self.client is not None
        openings: dict[str, Opening] = {}
        ok = True
        for row in rows:
            symbol = row.get("symbol")
            try:
                opening = await self.resolver.opening(row, self.client.server_time_ms())
            except (ExchangeUnavailable, InvalidExecution, ArithmeticError) as exc:
                log.error("could not learn when the position opened", extra={"symbol": symbol,
                                                                             "error": str(exc)[:200]})
                self.wd_metrics.errors.inc()
                ok = False
                continue
            if opening is not None and isinstance(symbol, str):
                openings[symbol] = opening
        self.resolver.forget_except(set(openings))
        return openings, ok

    async def _current_size(self, pos: PositionAge) -> Decimal:
        """Size of `pos` re-read by REST; 0 when flat, or when the row is another position (re-opened)."""
        assert self.client is not None and self.resolver is not None
        for row in await self.client.positions(symbol=pos.symbol):
            if row.get("side") != pos.side or row.get("positionIdx", 0) != pos.position_idx:
                continue
            try:
                opening = await self.resolver.opening(row, self.client.server_time_ms())
            except InvalidExecution:
                opening = None
            if opening is None or opening.key != pos.opening.key:
                log.info("position re-opened since the close began; it is aged on its own",
                         extra={"symbol": pos.symbol, "was_opened_ms": pos.opened_ms,
                                "opened_ms": None if opening is None else opening.time_ms})
                return Decimal(0)
            return Decimal(str(row.get("size") or "0"))
        return Decimal(0)

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
