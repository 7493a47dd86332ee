"""`hean sim`: run the simulator as a process until SIGTERM/SIGINT.

Prints exactly one line ``HEAN-SIM READY <rest_url>`` to stdout once bound, so
scripts learn the port when started with ``--port 0``.

The API key and secret come from ``HEAN_SIM__API_KEY`` / ``HEAN_SIM__API_SECRET`` (the
environment is private to the process), else the simulator's well-known credentials. The
``--api-key`` / ``--api-secret`` flags still win for compatibility, but anything on argv is
readable by every local user in ``/proc/<pid>/cmdline``: never pass a real secret that way.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from decimal import Decimal, InvalidOperation

import uvloop
from pydantic import SecretStr

from hean.sim.metrics_port import serve_metrics
from hean.sim.server import SimServer
from hean.sim.settings import SimSettings

log = logging.getLogger("hean.sim")
ENV_API_KEY = "HEAN_SIM__API_KEY"
ENV_API_SECRET = "HEAN_SIM__API_SECRET"
ENV_UID = "HEAN_SIM__UID"
ENV_METRICS_PORT = "HEAN_METRICS_PORTS__SIM"   # HEAN's configured metrics port of the sim service
DEFAULT_API_KEY = "hean-sim-key"
DEFAULT_API_SECRET = "hean-sim-secret"


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"not a non-negative decimal: {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 60_000:
        raise argparse.ArgumentTypeError(f"must be within 0..60000: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hean sim", description="Bybit v5 compatible simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None,
                        help=f"accepted API key (default: ${ENV_API_KEY}, else {DEFAULT_API_KEY})")
    parser.add_argument("--api-secret", default=None,
                        help=f"HMAC secret; visible in /proc/*/cmdline, prefer ${ENV_API_SECRET}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--uid", type=int, default=None,
                        help=f"account UID reported by /v5/user/query-api (default: ${ENV_UID}, else 1)")
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="comma-separated linear symbols")
    parser.add_argument("--tick-interval", type=_positive_float, default=0.1)
    parser.add_argument("--rate-limit-scale", type=_positive_float, default=1.0)
    parser.add_argument("--initial-balance", type=_decimal, default=Decimal("100000"))
    parser.add_argument("--metrics-port", type=int, default=None,
                        help=f"also serve /metrics on this port (default: ${ENV_METRICS_PORT}; 0 = ephemeral)")
    parser.add_argument("--delay-ms", type=_non_negative_float, default=None,
                        help="one-way network delay of REST legs and WS frames (default 5, 0 = none)")
    parser.add_argument("--log-level", default="INFO")
    return parser


def _setup_logging(level: str, secret: str) -> None:
    try:
        from hean.logging import setup_logging  # type: ignore[import-not-found]
    except ImportError:
        logging.basicConfig(level=level)
        return
    setup_logging("sim", level, secrets=[secret])


async def _serve(settings: SimSettings, metrics_port: int | None) -> None:
    server = SimServer(settings)
    await server.start()
    metrics_url, bound = server.metrics_url, server.port
    metrics_runner = None
    if metrics_port is not None:
        try:
            metrics_runner, bound = await serve_metrics(server.registry, settings.host, metrics_port)
        except OSError as err:
            await server.stop()
            raise SystemExit(f"hean sim: cannot listen on metrics port {metrics_port}: {err.strerror}") from None
        metrics_url = f"http://{settings.host}:{bound}/metrics"
    log.info("simulator ready", extra={
        "rest_url": server.rest_url, "ws_public_url": server.ws_public_url,
        "ws_private_url": server.ws_private_url, "control_url": server.control_url,
        "metrics_url": metrics_url, "metrics_port": bound,
    })
    print(f"HEAN-SIM READY {server.rest_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await server.stop()
        log.info("simulator stopped")


def credentials(args: argparse.Namespace) -> tuple[str, str]:
    """Key and secret: flag, else environment, else the simulator's well-known pair."""
    key = args.api_key if args.api_key is not None else os.environ.get(ENV_API_KEY) or DEFAULT_API_KEY
    secret = args.api_secret if args.api_secret is not None else (
        os.environ.get(ENV_API_SECRET) or DEFAULT_API_SECRET)
    return key, secret


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run until a stop signal, return the exit code."""
    args = build_parser().parse_args(argv)
    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    if not symbols or not all(s.isalnum() for s in symbols):
        build_parser().error("--symbols must be a comma-separated list of symbols")
    if not 0 <= args.port <= 65535:
        build_parser().error("--port must be within 0..65535")
    api_key, api_secret = credentials(args)
    _setup_logging(args.log_level, api_secret)
    metrics_text = str(args.metrics_port) if args.metrics_port is not None else os.environ.get(ENV_METRICS_PORT)
    if metrics_text is not None and not (metrics_text.isdigit() and int(metrics_text) <= 65535):
        build_parser().error(f"--metrics-port / ${ENV_METRICS_PORT} must be within 0..65535")
    uid_text = str(args.uid) if args.uid is not None else os.environ.get(ENV_UID) or "1"
    if not uid_text.isdigit() or int(uid_text) <= 0:
        build_parser().error(f"--uid / ${ENV_UID} must be a positive integer")
    uid = int(uid_text)
    settings = SimSettings(
        host=args.host, port=args.port, api_key=api_key, api_secret=SecretStr(api_secret),
        seed=args.seed, symbols=symbols, tick_interval_s=args.tick_interval,
        rate_limit_scale=args.rate_limit_scale, initial_balance=args.initial_balance, uid=uid,
        **({} if args.delay_ms is None else {"rest_delay_ms": args.delay_ms, "ws_delay_ms": args.delay_ms}),
    )
    # asyncio.run(loop_factory=...) needs 3.12; Runner gives the same on 3.11.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(settings, int(metrics_text) if metrics_text is not None else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
