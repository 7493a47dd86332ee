"""Pure stale-position rule (seed fix #5, stronger), with no I/O and no clock.

Why pure: the `hean run watchdog` shell owns the exchange client, the bus and
the clock; this module only decides which positions are too old and what the
closing order looks like, so the decision is replayable in table tests.

Age is the age of the CURRENT position as the exchange knows it (an
``Opening``: ``openTime`` when non-zero, else the fill that opened it, see
``opening.py``), not from when a process first saw the position -- the seed's
in-memory clock restarted with the process -- and never ``createdTime``, which on
Bybit is the first-ever position on the symbol and does not reset. Bybit reports ``size`` always positive with the direction in
``side`` ("Buy" long, "Sell" short, "" flat), so the close side is simply the
opposite of ``side``.

Close orders are idempotent by construction: ``orderLinkId`` is derived from
the position identity (symbol, its opening, side, positionIdx) plus an attempt
number (one per close order: a large close is split into several), so re-sending the same attempt after a timeout is rejected by the
exchange as a duplicate link id instead of closing twice. Attempt numbers are
safe to increase because (a) every close is ``reduceOnly`` -- a second accepted
close can only shrink the position to zero, never open the opposite side --
and (b) the shell looks up the previous attempt by its orderLinkId and only
issues attempt n+1 once attempt n is known to be final (rejected, cancelled,
or filled while the position is still open).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from hean.watchdog.opening import Opening, opening_from_open_time

__all__ = [
    "LINK_ID_PREFIX",
    "CloseOrder",
    "Decision",
    "DecisionKind",
    "InvalidPosition",
    "AgeUnknown",
    "PositionAge",
    "close_link_id",
    "close_order_for",
    "close_qty",
    "evaluate",
    "parse_position",
]

LINK_ID_PREFIX = "hwd-"
MAX_ATTEMPT = 9999
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9]{1,40}$")
_DIGITS_RE = re.compile(r"^[0-9]{1,16}$")
_OPPOSITE = {"Buy": "Sell", "Sell": "Buy"}


class DecisionKind(str, Enum):
    """What the shell should do with one position row."""

    CLOSE = "CLOSE"  # held longer than max_hold_s: send close_order_for(...)
    WARN = "WARN"  # will be force-closed within warn_before_s
    OK = "OK"
    SKIP_INVALID = "SKIP_INVALID"  # row could not be understood; report, do not act
    AGE_UNKNOWN = "AGE_UNKNOWN"  # no openTime and no opening fill known (yet): report, do not act
    SKIP_FOREIGN = "SKIP_FOREIGN"  # not a HEAN symbol and include_foreign=False


class InvalidPosition(ValueError):
    """A position row that cannot be acted on safely."""


class AgeUnknown(InvalidPosition):
    """A valid open position whose opening is not known: never aged by createdTime instead."""


@dataclass(frozen=True)
class PositionAge:
    """A validated, non-flat position with its age relative to `now_ms`."""

    symbol: str
    side: str
    size: Decimal
    opening: Opening
    age_s: float
    remaining_s: float
    position_idx: int = 0
    entry_price: Decimal | None = None
    created_ms: int = 0  # Bybit's createdTime: informational only (first-ever position on the symbol)

    @property
    def opened_ms(self) -> int:
        return self.opening.time_ms


@dataclass(frozen=True)
class Decision:
    """Verdict for one row; `position` is None only for SKIP_INVALID."""

    kind: DecisionKind
    reason: str
    symbol: str | None
    position: PositionAge | None
    row: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class CloseOrder:
    """Reduce-only market order that flattens one position."""

    symbol: str
    side: str
    qty: Decimal
    order_link_id: str
    position_idx: int = 0
    order_type: str = "Market"
    reduce_only: bool = True

    def to_request(self) -> dict[str, Any]:
        """Body for POST /v5/order/create; qty as plain decimal text (never exponent form)."""
        return {
            "category": "linear",
            "symbol": self.symbol,
            "side": self.side,
            "orderType": self.order_type,
            "qty": format(self.qty, "f"),
            "reduceOnly": self.reduce_only,
            "positionIdx": self.position_idx,
            "orderLinkId": self.order_link_id,
        }


def _decimal_field(row: Mapping[str, Any], key: str) -> Decimal:
    raw = row.get(key)
    if isinstance(raw, bool) or not isinstance(raw, (str, int, Decimal)):
        raise InvalidPosition(f"{key} missing or not a decimal string")
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise InvalidPosition(f"{key} is not a decimal: {raw!r}") from exc
    if not value.is_finite():
        raise InvalidPosition(f"{key} is not finite: {raw!r}")
    return value


def _is_flat(row: Mapping[str, Any]) -> bool:
    """Flat = size parses as zero. A row with side "" but size > 0 is NOT flat (it is invalid)."""
    try:
        return _decimal_field(row, "size") == 0
    except InvalidPosition:
        return False


def _created_ms(row: Mapping[str, Any]) -> int:
    created = row.get("createdTime")
    if isinstance(created, int) and not isinstance(created, bool):
        created = str(created)
    return int(created) if isinstance(created, str) and _DIGITS_RE.match(created) else 0


def parse_position(row: Any, now_ms: int, max_hold_s: float, opening: Opening | None = None) -> PositionAge:
    """Validate one non-flat row; raises InvalidPosition (AgeUnknown) with the reason.

    `opening` is what the caller learnt from executions; a non-zero ``openTime``
    on the row is used when none is given.
    """
    if not isinstance(row, Mapping):
        raise InvalidPosition("row is not an object")
    symbol = row.get("symbol")
    if not isinstance(symbol, str) or not _SYMBOL_RE.match(symbol):
        raise InvalidPosition(f"bad symbol: {symbol!r}")
    side = row.get("side")
    if side not in _OPPOSITE:
        raise InvalidPosition(f"bad side for an open position: {side!r}")
    size = _decimal_field(row, "size")
    if size <= 0:
        raise InvalidPosition(f"size must be > 0, got {row.get('size')!r}")
    idx = row.get("positionIdx", 0)
    if isinstance(idx, bool) or idx not in (0, 1, 2):
        raise InvalidPosition(f"bad positionIdx: {idx!r}")
    opening = opening or opening_from_open_time(row)
    if opening is None:
        raise AgeUnknown(f"age unknown: openTime {row.get('openTime')!r} and no opening fill known")
    age_ms = now_ms - opening.time_ms
    remaining_s = float((Decimal(repr(float(max_hold_s))) * 1000 - age_ms) / 1000)
    price_key = "avgPrice" if "avgPrice" in row else "entryPrice"  # REST vs WS naming
    try:
        entry_price: Decimal | None = _decimal_field(row, price_key)
    except InvalidPosition:
        entry_price = None  # informational only: never a reason to skip a close
    return PositionAge(symbol, side, size, opening, age_ms / 1000, remaining_s, int(idx), entry_price,
                       _created_ms(row))


def _classify(
    pos: PositionAge, now_ms: int, max_hold_s: float, warn_before_s: float
) -> tuple[DecisionKind, str]:
    # Compare in exact integer milliseconds so "exactly at the limit" is unambiguous.
    age_ms = Decimal(now_ms - pos.opened_ms)
    hold_ms = Decimal(repr(float(max_hold_s))) * 1000
    if age_ms > hold_ms:
        return DecisionKind.CLOSE, f"age {pos.age_s:.3f}s > max_hold {max_hold_s}s"
    remaining_ms = hold_ms - age_ms
    if remaining_ms < Decimal(repr(float(warn_before_s))) * 1000:
        return DecisionKind.WARN, f"force-close in {pos.remaining_s:.3f}s"
    if age_ms < 0:
        return DecisionKind.OK, "opened after now (clock skew)"
    return DecisionKind.OK, "within max_hold"


def _check_seconds(name: str, value: Any, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")


def evaluate(
    positions: Iterable[Any],
    now_ms: int,
    max_hold_s: float,
    *,
    warn_before_s: float = 180.0,
    include_foreign: bool = True,
    hean_symbols: Collection[str] | None = None,
    openings: Mapping[str, Opening] | None = None,
) -> list[Decision]:
    """One decision per non-flat row, in input order; bad rows never raise.

    `openings` (by symbol) are the openings learnt from executions, for rows
    whose ``openTime`` is 0.

    Flat rows (size 0) are left out entirely. Bad arguments (not rows) raise
    ValueError because they are configuration bugs, not exchange data.
    """
    if isinstance(now_ms, bool) or not isinstance(now_ms, int):
        raise ValueError(f"now_ms must be an int, got {now_ms!r}")
    _check_seconds("max_hold_s", max_hold_s, positive=True)
    _check_seconds("warn_before_s", warn_before_s, positive=False)
    if not include_foreign and hean_symbols is None:
        raise ValueError("include_foreign=False needs hean_symbols")
    decisions: list[Decision] = []
    for row in positions:
        if isinstance(row, Mapping) and _is_flat(row):
            continue
        raw_symbol = row.get("symbol") if isinstance(row, Mapping) else None
        symbol = raw_symbol if isinstance(raw_symbol, str) else None
        try:
            pos = parse_position(row, now_ms, max_hold_s, (openings or {}).get(symbol or ""))
        except AgeUnknown as exc:
            decisions.append(Decision(DecisionKind.AGE_UNKNOWN, str(exc), symbol, None, row))
            continue
        except InvalidPosition as exc:
            decisions.append(Decision(DecisionKind.SKIP_INVALID, str(exc), symbol, None, row))
            continue
        if not include_foreign and hean_symbols is not None and pos.symbol not in hean_symbols:
            decisions.append(Decision(DecisionKind.SKIP_FOREIGN, "not a HEAN symbol", pos.symbol, pos, row))
            continue
        kind, reason = _classify(pos, now_ms, max_hold_s, warn_before_s)
        decisions.append(Decision(kind, reason, pos.symbol, pos, row))
    return decisions


def close_link_id(symbol: str, opening_key: str, side: str, position_idx: int, attempt: int) -> str:
    """Deterministic orderLinkId: same position + same attempt -> same id (<= 36 chars).

    The opening key (exec id or openTime) makes two successive positions on one
    symbol get different ids. A digest keeps long symbols and exec ids within
    Bybit's 36-char limit; the readable symbol head is only for humans.
    """
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 1 <= attempt <= MAX_ATTEMPT:
        raise ValueError(f"attempt must be an int in 1..{MAX_ATTEMPT}, got {attempt!r}")
    identity = f"{symbol}|{opening_key}|{side}|{position_idx}".encode()
    digest = hashlib.blake2b(identity, digest_size=8).hexdigest()
    return f"{LINK_ID_PREFIX}{symbol[:8]}-{digest}-{attempt}"


def close_qty(size: Decimal, max_mkt_qty: Decimal | None, qty_step: Decimal | None) -> Decimal:
    """Qty of the next close order: the whole size, or at most maxMktOrderQty (on the step grid)."""
    if max_mkt_qty is None or max_mkt_qty <= 0 or size <= max_mkt_qty:
        return size
    cap = max_mkt_qty
    if qty_step is not None and qty_step > 0:
        cap = (max_mkt_qty // qty_step) * qty_step
    return cap if cap > 0 else size


def close_order_for(position: PositionAge, attempt: int = 1, *, qty: Decimal | None = None) -> CloseOrder:
    """Reduce-only market order on the opposite side, for `qty` (default: the full size)."""
    link_id = close_link_id(
        position.symbol, position.opening.key, position.side, position.position_idx, attempt
    )
    return CloseOrder(
        symbol=position.symbol,
        side=_OPPOSITE[position.side],
        qty=position.size if qty is None else qty,
        order_link_id=link_id,
        position_idx=position.position_idx,
    )
