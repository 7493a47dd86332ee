"""What the risk process knows of the account, from bus payloads (pure: no I/O, no clock of its own).

Why a separate view: equity must be judged by the time the EXCHANGE reported it, not by
when a copy reached the bus (the reconciler re-publishes its cached reading every second),
and between wallet readings it is marked to the feed (`hean.risk.equity`). This class turns
`account.equity`, `position.<SYM>`, `tick.ticker.<SYM>` and `account.transfer` payloads into
that estimate, on the risk process's local clock (the price the wallet reading already holds is
the feed's mark at the reading's own time when the feed has one, else the row's markPrice):

    local time of an exchange time t = t + (ev.ts_ns - published_ms), the offset measured on
    each equity event (the reconciler's local clock minus its exchange-clock estimate)

so a clock offset between the exchange and the hosts cancels out. A reading whose `ts_ms`
is not newer than the current anchor is a re-publication: it changes no number, and it
renews the reading's age only while the account is flat (no position: the wallet moves
only with events the exchange pushes, and the reconciler polls nothing while flat). With
a position open only a new reading (polled by the reconciler) makes equity fresh again.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal, InvalidOperation
from typing import Any

from hean.risk.core import InvalidEquity
from hean.risk.equity import Anchor, Estimate, Mark, PositionRow, estimate

__all__ = ["AccountView", "Transfer", "parse_transfer"]

USD_CURRENCIES = frozenset({"USDT", "USDC"})
_HISTORY = 256  # marks kept per symbol: 25 s at Bybit's 100 ms ticker, more than a wallet poll apart


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _dec(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value == "":
        return None
    try:
        dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return dec if dec.is_finite() else None


class Transfer:
    """One `account.transfer` event: money in (+) or out (-) that is neither profit nor loss."""

    __slots__ = ("id", "amount", "currency", "ts_ms")

    def __init__(self, id_: str, amount: Decimal, currency: str, ts_ms: int | None) -> None:
        self.id, self.amount, self.currency, self.ts_ms = id_, amount, currency, ts_ms

    @property
    def direction(self) -> str:
        return "in" if self.amount > 0 else "out"


def parse_transfer(data: Any) -> Transfer:
    """A validated transfer; ValueError names what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("transfer data is not an object")
    id_ = data.get("id")
    amount = _dec(data.get("amount"))
    if not isinstance(id_, str) or not id_:
        raise ValueError("transfer without an id")
    if amount is None or amount == 0:
        raise ValueError(f"transfer amount is not a non-zero number: {str(data.get('amount'))[:40]!r}")
    return Transfer(id_, amount, str(data.get("currency") or ""), _int(data.get("ts_ms")))


