"""Test helpers: deadline polling and a tiny scriptable WS server (for frames the sim never sends)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import WSMsgType, web


async def wait_until(predicate: Callable[[], bool], what: str, deadline_s: float = 10.0) -> None:
    """Poll every 20 ms until predicate() is true; fail naming what was awaited."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out after {deadline_s}s waiting for: {what}")
        await asyncio.sleep(0.02)


class ScriptedWsServer:
    """Loopback WS server answering auth/subscribe like Bybit; per-connection script hook."""

    def __init__(self, *, refuse_first: int = 0, secret: str | None = None,
                 after_subscribe: Callable[[web.WebSocketResponse, int], Awaitable[None]] | None = None,
                 answer_subscribe: bool = True) -> None:
        self.refuse_first = refuse_first
        self.secret = secret
        self.after_subscribe = after_subscribe
        self.answer_subscribe = answer_subscribe
        self.attempts = 0
        self.connections = 0
        self.received: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v5/public/linear", self._handle)
        app.router.add_get("/v5/private", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        if self.attempts <= self.refuse_first:
            return web.Response(status=503, text="down")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        number = self.connections
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:  # like Bybit: commands must be TEXT frames
                break
            msg = orjson.loads(frame.data)
            self.received.append(msg)
            op = msg.get("op")
            if op == "auth":
                key, expires, sig = msg["args"]
                good = self.secret is not None and hmac.compare_digest(
                    sig, hmac.new(self.secret.encode(), f"GET/realtime{expires}".encode(),
                                  hashlib.sha256).hexdigest())
                await ws.send_str(orjson.dumps({"success": good, "ret_msg": "" if good else "bad sign",
                                                "op": "auth", "conn_id": "c"}).decode())
            elif op in ("subscribe", "unsubscribe") and self.answer_subscribe:
                await ws.send_str(orjson.dumps({"success": True, "ret_msg": "", "op": op,
                                                "req_id": msg.get("req_id", ""), "conn_id": "c"}).decode())
                if op == "subscribe" and self.after_subscribe is not None:
                    await self.after_subscribe(ws, number)
        return ws
