"""Author grafana/tests/hean_alerts_test.yaml from the compact cases below.

    python grafana/tools/gen_alert_tests.py

Each case gives the input series and, per evaluation time, the alerts that must fire
(labels only). Times where the list is empty are the "does not fire" checks; near-miss
series (just under a threshold, the wrong stream, a flapping target) sit beside the
firing ones, so "fires only for the right series" is part of every firing check.
promtool compares annotations too: they are filled in from promtool's own rendering
(run once, then read in review) -- labels, timing and which series fire are the spec.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

GRAFANA = Path(__file__).resolve().parent.parent
OUT = GRAFANA / "tests" / "hean_alerts_test.yaml"
RULES = ["../rules/hean_rules.yaml", "../rules/hean_thresholds.yaml", "../alerts/hean_alerts.yaml"]


def t(svc: str, stack: str = "main", port: int | None = None) -> dict[str, str]:
    ports = {"feed": 9201, "executor": 9202, "reconciler": 9203, "risk": 9204, "watchdog": 9205, "strategy": 9206}
    p = port or ports[svc] + {"main": 0, "sub2": 100, "sub3": 200}[stack]
    return {"job": "hean", "instance": f"h:{p}", "stack": stack, "service": svc}


def s(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def up_and_start(*targets: dict[str, str], n: int = 60) -> list[dict[str, str]]:
    return [x for tg in targets for x in (s("up", tg, f"1x{n}"), s("hean_start_time_seconds", tg, f"0x{n}"))]


EX, FD, RC, RK, WD, ST = (t(x) for x in ("executor", "feed", "reconciler", "risk", "watchdog", "strategy"))
CASES: list[tuple[str, str, list[dict[str, str]], list[tuple[str, list[dict[str, str]]]]]] = [
    ("HeanProcessDown", "15s", [s("up", EX, "1 1 0 0 0 0 0 0"), s("up", FD, "1 0 1 0 1 0 1 0")],
     [("45s", []), ("1m15s", [EX])]),
    ("HeanProcessMissing", "15s", [s("up", t(x), "1x8") for x in ("risk", "reconciler", "executor", "watchdog", "feed")],
     [("30s", []), ("1m30s", [{"job": "hean", "service": "strategy"}])]),
    ("HeanProcessNotReady", "15s", [s("hean_ready", EX, "1 1 0 0 0 0 0 0 0"), s("hean_ready", FD, "0 0 1 1 1 1 1 1 1")],
     [("1m", []), ("2m", [EX])]),
    ("HeanProcessRestarting", "15s", [s("hean_start_time_seconds", EX, "100 100 200 200 300 300 400 400"),
                                      s("hean_start_time_seconds", FD, "100 100 200 200 200 200 200 200")],
     [("45s", []), ("1m45s", [EX])]),
    ("HeanUnitGaveUp", "15s", [s("hean_unit_gave_up", {"job": "node", "instance": "h:9100", "unit": "hean@executor.service"}, "0 0 1 1"),
                               s("hean_unit_gave_up", {"job": "node", "instance": "h:9100", "unit": "hean@feed.service"}, "0 0 0 0")],
     [("15s", []), ("45s", [{"job": "node", "instance": "h:9100", "unit": "hean@executor.service"}])]),
    ("HeanStackSilent", "15s", [s("up", EX, "1 1 0 0 0 0 0 0 0 0"), s("up", FD, "1 1 0 0 0 0 0 0 0 0"),
                                s("up", t("executor", "sub2"), "1x10"), s("up", t("feed", "sub2"), "0x10")],
     [("45s", []), ("2m", [{"stack": "main"}])]),
    ("HeanStackSilent", "15s", [s("hean_ready", EX, "1x10")],   # no target at all: Prometheus scrapes nothing
     [("2m", [{}])]),
    ("HeanBusQueueHigh", "15s", [s("hean_bus_queue_utilization", EX, "0.5 0.85 0.85 0.85 0.85 0.85 0.85"),
                                 s("hean_bus_queue_utilization", FD, "0.79x6")],
     [("1m", []), ("1m30s", [EX])]),
    ("HeanBusQueueCritical", "15s", [s("hean_bus_queue_utilization", EX, "0.96x6"),
                                     s("hean_bus_queue_utilization", FD, "0.94x6")],
     [("15s", []), ("1m", [EX])]),
    ("HeanBusCriticalEventsLost", "15s",
     up_and_start(ST, RK) + [s("hean_bus_lost_total", {**ST, "source": "executor", "class": "critical"}, "_ _ _ 2 2 2 2 2"),
                             s("hean_bus_lost_total", {**RK, "source": "feed", "class": "lossy"}, "0 5 10 15 20 25 30 35")],
     [("30s", []), ("1m", [ST])]),
    ("HeanBusCriticalEventsFailed", "15s",
     [s("hean_bus_send_failed_total", {**EX, "class": "critical"}, "0 0 0 1 1 1"),
      s("hean_bus_queue_failed_total", {**EX, "class": "critical"}, "0x6"),
      s("hean_bus_send_failed_total", {**FD, "class": "lossy"}, "0 3 6 9 12 15"),
      s("hean_bus_send_failed_total", {**FD, "class": "critical"}, "0x6"),
      s("hean_bus_queue_failed_total", {**FD, "class": "critical"}, "0x6")],
     [("30s", []), ("1m", [EX])]),
    ("HeanRiskSoftBrake", "15s", [s("hean_risk_state", RK, "0 1 1 2 2 3 3")], [("0s", []), ("15s", [RK]), ("45s", [])]),
    ("HeanRiskQuarantine", "15s", [s("hean_risk_state", RK, "0 1 1 2 2 3 3")], [("15s", []), ("45s", [RK]), ("1m15s", [])]),
    ("HeanRiskHardStop", "15s", [s("hean_risk_state", RK, "0 1 1 2 2 3 3")], [("45s", []), ("1m15s", [RK])]),
    ("HeanEquityStale", "15s", [s("hean_risk_equity_age_seconds", RK, "0 10 20 35 50 65"),
                                s("hean_risk_equity_age_seconds", t("risk", "sub2"), "25x6")],
     [("45s", []), ("1m", [RK])]),
    ("HeanExecutorFailingClosed", "15s", [s("hean_executor_risk_state", EX, "0 0 3 3 3 3 3"), s("hean_risk_state", RK, "0x7"),
                                          s("hean_executor_risk_state", t("executor", "sub2"), "3x7"),
                                          s("hean_risk_state", t("risk", "sub2"), "3x7")],
     [("45s", []), ("1m15s", [EX])]),
    ("HeanExecutorFailingClosed", "15s", [s("hean_executor_risk_state", EX, "0 0 3 3 3 3 3")],   # risk process gone
     [("1m15s", [EX])]),
    ("HeanDuplicateOrdersBlocked", "1m",
     up_and_start(EX, n=30) + [s("hean_executor_duplicates_blocked_total", {**EX, "kind": "fingerprint"}, "3x30"),
                               s("hean_executor_duplicates_blocked_total", {**EX, "kind": "same_intent"}, "_x13 1 1")],
     [("5m", [{**EX, "kind": "fingerprint"}]), ("12m", []), ("14m", [{**EX, "kind": "same_intent"}])]),
    ("HeanDuplicateOrdersBlocked", "1m",   # a fresh Prometheus meets an old process with old duplicates: silent
     [s("up", EX, "_x5 1x20"), s("hean_start_time_seconds", EX, "-86400x25"),
      s("hean_executor_duplicates_blocked_total", {**EX, "kind": "fingerprint"}, "_x5 3x20")],
     [("8m", [])]),
    ("HeanFillsRecoveredByRest", "1m",
     up_and_start(RC, n=40) + [s("hean_reconciler_fills_total", {**RC, "source": "ws"}, "0+5x40"),
                               s("hean_reconciler_fills_total", {**RC, "source": "rest"}, "_x20 1x20")],
     [("19m", []), ("21m", [RC])]),
    ("HeanPrivateWsDown", "15s", [s("hean_ws_connected", {**RC, "name": "private"}, "1 1 0 0 0 0 0 0 0"),
                                  s("hean_ws_connected", {**FD, "name": "public"}, "0x9")],
     [("1m15s", []), ("1m45s", [{**RC, "name": "private"}])]),
    ("HeanReconcileStale", "15s", [s("hean_reconciler_seconds_since_last_success", RC, "5+15x20"),
                                   s("hean_start_time_seconds", RC, "0x20"),
                                   s("hean_reconciler_seconds_since_last_success", t("reconciler", "sub2"), "-1x20"),
                                   s("hean_start_time_seconds", t("reconciler", "sub2"), "30x20"),
                                   s("hean_reconciler_seconds_since_last_success", t("reconciler", "sub3"), "3x20"),
                                   s("hean_start_time_seconds", t("reconciler", "sub3"), "0x20")],
     [("2m45s", []), ("3m15s", [RC]), ("4m", [RC, t("reconciler", "sub2")])]),
    ("HeanRateLimitWaitsSustained", "15s",
     [s("hean_exchange_ratelimit_waits_total", {**EX, "endpoint": "/v5/order/create"}, "0+30x60"),
      s("hean_exchange_ratelimit_waits_total", {**WD, "endpoint": "/v5/position/list"}, "0+1x60")],
     [("9m", []), ("12m", [EX])]),
    ("HeanClockOffsetBeyondRecvWindow", "15s",
     [s("hean_exchange_clock_offset_seconds", EX, "0.1 0.1 6 6"), s("hean_exchange_recv_window_seconds", EX, "5x4"),
      s("hean_exchange_clock_offset_seconds", RC, "-4.9 -4.9 -6 -6"), s("hean_exchange_recv_window_seconds", RC, "5x4"),
      s("hean_exchange_clock_offset_seconds", FD, "-4.9x4"), s("hean_exchange_recv_window_seconds", FD, "5x4")],
     [("15s", []), ("30s", [EX, RC])]),
    ("HeanPositionHeldTooLong", "15s", [s("hean_watchdog_oldest_position_age_seconds", WD, "3000 3700 3730"),
                                        s("hean_watchdog_oldest_position_age_seconds", t("watchdog", "sub2"), "1700 1800 1900")],
     [("15s", []), ("30s", [WD])]),
    ("HeanForceCloseFailing", "1m",
     up_and_start(WD, n=20) + [s("hean_watchdog_force_closes_total", {**WD, "outcome": "placed"}, "0+1x20"),
                               s("hean_watchdog_force_closes_total", {**WD, "outcome": "failed"}, "_x14 1 1 1 1 1 1")],
     [("13m", []), ("15m", [WD])]),
    ("HeanForceCloseEscalated", "15s", [s("hean_watchdog_alerts_total", WD, "0 0 1 1"),
                                        s("hean_watchdog_alerts_total", t("watchdog", "sub2"), "0 0 0 0")],
     [("15s", []), ("30s", [WD])]),
    ("HeanAlertingHeartbeat", "15s", [s("up", EX, "1x4")], [("0s", [{}]), ("45s", [{}])]),
]


def rule_labels() -> dict[str, dict[str, str]]:
    doc = yaml.safe_load((GRAFANA / "alerts" / "hean_alerts.yaml").read_text())
    return {r["alert"]: r.get("labels", {}) for g in doc["groups"] for r in g["rules"] if "alert" in r}


def build(annotations: dict[tuple[int, str, str], list[dict[str, str]]] | None) -> dict:
    tests = []
    extra = rule_labels()
    for i, (alert, interval, series, checks) in enumerate(CASES):
        rule_tests = []
        for at, firing in checks:
            exp = []
            for j, labels in enumerate(firing):
                got = (annotations or {}).get((i, at, _key(labels)), [{}])
                exp.append({"exp_labels": {**labels, **extra[alert]}, "exp_annotations": got[0] if got else {}})
            rule_tests.append({"eval_time": at, "alertname": alert, "exp_alerts": exp})
        tests.append({"name": f"{alert} #{i}", "interval": interval, "input_series": series,
                      "alert_rule_test": rule_tests})
    return {"rule_files": RULES, "evaluation_interval": "15s", "tests": tests}


def _key(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("severity", "area", "alertname"))


def _rendered_annotations() -> dict:
    """Run each test once without annotations and read the ones promtool rendered."""
    found: dict = {}
    doc = build(None)
    for i, test in enumerate(doc["tests"]):
        single = {**doc, "tests": [test]}
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=OUT.parent, delete=False) as f:
            yaml.safe_dump(single, f, sort_keys=False)
        try:
            out = subprocess.run(["promtool", "test", "rules", f.name], capture_output=True, text=True)
            out = out.stdout + out.stderr
        finally:
            Path(f.name).unlink()
        for block in re.split(r"\n\s*alertname: ", out)[1:]:
            at = re.search(r"time: ([0-9hms]+)", block).group(1)
            got = block.split("got:", 1)[1]
            for lab, ann in re.findall(r"Labels:\{(.*?)\}\n\s*Annotations:\{(.*?)\},?\n", got):
                labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', lab))
                anns = {k: bytes(v, "utf-8").decode("unicode_escape")
                        for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', ann)}
                found.setdefault((i, _norm(at), _key(labels)), []).append(anns)
    return found


def _norm(at: str) -> str:
    # promtool prints 1m15s as 1m15s and 0s as 0s; our keys use the same spelling
    return at


def main() -> int:
    OUT.parent.mkdir(exist_ok=True)
    doc = build(_rendered_annotations())
    header = "# Generated by grafana/tools/gen_alert_tests.py (cases there); promtool test rules runs it.\n"
    OUT.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=200, allow_unicode=True))
    print(f"wrote {OUT.relative_to(GRAFANA.parent)} ({len(doc['tests'])} tests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
