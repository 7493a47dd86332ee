"""The HEAN overview dashboard: generated, valid, every panel with a datasource and a parsable query."""

from __future__ import annotations

import json
import re

import yaml

from tests.observability.tools import GRAFANA, metric_names

DASH = GRAFANA / "dashboards/hean-overview.json"
ROWS = ("Money", "Risk", "Orders", "Fills", "Positions", "Bus", "Processes")


def panels() -> list[dict]:
    return [p for p in json.loads(DASH.read_text())["panels"] if p["type"] != "row"]


def test_dashboard_json_is_the_generated_one() -> None:
    import gen_dashboard
    assert DASH.read_text() == gen_dashboard.render(), "run grafana/tools/gen_dashboard.py"


def test_rows_and_panels_have_datasource_and_queries() -> None:
    doc = json.loads(DASH.read_text())
    assert doc["uid"] == "hean-overview" and doc["title"] == "HEAN overview"
    assert [p["title"] for p in doc["panels"] if p["type"] == "row"] == list(ROWS)
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for p in panels():
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and t["expr"].strip(), p["title"]
            assert metric_names(t["expr"].replace("$stack", ".*")), (p["title"], t["expr"])


def test_every_variable_used_is_defined_and_resolvable() -> None:
    doc = json.loads(DASH.read_text())
    defined = {v["name"]: v for v in doc["templating"]["list"]}
    used = set()
    for p in panels():
        used |= set(re.findall(r"\$\{?(\w+)", json.dumps(p)))
    assert used <= set(defined), used - set(defined)
    assert defined["datasource"]["type"] == "datasource" and defined["datasource"]["query"] == "prometheus"
    stack = defined["stack"]
    assert stack["datasource"]["uid"] == "${datasource}"
    assert metric_names(stack["query"]["query"].replace("label_values(", "").rsplit(",", 1)[0]) == {"up"}


def test_provisioning_points_at_the_dashboards_and_prometheus() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/hean.yml").read_text())
    assert ds["apiVersion"] == 1 and ds["datasources"][0]["type"] == "prometheus"
    dp = yaml.safe_load((GRAFANA / "provisioning/dashboards/hean.yml").read_text())
    prov = dp["providers"][0]
    assert prov["type"] == "file" and prov["options"]["path"]
