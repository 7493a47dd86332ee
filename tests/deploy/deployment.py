"""Helpers of the deploy tests: the deployment under test and the playbook runs against it.

Needs root, systemd-nspawn, mmdebstrap and the controller tools of tests/deploy/ci-deps.sh. Without
them the VPS tests are skipped, except under CI=true, where a skip would hide a broken pipeline and
is turned into a failure.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest

import vps as vpsmod

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
STACK_A = {"name": "hean", "metrics_base_port": 19300, "sim_port": 18900}
STACK_B = {"name": "hean-b", "metrics_base_port": 19320, "sim_port": 18920}
PROCESSES = ("risk", "reconciler", "executor", "watchdog", "feed", "strategy")
UNITS = ("sim",) + PROCESSES


def missing_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    for tool in ("systemd-nspawn", "mmdebstrap", "nsenter", "ssh"):
        if shutil.which(tool) is None:
            return f"no {tool} (run tests/deploy/ci-deps.sh)"
    if not (vpsmod.TOOLS / "bin" / "ansible-playbook").exists():
        return f"no ansible in {vpsmod.TOOLS} (run tests/deploy/ci-deps.sh)"
    return None


def require_prerequisites() -> None:
    why = missing_prerequisites()
    if why is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"deploy tests cannot run under CI: {why}")
    pytest.skip(why)


def timing(what: str, seconds: float) -> None:
    print(f"\n[deploy timing] {what}: {seconds:.1f} s", flush=True)


class Deployment:
    """The deployed VPS, and the playbook runs against it."""

    def __init__(self, vps: vpsmod.Vps, work: Path) -> None:
        self.vps = vps
        self.work = work
        self.key = "hean-test-key-" + secrets.token_hex(6)
        self.secret = "hean-test-secret-" + secrets.token_hex(12)
        self.inventory = vps.inventory(work / "inventory.ini")
        self.wheel = build_wheel(work)

    def extra_vars(self, release: str, stacks: list[dict] | None = None) -> Path:
        stacks = stacks or [STACK_A, STACK_B]
        doc = {
            "hean_release": release, "hean_wheel": str(self.wheel),
            "hean_wheel_dir": str(dependency_wheelhouse()), "hean_pip_offline": True,
            "hean_operators": ["deploy"], "hean_stacks": stacks,
            "hean_bybit_api_key": self.key, "hean_bybit_api_secret": self.secret,
        }
        # In a file, not on argv: the secret must not show in /proc/*/cmdline of the controller either.
        path = self.work / f"vars-{release}-{'-'.join(s['name'] for s in stacks)}.json"
        path.write_text(json.dumps(doc))
        path.chmod(0o600)
        return path

    def playbook(self, playbook: str, release: str = "rel-a", *args: str, inventory: Path | None = None,
                 stacks: list[dict] | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
        env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_FORCE_COLOR": "0", "PATH": f"{vpsmod.TOOLS / 'bin'}:{os.environ['PATH']}"}
        t0 = time.monotonic()
        out = subprocess.run([str(vpsmod.TOOLS / "bin" / "ansible-playbook"), "-i", str(inventory or self.inventory),
                              playbook, "-e", f"@{self.extra_vars(release, stacks)}", *args],
                             cwd=ANSIBLE_DIR, env=env, text=True, capture_output=True, timeout=900)
        return out, time.monotonic() - t0

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.vps.exec("systemctl", "show", unit, *(f"-p{p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def metrics(port: int) -> str:
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:  # noqa: S310 - loopback
        return resp.read().decode()


def sample(port: int, name: str) -> float | None:
    try:
        text = metrics(port)
    except OSError:
        return None
    m = re.search(rf"(?m)^{name}(?:{{[^}}]*}})? (\S+)$", text)
    return float(m.group(1)) if m else None


def port_of(stack: dict, svc: str) -> int:
    offsets = {"sim": 0, "feed": 1, "executor": 2, "reconciler": 3, "risk": 4, "watchdog": 5, "strategy": 6}
    return stack["sim_port"] if svc == "sim" else stack["metrics_base_port"] + offsets[svc]


def ready(dep, stack: dict, svc: str) -> bool:
    """Active and running under systemd, and (a HEAN process) hean_ready == 1 on its /metrics."""
    p = dep.show(f"{stack['name']}@{svc}.service", "ActiveState", "SubState")
    if (p.get("ActiveState"), p.get("SubState")) != ("active", "running"):
        return False
    return svc == "sim" or sample(port_of(stack, svc), "hean_ready") == 1.0


def recaps(out: subprocess.CompletedProcess[str]) -> dict[str, dict[str, int]]:
    """Every host's PLAY RECAP counts."""
    found = re.findall(r"(?m)^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out.stdout)
    assert found, f"no PLAY RECAP in:\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}"
    return {host: dict(zip(("ok", "changed", "unreachable", "failed"), map(int, counts), strict=True)) for host, *counts in found}


def recap(out: subprocess.CompletedProcess[str]) -> dict[str, int]:
    m = re.search(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out.stdout)
    assert m, f"no PLAY RECAP in:\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}"
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups()), strict=True))


def build_wheel(work: Path) -> Path:
    out = work / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True, text=True)
    return next(out.glob("hean-*.whl"))


def dependency_wheelhouse() -> Path:
    """HEAN's dependencies as wheels, cached by the dependency list (pip inside the VPS has no trusted TLS)."""
    import hashlib
    deps = re.search(r"dependencies = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.S).group(1)
    house = vpsmod.WORK / f"wheelhouse-{hashlib.sha256(deps.encode()).hexdigest()[:12]}"
    if not (house / ".complete").exists():
        names = re.findall(r'"([^"]+)"', deps)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
                        "-w", str(house), *names], check=True, capture_output=True, text=True)
        (house / ".complete").touch()
    return house


