"""Network latency between client and venue: one-way delays with seeded jitter (SPEC §7 'what bites').

Bybit is never answered in zero time; a client written against a zero-latency simulator can
race itself (pybit records a subscription only after sending it). Pure: returns seconds.
"""

from __future__ import annotations

import random


class NetworkDelay:
    """One-way delay per REST leg and per WS frame: ``ms × uniform(1 - jitter, 1 + jitter)``."""

    def __init__(self, *, rest_ms: float, ws_ms: float, jitter: float, seed: int) -> None:
        self.rest_ms, self.ws_ms, self.jitter = rest_ms, ws_ms, jitter
        self._rng = random.Random(seed * 6151 + 11)

    def _draw(self, ms: float) -> float:
        if ms <= 0:
            return 0.0
        return ms * self._rng.uniform(1 - self.jitter, 1 + self.jitter) / 1000

    def rest(self) -> float:
        return self._draw(self.rest_ms)

    def ws(self) -> float:
        return self._draw(self.ws_ms)
