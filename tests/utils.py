"""Helpers for tests that run real HEAN processes: wait on conditions, never sleep and hope."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll `cond` until it returns something truthy; fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def async_wait_for(cond: Callable[[], Any | Awaitable[Any]], timeout: float, what: str,
                         interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def hean_env(tmp_path: Path, **settings: Any) -> dict[str, str]:
    """A clean environment for a HEAN process: private runtime/data dirs, no stray HEAN_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAN_")}
    env.update({
        "HEAN_RUNTIME_DIR": str(tmp_path / "run"),
        "HEAN_DATA_DIR": str(tmp_path / "data"),
        "PYTHONUNBUFFERED": "1",
    })
    for service in ("sim", "feed", "executor", "reconciler", "risk", "watchdog", "strategy", "echo", "up"):
        env[f"HEAN_METRICS_PORTS__{service.upper()}"] = "0"
    for key, value in settings.items():
        env["HEAN_" + key.upper()] = value if isinstance(value, str) else json.dumps(value)
    return env


class Proc:
    """A child process whose stdout (JSON log lines) is collected by a reader thread."""

    def __init__(self, args: list[str], env: dict[str, str], name: str = "") -> None:
        self.name = name or " ".join(args[:3])
        self.p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, cwd=ROOT, start_new_session=True)
        self.lines: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(self.p.stdout, self.lines), daemon=True),
                         threading.Thread(target=self._pump, args=(self.p.stderr, self.err), daemon=True)]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.p.pid

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def find(self, message: str) -> dict[str, Any] | None:
        return next((r for r in self.records() if r.get("message") == message), None)

    def wait_record(self, message: str, timeout: float = 20.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            if self.p.poll() is not None and self.find(message) is None:
                raise AssertionError(f"{self.name} exited rc={self.p.returncode} before logging {message!r}:\n"
                                     + "\n".join(self.lines[-20:] + self.err[-20:]))
            return self.find(message)
        return wait_for(found, timeout, f"{self.name} to log {message!r}")

    def wait_ready(self, timeout: float = 20.0) -> int:
        """Wait for the shell's 'service ready' line; return the /metrics port."""
        return int(self.wait_record("service ready", timeout)["metrics_port"])

    def signal(self, sig: int) -> None:
        if self.p.poll() is None:
            os.kill(self.p.pid, sig)

    def stop(self, timeout: float = 15.0) -> int:
        self.signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not stop within {timeout}s of SIGTERM") from None
        self._reap()
        return rc

    def kill(self) -> None:
        """SIGKILL the whole process group (kill -9), then collect what it printed."""
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait(10)
        self._reap()

    def _reap(self) -> None:
        for t in self._threads:
            t.join(5)
        for stream in (self.p.stdout, self.p.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    def output(self) -> str:
        return "\n".join(self.lines + self.err)


def hean(args: list[str], env: dict[str, str], name: str = "") -> Proc:
    return Proc([PYTHON, "-m", "hean.cli", *args], env, name or f"hean {' '.join(args)}")


def scrape(port: int) -> dict[str, float]:
    """Fetch /metrics and return {'name{labels}': value} for every sample."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def metric(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum the samples of `name` whose labels include `labels` (0 when absent)."""
    total = 0.0
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


async def scrape_when(port: int, name: str, at_least: float, timeout: float, **labels: str) -> dict[str, float]:
    """The samples once `name{labels}` reaches `at_least`: a counter bumped when a reply is handled
    may lag the effect a test saw on the exchange (the position is flat before the close is counted)."""
    async def reached() -> dict[str, float] | None:
        samples = await asyncio.to_thread(scrape, port)
        return samples if metric(samples, name, **labels) >= at_least else None
    return await async_wait_for(reached, timeout, f"{name}{labels} >= {at_least}", interval=0.1)
