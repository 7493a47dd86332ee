"""Fault-injection switches the control API flips and the REST layer consults.

Pure bookkeeping: deciding *whether* a request is faulted; the server does the rest.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class HttpFault:
    """Fail matching requests with ``status`` before or after the handler applies them."""

    when: str
    status: int
    count: int = 0
    fraction: float = 0.0
    path: str | None = None


@dataclass
class DelayReply:
    """Hold the reply to the next ``count`` requests on ``path`` for ``ms`` (answered from arrival state)."""

    path: str
    ms: int
    count: int


@dataclass
class PushFaults:
    """Private-stream faults the exchange consults while it emits (pure counters)."""

    double_filled: int = 0      # next K Filled orders: a second Filled push, as when a cancel races the fill
    execution_first: int = 0    # next K orders: no New push, execution pushed before the order push
    duplicate: dict[str, int] = field(default_factory=dict)   # topic -> next K messages sent twice

    def take(self, name: str) -> bool:
        left = getattr(self, name)
        if left > 0:
            setattr(self, name, left - 1)
        return left > 0

    def take_duplicate(self, topic: str) -> bool:
        left = self.duplicate.get(topic, 0)
        if left > 0:
            self.duplicate[topic] = left - 1
        return left > 0

    def reset(self) -> None:
        self.double_filled = self.execution_first = 0
        self.duplicate.clear()


@dataclass
class Faults:
    """Active faults; ``reset`` clears everything."""

    seed: int
    timeout_after_accept: int = 0
    latency_ms: int = 0
    http: list[HttpFault] = field(default_factory=list)
    ws_drop_every_s: float | None = None
    delay_replies: list[DelayReply] = field(default_factory=list)
    push: PushFaults = field(default_factory=PushFaults)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed * 104729 + 3)

    def take_timeout(self, path: str) -> bool:
        """Consume one 'timeout after accept' for an order/create call."""
        if path == "/v5/order/create" and self.timeout_after_accept > 0:
            self.timeout_after_accept -= 1
            return True
        return False

    def take_http(self, path: str, when: str) -> int | None:
        """Return an HTTP status if this request must fail at stage ``when``."""
        for fault in self.http:
            if fault.when != when or (fault.path and fault.path != path):
                continue
            if fault.count > 0:
                fault.count -= 1
                if fault.count == 0 and fault.fraction == 0:
                    self.http.remove(fault)
                return fault.status
            if fault.fraction > 0 and self._rng.random() < fault.fraction:
                return fault.status
        return None

    def take_delay(self, path: str) -> int:
        """Milliseconds to hold this reply (0 = none); consumes one use of the first matching fault."""
        for fault in self.delay_replies:
            if fault.path == path:
                fault.count -= 1
                if fault.count <= 0:
                    self.delay_replies.remove(fault)
                return fault.ms
        return 0

    def reset(self) -> None:
        self.push.reset()
        self.delay_replies.clear()
        self.timeout_after_accept = 0
        self.latency_ms = 0
        self.http.clear()
        self.ws_drop_every_s = None
