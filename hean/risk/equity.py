"""Equity between wallet readings: the last wallet equity, marked to the feed's mark price (pure).

Why: Bybit's `wallet` stream does not push on unrealised-PnL changes (SPEC §7.3), so under
an open position the wallet equity alone lags a crash until the next reading. Between
readings each open position is marked to the latest feed mark:

    equity_now = anchor.equity + sum over open positions of (mark_now - row.mark_price) x signed_size

`row.mark_price` is the markPrice of the same position row, so the formula stays coherent
when the position row and the wallet reading are not simultaneous: the error is bounded by
the price move between the row and the wallet (never a realised loss counted twice, as
"anchor + unrealised PnL of the row" would do after a close).

A stale input stays visible as stale: the estimate's `as_of` is the time of the OLDEST
input it used (the anchor always; position rows and marks when a position is marked). A
mark older than `max_mark_age_s` (or missing) is not used: that position is left at the
anchor's valuation, whose age then speaks for it. Times are seconds on one local clock;
the caller converts exchange times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["Anchor", "Estimate", "Mark", "PositionRow", "estimate"]


@dataclass(frozen=True)
class Anchor:
    """A wallet reading: the exchange's total equity at time `at`."""

    equity: Decimal
    at: float


@dataclass(frozen=True)
class PositionRow:
    """One symbol's position as last reported: signed size (+ long, - short) and the row's markPrice."""

    symbol: str
    signed_size: Decimal
    mark_price: Decimal | None
    at: float | None


@dataclass(frozen=True)
class Mark:
    """The feed's mark price for a symbol, observed at `at`."""

    price: Decimal
    at: float


@dataclass(frozen=True)
class Estimate:
    """Equity now, the time of its oldest input, and which symbols were marked to the feed."""

    equity: Decimal
    as_of: float
    marked: tuple[str, ...] = ()
    unmarked: tuple[str, ...] = ()

    def age(self, now: float) -> float:
        return max(0.0, now - self.as_of)


def estimate(anchor: Anchor, positions: Iterable[PositionRow], marks: Mapping[str, Mark], now: float,
             max_mark_age_s: float, references: Mapping[str, Decimal] | None = None) -> Estimate:
    """The anchor, marked to market; an open position without a usable row or mark stays at the anchor.

    `references` (optional): the feed's mark at the anchor's own time per symbol. When given it
    replaces the row's markPrice as the price the wallet reading already holds, which removes the
    row/wallet time gap from the error altogether (the row then only gives the size).
    """
    equity, as_of = anchor.equity, anchor.at
    marked: list[str] = []
    unmarked: list[str] = []
    for row in sorted(positions, key=lambda r: r.symbol):
        if row.signed_size == 0:
            continue
        mark = marks.get(row.symbol)
        reference = (references or {}).get(row.symbol, row.mark_price)
        if reference is None or row.at is None or mark is None or now - mark.at > max_mark_age_s:
            unmarked.append(row.symbol)
            continue
        equity += (mark.price - reference) * row.signed_size
        as_of = min(as_of, row.at, mark.at)
        marked.append(row.symbol)
    return Estimate(equity, as_of, tuple(marked), tuple(unmarked))
