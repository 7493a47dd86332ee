"""The processes `hean chaos` drives as a user would: the simulator and `hean up` (subprocesses)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

SYMBOLS = ("BTCUSDT", "ETHUSDT")
WALLET = "10000"
SERVICES = ("risk", "reconciler", "executor", "watchdog", "feed", "strategy")
MAX_HOLD_S = 20.0
CHECK_INTERVAL_S = 1.0
THRESHOLDS = {"SOFT_BRAKE": 2.0, "QUARANTINE": 3.0, "HARD_STOP": 4.0}


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HEAN_")}


def hean_env(state: Path, sim_url: str, seed: int, stop_file: Path) -> dict[str, str]:
    host = sim_url.split("://", 1)[1].rstrip("/")
    strategy = (f"hean.chaos.strategy:ChaosTrader?seed={seed}&stop_file={stop_file}"
                f"&long_hold_s={MAX_HOLD_S * 2}&id=chaos")
    env = base_env() | {
        "HEAN_BYBIT__REST_URL": f"http://{host}", "HEAN_BYBIT__WS_PUBLIC_URL": f"ws://{host}/v5/public/linear",
        "HEAN_BYBIT__WS_PRIVATE_URL": f"ws://{host}/v5/private", "HEAN_SYMBOLS": json.dumps(list(SYMBOLS)),
        "HEAN_RUNTIME_DIR": str(state / "run"), "HEAN_DATA_DIR": str(state / "data"),
        "HEAN_STRATEGY__PATHS": strategy, "HEAN_MAX_HOLD_SECONDS": str(MAX_HOLD_S),
        "HEAN_POSITION_MONITOR_CHECK_INTERVAL": str(CHECK_INTERVAL_S),
        "HEAN_RISK__SOFT_PCT": str(THRESHOLDS["SOFT_BRAKE"]), "HEAN_RISK__QUARANTINE_PCT": str(THRESHOLDS["QUARANTINE"]),
        "HEAN_RISK__HARD_PCT": str(THRESHOLDS["HARD_STOP"]), "HEAN_RISK__RECOVER_PCT": "1.0",
        "HEAN_RISK__COOLDOWN_S": "5", "HEAN_WATCHDOG__ERROR_BACKOFF_S": "2", "HEAN_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    for name in (*SERVICES, "up"):
        env[f"HEAN_METRICS_PORTS__{name.upper()}"] = "0"   # other runs on this host keep their ports
    return env


class Sim:
    """`hean sim` as a subprocess on a free loopback port; its control API at /sim."""

    def __init__(self, state: Path, seed: int) -> None:
        self.state, self.seed = state, seed
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> str:
        env = base_env() | {"HEAN_SIM__API_KEY": "hean-sim-key", "HEAN_SIM__API_SECRET": "hean-sim-secret"}
        log = open(self.state / "sim.log", "wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hean.cli", "sim", "--port", "0", "--symbols", ",".join(SYMBOLS),
            "--initial-balance", WALLET, "--seed", str(self.seed), "--log-level", "WARNING",
            stdout=asyncio.subprocess.PIPE, stderr=log, env=env)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line.startswith(b"HEAN-SIM READY "):
            raise RuntimeError(f"chaos: the simulator did not start: {line!r}")
        self.url = line.split()[-1].decode().rstrip("/")
        return self.url

    async def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
            method = "GET" if body is None else "POST"
            async with s.request(method, f"{self.url}/sim/{path}", json=body) as resp:
                resp.raise_for_status()
                return await resp.json()

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 20)


class Up:
    """`hean up --no-demo` as a subprocess; children found through its up.json."""

    def __init__(self, state: Path, env: dict[str, str]) -> None:
        self.state, self.env = state, env
        self.proc: asyncio.subprocess.Process | None = None
        self.pids_seen: set[int] = set()

    async def start(self, timeout: float = 180.0) -> None:
        out = open(self.state / "up.out", "wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hean.cli", "up", "--no-demo", "--state-dir", str(self.state),
            "--data-dir", str(self.state / "data"), stdout=out, stderr=out, env=self.env,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.all_running():
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chaos: hean up did not start every process (see {self.state}/up.out)")
            await asyncio.sleep(0.2)

    def doc(self) -> dict[str, Any]:
        try:
            doc = json.loads((self.state / "up.json").read_text())
        except (OSError, ValueError):
            return {}
        for svc in doc.get("services", {}).values():
            for pid in [svc.get("pid"), *(svc.get("pids") or [])]:
                if isinstance(pid, int):
                    self.pids_seen.add(pid)
        return doc

    def all_running(self) -> bool:
        services = self.doc().get("services", {})
        return all(services.get(s, {}).get("running") for s in SERVICES)

    def pid(self, service: str) -> int | None:
        return self.doc().get("services", {}).get(service, {}).get("pid")

    def ready_count(self, service: str) -> int:
        try:
            text = (self.state / "logs" / f"{service}.log").read_text(errors="replace")
        except OSError:
            return 0
        return text.count('"service ready"')

    def signal(self, service: str, sig: int) -> bool:
        pid = self.pid(service)
        if pid is None:
            return False
        try:
            os.kill(pid, sig)
            return True
        except ProcessLookupError:
            return False

    async def stop(self, timeout: float = 90.0) -> int | None:
        if self.proc is None:
            return None
        self.doc()
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode

    def orphans(self) -> list[int]:
        alive = []
        for pid in sorted(self.pids_seen):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            if "\nState:\tZ" not in status and "hean" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                alive.append(pid)
        return alive
