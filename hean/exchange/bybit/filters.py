"""Instrument filters and Decimal rounding — pure.

Quantities are always rounded down (never send more size than the caller asked for);
prices are rounded away from the aggressive side (a Buy never pays more, a Sell never
receives less, than the caller's limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any


def _dec(value: Any, field: str) -> Decimal:
    if isinstance(value, float):
        raise TypeError(f"{field}: float given; instrument fields must be strings/Decimal")
    try:
        result = Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation as exc:
        raise ValueError(f"{field}: not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"{field}: not finite: {value!r}")
    return result


@dataclass(frozen=True)
class InstrumentFilter:
    """The parts of a Bybit linear instrument that constrain an order."""

    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    max_mkt_qty: Decimal
    min_notional: Decimal

    @classmethod
    def from_bybit(cls, row: dict[str, Any]) -> "InstrumentFilter":
        """Build from one `instruments-info` list row (SPEC §2.9)."""
        price_filter = row.get("priceFilter") or {}
        lot = row.get("lotSizeFilter") or {}
        max_qty = _dec(lot.get("maxOrderQty"), "maxOrderQty")
        result = cls(
            symbol=str(row["symbol"]),
            tick_size=_dec(price_filter.get("tickSize"), "tickSize"),
            qty_step=_dec(lot.get("qtyStep"), "qtyStep"),
            min_qty=_dec(lot.get("minOrderQty"), "minOrderQty"),
            max_qty=max_qty,
            max_mkt_qty=_dec(lot.get("maxMktOrderQty") or max_qty, "maxMktOrderQty"),
            min_notional=_dec(lot.get("minNotionalValue"), "minNotionalValue"),
        )
        if result.tick_size <= 0 or result.qty_step <= 0:
            raise ValueError(f"{result.symbol}: tickSize and qtyStep must be positive")
        return result


def _require_decimal(value: Decimal, name: str) -> None:
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be Decimal, got {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{name} must be finite, got {value}")


def round_qty(qty: Decimal, f: InstrumentFilter) -> Decimal:
    """Round down to a multiple of qty_step (never rounds size up)."""
    _require_decimal(qty, "qty")
    steps = (qty / f.qty_step).to_integral_value(rounding=ROUND_FLOOR)
    return (steps * f.qty_step).quantize(f.qty_step)


def round_price(price: Decimal, f: InstrumentFilter, side: str) -> Decimal:
    """Round to tick_size: Buy rounds down, Sell rounds up (never worse than asked)."""
    _require_decimal(price, "price")
    if side == "Buy":
        rounding = ROUND_FLOOR
    elif side == "Sell":
        rounding = ROUND_CEILING
    else:
        raise ValueError(f"side must be 'Buy' or 'Sell', got {side!r}")
    ticks = (price / f.tick_size).to_integral_value(rounding=rounding)
    return (ticks * f.tick_size).quantize(f.tick_size)


def decimal_str(d: Decimal) -> str:
    """Plain decimal notation without exponent or trailing zeros; rejects floats."""
    if not isinstance(d, Decimal):
        raise TypeError(f"expected Decimal, got {type(d).__name__}")
    if not d.is_finite():
        raise ValueError(f"not a finite decimal: {d}")
    if d == 0:
        return "0"
    text = format(d.normalize(), "f")
    return text
