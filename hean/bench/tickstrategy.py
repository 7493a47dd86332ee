"""The tick bench's strategy: every Nth ticker answered by one resting limit whose qty encodes the tick.

The bench's ticks carry lastPrice = 40000 + index / 10; the order's qty is 0.001 x (index / N + 1),
so the bench can match each order arriving at the exchange to the frame that caused it.
"""

from __future__ import annotations

from decimal import Decimal

from hean.strategy.api import OrderIntent, Strategy, Tick

BASE = Decimal("40000")


class EveryNth(Strategy):
    symbol = "BTCUSDT"
    n = 20

    def on_tick(self, tick: Tick) -> list[OrderIntent]:
        if tick.kind != "ticker" or tick.symbol != self.symbol or tick.price is None:
            return []
        i = int((tick.price - BASE) * 10)
        if i % self.n:
            return []
        return [OrderIntent.limit(self.symbol, "Buy", Decimal("0.001") * (i // self.n + 1), Decimal("20000"))]
