"""Find the running HEAN system an operator's command talks to: one rule for every command.

A `hean up` records its state dir in a per-user pointer file (temp dir) and its runtime dir and
ports in `<state dir>/up.json`; a systemd deployment has neither, and its runtime dir (/run/hean by
default) and metrics ports come from the settings. Order: `--state-dir D` (a D that does not exist
or holds no up.json is an error, never a silent fall-back); else an explicitly configured
HEAN_RUNTIME_DIR (explicit beats discovered); else this user's running `hean up`; else systemd's.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hean.config import HeanSettings

# Exit codes shared by every operator command (documented in each --help and the README).
EX_OK = 0            # done / everything up
EX_FAILED = 1        # the system answered no (refused, rejected, some process down)
EX_USAGE = 2         # bad arguments, or the named system does not exist
EX_UNREACHABLE = 3   # nothing answered: no running system found on the bus
EX_CONFIG = 78       # bad settings

EXIT_CODES_EPILOG = (
    "exit codes: 0 done; 1 refused, rejected or a process down; 2 bad arguments or no such state dir; "
    "3 nothing running answered; 78 bad settings. Output: human text (--json: one JSON object on "
    "stdout); errors go to stderr."
)


class NoSuchSystem(Exception):
    """The operator named a state dir that holds no `hean up`."""


def pointer_file() -> Path:
    """Where every operator command finds the state dir of this user's running `hean up`."""
    return Path(tempfile.gettempdir()) / f"hean-up-{os.getuid()}.json"


@dataclass(frozen=True)
class System:
    """Where a running system listens: `mode` is "up" (a local `hean up`) or "systemd"."""

    mode: str
    runtime_dir: Path
    ports: dict[str, int | None] = field(default_factory=dict)
    doc: dict[str, Any] | None = None
    state_dir: Path | None = None


def _read_doc(state_dir: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((state_dir / "up.json").read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _running_state_dir() -> Path | None:
    try:
        pointer = json.loads(pointer_file().read_text())
        state_dir, pid = Path(pointer["state_dir"]), int(pointer["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None        # a pointer left by a `hean up` that died without cleaning up
    except PermissionError:
        pass
    return state_dir


def find_system(settings: HeanSettings, state_dir: str | None, services: tuple[str, ...] = ()) -> System:
    """The system to talk to: the named `hean up`, else the running one, else systemd's."""
    if state_dir is not None:
        path = Path(state_dir)
        if not path.is_dir():
            raise NoSuchSystem(f"state dir {path} does not exist")
        doc = _read_doc(path)
        if doc is None:
            raise NoSuchSystem(f"state dir {path} holds no up.json (not a `hean up` state dir)")
        return _from_doc(doc, path, services)
    if "runtime_dir" in settings.model_fields_set:
        return System("systemd", settings.runtime_dir, {s: settings.metrics_port(s) for s in services})
    running = _running_state_dir()
    doc = _read_doc(running) if running else None
    if running is not None and doc is not None:
        return _from_doc(doc, running, services)
    return System("systemd", settings.runtime_dir, {s: settings.metrics_port(s) for s in services})


def _from_doc(doc: dict[str, Any], state_dir: Path, services: tuple[str, ...]) -> System:
    listed = doc.get("services", {}) or {}
    ports = {s: listed.get(s, {}).get("metrics_port") for s in services if s in listed}
    return System("up", Path(doc.get("runtime_dir") or state_dir / "run"), ports, doc, state_dir)
