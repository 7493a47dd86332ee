"""`hean run feed`: Bybit public WS (tickers, publicTrade, orderbook.1 per symbol) -> lossy ticks.

Ticks go out with `publish_nowait` (never waits; a saturated subscriber loses ticks, counted by the
bus). Each tick carries the exchange timestamp (`exchange_ts_ms`) and the local receive time
(`recv_ts_ns`, taken when the parsed frame reaches the feed). Orderbook messages must continue
the `u` sequence; a regression, a hole or a delta before any snapshot resubscribes that topic for a
fresh snapshot. Heartbeat, staleness, reconnect backoff and malformed JSON are the WS class's job.

Metrics: hean_feed_messages_total{topic}, hean_feed_seconds_since_last_message{symbol},
hean_feed_exchange_to_publish_seconds (exchange ts -> published), hean_feed_internal_latency_seconds
(frame in -> published), hean_feed_resubscribes_total{symbol}, hean_feed_malformed_total{reason},
hean_feed_dropped_total (ticks a saturated bus dropped). Also hean_ws_reconnects_total{name="public"},
hean_ws_malformed_total{name="public"}, hean_ws_messages_total{name="public"}.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from hean import topics
from hean.config import HeanSettings
from hean.exchange.bybit import BybitWebSocket
from hean.exchange.connect import websocket
from hean.feed.book import BadMessage, Book, BookVerdict, exchange_ts, merge_ticker, trade_ticks
from hean.lifecycle import Service

log = logging.getLogger("hean.feed")
TICK = topics.EventType.TICK.value
LATENCY_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class FeedMetrics:
    def __init__(self, registry: CollectorRegistry, symbols: tuple[str, ...]) -> None:
        self.messages = Counter("hean_feed_messages_total", "Public WS data messages by topic", ["topic"],
                                registry=registry)
        self.since_last = Gauge("hean_feed_seconds_since_last_message",
                                "Seconds since the last public message per symbol (-1 = none yet)", ["symbol"],
                                registry=registry)
        self.exchange_latency = Histogram("hean_feed_exchange_to_publish_seconds",
                                          "Exchange timestamp to tick published (includes clock offset)",
                                          registry=registry, buckets=LATENCY_BUCKETS)
        self.internal_latency = Histogram("hean_feed_internal_latency_seconds", "WS frame in to tick published",
                                          registry=registry, buckets=LATENCY_BUCKETS)
        self.resubscribes = Counter("hean_feed_resubscribes_total", "Orderbook resubscribes after a sequence gap",
                                    ["symbol"], registry=registry)
        self.malformed = Counter("hean_feed_malformed_total", "Well-formed frames with unusable content, skipped",
                                 ["reason"], registry=registry)
        self.dropped = Counter("hean_feed_dropped_total", "Ticks the bus dropped (saturated subscriber)",
                               registry=registry)
        self.last_seen: dict[str, float] = {}
        for symbol in symbols:
            self.since_last.labels(symbol).set_function(
                lambda s=symbol: time.monotonic() - self.last_seen[s] if s in self.last_seen else -1.0)


class FeedService(Service):
    name = "feed"

    def __init__(self, settings: HeanSettings, registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__(settings, registry)
        self.m = FeedMetrics(registry, settings.symbols)
        self.books: dict[str, Book] = {}
        self.tickers: dict[str, dict[str, str]] = {}
        self.ws: BybitWebSocket | None = None
        self._ws_stop = asyncio.Event()

    async def startup(self) -> None:
        self.make_publisher()
        wanted = [f"{kind}.{s}" for s in self.settings.symbols for kind in ("tickers", "publicTrade", "orderbook.1")]
        self.ws = websocket(self.settings, private=False, topics=wanted, on_message=self.on_message,
                            on_connected=self._on_connected, name="public", registry=self.registry)

    async def main_loop(self) -> None:
        assert self.ws is not None
        self.spawn(self.ws.run(self._ws_stop), "public_ws")
        await self.should_exit.wait()

    async def shutdown(self) -> None:
        self._ws_stop.set()

    async def _on_connected(self) -> None:
        # A new connection starts every book from its snapshot.
        self.books.clear()

    async def on_message(self, msg: dict[str, Any]) -> None:
        recv_ns = time.time_ns()
        topic = str(msg.get("topic", ""))
        kind, _, symbol = topic.rpartition(".")
        self.m.messages.labels(topic).inc()
        self.m.last_seen[symbol] = time.monotonic()
        try:
            if kind == "tickers":
                data = merge_ticker(self.tickers.setdefault(symbol, {}), str(msg.get("type")), msg.get("data"))
                self._emit("ticker", symbol, {"symbol": symbol, **data, "exchange_ts_ms": exchange_ts(msg)}, recv_ns)
            elif kind == "publicTrade":
                for tick in trade_ticks(msg.get("data")):
                    self._emit("trade", symbol, tick, recv_ns)
            elif kind == "orderbook.1":
                await self._on_book(topic, symbol, msg, recv_ns)
            else:
                raise BadMessage(f"unexpected topic {topic[:40]!r}")
        except BadMessage as exc:
            self.m.malformed.labels("content").inc()
            log.warning("public message skipped", extra={"topic": topic[:60], "error": str(exc)})

    async def _on_book(self, topic: str, symbol: str, msg: dict[str, Any], recv_ns: int) -> None:
        data = msg.get("data")
        if not isinstance(data, dict):
            raise BadMessage("orderbook data is not an object")
        book = self.books.setdefault(symbol, Book())
        if book.apply(str(msg.get("type")), data) is BookVerdict.GAP:
            self.m.resubscribes.labels(symbol).inc()
            log.warning("orderbook sequence gap: resubscribing", extra={"topic": topic, "u": data.get("u")})
            assert self.ws is not None
            await self.ws.resubscribe(topic)
            return
        self._emit("book", symbol, {**book.tick(symbol), "exchange_ts_ms": exchange_ts(msg)}, recv_ns)

    def _emit(self, kind: str, symbol: str, data: dict[str, Any], recv_ns: int) -> None:
        data["recv_ts_ns"] = recv_ns
        assert self.publisher is not None
        if not self.publisher.publish_nowait(topics.tick(kind, symbol), TICK, data):
            self.m.dropped.inc()
        now_ns = time.time_ns()
        self.m.internal_latency.observe((now_ns - recv_ns) / 1e9)
        self.m.exchange_latency.observe(max(0.0, now_ns / 1e6 - data["exchange_ts_ms"]) / 1000)
