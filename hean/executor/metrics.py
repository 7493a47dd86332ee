"""Prometheus metrics of the executor (`hean_executor_*`), one set per registry.

    hean_executor_intents_total                       intents received (including re-deliveries)
    hean_executor_orders_placed_total                 intents that ended PLACED (incl. resolved ambiguous ones)
    hean_executor_orders_rejected_total{reason}       invalid_intent / exchange_rejected
    hean_executor_duplicates_blocked_total{kind}      fingerprint (the seed's guard) / same_intent (journal)
    hean_executor_risk_blocked_total{state}           blocked by risk: NORMAL..HARD_STOP, risk_stale, reconciling,
                                                      unresolved_exposure, unknown_risk_state, risk_changed
                                                      (passed at admission, withdrawn as the request was to leave)
    hean_executor_ambiguous_total                     order requests whose outcome was unknown
    hean_executor_ambiguous_resolved_total{result}    placed (found on the exchange) / rejected (found Rejected) /
                                                      absent (never arrived) / exists_not_found (110072, never found)
    hean_executor_resolve_failures_total              lookups that could not reach the exchange (retried)
    hean_executor_request_seconds                     order/create latency, limiter wait included
    hean_executor_unresolved_orders                   orders in flight or of unknown outcome
    hean_executor_open_exposure{symbol}               their quantity per symbol (counts at full size)
    hean_executor_risk_state                          effective risk level 0..3 (3 also when stale)
    hean_executor_cancel_all_total{result}            QUARANTINE/HARD_STOP cancel-all calls per symbol (ok/failed)
    hean_executor_cancels_total{result}               single cancels of opening orders there (ok/gone/failed)
    hean_executor_resting_opening_orders{symbol}      opening orders found resting by the last sweep
Rate-limit waits are exported by the exchange client (`hean_exchange_ratelimit_waits_total`).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class ExecutorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        self.intents = Counter("hean_executor_intents_total", "Order intents received", registry=reg)
        self.placed = Counter("hean_executor_orders_placed_total", "Intents placed on the exchange", registry=reg)
        self.rejected = Counter("hean_executor_orders_rejected_total", "Intents rejected", ["reason"],
                                registry=reg)
        self.duplicates = Counter("hean_executor_duplicates_blocked_total", "Duplicates blocked", ["kind"],
                                  registry=reg)
        self.risk_blocked = Counter("hean_executor_risk_blocked_total", "Intents blocked by risk gating",
                                    ["state"], registry=reg)
        self.ambiguous = Counter("hean_executor_ambiguous_total", "Order requests with unknown outcome",
                                 registry=reg)
        self.resolved = Counter("hean_executor_ambiguous_resolved_total", "Unknown outcomes resolved by query",
                                ["result"], registry=reg)
        self.resolve_failures = Counter("hean_executor_resolve_failures_total",
                                        "Order lookups that could not reach the exchange", registry=reg)
        self.request_seconds = Histogram(
            "hean_executor_request_seconds", "order/create latency including rate-limit wait", registry=reg,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
        self.unresolved = Gauge("hean_executor_unresolved_orders", "Orders in flight or of unknown outcome",
                                registry=reg)
        self.exposure = Gauge("hean_executor_open_exposure", "Quantity of unresolved orders per symbol",
                              ["symbol"], registry=reg)
        self.risk_state = Gauge("hean_executor_risk_state", "Effective risk level (0 NORMAL .. 3 HARD_STOP)",
                                registry=reg)
        self.cancel_all = Counter("hean_executor_cancel_all_total", "QUARANTINE/HARD_STOP cancel-all calls",
                                  ["result"], registry=reg)
        self.cancels = Counter("hean_executor_cancels_total", "Opening orders cancelled one by one", ["result"],
                               registry=reg)
        self.resting_opening = Gauge("hean_executor_resting_opening_orders",
                                     "Opening orders resting under QUARANTINE/HARD_STOP (last sweep)", ["symbol"],
                                     registry=reg)
