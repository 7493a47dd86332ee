"""Typed Bybit v5 endpoint methods (orders, executions, positions, wallet).

Kept apart from the transport in rest.py; BybitRestClient inherits these. Methods that
return plain data raise ExchangeUnavailable when the exchange could not answer, so a
caller never mistakes "unknown" for "empty".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hean.exchange.bybit import constants as c
from hean.exchange.bybit.errors import ExchangeUnavailable, Outcome, check_host_allowed
from hean.exchange.bybit.paging import time_windows, unique_executions
from hean.exchange.bybit.ratelimit import Priority

if TYPE_CHECKING:
    from hean.exchange.bybit.rest import RestResponse

_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_SIDES = ("Buy", "Sell")
_ORDER_TYPES = ("Market", "Limit")


def _require_decimal(name: str, value: Decimal | None, *, positive: bool = True) -> None:
    if value is None:
        return
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be Decimal, got {type(value).__name__}")
    if not value.is_finite() or (positive and value <= 0):
        raise ValueError(f"{name} must be a positive finite Decimal, got {value}")


class TradingEndpoints:
    """Endpoint methods built on `call` / `paged` (provided by BybitRestClient)."""

    _base: str
    _dry_run: bool
    _is_live: bool

    async def call(self, method: str, path: str, params: dict[str, Any], *, private: bool = True,
                   priority: Priority = Priority.QUERY,
                   before_send: Callable[[], str | None] | None = None) -> "RestResponse":
        raise NotImplementedError

    async def paged(self, path: str, params: dict[str, Any], *, private: bool = True) -> list[dict[str, Any]]:
        raise NotImplementedError

    def server_time_ms(self) -> int:
        raise NotImplementedError

    async def place_order(self, *, symbol: str, side: str, order_type: str, qty: Decimal,
                          price: Decimal | None, order_link_id: str, reduce_only: bool = False,
                          time_in_force: str | None = None, take_profit: Decimal | None = None,
                          stop_loss: Decimal | None = None,
                          priority: Priority = Priority.OPEN,
                          before_send: Callable[[], str | None] | None = None) -> "RestResponse":
        """POST order/create. Arguments are validated (ValueError/TypeError) before sending.

        qty/price are sent as given: round them first with filters.round_qty/round_price.
        A reduce-only order is never queued behind orders that open risk. `before_send`
        (see `BybitRestClient.call`) can withdraw the order when its rate-limit slot comes.
        """
        check_host_allowed(self._base, dry_run=self._dry_run, is_live=self._is_live)
        if side not in _SIDES:
            raise ValueError(f"side must be one of {_SIDES}, got {side!r}")
        if order_type not in _ORDER_TYPES:
            raise ValueError(f"order_type must be one of {_ORDER_TYPES}, got {order_type!r}")
        if not _LINK_ID.match(order_link_id):
            raise ValueError("order_link_id must be 1-36 chars of [A-Za-z0-9_-]")
        if qty is None:
            raise ValueError("qty is required")
        _require_decimal("qty", qty)
        _require_decimal("price", price)
        if order_type == "Limit" and price is None:
            raise ValueError("a Limit order needs a price")
        _require_decimal("take_profit", take_profit)
        _require_decimal("stop_loss", stop_loss)
        params: dict[str, Any] = {
            "category": c.CATEGORY, "symbol": symbol, "side": side, "orderType": order_type,
            "qty": qty, "orderLinkId": order_link_id, "positionIdx": 0,
        }
        if order_type == "Limit":
            params["price"] = price
        if time_in_force is not None:
            params["timeInForce"] = time_in_force
        if reduce_only:
            params["reduceOnly"] = True
        if take_profit is not None:
            params["takeProfit"] = take_profit
        if stop_loss is not None:
            params["stopLoss"] = stop_loss
        if reduce_only and priority is Priority.OPEN:
            priority = Priority.REDUCE
        return await self.call("POST", c.PATH_ORDER_CREATE, params, priority=priority, before_send=before_send)

    async def cancel_order(self, *, symbol: str, order_id: str | None = None,
                           order_link_id: str | None = None) -> "RestResponse":
        """POST order/cancel by orderId or orderLinkId (one is required)."""
        if not order_id and not order_link_id:
            raise ValueError("cancel_order needs order_id or order_link_id")
        params: dict[str, Any] = {"category": c.CATEGORY, "symbol": symbol}
        if order_id:
            params["orderId"] = order_id
        else:
            params["orderLinkId"] = order_link_id
        return await self.call("POST", c.PATH_ORDER_CANCEL, params, priority=Priority.CANCEL)

    async def cancel_all(self, *, symbol: str) -> "RestResponse":
        return await self.call("POST", c.PATH_ORDER_CANCEL_ALL, {"category": c.CATEGORY, "symbol": symbol},
                               priority=Priority.CANCEL)

    async def query_order(self, *, order_link_id: str | None = None,
                          order_id: str | None = None) -> dict[str, Any] | None:
        """The order as the exchange knows it, open or closed; None if it has no such order.

        Raises ExchangeUnavailable when either lookup fails, so "could not find out" is
        never confused with "does not exist".
        """
        if not order_id and not order_link_id:
            raise ValueError("query_order needs order_id or order_link_id")
        params: dict[str, Any] = {"category": c.CATEGORY, "settleCoin": c.SETTLE_COIN}
        if order_id:
            params["orderId"] = order_id
        else:
            params["orderLinkId"] = order_link_id
        for path in (c.PATH_ORDER_REALTIME, c.PATH_ORDER_HISTORY):
            resp = await self.call("GET", path, params)
            if resp.outcome is not Outcome.OK:
                raise ExchangeUnavailable(
                    f"{path}: {resp.outcome.value} retCode={resp.ret_code} {resp.error or resp.ret_msg}")
            for row in resp.result.get("list") or []:
                if (order_id and row.get("orderId") == order_id) or (
                        not order_id and row.get("orderLinkId") == order_link_id):
                    return dict(row)
        return None

    async def open_orders(self, *, symbol: str | None = None) -> list[dict[str, Any]]:
        """Every open order (all pages); all USDT-settled symbols when symbol is None."""
        params: dict[str, Any] = {"category": c.CATEGORY, "openOnly": 0, "limit": c.ORDER_PAGE_LIMIT}
        params.update({"symbol": symbol} if symbol else {"settleCoin": c.SETTLE_COIN})
        return await self.paged(c.PATH_ORDER_REALTIME, params)

    async def executions_since(self, start_ms: int, end_ms: int | None = None, *,
                               symbol: str | None = None) -> list[dict[str, Any]]:
        """All executions in [start_ms, end_ms] (default: now), each once, oldest first.

        Bybit caps a query at 7 days and 100 rows a page, so the range is split into
        windows and every window's cursor is followed to its end.
        """
        end = self.server_time_ms() if end_ms is None else end_ms
        rows: list[dict[str, Any]] = []
        for lo, hi in time_windows(start_ms, end):
            params: dict[str, Any] = {"category": c.CATEGORY, "startTime": lo, "endTime": hi,
                                      "limit": c.EXECUTION_PAGE_LIMIT, "symbol": symbol}
            rows.extend(await self.paged(c.PATH_EXECUTION_LIST, params))
        return unique_executions(rows)

    async def positions(self, *, symbol: str | None = None) -> list[dict[str, Any]]:
        """Non-zero positions (all pages); all USDT-settled symbols when symbol is None."""
        params: dict[str, Any] = {"category": c.CATEGORY, "limit": c.POSITION_PAGE_LIMIT}
        params.update({"symbol": symbol} if symbol else {"settleCoin": c.SETTLE_COIN})
        rows = await self.paged(c.PATH_POSITION_LIST, params)
        return [row for row in rows if Decimal(str(row.get("size") or "0")) != 0]

    async def wallet(self) -> dict[str, Any]:
        """The UNIFIED account summary (result.list[0]), including its `coin` list."""
        resp = await self.call("GET", c.PATH_WALLET_BALANCE, {"accountType": c.ACCOUNT_TYPE})
        rows = resp.result.get("list") or []
        if resp.outcome is not Outcome.OK or not rows:
            raise ExchangeUnavailable(
                f"wallet: {resp.outcome.value} retCode={resp.ret_code} {resp.error or resp.ret_msg}")
        return dict(rows[0])
