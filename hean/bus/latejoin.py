"""Re-sending once-only events to a peer that subscribed after they went out.

PUB/SUB drops every message sent before a peer's subscription reached the publishing socket.
After a publisher restarts, its peers reconnect within a few hundred ms; whatever it published
first (the reconciler's catch-up fills, the executor's outcomes for orders resolved at start-up)
reaches only the peers that were back already. State-like topics are re-published every second
anyway; once-only events (a fill, a transfer, an order outcome) are not, so each publisher keeps
the last `window_s` of them and, when a peer subscribes to their topics (the XPUB socket reports
every peer's subscription, see `Publisher.on_subscribe`), sends them again flagged
`replay: true`. Their consumers dedupe (fills by exec_id, transfers by id, outcomes by intent),
so a re-send is harmless to a peer that had them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("hean.bus")
Publish = Callable[[str, str, dict[str, Any]], Awaitable[Any]]

WINDOW_S = 5.0        # a peer that subscribes gets this many seconds of once-only events again
COALESCE_S = 0.05     # one re-send for the burst of subscriptions a peer makes when it connects


class LateJoinResend:
    """The last seconds of once-only events on `prefixes`, re-sent after each burst of subscriptions."""

    def __init__(self, prefixes: tuple[str, ...], window_s: float = WINDOW_S) -> None:
        self.prefixes = prefixes
        self.window_s = window_s
        self._recent: deque[tuple[float, str, str, dict[str, Any]]] = deque()
        self._joined = asyncio.Event()
        self.resent = 0

    def remember(self, topic: str, type_: str, data: dict[str, Any]) -> None:
        now = time.monotonic()
        self._recent.append((now, topic, type_, data))
        while self._recent and self._recent[0][0] < now - self.window_s:
            self._recent.popleft()

    def on_subscribe(self, klass: str, prefix: str) -> None:
        """The Publisher hook: a critical subscription overlapping one of our prefixes is a (late) joiner."""
        if klass == "critical" and any(p.startswith(prefix) or prefix.startswith(p) for p in self.prefixes):
            self._joined.set()

    def served(self) -> None:
        """Peers that subscribed by now are served otherwise (e.g. by a start-up replay): forget them."""
        self._joined.clear()

    def recent(self) -> list[tuple[str, str, dict[str, Any]]]:
        cutoff = time.monotonic() - self.window_s
        return [(topic, type_, data) for at, topic, type_, data in self._recent if at >= cutoff]

    async def run(self, publish: Publish, on_resent: Callable[[int], None] | None = None) -> None:
        """Forever: wait for a joiner, let its burst of subscriptions arrive, re-send the window."""
        while True:
            await self._joined.wait()
            await asyncio.sleep(COALESCE_S)
            self._joined.clear()
            recent = self.recent()
            for topic, type_, data in recent:
                await publish(topic, type_, data | {"replay": True})
            if recent:
                self.resent += len(recent)
                if on_resent is not None:
                    on_resent(len(recent))
                log.info("re-sent recent once-only events to a peer that subscribed late",
                         extra={"events": len(recent), "window_s": self.window_s,
                                "topics": sorted({t for t, _, _ in recent})[:10]})
