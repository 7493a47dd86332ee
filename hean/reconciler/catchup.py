"""The REST catch-up and the position check, as a mixin of ReconcilerService (kept apart for size)."""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from hean import topics
from hean.exchange.bybit import ExchangeUnavailable
from hean.reconciler.diff import catchup_start_ms, position_check, signed_size
from hean.reconciler.events import flat_position

if TYPE_CHECKING:
    from hean.reconciler.service import ReconcilerService

log = logging.getLogger("hean.reconciler")
BASELINE_KEY = "position_baseline"


class CatchupMixin:
    """REST catch-up: open orders, executions since the last one seen, positions, wallet."""

    async def catchup(self: ReconcilerService, trigger: str, *, gap: bool) -> bool:
        """One catch-up; True on success. A gap catch-up brackets itself with reconciling=true/false."""
        assert self.client is not None and self.ledger is not None
        self.m.catchups.labels(trigger).inc()
        started = time.perf_counter()
        if gap:
            await self.set_reconciling(True, trigger)
        try:
            await self.client.sync_time()  # the exchange clock may have moved; the window end follows it
            now_ms = self.client.server_time_ms()
            for row in await self.client.open_orders():
                await self.order_seen(row)
            start_ms = catchup_start_ms(self.ledger.rest_watermark_ms(), now_ms, self.cfg.margin_s,
                                        self.cfg.lookback_s)
            rows = await self.client.executions_since(start_ms, now_ms)
            before = self.m.fills.labels("rest")._value.get()
            await self.record(rows, "rest")
            await self.publish_pending()
            recovered = int(self.m.fills.labels("rest")._value.get() - before)
            await self.check_positions(*await self.read_positions())
            # Wallet first, then the transaction log up to now: every transfer inside this reading
            # is published before it.
            account, wallet_ms = await self.client.wallet_reading()
            await self.offer_equity(account, wallet_ms, "rest", read_transfers=True)
        except ExchangeUnavailable as exc:
            self.m.catchup_failures.labels(trigger).inc()
            log.warning("catch-up failed; will retry", extra={"trigger": trigger, "error": str(exc)[:200]})
            return False
        duration = time.perf_counter() - started
        # Everything up to now_ms has been read from the exchange: the next catch-up starts there.
        self.ledger.set_rest_watermark_ms(now_ms)
        self.last_success_ms = now_ms
        self.m.last_duration.set(duration)
        self.m.last_success.set(time.time())
        log.info("catch-up done", extra={"trigger": trigger, "executions": len(rows), "recovered_fills": recovered,
                                         "from_ms": start_ms, "duration_s": round(duration, 4)})
        if gap or self.reconciling:
            await self.set_reconciling(False, trigger)
        return True

    def _baselines(self: ReconcilerService) -> dict[str, str] | None:
        assert self.ledger is not None
        raw = self.ledger.get_meta(BASELINE_KEY)
        return None if raw is None else dict(orjson.loads(raw))

    async def check_positions(self: ReconcilerService, by_symbol: dict[str, dict[str, Any]], ts_ms: int) -> None:
        """Explain each position from the ledger's running totals; flag foreign ones; escalate lasting mismatches."""
        assert self.ledger is not None
        symbols = set(self.settings.symbols) | set(by_symbol) | set(self.positions)
        baselines = self._baselines()
        if baselines is None:
            # A fresh ledger: whatever the ledger cannot explain already existed before HEAN looked.
            baselines = {s: str(signed_size(r) - self.ledger.position_sums(s, _updated(r)).explained)
                         for s, r in by_symbol.items()}
            self.ledger.set_meta(BASELINE_KEY, orjson.dumps(baselines).decode())
        mismatched = 0
        for symbol in sorted(symbols):
            row = by_symbol.get(symbol)
            exchange = signed_size(row) if row else Decimal(0)
            sums = self.ledger.position_sums(symbol, _updated(row) if row else None)
            check = position_check(symbol, exchange, Decimal(baselines.get(symbol, "0")), sums)
            if check.mismatch != 0:
                mismatched += 1
            if self.tracker.observe(symbol, check.mismatch != 0):
                await self._escalate(symbol, check.exchange, check.explained)
            if check.foreign:
                self.foreign_positions.add(symbol)
                await self.flag_foreign("position", symbol, {"symbol": symbol, "size": str(exchange),
                                                             "hean_size": str(check.hean)})
            else:
                self.foreign_positions.discard(symbol)
                self.foreign_seen.forget("position", symbol)
            if row is not None:
                await self.offer_position(row, ts_ms, check.foreign)
            elif symbol not in self.positions:
                await self.publish_position(flat_position(symbol))
        self.m.mismatches.set(mismatched)

    async def _escalate(self: ReconcilerService, symbol: str, exchange: Decimal, explained: Decimal) -> None:
        self.m.alerts.labels("position_mismatch").inc()
        detail = {"kind": "position_mismatch", "symbol": symbol, "exchange_size": str(exchange),
                  "ledger_size": str(explained), "catchups": self.tracker.streak.get(symbol, 0),
                  "detail": "position cannot be explained from recorded executions"}
        log.error("position mismatch survived repeated catch-ups", extra=detail)
        await self.publish(topics.reconcile("alert"), topics.EventType.RECONCILE_ALERT.value, detail)


def _updated(row: dict[str, Any] | None) -> int | None:
    try:
        return int(row["updatedTime"]) if row and row.get("updatedTime") else None
    except (TypeError, ValueError):
        return None
