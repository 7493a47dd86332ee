"""Helpers for tests that run `hean up` as a subprocess."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.utils import wait_for


def up_doc(state: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state / "up.json").read_text())
    except (OSError, ValueError):
        return None


def wait_all_running(state: Path, services: tuple[str, ...], timeout: float = 60.0) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        doc = up_doc(state)
        if doc and all(doc["services"].get(s, {}).get("running") and doc["services"][s].get("metrics_port")
                       for s in services):
            return doc
        return None
    return wait_for(ready, timeout, f"hean up to report {services} running in {state / 'up.json'}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie has exited; only its parent's wait() is missing
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def assert_no_survivors(pids: list[int], timeout: float = 15.0) -> None:
    wait_for(lambda: not [p for p in pids if alive(p)], timeout,
             f"every child of hean up to be gone (still alive: {[p for p in pids if alive(p)]})")


def last_json(lines: list[str]) -> dict[str, Any]:
    for line in reversed(lines):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError("no JSON summary line in:\n" + "\n".join(lines[-30:]))


SERVICES = ("risk", "reconciler", "executor", "watchdog", "feed", "strategy")
