"""The risk process's Prometheus series (prefix hean_risk_; listed in hean/risk/service.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from hean.risk.core import RiskGovernorCore, RiskState


class RiskMetrics:
    """The risk process's Prometheus series, registered in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.state = Gauge("hean_risk_state", "Risk state as a number: 0 NORMAL, 1 SOFT_BRAKE, "
                           "2 QUARANTINE, 3 HARD_STOP", registry=registry)
        self.state_info = Gauge("hean_risk_state_info", "1 for the current risk state", ["state"],
                                registry=registry)
        self.drawdown = Gauge("hean_risk_drawdown_pct", "Drawdown from initial capital in percent",
                              registry=registry)
        self.equity = Gauge("hean_risk_equity", "Last accepted account equity", registry=registry)
        self.initial = Gauge("hean_risk_initial_capital", "Initial capital drawdown is measured from",
                             registry=registry)
        self.transitions = Counter("hean_risk_transitions_total", "Risk state transitions by reason code",
                                   ["reason"], registry=registry)
        self.invalid = Counter("hean_risk_invalid_equity_total", "Equity updates rejected as invalid",
                               registry=registry)
        self.equity_age = Gauge("hean_risk_equity_age_seconds", "Age of the equity judged, from the exchange's "
                                "time of its oldest input", registry=registry)
        self.transfers = Counter("hean_risk_transfers_total", "Transfers that moved the drawdown base",
                                 ["direction"], registry=registry)
        self.transferred = Gauge("hean_risk_transferred_amount", "Net amount transferred in (+) or out (-) "
                                 "since the process started", registry=registry)
        self.marked = Gauge("hean_risk_marked_positions", "Open positions marked to the feed's mark price",
                            registry=registry)

    def show(self, core: RiskGovernorCore) -> None:
        self.state.set(core.state.level)
        for s in RiskState:
            self.state_info.labels(s.value).set(1 if s is core.state else 0)
        self.drawdown.set(core.drawdown_pct)
        if core.equity is not None:
            self.equity.set(float(core.equity))
        if core.initial_capital is not None:
            self.initial.set(float(core.initial_capital))
