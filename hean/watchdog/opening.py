"""Pure rule for "when did the CURRENT position open?" (SPEC §7.1), no I/O and no clock.

Why: Bybit's position ``createdTime`` is the first-ever position on the symbol and
never resets, so ageing by it force-closes every re-opened position at once. The
truth is ``openTime`` when the exchange fills it in (non-zero), otherwise the fill
that opened the position since it was last flat, found by undoing the symbol's
position-changing fills newest -> oldest until the running size reaches zero (or
changes sign: a fill that flipped the position opened the current one).

``Track`` is what a caller caches per symbol so later checks only need the fills
since the last one seen: rolling them forward shows whether the position went flat
and re-opened in between (then the opening moves).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "POSITION_EXEC_TYPES", "Fill", "InvalidExecution", "Opening", "Track", "Walk",
    "lower_bound_opening", "opening_from_open_time", "opening_of", "position_fills", "roll_forward",
    "signed_size", "track_after_walk", "walk_back",
]

# Funding rows carry execQty = the position size: they never change it (SPEC §7.3).
POSITION_EXEC_TYPES = frozenset({"Trade", "AdlTrade", "BustTrade", "BlockTrade", "MovePosition"})
_DIGITS = re.compile(r"^[0-9]{1,16}$")


class InvalidExecution(ValueError):
    """An execution row that changes the position but cannot be understood."""


@dataclass(frozen=True)
class Fill:
    """One position-changing fill: + buys, - sells."""

    exec_id: str
    time_ms: int
    signed_qty: Decimal


@dataclass(frozen=True)
class Opening:
    """When the current position opened, how that was learnt, and its identity for link ids."""

    source: str  # "open_time" | "executions"
    time_ms: int
    key: str  # differs between two positions on one symbol
    exec_id: str | None = None
    lower_bound: bool = False  # the walk ran out of history: opened at or before time_ms


@dataclass(frozen=True)
class Walk:
    """Result of undoing fills: the opening fill once found, else the size before the oldest undone."""

    opening: Fill | None
    running: Decimal


@dataclass(frozen=True)
class Track:
    """Per-symbol cache: the opening fill, the signed size after every fill up to `watermark_ms`."""

    opening: Fill | None
    size: Decimal
    watermark_ms: int
    seen_at_watermark: frozenset[str]  # exec ids at exactly watermark_ms (re-read, not re-applied)


def _time(raw: Any, what: str) -> int:
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if not isinstance(text, str) or not _DIGITS.match(text):
        raise InvalidExecution(f"bad {what}: {raw!r}")
    return int(text)


def _fill(row: Mapping[str, Any]) -> Fill:
    exec_id = row.get("execId")
    if not isinstance(exec_id, str) or not exec_id:
        raise InvalidExecution(f"bad execId: {exec_id!r}")
    raw_qty = row.get("execQty")
    if not isinstance(raw_qty, str):
        raise InvalidExecution(f"execQty is not a decimal string: {raw_qty!r}")
    try:
        qty = Decimal(raw_qty)
    except InvalidOperation as exc:
        raise InvalidExecution(f"bad execQty: {raw_qty!r}") from exc
    if not qty.is_finite() or qty < 0:
        raise InvalidExecution(f"bad execQty: {raw_qty!r}")
    side = row.get("side")
    if side not in ("Buy", "Sell"):
        raise InvalidExecution(f"bad side: {side!r}")
    return Fill(exec_id, _time(row.get("execTime"), "execTime"), qty if side == "Buy" else -qty)


def position_fills(rows: Iterable[Any]) -> list[Fill]:
    """The position-changing fills among execution rows, each once, oldest first.

    Ties in execTime are ordered by execId: any fixed order gives the same size
    walk, and a fixed one keeps the opening (and so the close link id) stable.
    """
    fills: dict[str, Fill] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            raise InvalidExecution("execution row is not an object")
        if row.get("execType") not in POSITION_EXEC_TYPES:
            continue
        fill = _fill(row)
        fills.setdefault(fill.exec_id, fill)
    return sorted(fills.values(), key=lambda f: (f.time_ms, f.exec_id))


def signed_size(side: Any, size: Decimal) -> Decimal:
    """Bybit's positive size with its side as one signed number (+ long)."""
    return -size if side == "Sell" else size


def _opens(before: Decimal, after: Decimal) -> bool:
    """A fill from `before` to `after` opened a position: from flat, or through zero."""
    return after != 0 and (before == 0 or (before > 0) != (after > 0))


def walk_back(fills_oldest_first: Sequence[Fill], running: Decimal) -> Walk:
    """Undo fills newest -> oldest from signed size `running` (non-zero) until one opened it."""
    if running == 0:
        raise ValueError("walk_back needs an open position")
    for fill in reversed(fills_oldest_first):
        before = running - fill.signed_qty
        if _opens(before, running):
            return Walk(fill, before)
        running = before
    return Walk(None, running)


def track_after_walk(opening: Fill | None, size: Decimal, watermark_ms: int,
                     fills_at_or_before_watermark: Sequence[Fill]) -> Track:
    """The cache entry after a walk that read every fill up to `watermark_ms`."""
    seen = frozenset(f.exec_id for f in fills_at_or_before_watermark if f.time_ms == watermark_ms)
    return Track(opening, size, watermark_ms, seen)


def roll_forward(track: Track, fills_oldest_first: Sequence[Fill], watermark_ms: int) -> Track:
    """Apply the fills read since `track.watermark_ms` (inclusive) up to `watermark_ms`.

    Fills already applied (same ms, id seen) are skipped; a fill that makes the
    position flat clears the opening, one that opens it from flat (or through zero)
    becomes the new opening.
    """
    opening, size = track.opening, track.size
    seen = set(track.seen_at_watermark) if watermark_ms == track.watermark_ms else set()
    for fill in fills_oldest_first:
        if fill.time_ms < track.watermark_ms or fill.time_ms > watermark_ms:
            continue
        if fill.time_ms == track.watermark_ms and fill.exec_id in track.seen_at_watermark:
            continue
        before, size = size, size + fill.signed_qty
        if size == 0:
            opening = None
        elif _opens(before, size):
            opening = fill
        if fill.time_ms == watermark_ms:
            seen.add(fill.exec_id)
    return Track(opening, size, max(watermark_ms, track.watermark_ms), frozenset(seen))


def opening_from_open_time(row: Mapping[str, Any]) -> Opening | None:
    """``openTime`` (integer ms; 0 = not reported) as the opening, when the exchange gives one."""
    raw = row.get("openTime")
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        return None
    return Opening("open_time", raw, f"t{raw}")


def opening_of(fill: Fill) -> Opening:
    return Opening("executions", fill.time_ms, f"e{fill.exec_id}", exec_id=fill.exec_id)


def lower_bound_opening(history_start_ms: int, created_ms: int) -> Opening:
    """No flat point within the history read: the position is at least that old.

    Opened at or before `history_start_ms`, so ageing from there never closes
    early. Its identity has to come from something stable: the symbol's createdTime.
    """
    return Opening("executions", history_start_ms, f"c{created_ms}", lower_bound=True)
