"""`hean bench mttr`: kill -9 of each process under `hean up` -> the restarted one logs "service ready".

Runs the simulator and `hean up` as `hean chaos` does (hean.chaos.procs), with trading stopped,
kills each process TRIALS times and times the supervisor's restart (its first back-off is 1 s)
plus the new process's start-up. Baseline, same run: a bare `python -m hean.cli --help`
(interpreter + HEAN's import), the floor of any restart.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hean.chaos import procs

TRIALS = 3


async def run(json_out: bool) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="hean-bench-mttr-"))
    (state / "data").mkdir()
    stop_file = state / "stop-trading"
    stop_file.write_text("stop\n")
    sim = procs.Sim(state, 1)
    url = await sim.start()
    up = procs.Up(state, procs.hean_env(state, url, 1, stop_file))
    result: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        for _ in range(TRIALS):
            subprocess.run([sys.executable, "-m", "hean.cli", "--help"], capture_output=True, check=True)
        result["cold_import_s"] = round((time.perf_counter() - t0) / TRIALS, 3)
        await up.start()
        for service in procs.SERVICES:
            times = []
            for _ in range(TRIALS):
                before = up.ready_count(service)
                killed = time.monotonic()
                if not up.signal(service, signal.SIGKILL):
                    continue
                while up.ready_count(service) <= before and time.monotonic() - killed < 120:
                    await asyncio.sleep(0.02)
                times.append(time.monotonic() - killed)
                await asyncio.sleep(2.0)
            if times:
                result[f"mttr_{service}_s"] = round(statistics.median(times), 3)
    finally:
        await up.stop()
        await sim.stop()
    if not json_out:
        for key, value in result.items():
            print(f"{key:30s} {value}")
    return result
