"""Public (/v5/public/linear) and private (/v5/private) WebSockets, SPEC §4.

Each connection gets a queue and one writer task, so pushes from the tick loop and
replies from the reader never interleave frames.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from hean.sim.auth import check_ws_auth
from hean.sim.metrics import SimMetrics

log = logging.getLogger("hean.sim")
PRIVATE_TOPICS = frozenset({"order", "execution", "position", "wallet", "order.linear", "execution.linear",
                            "position.linear", "execution.fast", "execution.fast.linear"})
NO_ID_TOPICS = ("execution.fast",)   # fast-execution.mdx: envelope is topic, creationTime, data


class Connection:
    """One WebSocket client: its subscriptions and outbound queue."""

    def __init__(self, ws: web.WebSocketResponse, conn_id: str, delay: Callable[[], float] = lambda: 0.0) -> None:
        self.ws = ws
        self.conn_id = conn_id
        self.topics: set[str] = set()
        self.authed = False
        self.last_ticker: dict[str, dict[str, Any]] = {}
        self._delay = delay
        self._last_due = 0.0
        self._queue: asyncio.Queue[tuple[float, str] | None] = asyncio.Queue()
        self._writer = asyncio.create_task(self._drain())

    def due(self) -> float:
        """When a frame handed over now is delivered: after its delay, never before an earlier frame."""
        self._last_due = max(self._last_due, time.monotonic() + self._delay())
        return self._last_due

    def send(self, message: dict[str, Any]) -> None:
        self._queue.put_nowait((self.due(), json.dumps(message, separators=(",", ":"))))

    async def _drain(self) -> None:
        # One writer per connection: frames leave in the order they were handed over.
        while (item := await self._queue.get()) is not None:
            due, text = item
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            if self.ws.closed:
                return
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def close(self) -> None:
        """Stop the writer and close the socket (used for drops and shutdown)."""
        self._queue.put_nowait(None)
        if not self.ws.closed:
            await self.ws.close(code=1001, message=b"simulator closed the connection")
        await asyncio.gather(self._writer, return_exceptions=True)


class WsHub:
    """Tracks connections of one stream and runs the shared request/response protocol."""

    def __init__(self, stream: str, metrics: SimMetrics, clock: Callable[[], int],
                 delay: Callable[[], float] = lambda: 0.0) -> None:
        self.stream = stream
        self.delay = delay
        self.metrics = metrics
        self.clock = clock
        self.connections: set[Connection] = set()
        self._counter = 0
        self.on_subscribe: Callable[[Connection, str], None] = lambda conn, topic: None
        self.valid_topic: Callable[[str], bool] = lambda topic: False
        self.auth_check: Callable[[Any], str | None] | None = None

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._counter += 1
        conn = Connection(ws, f"sim-{self.stream}-{self._counter}", self.delay)
        self.connections.add(conn)
        self.metrics.ws_connections.labels(stream=self.stream).inc()
        inbound: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
        reader = asyncio.create_task(self._read_delayed(conn, inbound))
        last_due = 0.0
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    # the client's frame is still on the wire for one network delay
                    last_due = max(last_due, time.monotonic() + self.delay())
                    inbound.put_nowait((last_due, msg.data))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            reader.cancel()
            self.connections.discard(conn)
            self.metrics.ws_connections.labels(stream=self.stream).dec()
            await asyncio.gather(reader, return_exceptions=True)
            await conn.close()
        return ws

    async def _read_delayed(self, conn: Connection, inbound: asyncio.Queue[tuple[float, str]]) -> None:
        while True:
            due, text = await inbound.get()
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            try:
                self._on_text(conn, text)
            except Exception:  # noqa: BLE001 - one bad frame must not stop this connection's reader
                log.exception("simulator WS frame failed", extra={"stream": self.stream})

    def _on_text(self, conn: Connection, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            conn.send({"success": False, "ret_msg": "Invalid request", "conn_id": conn.conn_id, "op": ""})
            return
        op, req_id = message.get("op"), message.get("req_id")
        req_id = req_id if isinstance(req_id, str) else ("" if req_id is None else str(req_id))
        if op == "ping":
            self._pong(conn, req_id)
        elif op == "auth" and self.auth_check is not None:
            reason = self.auth_check(message.get("args"))
            conn.authed = reason is None
            conn.send({"success": reason is None, "ret_msg": reason or "", "op": "auth",
                       "conn_id": conn.conn_id, "req_id": req_id})
        elif op in ("subscribe", "unsubscribe"):
            self._subscription(conn, op, message.get("args"), req_id)
        else:
            conn.send({"success": False, "ret_msg": f"error:unknown op {op!r}", "conn_id": conn.conn_id,
                       "req_id": req_id, "op": op if isinstance(op, str) else ""})

    def _pong(self, conn: Connection, req_id: str) -> None:
        if self.auth_check is None:
            conn.send({"success": True, "ret_msg": "pong", "conn_id": conn.conn_id, "req_id": req_id, "op": "ping"})
        else:
            conn.send({"req_id": req_id, "op": "pong", "args": [str(self.clock())], "conn_id": conn.conn_id})

    def _subscription(self, conn: Connection, op: str, args: Any, req_id: str) -> None:
        reply = {"success": True, "ret_msg": "", "conn_id": conn.conn_id, "req_id": req_id, "op": op}
        if self.auth_check is not None and not conn.authed:
            reply.update(success=False, ret_msg="Request not authorized")
            conn.send(reply)
            return
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            reply.update(success=False, ret_msg="error:args must be a non-empty list of topics")
            conn.send(reply)
            return
        bad = [a for a in args if not self.valid_topic(a)]
        if bad:
            reply.update(success=False, ret_msg=f"error:handler not found,topic:{','.join(bad)}")
            conn.send(reply)
            return
        conn.send(reply)
        for topic in args:
            if op == "subscribe" and topic not in conn.topics:
                conn.topics.add(topic)
                self.on_subscribe(conn, topic)
            elif op == "unsubscribe":
                conn.topics.discard(topic)
                conn.last_ticker.pop(topic, None)

    async def drop_all(self) -> int:
        """Fault: close every connection of this stream now."""
        victims = list(self.connections)
        await asyncio.gather(*(c.close() for c in victims), return_exceptions=True)
        return len(victims)


def private_hub(metrics: SimMetrics, clock: Callable[[], int], api_key: str, api_secret: str,
                delay: Callable[[], float] = lambda: 0.0) -> WsHub:
    """The private stream: auth required, change-driven pushes, no snapshot on subscribe."""
    hub = WsHub("private", metrics, clock, delay)
    hub.valid_topic = PRIVATE_TOPICS.__contains__
    hub.auth_check = lambda args: check_ws_auth(args, api_key=api_key, api_secret=api_secret, now_ms=clock())
    return hub


def push_private(hub: WsHub, topic: str, items: list[dict[str, Any]], copies: int = 1) -> None:
    """Route one change event to every authed subscriber of the plain or .linear topic."""
    now = hub.clock()
    for conn in list(hub.connections):
        if not conn.authed:
            continue
        for name in (topic, f"{topic}.linear"):
            if name in conn.topics:
                message: dict[str, Any] = {"topic": name, "creationTime": now, "data": items}
                if topic not in NO_ID_TOPICS:
                    message = {"id": f"{conn.conn_id}-{now}", **message}
                for _ in range(copies):   # a duplicated push is the identical message again
                    conn.send(message)
