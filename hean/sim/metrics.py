"""Prometheus metrics of one simulator instance (own registry, so many can coexist)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class SimMetrics:
    """Counters the demo dashboards and tests read from /metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.orders_created = Counter(
            "hean_sim_orders_created_total", "Orders accepted by the simulator", ["symbol"], registry=registry)
        self.executions = Counter(
            "hean_sim_executions_total", "Executions produced", ["symbol", "exec_type"], registry=registry)
        self.rejects = Counter(
            "hean_sim_rejects_total", "Non-zero retCodes returned", ["ret_code"], registry=registry)
        self.faults = Counter(
            "hean_sim_faults_injected_total", "Faults actually injected", ["kind"], registry=registry)
        self.ws_connections = Gauge(
            "hean_sim_ws_connections", "Open WebSocket connections", ["stream"], registry=registry)
        self.requests = Counter(
            "hean_sim_rest_requests_total", "REST requests by path", ["path"], registry=registry)
