"""End to end: the shipped configs on a real Prometheus and Alertmanager against `hean up`.

Order matters (one stack for the module): metric names first, then targets and panels on a
healthy system, then the induced faults -- a price crash into HARD_STOP and a `kill -STOP` of
the feed -- each of which must reach the local receiver (webhook and the Telegram stand-in)
and resolve after recovery. Fault-to-notification times are printed, not asserted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal

import pytest
import yaml

from tests.observability.stack import SERVICES, STACK, MonitoringStack, http_json, wait_for
from tests.observability.tools import GRAFANA, ROOT, metric_names, need, validate_rules

# The receiver's thread-owned loop and the children's log files live for the whole module.
pytestmark = [pytest.mark.timeout(600), pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]

# Series a rule or panel may use that no HEAN process exports, and where they come from.
FROM_ELSEWHERE = {
    "up": "Prometheus itself, one per scrape target",
    "hean_unit_gave_up": "node_exporter's textfile collector, written by the OnFailure= unit (ansible/systemd)",
}
TYPE_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                 "summary": ("_sum", "_count", "_created"), "gauge": ("",), "untyped": ("",), "info": ("_info",)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> MonitoringStack:
    need("prometheus"), need("prometheus-alertmanager")
    s = MonitoringStack(tmp_path_factory.mktemp("monitoring"))
    try:
        s.start()
        yield s
    finally:
        s.stop()
        tail = (s.tmp / "hean-up.out").read_text(errors="replace").strip().splitlines()[-1:] \
            if (s.tmp / "hean-up.out").exists() else []
        print(f"\nhean up summary: {tail[0][:400] if tail else '-'}")


def exported_names(port: int) -> set[str]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            # A family with no sample yet (a labelled counter never incremented) shows only here.
            base = name.removesuffix("_total") if kind == "counter" else name
            names |= {name} | {base + suffix for suffix in TYPE_SUFFIXES.get(kind, ("",))}
        elif line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def used_names() -> dict[str, set[str]]:
    """metric name -> where it is used (rule / alert / panel)."""
    used: dict[str, set[str]] = {}
    for r in validate_rules.rules(validate_rules.ALERT_FILES + [GRAFANA / "rules/hean_rules.yaml"]):
        for name in metric_names(r["expr"]):
            used.setdefault(name, set()).add(r.get("alert") or r.get("record"))
    thresholds = yaml.safe_load((GRAFANA / "rules/hean_thresholds.yaml").read_text())
    for g in thresholds["groups"]:
        for r in g["rules"]:
            for name in metric_names(r["expr"]):
                used.setdefault(name, set()).add(r["record"])
    dash = json.loads((GRAFANA / "dashboards/hean-overview.json").read_text())
    for p in dash["panels"]:
        for t in p.get("targets", []):
            for name in metric_names(t["expr"].replace("$stack", ".*")):
                used.setdefault(name, set()).add(f"panel {p['title']!r}")
    return used


def test_every_metric_used_is_exported_by_a_running_process(stack: MonitoringStack) -> None:
    exported: set[str] = set()
    for port in [stack.ports[s] for s in SERVICES] + [stack.ports["sim_api"], stack.ports["up"]]:
        exported |= exported_names(port)
    recorded = {r["record"] for f in validate_rules.RECORD_FILES for r in validate_rules.rules([f]) if "record" in r}
    missing = {n: sorted(w) for n, w in used_names().items()
               if n not in exported and n not in recorded and n not in FROM_ELSEWHERE}
    assert not missing, f"used but not exported by any HEAN process: {missing}"
    assert not set(FROM_ELSEWHERE) & exported, "an allow-listed series is exported by HEAN now: drop it from the list"


def test_every_target_is_up(stack: MonitoringStack) -> None:
    def all_up() -> list[dict]:
        targets = stack.api("/api/v1/targets")["activeTargets"]
        return targets if len(targets) == len(SERVICES) + 2 and all(t["health"] == "up" for t in targets) else []
    targets = wait_for(all_up, 30, "every scrape target up")
    labels = sorted((t["labels"]["job"], t["labels"]["service"], t["labels"]["stack"]) for t in targets)
    assert labels == sorted([("hean", s, STACK) for s in SERVICES] + [("hean-sim", "sim", STACK), ("hean-up", "up", STACK)])


def test_dead_mans_switch_reaches_the_heartbeat_receiver(stack: MonitoringStack) -> None:
    wait_for(lambda: stack.receiver.find("HeanAlertingHeartbeat", "firing", "heartbeat", 0), 30, "heartbeat")


def test_every_dashboard_panel_query_returns_data(stack: MonitoringStack) -> None:
    dash = json.loads((GRAFANA / "dashboards/hean-overview.json").read_text())
    queries = [(p["title"], t["expr"].replace("$stack", STACK)) for p in dash["panels"] for t in p.get("targets", [])]
    empty = dict(queries)
    deadline = time.monotonic() + 90   # rate()s need two samples, recording rules an evaluation
    while empty and time.monotonic() < deadline:
        empty = {t: q for t, q in queries if t in empty and not stack.query(q)}
        time.sleep(1)
    assert not empty, f"panels without data: {empty}"
    values = http_json(f"http://127.0.0.1:{stack.prom_port}/api/v1/label/stack/values?match[]=up{{job=\"hean\"}}")
    assert values["data"] == [STACK], "the $stack variable does not resolve"


def test_hean_status_reads_every_process_health_and_bus_figures(stack: MonitoringStack) -> None:
    env = {**stack.env, "HEAN_RUNTIME_DIR": stack.up["runtime_dir"]}
    res = subprocess.run([sys.executable, "-m", "hean.cli", "status", "--json", "--state-dir",
                          str(stack.tmp / "state"), "--listen", "1"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    for svc in SERVICES:
        assert doc["services"][svc]["health"] == {**doc["services"][svc]["health"], "ready": True, "live": True,
                                                  "reason": ""}, svc
        bus = http_json(f"http://127.0.0.1:{stack.ports[svc]}/system/bus/metrics")
        assert bus["present"] and {"queue", "published", "dropped", "delayed", "lost"} <= set(bus), svc
        assert (bus["queue"]["capacity"] > 0) == (svc != "feed"), svc   # the feed subscribes to nothing
        assert bus["published"]["total"] > 0 or svc == "watchdog", svc


def _notified(stack: MonitoringStack, alert: str, status: str, after: float, timeout: float) -> dict[str, float]:
    """Wait until both the webhook and the Telegram stand-in got `alert` with `status`; seconds after `after`."""
    got: dict[str, float] = {}

    def both() -> bool:
        for route in ("webhook", "telegram"):
            n = stack.receiver.find(alert, status, route, after)
            if n is not None:
                got[route] = n.at - after
        return len(got) == 2
    wait_for(both, timeout, f"{alert} {status} at the webhook and the Telegram stand-in")
    return got


def test_price_crash_into_hard_stop_pages_and_resolves_after_reset(stack: MonitoringStack) -> None:
    # After the demo's scripted dip (its price path would overwrite ours) and with a real position open.
    wait_for(lambda: time.monotonic() - stack.ready_at > 25, 40, "the demo dip to finish")
    wait_for(lambda: stack.query(f'hean_risk_state{{stack="{STACK}"}} == 0'), 60, "risk NORMAL")

    def open_eth() -> Decimal | None:
        state = http_json(f"{stack.sim_url}/sim/state")
        size = Decimal(state["positions"].get("ETHUSDT", "0") or "0")
        return Decimal(state["prices"]["ETHUSDT"]) if abs(size) >= 1 else None
    price = wait_for(open_eth, 60, "an open ETHUSDT position (demo stale-holder)", interval=0.1)
    t0 = time.monotonic()
    http_json(f"{stack.sim_url}/sim/price", {"symbol": "ETHUSDT", "price": str((price * Decimal("0.4")).quantize(Decimal("0.01")))})
    try:
        fired = _notified(stack, "HeanRiskHardStop", "firing", t0, 60)
    finally:
        http_json(f"{stack.sim_url}/sim/price", {"symbol": "ETHUSDT", "price": str(price)})
    print(f"\nHARD_STOP: price crash -> notification: webhook {fired['webhook']:.2f} s, "
          f"telegram {fired['telegram']:.2f} s")
    # Recovery: the price is back; the operator resets the latched HARD_STOP.
    env = {**stack.env, "HEAN_RUNTIME_DIR": stack.up["runtime_dir"], "HEAN_DATA_DIR": stack.up["data_dir"]}
    t1 = time.monotonic()
    reset = subprocess.run([sys.executable, "-m", "hean.cli", "risk", "reset", "--operator", "e2e"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    resolved = _notified(stack, "HeanRiskHardStop", "resolved", t1, 60)
    print(f"HARD_STOP: reset -> resolved notification: webhook {resolved['webhook']:.2f} s, "
          f"telegram {resolved['telegram']:.2f} s")


def test_sigstop_of_a_process_pages_and_resolves_after_sigcont(stack: MonitoringStack) -> None:
    pid = stack.pid("feed")
    t0 = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        fired = _notified(stack, "HeanProcessDown", "firing", t0, 90)
    finally:
        os.kill(pid, signal.SIGCONT)
    t1 = time.monotonic()
    n = stack.receiver.find("HeanProcessDown", "firing", "webhook", t0)
    assert n is not None and {a["labels"]["service"] for a in n.body["alerts"]} == {"feed"}
    print(f"\nkill -STOP feed -> notification: webhook {fired['webhook']:.2f} s, telegram {fired['telegram']:.2f} s "
          f"(the rule waits `for: 30s`)")
    resolved = _notified(stack, "HeanProcessDown", "resolved", t1, 60)
    print(f"kill -CONT feed -> resolved notification: webhook {resolved['webhook']:.2f} s, "
          f"telegram {resolved['telegram']:.2f} s")


def test_alertmanager_inhibits_lesser_risk_alerts_under_hard_stop(stack: MonitoringStack) -> None:
    """HARD_STOP silences QUARANTINE of its own stack, not another stack's, in the real Alertmanager.

    Last in the module: its synthetic alerts stay firing.
    """
    t0 = time.monotonic()
    alerts = [{"labels": {"alertname": name, "severity": sev, "area": "risk", "stack": st}}
              for name, sev, st in (("HeanRiskHardStop", "page", "inh"), ("HeanRiskQuarantine", "critical", "inh"),
                                    ("HeanRiskQuarantine", "critical", "other"))]
    http_json(f"http://127.0.0.1:{stack.am_port}/api/v2/alerts", alerts)

    def delivered(stack_name: str, alert: str) -> bool:
        return any(m.at >= t0 and m.route == "webhook" and alert in m.alertnames
                   and m.body.get("commonLabels", {}).get("stack") == stack_name for m in list(stack.receiver.got))
    wait_for(lambda: delivered("inh", "HeanRiskHardStop") and delivered("other", "HeanRiskQuarantine"), 30,
             "the HARD_STOP and the other stack's QUARANTINE")
    # Same route and timing as the other stack's QUARANTINE, which has arrived: this one was held back.
    assert not delivered("inh", "HeanRiskQuarantine"), "QUARANTINE of a HARD_STOP stack was not inhibited"
