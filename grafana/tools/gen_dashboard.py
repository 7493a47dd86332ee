"""Generate grafana/dashboards/hean-overview.json (plain JSON, Grafana's dashboard schema 39).

    python grafana/tools/gen_dashboard.py          # writes the file; CI checks it is up to date

Rows: money, risk, orders, fills, positions, bus, processes. Every panel queries the
Prometheus datasource variable and filters by the `stack` variable; thresholds come from
the `stack:*:threshold` series (grafana/rules/hean_thresholds.yaml), so a panel shows the
limits the processes really run with.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "dashboards" / "hean-overview.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
S = 'stack=~"$stack"'

# (row title, [(panel title, kind, unit, [(expr, legend)], extra field config)])
ROWS: list[tuple[str, list[tuple[str, str, str, list[tuple[str, str]], dict[str, Any]]]]] = [
    ("Money", [
        ("Equity", "timeseries", "currencyUSD", [(f"hean_risk_equity{{{S}}}", "equity {{stack}}"),
                                                 (f"hean_risk_initial_capital{{{S}}}", "initial capital {{stack}}")], {}),
        ("PnL: realised (since the drawdown base) and unrealised", "timeseries", "currencyUSD",
         [(f"stack:hean_realised_pnl:usdt{{{S}}}", "realised {{stack}}"),
          (f"hean_reconciler_unrealised_pnl{{{S}}}", "unrealised {{stack}}")], {}),
        ("Fees paid (1 h)", "timeseries", "currencyUSD",
         [(f"sum by (stack) (increase(hean_reconciler_fees_total{{{S}}}[1h]))"
           f" or on (stack) 0 * max by (stack) (hean_reconciler_wallet_balance{{{S}}})", "fees {{stack}}")], {}),
        ("Drawdown against the thresholds", "timeseries", "percent",
         [(f"hean_risk_drawdown_pct{{{S}}}", "drawdown {{stack}}"),
          (f"stack:hean_risk_soft_brake_pct:threshold{{{S}}}", "SOFT_BRAKE {{stack}}"),
          (f"stack:hean_risk_quarantine_pct:threshold{{{S}}}", "QUARANTINE {{stack}}"),
          (f"stack:hean_risk_hard_stop_pct:threshold{{{S}}}", "HARD_STOP {{stack}}")], {}),
    ]),
    ("Risk", [
        ("Risk state", "state-timeline", "none", [(f"hean_risk_state{{{S}}}", "{{stack}}")], {"mappings": [
            {"type": "value", "options": {
                "0": {"text": "NORMAL", "color": "green"}, "1": {"text": "SOFT_BRAKE", "color": "yellow"},
                "2": {"text": "QUARANTINE", "color": "orange"}, "3": {"text": "HARD_STOP", "color": "red"}}}]}),
        ("Executor's effective risk state (3 also when risk is stale)", "state-timeline", "none",
         [(f"hean_executor_risk_state{{{S}}}", "{{stack}}")], {}),
        ("Equity age", "timeseries", "s", [(f"hean_risk_equity_age_seconds{{{S}}}", "{{stack}}"),
                                           (f"stack:hean_risk_equity_stale_seconds:threshold{{{S}}}", "stale limit {{stack}}")], {}),
        ("Risk transitions (1 h)", "timeseries", "short",
         [(f"sum by (stack, reason) (increase(hean_risk_transitions_total{{{S}}}[1h]))"
           f" or on (stack) label_replace(0 * max by (stack) (hean_risk_state{{{S}}}), \"reason\", \"none\", \"\", \"\")",
           "{{stack}} {{reason}}")], {}),
    ]),
    ("Orders", [
        ("Intents and orders placed", "timeseries", "ops",
         [(f"sum by (stack) (rate(hean_executor_intents_total{{{S}}}[5m]))", "intents {{stack}}"),
          (f"sum by (stack) (rate(hean_executor_orders_placed_total{{{S}}}[5m]))", "placed {{stack}}")], {}),
        ("Rejected by reason", "timeseries", "ops",
         [(f"stack:hean_executor_orders_rejected:rate5m{{{S}}}", "{{stack}} {{reason}}")], {}),
        ("Duplicates blocked", "timeseries", "ops",
         [(f"stack:hean_executor_duplicates_blocked:rate5m{{{S}}}", "{{stack}} {{kind}}")], {}),
        ("Blocked by risk", "timeseries", "ops",
         [(f"sum by (stack, state) (rate(hean_executor_risk_blocked_total{{{S}}}[5m]))"
           f" or on (stack) label_replace(0 * sum by (stack) (rate(hean_executor_intents_total{{{S}}}[5m])), \"state\", \"none\", \"\", \"\")",
           "{{stack}} {{state}}")], {}),
        ("order/create latency", "timeseries", "s",
         [(f"stack:hean_executor_request_seconds:p50_5m{{{S}}}", "p50 {{stack}}"),
          (f"stack:hean_executor_request_seconds:p99_5m{{{S}}}", "p99 {{stack}}")], {}),
    ]),
    ("Fills", [
        ("Fills by source (ws / rest)", "timeseries", "ops",
         [(f"stack:hean_reconciler_fills:rate5m{{{S}}}", "{{stack}} {{source}}")], {}),
        ("Time since the last successful reconcile", "timeseries", "s",
         [(f"hean_reconciler_seconds_since_last_success{{{S}}}", "{{stack}}")],
         {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 180}]}}),
        ("Private WebSocket connected", "state-timeline", "none",
         [(f"hean_ws_connected{{{S}, name=\"private\"}}", "{{stack}} {{service}}")], {}),
    ]),
    ("Positions", [
        ("Open positions", "timeseries", "short", [(f"hean_watchdog_positions_tracked{{{S}}}", "{{stack}}")], {}),
        ("Oldest position age against max hold", "timeseries", "s",
         [(f"hean_watchdog_oldest_position_age_seconds{{{S}}}", "oldest {{stack}}"),
          (f"stack:hean_position_age_limit_seconds:threshold{{{S}}}", "limit {{stack}}")], {}),
        ("Force-closes by outcome (1 h)", "timeseries", "short",
         [(f"stack:hean_watchdog_force_closes:increase1h{{{S}}}", "{{stack}} {{outcome}}")], {}),
    ]),
    ("Bus", [
        ("Queue utilisation per process", "timeseries", "percentunit",
         [(f"hean_bus_queue_utilization{{{S}}}", "{{stack}} {{service}}")],
         {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                        {"color": "orange", "value": 0.8}, {"color": "red", "value": 0.95}]}}),
        ("Drops per process", "timeseries", "ops", [(f"service:hean_bus_dropped:rate5m{{{S}}}", "{{stack}} {{service}}")], {}),
        ("Gaps per process", "timeseries", "ops", [(f"service:hean_bus_lost:rate5m{{{S}}}", "{{stack}} {{service}}")], {}),
    ]),
    ("Processes", [
        ("Up", "state-timeline", "none", [(f"up{{job=\"hean\", {S}}}", "{{stack}} {{service}}")],
         {"mappings": [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "up", "color": "green"}}}]}),
        ("Ready", "state-timeline", "none", [(f"hean_ready{{job=\"hean\", {S}}}", "{{stack}} {{service}}")], {}),
        ("Restarts (1 h)", "timeseries", "short",
         [(f"changes(hean_start_time_seconds{{job=\"hean\", {S}}}[1h])", "{{stack}} {{service}}")], {}),
        ("Resident memory", "timeseries", "bytes",
         [(f"process_resident_memory_bytes{{job=\"hean\", {S}}}", "{{stack}} {{service}}")], {}),
        ("CPU", "timeseries", "percentunit",
         [(f"rate(process_cpu_seconds_total{{job=\"hean\", {S}}}[1m])", "{{stack}} {{service}}")], {}),
    ]),
]


def panel(pid: int, title: str, kind: str, unit: str, targets: list[tuple[str, str]], extra: dict[str, Any],
          x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit, **{k: v for k, v in extra.items()}}
    return {
        "id": pid, "type": kind, "title": title, "datasource": DS,
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend,
                     "range": True} for i, (expr, legend) in enumerate(targets)],
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for title, row_panels in ROWS:
        panels.append({"id": pid, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, spec in enumerate(row_panels):
            panels.append(panel(pid, *spec, x=(i % 3) * 8, y=y + (i // 3) * 8))
            pid += 1
        y += ((len(row_panels) + 2) // 3) * 8
    return {
        "uid": "hean-overview", "title": "HEAN overview", "tags": ["hean"], "editable": False,
        "schemaVersion": 39, "version": 1, "refresh": "30s", "timezone": "utc",
        "time": {"from": "now-6h", "to": "now"}, "graphTooltip": 1,
        "annotations": {"list": []}, "links": [],
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus",
             "current": {}, "hide": 0, "refresh": 1, "regex": ""},
            {"name": "stack", "type": "query", "label": "Stack", "datasource": DS,
             "query": {"query": 'label_values(up{job="hean"}, stack)', "refId": "StackVariable"},
             "definition": 'label_values(up{job="hean"}, stack)', "includeAll": True, "multi": True,
             "allValue": ".*", "current": {"text": "All", "value": "$__all"}, "refresh": 2, "sort": 1, "hide": 0},
        ]},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
