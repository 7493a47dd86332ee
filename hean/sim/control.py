"""Control API under /sim/ (not Bybit): drive prices, clock, wallet and faults from tests.

All routes take/return JSON and need no auth. Errors: HTTP 400 {"error": "..."}.

    GET  /sim/state                     counts and state: orders, open orders, executions, prices,
                                        positions (signed size), wallet, server time, faults
    GET  /sim/orders?orderLinkId=ID     orders (all, or one link id) in the REST order shape
    POST /sim/price        {"symbol", "price", "hold": true}   set last price; hold freezes the walk;
                                        resting orders are matched at once
    POST /sim/resume       {"symbol"?}  let held symbols walk again (all when omitted)
    POST /sim/price-path   {"symbol", "steps": [[delay_s, "price"], ...]}  scripted path
    POST /sim/wallet       {"amount": "-100.5"}   credit (+) / debit (-) the USDT wallet; logged as
                                        TRANSFER_IN / TRANSFER_OUT in /v5/account/transaction-log
    POST /sim/clock/advance {"ms": 3600000}       move the server clock forward
    POST /sim/funding      {"symbol", "rate": "0.0001"}  Funding execution on an open position
    POST /sim/faults/ws-drop        {"stream": "public"|"private"|"all"}  drop connections now
    POST /sim/faults/ws-drop-every  {"seconds": 5 | null}                 periodic drop
    POST /sim/faults/timeout-after-accept {"count": K}  apply next K order/create, never answer
    POST /sim/faults/http-error {"when": "before"|"after", "status": 503, "count": K,
                                 "fraction": 0.0, "path": "/v5/order/create" | null}
    POST /sim/faults/rate-limit {"count": K, "seconds": D}  force 10006 on private endpoints
    POST /sim/faults/latency    {"ms": 200}                 delay every /v5 request
    POST /sim/faults/reset      {}                          clear every fault
    POST /sim/account  {"read_only", "permissions", "ips", "expired_at", "deadline_day", "uta",
                        "position_mode", "uid"}  API-key / account properties (hean/sim/account.py)
    (more routes in livecontrol.py)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hean.sim import account, views
from hean.sim.envelope import SimError, fmt
from hean.sim.faults import HttpFault

if TYPE_CHECKING:
    from hean.sim.server import SimServer

Route = Callable[["SimServer", dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlError(ValueError):
    """Bad control request -> HTTP 400."""


def _dec(body: dict[str, Any], name: str) -> Decimal:
    try:
        value = Decimal(str(body[name]))
    except (KeyError, InvalidOperation):
        raise ControlError(f"{name} must be a decimal") from None
    if not value.is_finite():
        raise ControlError(f"{name} must be finite")
    return value


def _symbol(server: SimServer, body: dict[str, Any]) -> str:
    symbol = body.get("symbol")
    if symbol not in server.exchange.instruments:
        raise ControlError(f"unknown symbol {symbol!r}")
    return str(symbol)


def state(server: SimServer) -> dict[str, Any]:
    ex = server.exchange
    return {
        "server_time": server.clock(),
        "orders": len(ex.orders),
        "open_orders": sum(1 for o in ex.orders.values() if o.is_open),
        "executions": len(ex.executions),
        "prices": {s: fmt(p) for s, p in ex.prices.prices.items()},
        "held": sorted(ex.prices.held),
        "positions": {s: fmt(p.size) for s, p in ex.positions.items()},
        "wallet_balance": fmt(ex.wallet_balance),
        "equity": fmt(ex.equity()),
        "ws_connections": {"public": len(server.public_hub.connections),
                           "private": len(server.private_hub.connections)},
        "faults": {"timeout_after_accept": server.faults.timeout_after_accept,
                   "latency_ms": server.faults.latency_ms, "http": len(server.faults.http),
                   "rate_limit_count": server.limiter.forced_count,
                   "ws_drop_every_s": server.faults.ws_drop_every_s},
    }


async def set_price(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    symbol = _symbol(server, body)
    price = _dec(body, "price")
    if price <= 0:
        raise ControlError("price must be positive")
    snapped = server.exchange.prices.set_price(symbol, price, hold=bool(body.get("hold", True)))
    server.on_prices_changed()
    return {"symbol": symbol, "price": fmt(snapped)}


async def resume(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    symbol = _symbol(server, body) if body.get("symbol") is not None else None
    server.exchange.prices.resume(symbol)
    return {"held": sorted(server.exchange.prices.held)}


async def price_path(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    symbol = _symbol(server, body)
    steps = body.get("steps")
    if not isinstance(steps, list):
        raise ControlError("steps must be a list of [delay_s, price]")
    try:
        parsed = [(float(delay), Decimal(str(price))) for delay, price in steps]
    except (TypeError, ValueError, InvalidOperation):
        raise ControlError("steps must be a list of [delay_s, price]") from None
    server.exchange.prices.script(symbol, parsed)
    return {"symbol": symbol, "steps": len(parsed)}


async def wallet(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    amount = _dec(body, "amount")
    row = account.record_transfer(server.exchange, amount, server.clock())
    return {"wallet_balance": fmt(server.exchange.adjust_wallet(amount)), "transaction_id": row["id"]}


async def account_settings(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    return account.configure(server.exchange, body, server.clock())


async def advance_clock(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    ms = body.get("ms")
    if not isinstance(ms, int) or isinstance(ms, bool) or ms < 0:
        raise ControlError("ms must be a non-negative int")
    server.clock_offset_ms += ms
    return {"server_time": server.clock()}


async def funding(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    symbol = _symbol(server, body)
    try:
        execution = server.exchange.funding(symbol, _dec(body, "rate"))
    except SimError as err:
        raise ControlError(err.message) from None
    return views.execution_row(execution)


async def ws_drop(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    stream = body.get("stream", "all")
    if stream not in ("public", "private", "all"):
        raise ControlError("stream must be public, private or all")
    return {"dropped": await server.drop_ws(stream)}


async def ws_drop_every(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    seconds = body.get("seconds")
    if seconds is not None and (not isinstance(seconds, (int, float)) or seconds <= 0):
        raise ControlError("seconds must be positive or null")
    server.faults.ws_drop_every_s = float(seconds) if seconds is not None else None
    return {"ws_drop_every_s": server.faults.ws_drop_every_s}


async def timeout_after_accept(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    server.faults.timeout_after_accept += _count(body)
    return {"timeout_after_accept": server.faults.timeout_after_accept}


async def http_error(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    when, status = body.get("when"), body.get("status", 503)
    fraction = body.get("fraction", 0.0)
    if when not in ("before", "after") or not isinstance(status, int) or not 500 <= status <= 599:
        raise ControlError("when must be before/after and status a 5xx int")
    if not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ControlError("fraction must be within [0, 1]")
    path = body.get("path")
    server.faults.http.append(HttpFault(when, status, _count(body, allow_zero=fraction > 0), float(fraction),
                                        str(path) if path else None))
    return {"http_faults": len(server.faults.http)}


async def rate_limit(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    seconds = body.get("seconds", 0)
    if not isinstance(seconds, (int, float)) or seconds < 0:
        raise ControlError("seconds must be >= 0")
    server.limiter.force(_count(body, allow_zero=seconds > 0), float(seconds), server.clock())
    return {"forced_count": server.limiter.forced_count, "forced_until_ms": server.limiter.forced_until_ms}


async def latency(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    ms = body.get("ms")
    if not isinstance(ms, int) or isinstance(ms, bool) or not 0 <= ms <= 600_000:
        raise ControlError("ms must be an int in [0, 600000]")
    server.faults.latency_ms = ms
    return {"latency_ms": ms}


async def reset_faults(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    server.faults.reset()
    server.limiter.reset_faults()
    return {"reset": True}


def _count(body: dict[str, Any], *, allow_zero: bool = False) -> int:
    count = body.get("count", 0 if allow_zero else 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < (0 if allow_zero else 1):
        raise ControlError("count must be a positive int")
    return count


POST_ROUTES: dict[str, Route] = {
    "/sim/price": set_price, "/sim/resume": resume, "/sim/price-path": price_path, "/sim/wallet": wallet,
    "/sim/clock/advance": advance_clock, "/sim/funding": funding, "/sim/faults/ws-drop": ws_drop,
    "/sim/faults/ws-drop-every": ws_drop_every, "/sim/faults/timeout-after-accept": timeout_after_accept,
    "/sim/faults/http-error": http_error, "/sim/faults/rate-limit": rate_limit,
    "/sim/faults/latency": latency, "/sim/faults/reset": reset_faults,
    "/sim/account": account_settings,
}


def add_routes(app: web.Application, server: SimServer, extra: dict[str, Route] | None = None) -> None:
    """Register every /sim route on ``app`` (``extra``: routes defined in other modules)."""
    routes = {**POST_ROUTES, **(extra or {})}
    settings = server.settings
    account.attach(server.exchange, uid=settings.uid, api_key=settings.api_key,
                   initial_balance=settings.initial_balance, now_ms=server.clock())

    async def post(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"{}")
            if not isinstance(body, dict):
                raise ControlError("body must be a JSON object")
            result = await routes[request.path](server, body)
        except (ControlError, ValueError) as err:
            return web.json_response({"error": str(err)}, status=400)
        return web.json_response(result)

    async def get_state(request: web.Request) -> web.Response:
        return web.json_response(state(server))

    async def get_orders(request: web.Request) -> web.Response:
        link_id = request.query.get("orderLinkId")
        orders = [views.order_row(o) for o in server.exchange.orders.values()
                  if link_id is None or o.order_link_id == link_id]
        return web.json_response({"list": orders})

    for path in routes:
        app.router.add_post(path, post)
    app.router.add_get("/sim/state", get_state)
    app.router.add_get("/sim/orders", get_orders)
