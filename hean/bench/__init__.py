"""`hean bench <what> [--json]`: benchmarks, printed as ratios against baselines measured in the same run.

    hean bench bus          the event bus vs raw pyzmq, blocking pyzmq+orjson and multiprocessing.Queue
    hean bench executor     intent -> HTTP request latency and placement throughput vs a bare aiohttp client
    hean bench reconciler   reconnect -> missed fills published, and feed frame -> tick latency
    hean bench crash        price crash at the exchange -> HARD_STOP published, -> last opening order let through
                            (real processes), vs the tick interval and HARD_STOP
    hean bench tick         feed WS tick -> executor order request at 100 / 1,000 ticks/s, footprint, journal write
    hean bench mttr         kill -9 -> ready again, per process under `hean up`
    hean bench table        every figure above in one table (runs them all)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json

import uvloop

BENCHES = {
    "bus": "hean.bench.bus:run",
    "executor": "hean.bench.executor:run",
    "reconciler": "hean.bench.reconciler:run",
    "crash": "hean.bench.crash:run",
    "tick": "hean.bench.tick:run",
    "mttr": "hean.bench.mttr:run",
    "table": "hean.bench.table:run",
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hean bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=sorted(BENCHES))
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")
    args = parser.parse_args(argv)
    module, _, attr = BENCHES[args.what].partition(":")
    run = getattr(importlib.import_module(module), attr)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(run(args.json))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0
