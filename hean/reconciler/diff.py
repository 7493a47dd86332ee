"""Pure reconciliation rules: catch-up windows, position explanation, foreign detection, escalation.

No I/O here: the service feeds in rows it read from the ledger and the exchange and acts on
what these functions decide, so the rules can be tested without sockets or clocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hean.ids import INTENT_PREFIX, is_hean_link_id

FILL_EXEC_TYPE = "Trade"
# Execution types that move a position (funding, settlement etc. only move cash).
POSITION_EXEC_TYPES = frozenset({"Trade", "AdlTrade", "BustTrade", "BlockTrade", "MovePosition"})
ZERO = Decimal(0)


def is_fill(row: dict[str, Any]) -> bool:
    """Only `execType == Trade` is a fill; funding and the rest are recorded, not published."""
    return row.get("execType") == FILL_EXEC_TYPE


def intent_id_of(link_id: str | None) -> str | None:
    """The intent id behind an executor orderLinkId (hashed long ids come back as their hash)."""
    if link_id and link_id.startswith(INTENT_PREFIX):
        return link_id[len(INTENT_PREFIX):]
    return None


def signed_qty(side: str, qty: Decimal) -> Decimal:
    return qty if side == "Buy" else -qty


def signed_size(row: dict[str, Any]) -> Decimal:
    """Bybit reports position size positive with the direction in `side`; make it signed."""
    size = Decimal(str(row.get("size") or "0"))
    return -size if row.get("side") == "Sell" else size


def catchup_start_ms(watermark_ms: int | None, now_ms: int, margin_s: float, lookback_s: float) -> int:
    """Where a catch-up starts reading executions.

    From the REST watermark (the window end of the last successful catch-up) minus a margin for
    late-indexed rows, however long ago that is: the client splits long ranges into 7-day windows,
    so a long gap is never cut short. Fills that came over the WebSocket never move the watermark:
    the WS can deliver fill B after it missed fill A, and reading from B would lose A for good.
    A ledger without a watermark looks back `lookback_s`.
    """
    if watermark_ms is None:
        return max(0, now_ms - int(lookback_s * 1000))
    return max(0, min(watermark_ms, now_ms) - int(margin_s * 1000))


@dataclass(frozen=True)
class LedgerFill:
    """What the position check needs of one recorded execution."""

    exec_time_ms: int
    symbol: str
    side: str
    qty: Decimal
    exec_type: str
    order_link_id: str


@dataclass(frozen=True)
class PositionCheck:
    symbol: str
    exchange: Decimal      # signed size the exchange reports
    explained: Decimal     # baseline + every recorded position-moving execution
    hean: Decimal          # the part explained by HEAN's own orders

    @property
    def mismatch(self) -> Decimal:
        return self.exchange - self.explained

    @property
    def foreign(self) -> bool:
        """Open and not entirely HEAN's: never adopted silently."""
        return self.exchange != 0 and self.hean != self.exchange


@dataclass(frozen=True)
class PositionSums:
    """Signed sums of position-moving executions: all of them, and HEAN's own."""

    explained: Decimal = ZERO
    hean: Decimal = ZERO

    def plus(self, delta: Decimal, is_hean: bool) -> PositionSums:
        return PositionSums(self.explained + delta, self.hean + (delta if is_hean else ZERO))


def moves_position(exec_type: str) -> bool:
    return exec_type in POSITION_EXEC_TYPES


def sum_fills(symbol: str, updated_ms: int | None, fills: Iterable[LedgerFill]) -> PositionSums:
    """Sum the fills of `symbol` up to `updated_ms`: a fill after the position was read is not in it."""
    sums = PositionSums()
    for f in fills:
        if f.symbol != symbol or not moves_position(f.exec_type):
            continue
        if updated_ms is not None and f.exec_time_ms > updated_ms:
            continue
        sums = sums.plus(signed_qty(f.side, f.qty), is_hean_link_id(f.order_link_id))
    return sums


def position_check(symbol: str, exchange_signed: Decimal, baseline: Decimal, sums: PositionSums) -> PositionCheck:
    return PositionCheck(symbol, exchange_signed, baseline + sums.explained, sums.hean)


def check_position(symbol: str, exchange_signed: Decimal, updated_ms: int | None, baseline: Decimal,
                   fills: Iterable[LedgerFill]) -> PositionCheck:
    """Explain the exchange's position from the ledger.

    Only executions up to the position's `updatedTime` are counted: a fill that landed after the
    position was read must not show up as a mismatch. (The service gets the same sums from the
    ledger's running totals, without reading history: see Ledger.position_sums.)
    """
    return position_check(symbol, exchange_signed, baseline, sum_fills(symbol, updated_ms, fills))


def baseline_for(exchange_signed: Decimal, updated_ms: int | None, symbol: str,
                 fills: Iterable[LedgerFill]) -> Decimal:
    """On a fresh ledger: the part of the position that predates what the ledger holds."""
    return check_position(symbol, exchange_signed, updated_ms, ZERO, fills).mismatch


class MismatchTracker:
    """Counts consecutive catch-ups a mismatch survives; escalates once, never loops."""

    def __init__(self, escalate_after: int) -> None:
        self.escalate_after = escalate_after
        self.streak: dict[str, int] = {}
        self.escalated: set[str] = set()

    def observe(self, symbol: str, mismatched: bool) -> bool:
        """Record one catch-up's verdict; True exactly when this symbol must escalate now."""
        if not mismatched:
            self.streak.pop(symbol, None)
            self.escalated.discard(symbol)
            return False
        self.streak[symbol] = self.streak.get(symbol, 0) + 1
        if self.streak[symbol] >= self.escalate_after and symbol not in self.escalated:
            self.escalated.add(symbol)
            return True
        return False

    def pending(self) -> bool:
        """Some mismatch is still being watched but has not escalated yet (worth an early re-check)."""
        return any(s not in self.escalated for s in self.streak)


class ForeignSeen:
    """Remembers which foreign orders/positions were already reported, so each is flagged once."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def first_time(self, kind: str, key: str) -> bool:
        if (kind, key) in self._seen:
            return False
        self._seen.add((kind, key))
        return True

    def forget(self, kind: str, key: str) -> None:
        self._seen.discard((kind, key))
