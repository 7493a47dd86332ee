"""`hean order buy|sell|close SYMBOL [QTY] [--limit PRICE]`, `hean order cancel SYMBOL|LINK_ID|--all`:
an operator's manual intent (or cancel) through the executor.

The order travels like any strategy's: an ORDER_INTENT on the bus (service
"ctl", strategy_id "operator"), re-sent with the same intent_id until the
executor's outcome arrives, so risk gating and exactly-once placement apply.
`close SYMBOL` is a reduce-only market order for the whole position (learned
from the reconciler's POSITION_UPDATE); `close SYMBOL QTY` closes QTY of it and
refuses a QTY larger than the position. The running system is found like every
operator command does (hean.ops.locate). Exit codes: see EXIT_CODES_EPILOG.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from hean import topics
from hean.bus import BusStats, Event, Publisher, Subscriber
from hean.config import HeanSettings, settings_or_exit
from hean.ids import new_intent_id
from hean.ops.cancel import cancel_text, send_cancel
from hean.ops.locate import (EX_FAILED, EX_OK, EX_UNREACHABLE, EX_USAGE, EXIT_CODES_EPILOG, NoSuchSystem,
                             find_system)
from hean.ops.output import emit, error, positive_decimal, quiet_pipe
from hean.strategy.api import InvalidIntent, OrderIntent, validate
from hean.strategy.events import intent_data, parse_position
from hean.strategy.runner import OUTCOME_TYPES

RESEND_INTERVAL_S = 1.0
FIND_TIMEOUT_S = 3.0   # how long to look for a running executor before saying none runs




def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hean order", description="Send a manual order intent through the executor.",
                                epilog=EXIT_CODES_EPILOG)
    p.add_argument("action", choices=("buy", "sell", "close", "cancel"))
    p.add_argument("symbol", nargs="?", help="the symbol; for cancel: a symbol or an order link id")
    p.add_argument("qty", nargs="?", type=positive_decimal, help="quantity (buy/sell; close: default the whole position)")
    p.add_argument("--all", action="store_true", help="cancel: every open order of the traded symbols")
    p.add_argument("--limit", type=positive_decimal, metavar="PRICE", help="a GTC limit order at PRICE (default: market)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the executor's answer")
    p.add_argument("--json", action="store_true", help="the outcome as one JSON object on stdout")
    p.add_argument("--state-dir", help="talk to this `hean up` (default: the running one, else the settings)")
    p.add_argument("--env-file", help="settings file (default: $HEAN_ENV_FILE or /etc/hean/hean.env)")
    return p


async def _wait_position(positions: dict[str, Any], symbol: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while symbol not in positions and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return positions.get(symbol)


async def send(args: argparse.Namespace, settings: HeanSettings, runtime_dir: Path) -> tuple[int, dict[str, Any]]:
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
        if not await pub.wait_for_subscribers("critical", min(args.timeout, FIND_TIMEOUT_S)):
            return EX_UNREACHABLE, {"error": f"nothing running is listening on the bus in {runtime_dir} "
                                    "(is `hean up` or the executor running?)"}
        if args.action == "close":
            pos = await _wait_position(positions, args.symbol, min(args.timeout, 5.0))
            if pos is None or pos.is_flat:
                return EX_FAILED, {"error": f"no open {args.symbol} position to close"
                                   + ("" if pos is not None else " (no POSITION_UPDATE heard: is the reconciler running?)")}
            if args.qty is not None and args.qty > pos.size:
                return EX_USAGE, {"error": f"cannot close {args.qty} {args.symbol}: the {pos.side} position is only "
                                  f"{pos.size} (omit QTY to close all of it)"}
            intent = OrderIntent.close(pos)
            if args.qty is not None:
                intent = OrderIntent.market(pos.symbol, intent.side, args.qty, reduce_only=True)
        else:
            if args.qty is None:
                return EX_USAGE, {"error": f"{args.action} needs a quantity"}
            side = "Buy" if args.action == "buy" else "Sell"
            intent = (OrderIntent.limit(args.symbol, side, args.qty, args.limit) if args.limit
                      else OrderIntent.market(args.symbol, side, args.qty))
        try:
            intent = validate(intent, tuple(settings.symbols))
        except InvalidIntent as exc:
            return EX_USAGE, {"error": str(exc)}
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
            return EX_FAILED, {"error": f"no answer from the executor within {args.timeout:.0f} s",
                               "intent_id": intent_id}
        return (EX_OK if ev.type == topics.EventType.ORDER_PLACED.value else EX_FAILED), {"outcome": ev.type, **ev.data}
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(reader, return_exceptions=True), 5)
        sub.close()
        pub.close()


def _human(result: dict[str, Any]) -> str:
    data = {k: v for k, v in result.items() if k not in ("outcome", "intent_id") and v not in (None, "")}
    fields = " ".join(f"{k}={v}" for k, v in data.items() if k in ("symbol", "side", "qty", "price", "order_id",
                                                                   "order_link_id", "reason", "ret_code", "ret_msg"))
    return f"{result.get('outcome')}: intent {result.get('intent_id')} {fields}".rstrip()


@quiet_pipe
def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_or_exit(args.env_file, "order", service="ctl")
    try:
        system = find_system(settings, args.state_dir)
    except NoSuchSystem as exc:
        return error("order", str(exc), EX_USAGE)
    target = args.symbol or ""
    args.symbol = target.upper()
    if args.action == "cancel":
        if bool(target) == bool(args.all):
            return error("order", "cancel needs exactly one of SYMBOL, LINK_ID or --all", EX_USAGE)
        request = ({"all": True} if args.all else {"symbol": args.symbol} if args.symbol in settings.symbols
                   else {"order_link_id": target})
        rc, result = asyncio.run(send_cancel(settings, system.runtime_dir, request, "operator", args.timeout))
        if "error" in result:
            return error("order", str(result["error"]), rc)
        emit(cancel_text(result), result, args.json)
        return rc
    if not target:
        return error("order", f"{args.action} needs a SYMBOL", EX_USAGE)
    rc, result = asyncio.run(send(args, settings, system.runtime_dir))
    if "error" in result:
        if args.json:
            emit(None, result, True)
        return error("order", str(result["error"]), rc)
    emit(_human(result), result, args.json)
    return rc
