"""The strategy API: what a user writes to trade with HEAN.

A strategy is a subclass of `Strategy`. The runner (`hean run strategy`) calls
its hooks with plain dataclasses and publishes the `OrderIntent`s it returns;
the executor decides whether and how they reach the exchange (risk gating,
exactly-once placement). A strategy never talks to the exchange or the bus.

    from decimal import Decimal
    from hean.strategy.api import OrderIntent, Strategy, Tick

    class BuyTheDip(Strategy):
        symbol = "BTCUSDT"
        qty = Decimal("0.001")

        def on_tick(self, tick: Tick) -> list[OrderIntent]:
            pos = self.ctx.position(self.symbol)
            if tick.symbol == self.symbol and tick.price and pos.is_flat and not self.ctx.pending(self.symbol):
                return [OrderIntent.market(self.symbol, "Buy", self.qty)]
            return []

Load it with `HEAN_STRATEGY__PATHS=mypackage.mymodule:BuyTheDip`. Parameters may
follow the class as a query: `mymodule:BuyTheDip?symbol=ETHUSDT&qty=0.01&id=dip-eth`;
each key must be an existing class attribute and is converted to that
attribute's type (`id` sets `strategy_id`, so one class can run twice).

Hooks run on the runner's event loop: keep them quick and never block. A hook
that raises is logged and counted; after `strategy.max_failures` raises the
strategy is disabled while the others keep running. Returned intents that are
not valid are logged, counted and dropped. This module is pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

SIDES = ("Buy", "Sell")
ORDER_TYPES = ("Market", "Limit")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "PostOnly")
ZERO = Decimal(0)


class InvalidIntent(ValueError):
    """A strategy returned something the runner will not publish; the message says why."""


def to_decimal(value: Any, name: str) -> Decimal:
    """Money and quantities are Decimal (or int / numeric str); floats are refused, not rounded."""
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidIntent(f"{name} must be a Decimal, int or numeric string, not {type(value).__name__}")
    try:
        dec = value if isinstance(value, Decimal) else Decimal(str(value) if isinstance(value, int) else value)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidIntent(f"{name} {value!r} is not a number") from None
    if not dec.is_finite():
        raise InvalidIntent(f"{name} must be finite")
    return dec


def opt_decimal(data: dict[str, Any], key: str) -> Decimal | None:
    """A Decimal field of an event, or None when absent/empty/unparsable."""
    raw = data.get(key)
    if raw in (None, ""):
        return None
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class OrderIntent:
    """What a strategy wants: the executor turns it into (at most) one exchange order."""

    symbol: str
    side: str                       # "Buy" | "Sell"
    qty: Decimal
    order_type: str = "Market"      # "Market" | "Limit"
    price: Decimal | None = None    # Limit only
    reduce_only: bool = False       # only shrinks a position (a close)
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    time_in_force: str | None = None

    @classmethod
    def market(cls, symbol: str, side: str, qty: Decimal | str | int, *, reduce_only: bool = False) -> OrderIntent:
        return cls(symbol, side, Decimal(str(qty)), "Market", None, reduce_only)

    @classmethod
    def limit(cls, symbol: str, side: str, qty: Decimal | str | int, price: Decimal | str | int,
              *, reduce_only: bool = False, time_in_force: str = "GTC") -> OrderIntent:
        return cls(symbol, side, Decimal(str(qty)), "Limit", Decimal(str(price)), reduce_only,
                   time_in_force=time_in_force)

    @classmethod
    def close(cls, position: Position) -> OrderIntent:
        """A reduce-only market order that flattens `position`."""
        side = "Sell" if position.side == "Buy" else "Buy"
        return cls(position.symbol, side, position.size, "Market", None, True)


def validate(intent: Any, symbols: tuple[str, ...] | frozenset[str]) -> OrderIntent:
    """Check one returned intent against the contract; return a normalised copy or raise InvalidIntent."""
    if not isinstance(intent, OrderIntent):
        raise InvalidIntent(f"expected an OrderIntent, got {type(intent).__name__}")
    if intent.symbol not in symbols:
        raise InvalidIntent(f"symbol {intent.symbol!r} is not configured (HEAN_SYMBOLS)")
    if intent.side not in SIDES:
        raise InvalidIntent(f"side {intent.side!r} is not Buy or Sell")
    if intent.order_type not in ORDER_TYPES:
        raise InvalidIntent(f"order_type {intent.order_type!r} is not Market or Limit")
    qty = to_decimal(intent.qty, "qty")
    if qty <= ZERO:
        raise InvalidIntent(f"qty must be > 0, got {qty}")
    price = None if intent.price is None else to_decimal(intent.price, "price")
    if intent.order_type == "Limit" and (price is None or price <= ZERO):
        raise InvalidIntent("a Limit order needs a price > 0")
    if intent.order_type == "Market" and price is not None:
        raise InvalidIntent("a Market order must not carry a price")
    tp = None if intent.take_profit is None else to_decimal(intent.take_profit, "take_profit")
    sl = None if intent.stop_loss is None else to_decimal(intent.stop_loss, "stop_loss")
    for name, value in (("take_profit", tp), ("stop_loss", sl)):
        if value is not None and value <= ZERO:
            raise InvalidIntent(f"{name} must be > 0")
    if not isinstance(intent.reduce_only, bool):
        raise InvalidIntent("reduce_only must be a bool")
    if intent.time_in_force is not None and intent.time_in_force not in TIME_IN_FORCE:
        raise InvalidIntent(f"time_in_force {intent.time_in_force!r} is not one of {', '.join(TIME_IN_FORCE)}")
    return OrderIntent(intent.symbol, intent.side, qty, intent.order_type, price, intent.reduce_only, tp, sl,
                       intent.time_in_force)


@dataclass(frozen=True)
class Tick:
    """Market data. `price` is the last/trade price, or the mid for a book tick."""

    symbol: str
    kind: str                       # "ticker" | "trade" | "book"
    price: Decimal | None
    bid: Decimal | None = None
    ask: Decimal | None = None
    qty: Decimal | None = None      # trade size (trade ticks)
    exchange_ts_ms: int | None = None
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Fill:
    """One execution of one of this strategy's orders (from the reconciler, exactly once per exec_id)."""

    exec_id: str
    intent_id: str | None
    order_link_id: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    time_ms: int
    is_maker: bool


