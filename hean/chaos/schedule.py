"""The seeded fault schedule of `hean chaos` (pure: no I/O, no clock).

`build(seed, duration_s)` -> a list of `Fault(at_s, kind, params)`, sorted by time, times in
seconds after trading started. The same seed and duration always give the same schedule.

Layout: the crash scenario (a price move against the open exposure, then the recovery and an
operator reset, then a transfer in and one out) starts at 30 % of the run and owns a window of
`CRASH_WINDOW_S`; no process is killed or stopped inside it, so its timing bound measures
the risk path, not a restart. kill -9 of each HEAN process in turn (seeded order, at least
`KILL_GAP_S` apart so one restart finishes before the next kill), one SIGSTOP/SIGCONT, and the
exchange-side faults spread at seeded times over the rest of the run. The last `QUIET_S` are
fault-free so the last faults' effects land before trading stops.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SERVICES = ("risk", "reconciler", "executor", "watchdog", "feed", "strategy")
STOPPABLE = ("watchdog", "feed")      # SIGSTOP of these delays work, it cannot reorder a send-time check
KILL_GAP_S = 9.0
CRASH_WINDOW_S = 30.0
QUIET_S = 8.0
START_S = 6.0

# kind -> params; one of each per EXCHANGE_EVERY_S of run (at least one of each).
EXCHANGE_FAULTS: dict[str, dict[str, Any]] = {
    "ws_drop_public": {"stream": "public"},
    "ws_drop_private": {"stream": "private"},
    "timeout_after_accept": {"count": 1},
    "http_error_before": {"when": "before", "status": 503, "count": 1, "path": "/v5/order/create"},
    "http_error_after": {"when": "after", "status": 502, "count": 1, "path": "/v5/order/create"},
    "rate_limit_10006": {"count": 4},
    "latency": {"ms": 250, "seconds": 3.0},
    "delay_reply_position": {"path": "/v5/position/list", "ms": 800, "count": 1},
    "thin_book": {"depth": "0.004", "seconds": 6.0},
    "double_filled": {"count": 2},
    "execution_first": {"count": 2},
    "realtime_cache_clear": {},
}
EXCHANGE_EVERY_S = 120.0


@dataclass(frozen=True, order=True)
class Fault:
    at_s: float
    kind: str
    params: dict[str, Any] = field(default_factory=dict, compare=False)


def _free(t: float, taken: list[tuple[float, float]]) -> bool:
    return all(not lo <= t <= hi for lo, hi in taken)


def build(seed: int, duration_s: float) -> list[Fault]:
    rng = random.Random(seed)
    end = max(START_S + 1.0, duration_s - QUIET_S)
    faults: list[Fault] = []
    crash_at = max(START_S, 0.3 * duration_s)
    crash_window = (crash_at - 3.0, crash_at + CRASH_WINDOW_S)
    faults.append(Fault(crash_at, "crash", {"move_pct": 12.0}))
    faults.append(Fault(crash_at + CRASH_WINDOW_S - 6.0, "transfer_in", {"amount": "150"}))
    faults.append(Fault(crash_at + CRASH_WINDOW_S - 3.0, "transfer_out", {"amount": "-100"}))
    # Process faults: every service once per cycle, in a seeded order, outside the crash window.
    t, cycle = START_S, list(SERVICES)
    rng.shuffle(cycle)
    i = 0
    while t < end:
        if _free(t, [crash_window]):
            faults.append(Fault(round(t, 2), "kill9", {"service": cycle[i % len(cycle)]}))
            i += 1
            if i % len(cycle) == 3:
                t += KILL_GAP_S / 2
                faults.append(Fault(round(t, 2), "sigstop", {"service": rng.choice(STOPPABLE), "seconds": 2.0}))
        t += KILL_GAP_S + rng.uniform(0, 3)
    # Exchange faults: each kind at seeded times, at least once.
    rounds = max(1, int(duration_s // EXCHANGE_EVERY_S))
    for kind, params in EXCHANGE_FAULTS.items():
        for _ in range(rounds):
            for _attempt in range(20):
                at = rng.uniform(START_S, end)
                if _free(at, [crash_window]):
                    break
            p = dict(params)
            if kind == "thin_book":
                p["symbol"] = rng.choice(("BTCUSDT", "ETHUSDT"))
            faults.append(Fault(round(at, 2), kind, p))
    return sorted(faults)


def counts(faults: list[Fault]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in faults:
        key = f"{f.kind}:{f.params['service']}" if f.kind in ("kill9", "sigstop") else f.kind
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))
