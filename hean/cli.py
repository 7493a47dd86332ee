"""The `hean` command line: one entry point for every process and tool.

    hean run <service>     run one HEAN process (feed, executor, reconciler, risk, watchdog, strategy, echo)
    hean sim ...           run the Bybit v5 simulator
    hean up                run everything locally, paper trading on the simulator
    hean status            one table of every process
    hean bench bus         bus benchmark
    hean risk reset        operator reset of a latched HARD_STOP
    hean order ...         a manual order intent through the executor
    hean preflight         check the exchange account (key, account, clock, symbols, WS) before going live
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

from hean.config import settings_or_exit

# Process name -> "module:Class"; imported lazily so `hean run echo` does not load the exchange client.
SERVICES = {
    "echo": "hean.echo:EchoService",
    "feed": "hean.feed.service:FeedService",
    "executor": "hean.executor.service:ExecutorService",
    "reconciler": "hean.reconciler.service:ReconcilerService",
    "risk": "hean.risk.service:RiskService",
    "watchdog": "hean.watchdog.service:WatchdogService",
    "strategy": "hean.strategy.runner:StrategyService",
}

# Subcommand -> "module:function(argv) -> int" for tools that own their arguments.
TOOLS = {
    "sim": "hean.sim.cli:main",
    "up": "hean.up.supervisor:main",
    "status": "hean.ops.status:main",
    "bench": "hean.bench:main",
    "risk": "hean.ops.risk:main",
    "order": "hean.ops.order:main",
    "preflight": "hean.preflight:main",
    "chaos": "hean.chaos:main",
    "bus": "hean.bus.keys:main",
}


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _run(args: argparse.Namespace) -> int:
    from hean.lifecycle import run_service
    from hean.logging import setup_logging

    settings = settings_or_exit(args.env_file, args.service, service=args.service)
    setup_logging(args.service, settings.log_level, settings.secrets())
    service_cls = _load(SERVICES[args.service])
    return run_service(service_cls, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hean", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run one HEAN process")
    run.add_argument("service", choices=sorted(SERVICES))
    run.add_argument("--env-file", help="settings file (default: $HEAN_ENV_FILE or /etc/hean/hean.env)")
    run.set_defaults(func=_run)
    for name in TOOLS:
        sub.add_parser(name, add_help=False, help=f"see `hean {name} --help`")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Tools parse their own arguments, so `hean sim --port 0` reaches the simulator untouched.
    if argv and argv[0] in TOOLS:
        tool: Callable[[list[str]], int] = _load(TOOLS[argv[0]])
        return int(tool(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
