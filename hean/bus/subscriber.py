"""The receiving half of the bus: one SUB socket, a gap detector and a bounded queue.

The reader wakes on POLLIN and drains with NOBLOCK until EAGAIN (awaiting
`recv()` per message caps an asyncio subscriber near 60 k/s; draining reaches
~380 k/s here).  Each event is checked against its publisher's sequence, then
either handled inline (fast path: risk state, reconcile status) or put on a
bounded queue that one dispatcher task drains into the handlers.  The queue is
the seed's fix #1: utilisation gauge, WARNING at 80 % (throttled), CRITICAL at
95 %, ticks dropped when full, critical events wait up to the timeout and then
fail loudly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import zmq
import zmq.asyncio

from hean.bus import security
from hean.bus.endpoints import endpoint
from hean.bus._queue import EventQueue
from hean.bus.envelope import Event, MalformedEvent, decode
from hean.bus.publisher import BusError, BusSaturated
from hean.bus.stats import BusStats
from hean.config import BusSettings
from hean.topics import FAST_PATH_TYPES, LOSSY_PREFIX

log = logging.getLogger("hean.bus")
_NOBLOCK = int(zmq.NOBLOCK)   # a plain int: passing the enum member costs a lookup per frame

Handler = Callable[[Event], Awaitable[None]]
GapCallback = Callable[[Event, int], None]
_STOP = object()
_DRAIN_BATCH = 2000


class Subscriber:
    """Receives events for one service. `connect()` sources, `on()` handlers, then `run()`."""

    def __init__(self, bus: BusSettings, runtime_dir: Path, stats: BusStats, *,
                 on_gap: GapCallback | None = None, service: str | None = None) -> None:
        # Before any socket exists: a non-loopback endpoint without keys is a ConfigError (exit 78).
        self.curve = security.curve_enabled(bus)
        if self.curve:
            security.secret_key(bus, service)
        self.service = service
        self._bus = bus
        self._runtime_dir = runtime_dir
        self.stats = stats
        self._on_gap = on_gap
        self._ctx = zmq.asyncio.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, bus.rcvhwm)
        self._raw = zmq.Socket.shadow(self._sock.underlying)
        self._handlers: list[tuple[str, Handler, bool]] = []
        self._routes: dict[tuple[str, bool], list[Handler]] = {}
        self._streams: dict[tuple[str, str], list[int]] = {}    # (source, topic) -> [epoch, last seq]
        self.queue = EventQueue(bus.queue_size)
        stats.queue_capacity = bus.queue_size
        stats.queue_depth = self.queue.qsize
        # Utilisation is only worth computing once the queue is past the warning line.
        self._warn_depth = max(1, int(bus.queue_size * bus.warn_utilization))
        self._last_warning = -1e9
        self._last_critical = -1e9

    def connect(self, source: str, *, lossy: bool = True, critical: bool = True) -> Subscriber:
        """Connect to a publishing service; ZeroMQ keeps retrying until that service binds."""
        for klass, wanted in (("lossy", lossy), ("critical", critical)):
            if wanted:
                ep = endpoint(self._bus, self._runtime_dir, source, klass)
                if self.curve:
                    security.make_client(self._sock, self._bus, self.service, source)
                try:
                    self._sock.connect(ep)
                except zmq.ZMQError as exc:
                    raise BusError(f"cannot connect to {ep}: {exc}") from None
        return self

    def on(self, prefix: str, handler: Handler, *, fast: bool = False) -> Subscriber:
        """Call `handler` for every event whose topic starts with `prefix`.

        fast=True handles fast-path event types inline on the reader, ahead of the queue; keep
        such handlers short and non-blocking.
        """
        self._sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self._handlers.append((prefix, handler, fast))
        self._routes.clear()
        return self

    def _route(self, topic: str, fast: bool) -> list[Handler]:
        key = (topic, fast)
        found = self._routes.get(key)
        if found is None:
            found = [h for p, h, f in self._handlers if topic.startswith(p) and f == fast]
            self._routes[key] = found
        return found

    async def run(self, stop: asyncio.Event) -> None:
        """Read and dispatch until `stop` is set; then finish what is queued and return.

        Raises BusSaturated if a critical event could not be queued within the timeout.
        """
        dispatcher = asyncio.create_task(self._dispatch(), name="bus_dispatch")
        try:
            await self._read(stop)
        except BaseException:
            # Failing loudly: do not wait for handlers that are the reason we are failing.
            dispatcher.cancel()
            await asyncio.gather(dispatcher, return_exceptions=True)
            raise
        # Clean stop: the sentinel goes in behind what is queued, so queued events are still handled.
        self.queue.put_force(_STOP)
        await dispatcher

    async def _read(self, stop: asyncio.Event) -> None:
        raw, max_bytes, received = self._raw, self._bus.max_frame_bytes, self.stats.received
        streams, queue, warn_depth = self._streams, self.queue, self._warn_depth
        while not stop.is_set():
            if not await self._readable(0.1):
                continue
            for _ in range(_DRAIN_BATCH):
                try:
                    topic_frame = raw.recv(_NOBLOCK)
                except zmq.Again:
                    break
                # Every HEAN message is exactly [topic, payload]. Asking ZeroMQ for RCVMORE costs ~0.6 us
                # per call, more than decoding, so the happy path trusts the framing and only a message
                # that fails to decode pays for re-synchronising on message boundaries.
                try:
                    payload = raw.recv(_NOBLOCK)
                except zmq.Again:
                    self._malformed("frame_count", len(topic_frame))
                    continue
                try:
                    ev = decode(topic_frame, payload, max_bytes)
                except MalformedEvent as exc:
                    self._resync(exc.reason, len(payload))
                    continue
                klass = "lossy" if ev.topic.startswith(LOSSY_PREFIX) else "critical"
                received[klass] += 1
                state = streams.get((ev.source, ev.topic))
                if state is not None and state[0] == ev.epoch and ev.seq == state[1] + 1:
                    state[1] = ev.seq       # in sequence: the overwhelmingly common case, inline
                elif not self._in_sequence(ev, klass):
                    continue
                if ev.type in FAST_PATH_TYPES:
                    fast = self._route(ev.topic, True)
                    if fast:
                        for h in fast:
                            await self._call(h, ev)
                        continue
                # The common case stays synchronous: no coroutine per event unless the queue is full.
                if queue.put_nowait(ev):
                    if queue.qsize() >= warn_depth:
                        self._check_utilization()
                else:
                    await self._enqueue_slow(ev, klass)
            # Let the dispatcher run between batches.
            await asyncio.sleep(0)

    async def _readable(self, timeout: float) -> bool:
        """Wait until the socket has a message, straight on the loop's reader for ZMQ_FD.

        zmq.asyncio's poll() builds a poller, a Future and a reader registration per call; under
        load that round trip, not the wire, dominated one-hop latency.  ZMQ_FD is edge-triggered:
        ZMQ_EVENTS must be checked before every wait, and again after every wake-up.
        """
        raw = self._raw
        if raw.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            return True
        loop = asyncio.get_running_loop()
        fd = raw.getsockopt(zmq.FD)
        woke = loop.create_future()
        loop.add_reader(fd, lambda: woke.done() or woke.set_result(None))
        try:
            await asyncio.wait_for(woke, timeout)
        except TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)
        return bool(raw.getsockopt(zmq.EVENTS) & zmq.POLLIN)

    def _resync(self, reason: str, size: int) -> None:
        """Count a bad message and discard the rest of it, so the next read starts a new message."""
        raw = self._raw
        extra = 0
        while raw.getsockopt(zmq.RCVMORE):
            raw.recv()
            extra += 1
        # A one-frame message shifts the framing: its "payload" was the next message's topic.
        self._malformed("frame_count" if extra else reason, size)

    def _malformed(self, reason: str, size: int) -> None:
        self.stats.malformed[reason] += 1
        n = self.stats.malformed[reason]
        # Log the first few of each kind and then every 1000th, so a garbage flood cannot flood the journal.
        if n <= 5 or n % 1000 == 0:
            log.warning("bus: malformed frame skipped", extra={"reason": reason, "bytes": size, "count": n})

    def _in_sequence(self, ev: Event, klass: str) -> bool:
        key = (ev.source, ev.topic)
        state = self._streams.get(key)
        if state is None:
            # First contact: a late joiner has missed nothing it could have had.
            self._streams[key] = [ev.epoch, ev.seq]
            return True
        epoch, last = state
        if ev.epoch != epoch:
            self.stats.restarts[ev.source] += 1
            state[0], state[1] = ev.epoch, ev.seq
            log.info("bus: publisher restarted", extra={"source": ev.source, "topic": ev.topic})
            if ev.seq > 1:
                self._gap(ev, klass, ev.seq - 1)
            return True
        if ev.seq <= last:
            self._malformed("stale_seq", 0)
            return False
        if ev.seq > last + 1:
            self._gap(ev, klass, ev.seq - last - 1)
        state[1] = ev.seq
        return True

    def _gap(self, ev: Event, klass: str, lost: int) -> None:
        self.stats.lost[(ev.source, klass)] += lost
        if klass == "critical":
            log.warning("bus: events lost on a critical stream",
                        extra={"source": ev.source, "topic": ev.topic, "lost": lost})
        if self._on_gap is not None:
            self._on_gap(ev, lost)

    async def _enqueue_slow(self, ev: Event, klass: str) -> None:
        """The queue is full: drop a tick (counted), or make a critical event wait (then fail loudly)."""
        q = self.queue
        if klass == "lossy":
            self.stats.queue_dropped[klass] += 1
            self._check_utilization()
            return
        try:
            await asyncio.wait_for(q.put(ev), timeout=self._bus.critical_timeout_s)
        except TimeoutError:
            self.stats.queue_failed[klass] += 1
            size, cap = q.qsize(), q.maxsize
            log.error(
                "EventBus queue FULL: cannot queue critical event, handlers severely behind",
                extra={"topic": ev.topic, "type": ev.type, "queue_size": size, "queue_capacity": cap},
            )
            raise BusSaturated(
                f"EventBus queue full ({size}/{cap}). Event processing falling behind. "
                "Check handler performance."
            ) from None
        self.stats.queue_delayed[klass] += 1
        self._check_utilization()

    def _check_utilization(self) -> None:
        q = self.queue
        depth = q.qsize()
        util = depth / q.maxsize
        if util < self._bus.warn_utilization:
            return
        now = time.monotonic()
        fields = {"queue_size": depth, "queue_capacity": q.maxsize, "utilization": round(util, 3),
                  "queue_dropped": sum(self.stats.queue_dropped.values()),
                  "queue_delayed": sum(self.stats.queue_delayed.values())}
        if util >= self._bus.critical_utilization:
            # CRITICAL on every crossing would flood the journal under sustained load: at most once a second.
            if now - self._last_critical >= 1.0:
                self._last_critical = now
                log.critical("EventBus CRITICAL: queue almost full; events at risk", extra=fields)
        elif now - self._last_warning >= self._bus.warn_throttle_s:
            self._last_warning = now
            log.warning("EventBus WARNING: queue filling; event processing may be lagging", extra=fields)

    async def _dispatch(self) -> None:
        q, route = self.queue, self._route
        try:
            while True:
                ev = await q.get()
                if ev is _STOP:
                    return
                for h in route(ev.topic, False):
                    # Inline rather than via _call: one coroutine frame less per event.
                    try:
                        await h(ev)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        self._handler_failed(ev)
        finally:
            left = q.qsize()
            if left:
                log.warning("bus: dispatcher stopped with events still queued", extra={"left": left})

    async def _call(self, handler: Handler, ev: Event) -> None:
        try:
            await handler(ev)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._handler_failed(ev)

    def _handler_failed(self, ev: Event) -> None:
        self.stats.handler_errors += 1
        log.exception("bus: handler failed; event skipped", extra={"topic": ev.topic, "type": ev.type})

    def close(self) -> None:
        self._sock.close(linger=0)
