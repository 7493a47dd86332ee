"""Pure executor logic: intent validation, risk gating and the seed's fingerprint guard.

No I/O and no asyncio, so every rule here is unit-tested directly. The service shell
feeds it the current risk view and the instrument filters and acts on the decisions.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from hean.exchange.bybit.filters import InstrumentFilter, decimal_str, round_price, round_qty
from hean.ids import valid_intent_id

log = logging.getLogger("hean.executor")

SIDES = ("Buy", "Sell")
ORDER_TYPES = ("Market", "Limit")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "PostOnly")
REQUIRED = ("intent_id", "strategy_id", "symbol", "side", "qty", "order_type")
# States that let only reduce-only orders out. Anything unrecognised fails closed too.
REDUCE_ONLY_STATES = ("QUARANTINE", "HARD_STOP")
KNOWN_STATES = ("NORMAL", "SOFT_BRAKE", *REDUCE_ONLY_STATES)


class InvalidIntent(ValueError):
    """An intent the executor refuses to act on; the message is the event's `reason` detail."""


@dataclass(frozen=True)
class Intent:
    """A validated order intent; qty/price already rounded to the instrument's steps."""

    intent_id: str
    strategy_id: str
    symbol: str
    side: str
    qty: Decimal
    order_type: str
    price: Decimal | None
    reduce_only: bool
    take_profit: Decimal | None
    stop_loss: Decimal | None
    time_in_force: str | None


def _decimal(data: dict[str, Any], name: str, *, required: bool) -> Decimal | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidIntent(f"missing field {name}")
        return None
    # Floats are refused outright: money crosses the bus as Decimal strings only.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidIntent(f"{name} is not finite")
        raise InvalidIntent(f"{name} must be a decimal string, got {type(value).__name__}")
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidIntent(f"{name} is not a number: {str(value)[:32]!r}") from None
    if not result.is_finite():
        raise InvalidIntent(f"{name} is not finite")
    if result <= 0:
        raise InvalidIntent(f"{name} must be > 0")
    return result


