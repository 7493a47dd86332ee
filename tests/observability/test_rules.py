"""The shipped Prometheus/Alertmanager files: promtool, amtool, the structure checks, the rendered copies."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.observability.tools import GRAFANA, need, render, run, validate_rules

EXAMPLE_VARS = yaml.safe_load((GRAFANA / "prometheus/example-vars.yml").read_text())


def test_rendered_copies_are_up_to_date() -> None:
    for src, dst in render_targets():
        assert (GRAFANA / dst).read_text() == render(src, EXAMPLE_VARS), f"run grafana/tools/render.py ({dst} is stale)"


def render_targets() -> list[tuple[str, str]]:
    from render import TEMPLATES
    return list(TEMPLATES.items())


def test_promtool_check_config_and_rules() -> None:
    promtool = need("promtool")
    res = run([promtool, "check", "config", "prometheus/prometheus.example.yml"], cwd=GRAFANA)
    assert res.returncode == 0, res.stdout + res.stderr
    res = run([promtool, "check", "rules", "rules/hean_rules.yaml", "rules/hean_thresholds.yaml",
               "alerts/hean_alerts.yaml"], cwd=GRAFANA)
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = need("promtool")
    res = run([promtool, "test", "rules", "tests/hean_alerts_test.yaml"], cwd=GRAFANA)
    assert res.returncode == 0 and "SUCCESS" in res.stdout + res.stderr, res.stdout + res.stderr


@pytest.mark.parametrize("alert, old, new", [
    ("HeanBusQueueHigh", "hean_bus_queue_utilization >= 0.8", "hean_bus_queue_utilization >= 0.75"),
    ("HeanProcessDown", 'up{job="hean"} == 0', 'up{job="hean"} < 0'),
    ("HeanDuplicateOrdersBlocked", "service:hean_executor_duplicates_blocked:increase10m > 0",
     "increase(hean_executor_duplicates_blocked_total[10m]) > 0"),   # misses the first duplicate ever
])
def test_unit_tests_catch_a_broken_rule(tmp_path: Path, alert: str, old: str, new: str) -> None:
    """The promtool cases have teeth: a wrong threshold or a naive increase() fails them."""
    promtool = need("promtool")
    for d in ("rules", "alerts", "tests"):
        shutil.copytree(GRAFANA / d, tmp_path / d)
    alerts = tmp_path / "alerts/hean_alerts.yaml"
    text = alerts.read_text()
    assert old in text
    alerts.write_text(text.replace(old, new))
    tests = tmp_path / "tests/hean_alerts_test.yaml"   # only this alert's cases: promtool has no filter flag
    doc = yaml.safe_load(tests.read_text())
    doc["tests"] = [t for t in doc["tests"] if any(c["alertname"] == alert for c in t["alert_rule_test"])]
    tests.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = run([promtool, "test", "rules", "tests/hean_alerts_test.yaml"], cwd=tmp_path)
    assert res.returncode != 0 and alert in res.stdout + res.stderr


def test_every_alert_has_labels_annotations_runbook_and_both_kinds_of_test() -> None:
    assert validate_rules.problems() == []


def test_every_condition_of_the_issue_has_an_alert() -> None:
    names = {r["alert"] for r in validate_rules.rules(validate_rules.ALERT_FILES) if "alert" in r}
    assert names >= {
        "HeanBusQueueHigh", "HeanBusQueueCritical", "HeanBusCriticalEventsLost", "HeanBusCriticalEventsFailed",
        "HeanRiskSoftBrake", "HeanRiskQuarantine", "HeanRiskHardStop", "HeanDuplicateOrdersBlocked",
        "HeanFillsRecoveredByRest", "HeanPrivateWsDown", "HeanReconcileStale", "HeanPositionHeldTooLong",
        "HeanForceCloseFailing", "HeanExecutorFailingClosed", "HeanEquityStale", "HeanRateLimitWaitsSustained",
        "HeanProcessDown", "HeanProcessNotReady", "HeanProcessRestarting", "HeanUnitGaveUp", "HeanStackSilent",
        "HeanClockOffsetBeyondRecvWindow"}


def test_scrape_config_for_several_stacks_on_several_hosts(tmp_path: Path) -> None:
    """Two stacks on two hosts plus one on the first: every target once, labels unique per process."""
    promtool = need("promtool")
    ports = {"feed": 9101, "executor": 9102, "reconciler": 9103, "risk": 9104, "watchdog": 9105, "strategy": 9106}
    stacks = [{"name": "a", "host": "10.0.0.1", "metrics_ports": ports},
              {"name": "b", "host": "10.0.0.2", "metrics_ports": ports},
              {"name": "c", "host": "10.0.0.1", "metrics_ports": {k: v + 100 for k, v in ports.items()}}]
    variables = {**EXAMPLE_VARS, "hean_stacks": stacks, "hean_prometheus_rule_files": []}
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(render("prometheus/prometheus.yml.j2", variables))
    res = run([promtool, "check", "config", str(cfg)])
    assert res.returncode == 0, res.stdout + res.stderr
    job = next(j for j in yaml.safe_load(cfg.read_text())["scrape_configs"] if j["job_name"] == "hean")
    seen = [(sc["targets"][0], sc["labels"]["stack"], sc["labels"]["service"]) for sc in job["static_configs"]]
    assert len(seen) == 18 and len({t for t, _, _ in seen}) == 18
    assert len({(st, svc) for _, st, svc in seen}) == 18
    assert ("10.0.0.2:9102", "b", "executor") in seen and ("10.0.0.1:9206", "c", "strategy") in seen
    assert not [j for j in yaml.safe_load(cfg.read_text())["scrape_configs"] if j["job_name"] == "hean-sim"]


def test_amtool_check_config_and_routes() -> None:
    amtool = need("amtool")
    cfg = GRAFANA / "alertmanager/alertmanager.example.yml"
    res = run([amtool, "check-config", str(cfg)])
    assert res.returncode == 0, res.stdout + res.stderr
    for severity, receiver in (("page", "phone"), ("critical", "phone"), ("warning", "webhook"),
                               ("heartbeat", "blackhole")):
        res = run([amtool, "config", "routes", "test", f"--config.file={cfg}", f"severity={severity}",
                   "alertname=HeanX", "stack=main"])
        assert res.stdout.strip() == receiver, (severity, res.stdout, res.stderr)


def test_hard_stop_inhibits_the_lesser_risk_alerts_only() -> None:
    doc = yaml.safe_load((GRAFANA / "alertmanager/alertmanager.example.yml").read_text())
    rule = next(r for r in doc["inhibit_rules"] if 'alertname="HeanRiskHardStop"' in r["source_matchers"])
    assert rule["equal"] == ["stack"]
    alerts = validate_rules.rules(validate_rules.ALERT_FILES)

    def matches(labels: dict[str, str]) -> bool:
        ok = True
        for m in rule["target_matchers"]:
            key, op, value = re.fullmatch(r'(\w+)(=~|=)"(.*)"', m).groups()
            ok &= bool(re.fullmatch(value, labels.get(key, ""))) if op == "=~" else labels.get(key) == value
        return ok
    inhibited = {r["alert"] for r in alerts if "alert" in r and matches({**r["labels"], "alertname": r["alert"]})}
    assert {"HeanRiskSoftBrake", "HeanRiskQuarantine", "HeanEquityStale", "HeanExecutorFailingClosed"} <= inhibited
    assert "HeanRiskHardStop" not in inhibited and "HeanProcessDown" not in inhibited


def test_secrets_are_variables_in_the_template() -> None:
    tpl = (GRAFANA / "alertmanager/alertmanager.yml.j2").read_text()
    assert "bot_token: {{ hean_alertmanager_telegram_bot_token" in tpl
    assert "url: {{ hean_alertmanager_webhook_url" in tpl
    assert not re.search(r"\d{6,}:[A-Za-z0-9_-]{20,}", tpl)   # no real-looking bot token committed