@dataclass(frozen=True)
class Position:
    """The exchange's view of one symbol's position; `size` is positive, direction in `side`."""

    symbol: str
    side: str                       # "Buy" | "Sell" | "" (flat)
    size: Decimal = ZERO
    avg_price: Decimal | None = None
    unrealised_pnl: Decimal | None = None
    created_time_ms: int | None = None
    foreign: bool = False

    @property
    def is_flat(self) -> bool:
        return self.size == ZERO or self.side == ""

    @property
    def signed_size(self) -> Decimal:
        return -self.size if self.side == "Sell" else (ZERO if self.is_flat else self.size)


@dataclass(frozen=True)
class RiskView:
    """The risk governor's state; the executor enforces it, strategies may use it to stay quiet."""

    state: str                      # NORMAL | SOFT_BRAKE | QUARANTINE | HARD_STOP
    drawdown_pct: float = 0.0
    equity: Decimal | None = None

    @property
    def allows_new_risk(self) -> bool:
        return self.state in ("NORMAL", "SOFT_BRAKE")


@dataclass(frozen=True)
class OrderEvent:
    """What happened to one of this strategy's intents: executor outcome or reconciler order update."""

    type: str                       # ORDER_PLACED, ORDER_REJECTED, ORDER_BLOCKED_*, ORDER_CANCELLED, ORDER_UPDATE
    intent_id: str | None
    symbol: str
    reason: str | None
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class Context:
    """What a strategy may read: positions, risk, last prices, its own pending intents, the clock."""

    def __init__(self, symbols: tuple[str, ...]) -> None:
        self.symbols = symbols
        self.positions: dict[str, Position] = {}
        self.risk: RiskView | None = None
        self.last_price: dict[str, Decimal] = {}
        self.now: float = 0.0               # unix seconds of the event being handled
        self._pending: dict[str, int] = {}  # symbol -> intents awaiting an outcome

    def position(self, symbol: str) -> Position:
        return self.positions.get(symbol) or Position(symbol, "")

    def pending(self, symbol: str) -> int:
        """How many of this strategy's intents on `symbol` still wait for the executor's answer."""
        return self._pending.get(symbol, 0)

    def _add_pending(self, symbol: str, delta: int) -> None:
        self._pending[symbol] = max(0, self._pending.get(symbol, 0) + delta)


class Strategy:
    """Base class of user strategies. Override the hooks you need; all have safe defaults."""

    strategy_id: str = ""

    def __init__(self) -> None:
        self.ctx: Context = Context(())

    def configure(self, params: dict[str, str]) -> None:
        """Apply `?key=value` parameters from the dotted path, converting to each attribute's type."""
        for key, raw in params.items():
            if key == "id":
                self.strategy_id = raw
                continue
            if key.startswith("_") or not hasattr(type(self), key) or callable(getattr(type(self), key)):
                raise ValueError(f"unknown parameter {key!r} for {type(self).__name__}")
            current = getattr(type(self), key)
            try:
                value: Any = (raw.lower() in ("1", "true", "yes") if isinstance(current, bool)
                              else type(current)(raw) if current is not None else raw)
            except (ValueError, InvalidOperation):
                raise ValueError(f"parameter {key}={raw!r} is not a valid {type(current).__name__}") from None
            setattr(self, key, value)

    def on_start(self) -> None:
        """Called once, after `ctx` is set and before the first event."""

    def on_tick(self, tick: Tick) -> list[OrderIntent]:
        return []

    def on_timer(self, now: float) -> list[OrderIntent]:
        """Called about once a second with the unix time; return intents like `on_tick`."""
        return []

    def on_fill(self, fill: Fill) -> None:
        """One of this strategy's orders filled (partially or fully)."""

    def on_position(self, position: Position) -> None:
        """A position changed (any symbol, whoever traded it)."""

    def on_risk(self, risk: RiskView) -> None:
        """The risk state was heard (about once a second, and on every transition)."""

    def on_order_event(self, event: OrderEvent) -> None:
        """The executor's outcome or a reconciler update for one of this strategy's intents."""
