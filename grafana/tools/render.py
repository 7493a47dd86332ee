"""Render grafana/ Jinja2 templates the way the Ansible role does (same variable names, `to_json`).

    python grafana/tools/render.py [VARS.yml]   # default: grafana/prometheus/example-vars.yml

writes prometheus/prometheus.example.yml, rules/hean_thresholds.yaml and
alertmanager/alertmanager.example.yml, the committed copies that CI checks
(promtool, amtool) and that must equal a fresh render (tests/observability).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jinja2
import yaml

GRAFANA = Path(__file__).resolve().parent.parent
TEMPLATES = {
    "prometheus/prometheus.yml.j2": "prometheus/prometheus.example.yml",
    "rules/hean_thresholds.yaml.j2": "rules/hean_thresholds.yaml",
    "alertmanager/alertmanager.yml.j2": "alertmanager/alertmanager.example.yml",
}


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(GRAFANA)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=False, keep_trailing_newline=True)
    env.filters["to_json"] = lambda v: json.dumps(v)   # Ansible's filter of the same name
    return env


def render(template: str, variables: dict[str, Any]) -> str:
    return environment().get_template(template).render(**variables)


def example_vars() -> dict[str, Any]:
    return yaml.safe_load((GRAFANA / "prometheus/example-vars.yml").read_text())


def main(argv: list[str]) -> int:
    variables = yaml.safe_load(Path(argv[0]).read_text()) if argv else example_vars()
    for src, dst in TEMPLATES.items():
        (GRAFANA / dst).write_text(render(src, variables))
        print(f"wrote grafana/{dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
