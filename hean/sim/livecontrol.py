"""Control routes for live-exchange behaviours (issue 10): held replies, a Bybit restart, book depth.

    POST /sim/faults/delay-reply {"path": "/v5/position/list", "ms": 800, "count": 1}
        the next ``count`` requests on ``path`` are answered from the state read on arrival,
        but the reply is held ``ms`` (WS pushes sent meanwhile reach the client first)
    POST /sim/faults/realtime-cache-clear {}
        empty order/realtime's closed-order cache, as a Bybit service restart does
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hean.sim.control import ControlError, Route, _count
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
