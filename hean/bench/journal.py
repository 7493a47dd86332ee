"""The executor journal's insert, timed alone: synchronous=NORMAL (the default) vs FULL (WAL).

Answers "does the fsync'd write dominate tick-to-order?": the insert is paid once per order
before its request leaves. FULL adds an fsync per commit; NORMAL (in WAL mode) loses nothing
in a process crash, and a power loss may drop the last commits (`executor.journal_sync`).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from hean.executor.journal import PENDING, Journal

N = 300


def _time_inserts(journal: Journal, tag: str) -> list[float]:
    out = []
    for i in range(N):
        t0 = time.perf_counter_ns()
        journal.insert(f"{tag}-{i}", f"h-{tag}-{i}", "BTCUSDT", PENDING, {"qty": "0.001"})
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return sorted(out)


def compare(directory: Path) -> tuple[tuple[float, float], tuple[float, float]]:
    """((p50, p99) with FULL, (p50, p99) with NORMAL), µs per insert."""
    directory.mkdir(parents=True, exist_ok=True)
    journal = Journal(directory / "full.sqlite", "full")
    full = _time_inserts(journal, "f")
    journal.close()
    journal = Journal(directory / "normal.sqlite", "normal")
    normal = _time_inserts(journal, "n")
    journal.close()
    p99 = int(0.99 * (N - 1))
    return (statistics.median(full), full[p99]), (statistics.median(normal), normal[p99])
