"""The sending half of the bus: two XPUB sockets per process, lossy and critical.

Both sockets set XPUB_NODROP, which turns "a subscriber's pipe is full" from a
silent drop (plain PUB) into `zmq.Again` on a non-blocking send.  What happens
next depends on the class: a tick is dropped and counted; a critical event
waits for room up to `critical_timeout_s` (backpressure, counted as delayed)
and then fails loudly with `BusSaturated`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from hean.bus import security
from hean.bus.endpoints import endpoint
from hean.bus.envelope import encode
from hean.bus.stats import BusStats
from hean.config import BusSettings
from hean.topics import is_lossy

log = logging.getLogger("hean.bus")
# As a plain int: `zmq.SNDMORE | zmq.NOBLOCK` builds an enum member on every call, 14 % of a publish.
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)


class BusError(RuntimeError):
    """A ZeroMQ socket could not be set up (bad endpoint, address in use, ...)."""


class BusSaturated(RuntimeError):
    """A critical event could not be delivered within the backpressure timeout."""


class Publisher:
    """Publishes events of one service; bind once, then `publish` from the event loop."""

    def __init__(self, bus: BusSettings, runtime_dir: Path, service: str, stats: BusStats) -> None:
        self._bus = bus
        self._runtime_dir = runtime_dir
        self.service = service
        self.stats = stats
        self.epoch = time.time_ns()
        self._topics: dict[str, list[Any]] = {}
        self._ctx = zmq.asyncio.Context.instance()
        self._async: dict[str, zmq.asyncio.Socket] = {}
        self._sync: dict[str, zmq.Socket] = {}
        self.endpoints: dict[str, str] = {}
        self._last_delay_warning = -1e9
        # Critical events waiting for room, in order. While any waits, later critical events queue
        # behind it: overtaking would reach subscribers out of sequence, and they drop stale seqs.
        self._waiting = 0
        self._critical_turn = asyncio.Lock()
        self._on_subscribe: list[Callable[[str, str], None]] = []
        # Before any socket exists: a non-loopback endpoint without keys is a ConfigError (exit 78).
        self.curve = security.curve_enabled(bus)

    def bind(self) -> Publisher:
        if self._bus.transport == "ipc":
            self._runtime_dir.mkdir(parents=True, exist_ok=True)
        for klass in ("lossy", "critical"):
            ep = endpoint(self._bus, self._runtime_dir, self.service, klass, bind=True)
            sock = self._ctx.socket(zmq.XPUB)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, self._bus.sndhwm)
            sock.setsockopt(zmq.XPUB_NODROP, 1)
            # Every peer's (un)subscription reaches us, not only a topic's first: a late joiner is visible.
            sock.setsockopt(zmq.XPUB_VERBOSER, 1)
            if self.curve:
                security.make_server(sock, self._bus, self.service)
            try:
                sock.bind(ep)
            except zmq.ZMQError as exc:
                sock.close()
                self.close()
                raise BusError(f"cannot bind {klass} bus socket at {ep}: {exc}") from None
            self._async[klass] = sock
            # The plain-API twin of the same socket: a non-blocking send without a Future per message.
            self._sync[klass] = zmq.Socket.shadow(sock.underlying)
            self.endpoints[klass] = ep
        return self

    def _topic(self, topic: str) -> list[Any]:
        """Per-topic state [topic bytes, lossy?, last seq], built once per topic."""
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = [topic.encode(), is_lossy(topic), 0]
        return state

    def _send(self, sock: zmq.Socket, topic_b: bytes, payload: bytes) -> bool:
        try:
            sock.send(topic_b, _MORE_NOBLOCK)
        except zmq.Again:
            return False
        # Once the first frame is accepted, ZeroMQ guarantees room for the rest of the message.
        sock.send(payload)
        return True

    def publish_nowait(self, topic: str, type_: str, data: dict[str, Any]) -> bool:
        """Send a lossy event without waiting; if a subscriber is saturated it is dropped and counted."""
        state = self._topic(topic)
        if not state[1]:
            raise ValueError(f"{topic} is a critical topic: use `await publish()`, which never drops it")
        state[2] += 1
        payload = encode(type_, self.service, self.epoch, state[2], time.time_ns(), data)
        if self._send(self._sync["lossy"], state[0], payload):
            self.stats.published["lossy"] += 1
            return True
        self.stats.dropped["lossy"] += 1
        return False

    async def publish(self, topic: str, type_: str, data: dict[str, Any]) -> bool:
        """Send an event. Lossy: dropped and counted when saturated (returns False).

        Critical: backpressured while a subscriber's pipe is full; after `critical_timeout_s`
        it fails loudly with BusSaturated (logged at ERROR) instead of vanishing.
        """
        state = self._topic(topic)
        # The sequence advances even if the event is then dropped: subscribers see the hole and count it.
        state[2] += 1
        payload = encode(type_, self.service, self.epoch, state[2], time.time_ns(), data)
        if state[1]:
            if self._send(self._sync["lossy"], state[0], payload):
                self.stats.published["lossy"] += 1
                return True
            self.stats.dropped["lossy"] += 1
            return False
        if not self._waiting and self._send(self._sync["critical"], state[0], payload):
            self.stats.published["critical"] += 1
            return True
        self._waiting += 1
        try:
            async with self._critical_turn:
                if self._send(self._sync["critical"], state[0], payload):
                    self.stats.published["critical"] += 1
                    return True
                return await self._backpressure(topic, state[0], payload)
        finally:
            self._waiting -= 1

    async def _backpressure(self, topic: str, topic_b: bytes, payload: bytes) -> bool:
        deadline = time.monotonic() + self._bus.critical_timeout_s
        pause = 0.0005
        # XPUB's POLLOUT stays set while a peer pipe is full, so polling would spin: sleep and retry instead.
        while time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.001)
            if self._send(self._sync["critical"], topic_b, payload):
                self.stats.delayed["critical"] += 1
                self.stats.published["critical"] += 1
                self._warn_delayed(topic)
                return True
        self.stats.send_failed["critical"] += 1
        hwm = self._bus.sndhwm
        log.error(
            "EventBus queue FULL: cannot publish critical event, a subscriber is not reading",
            extra={"topic": topic, "sndhwm": hwm, "timeout_s": self._bus.critical_timeout_s},
        )
        raise BusSaturated(
            f"EventBus queue full ({hwm}/{hwm}). Event processing falling behind. Check handler performance."
            f" (topic {topic})"
        )

    def _warn_delayed(self, topic: str) -> None:
        now = time.monotonic()
        if now - self._last_delay_warning >= self._bus.warn_throttle_s:
            self._last_delay_warning = now
            log.warning(
                "EventBus backpressure: critical event waited for a saturated subscriber",
                extra={"topic": topic, "delayed_total": self.stats.delayed["critical"]},
            )

    async def track_subscriptions(self, stop: asyncio.Event) -> None:
        """Read XPUB subscription messages so `stats.subscribers` knows whether anyone listens."""
        poller = zmq.asyncio.Poller()
        for sock in self._async.values():
            poller.register(sock, zmq.POLLIN)
        while not stop.is_set():
            for sock, _ in await poller.poll(timeout=200):
                klass = next(k for k, s in self._async.items() if s is sock)
                while True:
                    try:
                        msg = self._sync[klass].recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if msg[:1] == b"\x01":
                        self.stats.subscribers[klass] += 1
                        for hook in self._on_subscribe:
                            hook(klass, msg[1:].decode(errors="replace"))
                    elif msg[:1] == b"\x00":
                        self.stats.subscribers[klass] = max(0, self.stats.subscribers[klass] - 1)

    def on_subscribe(self, hook: Callable[[str, str], None]) -> None:
        """Call `hook(klass, prefix)` for each subscription a peer makes (while track_subscriptions runs).

        A PUB socket drops what it sends before a peer has subscribed; this lets a publisher re-send
        what a late joiner (a peer that reconnected after this process restarted) has missed.
        """
        self._on_subscribe.append(hook)

    async def wait_for_subscribers(self, klass: str, timeout: float) -> bool:
        """Wait until some peer subscribed to `klass` (for short-lived publishers like the CLI)."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.track_subscriptions(stop))
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.stats.subscribers[klass] > 0:
                    return True
                await asyncio.sleep(0.02)
            return False
        finally:
            stop.set()
            await task

    def close(self) -> None:
        for sock in self._async.values():
            sock.close(linger=0)
        self._async.clear()
        self._sync.clear()
