"""Finds the opening of each open position (SPEC §7.1) from REST, cheaply.

``openTime`` when the row has it; otherwise the symbol's executions walked back
from the row's ``updatedTime`` (fills after it are not in that row) in growing
windows -- most positions opened recently, so the first small window usually ends
the walk -- capped at Bybit's 7-day span per query and at `lookback_ms` overall.
The result is cached per symbol; later checks read only the fills since the last
one seen and roll them forward, which shows a position that went flat and re-opened
in between. A cache that no longer adds up to the row's size is dropped and walked
again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from hean.exchange.bybit.constants import SEVEN_DAYS_MS
from hean.watchdog.opening import (
    Fill,
    Opening,
    Track,
    lower_bound_opening,
    opening_from_open_time,
    opening_of,
    position_fills,
    roll_forward,
    signed_size,
    track_after_walk,
    walk_back,
)

log = logging.getLogger("hean.watchdog")

FIRST_WINDOW_MS = 3_600_000  # then doubled per window, up to SEVEN_DAYS_MS


class ExecutionSource(Protocol):
    async def executions_since(self, start_ms: int, end_ms: int | None = None, *,
                               symbol: str | None = None) -> list[dict[str, Any]]: ...


def _int_ms(raw: Any) -> int:
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    return int(text) if isinstance(text, str) and text.isdigit() else 0


class OpeningResolver:
    """Per-symbol cache of execution walks; `on_lookup("full" | "incremental")` counts them."""

    def __init__(self, client: ExecutionSource, lookback_ms: int,
                 on_lookup: Callable[[str], None] = lambda kind: None) -> None:
        self._client = client
        self._lookback_ms = lookback_ms
        self._on_lookup = on_lookup
        self._tracks: dict[str, Track] = {}
        self._bounds: dict[str, Opening] = {}

    async def opening(self, row: dict[str, Any], now_ms: int) -> Opening | None:
        """The opening of the row's position; None if the row cannot be walked.

        Raises ExchangeUnavailable (REST failed) or InvalidExecution (a fill not understood).
        """
        from_row = opening_from_open_time(row)
        if from_row is not None:
            return from_row
        symbol, side = row.get("symbol"), row.get("side")
        try:
            size = signed_size(side, Decimal(str(row.get("size"))))
        except ArithmeticError:
            return None
        if not isinstance(symbol, str) or side not in ("Buy", "Sell") or size == 0:
            return None
        upto = min(_int_ms(row.get("updatedTime")) or now_ms, now_ms)
        track = self._tracks.get(symbol)
        if track is not None and upto > track.watermark_ms:
            self._on_lookup("incremental")
            fills = position_fills(await self._client.executions_since(track.watermark_ms, upto, symbol=symbol))
            track = roll_forward(track, fills, upto)
        if track is not None and track.size != size:
            log.info("cached opening no longer adds up to the position; walking the executions again",
                     extra={"symbol": symbol, "cached_size": str(track.size), "size": str(size)})
            track = None
        if track is None:
            track = await self._walk(symbol, size, upto, _int_ms(row.get("createdTime")))
        self._tracks[symbol] = track
        return opening_of(track.opening) if track.opening is not None else self._bounds.get(symbol)

    def forget_except(self, symbols: set[str]) -> None:
        """Drop the cache of symbols no longer open (a later position is walked afresh)."""
        self._tracks = {s: t for s, t in self._tracks.items() if s in symbols}
        self._bounds = {s: b for s, b in self._bounds.items() if s in symbols}

    async def _walk(self, symbol: str, size: Decimal, upto: int, created_ms: int) -> Track:
        self._on_lookup("full")
        history_start = max(upto - self._lookback_ms, 0)
        running, end, span = size, upto, FIRST_WINDOW_MS
        newest: list[Fill] = []
        while end >= history_start:
            lo = max(end - span, history_start)
            fills = position_fills(await self._client.executions_since(lo, end, symbol=symbol))
            if end == upto:
                newest = fills
            walk = walk_back(fills, running)
            if walk.opening is not None:
                return track_after_walk(walk.opening, size, upto, newest)
            running, end, span = walk.running, lo - 1, min(span * 2, SEVEN_DAYS_MS)
        # No flat point in the whole history read: opened at or before its start.
        self._bounds[symbol] = lower_bound_opening(history_start, created_ms)
        log.warning("no flat point in the execution history read; ageing from its start",
                    extra={"symbol": symbol, "history_start_ms": history_start})
        return track_after_walk(None, size, upto, newest)