class AccountView:
    """Anchor (last wallet reading), position rows, feed marks and recent transfers."""

    def __init__(self, max_mark_age_s: float) -> None:
        self.max_mark_age_s = max_mark_age_s
        self.anchor: Anchor | None = None
        self.anchor_ts_ms: int | None = None
        self.rows: dict[str, PositionRow] = {}  # the row each symbol is marked from (see on_position)
        self.latest_rows: dict[str, PositionRow] = {}
        self.marks: dict[str, Mark] = {}
        self.history: dict[str, deque[Mark]] = {}  # recent marks, to price what the anchor already holds
        self.offset_s = 0.0  # local clock minus exchange clock, from the last equity event
        self.offset_known = False
        self._pending: list[Transfer] = []  # applied transfers a later-arriving older reading lacks

    def local(self, exchange_ms: int) -> float:
        return exchange_ms / 1000 + self.offset_s

    @property
    def positions_open(self) -> bool:
        return any(r.signed_size != 0 for r in self.latest_rows.values())

    def on_equity(self, data: Any, ts_ns: int) -> bool:
        """Take a wallet reading; False for a re-publication. InvalidEquity for a reading to refuse."""
        if not isinstance(data, dict):
            raise InvalidEquity("equity data is not an object")
        equity, ts_ms = _dec(data.get("equity")), _int(data.get("ts_ms"))
        if equity is None or equity < 0:
            raise InvalidEquity(f"equity must be a finite number >= 0, got {str(data.get('equity'))[:40]!r}")
        if ts_ms is None or ts_ms <= 0:
            raise InvalidEquity("equity without the exchange time of its reading (ts_ms)")
        published = _int(data.get("published_ms"))
        if published is not None:
            self.offset_s, self.offset_known = ts_ns / 1e9 - published / 1000, True
        if self.anchor_ts_ms is not None and ts_ms <= self.anchor_ts_ms:
            if self.anchor is not None and ts_ms == self.anchor_ts_ms and not self.positions_open:
                # Flat, the wallet moves only with events the exchange pushes (fills, transfers), so the
                # reconciler's re-publication vouches for the reading; with a position open it does not.
                vouched = ts_ns / 1e9 if published is None else self.local(published)
                self.anchor = Anchor(self.anchor.equity, max(self.anchor.at, vouched))
            return False
        # A reading older than a transfer already applied does not contain it yet.
        missing = sum((t.amount for t in self._pending if t.ts_ms is not None and t.ts_ms > ts_ms), Decimal(0))
        self._pending = [t for t in self._pending if t.ts_ms is not None and t.ts_ms > ts_ms]
        self.anchor, self.anchor_ts_ms = Anchor(max(Decimal(0), equity + missing), self.local(ts_ms)), ts_ms
        for symbol, latest in self.latest_rows.items():
            if latest.at is None or latest.at <= self.anchor.at:
                self.rows[symbol] = latest
        return True

    def on_transfer(self, transfer: Transfer) -> None:
        """Move the current anchor by a transfer it does not include yet (the reconciler sends it first)."""
        if self.anchor is None or self.anchor_ts_ms is None:
            return
        if transfer.ts_ms is None or transfer.ts_ms > self.anchor_ts_ms:
            self.anchor = Anchor(max(Decimal(0), self.anchor.equity + transfer.amount), self.anchor.at)
            self._pending.append(transfer)

    def on_position(self, data: Any) -> str | None:
        """Record a position row; returns its symbol, or None for a payload without one."""
        if not isinstance(data, dict) or not isinstance(data.get("symbol"), str) or not data["symbol"]:
            return None
        size = _dec(data.get("size")) or Decimal(0)
        signed = -size if data.get("side") == "Sell" else size if data.get("side") == "Buy" else Decimal(0)
        ts_ms = _int(data.get("ts_ms"))
        new = PositionRow(data["symbol"], signed, _dec(data.get("mark_price")), None if ts_ms is None else self.local(ts_ms))
        self.latest_rows[new.symbol] = new
        ref = self.rows.get(new.symbol)
        # A row newer than the anchor with an unchanged size would hide the move since the anchor behind
        # its own mark (the wallet does not have that move yet): keep marking from the older row until a
        # reading at least as new as this row arrives. A changed size (a fill) is taken at once.
        newer = self.anchor is not None and new.at is not None and new.at > self.anchor.at
        if ref is None or ref.signed_size != new.signed_size or ref.at is None or not newer:
            self.rows[new.symbol] = new
        return new.symbol

    def on_tick(self, data: Any, ts_ns: int) -> str | None:
        """Record a feed mark; returns the symbol when it moved an open position's valuation."""
        if not isinstance(data, dict):
            return None
        symbol, price = data.get("symbol"), _dec(data.get("mark_price"))
        if not isinstance(symbol, str) or price is None or price <= 0:
            return None
        ex_ms = _int(data.get("exchange_ts_ms"))
        recv = _int(data.get("recv_ts_ns")) or ts_ns
        # Without a measured offset the feed's own receive time is the safer clock.
        at = self.local(ex_ms) if ex_ms is not None and self.offset_known else recv / 1e9
        self.marks[symbol] = Mark(price, at)
        self.history.setdefault(symbol, deque(maxlen=_HISTORY)).append(self.marks[symbol])
        row = self.rows.get(symbol)
        return symbol if row is not None and row.signed_size != 0 else None

    def reference_marks(self) -> dict[str, Decimal]:
        """Per symbol, the feed's mark at the anchor's time (the last one at or before it, if recent)."""
        out: dict[str, Decimal] = {}
        if self.anchor is None:
            return out
        at = self.anchor.at
        for symbol, marks in self.history.items():
            before = next((m for m in reversed(marks) if m.at <= at), None)
            if before is not None and at - before.at <= self.max_mark_age_s:
                out[symbol] = before.price
        return out

    def estimate(self, now: float) -> Estimate | None:
        if self.anchor is None:
            return None
        return estimate(self.anchor, self.rows.values(), self.marks, now, self.max_mark_age_s,
                        self.reference_marks())
