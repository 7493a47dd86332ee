"""Endpoint logic for /v5 (SPEC §2): params dict in, ``result`` object out, SimError on failure.

Kept free of aiohttp so the same code serves every transport and unit test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hean.sim import account, views
from hean.sim.envelope import fmt, param_error
from hean.sim.exchange import Exchange
from hean.sim.instruments import instrument_row
from hean.sim.queries import exec_key, order_key, paginate, select_executions, select_orders
from hean.sim.validate import as_int, as_str, parse_order, require_category

Handler = Callable[[Exchange, dict[str, Any], int], dict[str, Any]]


def market_time(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return {"timeSecond": str(now_ms // 1000), "timeNano": str(now_ms * 1_000_000)}


def instruments_info(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    require_category(params)
    symbol, base = as_str(params, "symbol"), as_str(params, "baseCoin")
    as_int(params, "limit", 500, 1, 1000)
    rows = [instrument_row(i) for s, i in ex.instruments.items()
            if (not symbol or s == symbol) and (not base or i.base_coin == base)]
    return {"category": "linear", "list": rows, "nextPageCursor": ""}


def ticker_row(ex: Exchange, symbol: str) -> dict[str, Any]:
    """A linear ticker (§2.11); 24h stats are synthetic but consistent."""
    last = ex.last(symbol)
    inst = ex.instruments[symbol]
    return {
        "symbol": symbol, "lastPrice": fmt(last), "indexPrice": fmt(last), "markPrice": fmt(last),
        "prevPrice24h": fmt(inst.default_price), "price24hPcnt": fmt(((last / inst.default_price) - 1)
                                                                      .quantize(inst.tick_size / 1000)),
        "highPrice24h": fmt(max(last, inst.default_price)), "lowPrice24h": fmt(min(last, inst.default_price)),
        "prevPrice1h": fmt(inst.default_price), "openInterest": "0", "openInterestValue": "0",
        "turnover24h": "0", "volume24h": "0", "fundingRate": "0.0001", "nextFundingTime": "0",
        "predictedDeliveryPrice": "", "basisRate": "", "deliveryFeeRate": "", "deliveryTime": "0",
        "bid1Price": fmt(ex.bid(symbol)), "bid1Size": fmt(ex.book.available(symbol, ex.bid(symbol))),
        "ask1Price": fmt(ex.ask(symbol)), "ask1Size": fmt(ex.book.available(symbol, ex.ask(symbol))),
        "basis": "", "preOpenPrice": "", "preQty": "", "curPreListingPhase": "",
        "fundingIntervalHour": "8", "fundingCap": "0.005",
    }


def tickers(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    require_category(params)
    symbol = as_str(params, "symbol")
    if symbol and symbol not in ex.instruments:
        raise param_error(f"params error: symbol invalid: {symbol}")
    return {"category": "linear", "list": [ticker_row(ex, s) for s in ex.instruments if not symbol or s == symbol]}


def _symbol(ex: Exchange, params: dict[str, Any]) -> str:
    symbol = as_str(params, "symbol", required=True)
    if symbol not in ex.instruments:
        raise param_error(f"params error: symbol invalid: {symbol}")
    return symbol


def order_create(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    order = ex.place_order(parse_order(params, ex.instruments))
    return {"orderId": order.order_id, "orderLinkId": order.order_link_id}


def order_cancel(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    require_category(params)
    symbol = _symbol(ex, params)
    order_id, link_id = as_str(params, "orderId"), as_str(params, "orderLinkId")
    if not order_id and not link_id:
        raise param_error("params error: orderId or orderLinkId is required")
    order = ex.cancel_order(symbol, order_id, link_id)
    return {"orderId": order.order_id, "orderLinkId": order.order_link_id}


def order_cancel_all(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    require_category(params)
    symbol, base, settle = as_str(params, "symbol"), as_str(params, "baseCoin"), as_str(params, "settleCoin")
    if not (symbol or base or settle):
        raise param_error("params error: symbol, baseCoin or settleCoin is required")
    if symbol and symbol not in ex.instruments:
        raise param_error(f"params error: symbol invalid: {symbol}")
    if symbol:
        victims = ex.cancel_all(symbol)
    elif base:
        victims = [o for s, i in ex.instruments.items() if i.base_coin == base for o in ex.cancel_all(s)]
    else:
        victims = ex.cancel_all(None) if settle == "USDT" else []
    return {"list": [{"orderId": o.order_id, "orderLinkId": o.order_link_id} for o in victims], "success": "1"}


def _order_query(ex: Exchange, params: dict[str, Any], now_ms: int, *, history: bool) -> dict[str, Any]:
    require_category(params)
    rows = select_orders(list(ex.orders.values()), params, history=history, now_ms=now_ms,
                         realtime_closed=ex.realtime_closed)
    page, cursor = paginate(rows, order_key, params, 20, 50)
    to_row = views.history_row if history else views.order_row
    return {"category": "linear", "list": [to_row(o) for o in page], "nextPageCursor": cursor}


def order_realtime(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return _order_query(ex, params, now_ms, history=False)


def order_history(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return _order_query(ex, params, now_ms, history=True)


def execution_list(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    require_category(params)
    rows = select_executions(ex.executions, params, now_ms)
    page, cursor = paginate(rows, exec_key, params, 50, 100)
    return {"category": "linear", "list": [views.execution_row(e) for e in page], "nextPageCursor": cursor}


def position_list(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    require_category(params)
    as_int(params, "limit", 20, 1, 200)
    symbol, settle = as_str(params, "symbol"), as_str(params, "settleCoin")
    if symbol:
        positions = [ex.positions[_symbol(ex, params)]]
    elif settle:
        positions = [p for p in ex.positions.values() if p.size != 0 and settle == "USDT"]
    else:
        raise param_error("params error: symbol or settleCoin is required")
    return {"category": "linear", "list": [views.position_row(ex, p) for p in positions], "nextPageCursor": ""}


def wallet_balance(ex: Exchange, params: dict[str, Any], now_ms: int) -> dict[str, Any]:
    account_type = as_str(params, "accountType", required=True)
    if account_type != "UNIFIED":
        raise param_error(f"params error: accountType[{account_type}] not supported")
    account = views.wallet_account(ex)
    coins = [c for c in as_str(params, "coin").split(",") if c]
    if coins:
        account["coin"] = [c for c in account["coin"] if c["coin"] in coins]
    return {"list": [account]}


PUBLIC: dict[str, Handler] = {
    "/v5/market/time": market_time,
    "/v5/market/instruments-info": instruments_info,
    "/v5/market/tickers": tickers,
}
PRIVATE_GET: dict[str, Handler] = {
    "/v5/order/realtime": order_realtime,
    "/v5/order/history": order_history,
    "/v5/execution/list": execution_list,
    "/v5/position/list": position_list,
    "/v5/account/wallet-balance": wallet_balance,
}
PRIVATE_POST: dict[str, Handler] = {
    "/v5/order/create": order_create,
    "/v5/order/cancel": order_cancel,
    "/v5/order/cancel-all": order_cancel_all,
}

account.install(PRIVATE_GET, PRIVATE_POST)
