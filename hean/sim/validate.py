"""Parameter validation for order entry and queries (retCode 10001 rules).

Pure functions over the parsed JSON body / query dict; nothing here touches state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from hean.sim.envelope import SimError, param_error
from hean.sim.instruments import Instrument

LINK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
MAX_DECIMAL_DIGITS = 30


@dataclass(frozen=True)
class OrderRequest:
    """A create-order request that passed every syntactic and filter check."""

    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None
    time_in_force: str
    order_link_id: str
    reduce_only: bool
    close_on_trigger: bool
    slippage_type: str = ""           # market orders: "TickSize" | "Percent" | "" (venue default)
    slippage: Decimal | None = None


def require_category(params: dict[str, Any]) -> None:
    """Only ``linear`` is modelled; anything else is a parameter error."""
    category = params.get("category")
    if category is None or category == "":
        raise param_error("params error: category is required")
    if category != "linear":
        raise param_error(f"params error: category[{category}] is not supported")


def as_str(params: dict[str, Any], name: str, *, required: bool = False) -> str:
    """Fetch a string field, rejecting other JSON types."""
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise param_error(f"params error: {name} is required")
        return ""
    if not isinstance(value, str):
        raise param_error(f"params error: {name} must be a string")
    return value


def as_decimal(params: dict[str, Any], name: str, *, required: bool = False) -> Decimal | None:
    """Parse a positive finite decimal given as string (or JSON number, as pybit may send)."""
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise param_error(f"params error: {name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise param_error(f"params error: {name} invalid")
    text = str(value)
    if len(text) > MAX_DECIMAL_DIGITS:
        raise param_error(f"params error: {name} invalid")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise param_error(f"params error: {name} invalid") from None
    if not number.is_finite() or number < 0:
        raise param_error(f"params error: {name} invalid")
    return number


def as_bool(params: dict[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise param_error(f"params error: {name} must be a boolean")
    return value


def as_int(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    """Parse an int query/body field within [low, high]."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise param_error(f"params error: {name} invalid")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise param_error(f"params error: {name} invalid") from None
    if not low <= number <= high:
        raise param_error(f"params error: {name} out of range [{low}, {high}]")
    return number


def parse_order(params: dict[str, Any], instruments: dict[str, Instrument]) -> OrderRequest:
    """Validate a create-order body against SPEC §2.1 and the instrument filters."""
    require_category(params)
    symbol = as_str(params, "symbol", required=True)
    if symbol not in instruments:
        raise param_error(f"params error: symbol invalid: {symbol}")
    inst = instruments[symbol]
    side = as_str(params, "side", required=True)
    if side not in ("Buy", "Sell"):
        raise param_error(f"params error: side invalid: {side}")
    order_type = as_str(params, "orderType", required=True)
    if order_type not in ("Market", "Limit"):
        raise param_error(f"params error: orderType invalid: {order_type}")
    qty = as_decimal(params, "qty", required=True)
    assert qty is not None
    tif = as_str(params, "timeInForce") or "GTC"
    if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
        raise param_error(f"params error: timeInForce invalid: {tif}")
    if order_type == "Market":
        tif = "IOC"
    price = as_decimal(params, "price", required=order_type == "Limit")
    if order_type == "Market":
        price = None
    link_id = as_str(params, "orderLinkId")
    if link_id and not LINK_ID_RE.match(link_id):
        raise param_error("params error: orderLinkId is invalid (max 36 chars of [A-Za-z0-9_-])")
    position_idx = params.get("positionIdx", 0)
    if position_idx not in (0, "0") or isinstance(position_idx, bool):
        raise param_error("params error: position idx not match position mode")
    reduce_only = as_bool(params, "reduceOnly")
    close_on_trigger = as_bool(params, "closeOnTrigger")
    check_filters(inst, qty, price)
    if order_type == "Market" and qty > inst.max_mkt_qty:
        # Live wording (pybit #244, #284): qty and limit scaled by 1e8, retCode 10001.
        raise param_error("The number of contracts exceeds maximum limit allowed: too large, "
                          f"order_qty:{int(qty * 10**8)} > max_qty:{int(inst.max_mkt_qty * 10**8)}")
    slippage_type, slippage = _slippage(params, order_type)
    return OrderRequest(symbol, side, order_type, qty, price, tif, link_id, reduce_only, close_on_trigger,
                        slippage_type, slippage)


def _slippage(params: dict[str, Any], order_type: str) -> tuple[str, Decimal | None]:
    """slippageToleranceType/slippageTolerance (create-order.mdx): TickSize 1..10000 int, Percent 0.01..10."""
    kind = as_str(params, "slippageToleranceType")
    value = as_decimal(params, "slippageTolerance")
    if not kind and value is None:
        return "", None
    if order_type != "Market" or kind not in ("TickSize", "Percent") or value is None:
        raise param_error("params error: slippageToleranceType/slippageTolerance invalid")
    ok = (value == value.to_integral_value() and 1 <= value <= 10_000) if kind == "TickSize" \
        else (Decimal("0.01") <= value <= 10 and value == value.quantize(Decimal("0.01")))
    if not ok:   # error.mdx: 110108 / 110109
        raise SimError(110108, "Allowable range: 1 to 10000 tick size") if kind == "TickSize" \
            else SimError(110109, "Allowable range: 0.01% to 10%")
    return kind, value


def check_filters(inst: Instrument, qty: Decimal, price: Decimal | None) -> None:
    """lotSizeFilter / priceFilter rules; we answer 10001 for all of them (documented choice)."""
    if qty <= 0 or qty < inst.min_qty:
        raise param_error(f"params error: qty {qty} below minOrderQty {inst.min_qty}")
    if qty > inst.max_qty:
        raise param_error(f"params error: qty {qty} above maxOrderQty {inst.max_qty}")
    if not inst.on_step(qty):
        raise param_error(f"params error: qty {qty} is not a multiple of qtyStep {inst.qty_step}")
    if price is not None:
        if price <= 0 or price > inst.tick_size * 19_999_999:
            raise param_error(f"params error: price {price} out of range")
        if not inst.on_tick(price):
            raise param_error(f"params error: price {price} is not a multiple of tickSize {inst.tick_size}")
