"""Control routes for live-exchange behaviours (issue 10): held replies, a Bybit restart, book depth.

    POST /sim/faults/delay-reply {"path": "/v5/position/list", "ms": 800, "count": 1}
        the next ``count`` requests on ``path`` are answered from the state read on arrival,
        but the reply is held ``ms`` (WS pushes sent meanwhile reach the client first)
    POST /sim/faults/realtime-cache-clear {}
        empty order/realtime's closed-order cache, as a Bybit service restart does
    POST /sim/book {"symbol": "BTCUSDT", "depth": "0.05"}
        qty resting at every price level of both sides (null restores the default)
    POST /sim/faults/double-filled {"count": K}
        the next K orders that fill completely are pushed Filled twice (order.mdx: a cancel racing
        the fill; the second carries cancelType CancelByUser, rejectReason EC_OrigClOrdIDDoesNotExist)
    POST /sim/faults/execution-first {"count": K}
        the next K orders get no New push, and their first execution is pushed before the order
    POST /sim/faults/duplicate-push {"topic": "order"|"execution"|"execution.fast"|"position"|"wallet",
                                     "count": K}  the next K messages of that topic are sent twice
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hean.sim.control import ControlError, Route, _count, _dec, _symbol
from hean.sim.envelope import fmt
from hean.sim.faults import DelayReply

if TYPE_CHECKING:
    from hean.sim.server import SimServer


async def delay_reply(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    path, ms = body.get("path"), body.get("ms")
    if not isinstance(path, str) or not path.startswith("/v5/"):
        raise ControlError("path must be a /v5/... path")
    if not isinstance(ms, int) or isinstance(ms, bool) or not 0 < ms <= 600_000:
        raise ControlError("ms must be an int in (0, 600000]")
    server.faults.delay_replies.append(DelayReply(path, ms, _count(body)))
    return {"delay_replies": len(server.faults.delay_replies)}


async def realtime_cache_clear(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    server.metrics.faults.labels(kind="realtime_cache_clear").inc()
    return {"dropped": server.exchange.clear_realtime_cache()}


ROUTES: dict[str, Route] = {
    "/sim/faults/delay-reply": delay_reply,
    "/sim/faults/realtime-cache-clear": realtime_cache_clear,
}


async def book(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    symbol = _symbol(server, body)
    depth = None if body.get("depth") is None else _dec(body, "depth")
    if depth is not None and depth <= 0:
        raise ControlError("depth must be positive (or null for the default)")
    ex = server.exchange
    ex.book.set_depth(symbol, depth)
    return {"symbol": symbol, "depth": fmt(ex.book.depth(symbol, ex.last(symbol)))}


async def double_filled(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    server.faults.push.double_filled += _count(body)
    return {"double_filled": server.faults.push.double_filled}


async def execution_first(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    server.faults.push.execution_first += _count(body)
    return {"execution_first": server.faults.push.execution_first}


DUPLICABLE = ("order", "execution", "execution.fast", "position", "wallet")


async def duplicate_push(server: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    topic = body.get("topic")
    if topic not in DUPLICABLE:
        raise ControlError(f"topic must be one of {', '.join(DUPLICABLE)}")
    duplicate = server.faults.push.duplicate
    duplicate[topic] = duplicate.get(topic, 0) + _count(body)
    return {"duplicate": dict(duplicate)}


ROUTES.update({
    "/sim/book": book, "/sim/faults/double-filled": double_filled,
    "/sim/faults/execution-first": execution_first, "/sim/faults/duplicate-push": duplicate_push,
})
