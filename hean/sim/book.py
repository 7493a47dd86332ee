"""Synthetic order book with finite depth: what a taker order can actually get (SPEC §7.2).

Every tick from the touch outward holds ``depth`` qty; what takers consume is gone until the
next price step (liquidity replenishes each tick). Pure: no clock, no I/O.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from hean.sim.instruments import Instrument

ZERO = Decimal(0)
Leg = tuple[Decimal, Decimal]   # (qty, price)


class Book:
    """Per-symbol depth; ``default_notional`` sizes a level when no explicit depth is set."""

    def __init__(self, instruments: dict[str, Instrument], *, default_notional: Decimal,
                 depth: dict[str, Decimal] | None = None) -> None:
        self.instruments = instruments
        self.default_notional = default_notional
        self.configured = dict(depth or {})
        self.override: dict[str, Decimal] = {}
        self._taken: dict[tuple[str, Decimal], Decimal] = {}

    def set_depth(self, symbol: str, depth: Decimal | None) -> None:
        """Qty per level for ``symbol``; None restores the default."""
        if depth is None:
            self.override.pop(symbol, None)
        else:
            self.override[symbol] = depth

    def depth(self, symbol: str, price: Decimal) -> Decimal:
        if symbol in self.override:
            return self.override[symbol]
        if symbol in self.configured:
            return self.configured[symbol]
        step = self.instruments[symbol].qty_step
        lots = (self.default_notional / price / step).to_integral_value(ROUND_FLOOR)
        return max(lots, Decimal(1)) * step

    def available(self, symbol: str, price: Decimal) -> Decimal:
        return max(ZERO, self.depth(symbol, price) - self._taken.get((symbol, price), ZERO))

    def sweep(self, symbol: str, side: str, touch: Decimal, limit: Decimal, qty: Decimal, *,
              take: bool = True) -> list[Leg]:
        """Walk the opposite side from ``touch`` to ``limit`` (inclusive) for up to ``qty``."""
        tick = self.instruments[symbol].tick_size
        step = tick if side == "Buy" else -tick
        legs: list[Leg] = []
        price, left = touch, qty
        while left > 0 and price > 0 and (price <= limit if side == "Buy" else price >= limit):
            got = min(left, self.available(symbol, price))
            if got > 0:
                legs.append((got, price))
                left -= got
                if take:
                    self._taken[(symbol, price)] = self._taken.get((symbol, price), ZERO) + got
            price += step
        return legs

    def replenish(self) -> None:
        self._taken.clear()


def market_limit_price(inst: Instrument, side: str, touch: Decimal, mark: Decimal, *,
                       slippage_bps: Decimal | None, tolerance_type: str = "",
                       tolerance: Decimal | None = None) -> Decimal:
    """The IOC limit price a market order becomes (create-order.mdx), never beyond the price band.

    Per-order slippageTolerance wins; then the venue's ``slippage_bps`` around the touch; by default
    the band edge itself (the doc's slippage threshold is measured from the mark price).
    """
    buy = side == "Buy"
    low, high = inst.band(mark)
    if tolerance is not None and tolerance_type == "TickSize":
        cap = touch + tolerance * inst.tick_size if buy else touch - tolerance * inst.tick_size
    elif tolerance is not None:
        cap = touch * (1 + tolerance / 100) if buy else touch * (1 - tolerance / 100)
    elif slippage_bps is not None:
        cap = touch * (1 + slippage_bps / 10_000) if buy else touch * (1 - slippage_bps / 10_000)
    else:
        return high if buy else low
    cap = inst.round_price(cap, up=not buy) if buy else inst.round_price(cap, up=True)
    return min(cap, high) if buy else max(cap, low)
