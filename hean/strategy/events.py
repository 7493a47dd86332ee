"""Bus event data <-> strategy API dataclasses (pure; tolerant of missing fields, never of floats out)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from hean.strategy.api import Fill, OrderEvent, OrderIntent, Position, RiskView, Tick, opt_decimal

ZERO = Decimal(0)


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def intent_data(intent_id: str, strategy_id: str, intent: OrderIntent) -> dict[str, Any]:
    """The ORDER_INTENT payload of the contract; money and qty as Decimal strings."""
    return {
        "intent_id": intent_id, "strategy_id": strategy_id, "symbol": intent.symbol, "side": intent.side,
        "qty": _s(intent.qty), "order_type": intent.order_type, "price": _s(intent.price),
        "reduce_only": intent.reduce_only, "take_profit": _s(intent.take_profit),
        "stop_loss": _s(intent.stop_loss), "time_in_force": intent.time_in_force,
        "created_ns": time.time_ns(),
    }


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_tick(topic: str, data: dict[str, Any]) -> Tick | None:
    parts = topic.split(".")
    if len(parts) != 3:
        return None
    kind, symbol = parts[1], str(data.get("symbol") or parts[2])
    bid, ask = opt_decimal(data, "bid"), opt_decimal(data, "ask")
    if kind == "ticker":
        price = opt_decimal(data, "last_price")
    elif kind == "trade":
        price = opt_decimal(data, "price")
    elif kind == "book":
        price = (bid + ask) / 2 if bid is not None and ask is not None else None
    else:
        return None
    return Tick(symbol, kind, price, bid, ask, opt_decimal(data, "qty"), _int(data.get("exchange_ts_ms")), data)


def parse_fill(data: dict[str, Any]) -> Fill | None:
    qty, price = opt_decimal(data, "exec_qty"), opt_decimal(data, "exec_price")
    if qty is None or price is None:
        return None
    return Fill(str(data.get("exec_id", "")), data.get("intent_id"), str(data.get("order_link_id", "")),
                str(data.get("symbol", "")), str(data.get("side", "")), qty, price,
                opt_decimal(data, "exec_fee") or ZERO, _int(data.get("exec_time_ms")) or 0,
                bool(data.get("is_maker", False)))


def parse_position(data: dict[str, Any]) -> Position | None:
    symbol = data.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        return None
    size = opt_decimal(data, "size") or ZERO
    side = str(data.get("side") or "")
    return Position(symbol, side if size != ZERO else "", size, opt_decimal(data, "avg_price"),
                    opt_decimal(data, "unrealised_pnl"), _int(data.get("created_time_ms")),
                    bool(data.get("foreign", False)))


def parse_risk(data: dict[str, Any]) -> RiskView | None:
    state = data.get("state")
    if not isinstance(state, str):
        return None
    try:
        drawdown = float(data.get("drawdown_pct") or 0.0)
    except (TypeError, ValueError):
        drawdown = 0.0
    return RiskView(state, drawdown, opt_decimal(data, "equity"))


def parse_order_event(type_: str, data: dict[str, Any]) -> OrderEvent:
    reason = data.get("reason")
    return OrderEvent(type_, data.get("intent_id"), str(data.get("symbol", "")),
                      None if reason is None else str(reason), data)
