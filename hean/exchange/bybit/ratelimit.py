"""Per-endpoint async rate limiter (SPEC §1.6).

Each endpoint has its own rolling 1 s budget (Bybit counts per UID per endpoint). The
budget starts from the documented defaults and follows the X-Bapi-Limit* headers.
After a 10006 the whole endpoint is closed until the server's reset time, so no caller
spins against it. Waiters are served by priority: cancels and reduce-only orders go
before orders that open risk, queries last.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from hean.exchange.bybit import constants as c

WINDOW_S = 1.0


class Priority(enum.IntEnum):
    CANCEL = 0
    REDUCE = 1
    OPEN = 2
    QUERY = 3


@dataclass
class _Group:
    limit: int
    sends: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0
    waiters: list[tuple[int, int, asyncio.Future[float]]] = field(default_factory=list)
    dispatcher: asyncio.Task[None] | None = None
    wake: asyncio.Event | None = None  # set by refund(): a slot came back before the window moved on


class RateLimiter:
    """Grants request slots per endpoint group; one dispatcher task per busy group."""

    def __init__(self, *, limits: dict[str, int] | None = None,
                 default_limit: int = c.DEFAULT_PUBLIC_LIMIT_PER_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._limits = dict(c.DEFAULT_LIMIT_PER_S if limits is None else limits)
        self._default_limit = default_limit
        self._now = monotonic
        self._groups: dict[str, _Group] = {}
        self._seq = itertools.count()

    def _group(self, name: str) -> _Group:
        group = self._groups.get(name)
        if group is None:
            group = _Group(limit=self._limits.get(name, self._default_limit))
            self._groups[name] = group
        return group

    def limit_of(self, name: str) -> int:
        return self._group(name).limit

    def blocked_for(self, name: str) -> float:
        """Seconds until the group reopens after a 10006 / exhausted budget (0 if open)."""
        return max(0.0, self._group(name).blocked_until - self._now())

    def _wait_needed(self, group: _Group, now: float) -> float:
        while group.sends and group.sends[0] <= now - WINDOW_S:
            group.sends.popleft()
        wait = max(0.0, group.blocked_until - now)
        if len(group.sends) >= group.limit:
            wait = max(wait, group.sends[0] + WINDOW_S - now)
        return wait

    async def acquire(self, name: str, priority: Priority = Priority.QUERY) -> float:
        """Wait for a slot; returns the seconds waited (0.0 when granted at once)."""
        waited, _ = await self.slot(name, priority)
        return waited

    async def slot(self, name: str, priority: Priority = Priority.QUERY) -> tuple[float, float]:
        """Wait for a slot; returns (seconds waited, the grant's timestamp for `refund`)."""
        group = self._group(name)
        now = self._now()
        if not group.waiters and self._wait_needed(group, now) <= 0:
            group.sends.append(now)
            return 0.0, now
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        heapq.heappush(group.waiters, (int(priority), next(self._seq), future))
        if group.dispatcher is None or group.dispatcher.done():
            group.dispatcher = asyncio.create_task(self._dispatch(group), name=f"ratelimit:{name}")
        try:
            granted_at = await future
        finally:
            if not future.done():
                future.cancel()  # caller was cancelled; the dispatcher skips it
        return self._now() - now, granted_at

    async def _dispatch(self, group: _Group) -> None:
        while group.waiters:
            if group.waiters[0][2].done():
                heapq.heappop(group.waiters)
                continue
            wait = self._wait_needed(group, self._now())
            if wait > 0:
                if group.wake is None:
                    group.wake = asyncio.Event()
                group.wake.clear()
                try:
                    await asyncio.wait_for(group.wake.wait(), wait)
                except TimeoutError:
                    pass
                continue
            _, _, future = heapq.heappop(group.waiters)
            granted_at = self._now()
            group.sends.append(granted_at)
            future.set_result(granted_at)
        group.dispatcher = None

    def refund(self, name: str, granted_at: float) -> None:
        """Give back a slot (by its grant timestamp): its request was withdrawn and never sent."""
        group = self._group(name)
        try:
            group.sends.remove(granted_at)
        except ValueError:
            return  # already out of the window
        if group.wake is not None:
            group.wake.set()

    def update(self, name: str, *, limit: int | None, remaining: int | None,
               reset_in_s: float | None) -> None:
        """Apply X-Bapi-Limit* headers from a response of this endpoint."""
        group = self._group(name)
        if limit is not None and limit > 0:
            group.limit = limit
        if remaining is not None and remaining <= 0 and reset_in_s is not None and reset_in_s > 0:
            self.block(name, reset_in_s)

    def block(self, name: str, reset_in_s: float | None) -> None:
        """Close the group until the reset time (after 10006); fallback 2 s, capped."""
        seconds = c.RATE_LIMIT_FALLBACK_WAIT_S if reset_in_s is None or reset_in_s <= 0 else reset_in_s
        seconds = min(seconds, c.RATE_LIMIT_MAX_WAIT_S)
        group = self._group(name)
        group.blocked_until = max(group.blocked_until, self._now() + seconds)

    async def close(self) -> None:
        """Cancel dispatchers and fail their waiters (used on client shutdown)."""
        for group in self._groups.values():
            task = group.dispatcher
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            for _, _, future in group.waiters:
                if not future.done():
                    future.cancel()
            group.waiters.clear()
            group.dispatcher = None
