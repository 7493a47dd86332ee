"""Strategies used by the runner tests: well-behaved, raising, garbage-returning, recording."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hean.strategy.api import Fill, OrderEvent, OrderIntent, Position, Strategy, Tick

# Every instance appends here, so a test can see what the runner delivered to which strategy.
SEEN: dict[str, list[Any]] = {}


class _Recording(Strategy):
    def _seen(self, item: Any) -> None:
        SEEN.setdefault(self.strategy_id, []).append(item)

    def on_fill(self, fill: Fill) -> None:
        self._seen(fill)

    def on_position(self, position: Position) -> None:
        self._seen(position)

    def on_order_event(self, event: OrderEvent) -> None:
        self._seen(event)


class OneShot(_Recording):
    """Sends exactly one market buy on its first timer call."""

    symbol = "BTCUSDT"
    qty = Decimal("0.002")

    def on_start(self) -> None:
        self._sent = False

    def on_timer(self, now: float) -> list[OrderIntent]:
        if self._sent:
            return []
        self._sent = True
        return [OrderIntent.market(self.symbol, "Buy", self.qty)]


class PerTick(_Recording):
    """One intent per BTCUSDT ticker tick: shows it keeps running while a neighbour fails."""

    def on_tick(self, tick: Tick) -> list[OrderIntent]:
        if tick.kind != "ticker":
            return []
        return [OrderIntent.market("BTCUSDT", "Sell", "0.001")]


class Raises(_Recording):
    def on_tick(self, tick: Tick) -> list[OrderIntent]:
        raise RuntimeError("strategy bug")


class Garbage(_Recording):
    """Returns every kind of wrong intent once per tick, plus one good one."""

    def on_tick(self, tick: Tick) -> list[Any]:
        if tick.kind != "ticker":
            return []
        return [
            None,
            "buy please",
            OrderIntent("BTCUSDT", "Buy", 0.5),                      # type: ignore[arg-type]  float qty
            OrderIntent.market("DOGEUSDT", "Buy", "1"),              # not configured
            OrderIntent("BTCUSDT", "Buy", Decimal("0.001"), "Limit"),  # limit without price
            OrderIntent.market("BTCUSDT", "Hold", "1"),              # bad side
            OrderIntent.market("BTCUSDT", "Buy", "0"),               # zero qty
            OrderIntent.limit("BTCUSDT", "Buy", "0.001", "49000.5"),  # the good one
        ]


class NotAList(_Recording):
    def on_tick(self, tick: Tick) -> Any:
        return OrderIntent.market("BTCUSDT", "Buy", "0.001")  # a bare intent, not a list


class NotAStrategy:
    pass