def _choice(data: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = data.get(name)
    if value is None:
        raise InvalidIntent(f"missing field {name}")
    if value not in allowed:
        raise InvalidIntent(f"{name} must be one of {'/'.join(allowed)}, got {str(value)[:32]!r}")
    return str(value)


def parse_intent(data: Any, instruments: dict[str, InstrumentFilter]) -> Intent:
    """Validate an ORDER_INTENT payload and round it to the instrument; raise InvalidIntent."""
    if not isinstance(data, dict):
        raise InvalidIntent("intent data is not an object")
    for name in REQUIRED:
        if data.get(name) in (None, ""):
            raise InvalidIntent(f"missing field {name}")
    intent_id = data["intent_id"]
    if not valid_intent_id(intent_id):
        raise InvalidIntent("intent_id must be [A-Za-z0-9_-]")
    symbol = data["symbol"]
    filt = instruments.get(symbol) if isinstance(symbol, str) else None
    if filt is None:
        raise InvalidIntent(f"unknown symbol {str(symbol)[:32]!r}")
    side = _choice(data, "side", SIDES)
    order_type = _choice(data, "order_type", ORDER_TYPES)
    raw_qty = _decimal(data, "qty", required=True)
    assert raw_qty is not None
    price = _decimal(data, "price", required=False)
    if order_type == "Market" and price is not None:
        raise InvalidIntent("price given on a Market order")
    if order_type == "Limit" and price is None:
        raise InvalidIntent("Limit order without price")
    reduce_only = data.get("reduce_only", False)
    if not isinstance(reduce_only, bool):
        raise InvalidIntent("reduce_only must be a boolean")
    tif = data.get("time_in_force")
    if tif is not None and tif not in TIME_IN_FORCE:
        raise InvalidIntent(f"time_in_force must be one of {'/'.join(TIME_IN_FORCE)}")
    qty = round_qty(raw_qty, filt)
    if qty <= 0 or qty < filt.min_qty:
        raise InvalidIntent(f"qty {decimal_str(raw_qty)} below minOrderQty {decimal_str(filt.min_qty)}")
    max_qty = filt.max_mkt_qty if order_type == "Market" else filt.max_qty
    if max_qty > 0 and qty > max_qty:
        raise InvalidIntent(f"qty {decimal_str(qty)} above max {decimal_str(max_qty)}")
    return Intent(
        intent_id=intent_id, strategy_id=str(data["strategy_id"]), symbol=symbol, side=side, qty=qty,
        order_type=order_type, price=None if price is None else round_price(price, filt, side),
        reduce_only=reduce_only, take_profit=_decimal(data, "take_profit", required=False),
        stop_loss=_decimal(data, "stop_loss", required=False), time_in_force=tif)


@dataclass(frozen=True)
class RiskView:
    """What the executor currently knows about risk and reconciliation."""

    state: str | None          # last RISK_STATE heard (None: never)
    stale: bool                # nothing heard for executor.risk_stale_s
    reconciling: bool          # reconciler says it is catching up after a gap
    unresolved_symbols: frozenset[str] = frozenset()  # symbols with an order of unknown outcome

    @property
    def effective(self) -> str:
        """The state the executor acts on: no fresh state (or an unknown one) is HARD_STOP."""
        if self.stale or self.state not in KNOWN_STATES:
            return "HARD_STOP"
        return str(self.state)


@dataclass(frozen=True)
class GateDecision:
    """allowed -> send `qty`; otherwise `reason` goes into ORDER_BLOCKED_RISK."""

    allowed: bool
    qty: Decimal
    reason: str | None = None


def risk_gate(intent: Intent, view: RiskView, soft_brake_factor: Decimal, filt: InstrumentFilter) -> GateDecision:
    """Decide whether (and at what size) an intent may go out under the current risk view.

    Reduce-only orders only ever shrink exposure, so they pass in every state. Orders that
    may open exposure need a fresh, known, permissive state, no reconciliation in progress
    and no order of unknown outcome on the same symbol (it counts at full size until resolved).
    """
    if intent.reduce_only:
        return GateDecision(True, intent.qty)
    if view.stale:
        return GateDecision(False, intent.qty, "risk_stale")
    if view.state not in KNOWN_STATES:
        return GateDecision(False, intent.qty, "unknown_risk_state")
    if view.state in REDUCE_ONLY_STATES:
        return GateDecision(False, intent.qty, str(view.state))
    if view.reconciling:
        return GateDecision(False, intent.qty, "reconciling")
    if intent.symbol in view.unresolved_symbols:
        return GateDecision(False, intent.qty, "unresolved_exposure")
    if view.state == "SOFT_BRAKE":
        qty = round_qty(intent.qty * soft_brake_factor, filt)
        if qty <= 0 or qty < filt.min_qty:
            return GateDecision(False, intent.qty, "SOFT_BRAKE")
        return GateDecision(True, qty)
    return GateDecision(True, intent.qty)


def withdraw_reason(intent: Intent, sending_qty: Decimal, view: RiskView, soft_brake_factor: Decimal,
                    filt: InstrumentFilter) -> str | None:
    """The gate again, as an admitted order is about to leave: None if it may go at `sending_qty`.

    It must still pass and allow at least the size being sent: a SOFT_BRAKE heard meanwhile
    withdraws a full-size order (never resized in flight: the journal and the fingerprint are
    for that size), while a NORMAL heard meanwhile lets a braked order go as it is.
    """
    decision = risk_gate(intent, view, soft_brake_factor, filt)
    if decision.allowed and decision.qty >= sending_qty:
        return None
    return decision.reason or f"size {decimal_str(decision.qty)} < {decimal_str(sending_qty)}"


def fingerprint(symbol: str, side: str, qty: Decimal, price: Decimal | None) -> str:
    """The seed's key: symbol + side + size + price (Decimal text, so no float noise)."""
    price_key = decimal_str(price) if price is not None else "market"
    return f"{symbol}_{side}_{decimal_str(qty)}_{price_key}"


class DuplicateOrderError(ValueError):
    """The seed's guard fired: an identical order went out inside the window."""

    def __init__(self, age_s: float) -> None:
        self.age_s = age_s
        super().__init__(
            f"Duplicate order detected: identical order placed {age_s:.2f}s ago. "
            "This may be a network retry or double submission. Order rejected for safety.")


class FingerprintGuard:
    """Second line behind the journal: blocks identical orders from *different* intents.

    The fingerprint is recorded when the request is sent, not on success: a timeout
    followed by a retry under a new intent id must be blocked too (the seed missed that).
    """

    def __init__(self, window_s: float, cleanup_interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.cleanup_interval_s = cleanup_interval_s
        self._clock = clock
        self._recent: dict[str, float] = {}
        self._last_cleanup = clock()

    def __len__(self) -> int:
        return len(self._recent)

    def check(self, key: str) -> None:
        """Raise DuplicateOrderError if `key` was sent less than `window_s` ago."""
        now = self._clock()
        if now - self._last_cleanup > self.cleanup_interval_s:
            self.cleanup(now)
        sent_at = self._recent.get(key)
        if sent_at is None:
            return
        age = now - sent_at
        if age < self.window_s:
            log.error(f"DUPLICATE ORDER BLOCKED: {key} was placed {age:.2f}s ago "
                      f"(window: {self.window_s}s). Idempotency violation prevented.",
                      extra={"fingerprint": key, "age_s": round(age, 3), "window_s": self.window_s})
            raise DuplicateOrderError(age)

    def record(self, key: str) -> None:
        self._recent[key] = self._clock()

    def forget(self, key: str) -> None:
        """The order recorded under `key` was withdrawn before it was sent: it blocks nothing."""
        self._recent.pop(key, None)

    def cleanup(self, now: float | None = None) -> int:
        """Forget fingerprints older than the window plus a minute (the seed's margin)."""
        now = self._clock() if now is None else now
        cutoff = now - self.window_s - 60.0
        before = len(self._recent)
        self._recent = {k: t for k, t in self._recent.items() if t > cutoff}
        self._last_cleanup = now
        return before - len(self._recent)
