"""`hean chaos --duration S --seed N [--json] [--state-dir D]`: the soak test of the whole system.

Runs the simulator and `hean up` (with hean.chaos.strategy trading) as subprocesses, injects
the seeded schedule of hean.chaos.schedule, then stops trading, settles and checks the
invariants of hean.chaos.invariants against the simulator's own records (its Bybit API) and
what HEAN published on the bus. Exit 0 when every invariant is 0, 1 otherwise; with --json
the last line is one JSON object with `invariants`, `faults` and `figures`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import uvloop


def main(argv: list[str]) -> int:
    from hean.chaos.report import render
    from hean.chaos.run import Soak

    parser = argparse.ArgumentParser(prog="hean chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of trading under faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--state-dir", help="logs, SQLite files and sockets (default: a new temp dir)")
    args = parser.parse_args(argv)
    soak = Soak(args.duration, args.seed, Path(args.state_dir).resolve() if args.state_dir else None)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(soak.run())
    print(render(result, args.seed, args.duration), flush=True)
    if args.json:
        print(json.dumps({k: result[k] for k in ("invariants", "faults", "figures")}, sort_keys=True, default=str))
    return 1 if any(result["invariants"].values()) else 0
