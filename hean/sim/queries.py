"""Read-side queries: order realtime/history, execution list, cursors, 7-day windows.

Cursors are opaque URL-safe tokens encoding the sort key of the last row served,
so rows created between pages never shift or duplicate a page.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Container, Sequence
from typing import Any, TypeVar

from hean.sim.envelope import param_error
from hean.sim.models import Execution, Order
from hean.sim.validate import as_int, as_str

WEEK_MS = 7 * 24 * 3600 * 1000
DAY_MS = 24 * 3600 * 1000
T = TypeVar("T")


def encode_cursor(key: tuple[int, int]) -> str:
    raw = f"{key[0]}:{key[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        first, second = raw.split(":")
        return int(first), int(second)
    except (ValueError, UnicodeDecodeError):
        raise param_error("params error: cursor invalid") from None


def paginate(rows: Sequence[T], key: Callable[[T], tuple[int, int]], params: dict[str, Any],
             default: int, maximum: int) -> tuple[list[T], str]:
    """Newest-first page after ``cursor``; returns (page, nextPageCursor or "")."""
    limit = as_int(params, "limit", default, 1, maximum)
    ordered = sorted(rows, key=key, reverse=True)
    cursor = as_str(params, "cursor")
    if cursor:
        after = decode_cursor(cursor)
        ordered = [r for r in ordered if key(r) < after]
    page = ordered[:limit]
    more = len(ordered) > limit
    return page, encode_cursor(key(page[-1])) if more else ""


def time_window(params: dict[str, Any], now_ms: int) -> tuple[int, int]:
    """Bybit's 7-day rule: default last 7 days; one bound implies the other; span <= 7 days."""
    start = as_int(params, "startTime", -1, 0, 2**62)
    end = as_int(params, "endTime", -1, 0, 2**62)
    if start < 0 and end < 0:
        return now_ms - WEEK_MS, now_ms
    if start >= 0 and end < 0:
        return start, start + WEEK_MS
    if end >= 0 and start < 0:
        return end - WEEK_MS, end
    if end < start:
        raise param_error("params error: endTime must be greater than startTime")
    if end - start > WEEK_MS:
        raise param_error("params error: The time range between startTime and endTime cannot exceed 7 days")
    return start, end


def order_key(order: Order) -> tuple[int, int]:
    return order.created_ms, order.ordinal


def exec_key(execution: Execution) -> tuple[int, int]:
    return execution.exec_time_ms, execution.ordinal


def select_orders(orders: Sequence[Order], params: dict[str, Any], *, history: bool, now_ms: int,
                  realtime_closed: Container[str] = ()) -> list[Order]:
    """Apply the realtime/history filters of SPEC §2.4-2.5 (orderId > orderLinkId > symbol).

    Realtime sees a closed order only while it is in ``realtime_closed`` (the 500 most recent,
    emptied by a service restart), also when asked by id: open-order.mdx.
    """
    order_id, link_id = as_str(params, "orderId"), as_str(params, "orderLinkId")
    symbol, base = as_str(params, "symbol"), as_str(params, "baseCoin")
    settle = as_str(params, "settleCoin")
    if not history and not (symbol or base or settle or order_id or link_id):
        raise param_error("params error: symbol, baseCoin or settleCoin is required")
    if not history:
        orders = [o for o in orders if o.is_open or o.order_id in realtime_closed]
    if order_id:
        return [o for o in orders if o.order_id == order_id]
    if link_id:
        return [o for o in orders if o.order_link_id == link_id]
    selected = [o for o in orders if _matches(o.symbol, symbol, base, settle)]
    if history:
        start, end = time_window(params, now_ms)
        status = as_str(params, "orderStatus")
        selected = [o for o in selected if start <= o.created_ms <= end and (not status or o.status == status)
                    and _visible(o, now_ms)]
        return selected
    open_only = as_int(params, "openOnly", 0, 0, 2)
    if open_only == 0:
        return [o for o in selected if o.is_open]
    return sorted((o for o in selected if not o.is_open), key=order_key, reverse=True)[:500]


def _visible(order: Order, now_ms: int) -> bool:
    """Cancelled/Rejected orders without fills leave history after 24 h."""
    if order.status in ("Cancelled", "Rejected", "Deactivated") and not order.cum_qty:
        return now_ms - order.updated_ms <= DAY_MS
    return True


def _matches(symbol: str, want_symbol: str, base: str, settle: str) -> bool:
    if want_symbol:
        return symbol == want_symbol
    if base:
        return symbol.startswith(base) and symbol.endswith("USDT")
    if settle:
        return settle == "USDT"
    return True


def select_executions(executions: Sequence[Execution], params: dict[str, Any], now_ms: int
                      ) -> list[Execution]:
    """Execution-list filters (§2.6): orderId/orderLinkId override the rest; 7-day window applies."""
    start, end = time_window(params, now_ms)
    order_id, link_id = as_str(params, "orderId"), as_str(params, "orderLinkId")
    exec_type = as_str(params, "execType")
    symbol, base = as_str(params, "symbol"), as_str(params, "baseCoin")
    settle = as_str(params, "settleCoin")
    rows = [e for e in executions if start <= e.exec_time_ms <= end]
    if order_id:
        return [e for e in rows if e.order_id == order_id]
    if link_id:
        return [e for e in rows if e.order_link_id == link_id]
    return [e for e in rows if _matches(e.symbol, symbol, base, settle)
            and (not exec_type or e.exec_type == exec_type)]
