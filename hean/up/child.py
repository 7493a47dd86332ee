"""One supervised child process of `hean up`: start, readiness, logs, restart with backoff, stop.

Each child runs in its own session/process group (Ctrl-C reaches only the
supervisor, which then stops children in order) with PR_SET_PDEATHSIG=SIGKILL
set in the child before exec: if the supervisor dies, even by kill -9, the
kernel kills the children, so nothing is left behind. stdout and stderr of the
child are appended to its log file; the supervisor reads them to learn
readiness ("service ready" JSON line, or the simulator's READY line).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import aiohttp

log = logging.getLogger("hean.up")
STOP_TIMEOUT_S = 15.0
BACKOFF_INITIAL_S, BACKOFF_MAX_S, STABLE_AFTER_S = 1.0, 30.0, 60.0
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class ChildFailed(Exception):
    """A child could not be started (or must not be restarted); the supervisor stops everything."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ViewLike(Protocol):
    def child_log(self, name: str, record: dict[str, Any]) -> None: ...


def _die_with_parent(parent: int) -> Callable[[], None]:
    def setup() -> None:  # runs in the child between fork and exec: keep it tiny
        if _libc is not None:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:   # the supervisor died before prctl took effect
            os._exit(1)
    return setup


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, view: ViewLike,
                 on_restart: Callable[[str, int, float], None]) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.view, self.on_restart = view, on_restart
        self.restartable = True
        self.on_change: Callable[[], None] = lambda: None   # state changed (started, ready): re-write up.json
        self.proc: asyncio.subprocess.Process | None = None
        self.pids: list[int] = []
        self.restarts = 0
        self.started_at = 0.0
        self.metrics_port: int | None = None
        self.ready_value: Any = None
        self.last_error = ""
        self._ready = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._ready.clear()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hean.cli", *self.argv, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()), limit=1 << 20)
        self.pids.append(self.proc.pid)
        self.started_at = time.time()
        log.info("child started", extra={"service": self.name, "pid": self.proc.pid})
        self._reader = asyncio.create_task(self._read(self.proc), name=f"read-{self.name}")

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        with open(self.log_path, "ab") as out:
            while True:
                try:
                    raw = await proc.stdout.readline()
                except ValueError:   # a line beyond the limit: skip it rather than stop logging
                    continue
                if not raw:
                    return
                out.write(raw)
                out.flush()
                self._inspect(raw.decode("utf-8", "replace").strip())

    def _inspect(self, line: str) -> None:
        if line.startswith("HEAN-SIM READY "):
            self.ready_value = line.split(" ", 2)[2]
            self._ready.set()
            return
        try:
            rec = json.loads(line)
        except ValueError:
            if line:
                self.last_error = line
            return
        if not isinstance(rec, dict):
            return
        if rec.get("message") == "simulator ready":   # its READY line follows; /metrics is up already
            self.metrics_port = rec.get("metrics_port")
        elif rec.get("message") == "service ready":
            self.metrics_port = rec.get("metrics_port")
            self.ready_value = self.metrics_port
            self._ready.set()
            self.on_change()
        elif rec.get("level") in ("ERROR", "CRITICAL"):
            self.last_error = str(rec.get("message", ""))
            self.view.child_log(self.name, rec)

    async def wait_ready(self, timeout: float) -> Any:
        """Wait for the readiness line; ChildFailed if the child exits first or takes too long."""
        assert self.proc is not None
        ready = asyncio.create_task(self._ready.wait())
        exited = asyncio.create_task(self.proc.wait())
        done, _ = await asyncio.wait({ready, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for t in (ready, exited):
            t.cancel()
        if ready in done:
            return self.ready_value
        if exited in done:
            if self._reader is not None:
                await asyncio.gather(self._reader, return_exceptions=True)
            rc = self.proc.returncode
            raise ChildFailed(f"{self.name} exited {rc} during start-up: {self.last_error or 'see ' + str(self.log_path)}",
                              78 if rc == 78 else 1)
        raise ChildFailed(f"{self.name} was not ready within {timeout:.0f} s (see {self.log_path})")

    def supervise(self, stop: asyncio.Event, fatal: Callable[[str, int, str], None]) -> None:
        self._watch = asyncio.create_task(self._keep(stop, fatal), name=f"watch-{self.name}")

    async def _keep(self, stop: asyncio.Event, fatal: Callable[[str, int, str], None]) -> None:
        backoff = BACKOFF_INITIAL_S
        while not stop.is_set():
            assert self.proc is not None
            rc = await self.proc.wait()
            if self._reader is not None:
                await asyncio.gather(self._reader, return_exceptions=True)
            if stop.is_set():
                return
            if rc == 78 or not self.restartable:
                fatal(self.name, rc, self.last_error or f"see {self.log_path}")
                return
            if time.time() - self.started_at >= STABLE_AFTER_S:
                backoff = BACKOFF_INITIAL_S
            self.restarts += 1
            log.warning("child exited; restarting", extra={"service": self.name, "rc": rc, "delay_s": backoff,
                                                            "restarts": self.restarts})
            self.on_restart(self.name, rc, backoff)
            try:
                await asyncio.wait_for(stop.wait(), backoff)
                return
            except TimeoutError:
                pass
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            await self.start()
            self.on_change()

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def _signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM the child's group; SIGKILL after STOP_TIMEOUT_S; wait until it is gone."""
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("child ignored SIGTERM; killing", extra={"service": self.name, "pid": self.proc.pid})
                self.kill()
                await self.proc.wait()
        self._signal_group(signal.SIGKILL)   # anything the child left in its group
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        log.info("child stopped", extra={"service": self.name, "rc": self.proc.returncode})

    def describe(self) -> dict[str, Any]:
        return {"pid": self.proc.pid if self.proc else None, "pids": self.pids, "running": self.running(),
                "restarts": self.restarts, "started": self.started_at, "metrics_port": self.metrics_port,
                "log": str(self.log_path)}


async def http_json(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    """A small JSON request to the simulator's control API (loopback only)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.request(method, url, json=body) as resp:
            resp.raise_for_status()
            return await resp.json()
