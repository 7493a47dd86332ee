"""Structure checks promtool does not make (after ceph-mixin's validate_rules.py).

    python grafana/tools/validate_rules.py      # prints problems, exit 1 if any

Every alert: a CamelCase `Hean...` name used once, `expr`, `for`, labels `severity`
(warning | critical | page | heartbeat) and `area`, annotations `summary`, `description`
and a `runbook_url` whose anchor is a heading of grafana/RUNBOOK.md (with Meaning, Impact,
Diagnosis and Mitigation under it); at least one promtool case where it fires and one
where it must not (the always-firing heartbeat excepted). Recording rules are named
level:metric:operation.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

GRAFANA = Path(__file__).resolve().parent.parent
ALERT_FILES = [GRAFANA / "alerts" / "hean_alerts.yaml"]
RECORD_FILES = [GRAFANA / "rules" / "hean_rules.yaml", GRAFANA / "rules" / "hean_thresholds.yaml"]
TEST_FILES = sorted((GRAFANA / "tests").glob("*_test.yaml"))
RUNBOOK = GRAFANA / "RUNBOOK.md"
SEVERITIES = {"warning", "critical", "page", "heartbeat"}
ALWAYS_FIRING = {"HeanAlertingHeartbeat"}
RUNBOOK_SECTIONS = ("Meaning", "Impact", "Diagnosis", "Mitigation")


def rules(files: list[Path]) -> list[dict[str, Any]]:
    return [r for f in files for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]


def runbook_entries() -> dict[str, str]:
    """anchor -> the entry's text, for each `## Name` heading of the runbook."""
    text = RUNBOOK.read_text() if RUNBOOK.exists() else ""
    parts = re.split(r"^## +(\S+).*$", text, flags=re.M)
    return {parts[i].lower(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_cases() -> tuple[set[str], set[str]]:
    fires, silent = set(), set()
    for f in TEST_FILES:
        for test in yaml.safe_load(f.read_text()).get("tests", []):
            for case in test.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    return fires, silent


def problems() -> list[str]:
    out: list[str] = []
    alerts = [r for r in rules(ALERT_FILES) if "alert" in r]
    entries = runbook_entries()
    fires, silent = test_cases()
    seen: set[str] = set()
    for r in alerts:
        name = r["alert"]
        where = f"alert {name}"
        if not re.fullmatch(r"Hean(?:[A-Z][a-z0-9]*)+", name):
            out.append(f"{where}: name is not CamelCase Hean...")
        if name in seen:
            out.append(f"{where}: defined twice")
        seen.add(name)
        for key in ("expr", "for", "labels", "annotations"):
            if key not in r:
                out.append(f"{where}: no `{key}`")
        labels, ann = r.get("labels", {}), r.get("annotations", {})
        if labels.get("severity") not in SEVERITIES:
            out.append(f"{where}: severity {labels.get('severity')!r} not one of {sorted(SEVERITIES)}")
        if not labels.get("area"):
            out.append(f"{where}: no area label")
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                out.append(f"{where}: no {key} annotation")
        anchor = str(ann.get("runbook_url", "")).rpartition("#")[2]
        if anchor != name.lower():
            out.append(f"{where}: runbook_url anchor {anchor!r} is not {name.lower()!r}")
        entry = entries.get(name.lower())
        if entry is None:
            out.append(f"{where}: no runbook entry `## {name}` in grafana/RUNBOOK.md")
        else:
            for section in RUNBOOK_SECTIONS:
                if not re.search(rf"\*\*{section}\*\*", entry):
                    out.append(f"{where}: runbook entry has no **{section}**")
        if name not in fires:
            out.append(f"{where}: no promtool case where it fires")
        if name not in silent and name not in ALWAYS_FIRING:
            out.append(f"{where}: no promtool case where it must not fire")
    for name in sorted((fires | silent) - seen):
        out.append(f"promtool cases for unknown alert {name}")
    for name in sorted(set(entries) - {n.lower() for n in seen}):
        out.append(f"runbook entry {name} has no alert")
    for r in rules(RECORD_FILES):
        if "record" in r and not re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", r["record"]):
            out.append(f"recording rule {r['record']}: not level:metric:operation")
    return out


def main() -> int:
    found = problems()
    for p in found:
        print(p)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
