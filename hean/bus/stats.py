"""Bus accounting: plain integer counters on the hot path, exported at scrape time.

A prometheus-client `Counter.labels(...).inc()` costs about a microsecond; at
hundreds of thousands of events per second that is a tax on every event.  So
the bus counts in dicts and a custom collector turns them into metrics when
Prometheus asks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CLASSES = ("lossy", "critical")


class BusStats(Collector):
    """Counters of one process's bus traffic (documented metric names in README)."""

    def __init__(self) -> None:
        self.published = dict.fromkeys(CLASSES, 0)
        self.dropped = dict.fromkeys(CLASSES, 0)          # publisher: peer saturated, lossy event dropped
        self.delayed = dict.fromkeys(CLASSES, 0)          # publisher: critical event had to wait for room
        self.send_failed = dict.fromkeys(CLASSES, 0)      # publisher: critical event still blocked after the timeout
        self.received = dict.fromkeys(CLASSES, 0)
        self.queue_dropped = dict.fromkeys(CLASSES, 0)    # subscriber: in-process queue full, tick dropped
        self.queue_delayed = dict.fromkeys(CLASSES, 0)    # subscriber: critical event waited for queue room
        self.queue_failed = dict.fromkeys(CLASSES, 0)     # subscriber: critical event could not be queued in time
        self.lost: defaultdict[tuple[str, str], int] = defaultdict(int)       # (source, class) -> events missing from seq
        self.restarts: defaultdict[str, int] = defaultdict(int)               # source -> new publisher streams seen
        self.malformed: defaultdict[str, int] = defaultdict(int)              # reason -> frames skipped
        self.handler_errors = 0
        self.queue_depth: Callable[[], int] = lambda: 0   # read at scrape time from the live queue
        self.queue_capacity = 0
        self.subscribers: dict[str, int] = dict.fromkeys(CLASSES, 0)

    def register(self, registry: CollectorRegistry) -> BusStats:
        registry.register(self)
        return self

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield from self._by_class("hean_bus_published", "Events sent by this process", self.published)
        yield from self._by_class("hean_bus_dropped", "Lossy events dropped because a subscriber was saturated",
                                  self.dropped)
        yield from self._by_class("hean_bus_delayed", "Critical events that waited for a saturated subscriber",
                                  self.delayed)
        yield from self._by_class("hean_bus_send_failed", "Critical events not sent within the backpressure timeout",
                                  self.send_failed)
        yield from self._by_class("hean_bus_received", "Events received by this process", self.received)
        yield from self._by_class("hean_bus_queue_dropped", "Lossy events dropped because the in-process queue was full",
                                  self.queue_dropped)
        yield from self._by_class("hean_bus_queue_delayed", "Critical events that waited for in-process queue room",
                                  self.queue_delayed)
        yield from self._by_class("hean_bus_queue_failed", "Critical events not queued within the timeout",
                                  self.queue_failed)
        lost = CounterMetricFamily("hean_bus_lost", "Events missing from a publisher's sequence (gaps)",
                                   labels=["source", "class"])
        for (source, klass), n in sorted(self.lost.items()):
            lost.add_metric([source, klass], n)
        yield lost
        restarts = CounterMetricFamily("hean_bus_stream_restarts", "Publisher restarts seen (new epoch)",
                                       labels=["source"])
        for source, n in sorted(self.restarts.items()):
            restarts.add_metric([source], n)
        yield restarts
        bad = CounterMetricFamily("hean_bus_malformed", "Inbound frames skipped as malformed", labels=["reason"])
        for reason, n in sorted(self.malformed.items()):
            bad.add_metric([reason], n)
        yield bad
        yield CounterMetricFamily("hean_bus_handler_errors", "Handler exceptions (event skipped, loop continues)",
                                  value=self.handler_errors)
        depth = self.queue_depth()
        yield GaugeMetricFamily("hean_bus_queue_depth", "Events waiting in the in-process queue", value=depth)
        yield GaugeMetricFamily("hean_bus_queue_capacity", "Size of the in-process queue", value=self.queue_capacity)
        util = depth / self.queue_capacity if self.queue_capacity else 0.0
        yield GaugeMetricFamily("hean_bus_queue_utilization", "In-process queue fill ratio (0-1)", value=util)
        subs = GaugeMetricFamily("hean_bus_subscribers", "Subscriptions currently held by peers", labels=["class"])
        for klass in CLASSES:
            subs.add_metric([klass], self.subscribers[klass])
        yield subs

    @staticmethod
    def _by_class(name: str, doc: str, values: dict[str, int]) -> Iterator[CounterMetricFamily]:
        fam = CounterMetricFamily(name, doc, labels=["class"])
        for klass in CLASSES:
            fam.add_metric([klass], values[klass])
        yield fam
