"""Prometheus metrics for the Bybit client, created once per registry.

Several clients (and several tests) share one process; caching per registry avoids
duplicate-registration errors while still letting tests use a private registry.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class ExchangeMetrics:
    request_seconds: Histogram
    responses: Counter
    ratelimit_waits: Counter
    ratelimit_wait_seconds: Histogram
    ws_reconnects: Counter
    ws_malformed: Counter
    ws_messages: Counter
    ws_connected: Gauge        # alerting: a private stream down > 60 s
    clock_offset: Gauge        # alerting: offset to the exchange beyond the recv window
    recv_window: Gauge


_cache: "weakref.WeakKeyDictionary[CollectorRegistry, ExchangeMetrics]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _build(registry: CollectorRegistry) -> ExchangeMetrics:
    return ExchangeMetrics(
        request_seconds=Histogram(
            "hean_exchange_request_seconds", "Bybit REST request latency per attempt",
            ["endpoint"], registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        ),
        responses=Counter(
            "hean_exchange_responses_total", "Bybit REST attempts by classified outcome and retCode",
            ["endpoint", "outcome", "ret_code"], registry=registry,
        ),
        ratelimit_waits=Counter(
            "hean_exchange_ratelimit_waits_total", "Requests that had to wait for the rate limiter",
            ["endpoint"], registry=registry,
        ),
        ratelimit_wait_seconds=Histogram(
            "hean_exchange_ratelimit_wait_seconds", "Time spent waiting for the rate limiter",
            ["endpoint"], registry=registry, buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 60.0),
        ),
        ws_reconnects=Counter(
            "hean_ws_reconnects_total", "WebSocket reconnect attempts", ["name"], registry=registry,
        ),
        ws_malformed=Counter(
            "hean_ws_malformed_total", "WebSocket frames skipped as malformed", ["name"], registry=registry,
        ),
        ws_messages=Counter(
            "hean_ws_messages_total", "WebSocket data messages delivered", ["name"], registry=registry,
        ),
        ws_connected=Gauge(
            "hean_ws_connected", "1 while the WebSocket is connected and subscribed", ["name"], registry=registry,
        ),
        clock_offset=Gauge(
            "hean_exchange_clock_offset_seconds", "Exchange clock minus local clock, last measured",
            registry=registry,
        ),
        recv_window=Gauge(
            "hean_exchange_recv_window_seconds", "recv_window signed requests carry", registry=registry,
        ),
    )


def metrics_for(registry: CollectorRegistry | None) -> ExchangeMetrics:
    """The metric set bound to `registry` (default: the global REGISTRY)."""
    reg = REGISTRY if registry is None else registry
    with _lock:
        found = _cache.get(reg)
        if found is None:
            found = _build(reg)
            _cache[reg] = found
        return found
