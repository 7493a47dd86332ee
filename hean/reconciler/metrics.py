"""Prometheus metrics of the reconciler (registered per registry so tests can run several)."""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge


class ReconcilerMetrics:
    """hean_reconciler_*: see the module docstring of hean.reconciler.service for meanings."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.catchups = Counter("hean_reconciler_catchups_total", "REST catch-ups started, by trigger",
                                ["trigger"], registry=registry)
        self.catchup_failures = Counter("hean_reconciler_catchup_failures_total",
                                        "Catch-ups that could not finish (exchange unavailable)", ["trigger"],
                                        registry=registry)
        self.fills = Counter("hean_reconciler_fills_total", "Fills published, by where they were first seen",
                             ["source"], registry=registry)
        self.executions = Counter("hean_reconciler_executions_total", "New executions recorded, by execType",
                                  ["exec_type"], registry=registry)
        self.last_duration = Gauge("hean_reconciler_last_catchup_duration_seconds",
                                   "Duration of the last successful catch-up", registry=registry)
        self.last_success = Gauge("hean_reconciler_last_success_timestamp_seconds",
                                  "Unix time of the last successful catch-up (0 = none yet)", registry=registry)
        self.since_success = Gauge("hean_reconciler_seconds_since_last_success",
                                   "Seconds since the last successful catch-up (-1 = none yet)", registry=registry)
        self.since_success.set_function(
            lambda: time.time() - self.last_success._value.get() if self.last_success._value.get() else -1.0)
        self.reconciling = Gauge("hean_reconciler_reconciling", "1 while a gap catch-up is in progress",
                                 registry=registry)
        self.mismatches = Gauge("hean_reconciler_mismatches",
                                "Symbols whose position the ledger cannot explain right now", registry=registry)
        self.foreign = Counter("hean_reconciler_foreign_total", "Orders/positions not created by HEAN, flagged",
                               ["kind"], registry=registry)
        self.alerts = Counter("hean_reconciler_alerts_total", "Escalated reconciliation alerts, by kind",
                              ["kind"], registry=registry)
        self.republished = Counter("hean_reconciler_replayed_total",
                                   "Fills published at start-up that an earlier run recorded but never marked",
                                   registry=registry)
        self.stale = Counter("hean_reconciler_stale_reports_total",
                             "Reports not published: older than (or a repeat of) what was, by kind",
                             ["kind"], registry=registry)
        self.account_polls = Counter("hean_reconciler_account_polls_total",
                                     "Wallet+position polls while a position is open, by result", ["result"],
                                     registry=registry)
        self.transfers = Counter("hean_reconciler_transfers_total", "Transfers published, by direction",
                                 ["direction"], registry=registry)
        self.transfer_check_failures = Counter("hean_reconciler_transfer_check_failures_total",
                                               "Transaction-log reads that failed (the equity reading was held)",
                                               registry=registry)
        # Money on the dashboard (float is fine here: a display, never an order or a ledger value).
        self.wallet_balance = Gauge("hean_reconciler_wallet_balance", "Last wallet balance read (USDT, no uPnL)",
                                    registry=registry)
        self.unrealised_pnl = Gauge("hean_reconciler_unrealised_pnl", "Last unrealised PnL read (totalPerpUPL)",
                                    registry=registry)
        self.fees = Counter("hean_reconciler_fees_total", "Fees paid on new executions (execFee > 0), by execType",
                            ["exec_type"], registry=registry)
        self.rebates = Counter("hean_reconciler_rebates_total", "Fee rebates on new executions (execFee < 0)",
                               ["exec_type"], registry=registry)

    def observe_equity(self, event: dict[str, Any]) -> None:
        for gauge, key in ((self.wallet_balance, "wallet_balance"), (self.unrealised_pnl, "unrealised_pnl")):
            value = _number(event.get(key))
            if value is not None:
                gauge.set(value)

    def observe_execution(self, row: dict[str, Any]) -> None:
        fee = _number(row.get("execFee"))
        if fee:
            (self.fees if fee > 0 else self.rebates).labels(str(row.get("execType"))).inc(abs(fee))


def _number(value: Any) -> float | None:
    try:
        d = Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None
    return float(d) if d is not None and d.is_finite() else None
