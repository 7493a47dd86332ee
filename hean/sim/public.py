"""Public market-data pushes (SPEC §4.6): tickers, publicTrade, orderbook.1."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from hean.sim.envelope import fmt
from hean.sim.exchange import Exchange
from hean.sim.handlers import ticker_row
from hean.sim.ws import Connection, WsHub

TICKER_FIELDS = ("symbol", "lastPrice", "indexPrice", "markPrice", "prevPrice24h", "price24hPcnt",
                 "highPrice24h", "lowPrice24h", "prevPrice1h", "openInterest", "openInterestValue",
                 "turnover24h", "volume24h", "fundingRate", "nextFundingTime", "bid1Price", "bid1Size",
                 "ask1Price", "ask1Size", "fundingIntervalHour", "fundingCap")


class PublicFeed:
    """Builds public messages from exchange state and keeps per-symbol sequence numbers."""

    def __init__(self, exchange: Exchange, hub: WsHub, seed: int) -> None:
        self.exchange = exchange
        self.hub = hub
        self._rng = random.Random(seed * 31 + 5)
        self._cs: dict[str, int] = {s: 0 for s in exchange.instruments}
        self._book_u: dict[str, int] = {s: 0 for s in exchange.instruments}
        self._trade_seq = 0
        self._prev: dict[str, Decimal] = dict(exchange.prices.prices)
        hub.valid_topic = self.valid_topic
        hub.on_subscribe = self.snapshot

    def valid_topic(self, topic: str) -> bool:
        parts = topic.split(".")
        if len(parts) == 2 and parts[0] in ("tickers", "publicTrade"):
            return parts[1] in self.exchange.instruments
        return len(parts) == 3 and parts[0] == "orderbook" and parts[1] == "1" and \
            parts[2] in self.exchange.instruments

    def _ticker(self, symbol: str) -> dict[str, Any]:
        row = ticker_row(self.exchange, symbol)
        data = {k: row[k] for k in TICKER_FIELDS}
        previous = self._prev.get(symbol, self.exchange.last(symbol))
        last = self.exchange.last(symbol)
        data["tickDirection"] = "PlusTick" if last > previous else ("MinusTick" if last < previous else "ZeroPlusTick")
        return data

    def _book(self, symbol: str, now: int) -> dict[str, Any]:
        self._book_u[symbol] += 1
        ex = self.exchange
        return {"topic": f"orderbook.1.{symbol}", "type": "snapshot", "ts": now,
                "data": {"s": symbol, "b": [[fmt(ex.bid(symbol)), fmt(ex.book.available(symbol, ex.bid(symbol)))]],
                         "a": [[fmt(ex.ask(symbol)), fmt(ex.book.available(symbol, ex.ask(symbol)))]],
                         "u": self._book_u[symbol], "seq": self._book_u[symbol]}, "cts": now}

    def snapshot(self, conn: Connection, topic: str) -> None:
        """First message after a subscribe: tickers and orderbook start with a snapshot."""
        kind, symbol = topic.split(".")[0], topic.split(".")[-1]
        now = self.hub.clock()
        if kind == "tickers":
            data = self._ticker(symbol)
            conn.last_ticker[topic] = data
            self._cs[symbol] += 1
            conn.send({"topic": topic, "type": "snapshot", "data": data, "cs": self._cs[symbol], "ts": now})
        elif kind == "orderbook":
            conn.send(self._book(symbol, now))

    def trade(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> None:
        """Publish one trade (a synthetic market print or one of our own fills)."""
        now = self.hub.clock()
        self._trade_seq += 1
        item = {"T": now, "s": symbol, "S": side, "v": fmt(qty), "p": fmt(price), "L": "ZeroPlusTick",
                "i": f"sim-trade-{self._trade_seq}", "BT": False, "RPI": False, "seq": self._trade_seq}
        message = {"topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": now, "data": [item]}
        for conn in list(self.hub.connections):
            if message["topic"] in conn.topics:
                conn.send(message)

    def tick(self) -> None:
        """One step: ticker deltas (changed fields only), book snapshots, a synthetic print."""
        now = self.hub.clock()
        for symbol in self.exchange.instruments:
            last = self.exchange.last(symbol)
            if last != self._prev.get(symbol):
                side = "Buy" if last > self._prev.get(symbol, last) else "Sell"
                inst = self.exchange.instruments[symbol]
                self.trade(symbol, side, inst.min_qty * self._rng.randint(1, 20), last)
            data = self._ticker(symbol)
            book = None
            for conn in list(self.hub.connections):
                topic = f"tickers.{symbol}"
                if topic in conn.topics:
                    before = conn.last_ticker.get(topic, {})
                    delta = {k: v for k, v in data.items() if before.get(k) != v}
                    if delta:
                        delta["symbol"] = symbol
                        conn.last_ticker[topic] = data
                        self._cs[symbol] += 1
                        conn.send({"topic": topic, "type": "delta", "data": delta, "cs": self._cs[symbol], "ts": now})
                if f"orderbook.1.{symbol}" in conn.topics:
                    book = book or self._book(symbol, now)
                    conn.send(book)
            self._prev[symbol] = last
