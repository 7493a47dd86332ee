"""Two example strategies that show the API. They are examples, NOT money-makers.

- `MovingAverageCross`: samples the last price once a second; when the fast
  average crosses the slow one it turns the position long (fast above) or
  short (fast below). Textbook trend following, no edge claimed.
- `RoundTrip`: opens a position, holds it for `hold_s`, closes it, waits
  `every_s`, repeats. It exists to exercise the whole path (intent -> order ->
  fill -> position -> close) and, with `hold_s` above `max_hold_seconds`, the
  watchdog's force-close.

Both take parameters from the dotted path, e.g.
`hean.strategy.examples:RoundTrip?symbol=ETHUSDT&qty=0.5&hold_s=5&every_s=3&id=rt-eth`.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from hean.strategy.api import OrderIntent, Position, Strategy


class MovingAverageCross(Strategy):
    """Long when the fast moving average is above the slow one, short when below."""

    symbol = "BTCUSDT"
    qty = Decimal("0.001")
    fast = 5            # samples (one per second)
    slow = 20

    def on_start(self) -> None:
        if not 0 < self.fast < self.slow:
            raise ValueError("MovingAverageCross needs 0 < fast < slow")
        self._prices: deque[Decimal] = deque(maxlen=self.slow)
        self._last_signal = 0

    def on_timer(self, now: float) -> list[OrderIntent]:
        price = self.ctx.last_price.get(self.symbol)
        if price is None:
            return []
        self._prices.append(price)
        if len(self._prices) < self.slow:
            return []
        samples = list(self._prices)
        fast = sum(samples[-self.fast:], Decimal(0)) / self.fast
        slow = sum(samples, Decimal(0)) / self.slow
        signal = 1 if fast > slow else -1 if fast < slow else 0
        if signal == 0 or signal == self._last_signal or self.ctx.pending(self.symbol):
            return []
        risk = self.ctx.risk
        if risk is not None and not risk.allows_new_risk:
            return []
        self._last_signal = signal
        target = self.qty * signal
        delta = target - self.ctx.position(self.symbol).signed_size
        if delta == 0:
            return []
        return [OrderIntent.market(self.symbol, "Buy" if delta > 0 else "Sell", abs(delta))]


class RoundTrip(Strategy):
    """Open -> hold `hold_s` -> close -> wait `every_s` -> open again."""

    symbol = "BTCUSDT"
    qty = Decimal("0.01")
    side = "Buy"
    hold_s = 5.0
    every_s = 5.0

    def on_start(self) -> None:
        if self.side not in ("Buy", "Sell"):
            raise ValueError("RoundTrip side must be Buy or Sell")
        self._next_open = 0.0
        self._opened_at: float | None = None

    def on_position(self, position: Position) -> None:
        if position.symbol != self.symbol:
            return
        if position.is_flat:
            if self._opened_at is not None:   # closed (by us or by the watchdog): rest before the next one
                self._opened_at = None
                self._next_open = self.ctx.now + self.every_s
        elif self._opened_at is None:
            self._opened_at = self.ctx.now

    def on_timer(self, now: float) -> list[OrderIntent]:
        if self.ctx.pending(self.symbol):
            return []
        pos = self.ctx.position(self.symbol)
        if pos.is_flat:
            risk = self.ctx.risk
            if now < self._next_open or (risk is not None and not risk.allows_new_risk):
                return []
            self._next_open = now + self.every_s + self.hold_s
            return [OrderIntent.market(self.symbol, self.side, self.qty)]
        if self._opened_at is not None and now - self._opened_at >= self.hold_s:
            self._opened_at = now   # do not send another close every second while this one is in flight
            return [OrderIntent.close(pos)]
        return []
