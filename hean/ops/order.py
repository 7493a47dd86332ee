"""`hean order buy|sell|close SYMBOL [QTY] [--limit PRICE]`: an operator's manual intent through the executor.

The order travels like any strategy's: an ORDER_INTENT on the bus (service
"ctl", strategy_id "operator"), re-sent with the same intent_id until the
executor's outcome arrives, so risk gating and exactly-once placement apply.
`close` is a reduce-only market order for the current position size, learned
from the reconciler's POSITION_UPDATE. Prints the outcome; exit 0 if placed,
1 otherwise (rejected, blocked, nothing to close, no answer), 78 for bad settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from hean import topics
from hean.bus import BusStats, Event, Publisher, Subscriber
from hean.config import HeanSettings, settings_or_exit
from hean.ids import new_intent_id
from hean.strategy.api import InvalidIntent, OrderIntent, validate
from hean.strategy.events import intent_data, parse_position
from hean.strategy.runner import OUTCOME_TYPES

RESEND_INTERVAL_S = 1.0


def _positive(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hean order", description="Send a manual order intent through the executor.")
    p.add_argument("action", choices=("buy", "sell", "close"))
    p.add_argument("symbol", type=str.upper)
    p.add_argument("qty", nargs="?", type=_positive, help="quantity (buy/sell; close uses the position size)")
    p.add_argument("--limit", type=_positive, metavar="PRICE", help="a GTC limit order at PRICE (default: market)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the executor's answer")
    p.add_argument("--state-dir", help="talk to this `hean up` (default: the running one, else the settings)")
    p.add_argument("--env-file", help="settings file (default: $HEAN_ENV_FILE or /etc/hean/hean.env)")
    return p


def _runtime_dir(settings: HeanSettings, state_dir: str | None) -> Path:
    from hean.ops.status import _up_doc
    doc = _up_doc(state_dir)
    return Path(doc["runtime_dir"]) if doc else settings.runtime_dir


async def _wait_position(positions: dict[str, Any], symbol: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while symbol not in positions and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return positions.get(symbol)


async def send(args: argparse.Namespace, settings: HeanSettings) -> tuple[int, dict[str, Any]]:
    runtime_dir = _runtime_dir(settings, args.state_dir)
    outcomes: dict[str, Event] = {}
    positions: dict[str, Any] = {}

    async def on_order(ev: Event) -> None:
        if ev.type in OUTCOME_TYPES and isinstance(ev.data.get("intent_id"), str):
            outcomes.setdefault(ev.data["intent_id"], ev)

    async def on_position(ev: Event) -> None:
        pos = parse_position(ev.data)
        if pos is not None:
            positions[pos.symbol] = pos

    sub = Subscriber(settings.bus, runtime_dir, BusStats()).connect("executor").connect("reconciler")
    sub.on("order.", on_order).on("position.", on_position)
    pub = Publisher(settings.bus, runtime_dir, "ctl", BusStats()).bind()
    stop = asyncio.Event()
    reader = asyncio.create_task(sub.run(stop))
    try:
        if args.action == "close":
            pos = await _wait_position(positions, args.symbol, min(args.timeout, 5.0))
            if pos is None or pos.is_flat:
                return 1, {"error": f"no open {args.symbol} position to close"
                           + ("" if pos is not None else " (no POSITION_UPDATE heard: is the reconciler running?)")}
            intent = OrderIntent.close(pos)
        else:
            if args.qty is None:
                return 1, {"error": f"{args.action} needs a quantity"}
            side = "Buy" if args.action == "buy" else "Sell"
            intent = (OrderIntent.limit(args.symbol, side, args.qty, args.limit) if args.limit
                      else OrderIntent.market(args.symbol, side, args.qty))
        try:
            intent = validate(intent, tuple(settings.symbols))
        except InvalidIntent as exc:
            return 1, {"error": str(exc)}
        intent_id = new_intent_id("operator")
        data = intent_data(intent_id, "operator", intent)
        deadline = time.monotonic() + args.timeout
        while intent_id not in outcomes and time.monotonic() < deadline:
            await pub.publish(topics.intent(), topics.EventType.ORDER_INTENT.value, data)
            resend_at = time.monotonic() + RESEND_INTERVAL_S
            while intent_id not in outcomes and time.monotonic() < min(resend_at, deadline):
                await asyncio.sleep(0.02)
        ev = outcomes.get(intent_id)
        if ev is None:
            return 1, {"error": f"no answer from the executor within {args.timeout:.0f} s", "intent_id": intent_id}
        return (0 if ev.type == topics.EventType.ORDER_PLACED.value else 1), {"outcome": ev.type, **ev.data}
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(reader, return_exceptions=True), 5)
        sub.close()
        pub.close()


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_or_exit(args.env_file, "order", service="ctl")
    rc, result = asyncio.run(send(args, settings))
    print(json.dumps(result, default=str), flush=True)
    return rc
