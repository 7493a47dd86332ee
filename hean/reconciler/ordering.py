"""Which of two reports of the same position or order is newer (pure; no I/O).

REST and WS answer on different paths: a REST snapshot read before a fill can arrive after the
WS reported that fill. Publishing whatever came last would roll the account back in time
(long -> flat -> long while the exchange is flat, and a strategy re-opening on the echo). So
every report is ordered by the exchange's own counters and an older one never replaces a newer.

Positions: `seq` (the sequence of the last transaction on the position), then `updatedTime`
(which also moves at funding and on order pushes without a new `seq`). A lower `seq` that is
also later in time can only be a reset counter, and is taken.
Orders: a final status (Filled, Cancelled, ...) never goes back to an open one, `cumExecQty`
never shrinks, `updatedTime` never goes back, and a report that changes neither status nor
filled quantity is a repeat (the documented double `Filled` push, a duplicated push, the REST
echo of what the WS already said): it has no second effect.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

FINAL_ORDER_STATUSES = frozenset({"Filled", "Cancelled", "Rejected", "Deactivated", "PartiallyFilledCanceled"})


def _int(value: Any) -> int | None:
    """Bybit sends `seq` as int, sometimes as a string (SPEC §7.3); times as ms strings."""
    try:
        return int(value) if value not in (None, "") and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class PositionVersion:
    seq: int | None
    updated_ms: int | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> PositionVersion:
        seq = _int(row.get("seq"))
        return cls(seq if seq is not None and seq >= 0 else None, _int(row.get("updatedTime")))

    def older_than(self, other: PositionVersion | None) -> bool:
        """True if this report is older than `other` (so it must not replace it)."""
        if other is None:
            return False
        if self.seq is not None and other.seq is not None and self.seq != other.seq:
            if self.seq > other.seq:
                return False
            # A lower seq with a strictly later updatedTime cannot be an old report: the counter
            # was reset (a restarted simulator, an exchange migration). Take it, or the symbol
            # would be stuck on the old state for good.
            return not (self.updated_ms is not None and other.updated_ms is not None
                        and self.updated_ms > other.updated_ms)
        if self.updated_ms is not None and other.updated_ms is not None:
            return self.updated_ms < other.updated_ms
        return False


@dataclass(frozen=True)
class OrderVersion:
    status: str
    cum_exec_qty: Decimal
    updated_ms: int | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> OrderVersion:
        try:
            cum = Decimal(str(row.get("cumExecQty") or "0"))
        except InvalidOperation:
            cum = Decimal(0)
        return cls(str(row.get("orderStatus") or ""), cum if cum.is_finite() else Decimal(0),
                   _int(row.get("updatedTime")))

    @property
    def final(self) -> bool:
        return self.status in FINAL_ORDER_STATUSES

    def supersedes(self, old: OrderVersion | None) -> bool:
        """True if this report says something new about the order (publish it); False if older or a repeat."""
        if old is None:
            return True
        if self.cum_exec_qty != old.cum_exec_qty:
            return self.cum_exec_qty > old.cum_exec_qty
        if old.final:
            return False            # nothing moves a finished order except a late-reported fill
        if self.updated_ms is not None and old.updated_ms is not None and self.updated_ms != old.updated_ms:
            return self.updated_ms > old.updated_ms      # e.g. an amend: same status, newer state
        return self.status != old.status


class OrderVersions:
    """The newest version seen per orderId, bounded (finished orders are forgotten first, oldest first)."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._by_id: OrderedDict[str, OrderVersion] = OrderedDict()

    def offer(self, order_id: str, version: OrderVersion) -> bool:
        """Record `version` if it supersedes what is known; True when it does (publish it)."""
        if not version.supersedes(self._by_id.get(order_id)):
            return False
        self._by_id[order_id] = version
        self._by_id.move_to_end(order_id)
        if len(self._by_id) > self.capacity:
            victim = next((k for k, v in self._by_id.items() if v.final), next(iter(self._by_id)))
            del self._by_id[victim]
        return True
