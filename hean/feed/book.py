"""Pure market-data rules: orderbook `u`/`seq` continuity and Bybit public message -> tick payload.

No I/O: the feed service hands in parsed messages and a receive timestamp and publishes what
comes back. A message that cannot be understood raises `BadMessage` (counted, skipped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any


class BadMessage(ValueError):
    """A well-formed JSON frame whose content makes no sense (missing field, bad number)."""


class BookVerdict(Enum):
    OK = "ok"
    GAP = "gap"        # regression, hole or delta before snapshot: resubscribe for a fresh snapshot


def _dec(value: Any, name: str) -> str:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise BadMessage(f"{name} is not a number: {str(value)[:20]!r}") from None
    if not d.is_finite():
        raise BadMessage(f"{name} is not finite")
    return str(d)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise BadMessage(f"{name} is not an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadMessage(f"{name} is not an integer") from None


@dataclass
class _Side:
    levels: dict[str, str] = field(default_factory=dict)   # price -> size, Decimal strings

    def apply(self, updates: Any, name: str) -> None:
        if not isinstance(updates, list):
            raise BadMessage(f"{name} is not a list")
        for level in updates:
            if not isinstance(level, list) or len(level) != 2:
                raise BadMessage(f"{name} level is not [price, size]")
            price, size = _dec(level[0], "price"), _dec(level[1], "size")
            if Decimal(size) == 0:
                self.levels.pop(price, None)
            else:
                self.levels[price] = size

    def best(self, highest: bool) -> tuple[str | None, str | None]:
        if not self.levels:
            return None, None
        price = (max if highest else min)(self.levels, key=Decimal)
        return price, self.levels[price]


@dataclass
class Book:
    """Top of book for one symbol plus the sequence state that guards it."""

    u: int | None = None
    seq: int | None = None
    bids: _Side = field(default_factory=_Side)
    asks: _Side = field(default_factory=_Side)

    def apply(self, kind: str, data: dict[str, Any]) -> BookVerdict:
        """Apply a snapshot/delta; GAP means the book is unusable until a fresh snapshot."""
        u, seq = _int(data.get("u"), "u"), _int(data.get("seq", 0), "seq")
        if kind == "snapshot" or u == 1:           # u == 1: the exchange restarted the stream
            if kind == "snapshot" and self.u is not None and u != 1 and u < self.u:
                return self._reset()
            self.bids, self.asks = _Side(), _Side()
        elif kind == "delta":
            if self.u is None or u != self.u + 1 or (self.seq is not None and seq < self.seq):
                return self._reset()
        else:
            raise BadMessage(f"unknown orderbook message type {kind!r}")
        self.bids.apply(data.get("b", []), "b")
        self.asks.apply(data.get("a", []), "a")
        self.u, self.seq = u, seq
        return BookVerdict.OK

    def _reset(self) -> BookVerdict:
        self.u = self.seq = None
        self.bids, self.asks = _Side(), _Side()
        return BookVerdict.GAP

    def tick(self, symbol: str) -> dict[str, Any]:
        bid, bid_size = self.bids.best(True)
        ask, ask_size = self.asks.best(False)
        return {"symbol": symbol, "bid": bid, "bid_size": bid_size, "ask": ask, "ask_size": ask_size,
                "u": self.u, "seq": self.seq}


TICKER_FIELDS = {"lastPrice": "last_price", "bid1Price": "bid", "ask1Price": "ask", "markPrice": "mark_price"}


def merge_ticker(state: dict[str, str], kind: str, data: Any) -> dict[str, Any]:
    """Linear tickers: a snapshot, then deltas with only changed fields; returns the merged tick."""
    if not isinstance(data, dict):
        raise BadMessage("ticker data is not an object")
    if kind == "snapshot":
        state.clear()
    for wire, name in TICKER_FIELDS.items():
        if data.get(wire) not in (None, ""):
            state[name] = _dec(data[wire], wire)
    return {name: state.get(name) for name in TICKER_FIELDS.values()}


def trade_ticks(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise BadMessage("trade data is not a list")
    out = []
    for t in data:
        if not isinstance(t, dict) or t.get("S") not in ("Buy", "Sell"):
            raise BadMessage("trade without a side")
        out.append({"symbol": str(t.get("s", "")), "price": _dec(t.get("p"), "p"), "qty": _dec(t.get("v"), "v"),
                    "side": t["S"], "trade_id": str(t.get("i", "")), "exchange_ts_ms": _int(t.get("T"), "T")})
    return out


def exchange_ts(msg: dict[str, Any]) -> int:
    return _int(msg.get("ts"), "ts")
