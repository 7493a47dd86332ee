"""The executor's outcome events: one shape for what is published and what the journal stores."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hean import topics
from hean.exchange.bybit import decimal_str

T = topics.EventType
# ORDER_BLOCKED_RISK reason: the intent passed the gate when admitted, but not any more when its
# request was about to leave (after the rate-limiter wait, or before an internal retry); never sent.
RISK_CHANGED = "risk_changed"


def echo(value: Any) -> Any:
    """Echo a raw intent field into an event: JSON-safe, floats and odd types turned to text."""
    if value is None or isinstance(value, (bool, str)):
        return value if not isinstance(value, str) else value[:64]
    return str(value)[:64]


def outcome(topic: str, type_: T, raw: dict[str, Any], *, qty: Decimal | None, link: str | None,
            risk_state: str | None, order_id: str | None = None, reason: str | None = None,
            ret_code: int | None = None, ret_msg: str | None = None) -> dict[str, Any]:
    """An outcome event (topic, type, data) as published and as stored in the journal.

    risk_state: for ORDER_PLACED the state in force when the request left; otherwise the
    state the decision was taken under.
    """
    data = {k: echo(raw.get(k)) for k in ("intent_id", "strategy_id", "symbol", "side", "order_type", "price")}
    data.update(qty=decimal_str(qty) if qty is not None else echo(raw.get("qty")),
                reduce_only=raw.get("reduce_only") is True, order_link_id=link, order_id=order_id,
                reason=reason, ret_code=ret_code, ret_msg=ret_msg, risk_state=risk_state)
    return {"topic": topic, "type": type_.value, "data": data}


def found_order_outcome(found: dict[str, Any], raw: dict[str, Any], link: str,
                        risk_state: str | None) -> tuple[bool, dict[str, Any]]:
    """(placed?, event) for an order found on the exchange by its orderLinkId.

    Finding it proves the request arrived, not that it was accepted: an order the exchange
    `Rejected` without any fill is a rejection (a `Cancelled` one was placed, then cancelled).
    """
    try:
        qty = Decimal(str(found.get("qty") or "0")) or None
        filled = Decimal(str(found.get("cumExecQty") or "0"))
    except ArithmeticError:
        qty, filled = None, Decimal(0)
    if found.get("orderStatus") == "Rejected" and filled == 0:
        return False, outcome(topics.order("rejected"), T.ORDER_REJECTED, raw, qty=qty, link=link,
                              risk_state=risk_state, order_id=found.get("orderId"), reason="exchange_rejected",
                              ret_msg=echo(found.get("rejectReason")) or None)
    return True, outcome(topics.order("placed"), T.ORDER_PLACED, raw, qty=qty, link=link, risk_state=risk_state,
                         order_id=found.get("orderId"))
