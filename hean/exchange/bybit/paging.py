"""Pure helpers for time-windowed, cursor-paged queries (SPEC §2.5, §2.6)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hean.exchange.bybit.constants import SEVEN_DAYS_MS


def time_windows(start_ms: int, end_ms: int, span_ms: int = SEVEN_DAYS_MS) -> list[tuple[int, int]]:
    """Split [start, end] (inclusive) into consecutive windows with end - start <= span.

    Windows do not overlap (next start = previous end + 1), so together they cover every
    millisecond exactly once.
    """
    if end_ms < start_ms:
        raise ValueError(f"end_ms {end_ms} is before start_ms {start_ms}")
    windows = []
    lo = start_ms
    while lo <= end_ms:
        hi = min(lo + span_ms, end_ms)
        windows.append((lo, hi))
        lo = hi + 1
    return windows


def unique_executions(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every execution once (by execId), oldest first; ties broken by execId for stability."""
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_id.setdefault(str(row.get("execId", "")), row)
    return sorted(by_id.values(), key=lambda r: (int(r.get("execTime") or 0), str(r.get("execId", ""))))
