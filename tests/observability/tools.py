"""Shared helpers: find the Debian monitoring tools, render the shipped templates, read PromQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
sys.path.insert(0, str(GRAFANA / "tools"))

import render as render_mod  # noqa: E402  (grafana/tools is not a package)
import validate_rules  # noqa: E402,F401

# Tool -> Debian package that ships it (tests/observability/ci-deps.sh installs them).
TOOLS = {"promtool": "prometheus", "prometheus": "prometheus", "amtool": "prometheus-alertmanager",
         "prometheus-alertmanager": "prometheus-alertmanager"}


def need(tool: str) -> str:
    """Path of a monitoring tool; skip without it on a laptop, fail under CI=true."""
    path = shutil.which(tool)
    if path is None:
        msg = f"{tool} not installed (Debian package {TOOLS.get(tool, tool)}; tests/observability/ci-deps.sh)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


def render(template: str, variables: dict[str, Any]) -> str:
    return render_mod.render(template, variables)


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects (parsed, not guessed)."""
    import promql_parser

    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            return
        for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, (str, int, float)):
                walk(child)
        for arg in getattr(node, "args", None) or []:
            walk(arg)

    walk(promql_parser.parse(expr))
    return names
