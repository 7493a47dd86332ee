"""Positions, equity and transfers as the risk governor needs them (a mixin of ReconcilerService).

- Every report is ordered (hean.reconciler.ordering): an older REST snapshot never replaces newer
  WS state, so a position never goes back in time on the bus.
- Equity carries `ts_ms`, the exchange time of the reading (WS `creationTime`, REST envelope
  `time`); re-publications keep it, so a stale source stays visibly stale downstream.
- Bybit's wallet stream is silent on unrealised-PnL moves: while a position is open, wallet and
  positions are read by REST every `account_poll_s` so risk can re-anchor on the exchange's own
  numbers (2 requests a second against limits of 50/s each); nothing is polled while flat.
- Transfers: the transaction log (TRANSFER_IN / TRANSFER_OUT) is read at every catch-up and
  whenever the wallet balance moved with no execution to explain it, and each new transfer is
  published BEFORE the equity reading that contains it, so a deposit never looks like profit.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hean import topics
from hean.exchange.bybit import ExchangeUnavailable
from hean.exchange.bybit.paging import time_windows
from hean.reconciler.events import dec, equity_event, position_event, transfer_event
from hean.reconciler.ordering import PositionVersion

if TYPE_CHECKING:
    from hean.reconciler.service import ReconcilerService

log = logging.getLogger("hean.reconciler")
ET = topics.EventType
PATH_TRANSACTION_LOG = "/v5/account/transaction-log"
TRANSFER_TYPES = {"TRANSFER_IN": 1, "TRANSFER_OUT": -1}
TRANSACTION_PAGE_LIMIT = 50
CLOCK_RESET_MS = 60_000   # a reading this much older than the last is a clock reset, not a late reply


def transfer_of(item: dict[str, Any], sign: int) -> tuple[str, str, str, int] | None:
    """(id, signed amount, currency, ts_ms) of a transaction-log item; the sign comes from its type."""
    raw = item.get("cashFlow") if dec(item.get("cashFlow")) != "0" else item.get("change")
    amount = abs(Decimal(dec(raw)))
    transfer_id = str(item.get("id") or "")
    if not transfer_id or amount == 0:
        return None
    try:
        ts_ms = int(item.get("transactionTime") or 0)
    except (TypeError, ValueError):
        ts_ms = 0
    return transfer_id, str(amount * sign), str(item.get("currency") or ""), ts_ms


class AccountMixin:
    """Ordered position/equity publication, the open-position poll, transfers."""

    def positions_open(self: ReconcilerService) -> list[str]:
        return [s for s, d in self.positions.items() if Decimal(d.get("size") or "0") != 0]

    async def offer_position(self: ReconcilerService, row: dict[str, Any], ts_ms: int | None,
                             foreign: bool | None = None) -> bool:
        """Publish `row` unless an equal-or-newer report of that symbol was already published."""
        symbol = str(row.get("symbol") or "")
        version = PositionVersion.of(row)
        if version.older_than(self.position_versions.get(symbol)):
            self.m.stale.labels("position").inc()
            log.info("older position report ignored", extra={
                "symbol": symbol, "seq": version.seq, "updated_ms": version.updated_ms,
                "published_seq": self.position_versions[symbol].seq})
            return False
        self.position_versions[symbol] = version
        is_foreign = symbol in self.foreign_positions if foreign is None else foreign
        await self.publish_position(position_event(row, is_foreign, ts_ms))
        return True

    async def read_positions(self: ReconcilerService) -> tuple[dict[str, dict[str, Any]], int]:
        """Open positions by REST, plus a by-symbol row for each symbol believed open but absent
        (the settleCoin list omits flat positions; the by-symbol row carries the flat state's seq)."""
        assert self.client is not None
        rows, ts_ms = await self.client.position_rows()
        by_symbol = {str(r.get("symbol")): r for r in rows if Decimal(dec(r.get("size"))) != 0}
        for symbol in self.positions_open():
            if symbol not in by_symbol:
                extra, _ = await self.client.position_rows(symbol=symbol)
                by_symbol.update({str(r.get("symbol")): r for r in extra if r.get("symbol") == symbol})
        return by_symbol, ts_ms if ts_ms is not None else self.client.server_time_ms()

    async def offer_equity(self: ReconcilerService, account: dict[str, Any], ts_ms: int | None, source: str,
                           *, read_transfers: bool = False) -> bool:
        """Publish a wallet reading, after any transfer it contains; an older reading is dropped."""
        assert self.client is not None
        ts = ts_ms if ts_ms is not None else self.client.server_time_ms()
        async with self.account_lock:
            held = None if self.equity is None else int(self.equity["ts_ms"])
            if held is not None and held - CLOCK_RESET_MS < ts < held:   # (far older: the clock was reset)
                self.m.stale.labels("equity").inc()
                return False
            balance = Decimal(dec(account.get("totalWalletBalance")))
            unexplained = (self.last_balance is not None and balance != self.last_balance
                           and self.executions_recorded == self.executions_at_last_balance)
            if read_transfers or unexplained:
                try:
                    await self.check_transfers()
                except ExchangeUnavailable as exc:
                    # Publishing now could show a deposit as profit (or a withdrawal as a loss):
                    # hold the reading; risk sees the equity age grow instead.
                    self.m.transfer_check_failures.inc()
                    # (Fills are not held back by this: the catch-up still succeeds.)
                    log.warning("transaction log unreadable: equity reading held", extra={"error": str(exc)[:200]})
                    return False
            self.last_balance = balance
            self.executions_at_last_balance = self.executions_recorded
            self.equity = equity_event(account, ts, published_ms=self.client.server_time_ms(), source=source)
            self.m.observe_equity(self.equity)
            await self.publish(topics.equity(), ET.EQUITY_UPDATE.value, self.equity)
            return True

    async def check_transfers(self: ReconcilerService) -> None:
        """Read the transaction log since the transfer watermark; publish each new transfer once."""
        assert self.client is not None and self.ledger is not None
        now_ms = self.client.server_time_ms()
        watermark = self.ledger.transfer_watermark_ms()
        fresh = watermark is None
        start = (max(0, now_ms - int(self.cfg.lookback_s * 1000)) if fresh
                 else max(0, min(watermark, now_ms) - int(self.cfg.margin_s * 1000)))  # type: ignore[type-var]
        found: list[tuple[str, str, str, int]] = []
        for kind, sign in TRANSFER_TYPES.items():
            for lo, hi in time_windows(start, now_ms):
                params = {"accountType": "UNIFIED", "type": kind, "startTime": lo, "endTime": hi,
                          "limit": TRANSACTION_PAGE_LIMIT}
                for item in await self.client.paged(PATH_TRANSACTION_LOG, params):
                    parsed = transfer_of(item, sign)
                    if parsed is not None:
                        found.append(parsed)
        # On a fresh ledger, what the log already holds is inside the first equity reading: not news.
        self.ledger.insert_transfers(sorted(found, key=lambda t: (t[3], t[0])), baseline=fresh)
        for transfer_id, amount, currency, ts in self.ledger.pending_transfers():
            data = transfer_event(transfer_id, amount, currency, ts)
            await self.publish(topics.transfer(), ET.TRANSFER.value, data)
            self.ledger.mark_transfer_published(transfer_id)
            self.late_join.remember(topics.transfer(), ET.TRANSFER.value, data)
            self.m.transfers.labels("in" if Decimal(amount) > 0 else "out").inc()
            log.info("transfer published", extra={"id": transfer_id, "amount": amount, "currency": currency})
        self.ledger.set_transfer_watermark_ms(now_ms)

    async def poll_account(self: ReconcilerService) -> None:
        """One re-anchoring read: open positions and the wallet, published in exchange order."""
        assert self.client is not None
        by_symbol, ts_ms = await self.read_positions()
        for row in by_symbol.values():
            await self.offer_position(row, ts_ms)
        account, wallet_ms = await self.client.wallet_reading()
        await self.offer_equity(account, wallet_ms, "rest")

    async def account_poll_loop(self: ReconcilerService) -> None:
        while True:
            await asyncio.sleep(self.cfg.account_poll_s)
            if not self.positions_open():
                continue
            try:
                await self.poll_account()
                self.m.account_polls.labels("ok").inc()
            except ExchangeUnavailable as exc:
                self.m.account_polls.labels("failed").inc()
                log.debug("account poll failed", extra={"error": str(exc)[:200]})
