"""The short chaos soak: ~100 s of trading under every fault kind, all invariants 0.

Real processes (`hean chaos` starts the simulator and `hean up`), so it takes ~3 minutes of
wall time. The seed is kept: seed 1 at 100 s kills every process once (see hean.chaos.schedule).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hean.chaos import schedule

SEED, DURATION = 1, 100


def test_short_soak_keeps_every_invariant_at_zero(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "hean.cli", "chaos", "--duration", str(DURATION), "--seed",
                           str(SEED), "--json", "--state-dir", str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=900)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    report = proc.stdout
    assert {k: v for k, v in result["invariants"].items() if v} == {}, report
    assert proc.returncode == 0, report
    faults = result["faults"]
    for service in schedule.SERVICES:
        assert faults.get(f"kill9:{service}", 0) >= 1, report
    for kind in (*schedule.EXCHANGE_FAULTS, "crash", "transfer_in", "transfer_out", "operator_reset"):
        assert faults.get(kind, 0) >= 1, (kind, report)
    figures = result["figures"]
    assert figures["intents"] > 60 and figures["executions_at_exchange"] > 20, report
    assert figures["force_closes"] >= 1 and figures.get("crash_to_hard_stop_ms") is not None, report
