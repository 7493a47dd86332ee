"""Per-uid, per-endpoint rolling 1-second limits (SPEC §1.6) plus forced-10006 faults."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

WINDOW_MS = 1000
ORDER_WRITE_PATHS = frozenset({"/v5/order/create", "/v5/order/amend", "/v5/order/cancel", "/v5/order/cancel-all"})
ORDER_WRITE_LIMIT = 10
QUERY_LIMIT = 50


@dataclass(frozen=True)
class Verdict:
    """Outcome of one request against its bucket, with the three header values."""

    allowed: bool
    limit: int
    remaining: int
    reset_ms: int

    def headers(self) -> dict[str, str]:
        return {
            "X-Bapi-Limit": str(self.limit),
            "X-Bapi-Limit-Status": str(self.remaining),
            "X-Bapi-Limit-Reset-Timestamp": str(self.reset_ms),
        }


class RateLimiter:
    """Sliding-log limiter: a request is allowed if fewer than ``limit`` fell in the last second."""

    def __init__(self, scale: float, public_limit: int) -> None:
        self._scale = scale
        self._public_limit = public_limit
        self._log: dict[tuple[str, str], deque[int]] = defaultdict(deque)
        self.forced_count = 0
        self.forced_until_ms = 0

    def limit_for(self, path: str, public: bool) -> int:
        if public:
            base = self._public_limit
        else:
            base = ORDER_WRITE_LIMIT if path in ORDER_WRITE_PATHS else QUERY_LIMIT
        return max(1, int(base * self._scale))

    def check(self, who: str, path: str, now_ms: int, *, public: bool = False) -> Verdict:
        """Count one request; refuse it (without counting) when the bucket is full or a fault forces it."""
        limit = self.limit_for(path, public)
        log = self._log[(who, path)]
        while log and log[0] <= now_ms - WINDOW_MS:
            log.popleft()
        if not public and (self.forced_count > 0 or now_ms < self.forced_until_ms):
            if self.forced_count > 0:
                self.forced_count -= 1
            reset = max(self.forced_until_ms, now_ms + WINDOW_MS)
            return Verdict(False, limit, 0, reset)
        if len(log) >= limit:
            return Verdict(False, limit, 0, log[0] + WINDOW_MS)
        log.append(now_ms)
        return Verdict(True, limit, limit - len(log), now_ms)

    def force(self, count: int = 0, seconds: float = 0.0, now_ms: int = 0) -> None:
        """Fault: refuse the next ``count`` private requests and/or all for ``seconds``."""
        self.forced_count += count
        if seconds > 0:
            self.forced_until_ms = max(self.forced_until_ms, now_ms + int(seconds * 1000))

    def reset_faults(self) -> None:
        self.forced_count = 0
        self.forced_until_ms = 0
