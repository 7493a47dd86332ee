"""One reconnecting Bybit v5 WebSocket connection (public or private).

Every failure mode (refused connect, failed auth/subscribe, server drop, silence past
`stale_after_s`) ends in the same place: wait a backoff (5 s x1.5 up to 60 s, with
jitter, reset after a healthy connection) and reconnect, re-auth and re-subscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from prometheus_client import CollectorRegistry

from hean.exchange.bybit.auth import sign_ws
from hean.exchange.bybit.constants import WS_AUTH_EXPIRES_MS
from hean.exchange.bybit.errors import check_host_allowed
from hean.exchange.bybit.metrics import metrics_for

log = logging.getLogger("hean.exchange.ws")

SUBSCRIBE_CHUNK = 10  # topics per subscribe request; keeps each frame small
HANDSHAKE_TIMEOUT_S = 10.0


class _ConnectionFailed(Exception):
    """Auth or subscribe was refused or not answered; reconnect after backoff."""


class BybitWebSocket:
    """One reconnecting Bybit WS connection (public or private)."""

    def __init__(self, url: str, *, topics: list[str], on_message: Callable[[dict[str, Any]], Awaitable[None]],
                 on_connected: Callable[[], Awaitable[None]] | None = None, api_key: str | None = None,
                 api_secret: str | None = None, ping_interval_s: float = 20.0, stale_after_s: float = 60.0,
                 backoff_initial_s: float = 5.0, backoff_factor: float = 1.5, backoff_max_s: float = 60.0,
                 jitter: float = 0.1, name: str = "ws", registry: CollectorRegistry | None = None,
                 dry_run: bool = True, is_live: bool = False,
                 clock_ms: Callable[[], int] | None = None) -> None:
        check_host_allowed(url, dry_run=dry_run, is_live=is_live)
        # Auth `expires` must be in the exchange's future: pass the REST client's server_time_ms so a
        # local clock behind the exchange's does not make every auth fail.
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        if (api_key is None) != (api_secret is None):
            raise ValueError("api_key and api_secret must be given together")
        self._url = url
        self._topics = list(topics)
        self._on_message = on_message
        self._on_connected = on_connected
        self._api_key = api_key
        self._secret = api_secret
        self._ping_interval = ping_interval_s
        self._stale_after = stale_after_s
        self._backoff_initial = backoff_initial_s
        self._backoff_factor = backoff_factor
        self._backoff_max = backoff_max_s
        self._jitter = jitter
        self.name = name
        self._metrics = metrics_for(registry)
        self._random = random.Random()
        self._req_ids = itertools.count(1)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.backoff_history: list[float] = []

    def __repr__(self) -> str:
        return f"BybitWebSocket(name={self.name!r}, url={self._url!r}, private={self._api_key is not None})"

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the connection up until `stop` is set."""
        delay = self._backoff_initial
        self._metrics.ws_connected.labels(self.name).set(0)
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                healthy = False
                try:
                    healthy = await self._session_once(session, stop)
                except (aiohttp.ClientError, OSError, TimeoutError, _ConnectionFailed) as exc:
                    log.warning("ws connection failed", extra={"ws": self.name, "error": _short(exc)})
                finally:
                    self.connected.clear()
                    self._metrics.ws_connected.labels(self.name).set(0)
                    self._ws = None
                if stop.is_set():
                    return
                if healthy:
                    delay = self._backoff_initial
                wait = self._jittered(delay)
                delay = min(delay * self._backoff_factor, self._backoff_max)
                self.backoff_history.append(wait)
                self.reconnects += 1
                self._metrics.ws_reconnects.labels(self.name).inc()
                log.info("ws reconnecting", extra={"ws": self.name, "delay_s": round(wait, 3)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)

    def _jittered(self, delay: float) -> float:
        if self._jitter <= 0:
            return delay
        return max(0.0, delay * (1 + self._random.uniform(-self._jitter, self._jitter)))

    async def resubscribe(self, topic: str) -> None:
        """Unsubscribe and subscribe one topic again (e.g. to get a fresh orderbook snapshot).

        If not connected this is a no-op: the next connection subscribes every topic anyway.
        """
        ws = self._ws
        if ws is None or ws.closed or not self.connected.is_set():
            return
        if topic not in self._topics:
            self._topics.append(topic)
        await self._send(ws, {"req_id": self._req_id(), "op": "unsubscribe", "args": [topic]})
        await self._send(ws, {"req_id": self._req_id(), "op": "subscribe", "args": [topic]})

    @staticmethod
    async def _send(ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any]) -> None:
        # Bybit expects JSON in TEXT frames; binary frames are not understood.
        await ws.send_str(orjson.dumps(message).decode())

    def _req_id(self) -> str:
        return f"{self.name}-{next(self._req_ids)}"

    async def _session_once(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> bool:
        """Connect, handshake and read until the connection ends; True if it got healthy."""
        async with session.ws_connect(self._url, heartbeat=None, autoping=True) as ws:
            self._ws = ws
            closer = asyncio.create_task(self._close_on_stop(ws, stop))
            pinger = asyncio.create_task(self._ping_loop(ws))
            try:
                await self._handshake(ws)
                self.connected.set()
                self._metrics.ws_connected.labels(self.name).set(1)
                log.info("ws connected", extra={"ws": self.name, "topics": len(self._topics)})
                if self._on_connected is not None:
                    try:
                        await self._on_connected()
                    except Exception:  # the hook's failure must not take the stream down
                        log.exception("ws on_connected hook failed", extra={"ws": self.name})
                await self._read_loop(ws)
                return True
            finally:
                for task in (closer, pinger):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _close_on_stop(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> None:
        await stop.wait()
        await ws.close()

    async def _ping_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self._ping_interval)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send(ws, {"req_id": self._req_id(), "op": "ping"})

    async def _handshake(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Auth (private) then subscribe; data frames arriving meanwhile are delivered."""
        deadline = time.monotonic() + min(HANDSHAKE_TIMEOUT_S, self._stale_after)
        if self._api_key is not None and self._secret is not None:
            expires = self._clock_ms() + WS_AUTH_EXPIRES_MS
            await self._send(ws, {"req_id": self._req_id(), "op": "auth",
                                  "args": [self._api_key, expires, sign_ws(self._secret, expires)]})
            await self._await_ack(ws, "auth", 1, deadline)
        chunks = [self._topics[i:i + SUBSCRIBE_CHUNK] for i in range(0, len(self._topics), SUBSCRIBE_CHUNK)]
        for chunk in chunks:
            await self._send(ws, {"req_id": self._req_id(), "op": "subscribe", "args": chunk})
        if chunks:
            await self._await_ack(ws, "subscribe", len(chunks), deadline)

    async def _await_ack(self, ws: aiohttp.ClientWebSocketResponse, op: str, count: int, deadline: float) -> None:
        while count > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _ConnectionFailed(f"no {op} answer in time")
            msg = await self._next_message(ws, remaining)
            if msg is None:
                raise _ConnectionFailed(f"connection closed while waiting for {op}")
            if msg.get("op") == op:
                if msg.get("success") is False:
                    raise _ConnectionFailed(f"{op} refused: {str(msg.get('ret_msg', ''))[:120]}")
                count -= 1
            else:
                await self._dispatch(msg)

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            msg = await self._next_message(ws, self._stale_after)
            if msg is None:
                return
            await self._dispatch(msg)

    async def _next_message(self, ws: aiohttp.ClientWebSocketResponse, timeout: float) -> dict[str, Any] | None:
        """Next well-formed JSON object; None when the connection closed or went stale."""
        while True:
            try:
                frame = await ws.receive(timeout=timeout)
            except TimeoutError:
                log.warning("ws stale: no message in time, reconnecting",
                            extra={"ws": self.name, "stale_after_s": self._stale_after})
                return None
            if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                              aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return None
            if frame.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                continue
            try:
                parsed = orjson.loads(frame.data)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                return parsed
            self._metrics.ws_malformed.labels(self.name).inc()
            log.warning("ws malformed frame skipped", extra={"ws": self.name, "size": len(frame.data or "")})

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op in ("ping", "pong") or msg.get("ret_msg") == "pong":
            return
        if op in ("subscribe", "unsubscribe", "auth"):
            if msg.get("success") is False:
                log.warning("ws command refused", extra={"ws": self.name, "op": op,
                                                          "ret_msg": str(msg.get("ret_msg", ""))[:120]})
            return
        if "topic" not in msg:
            log.debug("ws message without topic ignored", extra={"ws": self.name})
            return
        self._metrics.ws_messages.labels(self.name).inc()
        try:
            await self._on_message(msg)
        except Exception:  # a handler bug must not kill the connection
            log.exception("ws on_message handler failed", extra={"ws": self.name, "topic": msg.get("topic")})


def _short(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__
