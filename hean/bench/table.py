"""`hean bench table`: the figures of issue 15 in one table, each against a baseline from the same run.

Runs `tick` (tick-to-order, footprint, journal), `mttr`, `crash` (HARD_STOP and the last opening order
let through) and `reconciler` in turn.
Ratios are what should hold from one machine to the next; the absolute figures are this machine's.
"""

from __future__ import annotations

import os
import platform
from typing import Any

from hean.bench import crash, mttr, tick
from hean.bench import reconciler as reconciler_bench


def _row(rows: list[tuple[str, str, str, str]], name: str, value: float, base: float | None, unit: str) -> None:
    ratio = f"{value / base:.2f}" if base else "-"
    rows.append((name, f"{value:,.1f} {unit}", f"{base:,.1f} {unit}" if base else "-", ratio))


async def run(json_out: bool) -> dict[str, Any]:
    t = await tick.run(True)
    m = await mttr.run(True)
    c = await crash.run(True)
    r = await reconciler_bench.run(True)
    rows: list[tuple[str, str, str, str]] = []
    for rate in (100, 1000):
        for p in ("p50", "p99", "p99.9"):
            base = t.get(f"base_{rate}_{p if p != 'p99.9' else 'p99'}_us")
            _row(rows, f"tick->order {rate}/s {p} (base: bare 3-hop {p if p != 'p99.9' else 'p99'})",
                 t[f"hean_{rate}_{p}_us"], base, "us")
    _row(rows, "journal insert p50, FULL (base: NORMAL)", t["journal_full_p50_us"], t["journal_normal_p50_us"], "us")
    _row(rows, "journal insert p99, FULL (base: NORMAL)", t["journal_full_p99_us"], t["journal_normal_p99_us"], "us")
    _row(rows, "journal FULL p50 / tick->order 1000/s p50", t["journal_full_p50_us"], t["hean_1000_p50_us"], "us")
    for service in ("risk", "reconciler", "executor", "watchdog", "feed", "strategy"):
        if f"mttr_{service}_s" in m:
            _row(rows, f"kill -9 -> ready {service} (base: cold import)", m[f"mttr_{service}_s"], m["cold_import_s"], "s")
    for service, (rss, cpu) in t["idle"].items():
        brss, bcpu = t["busy"][service]
        _row(rows, f"RSS {service} at 1000 ticks/s (base: idle)", brss, rss, "MB")
        _row(rows, f"CPU% {service} at 1000 ticks/s (base: idle)", bcpu, cpu or None, "%")
    if "crash_to_hard_stop_p50_ms" in c:
        _row(rows, "crash -> HARD_STOP p50 (base: tick interval)", c["crash_to_hard_stop_p50_ms"], c["tick_interval_ms"], "ms")
        _row(rows, "crash -> HARD_STOP p99 (base: tick interval)", c["crash_to_hard_stop_p99_ms"], c["tick_interval_ms"], "ms")
        for key, what in (("last_opening_booked", "last opening booked"),
                          ("first_blocked_risk", "first ORDER_BLOCKED_RISK")):
            for p in ("p50", "p99"):
                if f"crash_to_{key}_{p}_ms" in c:
                    _row(rows, f"crash -> {what} {p} (base: crash -> HARD_STOP {p})",
                         c[f"crash_to_{key}_{p}_ms"], c[f"crash_to_hard_stop_{p}_ms"], "ms")
        _row(rows, "openings booked after HARD_STOP (base: sent after it)", c["openings_booked_after_hard_stop"],
             c["openings_sent_after_hard_stop"], "orders")
        _row(rows, "openings sent after HARD_STOP, booked (base: sent after it)",
             c["openings_sent_and_booked_after_hard_stop"], c["openings_sent_after_hard_stop"], "orders")
    for n in reconciler_bench.FILL_COUNTS:
        if f"reconnect_to_{n}_fills_published_s" in r:
            _row(rows, f"reconnect -> {n:,} missed fills published (base: bare paging)",
                 r[f"reconnect_to_{n}_fills_published_s"] * 1000, r[f"bare_fetch_{n}_executions_s"] * 1000, "ms")
    for key, value in r.items():
        if isinstance(value, (int, float)):
            rows.append((f"reconciler {key}", f"{value}", "-", "-"))
    print(f"\nmachine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}")
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':{width}s}  {'value':>14s}  {'baseline':>14s}  ratio")
    for name, value, base, ratio in rows:
        print(f"{name:{width}s}  {value:>14s}  {base:>14s}  {ratio}")
    return {"tick": t, "mttr": m, "crash": c, "reconciler": r}
